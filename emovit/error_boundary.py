"""The error boundary of every entry point (`emovit ...`, `recipes/sft.py`): bad input and known library failures
become one sentence on stderr and exit code 2, anything else (a bug) keeps its traceback.

Known failures are translated here, once, rather than caught where they happen: files that are not UTF-8, JSON
or YAML, truncated safetensors or PyTorch files, invalid `config.json` fields, Hub HTTP errors and offline mode,
and connections that fail. Code that reads a file wraps the read in `modeling_emovit.errors.reading(path)`, so
the sentence names it. `EMOVIT_DEBUG=1` (or `--debug`) re-raises, with the full traceback.
"""

import json
import os
import sys
from collections.abc import Callable

from modeling_emovit.errors import SUBJECT, EmoVITInputError

DEBUG_VARIABLE = "EMOVIT_DEBUG"
DEBUG_HINT = "EMOVIT_DEBUG=1 shows the traceback"


def debug_requested(flag: bool = False) -> bool:
    return flag or os.environ.get(DEBUG_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def run_guarded(program: str, call: Callable[[], int | None], debug: bool = False) -> int:
    """`call()`'s exit code; bad input or a known library failure prints `program: <sentence>` and returns 2."""
    try:
        return call() or 0
    except Exception as error:
        sentence = explain(error)
        if sentence is None or debug_requested(debug):
            raise
        print(f"{program}: {sentence}", file=sys.stderr)
        return 2


def explain(error: BaseException) -> str | None:
    """One sentence for bad input or a known library failure, naming its subject; None for anything else."""
    if isinstance(error, EmoVITInputError):
        return str(error)
    what = _describe(error)
    if what is None:
        return None
    file_name = error.filename if isinstance(error, OSError) else None  # the most precise subject there is
    subject = file_name or getattr(error, SUBJECT, None)
    return f"{subject}: {what} ({DEBUG_HINT})." if subject else f"{what[0].upper()}{what[1:]} ({DEBUG_HINT})."


def _loaded(module: str, name: str) -> type | None:
    """A library's exception class, only when that library is already imported (else nothing raised it)."""
    return getattr(sys.modules.get(module), name, None)


def _is(error: BaseException, module: str, name: str) -> bool:
    kind = _loaded(module, name)
    return kind is not None and isinstance(error, kind)


def _one_line(text: object, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _describe(error: BaseException) -> str | None:
    """The library rules, tried on the error and then on what caused it (transformers wraps Hub errors in an
    OSError); a plain OSError last."""
    cause, depth = error, 0
    while cause is not None and depth < 8:
        depth += 1
        for describe in (_decode_error, _weights_error, _config_error, _hub_error, _connection_error):
            what = describe(cause)
            if what is not None:
                return what
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    if isinstance(error, OSError):
        return _one_line(error.strerror if error.filename and error.strerror else error)
    return None


def _decode_error(error: BaseException) -> str | None:
    if isinstance(error, UnicodeDecodeError):
        return f"not UTF-8 text (byte {error.object[error.start]:#04x} at offset {error.start})"
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})"
    if _is(error, "yaml", "YAMLError"):
        return f"not valid YAML ({_one_line(error, 160)})"
    return None


def _weights_error(error: BaseException) -> str | None:
    if _is(error, "safetensors", "SafetensorError"):
        return f"a .safetensors weights file is truncated or corrupt ({_one_line(error)})"
    if isinstance(error, RuntimeError) and "PytorchStreamReader" in str(error):
        return "a PyTorch file is truncated or corrupt (its zip archive is incomplete)"
    if isinstance(error, EOFError):
        return "the file ends before its content does (empty or truncated)"
    return None


def _config_error(error: BaseException) -> str | None:
    for name in ("StrictDataclassFieldValidationError", "StrictDataclassClassValidationError"):
        if _is(error, "huggingface_hub.errors", name):
            return f"invalid config.json ({_one_line(error)})"
    return None


def _hub_error(error: BaseException) -> str | None:
    errors = "huggingface_hub.errors"
    if _is(error, errors, "OfflineModeIsEnabled"):
        return ("the Hugging Face Hub cannot be reached with offline mode on (HF_HUB_OFFLINE=1); unset it, or use a "
                "local folder")
    if _is(error, errors, "HFValidationError"):
        return f"neither an existing local folder nor a valid Hub id ({_one_line(error, 160)})"
    if _is(error, errors, "HfHubHTTPError"):
        response = getattr(error, "response", None)
        status = getattr(response, "status_code", "?")
        url = getattr(response, "url", None) or "the Hub"
        detail = getattr(error, "server_message", None) or str(error).splitlines()[0]
        return f"the Hub answered HTTP {status} for {url} ({_one_line(detail, 160)})"
    return None


def _connection_error(error: BaseException) -> str | None:
    transport = any(_is(error, module, "TransportError") for module in ("httpx2", "httpx"))
    if not (transport or isinstance(error, ConnectionError) or _is(error, "openai", "APIConnectionError")):
        return None
    try:
        url = error.request.url  # httpx errors know the request; it raises when they do not
    except (AttributeError, RuntimeError):
        url = None
    return f"cannot reach {url or 'the server'} ({_one_line(error, 160) or type(error).__name__})"
