"""The `emovit` command itself: its version, and help that describes each command with its defaults."""

import pytest

from emovit import __version__
from emovit.cli import build_parser


def test_version_is_the_packages(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"emovit {__version__}"


@pytest.mark.parametrize("command, described, defaults", [
    (["serve"], "a request without an image is answered with HTTP 400", ["(default: 127.0.0.1)", "(default: 8000)", "(default: auto)"]),
    (["convert"], "torch.load(weights_only=True)", ["(default: False)"]),
    (["data", "sample"], "layout of EmoSet-118K", ["(default: (100, 25))", "(default: 0)"]),
])
def test_help_describes_the_command_and_shows_its_defaults(command, described, defaults, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert described in text and all(default in text for default in defaults)
