"""The reusable chat request runner against a real loopback OpenAI-compatible server with injected faults.

Waits are checked as decisions, on a `ManualClock` that records them without spending them; no test reads the
wall clock.
"""

import asyncio
import json

import pytest

from dataset_builder.chat import ChatRequest, ChatRunner, ClientSettings, ResponseCache, run_chat_requests
from dataset_builder.chat import RejectedOutput
from generation_fixtures import ManualClock, closed_port_url
from modeling_emovit.errors import EmoVITInputError
from openai_server import running_openai_server


def requests(count: int, response_format=None) -> list[ChatRequest]:
    return [ChatRequest(f"r{index}", [{"role": "user", "content": f"item {index}"}], response_format=response_format,
                        fallback_messages=[{"role": "user", "content": f"item {index} as text"}])
            for index in range(count)]


def settings(base_url: str, **overrides) -> ClientSettings:
    return ClientSettings(**{"model": "loopback", "base_url": base_url, "timeout": 1.0, "backoff_base": 0.01,
                             "max_tokens": 32, **overrides})


def echo_value(content: str) -> str:
    value = json.loads(content)["echo"]
    if value.startswith("I'm sorry"):
        raise RejectedOutput("refusal")
    return value


@pytest.mark.parametrize("fault", ["rate_limit", "server_error", "timeout", "malformed", "truncated", "refusal",
                                   "refusal_text"])
def test_each_transient_fault_is_retried_until_the_request_succeeds(fault):
    # The deadline cuts the 5 s hang but leaves a busy machine's normal reply (the retry) ample time.
    with running_openai_server(script=[fault], hang=5) as (base_url, stats):
        [result] = run_chat_requests(requests(1), settings(base_url, timeout=2.0), parse=echo_value)
    assert result.ok and result.value == "item 0" and result.attempts == 2
    assert stats.requests == 2 and stats.by_fault[fault] == 1


@pytest.mark.parametrize("status, retried", [(404, False), (400, False), (408, True), (409, True)])
def test_client_errors_are_not_retried_except_timeout_and_conflict(status, retried):
    """OpenAI's own policy: a 4xx other than 408, 409 and 429 fails the same way when asked again."""
    with running_openai_server(script=[f"http_{status}"]) as (base_url, stats):
        [result] = run_chat_requests(requests(1), settings(base_url), parse=echo_value)
    assert stats.requests == (2 if retried else 1)
    assert result.ok if retried else result.error == f"http {status}"


def test_timeout_is_a_deadline_for_the_whole_reply_even_when_the_server_drips_it():
    # Each piece arrives 0.3 s after the last (under the 2 s per-read timeout of the SDK); the whole takes 3 s. Without
    # the deadline the drip would be the answer (one attempt); with it, it is cut and the retry answers.
    with running_openai_server(script=["drip"], hang=3.0) as (base_url, stats):
        [result] = run_chat_requests(requests(1), settings(base_url, timeout=2.0), parse=echo_value)
    assert result.ok and result.value == "item 0" and result.attempts == 2
    assert stats.by_fault["drip"] == 1 and stats.requests == 2


def test_retry_waits_the_servers_retry_after_when_it_exceeds_the_backoff():
    clock = ManualClock()
    with running_openai_server(script=["rate_limit"], retry_after=0.4) as (base_url, stats):
        [result] = run_chat_requests(requests(1), settings(base_url), parse=echo_value, clock=clock)
    # backoff_base 0.01: the jittered backoff of retry 1 is at most 0.02 s, so the server's 0.4 s decides
    assert result.ok and clock.sleeps == [0.4] and stats.requests == 2


def test_a_retry_after_over_backoff_max_fails_the_item_at_once_with_its_reason_instead_of_stalling():
    clock = ManualClock()
    with running_openai_server(script=["rate_limit"], retry_after=3600) as (base_url, stats):
        [result] = run_chat_requests(requests(1), settings(base_url, backoff_max=2.0), parse=echo_value, clock=clock)
    assert clock.sleeps == [] and stats.requests == 1
    assert result.error == "http 429: the server asked to wait 3600 s (over backoff_max 2 s)"


def test_a_long_wait_within_backoff_max_is_logged(caplog):
    clock = ManualClock()
    with running_openai_server(script=["rate_limit"], retry_after=5.5) as (base_url, stats):
        with caplog.at_level("WARNING", logger="dataset_builder.chat.runner"):
            [result] = run_chat_requests(requests(1), settings(base_url, backoff_max=10.0), parse=echo_value,
                                         clock=clock)
    assert result.ok and clock.sleeps == [5.5] and "waiting 5.5 s before retry 1" in caplog.text


@pytest.mark.parametrize("fault", ["huge", "huge_unsized"])
def test_a_reply_over_the_size_limit_fails_at_once_without_being_read_whole(fault):
    # 10 MB for max_tokens 32 (limit 64 KiB + 64 bytes per token); the server sends 1 MB, then pauses 5 s: a client
    # reading the body whole before judging it would wait out its 2 s deadline and retry.
    with running_openai_server(script=[fault], respond=lambda body: "x" * 10_000_000, hang=5) as (base_url, stats):
        [result] = run_chat_requests(requests(1), settings(base_url, timeout=2.0, max_retries=1), parse=echo_value)
    assert result.error == "reply over 67584 bytes (max_tokens 32)" and result.attempts == 1
    assert stats.requests == 1 and stats.by_fault[fault] == 1


