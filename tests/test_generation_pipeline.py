"""Instruction generation end to end: backends, resumable JSONL output, cache, faults, kill -9, key secrecy."""

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from dataset_builder.generation.batch import BatchBackend
from dataset_builder.chat import ClientSettings, ResponseCache
from dataset_builder.generation import OpenAIBackend, RulesBackend, failed_path, generate_instructions
from dataset_builder.generation.prompts import load_prompt
from generation_fixtures import (closed_port_url, huge_reply, injected_reply, make_records, opposite_emotion_reply,
                                 pairs_reply, task_of)
from modeling_emovit.errors import EmoVITInputError
from openai_server import running_openai_server

TESTS = Path(__file__).parent


def rows(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()] if Path(path).exists() else []


def keys(path) -> Counter:
    return Counter((row["id"], row["task"]) for row in rows(path))


def openai_backend(base_url, cache=None, content_checks=True, **overrides) -> OpenAIBackend:
    settings = dict(model="gpt-4o-mini", base_url=base_url, timeout=1.0, backoff_base=0.01, concurrency=4)
    return OpenAIBackend(ClientSettings(**{**settings, **overrides}), cache, content_checks=content_checks)


def test_rules_backend_writes_one_marked_line_per_image_and_task_and_resumes_with_nothing_to_do(tmp_path):
    out = tmp_path / "generations.jsonl"
    report = generate_instructions(make_records(4), RulesBackend(), out, progress=False)
    lines = rows(out)
    assert report.done == 8 and len(lines) == 8 and set(keys(out).values()) == {1}
    assert {(row["backend"], row["model"], row["prompt_version"]) for row in lines} == {("rules", "rules-offline", "rules/2024-1")}
    assert {len(row["pairs"]) for row in lines if row["task"] == "conversation"} == {3}
    again = generate_instructions(make_records(4), RulesBackend(), out, progress=False)
    assert (again.done, again.resumed, len(rows(out))) == (0, 8, 8)


def test_structured_output_run_writes_validated_pairs_with_model_version_and_usage(tmp_path):
    out = tmp_path / "generations.jsonl"
    with running_openai_server(respond=pairs_reply) as (base_url, stats):
        report = generate_instructions(make_records(3), openai_backend(base_url), out, progress=False)
    assert report.done == 6 and stats.requests == 6
    assert all(body["response_format"]["type"] == "json_schema" for body in stats.bodies)
    row = next(row for row in rows(out) if row["id"] == "img-00001" and row["task"] == "reasoning")
    assert row["pairs"] == [{"question": "What is happening in the picture (0)?",
                             "answer": "It shows a dog chasing a ball number 1 on a beach."}]
    assert row["model"] == "gpt-4o-mini" and row["prompt_version"] == load_prompt("reasoning").version
    assert row["backend"] == "openai"
    # The usage written and counted is the server's own (every row's, summed), and the cost is OpenAI's list price
    # for gpt-4o-mini when written: $0.15 per 1M input tokens, $0.60 per 1M output tokens.
    assert sum(row["usage"]["prompt_tokens"] for row in rows(out)) == stats.prompt_tokens == report.prompt_tokens
    assert sum(row["usage"]["completion_tokens"] for row in rows(out)) == stats.completion_tokens
    assert report.completion_tokens == stats.completion_tokens > 0
    assert all(row["usage"]["total_tokens"] == row["usage"]["prompt_tokens"] + row["usage"]["completion_tokens"]
               for row in rows(out))
    assert report.cost == pytest.approx((stats.prompt_tokens * 0.15 + stats.completion_tokens * 0.60) / 1e6)


