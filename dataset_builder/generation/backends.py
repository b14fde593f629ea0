"""Generation backends: `rules` (offline, deterministic) and `openai` (any OpenAI-compatible chat server).

A backend's `run(items, writer)` writes one result per item through the `OutputWriter` and returns the request
statistics; the Batch API backend (`batch.py`) extends the `openai` one.
"""

import asyncio

from ..chat import ChatRequest, ChatRunner, ChatRunStats, ClientSettings, ResponseCache, content_key
from . import rules
from .items import GenerationItem
from .prompts import PAIRS_RESPONSE_FORMAT, load_prompt
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
