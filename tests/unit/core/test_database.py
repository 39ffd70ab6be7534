"""The database API on real SQLite files: tables, pragmas, metrics, models, metadata, threads."""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path

import pytest
from support import raw_sqlite as raw

from llamadash.core import database
from llamadash.core.database import DatabaseError
from llamadash.core.db import api, connection, store
from llamadash.core.params import META_COLUMNS, load_schema

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")

SCHEMA = load_schema()
MINUTE_MS = 60_000


@pytest.fixture(autouse=True)
def _close_after_test():
    yield
    database.close_database()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "llama-dashboard.db"
    database.init_database(path)
    return path


def model(**extra):
    return {"name": "llama-3-8b", "type": "llama", "status": "stopped", **extra}


# ------------------------------------------------------------------------------------------------
# creating the database
class TestCreate:
    def test_tables_columns_and_types(self, db_path):
        database.close_database()
        with raw(db_path) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            assert {"metrics_history", "models", "metadata"} <= tables
            info = {r[1]: r for r in conn.execute("PRAGMA table_info(models)")}
            metrics = {r[1]: r for r in conn.execute("PRAGMA table_info(metrics_history)")}
            meta = {r[1]: r for r in conn.execute("PRAGMA table_info(metadata)")}
        # one column per seed column, every parameter generated with its seed SQL type, nullable
        assert set(info) == set(META_COLUMNS) | set(SCHEMA.columns)
        # 180: a remote server's URL and the library router's served, load_on_startup and stop_timeout_s
        # came after 176
        assert len(info) == len(META_COLUMNS) + len(SCHEMA) == 180
        assert (info["remote_url"][2], info["remote_url"][3]) == ("TEXT", 0)  # a remote server's URL, or NULL
        for param in SCHEMA:
            assert info[param.column][2] == param.sql_type, param.column
            assert info[param.column][3] == 0, f"{param.column} must be nullable"
        assert info["escape"][2] == "BOOLEAN"
        for column in ("name", "type", "status"):
            assert (info[column][2], info[column][3]) == ("TEXT", 1)
        assert info["custom_params"][2] == "TEXT"
        assert info["created_at"][2] == info["updated_at"][2] == "INTEGER"
        assert info["id"][5] == 1
        assert list(metrics) == [
            "id", "timestamp", "cpu_usage", "memory_usage", "disk_usage", "gpu_usage",
            "gpu_temperature", "gpu_memory_used", "gpu_memory_total", "gpu_power_usage",
            "active_models", "uptime", "requests_per_minute", "created_at",
        ]  # fmt: skip
        assert metrics["uptime"][2] == "INTEGER" and metrics["cpu_usage"][2] == "REAL"
        assert (meta["key"][5], meta["value"][3]) == (1, 1)

    def test_named_indexes(self, db_path):
        database.close_database()
        with raw(db_path) as conn:
            indexes = {
                name: (table, sql)
                for name, table, sql in conn.execute(
                    "SELECT name, tbl_name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL"
                )
            }
        assert set(indexes) == {
            "idx_metrics_timestamp", "idx_metrics_created_at", "idx_models_name",
            "idx_models_status", "idx_models_type", "idx_models_created",
            "idx_requests_finished_at", "idx_requests_model_finished_at",
            "idx_instance_samples_timestamp", "idx_workers_name", "idx_bench_results_model",
        }  # fmt: skip
        assert indexes["idx_models_name"][1].startswith("CREATE UNIQUE INDEX")
        assert indexes["idx_metrics_created_at"][0] == "metrics_history"
        assert '("created_at")' in indexes["idx_models_created"][1]

    def test_pragmas_on_every_connection(self, db_path):
        def settings():
            conn = api.current().db.connection()
            return (
                conn.execute("PRAGMA journal_mode").fetchone()[0],
                conn.execute("PRAGMA synchronous").fetchone()[0],
                conn.execute("PRAGMA auto_vacuum").fetchone()[0],
            )

        here = settings()
        there = []
        worker = threading.Thread(target=lambda: there.append(settings()))
        worker.start()
        worker.join()
        assert here == there[0] == ("wal", 1, 2)  # WAL, NORMAL, INCREMENTAL

    def test_version_and_start_time(self, db_path, monkeypatch):
        assert database.get_db_version() == database.SCHEMA_VERSION == 5
        assert database.get_metadata("db_version") == str(database.SCHEMA_VERSION)
        first = int(database.get_metadata("server_start_time"))  # type: ignore[arg-type]
        assert abs(first - api.now_ms()) < 5_000
        monkeypatch.setattr(connection, "now_ms", lambda: first + 123_456)
        database.init_database(db_path)
        assert database.get_metadata("server_start_time") == str(first + 123_456)

    def test_a_tool_can_open_without_writing(self, db_path):
        start = database.get_metadata("server_start_time")
        database.close_database()
        before = db_path.read_bytes()
        database.init_database(db_path, record_start=False)
        assert database.get_metadata("server_start_time") == start  # a running app's uptime is kept
        database.get_models()
        database.count_rows()
        database.close_database()
        assert db_path.read_bytes() == before

    @posix_only
    def test_files_are_private(self, db_path):
        database.save_metrics({"cpu_usage": 1.0})
        for suffix in ("", "-wal", "-shm"):
            file = Path(f"{db_path}{suffix}")
            assert file.exists(), suffix
            assert file.stat().st_mode & 0o777 == 0o600, suffix

    def test_returns_the_path_and_reopens(self, tmp_path):
        path = tmp_path / "x.db"
        assert database.init_database(path) == path
        database.save_model(model())
        assert database.get_database_path() == path
        database.init_database(path)
        assert [m["name"] for m in database.get_models()] == ["llama-3-8b"]

    def test_default_location_from_data_dir(self, tmp_path, monkeypatch):
        monkeypatch.setenv("LLAMADASH_DATA_DIR", str(tmp_path / "env"))
        assert database.init_database() == tmp_path / "env" / "llama-dashboard.db"
        assert database.init_database(data_dir=tmp_path / "arg") == tmp_path / "arg" / "llama-dashboard.db"
        assert (tmp_path / "arg" / "llama-dashboard.db").is_file()

    def test_unusable_locations(self, tmp_path):
        (tmp_path / "file").write_text("x")
        with pytest.raises(DatabaseError, match="cannot create the database"):
            database.init_database(tmp_path / "file" / "x.db")
        with pytest.raises(DatabaseError, match="cannot use the data directory"):
            database.init_database(data_dir=tmp_path / "file")

    @posix_only
    def test_new_folder_for_the_database_is_private(self, tmp_path):
        database.init_database(tmp_path / "new" / "x.db")
        assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700

    def test_a_folder_is_not_a_database_file(self, tmp_path):
        with pytest.raises(DatabaseError, match="is a folder"):
            database.init_database(tmp_path)

    @pytest.mark.parametrize("minutes", [0, -1, "10", True, math.inf])
    def test_bad_retention(self, tmp_path, minutes):
        with pytest.raises(DatabaseError, match="retention_minutes"):
            database.init_database(tmp_path / "x.db", retention_minutes=minutes)

    def test_calls_before_init_are_refused(self):
        with pytest.raises(database.DatabaseNotOpenError, match="init_database"):
            database.get_models()
        with pytest.raises(DatabaseError, match="not open"):
            database.save_metrics({"cpu_usage": 1.0})

    def test_close_is_idempotent_and_closes_other_threads(self, db_path):
        worker = threading.Thread(target=lambda: database.save_metrics({"cpu_usage": 2.0}))
        worker.start()
        worker.join()
        database.get_metrics_history()
        database.close_database()
        database.close_database()
        assert not database.is_open()
        # SQLite removes the WAL when the last connection closes: nothing is left open
        assert not Path(f"{db_path}-wal").exists()


