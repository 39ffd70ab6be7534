"""Remote llama-servers (pure parts): the URL check, the backoff, requests told by /slots, and the
Prometheus endpoint's address rules."""

from __future__ import annotations

import pytest

from llamadash.core.endpoint_address import EndpointConfigError, check_bind, is_loopback, parse_bind
from llamadash.core.remote import (
    RemoteUrlError,
    SlotRequestTracker,
    check_remote_url,
    is_remote,
    retry_delay_s,
    with_counters,
)
from llamadash.core.requests_log import RequestStatus
from llamadash.core.throughput import SlotReading


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://gpu-box:8080", "http://gpu-box:8080"),
        ("  https://gpu-box.lan/llama/  ", "https://gpu-box.lan/llama"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://10.0.0.5", "http://10.0.0.5"),
    ],
)
def test_a_server_url_is_kept_trimmed(text: str, expected: str):
    assert check_remote_url(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("gpu-box:8080", "http://"),
        ("ftp://gpu-box", "http://"),
        ("file:///usr/bin/llama-server", "http://"),
        ("http://", "no host"),
        ("http://user:secret@gpu-box:8080", "user name or password"),
        ("http://gpu-box:8080/?x=1", "query"),
        ("http://gpu-box:8080/#top", "fragment"),
        ("http://gpu box:8080", "spaces"),
        ("http://gpu-box:99999", "not a URL"),
        ("http://gpu-box:0", "port 0"),
        (42, "text"),
    ],
)
def test_a_bad_server_url_is_refused_with_the_reason(text: object, why: str):
    with pytest.raises(RemoteUrlError, match=why):
        check_remote_url(text)


def test_is_remote():
    assert (
        is_remote({"remote_url": "http://a:1"}) and not is_remote({"remote_url": None}) and not is_remote({})
    )


def test_the_retry_delay_doubles_up_to_its_cap():
    assert [retry_delay_s(n) for n in range(0, 8)] == [0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert retry_delay_s(10_000) == 60.0


def busy(slot: int, task: int, decoded: int, prompt: int = 5, cached: int = 0) -> SlotReading:
    return SlotReading(slot, True, task, decoded, prompt, cached)


def idle(slot: int, task: int | None) -> SlotReading:
    return SlotReading(slot, False, task, 0 if task is not None else None, None, None)


def test_a_task_seen_busy_then_idle_is_one_record_with_its_last_figures():
    tracker = SlotRequestTracker(model="gpu-box")
    assert tracker.feed([idle(0, 3), idle(1, None)], now_ms=1000) == []  # the baseline: no record
    assert tracker.feed([busy(0, 4, 2, prompt=7, cached=1), idle(1, None)], now_ms=1500) == []
    assert tracker.feed([busy(0, 4, 9, prompt=7, cached=1), idle(1, None)], now_ms=2000) == []
    (record,) = tracker.feed([idle(0, 4), idle(1, None)], now_ms=2500)
    assert (record.slot, record.task, record.model, record.status) == (
        0,
        4,
        "gpu-box",
        RequestStatus.FINISHED,
    )
    assert (record.started_at_ms, record.finished_at_ms) == (1500, 2500)
    assert (record.prompt_tokens, record.cached_tokens, record.generated_tokens) == (7, 1, 9)
    assert tracker.feed([idle(0, 4), idle(1, None)], now_ms=3000) == []  # told once


def test_a_task_that_ran_between_two_snapshots_is_recorded_without_figures():
    tracker = SlotRequestTracker(model="m")
    tracker.feed([idle(0, 3)], now_ms=0)
    (record,) = tracker.feed([idle(0, 5)], now_ms=500)
    assert record.task == 5 and record.generated_tokens is None and record.prompt_tokens is None
    assert record.started_at_ms is None


def test_a_slot_that_goes_straight_to_its_next_task_ends_the_first():
    tracker = SlotRequestTracker()
    tracker.feed([busy(0, 1, 3)], now_ms=0)  # busy at the baseline: its start is not known
    (record,) = tracker.feed([busy(0, 2, 1)], now_ms=500)
    assert record.task == 1 and record.generated_tokens == 3 and record.started_at_ms is None
    (second,) = tracker.feed([idle(0, 2)], now_ms=1000)
    assert second.task == 2 and second.started_at_ms == 500


def test_a_reset_makes_the_next_snapshot_a_baseline():
    tracker = SlotRequestTracker()
    tracker.feed([busy(0, 1, 3)], now_ms=0)
    tracker.reset()
    assert tracker.feed([idle(0, 9)], now_ms=10) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("9464", ("127.0.0.1", 9464)),
        ("0.0.0.0:9100", ("0.0.0.0", 9100)),
        ("localhost:1", ("localhost", 1)),
        ("[::1]:9464", ("::1", 9464)),
    ],
)
def test_an_endpoint_address_reads(spec: str, expected: tuple[str, int]):
    assert parse_bind(spec) == expected


@pytest.mark.parametrize("spec", ["", "abc", "9464x", "0", "70000", "::1:9464", "[::1]9464", ":9464"])
def test_a_bad_endpoint_address_is_refused(spec: str):
    with pytest.raises(EndpointConfigError):
        parse_bind(spec)


def test_only_loopback_goes_without_a_token():
    assert (
        is_loopback("127.0.0.1")
        and is_loopback("127.1.2.3")
        and is_loopback("::1")
        and is_loopback("LOCALHOST")
    )
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("gpu-box")
    assert check_bind("9464", None) == ("127.0.0.1", 9464)
    for spec in ("0.0.0.0:9464", "[::]:9464", "gpu-box:9464"):
        with pytest.raises(EndpointConfigError, match="needs a bearer token"):
            check_bind(spec, None)
        with pytest.raises(EndpointConfigError, match="needs a bearer token"):
            check_bind(spec, "   ")
    assert check_bind("0.0.0.0:9464", "s3cret") == ("0.0.0.0", 9464)


def test_one_ended_request_gets_the_growth_of_the_counters():
    record = SlotRequestTracker(model="m")
    record.feed([idle(0, 1)], now_ms=0)
    (ended,) = record.feed([idle(0, 2)], now_ms=10)
    before = {
        "llamacpp:prompt_tokens_total": 10,
        "llamacpp:tokens_predicted_total": 100,
        "llamacpp:prompt_seconds_total": 0.5,
        "llamacpp:tokens_predicted_seconds_total": 2.0,
    }
    after = {
        "llamacpp:prompt_tokens_total": 17,
        "llamacpp:tokens_predicted_total": 132,
        "llamacpp:prompt_seconds_total": 0.6,
        "llamacpp:tokens_predicted_seconds_total": 3.0,
    }
    (filled,) = with_counters([ended], before, after)
    assert (filled.prompt_tokens, filled.generated_tokens) == (7, 32)
    assert filled.prompt_ms == pytest.approx(100.0) and filled.generation_ms == pytest.approx(1000.0)
    assert filled.generation_tps == pytest.approx(32.0) and filled.total_ms == pytest.approx(1100.0)
    assert filled.cached_tokens is None  # that counter was not given
    # two at once: the split is not known; no baseline: nothing known; a restart (counters down): nothing
    assert with_counters([ended, ended], before, after) == [ended, ended]
    assert with_counters([ended], None, after) == [ended]
    assert with_counters([ended], after, before) == [ended]
