"""`emovit` command: dispatches to functions a user can also call from Python.

Every subcommand module only builds its argparse parser at import time; heavy libraries (torch, transformers,
datasets) are imported inside the handler that needs them, so `emovit --help` answers at once.
"""

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from dataset_builder import cli as data_cli
    from emovit import commands
    from emovit.training import cli as train_cli
    from evaluation import cli as eval_cli

    parser = argparse.ArgumentParser(prog="emovit", description="EmoVIT: emotion instruction tuning on the Hugging Face stack.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_commands(subparsers)
    train_cli.add_commands(subparsers)
    data_cli.add_commands(subparsers)
    eval_cli.add_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from modeling_emovit.errors import EmoVITInputError  # after parsing: `--help` never imports transformers

    try:
        return args.handler(args) or 0
    except EmoVITInputError as error:
        print(f"emovit {args.command}: {error}", file=sys.stderr)
        return 2
