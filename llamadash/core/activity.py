"""The record of requests as people read it: table cells, per-model summaries, CSV.

Pure Python (no Qt): the Activity view (:mod:`llamadash.ui.activity_view`) and the CLI's
``llamadash activity`` share these, so the window and a script see the same figures.

A *row* is one stored request as :func:`llamadash.core.database.get_requests` returns it: a mapping
with the ``requests`` table's columns (``finished_at`` in Unix ms, ``model``, ``slot``,
``prompt_tokens``, ``cached_tokens``, ``prompt_tps``, ``generated_tokens``, ``generation_tps``,
``total_ms``, ``status``, ``truncated``, ...). A figure the log did not give is ``None``: shown as
"n/a" in the table, left empty in a CSV file, and left out of medians and percentiles, never
counted as 0.

Latency is the request's ``total_ms``: the time the server spent on it, prompt plus generation.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

__all__ = [
    "ALL_TIME",
    "CSV_FIELDS",
    "NA",
    "SUMMARY_PERIODS",
    "TABLE_COLUMNS",
    "TIME_RANGES",
    "ActivitySummary",
    "TableColumn",
    "TimeRange",
    "cell_text",
    "figure_text",
    "median",
    "percentile",
    "summarize",
    "write_csv",
]

#: What a missing figure reads as.
NA = "n/a"

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class TimeRange:
    """A "last N" span of time: ``span_ms`` back from now, or ``None`` for all that is stored."""

    key: str
    label: str
    span_ms: int | None

    def since_ms(self, now_ms: int) -> int | None:
        """The earliest ``finished_at`` in the range, or ``None`` (no lower bound)."""
        return None if self.span_ms is None else now_ms - self.span_ms


ALL_TIME = TimeRange("all", "All stored", None)
#: The ranges the Activity view filters by (the first three are the summary's periods).
TIME_RANGES: tuple[TimeRange, ...] = (
    TimeRange("hour", "Last hour", HOUR_MS),
    TimeRange("day", "Last day", DAY_MS),
    TimeRange("week", "Last week", 7 * DAY_MS),
    ALL_TIME,
)
#: The periods a summary is given for.
SUMMARY_PERIODS: tuple[TimeRange, ...] = TIME_RANGES[:3]


@dataclass(frozen=True)
class TableColumn:
    """One column of the requests table: ``key`` names it, :func:`cell_text` fills it."""

    key: str
    header: str
    tooltip: str
    numeric: bool = True


TABLE_COLUMNS: tuple[TableColumn, ...] = (
    TableColumn("time", "Time", "When the request finished (local time)", numeric=False),
    TableColumn("model", "Model", "The model that answered", numeric=False),
    TableColumn("slot", "Slot", "The server slot that ran it"),
    TableColumn(
        "prompt",
        "Prompt (cached)",
        "Prompt tokens evaluated, and in brackets those reused from the cache",
    ),
    TableColumn("prompt_tps", "Prompt t/s", "Prompt tokens evaluated per second"),
    TableColumn("generated", "Generated", "Tokens generated"),
    TableColumn("generation_tps", "Generation t/s", "Tokens generated per second"),
    TableColumn("total_ms", "Total ms", "The server's time on the request: prompt plus generation"),
    TableColumn(
        "status",
        "Status",
        "finished, aborted (cancelled or failed) or incomplete; truncated prompts say so",
        numeric=False,
    ),
)

#: The CSV file's columns, in order: the table's, with each figure in a column of its own.
CSV_FIELDS: tuple[str, ...] = (
    "time",
    "finished_at",
    "model",
    "slot",
    "task",
    "prompt_tokens",
    "cached_tokens",
    "prompt_ms",
    "prompt_tps",
    "generated_tokens",
    "generation_ms",
    "generation_tps",
    "total_ms",
    "status",
    "truncated",
)


def _number(value: Any) -> float | None:
    """A finite number, or ``None`` (missing, NaN)."""
    kind = type(value)
    if kind is float:  # what the database gives, first: this runs for every figure of every row
        return value if value - value == 0 else None  # inf - inf and nan - nan are nan
    if kind is int:
        return float(value)
    if value is None or kind is bool:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _local_time(ms: Any) -> str:
    number = _number(ms)
    if number is None:
        return NA
    return datetime.fromtimestamp(number / 1000).strftime("%Y-%m-%d %H:%M:%S")


def figure_text(value: Any, decimals: int = 0) -> str:
    """A figure with thousands separators and ``decimals`` decimals, or "n/a" when it is missing."""
    number = _number(value)
    return NA if number is None else f"{number:,.{decimals}f}"


def _count(value: Any) -> str:
    return figure_text(value, 0)


def _rate(value: Any) -> str:
    return figure_text(value, 1)


def cell_text(row: Mapping[str, Any], key: str) -> str:
    """The text of column ``key`` (one of :data:`TABLE_COLUMNS`) for ``row``; "n/a" where unknown."""
    if key == "time":
        return _local_time(row.get("finished_at"))
    if key == "model":
        return str(row.get("model") or NA)
    if key == "slot":
        return _count(row.get("slot"))
    if key == "prompt":
        prompt = _count(row.get("prompt_tokens"))
        cached = _number(row.get("cached_tokens"))
        return prompt if cached is None else f"{prompt} ({cached:,.0f})"
    if key == "prompt_tps":
        return _rate(row.get("prompt_tps"))
    if key == "generated":
        return _count(row.get("generated_tokens"))
    if key == "generation_tps":
        return _rate(row.get("generation_tps"))
    if key == "total_ms":
        return _count(row.get("total_ms"))
    if key == "status":
        status = str(row.get("status") or NA)
        extras = [
            word
            for word, flag in (("truncated", "truncated"), ("context shifted", "context_shifted"))
            if row.get(flag)
        ]
        return " · ".join([status, *extras])
    raise KeyError(key)


def write_csv(rows: Iterable[Mapping[str, Any]], file: IO[str]) -> int:
    """Write ``rows`` as CSV (a header, then one line a request, in the order given); returns the count.

    The columns are :data:`CSV_FIELDS`: ``time`` is the local time as in the table, ``finished_at``
    the Unix ms; the figures are raw numbers. A missing figure is an empty cell (spreadsheets and
    pandas read it as missing, not 0). Open ``file`` with ``newline=""``.
    """
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    count = 0
    for row in rows:
        values: list[Any] = []
        for name in CSV_FIELDS:
            if name == "time":
                value: Any = _local_time(row.get("finished_at"))
                value = "" if value == NA else value
            elif name == "truncated":
                truncated = row.get("truncated")
                value = "" if truncated is None else int(bool(truncated))
            else:
                value = row.get(name)
                if value is None or (isinstance(value, float) and not math.isfinite(value)):
                    value = ""
            values.append(value)
        writer.writerow(values)
        count += 1
    return count


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0–100) of ``values``, interpolated between ranks; ``None`` if empty.

    The same as numpy's default (``linear``): the median of 1, 2, 3, 4 is 2.5, their p95 3.85.
    """
    return _percentile_of_sorted(sorted(values), q)


