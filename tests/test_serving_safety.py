"""`emovit serve` on hostile HTTP input: a real server process on loopback, probed as issue 20 describes.

One server with the defaults answers the table of probes (URLs and paths for images, oversized bodies, bomb and
garbage images, out-of-range fields, transformers' dropped routes); a second, started with `--allow-image-urls` and
a small `--max-new-tokens` and a server-wide pixel budget of 5000 pixels, answers the probes of that opt-in
(redirects, a dripping URL, a byte cap), of the cap and of the budget.
A loopback HTTP server standing for an address inside the server's network records every request it gets, so a probe
can show it was never contacted.
Every error reply must be OpenAI's shape (`{"error": {"message", "type", "code"}}`, what the openai client reads)
and under 1 KB.
"""

import base64
import json
import re
import signal
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2
import openai
import pytest
from PIL import Image
from serving_helpers import data_url, serving
from train_helpers import save_tiny_emovit

from modeling_emovit.errors import EmoVITInputError

RED = Image.new("RGB", (32, 32), (200, 20, 20))
BLUE_60 = Image.new("RGB", (60, 60), (20, 20, 200))  # 3600 pixels: more than half of url_server's 5000-pixel budget
PNG = base64.b64decode(data_url(RED).partition(",")[2])


class InternalService:
    """A loopback HTTP server standing for an internal address; records the path of every request it gets.

    /img.png: a PNG; /redirect: 302 to /img.png; /drip: the PNG one byte a second until the client hangs up (or
    `stop`); /big: 3 MB of bytes.
    """

    def __init__(self):
        self.paths: list[str] = []
        self.drip_started, self.stop = threading.Event(), threading.Event()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                service.paths.append(self.path)
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "/img.png")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = b"\0" * (3 * 2**20) if self.path == "/big" else PNG
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path == "/drip":
                    service.drip_started.set()
                    return self._drip(body)
                try:
                    self.wfile.write(body)
                except OSError:  # the server under test stopped reading (its byte cap)
                    pass

            def _drip(self, body: bytes):
                for byte in body:  # at most len(PNG) seconds; the server under test hangs up much sooner
                    if service.stop.wait(1):
                        return
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:  # the client hung up
                        return

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def internal():
    service = InternalService()
    yield service
    service.close()


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return save_tiny_emovit(tmp_path_factory.mktemp("served-model"))


@pytest.fixture(scope="module")
def server(model_folder):
    with serving(model_folder) as served:
        yield served


@pytest.fixture(scope="module")
def url_server(model_folder):
    with serving(model_folder, "--allow-image-urls", "--image-url-timeout", "6", "--max-request-mb", "2",
                 "--max-new-tokens", "8", "--max-megapixels-in-flight", "0.005") as served:
        yield served


@pytest.fixture(scope="module")
def local_jpeg(tmp_path_factory):
    path = tmp_path_factory.mktemp("server-disk") / "private.jpg"
    RED.save(path)
    return path


def chat(url, part_type: str = "image_url") -> dict:
    """A chat completion body with one image part (OpenAI's chat format) and the instruction."""
    image = {"type": part_type, part_type: {"url": url}}
    return {"max_tokens": 2, "messages": [{"role": "user", "content": [image, {"type": "text", "text": "Emotion?"}]}]}


