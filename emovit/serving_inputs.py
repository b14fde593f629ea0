"""What `emovit serve` takes from a client, and how it says no: the guards between the network and transformers'
server (`emovit.serving`).

- Request bodies are capped before anything parses them (`RequestBodyLimit`, `--max-request-mb`).
- Images come as base64 data URLs inside the request and are decoded here (`RequestImages`), within the pixel limit
  `emovit data build` uses (`modeling_emovit.image_utils.open_image`, PIL's `MAX_IMAGE_PIXELS`), counted over the
  whole request, and within `--max-megapixels-in-flight` over all the requests in progress (`PixelBudget`: a
  request that would go over does not wait, it is answered 429 with Retry-After). transformers' own loader
  (`transformers.image_utils.load_image`) fetches URLs with no deadline, follows redirects and opens paths on the
  server's disk, so no string a client sent ever reaches it: chat messages reach transformers with decoded images in
  place of their URLs. With `--allow-image-urls` an http(s) URL is fetched here, without redirects, within a
  deadline and the byte cap, on the event loop (not the inference thread).
- Generation fields are checked first (`check_generation_fields`), to OpenAI's ranges: `max_tokens` and
  `max_completion_tokens` at most `--max-new-tokens` (and that cap for a request naming neither), one choice (`n`),
  `stream` a boolean, no `stop` (it fails inside transformers for every processor) and no `generation_config`;
  transformers would turn a wrong type into a 500, generate for as long as a client asks, return one choice whatever
  `n` says and stream on `"stream": "false"`.
- Every error reply is OpenAI's `{"error": {"message", "type", "param", "code"}}`, its message one line short enough
  that the reply stays under 1 KB whatever the client sent (`error_reply`).
"""

import asyncio
import base64
import io
import json
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from PIL import Image

from modeling_emovit.errors import EmoVITInputError

MAX_IMAGES_PER_REQUEST = 64
MAX_LOGIT_BIASES = 300  # OpenAI's limit
ERROR_MESSAGE_BYTES = 700  # of the JSON-escaped message: the reply, envelope included, stays under 1 KB
ERROR_TYPES = {400: "invalid_request_error", 404: "not_found_error", 405: "invalid_request_error",
               413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
               500: "server_error"}


@dataclass(frozen=True)
class RequestLimits:
    """What one request may bring: body bytes (also the cap of a fetched image), whether, and how long, image URLs
    are fetched, and how many tokens it may ask to have generated; and the pixels all requests in progress may hold
    decoded at once."""

    max_request_bytes: int = 20 * 1024 * 1024
    allow_image_urls: bool = False
    image_url_timeout: float = 10.0
    max_new_tokens: int = 1024
    max_pixels_in_flight: int = 4 * Image.MAX_IMAGE_PIXELS  # four requests at the per-request cap: about 1 GB as RGB

    def check(self) -> None:
        """Refuses limits that would refuse every request, naming the flag."""
        if self.max_new_tokens < 1:
            raise EmoVITInputError(f"--max-new-tokens must be positive, not {self.max_new_tokens}.")
        if self.max_request_bytes < 1:
            raise EmoVITInputError(f"--max-request-mb must be positive, not {self.max_request_bytes / 2**20:g}.")
        if self.image_url_timeout <= 0:
            raise EmoVITInputError(f"--image-url-timeout must be positive, not {self.image_url_timeout:g}.")
        if self.max_pixels_in_flight < 1:
            raise EmoVITInputError(
                f"--max-megapixels-in-flight must be positive, not {self.max_pixels_in_flight / 1e6:g}.")

    @property
    def megabytes(self) -> str:
        return f"{self.max_request_bytes / 2**20:g} MB"


