"""The generation output: finished items appended to `generations.jsonl`, failures to `<out>.failed.jsonl`.

Each line is `{"id", "task", "pairs": [{"question", "answer"}], "model", "prompt_version", "usage", "backend"}`,
appended and flushed as its result arrives, so a run killed at any moment (kill -9) loses at most the line being
written; the failures file is rewritten by every run, which tries them again.
"""

from pathlib import Path

from ..jsonl import append_line
from ..report import GenerationReport
from .items import GenerationItem
from .pricing import estimate_cost


def failed_path(out: str | Path) -> Path:
    return Path(f"{out}.failed.jsonl")


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

    def done(self, item: GenerationItem, pairs: list[dict], model: str, prompt_version: str, usage: dict,
             cached: bool = False) -> None:
        append_line(self.output, {
            "id": item.record.id, "task": item.task, "pairs": pairs, "model": model,
            "prompt_version": prompt_version, "usage": usage, "backend": self.backend,
        })
        self.report.done += 1
        self.report.cached += cached
        if not cached:
            self.count_tokens(model, usage)
        self._advance()

    def failed(self, item: GenerationItem, reason: str, model: str, usage: dict | None = None) -> None:
        append_line(self.failures, {
            "id": item.record.id, "task": item.task, "error": reason, "model": model, "backend": self.backend,
        })
        self.report.fail(reason, item.custom_id)
        self.count_tokens(model, usage or {})
        self._advance()

    def count_tokens(self, model: str, usage: dict) -> None:
        """Adds a reply's tokens to the run's usage and cost estimate (written, failed or rejected alike)."""
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