def test_a_refused_connection_stops_the_run_at_once_with_one_sentence_naming_the_url():
    url, clock = closed_port_url(), ManualClock()
    with pytest.raises(EmoVITInputError) as refused:
        run_chat_requests(requests(3), settings(url, concurrency=2), parse=echo_value, clock=clock)
    assert str(refused.value) == (f"cannot connect to {url} (connection refused): check the server address "
                                  "(--base-url) and that the server is running.")
    assert clock.sleeps == []  # no retry was even waited for


def test_a_refused_connection_after_the_server_has_answered_is_retried_like_a_timeout():
    """A server restarting mid-run: the runner has had answers (`reached_server`), so a refusal is transient."""
    results, clock = [], ManualClock()
    runner = ChatRunner(settings(closed_port_url(), max_retries=2), parse=echo_value, clock=clock)
    runner.reached_server = True
    asyncio.run(runner.run(requests(1), results.append))
    assert results[0].error == "APITimeoutError after 2 retries" and len(clock.sleeps) == 2


def test_a_request_failing_past_its_retries_comes_back_with_its_reason_and_others_complete():
    always_failing = lambda number, body: "server_error" if "item 0" in body["messages"][0]["content"] else "ok"
    with running_openai_server(script=always_failing) as (base_url, stats):
        results = run_chat_requests(requests(3), settings(base_url, max_retries=2), parse=echo_value)
    assert [result.key for result in (r.request for r in results)] == ["r0", "r1", "r2"]
    assert results[0].error == "http 500 after 2 retries" and results[0].attempts == 3
    assert [result.value for result in results[1:]] == ["item 1", "item 2"]


def test_rejected_replies_are_asked_again_then_reported():
    def parse(content):
        raise RejectedOutput("never good enough")

    with running_openai_server() as (base_url, stats):
        [result] = run_chat_requests(requests(1), settings(base_url, max_rejections=2), parse=parse)
    assert result.error == "rejected: never good enough" and stats.requests == 3


def test_a_server_without_json_schema_gets_the_text_fallback_for_the_rest_of_the_run():
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    with running_openai_server(structured_output=False) as (base_url, stats):
        results = run_chat_requests(requests(4, schema), settings(base_url, concurrency=1), parse=echo_value)
    assert [result.value for result in results] == [f"item {index} as text" for index in range(4)]
    assert stats.by_fault["no_json_schema"] == 1 and stats.requests == 5


def test_second_run_with_the_cache_sends_no_request(tmp_path):
    with running_openai_server() as (base_url, stats), ResponseCache(tmp_path / "cache.sqlite") as cache:
        first = run_chat_requests(requests(5), settings(base_url), parse=echo_value, cache=cache)
        second = run_chat_requests(requests(5), settings(base_url), parse=echo_value, cache=cache)
        assert len(cache) == 5
    assert stats.requests == 5
    assert [r.value for r in second] == [r.value for r in first] and all(r.cached for r in second)


def test_a_second_server_with_the_same_model_name_does_not_share_the_first_ones_cached_replies(tmp_path):
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        with running_openai_server() as (first_url, first):
            run_chat_requests(requests(2), settings(first_url), parse=echo_value, cache=cache)
        with running_openai_server() as (second_url, second):
            replies = run_chat_requests(requests(2), settings(second_url), parse=echo_value, cache=cache)
    assert first.requests == second.requests == 2 and not any(reply.cached for reply in replies)


def test_concurrency_bounds_the_requests_in_flight():
    # 0.15 s per reply keeps 4 workers' requests overlapping at the server; never more than 4 are in flight.
    with running_openai_server(latency=0.15) as (base_url, stats):
        results = run_chat_requests(requests(12), settings(base_url, concurrency=4), parse=echo_value)
    assert all(result.ok for result in results)
    assert stats.max_in_flight == 4 and stats.requests == 12


def test_requests_per_minute_limit_spaces_requests_out():
    clock = ManualClock()
    with running_openai_server() as (base_url, stats):
        run_chat_requests(requests(8), settings(base_url, concurrency=1, rpm=240), parse=echo_value, clock=clock)
    # 4 requests per second, a one-second burst of 4: each of the other 4 waits a quarter of a second for its turn.
    assert stats.requests == 8 and clock.sleeps == pytest.approx([0.25] * 4)


def test_tokens_per_minute_limit_charges_the_estimate_and_settles_on_the_reported_usage():
    clock = ManualClock()
    with running_openai_server() as (base_url, stats):
        run_chat_requests(requests(3), settings(base_url, concurrency=1, tpm=1200), parse=echo_value, clock=clock)
    # 1200 tpm = 20 tokens per second, a burst of 20. Each request is estimated at 33 tokens (6 characters of text
    # at 4 per token, plus max_tokens 32): the bucket goes to -13. The server reports 5 (2 prompt words, 3 reply
    # words), so 28 come back: level 15, and the next request waits (20 - 15) / 20 s for a full burst. Without the
    # settlement every wait would be (20 + 13) / 20 = 1.65 s.
    assert stats.requests == 3 and clock.sleeps == pytest.approx([0.25, 0.25])
