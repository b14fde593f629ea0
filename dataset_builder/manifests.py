"""Manifests: a source read once into JSONL shards of records (paths, labels, clues, generated pairs; never pixels).

Flow: source reader -> records + generation index -> manifests (this module) -> one builder run per config.
Reading the source once and sharding the result lets every config and every worker process reuse it.
"""

import json
from pathlib import Path

from .generations import index_generations, read_generations_file
from .mix import mixed
from .records import EmotionRecord
from .report import BuildReport
from .sources import get_source, read_records


def _as_float(value, key: str, item: str, report: BuildReport) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        report.note(f"unreadable {key} value (kept, left empty)", item)
        return None


def attributes_struct(record: EmotionRecord, report: BuildReport) -> dict:
    """The record's clues in the fixed `attributes` schema (absent clues are None, objects [])."""
    given = record.attributes or {}
    numbers = ("brightness", "colorfulness", "valence", "arousal")
    struct = {key: _as_float(given.get(key), key, record.id, report) for key in numbers}
    for key in ("scene", "facial_expression", "human_action"):
        struct[key] = None if given.get(key) is None else str(given[key])
    objects = given.get("object") or []
    struct["object"] = [str(name) for name in (objects if isinstance(objects, list) else [objects])]
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
) -> list[str]:
    """Reads the source once and writes its records, with their generated pairs, round-robin into JSONL shards.

    `mix` (image id -> tasks, `dataset_builder.mix`) keeps only the images it names, each for its tasks; images left
    out and generations for tasks the mix does not give an image are counted in `report`.
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
    try:
        records = read_records(source, root, split, report, skip_unknown=skip_unknown,
                               allow_outside_root=allow_outside_root)
        for number, record in enumerate(mixed(records, mix, index, report) if mix is not None else records):
            generations = index.pop(record.id, {})
            line = {
                "id": record.id,
                "image_path": record.image_path,
                "source": record.source,
                "emotion": record.label,
                "label_space": record.label_space,
                "attributes": attributes_struct(record, report),
                "caption": record.caption,
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
    return [str(path) for path in paths]
