"""The `emovit` command itself: its version, help that describes each command with its defaults, the arguments
`emovit train sft` hands on, and `emovit add-pipeline`."""

import argparse
import json

import pytest
from PIL import Image

from emovit import __version__
from emovit.cli import build_parser, main


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


def _commands(parser, path=()):
    """(command words, parser) for the top-level parser and every subcommand under it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from _commands(subparser, (*path, name))


def _rendered_help(parser, action) -> str:
    """One option's entry in `--help`, as argparse renders it (an option without help text renders no default)."""
    formatter = parser._get_formatter()
    formatter.add_argument(action)
    return " ".join(formatter.format_help().split())


def test_every_help_shows_the_defaults_of_optional_flags_and_none_for_required_ones():
    shown, missing, on_required = 0, [], []
    for path, parser in _commands(build_parser()):
        for action in parser._actions:
            if not action.option_strings or action.default is argparse.SUPPRESS:
                continue
            entry = _rendered_help(parser, action)
            if action.required or action.default is None:
                if "(default: None)" in entry:
                    on_required.append((path, action.dest))
            elif "default" in entry:
                shown += 1
            else:
                missing.append((path, action.dest))
    assert missing == [] and on_required == []
    assert shown >= 50  # the walk reached the flags of every command (58 on 2026-12-03)


def test_every_command_describes_itself_in_its_own_help():
    undescribed = [" ".join(path) for path, parser in _commands(build_parser()) if not parser.description]
    assert undescribed == []


def test_build_split_and_generate_backend_show_their_defaults(capsys):
    for command, default in ((["data", "build"], "(default: train)"), (["data", "generate"], "(default: openai)"),
                             (["demo"], "(default: 0)")):
        with pytest.raises(SystemExit):
            build_parser().parse_args([*command, "--help"])
        assert default in " ".join(capsys.readouterr().out.split()), command


def test_train_sft_hands_every_argument_to_the_recipe_parser(capsys):
    """`emovit train sft --help` is the recipe script's own help (TRL's parser), not an argparse usage error."""
    with pytest.raises(SystemExit) as exit_:
        main(["train", "sft", "--help"])
    text = capsys.readouterr().out
    assert exit_.value.code == 0 and "--max_prompt_length" in text and "--lr_schedule" in text
    with pytest.raises(SystemExit) as exit_:  # other commands still refuse flags they do not know
        main(["recipes", "list", "--max_steps", "2"])
    assert exit_.value.code == 2 and "unrecognized arguments: --max_steps 2" in capsys.readouterr().err


def test_add_pipeline_gives_a_stock_chat_folder_the_emotion_pipeline_and_eval_points_at_it(tmp_path, capsys):
    """A tiny LLaVA saved by transformers alone (as stock `trl sft` leaves it): transformers' `pipeline` does not know
    the task; `emovit eval` says how to add it; after `emovit add-pipeline` it loads from the folder and answers."""
    from test_chat_vlms import write_split
    from train_helpers import save_tiny_llava
    from transformers import pipeline

    folder = save_tiny_llava(tmp_path / "llava")
    with pytest.raises(KeyError, match="Unknown task image-emotion-classification"):
        pipeline("image-emotion-classification", model=str(folder), trust_remote_code=True)
    test = write_split(tmp_path / "test", "test", ["awe", "anger"], {"label_space": ["emoset"] * 2})
    assert main(["eval", "--model", str(folder), "--data", str(test), "--out", str(tmp_path / "eval")]) == 0
    printed = capsys.readouterr().out
    assert "in rank mode: every candidate answer scored" in printed
    assert f"`emovit add-pipeline {folder}` adds it" in printed

    config_before = json.loads((folder / "config.json").read_text())
    assert main(["add-pipeline", str(folder)]) == 0
    config_after = json.loads((folder / "config.json").read_text())
    assert {key: value for key, value in config_after.items() if key != "custom_pipelines"} == config_before
    classify = pipeline("image-emotion-classification", model=str(folder), trust_remote_code=True)
    emotions = classify(Image.new("RGB", (32, 32), (200, 0, 0)), candidate_labels=["awe", "anger", "fear"])
    assert sorted(entry["label"] for entry in emotions) == ["anger", "awe", "fear"]
    assert abs(sum(entry["score"] for entry in emotions) - 1) < 1e-6

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    assert main(["add-pipeline", str(adapter)]) == 2
    assert "is a LoRA adapter" in capsys.readouterr().err

    no_template = save_tiny_llava(tmp_path / "no-template")
    (no_template / "chat_template.jinja").unlink()
    assert main(["add-pipeline", str(no_template)]) == 2
    assert "has no chat template and is not EmoVIT's" in capsys.readouterr().err
    assert not (no_template / "pipeline_emovit.py").exists()
