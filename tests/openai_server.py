"""A loopback OpenAI-compatible server for tests and benchmarks: chat completions with fault injection, plus the
minimal `/v1/files` and `/v1/batches` endpoints of the Batch API. Real HTTP on 127.0.0.1 (a thread per request).

    with running_openai_server(script=["rate_limit", "ok"], latency=0.1, respond=my_reply) as (base_url, stats):
        ...  # OpenAI(base_url=base_url, api_key="x")
        assert stats.requests == 2

`respond(body) -> str | dict` makes the reply content of a chat request (a dict is sent as JSON text); the
default echoes the last user message. `script` picks a fault per chat request: a list applied in arrival order
(then "ok"), or a callable `(request_number, body) -> fault` (request_number counts from 1). Faults:

- "ok": a normal completion with `usage`; "latency" seconds of delay apply to every request.
- "rate_limit": 429 with `Retry-After: <retry_after>`; "server_error": 500.
- "timeout": no answer for `hang` seconds (longer than the client's timeout).
- "drip": a normal completion whose body arrives in 10 pieces over `hang` seconds (each gap shorter than the
  client's per-read timeout, the whole longer than its deadline).
- "malformed": 200 with a body that is not JSON; "truncated": a JSON body cut off before its Content-Length.
- "refusal": `message.refusal` set and no content (structured-output refusal).
- "refusal_text": content "I'm sorry, but I can't help with that."
- "no_json_schema": 400 for any request with `response_format` (a server without structured output); use
  `structured_output=False` to refuse it for every request.
- "http_NNN": status NNN with an OpenAI-style error body (e.g. "http_404", "http_409").
- "huge" / "huge_unsized": a normal completion (make it large with `respond`) sent with its Content-Length /
  without one (the body then ends when the connection closes), of which only the first `HUGE_FIRST_BYTES` arrive
  before a pause of `hang` seconds: a client that reads the whole body before judging its size waits out its
  deadline, one that refuses it early does not.

`stats` counts chat requests (`requests`, `by_fault`, the most answered at once: `max_in_flight`), keeps their
bodies (`bodies`) and the Authorization headers seen (`authorizations`), when each arrived and was answered
(`arrivals`, `replies`: `time.monotonic()`), the usage of every completion sent (`prompt_tokens`,
`completion_tokens`), counts batch API calls (`batch_calls`) and the tokens of every line a batch answered
(`batch_tokens`). The usage it reports: prompt tokens are the whitespace-separated words of the request's
messages, completion tokens those of the reply content.
`GET /v1/stats` returns the request count and those times, so a client in another process can measure the
server-side span of a run (`python tests/openai_server.py --latency 0.1` serves until killed, printing its base URL).

`batch_script(batch_number) -> outcome` (batch_number counts created batches from 1) picks how a batch ends:
"completed" (the default), "expired" (status expired: the first half of its lines answered, the rest in the
error file with code `batch_expired`, as the Batch API writes them) or "failed" (status failed, no output, the
reason in `errors`).
"""

import contextlib
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class ServerStats:
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    by_fault: Counter = field(default_factory=Counter)
    bodies: list = field(default_factory=list)
    authorizations: set = field(default_factory=set)
    arrivals: list = field(default_factory=list)
    replies: list = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    batch_calls: Counter = field(default_factory=Counter)
    batch_tokens: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


HUGE_FIRST_BYTES = 1 << 20  # what a "huge" reply sends before it pauses


def echo(body: dict) -> str:
    return json.dumps({"echo": body["messages"][-1]["content"]})


