"""Emotion classification metric: accuracy, macro/weighted F1, per-class scores, confusion matrix, unmapped share.

Load offline by path: `evaluate.load("evaluation/metrics/emotion_classification")`. Predictions may be label
strings (free text such as "Predict emotion: Joy" is normalised for `label_space`), label ids, or per-label scores
(the arg-max is taken), so it combines with `emotion_calibration` through `evaluate.combine`.
"""

import datasets
import evaluate
import numpy as np
from evaluation.metric_inputs import UNMAPPED
from evaluation.metric_inputs import EmotionMetric
from evaluation.metric_inputs import label_names
from evaluation.metric_inputs import reference_ids
from evaluation.metric_inputs import to_label_ids

_DESCRIPTION = """
Accuracy, macro-F1 and support-weighted F1 over an emotion label space, per-class precision / recall / F1, the
confusion matrix (rows: references, columns: predictions, in label order) and `unmapped_rate`, the share of
predictions that name no label. An unmapped prediction counts as wrong: it lowers accuracy and its class's recall.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: label strings, label ids, or per-label score lists (arg-max taken).
    references: label strings or label ids.
    label_space: optional name from dataset_builder.emotions.LABEL_SPACES (e.g. "emoset", "fi", "emotion6"); it
        gives the label list and normalises free-text predictions.
    labels: optional explicit label list (id order); overrides the label space's list.
Returns:
    accuracy, macro_f1, weighted_f1, unmapped_rate (floats); per_class ({label: {precision, recall, f1, support}});
    confusion_matrix (list of rows); labels (the label order).
Example:
    >>> metric = evaluate.load("evaluation/metrics/emotion_classification")
    >>> metric.compute(predictions=["joy", "Predict emotion: fear"], references=["joy", "anger"], label_space="emotion6")["accuracy"]
    0.5
"""

_CITATION = """
@inproceedings{xie2024emovit,
  title={EmoVIT: Revolutionizing Emotion Insights with Visual Instruction Tuning},
  author={Xie, Hongxia and Peng, Chu-Jun and Tseng, Yu-Wen and Chen, Hung-Jen and Hsu, Chan-Feng and Shuai, Hong-Han and Cheng, Wen-Huang},
  booktitle={CVPR},
  year={2024}
}
"""

_INPUT_FORMATS = [
    datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
    datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
    datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("int64")}),
    datasets.Features({"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value("int64")}),
    datasets.Features({"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value("string")}),
]


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class EmotionClassification(EmotionMetric, evaluate.Metric):
    info_fields = dict(
        description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION, features=_INPUT_FORMATS
    )

    def _compute(self, predictions, references, label_space=None, labels=None, **_other_metrics_arguments):
        """`**_other_metrics_arguments`: evaluate.combine passes every keyword to every combined module."""
        known_ids = [i for i in references if isinstance(i, (int, np.integer))]
        if len(predictions) and isinstance(predictions[0], (list, np.ndarray)):
            known_ids.append(len(predictions[0]) - 1)
            predictions = [int(np.argmax(scores)) for scores in predictions]
        names = label_names(labels, label_space, known_ids)
        truth = reference_ids(references, names, label_space, "emotion_classification")
        guess = to_label_ids(predictions, names, label_space)
        matrix = _confusion_matrix(truth, guess, len(names))
        precision, recall, f1, support = _per_class_scores(matrix, truth, len(names))
        present = (support > 0) | (matrix.sum(axis=0) > 0)
        return {
            "accuracy": float(np.mean(truth == guess)) if len(truth) else 0.0,
            "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
            "weighted_f1": float((f1 * support).sum() / support.sum()) if support.sum() else 0.0,
            "unmapped_rate": float(np.mean(guess == UNMAPPED)) if len(guess) else 0.0,
            "per_class": {
                name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                for name, p, r, f, s in zip(names, precision, recall, f1, support)
            },
            "confusion_matrix": matrix.tolist(),
            "labels": names,
        }


def _confusion_matrix(truth: np.ndarray, guess: np.ndarray, n: int) -> np.ndarray:
    """Counts of (reference, prediction) pairs; unmapped predictions appear in no column."""
    mapped = guess != UNMAPPED
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (truth[mapped], guess[mapped]), 1)
    return matrix


def _per_class_scores(matrix: np.ndarray, truth: np.ndarray, n: int):
    """precision = TP / predicted, recall = TP / support (unmapped included), F1 = 2PR / (P + R); 0 where undefined."""
    tp = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    support = np.bincount(truth, minlength=n)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n), where=(precision + recall) > 0)
    return precision, recall, f1, support
