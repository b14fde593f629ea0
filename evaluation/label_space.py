"""The label space an evaluation scores over: the dataset's own, or the one asked for, checked against the data.

A built dataset names its space in the `label_space` column and carries its labels as the names of its `label`
ClassLabel (`dataset_builder.schema`), so a space the data defined (`emovit data build --labels`, or an image
folder's class folders) resolves to the same `LabelSpace` the build used, with no flag.
"""

from dataset_builder.emotions import LABEL_SPACES, defined_label_space, get_label_space
from modeling_emovit.errors import EmoVITInputError


def _carried_labels(dataset) -> list[str] | None:
    """The names of the dataset's `label` ClassLabel, or None when it has none."""
    feature = dataset.features.get("label") if dataset.features is not None else None
    return list(feature.names) if getattr(feature, "names", None) else None


def resolve_label_space(dataset, requested: str | None, data: str):
    """The chosen label space, after checking that every reference emotion of the split is one of its labels."""
    declared = sorted(set(dataset["label_space"])) if "label_space" in dataset.column_names else []
    if requested is None and len(declared) != 1:
        raise EmoVITInputError(f"{data}: the split declares label spaces {declared}; choose one with --label-space.")
    name = requested or declared[0]
    carried = _carried_labels(dataset)
    if name not in LABEL_SPACES and declared == [name] and carried:
        space = defined_label_space(name, carried)
    else:
        space = get_label_space(name)
    unknown = sorted(set(dataset["emotion"]) - set(space.labels))
    if unknown:
        raise EmoVITInputError(
            f"{data}: emotions {unknown} are not labels of the {space.name!r} label space ({', '.join(space.labels)}); "
            f"pass the dataset's own --label-space (it declares {declared})."
        )
    return space
