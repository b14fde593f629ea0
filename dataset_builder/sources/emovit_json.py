"""EmoVIT's own instruction JSON (LLaVA style) as a source: records plus their Q/A pairs.

Format: a list of `{"id", "image", "conversations": [{"from": "human", "value": Q}, {"from": "gpt", "value": A}]}`,
one Q/A pair per entry, several entries per image. A `"task"` key (written by `dataset_builder.export`) names each
pair's task; without it, categorical pairs are recognised by the template and the rest taken from the file name
("reasoning" in it) or as conversation. The reverse direction is `dataset_builder.export`.
"""

import json
from collections.abc import Iterator
from pathlib import Path

from modeling_emovit.errors import EmoVITInputError

from ..emotions import normalize_emotion
from ..instructions import CATEGORICAL_PARAPHRASES
from ..records import EmotionRecord
from .base import Source

LICENSE_NOTE = "Converted from an EmoVIT instruction file; the images keep their source dataset's licence (EmoSet)."
_CATEGORICAL_OPENINGS = tuple(template.split("{options}")[0] for template in CATEGORICAL_PARAPHRASES)


def _json_file(root: Path, split: str) -> Path:
    if root.is_file():
        return root
    candidates = [root / f"{split}.json"] + sorted(root.glob("*.json"))
    path = next((path for path in candidates if path.is_file()), None)
    if path is None:
        raise EmoVITInputError(f"{root}: no {split}.json or other EmoVIT instruction .json file found.")
    return path


def _entries(path: Path) -> list[dict]:
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise EmoVITInputError(f"{path}: not a valid EmoVIT instruction JSON file ({error}).") from None
    if not isinstance(entries, list):
        raise EmoVITInputError(f"{path}: expected a JSON list of {{id, image, conversations}} entries.")
    return entries


def _pair(entry) -> tuple[str, str] | None:
    turns = entry.get("conversations") if isinstance(entry, dict) else None
    if not (isinstance(turns, list) and len(turns) >= 2 and isinstance(entry.get("image"), str)):
        return None
    human, gpt = turns[0], turns[1]
    if not (isinstance(human, dict) and isinstance(gpt, dict)):
        return None
    return str(human.get("value", "")), str(gpt.get("value", ""))


def _task(entry: dict, question: str, path: Path) -> str:
    if entry.get("task"):
        return entry["task"]
    if question.startswith(_CATEGORICAL_OPENINGS):
        return "categorical"
    return "reasoning" if "reasoning" in path.stem.lower() else "conversation"


def _image_path(folder: Path, image: str) -> Path:
    """EmoVIT names images "amusement_03317.jpg"; EmoSet keeps them in image/amusement/."""
    name = Path(image)
    for candidate in (folder / name, folder / "image" / name, folder / "images" / name,
                      folder / "image" / name.stem.split("_")[0] / name.name):
        if candidate.is_file():
            return candidate
    return folder / name


def read(root: Path, split: str, report) -> Iterator[EmotionRecord]:
    """One record per image; the label from its categorical answer, else from the image name's emotion prefix."""
    path = _json_file(root, split)
    labels: dict[str, str | None] = {}
    for entry in _entries(path):
        pair = _pair(entry)
        if pair is None:
            report.skip("malformed EmoVIT JSON entry", str(entry)[:80])
            continue
        image = entry["image"]
        if _task(entry, pair[0], path) == "categorical":
            labels[image] = normalize_emotion(pair[1], "emoset") or pair[1]
        else:
            labels.setdefault(image, None)
    for image, label in labels.items():
        stem = Path(image).stem
        label = label or stem.split("_")[0]
        yield EmotionRecord(stem, str(_image_path(path.parent, image)), label, "emoset", split, "emovit_json")


def generations(root: Path, split: str) -> Iterator[dict]:
    """The file's conversation and reasoning pairs as generation-JSONL entries (one per image and task)."""
    path = _json_file(root, split)
    grouped: dict[tuple[str, str], list[dict]] = {}
    for entry in _entries(path):
        pair = _pair(entry)
        if pair is None:
            continue
        task = _task(entry, pair[0], path)
        if task != "categorical":
            grouped.setdefault((Path(entry["image"]).stem, task), []).append({"question": pair[0], "answer": pair[1]})
    for (image_id, task), pairs in grouped.items():
        yield {"id": image_id, "task": task, "pairs": pairs, "model": None, "backend": "emovit_json"}


SOURCE = Source("emovit_json", "emoset", LICENSE_NOTE, read, generations)
