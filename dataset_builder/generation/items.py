"""What a generation run works on: one (image record, task) item each, planned once, resumable by id.

Flow: records (+ captions) -> `plan_items` (duplicates and already-written items left out, counted) -> backend.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from ..records import EmotionRecord
from ..report import GenerationReport, ItemReport


@dataclass
class GenerationItem:
    """One image and task to write pairs for; `custom_id` is unique per item (used by the Batch API too)."""

    record: EmotionRecord
    task: str
    caption: str | None = None

    @property
    def custom_id(self) -> str:
        return f"{self.record.id}:{self.task}"



def unique_records(records: Iterable[EmotionRecord], max_records: int | None, report: ItemReport):
    """The first `max_records` records with distinct ids; every repeated id is counted in `report`."""
    seen = set()
    for record in records:
        if max_records is not None and len(seen) >= max_records:
            return
        if record.id in seen:
            report.skip("duplicate id", record.id)
            continue
        seen.add(record.id)
        yield record


def plan_items(records: Iterable[EmotionRecord], tasks, done: set, captions: dict | None, max_records: int | None,
               report: GenerationReport) -> list[GenerationItem]:
    """Items still to generate for the first `max_records` records; duplicates and records without a caption
    (when a captions file is given) are counted in `report.skipped`."""
    items = []
    for record in unique_records(records, max_records, report):
        caption = record.caption if captions is None else captions.get(record.id)
        if captions is not None and caption is None:
            report.skip("no caption", record.id)
            continue
        for task in tasks:
            if (record.id, task) in done:
                report.resumed += 1
            else:
                items.append(GenerationItem(record, task, caption))
    return items
