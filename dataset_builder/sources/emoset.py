"""EmoSet-118K as released (Yang et al., ICCV 2023): split lists plus one JSON annotation of visual clues per image.

Layout: `image/<emotion>/<emotion>_NNNNN.jpg`, `annotation/<emotion>/<emotion>_NNNNN.json` and split files
`train.json`/`val.json`/`test.json`, each a list of `[label, image_path, annotation_path]`.
"""

import json
from collections.abc import Iterator
from pathlib import Path

from modeling_emovit.errors import EmoVITInputError, reading

from ..jsonl import json_kind
from ..records import EmotionRecord
from ..schema import CLUE_KEYS
from .base import Source, stays_under

_SPLIT_FILES = {"validation": "val", "dev": "val"}
# EmoSet's annotations are a few hundred bytes; a larger file is not read (a 200 MB `scene` would be held in memory
# several times over before its field cap, `schema.MAX_TEXT_CHARS`, could leave it out).
MAX_ANNOTATION_BYTES = 1 << 20
OVERSIZED_ANNOTATION = f"annotation file over {MAX_ANNOTATION_BYTES >> 20} MiB (not read; image kept, clues left empty)"
LICENSE_NOTE = (
    "EmoSet images come from social networks and artistic sources; the EmoSet authors release them for "
    "non-commercial research only (https://vcc.tech/EmoSet). Check their terms before redistributing."
)


def read(root: Path, split: str, report) -> Iterator[EmotionRecord]:
    split_file = root / f"{_SPLIT_FILES.get(split, split)}.json"
    if not split_file.is_file():
        raise EmoVITInputError(f"{split_file}: EmoSet split file not found; expected train.json, val.json, test.json.")
    with reading(split_file):
        entries = json.loads(split_file.read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise EmoVITInputError(
            f"{split_file}: expected a JSON list of [label, image path, annotation path] entries, not "
            f"{json_kind(entries)}."
        )
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 3 and all(isinstance(cell, str) and cell for cell in entry)):
            report.skip("malformed split entry", str(entry)[:80])
            continue
        label, image_path, annotation_path = entry
        if not stays_under(annotation_path):
            report.skip("annotation path leading outside --root", str(entry)[:80])
            continue
        item_id = Path(image_path).stem
        attributes = _read_annotation(root / annotation_path, item_id, report)
        if attributes is not None:
            yield EmotionRecord(item_id, str(root / image_path), label, "emoset", split, "emoset", attributes)


def _read_annotation(path: Path, item_id: str, report) -> dict | None:
    """Visual clues of one image; None (counted as skipped) when the file is missing or unreadable."""
    if not path.is_file():
        report.skip("missing annotation file", item_id)
        return None
    if path.stat().st_size > MAX_ANNOTATION_BYTES:
        report.note(OVERSIZED_ANNOTATION, item_id)
        return dict.fromkeys(CLUE_KEYS)
    try:
        annotation = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(annotation, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError):
        report.skip("unreadable annotation file", item_id)
        return None
    missing = [key for key in CLUE_KEYS if key not in annotation]
    if missing:
        report.note("annotation missing keys (kept, clues left empty)", item_id)
    return {key: annotation.get(key) for key in CLUE_KEYS}


SOURCE = Source("emoset", "emoset", LICENSE_NOTE, read)