def _completion(body: dict, content: str | None, refusal: str | None = None) -> dict:
    prompt_tokens = sum(len(str(message.get("content", "")).split()) for message in body.get("messages", []))
    completion_tokens = len((content or refusal or "").split())
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "loopback"),
        "choices": [{
            "index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": content, "refusal": refusal},
        }],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # listen backlog: the default 5 refuses connections under concurrency 32

    def __init__(self, script, latency, respond, retry_after, hang, structured_output, batch_polls,
                 batch_script=None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script, self.latency, self.respond = script, latency, respond
        self.retry_after, self.hang, self.structured_output, self.batch_polls = retry_after, hang, structured_output, batch_polls
        self.batch_script = batch_script or (lambda number: "completed")
        self.stats = ServerStats()
        self.stopping = threading.Event()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}

    def fault_for(self, number: int, body: dict) -> str:
        if not self.structured_output and body.get("response_format"):
            return "no_json_schema"
        if callable(self.script):
            return self.script(number, body)
        script = self.script or []
        return script[number - 1] if number <= len(script) else "ok"

    def chat_reply(self, body: dict, fault: str) -> tuple[int, dict]:
        """(status, JSON) for the faults that answer with JSON; the others are written by the handler."""
        if fault == "rate_limit":
            return 429, {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
        if fault == "server_error":
            return 500, {"error": {"message": "The server had an error", "type": "server_error"}}
        if fault.startswith("http_"):
            return int(fault[5:]), {"error": {"message": f"injected HTTP {fault[5:]}", "type": "invalid_request_error"}}
        if fault == "no_json_schema":
            return 400, {"error": {"message": "response_format json_schema is not supported", "type": "invalid_request_error"}}
        if fault == "refusal":
            return 200, _completion(body, None, refusal="I'm sorry, I cannot help with that request.")
        if fault == "refusal_text":
            return 200, _completion(body, "I'm sorry, but I can't help with that.")
        content = self.respond(body)
        completion = _completion(body, content if isinstance(content, str) else json.dumps(content))
        with self.stats.lock:
            self.stats.prompt_tokens += completion["usage"]["prompt_tokens"]
            self.stats.completion_tokens += completion["usage"]["completion_tokens"]
        return 200, completion

    def run_batch(self, batch: dict) -> None:
        """Answer the lines of the batch's input file with `respond` (no faults), as the Batch API would, or end
        the batch as `batch_script` says."""
        outcome = self.batch_script(list(self.batches).index(batch["id"]) + 1)
        if outcome == "failed":
            batch.update(status="failed", errors={"object": "list", "data": [
                {"code": "invalid_request", "message": "The loopback server refused this batch.", "line": None,
                 "param": None}]})
            return
        requests = [json.loads(line) for line in self.files[batch["input_file_id"]].decode().splitlines()]
        answered = requests[: len(requests) // 2] if outcome == "expired" else requests
        lines, expired = [], []
        for request in answered:
            status, reply = self.chat_reply(request["body"], "ok")
            self.stats.batch_tokens += reply["usage"]["total_tokens"]
            lines.append(json.dumps({
                "id": f"batch_req_{uuid.uuid4().hex[:8]}", "custom_id": request["custom_id"],
                "response": {"status_code": status, "request_id": uuid.uuid4().hex, "body": reply}, "error": None,
            }))
        for request in requests[len(answered):]:
            expired.append(json.dumps({
                "id": f"batch_req_{uuid.uuid4().hex[:8]}", "custom_id": request["custom_id"], "response": None,
                "error": {"code": "batch_expired",
                          "message": "This request could not be executed before the completion window expired."},
            }))
        batch.update(status="expired" if expired else "completed", output_file_id=self._store(lines),
                     error_file_id=self._store(expired),
                     request_counts={"total": len(requests), "completed": len(lines), "failed": len(expired)})

    def _store(self, lines: list[str]) -> str | None:
        if not lines:
            return None
        file_id = f"file-{uuid.uuid4().hex[:12]}"
        self.files[file_id] = ("\n".join(lines) + "\n").encode()
        return file_id


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

    def log_message(self, *args):  # quiet: tests read stats, not logs
        pass

    def _send_json(self, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self):
        server: _Server = self.server
        if self.path in ("/health", "/v1/health"):
            return self._send_json(200, {"status": "ok"})
        if self.path == "/v1/stats":
            stats = server.stats
            with stats.lock:
                return self._send_json(200, {"requests": stats.requests, "arrivals": list(stats.arrivals),
                                             "replies": list(stats.replies)})
        if self.path.startswith("/v1/batches/"):
            return self._retrieve_batch(self.path.rsplit("/", 1)[1])
        if self.path.startswith("/v1/files/") and self.path.endswith("/content"):
            server.stats.batch_calls["files.content"] += 1
            data = server.files[self.path.split("/")[3]]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return self.wfile.write(data)
        self._send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self):
        body = self._body()
        if self.path == "/v1/chat/completions":
            return self._chat(json.loads(body))
        if self.path == "/v1/files":
            return self._upload(body)
        if self.path == "/v1/batches":
            return self._create_batch(json.loads(body))
        self._send_json(404, {"error": {"message": f"no route {self.path}"}})

    def _chat(self, body: dict) -> None:
        stats = self.server.stats
        with stats.lock:
            stats.requests += 1
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            number = stats.requests
            stats.bodies.append(body)
            stats.authorizations.add(self.headers.get("Authorization", ""))
            stats.arrivals.append(time.monotonic())
        try:
            self._answer_chat(body, number)
        finally:
            with stats.lock:
                stats.in_flight -= 1
                stats.replies.append(time.monotonic())

    def _answer_chat(self, body: dict, number: int) -> None:
        server: _Server = self.server
        fault = server.fault_for(number, body)
        with server.stats.lock:
            server.stats.by_fault[fault] += 1
        if server.latency:
            time.sleep(server.latency)
        if fault == "timeout":
            server.stopping.wait(server.hang)
            self.close_connection = True
            return
        if fault == "drip":
            data = json.dumps(server.chat_reply(body, "ok")[1]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            step = -(-len(data) // 10)
            for start in range(0, len(data), step):
                self.wfile.write(data[start:start + step])
                self.wfile.flush()
                if server.stopping.wait(server.hang / 10):
                    return
            return
        if fault in ("huge", "huge_unsized"):
            return self._send_huge(body, sized=fault == "huge")
        if fault in ("malformed", "truncated"):
            data = b"{this is not json" if fault == "malformed" else json.dumps(_completion(body, "cut")).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2] if fault == "truncated" else data)
            self.close_connection = fault == "truncated"
            return
        status, payload = server.chat_reply(body, fault)
        headers = {"Retry-After": str(server.retry_after)} if status == 429 else None
        self._send_json(status, payload, headers)

    def _send_huge(self, body: dict, sized: bool) -> None:
        server: _Server = self.server
        data = json.dumps(server.chat_reply(body, "ok")[1]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if sized:
            self.send_header("Content-Length", str(len(data)))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            self.wfile.write(data[:HUGE_FIRST_BYTES])
            self.wfile.flush()
            if not server.stopping.wait(server.hang):
                self.wfile.write(data[HUGE_FIRST_BYTES:])
        except (BrokenPipeError, ConnectionResetError):  # the client hung up: what a careful one does
            pass

    def _upload(self, body: bytes) -> None:
        server: _Server = self.server
        server.stats.batch_calls["files.create"] += 1
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body
        )
        parts = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
        file_id = f"file-{uuid.uuid4().hex[:12]}"
        server.files[file_id] = parts["file"].get_payload(decode=True)
        self._send_json(200, {
            "id": file_id, "object": "file", "bytes": len(server.files[file_id]), "created_at": int(time.time()),
            "filename": parts["file"].get_filename() or "input.jsonl", "purpose": "batch", "status": "processed",
        })

    def _batch_json(self, batch: dict) -> dict:
        return {key: value for key, value in batch.items() if key != "polls"}

    def _create_batch(self, request: dict) -> None:
        server: _Server = self.server
        server.stats.batch_calls["batches.create"] += 1
        batch_id = f"batch_{uuid.uuid4().hex[:12]}"
        server.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": request["endpoint"], "input_file_id": request["input_file_id"],
            "completion_window": request["completion_window"], "status": "validating", "created_at": int(time.time()),
            "output_file_id": None, "error_file_id": None, "polls": 0,
        }
        self._send_json(200, self._batch_json(server.batches[batch_id]))

    def _retrieve_batch(self, batch_id: str) -> None:
        server: _Server = self.server
        server.stats.batch_calls["batches.retrieve"] += 1
        batch = server.batches[batch_id]
        batch["polls"] += 1
        if batch["status"] in ("validating", "in_progress"):
            if batch["polls"] > server.batch_polls:
                server.run_batch(batch)
            else:
                batch["status"] = "in_progress"
        self._send_json(200, self._batch_json(batch))


@contextlib.contextmanager
def running_openai_server(script=None, latency: float = 0.0, respond=echo, retry_after: float = 0.05,
                          hang: float = 5.0, structured_output: bool = True, batch_polls: int = 1,
                          batch_script=None):
    """Serve on a free port of 127.0.0.1; yield `(base_url, stats)`; stop the server (and any hung reply) on exit.

    `batch_polls`: how many `batches.retrieve` calls answer "in_progress" before a batch completes.
    """
    server = _Server(script, latency, respond, retry_after, hang, structured_output, batch_polls, batch_script)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", server.stats
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


if __name__ == "__main__":  # a server in its own process, for benchmarks: prints its base URL, serves until killed
    import argparse
    import sys

    from generation_fixtures import pairs_reply

    parser = argparse.ArgumentParser(description="Loopback OpenAI-compatible server answering instruction pairs.")
    parser.add_argument("--latency", type=float, default=0.1)
    args = parser.parse_args()
    with running_openai_server(respond=pairs_reply, latency=args.latency) as (base_url, _):
        print(base_url, flush=True)
        sys.stdin.read()  # until the parent closes our stdin (or kills us)
