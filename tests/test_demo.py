"""Specification of `emovit demo`: every stage runs, its outputs parse, and an interrupted run resumes."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from generation_fixtures import pairs_reply
from huggingface_hub import ModelCard
from openai_server import running_openai_server

DEMO = [sys.executable, "-m", "emovit", "demo", "--steps", "6", "--base-steps", "4", "--images-per-emotion", "4", "2",
        "--val-images-per-emotion", "2"]

LOAD_WITHOUT_PACKAGE = """
import importlib.abc, sys
class BlockProjectPackages(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"modeling_emovit", "emovit", "dataset_builder", "evaluation"}:
            raise ImportError(name)
sys.meta_path.insert(0, BlockProjectPackages())
from transformers import AutoModelForImageTextToText, AutoProcessor
AutoModelForImageTextToText.from_pretrained(sys.argv[1], trust_remote_code=True)
AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)
print("loaded")
"""


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    result = subprocess.run(DEMO + ["--out", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout


@pytest.mark.slow
def test_demo_runs_every_stage_and_prints_the_summary(demo_output):
    out, stdout = demo_output
    state = json.loads((out / "demo_state.json").read_text())
    assert list(state) == ["sample", "instructions", "dataset", "base", "eval_base_rank", "eval_base_generate",
                           "emovit", "eval_emovit_rank", "eval_emovit_generate"]
    assert state["sample"] == {"train": 32, "test": 16, "val": 16}
    assert state["instructions"]["done"] == 64 and state["instructions"]["failed"] == 0  # 32 images x 2 tasks
    assert "rank acc" in stdout and "emovit" in stdout
    for name, folder in (("eval_base_rank", "base-rank"), ("eval_emovit_generate", "emovit-generate")):
        rows = [json.loads(line) for line in (out / "eval" / folder / "predictions.jsonl").read_text().splitlines()]
        assert len(rows) == state["sample"]["test"]  # every test image, once
        assert state[name]["accuracy"] == pytest.approx(sum(r["prediction"] == r["reference"] for r in rows) / len(rows))
    results = json.loads((out / "eval" / "emovit-rank" / "results.json").read_text())
    assert results["metrics"]["accuracy"] == state["eval_emovit_rank"]["accuracy"]


@pytest.mark.slow
def test_demo_calibrates_rank_probabilities_on_its_held_out_validation_split(demo_output):
    out, stdout = demo_output
    calibration = json.loads((out / "eval" / "emovit-rank" / "results.json").read_text())["calibration"]
    assert calibration["fitted_on"] == "validation (validation, 16 images)"
    assert calibration["before"]["accuracy"] == calibration["after"]["accuracy"] or calibration["bias_kept"]
    validation_ids = {json.loads(line)["id"] for line in
                      (out / "eval" / "emovit-rank" / "calibration" / "predictions.jsonl").read_text().splitlines()}
    test_ids = {json.loads(line)["id"] for line in
                (out / "eval" / "emovit-rank" / "predictions.jsonl").read_text().splitlines()}
    train = json.loads((out / "emoset" / "train.json").read_text())
    assert len(validation_ids) == 16 and not validation_ids & test_ids
    assert not {Path(image).stem for _, image, _ in train} & validation_ids  # never trained on
    assert f"{calibration['after']['ece']:.3f}" in stdout and "held-out validation" in stdout
    assert json.loads((out / "emovit" / "config.json").read_text())["emotion_calibration"]["temperature"] == (
        calibration["temperature"])
    assert "## Calibration" in ModelCard.load(out / "emovit" / "README.md").text


@pytest.mark.slow
def test_demo_model_loads_without_the_package_and_its_card_has_a_model_index(demo_output):
    out, _ = demo_output
    result = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_PACKAGE, str(out / "emovit")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "loaded" in result.stdout, result.stderr[-2000:]
    card = ModelCard.load(out / "emovit" / "README.md")
    assert card.data.eval_results and card.data.library_name == "transformers"


@pytest.mark.slow
def test_rerun_keeps_finished_stages(demo_output):
    out, _ = demo_output
    result = subprocess.run(DEMO + ["--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("done in an earlier run, kept") == 9


@pytest.mark.slow
def test_demo_with_grpo_adds_the_rl_stage_to_a_finished_demo(demo_output, tmp_path):
    finished = tmp_path / "run"
    shutil.copytree(demo_output[0], finished)
    result = subprocess.run(DEMO + ["--out", str(finished), "--grpo-steps", "4", "2"], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("done in an earlier run, kept") == 9  # only the RL stage's three stages ran
    state = json.loads((finished / "demo_state.json").read_text())
    assert list(state)[-3:] == ["grpo", "eval_cold_start_reasoning", "eval_grpo_reasoning"]
    history = json.loads((finished / "grpo" / "trainer_state.json").read_text())["log_history"]
    assert history[-1]["step"] == 2 and state["grpo"]["last_reward"] == [e["reward"] for e in history if "reward" in e][-1]
    assert (finished / "grpo" / "cold-start" / "config.json").is_file()
    for name, folder in (("eval_cold_start_reasoning", "cold-start-reasoning"), ("eval_grpo_reasoning", "grpo-reasoning")):
        rows = [json.loads(line) for line in (finished / "eval" / folder / "predictions.jsonl").read_text().splitlines()]
        assert len(rows) == state["sample"]["test"]
        assert state[name]["format_compliance"] == pytest.approx(sum(bool(r["well_formed"]) for r in rows) / len(rows))
        stated = {row["confidence"] for row in rows if row["confidence"] is not None}
        auroc = state[name]["verbalised_auroc"]  # exactly 0.5 when every answer states the same number
        assert auroc is None or (auroc == 0.5) == (len(stated) == 1)
    assert "RL stage (recipes/tiny-vlm/grpo.yaml" in result.stdout and f"grpo_model: {finished / 'grpo'}" in result.stdout


def test_demo_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    result = subprocess.run(DEMO + ["--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "not an emovit demo folder" in result.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


@pytest.mark.slow
def test_demo_generates_instructions_through_an_openai_compatible_server(tmp_path):
    with running_openai_server(respond=pairs_reply) as (base_url, stats):
        result = subprocess.run(
            DEMO + ["--out", str(tmp_path / "run"), "--images-per-emotion", "1", "1", "--base-url", base_url],
            capture_output=True, text=True, timeout=600,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((tmp_path / "run" / "demo_state.json").read_text())
    assert state["instructions"] == {"done": 16, "failed": 0}  # 8 images x 2 tasks, all answered by the server
    assert stats.requests == 16
    generated = [json.loads(line) for line in (tmp_path / "run" / "generations.jsonl").read_text().splitlines()]
    assert {row["backend"] for row in generated} == {"openai"}


def test_demo_with_the_openai_backend_and_no_key_says_so_before_any_stage(tmp_path):
    result = subprocess.run(DEMO + ["--out", str(tmp_path / "run"), "--backend", "openai"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "OPENAI_API_KEY" in result.stderr
    assert not (tmp_path / "run" / "demo_state.json").exists()
