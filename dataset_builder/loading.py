"""Loading one split of a built dataset (`emovit data build` output or its Hub id) for training and evaluation,
with one-sentence errors instead of the library's tracebacks.

A local folder with a dataset card is read through its card's `configs` block as Parquet files named by absolute
path, with the config's `filters` (a task's config reads the `all` files filtered on `task`): datasets 5.2 caches a
local folder's Arrow copy under a name that two different folders can share (two folders both called `data` with
the same layout), and would then hand one folder's rows to the other. Absolute file names give each folder, and
each rebuild of it, a cache of its own.
"""

from pathlib import Path

from modeling_emovit.errors import EmoVITInputError

from .schema import MESSAGES_CONFIG


def local_parquet_files(folder: Path, config: str | None, split: str) -> tuple[list[str], list | None] | None:
    """Absolute Parquet paths of `config`/`split` as the folder's card lists them, and the config's `filters`; None
    for a folder without a card `configs` block (read then as `load_dataset(folder)` would)."""
    from huggingface_hub import DatasetCard

    card = folder / "README.md"
    configs = DatasetCard.load(card).data.to_dict().get("configs") if card.is_file() else None
    if not configs:
        return None
    by_name = {entry["config_name"]: entry for entry in configs}
    name = config or next((entry["config_name"] for entry in configs if entry.get("default")), configs[0]["config_name"])
    if name not in by_name:
        hint = " (build with --messages to write it)" if name == MESSAGES_CONFIG else ""
        raise EmoVITInputError(f"{folder}: no config {name!r}{hint}; its configs are {', '.join(by_name)}.")
    patterns = {entry["split"]: entry["path"] for entry in by_name[name]["data_files"]}
    if split not in patterns:
        raise EmoVITInputError(f"{folder}: config {name!r} has no split {split!r}; its splits are {', '.join(patterns)}.")
    paths = patterns[split] if isinstance(patterns[split], list) else [patterns[split]]
    files = sorted(str(path.resolve()) for pattern in paths for path in folder.glob(pattern))
    return files, by_name[name].get("filters")


def _load(data: str, config: str | None, split: str, streaming: bool):
    import datasets

    folder = Path(data)
    local = local_parquet_files(folder, config, split) if folder.is_dir() else None
    if local is None:
        return datasets.load_dataset(data, config, split=split, streaming=streaming)
    files, filters = local
    if not files:
        raise ValueError("corresponds to no data")
    return datasets.load_dataset("parquet", data_files={split: files}, split=split, filters=filters, streaming=streaming)


def is_empty(dataset) -> bool:
    """Whether a split has no rows; a streamed split (`IterableDataset`, no length) is asked for its first row."""
    import datasets

    if isinstance(dataset, datasets.IterableDataset):
        return next(iter(dataset.take(1)), None) is None
    return len(dataset) == 0


def load_split(data: str, config: str | None, split: str, required=("id", "image", "emotion"), streaming=False):
    """One split of a dataset folder or Hub id, refusing a missing dataset, an unknown config or split, an empty
    split or missing `required` columns by name. `streaming`: an `IterableDataset` read as it is iterated."""
    empty = EmoVITInputError(
        f"{data}: split {split!r} of config {config!r} is empty; build one with examples (`emovit data build`)."
    )
    try:
        dataset = _load(data, config, split, streaming)
    except ValueError as error:  # unknown config or split (datasets lists the available ones), or no rows at all
        if "corresponds to no data" in str(error):
            raise empty from None
        raise EmoVITInputError(f"{data}: cannot load config {config!r}, split {split!r} ({error}).") from None
    except (FileNotFoundError, ConnectionError):  # offline, an unknown Hub id surfaces as a ConnectionError
        raise EmoVITInputError(
            f"{data}: no such dataset folder, or a Hub dataset that cannot be reached; pass a `emovit data build` output."
        ) from None
    if is_empty(dataset):
        raise empty
    missing = set(required) - set(dataset.column_names or required)  # a stream may not know its columns
    if missing:
        raise EmoVITInputError(
            f"{data}: split {split!r} lacks the columns {sorted(missing)}; rebuild it with `emovit data build`."
        )
    return dataset
