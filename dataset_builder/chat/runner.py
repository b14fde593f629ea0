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
- Validation: a reply the caller's `parse` rejects is asked again up to `max_rejections` times, and counted by
  reason in the run's statistics. What still fails comes back as a result with `error` set: nothing is lost.
- Reply size: a body over `reply_byte_limit(settings)` (128 KiB for max_tokens 1024) is refused as soon as its
  `Content-Length`, or the bytes read so far, exceed it; the item fails at once ("reply over N bytes"), since a
  server that ignores max_tokens answers the same way again.
- Unreachable server: a connection refused, or a host name that does not resolve, before the run has reached its
  server stops the run at once with one sentence ("cannot connect to URL"); after the first answer it is a transient
  error, retried like a timeout (a server restarting mid-run).
- Time: every wait (rate limits, backoff) goes through one `clock` (`limits.Clock`), which a test replaces.
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
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from modeling_emovit.errors import EmoVITInputError

from .cache import ResponseCache, content_key
from .limits import REAL_CLOCK, Clock, TokenBucket
from .requests import ChatRequest, ChatResult, RejectedOutput
from .settings import ClientSettings, api_key_from_env, endpoint, oversized_reply, reply_byte_limit

logger = logging.getLogger(__name__)
LOGGED_WAIT = 5.0  # seconds: waits longer than this are logged, so a slow run says why
# openai 3.57 `_base_client`: a request carrying this header is sent with `stream=True`, and with `cast_to` an
# HTTP response class `post` returns the response unread (tests/test_library_pins.py).
RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"


@dataclass
class ChatRunStats:
    """What a run cost: HTTP requests sent (retries included), cache hits, retries, rejected replies by reason and
    tokens."""

    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    done: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def reject(self, reason: str) -> None:
        """Counts one reply that failed validation (asked again, or the item's last attempt)."""
        self.rejections[reason] = self.rejections.get(reason, 0) + 1


class ReplyTooLarge(Exception):
    """A reply body over the size limit (`settings.reply_byte_limit`); not retried."""


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


def estimated_prompt_tokens(messages: list[dict]) -> int:
    """About four characters per token for English text (OpenAI's rule of thumb)."""
    return sum(len(str(message.get("content", ""))) for message in messages) // 4


def connection_failure(error, settings: ClientSettings) -> EmoVITInputError | None:
    """One sentence for an error caused by a refused connection or a host name that does not resolve (the SDK
    wraps both, on its aiohttp transport as `APITimeoutError` from `httpx2.ConnectTimeout`); None for other errors."""
    cause = error
    while cause is not None:
        if isinstance(cause, (ConnectionRefusedError, socket.gaierror)):
            why = "connection refused" if isinstance(cause, ConnectionRefusedError) else "host name not found"
            return EmoVITInputError(
                f"cannot connect to {endpoint(settings)} ({why}): check the server address (--base-url) and that the "
                "server is running."
            )
        cause = cause.__cause__ or cause.__context__
    return None


async def read_capped(response, limit: int) -> bytes:
    """The body of an unread (streamed) response, or ReplyTooLarge once it is known to exceed `limit` bytes: at once
    from its Content-Length, otherwise when the bytes read pass it."""
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ReplyTooLarge
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise ReplyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class ChatRunner:
    """Runs `ChatRequest`s through one client with shared limits, cache and statistics (see module docstring)."""

    def __init__(self, settings: ClientSettings, parse: Callable[[str], Any] | None = None, cache=None, client=None,
                 clock: Clock = REAL_CLOCK):
        self.settings = settings
        self.parse = parse or (lambda content: content)
        self.cache = cache
        self.client = client or make_client(settings)
        self.clock = clock
        self.requests_per_minute = TokenBucket(settings.rpm, clock) if settings.rpm else None
        self.tokens_per_minute = TokenBucket(settings.tpm, clock) if settings.tpm else None
        self.structured_output = True
        self.reached_server = False  # set by the first answer: a refused connection is fatal only before it
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
        return estimated_prompt_tokens(messages) + (self.settings.max_tokens or 512)

    async def _post(self, body: dict) -> bytes:
        """The body goes out as a plain dict through the client's `post` (the SDK's auth, headers, status errors and
        timeouts, without its per-request transform of typed parameters); the reply comes back unread, and is read
        up to the size limit."""
        import httpx2
        import openai

        try:
            response = await self.client.post("/chat/completions", cast_to=httpx2.Response, body=body,
                                              options={"headers": {RAW_RESPONSE_HEADER: "stream"}})
        except openai.APIStatusError:
            self.reached_server = True
            raise
        self.reached_server = True
        try:
            return await read_capped(response, reply_byte_limit(self.settings))
        finally:
            await response.aclose()

    async def _send(self, messages: list[dict], response_format: dict | None) -> Completion:
        """One attempt: rate limits, then the request, answered within the deadline."""
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
        completion = Completion.parse(await asyncio.wait_for(self._post(body), settings.timeout))
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
        await self.clock.sleep(wait)
        return None

    async def complete(self, request: ChatRequest) -> ChatResult:
        """One request through cache, limits, retries and validation; always returns a result, never loses one."""
        import httpx2
        import openai

        key = self.cache_key(request)
        cached = self._from_cache(request, key)
        if cached is not None:
            return cached
        result, retries, rejections = ChatResult(request), 0, 0
        transient = (openai.APIStatusError, openai.APITimeoutError, openai.APIConnectionError,  # retried when
                     openai.APIResponseValidationError, ValueError, asyncio.TimeoutError,  # `is_retryable` says so;
                     httpx2.TransportError)  # a body cut short while read (`_post` reads it, not the SDK)
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
            except ReplyTooLarge:
                return self._failed(result, oversized_reply(self.settings))
            except transient as error:
                if not self.reached_server and (unreachable := connection_failure(error, self.settings)):
                    raise unreachable from None
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
            rejection = self._parse_reply(result, completion.message)
            if rejection is not None:
                rejections += 1
                if rejections > self.settings.max_rejections:
                    return self._failed(result, f"rejected: {rejection}")
                continue
            if self.cache is not None:
                self.cache.put(key, {"content": result.content, "usage": result.usage, "model": completion.model})
            self.stats.done += 1
            return result

    def _parse_reply(self, result: ChatResult, message: dict) -> ValueError | None:
        """Parses the reply into `result.value`; returns why it was rejected instead (counted by reason)."""
        try:
            if message.get("refusal"):
                raise RejectedOutput("refusal")
            result.content = message.get("content") or ""
            result.value = (result.request.parse or self.parse)(result.content)
        except ValueError as rejection:  # RejectedOutput, or a parser's own error (json.loads)
            self.stats.reject(str(rejection) if isinstance(rejection, RejectedOutput)
                              else f"unparsable reply ({type(rejection).__name__})")
            return rejection
        return None

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
    clock: Clock = REAL_CLOCK,
) -> list[ChatResult]:
    """Run `requests` (see module docstring) and return their results in the same order; `clock` times every wait."""
    requests = list(requests)
    results: dict[int, ChatResult] = {}

    def collect(result: ChatResult) -> None:
        results[id(result.request)] = result
        if on_result is not None:
            on_result(result)

    asyncio.run(ChatRunner(settings, parse, cache, clock=clock).run(requests, collect))
    return [results[id(request)] for request in requests]