# ------------------------------------------------------------------------------------------------
# metrics
class TestMetrics:
    def test_round_trip_missing_readings_are_none(self, db_path):
        before = api.now_ms()
        row_id = database.save_metrics({"cpu_usage": 75.5, "gpu_temperature": 72, "active_models": 3})
        [row] = database.get_metrics_history(10)
        assert row["id"] == row_id
        assert row["cpu_usage"] == 75.5 and row["gpu_temperature"] == 72.0 and row["active_models"] == 3
        assert row["disk_usage"] is None and row["gpu_power_usage"] is None and row["uptime"] is None
        assert before <= row["timestamp"] <= api.now_ms()
        assert row["created_at"] == row["timestamp"]
        assert set(row) == {
            "id", "timestamp", "cpu_usage", "memory_usage", "disk_usage", "gpu_usage",
            "gpu_temperature", "gpu_memory_used", "gpu_memory_total", "gpu_power_usage",
            "active_models", "uptime", "requests_per_minute", "created_at",
        }  # fmt: skip

    def test_history_is_oldest_first_and_windowed(self, db_path):
        now = api.now_ms()
        for offset_s in (30, 5, 200, 11 * 60):  # saved out of order; the last one is too old
            database.save_metrics({"timestamp": now - offset_s * 1000, "cpu_usage": float(offset_s)})
        assert [r["cpu_usage"] for r in database.get_metrics_history(10)] == [200.0, 30.0, 5.0]
        assert [r["cpu_usage"] for r in database.get_metrics_history(1)] == [30.0, 5.0]
        assert [r["cpu_usage"] for r in database.get_metrics_history(0.2)] == [5.0]  # 12 s

    def test_retention_drops_old_rows(self, tmp_path):
        database.init_database(tmp_path / "r.db", retention_minutes=2)
        now = api.now_ms()
        for offset_s in (300, 150, 119, 10):
            database.save_metrics({"created_at": now - offset_s * 1000, "cpu_usage": float(offset_s)})
        assert [r["cpu_usage"] for r in database.get_metrics_history(10)] == [119.0, 10.0]

    def test_default_retention_is_ten_minutes(self, db_path):
        now = api.now_ms()
        database.save_metrics({"created_at": now - 10 * MINUTE_MS - 1, "timestamp": now, "uptime": 1})
        database.save_metrics({"created_at": now - 10 * MINUTE_MS + 1000, "timestamp": now, "uptime": 2})
        database.save_metrics({"uptime": 3})
        assert [r["uptime"] for r in database.get_metrics_history()] == [2, 3]

    def test_retention_and_insert_are_one_transaction(self, db_path):
        now = api.now_ms()
        database.save_metrics({"created_at": now - 20 * MINUTE_MS, "timestamp": now, "uptime": 1})
        with raw(db_path) as conn:  # make the last statement of save_metrics fail
            conn.execute(
                "CREATE TRIGGER boom BEFORE UPDATE ON metadata WHEN NEW.key = 'last_metrics_save' "
                "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
            )
        with pytest.raises(DatabaseError, match="disk on fire"):
            database.save_metrics({"uptime": 2})
        # neither the insert nor the cleanup happened
        assert [r["uptime"] for r in database.get_metrics_history()] == [1]

    def test_last_metrics_save(self, db_path):
        row_id = database.save_metrics({"created_at": 1_700_000_000_000, "timestamp": 1_700_000_000_000})
        assert row_id > 0
        assert database.get_metadata("last_metrics_save") == "1700000000000"
        database.save_metrics({})
        assert abs(int(database.get_metadata("last_metrics_save")) - api.now_ms()) < 5_000  # type: ignore[arg-type]

    def test_number_handling(self, db_path):
        database.save_metrics({"uptime": 3600.7, "cpu_usage": 5, "memory_usage": math.nan})
        [row] = database.get_metrics_history()
        assert row["uptime"] == 3601 and isinstance(row["uptime"], int)
        assert row["cpu_usage"] == 5.0
        assert row["memory_usage"] is None  # NaN is a missing reading, not a number

    @pytest.mark.parametrize(
        ("metrics", "message"),
        [
            ({"cpu": 5.0}, "unknown metrics key.*cpu"),
            ({"cpu_usage": 1.0, "id": 3}, "unknown metrics key.*id"),
            ({"cpu_usage": "75.5"}, "cpu_usage must be a number"),
            ({"active_models": True}, "active_models must be a number"),
            ({"gpu_usage": [1]}, "gpu_usage must be a number"),
            ({"gpu_usage": math.inf}, "gpu_usage must be finite"),
            ({"cpu_usage": -math.inf}, "cpu_usage must be finite"),
            ({"active_models": -(2**63) - 1}, "active_models is too large"),
            ({"timestamp": "now"}, "timestamp must be a number"),
            ({"uptime": 2**70}, "uptime is too large"),
            ({"gpu_usage": 1e300 * 1e10}, "gpu_usage must be finite"),
            ([("cpu_usage", 1.0)], "expects a dict"),
        ],
    )
    def test_bad_metrics_change_nothing(self, db_path, metrics, message):
        database.save_metrics({"cpu_usage": 1.0})
        before = database.count_rows()
        with pytest.raises(DatabaseError, match=message):
            database.save_metrics(metrics)
        assert database.count_rows() == before

    @pytest.mark.parametrize("minutes", [0, -5, "10", None, True])
    def test_bad_history_window(self, db_path, minutes):
        with pytest.raises(DatabaseError, match="minutes must be a positive number"):
            database.get_metrics_history(minutes)

    def test_incremental_vacuum_returns_freed_pages(self, db_path, monkeypatch):
        monkeypatch.setattr(store, "INCREMENTAL_VACUUM_EVERY", 3)
        old = api.now_ms() - 60 * MINUTE_MS
        with raw(db_path) as conn:
            conn.executemany(
                "INSERT INTO metrics_history (timestamp, created_at, cpu_usage) VALUES (?, ?, ?)",
                [(old, old, float(i)) for i in range(5000)],
            )
        database.save_metrics({"cpu_usage": 1.0})  # retention deletes the 5,000 rows
        conn = api.current().db.connection()
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] > 10
        database.save_metrics({"cpu_usage": 2.0})
        database.save_metrics({"cpu_usage": 3.0})  # third save: incremental vacuum
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
        assert len(database.get_metrics_history()) == 3

    @pytest.mark.parametrize("nested", [False, True])
    def test_a_save_that_fails_half_way_keeps_nothing_and_the_next_one_works(self, db_path, nested):
        database.save_metrics({"cpu_usage": 1.0})
        with raw(db_path) as conn:  # the last step of a save (its last_metrics_save) fails
            conn.execute(
                "CREATE TRIGGER refuse BEFORE UPDATE ON metadata WHEN NEW.key = 'last_metrics_save' "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        with pytest.raises(DatabaseError, match="refused by the test"):
            if nested:
                with database.transaction():
                    database.save_metrics({"cpu_usage": 2.0})
            else:
                database.save_metrics({"cpu_usage": 2.0})
        assert [r["cpu_usage"] for r in database.get_metrics_history()] == [1.0]  # nothing of it kept
        with raw(db_path) as conn:
            conn.execute("DROP TRIGGER refuse")
        with database.transaction():  # no transaction was left open on the connection
            database.save_metrics({"cpu_usage": 3.0})
        database.save_metrics({"cpu_usage": 4.0})
        assert [r["cpu_usage"] for r in database.get_metrics_history()] == [1.0, 3.0, 4.0]

    def test_incremental_vacuum_inside_a_transaction_keeps_it_whole(self, db_path, monkeypatch):
        """The sampler saves a sample and its instance rows in one transaction: the vacuum due
        at one of those saves must not commit it half-way (the sample's save failed then)."""
        monkeypatch.setattr(store, "INCREMENTAL_VACUUM_EVERY", 2)
        old = api.now_ms() - 60 * MINUTE_MS
        with raw(db_path) as conn:
            conn.executemany(
                "INSERT INTO metrics_history (timestamp, created_at, cpu_usage) VALUES (?, ?, ?)",
                [(old, old, float(i)) for i in range(5000)],
            )
        for i in range(4):
            now = api.now_ms()
            with database.transaction():
                database.save_metrics({"timestamp": now, "cpu_usage": float(i)})
                database.save_instance_samples([{"model": "m", "timestamp": now, "cpu_percent": 1.0}])
        conn = api.current().db.connection()
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0  # the vacuum ran
        assert [row["cpu_usage"] for row in database.get_metrics_history()] == [0.0, 1.0, 2.0, 3.0]
        assert len(database.get_instance_history()) == 4
        with pytest.raises(RuntimeError), database.transaction():
            database.save_metrics({"cpu_usage": 9.0})  # the second save: a vacuum is due
            database.save_metrics({"cpu_usage": 10.0})
            raise RuntimeError("the block fails after the vacuum")
        assert len(database.get_metrics_history()) == 4  # neither row of the failed block was kept


# ------------------------------------------------------------------------------------------------
# models
class TestModels:
    def test_round_trip_every_column(self, db_path):
        model_id = database.save_model(
            model(
                ctx_size=8192,
                temperature=0.8,
                top_p=0.9,
                host="127.0.0.1",
                port=8080,
                gpu_layers=-1,
                mmap=True,
                flash_attn="auto",
                custom_params={"--some-flag": "x", "--n": 2},
            )
        )
        got = database.get_model(model_id)
        assert list(got) == [  # type: ignore[arg-type]
            "id",
            "name",
            "type",
            "status",
            "created_at",
            "updated_at",
            *SCHEMA.columns,
            "custom_params",
            "auto_restart",
            "remote_url",
            "served",
            "load_on_startup",
            "stop_timeout_s",
        ]
        assert got["id"] == model_id
        assert (got["ctx_size"], got["temperature"], got["port"]) == (8192, 0.8, 8080)
        assert got["gpu_layers"] == "auto"  # the seed's -1 means auto
        assert got["mmap"] is True
        assert got["custom_params"] == {"--some-flag": "x", "--n": 2}
        assert got["auto_restart"] is False  # off unless turned on
        assert got["remote_url"] is None  # a local model
        assert got["batch_size"] is None and got["hf_repo"] is None
        assert abs(got["created_at"] - api.now_ms()) < 5_000
        assert got["updated_at"] == got["created_at"]

    def test_typed_values_come_back_canonical(self, db_path):
        model_id = database.save_model(
            model(samplers="top_k;top_p", escape=False, control_vector_layer_range=[2, 8], no_webui=1)
        )
        got = database.get_model(model_id)
        assert got["samplers"] == ["top_k", "top_p"]
        assert got["escape"] is False
        assert got["control_vector_layer_range"] == [2, 8]
        assert got["no_webui"] is True

    def test_custom_params_list_and_empty(self, db_path):
        a = database.save_model(model(name="a", custom_params=["--foo", "1", "--bar"]))
        b = database.save_model(model(name="b"))
        assert database.get_model(a)["custom_params"] == ["--foo", "1", "--bar"]
        assert database.get_model(b)["custom_params"] == {}

    def test_filters_and_order(self, db_path, monkeypatch):
        clock = iter(range(1_000, 100_000, 1_000))
        monkeypatch.setattr(connection, "now_ms", lambda: next(clock))
        database.save_model(model(name="b", type="llama", status="running"))
        database.save_model(model(name="a", type="qwen", status="stopped"))
        database.save_model(model(name="c", type="llama", status="stopped"))
        assert [m["name"] for m in database.get_models()] == ["b", "a", "c"]
        assert [m["name"] for m in database.get_models(status="stopped")] == ["a", "c"]
        assert [m["name"] for m in database.get_models(type="llama")] == ["b", "c"]
        assert [m["name"] for m in database.get_models(status="stopped", type="llama")] == ["c"]
        assert database.get_models(status="error") == []

    def test_get_by_id_and_name(self, db_path):
        model_id = database.save_model(model(name="  spaced  "))
        assert database.get_model_by_name("spaced")["id"] == model_id
        assert database.get_model(model_id)["name"] == "spaced"
        assert database.get_model(model_id + 1) is None
        assert database.get_model_by_name("nope") is None
        with pytest.raises(DatabaseError, match="whole number"):
            database.get_model("1")  # type: ignore[arg-type]

    def test_update(self, db_path, monkeypatch):
        model_id = database.save_model(model(ctx_size=4096, temperature=0.5))
        created = database.get_model(model_id)["created_at"]
        monkeypatch.setattr(connection, "now_ms", lambda: created + 5_000)
        got = database.update_model(model_id, {"status": "running", "temperature": 0.7, "ctx_size": None})
        assert (got["status"], got["temperature"], got["ctx_size"]) == ("running", 0.7, None)
        assert got["updated_at"] == created + 5_000 and got["created_at"] == created
        assert database.get_model(model_id) == got
        # a dict from get_model can be sent back; an explicit updated_at is kept
        got["updated_at"] = 42
        assert database.update_model(model_id, got)["updated_at"] == 42

    def test_update_refusals_change_nothing(self, db_path):
        first = database.save_model(model(name="one"))
        second = database.save_model(model(name="two"))
        before = database.get_model(second)
        with pytest.raises(DatabaseError, match="'one' already exists"):
            database.update_model(second, {"name": "one"})
        with pytest.raises(DatabaseError, match="id cannot be changed"):
            database.update_model(second, {"id": first})
        with pytest.raises(DatabaseError, match="invalid value for ctx_size"):
            database.update_model(second, {"status": "running", "ctx_size": "big"})
        with pytest.raises(DatabaseError, match="name must not be empty"):
            database.update_model(second, {"name": ""})
        with pytest.raises(DatabaseError, match="no model with id 999"):
            database.update_model(999, {"status": "running"})
        assert database.get_model(second) == before

    def test_delete(self, db_path):
        a = database.save_model(model(name="a"))
        database.save_model(model(name="b"))
        database.save_model(model(name="c"))
        assert database.delete_model(a) is True
        assert database.delete_model(a) is False
        assert database.get_model(a) is None
        assert database.delete_all_models() == 2
        assert database.get_models() == []
        # ids are not reused (AUTOINCREMENT)
        assert database.save_model(model(name="d")) > a + 2

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (
                model(ctx_sise=10),
                r"unknown model setting.*'ctx_sise'.*did you mean 'ctx_size'.*custom_params",
            ),
            (model(**{"--ctx-size": 10}), r"'--ctx-size' is the column 'ctx_size'.*custom_params"),
            (
                model(**{"--my-new-flag": 1}),
                r"unknown model setting.*'--my-new-flag'.*belong in custom_params",
            ),
            (model(id=7), "id is assigned by the database"),
            (model(ctx_size="big"), "invalid value for ctx_size: expected a whole number"),
            (model(temperature="hot"), "invalid value for temperature"),
            (model(flash_attn="maybe"), "invalid value for flash_attn: expected one of"),
            (model(port=70_000), "invalid value for port"),
            ({"type": "llama", "status": "stopped"}, "needs name"),
            ({"name": "x", "status": "stopped"}, "needs type"),
            ({"name": "x", "type": "llama"}, "needs status"),
            (model(status="paused"), "status must be one of running, stopped, loading, error"),
            (model(name=""), "name must not be empty"),
            (model(name="   "), "name must not be empty"),
            (model(name=3), "name must be text"),
            (model(type=""), "type must not be empty"),
            (model(created_at="yesterday"), "created_at must be Unix milliseconds"),
            (model(custom_params="--flag"), "custom_params must be a dict"),
            (model(custom_params=["--n", 3]), "command-line strings only"),
            (model(custom_params={1: "x"}), "keys must be text"),
            (model(custom_params={"--x": {1, 2}}), "JSON-serialisable"),
            (model(custom_params={"--x": math.nan}), "JSON-serialisable"),
            ("llama", "must be given as a dict"),
            (model(name="nice\nrm -rf ~/important"), "must not contain control characters"),
            (model(type="llama\x1b[31m"), "must not contain control characters"),
        ],
    )
    def test_bad_input_changes_nothing(self, db_path, data, message):
        database.save_model(model(name="existing"))
        before = database.count_rows()
        with pytest.raises(DatabaseError, match=message):
            database.save_model(data)
        assert database.count_rows() == before

    def test_duplicate_name(self, db_path):
        database.save_model(model())
        with pytest.raises(DatabaseError, match="a model named 'llama-3-8b' already exists"):
            database.save_model(model(type="other"))
        with pytest.raises(DatabaseError, match="already exists"):
            database.save_model(model(name=" llama-3-8b "))  # the same name once trimmed
        assert len(database.get_models()) == 1

    def test_bad_filters(self, db_path):
        with pytest.raises(DatabaseError, match="status must be one of"):
            database.get_models(status="paused")
        with pytest.raises(DatabaseError, match="type must be text"):
            database.get_models(type=3)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# metadata and maintenance
