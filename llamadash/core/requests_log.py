"""A record of every request, assembled from llama-server's own log lines.

Pure Python (no Qt). At its default verbosity llama-server prints one set of lines per task, each
with the slot and task id in a fixed header (b11434 and b10001 alike)::

    0.05.617.780 I slot launch_slot_: id  1 | task 65 | processing task, is_child = 0
    0.05.867.910 I slot print_timing: id  1 | task 65 | prompt eval time =  125.47 ms /  1 tokens (...)
    0.05.867.937 I slot print_timing: id  1 | task 65 |        eval time =  124.62 ms / 64 tokens (...)
    0.05.867.938 I slot print_timing: id  1 | task 65 |       total time =  250.09 ms / 65 tokens
    0.05.867.959 I slot      release: id  1 | task 65 | stop processing: n_tokens = 91, truncated = 0

:class:`RequestLogParser` is fed those lines one at a time (with or without the ``M.SS.mmm.uuu L``
timestamp and level prefix, with ANSI colours, or as ``--log-jsonl`` objects) and returns a frozen
:class:`RequestRecord` each time a slot releases its task. The lines it knows are *data*: a table of
named regexes per build family (:data:`LOG_FORMATS`), whose named groups are the record's fields.
Unknown lines are ignored; a request whose lines are only partly there (a crash in the middle, a
cancelled request that prints no timings) never raises: its missing figures are ``None``.

What the log does not say directly: the prompt tokens taken from the cache. The ``release`` line's
``n_tokens`` is the slot's context after the request, i.e. cached + processed prompt + generated - 1
(the last sampled token is never decoded), so :attr:`RequestRecord.cached_tokens` is derived from it
when nothing else changed the context (no truncation, no context shift, not a child task).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from enum import StrEnum

__all__ = [
    "DEFAULT_FAMILY",
    "LOG_FORMATS",
    "LinePattern",
    "LineUpdate",
    "RequestLogParser",
    "RequestRecord",
    "RequestStatus",
    "SlotEvent",
    "parse_request_line",
]


class SlotEvent(StrEnum):
    """What a recognised slot line does to the request on that slot."""

    LAUNCH = "launch"
    """A task starts on the slot (a new record begins)."""
    UPDATE = "update"
    """The line adds figures to the task's record."""
    RELEASE = "release"
    """The slot lets go of its task: the record is complete."""


class RequestStatus(StrEnum):
    """How a request ended, as far as the log tells."""

    FINISHED = "finished"
    """Released after its timing lines: a request that ran to its end (a stop, a limit, an EOS)."""
    ABORTED = "aborted"
    """Released without timing lines: cancelled by its client, or stopped by an error."""
    INCOMPLETE = "incomplete"
    """Never released: the log ended (the server stopped or crashed) while it ran."""


@dataclass(frozen=True, slots=True)
class LinePattern:
    """One kind of slot line: a cheap substring test, then a regex whose named groups are fields.

    Attributes:
        name: What the line is (for tests and debugging).
        needle: A substring every such line contains; lines without it are not tried.
        source: The regex (case-insensitive), compiled when first matched (:attr:`regex`: the
            patterns are made when llamadash starts, most are matched later or never). Matched
            with ``search`` against the message after the ``id N | task M |`` header. Each named
            group is a :class:`RequestRecord` field (or an internal one starting with ``_``),
            converted to that field's type.
        event: What the line does to the slot's record.
        flags: Fields set to a fixed value when the line appears (e.g. a context shift).
    """

    name: str
    needle: str
    source: str
    event: SlotEvent = SlotEvent.UPDATE
    flags: Mapping[str, bool] = field(default_factory=dict)

    @property
    def regex(self) -> re.Pattern[str]:
        """:attr:`source`, compiled (once)."""
        return _compiled(self.source)


@cache
def _compiled(source: str) -> re.Pattern[str]:
    return re.compile(source, re.IGNORECASE)


# printf's "%.2f" of 0/0 or x/0 prints nan, -nan or inf: accepted here, turned into None later
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|nan|inf)"
_INT = r"-?\d+"


def _pattern(
    name: str,
    needle: str,
    regex: str,
    event: SlotEvent = SlotEvent.UPDATE,
    **flags: bool,
) -> LinePattern:
    return LinePattern(name, needle, regex, event, flags)


