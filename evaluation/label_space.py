"""The label space an evaluation scores over: the dataset's own, the one asked for, or a polarity view of it, checked
against the data.

A built dataset names its space in the `label_space` column and carries its labels as the names of its `label`
ClassLabel (`dataset_builder.schema`), so a space the data defined (`emovit data build --labels`, or an image
folder's class folders) resolves to the same `LabelSpace` the build used, with no flag.

A polarity view asks a dataset's polarity instead of its emotion: `fi-2` is FI scored as positive / negative, the
binary task peers report beside FI-8 (EmoCaliber's VECBench "FI-2"). Its labels and each emotion's polarity come from
the space's own polarity table (`modeling_emovit.labels.LABEL_SPACE_POLARITIES`), so the view cannot drift from it.
"""

from dataclasses import dataclass

from dataset_builder.emotions import LABEL_SPACES, LabelSpace, defined_label_space, get_label_space, polarity_of
from modeling_emovit.errors import EmoVITInputError

# view name -> the label space whose polarity it asks (only the views peers report; a new one is one line here)
POLARITY_VIEWS = {"fi-2": "fi"}


@dataclass(frozen=True)
class PolarityView(LabelSpace):
    """`source`'s images asked for their polarity: labels "negative" and "positive", a reference is its emotion's
    polarity in `source`."""

    source: str = ""

    def reference(self, emotion: str) -> str:
        return polarity_of(emotion, self.source)


def evaluation_label_space(name: "str | LabelSpace") -> LabelSpace:
    """A label space by name (or as given), polarity views included."""
    if isinstance(name, LabelSpace) or name not in POLARITY_VIEWS:
        return get_label_space(name)
    source = POLARITY_VIEWS[name]
    labels = tuple(sorted(set(get_label_space(source).polarity.values()) - {"neutral"}))
    return PolarityView(name, labels, {label: label for label in labels}, source=source)


def evaluation_label_space_names() -> list[str]:
    """Every name `--label-space` accepts: the datasets' spaces, then the polarity views."""
    return [*LABEL_SPACES, *POLARITY_VIEWS]


def reference_label(emotion: str, space: LabelSpace) -> str:
    """The label of `space` an example with this emotion counts as correct for."""
    return space.reference(emotion) if isinstance(space, PolarityView) else emotion


def resolve_label_space(dataset, requested: "str | LabelSpace | None", data: str) -> LabelSpace:
    """The chosen label space, after checking that every reference emotion of the split is one of its labels (of the
    viewed space's, for a polarity view)."""
    declared = sorted(set(dataset["label_space"])) if "label_space" in dataset.column_names else []
    if requested is None and len(declared) != 1:
        raise EmoVITInputError(f"{data}: the split declares label spaces {declared}; choose one with --label-space.")
    space = _named_space(dataset, requested or declared[0], declared)
    emotions_of = get_label_space(space.source) if isinstance(space, PolarityView) else space
    unknown = sorted(set(dataset["emotion"]) - set(emotions_of.labels))
    if unknown:
        raise EmoVITInputError(
            f"{data}: emotions {unknown} are not labels of the {emotions_of.name!r} label space "
            f"({', '.join(emotions_of.labels)}); pass the dataset's own --label-space (it declares {declared})."
        )
    return space


def _named_space(dataset, name: "str | LabelSpace", declared: list[str]) -> LabelSpace:
    """A space as given, the one the data defined under its own name (its `label` ClassLabel), or one by name."""
    carried = _carried_labels(dataset)
    if isinstance(name, str) and name not in LABEL_SPACES and name not in POLARITY_VIEWS and declared == [name] and carried:
        return defined_label_space(name, carried)
    return evaluation_label_space(name)


def _carried_labels(dataset) -> list[str] | None:
    """The names of the dataset's `label` ClassLabel, or None when it has none."""
    feature = dataset.features.get("label") if dataset.features is not None else None
    return list(feature.names) if getattr(feature, "names", None) else None


def in_label_space(dataset, space: LabelSpace):
    """The split with its `emotion` column holding each example's reference in `space` (a polarity view's
    references are polarities; any other space's are the emotions as they are)."""
    if not isinstance(space, PolarityView):
        return dataset
    references = [space.reference(emotion) for emotion in dataset["emotion"]]
    return dataset.remove_columns("emotion").add_column("emotion", references)
