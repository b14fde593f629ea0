"""The evaluate metric modules under evaluation/metrics, loaded offline by path, against hand-computed values."""

from pathlib import Path

import evaluate
import pytest


METRICS = Path(__file__).resolve().parents[1] / "evaluation" / "metrics"


def load(name: str):
    return evaluate.load(str(METRICS / name))


def test_classification_scores_match_hand_computed_values():
    # references  a a a b b c ; predictions a a b b "?" a  (labels a, b, c)
    result = load("emotion_classification").compute(
        predictions=["a", "a", "b", "b", "?", "a"], references=["a", "a", "a", "b", "b", "c"], labels=["a", "b", "c"]
    )
    # a: TP 2, predicted 3, support 3 -> P 2/3, R 2/3, F1 2/3; b: TP 1, predicted 2, support 2 -> P 1/2, R 1/2;
    # c: TP 0 -> F1 0. macro = (2/3 + 1/2 + 0) / 3; weighted = (3 * 2/3 + 2 * 1/2 + 0) / 6.
    assert result["accuracy"] == pytest.approx(3 / 6)
    assert result["unmapped_rate"] == pytest.approx(1 / 6)
    assert result["per_class"]["a"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert result["per_class"]["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert result["macro_f1"] == pytest.approx((2 / 3 + 0.5) / 3)
    assert result["weighted_f1"] == pytest.approx((2 + 1) / 6)
    assert result["confusion_matrix"] == [[2, 1, 0], [0, 1, 0], [1, 0, 0]]  # the unmapped "?" is in no column


def test_classification_matches_labels_case_insensitively_and_counts_other_text_as_unmapped():
    result = load("emotion_classification").compute(
        predictions=["Joy", " fear ", "a banana", "sadness"], references=["joy", "fear", "anger", "sadness"],
        labels=["anger", "fear", "joy", "sadness"],
    )
    assert result["accuracy"] == pytest.approx(3 / 4)
    assert result["unmapped_rate"] == pytest.approx(1 / 4)
    assert result["labels"] == ["anger", "fear", "joy", "sadness"]


def test_classification_accepts_label_ids_and_counts_out_of_range_ids_as_unmapped():
    result = load("emotion_classification").compute(predictions=[0, 1, 7], references=[0, 0, 1], labels=["x", "y"])
    assert result["accuracy"] == pytest.approx(1 / 3)
    assert result["unmapped_rate"] == pytest.approx(1 / 3)


def test_calibration_error_and_top_k_on_a_constructed_case():
    # Confidences 0.9 (right), 0.8 (right), 0.7 (wrong), 0.4 (right) with 5 bins of width 0.2:
    # bin (0.8, 1.0]: {0.9} -> |1 - 0.9| = 0.1; bin (0.6, 0.8]: {0.8, 0.7} -> |1/2 - 0.75| = 0.25;
    # bin (0.2, 0.4]: {0.4} -> |1 - 0.4| = 0.6. ECE = 1/4 * 0.1 + 2/4 * 0.25 + 1/4 * 0.6 = 0.3.
    probabilities = [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.3, 0.3, 0.4]]
    result = load("emotion_calibration").compute(predictions=probabilities, references=[0, 1, 2, 2], n_bins=5, top_k=[1, 2, 3, 4])
    assert result["ece"] == pytest.approx(0.3)
    assert result["mean_confidence"] == pytest.approx(0.7)
    assert result["top_1_accuracy"] == pytest.approx(3 / 4)
    assert result["top_2_accuracy"] == pytest.approx(3 / 4)  # the 0.7 miss ranks its reference third
    assert result["top_3_accuracy"] == pytest.approx(1.0)
    assert "top_4_accuracy" not in result  # more than the number of labels


def test_calibration_of_a_perfectly_calibrated_model_is_zero():
    # Two examples at confidence 0.5 in one bin, one right and one wrong.
    result = load("emotion_calibration").compute(predictions=[[0.5, 0.5], [0.5, 0.5]], references=[0, 1])
    assert result["ece"] == pytest.approx(0.0)


def test_instruction_sensitivity_is_the_spread_of_accuracy_relative_to_its_mean_averaged_over_datasets():
    # emoset: paraphrase accuracies 1.0 and 0.5 -> std 0.25 / mean 0.75 = 1/3; fi: 0.5 and 0.5 -> 0.
    result = load("instruction_sensitivity").compute(
        predictions=["joy", "joy", "joy", "fear", "joy", "fear", "joy", "fear"],
        references=["joy"] * 8,
        paraphrases=[0, 0, 1, 1, 0, 0, 1, 1],
        datasets=["emoset"] * 4 + ["fi"] * 4,
        labels=["fear", "joy"],
    )
    assert result["per_dataset"]["emoset"]["accuracy_per_paraphrase"] == {0: 1.0, 1: 0.5}
    assert result["per_dataset"]["emoset"]["sensitivity"] == pytest.approx(1 / 3)
    assert result["per_dataset"]["fi"]["sensitivity"] == 0.0
    assert result["sensitivity"] == pytest.approx(1 / 6)


def test_classification_and_calibration_combine_on_per_label_probabilities():
    combined = evaluate.combine([load("emotion_classification"), load("emotion_calibration")])
    result = combined.compute(predictions=[[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]], references=[0, 1, 1], top_k=[1])
    assert result["accuracy"] == pytest.approx(2 / 3)  # arg-max of the probabilities
    assert result["top_1_accuracy"] == pytest.approx(2 / 3)
    assert result["ece"] == pytest.approx(1 / 3 * 0.1 + 1 / 3 * 0.6 + 1 / 3 * 0.2)


def test_classification_and_sensitivity_combine_on_label_strings():
    combined = evaluate.combine([load("emotion_classification"), load("instruction_sensitivity")])
    result = combined.compute(
        predictions=["joy", "fear"], references=["joy", "joy"], paraphrases=[0, 1], datasets=["fi", "fi"],
        labels=["fear", "joy"],
    )
    assert result["accuracy"] == 0.5 and result["sensitivity"] == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["emotion_classification", "emotion_calibration", "instruction_sensitivity"])
