"""`emovit eval --mode rank --calibrate-on VAL_DATA`: a temperature (and biases only when they earn their keep)
fitted on a validation split, stored in the model config, used by rank mode and the pipeline, reported before/after."""

import json
import random

import numpy as np
import pytest
import torch
from dataset_trees import config_folder, png_bytes
from huggingface_hub import ModelCard

from emovit.cli import main
from evaluation.calibration import fit_calibration, uncalibrated_rows
from evaluation.model_card import eval_results_from, update_model_card
from modeling_emovit.labels import MIKELS_EMOTIONS
from modeling_emovit.testing import tiny_emovit

EMOTION6 = ["anger", "disgust", "fear", "joy", "sadness", "surprise"]


def synthetic_scores(temperature: float, bias, rows: int = 3000, seed: int = 0):
    """Log-likelihoods whose calibrated probabilities are softmax(ll / T + bias): labels drawn from that softmax."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(0, 2, (rows, len(bias)))
    labels = np.array([rng.choice(len(bias), p=np.exp(z - np.logaddexp.reduce(z))) for z in true_logits])
    return (true_logits - np.asarray(bias)) * temperature, labels


def test_the_fitted_temperature_is_the_one_that_generated_the_labels():
    log_likelihoods, labels = synthetic_scores(temperature=4.0, bias=[0.0] * 5)
    calibration, report = fit_calibration(log_likelihoods, labels, list("abcde"), "synthetic")
    assert calibration["temperature"] == pytest.approx(4.0, rel=0.1)
    assert calibration["bias"] is None and report["bias_kept"] is False  # no label bias to find: not kept


def test_per_label_biases_are_kept_only_when_cross_validation_shows_they_help():
    bias = [1.5, 0.0, -1.5, 0.0, 0.5]
    log_likelihoods, labels = synthetic_scores(temperature=2.0, bias=bias)
    calibration, report = fit_calibration(log_likelihoods, labels, list("abcde"), "synthetic")
    assert report["bias_kept"] is True
    assert report["cross_validated_nll"]["temperature_and_bias"] < report["cross_validated_nll"]["temperature"]
    fitted = np.array([calibration["bias"][label] for label in "abcde"])
    np.testing.assert_allclose(fitted, np.array(bias) - np.mean(bias), atol=0.25)
    assert calibration["temperature"] == pytest.approx(2.0, rel=0.1)


def emotion6_split(folder, split, count, seed, emotions=None):
    rng = random.Random(seed)
    return config_folder(folder, "categorical", split, {
        "id": [f"{split}{i:03d}" for i in range(count)],
        "image": [{"bytes": png_bytes(tuple(rng.randrange(256) for _ in range(3))), "path": None} for _ in range(count)],
        "emotion": emotions or [EMOTION6[i % len(EMOTION6)] for i in range(count)],
        "label_space": ["emotion6"] * count,
    })


def split_the_model_gets_mostly_right(model_folder, folder, split, count, seed, accuracy=0.7):
    """`emotion6_split`'s images, each labelled with the model's own rank-mode answer `accuracy` of the time (another
    emotion otherwise): a model better than chance but overconfident, so the fitted temperature is finite and > 1."""
    from datasets import load_dataset

    from dataset_builder.emotions import get_label_space
    from dataset_builder.instructions import categorical_instruction
    from evaluation.harness import load_adapter
    from evaluation.predictors import RankPredictor

    images = load_dataset(str(emotion6_split(folder / "draft", split, count, seed)), "categorical", split=split)["image"]
    space = get_label_space("emotion6")
    answers = RankPredictor(load_adapter(str(model_folder)), space, calibration={}).predict(
        list(images), categorical_instruction(space.labels))
    rng = random.Random(seed)
    emotions = [p.label if rng.random() < accuracy else rng.choice([e for e in EMOTION6 if e != p.label])
                for p in answers]
    return emotion6_split(folder, split, count, seed, emotions)


@pytest.fixture(scope="module")
def overconfident_model(tmp_path_factory):
    """A random tiny EmoVIT whose LM head is scaled up 30x: near-one-hot probabilities."""
    folder = tmp_path_factory.mktemp("overconfident")
    model, processor = tiny_emovit("llama", seed=0)
    with torch.no_grad():
        model.language_model.lm_head.weight.mul_(30.0)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_calibrating_an_overconfident_model_lowers_its_ece_and_keeps_its_accuracy(overconfident_model, tmp_path, capsys):
    val = split_the_model_gets_mostly_right(overconfident_model, tmp_path / "val", "validation", 35, 1)
    test = split_the_model_gets_mostly_right(overconfident_model, tmp_path / "test", "test", 35, 2)
    out = tmp_path / "out"

    assert main(["eval", "--model", str(overconfident_model), "--data", str(test), "--out", str(out),
                 "--calibrate-on", str(val), "--batch-size", "16"]) == 0

    results = json.loads((out / "results.json").read_text())
    calibration = results["calibration"]
    before, after = calibration["before"], calibration["after"]
    assert before["ece"] > 0.25 and after["ece"] < before["ece"] / 1.5  # confident near 1, right about 70%
    assert after["nll"] < before["nll"] / 2 and after["brier"] < before["brier"]
    assert after["accuracy"] == before["accuracy"] == results["metrics"]["accuracy"]
    assert 1 < calibration["temperature"] < 100 and calibration["fitted_on"] == "val (validation, 35 images)"
    assert results["metrics"]["ece"] == pytest.approx(after["ece"])  # the run's own probabilities are calibrated
    assert results["calibrated"] is True  # and both figures are reported, labelled
    assert results["uncalibrated_metrics"]["ece"] == pytest.approx(before["ece"])
    assert results["uncalibrated_metrics"]["accuracy"] == before["accuracy"]
    stored = json.loads((overconfident_model / "config.json").read_text())["emotion_calibration"]
    assert stored["temperature"] == calibration["temperature"] and stored["labels"] == EMOTION6
    assert (out / "reliability_diagram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((out / "calibration" / "predictions.jsonl").read_text().splitlines()) == 35
    printed = capsys.readouterr().out
    assert f"before ECE {before['ece']:.4f}" in printed and f"after  ECE {after['ece']:.4f}" in printed
    card = ModelCard.load(overconfident_model / "README.md").text
    assert "## Calibration" in card and f"{after['ece']:.4f}" in card and str(tmp_path) not in card
    modes = {(r.metric_name, r.metric_config): r.metric_value
             for r in ModelCard.load(overconfident_model / "README.md").data.eval_results}
    assert modes[("Expected calibration error", "rank (calibrated)")] == round(after["ece"], 4)
    assert modes[("Expected calibration error", "rank")] == round(before["ece"], 4)

    # A later run without --calibrate-on reads the stored calibration from the folder.
    again = tmp_path / "again"
    assert main(["eval", "--model", str(overconfident_model), "--data", str(test), "--out", str(again)]) == 0
    rows = [json.loads(line) for line in (again / "predictions.jsonl").read_text().splitlines()]
    raw = torch.tensor([[row["log_likelihoods"][label] for label in EMOTION6] for row in rows], dtype=torch.float64)
    expected = (raw / stored["temperature"]).softmax(-1)
    assert torch.tensor([[row["scores"][label] for label in EMOTION6] for row in rows]).double() == pytest.approx(expected)


def test_calibrate_on_in_generate_mode_is_refused_in_one_sentence(overconfident_model, tmp_path, capsys):
    data = emotion6_split(tmp_path / "test", "test", 7, 3)
    code = main(["eval", "--model", str(overconfident_model), "--data", str(data), "--out", str(tmp_path / "out"),
                 "--mode", "generate", "--calibrate-on", str(data)])
    assert code == 2 and "--calibrate-on calibrates rank-mode probabilities" in capsys.readouterr().err


@pytest.mark.parametrize("split, expected", [
    ("one image", "1 readable image(s) of 1 emotion(s) is too little to calibrate on"),
    ("one emotion", "20 readable image(s) of 1 emotion(s) is too little to calibrate on"),
    ("no readable image", "0 readable image(s) (20 more did not decode) of 0 emotion(s) is too little"),
])
def test_a_degenerate_validation_split_is_refused_and_nothing_is_stored(split, expected, overconfident_model,
                                                                      tmp_path, capsys):
    count = 1 if split == "one image" else 20
    val = config_folder(tmp_path / "val", "categorical", "validation", {
        "id": [f"v{i:03d}" for i in range(count)],
        "image": [{"bytes": b"not an image" if split == "no readable image" else png_bytes((9 * i, 90, 200)),
                   "path": None} for i in range(count)],
        "emotion": ["joy"] * count, "label_space": ["emotion6"] * count,
    })
    test = emotion6_split(tmp_path / "test", "test", 6, 4)
    config_before = (overconfident_model / "config.json").read_text()
    code = main(["eval", "--model", str(overconfident_model), "--data", str(test), "--out", str(tmp_path / "out"),
                 "--calibrate-on", str(val)])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and expected in error and "Traceback" not in error
    assert (overconfident_model / "config.json").read_text() == config_before  # no temperature stored
    assert not (tmp_path / "out" / "results.json").exists()


def test_a_temperature_that_runs_to_its_bound_is_refused_not_stored():
    """Labels that are always the model's least likely answer: the best temperature is as large as allowed."""
    from modeling_emovit.errors import EmoVITInputError

    rng = np.random.default_rng(3)
    log_likelihoods = rng.normal(0, 3, (60, 4))
    references = log_likelihoods.argmin(axis=1)
    with pytest.raises(EmoVITInputError, match=r"the temperature ran to the end of its range \(100; allowed 0.01"):
        fit_calibration(log_likelihoods, references, list("abcd"), "synthetic")