def _percentile_of_sorted(ordered: Sequence[float], q: float) -> float | None:
    if not ordered:
        return None
    position = (len(ordered) - 1) * min(max(q, 0.0), 100.0) / 100.0
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    fraction = position - below
    return ordered[below] + (ordered[above] - ordered[below]) * fraction


def median(values: Sequence[float]) -> float | None:
    """The median of ``values`` (``None`` if empty)."""
    return percentile(values, 50.0)


@dataclass(frozen=True)
class ActivitySummary:
    """One model's requests over one period (``model`` ``None``: every model together).

    Attributes:
        model: The model, or ``None`` for all of them.
        period: The period (one of :data:`SUMMARY_PERIODS`).
        requests: Requests finished (or aborted) in the period.
        prompt_tokens: Prompt tokens evaluated (tokens in), missing counts left out; ``None`` when
            the period has requests but none of them told the count.
        cached_tokens: Prompt tokens reused from the cache, likewise.
        generated_tokens: Tokens generated (tokens out), likewise.
        median_generation_tps: Median generation speed over the requests that report one.
        p95_generation_tps: Its 95th percentile.
        median_latency_ms: Median ``total_ms``.
        p95_latency_ms: Its 95th percentile.
    """

    model: str | None
    period: TimeRange
    requests: int
    prompt_tokens: int | None
    cached_tokens: int | None
    generated_tokens: int | None
    median_generation_tps: float | None
    p95_generation_tps: float | None
    median_latency_ms: float | None
    p95_latency_ms: float | None


