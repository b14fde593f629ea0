"""Generation against a real `transformers serve` process on 127.0.0.1 serving a tiny random causal LM."""

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from transformers import LlamaConfig, LlamaForCausalLM

from dataset_builder.chat import ClientSettings
from dataset_builder.generation import OpenAIBackend, failed_path, generate_instructions
from generation_fixtures import make_records
from modeling_emovit.testing import train_lm_tokenizer

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def tiny_chat_model(folder: Path) -> Path:
    tokenizer = train_lm_tokenizer(["Question: what is in the image? Answer: a dog on a beach."] * 5, vocab_size=300)
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "transformers serve exited early"
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.25)
    raise TimeoutError(f"{url} not healthy after {seconds} s")


def test_a_real_transformers_serve_run_completes_and_counts_what_fails_validation(tmp_path):
    model = tiny_chat_model(tmp_path / "tiny-chat")
    port = free_port()
    executable = shutil.which("transformers", path=str(Path(sys.executable).parent))
    process = subprocess.Popen(
        [executable, "serve", str(model), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.log", "wb"),
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", process, seconds=90)
        settings = ClientSettings(model=str(model), base_url=f"http://127.0.0.1:{port}/v1", concurrency=2,
                                  timeout=30, max_retries=1, max_rejections=0, max_tokens=12, temperature=0.0)
        out = tmp_path / "generations.jsonl"
        report = generate_instructions(make_records(2), OpenAIBackend(settings), out, progress=False)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    # A random model writes no valid pairs: every item is answered, rejected and counted with its reason.
    assert report.done + report.failed == 4 and report.requests >= 4
    failures = [json.loads(line) for line in failed_path(out).read_text().splitlines()]
    assert len(failures) == report.failed and report.failed == 4
    assert all(row["error"].startswith("rejected:") for row in failures), failures
