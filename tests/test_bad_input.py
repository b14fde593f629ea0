"""Every entry point on hostile input: exit code 2, one sentence on stderr (no traceback), nothing written or lost.

The table runs each command of `emovit` and `recipes/sft.py` in-process through its error boundary (`main`) on a
folder it builds first, and compares the whole folder before and after, so that a command which writes a partial
output, or damages its input, fails the test. Two runs in a child process check the same through the real entry
points, and that EMOVIT_DEBUG=1 brings the traceback back.
"""

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from dataset_trees import config_folder, emoset_tree, png_bytes, save_image, write_split
from train_helpers import REPO, TINY_RECIPE, damaged_copy, save_tiny_emovit, write_dataset

from emovit.cli import main as emovit_main
from emovit.training import sft


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_tiny_emovit(tmp_path_factory.mktemp("model"))


# ----- inputs, each made inside the test's folder -----

def data_folder(tmp: Path) -> Path:
    """A dataset folder named after the test: `datasets` caches a local folder by its name and layout, so two
    folders both called "data" with the same configs would be served one cache."""
    return tmp / f"data-{tmp.name}"


def emoset(tmp: Path, split_bytes: bytes | None = None, entries=None) -> Path:
    root = tmp / "emoset"
    emoset_tree(root, per_emotion=1)
    if entries is not None:
        write_split(root, "train", entries)
    if split_bytes is not None:
        (root / "train.json").write_bytes(split_bytes)
    return root


def damaged_model(tmp: Path, model: Path, damage: str) -> Path:
    return damaged_copy(model, tmp / "model", damage)


