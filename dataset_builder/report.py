"""Reports that count what a run left out: every skipped item has a reason, and the first ids of each reason are kept.

`ItemReport` is the counting every stage shares (build, captioning, generation); `BuildReport` adds what a dataset
build wrote. Nothing is dropped silently: whatever a stage skips goes through `skip`, and its summary prints it.
"""

import json
from dataclasses import asdict, dataclass, field

_EXAMPLES_PER_REASON = 20


@dataclass
class ItemReport:
    """`skipped` and `notes` map a reason to its count; `examples` keeps the first item ids per reason;
    `label_mappings` counts each label read as another ("happiness -> joy")."""

    skipped: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    label_mappings: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, item: str) -> None:
        """Counts one input item left out."""
        self.count(self.skipped, reason, item)

    def note(self, reason: str, item: str) -> None:
        """Counts one item kept despite a defect (for example, an annotation missing some clues)."""
        self.count(self.notes, reason, item)

    def map_label(self, given: str, label: str) -> None:
        """Counts one record whose label, as the data spells it, was read as another label of its space."""
        key = f"{given} -> {label}"
        self.label_mappings[key] = self.label_mappings.get(key, 0) + 1

    def count(self, table: dict, reason: str, item: str) -> None:
        table[reason] = table.get(reason, 0) + 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < _EXAMPLES_PER_REASON:
            examples.append(item)

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def skipped_summary(self) -> str:
        if not self.skipped:
            return "nothing skipped"
        return "skipped " + ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped.items()))

    def reason_lines(self) -> list[str]:
        """One indented line per skip and note reason, most frequent first."""
        lines = [f"  skipped: {count} x {reason}" for reason, count in _by_count(self.skipped)]
        lines += [f"  note: {count} x {reason}" for reason, count in _by_count(self.notes)]
        mapped = _by_count(self.label_mappings)
        return lines + [f"  label read as another: {count} x {mapping}" for mapping, count in mapped]

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _by_count(table: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(table.items(), key=lambda item: (-item[1], item[0]))


@dataclass
class BuildReport(ItemReport):
    """Counts of one build (one source split): images and rows written, per emotion and task, every skip, and which
    backend and model wrote the generated instructions."""

    source: str = ""
    split: str = ""
    records: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    per_emotion: dict[str, int] = field(default_factory=dict)
    per_task: dict[str, int] = field(default_factory=dict)
    without_generations: dict[str, int] = field(default_factory=dict)
    generated_by: dict[str, int] = field(default_factory=dict)  # "backend (model)" -> (image, task) generations used
    labels: list[str] = field(default_factory=list)  # the `label` column's names: the build's label space
    arrow_bytes: dict[str, int] = field(default_factory=dict)  # config -> Arrow size of its rows (dataset_info)
    # Byte-identical images (`dataset_builder.duplicates`): kind ("within this split", "also in split test", ...) ->
    # {"images": count, "examples": first ones}.
    duplicates: dict[str, dict] = field(default_factory=dict)

    def merge(self, other: dict) -> None:
        """Adds a worker's report (a `to_dict()` result): images written, counts and skips."""
        self.records += other["records"]
        for table in ("per_emotion", "per_task", "skipped", "notes", "generated_by", "label_mappings"):
            mine = getattr(self, table)
            for key, count in other[table].items():
                mine[key] = mine.get(key, 0) + count
        for reason, items in other["examples"].items():
            mine = self.examples.setdefault(reason, [])
            mine.extend(items[: _EXAMPLES_PER_REASON - len(mine)])


@dataclass
class CaptionReport(ItemReport):
    """Counts of a captioning run: written now, already in the output (resumed), and skips."""

    done: int = 0
    resumed: int = 0

    def summary(self) -> str:
        return "\n".join([f"captioned {self.done}, already written {self.resumed}", *self.reason_lines()])


@dataclass
class GenerationReport(ItemReport):
    """Counts of a generation run: written now (`done`, of which `cached`), already there (`resumed`), failed by
    reason (`failures`), replies rejected by reason (`rejected`: each was asked again, or its item failed),
    skipped by reason, HTTP requests sent, tokens used and estimated cost (USD, None when the model has no price)."""

    done: int = 0
    cached: int = 0
    resumed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def fail(self, reason: str, item: str) -> None:
        """Counts one item that was tried and failed (written to the failures file, tried again next run)."""
        self.count(self.failures, reason, item)

    def summary(self) -> str:
        cost = "n/a" if self.cost is None else f"${self.cost:.4f}"
        lines = [
            f"done {self.done} (cached {self.cached}), already written {self.resumed}, failed {self.failed}, "
            f"requests {self.requests}, tokens {self.prompt_tokens + self.completion_tokens}, estimated cost {cost}"
        ]
        lines += [f"  failed: {count} x {reason}" for reason, count in _by_count(self.failures)]
        lines += [f"  rejected reply: {count} x {reason}" for reason, count in _by_count(self.rejected)]
        return "\n".join(lines + self.reason_lines())
