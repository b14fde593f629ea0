"""`emovit serve` as a real process on a free loopback port, for the server tests (tests/test_serving*.py)."""

import base64
import contextlib
import io
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from openai import OpenAI


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def data_url(image, format: str = "PNG") -> str:
    """A PIL image as the data URL an OpenAI client sends (RFC 2397, base64)."""
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return f"data:image/{format.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


@dataclass
class Served:
    client: OpenAI  # for the server's /v1 routes
    process: subprocess.Popen
    url: str  # http://127.0.0.1:PORT
    log: Path  # the server's stdout and stderr


def _wait_until_up(served: Served, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert served.process.poll() is None, served.log.read_text()[-3000:]
        try:
            served.client.models.list()
            return
        except Exception:  # not listening yet
            time.sleep(0.5)
    raise TimeoutError("emovit serve did not start within 90 s")


@contextlib.contextmanager
def serving(folder, *flags: str):
    """`emovit serve FOLDER [FLAGS]` in its own process (its output in a file, which never fills up as a pipe
    would); yields a `Served`, and stops the process if it still runs."""
    port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "serve.log"
        with log.open("w") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "emovit", "serve", str(folder), "--port", str(port), "--device", "cpu", *flags],
                stdout=output, stderr=subprocess.STDOUT, text=True,
            )
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=60)
        served = Served(client, process, f"http://127.0.0.1:{port}", log)
        try:
            _wait_until_up(served)
            yield served
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
