"""`emovit` command: dispatches to functions a user can also call from Python.

Each subcommand module only builds its argparse parser at import time; heavy libraries (torch, transformers,
datasets) are imported inside the handler that needs them, so `emovit --help` answers at once. `main` is the
error boundary of every command: bad input (`EmoVITInputError`) is one sentence on stderr and exit code 2.
"""

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from . import data, demo, evaluate, model, train

    parser = argparse.ArgumentParser(prog="emovit", description="EmoVIT: emotion instruction tuning on the Hugging Face stack.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for commands in (model, demo, train, data, evaluate):
        commands.add_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from modeling_emovit.errors import EmoVITInputError

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except EmoVITInputError as error:
        print(f"emovit {args.command}: {error}", file=sys.stderr)
        return 2