def garbage_url(size: int) -> str:
    return "data:image/png;base64," + base64.b64encode(b"not an image " * (size // 13)).decode()


def post(served, route: str, body) -> httpx2.Response:
    if isinstance(body, bytes):
        return httpx2.post(served.url + route, content=body, headers={"Content-Type": "application/json"}, timeout=60)
    return httpx2.post(served.url + route, json=body, timeout=60)


def error_message(response: httpx2.Response) -> str:
    """The message of an OpenAI-shaped error reply under 1 KB (asserted)."""
    assert len(response.content) < 1024, f"{len(response.content)} bytes: {response.content[:200]!r}"
    error = response.json()["error"]
    assert {"message", "type", "code"} <= set(error) and error["type"].endswith("_error")
    return error["message"]


# (probe, route, body made from the internal service and a JPEG on the server's disk, status, what the reply says)
PROBES = [
    ("emotions, URL of an internal address", "/v1/emotions", lambda i, j: {"image": i.url("/img.png")},
     400, "image: images must be sent inside the request as base64 data URLs"),
    ("emotions, one URL in a list", "/v1/emotions", lambda i, j: {"image": [data_url(RED), i.url("/img.png")]},
     400, "image[1]: images must be sent inside the request as base64 data URLs"),
    ("chat, URL of an internal address", "/v1/chat/completions", lambda i, j: chat(i.url("/img.png")),
     400, "messages[0].content[0].image_url: images must be sent inside the request as base64 data URLs"),
    ("chat, a path on the server's disk", "/v1/chat/completions", lambda i, j: chat(str(j)),
     400, "this server opens no paths or other URLs"),
    ("chat, a file URL", "/v1/chat/completions", lambda i, j: chat(j.as_uri()), 400, "this server opens no paths"),
    ("emotions, a path on the server's disk", "/v1/emotions", lambda i, j: {"image": str(j)},
     400, "this server opens no paths"),
    ("chat, a video part with a URL", "/v1/chat/completions", lambda i, j: chat(i.url("/img.png"), "video_url"),
     400, "takes text parts and image_url parts (base64 data URLs), not 'video_url'"),
    ("chat, a data URL that is no image (InvalidImageError)", "/v1/chat/completions",
     lambda i, j: chat(garbage_url(100)), 400, "messages[0].content[0].image_url: not a readable image"),
    ("emotions, 500 KB that is no image, not echoed", "/v1/emotions", lambda i, j: {"image": garbage_url(500_000)},
     400, "image: not a readable image"),
    ("emotions, a data URL without base64", "/v1/emotions", lambda i, j: {"image": "data:image/png,abc"},
     400, "a data URL must carry base64"),
    ("emotions, 65 images", "/v1/emotions", lambda i, j: {"image": [data_url(RED)] * 65},
     400, "image[64]: a request may carry at most 64 images"),
    ("emotions, 257 candidate labels", "/v1/emotions",
     lambda i, j: {"image": data_url(RED), "candidate_labels": [f"label{k}" for k in range(257)]},
     400, "candidate_labels has 257 labels; at most 256"),
    ("emotions, candidate labels not strings", "/v1/emotions",
     lambda i, j: {"image": data_url(RED), "candidate_labels": [1, 2]}, 400, "candidate_labels must be a list of"),
    ("emotions, top_k -1", "/v1/emotions", lambda i, j: {"image": data_url(RED), "top_k": -1},
     400, "top_k must be an integer of at least 1, not -1"),
    ("emotions, top_k 0", "/v1/emotions", lambda i, j: {"image": data_url(RED), "top_k": 0}, 400, "top_k must be"),
    ("emotions, top_k 2.5", "/v1/emotions", lambda i, j: {"image": data_url(RED), "top_k": 2.5}, 400, "top_k must be"),
    ("emotions, top_k true", "/v1/emotions", lambda i, j: {"image": data_url(RED), "top_k": True}, 400, "top_k must be"),
    ("body over 20 MB", "/v1/emotions", lambda i, j: b"{" + b" " * (20 * 2**20),
     413, "The request body is over this server's 20 MB limit (--max-request-mb)"),
    ("body not JSON, not echoed", "/v1/emotions", lambda i, j: b"{" + b"x" * 100_000, 422, "JSON decode error"),
    ("chat, messages not a list", "/v1/chat/completions", lambda i, j: {"messages": "hello"},
     400, "messages must be a list of message objects"),
    ("chat, model name of 100 KB, not echoed", "/v1/chat/completions",
     lambda i, j: {**chat(data_url(RED)), "model": "m" * 100_000}, 400, "Server is pinned to"),
    ("chat, max_tokens not an integer", "/v1/chat/completions",
     lambda i, j: {**chat(data_url(RED)), "max_tokens": "abc"},
     400, "max_tokens must be an integer from 1 to 1024 (this server's cap, --max-new-tokens), not abc"),
    ("chat, max_completion_tokens over the cap", "/v1/chat/completions",
     lambda i, j: {**chat(data_url(RED)), "max_completion_tokens": 10**9},
     400, "max_completion_tokens must be an integer from 1 to 1024 (this server's cap"),
    ("chat, n 2", "/v1/chat/completions", lambda i, j: {**chat(data_url(RED)), "n": 2},
     400, "n must be 1 (this server returns one choice), not 2"),
    ("chat, temperature 5", "/v1/chat/completions", lambda i, j: {**chat(data_url(RED)), "temperature": 5},
     400, "temperature must be a number from 0 to 2, not 5"),
    ("chat, stream a string", "/v1/chat/completions", lambda i, j: {**chat(data_url(RED)), "stream": "false"},
     400, "stream must be true or false, not false"),
    ("chat, stop (a 500 inside transformers: a processor has no get_vocab)", "/v1/chat/completions",
     lambda i, j: {**chat(data_url(RED)), "stop": ["."]}, 400, "This server does not take stop"),
    ("chat, frequency_penalty as text", "/v1/chat/completions",
     lambda i, j: {**chat(data_url(RED)), "frequency_penalty": "abc"}, 400, "frequency_penalty must be a number"),
    ("/load_model (loads any model a client names)", "/load_model", lambda i, j: {"model": str(j.parent)},
     404, "POST /load_model is not served here; this server answers /v1/chat/completions, /v1/emotions"),
    ("/reset (unloads the model)", "/reset", lambda i, j: {}, 404, "POST /reset is not served here"),
    ("/v1/responses (images through another route)", "/v1/responses",
     lambda i, j: {"input": [{"type": "input_image", "image_url": i.url("/img.png")}]}, 404, "is not served here"),
]


@pytest.mark.parametrize("probe, route, make_body, status, says", PROBES, ids=[probe for probe, *_ in PROBES])
def test_hostile_requests_get_a_short_openai_error_and_reach_nothing(server, internal, local_jpeg, probe, route,
                                                                     make_body, status, says):
    internal.paths.clear()
    response = post(server, route, make_body(internal, local_jpeg))
    assert response.status_code == status, response.content[:300]
    assert says in error_message(response)
    assert internal.paths == []  # the internal address was never contacted


def test_the_openai_client_shows_the_refusal_of_an_image_url(server, internal):
    internal.paths.clear()
    with pytest.raises(openai.BadRequestError) as refused:
        server.client.chat.completions.create(model=server.client.models.list().data[0].id, **chat(internal.url("/x")))
    assert "images must be sent inside the request as base64 data URLs" in refused.value.message
    assert internal.paths == []


def test_a_chat_request_within_the_generation_rules_is_answered(server):
    body = {**chat(data_url(RED)), "temperature": 0, "top_p": 1, "n": 1, "seed": 7, "stream": False}
    response = post(server, "/v1/chat/completions", body)
    assert response.status_code == 200, response.content[:300]
    assert len(response.json()["choices"]) == 1


def test_max_new_tokens_sets_the_cap_of_max_tokens(url_server):
    refused = post(url_server, "/v1/chat/completions", {**chat(data_url(RED)), "max_tokens": 9})
    assert refused.status_code == 400
    assert "max_tokens must be an integer from 1 to 8 (this server's cap, --max-new-tokens), not 9" in error_message(
        refused)
    assert post(url_server, "/v1/chat/completions", {**chat(data_url(RED)), "max_tokens": 8}).status_code == 200


@pytest.mark.parametrize("field, value, says", [
    ("max_tokens", True, "max_tokens must be an integer from 1 to 1024"),
    ("max_tokens", 0, "max_tokens must be an integer from 1 to 1024"),
    ("top_p", 0, "top_p must be a number above 0 and at most 1, not 0"),
    ("seed", 2**64, "seed must be a 64-bit integer"),
    ("frequency_penalty", -1, "frequency_penalty must be a number above -1 and at most 2, not -1"),
    ("logit_bias", {"12": 101}, "logit_bias must be an object of at most 300 token ids to numbers from -100 to 100"),
    ("logit_bias", {"a word": 5}, "logit_bias must be an object of at most 300 token ids"),
    ("generation_config", '{"num_beams": 64}', "This server does not take generation_config"),
])
def test_generation_fields_out_of_openai_ranges_are_refused(field, value, says):
    from emovit.serving_inputs import RequestLimits, check_generation_fields

    with pytest.raises(EmoVITInputError, match=re.escape(says)):
        check_generation_fields({field: value}, RequestLimits())


def test_a_request_naming_no_length_gets_the_cap_and_null_fields_their_defaults():
    from emovit.serving_inputs import RequestLimits, check_generation_fields

    body = {"max_tokens": None, "temperature": None, "stop": None}
    check_generation_fields(body, RequestLimits(max_new_tokens=16))
    assert body["max_tokens"] == 16
    named = {"max_completion_tokens": 4}
    check_generation_fields(named, RequestLimits(max_new_tokens=16))
    assert named == {"max_completion_tokens": 4}


def _peak_memory_kb(process: subprocess.Popen) -> int:
    """The process's peak resident memory (Linux /proc)."""
    for line in open(f"/proc/{process.pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM line in /proc/PID/status")


def test_a_decompression_bomb_is_refused_from_its_header_without_decoding(server):
    bomb = data_url(Image.new("1", (12000, 12000)))  # 144 M pixels in 18 KB of PNG; 432 MB once decoded as RGB
    before = _peak_memory_kb(server.process)
    response = post(server, "/v1/emotions", {"image": bomb})
    assert response.status_code == 400
    assert "a 12000x12000 image is over the 89478485 pixels one request may decode" in error_message(response)
    assert _peak_memory_kb(server.process) - before < 100_000  # KB: far below the 432 MB a decode would take
    assert post(server, "/v1/emotions", {"image": data_url(RED)}).status_code == 200  # and it still serves


def test_with_allow_image_urls_an_http_image_is_fetched(url_server, internal):
    internal.paths.clear()
    response = post(url_server, "/v1/emotions", {"image": internal.url("/img.png"), "top_k": 2})
    assert response.status_code == 200 and len(response.json()["emotions"]) == 2
    assert internal.paths == ["/img.png"]


@pytest.mark.parametrize("url, says", [
    ("/etc/hostname", "base64 data URLs (data:image/png;base64,...) or an http(s) URL"),
    ("file:///etc/hostname", "this server opens no paths or other URLs"),
    ("REDIRECT", "answered with a redirect (HTTP 302), which this server does not follow"),
    ("BIG", "is over this server's 2 MB limit (--max-request-mb)"),
])
def test_with_allow_image_urls_redirects_paths_and_big_images_are_refused(url_server, internal, url, says):
    internal.paths.clear()
    url = {"REDIRECT": internal.url("/redirect"), "BIG": internal.url("/big")}.get(url, url)
    response = post(url_server, "/v1/chat/completions", chat(url))
    assert response.status_code == 400 and says in error_message(response)
    assert "/img.png" not in internal.paths  # the redirect was not followed


def test_a_dripping_url_stalls_neither_the_next_request_nor_past_its_deadline(url_server, internal):
    internal.drip_started.clear()
    with ThreadPoolExecutor(1) as pool:
        dripping = pool.submit(post, url_server, "/v1/emotions", {"image": internal.url("/drip")})
        assert internal.drip_started.wait(60)
        normal = post(url_server, "/v1/emotions", {"image": data_url(RED)})
        answered_while_dripping = not dripping.done()
        refused = dripping.result(timeout=60)
    assert normal.status_code == 200 and answered_while_dripping
    assert refused.status_code == 400
    assert "did not send the whole image within 6 s (--image-url-timeout)" in error_message(refused)


def test_each_response_gives_its_pixels_back_to_the_server_budget(url_server):
    for route, body in [("/v1/emotions", {"image": data_url(BLUE_60)})] * 3 + [
            ("/v1/chat/completions", chat(data_url(BLUE_60)))] * 2 + [("/v1/emotions", {"image": data_url(BLUE_60)})]:
        response = post(url_server, route, body)  # a second 3600 pixels fit only once the first are given back
        assert response.status_code == 200, response.text


def test_an_image_over_the_whole_server_budget_is_refused_for_good(url_server):
    response = post(url_server, "/v1/emotions", {"image": data_url(Image.new("RGB", (80, 80)))})
    assert response.status_code == 400
    assert "6400 pixels are over the 5000 this server decodes at once (--max-megapixels-in-flight)" in (
        error_message(response))
    assert post(url_server, "/v1/emotions", {"image": data_url(BLUE_60)}).status_code == 200


def test_concurrent_requests_over_the_budget_are_told_to_retry_and_a_retrying_client_gets_every_answer(
        url_server, model_folder):
    def plain():
        return post(url_server, "/v1/emotions", {"image": data_url(BLUE_60)})

    def retrying_openai_client(_):
        client = url_server.client.with_options(max_retries=20)  # honours Retry-After on 429
        return client.chat.completions.create(model=str(model_folder), max_tokens=2, messages=chat(data_url(BLUE_60))["messages"])

    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda _: plain(), range(12)))
        answers = list(pool.map(retrying_openai_client, range(6)))
    assert {reply.status_code for reply in replies} <= {200, 429} and any(r.status_code == 200 for r in replies)
    for busy in [reply for reply in replies if reply.status_code == 429]:
        assert busy.headers["retry-after"] == "1" and "retry shortly" in error_message(busy)
        assert busy.json()["error"]["type"] == "rate_limit_error"
    assert all(answer.choices[0].message.content is not None for answer in answers)
    assert post(url_server, "/v1/emotions", {"image": data_url(BLUE_60)}).status_code == 200  # nothing held after


