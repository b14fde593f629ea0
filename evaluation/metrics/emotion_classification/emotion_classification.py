"""Emotion classification metric: accuracy, macro/weighted F1, per-class scores, confusion matrix, unmapped share.

A stand-alone `evaluate` module: it imports no emovit code and shares none with its sibling modules (it repeats
their few lines of input checking by design), so it can be pushed to the Hub as a Space and loaded by name. Offline,
by path: `evaluate.load(metric_path("emotion_classification"))`, the installed folder (the README says where
`metric_path` lives), or "evaluation/metrics/emotion_classification" from a clone's root. Predictions and references
are label strings (matched to `labels` case-insensitively, which strings need) or label ids; predictions may also be
per-label scores (the arg-max is taken), so it combines with `emotion_calibration` through `evaluate.combine`.
Free-text answers are mapped onto labels before they reach it (`emovit eval` does this with its label-space
normaliser).
"""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import confusion_matrix
from sklearn.metrics import precision_recall_fscore_support

_DESCRIPTION = """
Accuracy, macro-F1 and support-weighted F1 over an emotion label space, per-class precision / recall / F1, the
confusion matrix (rows: references, columns: predictions, in label order) and `unmapped_rate`, the share of
predictions that name no label. An unmapped prediction counts as wrong: it lowers accuracy and its class's recall.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: label strings, label ids, or per-label score lists (arg-max taken). A string that is no label
        (an unparseable answer) or an id outside the labels is "unmapped".
    references: label strings or label ids.
    labels: the label list (id order); needed for string inputs, default `range(n)` for ids.
Returns:
    accuracy, macro_f1, weighted_f1, unmapped_rate (floats); per_class ({label: {precision, recall, f1, support}});
    confusion_matrix (list of rows); labels (the label order).
Example:
    >>> metric = evaluate.load(metric_path("emotion_classification"))  # metric_path: see the README
    >>> metric.compute(predictions=["joy", "fear"], references=["joy", "anger"], labels=["anger", "fear", "joy"])["accuracy"]
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
class EmotionClassification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION, features=_INPUT_FORMATS
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Adds a batch after checking that predictions and references are equally many."""
        if predictions is not None and references is not None and len(predictions) != len(references):
            raise ValueError(f"{self.name}: got {len(predictions)} predictions, {len(references)} references; pass one "
                             f"of each per example.")
        super().add_batch(predictions=predictions, references=references, **kwargs)

    def _compute(self, predictions, references, labels=None, **_other_metrics_arguments):
        """`**_other_metrics_arguments`: evaluate.combine passes every keyword to every combined module."""
        width = 0
        if len(predictions) and isinstance(predictions[0], (list, np.ndarray)):
            width = len(predictions[0])
            predictions = [int(np.argmax(scores)) for scores in predictions]
        names = [str(label) for label in labels] if labels is not None else None
        strings = [values[0] for values in (references, predictions) if len(values) and isinstance(values[0], str)]
        if strings and names is None:
            raise ValueError(f"{self.name}: the inputs are label strings ({strings[0]!r}, ...); pass `labels`, the "
                             f"label list in id order, to match them.")
        truth, guess = _encode(references, names), _encode(predictions, names)
        classes = list(range(len(names) if names is not None else max([width, *(code + 1 for code in truth)])))
        unknown = sorted({str(value) for value, code in zip(references, truth) if code not in classes})
        if unknown:
            raise ValueError(f"{self.name}: references {unknown} are not in the label set {names}; pass the labels.")
        matrix = confusion_matrix(truth, guess, labels=classes)  # a prediction naming no label is in no column
        precision, recall, f1, support = precision_recall_fscore_support(
            truth, guess, labels=classes, zero_division=0
        )
        present = (support > 0) | (matrix.sum(axis=0) > 0)
        label_names = names or [str(code) for code in classes]
        return {
            "accuracy": float(np.mean(np.asarray(truth) == np.asarray(guess))) if len(truth) else 0.0,
            "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
            "weighted_f1": float((f1 * support).sum() / support.sum()) if support.sum() else 0.0,
            "unmapped_rate": float(np.mean([code not in classes for code in guess])) if len(guess) else 0.0,
            "per_class": {
                name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
                for name, p, r, f, n in zip(label_names, precision, recall, f1, support)
            },
            "confusion_matrix": matrix.tolist(),
            "labels": label_names,
        }


def _encode(values, names):
    """Ids of label strings (case-insensitive; -1 for a string naming no label) or the ids as given."""
    if names is None or not (len(values) and isinstance(values[0], str)):
        return [int(value) for value in values]
    index = {name.lower(): i for i, name in enumerate(names)}
    return [index.get(str(value).strip().lower(), -1) for value in values]