# One request as the summaries need it: (finished_at, generation t/s, total ms, prompt, cached,
# generated tokens), each figure a finite number or None.
_Entry = tuple[float, float | None, float | None, float | None, float | None, float | None]


def _summary(model: str | None, period: TimeRange, entries: Sequence[_Entry]) -> ActivitySummary:
    speeds = sorted(e[1] for e in entries if e[1] is not None)
    latencies = sorted(e[2] for e in entries if e[2] is not None)

    def total(position: int) -> int | None:
        known = [value for e in entries if (value := e[position]) is not None]
        # no request of the period told this count (all aborted, say): unknown, not 0
        return int(sum(known)) if known or not entries else None

    return ActivitySummary(
        model=model,
        period=period,
        requests=len(entries),
        prompt_tokens=total(3),
        cached_tokens=total(4),
        generated_tokens=total(5),
        median_generation_tps=_percentile_of_sorted(speeds, 50.0),
        p95_generation_tps=_percentile_of_sorted(speeds, 95.0),
        median_latency_ms=_percentile_of_sorted(latencies, 50.0),
        p95_latency_ms=_percentile_of_sorted(latencies, 95.0),
    )


def _newer_than(entries: Sequence[_Entry], since: float) -> int:
    """How many of ``entries`` (newest first) finished at or after ``since``."""
    low, high = 0, len(entries)
    while low < high:
        middle = (low + high) // 2
        if entries[middle][0] >= since:
            low = middle + 1
        else:
            high = middle
    return low


def summarize(
    rows: Iterable[Mapping[str, Any]],
    *,
    now_ms: int,
    periods: Sequence[TimeRange] = SUMMARY_PERIODS,
    overall: bool = True,
) -> list[ActivitySummary]:
    """Summaries per model (sorted by name) and period (in the order given).

    Args:
        rows: Stored requests, in any order; those older than the longest period are ignored.
        now_ms: The end of every period (Unix ms).
        periods: The periods.
        overall: Also summarize every model together (``model`` ``None``, last), where there is more
            than one model.

    A model with no request in a period still gets that period's summary (0 requests, figures
    ``None``), so each model has a line per period.
    """
    spans = [p.span_ms for p in periods]
    oldest = None if None in spans or not spans else now_ms - max(span for span in spans if span is not None)
    by_model: dict[str, list[_Entry]] = {}
    number = _number
    for row in rows:
        finished = number(row.get("finished_at"))
        if finished is None or finished > now_ms or (oldest is not None and finished < oldest):
            continue
        by_model.setdefault(str(row.get("model") or NA), []).append(
            (
                finished,
                number(row.get("generation_tps")),
                number(row.get("total_ms")),
                number(row.get("prompt_tokens")),
                number(row.get("cached_tokens")),
                number(row.get("generated_tokens")),
            )
        )
    groups: list[tuple[str | None, list[_Entry]]] = [(m, by_model[m]) for m in sorted(by_model)]
    if overall and len(by_model) > 1:
        groups.append((None, [e for entries in by_model.values() for e in entries]))
    summaries = []
    for model, entries in groups:
        entries.sort(key=lambda e: e[0], reverse=True)  # newest first: each period is a prefix
        for period in periods:
            since = period.since_ms(now_ms)
            within = entries if since is None else entries[: _newer_than(entries, since)]
            summaries.append(_summary(model, period, within))
    return summaries
