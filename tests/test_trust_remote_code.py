"""Loading never implies trust: a model folder's own code runs only with `--trust-remote-code` (or
`trust_remote_code=True`), at every entry point that loads a model.

The folder is laid out as transformers documents custom models (huggingface.co/docs/transformers/custom_models):
config.json with a `model_type` transformers does not know and an `auto_map` naming classes in the folder's own
`.py` file. That file, when imported, appends to a marker file outside the folder: the marker is the proof that the
code ran. Without the flag every entry point must exit 2 with one sentence naming the folder and the flag, the
marker absent; with it, the code runs (so the marker is a real witness); EmoVIT folders (whose saved code this
package replaces with its own classes) and transformers' own models load without it.
"""

import contextlib
import json
from pathlib import Path

import pytest
import torch
from dataset_trees import config_folder, emoset_tree, png_bytes
from serving_helpers import free_port
from train_helpers import TINY_RECIPE, save_tiny_emovit, write_dataset

from emovit.cli import main as emovit_main
from emovit.training import sft
from modeling_emovit.errors import EmoVITInputError
from modeling_emovit.loading import load_model_and_processor, model_type_of

TRUST_FLAG = "--trust-remote-code"


def folder_with_its_own_code(tmp: Path) -> tuple[Path, Path]:
    """(model folder, marker file): a custom model whose configuration module writes the marker when imported. The
    folder is named after the test: transformers caches remote modules by folder name."""
    folder, marker = tmp / f"custom-{tmp.name}", tmp / "marker.txt"
    folder.mkdir()
    auto_map = {"AutoConfig": "configuration_marker.MarkerConfig",
                "AutoModelForImageTextToText": "configuration_marker.MarkerModel",
                "AutoProcessor": "configuration_marker.MarkerProcessor"}
    (folder / "config.json").write_text(json.dumps({"model_type": "marker-vlm", "architectures": ["MarkerModel"],
                                                    "auto_map": auto_map}))
    (folder / "processor_config.json").write_text(json.dumps({"processor_class": "MarkerProcessor",
                                                              "auto_map": {"AutoProcessor": auto_map["AutoProcessor"]}}))
    (folder / "configuration_marker.py").write_text(f"open({str(marker)!r}, 'a').write('ran\\n')\n")
    return folder, marker


def eval_data(folder: Path) -> Path:
    """A built dataset's categorical test split of two images, as `emovit eval` reads it."""
    return config_folder(folder, "categorical", "test", {
        "id": ["a", "b"], "image": [{"bytes": png_bytes((200, 30, 30)), "path": None}] * 2,
        "emotion": ["anger", "awe"], "label_space": ["emoset"] * 2})


def caption_root(root: Path) -> Path:
    emoset_tree(root, per_emotion=1)
    return root


def lavis_checkpoint(tmp: Path) -> Path:
    path = tmp / "emovit.pth"
    torch.save({"model": {"query_tokens": torch.zeros(1, 4, 32)}}, path)
    return path


def recipe(tmp: Path, model: Path, *extra: str) -> list[str]:
    path = tmp / "sft.yaml"
    path.write_text(TINY_RECIPE.read_text())
    return ["--config", str(path), "--dataset_name", str(write_dataset(tmp / "data", rows=2)), "--output_dir",
            str(tmp / "out"), "--model_name_or_path", str(model), "--report_to", "none", *extra]


# (entry point, argv for a model folder in the test's folder)
ENTRY_POINTS = [
    ("eval", lambda t, m: ["eval", "--model", str(m), "--data", str(eval_data(t / "data")), "--out", str(t / "out")]),
    ("data", lambda t, m: ["data", "caption", "--root", str(caption_root(t / "emoset")), "--model", str(m),
                           "--no-progress", "--out", str(t / "captions.jsonl")]),
    ("train", lambda t, m: ["train", "cache-features", "--model", str(m), "--dataset",
                            str(write_dataset(t / "data", rows=2)), "--config", "categorical", "--out", str(t / "f")]),
    ("serve", lambda t, m: ["serve", str(m), "--port", str(free_port()), "--device", "cpu"]),
    ("sft", lambda t, m: recipe(t, m)),
]