def test_text_fallback_gives_the_same_pairs_when_the_server_lacks_json_schema(tmp_path):
    with running_openai_server(respond=pairs_reply) as (base_url, _):
        generate_instructions(make_records(2), openai_backend(base_url), tmp_path / "json.jsonl", progress=False)
    with running_openai_server(respond=pairs_reply, structured_output=False) as (base_url, stats):
        report = generate_instructions(make_records(2), openai_backend(base_url, concurrency=1), tmp_path / "text.jsonl",
                                       progress=False)
    assert report.done == 4 and stats.by_fault["no_json_schema"] == 1
    assert all("Question:" in body["messages"][0]["content"] for body in stats.bodies[1:])
    pairs = lambda name: sorted((row["id"], row["task"], json.dumps(row["pairs"])) for row in rows(tmp_path / name))
    assert pairs("json.jsonl") == pairs("text.jsonl")


def test_every_fault_ends_with_each_item_written_or_failed_with_its_reason_exactly_once(tmp_path):
    faults = ["rate_limit", "server_error", "timeout", "malformed", "truncated", "refusal", "refusal_text"]
    script = lambda number, body: faults[number % len(faults)] if number % 2 else "ok"
    out = tmp_path / "generations.jsonl"
    with running_openai_server(script=script, respond=pairs_reply, hang=2) as (base_url, stats):
        report = generate_instructions(make_records(10), openai_backend(base_url, timeout=0.3, max_retries=1,
                                                                        max_rejections=0), out, progress=False)
    written, failed = keys(out), keys(failed_path(out))
    assert set(written.values()) <= {1} and set(failed.values()) <= {1} and not written.keys() & failed.keys()
    assert len(written) + len(failed) == 20 == report.done + report.failed
    assert set(stats.by_fault) >= set(faults) and report.failed > 0
    assert all(row["error"] for row in rows(failed_path(out)))
    assert sum(report.failures.values()) == report.failed


def test_rejected_replies_are_retried_then_recorded_with_the_reason(tmp_path):
    leaked = json.dumps({"pairs": [{"question": "Complex question: Why?", "answer": "Because it is sunny."}]})
    leaky = lambda body: leaked if "number 0 " in body["messages"][-1]["content"] else pairs_reply(body)
    out = tmp_path / "generations.jsonl"
    with running_openai_server(respond=leaky) as (base_url, stats):
        report = generate_instructions(make_records(2), openai_backend(base_url, max_rejections=1), out,
                                       tasks=["reasoning"], progress=False)
    [failure] = rows(failed_path(out))
    assert failure["id"] == "img-00000" and failure["error"].startswith("rejected: leaked label")
    assert report.done == 1 and stats.requests == 1 + 2  # one good, the bad one asked twice


POISONED = {"another emotion": (opposite_emotion_reply, "answer states another emotion than the label"),
            "instruction-like text": (injected_reply, "instruction-like text in answer")}


@pytest.mark.parametrize("poison", list(POISONED))
def test_pairs_that_contradict_the_label_or_address_the_model_are_rejected_and_counted_by_reason(tmp_path, poison):
    respond, reason = POISONED[poison]
    out = tmp_path / "generations.jsonl"
    with running_openai_server(respond=respond) as (base_url, stats):
        report = generate_instructions(make_records(2), openai_backend(base_url, max_rejections=1), out,
                                       progress=False)
    assert rows(out) == [] and stats.requests == 4 * 2  # each item asked twice, then failed
    assert report.failures == {f"rejected: {reason}": 4} and report.rejected == {reason: 8}
    assert {row["error"] for row in rows(failed_path(out))} == {f"rejected: {reason}"}
    assert f"rejected reply: 8 x {reason}" in report.summary()


def test_content_checks_off_writes_the_pairs_the_checks_would_reject(tmp_path):
    out = tmp_path / "generations.jsonl"
    with running_openai_server(respond=opposite_emotion_reply) as (base_url, stats):
        report = generate_instructions(make_records(2), openai_backend(base_url, content_checks=False), out,
                                       progress=False)
    assert report.done == 4 and report.rejected == {} and stats.requests == 4
    # img-00000 is amusement; the poisoned server says disgust, four labels on in Mikels-8
    assert "evokes disgust" in next(row for row in rows(out) if row["id"] == "img-00000")["pairs"][0]["answer"]


