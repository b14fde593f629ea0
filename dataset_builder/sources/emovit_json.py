"""EmoVIT's own instruction JSON (LLaVA style) as a source: records plus their Q/A pairs.

Format: a list of `{"id", "image", "conversations": [{"from": "human", "value": Q}, {"from": "gpt", "value": A}]}`,
one Q/A pair per entry, several entries per image. A `"task"` key (written by `dataset_builder.export`) names each
pair's task; without it, categorical pairs are recognised by the template, and the others take the task the file's
name gives ("reasoning" or "conversation" in it) when the file holds no categorical entries. The release's merged
file (`emo/all.py` output) marks nothing: its reasoning and conversation entries have the same shape and are
shuffled together, so they are taken as conversation and counted in a note (split them into per-task files, or add
`"task"` keys, to keep reasoning apart). Each image gets categorical rows only if the file has categorical entries
for it (the release keeps categorical and conversation images disjoint). Images are found beside the file, in
`image/` (EmoSet's `image/<emotion>/`), or in the release's flat folders `image/train_image/` (its `all.py`) and
`image/all_reasoning/` (its LAVIS dataset config). The reverse direction is `dataset_builder.export`.
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


UNMARKED = "generated entry of a merged file without a task key (taken as conversation)"


def _is_categorical(question: str) -> bool:
    return question.startswith(_CATEGORICAL_OPENINGS)


def _file_task(path: Path, entries: list) -> str | None:
    """The task a single-task file's name gives its generated entries; None for a merged file (categorical inside)."""
    if any(pair is not None and _is_categorical(pair[0]) for pair in map(_pair, entries)):
        return None
    named = [task for task in ("reasoning", "conversation") if task in path.stem.lower()]
    return named[0] if len(named) == 1 else None


def _task(entry: dict, question: str, file_task: str | None) -> str:
    if entry.get("task"):
        return entry["task"]
    if _is_categorical(question):
        return "categorical"
    return file_task or "conversation"


def _image_path(folder: Path, image: str) -> Path:
    """EmoVIT names images "amusement_03317.jpg": beside the file, EmoSet's image/<emotion>/, or the release's flat
    image/train_image/ and image/all_reasoning/ folders."""
    name = Path(image)
    for candidate in (folder / name, folder / "image" / name, folder / "images" / name,
                      folder / "image" / name.stem.split("_")[0] / name.name,
                      folder / "image" / "train_image" / name, folder / "train_image" / name,
                      folder / "image" / "all_reasoning" / name, folder / "all_reasoning" / name):
        if candidate.is_file():
            return candidate
    return folder / name


def read(root: Path, split: str, report) -> Iterator[EmotionRecord]:
    """One record per image, limited to the tasks the file has for it; the label from its categorical answer, else
    from the image name's emotion prefix."""
    path = _json_file(root, split)
    entries = _entries(path)
    file_task = _file_task(path, entries)
    labels: dict[str, str | None] = {}
    tasks: dict[str, set] = {}
    for entry in entries:
        pair = _pair(entry)
        if pair is None:
            report.skip("malformed EmoVIT JSON entry", str(entry)[:80])
            continue
        image, task = entry["image"], _task(entry, pair[0], file_task)
        tasks.setdefault(image, set()).add(task)
        if task == "categorical":
            labels[image] = normalize_emotion(pair[1], "emoset") or pair[1]
        else:
            labels.setdefault(image, None)
            if not entry.get("task") and file_task is None:
                report.note(UNMARKED, Path(image).stem)
    for image, label in labels.items():
        stem = Path(image).stem
        label = label or stem.split("_")[0]
        yield EmotionRecord(stem, str(_image_path(path.parent, image)), label, "emoset", split, "emovit_json",
                            tasks=tuple(sorted(tasks[image])))


def generations(root: Path, split: str) -> Iterator[dict]:
    """The file's conversation and reasoning pairs as generation-JSONL entries (one per image and task)."""
    path = _json_file(root, split)
    entries = _entries(path)
    file_task = _file_task(path, entries)
    grouped: dict[tuple[str, str], list[dict]] = {}
    for entry in entries:
        pair = _pair(entry)
        if pair is None:
            continue
        task = _task(entry, pair[0], file_task)
        if task != "categorical":
            grouped.setdefault((Path(entry["image"]).stem, task), []).append({"question": pair[0], "answer": pair[1]})
    for (image_id, task), pairs in grouped.items():
        yield {"id": image_id, "task": task, "pairs": pairs, "model": None, "backend": "emovit_json"}


SOURCE = Source("emovit_json", "emoset", LICENSE_NOTE, read, generations)
