"""Emotion instruction generation: EmotionRecords + captions -> conversation / reasoning pairs, one JSONL line each.

Flow: source reader -> EmotionRecord -> [captions] -> generate (this module) -> generations.jsonl
-> `emovit data build --generations`. Each output line is
`{"id", "task", "pairs": [{"question", "answer"}], "model", "prompt_version", "usage", "backend"}`, appended and
flushed as its result arrives; a run skips the (id, task) pairs already in the output, so a run killed at any
moment (kill -9) and started again ends with every pair exactly once. Failures, with their reason, go to
`<out>.failed.jsonl` (rewritten by every run, which tries them again).
"""

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from dataset_builder.records import EmotionRecord

from . import rules
from .client import ChatRequest, ChatRunner, ChatRunStats, ClientSettings, ResponseCache, content_key
from .pricing import estimate_cost, load_prices
from .prompts import PAIRS_RESPONSE_FORMAT, TASKS, clue_text, load_prompt
from .validation import reply_parser


@dataclass
class GenerationItem:
    """One image and task to write pairs for; `custom_id` is unique per item (used by the Batch API too)."""

    record: EmotionRecord
    task: str
    caption: str | None = None

    @property
    def custom_id(self) -> str:
        return f"{self.record.id}:{self.task}"

    @property
    def clue_text(self) -> str:
        return clue_text(self.record, self.caption)


@dataclass
class GenerationReport:
    """Counts of a run: written now (`done`, of which `cached`), already there (`resumed`), failed and skipped
    by reason, HTTP requests sent, tokens used and estimated cost (USD, None when the model has no price)."""

    done: int = 0
    cached: int = 0
    resumed: int = 0
    failed: int = 0
    failures: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None

    def summary(self) -> str:
        cost = "n/a" if self.cost is None else f"${self.cost:.4f}"
        lines = [
            f"done {self.done} (cached {self.cached}), already written {self.resumed}, failed {self.failed}, "
            f"requests {self.requests}, tokens {self.prompt_tokens + self.completion_tokens}, estimated cost {cost}"
        ]
        lines += [f"  failed: {count} x {reason}" for reason, count in self.failures.most_common()]
        lines += [f"  skipped: {count} x {reason}" for reason, count in self.skipped.most_common()]
        return "\n".join(lines)


def failed_path(out: str | Path) -> Path:
    return Path(f"{out}.failed.jsonl")


