"""An OpenAI-compatible chat client for large runs, shared by instruction generation, captioning and the LLM judge.

Modules: `settings` (endpoint, limits, the key from the environment), `requests` (request, result, rejection),
`cache` (SQLite response cache), `limits` (rpm/tpm token buckets), `runner` (concurrency, retries, validation).
Importing it costs no more than the standard library; `openai` loads when a client is made.
"""

from .cache import ResponseCache, content_key
from .requests import ChatRequest, ChatResult, RejectedOutput
from .runner import ChatRunner, ChatRunStats, make_client, run_chat_requests
from .settings import ClientSettings, api_key_from_env

__all__ = [
    "ChatRequest",
    "ChatResult",
    "ChatRunStats",
    "ChatRunner",
    "ClientSettings",
    "RejectedOutput",
    "ResponseCache",
    "api_key_from_env",
    "content_key",
    "make_client",
    "run_chat_requests",
]
