"""The reusable chat request runner against a real loopback OpenAI-compatible server with injected faults."""

import json
import time

import pytest

from dataset_builder.chat import ChatRequest, ClientSettings, ResponseCache, run_chat_requests
from dataset_builder.chat import RejectedOutput
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
    # Each piece arrives 0.3 s after the last (under the 1 s per-read timeout of the SDK); the whole takes 3 s.
    with running_openai_server(script=["drip"], hang=3.0) as (base_url, stats):
        started = time.monotonic()
        [result] = run_chat_requests(requests(1), settings(base_url, timeout=1.0), parse=echo_value)
        elapsed = time.monotonic() - started
    assert result.ok and result.value == "item 0" and result.attempts == 2  # the drip was cut, the retry answered
    assert stats.by_fault["drip"] == 1 and elapsed < 2.5


def test_retry_waits_at_least_the_servers_retry_after():
    with running_openai_server(script=["rate_limit"], retry_after=0.4) as (base_url, stats):
        started = time.monotonic()
        [result] = run_chat_requests(requests(1), settings(base_url), parse=echo_value)
    assert result.ok and time.monotonic() - started >= 0.4


def test_a_retry_after_over_backoff_max_fails_the_item_at_once_with_its_reason_instead_of_stalling():
    with running_openai_server(script=["rate_limit"], retry_after=3600) as (base_url, stats):
        started = time.monotonic()
        [result] = run_chat_requests(requests(1), settings(base_url, backoff_max=2.0), parse=echo_value)
    assert time.monotonic() - started < 10 and stats.requests == 1
    assert result.error == "http 429: the server asked to wait 3600 s (over backoff_max 2 s)"


def test_a_long_wait_within_backoff_max_is_logged(caplog):
    with running_openai_server(script=["rate_limit"], retry_after=5.5) as (base_url, stats):
        with caplog.at_level("WARNING", logger="dataset_builder.chat.runner"):
            [result] = run_chat_requests(requests(1), settings(base_url, backoff_max=10.0), parse=echo_value)
    assert result.ok and "waiting 5.5 s before retry 1" in caplog.text


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
    with running_openai_server(latency=0.15) as (base_url, stats):
        started = time.monotonic()
        results = run_chat_requests(requests(12), settings(base_url, concurrency=4), parse=echo_value)
    assert all(result.ok for result in results)
    assert stats.max_in_flight == 4 and time.monotonic() - started < 12 * 0.15


def test_requests_per_minute_limit_spaces_requests_out():
    with running_openai_server() as (base_url, stats):
        started = time.monotonic()
        run_chat_requests(requests(8), settings(base_url, concurrency=8, rpm=240), parse=echo_value)
        elapsed = time.monotonic() - started
    # 4 requests per second, a one-second burst of 4: the other 4 wait about a second.
    assert stats.requests == 8 and elapsed >= 0.9


def test_tokens_per_minute_limit_spaces_requests_out():
    with running_openai_server() as (base_url, stats):
        started = time.monotonic()
        # each request is estimated at about 34 tokens (2 of text + max_tokens 32): 1200 tpm = 20 per second
        run_chat_requests(requests(3), settings(base_url, concurrency=3, tpm=1200), parse=echo_value)
        elapsed = time.monotonic() - started
    assert stats.requests == 3 and elapsed >= 2.0