# Both builds print the same request lines (server-context.cpp: launch_slot_with_task,
# print_timings, release); b11434 renamed the live progress line's counter from n_decoded to n_gen.
_COMMON: tuple[LinePattern, ...] = (
    _pattern(
        "launch",
        "processing task",
        rf"processing task(?:, is_child = (?P<child>{_INT}))?",
        SlotEvent.LAUNCH,
    ),
    _pattern(
        "prompt_timing",
        "prompt eval time",
        rf"prompt eval time =\s*(?P<prompt_ms>{_NUM}) ms /\s*(?P<prompt_tokens>{_INT}) tokens"
        rf"(?: \(\s*{_NUM} ms per token,\s*(?P<prompt_tps>{_NUM}) tokens per second\))?",
    ),
    _pattern(
        "generation_timing",
        "eval time",
        rf"^\s*eval time =\s*(?P<generation_ms>{_NUM}) ms /\s*(?P<generated_tokens>{_INT}) tokens"
        rf"(?: \(\s*{_NUM} ms per token,\s*(?P<generation_tps>{_NUM}) tokens per second\))?",
    ),
    _pattern(
        "total_timing",
        "total time",
        rf"total time =\s*(?P<total_ms>{_NUM}) ms(?: /\s*(?P<_total_tokens>{_INT}) tokens)?",
    ),
    _pattern(
        "draft_acceptance",
        "draft acceptance",
        rf"draft acceptance =\s*{_NUM} \(\s*(?P<draft_accepted>{_INT}) accepted /"
        rf"\s*(?P<draft_tokens>{_INT}) generated\)",
    ),
    _pattern("context_shift", "context shift", r"slot context shift", context_shifted=True),
    _pattern(
        "release",
        "stop processing",
        rf"stop processing(?:: n_tokens = (?P<context_tokens>{_INT}))?"
        rf"(?:, truncated = (?P<truncated>{_INT}))?",
        SlotEvent.RELEASE,
    ),
)

#: The slot lines each build family prints, by family name. A parser may be given one family, or
#: (the default) tries them all: their patterns do not contradict each other.
LOG_FORMATS: dict[str, tuple[LinePattern, ...]] = {
    "b10001": (
        *_COMMON,
        _pattern("progress", "n_decoded =", rf"^n_decoded =\s*(?P<_progress_tokens>{_INT}), tg ="),
    ),
    "b11434": (
        *_COMMON,
        _pattern("progress", "n_gen =", rf"^n_gen =\s*(?P<_progress_tokens>{_INT}), tg ="),
    ),
}
DEFAULT_FAMILY = "b11434"

