"""Per-model auto-restart lives on the model's row: version 2 files upgrade, renames keep it, imports carry it."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import raw_sqlite as raw

from llamadash.core import database
from llamadash.core.database import AUTORESTART_KEY_PREFIX, DatabaseError

#: The version before auto-restart moved onto the rows.
NAME_KEYED_VERSION = 2


@pytest.fixture(autouse=True)
def _close_after_test():
    yield
    database.close_database()


def model(name: str, **extra):
    return {"name": name, "type": "llama", "status": "stopped", **extra}


def build_version_2_file(path: Path) -> None:
    """A database as llamadash wrote it at version 2: no ``auto_restart`` column, the setting in
    ``autorestart:<name>`` metadata keys (``"1"``/``"0"``), one of them for a model deleted since."""
    database.init_database(path)
    for name in ("always", "never", "unset", "spaced name"):
        database.save_model(model(name, ctx_size=2048))
    database.close_database()
    with raw(path) as conn:
        conn.execute("ALTER TABLE models DROP COLUMN auto_restart")
        conn.execute("UPDATE metadata SET value = ? WHERE key = 'db_version'", (str(NAME_KEYED_VERSION),))
        conn.executemany(
            "INSERT INTO metadata (key, value, updated_at) VALUES (?, ?, 0)",
            [
                (AUTORESTART_KEY_PREFIX + "always", "1"),
                (AUTORESTART_KEY_PREFIX + "never", "0"),
                (AUTORESTART_KEY_PREFIX + "spaced name", "1"),
                (AUTORESTART_KEY_PREFIX + "deleted since", "1"),
            ],
        )
    with raw(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(models)")}
    assert "auto_restart" not in columns  # the file is of the old layout for real


def assert_moved_onto_the_rows() -> None:
    assert database.get_db_version() == database.SCHEMA_VERSION
    by_name = {m["name"]: m for m in database.get_models()}
    assert {name: m["auto_restart"] for name, m in by_name.items()} == {
        "always": True,
        "never": False,
        "unset": False,
        "spaced name": True,
    }
    assert by_name["always"]["ctx_size"] == 2048  # the rest of the row is as it was
    for name in (*by_name, "deleted since"):
        assert database.get_metadata(AUTORESTART_KEY_PREFIX + name) is None  # the keys are gone
    database.save_model(model("deleted since"))
    assert database.get_auto_restart("deleted since") is False  # the orphaned key was not inherited


def test_a_version_2_file_moves_auto_restart_onto_the_rows_when_opened(tmp_path):
    path = tmp_path / "llama-dashboard.db"
    build_version_2_file(path)
    info = database.inspect_database_file(path)
    assert (info["db_version"], info["needs_upgrade"]) == (NAME_KEYED_VERSION, True)
    database.init_database(path)
    assert_moved_onto_the_rows()
    database.close_database()
    insert_as_another_program(path, "foreign")  # the added column has a default too
    database.init_database(path)  # opening it again changes nothing more
    assert database.get_auto_restart("always") and not database.get_auto_restart("never")
    assert database.get_auto_restart("foreign") is False


def insert_as_another_program(path: Path, name: str) -> None:
    """A row written the seed's way: only the seed's columns named."""
    with raw(path) as conn:
        conn.execute("INSERT INTO models (name, type, status) VALUES (?, 'llama', 'stopped')", (name,))


def test_another_program_may_insert_a_model_without_the_column(tmp_path):
    path = tmp_path / "db.db"
    database.init_database(path)
    database.close_database()
    insert_as_another_program(path, "seed-style")
    database.init_database(path)
    assert database.get_model_by_name("seed-style")["auto_restart"] is False


def test_a_version_2_file_imported_is_upgraded_the_same_way(tmp_path):
    old = tmp_path / "old.db"
    build_version_2_file(old)
    database.init_database(tmp_path / "live.db")
    database.save_model(model("replaced", auto_restart=True))
    database.import_database(old)
    assert_moved_onto_the_rows()


def test_merging_models_from_a_version_2_file_carries_the_setting(tmp_path):
    old = tmp_path / "old.db"
    build_version_2_file(old)
    read = {m["name"]: m["auto_restart"] for m in database.read_database_models(old)}
    assert read == {"always": True, "never": False, "unset": False, "spaced name": True}


def test_export_and_import_carry_the_column(tmp_path):
    database.init_database(tmp_path / "a.db")
    database.save_model(model("on", auto_restart=True))
    database.save_model(model("off"))
    exported = database.export_database(tmp_path / "export.db")
    database.init_database(tmp_path / "b.db")
    database.import_database(exported)
    assert {m["name"]: m["auto_restart"] for m in database.get_models()} == {"on": True, "off": False}


def test_a_renamed_model_keeps_it_and_a_new_model_with_the_old_name_does_not_get_it(tmp_path):
    database.init_database(tmp_path / "db.db")
    model_id = database.save_model(model("first"))
    assert database.get_auto_restart("first") is False  # off by default
    database.set_auto_restart("first", True)
    assert database.get_model(model_id)["auto_restart"] is True
    database.update_model(model_id, {"name": "second"})
    assert database.get_auto_restart("second") is True
    assert database.get_auto_restart("first") is False  # no model has that name now
    new_id = database.save_model(model("first"))
    assert database.get_model(new_id)["auto_restart"] is False
    database.delete_model(model_id)
    again = database.save_model(model("second"))
    assert database.get_model(again)["auto_restart"] is False


def test_the_setting_is_checked_like_any_column(tmp_path):
    database.init_database(tmp_path / "db.db")
    model_id = database.save_model(model("m", auto_restart=1))  # SQLite's true, as a file stores it
    assert database.get_model(model_id)["auto_restart"] is True
    for bad in ("yes", 2, 1.0):
        with pytest.raises(DatabaseError, match="auto_restart must be true or false"):
            database.update_model(model_id, {"auto_restart": bad})
    assert database.update_model(model_id, {"auto_restart": None})["auto_restart"] is False  # the default
    database.update_model(model_id, {"auto_restart": True})
    with pytest.raises(DatabaseError, match="no model named 'nobody'"):
        database.set_auto_restart("nobody", True)
    with pytest.raises(DatabaseError, match="true or false"):
        database.set_auto_restart("m", "on")  # type: ignore[arg-type]
    assert database.get_auto_restart("m") is True  # nothing changed
    ids = database.save_models([model("bulk-a"), model("bulk-b", auto_restart=True)])
    assert [database.get_model(i)["auto_restart"] for i in ids] == [False, True]
