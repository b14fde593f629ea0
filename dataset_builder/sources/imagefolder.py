"""A generic image folder in the Hugging Face `imagefolder` convention, read the way `load_dataset("imagefolder")`
reads it: images plus `metadata.jsonl` or `metadata.csv`, or plain class folders.

With a metadata file: a `file_name` column and a `label` (or `emotion`) column; optional columns `id`, `label_space`
(default emoset), `caption`, the EmoSet clues (brightness, colorfulness, scene, object as a JSON list or "a;b" text,
facial_expression, human_action), valence, arousal. Without one: `<folder>/<label>/<image>`, each image labelled
with its folder's name, and the labels are the folder names, sorted (datasets' imagefolder infers its `label`
ClassLabel the same way); they define the build's label space unless --labels or --label-space says otherwise.
The folder is `<root>/<split>/` when it exists, else `<root>/` (metadata rows with a `split` column keep only that
split). Hidden files and folders are ignored, as datasets ignores them.
"""

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from modeling_emovit.errors import EmoVITInputError, reading

from ..emotions import CUSTOM_SPACE
from ..jsonl import iter_objects
from ..records import EmotionRecord
from .base import Source, is_image, record_id

LICENSE_NOTE = "Images from a local image folder: their licence is the one their owner gives them."
_FLOAT_KEYS = ("brightness", "colorfulness", "valence", "arousal")
_TEXT_KEYS = ("scene", "facial_expression", "human_action")


_TEXT_COLUMNS = ("file_name", "label", "emotion", "label_space", "caption", "split")


def _rows(path: Path, report) -> Iterator[dict]:
    if path.suffix == ".csv":
        with reading(path), open(path, newline="", encoding="utf-8") as handle:
            yield from csv.DictReader(handle)
        return
    with open(path, "rb") as handle:
        yield from iter_objects(handle, path.name, lambda item: report.skip("unreadable metadata line", item))


def _attributes(row: dict, item_id: str, report) -> dict:
    attributes = {key: row[key] for key in _TEXT_KEYS if row.get(key) not in (None, "")}
    for key in _FLOAT_KEYS:
        if row.get(key) not in (None, ""):
            try:
                attributes[key] = float(row[key])
            except (TypeError, ValueError):
                report.note(f"unreadable {key} value (kept, left empty)", item_id)
    objects = _objects(row.get("object"), item_id, report)
    if objects:
        attributes["object"] = objects
    return attributes


def _objects(cell, item_id: str, report) -> list:
    """The `object` cell as a list: a JSON list, "a;b" text or (JSONL) a list already; a broken JSON list is noted."""
    if not isinstance(cell, str):
        return cell if isinstance(cell, list) else [] if cell is None else [cell]
    if not cell.startswith("["):
        return [part.strip() for part in cell.split(";") if part.strip()]
    try:
        return json.loads(cell)  # text opening with "[" parses to a list or not at all
    except json.JSONDecodeError:
        report.note("unreadable object list (kept, left empty)", item_id)
        return []


def _folder_and_metadata(root: Path, split: str) -> tuple[Path, Path | None]:
    folder = root / split if (root / split).is_dir() else root
    metadata = next((folder / name for name in ("metadata.jsonl", "metadata.csv") if (folder / name).is_file()), None)
    return folder, metadata


def _class_folder_images(folder: Path) -> Iterator[Path]:
    """Images under `folder`, hidden ones and those in hidden folders left out, in path order."""
    for path in sorted(folder.rglob("*")):
        if is_image(path) and not any(part.startswith(".") for part in path.relative_to(folder).parts):
            yield path


def class_labels(root: Path, split: str) -> tuple[str, ...] | None:
    """The labels of a folder without a metadata file: the names of the class folders holding images, sorted;
    None when the folder has a metadata file (its rows name their labels)."""
    folder, metadata = _folder_and_metadata(root, split)
    if metadata is not None:
        return None
    labels = sorted({path.parent.name for path in _class_folder_images(folder) if path.parent.parent == folder})
    if not labels:
        raise EmoVITInputError(
            f"{folder}: neither a metadata.jsonl or metadata.csv (columns file_name and label) nor class folders "
            "(<folder>/<label>/<image>) found."
        )
    return tuple(labels)


def _class_folder_records(folder: Path, split: str, report) -> Iterator[EmotionRecord]:
    for path in _class_folder_images(folder):
        if path.parent.parent != folder:
            report.skip("image outside a class folder (<folder>/<label>/<image>)", record_id(path, folder))
            continue
        yield EmotionRecord(record_id(path, folder), str(path), path.parent.name, CUSTOM_SPACE, split, "imagefolder")


def read(root: Path, split: str, report) -> Iterator[EmotionRecord]:
    folder, metadata = _folder_and_metadata(root, split)
    if metadata is None:
        yield from _class_folder_records(folder, split, report)
        return
    for row in _rows(metadata, report):
        if folder == root and row.get("split") not in (None, "", split):
            continue
        file_name = row.get("file_name")
        if not file_name:
            report.skip("metadata row without file_name", str(row)[:80])
            continue
        if any(not isinstance(row.get(key), (str, type(None))) for key in _TEXT_COLUMNS):
            report.skip("metadata row with a non-text file_name, label, label_space, caption or split", str(row)[:80])
            continue
        item_id = str(row.get("id") or Path(file_name).with_suffix("").as_posix())
        yield EmotionRecord(
            item_id,
            str(folder / file_name),
            row.get("label") or row.get("emotion"),
            row.get("label_space") or "emoset",
            split,
            "imagefolder",
            _attributes(row, item_id, report),
            caption=row.get("caption") or None,
        )


SOURCE = Source("imagefolder", "emoset", LICENSE_NOTE, read, class_labels=class_labels)
