"""Request records from llama-server's log: real logs of b11434 (captured) and b10001 (reconstructed)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from llamadash.core.requests_log import (
    LOG_FORMATS,
    RequestLogParser,
    RequestRecord,
    RequestStatus,
    SlotEvent,
    parse_request_line,
)

DATA = Path(__file__).resolve().parents[2] / "data"

LAUNCH = "0.05.617.780 I slot launch_slot_: id  1 | task 65 | processing task, is_child = 0"
PROMPT = (
    "0.05.867.910 I slot print_timing: id  1 | task 65 | prompt eval time =     125.47 ms /     1 tokens "
    "(  125.47 ms per token,     7.97 tokens per second)"
)
EVAL = (
    "0.05.867.937 I slot print_timing: id  1 | task 65 |        eval time =     124.62 ms /    64 tokens "
    "(    1.98 ms per token,   505.53 tokens per second)"
)
TOTAL = "0.05.867.938 I slot print_timing: id  1 | task 65 |       total time =     250.09 ms /    65 tokens"
REUSED = "0.05.867.939 I slot print_timing: id  1 | task 65 |    graphs reused =        127"
RELEASE = "0.05.867.959 I slot      release: id  1 | task 65 | stop processing: n_tokens = 91, truncated = 0"
ONE_REQUEST = [LAUNCH, PROMPT, EVAL, TOTAL, REUSED, RELEASE]

# (slot, task, status, prompt tokens, generated tokens, cached tokens, truncated): the capture's
# requests, whose prompt_n / predicted_n / cache_n the server answered with (in
# llama-server-requests-b11434.log: two at once, streamed and not, /completion and
# /v1/chat/completions, a cache hit, a cancelled stream, one that ran out of context)
CAPTURED = [
    (1, 0, RequestStatus.FINISHED, 92, 9, 0, False),
    (0, 2, RequestStatus.FINISHED, 17, 32, 0, False),
    (1, 35, RequestStatus.FINISHED, 55, 16, 2, False),
    (0, 36, RequestStatus.FINISHED, 52, 20, 2, False),
    (1, 57, RequestStatus.FINISHED, 1, 16, 91, False),
    (0, 74, RequestStatus.FINISHED, 16, 260, 2, False),
    (0, 335, RequestStatus.ABORTED, None, None, None, False),
    (0, 344, RequestStatus.FINISHED, 15, 495, None, True),
]


def clock() -> int:
    return 1_000


def feed_all(parser: RequestLogParser, lines: list[str]) -> list[RequestRecord]:
    return [record for line in lines for record in parser.feed(line)]


@pytest.mark.parametrize("build", ["b11434", "b10001"])
@pytest.mark.parametrize("family", [None, "own"])
def test_real_logs_give_one_record_per_request(build: str, family: str | None) -> None:
    lines = (DATA / f"llama-server-requests-{build}.log").read_text(encoding="utf-8").splitlines()
    parser = RequestLogParser("slow", family=build if family else None, clock=clock)
    records = feed_all(parser, lines)
    got = [
        (r.slot, r.task, r.status, r.prompt_tokens, r.generated_tokens, r.cached_tokens, r.truncated)
        for r in records
    ]
    assert got == CAPTURED
    assert parser.flush() == []
    long = records[5]
    assert long.model == "slow"
    assert long.prompt_ms is not None and long.total_ms is not None
    assert long.generation_tps is not None and long.generation_tps > 0
    assert long.server_time_ms == 21295.222
    assert long.finished_at_ms == 1_000


def test_one_request_has_every_figure_of_its_lines() -> None:
    parser = RequestLogParser("m", clock=clock)
    assert parser.feed(LAUNCH, at_ms=100) == []
    records = [record for line in ONE_REQUEST[1:] for record in parser.feed(line, at_ms=350)]
    assert records == [
        RequestRecord(
            slot=1,
            task=65,
            finished_at_ms=350,
            status=RequestStatus.FINISHED,
            model="m",
            started_at_ms=100,
            server_time_ms=5867.959,
            prompt_tokens=1,
            cached_tokens=27,  # 91 in the context, less 1 evaluated and 64 generated, plus the last
            prompt_ms=125.47,
            prompt_tps=7.97,
            generated_tokens=64,
            generation_ms=124.62,
            generation_tps=505.53,
            total_ms=250.09,
            context_tokens=91,
            truncated=False,
            context_shifted=False,
            child=False,
        )
    ]


def strip_prefix(line: str) -> str:
    return re.sub(r"^\d+\.\d+\.\d+\.\d+ [IWED] ", "", line)


def test_lines_without_prefix_with_colours_or_as_jsonl_give_the_same_record() -> None:
    plain = feed_all(RequestLogParser(clock=clock), [strip_prefix(line) for line in ONE_REQUEST])
    coloured = feed_all(
        RequestLogParser(clock=clock),
        [f"\x1b[34m{line[:12]}\x1b[0m \x1b[32mI \x1b[0m{strip_prefix(line)}" for line in ONE_REQUEST],
    )
    jsonl = feed_all(
        RequestLogParser(clock=clock),
        [
            json.dumps({"type": "log", "time": 5867959, "level": "info", "msg": strip_prefix(line) + "\n"})
            for line in ONE_REQUEST
        ],
    )
    reference = feed_all(RequestLogParser(clock=clock), ONE_REQUEST)[0]
    assert plain[0] == dataclasses.replace(reference, server_time_ms=None)
    assert coloured == [reference]
    assert jsonl == [reference]


def test_unknown_and_broken_lines_never_raise() -> None:
    parser = RequestLogParser(clock=clock)
    noise = [
        "",
        "{",
        '{"msg": 3}',
        "| task",
        "slot foo: id x | task y | z",
        "0.00.004.323 I srv    load_model: loading model 'tiny.gguf'",
        "0.02.006.059 I slot get_availabl: id  3 | task -1 | selected slot by LRU, t_last = -1",
        "\x00\xff garbage | task | ",
    ]
    for line in noise:
        assert parser.feed(line) == []
    for line in ONE_REQUEST:  # every prefix of every real line: cut anywhere, never an exception
        for cut in range(len(line) + 1):
            RequestLogParser(clock=clock).feed(line[:cut])
    assert parser.lines_recognised == 0


def test_a_release_without_timings_is_an_aborted_request() -> None:
    parser = RequestLogParser(clock=clock)
    (record,) = feed_all(parser, [LAUNCH, RELEASE])
    assert record.status is RequestStatus.ABORTED
    assert record.prompt_tokens is None and record.generated_tokens is None and record.cached_tokens is None
    assert record.context_tokens == 91


def test_a_crash_mid_request_leaves_an_incomplete_record_on_flush() -> None:
    parser = RequestLogParser(clock=clock)
    assert feed_all(parser, [LAUNCH, PROMPT]) == []
    (running,) = parser.in_progress()
    assert running.status is RequestStatus.INCOMPLETE and running.prompt_tokens == 1
    (record,) = parser.flush()
    assert record.status is RequestStatus.INCOMPLETE
    assert record.generated_tokens is None
    assert parser.flush() == []


def test_reading_from_the_middle_of_a_request_still_gives_its_record() -> None:
    (record,) = feed_all(RequestLogParser(clock=clock), [EVAL, TOTAL, RELEASE])
    assert record.started_at_ms is None
    assert record.generated_tokens == 64 and record.prompt_tokens is None
    assert record.status is RequestStatus.FINISHED


def test_a_slot_that_moves_on_without_a_release_closes_the_old_request() -> None:
    parser = RequestLogParser(clock=clock)
    feed_all(parser, [LAUNCH, PROMPT])
    records = parser.feed(LAUNCH.replace("task 65", "task 80"))
    assert [(r.task, r.status) for r in records] == [(65, RequestStatus.INCOMPLETE)]
    (running,) = parser.in_progress()
    assert running.task == 80


def test_two_slots_interleaved_are_kept_apart() -> None:
    other = [line.replace("id  1 |", "id  0 |").replace("task 65", "task 66") for line in ONE_REQUEST]
    lines = [line for pair in zip(ONE_REQUEST, other, strict=True) for line in pair]
    records = feed_all(RequestLogParser(clock=clock), lines)
    assert [(r.slot, r.task, r.generated_tokens) for r in records] == [(1, 65, 64), (0, 66, 64)]


def test_nan_and_inf_rates_are_missing_not_numbers() -> None:
    zero = PROMPT.replace("125.47 ms /     1 tokens", "0.00 ms /     0 tokens").replace(
        "(  125.47 ms per token,     7.97 tokens", "(    -nan ms per token,      nan tokens"
    )
    record = feed_all(RequestLogParser(clock=clock), [LAUNCH, zero, EVAL, RELEASE])[0]
    assert record.prompt_tokens == 0 and record.prompt_tps is None


def test_truncated_and_context_shifted_requests_have_no_derived_cache() -> None:
    shift = "0.06.000.000 W slot update_slots: id  1 | task 65 | slot context shift, n_keep = 0, n_left = 510"
    record = feed_all(RequestLogParser(clock=clock), [LAUNCH, PROMPT, shift, EVAL, RELEASE])[0]
    assert record.context_shifted is True and record.cached_tokens is None
    truncated = RELEASE.replace("truncated = 0", "truncated = 1")
    record = feed_all(RequestLogParser(clock=clock), [LAUNCH, PROMPT, EVAL, truncated])[0]
    assert record.truncated is True and record.cached_tokens is None


def test_the_progress_line_differs_between_the_builds() -> None:
    new = "0.25.443.036 I slot print_timing: id  0 | task 344 | n_gen =    229, tg =  75.69 t/s, tg_3s =  76.02 t/s"
    old = new.replace("n_gen =", "n_decoded =")
    assert (update := parse_request_line(new, LOG_FORMATS["b11434"])) is not None
    assert update.pattern == "progress" and update.values == {"_progress_tokens": 229}
    assert parse_request_line(old, LOG_FORMATS["b11434"]) is None
    assert parse_request_line(old, LOG_FORMATS["b10001"]) is not None
    assert parse_request_line(new, LOG_FORMATS["b10001"]) is None


def test_the_line_table_is_data_that_names_record_fields() -> None:
    """Every named group of every pattern is a record field (or an internal one starting with _)."""
    fields = set(RequestRecord.__dataclass_fields__)
    for family, table in LOG_FORMATS.items():
        names = [pattern.name for pattern in table]
        assert len(names) == len(set(names)), family
        assert sum(pattern.event is SlotEvent.LAUNCH for pattern in table) == 1
        assert sum(pattern.event is SlotEvent.RELEASE for pattern in table) == 1
        for pattern in table:
            assert pattern.needle.lower() in pattern.regex.pattern.lower(), pattern.name
            for group in pattern.regex.groupindex:
                assert group in fields or group.startswith("_"), (family, pattern.name, group)
            for flag in pattern.flags:
                assert flag in fields


def test_feed_lines_reads_a_batch_at_one_moment() -> None:
    parser = RequestLogParser(clock=clock)
    (record,) = parser.feed_lines(["noise", *ONE_REQUEST], at_ms=42)
    assert record.finished_at_ms == 42 and record.started_at_ms == 42