def test_predictions_and_references_of_different_lengths_are_refused_in_one_sentence(name):
    inputs = {
        "emotion_classification": dict(predictions=["joy", "fear"], references=["joy"]),
        "emotion_calibration": dict(predictions=[[0.5, 0.5], [1.0, 0.0]], references=[0]),
        "instruction_sensitivity": dict(predictions=["joy", "fear"], references=["joy"], paraphrases=[0, 1], datasets=["fi", "fi"]),
    }[name]
    with pytest.raises(ValueError, match=rf"^{name}: got 2 predictions, 1 references[^.]*; pass one of each per example\.$"):
        load(name).compute(**inputs)


def test_references_outside_the_label_space_are_listed():
    with pytest.raises(ValueError, match=r"references \['awe', 'zest'\] are not in the label set"):
        load("emotion_classification").compute(predictions=["joy"] * 3, references=["joy", "zest", "awe"],
                                                labels=["anger", "fear", "joy"])


@pytest.mark.parametrize("name", ["emotion_classification", "emotion_calibration", "instruction_sensitivity"])
def test_every_metric_module_stands_alone_without_emovit_code(name):
    source = (METRICS / name / f"{name}.py").read_text()
    assert not any(package in source for package in ("modeling_emovit", "dataset_builder", "evaluation.", "emovit."))


@pytest.mark.parametrize("name", ["emotion_classification", "emotion_calibration", "instruction_sensitivity"])
def test_every_metric_has_a_card_with_inputs_outputs_and_formula(name):
    card = (METRICS / name / "README.md").read_text()
    assert card.startswith("---\ntitle:") and "### Inputs" in card and "### Output Values" in card and " = " in card
