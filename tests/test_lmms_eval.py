"""The real lmms-eval (0.7.3 from PyPI, in an environment of its own: `lmms_eval_env.py`) runs the tasks `emovit export
lmms-eval` writes with the `emovit` model, and gives what `emovit eval` gives on the same folder and data.

Agreement is asked document by document, not only in the totals: in rank mode the same prediction and the same
probabilities for every image, in generate mode the same answer text; then the same accuracy, F1, ECE x100, top-label
Brier x100 and unmapped share. An EmoVIT folder goes through lmms-eval's command line (the command docs/benchmarks.md
gives); a chat-template folder (tiny LLaVA) on the FI-2 polarity view through its Python API (`simple_evaluate` with
a `TaskManager` of the exported tasks alone, which skips indexing lmms-eval's own few hundred task files). The
data is a real `emovit data build` of the EmoSet-layout sample, 16 test images; the models are tiny and random, so
generated answers name no label: the per-answer comparison is what shows the two paths decode alike.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
from dataset_trees import built_emoset_sample
from lmms_eval_env import lmms_eval_bin
from train_helpers import save_tiny_emovit, save_tiny_llava

from emovit.cli import main

pytestmark = pytest.mark.slow
BUDGET = "8"  # generate mode's max_new_tokens, in the exported task and in `emovit eval --max-new-tokens`
API_RUN = """
import json, sys
from lmms_eval import evaluator
from lmms_eval.api.instance import unwrap_generation_output
from lmms_eval.tasks import TaskManager

model, tasks, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
run = evaluator.simple_evaluate(model="emovit", model_args=f"pretrained={model}", tasks=names, batch_size=4,
                                task_manager=TaskManager(include_path=tasks, include_defaults=False), log_samples=True)
print(json.dumps({"results": run["results"], "samples": run["samples"],
                  "loglikelihood_response": unwrap_generation_output((1.5, True))[0]}, default=str))
