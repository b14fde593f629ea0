"""Emotion instruction generation: EmotionRecords + captions -> conversation / reasoning pairs, one JSONL line each.

Flow: source reader -> EmotionRecord -> [captions] -> plan (`items`) -> backend (`backends`, `batch`) -> writer
(`writer`) -> generations.jsonl -> `emovit data build --generations`. A run skips the (id, task) pairs already in
the output, so a run killed at any moment and started again ends with every pair exactly once.
"""

from collections.abc import Iterable
from pathlib import Path

from ..jsonl import read_resumable
from ..records import EmotionRecord
from ..report import GenerationReport
from ..schema import GENERATED_TASKS
from .items import plan_items
from .pricing import load_prices
from .writer import OutputWriter


def read_done_keys(out: str | Path, report: GenerationReport) -> set[tuple[str, str]]:
    """(id, task) of every complete line of `out`; garbled lines are dropped (their items are done again) and
    counted in `report`."""
    resumed = read_resumable(out)
    for _ in range(resumed.garbled_lines):
        report.note("garbled line in the output dropped (its item is generated again)", str(out))
    return {(str(row.get("id")), str(row.get("task"))) for row in resumed.rows}


def generate_instructions(records: Iterable[EmotionRecord], backend, out: str | Path, tasks=GENERATED_TASKS,
                          captions: dict[str, str] | None = None, max_records: int | None = None,
                          prices: dict | None = None, progress: bool = True,
                          report: GenerationReport | None = None) -> GenerationReport:
    """Write pairs for every (record, task) not yet in `out` with `backend` (RulesBackend, OpenAIBackend or
    batch.BatchBackend); return the run's counts (in `report`, which may already hold the source reader's skips).
    `captions` (id -> caption) replaces `record.caption`."""
    report = report if report is not None else GenerationReport()
    items = plan_items(records, tasks, read_done_keys(out, report), captions, max_records, report)
    writer = OutputWriter(out, backend.name, report, len(items), prices if prices is not None else load_prices(),
                          backend.batch, progress)
    try:
        if items:  # nothing left: no client is made, no library loaded, no request sent
            report.requests = backend.run(items, writer).requests
    finally:
        writer.close()
    return report
