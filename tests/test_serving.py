"""Specification of `emovit serve`: a real `transformers serve` process on loopback answers chat with an image."""

import base64
import io
import socket
import subprocess
import sys
import time

import openai
import pytest
from openai import OpenAI
from PIL import Image

from modeling_emovit.testing import tiny_emovit


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(client: OpenAI, process, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            client.models.list()
            return
        except Exception:  # not listening yet
            time.sleep(0.5)
    raise TimeoutError("emovit serve did not start within 90 s")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`emovit serve` on a saved tiny EmoVIT: (client, model name), the server stopped after the module."""
    folder = tmp_path_factory.mktemp("served")
    model, processor = tiny_emovit("llama")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "emovit", "serve", str(folder), "--port", str(port), "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=60)
        _wait_until_up(client, process)
        yield client, str(folder)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_served_model_answers_an_openai_chat_request_with_an_image(served):
    client, model = served
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 20, 20)).save(buffer, format="PNG")
    image_url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()

    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": image_url}},
            {"type": "text", "text": "What emotion does this image evoke?"},
        ]}],
        max_tokens=4,
    )

    assert reply.choices[0].message.content


def test_a_request_without_an_image_is_answered_400_with_a_sentence(served):
    client, model = served
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "How does it feel?"}],
                                       max_tokens=4)
    assert refused.value.status_code == 400
    assert "send one image with the instruction" in refused.value.message
