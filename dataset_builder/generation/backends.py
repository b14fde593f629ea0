"""Generation backends: `rules` (offline, deterministic) and `openai` (any OpenAI-compatible chat server).

A backend's `run(items, writer)` writes one result per item through the `OutputWriter` and returns the request
statistics; `estimate(items, prices)` says what `run` would send and cost, sending nothing (`--dry-run`). The Batch
API backend (`batch.py`) extends the `openai` one.
"""

import asyncio

from ..chat import ChatRequest, ChatRunner, ChatRunStats, ClientSettings, RejectedOutput, ResponseCache, content_key
from ..chat.runner import estimated_prompt_tokens
from ..chat.settings import endpoint
from . import rules
from .items import GenerationItem
from .pricing import CostEstimate, estimate_cost
from .prompts import PAIRS_RESPONSE_FORMAT, Prompt, load_prompt
from .validation import reply_parser
from .writer import OutputWriter


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

    def estimate(self, items: list[GenerationItem], prices: dict) -> CostEstimate:
        return CostEstimate(self.model, cost=0.0)


class OpenAIBackend:
    """Chat completions through `client.ChatRunner`: structured output with a text fallback, validation,
    concurrency, rate limits, retries and the cache (keyed by backend, endpoint, model, prompt version, task, input
    and the sampling settings max_tokens and temperature, so changing any of them asks again).

    `prompts` (task -> Prompt) replaces the package's prompts, e.g. the release's (`release_prompts`), whose
    version carries the prompt file's hash and which are sent in text mode, without structured output.
    `content_checks=False` writes pairs that `screening` would reject (another emotion, instruction-like text).
    """

    name = "openai"
    batch = False

    def __init__(self, settings: ClientSettings, cache: ResponseCache | None = None, prompts: dict | None = None,
                 content_checks: bool = True):
        self.settings, self.cache = settings, cache
        self.model = settings.model
        self.prompts = dict(prompts or {})
        self.content_checks = content_checks

    def prompt(self, task: str) -> Prompt:
        return self.prompts[task] if task in self.prompts else load_prompt(task)

    def cache_key(self, item: GenerationItem) -> str:
        settings, prompt = self.settings, self.prompt(item.task)
        return content_key(self.name, endpoint(settings), self.model, prompt.version, item.task,
                           prompt.clue(item.record, item.caption), settings.max_tokens, settings.temperature)

    def parser(self, item: GenerationItem):
        """The item's `parse(content) -> pairs`: its prompt's number of pairs, screened against its record."""
        return reply_parser(self.prompt(item.task).pairs, item.record if self.content_checks else None)

    def cached_pairs(self, item: GenerationItem) -> tuple[list[dict], dict] | None:
        """(pairs, usage) of the item's cached reply when it passes today's validation, else None."""
        hit = self.cache.get(self.cache_key(item)) if self.cache is not None else None
        if hit is None:
            return None
        try:
            return self.parser(item)(hit["content"]), hit["usage"]
        except RejectedOutput:
            return None

    def request(self, item: GenerationItem) -> ChatRequest:
        prompt = self.prompt(item.task)
        clue = prompt.clue(item.record, item.caption)
        structured = dict(response_format=PAIRS_RESPONSE_FORMAT, fallback_messages=prompt.messages(clue, False))
        return ChatRequest(
            key=item.custom_id,
            messages=prompt.messages(clue, structured=prompt.structured),
            **(structured if prompt.structured else {}),
            cache_key=self.cache_key(item),
            parse=self.parser(item),
            context=item,
        )

    def estimate(self, items: list[GenerationItem], prices: dict) -> CostEstimate:
        """One request per item not answered by the cache, before retries and rejections: prompt tokens estimated
        from the text, completion tokens at most `max_tokens` each (unbounded without it)."""
        estimate = CostEstimate(self.model)
        for item in items:
            if self.cached_pairs(item) is not None:
                estimate.cached += 1
                continue
            estimate.requests += 1
            estimate.prompt_tokens += estimated_prompt_tokens(self.request(item).messages)
        max_tokens = self.settings.max_tokens
        estimate.completion_tokens = max_tokens * estimate.requests if max_tokens else None
        estimate.cost = estimate_cost(self.model, estimate.prompt_tokens, estimate.completion_tokens or 0, prices,
                                      self.batch)
        return estimate

    def run(self, items: list[GenerationItem], writer: OutputWriter) -> ChatRunStats:
        def write(result) -> None:
            item = result.request.context
            if result.ok:
                version = self.prompt(item.task).version
                writer.done(item, result.value, self.model, version, result.usage, result.cached)
            else:
                writer.failed(item, result.error, self.model, result.usage)

        runner = ChatRunner(self.settings, cache=self.cache)
        return asyncio.run(runner.run(map(self.request, items), write))
