"""The metric modules by their installed path, from a folder outside the source tree (as the metric READMEs show),
and label strings without `labels`, refused in one sentence instead of `int('awe')`."""

from pathlib import Path

import evaluate
import pytest

from evaluation.metrics import METRICS, metric_path


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working folder where "evaluation/metrics/..." names nothing."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_metric_folder_loads_by_its_installed_path_from_anywhere(elsewhere):
    assert not (elsewhere / "evaluation").exists()
    classification = evaluate.load(metric_path("emotion_classification"))
    scores = classification.compute(predictions=["joy", "fear"], references=["joy", "anger"],
                                    labels=["anger", "fear", "joy"])
    assert scores["accuracy"] == 0.5  # one of two right
    calibration = evaluate.load(metric_path("emotion_calibration"))
    # top-1 confidences 0.9 (right) and 0.6 (wrong): one bin each of 15, ECE = (|1 - 0.9| + |0 - 0.6|) / 2
    assert calibration.compute(predictions=[[0.9, 0.1], [0.6, 0.4]], references=[0, 1], top_k=[1])["ece"] == \
        pytest.approx(0.35)
    sensitivity = evaluate.load(metric_path("instruction_sensitivity"))
    # accuracies 1.0 and 0.5 under two paraphrases: std 0.25 / mean 0.75
    assert sensitivity.compute(predictions=["joy", "joy", "joy", "fear"], references=["joy"] * 4,
                               paraphrases=[0, 0, 1, 1], datasets=["emotion6"] * 4)["sensitivity"] == pytest.approx(1 / 3)
    metrics_folder = Path(metric_path(METRICS[0])).parent  # METRICS names every module folder there
    assert sorted(METRICS) == sorted(path.name for path in metrics_folder.iterdir() if (path / f"{path.name}.py").is_file())


def test_an_unknown_metric_name_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="No metric module named 'accuracy'; choose one of emotion_classification"):
        metric_path("accuracy")


@pytest.mark.parametrize("predictions, references", [
    (["awe", "fear"], ["awe", "anger"]),  # strings both sides
    (["awe", "fear"], [0, 1]),  # free-text predictions against ids
])
def test_classification_of_label_strings_without_labels_says_to_pass_them(predictions, references):
    metric = evaluate.load(metric_path("emotion_classification"))
    with pytest.raises(ValueError, match=r"emotion_classification: the inputs are label strings \('awe', \.\.\.\); "
                                         r"pass `labels`, the label list in id order"):
        metric.compute(predictions=predictions, references=references)


def test_calibration_of_label_string_references_without_labels_says_to_pass_them():
    metric = evaluate.load(metric_path("emotion_calibration"))
    with pytest.raises(ValueError, match=r"emotion_calibration: the references are label strings \('awe', \.\.\.\); "
                                         r"pass `labels`"):
        metric.compute(predictions=[[0.9, 0.1], [0.2, 0.8]], references=["awe", "anger"])
