"""The runner: many OpenAI-compatible chat requests with bounded concurrency, rate limits, retries and the cache.

Instruction generation and the evaluation's LLM judge both send thousands of chat requests; this is the one place
that makes that fast, cheap and safe. A caller builds `ChatRequest`s and a `parse(content) -> value` that raises
`RejectedOutput(reason)` for replies it cannot use, then:

    settings = ClientSettings(model="gpt-4o-mini", concurrency=16, rpm=500, tpm=200_000)
    with ResponseCache("judge-cache.sqlite") as cache:
        results = run_chat_requests(requests, settings, parse=json.loads, cache=cache)
    # results[i].value / .error / .usage / .cached, in the order of `requests`

What is this module's own, and why (openai 3.57 checked):
- Concurrency: at most `concurrency` requests in flight over one `AsyncOpenAI` client.
- Rate limits: token buckets for requests and tokens per minute (estimated before sending, settled from `usage`);
  the SDK has none.
- Retries: the SDK's own are off (`max_retries=0`) because it waits whatever a server's Retry-After asks up to
  120 s, silently, and gives up at once beyond; here a wait is capped at `backoff_max`, malformed bodies are
  retried too, and every retry is counted in the run's statistics. Otherwise the policy is the SDK's: 408, 409, 429, 5xx,
  timeouts and connection errors, exponential backoff with jitter, never shorter than `Retry-After` /
  `retry-after-ms`.
- Validation: a reply the caller's `parse` rejects is asked again up to `max_rejections` times. What still fails
  comes back as a result with `error` set: nothing is lost.
- Structured output: a request with `response_format` whose server answers 400/422 (no `json_schema` support)
  is sent again as `fallback_messages` without it, and so is every later request of the run.
- Cache: content-addressed by the request's `cache_key` (the caller's, made with `content_key`), by default the
  SHA-256 of endpoint, model, messages, response format, max_tokens and temperature: whatever changes the reply changes the
  key. Only accepted replies are stored, so a re-run sends nothing for what is done.
"""

import asyncio
import email.utils
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from modeling_emovit.errors import EmoVITInputError

from .cache import ResponseCache, content_key
from .limits import TokenBucket
from .requests import ChatRequest, ChatResult, RejectedOutput
from .settings import ClientSettings, api_key_from_env, endpoint

logger = logging.getLogger(__name__)
LOGGED_WAIT = 5.0  # seconds: waits longer than this are logged, so a slow run says why


@dataclass
class ChatRunStats:
    """What a run cost: HTTP requests sent (retries included), cache hits, retries, rejections and tokens."""

    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    rejections: int = 0
    done: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def make_client(settings: ClientSettings):
    """An `AsyncOpenAI` client without its own retries (this module retries, honouring Retry-After), on the SDK's
    aiohttp transport (`openai.DefaultAioHttpClient`, the `openai[aiohttp]` extra): less client CPU per request than
    its default httpx2 transport (benchmarks/bench_generation.py)."""
    from openai import AsyncOpenAI, DefaultAioHttpClient

    return AsyncOpenAI(
        api_key=api_key_from_env(settings), base_url=settings.base_url, timeout=settings.timeout, max_retries=0,
        http_client=DefaultAioHttpClient(timeout=settings.timeout),
    )


@dataclass
class Completion:
    """What the runner reads from a chat completion: the first choice's message, the usage and the model."""

    message: dict
    usage: dict | None
    model: str | None

    @classmethod
    def parse(cls, body: bytes) -> "Completion":
        """From the response body; raises ValueError for a body that is not a chat completion (retried)."""
        data = json.loads(body)
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices or not isinstance(choices[0], dict) or not isinstance(choices[0].get("message"), dict):
            raise ValueError("malformed chat completion")
        usage = data.get("usage")
        return cls(choices[0]["message"], usage if isinstance(usage, dict) else None, data.get("model"))


def retry_after(error) -> float | None:
    """Seconds the server asked to wait (`retry-after-ms`, `retry-after` as seconds or an HTTP date), if any."""
    response = getattr(error, "response", None)
    headers = response.headers if response is not None else {}
    if headers.get("retry-after-ms"):
        return float(headers["retry-after-ms"]) / 1000
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        date = email.utils.parsedate_to_datetime(value)
        return max(0.0, date.timestamp() - time.time())