def test_a_calibration_fitted_on_other_labels_is_not_applied_and_the_run_says_so(tmp_path):
    """A model calibrated on Mikels-8 (T = 0.08, as in the issue) evaluated on Emotion6 data: raw probabilities,
    `calibrated: false`, no calibration section, and the card's rows are plain `rank`."""
    folder = tmp_path / "model"
    model, processor = tiny_emovit("llama", seed=1)
    model.config.emotion_calibration = {"temperature": 0.08, "bias": None, "labels": list(MIKELS_EMOTIONS),
                                        "fitted_on": "emoset (validation, 100 images)"}
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    test, out = emotion6_split(tmp_path / "test", "test", 7, 4), tmp_path / "out"

    assert main(["eval", "--model", str(folder), "--data", str(test), "--out", str(out)]) == 0

    results = json.loads((out / "results.json").read_text())
    assert results["calibrated"] is False and "calibration" not in results and "uncalibrated_metrics" not in results
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    raw = torch.tensor([[row["log_likelihoods"][label] for label in EMOTION6] for row in rows], dtype=torch.float64)
    scores = torch.tensor([[row["scores"][label] for label in EMOTION6] for row in rows], dtype=torch.float64)
    assert scores == pytest.approx(raw.softmax(-1))
    card = ModelCard.load(folder / "README.md")
    assert {r.metric_config for r in card.data.eval_results} == {"rank"} and "## Calibration" not in card.text


