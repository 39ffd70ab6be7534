"""True live tokens per second of one llama-server instance, from ``/slots`` and finished requests.

Pure Python (no Qt). ``/metrics``' ``llamacpp:tokens_predicted_total`` only moves when a request
*ends*, so a per-second delta of it reads 0 for the whole request and then the request's token count.
``/slots`` tells, while a request runs, how many tokens each slot has decoded (``next_token[0]
.n_decoded``) and how many prompt tokens it has evaluated (``n_prompt_tokens_processed``). A
:class:`ThroughputMeter` is fed those snapshots with the moment each was taken, turns the growth of
the counters between two snapshots into an *interval* (start, end, tokens), and gives the rate over
the intervals of the last few seconds: tokens in those intervals / the time they span. The tokens a
slot decoded after its last snapshot and before it finished are added when the request's record
arrives (:meth:`ThroughputMeter.add_finished`, from :mod:`llamadash.core.requests_log`).

Readings: idle is ``0.0`` (the window holds no tokens); unknown is ``None`` (no snapshot yet, only
one snapshot while a slot is busy, or the last snapshot is stale because ``/slots`` stopped
answering): never a made-up 0.

What ``/slots`` of b11434 returns, one object per slot (abridged)::

    {"id": 0, "n_ctx": 1024, "is_processing": true, "id_task": 130, "n_prompt_tokens": 289,
     "n_prompt_tokens_processed": 35, "n_prompt_tokens_cache": 0, "params": {...},
     "next_token": [{"has_next_token": true, "n_remain": 46, "n_decoded": 254}]}

A slot that never had a task has only ``id``, ``n_ctx``, ``speculative`` and ``is_processing``;
after its task it shows ``is_processing: false`` and ``n_decoded: 0``. ``next_token`` is a one-element
array in the code and a bare object in the README: both are accepted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "DEFAULT_HISTORY_S",
    "DEFAULT_STALE_AFTER_S",
    "DEFAULT_WINDOW_S",
    "FinishedRequest",
    "SlotReading",
    "Throughput",
    "ThroughputMeter",
    "parse_slots",
]

#: The rates are computed over the intervals that end in the last this-many seconds.
DEFAULT_WINDOW_S = 2.0
#: How long the intervals are kept, for averages over a sample period or a request.
DEFAULT_HISTORY_S = 120.0
#: A reading older than this says nothing about now: the rates become ``None``.
DEFAULT_STALE_AFTER_S = 5.0


@dataclass(frozen=True, slots=True)
class SlotReading:
    """One slot in one ``/slots`` snapshot.

    Attributes:
        slot: The slot id.
        processing: Whether the slot is running a task.
        task: The id of its current (or last) task; ``None`` if it never had one.
        decoded: Tokens generated so far for that task (``None`` if not given).
        prompt_processed: Prompt tokens evaluated so far for that task (``None`` if not given).
        prompt_cached: Prompt tokens the task took from the cache (``None`` if not given).
    """

    slot: int
    processing: bool
    task: int | None = None
    decoded: int | None = None
    prompt_processed: int | None = None
    prompt_cached: int | None = None


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_slots(payload: object) -> list[SlotReading] | None:
    """The slots of a decoded ``/slots`` JSON answer; ``None`` if it is not a list of slots.

    Entries that are not objects with an integer ``id`` are skipped.
    """
    if not isinstance(payload, list):
        return None
    readings: list[SlotReading] = []
    for entry in payload:
        if not isinstance(entry, dict):
            continue
        slot = _int_or_none(entry.get("id"))
        if slot is None:
            continue
        next_token = entry.get("next_token")
        if isinstance(next_token, list):
            next_token = next_token[0] if next_token else None
        decoded = _int_or_none(next_token.get("n_decoded")) if isinstance(next_token, dict) else None
        readings.append(
            SlotReading(
                slot=slot,
                processing=entry.get("is_processing") is True,
                task=_int_or_none(entry.get("id_task")),
                decoded=decoded,
                prompt_processed=_int_or_none(entry.get("n_prompt_tokens_processed")),
                prompt_cached=_int_or_none(entry.get("n_prompt_tokens_cache")),
            )
        )
    return readings


class FinishedRequest(Protocol):
    """What :meth:`ThroughputMeter.add_request` reads of a finished request (a ``RequestRecord``)."""

    @property
    def slot(self) -> int: ...
    @property
    def task(self) -> int: ...
    @property
    def generated_tokens(self) -> int | None: ...
    @property
    def prompt_tokens(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Throughput:
    """What an instance is doing now.

    Attributes:
        generation_tps: Tokens generated per second, all slots together (``None``: unknown).
        prompt_tps: Prompt tokens evaluated per second, all slots together (``None``: unknown).
        busy_slots: Slots running a task in the last snapshot (``None``: unknown).
        total_slots: Slots in the last snapshot (``None``: unknown).
        span_s: The time the rates were measured over (``None`` when there was none).
    """

    generation_tps: float | None = None
    prompt_tps: float | None = None
    busy_slots: int | None = None
    total_slots: int | None = None
    span_s: float | None = None


UNKNOWN = Throughput()


@dataclass(slots=True)
class _Interval:
    start: float
    end: float
    generated: int = 0
    prompt: int = 0


@dataclass(slots=True)
class _TaskState:
    """What was already counted of one task on one slot."""

    generated: int = 0
    prompt: int = 0
    recorded: bool = False  # its finished record was added: nothing more to count


#: Tasks remembered for matching snapshots and finished records (the oldest are forgotten).
_MAX_TASKS = 64


class ThroughputMeter:
    """Live generation and prompt tokens/s of one instance over a short sliding window.

    Times are seconds on one monotonic clock chosen by the caller (the moment a snapshot's answer
    arrived, the moment a request's log line was read).

    Args:
        window_s: Rates are taken over the intervals that end within this many seconds of the
            newest snapshot (at least one interval).
        stale_after_s: With no snapshot for this long, every reading is ``None``.
        history_s: Intervals are kept this long, for :meth:`average`.
    """

    def __init__(
        self,
        window_s: float = DEFAULT_WINDOW_S,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        history_s: float = DEFAULT_HISTORY_S,
    ) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.window_s = window_s
        self.stale_after_s = stale_after_s
        self.history_s = max(history_s, window_s)
        self._intervals: deque[_Interval] = deque()
        self._tasks: dict[tuple[int, int], _TaskState] = {}
        self._last_at: float | None = None
        self._last_busy: int | None = None
        self._last_total: int | None = None
        self._pending_generated = 0  # finished after the newest snapshot: for the next interval
        self._pending_prompt = 0

    def reset(self) -> None:
        """Forget everything (the server restarted, or ``/slots`` stopped answering)."""
        self._intervals.clear()
        self._tasks.clear()
        self._last_at = self._last_busy = self._last_total = None
        self._pending_generated = self._pending_prompt = 0

    def add_slots(self, at: float, slots: Iterable[SlotReading]) -> None:
        """Add one ``/slots`` snapshot taken at ``at``.

        A snapshot older than the newest one is ignored (answers can arrive out of order).
        """
        if self._last_at is not None and at <= self._last_at:
            return
        generated = prompt = busy = total = 0
        for reading in slots:
            total += 1
            busy += reading.processing
            gained = self._count(reading)
            generated += gained[0]
            prompt += gained[1]
        if self._last_at is None:  # the first snapshot is the baseline: it tells no rate yet
            self._pending_generated = self._pending_prompt = 0
        else:
            self._intervals.append(
                _Interval(
                    self._last_at,
                    at,
                    generated + self._pending_generated,
                    prompt + self._pending_prompt,
                )
            )
            self._pending_generated = self._pending_prompt = 0
        self._last_at, self._last_busy, self._last_total = at, busy, total
        self._trim(at)

    def _count(self, reading: SlotReading) -> tuple[int, int]:
        """Tokens of ``reading`` not counted before: (generated, prompt)."""
        if reading.task is None:
            return 0, 0
        key = (reading.slot, reading.task)
        state = self._tasks.get(key)
        if state is None:
            state = self._remember(key)
            if self._last_at is None:
                # the first snapshot: what came before the meter started is not "now"
                state.generated = reading.decoded or 0
                state.prompt = reading.prompt_processed or 0
                state.recorded = not reading.processing
                return 0, 0
            if not reading.processing:  # it ran and ended between two snapshots: its record tells
                return 0, 0
        elif state.recorded or not reading.processing:
            return 0, 0
        generated = max(0, (reading.decoded or 0) - state.generated)
        prompt = max(0, (reading.prompt_processed or 0) - state.prompt)
        state.generated += generated
        state.prompt += prompt
        return generated, prompt

    def _remember(self, key: tuple[int, int]) -> _TaskState:
        state = _TaskState()
        self._tasks[key] = state
        if len(self._tasks) > _MAX_TASKS:
            for old in list(self._tasks)[: _MAX_TASKS // 2]:
                del self._tasks[old]
        return state

    def add_finished(
        self,
        at: float,
        slot: int,
        task: int,
        generated_tokens: int | None,
        prompt_tokens: int | None = None,
    ) -> None:
        """Add a request that finished at ``at``: the tokens its slot made after the last snapshot.

        Args:
            at: When it finished (when its ``release`` log line was read).
            slot: Its slot.
            task: Its task id.
            generated_tokens: Tokens it generated in all (``None``: unknown, nothing is added).
            prompt_tokens: Prompt tokens it evaluated in all (``None``: unknown).
        """
        key = (slot, task)
        state = self._tasks.get(key) or self._remember(key)
        if state.recorded:
            return
        state.recorded = True
        gained = max(0, (generated_tokens or 0) - state.generated)
        prompt = max(0, (prompt_tokens or 0) - state.prompt)
        state.generated += gained
        state.prompt += prompt
        if self._last_at is None or not (gained or prompt):
            return
        if at > self._last_at:  # after the newest snapshot: it belongs to the next interval
            self._pending_generated += gained
            self._pending_prompt += prompt
            return
        for interval in reversed(self._intervals):  # the interval during which it ended
            if interval.start < at:
                interval.generated += gained
                interval.prompt += prompt
                return

    def add_request(self, at: float, record: FinishedRequest) -> None:
        """:meth:`add_finished` for a :class:`~llamadash.core.requests_log.RequestRecord`."""
        self.add_finished(at, record.slot, record.task, record.generated_tokens, record.prompt_tokens)

    def _trim(self, newest: float) -> None:
        horizon = newest - self.history_s
        while len(self._intervals) > 1 and self._intervals[0].end < horizon:
            self._intervals.popleft()

    def reading(self, now: float | None = None) -> Throughput:
        """The rates now (``now`` defaults to the newest snapshot's time)."""
        if self._last_at is None:
            return UNKNOWN
        if now is not None and now - self._last_at > self.stale_after_s:
            return UNKNOWN
        busy, total = self._last_busy, self._last_total
        chosen = [i for i in self._intervals if i.end > self._last_at - self.window_s]
        if not chosen and self._intervals:
            chosen = [self._intervals[-1]]
        if not chosen:
            idle = 0.0 if busy == 0 else None  # one snapshot: idle is known, a rate is not
            return Throughput(idle, idle, busy, total, None)
        span = chosen[-1].end - chosen[0].start
        generated = sum(i.generated for i in chosen)
        prompt = sum(i.prompt for i in chosen)
        return Throughput(generated / span, prompt / span, busy, total, span)

    def average(self, since: float, until: float | None = None) -> Throughput:
        """The rates over the intervals that lie within ``since``..``until`` (e.g. one sample period).

        Args:
            since: The span's start (an interval that began earlier is left out).
            until: The span's end; the newest snapshot when ``None``.

        Returns:
            The rates over the covered time; every figure ``None`` when no interval lies within.
        """
        end = self._last_at if until is None else until
        if end is None:
            return UNKNOWN
        chosen = [i for i in self._intervals if i.start >= since and i.end <= end]
        if not chosen:
            return UNKNOWN
        span = chosen[-1].end - chosen[0].start
        generated = sum(i.generated for i in chosen)
        prompt = sum(i.prompt for i in chosen)
        return Throughput(generated / span, prompt / span, self._last_busy, self._last_total, span)