def is_retryable(error) -> bool:
    """Timeouts, connection and reply errors, and the statuses worth asking again: 408, 409, 429 and 5xx."""
    status = getattr(error, "status_code", None)
    return status is None or status in (408, 409, 429) or status >= 500


def _error_reason(error) -> str:
    status = getattr(error, "status_code", None)
    return f"http {status}" if status else type(error).__name__


class ChatRunner:
    """Runs `ChatRequest`s through one client with shared limits, cache and statistics (see module docstring)."""

    def __init__(self, settings: ClientSettings, parse: Callable[[str], Any] | None = None, cache=None, client=None):
        self.settings = settings
        self.parse = parse or (lambda content: content)
        self.cache = cache
        self.client = client or make_client(settings)
        self.requests_per_minute = TokenBucket(settings.rpm) if settings.rpm else None
        self.tokens_per_minute = TokenBucket(settings.tpm) if settings.tpm else None
        self.structured_output = True
        self.stats = ChatRunStats()

    def cache_key(self, request: ChatRequest) -> str:
        settings = self.settings
        return request.cache_key or content_key(
            endpoint(settings), settings.model, request.messages, request.response_format, settings.max_tokens,
            settings.temperature,
        )

    def _from_cache(self, request: ChatRequest, key: str) -> ChatResult | None:
        hit = self.cache.get(key) if self.cache is not None else None
        if hit is None:
            return None
        try:
            value = (request.parse or self.parse)(hit["content"])
        except ValueError:  # stored under older validation rules: ask again
            return None
        self.stats.cache_hits += 1
        return ChatResult(request, value, hit["content"], hit["usage"], cached=True)

    def _estimated_tokens(self, messages: list[dict]) -> int:
        # About four characters per token for English text (OpenAI's rule of thumb).
        return sum(len(str(message.get("content", ""))) for message in messages) // 4 + (self.settings.max_tokens or 512)

    async def _send(self, messages: list[dict], response_format: dict | None) -> Completion:
        """One attempt. The body goes out as a plain dict through the client's `post` (the SDK's auth, headers, status
        errors and timeouts, without its per-request transform of typed parameters) and comes back as raw JSON."""
        import httpx2

        settings = self.settings
        estimate = self._estimated_tokens(messages)
        if self.requests_per_minute:
            await self.requests_per_minute.take(1)
        if self.tokens_per_minute:
            await self.tokens_per_minute.take(estimate)
        body = {"model": settings.model, "messages": messages}
        if response_format:
            body["response_format"] = response_format
        if settings.max_tokens:
            body["max_tokens"] = settings.max_tokens
        if settings.temperature is not None:
            body["temperature"] = settings.temperature
        self.stats.requests += 1
        # The SDK's timeout bounds each socket read only; a server that drips its reply would outlast it.
        response = await asyncio.wait_for(
            self.client.post("/chat/completions", cast_to=httpx2.Response, body=body), settings.timeout
        )
        completion = Completion.parse(response.content)
        used = (completion.usage or {}).get("total_tokens") or estimate
        if self.tokens_per_minute:
            self.tokens_per_minute.give_back(estimate - used)
        return completion

    def _backoff(self, retry: int, error) -> float:
        ceiling = min(self.settings.backoff_max, self.settings.backoff_base * 2**retry)
        return max(retry_after(error) or 0.0, random.uniform(0, ceiling))  # full jitter (AWS architecture blog)

    async def _wait_before_retry(self, retry: int, error, request: ChatRequest) -> str | None:
        """Sleeps before retry number `retry`; returns why not instead when the server asks for more than
        `backoff_max` seconds (the item then fails with that reason, rather than the run stalling)."""
        wait = self._backoff(retry, error)
        if wait > self.settings.backoff_max:
            return f"{_error_reason(error)}: the server asked to wait {wait:.0f} s (over backoff_max {self.settings.backoff_max:g} s)"
        if wait > LOGGED_WAIT:
            logger.warning("%s for %s: waiting %.1f s before retry %d", _error_reason(error), request.key, wait, retry)
        await asyncio.sleep(wait)
        return None

    async def complete(self, request: ChatRequest) -> ChatResult:
        """One request through cache, limits, retries and validation; always returns a result, never loses one."""
        import openai

        key = self.cache_key(request)
        cached = self._from_cache(request, key)
        if cached is not None:
            return cached
        result, retries, rejections = ChatResult(request), 0, 0
        transient = (openai.APIStatusError, openai.APITimeoutError, openai.APIConnectionError,  # retried when
                     openai.APIResponseValidationError, ValueError, asyncio.TimeoutError)  # `is_retryable` says so
        while True:
            structured = self.structured_output and request.response_format is not None
            fallback = request.response_format is not None and not structured and request.fallback_messages
            messages = request.fallback_messages if fallback else request.messages
            result.attempts += 1
            try:
                completion = await self._send(messages, request.response_format if structured else None)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as error:
                if not structured:
                    return self._failed(result, _error_reason(error))
                logger.warning("the server refused structured output (%s): using the text fallback", _error_reason(error))
                self.structured_output = False
                continue
            except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
                raise EmoVITInputError(
                    f"The server refused the API key from ${self.settings.api_key_env} ({_error_reason(error)}): "
                    "check that variable."
                ) from None
            except transient as error:
                if not is_retryable(error):  # a 4xx other than 408/409/429: the same request fails the same way
                    return self._failed(result, _error_reason(error))
                if retries >= self.settings.max_retries:
                    return self._failed(result, f"{_error_reason(error)} after {retries} retries")
                retries += 1
                self.stats.retries += 1
                refused = await self._wait_before_retry(retries, error, request)
                if refused:
                    return self._failed(result, refused)
                continue
            self._add_usage(result, completion.usage)
            message = completion.message
            try:
                if message.get("refusal"):
                    raise RejectedOutput("refusal")
                result.content = message.get("content") or ""
                result.value = (request.parse or self.parse)(result.content)
            except ValueError as rejection:  # RejectedOutput, or a parser's own error (json.loads)
                self.stats.rejections += 1
                rejections += 1
                if rejections > self.settings.max_rejections:
                    return self._failed(result, f"rejected: {rejection}")
                continue
            if self.cache is not None:
                self.cache.put(key, {"content": result.content, "usage": result.usage, "model": completion.model})
            self.stats.done += 1
            return result

    def _add_usage(self, result: ChatResult, usage: dict | None) -> None:
        if usage is None:
            return
        for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
            result.usage[name] += usage.get(name) or 0
        self.stats.prompt_tokens += usage.get("prompt_tokens") or 0
        self.stats.completion_tokens += usage.get("completion_tokens") or 0

    def _failed(self, result: ChatResult, reason: str) -> ChatResult:
        result.error = reason
        result.value = None
        self.stats.failed += 1
        return result

    async def run(self, requests: Iterable[ChatRequest], on_result: Callable[[ChatResult], None] | None = None):
        """Complete every request with at most `concurrency` in flight; `on_result` sees each as it finishes."""
        pending = iter(requests)

        async def worker():
            for request in pending:  # one shared iterator: every request is taken exactly once
                result = await self.complete(request)
                if on_result is not None:
                    on_result(result)

        try:
            await asyncio.gather(*(worker() for _ in range(max(1, self.settings.concurrency))))
        finally:
            await self.client.close()
        return self.stats


def run_chat_requests(
    requests: Iterable[ChatRequest], settings: ClientSettings, parse: Callable[[str], Any] | None = None,
    cache: ResponseCache | None = None, on_result: Callable[[ChatResult], None] | None = None,
) -> list[ChatResult]:
    """Run `requests` (see module docstring) and return their results in the same order."""
    requests = list(requests)
    results: dict[int, ChatResult] = {}

    def collect(result: ChatResult) -> None:
        results[id(result.request)] = result
        if on_result is not None:
            on_result(result)

    asyncio.run(ChatRunner(settings, parse, cache).run(requests, collect))
    return [results[id(request)] for request in requests]
