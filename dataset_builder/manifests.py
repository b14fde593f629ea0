"""Manifests: a source read once into JSONL shards of records (paths, labels, clues, generated pairs; never pixels).

Flow: source reader -> records + generation index -> manifests (this module) -> one builder run per config.
Reading the source once and sharding the result lets every config and every worker process reuse it. Text fields
longer than `schema.MAX_TEXT_CHARS` are left empty here, and counted.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from .emotions import LabelSpace, get_label_space
from .generated_pairs import index_generations, read_generations_file
from .mix import mixed
from .records import EmotionRecord
from .report import BuildReport
from .schema import MAX_OBJECTS, MAX_TEXT_CHARS
from .sources import get_source, read_records


@dataclass
class Manifests:
    """The JSONL shards of one build's records, and the label spaces they use (name -> labels, in the order the
    records first name them)."""

    paths: list[str]
    label_spaces: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def labels(self) -> tuple[str, ...]:
        """The `label` column's names: the one space's labels, or every space's in turn (each label once)."""
        return tuple(dict.fromkeys(label for labels in self.label_spaces.values() for label in labels))


def _as_float(value, key: str, item: str, report: BuildReport) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        report.note(f"unreadable {key} value (kept, left empty)", item)
        return None


def capped_text(value, key: str, item: str, report: BuildReport) -> str | None:
    """`value` as text, or None (counted in `report`) when it is longer than MAX_TEXT_CHARS."""
    if value is None:
        return None
    text = str(value)
    if len(text) > MAX_TEXT_CHARS:
        report.note(f"{key} over {MAX_TEXT_CHARS:,} characters (image kept, {key} left empty)", item)
        return None
    return text


def attributes_struct(record: EmotionRecord, report: BuildReport) -> dict:
    """The record's clues in the fixed `attributes` schema (absent clues are None, objects []); text over the cap is
    left out and counted."""
    given = record.attributes or {}
    numbers = ("brightness", "colorfulness", "valence", "arousal")
    struct = {key: _as_float(given.get(key), key, record.id, report) for key in numbers}
    for key in ("scene", "facial_expression", "human_action"):
        struct[key] = capped_text(given.get(key), key, record.id, report)
    objects = given.get("object") or []
    objects = objects if isinstance(objects, list) else [objects]
    if len(objects) > MAX_OBJECTS:
        report.note(f"object list over {MAX_OBJECTS} names (the first {MAX_OBJECTS} kept)", record.id)
    names = (capped_text(name, "object name", record.id, report) for name in objects[:MAX_OBJECTS])
    struct["object"] = [name for name in names if name is not None]
    distribution = record.label_distribution or {}
    struct["label_distribution"] = [{"label": label, "probability": float(p)} for label, p in distribution.items()]
    return struct


def write_manifests(
    source: str,
    root,
    split: str,
    generations,
    tasks,
    report: BuildReport,
    folder: Path,
    num_shards: int = 1,
    skip_unknown: bool = False,
    mix: dict[str, tuple[str, ...]] | None = None,
    allow_outside_root: bool = False,
    label_space: LabelSpace | None = None,
) -> Manifests:
    """Reads the source once and writes its records, with their generated pairs, round-robin into JSONL shards.

    `mix` (image id -> tasks, `dataset_builder.mix`) keeps only the images it names, each for its tasks; images left
    out and generations for tasks the mix does not give an image are counted in `report`. `label_space` puts every
    record in that space (`sources.read_records`).
    """
    reader = get_source(source)
    if generations is not None:
        entries = read_generations_file(generations, report)
    elif reader.generations is not None:
        entries = reader.generations(Path(root), split)
    else:
        entries = ()
    authors: dict[tuple[str, str], str] = {}
    index = index_generations(entries, tasks, report, authors)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"records-{shard:05d}.jsonl" for shard in range(max(1, num_shards))]
    handles = [open(path, "w", encoding="utf-8") for path in paths]
    manifests = Manifests([str(path) for path in paths])
    try:
        records = read_records(source, root, split, report, skip_unknown=skip_unknown,
                               allow_outside_root=allow_outside_root, label_space=label_space)
        for number, record in enumerate(mixed(records, mix, index, report) if mix is not None else records):
            if record.label_space not in manifests.label_spaces:
                manifests.label_spaces[record.label_space] = (label_space or get_label_space(record.label_space)).labels
            generations = index.pop(record.id, {})
            line = {
                "id": record.id,
                "image_path": record.image_path,
                "source": record.source,
                "emotion": record.label,
                "label_space": record.label_space,
                "attributes": attributes_struct(record, report),
                "caption": capped_text(record.caption, "caption", record.id, report),
                "generations": generations,
                "generated_by": {task: authors[(record.id, task)] for task in generations},
                "tasks": None if record.tasks is None else list(record.tasks),
            }
            handles[number % len(handles)].write(json.dumps(line, ensure_ascii=False) + "\n")
    finally:
        for handle in handles:
            handle.close()
    for image_id, by_task in index.items():
        for task in by_task:
            report.skip("generation for an image not in this split", f"{image_id}:{task}")
    return manifests