def test_replies_over_the_size_limit_are_not_written_and_are_counted_by_reason(tmp_path):
    """10 MB answers to max_tokens 1024 (the limit: 64 KiB + 64 bytes per token = 128 KiB), with and without a
    Content-Length; each item fails at once, without a second request."""
    out = tmp_path / "generations.jsonl"
    script = lambda number, body: "huge" if number % 2 else "huge_unsized"  # noqa: E731
    with running_openai_server(script=script, respond=huge_reply, hang=5) as (base_url, stats):
        report = generate_instructions(make_records(2), openai_backend(base_url, timeout=4.0, max_tokens=1024), out,
                                       progress=False)
    assert out.read_text() == "" and stats.requests == 4 and stats.by_fault == {"huge": 2, "huge_unsized": 2}
    assert report.failures == {"reply over 131072 bytes (max_tokens 1024)": 4}


def test_a_second_run_on_the_same_output_is_refused_while_the_first_sends(tmp_path):
    out, first_is_waiting, release = tmp_path / "generations.jsonl", threading.Event(), threading.Event()

    def held_reply(body):  # the first run's requests wait here until the second run has been refused
        first_is_waiting.set()
        release.wait(timeout=30)
        return pairs_reply(body)

    with running_openai_server(respond=held_reply) as (base_url, stats):
        first = threading.Thread(target=generate_instructions, args=(make_records(2), openai_backend(base_url), out),
                                 kwargs={"progress": False})
        first.start()
        try:
            assert first_is_waiting.wait(timeout=30)
            with pytest.raises(EmoVITInputError) as refused:
                generate_instructions(make_records(2), openai_backend(base_url), out, progress=False)
            sent_while_the_first_ran = stats.requests
        finally:
            release.set()
            first.join(timeout=60)
    assert str(refused.value) == (f"{out}: another `emovit data generate` is writing it now; wait for it, or pass "
                                  "another --out.")
    assert sent_while_the_first_ran <= 4 and stats.requests == 4  # only the first run's 4 items were ever asked
    assert keys(out) == Counter({(f"img-0000{index}", task): 1 for index in range(2)
                                 for task in ("conversation", "reasoning")})
    assert not Path(f"{out}.lock").exists()


def test_a_second_run_from_the_cache_sends_no_request_and_writes_the_same_lines(tmp_path):
    with running_openai_server(respond=pairs_reply) as (base_url, stats), ResponseCache(tmp_path / "c.sqlite") as cache:
        generate_instructions(make_records(3), openai_backend(base_url, cache), tmp_path / "a.jsonl", progress=False)
        report = generate_instructions(make_records(3), openai_backend(base_url, cache), tmp_path / "b.jsonl",
                                       progress=False)
    assert stats.requests == 6 and report.cached == 6 and report.requests == 0
    assert sorted(map(json.dumps, rows(tmp_path / "a.jsonl"))) == sorted(map(json.dumps, rows(tmp_path / "b.jsonl")))


def test_a_changed_temperature_or_max_tokens_misses_the_cache(tmp_path):
    runs = [{"temperature": 0.2}, {"temperature": 0.7}, {"temperature": 0.7, "max_tokens": 256}]
    with running_openai_server(respond=pairs_reply) as (base_url, stats), ResponseCache(tmp_path / "c.sqlite") as cache:
        reports = [generate_instructions(make_records(1), openai_backend(base_url, cache, **settings),
                                         tmp_path / f"run{number}.jsonl", progress=False)
                   for number, settings in enumerate(runs)]
    assert [(report.requests, report.cached) for report in reports] == [(2, 0)] * 3 and stats.requests == 6
    assert [body["temperature"] for body in stats.bodies] == [0.2, 0.2, 0.7, 0.7, 0.7, 0.7]


