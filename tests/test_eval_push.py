"""`emovit push`: a model folder reaches a (loopback) Hub repository byte for byte, by create_repo + upload_folder."""

import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import hub_env, repo_folder, running_hub

EMOVIT = [sys.executable, "-m", "emovit"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A saved tiny EmoVIT (weights, processor, code files), its evaluated card, and a trainer checkpoint folder."""
    from evaluation.model_card import update_model_card
    from modeling_emovit.testing import tiny_emovit

    folder = tmp_path_factory.mktemp("emovit-tiny")
    model, processor = tiny_emovit("llama")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    results = {"data": "emovit/emoset", "label_space": "emoset", "config": "categorical", "split": "test",
               "mode": "rank", "metrics": {"accuracy": 0.625}}
    update_model_card(folder, [results], base_model="Salesforce/instructblip-vicuna-7b", datasets="emovit/emoset")
    (folder / "checkpoint-5").mkdir()
    (folder / "checkpoint-5" / "optimizer.pt").write_bytes(b"trainer state, not part of the model")
    return folder


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_push_uploads_model_processor_code_and_card_byte_for_byte(model_dir, tmp_path):
    with running_hub(tmp_path / "hub") as (endpoint, storage):
        done = subprocess.run([*EMOVIT, "push", str(model_dir), "--repo-id", "someone/emovit-tiny", "--private"],
                              env=hub_env(endpoint), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == f"{endpoint}/someone/emovit-tiny"
        uploaded = files_of(repo_folder(storage, "someone/emovit-tiny"))

    expected = {path: data for path, data in files_of(model_dir).items() if not path.startswith("checkpoint-")}
    assert uploaded == expected
    assert {"config.json", "model.safetensors", "processor_config.json", "modeling_emovit.py", "README.md",
            "qformer_tokenizer/tokenizer.json"} <= set(uploaded)


def test_push_refuses_a_folder_without_a_processor(tmp_path, capsys):
    from emovit.cli import main

    folder = tmp_path / "weights-only"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert main(["push", str(folder), "--repo-id", "someone/x"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"emovit push: {folder}: the model folder has no processor (processor_config.json), which pushing needs; "
        f"save it there with processor.save_pretrained({str(folder)!r})."
    )


def test_push_with_a_refused_token_is_one_sentence_naming_the_login(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "processor_config.json").write_text("{}")
    with running_hub(tmp_path / "hub") as (endpoint, storage):
        done = subprocess.run([*EMOVIT, "push", str(folder), "--repo-id", "someone/emovit-tiny"],
                              env=hub_env(endpoint, HF_TOKEN="hf_revoked"), capture_output=True, text=True, timeout=120)
        assert not repo_folder(storage, "someone/emovit-tiny").exists()
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "someone/emovit-tiny (HTTP 401" in done.stderr and "`hf auth login` or set HF_TOKEN" in done.stderr
