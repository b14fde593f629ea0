"""One chat request, its result, and the rejection a parser raises for a reply it cannot use."""

from dataclasses import dataclass, field
from typing import Any, Callable


class RejectedOutput(ValueError):
    """A reply that fails validation; the message is the reason recorded when no retry succeeds."""


@dataclass
class ChatRequest:
    """One chat completion to run.

    `key`: the caller's id; `cache_key`: its content address (see `content_key`; default: model, messages,
    response format, max_tokens and temperature; a caller's own key must cover whatever else changes the reply);
    `parse`: overrides the runner's parser for this request; `context`: anything the caller wants back.
    """

    key: str
    messages: list[dict]
    response_format: dict | None = None
    fallback_messages: list[dict] | None = None
    cache_key: str | None = None
    parse: Callable[[str], Any] | None = None
    context: Any = None


@dataclass
class ChatResult:
    """The parsed `value` of an accepted reply, or the `error` that ended the request after its retries."""

    request: ChatRequest
    value: Any = None
    content: str | None = None
    usage: dict = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
    error: str | None = None
    attempts: int = 0
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None
