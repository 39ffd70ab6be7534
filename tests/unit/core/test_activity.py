"""The Activity view's figures without Qt: cells, summaries (median, p95), the CSV file."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import numpy as np
import pytest

from llamadash.core import activity
from llamadash.core.activity import (
    CSV_FIELDS,
    SUMMARY_PERIODS,
    TABLE_COLUMNS,
    cell_text,
    median,
    percentile,
    summarize,
    write_csv,
)

NOW_MS = 1_800_000_000_000
MINUTE_MS = 60_000


def request(minutes_ago: float, model: str = "qwen", **figures) -> dict:
    row = {
        "finished_at": NOW_MS - int(minutes_ago * MINUTE_MS),
        "model": model,
        "slot": 0,
        "task": 1,
        "status": "finished",
        "prompt_tokens": 10,
        "cached_tokens": None,
        "prompt_ms": 20.0,
        "prompt_tps": 500.0,
        "generated_tokens": 64,
        "generation_ms": 1000.0,
        "generation_tps": 64.0,
        "total_ms": 1020.0,
        "truncated": False,
        "context_shifted": False,
    }
    row.update(figures)
    return row


def test_percentiles_interpolate_between_ranks_as_numpy_does():
    values = [12.0, 3.0, 7.5, 40.0, 1.0, 9.0, 22.0]
    for q in (0, 5, 25, 50, 90, 95, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))
    assert median([1.0, 2.0, 3.0, 4.0]) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    assert percentile([5.0], 95) == 5.0
    assert median([]) is None and percentile([], 95) is None


def test_a_summary_per_model_and_period_counts_tokens_and_gives_median_and_p95():
    speeds = [10.0, 20.0, 30.0, 40.0, 50.0]  # within the hour
    rows = [
        request(i + 1, generation_tps=s, total_ms=100.0 * (i + 1), prompt_tokens=5, generated_tokens=7)
        for i, s in enumerate(speeds)
    ]
    rows.append(request(120, generation_tps=100.0, total_ms=5000.0))  # within the day, not the hour
    rows.append(request(3 * 24 * 60, generation_tps=1.0, total_ms=9000.0))  # within the week
    rows.append(request(8 * 24 * 60))  # older than a week: in no period
    rows.append(request(30, model="gemma", generation_tps=None, total_ms=None, generated_tokens=None))

    summaries = summarize(rows, now_ms=NOW_MS)
    by = {(s.model, s.period.key): s for s in summaries}
    # models by name, then every model together; each with the three periods
    assert [(s.model, s.period.key) for s in summaries] == [
        (model, period.key) for model in ("gemma", "qwen", None) for period in SUMMARY_PERIODS
    ]
    hour = by["qwen", "hour"]
    assert (hour.requests, hour.prompt_tokens, hour.generated_tokens) == (5, 25, 35)
    assert hour.median_generation_tps == 30.0
    assert hour.p95_generation_tps == pytest.approx(np.percentile(speeds, 95))  # 48.0
    assert hour.median_latency_ms == 300.0
    assert hour.p95_latency_ms == pytest.approx(480.0)
    day = by["qwen", "day"]
    assert day.requests == 6 and day.median_generation_tps == 35.0
    week = by["qwen", "week"]
    assert week.requests == 7 and week.median_latency_ms == 400.0
    # a request without figures counts as a request; its missing figures are not zeros
    gemma = by["gemma", "hour"]
    assert gemma.requests == 1 and gemma.generated_tokens is None and gemma.prompt_tokens == 10
    assert gemma.median_generation_tps is None and gemma.p95_latency_ms is None
    assert by[None, "hour"].requests == 6


def test_one_model_has_no_overall_line_and_an_empty_period_still_has_its_line():
    summaries = summarize([request(90)], now_ms=NOW_MS)
    assert [(s.model, s.period.key, s.requests) for s in summaries] == [
        ("qwen", "hour", 0),
        ("qwen", "day", 1),
        ("qwen", "week", 1),
    ]
    assert summaries[0].median_generation_tps is None
    assert summaries[0].generated_tokens == 0  # no request in the hour: 0 tokens, known
    assert summarize([], now_ms=NOW_MS) == []


def test_cells_show_n_a_for_a_missing_figure_never_0():
    row = request(1, slot=1, prompt_tokens=1200, cached_tokens=64, generation_tps=45.678, total_ms=2500.4)
    texts = {column.key: cell_text(row, column.key) for column in TABLE_COLUMNS}
    stamp = datetime.fromtimestamp(row["finished_at"] / 1000).strftime("%Y-%m-%d %H:%M:%S")
    assert texts == {
        "time": stamp,
        "model": "qwen",
        "slot": "1",
        "prompt": "1,200 (64)",
        "prompt_tps": "500.0",
        "generated": "64",
        "generation_tps": "45.7",
        "total_ms": "2,500",
        "status": "finished",
    }
    aborted = request(
        1,
        status="aborted",
        prompt_tokens=None,
        prompt_tps=None,
        generated_tokens=None,
        generation_tps=None,
        total_ms=None,
        slot=None,
    )
    assert [
        cell_text(aborted, k) for k in ("slot", "prompt", "prompt_tps", "generated", "generation_tps")
    ] == ["n/a"] * 5
    assert cell_text(aborted, "total_ms") == "n/a" and cell_text(aborted, "status") == "aborted"
    assert cell_text(request(1, truncated=True), "status") == "finished · truncated"
    assert cell_text(request(1, generated_tokens=0), "generated") == "0"  # a real 0 stays 0


def test_the_csv_file_has_a_header_and_a_line_per_request_with_missing_figures_empty():
    rows = [request(1, prompt_tokens=3, cached_tokens=2, truncated=True), request(2, generation_tps=None)]
    out = io.StringIO(newline="")
    assert write_csv(rows, out) == 2
    lines = list(csv.reader(io.StringIO(out.getvalue())))
    assert tuple(lines[0]) == CSV_FIELDS
    first = dict(zip(lines[0], lines[1], strict=True))
    assert first["finished_at"] == str(rows[0]["finished_at"])
    assert first["time"] == cell_text(rows[0], "time")
    assert (first["model"], first["prompt_tokens"], first["cached_tokens"]) == ("qwen", "3", "2")
    assert (first["generation_tps"], first["total_ms"], first["truncated"]) == ("64.0", "1020.0", "1")
    second = dict(zip(lines[0], lines[2], strict=True))
    assert second["generation_tps"] == "" and second["cached_tokens"] == "" and second["truncated"] == "0"
    assert len(lines) == 3


def test_time_ranges_reach_back_from_now():
    ranges = {r.key: r for r in activity.TIME_RANGES}
    assert ranges["hour"].since_ms(NOW_MS) == NOW_MS - 60 * MINUTE_MS
    assert ranges["week"].since_ms(NOW_MS) == NOW_MS - 7 * 24 * 60 * MINUTE_MS
    assert ranges["all"].since_ms(NOW_MS) is None
