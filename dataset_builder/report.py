"""The build report: what was read, what was written, and every skipped item with its reason."""

import json
from dataclasses import asdict, dataclass, field

_EXAMPLES_PER_REASON = 20


@dataclass
class BuildReport:
    """Counts of one build (one source split). `skipped`/`notes` map a reason to its count; `examples` keeps the
    first item ids per reason so a user can find them."""

    source: str = ""
    split: str = ""
    records: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    per_emotion: dict[str, int] = field(default_factory=dict)
    per_task: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    without_generations: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, item: str) -> None:
        """Counts one input item left out of the dataset."""
        self._count(self.skipped, reason, item)

    def note(self, reason: str, item: str) -> None:
        """Counts one item kept despite a defect (for example, an annotation missing some clues)."""
        self._count(self.notes, reason, item)

    def _count(self, table: dict, reason: str, item: str) -> None:
        table[reason] = table.get(reason, 0) + 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < _EXAMPLES_PER_REASON:
            examples.append(item)

    def merge(self, other: dict) -> None:
        """Adds a worker's report (a `to_dict()` result): images written, counts and skips."""
        self.records += other["records"]
        for table in ("per_emotion", "per_task", "skipped", "notes"):
            mine = getattr(self, table)
            for key, count in other[table].items():
                mine[key] = mine.get(key, 0) + count
        for reason, items in other["examples"].items():
            mine = self.examples.setdefault(reason, [])
            mine.extend(items[: _EXAMPLES_PER_REASON - len(mine)])

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def skipped_summary(self) -> str:
        if not self.skipped:
            return "nothing skipped"
        return "skipped " + ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped.items()))

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