def test_a_request_that_fails_or_loses_its_client_gives_its_pixels_back():
    import asyncio

    from starlette.exceptions import HTTPException

    from emovit.serving_inputs import PixelBudget, ReleaseRequestImages, RequestImages, RequestLimits

    budget = PixelBudget(5000)

    async def holding_then_failing(scope, receive, send):  # an endpoint whose client went away mid-response
        scope["state"]["images"] = images = RequestImages(RequestLimits(), budget)
        await images.decode(data_url(BLUE_60), "image")
        assert budget.in_use == 3600
        with pytest.raises(HTTPException) as busy:
            await RequestImages(RequestLimits(), budget).decode(data_url(BLUE_60), "image")
        assert busy.value.status_code == 429 and busy.value.headers == {"Retry-After": "1"}
        raise OSError("client disconnected")

    with pytest.raises(OSError):
        asyncio.run(ReleaseRequestImages(holding_then_failing)({"type": "http", "state": {}}, None, None))
    assert budget.in_use == 0


def test_one_ctrl_c_stops_the_server_cleanly_after_it_served(model_folder):
    with serving(model_folder) as served:
        assert post(served, "/v1/emotions", {"image": data_url(RED)}).status_code == 200
        served.process.send_signal(signal.SIGINT)
        code = served.process.wait(timeout=60)
        log = served.log.read_text()
    assert code == 0, log[-2000:]
    assert "Traceback" not in log and "KeyboardInterrupt" not in log
    assert "Finished server process" in log  # uvicorn's graceful shutdown ran


def test_input_errors_are_matched_along_the_class_hierarchy_by_name():
    from emovit.serving_inputs import is_input_error

    class EmoVITInputError(ValueError):  # what a folder's remote-code copy of modeling_emovit.errors defines
        pass

    class InvalidImageError(EmoVITInputError):
        pass

    assert is_input_error(InvalidImageError("x")) and is_input_error(EmoVITInputError("x"))
    assert not is_input_error(ValueError("x")) and not is_input_error(json.JSONDecodeError("x", "", 0))
