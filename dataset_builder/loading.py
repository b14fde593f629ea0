"""Loading one split of a built dataset (`emovit data build` output or its Hub id) for training and evaluation,
with one-sentence errors instead of the library's tracebacks."""

from modeling_emovit.errors import EmoVITInputError


def load_split(data: str, config: str, split: str, required=("id", "image", "emotion")):
    """`datasets.load_dataset(data, config, split=split)`, refusing a missing dataset, an empty split or missing
    `required` columns by name."""
    import datasets

    empty = EmoVITInputError(
        f"{data}: split {split!r} of config {config!r} is empty; build one with examples (`emovit data build`)."
    )
    try:
        dataset = datasets.load_dataset(data, config, split=split)
    except ValueError as error:  # unknown config or split (datasets lists the available ones), or no rows at all
        if "corresponds to no data" in str(error):
            raise empty from None
        raise EmoVITInputError(f"{data}: cannot load config {config!r}, split {split!r} ({error}).") from None
    except (FileNotFoundError, ConnectionError):  # offline, an unknown Hub id surfaces as a ConnectionError
        raise EmoVITInputError(
            f"{data}: no such dataset folder, or a Hub dataset that cannot be reached; pass a `emovit data build` output."
        ) from None
    if len(dataset) == 0:
        raise empty
    missing = set(required) - set(dataset.column_names)
    if missing:
        raise EmoVITInputError(
            f"{data}: split {split!r} lacks the columns {sorted(missing)}; rebuild it with `emovit data build`."
        )
    return dataset
