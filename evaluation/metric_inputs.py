"""Inputs shared by the emotion metric modules (`evaluation/metrics/*`): labels given as strings or ids become ids.

String labels are normalised with the dataset builder's normaliser for the chosen label space (or matched to an
explicit `labels` list, case-insensitively); a prediction that maps to no label gets the id `UNMAPPED`.
"""

from collections.abc import Sequence

import numpy as np

from modeling_emovit.errors import EmoVITInputError

UNMAPPED = -1  # a prediction that names no label of the label space


def check_same_length(metric: str, **columns: Sequence) -> None:
    """Refuses columns of different lengths in one sentence (evaluate's own message is an Arrow dump)."""
    lengths = {name: len(values) for name, values in columns.items() if values is not None}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{length} {name}" for name, length in lengths.items())
        raise EmoVITInputError(f"{metric}: got {described}; pass one of each per example.")


class EmotionMetric:
    """Mixin for the `evaluate.Metric` modules here: `MetricInfo` from the class's `info_fields`, and an
    `add_batch` that first checks that every column has one entry per example."""

    info_fields: dict = {}  # description, citation, inputs_description, features

    def _info(self):
        import evaluate

        return evaluate.MetricInfo(**self.info_fields)

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Adds a batch after checking that every column has one entry per example."""
        check_same_length(self.name, predictions=predictions, references=references, **kwargs)
        super().add_batch(predictions=predictions, references=references, **kwargs)


def label_names(labels: Sequence[str] | None, label_space: str | None, ids: Sequence[int] = ()) -> list[str]:
    """The label names in id order: `labels`, else the label space's, else the ids themselves as strings."""
    if labels is not None:
        return list(labels)
    if label_space is not None:
        from dataset_builder.emotions import get_label_space

        return list(get_label_space(label_space).labels)
    return [str(i) for i in range(max(ids, default=-1) + 1)]


def to_label_ids(values: Sequence, labels: list[str], label_space: str | None) -> np.ndarray:
    """Ids of label strings or ids; `UNMAPPED` for a string naming no label or an id outside the label list."""
    if len(values) and isinstance(values[0], str):
        return np.array([_string_id(value, labels, label_space) for value in values], dtype=np.int64)
    ids = np.asarray(values, dtype=np.int64).reshape(-1)
    return np.where((ids >= 0) & (ids < len(labels)), ids, UNMAPPED)


def reference_ids(values: Sequence, labels: list[str], label_space: str | None, metric: str) -> np.ndarray:
    """Like `to_label_ids`, but a reference outside the label space is an error that lists the unknown labels."""
    ids = to_label_ids(values, labels, label_space)
    unknown = sorted({str(value) for value, i in zip(values, ids) if i == UNMAPPED})
    if unknown:
        raise EmoVITInputError(
            f"{metric}: references {unknown} are not in the label set {labels}; pass the matching label_space or labels."
        )
    return ids


def _string_id(text: str, labels: list[str], label_space: str | None) -> int:
    if label_space is not None:
        from dataset_builder.emotions import normalize_emotion

        text = normalize_emotion(text, label_space) or ""
    lowered = [label.lower() for label in labels]
    text = text.strip().lower()
    return lowered.index(text) if text in lowered else UNMAPPED