class TestMetadata:
    def test_set_get_delete(self, db_path):
        assert database.get_metadata("theme_preference") is None
        database.set_metadata("theme_preference", "dark")
        assert database.get_metadata("theme_preference") == "dark"
        database.set_metadata("theme_preference", "light")
        assert database.get_metadata("theme_preference") == "light"
        database.set_metadata("answer", 42)
        assert database.get_metadata("answer") == "42"
        assert database.delete_metadata("theme_preference") is True
        assert database.delete_metadata("theme_preference") is False
        assert database.get_metadata("theme_preference") is None

    def test_updated_at_is_recorded(self, db_path):
        database.set_metadata("k", "v")
        database.close_database()
        with raw(db_path) as conn:
            (updated,) = conn.execute("SELECT updated_at FROM metadata WHERE key = 'k'").fetchone()
        assert abs(updated - api.now_ms()) < 5_000

    @pytest.mark.parametrize(
        ("call", "message"),
        [
            (lambda: database.set_metadata("db_version", "9"), "maintained by llamadash"),
            (lambda: database.delete_metadata("db_version"), "maintained by llamadash"),
            (lambda: database.set_metadata("", "x"), "non-empty text"),
            (lambda: database.set_metadata(None, "x"), "non-empty text"),  # type: ignore[arg-type]
            (lambda: database.set_metadata("k", None), "text or a number"),  # type: ignore[arg-type]
            (lambda: database.set_metadata("k", True), "text or a number"),
            (lambda: database.get_metadata(3), "non-empty text"),  # type: ignore[arg-type]
        ],
    )
    def test_refusals(self, db_path, call, message):
        with pytest.raises(DatabaseError, match=message):
            call()
        assert database.get_metadata("db_version") == str(database.SCHEMA_VERSION)


