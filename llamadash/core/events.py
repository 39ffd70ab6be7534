"""Instance events (started, ready, stopped, crashed) kept in the database for the chart markers.

The events live as one JSON list in the ``metadata`` table under :data:`METADATA_KEY`, pruned to
the history window whenever one is added, so the markers come back when llamadash starts again
without a table of their own. They are rare (a few per instance start), so rewriting the list on
each event costs nothing noticeable.

Pure Python, no Qt::

    from llamadash.core import database, events

    events.record_event(database, "llama-3-8b", "ready", ms)
    markers = events.load_events(database, window_minutes=10)
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Protocol

__all__ = ["EVENT_KINDS", "MAX_EVENTS", "METADATA_KEY", "InstanceEvent", "load_events", "record_event"]

_log = logging.getLogger(__name__)

#: The ``metadata`` key that holds the events.
METADATA_KEY = "instance_events"
#: What can happen to an instance, as the instance manager's ``eventOccurred`` names it.
EVENT_KINDS = ("started", "ready", "stopped", "crashed")
#: At most this many events are kept whatever the window, so a restart loop cannot grow the row.
MAX_EVENTS = 500


class EventStore(Protocol):
    """Where events live: the :mod:`llamadash.core.database` module satisfies this."""

    def get_metadata(self, key: str) -> str | None: ...

    def set_metadata(self, key: str, value: str | float) -> None: ...


@dataclass(frozen=True, slots=True)
class InstanceEvent:
    """Something that happened to an instance.

    Attributes:
        name: The instance (model configuration) name.
        event: One of :data:`EVENT_KINDS`.
        ms: When it happened, Unix milliseconds.
    """

    name: str
    event: str
    ms: int


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _read(store: EventStore) -> list[InstanceEvent]:
    text = store.get_metadata(METADATA_KEY)
    if not text:
        return []
    try:
        raw = json.loads(text)
    except ValueError:
        _log.warning("the stored instance events are not JSON; starting a new list")
        return []
    events = []
    for item in raw if isinstance(raw, list) else []:
        try:
            name, event, ms = item["name"], item["event"], item["ms"]
        except (TypeError, KeyError):
            continue
        if (
            isinstance(name, str)
            and event in EVENT_KINDS
            and isinstance(ms, int)
            and not isinstance(ms, bool)
        ):
            events.append(InstanceEvent(name, event, ms))
    return events


def _in_window(events: list[InstanceEvent], window_minutes: float, now_ms: int) -> list[InstanceEvent]:
    cutoff = now_ms - round(window_minutes * 60_000)
    kept = sorted((e for e in events if e.ms >= cutoff), key=lambda e: e.ms)
    return kept[-MAX_EVENTS:]


def load_events(
    store: EventStore, *, window_minutes: float = 10, now_ms: int | None = None
) -> list[InstanceEvent]:
    """The events of the last ``window_minutes``, oldest first (unreadable entries are skipped)."""
    return _in_window(_read(store), window_minutes, _now_ms() if now_ms is None else now_ms)


def record_event(
    store: EventStore,
    name: str,
    event: str,
    ms: int | None = None,
    *,
    window_minutes: float = 10,
    now_ms: int | None = None,
) -> InstanceEvent:
    """Store one event and drop those older than the window; returns the event.

    Raises:
        ValueError: ``event`` is not one of :data:`EVENT_KINDS`.
    """
    if event not in EVENT_KINDS:
        raise ValueError(f"an instance event is one of {', '.join(EVENT_KINDS)}, not {event!r}")
    now = _now_ms() if now_ms is None else now_ms
    item = InstanceEvent(str(name), event, now if ms is None else int(ms))
    kept = _in_window([*_read(store), item], window_minutes, now)
    store.set_metadata(
        METADATA_KEY, json.dumps([{"name": e.name, "event": e.event, "ms": e.ms} for e in kept])
    )
    return item
