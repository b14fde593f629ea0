"""`emovit export vlmevalkit|lmms-eval`, the polarity view FI-2, and EmoCaliber's calibration columns in rank results.

The data is a real `emovit data build` of the EmoSet-layout sample (`emovit data sample`): 16 test images, the 8
Mikels emotions. The TSV is read back as VLMEvalKit reads it (`pd.read_csv(f, sep='\\t')`, vlmeval/smp/file.py), the
task YAMLs as lmms-eval reads them (PyYAML's `full_load` with a `!function` constructor, lmms_eval/utils.py
`load_yaml_config`); the run through the real lmms-eval is `test_lmms_eval.py`.
"""

import base64
import json
from pathlib import Path

import pytest
import yaml
from dataset_trees import built_emoset_sample, config_folder, png_bytes
from train_helpers import save_tiny_emovit

from emovit.cli import main

MIKELS = ["amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness"]
EMOVIT_INSTRUCTION = (  # EmoVIT's categorical instruction as released (docs/fidelity.md): two spaces before "Predict"
    "Please select the emotion closest to the image from the following options:{} (Do not provide answers outside "
    "of the candidates options.) Please answer in the following format:  Predict emotion:"
)


@pytest.fixture(scope="module")
def built_data(tmp_path_factory) -> Path:
    return built_emoset_sample(tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_emovit(tmp_path_factory.mktemp("model"), seed=0)


def stored_rows(data: Path) -> list[dict]:
    """The built split as stored: ids, emotions and the image files' bytes, undecoded."""
    from datasets import Image, load_dataset

    rows = load_dataset(str(data), "categorical", split="test").cast_column("image", Image(decode=False))
    return [{"id": row["id"], "emotion": row["emotion"], "bytes": row["image"]["bytes"]} for row in rows]


def read_tsv(path: Path):
    import pandas as pd

    return pd.read_csv(path, sep="\t")  # VLMEvalKit's `load` of a .tsv


def test_the_vlmevalkit_tsv_reads_back_with_the_same_images_questions_and_answers(built_data, tmp_path):
    out = tmp_path / "EmoSet_test.tsv"
    assert main(["export", "vlmevalkit", str(built_data), str(out)]) == 0

    table, stored = read_tsv(out), stored_rows(built_data)
    assert list(table.columns[:4]) == ["index", "image", "question", "answer"]  # VLMEvalKit's own columns first
    assert list(table["index"]) == list(range(16))
    assert [base64.b64decode(image) for image in table["image"]] == [row["bytes"] for row in stored]
    assert set(table["question"]) == {EMOVIT_INSTRUCTION.format(", ".join(MIKELS[:-1]) + " and sadness")}
    assert list(table["answer"]) == [row["emotion"] for row in stored] and set(table["answer"]) == set(MIKELS)
    assert list(table["id"]) == [row["id"] for row in stored]
    assert set(table["category"]) == {"emoset"} and set(table["candidates"]) == {", ".join(MIKELS)}
    assert not list(tmp_path.glob("*.part"))


def test_a_polarity_view_tsv_asks_and_answers_the_polarity(built_data, tmp_path):
    out = tmp_path / "FI2.tsv"
    assert main(["export", "vlmevalkit", str(built_data), str(out), "--label-space", "fi-2"]) == 0

    table, stored = read_tsv(out), stored_rows(built_data)
    positive = {"amusement", "awe", "contentment", "excitement"}  # Mikels' positive emotions (EmoSet, FI)
    assert list(table["answer"]) == ["positive" if row["emotion"] in positive else "negative" for row in stored]
    assert set(table["question"]) == {EMOVIT_INSTRUCTION.format("negative and positive")}
    assert set(table["category"]) == {"fi-2"}


def full_load(path: Path) -> dict:
    """A task YAML as lmms-eval loads it: `!function name` tags become the names (resolved in test_lmms_eval.py)."""
    class Loader(yaml.FullLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: ("function", loader.construct_scalar(node)))
    return yaml.load(path.read_text(), Loader=Loader)


def test_lmms_eval_tasks_are_written_in_its_task_format_for_each_label_space(built_data, tmp_path):
    tasks = tmp_path / "tasks"
    assert main(["export", "lmms-eval", str(built_data), str(tasks), "--label-space", "emoset",
                 "--label-space", "fi-2"]) == 0

    assert sorted(path.name for path in tasks.iterdir()) == [
        "emovit_emoset.py", "emovit_emoset.yaml", "emovit_emoset_generate.yaml",
        "emovit_fi_2.py", "emovit_fi_2.yaml", "emovit_fi_2_generate.yaml"]
    rank, generate = full_load(tasks / "emovit_fi_2.yaml"), full_load(tasks / "emovit_fi_2_generate.yaml")
    assert rank["task"] == "emovit_fi_2" and rank["output_type"] == "multiple_choice"
    assert generate["task"] == "emovit_fi_2_generate" and generate["output_type"] == "generate_until"
    for config in (rank, generate):
        assert config["dataset_path"] == "parquet" and config["test_split"] == "test"
        [parquet] = config["dataset_kwargs"]["data_files"]["test"]
        assert Path(parquet).is_absolute() and Path(parquet).is_relative_to(built_data.resolve())
        assert config["doc_to_visual"] == ("function", "emovit_fi_2.doc_to_visual")
        assert config["metadata"]["label_space"] == "fi-2"
    assert rank["doc_to_choice"] == ("function", "emovit_fi_2.doc_to_choice") and rank["target_delimiter"] == ""
    assert rank["doc_to_target"] == ("function", "emovit_fi_2.doc_to_target")  # the reference's choice index
    assert generate["doc_to_target"] == ("function", "emovit_fi_2.reference")  # the reference label
    assert [m["metric"] for m in rank["metric_list"]] == ["accuracy", "macro_f1", "weighted_f1", "ece_10_bins_x100",
                                                          "top_label_brier_x100"]
    assert [m["metric"] for m in generate["metric_list"]] == ["accuracy", "macro_f1", "weighted_f1", "unmapped_rate"]
    assert generate["generation_kwargs"] == {"max_new_tokens": 32, "until": [], "do_sample": False}


def test_the_task_functions_ask_emovits_question_and_map_references_onto_the_view(built_data, tmp_path):
    import importlib.util

    from datasets import load_dataset

    tasks = tmp_path / "tasks"
    assert main(["export", "lmms-eval", str(built_data), str(tasks), "--label-space", "fi-2"]) == 0
    spec = importlib.util.spec_from_file_location("emovit_fi_2", tasks / "emovit_fi_2.py")  # as `!function` does
    functions = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(functions)
    doc = load_dataset(str(built_data), "categorical", split="test")[0]  # amusement: positive

    assert functions.doc_to_text(doc) == EMOVIT_INSTRUCTION.format("negative and positive")
    assert functions.doc_to_choice(doc) == ["Predict emotion: negative", "Predict emotion: positive"]
    assert doc["emotion"] == "amusement" and functions.doc_to_target(doc) == 1 and functions.reference(doc) == "positive"
    [image] = functions.doc_to_visual(doc)
    assert image.mode == "RGB" and image.size == doc["image"].size
    # lmms-eval 0.7.3 passes each choice's (loss, is_greedy) as its str(): read back exactly
    scored = functions.process_rank_results(doc, ["(3.0, False)", "(1.0, True)"])
    assert scored["accuracy"]["prediction"] == "positive" and scored["accuracy"]["reference"] == "positive"
    assert scored["accuracy"]["probabilities"][1] == pytest.approx(1 / (1 + 2.718281828459045 ** -2))
    assert functions.process_generate_results(doc, ["Predict emotion: Negative."])["accuracy"]["prediction"] == "negative"
    assert functions.accuracy([scored["accuracy"]]) == 1.0


def reasoning_only(folder: Path) -> Path:
    """A built dataset without categorical rows: its only config is reasoning."""
    return config_folder(folder, "reasoning", "test", {
        "id": ["a"], "image": [{"bytes": png_bytes((1, 2, 3)), "path": None}], "emotion": ["awe"],
        "label_space": ["emoset"], "prompt": ["Why?"], "completion": ["Because."]})


@pytest.mark.parametrize("harness", ["vlmevalkit", "lmms-eval"])
@pytest.mark.parametrize("problem, expected", [
    ("no categorical rows", "no config 'categorical'; its configs are reasoning"),
    ("not a built dataset", "no such dataset folder"),
    ("emotions outside the label space", "emotions ['amusement', 'awe', 'contentment', 'excitement'] are not labels of the 'emotion6'"),
])
def test_an_export_it_cannot_make_is_one_sentence_exit_2_and_writes_nothing(harness, problem, expected, built_data,
                                                                           tmp_path, capsys):
    data = {"no categorical rows": lambda: reasoning_only(tmp_path / "reasoning"),
            "not a built dataset": lambda: tmp_path / "missing",
            "emotions outside the label space": lambda: built_data}[problem]()
    out = tmp_path / ("out.tsv" if harness == "vlmevalkit" else "tasks")
    extra = ["--label-space", "emotion6"] if problem == "emotions outside the label space" else []
    capsys.readouterr()  # the fixture's own progress bars
    assert main(["export", harness, str(data), str(out), *extra]) == 2

    error = capsys.readouterr().err.strip()
    assert error.startswith(f"emovit export: {data}") and expected in error and len(error.splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob("*.part"))


def test_exported_tasks_never_overwrite_tasks_already_in_the_folder(built_data, tmp_path, capsys):
    tasks = tmp_path / "tasks"
    assert main(["export", "lmms-eval", str(built_data), str(tasks)]) == 0
    (tasks / "emovit_emoset_generate.yaml").write_text("edited by hand\n")
    before = {path.name: path.read_text() for path in tasks.iterdir()}

    assert main(["export", "lmms-eval", str(built_data), str(tasks)]) == 2
    assert "emovit_emoset.py already exists" in capsys.readouterr().err
    assert {path.name: path.read_text() for path in tasks.iterdir()} == before


def test_fi_2_scores_the_polarity_of_each_image_with_two_candidates(built_data, model_dir, tmp_path):
    out = tmp_path / "fi2"
    assert main(["eval", "--model", str(model_dir), "--data", str(built_data), "--label-space", "fi-2",
                 "--out", str(out)]) == 0

    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    positive = {"amusement", "awe", "contentment", "excitement"}
    by_id = {row["id"]: row["emotion"] for row in stored_rows(built_data)}
    assert len(rows) == 16 and all(list(row["scores"]) == ["negative", "positive"] for row in rows)
    assert all(row["reference"] == ("positive" if by_id[row["id"]] in positive else "negative") for row in rows)
    results = json.loads((out / "results.json").read_text())
    assert results["label_space"] == "fi-2"
    assert results["metrics"]["accuracy"] == sum(row["prediction"] == row["reference"] for row in rows) / 16


def test_rank_results_and_card_carry_emocalibers_ece_and_brier_as_a_hand_computation_gives_them(built_data, model_dir,
                                                                                                tmp_path):
    """ECE over 10 equal-width bins [lo, hi) of the top probability and the top probability's Brier score against
    being right, both x100 (EmoCaliber's calculate_ece / calculate_brier_score), from predictions.jsonl by hand."""
    out = tmp_path / "rank"
    assert main(["eval", "--model", str(model_dir), "--data", str(built_data), "--out", str(out)]) == 0

    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    confidence = [max(row["scores"].values()) for row in rows]
    correct = [row["prediction"] == row["reference"] for row in rows]
    ece = 0.0
    for b in range(10):
        members = [i for i, c in enumerate(confidence) if b / 10 <= c < (b + 1) / 10]
        if members:
            gap = sum(correct[i] for i in members) / len(members) - sum(confidence[i] for i in members) / len(members)
            ece += len(members) / len(rows) * abs(gap)
    brier = sum((c - k) ** 2 for c, k in zip(confidence, correct)) / len(rows)
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    assert metrics["ece_10_bins_x100"] == pytest.approx(100 * ece, abs=1e-9)
    assert metrics["top_label_brier_x100"] == pytest.approx(100 * brier, abs=1e-9)
    card = (model_dir / "README.md").read_text()
    assert f"| ECE x100 (10 equal-width bins, as EmoCaliber reports it) | {round(100 * ece, 4)} |" in card


def test_emocalibers_columns_bin_left_closed_and_score_the_top_probability_by_hand():
    """Four examples worked by hand. Left-closed bins [lo, hi) as EmoCaliber's calculate_ece compares (1.0 in the last
    bin): bin 9 holds 0.95 (right) and 1.0 (right), |1 - 0.975| * 2/4; bin 5 holds 0.55 (wrong) and 0.5 (right, the
    tie goes to the first label), |0.5 - 0.525| * 2/4: ECE 0.025. Right-closed bins put 0.5 in bin 4: 0.275.
    Top-label Brier: (0.05^2 + 0.55^2 + 0^2 + 0.5^2) / 4 = 0.13875."""
    import evaluate

    from evaluation.classification_metrics import METRICS_DIR, peer_calibration

    probabilities = [[0.95, 0.05], [0.55, 0.45], [1.0, 0.0], [0.5, 0.5]]
    references = ["a", "b", "a", "a"]
    assert peer_calibration(probabilities, references, ["a", "b"]) == {
        "ece_10_bins_x100": pytest.approx(2.5), "top_label_brier_x100": pytest.approx(13.875)}
    right_closed = evaluate.load(str(METRICS_DIR / "emotion_calibration")).compute(
        predictions=probabilities, references=[0, 1, 0, 0], n_bins=10, top_k=[])
    assert right_closed["ece"] == pytest.approx(0.275) and right_closed["top_label_brier"] == pytest.approx(0.13875)


def test_lmms_eval_is_an_extra_never_a_core_requirement_and_the_emovit_model_is_registered_for_it():
    """setup.cfg: `emovit[lmms]` pulls lmms-eval; its registry finds the model through the `lmms_eval.models`
    entry-point group (lmms_eval/models/registry_v2.py `load_entrypoint_manifests`)."""
    from importlib.metadata import entry_points, requires

    assert [r for r in requires("emovit") if r.startswith("lmms-eval")] == ['lmms-eval<0.8,>=0.7.3; extra == "lmms"']
    [entry] = entry_points(group="lmms_eval.models", name="emovit")
    assert entry.value == "emovit.lmms_eval_model:MANIFEST"
