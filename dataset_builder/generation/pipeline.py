"""Emotion instruction generation: EmotionRecords + captions -> conversation / reasoning pairs, one JSONL line each.

Flow: source reader -> EmotionRecord -> [captions] -> plan (`items`) -> backend (`backends`, `batch`) -> writer
(`writer`) -> generations.jsonl -> `emovit data build --generations`. A run skips the (id, task) pairs already in
the output, so a run killed at any moment and started again ends with every pair exactly once; a second run on the
same output while one is under way is refused (`<out>.lock`), so no request is sent twice.
"""

import contextlib
from collections.abc import Iterable
from pathlib import Path


from ..jsonl import read_resumable
from ..output_lock import exclusive_lock
from ..records import EmotionRecord
from ..report import GenerationReport
from ..schema import GENERATED_TASKS
from .items import plan_items
from .pricing import CostEstimate, load_prices
from .writer import OutputWriter


def read_done_keys(out: str | Path, report: GenerationReport) -> set[tuple[str, str]]:
    """(id, task) of every complete line of `out`; garbled lines are dropped (their items are done again) and
    counted in `report`."""
    resumed = read_resumable(out)
    for _ in range(resumed.garbled_lines):
        report.note("garbled line in the output dropped (its item is generated again)", str(out))
    return {(str(row.get("id")), str(row.get("task"))) for row in resumed.rows}


def lock_path(out: str | Path) -> Path:
    return Path(f"{out}.lock")


@contextlib.contextmanager
def locked_output(out: str | Path):
    """Holds `<out>.lock` (the same `flock` as `emovit data build`, released by the kernel even on kill -9) while a
    run writes `out`; a second run on `out` gets one sentence instead."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(lock_path(out), f"{out}: another `emovit data generate` is writing it now; wait for it, or "
                                        f"pass another --out."):
        yield


def generate_instructions(records: Iterable[EmotionRecord], backend, out: str | Path, tasks=GENERATED_TASKS,
                          captions: dict[str, str] | None = None, max_records: int | None = None,
                          prices: dict | None = None, progress: bool = True,
                          report: GenerationReport | None = None) -> GenerationReport:
    """Write pairs for every (record, task) not yet in `out` with `backend` (RulesBackend, OpenAIBackend or
    batch.BatchBackend); return the run's counts (in `report`, which may already hold the source reader's skips),
    rejected replies by reason included. `captions` (id -> caption) replaces `record.caption`."""
    report = report if report is not None else GenerationReport()
    with locked_output(out):
        items = plan_items(records, tasks, read_done_keys(out, report), captions, max_records, report)
        writer = OutputWriter(out, backend.name, report, len(items), prices if prices is not None else load_prices(),
                              backend.batch, progress)
        try:
            if items:  # nothing left: no client is made, no library loaded, no request sent
                stats = backend.run(items, writer)
                report.requests, report.rejected = stats.requests, stats.rejections
        finally:
            writer.close()
    return report


def estimate_instructions(records: Iterable[EmotionRecord], backend, out: str | Path, tasks=GENERATED_TASKS,
                          captions: dict[str, str] | None = None, max_records: int | None = None,
                          prices: dict | None = None, report: GenerationReport | None = None) -> CostEstimate:
    """What `generate_instructions` would send for the same arguments, and its estimated cost; sends nothing and
    writes nothing (`--dry-run`)."""
    report = report if report is not None else GenerationReport()
    items = plan_items(records, tasks, read_done_keys(out, report), captions, max_records, report)
    return backend.estimate(items, prices if prices is not None else load_prices())
