"""Emotion calibration metric: expected calibration error (ECE), Brier score, negative log-likelihood and top-k
accuracy from per-label probabilities.

A stand-alone `evaluate` module: it imports no emovit code and shares none with its sibling modules (it repeats
their few lines of input checking by design), so it can be published on its own. Offline, by path:
`evaluate.load(metric_path("emotion_calibration"))`, the installed folder (the README says where `metric_path`
lives), or "evaluation/metrics/emotion_calibration" from a clone's root. The probabilities come from `emovit eval
--mode rank`, which scores every candidate answer (Guo et al., ICML 2017, for ECE).
"""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss
from sklearn.metrics import top_k_accuracy_score

_DESCRIPTION = """
Expected calibration error over equal-width confidence bins of the top-1 probability,
ECE = sum_b |B_b| / N * |accuracy(B_b) - mean confidence(B_b)| (Guo et al., 2017), and top-k accuracy, the share of
examples whose reference is among the k most probable labels. Brier score: mean over examples of
sum_c (p_c - y_c)^2 (range [0, 2] for any number of labels); top-label Brier score: mean of
(top-1 probability - 1[top-1 label is the reference])^2, the confidence's Brier score (range [0, 1]); NLL: mean of
-log p(reference).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: one list of per-label probabilities per example (label id order; rows are renormalised to sum 1).
    references: label ids, or label strings with `labels` or `label_space`.
    n_bins: number of equal-width confidence bins over [0, 1] (default 15).
    bins_closed: "right" (default): bin b holds confidences in (b/n, (b+1)/n], the first also 0; "left": in
        [b/n, (b+1)/n), the last also 1 (the binning of EmoCaliber's `calculate_ece`).
    top_k: the k values for top-k accuracy (default (1, 3, 5); k above the number of labels is skipped).
    labels: the label list (id order), needed only for string references.
Returns:
    ece, brier, top_label_brier, nll, mean_confidence, and top_{k}_accuracy for each k (floats).
Example:
    >>> metric = evaluate.load(metric_path("emotion_calibration"))  # metric_path: see the README
    >>> metric.compute(predictions=[[0.9, 0.1], [0.6, 0.4]], references=[0, 1], top_k=[1])
    {'ece': 0.35, 'brier': 0.37, 'top_label_brier': 0.185, 'nll': 0.5108..., 'mean_confidence': 0.75, 'top_1_accuracy': 0.5}
"""

_CITATION = """
@inproceedings{guo2017calibration,
  title={On Calibration of Modern Neural Networks},
  author={Guo, Chuan and Pleiss, Geoff and Sun, Yu and Weinberger, Kilian Q.},
  booktitle={ICML},
  year={2017}
}
"""

_INPUT_FORMATS = [
    datasets.Features({"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value("int64")}),
    datasets.Features({"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value("string")}),
]


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class EmotionCalibration(evaluate.Metric):
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

    def _compute(self, predictions, references, n_bins=15, bins_closed="right", top_k=(1, 3, 5), labels=None,
                 **_other_metrics_arguments):
        """`**_other_metrics_arguments`: evaluate.combine passes every keyword to every combined module."""
        if bins_closed not in ("right", "left"):
            raise ValueError(f"{self.name}: bins_closed must be 'right' or 'left', not {bins_closed!r}.")
        probabilities = np.asarray(predictions, dtype=np.float64)
        probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
        truth = np.asarray(_reference_ids(references, labels, self.name))
        classes = list(range(probabilities.shape[1]))
        confidence, correct = probabilities.max(axis=1), probabilities.argmax(axis=1) == truth
        results = {
            "ece": expected_calibration_error(confidence, correct, n_bins, bins_closed),
            "brier": float(brier_score_loss(truth, probabilities, labels=classes, scale_by_half=False)),
            "top_label_brier": float(np.mean((confidence - correct) ** 2)),
            "nll": float(log_loss(truth, probabilities, labels=classes)),
            "mean_confidence": float(confidence.mean()),
        }
        # scikit-learn scores two classes by the second column's probability alone.
        scores = probabilities[:, 1] if len(classes) == 2 else probabilities
        for k in top_k:
            if k < len(classes):
                results[f"top_{k}_accuracy"] = float(top_k_accuracy_score(truth, scores, k=k, labels=classes))
            elif k == len(classes):
                results[f"top_{k}_accuracy"] = 1.0
        return results


def _reference_ids(references, labels, metric: str) -> list[int]:
    if not (len(references) and isinstance(references[0], str)):
        return [int(reference) for reference in references]
    if labels is None:
        raise ValueError(f"{metric}: the references are label strings ({references[0]!r}, ...); pass `labels`, the "
                         f"label list in id order, to match them.")
    index = {str(label).lower(): i for i, label in enumerate(labels or [])}
    unknown = sorted({reference for reference in references if reference.lower() not in index})
    if unknown:
        raise ValueError(f"{metric}: references {unknown} are not in the label set {labels}; pass the labels.")
    return [index[reference.lower()] for reference in references]


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int, closed: str) -> float:
    """Bins (lo, hi] over [0, 1] of top-1 confidence, the first also holding 0 (closed "right"), or [lo, hi) with the
    edges of `np.linspace(0, 1, n_bins + 1)` as EmoCaliber compares against them, the last bin also holding 1
    (closed "left"; EmoCaliber's own loop leaves a confidence of exactly 1 out of every bin)."""
    if closed == "right":
        bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    else:
        edges = np.linspace(0, 1, n_bins + 1)
        bins = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    ece = 0.0
    for b in np.unique(bins):
        members = bins == b
        ece += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(ece)
