"""Writes of the database API: write transactions across connections, full disks, bounded values.

Real SQLite files; a second, plain sqlite3 connection stands for another process.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from support import raw_sqlite as raw

from llamadash.core import database, library
from llamadash.core.database import DatabaseError
from llamadash.core.db import api, connection
from llamadash.core.db.errors import DiskFullError
from llamadash.core.messages import short_repr
from llamadash.core.params.schema import InvalidStoredValue, invalid_stored_values


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


def other_process_can_write(path: Path) -> bool:
    """Whether another connection could take the write lock right now (it does not wait)."""
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return False
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------------
# write transactions
class TestWriteTransaction:
    def test_the_write_lock_is_taken_before_the_first_read(self, db_path):
        model_id = database.save_model(model())
        with database.transaction():
            database.get_model(model_id)
            # another process cannot change what was just read until this block commits
            assert not other_process_can_write(db_path)
        assert other_process_can_write(db_path)

    def test_a_deferred_transaction_can_be_asked_for(self, db_path):
        with database.transaction(immediate=False):
            database.get_models()
            assert other_process_can_write(db_path)

    def test_an_exception_rolls_the_block_back(self, db_path):
        with pytest.raises(RuntimeError), database.transaction():
            database.save_model(model())
            raise RuntimeError("changed my mind")
        assert database.get_models() == []

    def test_a_lock_held_too_long_is_said_in_words(self, tmp_path, monkeypatch):
        monkeypatch.setattr(connection, "BUSY_TIMEOUT_S", 0.2)
        path = tmp_path / "db.sqlite"
        database.init_database(path)
        model_id = database.save_model(model())
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(DatabaseError, match=r"database is busy.*held it locked for more than 0.2 s"):
                database.update_model(model_id, {"ctx_size": 512})
            with pytest.raises(DatabaseError, match="busy"), database.transaction():
                pass
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert database.update_model(model_id, {"ctx_size": 512})["ctx_size"] == 512


class LockCheckingStore:
    """The real database module, noting whether each read happened under the write lock."""

    def __init__(self, path: Path):
        self.path = path
        self.reads_locked: list[bool] = []

    def get_models(self):
        self.reads_locked.append(not other_process_can_write(self.path))
        return database.get_models()

    def __getattr__(self, name):
        return getattr(database, name)


class TestPortChoice:
    def test_the_port_is_chosen_under_the_write_lock(self, db_path):
        store = LockCheckingStore(db_path)
        first = library.add_model(store, model(name="a"))
        second = library.add_model(store, model(name="b"))
        assert store.reads_locked == [True, True]
        assert database.get_model(first)["port"] == 8080
        assert database.get_model(second)["port"] == 8081

    def test_a_duplicate_gets_its_own_port_and_a_given_port_is_kept(self, db_path):
        store = LockCheckingStore(db_path)
        library.add_model(store, model(name="a", port=9000))
        copy = library.add_model(store, model(name="b", port=9000), new_port=True)
        assert store.reads_locked == [True]
        assert database.get_model(copy)["port"] == 8080

    def test_a_stored_value_that_is_no_port_takes_none(self, db_path):
        database.save_model(model(name="a"))
        with raw(db_path) as conn:
            conn.execute("UPDATE models SET port = 'abc'")
        assert library.next_free_port(database.get_models()) == 8080


# ------------------------------------------------------------------------------------------------
# full disks
class TestDiskFull:
    def test_sqlite_full_names_the_disk_and_what_is_free(self, db_path, monkeypatch):
        model_id = database.save_model(model())
        # A real SQLITE_FULL: the file may not grow past its current pages.
        api._require().db.connection().execute("PRAGMA max_page_count = 1").fetchall()
        with pytest.raises(DiskFullError) as caught:
            database.save_model(model(name="second", custom_params={"--x": "y" * 200_000}))
        text = str(caught.value)
        assert text.startswith("could not save the model: the disk holding ")
        assert str(db_path.parent) in text and " free)" in text and "is full" in text
        assert "no transaction is active" not in text
        assert database.get_model(model_id)["name"] == "llama-3-8b"

    def test_a_failed_rollback_does_not_hide_the_full_disk(self, tmp_path):
        try:
            try:
                raise sqlite3.OperationalError("database or disk is full")
            except sqlite3.OperationalError:
                raise sqlite3.OperationalError("cannot rollback - no transaction is active") from None
        except sqlite3.OperationalError as exc:
            failure = api.describe_failure("could not save metrics", exc, tmp_path)
        assert isinstance(failure, DiskFullError)
        assert "no transaction" not in str(failure)
        assert f"the disk holding {tmp_path} is full" in str(failure)

    def test_other_failures_keep_their_own_words(self, tmp_path):
        error = sqlite3.OperationalError("no such table: x")
        failure = api.describe_failure("could not read", error, tmp_path)
        assert type(failure) is DatabaseError
        assert str(failure) == "could not read: no such table: x"


# ------------------------------------------------------------------------------------------------
# limits and stored values
class TestLimits:
    def test_a_10_kb_input_is_cut_in_the_message(self, db_path):
        huge = "z" * 10_000
        for bad in ({"status": huge}, {"flash_attn": huge}, {"ctx_size": huge}, {huge: 1}):
            with pytest.raises(DatabaseError) as caught:
                database.save_model({**model(), **bad})
            assert len(str(caught.value)) < 700, str(caught.value)[:200]
            assert "10000 characters" in str(caught.value)

    def test_short_repr_keeps_short_values_whole(self):
        assert short_repr("abc") == "'abc'"
        cut = short_repr("a" * 500 + "END")
        assert len(cut) < 100 and cut.endswith("(503 characters)") and "END" in cut

    def test_a_50_mb_api_key_is_refused_without_repeating_it(self, db_path):
        with pytest.raises(DatabaseError) as caught:
            database.save_model(model(api_key="k" * 50_000_000))
        text = str(caught.value)
        assert "api_key" in text and "50,000,000 characters" in text and "4,096" in text
        assert "kkkk" not in text
        assert database.get_models() == []

    @pytest.mark.parametrize(
        ("changes", "words"),
        [
            ({"name": "n" * 201}, "at most 200 characters"),
            ({"model_path": "/" + "p" * 5000}, "model_path paths may have at most 4,096"),
            ({"custom_params": {"--x": "v" * 300_000}}, "custom_params are 300,"),
        ],
    )
    def test_text_values_are_bounded(self, db_path, changes, words):
        model_id = database.save_model(model())
        with pytest.raises(DatabaseError, match=words):
            database.update_model(model_id, changes)
        assert database.get_model(model_id)["name"] == "llama-3-8b"

    def test_every_text_kind_has_a_bound(self):
        from llamadash.core.params import load_schema

        for param in load_schema():
            if param.kind in ("string", "file", "dir", "list"):
                assert param.max_length, param.column


class TestStoredValues:
    def test_a_bad_stored_value_is_read_as_what_it_is_and_named(self, db_path):
        model_id = database.save_model(model(ctx_size=4096))
        with raw(db_path) as conn:
            conn.execute("UPDATE models SET port = 'abc', flash_attn = 'sometimes', temperature = 'hot'")
        got = database.get_model(model_id)
        assert isinstance(got["port"], InvalidStoredValue) and got["port"] == "abc"
        problems = dict(invalid_stored_values(got))  # type: ignore[arg-type]
        assert set(problems) == {"port", "flash_attn", "temperature"}
        assert "whole number" in problems["port"]
        assert got["ctx_size"] == 4096  # the good columns are as they were
        # the models list and the library read it without failing
        assert [m["name"] for m in database.get_models()] == ["llama-3-8b"]

    def test_validation_refuses_a_bad_stored_value_with_the_column(self, db_path):
        from llamadash.core.params import validate_config

        model_id = database.save_model(model(model_path="/x.gguf"))
        with raw(db_path) as conn:
            conn.execute("UPDATE models SET port = 0")
        got = database.get_model(model_id)
        issues = [i for i in validate_config(got, check_files=False) if i.severity == "error"]  # type: ignore[arg-type]
        named = [(i.column, "stored in the database is not valid" in i.message) for i in issues]
        assert named == [("port", True)]

    def test_seed_forms_are_still_read(self, db_path):
        model_id = database.save_model(model())
        with raw(db_path) as conn:
            conn.execute(
                "UPDATE models SET gpu_layers = -1, mlock = 1, flash_attn = 'on', n_gpu_layers_draft = '99'"
            )
        got = database.get_model(model_id)
        assert invalid_stored_values(got) == []  # type: ignore[arg-type]


def test_a_database_another_process_creates_at_the_same_moment_opens(tmp_path: Path, monkeypatch) -> None:
    """Two commands started at once on a new data folder: the second must not fail on "File exists".

    The other process's file appears between this one's "does it exist?" and its exclusive create;
    the check is made to miss it, which is that moment, deterministically.
    """
    path = tmp_path / "llama-dashboard.db"
    path.touch(mode=0o600)  # the other process has just made it (still empty)
    real_exists = Path.exists
    monkeypatch.setattr(
        Path, "exists", lambda self, *a, **k: False if self == path else real_exists(self, *a, **k)
    )
    connection.create_database_file(path)
    monkeypatch.undo()
    database.init_database(path)
    database.save_model({"name": "m", "type": "llama", "status": "stopped"})
    assert [m["name"] for m in database.get_models()] == ["m"]
