"""The database as an object: the retention changes without reopening, two files open side by side."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from support import raw_sqlite as raw

from llamadash.core import database
from llamadash.core.database import Database, DatabaseError, DatabaseNotOpenError
from llamadash.core.db import connection

MINUTE_MS = 60_000


@pytest.fixture(autouse=True)
def _close_after_test():
    yield
    database.close_database()


def _old_rows(path: Path, ages_min: list[float]) -> None:
    """Metrics rows written ``ages_min`` minutes ago (created_at and timestamp alike)."""
    now = connection.now_ms()
    with raw(path) as conn:
        conn.executemany(
            "INSERT INTO metrics_history (timestamp, created_at, cpu_usage) VALUES (?, ?, ?)",
            [(now - round(age * MINUTE_MS), now - round(age * MINUTE_MS), age) for age in ages_min],
        )


def test_changing_the_retention_keeps_the_same_open_connection_and_prunes_by_the_new_window(tmp_path):
    path = tmp_path / "llama-dashboard.db"
    database.init_database(path)
    opened = database.current()
    conn = opened.db.connection()
    _old_rows(path, [30, 8, 3, 0.5])
    database.save_metrics({"cpu_usage": 0.0})  # the default 10 minutes: the 30-minute row goes
    assert [r["cpu_usage"] for r in database.get_metrics_history(60)] == [8, 3, 0.5, 0.0]

    database.set_retention_minutes(5)
    assert database.current() is opened and opened.db.connection() is conn  # nothing was reopened
    assert opened.retention_minutes == 5
    assert database.get_metrics_history(60)[0]["cpu_usage"] == 8  # takes effect on the next save
    database.save_metrics({"cpu_usage": 0.0})
    assert [r["cpu_usage"] for r in database.get_metrics_history(60)] == [3, 0.5, 0.0, 0.0]

    database.set_retention_minutes(1)
    database.save_metrics({"cpu_usage": 0.0})
    assert [r["cpu_usage"] for r in database.get_metrics_history(60)] == [0.5, 0.0, 0.0, 0.0]
    assert opened.db.connection() is conn and opened.db.open_connections == 1


def test_a_longer_retention_keeps_rows_the_shorter_one_would_drop(tmp_path):
    path = tmp_path / "db.db"
    database.init_database(path, retention_minutes=1)
    _old_rows(path, [20, 3])
    database.set_retention_minutes(30)
    database.save_metrics({"cpu_usage": 0.0})
    assert [r["cpu_usage"] for r in database.get_metrics_history(60)] == [20, 3, 0.0]


@pytest.mark.parametrize("minutes", [0, -1, float("inf"), float("nan"), "10", True, None])
def test_a_bad_retention_is_refused_and_the_old_one_stays(tmp_path, minutes):
    database.init_database(tmp_path / "db.db", retention_minutes=7)
    with pytest.raises(DatabaseError, match="retention_minutes must be"):
        database.set_retention_minutes(minutes)
    assert database.current().retention_minutes == 7


def test_the_retention_of_a_closed_database_cannot_be_set():
    database.close_database()
    with pytest.raises(DatabaseNotOpenError, match="init_database"):
        database.set_retention_minutes(5)


def test_the_retention_change_of_the_settings_reaches_the_sampler_thread(tmp_path):
    """The sampler saves from a worker thread; its connection stays open across the change."""
    path = tmp_path / "db.db"
    database.init_database(path)
    _old_rows(path, [4])
    saved: list[int] = []

    def save() -> None:
        saved.append(database.save_metrics({"cpu_usage": 1.0}))

    worker = threading.Thread(target=save)
    worker.start()
    worker.join()
    database.set_retention_minutes(2)
    worker = threading.Thread(target=save)
    worker.start()
    worker.join()
    assert [r["cpu_usage"] for r in database.get_metrics_history(60)] == [1.0, 1.0]
    assert len(saved) == 2


def test_two_databases_open_side_by_side_keep_their_own_rows(tmp_path):
    database.init_database(tmp_path / "current.db")
    other = Database(tmp_path / "other.db", retention_minutes=3, record_start=False)
    try:
        database.save_model({"name": "here", "type": "llama", "status": "stopped"})
        other.save_model({"name": "there", "type": "llama", "status": "stopped"})
        assert [m["name"] for m in database.get_models()] == ["here"]
        assert [m["name"] for m in other.get_models()] == ["there"]
        assert other.get_metadata("server_start_time") is None  # record_start=False wrote nothing
        assert database.get_metadata("server_start_time") is not None
        assert other.retention_minutes == 3 and database.current().retention_minutes == 10
    finally:
        other.close()
    assert not other.is_open
    with pytest.raises(DatabaseNotOpenError):
        other.get_models()
    assert [m["name"] for m in database.get_models()] == ["here"]  # the current one is untouched


def test_a_closed_current_database_refuses_calls_made_through_an_old_reference(tmp_path):
    database.init_database(tmp_path / "db.db")
    opened = database.current()
    database.close_database()
    assert not database.is_open() and not opened.is_open
    with pytest.raises(DatabaseNotOpenError, match="not open"):
        opened.save_metrics({"cpu_usage": 1.0})