# The header of every slot line: SLT_INF's "slot %12.*s: id %2d | task %d | ".
_HEADER = re.compile(r"slot\s+[^:|]*:\s+id\s+(\d+)\s+\|\s+task\s+(-?\d+)\s+\|\s?")
# The log's own clock: "M.SS.mmm.uuu" (minutes, seconds, milliseconds, microseconds since start).
_TIMESTAMP = re.compile(r"^\s*(\d+)\.(\d{2})\.(\d{3})\.(\d{3}) ")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request (one task on one slot) as llama-server's log tells it.

    Times are milliseconds. A figure the log did not give is ``None``, never 0.

    Attributes:
        slot: The slot that ran the task.
        task: llama-server's task id (the ``id_task`` of ``/slots``).
        finished_at_ms: Unix time (ms) when the ``release`` line was read (the parser's clock).
        status: How the request ended.
        model: The model's name, as the parser was told.
        started_at_ms: Unix time (ms) when the ``launch`` line was read.
        server_time_ms: The log's own timestamp of the last line, ms since the server started
            (``None`` without ``--log-timestamps``).
        prompt_tokens: Prompt tokens evaluated (not counting those reused from the cache).
        cached_tokens: Prompt tokens reused from the cache (derived, see the module docstring).
        prompt_ms: Time spent evaluating the prompt.
        prompt_tps: Prompt tokens per second, as the server computed it.
        generated_tokens: Tokens generated.
        generation_ms: Time spent generating (first to last token).
        generation_tps: Generated tokens per second, as the server computed it.
        total_ms: Prompt plus generation time.
        context_tokens: The slot's context length after the request (``n_tokens`` of ``release``).
        truncated: Whether the prompt was truncated to fit the context.
        context_shifted: Whether the context was shifted (tokens discarded) during generation.
        child: Whether the task was a child task (one of several completions of one request).
        draft_tokens: Speculative decoding: draft tokens generated.
        draft_accepted: Speculative decoding: draft tokens accepted.
    """

    slot: int
    task: int
    finished_at_ms: int
    status: RequestStatus
    model: str | None = None
    started_at_ms: int | None = None
    server_time_ms: float | None = None
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    prompt_ms: float | None = None
    prompt_tps: float | None = None
    generated_tokens: int | None = None
    generation_ms: float | None = None
    generation_tps: float | None = None
    total_ms: float | None = None
    context_tokens: int | None = None
    truncated: bool | None = None
    context_shifted: bool = False
    child: bool | None = None
    draft_tokens: int | None = None
    draft_accepted: int | None = None


_INT_FIELDS = frozenset(
    {"prompt_tokens", "generated_tokens", "context_tokens", "draft_tokens", "draft_accepted"}
)
_BOOL_FIELDS = frozenset({"truncated", "child"})


@dataclass(frozen=True, slots=True)
class LineUpdate:
    """What one recognised slot line says (the result of :func:`parse_request_line`).

    Attributes:
        pattern: The name of the :class:`LinePattern` that matched.
        event: What the line does to the slot's record.
        slot: The slot id.
        task: The task id.
        values: The fields the line gives, converted (ints, floats, bools; non-finite floats None).
        server_time_ms: The line's own timestamp, ms since the server started, if it has one.
    """

    pattern: str
    event: SlotEvent
    slot: int
    task: int
    values: Mapping[str, int | float | bool | None]
    server_time_ms: float | None = None


def _convert(name: str, text: str | None) -> int | float | bool | None:
    if text is None:
        return None
    if name in _BOOL_FIELDS:
        return int(text) != 0
    if name in _INT_FIELDS or name.endswith("_tokens"):
        return int(text)
    number = float(text)
    return number if math.isfinite(number) else None


def _unwrap_jsonl(line: str) -> tuple[str, float | None]:
    """The message and its time (ms) of a ``--log-jsonl`` line; the line itself if it is not one."""
    try:
        obj = json.loads(line)
    except ValueError:
        return line, None
    if not isinstance(obj, dict) or not isinstance(obj.get("msg"), str):
        return line, None
    stamp = obj.get("time")
    # the JSON "time" is microseconds since start; 0 means timestamps are off
    server_ms = stamp / 1000.0 if isinstance(stamp, int | float) and stamp else None
    return obj["msg"].rstrip("\n"), server_ms


def parse_request_line(
    line: str, patterns: tuple[LinePattern, ...] = LOG_FORMATS[DEFAULT_FAMILY]
) -> LineUpdate | None:
    """Recognise one slot line of llama-server; ``None`` for every other line.

    Args:
        line: One line of output, as printed (prefix, colours and JSONL are all accepted).
        patterns: The line table to use (one of :data:`LOG_FORMATS`, or several joined).

    Returns:
        What the line says, or ``None`` when it is not a slot line this table knows.
    """
    if "| task" not in line:  # nearly every line of a flood ends here, after one substring test
        return None
    server_ms: float | None = None
    if line.lstrip().startswith("{"):
        line, server_ms = _unwrap_jsonl(line)
    if "\x1b" in line:
        line = _ANSI.sub("", line)
    header = _HEADER.search(line)
    if header is None:
        return None
    message = line[header.end() :]
    for pattern in patterns:
        if pattern.needle not in message:
            continue
        found = pattern.regex.search(message)
        if found is None:
            continue
        values: dict[str, int | float | bool | None] = {
            name: _convert(name, text) for name, text in found.groupdict().items()
        }
        values.update(pattern.flags)
        if server_ms is None:
            stamp = _TIMESTAMP.match(line)
            if stamp is not None:
                minutes, seconds, millis, micros = (int(part) for part in stamp.groups())
                server_ms = (minutes * 60 + seconds) * 1000 + millis + micros / 1000.0
        return LineUpdate(
            pattern.name, pattern.event, int(header.group(1)), int(header.group(2)), values, server_ms
        )
    return None


def _wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class _Pending:
    """A request being assembled on one slot."""

    task: int
    started_at_ms: int | None
    values: dict[str, int | float | bool | None] = field(default_factory=dict)
    timed: bool = False
    server_time_ms: float | None = None


_RECORD_FIELDS = frozenset(RequestRecord.__dataclass_fields__)


class RequestLogParser:
    """Turns llama-server's output, line by line, into one :class:`RequestRecord` per request.

    Feed it every line of the instance's output (it is cheap on lines it does not want: one
    substring test). It keeps at most one unfinished request per slot.

    Args:
        model: The model's name, copied into every record.
        family: A key of :data:`LOG_FORMATS`, or ``None`` (the default) to accept the lines of
            every known build.
        clock: Unix time in ms, for the records' ``started_at_ms`` / ``finished_at_ms`` when
            :meth:`feed` is not given a time.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        family: str | None = None,
        clock: Callable[[], int] = _wall_ms,
    ) -> None:
        self.model = model
        if family is None:
            seen: dict[tuple[str, str], LinePattern] = {}
            for table in LOG_FORMATS.values():
                for pattern in table:
                    seen.setdefault((pattern.name, pattern.regex.pattern), pattern)
            self._patterns = tuple(seen.values())
        else:
            self._patterns = LOG_FORMATS[family]
        self._clock = clock
        self._slots: dict[int, _Pending] = {}
        self.lines_recognised = 0
        """How many lines were slot lines this parser knows (for tests and benchmarks)."""

    def feed(self, line: str, at_ms: int | None = None) -> list[RequestRecord]:
        """Read one line; return the requests it completed (usually none, at most two).

        Args:
            line: One line of output.
            at_ms: Unix time (ms) the line was read; the parser's clock when ``None``.
        """
        update = parse_request_line(line, self._patterns)
        if update is None:
            return []
        self.lines_recognised += 1
        now = self._clock() if at_ms is None else at_ms
        done: list[RequestRecord] = []
        pending = self._slots.get(update.slot)
        if pending is not None and pending.task != update.task:
            # the slot moved on without a release line we saw: what we have is all there is
            done.append(self._record(update.slot, self._slots.pop(update.slot), now, incomplete=True))
            pending = None
        if update.event is SlotEvent.LAUNCH:
            pending = _Pending(update.task, now)
            self._slots[update.slot] = pending
        elif pending is None:  # we started reading in the middle of this request
            pending = _Pending(update.task, None)
            self._slots[update.slot] = pending
        pending.values.update(update.values)
        if update.server_time_ms is not None:
            pending.server_time_ms = update.server_time_ms
        if update.pattern.endswith("_timing"):
            pending.timed = True
        if update.event is SlotEvent.RELEASE:
            done.append(self._record(update.slot, self._slots.pop(update.slot), now))
        return done

    def feed_lines(self, lines: list[str], at_ms: int | None = None) -> list[RequestRecord]:
        """:meth:`feed` for a batch of lines read at one moment."""
        now = self._clock() if at_ms is None else at_ms
        done: list[RequestRecord] = []
        for line in lines:
            if "| task" in line:
                done.extend(self.feed(line, now))
        return done

    def in_progress(self) -> list[RequestRecord]:
        """The requests that are running now, as far as the log has told (status ``INCOMPLETE``)."""
        now = self._clock()
        return [self._record(slot, pending, now, incomplete=True) for slot, pending in self._slots.items()]

    def flush(self, at_ms: int | None = None) -> list[RequestRecord]:
        """End of the output (the server stopped or crashed): the unfinished requests, ``INCOMPLETE``."""
        now = self._clock() if at_ms is None else at_ms
        done = [self._record(slot, pending, now, incomplete=True) for slot, pending in self._slots.items()]
        self._slots.clear()
        return done

    def _record(self, slot: int, pending: _Pending, now: int, *, incomplete: bool = False) -> RequestRecord:
        values = {key: value for key, value in pending.values.items() if key in _RECORD_FIELDS}
        status = RequestStatus.FINISHED if pending.timed else RequestStatus.ABORTED
        if incomplete:
            status = RequestStatus.INCOMPLETE
        record = RequestRecord(
            slot=slot,
            task=pending.task,
            finished_at_ms=now,
            status=status,
            model=self.model,
            started_at_ms=pending.started_at_ms,
            server_time_ms=pending.server_time_ms,
        )
        record = replace(record, **values)  # type: ignore[arg-type]  # the table's fields, converted
        return replace(record, cached_tokens=_cached_tokens(record))


def _cached_tokens(record: RequestRecord) -> int | None:
    """Prompt tokens reused from the cache: the context after the request less what it added."""
    if (
        record.status is not RequestStatus.FINISHED
        or record.truncated is not False
        or record.context_shifted
        or record.child
        or record.context_tokens is None
        or record.prompt_tokens is None
        or not record.generated_tokens
    ):
        return None
    cached = record.context_tokens - record.prompt_tokens - record.generated_tokens + 1
    return cached if cached >= 0 else None