"""


@pytest.fixture(scope="module")
def python() -> Path:
    return lmms_eval_bin() / "python"


@pytest.fixture(scope="module")
def built_data(tmp_path_factory) -> Path:
    return built_emoset_sample(tmp_path_factory.mktemp("lmms"))


@pytest.fixture(scope="module")
def tasks(built_data, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tasks") / "emovit-tasks"
    assert main(["export", "lmms-eval", str(built_data), str(folder), "--label-space", "emoset",
                 "--label-space", "fi-2", "--max-new-tokens", BUDGET]) == 0
    return folder


def lmms_eval(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "lmms_eval", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": ""})


def emovit_eval(model: Path, data: Path, out: Path, *extra: str) -> tuple[dict, dict]:
    """(results.json's metrics, predictions.jsonl rows by image id) of one `emovit eval` run."""
    assert main(["eval", "--model", str(model), "--data", str(data), "--out", str(out), "--batch-size", "4",
                 *extra]) == 0
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return json.loads((out / "results.json").read_text())["metrics"], {row["id"]: row for row in rows}


def image_ids_in_order(data: Path) -> list[str]:
    """Image ids in document order (lmms-eval's doc_id is the row's position in the split)."""
    from datasets import load_dataset

    return load_dataset(str(data), "categorical", split="test")["id"]


def assert_same_rank_results(lmms: dict, samples: list[dict], metrics: dict, rows: dict, ids: list[str]) -> None:
    for sample in samples:
        item, row = sample["accuracy"], rows[ids[sample["doc_id"]]]
        assert item["prediction"] == row["prediction"] and item["reference"] == row["reference"]
        assert item["probabilities"] == pytest.approx(list(row["scores"].values()), rel=1e-6)
    assert len(samples) == len(rows) == 16
    for metric in ("accuracy", "macro_f1", "weighted_f1"):
        assert lmms[f"{metric},none"] == pytest.approx(metrics[metric], abs=1e-12), metric
    for metric in ("ece_10_bins_x100", "top_label_brier_x100"):
        assert lmms[f"{metric},none"] == pytest.approx(metrics[metric], rel=1e-6), metric


def test_the_lmms_eval_command_scores_an_emovit_folder_as_emovit_eval_does_in_rank_and_generate_mode(
        python, built_data, tasks, tmp_path):
    model = save_tiny_emovit(tmp_path / "model", seed=0)
    done = lmms_eval(python, "--model", "emovit", "--model_args", f"pretrained={model}", "--include_path", str(tasks),
                     "--tasks", "emovit_emoset,emovit_emoset_generate", "--batch_size", "4",
                     "--output_path", str(tmp_path / "lmms"), "--log_samples", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "|emovit_emoset_generate|" in done.stdout and "|ece_10_bins_x100" in done.stdout  # lmms-eval's table
    [results_file] = (tmp_path / "lmms").rglob("*_results.json")
    lmms = json.loads(results_file.read_text())["results"]
    samples = {task: [json.loads(line) for line in next((tmp_path / "lmms").rglob(f"*_samples_{task}.jsonl")).open()]
               for task in ("emovit_emoset", "emovit_emoset_generate")}
    ids = image_ids_in_order(built_data)

    metrics, rows = emovit_eval(model, built_data, tmp_path / "rank", "--mode", "rank")
    assert_same_rank_results(lmms["emovit_emoset"], samples["emovit_emoset"], metrics, rows, ids)

    metrics, rows = emovit_eval(model, built_data, tmp_path / "generate", "--mode", "generate",
                                "--max-new-tokens", BUDGET)
    generated = {ids[sample["doc_id"]]: sample["accuracy"]["answer"] for sample in samples["emovit_emoset_generate"]}
    assert generated == {image: row["answer"] for image, row in rows.items()}
    assert any(generated.values())  # answers were generated, not left empty
    for metric in ("accuracy", "macro_f1", "unmapped_rate"):
        assert lmms["emovit_emoset_generate"][f"{metric},none"] == metrics[metric], metric


@pytest.fixture(scope="module")
def chat_template_run(python, tasks, tmp_path_factory) -> tuple[Path, dict]:
    """(the tiny LLaVA folder, what lmms-eval's Python API returned for its FI-2 rank task)."""
    work = tmp_path_factory.mktemp("llava")
    model = save_tiny_llava(work / "model")
    done = subprocess.run([str(python), "-c", API_RUN, str(model), str(tasks), "emovit_fi_2"], cwd=work,
                          capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    return model, json.loads(done.stdout.strip().splitlines()[-1])


def test_a_chat_template_folder_scores_the_fi_2_view_in_lmms_eval_as_in_emovit_eval(chat_template_run, built_data,
                                                                                     tmp_path):
    model, run = chat_template_run
    metrics, rows = emovit_eval(model, built_data, tmp_path / "fi2", "--mode", "rank", "--label-space", "fi-2")
    assert {row["reference"] for row in rows.values()} == {"negative", "positive"}
    assert_same_rank_results(run["results"]["emovit_fi_2"], run["samples"]["emovit_fi_2"], metrics, rows,
                             image_ids_in_order(built_data))


def test_pin_lmms_eval_hands_loglikelihood_responses_to_process_results_as_their_str(chat_template_run):
    """lmms-eval 0.7.3 (`api/instance.py` `unwrap_generation_output`) stringifies a `(loss, is_greedy)` response before
    `process_results` sees it; `EmotionTask.process_rank_results` reads the str back. If this changes, the tuple
    path there is the one taken."""
    assert chat_template_run[1]["loglikelihood_response"] == "(1.5, True)"


def test_a_folder_that_is_neither_emovit_nor_chat_template_stops_lmms_eval_with_one_sentence_and_exit_2(
        python, tasks, tmp_path):
    """Through lmms-eval's `simple_evaluate` (the command line calls it the same way, inside an `except Exception` that
    would print a traceback and exit 0: the refusal is a SystemExit, which passes it)."""
    from modeling_emovit.testing_vlms import tiny_vlm

    model, processor = tiny_vlm("llava")
    processor.chat_template = None  # a LLaVA processor without a template: no way to ask EmoVIT's instruction
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    done = subprocess.run([str(python), "-c", API_RUN, str(tmp_path / "model"), str(tasks), "emovit_emoset"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1] == (
        f"lmms-eval --model emovit: {tmp_path / 'model'}: its processor (LlavaProcessor) has no chat template and is "
        "not EmoVIT's, so there is no way to put EmoVIT's instruction to the model; save the processor with a chat "
        "template (processor.chat_template = ...).")
    assert "Traceback" not in done.stderr