def test_two_servers_answering_to_the_same_model_name_do_not_share_cached_answers(tmp_path):
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        with running_openai_server(respond=pairs_reply) as (first_url, first):
            generate_instructions(make_records(2), openai_backend(first_url, cache), tmp_path / "a.jsonl",
                                  progress=False)
        with running_openai_server(respond=pairs_reply) as (second_url, second):
            report = generate_instructions(make_records(2), openai_backend(second_url, cache), tmp_path / "b.jsonl",
                                           progress=False)
    assert first.requests == 4 and second.requests == 4 and report.cached == 0


def test_a_line_cut_short_by_a_kill_is_dropped_and_written_again(tmp_path):
    out = tmp_path / "generations.jsonl"
    generate_instructions(make_records(2), RulesBackend(), out, tasks=["reasoning"], progress=False)
    whole = out.read_text().splitlines()
    out.write_text(whole[0] + "\n" + whole[1][:20])
    report = generate_instructions(make_records(2), RulesBackend(), out, tasks=["reasoning"], progress=False)
    assert report.done == 1 and out.read_text().splitlines() == whole


KILLABLE_RUN = """
import sys
sys.path.insert(0, {tests!r})
from dataset_builder.chat import ClientSettings, ResponseCache
from dataset_builder.generation import OpenAIBackend, generate_instructions
from generation_fixtures import make_records
settings = ClientSettings(model="gpt-4o-mini", base_url=sys.argv[1], concurrency=4, timeout=5)
with ResponseCache(sys.argv[3]) as cache:
    generate_instructions(make_records(40), OpenAIBackend(settings, cache), sys.argv[2], progress=False)
"""


def test_kill_9_in_the_middle_then_resume_gives_every_record_exactly_once(tmp_path):
    out, cache = tmp_path / "generations.jsonl", tmp_path / "cache.sqlite"
    command = [sys.executable, "-c", KILLABLE_RUN.format(tests=str(TESTS))]
    with running_openai_server(respond=pairs_reply, latency=0.05) as (base_url, stats):
        process = subprocess.Popen([*command, base_url, str(out), str(cache)])
        try:
            deadline = time.monotonic() + 60
            while len(rows(out)) < 10 and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.05)
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        written_before_kill = len(rows(out))
        assert 10 <= written_before_kill < 80
        subprocess.run([*command, base_url, str(out), str(cache)], check=True, timeout=120)
    assert keys(out) == Counter({(f"img-{index:05d}", task): 1 for index in range(40)
                                 for task in ("conversation", "reasoning")})
    assert stats.requests < 80 + 8  # resumed, not redone (at most the in-flight ones twice)


def test_the_api_key_reaches_the_server_but_no_file_or_log(tmp_path, monkeypatch, caplog, capsys):
    secret = "sk-test-DO-NOT-WRITE-0123456789"
    monkeypatch.setenv("EMOVIT_TEST_KEY", secret)
    caplog.set_level(logging.DEBUG)
    script = lambda number, body: "no_json_schema" if body.get("response_format") else ("server_error" if number % 3 == 0 else "ok")
    with running_openai_server(script=script, respond=pairs_reply) as (base_url, stats):
        with ResponseCache(tmp_path / "cache.sqlite") as cache:
            generate_instructions(make_records(4), openai_backend(base_url, cache, api_key_env="EMOVIT_TEST_KEY",
                                                                  max_retries=0), tmp_path / "out.jsonl")
    assert f"Bearer {secret}" in stats.authorizations
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert {path.name for path in files} >= {"out.jsonl", "out.jsonl.failed.jsonl", "cache.sqlite"}
    assert rows(tmp_path / "out.jsonl") and rows(tmp_path / "out.jsonl.failed.jsonl")
    for path in files:
        assert secret.encode() not in path.read_bytes(), path
    captured = capsys.readouterr()
    assert secret not in captured.out + captured.err + caplog.text


