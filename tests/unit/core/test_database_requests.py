"""The activity tables (db version 4) on real SQLite files: requests, instance samples, daily totals.

Upgrading a version-3 file (and an imported one), saving and reading with filters, checks of
what is given, retention by the setting and by rows, daily totals by local day, and export/import
of the new tables including a crafted bad row.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from pathlib import Path

import pytest
from conftest import DATA
from support import raw_sqlite as raw

from llamadash.core import database, settings
from llamadash.core.database import DatabaseError, DatabaseFileError
from llamadash.core.db.checks import local_day
from llamadash.core.db.store import REQUESTS_SQL, Database
from llamadash.core.requests_log import RequestLogParser, RequestRecord, RequestStatus

#: The version before the activity tables.
NO_ACTIVITY_VERSION = 3
ACTIVITY_TABLES = ("requests", "instance_samples", "daily_totals")
DAY_MS = 86_400_000


@pytest.fixture(autouse=True)
def _close_after_test():
    yield
    database.close_database()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "llama-dashboard.db"
    database.init_database(path)
    return path


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def request(model: str = "qwen", finished_at: int | None = None, **extra):
    row = {
        "model": model,
        "status": "finished",
        "finished_at": now_ms() if finished_at is None else finished_at,
        "slot": 0,
        "task": 1,
        "prompt_tokens": 12,
        "cached_tokens": 4,
        "prompt_ms": 30.5,
        "prompt_tps": 393.4,
        "generated_tokens": 64,
        "generation_ms": 1400.0,
        "generation_tps": 45.7,
        "total_ms": 1430.5,
        "context_tokens": 79,
        "truncated": False,
        "context_shifted": False,
    }
    row.update(extra)
    return row


def tables_of(path: Path) -> set[str]:
    with raw(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


# ------------------------------------------------------------------------------------------------
# upgrading
def build_version_3_file(path: Path) -> None:
    """A database as llamadash wrote it at version 3: made by today's code, then the activity
    tables dropped and db_version set back to 3 (the way the version-2 auto-restart test does)."""
    database.init_database(path)
    database.save_model({"name": "kept", "type": "llama", "status": "stopped", "ctx_size": 4096})
    database.save_metrics({"cpu_usage": 12.5})
    database.close_database()
    with raw(path) as conn:
        for table in ACTIVITY_TABLES:
            conn.execute(f"DROP TABLE {table}")
        conn.execute("UPDATE metadata SET value = ? WHERE key = 'db_version'", (str(NO_ACTIVITY_VERSION),))
    assert not tables_of(path) & set(ACTIVITY_TABLES)  # the file is of the old layout for real


def test_a_version_3_file_gains_the_activity_tables_when_opened(tmp_path):
    path = tmp_path / "llama-dashboard.db"
    build_version_3_file(path)
    info = database.inspect_database_file(path)
    assert (info["db_version"], info["needs_upgrade"]) == (NO_ACTIVITY_VERSION, True)
    database.init_database(path)
    assert database.get_db_version() == database.SCHEMA_VERSION == 5
    assert set(ACTIVITY_TABLES) <= tables_of(path)
    [kept] = database.get_models()
    assert (kept["name"], kept["ctx_size"]) == ("kept", 4096)  # the seed's tables are as they were
    assert (kept["served"], kept["load_on_startup"], kept["stop_timeout_s"]) == (
        True,
        False,
        None,
    )  # router: served
    assert database.get_metrics_history(60)[0]["cpu_usage"] == 12.5
    assert database.save_requests([request()]) == 1
    assert database.count_requests() == 1
    database.close_database()
    with raw(path) as conn:
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {
        "idx_requests_finished_at",
        "idx_requests_model_finished_at",
        "idx_instance_samples_timestamp",
    } <= indexes
    database.init_database(path)  # opening it again changes nothing more
    assert database.count_requests() == 1


def test_a_daily_totals_table_lacking_a_count_gains_it_as_zero(tmp_path):
    path = tmp_path / "llama-dashboard.db"
    database.init_database(path)
    database.close_database()
    with raw(path) as conn:  # a hand-made file: its daily totals have no generated_tokens column
        conn.execute("DROP TABLE daily_totals")
        conn.execute(
            "CREATE TABLE daily_totals (day TEXT NOT NULL, model TEXT NOT NULL, requests INTEGER NOT NULL, "
            "prompt_tokens INTEGER NOT NULL, PRIMARY KEY (day, model))"
        )
        conn.execute("INSERT INTO daily_totals VALUES ('2026-11-30', 'qwen', 3, 30)")
    database.init_database(path)
    assert database.get_daily_totals() == [
        {"day": "2026-11-30", "model": "qwen", "requests": 3, "prompt_tokens": 30, "generated_tokens": 0}
    ]


def test_an_imported_version_3_file_is_upgraded(tmp_path, db_path):
    old = tmp_path / "old.db"
    database.close_database()
    build_version_3_file(old)
    database.init_database(db_path)
    database.save_requests([request("replaced")])
    database.import_database(old)
    assert database.get_db_version() == database.SCHEMA_VERSION
    assert [m["name"] for m in database.get_models()] == ["kept"]
    assert database.count_requests() == 0  # the file had none; the tables are there and work
    assert database.get_daily_totals() == []
    database.save_requests([request()])
    assert [r["model"] for r in database.get_requests()] == ["qwen"]


# ------------------------------------------------------------------------------------------------
# saving and reading
def test_requests_come_back_newest_first_with_missing_figures_as_none(db_path):
    base = now_ms() - 60_000
    rows = [
        request("qwen", base + 1_000, task=1),
        request("llama", base + 3_000, task=2, truncated=True),
        request(
            "qwen", base + 2_000, task=3, status="aborted", prompt_tokens=None, cached_tokens=None,
            prompt_ms=None, prompt_tps=float("nan"), generated_tokens=None, generation_ms=None,
            generation_tps=None, total_ms=None, context_tokens=None, truncated=None,
        ),
    ]  # fmt: skip
    assert database.save_requests(rows) == 3
    got = database.get_requests()
    assert [r["task"] for r in got] == [2, 3, 1]
    assert got[0]["truncated"] is True and got[2]["truncated"] is False and got[2]["context_shifted"] is False
    aborted = got[1]
    assert aborted["status"] == "aborted"
    for column in ("prompt_tokens", "prompt_tps", "generated_tokens", "total_ms", "truncated"):
        assert aborted[column] is None, column  # never a made-up 0
    assert set(got[0]) == {"id", "started_at", *request()}
    assert got[0]["started_at"] is None
    with raw(db_path) as conn:
        stored = conn.execute(
            "SELECT prompt_tokens, prompt_tps, truncated FROM requests WHERE task = 3"
        ).fetchone()
    assert stored == (None, None, None)  # NULL in the file too (NaN is a missing figure)


def test_filters_and_counts(db_path):
    now = now_ms()
    database.save_requests(
        [request("qwen", now - i * 60_000, task=i) for i in range(10)]
        + [request("llama", now - i * 60_000, task=100 + i) for i in range(5)]
    )
    assert database.count_requests() == 15
    assert [r["task"] for r in database.get_requests(model="llama")] == [100, 101, 102, 103, 104]
    assert database.count_requests(model="llama") == 5
    since = now - 3 * 60_000
    recent = database.get_requests(since_ms=since)
    assert {r["task"] for r in recent} == {0, 1, 2, 3, 100, 101, 102, 103}  # since is inclusive
    assert database.count_requests(since_ms=since) == 8
    older = database.get_requests(model="qwen", until_ms=since)
    assert [r["task"] for r in older] == [4, 5, 6, 7, 8, 9]  # until is exclusive
    assert database.count_requests(model="qwen", since_ms=now - 5 * 60_000, until_ms=since) == 2
    assert [r["task"] for r in database.get_requests(limit=3)] == [
        100,
        0,
        101,
    ]  # a tie: the later stored first
    assert database.get_requests(model="nobody") == [] and database.count_requests(model="nobody") == 0
    assert database.get_requests(limit=0) == []


def test_a_record_parsed_from_a_real_log_is_stored_as_it_was_told(db_path):
    parser = RequestLogParser(model="tiny")
    records = []
    for line in (DATA / "llama-server-requests-b11434.log").read_text().splitlines():
        records += parser.feed(line)
    assert records, "the real log holds finished requests"
    assert database.save_requests([database.requests_row(r) for r in records]) == len(records)
    stored = sorted(database.get_requests(), key=lambda r: r["id"])
    for record, row in zip(records, stored, strict=True):
        assert (row["model"], row["slot"], row["task"]) == ("tiny", record.slot, record.task)
        assert row["status"] == str(record.status) and record.status in RequestStatus
        assert row["prompt_tokens"] == record.prompt_tokens
        assert row["generated_tokens"] == record.generated_tokens
        assert row["generation_tps"] == record.generation_tps
        assert row["total_ms"] == record.total_ms
        assert row["finished_at"] == record.finished_at_ms and row["started_at"] == record.started_at_ms
        assert row["truncated"] == record.truncated and row["context_shifted"] == record.context_shifted


def test_a_record_itself_is_taken_as_its_row(db_path):
    parser = RequestLogParser(model="tiny")
    records = []
    for line in (DATA / "llama-server-requests-b10001.log").read_text().splitlines():
        records += parser.feed(line)
    assert database.save_requests(records) == len(records) > 0
    assert sorted(database.get_requests(), key=lambda r: r["id"])[0]["task"] == records[0].task
    with pytest.raises(DatabaseError, match=r"request 1: .*needs its model"):
        database.save_requests([without_model(records[0])])


def without_model(record: RequestRecord) -> RequestRecord:
    return dataclasses.replace(record, model=None)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"nonsense": 1}, "unknown request key.*nonsense"),
        ({"status": "done"}, "status must be one of finished, aborted, incomplete"),
        ({"status": None}, "needs its status"),
        ({"model": None}, "needs its model"),
        ({"model": "   "}, "model must be a model's name"),
        ({"prompt_tokens": -1}, "prompt_tokens must not be negative"),
        ({"prompt_tokens": 2.5}, "prompt_tokens must be a whole number"),
        ({"generated_tokens": "64"}, "generated_tokens must be a number"),
        ({"generation_tps": float("inf")}, "generation_tps must be finite"),
        ({"truncated": "yes"}, "truncated must be true, false or None"),
        ({"finished_at": True}, "finished_at must be a number"),
        ({"prompt_tokens": 2**70}, "too large"),
    ],
)
def test_bad_records_are_refused_and_nothing_is_written(db_path, bad, message):
    before = database.count_rows()
    with pytest.raises(DatabaseError, match=f"request 2: .*{message}"):
        database.save_requests([request(task=1), request(task=2, **bad), request(task=3)])
    assert database.count_rows() == before  # not even the good first record, nor a daily total


def test_what_is_not_a_list_of_records_is_refused(db_path):
    for value in (request(), "qwen", 42):
        with pytest.raises(DatabaseError, match="expects a list"):
            database.save_requests(value)  # type: ignore[arg-type]
    with pytest.raises(DatabaseError, match="must be given as a dict"):
        database.save_requests([["qwen"]])  # type: ignore[list-item]
    assert database.save_requests([]) == 0
    for call in (
        lambda: database.get_requests(limit=-1),
        lambda: database.get_requests(since_ms="yesterday"),  # type: ignore[arg-type]
        lambda: database.count_requests(model=3),  # type: ignore[arg-type]
        lambda: database.get_daily_totals(since_day="12/01/2026"),
        lambda: database.get_instance_history(0),
    ):
        with pytest.raises(DatabaseError):
            call()


# ------------------------------------------------------------------------------------------------
# retention
def test_requests_are_kept_for_the_setting_and_by_default_a_week(db_path):
    now = now_ms()
    database.save_requests(
        [request(finished_at=now - 8 * DAY_MS, task=8), request(finished_at=now - 6 * DAY_MS, task=6)]
    )
    assert [r["task"] for r in database.get_requests()] == [6]  # a week by default
    assert database.current().request_retention_days == 7
    current = settings.load_settings(database)
    settings.save_settings(current.replace(request_retention_days=2), database, previous=current)
    assert database.current().request_retention_days == 2  # the saved setting counts from now on
    database.save_requests([request(finished_at=now - DAY_MS, task=1)])
    assert [r["task"] for r in database.get_requests()] == [1]
    # the daily totals keep what the records no longer show
    assert sum(t["requests"] for t in database.get_daily_totals()) == 3
    database.close_database()
    database.init_database(db_path)  # the setting is the file's: it holds after reopening
    assert database.current().request_retention_days == 2


def test_a_stored_retention_that_cannot_be_read_is_the_default(db_path):
    database.set_metadata("request_retention_days", "forever")
    assert database.current().request_retention_days == 7
    database.set_metadata("request_retention_days", "999")  # beyond 365: the default, as settings load it
    assert database.current().request_retention_days == 7
    assert settings.spec("request_retention_days").maximum == settings.REQUEST_RETENTION_MAX_DAYS == 365


def test_requests_are_bounded_in_rows_keeping_the_newest(tmp_path):
    bounded = Database(tmp_path / "bounded.db", max_request_rows=50)
    try:
        now = now_ms()
        for batch in range(6):
            bounded.save_requests(
                [request(finished_at=now - 1000 + batch * 20 + i, task=batch * 20 + i) for i in range(20)]
            )
        assert bounded.count_requests() == 50
        kept = bounded.get_requests()
        assert [r["task"] for r in kept] == list(range(119, 69, -1))
        bounded.save_requests([request(task=1000)])
        assert bounded.count_requests() == 50
        assert sum(t["requests"] for t in bounded.get_daily_totals()) == 121  # totals count every one
    finally:
        bounded.close()
    assert database.MAX_REQUEST_ROWS == 200_000


def test_pruning_looks_up_an_index_instead_of_scanning(db_path):
    conn = database.current().db.thread_connection()
    plans = {
        name: " ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {REQUESTS_SQL[name]}", (0,)))
        for name in ("expire", "bound", "daily_expire")
    }
    assert "USING INDEX idx_requests_finished_at" in plans["expire"], plans
    assert "USING INTEGER PRIMARY KEY" in plans["bound"], plans
    assert "USING INDEX sqlite_autoindex_daily_totals" in plans["daily_expire"], plans


# ------------------------------------------------------------------------------------------------
# daily totals
def test_daily_totals_add_up_per_model_and_local_day(db_path):
    noon = int(time.mktime(time.strptime(time.strftime("%Y-%m-%d 12:00:00"), "%Y-%m-%d %H:%M:%S")) * 1000)
    today, yesterday = local_day(noon), local_day(noon - DAY_MS)
    database.save_requests(
        [
            request("qwen", noon, prompt_tokens=10, generated_tokens=100),
            request("qwen", noon + 1, prompt_tokens=5, generated_tokens=50),
            request("qwen", noon - DAY_MS, prompt_tokens=1, generated_tokens=2),
            request("llama", noon, prompt_tokens=None, generated_tokens=None, status="aborted"),
        ]
    )
    database.save_requests([request("qwen", noon + 2, prompt_tokens=3, generated_tokens=30)])  # adds up
    assert database.get_daily_totals() == [
        {"day": yesterday, "model": "qwen", "requests": 1, "prompt_tokens": 1, "generated_tokens": 2},
        {"day": today, "model": "llama", "requests": 1, "prompt_tokens": 0, "generated_tokens": 0},
        {"day": today, "model": "qwen", "requests": 3, "prompt_tokens": 18, "generated_tokens": 180},
    ]
    assert [t["day"] for t in database.get_daily_totals(model="qwen")] == [yesterday, today]
    assert [t["model"] for t in database.get_daily_totals(since_day=today)] == ["llama", "qwen"]


def test_daily_totals_are_kept_a_year(db_path):
    now = now_ms()
    database.save_requests([request(finished_at=now - 400 * DAY_MS), request(finished_at=now - 300 * DAY_MS)])
    days = [t["day"] for t in database.get_daily_totals()]
    assert days == [local_day(now - 300 * DAY_MS)]  # the 400-day-old one went, the 300-day-old stays
    assert database.DAILY_TOTALS_RETENTION_DAYS == 366


# ------------------------------------------------------------------------------------------------
# instance samples
def sample(model: str = "qwen", timestamp: int | None = None, **extra):
    row = {
        "model": model,
        "timestamp": now_ms() if timestamp is None else timestamp,
        "tokens_per_second": 45.5,
        "prompt_tokens_per_second": 400.0,
        "busy_slots": 1,
        "total_slots": 2,
        "requests_processing": 1,
        "requests_deferred": 0,
        "cpu_percent": 180.5,
        "memory_mb": 812.0,
        "vram_mb": None,
    }
    row.update(extra)
    return row


def test_instance_samples_come_back_oldest_first_and_follow_the_metrics_retention(db_path):
    now = now_ms()
    database.save_instance_samples(
        [sample("qwen", now - 2_000), sample("llama", now - 1_000), sample("qwen", now)]
    )
    history = database.get_instance_history()
    assert [(s["model"], s["timestamp"]) for s in history] == [
        ("qwen", now - 2_000),
        ("llama", now - 1_000),
        ("qwen", now),
    ]
    assert history[0]["vram_mb"] is None and history[0]["busy_slots"] == 1  # no GPU: None, never 0
    assert [s["timestamp"] for s in database.get_instance_history(model="qwen")] == [now - 2_000, now]
    database.save_instance_samples([sample("qwen", now - 30 * 60_000)])  # a late sample of 30 minutes ago
    assert len(database.get_instance_history(1)) == 3  # the last minute's
    database.save_instance_samples([sample("qwen", now + 1)])
    history = database.get_instance_history()  # 10 minutes are kept by default: it went with this save
    assert [s["timestamp"] for s in history] == [now - 2_000, now - 1_000, now, now + 1]
    database.set_retention_minutes(1)
    database.save_instance_samples([sample("qwen", now + 61_000)])
    assert [s["timestamp"] for s in database.get_instance_history()] == [now + 61_000]


def test_gauges_read_as_floats_are_rounded_like_metrics(db_path):
    database.save_instance_samples(
        [sample(busy_slots=1.0, requests_processing=2.4, requests_deferred=float("nan"))]
    )
    [row] = database.get_instance_history()
    assert (row["busy_slots"], row["requests_processing"], row["requests_deferred"]) == (1, 2, None)


def test_bad_instance_samples_are_refused(db_path):
    for bad, message in (
        ({"tokens_per_second": "fast"}, "tokens_per_second must be a number"),
        ({"busy_slots": -1}, "busy_slots must not be negative"),
        ({"model": None}, "needs its model"),
        ({"gpu": 1}, "unknown instance sample key"),
    ):
        with pytest.raises(DatabaseError, match=f"instance sample 2: .*{message}"):
            database.save_instance_samples([sample(), sample(**bad)])
    assert database.get_instance_history() == []


def test_count_rows_lists_the_activity_tables(db_path):
    database.save_requests([request(), request("llama")])
    database.save_instance_samples([sample()])
    counts = database.count_rows()
    assert {table: counts[table] for table in ACTIVITY_TABLES} == {
        "requests": 2,
        "instance_samples": 1,
        "daily_totals": 2,
    }
    assert list(counts)[:3] == ["metrics_history", "models", "metadata"]


# ------------------------------------------------------------------------------------------------
# export and import
def fill_activity() -> None:
    now = now_ms()
    database.save_requests(
        [request("qwen", now - 1_000, task=1), request("llama", now, task=2, truncated=True)]
    )
    database.save_requests([request("qwen", now - 500, task=3, status="aborted", generated_tokens=None)])
    database.save_instance_samples([sample("qwen", now - 1_000), sample("llama", now)])


def test_export_and_import_carry_the_activity_tables(tmp_path, db_path):
    fill_activity()
    before = (database.get_requests(), database.get_daily_totals(), database.get_instance_history())
    exported = database.export_database(tmp_path / "backup.db")
    assert database.inspect_database_file(exported)["request_rows"] == 3
    database.close_database()
    database.init_database(tmp_path / "other" / "llama-dashboard.db")
    database.save_requests([request("elsewhere")])
    database.import_database(exported)
    assert (database.get_requests(), database.get_daily_totals(), database.get_instance_history()) == before
    database.save_requests([request("after")])  # ids go on after the imported ones
    assert database.get_requests(limit=1)[0]["id"] == max(r["id"] for r in before[0]) + 1


@pytest.mark.parametrize(
    ("table", "sql", "where", "column"),
    [
        ("requests", "UPDATE requests SET prompt_tokens = 'lots' WHERE id = 2", "row id 2", "prompt_tokens"),
        ("requests", "UPDATE requests SET status = 'exploded' WHERE id = 1", "row id 1", "status"),
        ("requests", "UPDATE requests SET generation_tps = -3.5 WHERE id = 3", "row id 3", "generation_tps"),
        (
            "instance_samples",
            "UPDATE instance_samples SET busy_slots = x'00ff' WHERE id = 2",
            "row id 2",
            "busy_slots",
        ),
        (
            "daily_totals",
            "UPDATE daily_totals SET day = 'someday' WHERE model = 'llama'",
            "model 'llama'",
            "day",
        ),
    ],
)
def test_an_import_refuses_a_bad_row_naming_table_column_and_row(
    tmp_path, db_path, table, sql, where, column
):
    fill_activity()
    crafted = database.export_database(tmp_path / "crafted.db")
    with sqlite3.connect(crafted) as conn:
        conn.execute(sql)
    conn.close()
    before = (database.count_rows(), database.get_requests())
    for attempt in (database.inspect_database_file, database.import_database):
        with pytest.raises(DatabaseFileError) as refused:
            attempt(crafted)
        text = str(refused.value)
        assert f"in the {table} table, " in text and where in text and f"the column {column}" in text, text
        assert "Nothing was imported" in text
    assert (database.count_rows(), database.get_requests()) == before  # the database is as it was


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("2026-12-07", True),
        ("2024-02-29", True),
        ("2023-02-29", False),  # no such day
        ("2026-13-01", False),
        ("2026-1-07", False),
        ("2026-W01-1", False),  # an ISO week date: ten characters, not a day
        ("2026-12-07\n", False),
        ("\uff12\uff10\uff12\uff16-12-07", False),  # full-width digits
        ("0000-01-01", False),
        ("", False),
    ],
)
def test_a_day_is_written_yyyy_mm_dd_and_exists(text: str, day: bool):
    from llamadash.core.db.checks import is_day

    assert is_day(text) is day


def test_checking_a_day_does_not_load_strptime():
    import subprocess
    import sys

    script = "import sys\nfrom llamadash.core.db.checks import is_day\nis_day('2026-12-07')\nprint('_strptime' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]  # its first use reads the locale's day and month names