def run(entry: str, argv: list[str]) -> int:
    return sft.main(argv) if entry == "sft" else emovit_main(argv)


@pytest.mark.parametrize("entry, make_argv", ENTRY_POINTS, ids=[entry for entry, _ in ENTRY_POINTS])
def test_a_folders_own_code_does_not_run_without_the_flag(entry, make_argv, tmp_path, capsys):
    folder, marker = folder_with_its_own_code(tmp_path)
    code = run(entry, make_argv(tmp_path, folder))
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and not marker.exists(), last
    assert last == (f"{'sft' if entry == 'sft' else f'emovit {entry}'}: {folder}: this model names its own Python "
                    f"code to run (auto_map), which happens only with {TRUST_FLAG} (trust_remote_code=True in "
                    f"Python); pass it only for a model you trust.")


@pytest.mark.parametrize("entry, make_argv", ENTRY_POINTS, ids=[entry for entry, _ in ENTRY_POINTS])
def test_with_the_flag_the_folders_code_runs(entry, make_argv, tmp_path):
    folder, marker = folder_with_its_own_code(tmp_path)
    with contextlib.suppress(Exception):  # the marker module defines no classes: loading fails after it ran
        run(entry, [*make_argv(tmp_path, folder), TRUST_FLAG])
    assert marker.read_text() == "ran\n"


def test_convert_reads_a_base_through_emovits_classes_only(tmp_path, capsys):
    """`emovit convert` never runs a base folder's code (EmoVIT's classes read it), so it has no flag to give."""
    folder, marker = folder_with_its_own_code(tmp_path)
    code = emovit_main(["convert", "--lavis", str(lavis_checkpoint(tmp_path)), "--base", str(folder),
                        "--out", str(tmp_path / "out")])
    assert code == 2 and not marker.exists() and not (tmp_path / "out").exists()
    assert f"{folder}: config.json has model_type 'marker-vlm'" in capsys.readouterr().err


def test_python_loaders_need_trust_remote_code_true(tmp_path):
    folder, marker = folder_with_its_own_code(tmp_path)
    for load in (load_model_and_processor, model_type_of):
        with pytest.raises(EmoVITInputError, match="only with --trust-remote-code"):
            load(str(folder))
    assert not marker.exists()
    with contextlib.suppress(Exception):
        model_type_of(str(folder), trust_remote_code=True)
    assert marker.read_text() == "ran\n"


def test_a_known_model_whose_processor_names_its_own_code_is_refused_too(tmp_path):
    """A stock config (EmoVIT's) with a tokenizer of its own (tokenizer_config.json `auto_map`): transformers
    would ask on a terminal (or refuse); the loaders refuse in one sentence."""
    folder = save_tiny_emovit(tmp_path / f"model-{tmp_path.name}")
    marker = tmp_path / "marker.txt"
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    settings.update(tokenizer_class="MarkerTokenizer", auto_map={"AutoTokenizer": [None, "tokenization_marker.Marker"]})
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    (folder / "tokenization_marker.py").write_text(f"open({str(marker)!r}, 'a').write('ran\\n')\n")
    with pytest.raises(EmoVITInputError, match=f"{folder}: this model names its own Python code"):
        load_model_and_processor(str(folder))
    assert not marker.exists()


def test_emovit_and_stock_folders_load_without_the_flag_and_without_their_saved_code(tmp_path):
    from modeling_emovit.testing_vlms import tiny_vlm

    emovit = save_tiny_emovit(tmp_path / "emovit")
    assert "auto_map" in json.loads((emovit / "config.json").read_text())  # its saved code is named, yet not run
    model, processor = load_model_and_processor(str(emovit))
    assert type(model).__module__ == "modeling_emovit.modeling_emovit"
    assert type(processor).__module__ == "modeling_emovit.processing_emovit"
    llava, llava_processor = tiny_vlm("llava")
    llava.save_pretrained(tmp_path / "llava")
    llava_processor.save_pretrained(tmp_path / "llava")
    model, _ = load_model_and_processor(str(tmp_path / "llava"))
    assert type(model).__module__.startswith("transformers.models.llava")
