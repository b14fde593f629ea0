"""`emovit` command: dispatches to functions a user can also call from Python.

Each subcommand module only builds its argparse parser at import time; heavy libraries (torch, transformers,
datasets) are imported inside the handler that needs them, so `emovit --help` answers at once. `main` is the
error boundary of every command (`emovit.error_boundary`): bad input (`EmoVITInputError`) and known library
failures are one sentence on stderr and exit code 2; `--debug` (or EMOVIT_DEBUG=1) shows the traceback instead.
Every parser, subcommands included, formats its help with `DefaultsHelpFormatter`. `emovit train sft` hands every
argument after it to the recipe parser (TRL's), unparsed here.
"""

import argparse


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's defaults formatter, less the defaults that say nothing: none on a required flag, none for a default
    of None (the help text says what happens instead), none where the help text already names its default."""

    def _get_help_string(self, action):
        if action.required or action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class EmoVITArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose help shows defaults; `add_subparsers` makes every subcommand one of these too."""

    def __init__(self, *args, formatter_class=DefaultsHelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    from emovit import __version__

    from . import add_pipeline, data, demo, evaluate, export, model, recipes, train

    parser = EmoVITArgumentParser(prog="emovit", description="EmoVIT: emotion instruction tuning on the Hugging Face stack.")
    parser.add_argument("--version", action="version", version=f"emovit {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="Show the full traceback of a failure instead of one sentence (also: EMOVIT_DEBUG=1).")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for commands in (model, add_pipeline, demo, train, recipes, data, evaluate, export):
        commands.add_commands(subparsers)
    return parser


def add_push_parser(subparsers, name: str, what: str, folder_help: str, example_repo: str, handler) -> None:
    """`emovit push` and `emovit data push`: a folder, the target repository, and its visibility."""
    push = subparsers.add_parser(
        name, help=f"Upload {what} to the Hugging Face Hub.",
        description=f"Uploads {what} to a Hub repository, created if it does not exist; the token comes from "
                    f"`hf auth login` or $HF_TOKEN. Prints the repository's URL.",
    )
    push.add_argument("folder", help=folder_help)
    push.add_argument("--repo-id", required=True, help=f"Target repository, e.g. {example_repo}.")
    push.add_argument("--private", action="store_true", help="Create the repository as private.")
    push.set_defaults(handler=handler)


def add_trust_remote_code_argument(parser: argparse.ArgumentParser) -> None:
    """`--trust-remote-code`: the one way a command runs a model's own code (`auto_map` in its config)."""
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="Run the model's own Python code (the .py files its config.json names in auto_map), as "
                             "transformers' trust_remote_code=True: only for a model you trust. EmoVIT folders and "
                             "transformers' own models load without it.")


def main(argv: list[str] | None = None) -> int:
    from emovit.error_boundary import run_guarded
    from emovit.package_names import check_package_names

    failed = run_guarded("emovit", check_package_names)  # before any command imports dataset_builder or evaluation
    if failed:
        return failed
    parser = build_parser()
    args, passed_on = parser.parse_known_args(argv)
    if getattr(args, "passes_arguments_on", False):
        args.passed_on = passed_on
    elif passed_on:
        parser.error(f"unrecognized arguments: {' '.join(passed_on)}")
    return run_guarded(f"emovit {args.command}", lambda: args.handler(args), debug=args.debug)
