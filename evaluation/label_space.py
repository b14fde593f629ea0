"""The label space an evaluation scores over: the dataset's own, or the one asked for, checked against the data."""

from dataset_builder.emotions import get_label_space
from modeling_emovit.errors import EmoVITInputError


def resolve_label_space(dataset, requested: str | None, data: str):
    """The chosen label space, after checking that every reference emotion of the split is one of its labels."""
    declared = sorted(set(dataset["label_space"])) if "label_space" in dataset.column_names else []
    if requested is None and len(declared) != 1:
        raise EmoVITInputError(f"{data}: the split declares label spaces {declared}; choose one with --label-space.")
    space = get_label_space(requested or declared[0])
    unknown = sorted(set(dataset["emotion"]) - set(space.labels))
    if unknown:
        raise EmoVITInputError(
            f"{data}: emotions {unknown} are not labels of the {space.name!r} label space ({', '.join(space.labels)}); "
            f"pass the dataset's own --label-space (it declares {declared})."
        )
    return space
