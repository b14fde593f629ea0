"""Where chat requests go and how hard: model, endpoint, concurrency, limits, retries, timeouts, sampling, reply size.

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
    max_reply_bytes: int | None = None  # None: derived from max_tokens (see `reply_byte_limit`)


# A token is about 4 bytes of English text; 64 bytes per token leaves room for JSON escapes (`\u00e9` is 6 bytes)
# and non-Latin scripts. Without max_tokens the bound is 32,768 tokens, the largest completion of OpenAI's chat
# models when written (gpt-4.1). The envelope (id, usage, role, refusal...) is under a kilobyte; 64 KiB covers it.
REPLY_BYTES_PER_TOKEN = 64
REPLY_ENVELOPE_BYTES = 65_536
UNBOUNDED_REPLY_TOKENS = 32_768


def reply_byte_limit(settings: ClientSettings) -> int:
    """The most bytes a reply body may have: `max_reply_bytes`, else what `max_tokens` tokens can take (1024 tokens:
    128 KiB). A larger reply is refused as soon as its size is known, before it is read whole."""
    if settings.max_reply_bytes:
        return settings.max_reply_bytes
    return REPLY_ENVELOPE_BYTES + REPLY_BYTES_PER_TOKEN * (settings.max_tokens or UNBOUNDED_REPLY_TOKENS)


def oversized_reply(settings: ClientSettings) -> str:
    """The reason an item fails with when its reply is over `reply_byte_limit`."""
    return f"reply over {reply_byte_limit(settings)} bytes (max_tokens {settings.max_tokens})"


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
