"""Generated instruction pairs joined to images: the JSONL of `emovit data generate`, indexed by image id and task.

Flow: generations.jsonl -> `index_generations` -> manifests (each record with its pairs) -> builder rows.
Failed, empty, malformed and duplicate entries are counted in the build report, never silently dropped.
"""

from collections.abc import Iterable, Iterator
from pathlib import Path

from modeling_emovit.errors import EmoVITInputError

from .jsonl import iter_objects
from .report import BuildReport
from .schema import GENERATED_TASKS, MAX_TEXT_CHARS


OVERSIZED_PAIR = f"generated question or answer over {MAX_TEXT_CHARS:,} characters (pair left out)"


def _valid_pairs(entry: dict, item: str, report: BuildReport) -> list[dict]:
    """The entry's question/answer pairs with both texts given; a pair with a text over the cap is counted."""
    pairs = entry.get("pairs") or []
    given = [
        {"question": str(pair["question"]), "answer": str(pair["answer"])}
        for pair in (pairs if isinstance(pairs, list) else [])
        if isinstance(pair, dict) and pair.get("question") and pair.get("answer")
    ]
    kept = [pair for pair in given if max(len(pair["question"]), len(pair["answer"])) <= MAX_TEXT_CHARS]
    for _ in range(len(given) - len(kept)):
        report.skip(OVERSIZED_PAIR, item)
    return kept


def index_generations(
    entries: Iterable[dict], tasks, report: BuildReport, authors: dict | None = None
) -> dict[str, dict[str, list[dict]]]:
    """image id -> task -> Q/A pairs; failed, empty, malformed and duplicate entries are counted as skipped.

    `authors`, when given, receives (image id, task) -> `written_by` of each indexed entry."""
    index: dict[str, dict[str, list[dict]]] = {}
    for entry in entries:
        item = f"{entry.get('id')}:{entry.get('task')}"
        pairs = _valid_pairs(entry, item, report)
        if "error" in entry:
            report.skip("generation failed (error line)", item)
        elif entry.get("task") not in GENERATED_TASKS or not entry.get("id"):
            report.skip("generation line without a valid id and task", item)
        elif not pairs:
            report.skip("generation without question/answer pairs", item)
        elif entry["task"] not in tasks:
            report.note("generation for a task not built", item)
        elif entry["task"] in index.get(str(entry["id"]), {}):
            report.skip("duplicate generation for an image and task", item)
        else:
            index.setdefault(str(entry["id"]), {})[entry["task"]] = pairs
            if authors is not None:
                authors[(str(entry["id"]), entry["task"])] = written_by(entry)
    return index


def written_by(entry: dict) -> str:
    """"backend (model)" of a generation line, as `emovit data generate` records them ("rules (rules-offline)")."""
    backend, model = entry.get("backend") or "unrecorded backend", entry.get("model")
    return f"{backend} ({model})" if model else str(backend)


def read_generations_file(path, report: BuildReport) -> Iterator[dict]:
    """Entries of a generation JSONL file; unreadable lines are counted as skipped."""
    path = Path(path)
    if not path.is_file():
        raise EmoVITInputError(f"{path}: generations file not found (write it with `emovit data generate`).")
    with open(path, "rb") as handle:
        yield from iter_objects(handle, path.name, lambda item: report.skip("unreadable generation line", item))