def test_batch_backend_submits_request_files_polls_ingests_and_reuses_its_cache(tmp_path):
    out = tmp_path / "generations.jsonl"
    attempts = Counter()

    def first_reply_leaks(body):  # img-00002's first reasoning reply is rejected, its second accepted
        subject = body["messages"][-1]["content"].splitlines()[0]
        attempts[subject, task_of(body)] += 1
        if "number 2 " in subject and task_of(body) == "reasoning" and attempts[subject, "reasoning"] == 1:
            return json.dumps({"pairs": [{"question": "Why?", "answer": "The caption says so."}]})
        return pairs_reply(body)

    settings = ClientSettings(model="gpt-4o-mini", max_rejections=1)
    with running_openai_server(respond=first_reply_leaks, batch_polls=2) as (base_url, stats):
        settings.base_url = base_url
        with ResponseCache(tmp_path / "cache.sqlite") as cache:
            backend = BatchBackend(settings, tmp_path / "batch", cache, poll_interval=0.01)
            report = generate_instructions(make_records(3), backend, out, progress=False)
            again = generate_instructions(make_records(3), BatchBackend(settings, tmp_path / "batch2", cache),
                                          tmp_path / "again.jsonl", progress=False)
    requests = [json.loads(line) for line in (tmp_path / "batch" / "requests-0000.jsonl").read_text().splitlines()]
    assert len(requests) == 6 and requests[0]["url"] == "/v1/chat/completions"
    assert requests[0]["body"]["response_format"]["type"] == "json_schema"
    assert (tmp_path / "batch" / "requests-0001.jsonl").read_text().count("custom_id") == 1  # the rejected one
    assert report.done == 6 and report.failed == 0 and set(keys(out).values()) == {1}
    assert {row["backend"] for row in rows(out)} == {"batch"}
    assert stats.batch_calls["batches.create"] == 2 and stats.batch_calls["batches.retrieve"] >= 6
    assert again.cached == 6 and stats.batch_calls["batches.create"] == 2
    assert report.cost is not None  # estimated at the Batch API's half price


def killed_while_polling(records, backend, out, monkeypatch) -> None:
    """A batch run whose process dies after submitting its batch, before the batch completes."""

    async def killed(self, client, batch_id):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(BatchBackend, "_wait", killed)
        try:
            generate_instructions(records, backend, out, progress=False)
        except KeyboardInterrupt:
            pass


def test_batch_run_killed_while_polling_picks_its_batch_up_again_instead_of_resubmitting(tmp_path, monkeypatch):
    out, settings = tmp_path / "generations.jsonl", ClientSettings(model="gpt-4o-mini")
    with running_openai_server(respond=pairs_reply) as (base_url, stats):
        settings.base_url = base_url
        killed_while_polling(make_records(2), BatchBackend(settings, tmp_path / "batch"), out, monkeypatch)
        assert rows(out) == [] and stats.batch_calls["batches.create"] == 1
        report = generate_instructions(make_records(2), BatchBackend(settings, tmp_path / "batch", poll_interval=0.01),
                                       out, progress=False)
    assert report.done == 4 and stats.batch_calls["batches.create"] == 1 and set(keys(out).values()) == {1}


def test_batch_token_count_and_cost_include_rejected_replies(tmp_path):
    def leaks_once(body):  # every first reasoning reply is rejected (it reveals the caption), the second accepted
        subject = body["messages"][-1]["content"].splitlines()[0]
        attempts[subject, task_of(body)] += 1
        if task_of(body) == "reasoning" and attempts[subject, "reasoning"] == 1:
            return json.dumps({"pairs": [{"question": "Why?", "answer": "The caption says so."}]})
        return pairs_reply(body)

    attempts = Counter()
    settings = ClientSettings(model="gpt-4o-mini", max_rejections=1)
    with running_openai_server(respond=leaks_once) as (base_url, stats):
        settings.base_url = base_url
        backend = BatchBackend(settings, tmp_path / "batch", poll_interval=0.01)
        report = generate_instructions(make_records(3), backend, tmp_path / "g.jsonl", progress=False)
    assert report.done == 6 and sum(attempts.values()) == 9  # 6 accepted and 3 rejected replies were billed
    assert report.prompt_tokens + report.completion_tokens == stats.batch_tokens > 0


