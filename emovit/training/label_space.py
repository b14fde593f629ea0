"""The label space a training run's data declares, written into the trained model's config.

Flow: recipe -> data -> `training_label_space` (read before the model loads, so that labels at odds with their
space are named first) -> model -> `record_label_space` (`emotion_label_space`, `emotion_labels`, `id2label` /
`label2id`; `modeling_emovit.configuration_emovit.set_emotion_label_space`) -> trainer -> checkpoint, whose emotion
pipeline and `emovit serve` then default to the labels the model was trained on, EmoVIT or chat-template model alike.

What the rows say (`emotion` and `label_space` columns, every config of `emovit data build` has both):
- one built-in space ("emoset", "emotion6", ...): that space's labels, in the order EmoVIT lists candidates; an
  emotion outside them is refused;
- one space of the data's own: the names of the dataset's `label` ClassLabel when it has one (the build's label
  list), else the distinct emotions of its rows, sorted as EmoVIT sorts candidates (logged);
- several spaces (a mixture): the union of their labels, sorted, named "a+b" (logged: the pipeline's default
  candidates then span every space; pass `candidate_labels` for one);
- an `emotion` column without `label_space`: the distinct emotions, sorted, no name (logged);
- no `emotion` column, or a dataset whose columns cannot be read without streaming it whole: the model keeps the
  labels its config already names (logged).
Whatever the data says, a calibration the base model carried is dropped: it was fitted on other weights.
"""

import logging
from dataclasses import dataclass

from modeling_emovit.errors import EmoVITInputError
from modeling_emovit.labels import LABEL_SPACE_POLARITIES, label_space_labels

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingLabelSpace:
    """The label space training writes into the model config; `name` None when the data names none."""

    name: str | None
    labels: tuple[str, ...]


def training_label_space(dataset, data: str) -> TrainingLabelSpace | None:
    """The label space the training rows declare (see module docstring), None when they declare none; `data`
    names the dataset in messages."""
    columns = set(dataset.column_names or ())
    if "emotion" not in columns or not hasattr(dataset, "unique"):  # an IterableDataset has no `unique`
        logger.warning("%s: no readable `emotion` column; the trained model keeps the labels its config names.", data)
        return None
    # two string columns as Python lists (Arrow-backed: 0.15 s for EmoSet's 118K rows; iterating `dataset[column]`
    # row by row took 13 s)
    rows = dataset.select_columns(sorted({"emotion", "label_space"} & columns)).to_dict()
    emotions_by_space: dict[str | None, set[str]] = {}
    for space, emotion in zip(rows.get("label_space") or [None] * len(dataset), rows["emotion"]):
        if emotion:
            emotions_by_space.setdefault(space or None, set()).add(emotion)
    names = sorted(name for name in emotions_by_space if name is not None)
    if not names:
        labels = tuple(sorted(emotions_by_space.get(None, ())))
        logger.warning("%s: no `label_space` column; the model's labels are the data's distinct emotions, sorted: %s.",
                       data, ", ".join(labels))
        return TrainingLabelSpace(None, labels)
    carried = _carried_labels(dataset) if len(names) == 1 else None
    labels = {name: _labels_of(name, emotions_by_space[name], carried, data) for name in names}
    if len(names) == 1:
        return TrainingLabelSpace(names[0], labels[names[0]])
    union = tuple(sorted(set().union(*labels.values())))
    logger.warning("%s mixes the label spaces %s: the model's labels are their union, sorted (%d labels); the emotion "
                   "pipeline offers them all unless given candidate_labels.", data, ", ".join(names), len(union))
    return TrainingLabelSpace("+".join(names), union)


def record_label_space(config, space: TrainingLabelSpace | None) -> None:
    """Writes `space` into the model config (None: the config's labels stay) and drops a calibration the base model
    carried (fitted on other weights, it would mislabel the trained model's probabilities)."""
    from modeling_emovit.configuration_emovit import set_emotion_label_space

    if space is not None:
        set_emotion_label_space(config, space.name, space.labels)
        logger.info("Label space %s written into the model config: %s.", space.name, ", ".join(space.labels))
    if getattr(config, "emotion_calibration", None):
        logger.warning("The base model's calibration (fitted on %s) is dropped from the trained model's config; fit "
                       "one for it with `emovit eval --calibrate-on VAL_DATA`.", config.emotion_calibration.get("fitted_on"))
        config.emotion_calibration = None


def _labels_of(name: str, emotions: set[str], carried: list[str] | None, data: str) -> tuple[str, ...]:
    """One declared space's labels: a built-in space's own, else the build's label list (`carried`), else its rows'
    distinct emotions, sorted; refuses emotions outside a built-in or carried list."""
    if name in LABEL_SPACE_POLARITIES or carried:
        labels = label_space_labels(name) if name in LABEL_SPACE_POLARITIES else tuple(carried)
        outside = sorted(emotions - set(labels))
        if outside:
            raise EmoVITInputError(
                f"{data}: emotions {outside} are not labels of the {name!r} label space ({', '.join(labels)}); fix "
                f"the rows' `label_space` or `emotion` and rebuild the dataset."
            )
        return labels
    labels = tuple(sorted(emotions))
    logger.warning("%s: label space %r is not built in and the dataset lists no labels of its own; its labels are the "
                   "data's distinct emotions, sorted: %s.", data, name, ", ".join(labels))
    return labels


def _carried_labels(dataset) -> list[str] | None:
    """The names of the dataset's `label` ClassLabel (the label list a build stores with its rows), else None."""
    feature = (dataset.features or {}).get("label")
    names = getattr(feature, "names", None)
    return list(names) if names else None
