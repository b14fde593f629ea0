"""A generic image folder in the Hugging Face `imagefolder` convention: images plus `metadata.jsonl` or
`metadata.csv` with a `file_name` column and a `label` (or `emotion`) column.

Optional columns: `id`, `label_space` (default emoset), `caption`, the EmoSet clues (brightness, colorfulness,
scene, object as a JSON list or "a;b" text, facial_expression, human_action), valence, arousal. The folder is
`<root>/<split>/` when it exists, else `<root>/` (rows with a `split` column keep only that split).
"""

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from modeling_emovit.errors import EmoVITInputError, reading

from ..records import EmotionRecord
from ..jsonl import iter_objects
from .base import Source

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


def read(root: Path, split: str, report) -> Iterator[EmotionRecord]:
    folder = root / split if (root / split).is_dir() else root
    metadata = next((folder / name for name in ("metadata.jsonl", "metadata.csv") if (folder / name).is_file()), None)
    if metadata is None:
        raise EmoVITInputError(f"{folder}: no metadata.jsonl or metadata.csv (columns file_name and label) found.")
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


SOURCE = Source("imagefolder", "emoset", LICENSE_NOTE, read)