def complete_rows(path: str | Path) -> list[dict]:
    """The JSON lines of a resumable output file; a last line cut short by a kill is truncated away first."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with open(path, "r+b") as handle:
            handle.truncate(len(complete))
    return [json.loads(line) for line in complete.decode("utf-8").splitlines() if line.strip()]


def read_done_keys(out: str | Path) -> set[tuple[str, str]]:
    """(id, task) of every complete line of `out`."""
    return {(str(row["id"]), row["task"]) for row in complete_rows(out)}


def read_captions(path: str | Path) -> dict[str, str]:
    """`{"id", "caption"}` lines of `emovit data caption` -> {id: caption}."""
    from modeling_emovit.errors import EmoVITInputError

    captions = {}
    try:
        for number, line in enumerate(Path(path).read_text("utf-8").splitlines(), 1):
            if line.strip():
                row = json.loads(line)
                captions[str(row["id"])] = row["caption"]
    except OSError as error:
        raise EmoVITInputError(f"--captions {path}: cannot read it ({error.strerror}).") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise EmoVITInputError(f"--captions {path}: line {number} is not a JSON object with id and caption.") from None
    return captions


def unique_records(records: Iterable[EmotionRecord], max_records: int | None, skipped: Counter):
    """The first `max_records` records with distinct ids; every repeated id is counted in `skipped`."""
    seen = set()
    for record in records:
        if max_records is not None and len(seen) >= max_records:
            return
        if record.id in seen:
            skipped["duplicate id"] += 1
            continue
        seen.add(record.id)
        yield record


def plan_items(records: Iterable[EmotionRecord], tasks, done: set, captions: dict | None, max_records: int | None,
               report: GenerationReport) -> list[GenerationItem]:
    """Items still to generate for the first `max_records` records; duplicates and records without a caption
    (when a captions file is given) are counted in `report.skipped`."""
    items = []
    for record in unique_records(records, max_records, report.skipped):
        caption = record.caption if captions is None else captions.get(record.id)
        if captions is not None and caption is None:
            report.skipped["no caption"] += 1
            continue
        for task in tasks:
            if (record.id, task) in done:
                report.resumed += 1
            else:
                items.append(GenerationItem(record, task, caption))
    return items


class OutputWriter:
    """Appends finished items to `out` and failures to `<out>.failed.jsonl`, one flushed line each, and shows a
    tqdm bar with done/failed counts, tokens used and estimated cost."""

    def __init__(self, out, backend: str, report: GenerationReport, total: int, prices: dict, batch: bool = False,
                 progress: bool = True):
        from tqdm.auto import tqdm

        Path(out).parent.mkdir(parents=True, exist_ok=True)
        self.output = open(out, "a", encoding="utf-8")
        self.failures = open(failed_path(out), "w", encoding="utf-8")
        self.backend, self.report, self.prices, self.batch = backend, report, prices, batch
        self.bar = tqdm(total=total, desc=f"generate ({backend})", unit="item", disable=not progress)

    def _append(self, handle, row: dict) -> None:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")  # one write per line: a kill cuts at most the last
        handle.flush()

    def done(self, item: GenerationItem, pairs: list[dict], model: str, prompt_version: str, usage: dict,
             cached: bool = False) -> None:
        self._append(self.output, {
            "id": item.record.id, "task": item.task, "pairs": pairs, "model": model,
            "prompt_version": prompt_version, "usage": usage, "backend": self.backend,
        })
        self.report.done += 1
        self.report.cached += cached
        if not cached:
            self._count_tokens(model, usage)
        self._advance()

    def failed(self, item: GenerationItem, reason: str, model: str, usage: dict | None = None) -> None:
        self._append(self.failures, {
            "id": item.record.id, "task": item.task, "error": reason, "model": model, "backend": self.backend,
        })
        self.report.failed += 1
        self.report.failures[reason] += 1
        self._count_tokens(model, usage or {})
        self._advance()

    def _count_tokens(self, model: str, usage: dict) -> None:
        report = self.report
        report.prompt_tokens += usage.get("prompt_tokens", 0)
        report.completion_tokens += usage.get("completion_tokens", 0)
        report.cost = estimate_cost(model, report.prompt_tokens, report.completion_tokens, self.prices, self.batch)

    def _advance(self) -> None:
        report = self.report
        cost = "n/a" if report.cost is None else f"${report.cost:.4f}"
        self.bar.set_postfix(done=report.done, failed=report.failed,
                             tokens=report.prompt_tokens + report.completion_tokens, cost=cost, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
        self.output.close()
        self.failures.close()


class RulesBackend:
    """Offline, deterministic, clue-grounded pairs (see `rules`): no key, no server, no cost."""

    name = "rules"
    model = rules.MODEL
    batch = False

    def run(self, items: list[GenerationItem], writer: OutputWriter) -> ChatRunStats:
        zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for item in items:
            writer.done(item, rules.RULES[item.task](item.record, item.caption), self.model, rules.VERSION, dict(zero))
        return ChatRunStats(done=len(items))


class OpenAIBackend:
    """Chat completions through `client.ChatRunner`: structured output with a text fallback, validation,
    concurrency, rate limits, retries and the cache (keyed by backend, model, prompt version, task, input and the
    sampling settings max_tokens and temperature, so changing either asks again)."""

    name = "openai"
    batch = False

    def __init__(self, settings: ClientSettings, cache: ResponseCache | None = None):
        self.settings, self.cache = settings, cache
        self.model = settings.model

    def cache_key(self, item: GenerationItem) -> str:
        settings = self.settings
        return content_key(self.name, self.model, load_prompt(item.task).version, item.task, item.clue_text,
                           settings.max_tokens, settings.temperature)

    def request(self, item: GenerationItem) -> ChatRequest:
        prompt = load_prompt(item.task)
        return ChatRequest(
            key=item.custom_id,
            messages=prompt.messages(item.clue_text, structured=True),
            response_format=PAIRS_RESPONSE_FORMAT,
            fallback_messages=prompt.messages(item.clue_text, structured=False),
            cache_key=self.cache_key(item),
            parse=reply_parser(prompt.pairs),
            context=item,
        )

    def run(self, items: list[GenerationItem], writer: OutputWriter) -> ChatRunStats:
        def write(result) -> None:
            item = result.request.context
            if result.ok:
                version = load_prompt(item.task).version
                writer.done(item, result.value, self.model, version, result.usage, result.cached)
            else:
                writer.failed(item, result.error, self.model, result.usage)

        runner = ChatRunner(self.settings, cache=self.cache)
        return asyncio.run(runner.run(map(self.request, items), write))


def generate_instructions(records: Iterable[EmotionRecord], backend, out: str | Path, tasks=TASKS,
                          captions: dict[str, str] | None = None, max_records: int | None = None,
                          prices: dict | None = None, progress: bool = True) -> GenerationReport:
    """Write pairs for every (record, task) not yet in `out` with `backend` (RulesBackend, OpenAIBackend or
    batch.BatchBackend); return the run's counts. `captions` (id -> caption) replaces `record.caption`."""
    report = GenerationReport()
    items = plan_items(records, tasks, read_done_keys(out), captions, max_records, report)
    writer = OutputWriter(out, backend.name, report, len(items), prices if prices is not None else load_prices(),
                          backend.batch, progress)
    try:
        stats = backend.run(items, writer)
    finally:
        writer.close()
    report.requests = stats.requests
    return report

