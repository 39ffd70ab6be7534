"""Instance events are kept in the database, pruned to the history window, and come back on launch."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamadash.core import database, events
from llamadash.core.events import InstanceEvent

NOW = 1_800_000_000_000
MINUTE = 60_000


@pytest.fixture
def db(tmp_path: Path):
    database.init_database(tmp_path / "events.db")
    yield database
    database.close_database()


def test_events_come_back_after_a_restart(db):
    events.record_event(db, "llama-3-8b", "started", NOW - 3 * MINUTE, now_ms=NOW)
    events.record_event(db, "llama-3-8b", "ready", NOW - 2 * MINUTE, now_ms=NOW)
    events.record_event(db, "qwen", "crashed", NOW - MINUTE, now_ms=NOW)
    path = database.get_database_path()
    database.close_database()
    database.init_database(path)
    assert events.load_events(database, now_ms=NOW) == [
        InstanceEvent("llama-3-8b", "started", NOW - 3 * MINUTE),
        InstanceEvent("llama-3-8b", "ready", NOW - 2 * MINUTE),
        InstanceEvent("qwen", "crashed", NOW - MINUTE),
    ]


def test_events_older_than_the_window_are_dropped_when_one_is_added(db):
    events.record_event(db, "a", "started", NOW - 15 * MINUTE, now_ms=NOW - 14 * MINUTE)
    events.record_event(db, "a", "stopped", NOW - MINUTE, now_ms=NOW, window_minutes=10)
    assert [e.event for e in events.load_events(db, now_ms=NOW, window_minutes=60)] == ["stopped"]


def test_loading_shows_only_the_window_asked_for(db):
    events.record_event(db, "a", "started", NOW - 8 * MINUTE, now_ms=NOW, window_minutes=30)
    events.record_event(db, "a", "ready", NOW - 2 * MINUTE, now_ms=NOW, window_minutes=30)
    assert len(events.load_events(db, now_ms=NOW, window_minutes=5)) == 1
    assert len(events.load_events(db, now_ms=NOW, window_minutes=10)) == 2


def test_a_restart_loop_cannot_grow_the_list_without_bound(db):
    for i in range(events.MAX_EVENTS + 50):
        events.record_event(db, "looping", "crashed", NOW - 1000 + i, now_ms=NOW)
    kept = events.load_events(db, now_ms=NOW)
    assert len(kept) == events.MAX_EVENTS
    assert kept[-1].ms == NOW - 1000 + events.MAX_EVENTS + 49  # the newest are kept


def test_unknown_events_are_refused(db):
    with pytest.raises(ValueError, match="started, ready, stopped, crashed"):
        events.record_event(db, "a", "exploded", NOW)


def test_damaged_stored_events_do_not_stop_the_dashboard(db):
    db.set_metadata(events.METADATA_KEY, "{not json")
    assert events.load_events(db, now_ms=NOW) == []
    db.set_metadata(
        events.METADATA_KEY,
        f'[{{"name": "a", "event": "ready", "ms": {NOW - MINUTE}}}, {{"name": 3}}, "junk", '
        '{"name": "b", "event": "weird", "ms": 1}]',
    )
    assert events.load_events(db, now_ms=NOW) == [InstanceEvent("a", "ready", NOW - MINUTE)]
    events.record_event(db, "b", "started", NOW, now_ms=NOW)  # rewrites a clean list
    assert len(events.load_events(db, now_ms=NOW)) == 2
