"""Database imports bring in data only: no trigger, view or other object of the file, none of its
per-machine settings, and no value that user input could not hold; interrupted checkpoints open."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import raw_sqlite as raw

from llamadash.core import database
from llamadash.core.database import DatabaseFileError
from llamadash.core.db import migrations, probe, transfer


@pytest.fixture(autouse=True)
def _close_after_test():
    yield
    database.close_database()


def model(**extra):
    return {"name": "m", "type": "llama", "status": "stopped", **extra}


def digest(path: Path) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for suffix in ("", "-wal", "-shm", "-journal"):
        file = Path(f"{path}{suffix}")
        out[suffix] = hashlib.sha256(file.read_bytes()).hexdigest() if file.exists() else None
    return out


def export_of(tmp_path: Path, name: str = "export.db", **metadata: str) -> Path:
    """An export of a small library (two models, metrics, some metadata), made by llamadash."""
    database.init_database(tmp_path / f"src-{name}")
    database.save_model(model(name="alpha", ctx_size=4096, port=8101))
    database.save_model(model(name="beta", temperature=0.5))
    for value in (10.0, 20.0, 30.0):
        database.save_metrics({"cpu_usage": value})
    database.set_metadata("theme_preference", "dark")
    for key, text in metadata.items():
        database.set_metadata(key, text)
    path = database.export_database(tmp_path / name)
    database.close_database()
    return path


def live_db(tmp_path: Path, **metadata: str) -> Path:
    path = tmp_path / "data" / "llama-dashboard.db"
    database.init_database(path)
    database.save_model(model(name="mine"))
    for key, text in metadata.items():
        database.set_metadata(key, text)
    return path


def schema_objects(path: Path) -> list[tuple[str, str]]:
    with raw(path) as conn:
        return sorted(conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))


# ------------------------------------------------------------------------------------------------
# only data comes in
class TestOnlyDataComesIn:
    def test_a_trigger_is_left_out_and_never_fires(self, tmp_path):
        export = export_of(tmp_path)
        with raw(export) as conn:
            conn.execute("CREATE TRIGGER evil AFTER INSERT ON metrics_history BEGIN DELETE FROM models; END")
        info = database.inspect_database_file(export)
        assert "trigger evil (on metrics_history)" in info["foreign_objects"]
        live = live_db(tmp_path)
        database.import_database(export)
        for value in range(5):
            database.save_metrics({"cpu_usage": float(value)})
        assert sorted(m["name"] for m in database.get_models()) == ["alpha", "beta"]
        assert ("trigger", "evil") not in schema_objects(live)
        # and a later export carries nothing of it
        again = database.export_database(tmp_path / "again.db")
        assert all(kind != "trigger" for kind, _ in schema_objects(again))

    def test_views_tables_indexes_and_columns_of_the_file_are_listed_and_left_out(self, tmp_path):
        export = export_of(tmp_path)
        with raw(export) as conn:
            conn.execute("CREATE VIEW recent AS SELECT * FROM metrics_history")
            conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
            conn.execute("CREATE INDEX idx_evil ON models(ctx_size)")
            conn.execute("ALTER TABLE models ADD COLUMN secret_stash TEXT")
            conn.execute("UPDATE models SET secret_stash = 'x'")
        info = database.inspect_database_file(export)
        assert set(info["foreign_objects"]) == {
            "view recent",
            "table notes",
            "index idx_evil (on models)",
            "column models.secret_stash",
        }
        live = live_db(tmp_path)
        database.import_database(export)
        objects = schema_objects(live)
        assert not {("view", "recent"), ("table", "notes"), ("index", "idx_evil")} & set(objects)
        with raw(live) as conn:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(models)")}
        assert "secret_stash" not in columns
        assert [m["ctx_size"] for m in database.get_models() if m["name"] == "alpha"] == [4096]
        assert len(database.get_metrics_history()) == 3

    def test_a_virtual_table_is_left_out(self, tmp_path):
        export = export_of(tmp_path)
        with raw(export) as conn:
            try:
                conn.execute("CREATE VIRTUAL TABLE docs USING fts5(body)")
                module = "fts5"
            except sqlite3.OperationalError:
                conn.execute("CREATE VIRTUAL TABLE docs USING rtree(id, x0, x1)")
                module = "rtree"
            conn.execute(
                "INSERT INTO docs VALUES ('x')" if module == "fts5" else "INSERT INTO docs VALUES (1, 0, 1)"
            )
        info = database.inspect_database_file(export)
        [entry] = [f for f in info["foreign_objects"] if f.startswith("virtual table docs")]
        assert module in entry
        assert not any(f.startswith("table docs_") for f in info["foreign_objects"])  # its parts, once
        live = live_db(tmp_path)
        database.import_database(export)
        assert not [name for _, name in schema_objects(live) if name.startswith("docs")]

    @pytest.mark.parametrize("table", ["metadata", "models", "metrics_history"])
    def test_one_of_our_tables_as_a_view_is_refused_by_name(self, tmp_path, table):
        export = export_of(tmp_path)
        with raw(export) as conn:
            conn.execute(f"ALTER TABLE {table} RENAME TO old_{table}")
            conn.execute(f"CREATE VIEW {table} AS SELECT * FROM old_{table}")
        live = live_db(tmp_path)
        database.close_database()
        before = digest(live)
        database.init_database(live, record_start=False)  # writes nothing
        with pytest.raises(DatabaseFileError, match=f"its {table} is a view, not a table"):
            database.inspect_database_file(export)
        with pytest.raises(DatabaseFileError, match=f"its {table} is a view, not a table"):
            database.import_database(export)
        with pytest.raises(DatabaseFileError, match=f"its {table} is a view"):
            database.read_database_models(export)
        database.close_database()
        assert digest(live) == before


# ------------------------------------------------------------------------------------------------
# this computer's settings
class TestMachineSettings:
    def test_the_current_binary_stays_and_the_preview_says_so(self, tmp_path):
        export = export_of(tmp_path, llama_server_path="./evil.sh", models_dir="/evil", window_state="AAA")
        info = database.inspect_database_file(export)
        assert info["machine_settings"] == {
            "llama_server_path": "./evil.sh",
            "models_dir": "/evil",
            "window_state": "AAA",
        }
        live_db(tmp_path, llama_server_path="/usr/bin/llama-server", window_geometry="GGG")
        database.import_database(export)
        assert database.get_metadata("llama_server_path") == "/usr/bin/llama-server"
        assert database.get_metadata("window_geometry") == "GGG"
        # absent here: absent after the import too
        assert database.get_metadata("models_dir") is None
        assert database.get_metadata("window_state") is None
        assert database.get_metadata("theme_preference") == "dark"  # a preference comes in

    def test_an_imported_file_does_not_open_a_prometheus_port_here(self, tmp_path):
        export = export_of(tmp_path, prometheus_address="0.0.0.0:9464", prometheus_token="theirs")
        assert database.inspect_database_file(export)["machine_settings"] == {
            "prometheus_address": "0.0.0.0:9464",
            "prometheus_token": "theirs",
        }
        live_db(tmp_path)
        database.import_database(export)
        assert database.get_metadata("prometheus_address") is None
        assert database.get_metadata("prometheus_token") is None
        from llamadash.cli import import_notes

        (note,) = import_notes(database.inspect_database_file(export))
        assert "prometheus_address (the file says '0.0.0.0:9464')" in note and "theirs" not in note

    def test_the_list_covers_every_per_machine_key_the_code_defines(self):
        from llamadash.core import pidfile, settings
        from llamadash.core.llama_server import METADATA_KEY
        from llamadash.ui import main_window

        wanted = {
            METADATA_KEY,
            pidfile.METADATA_KEY,
            main_window.STATE_KEY,
            main_window.GEOMETRY_KEY,
            "server_start_time",
            "start_at_login",
        }
        # paths, and the Prometheus endpoint: an imported file must not open a port on this computer
        wanted |= {spec.key for spec in settings.SPECS if spec.kind in ("file", "dir", "address", "secret")}
        if hasattr(pidfile, "ERROR_KEY_PREFIX"):  # why a server of this computer failed
            wanted.add(pidfile.ERROR_KEY_PREFIX + "1")
        assert {k for k in wanted if not transfer.is_machine_key(k)} == set()


# ------------------------------------------------------------------------------------------------
# rows are input
BAD_VALUES = [
    ("models", "port", "'abc'", r"models table, row id 1 \(model 'alpha'\), the column port"),
    ("models", "ctx_size", "-5", r"models table, row id 1 \(model 'alpha'\), the column ctx_size"),
    ("models", "status", "'exploded'", r"models table, row id 1 \(model 'alpha'\), the column status"),
    ("models", "custom_params", "'{not json'", "the column custom_params holds .*not JSON"),
    ("models", "api_key", "printf('%.*c', 3000000, 'x')", "the column api_key holds 3,000,000 characters"),
    ("metrics_history", "cpu_usage", "'hot'", "metrics_history table, row id 1, the column cpu_usage"),
    (
        "metadata",
        "value",
        "zeroblob(10)",
        "metadata table, the row of key 'theme_preference', the column value",
    ),
]


class TestRowsAreInput:
    @pytest.mark.parametrize(
        ("table", "column", "sql_value", "message"), BAD_VALUES, ids=[f"{t}.{c}" for t, c, _, _ in BAD_VALUES]
    )
    def test_a_bad_value_is_refused_by_table_column_and_row(
        self, tmp_path, table, column, sql_value, message
    ):
        export = export_of(tmp_path)
        where = {"models": "id = 1", "metrics_history": "id = 1", "metadata": "key = 'theme_preference'"}[
            table
        ]
        with raw(export) as conn:
            conn.execute(f"UPDATE {table} SET {column} = {sql_value} WHERE {where}")
        live = live_db(tmp_path)
        database.close_database()
        before = digest(live)
        listing = sorted(p.name for p in live.parent.iterdir())
        database.init_database(live, record_start=False)
        with pytest.raises(DatabaseFileError, match=message):
            database.inspect_database_file(export)
        with pytest.raises(DatabaseFileError, match=message):
            database.import_database(export)
        if table == "models":
            with pytest.raises(DatabaseFileError, match=message):
                database.read_database_models(export)
        assert [m["name"] for m in database.get_models()] == ["mine"]
        database.close_database()
        assert digest(live) == before
        assert sorted(p.name for p in live.parent.iterdir()) == listing


# ------------------------------------------------------------------------------------------------
# interrupted checkpoints
def interrupted_checkpoint(folder: Path, rows: int = 400) -> tuple[Path, int]:
    """A database as a checkpoint killed half-way leaves it: page 1 (the new header) and the pages
    after it were copied from the WAL, the rest of the file was not; the WAL still holds them all."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "llama-dashboard.db"
    database.init_database(path)
    database.close_database()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("BEGIN")
    writer.executemany(
        "INSERT INTO metrics_history (timestamp, created_at, cpu_usage) VALUES (?, ?, ?)",
        [(i, i, float(i)) for i in range(rows)],
    )
    writer.execute("COMMIT")
    (total,) = writer.execute("SELECT count(*) FROM metrics_history").fetchone()
    # what the disk holds while the writer is alive: the old main file, the whole WAL
    kept = folder / "kept-wal"
    shutil.copyfile(f"{path}-wal", kept)
    writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    writer.close()
    checkpointed = path.read_bytes()
    page = int.from_bytes(checkpointed[16:18], "big")
    assert len(checkpointed) // page > 4
    for name in os.listdir(folder):
        if name.startswith(path.name):
            os.unlink(folder / name)
    path.write_bytes(checkpointed[: (len(checkpointed) // page - 2) * page])  # the last two pages missing
    os.replace(kept, f"{path}-wal")
    return path, total


class TestInterruptedCheckpoint:
    def test_the_pages_in_the_wal_count_and_every_row_is_there(self, tmp_path):
        path, total = interrupted_checkpoint(tmp_path / "data")
        size = path.stat().st_size
        header_bytes = int.from_bytes(path.read_bytes()[28:32], "big") * int.from_bytes(
            path.read_bytes()[16:18], "big"
        )
        assert header_bytes > size  # the state the issue reports
        database.init_database(path)
        assert database.count_rows()["metrics_history"] == total
        with raw(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]

    def test_without_the_wal_it_is_still_called_truncated(self, tmp_path):
        path, _total = interrupted_checkpoint(tmp_path / "data")
        os.unlink(f"{path}-wal")
        before = digest(path)
        with pytest.raises(DatabaseFileError, match="is truncated: its header says"):
            database.init_database(path)
        assert digest(path) == before

    def test_a_wal_that_does_not_hold_the_pages_is_refused(self, tmp_path):
        path, _total = interrupted_checkpoint(tmp_path / "data")
        Path(f"{path}-wal").write_bytes(os.urandom(3 * 4096))  # not a WAL SQLite can use
        before = digest(path)
        with pytest.raises(DatabaseFileError, match=r"is truncated.*does not hold the missing pages"):
            probe.probe_file(path, for_import=False, check_integrity=False)
        assert digest(path)[""] == before[""]


# ------------------------------------------------------------------------------------------------
# staging files of killed imports
class TestStaleStagingFiles:
    def test_a_killed_imports_file_goes_and_a_live_ones_stays(self, tmp_path):
        live = live_db(tmp_path)
        database.close_database()
        folder = live.parent
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        )
        dead_pid = int(dead.stdout)
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            stale = folder / f".{live.name}.import-{dead_pid}-abc123.tmp"
            stale_wal = folder / f".{live.name}.import-{dead_pid}-abc123.tmp-wal"
            busy = folder / f".{live.name}.import-{sleeper.pid}-def456.tmp"
            old_style = folder / f".{live.name}.import-x1y2z3.tmp"
            new_old_style = folder / f".{live.name}.import-q9w8e7.tmp"
            for file in (stale, stale_wal, busy, old_style, new_old_style):
                file.write_bytes(b"\0" * 4096)
            hour_ago = time.time() - 2 * migrations.STALE_STAGING_AFTER_S
            os.utime(old_style, (hour_ago, hour_ago))
            database.init_database(live)
            left = sorted(p.name for p in folder.iterdir() if ".import-" in p.name)
            assert left == sorted([busy.name, new_old_style.name])
        finally:
            sleeper.kill()
            sleeper.wait()

    def test_an_import_names_its_staging_file_by_its_pid(self, tmp_path, monkeypatch):
        export = export_of(tmp_path)
        live = live_db(tmp_path)
        seen = []
        real_stage = transfer._stage

        def spy(source, staging, *args):
            seen.append(staging.name)
            return real_stage(source, staging, *args)

        monkeypatch.setattr(transfer, "_stage", spy)
        database.import_database(export)
        assert seen and seen[0].startswith(f".{live.name}.import-{os.getpid()}-")


def test_a_trigger_already_in_the_database_is_dropped_when_it_opens(tmp_path, caplog):
    """A database that took a trigger from an import before imports took data only is healed."""
    live = live_db(tmp_path, llama_server_path="/usr/bin/llama-server")
    database.close_database()
    with raw(live) as conn:
        conn.execute(
            "CREATE TRIGGER rewrite AFTER INSERT ON metrics_history BEGIN "
            "UPDATE metadata SET value = './evil.sh' WHERE key = 'llama_server_path'; END"
        )
    database.init_database(live)
    database.save_metrics({"cpu_usage": 1.0})
    assert database.get_metadata("llama_server_path") == "/usr/bin/llama-server"
    assert ("trigger", "rewrite") not in schema_objects(live)
    assert "dropped trigger(s)" in caplog.text and "rewrite" in caplog.text
