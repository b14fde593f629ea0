"""Hub credentials for `emovit data push` and `emovit push`: huggingface_hub's auth errors as one clear sentence.

No token (`LocalTokenNotFoundError`) or a refused one (HTTP 401/403, `HfHubHTTPError`) is a user input problem,
not a bug: it becomes an `EmoVITInputError` the CLI prints, instead of a traceback. Other Hub errors pass through.
"""

import contextlib

from modeling_emovit.errors import EmoVITInputError

_LOGIN_HINT = "log in with `hf auth login` or set HF_TOKEN"


@contextlib.contextmanager
def hub_credentials(repo_id: str):
    """Runs Hub writes to `repo_id`; a missing, invalid or read-only token raises EmoVITInputError."""
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    try:
        yield
    except LocalTokenNotFoundError as error:
        raise EmoVITInputError(f"Pushing to {repo_id} needs a Hugging Face token: {_LOGIN_HINT}.") from error
    except HfHubHTTPError as error:
        status = getattr(error.response, "status_code", None)
        if status not in (401, 403):
            raise
        raise EmoVITInputError(
            f"The Hub refused to write to {repo_id} (HTTP {status}: no token, an invalid one or one without write "
            f"access); {_LOGIN_HINT} (a token with write access)."
        ) from error