class TestMaintenance:
    def test_count_rows(self, db_path):
        database.save_model(model())
        database.save_metrics({"cpu_usage": 1.0})
        database.save_metrics({"cpu_usage": 2.0})
        counts = database.count_rows()
        assert counts["models"] == 1 and counts["metrics_history"] == 2
        assert counts["metadata"] == 3  # db_version, server_start_time, last_metrics_save

    def test_size_and_vacuum(self, db_path):
        big = "x" * 20_000
        for i in range(60):
            database.save_model(model(name=f"m{i}", chat_template=big))
        database.delete_all_models()
        grown = database.get_database_size()
        on_disk = db_path.stat().st_size + Path(f"{db_path}-wal").stat().st_size
        assert grown == on_disk
        assert grown > 60 * 20_000
        database.vacuum_database()
        assert database.get_database_size() < grown / 4
        assert database.get_database_size() == db_path.stat().st_size  # the WAL was folded in
        assert database.get_models() == []


# ------------------------------------------------------------------------------------------------
# threads
class TestThreads:
    def test_worker_writes_while_reader_reads(self, db_path):
        errors: list[Exception] = []
        done = threading.Event()

        def sampler():
            try:
                for i in range(150):
                    database.save_metrics({"uptime": i})
            except Exception as exc:
                errors.append(exc)
            finally:
                database.release_connection()
                done.set()

        worker = threading.Thread(target=sampler)
        worker.start()
        reads = 0
        while not done.is_set():
            rows = database.get_metrics_history()
            uptimes = [r["uptime"] for r in rows]
            assert uptimes == sorted(uptimes)
            reads += 1
        worker.join()
        assert errors == []
        assert reads > 0
        assert [r["uptime"] for r in database.get_metrics_history()] == list(range(150))

    def test_connections_of_finished_threads_are_closed(self, db_path):
        for _ in range(5):
            worker = threading.Thread(target=lambda: database.save_metrics({"cpu_usage": 1.0}))
            worker.start()
            worker.join()
        database.get_models()  # this thread connects: the finished threads' connections go
        assert api.current().db.open_connections <= 2

    def test_timing_sanity(self, db_path):
        start = time.perf_counter()
        for _ in range(200):
            database.save_metrics({"cpu_usage": 1.0})
        assert (time.perf_counter() - start) / 200 < 0.01  # generous; the benchmark measures
