"""`emovit` command: dispatches to functions a user can also call from Python.

Each subcommand module only builds its argparse parser at import time; heavy libraries (torch, transformers,
datasets) are imported inside the handler that needs them, so `emovit --help` answers at once. `main` is the
error boundary of every command (`emovit.error_boundary`): bad input (`EmoVITInputError`) and known library
failures are one sentence on stderr and exit code 2; `--debug` (or EMOVIT_DEBUG=1) shows the traceback instead.
"""

import argparse


def build_parser() -> argparse.ArgumentParser:
    from emovit import __version__

    from . import data, demo, evaluate, export, model, train

    parser = argparse.ArgumentParser(prog="emovit", description="EmoVIT: emotion instruction tuning on the Hugging Face stack.")
    parser.add_argument("--version", action="version", version=f"emovit {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="Show the full traceback of a failure instead of one sentence (also: EMOVIT_DEBUG=1).")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for commands in (model, demo, train, data, evaluate, export):
        commands.add_commands(subparsers)
    return parser


def add_push_parser(subparsers, name: str, what: str, folder_help: str, example_repo: str, handler) -> None:
    """`emovit push` and `emovit data push`: a folder, the target repository, and its visibility."""
    push = subparsers.add_parser(name, help=f"Upload {what} to the Hugging Face Hub.")
    push.add_argument("folder", help=folder_help)
    push.add_argument("--repo-id", required=True, help=f"Target repository, e.g. {example_repo}.")
    push.add_argument("--private", action="store_true", help="Create the repository as private.")
    push.set_defaults(handler=handler)


def main(argv: list[str] | None = None) -> int:
    from emovit.error_boundary import run_guarded

    args = build_parser().parse_args(argv)
    return run_guarded(f"emovit {args.command}", lambda: args.handler(args), debug=args.debug)