def test_the_card_reports_accuracy_before_and_after_per_label_biases_labelled(tmp_path):
    """Biases can move rank accuracy (the issue's 0.825 -> 0.91): both figures reach the model-index and the table."""
    results = {"data": "emovit/emoset", "label_space": "emoset", "config": "categorical", "split": "test",
               "mode": "rank", "calibrated": True, "metrics": {"accuracy": 0.91, "ece": 0.04},
               "uncalibrated_metrics": {"accuracy": 0.825, "ece": 0.21}}

    entries = {(r.metric_name, r.metric_config): r.metric_value for r in eval_results_from(results)}

    assert entries == {("Accuracy", "rank (calibrated)"): 0.91, ("Expected calibration error", "rank (calibrated)"): 0.04,
                       ("Accuracy", "rank"): 0.825, ("Expected calibration error", "rank"): 0.21}
    card = update_model_card(tmp_path, [results])
    assert "| emovit/emoset (emoset) | test | rank (calibrated) | Accuracy | 0.91 |" in card.text
    assert "| emovit/emoset (emoset) | test | rank | Accuracy | 0.825 |" in card.text


def test_uncalibrated_rows_rank_by_the_raw_log_likelihoods():
    """A row whose per-label biases flipped the prediction: without them, the likeliest answer wins again."""
    rows = [{"reference": "b", "prediction": "b", "scores": {"a": 0.3, "b": 0.7},
             "log_likelihoods": {"a": -1.0, "b": -1.5}}]

    (row,) = uncalibrated_rows(rows, ["a", "b"])

    assert row["prediction"] == "a" and row["reference"] == "b"
    assert [row["scores"]["a"], row["scores"]["b"]] == pytest.approx(torch.tensor([-1.0, -1.5]).softmax(-1).tolist())
