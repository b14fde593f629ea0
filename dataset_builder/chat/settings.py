"""Where chat requests go and how hard: model, endpoint, concurrency, limits, retries, timeouts, sampling.

The API key itself is never stored here: `api_key_from_env` reads it from the environment variable the settings
name, when the client is made, so it cannot reach a file, a cache key, a log or a card.
"""

import os
from dataclasses import dataclass

from modeling_emovit.errors import EmoVITInputError


@dataclass
class ClientSettings:
    """Where to send requests and how hard; the API key itself is only ever read from `os.environ[api_key_env]`."""

    model: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    rpm: float | None = None
    tpm: float | None = None
    timeout: float = 60.0  # seconds: the deadline of one attempt, the whole reply included
    max_retries: int = 6
    max_rejections: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_tokens: int | None = 1024
    temperature: float | None = None


def endpoint(settings: ClientSettings) -> str:
    """The server the requests go to, as the openai SDK picks it (`base_url`, else $OPENAI_BASE_URL, else OpenAI's):
    part of every cache key, since two servers may answer to one model name."""
    return (settings.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")


def api_key_from_env(settings: ClientSettings) -> str:
    """The key from `settings.api_key_env`; a server given by `base_url` may need none (vLLM, transformers serve)."""
    key = os.environ.get(settings.api_key_env)
    if key:
        return key
    if settings.base_url:
        return "unused"
    raise EmoVITInputError(
        f"Set the {settings.api_key_env} environment variable to your OpenAI API key "
        "(or name another variable with --api-key-env), or give --base-url for a server that needs none."
    )