def error_reply(status: int, message: str, code: str | None = None):
    """OpenAI's error shape, the message on one line and cut to `ERROR_MESSAGE_BYTES` (never the upload echoed)."""
    from fastapi.responses import JSONResponse

    text = " ".join(str(message).split())[:ERROR_MESSAGE_BYTES]
    while len(json.dumps(text).encode()) > ERROR_MESSAGE_BYTES:  # escapes of non-ASCII and control characters
        text = text[: len(text) * 3 // 4]
    if len(text) < len(" ".join(str(message).split())):
        text = text[:-3] + "..."
    error = {"message": text, "type": ERROR_TYPES.get(status, "invalid_request_error"), "param": None, "code": code}
    return JSONResponse(status_code=status, content={"error": error})


class RequestBodyLimit:
    """ASGI middleware: a body over the cap (declared in Content-Length, or counted as it streams in) is answered 413
    before any of it is parsed; a body within it is read whole (at most the cap) and handed on."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            return await self._refuse(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                return await self._refuse(scope, receive, send)
        pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay():
            return pending.pop() if pending else await receive()

        return await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send):
        megabytes = f"{self.max_bytes / 2**20:g} MB"
        reply = error_reply(413, f"The request body is over this server's {megabytes} limit (--max-request-mb); "
                                 f"send smaller or fewer images.", code="request_too_large")
        await reply(scope, receive, send)


class PixelBudget:
    """The pixels the server holds decoded for the requests in progress, all of them together: at most `max_pixels`.
    Requests take their images' pixels as they decode them (`take`, from the decoding threads) and give them back when
    their response has been sent or their client has gone (`ReleaseRequestImages`)."""

    def __init__(self, max_pixels: int):
        self.max_pixels, self.in_use = max_pixels, 0
        self._lock = threading.Lock()

    def take(self, pixels: int, field: str) -> None:
        """Counts `pixels` as held, or refuses: 400 for an image over the whole budget, 429 while others hold it."""
        from starlette.exceptions import HTTPException

        with self._lock:
            if self.in_use + pixels <= self.max_pixels:
                self.in_use += pixels
                return
        if pixels > self.max_pixels:
            raise EmoVITInputError(f"{field}: the image's {pixels} pixels are over the {self.max_pixels} this server "
                                   f"decodes at once (--max-megapixels-in-flight).")
        raise HTTPException(429, "The server holds as many decoded pixels as it may (--max-megapixels-in-flight) for "
                                 "the requests in progress; retry shortly.", headers={"Retry-After": "1"})

    def give_back(self, pixels: int) -> None:
        with self._lock:
            self.in_use -= pixels


class ReleaseRequestImages:
    """ASGI middleware: once a request's response is over (sent, failed or abandoned by its client), the pixels of
    the images decoded for it (`RequestImages`, kept in its `request.state.images`) go back to the `PixelBudget`."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        try:
            await self.app(scope, receive, send)
        finally:
            images = scope.get("state", {}).get("images")
            if images is not None:
                images.release()


class RequestImages:
    """Decodes the images of one request into upright RGB PIL images, refusing (one sentence naming the field) what is
    not a base64 data URL (or, when allowed, an http(s) URL), and more than `MAX_IMAGES_PER_REQUEST` images or PIL's
    `MAX_IMAGE_PIXELS` pixels in all; their pixels are taken from the server's `budget` until `release`."""

    def __init__(self, limits: RequestLimits, budget: PixelBudget):
        self.limits, self.budget = limits, budget
        self.count = 0
        self.taken = 0  # pixels decoded for this request and held in the server's budget

    def release(self) -> None:
        """Gives this request's pixels back to the server's budget (once: later calls give nothing)."""
        self.budget.give_back(self.taken)
        self.taken = 0

    async def decode(self, url, field: str):
        self.count += 1
        if self.count > MAX_IMAGES_PER_REQUEST:
            raise EmoVITInputError(f"{field}: a request may carry at most {MAX_IMAGES_PER_REQUEST} images.")
        if not isinstance(url, str):
            raise EmoVITInputError(f"{field}: an image must be a data URL string (data:image/png;base64,...).")
        if url.startswith("data:"):
            return await asyncio.to_thread(self._open, _data_url_bytes(url, field), field)
        if not (self.limits.allow_image_urls and _scheme(url) in ("http", "https")):
            allowed = " or an http(s) URL" if self.limits.allow_image_urls else ""
            raise EmoVITInputError(f"{field}: images must be sent inside the request as base64 data URLs "
                                   f"(data:image/png;base64,...){allowed}; this server opens no paths or other URLs.")
        return await asyncio.to_thread(self._open, await self._fetch(url, field), field)

    def _open(self, data: bytes, field: str):
        """The decoded image, after its header says it fits in what is left of the request's and the server's pixel
        budgets."""
        from modeling_emovit.image_utils import open_image

        buffer = io.BytesIO(data)
        buffer.name = field  # what open_image's errors name
        try:
            width, height = Image.open(buffer).size  # the header only: nothing decoded yet
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            width = height = 0  # open_image below says what is wrong with it
        if self.taken + width * height > Image.MAX_IMAGE_PIXELS:
            raise EmoVITInputError(f"{field}: a {width}x{height} image is over the {Image.MAX_IMAGE_PIXELS} pixels one "
                                   f"request may decode (the limit `emovit data build` applies to each image).")
        self.budget.take(width * height, field)
        self.taken += width * height
        buffer.seek(0)
        return open_image(buffer)

    async def _fetch(self, url: str, field: str) -> bytes:
        """The body of a GET on `url` (200 only, no redirects), within the deadline and the byte cap."""
        import httpx2

        shown = url if len(url) <= 120 else url[:117] + "..."
        deadline = self.limits.image_url_timeout
        try:
            return await asyncio.wait_for(self._download(url, field, shown), deadline)
        except asyncio.TimeoutError:
            raise EmoVITInputError(f"{field}: {shown} did not send the whole image within {deadline:g} s "
                                   f"(--image-url-timeout).") from None
        except (httpx2.HTTPError, httpx2.InvalidURL) as error:
            raise EmoVITInputError(f"{field}: cannot fetch {shown} ({type(error).__name__}).") from None

    async def _download(self, url: str, field: str, shown: str) -> bytes:
        import httpx2

        chunks, size = [], 0
        timeout = self.limits.image_url_timeout  # per connect and read; `_fetch` bounds the whole download
        async with httpx2.AsyncClient(follow_redirects=False, trust_env=False, timeout=timeout) as client:
            async with client.stream("GET", url) as response:
                if response.is_redirect:
                    raise EmoVITInputError(f"{field}: {shown} answered with a redirect (HTTP {response.status_code}), "
                                           f"which this server does not follow.")
                if response.status_code != 200:
                    raise EmoVITInputError(f"{field}: {shown} answered HTTP {response.status_code}, not an image.")
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.limits.max_request_bytes:
                        raise EmoVITInputError(f"{field}: the image at {shown} is over this server's "
                                               f"{self.limits.megabytes} limit (--max-request-mb).")
                    chunks.append(chunk)
        return b"".join(chunks)


def _scheme(url: str) -> str:
    try:
        return urlsplit(url).scheme.lower() if "://" in url else ""
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return ""


def _data_url_bytes(url: str, field: str) -> bytes:
    """The bytes of `data:[<media type>];base64,<data>` (RFC 2397)."""
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise EmoVITInputError(f"{field}: a data URL must carry base64 (data:image/png;base64,...).")
    try:
        return base64.b64decode(payload)
    except ValueError:  # binascii.Error: bad padding
        raise EmoVITInputError(f"{field}: the data URL's base64 does not decode.") from None


def is_json_integer(value) -> bool:
    """Whether `value` is a JSON integer (`True` is an `int` to Python, not to OpenAI)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    """Whether `value` is a JSON number, not a boolean (NaN and infinity, which Python's JSON reads, fail any range)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_logit_bias(value) -> bool:
    """Whether `value` is OpenAI's `logit_bias`: at most `MAX_LOGIT_BIASES` token ids (as strings) to numbers from -100
    to 100."""
    return (isinstance(value, dict) and len(value) <= MAX_LOGIT_BIASES
            and all(key.isdigit() and _is_number(bias) and -100 <= bias <= 100 for key, bias in value.items()))


_GENERATION_RULES = {  # field: (what its value must be, the test); the ranges of OpenAI's chat completions
    "temperature": ("a number from 0 to 2", lambda value: _is_number(value) and 0 <= value <= 2),
    "top_p": ("a number above 0 and at most 1", lambda value: _is_number(value) and 0 < value <= 1),
    "n": ("1 (this server returns one choice)", lambda value: is_json_integer(value) and value == 1),
    # what torch.manual_seed takes
    "seed": ("a 64-bit integer", lambda value: is_json_integer(value) and -(2**63) <= value < 2**64),
    "stream": ("true or false", lambda value: isinstance(value, bool)),
    # transformers applies it as repetition_penalty = 1 + frequency_penalty, which must stay above 0
    "frequency_penalty": ("a number above -1 and at most 2", lambda value: _is_number(value) and -1 < value <= 2),
    "logit_bias": (f"an object of at most {MAX_LOGIT_BIASES} token ids to numbers from -100 to 100", _is_logit_bias),
}
REFUSED_FIELDS = {  # fields transformers' chat handler reads that this server does not take from a client
    "stop": "transformers matches stop strings through a tokenizer vocabulary, which the served processors lack",
    "generation_config": "it is transformers' own field and would let a client set any generation setting",
}


def check_generation_fields(body: dict, limits: RequestLimits) -> None:
    """Refuses, in one sentence naming the field, a chat body's `max_tokens` or `max_completion_tokens` that is not an
    integer from 1 to `limits.max_new_tokens`, any other field outside `_GENERATION_RULES`, and the
    `REFUSED_FIELDS` (fields absent or null are left to their defaults). A body naming neither length gets
    `max_tokens` set to the cap: transformers' chat handler would otherwise generate up to the model's own
    `generation_config.max_new_tokens`, raised to at least 1024 (`BaseHandler._build_generation_config`)."""
    cap = limits.max_new_tokens
    for field in ("max_tokens", "max_completion_tokens"):
        value = body.get(field)
        if value is not None and not (is_json_integer(value) and 1 <= value <= cap):
            raise EmoVITInputError(f"{field} must be an integer from 1 to {cap} (this server's cap, --max-new-tokens), "
                                   f"not {str(value)[:20]}.")
    for field, (expected, accepts) in _GENERATION_RULES.items():
        if body.get(field) is not None and not accepts(body[field]):
            raise EmoVITInputError(f"{field} must be {expected}, not {str(body[field])[:20]}.")
    for field, reason in REFUSED_FIELDS.items():
        if body.get(field) is not None:
            raise EmoVITInputError(f"This server does not take {field}: {reason}.")
    if body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
        body["max_tokens"] = cap


async def decode_message_images(body: dict, images: RequestImages) -> None:
    """Puts the decoded image in place of the URL of every `image_url` part of `body["messages"]` (transformers'
    message conversion passes it on as the part's `url`, and its processors take a PIL image as it is); refuses
    messages that are not objects with a role, and parts other than text and image_url (video, audio, files)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(message, dict) for message in messages):
        raise EmoVITInputError("messages must be a list of message objects.")
    for i, message in enumerate(messages):
        if not isinstance(message.get("role"), str):
            raise EmoVITInputError(f"messages[{i}] needs a role.")
        content = message.get("content")
        for j, part in enumerate(content if isinstance(content, list) else []):
            field = f"messages[{i}].content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "image_url":
                image_url = part.get("image_url")
                url = image_url.get("url") if isinstance(image_url, dict) else image_url
                content[j] = {"type": "image_url", "image_url": {"url": await images.decode(url, f"{field}.image_url")}}
            elif kind != "text":  # OpenAI's chat part types: text, image_url, input_audio, file
                raise EmoVITInputError(f"{field}: this server takes text parts and image_url parts (base64 data URLs), "
                                       f"not {str(kind)[:40]!r}.")
            elif not isinstance(part.get("text"), str):
                raise EmoVITInputError(f"{field}.text must be a string.")


def is_input_error(error: BaseException) -> bool:
    """Whether `error` is an `EmoVITInputError`, by class name along its hierarchy: a folder's remote-code copy of
    `modeling_emovit` defines its own classes (`InvalidImageError` among them)."""
    return any(kind.__name__ == "EmoVITInputError" for kind in type(error).__mro__)


def install_error_replies(app, routes: list[str]) -> None:
    """Every error the app answers, in OpenAI's shape: bad input (`EmoVITInputError` and its subclasses) 400, HTTP
    errors with their status (a path outside `routes` 404), malformed bodies 422 (without the input FastAPI would
    echo), anything else 500."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    async def input_error(request, error: ValueError):
        if not is_input_error(error):
            raise error  # any other error stays a server error (500, below)
        return error_reply(400, str(error))

    async def http_error(request, error: HTTPException):
        if error.status_code in (404, 405):
            return error_reply(error.status_code, f"{request.method} {request.url.path[:100]} is not served here; "
                                                  f"this server answers {', '.join(routes)}.")
        reply = error_reply(error.status_code, str(error.detail))
        reply.headers.update(error.headers or {})  # Retry-After of a 429
        return reply

    async def malformed_body(request, error: RequestValidationError):
        problems = [f"{'.'.join(str(part) for part in problem.get('loc', ()))}: {problem.get('msg', '')}"
                    for problem in error.errors()[:3]]
        return error_reply(422, f"Malformed request ({'; '.join(problems)}).")

    async def server_error(request, error: Exception):
        return error_reply(500, "The server failed on this request; its log has the traceback.")

    app.add_exception_handler(ValueError, input_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, malformed_body)
    app.add_exception_handler(Exception, server_error)