def test_batch_expired_requests_go_into_the_next_round_and_a_failed_batch_names_its_error(tmp_path):
    settings = ClientSettings(model="gpt-4o-mini", max_rejections=1)
    outcomes = {1: "expired"}  # the first batch runs half its requests before its window ends
    batch_script = lambda number: outcomes.get(number, "completed")  # noqa: E731
    with running_openai_server(respond=pairs_reply, batch_script=batch_script) as (url, stats):
        settings.base_url = url
        report = generate_instructions(make_records(2), BatchBackend(settings, tmp_path / "b1", poll_interval=0.01),
                                       tmp_path / "g.jsonl", progress=False)
        assert (report.done, report.failed, stats.batch_calls["batches.create"]) == (4, 0, 2)
        outcomes.update({3: "failed", 4: "failed"})
        report = generate_instructions(make_records(1), BatchBackend(settings, tmp_path / "b2", poll_interval=0.01),
                                       tmp_path / "h.jsonl", progress=False)
    assert report.failures == {
        "missing from the batch output (batch failed: The loopback server refused this batch.)": 2}


def test_a_batch_picked_up_after_a_kill_counts_as_a_round_of_max_rejections(tmp_path, monkeypatch):
    def always_leaks(body):
        if task_of(body) == "reasoning":
            return json.dumps({"pairs": [{"question": "Why?", "answer": "The caption says so."}]})
        return pairs_reply(body)

    out, settings = tmp_path / "generations.jsonl", ClientSettings(model="gpt-4o-mini", max_rejections=0)
    with running_openai_server(respond=always_leaks) as (base_url, stats):
        settings.base_url = base_url
        killed_while_polling(make_records(1), BatchBackend(settings, tmp_path / "batch"), out, monkeypatch)
        report = generate_instructions(make_records(1), BatchBackend(settings, tmp_path / "batch", poll_interval=0.01),
                                       out, progress=False)
    assert (report.done, report.failed) == (1, 1) and stats.batch_calls["batches.create"] == 1


def test_batch_rejects_poisoned_pairs_for_another_round_and_fails_an_oversized_reply_at_once(tmp_path):
    # max_tokens 16: replies over 64 KiB + 16 x 64 bytes = 66560 bytes are refused
    respond = lambda body: (opposite_emotion_reply(body) if "number 0 " in body["messages"][-1]["content"]  # noqa: E731
                            else huge_reply(body, size=200_000))
    settings = ClientSettings(model="gpt-4o-mini", max_rejections=1, max_tokens=16)
    with running_openai_server(respond=respond) as (base_url, stats):
        settings.base_url = base_url
        report = generate_instructions(make_records(2), BatchBackend(settings, tmp_path / "batch", poll_interval=0.01),
                                       tmp_path / "g.jsonl", tasks=["reasoning"], progress=False)
    assert report.failures == {"rejected: answer states another emotion than the label": 1,
                               "reply over 66560 bytes (max_tokens 16)": 1}
    assert report.rejected == {"answer states another emotion than the label": 2}
    # the poisoned item went into a second round; the oversized one did not
    assert stats.batch_calls["batches.create"] == 2 and rows(tmp_path / "g.jsonl") == []
    second_round = (tmp_path / "batch" / "requests-0001.jsonl").read_text().splitlines()
    assert [json.loads(line)["custom_id"] for line in second_round] == ["img-00000:reasoning"]


def test_batch_backend_at_a_closed_port_stops_with_one_sentence_naming_the_url(tmp_path):
    url = closed_port_url()
    backend = BatchBackend(ClientSettings(model="gpt-4o-mini", base_url=url), tmp_path / "batch")
    with pytest.raises(EmoVITInputError, match=f"^cannot connect to {url} \\(connection refused\\)"):
        generate_instructions(make_records(1), backend, tmp_path / "g.jsonl", progress=False)