def lavis_file(tmp: Path, content: str) -> Path:
    """A LAVIS checkpoint holding the query tokens (as the release saves them), whole, truncated or empty."""
    path = tmp / "emovit.pth"
    torch.save({"model": {"query_tokens": torch.zeros(1, 4, 32)}}, path)
    whole = path.read_bytes()
    path.write_bytes({"whole": whole, "truncated": whole[: len(whole) // 2], "empty": b""}[content])
    return path


def evaluate(tmp: Path, model: Path, garbled_run_json: bool = False) -> list[str]:
    """`emovit eval` on a two-image split; with `garbled_run_json`, into an output of an earlier run whose run.json
    was damaged."""
    data = config_folder(data_folder(tmp), "categorical", "test", {
        "id": ["a", "b"], "image": [{"bytes": png_bytes((200, 30, 30)), "path": None}] * 2,
        "emotion": ["anger", "awe"], "label_space": ["emoset"] * 2})
    if garbled_run_json:
        (tmp / "out").mkdir()
        (tmp / "out" / "predictions.jsonl").write_text('{"id": "a", "paraphrase": 0, "prediction": "awe"}\n')
        (tmp / "out" / "run.json").write_bytes(b'{"model": "\xff')
    return ["eval", "--model", str(model), "--data", str(data), "--out", str(tmp / "out")]


def build(root: Path, tmp: Path, source: str = "emoset", *extra: str) -> list[str]:
    return ["data", "build", "--source", source, "--root", str(root), "--out", str(tmp / "out"), *extra]


def generate(root: Path, tmp: Path, *extra: str) -> list[str]:
    return ["data", "generate", "--root", str(root), "--backend", "rules", "--no-progress", "--out",
            str(tmp / "g.jsonl"), *extra]


def text_file(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def fi_with_latin1_list(tmp: Path) -> Path:
    save_image(tmp / "fi" / "emotion_dataset" / "awe" / "1.jpg")
    text_file(tmp / "fi" / "train.txt", "awe/1.jpg awe\nsch\xf6n/2.jpg awe\n".encode("latin-1"))
    return tmp / "fi"


def imagefolder(tmp: Path, metadata_name: str, content: bytes) -> Path:
    save_image(tmp / "images" / "a.jpg")
    text_file(tmp / "images" / metadata_name, content)
    return tmp / "images"


def images_outside_the_root(tmp: Path) -> Path:
    save_image(tmp / "private" / "secret.jpg")
    rows = [{"file_name": "../private/secret.jpg", "label": "awe"},
            {"file_name": str(tmp / "private" / "secret.jpg"), "label": "fear", "id": "abs"}]
    (tmp / "images").mkdir()
    (tmp / "images" / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return tmp / "images"


def every_image_corrupt(tmp: Path) -> Path:
    root = emoset(tmp)
    for image in (root / "image").rglob("*.jpg"):
        image.write_bytes(b"not an image")
    return root


def recipe(tmp: Path, *extra: str, text: str | None = None) -> list[str]:
    data = write_dataset(data_folder(tmp), rows=4)
    path = tmp / "sft.yaml"
    path.write_text(text if text is not None else TINY_RECIPE.read_text())
    return ["--config", str(path), "--dataset_name", str(data), "--output_dir", str(tmp / "out"),
            "--model_name_or_path", "tiny-random", "--report_to", "none", *extra]


def free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


# (case, entry point, what the sentence says, argv made in the test's folder: `lambda tmp, model: [...]`)
CASES = [
    # emovit data build: annotation and list files of the wrong encoding or shape, paths leading out, bad images
    ("build, EmoSet split not UTF-8", "data", "train.json: not UTF-8 text",
     lambda t, m: build(emoset(t, b"\xff\xfe[\x00"), t)),
    ("build, EmoSet split is a number", "data", "train.json: expected a JSON list",
     lambda t, m: build(emoset(t, b"5"), t)),
    ("build, EmoSet split of numbers", "data", "(skipped 1 malformed split entry)",
     lambda t, m: build(emoset(t, b"[[1, 2, 3]]"), t)),
    ("build, EmoSet null annotation paths", "data", "(skipped 1 malformed split entry)",
     lambda t, m: build(emoset(t, entries=[["awe", "image/awe/awe_00200.jpg", None]]), t)),
    ("build, FI list not UTF-8", "data", "train.txt: not UTF-8 text",
     lambda t, m: build(fi_with_latin1_list(t), t, "fi")),
    ("build, metadata.csv not UTF-8", "data", "metadata.csv: not UTF-8 text",
     lambda t, m: build(imagefolder(t, "metadata.csv", b"file_name,label\na.jpg,\xe9motion\n"), t, "imagefolder")),
    ("build, metadata.jsonl of non-text fields", "data", "(skipped 1 metadata row with a non-text file_name",
     lambda t, m: build(imagefolder(t, "metadata.jsonl", b'{"file_name": 5, "label": ["awe"]}\n'), t, "imagefolder")),
    ("build, every image outside --root", "data", "(skipped 2 path outside --root",
     lambda t, m: build(images_outside_the_root(t), t, "imagefolder")),
    ("build, every image corrupt", "data", "no image of split 'train' could be read",
     lambda t, m: build(every_image_corrupt(t), t)),
    ("build, --generations is a folder", "data", "generations file not found",
     lambda t, m: build(emoset(t), t, "emoset", "--generations", str(t))),
    # emovit data generate / caption / export / push
    ("generate, --captions not UTF-8", "data", "c.jsonl: line 1 is not a JSON object",
     lambda t, m: generate(emoset(t), t, "--captions", str(text_file(t / "c.jsonl", b'{"id": "\xff"}\n')))),
    ("generate, --captions line without a caption", "data", "c.jsonl: a line lacks a text `id` or `caption`",
     lambda t, m: generate(emoset(t), t, "--captions", str(text_file(t / "c.jsonl", b'{"id": "a", "text": 1}\n')))),
    ("generate, --prices garbled", "data", "p.json: not a readable JSON price table",
     lambda t, m: generate(emoset(t), t, "--prices", str(text_file(t / "p.json", b"{gpt: cheap")))),
    ("generate, EmoSet split is a number", "data", "train.json: expected a JSON list",
     lambda t, m: generate(emoset(t, b"5"), t)),
    ("caption, truncated model weights", "data", "model: a .safetensors weights file is truncated or corrupt",
     lambda t, m: ["data", "caption", "--root", str(emoset(t)), "--model",
                   str(damaged_model(t, m, "truncated weights")), "--no-progress", "--out", str(t / "captions.jsonl")]),
    ("export, a folder that is not a built dataset", "data", "emoset: cannot read config 'all', split 'train'",
     lambda t, m: ["data", "export", str(emoset(t)), "--json", str(t / "out.json")]),
    ("data push, offline", "data", "pushing to me/data: the Hugging Face Hub cannot be reached with offline mode on",
     lambda t, m: ["data", "push", str(text_file(t / "README.md", b"---\n---\n").parent), "--repo-id", "me/data"]),
    # emovit eval / convert / serve / push / train cache-features / demo
    ("eval, truncated weights", "eval", "model: a .safetensors weights file is truncated or corrupt",
     lambda t, m: evaluate(t, damaged_model(t, m, "truncated weights"))),
    ("eval, config field of the wrong type", "eval", "model: invalid config.json (Validation error for field",
     lambda t, m: evaluate(t, damaged_model(t, m, "config field of the wrong type"))),
    ("eval, config without text_config", "eval", "model: config.json lacks text_config",
     lambda t, m: evaluate(t, damaged_model(t, m, "config without text_config"))),
    ("eval, garbled run.json beside predictions", "eval", "run.json: garbled",
     lambda t, m: evaluate(t, m, garbled_run_json=True)),
    ("convert, truncated checkpoint", "convert", "emovit.pth: not a readable PyTorch checkpoint",
     lambda t, m: ["convert", "--lavis", str(lavis_file(t, "truncated")), "--base", str(m), "--out", str(t / "out")]),
    ("convert, empty checkpoint", "convert", "emovit.pth: not a readable PyTorch checkpoint",
     lambda t, m: ["convert", "--lavis", str(lavis_file(t, "empty")), "--base", str(m), "--out", str(t / "out")]),
    ("convert, --base that does not exist", "convert", "no-base: neither an existing local folder nor a valid Hub id",
     lambda t, m: ["convert", "--lavis", str(lavis_file(t, "whole")), "--base", str(t / "no-base"),
                   "--out", str(t / "out")]),
    ("serve, truncated weights", "serve", "model: a .safetensors weights file is truncated or corrupt",
     lambda t, m: ["serve", str(damaged_model(t, m, "truncated weights")), "--port", free_port(), "--device", "cpu"]),
    ("push, offline", "push", "pushing to me/model: the Hugging Face Hub cannot be reached with offline mode on",
     lambda t, m: ["push", str(damaged_model(t, m, "none")), "--repo-id", "me/model"]),
    ("train cache-features, truncated weights", "train", "model: a .safetensors weights file is truncated or corrupt",
     lambda t, m: ["train", "cache-features", "--model", str(damaged_model(t, m, "truncated weights")),
                   "--dataset", str(write_dataset(data_folder(t), rows=2)), "--config", "categorical",
                   "--out", str(t / "features")]),
    ("demo, --out a folder it did not write", "demo", "exists and is not an emovit demo folder",
     lambda t, m: ["demo", "--out", str(text_file(t / "notes.txt", b"keep me").parent)]),
    # recipes/sft.py
    ("sft, max_steps: four", "sft", "sft.yaml: --max_steps/--max-steps: invalid int value: 'four'",
     lambda t, m: recipe(t, text=TINY_RECIPE.read_text().replace("max_steps: 60", "max_steps: four"))),
    ("sft, recipe not YAML", "sft", "sft.yaml: not valid YAML", lambda t, m: recipe(t, text="max_steps: [60\n")),
    ("sft, resume with no checkpoint", "sft", "holds no checkpoint-N folder to resume from",
     lambda t, m: recipe(t, "--resume_from_checkpoint", "true")),
    ("sft, resume from a missing folder", "sft", "checkpoint-3: no such checkpoint folder",
     lambda t, m: recipe(t, "--resume_from_checkpoint", str(t / "checkpoint-3"))),
    ("sft, truncated model weights", "sft", "model: a .safetensors weights file is truncated or corrupt",
     lambda t, m: recipe(t, "--model_name_or_path", str(damaged_model(t, m, "truncated weights")))),
    ("sft, config field of the wrong type", "sft", "model: invalid config.json (Validation error for field",
     lambda t, m: recipe(t, "--model_name_or_path", str(damaged_model(t, m, "config field of the wrong type")))),
]


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under `folder` with a hash of its bytes: equal snapshots mean nothing was written or lost."""
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            for path in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("case, entry, says, make_argv", CASES, ids=[case for case, *_ in CASES])
def test_hostile_input_exits_2_with_one_sentence_and_changes_nothing(case, entry, says, make_argv, model, tmp_path,
                                                                     capsys):
    argv = make_argv(tmp_path, model)
    before = snapshot(tmp_path)
    capsys.readouterr()
    code = sft.main(argv) if entry == "sft" else emovit_main(argv)
    error = capsys.readouterr().err
    assert code == 2, error[-2000:]
    assert "Traceback" not in error
    last = error.strip().splitlines()[-1]  # after any progress bars or library warnings
    assert last.startswith("sft: " if entry == "sft" else f"emovit {entry}: ") and last.endswith("."), last
    assert says in last
    assert snapshot(tmp_path) == before


def _child(args: list[str], **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **env}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=240, cwd=REPO,
                          env=environment)


def test_the_real_entry_points_answer_in_one_sentence_and_debug_shows_the_traceback(tmp_path):
    root = emoset(tmp_path, b"\xff\xfe[\x00")
    command = ["-m", "emovit", "data", "build", "--source", "emoset", "--root", str(root), "--out", str(tmp_path / "o")]
    quiet = _child(command)
    assert quiet.returncode == 2 and quiet.stderr.strip().splitlines() == [
        f"emovit data: {root / 'train.json'}: not UTF-8 text (byte 0xff at offset 0) (EMOVIT_DEBUG=1 shows the "
        "traceback)."]
    loud = _child(command, EMOVIT_DEBUG="1")
    assert loud.returncode == 1 and "Traceback" in loud.stderr and "UnicodeDecodeError" in loud.stderr
    flagged = _child(["-m", "emovit", "--debug", *command[2:]])
    assert flagged.returncode == 1 and "UnicodeDecodeError" in flagged.stderr

    broken = tmp_path / "sft.yaml"
    broken.write_text(TINY_RECIPE.read_text().replace("max_steps: 60", "max_steps: four"))
    recipe_run = _child([str(REPO / "recipes" / "sft.py"), "--config", str(broken)])
    assert recipe_run.returncode == 2 and "Traceback" not in recipe_run.stderr and "usage:" not in recipe_run.stderr
    assert recipe_run.stderr.strip().splitlines()[-1] == (
        f"sft: {broken}: --max_steps/--max-steps: invalid int value: 'four'; see `emovit train sft --help`.")
