"""Exporting the database to a file, and importing one in its place.

Export copies a consistent snapshot with SQLite's online backup API while the application keeps
writing: the copy runs on its own connection inside a read transaction, so WAL-mode writers go on
and the backup never has to restart. It goes to a temporary file next to the target and is renamed
into place at the end, so a half-written export never appears under the target's name.

Import brings in **data only**. The file is checked first (SQLite, whole, ours, not newer) and read
read-only, never written and never run: a staging database in the data directory is built with
llamadash's own tables (our DDL, not the file's), and only the rows of our tables (the seed's three
and the activity tables: requests, instance samples, daily totals), only the columns llamadash
knows, are copied into it, each value checked as user input is (a model row through the parameter
schema, a request as ``save_requests`` checks it). Triggers, views, virtual tables, other tables and indexes of the
file are left out, and the preview says which. Settings that name a program or a place on this
computer (:data:`MACHINE_METADATA_KEYS`: the llama-server binary, the models folder, start at
login, the window layout, the running servers) are never taken from a file: the current values
stay; so do this computer's RPC workers and benchmark results (:data:`MACHINE_TABLES`). The staged copy is then
upgraded like any older database. Only then does the import close
the database, keep the current file as ``<db>.bak-<timestamp>`` and rename the staged file into
place. A failure before that point changes nothing; a failure after it puts the kept file back.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import peewee

from llamadash.core.db import api, checks
from llamadash.core.db.connection import SQL_ERRORS, create_database_file, make_database, now_ms, run_sql
from llamadash.core.db.errors import DatabaseError, DatabaseFileError
from llamadash.core.db.migrations import staging_prefix, upgrade_schema
from llamadash.core.db.models import (
    ALL_MODELS,
    DAILY_TOTAL_COLUMNS,
    METRICS_INTEGER_COLUMNS,
    MODEL_COLUMNS,
    ModelConfig,
)
from llamadash.core.db.probe import open_readonly, probe_file
from llamadash.core.messages import short_repr
from llamadash.core.params import META_COLUMNS

#: Metadata keys that describe this computer, never taken from an imported file: a program it
#: runs, a place on its disks, how it starts, its screen, the processes running on it. On import
#: the current values stay (or their absence). The value says why, for the preview. Keep this list
#: complete: a test checks every per-machine key the code defines against it.
MACHINE_METADATA_KEYS: dict[str, str] = {
    "llama_server_path": "the llama-server program this computer runs",
    "models_dir": "a folder on this computer",
    "start_at_login": "whether this computer starts llamadash at login",
    "window_geometry": "the window's size and place on this screen",
    "window_state": "the window's layout on this screen",
    "instance_pids": "the llama-server processes running on this computer",
    "worker_pids": "the RPC worker processes running on this computer",
    "server_start_time": "when llamadash started on this computer",
    "prometheus_address": "where this computer serves its Prometheus metrics (an open port)",
    "prometheus_token": "the token scrapers of this computer's metrics must send",
}
#: Kept like the others, but not worth a line in the preview (every file holds one).
_UNLISTED_MACHINE_KEYS = frozenset({"server_start_time"})
#: Key prefixes of the same kind: any window layout key, and why a server of this computer
#: failed (``instance_error:<model id>``, :mod:`llamadash.core.pidfile`).
MACHINE_METADATA_PREFIXES: tuple[str, ...] = ("window_", "instance_error:")
#: The longest text an imported cell may hold (a model setting, a metadata value), in characters.
MAX_IMPORTED_TEXT = 1024 * 1024


def is_machine_key(key: str) -> bool:
    """Whether a metadata key belongs to this computer (see :data:`MACHINE_METADATA_KEYS`)."""
    return key in MACHINE_METADATA_KEYS or key.startswith(MACHINE_METADATA_PREFIXES)


#: Pages copied per backup step (4 MiB at the default 4 KiB page); progress is reported per step.
EXPORT_PAGES_PER_STEP = 1024

ProgressCallback = Callable[[int, int], Any]


def _companions(path: Path) -> tuple[Path, ...]:
    return tuple(Path(f"{path}{suffix}") for suffix in ("-wal", "-shm", "-journal"))


def _remove_quietly(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _snapshot(source_uri: str, destination: Path, progress: ProgressCallback | None) -> None:
    """Copy a consistent snapshot of the database at ``source_uri`` into ``destination``."""
    src = sqlite3.connect(source_uri, uri=True, isolation_level=None)
    try:
        # A read transaction pins one snapshot: writers on other connections carry on (WAL) and
        # the backup, which reads through this connection, never sees their pages change.
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        dst = sqlite3.connect(destination, isolation_level=None)
        try:
            if progress is None:
                src.backup(dst, pages=EXPORT_PAGES_PER_STEP)
            else:
                src.backup(
                    dst,
                    pages=EXPORT_PAGES_PER_STEP,
                    progress=lambda _status, remaining, total: progress(total - remaining, total),
                )
            # The copy inherits WAL mode from the source; a single self-contained file is wanted.
            dst.execute("PRAGMA journal_mode = DELETE").fetchall()
        finally:
            dst.close()
        src.execute("COMMIT")
    finally:
        src.close()


def _place(temporary: Path, target: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target)  # fails if the target exists, however late it appeared
    except FileExistsError:
        raise DatabaseError(f"{target} already exists; choose another name or allow overwriting") from None
    except OSError:  # no hard links on this file system
        if target.exists():
            raise DatabaseError(
                f"{target} already exists; choose another name or allow overwriting"
            ) from None
        os.replace(temporary, target)
        return
    temporary.unlink()


def export_database(
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> Path:
    """Write a consistent copy of the database to ``path`` while the application keeps working.

    Args:
        path: the file to write (its folder must exist). The copy is readable by its owner only
            (POSIX) and is a single file (not in WAL mode).
        overwrite: replace ``path`` if it exists; otherwise an existing file is refused.
        progress: called as ``progress(done_pages, total_pages)`` after each step; an exception it
            raises cancels the export (nothing is left behind) and propagates.

    Returns:
        The written file's absolute path.

    Raises:
        DatabaseError: the target exists (and ``overwrite`` is False), is the database itself, its
            folder is missing, or the copy failed.
    """
    target = Path(path).expanduser().absolute()
    source = api.current().path
    if _same_file(target, source) or any(_same_file(target, c) for c in _companions(source)):
        raise DatabaseError(f"{target} is the database itself; export to another file")
    if target.is_dir():
        raise DatabaseError(f"{target} is a folder; give the export file's name")
    if not target.parent.is_dir():
        raise DatabaseError(f"the folder {target.parent} does not exist")
    if target.exists() and not overwrite:
        raise DatabaseError(f"{target} already exists; choose another name or allow overwriting")
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    temporary = Path(name)  # mkstemp makes it 0o600
    try:
        _snapshot(source.absolute().as_uri(), temporary, progress)
        _place(temporary, target, overwrite)
    except sqlite3.Error as exc:
        raise DatabaseError(f"the export to {target} failed: {exc}") from exc
    except OSError as exc:
        raise DatabaseError(f"the export to {target} failed: {exc}") from exc
    finally:
        _remove_quietly(temporary, *_companions(temporary))
    return target


def inspect_database_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Check a file that is offered for import and say what an import would bring in; changes nothing.

    Every row the import would take is read and checked (nothing in the file runs: it is opened
    read-only and only our tables' columns are selected).

    Returns:
        ``path``, ``size`` (bytes), ``db_version`` (1 = the seed's design), ``needs_upgrade``,
        ``tables``, ``model_count`` (also as ``models``), ``model_names`` (by id),
        ``metrics_rows``, ``request_rows``, ``foreign_objects`` (what is left out: ``"trigger evil (on
        metrics_history)"``, ``"view v"``, ``"column models.extra"``, ...) and
        ``machine_settings`` (``{key: the file's value}`` of the per-machine settings the file
        holds, which an import does not take: see :data:`MACHINE_METADATA_KEYS`).

    Raises:
        DatabaseFileError: the file is missing, empty, not SQLite, truncated, damaged, another
            application's database, or a value in it is not acceptable (the message names the
            table, the column and the row).
        SchemaVersionError: it was written by a newer llamadash.
    """
    source = Path(path).expanduser().absolute()
    info = probe_file(source, for_import=True, check_integrity=True)
    try:
        src = open_readonly(source)
    except sqlite3.Error as exc:
        raise DatabaseFileError(f"{source} cannot be opened: {exc}") from None
    try:
        reader = _RowReader(src, source, info)
        for _row in reader.metrics():
            pass
        for _model in reader.models():
            pass
        for table in ACTIVITY_TABLES:
            for _activity in reader.activity(table):
                pass
        info["machine_settings"] = {
            key: value
            for key, value, _updated in reader.metadata()
            if is_machine_key(key) and key not in _UNLISTED_MACHINE_KEYS
        }
    except sqlite3.DatabaseError as exc:
        raise DatabaseFileError(f"{source} could not be read: {exc}") from None
    finally:
        src.close()
    return info


# ------------------------------------------------------------------------------------------------
# reading an imported file's rows as input
def _text_of(value: Any) -> str:
    """``value`` as a message quotes it: at most 60 characters (a cell may hold megabytes)."""
    return short_repr(value, 60)


class _RowReader:
    """Reads the rows of our tables from a file opened read-only and checks each value as input.

    Only the columns llamadash knows are selected (``info["columns"]`` from :func:`probe_file`);
    a value that does not fit raises :class:`DatabaseFileError` naming the table, column and row.
    """

    def __init__(self, conn: sqlite3.Connection, source: Path, info: dict[str, Any]) -> None:
        self.conn = conn
        self.source = source
        self.columns: dict[str, list[str]] = info.get("columns") or {}

    def _refuse(self, table: str, row: str, column: str, problem: str) -> DatabaseFileError:
        return DatabaseFileError(
            f"{self.source} cannot be imported: in the {table} table, {row}, the column {column} "
            f"{problem}. Nothing was imported"
        )

    def _select(self, table: str) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
        columns = self.columns.get(table)
        if not columns:
            return [], iter(())
        names = ", ".join(f'"{c}"' for c in columns)
        order = ' ORDER BY "id"' if "id" in columns else ""
        return columns, iter(self.conn.execute(f'SELECT {names} FROM "{table}"{order}'))

    def _check_size(self, table: str, row: str, column: str, value: Any) -> None:
        if isinstance(value, (str, bytes)) and len(value) > MAX_IMPORTED_TEXT:
            raise self._refuse(
                table,
                row,
                column,
                f"holds {len(value):,} characters (at most {MAX_IMPORTED_TEXT:,} are accepted)",
            )

    def metrics(self) -> Iterator[tuple[list[str], tuple[Any, ...]]]:
        """(columns, row) of ``metrics_history``: numbers or NULL only."""
        columns, rows = self._select("metrics_history")
        for row in rows:
            for column, value in zip(columns, row, strict=False):
                if value is None:
                    continue
                is_number = type(value) in (int, float)
                if not is_number or (type(value) is float and not math.isfinite(value)):
                    where = f"row id {row[columns.index('id')]!r}" if "id" in columns else "a row"
                    kind = "whole number" if column in METRICS_INTEGER_COLUMNS else "number"
                    raise self._refuse(
                        "metrics_history", where, column, f"holds {_text_of(value)}, not a {kind}"
                    )
            yield columns, row

    def models(self) -> Iterator[dict[str, Any]]:
        """Each ``models`` row as a checked model dict (every known column the file has)."""
        columns, rows = self._select("models")
        fields = ModelConfig._meta.columns
        for raw in rows:
            data = dict(zip(columns, raw, strict=False))
            model_id = data.get("id")
            name = data.get("name")
            where = f"row id {model_id!r}" + (f" (model {_text_of(name)})" if isinstance(name, str) else "")
            if isinstance(model_id, bool) or not isinstance(model_id, int):
                raise self._refuse("models", where, "id", f"holds {_text_of(model_id)}, not a whole number")
            values: dict[str, Any] = {}
            for column, value in data.items():
                if column == "id" or value is None:
                    continue
                self._check_size("models", where, column, value)
                if column == "custom_params":
                    try:
                        values[column] = json.loads(value) if isinstance(value, str) else value
                    except ValueError:
                        raise self._refuse(
                            "models", where, column, f"holds {_text_of(value)}, which is not JSON"
                        ) from None
                    continue
                field = fields[column]
                values[column] = field.python_value(value) if column in _PARAM_COLUMNS else value
            values.setdefault("type", "unknown")
            values.setdefault("status", "stopped")
            try:
                checked = checks.model_row(values, partial=False)
            except DatabaseError as exc:
                column = self._culprit(values)
                problem = str(exc)
                raise self._refuse("models", where, column, f"is refused: {problem}") from None
            checked["id"] = model_id
            yield checked

    @staticmethod
    def _culprit(values: dict[str, Any]) -> str:
        for column in ("name", "type", "status"):
            if column not in values:
                return column
        for column, value in values.items():
            try:
                checks.model_row({column: value}, partial=True)
            except DatabaseError:
                return column
        return "(several)"

    def activity(self, table: str) -> Iterator[tuple[list[str], tuple[Any, ...]]]:
        """(columns, row) of an activity table (:data:`ACTIVITY_TABLES`), each cell checked as input.

        A ``requests`` or ``instance_samples`` row needs a whole-number ``id``, its time and
        ``model`` (and a request its ``status``); a ``daily_totals`` row its ``day`` and ``model``.
        """
        label = ACTIVITY_TABLES[table]
        required = _ACTIVITY_REQUIRED[table]
        columns, rows = self._select(table)
        missing = [c for c in required if c not in columns]
        for raw in rows:
            data = dict(zip(columns, raw, strict=False))
            if "id" in columns:
                where = f"row id {_text_of(data['id'])}"
            else:
                where = f"the row of {_text_of(data.get('day'))} and model {_text_of(data.get('model'))}"
            if missing:
                raise self._refuse(table, where, missing[0], "is missing")
            checked: list[Any] = []
            for column, value in data.items():
                self._check_size(table, where, column, value)
                if column == "id":
                    if isinstance(value, bool) or not isinstance(value, int):
                        raise self._refuse(table, where, "id", f"holds {_text_of(value)}, not a whole number")
                    checked.append(value)
                    continue
                if value is None and column in required:
                    raise self._refuse(table, where, column, "is empty (NULL); every row needs one")
                try:
                    cell = checks.activity_value(label, column, value)
                except DatabaseError as exc:
                    raise self._refuse(table, where, column, f"holds {_text_of(value)}: {exc}") from None
                if cell is None and table == "daily_totals":
                    cell = 0  # a total the file left empty counted nothing
                checked.append(cell)
            yield columns, tuple(checked)

    def metadata(self) -> Iterator[tuple[str, str, int | None]]:
        """(key, value, updated_at) of ``metadata``: text keys and values, times in ms or NULL."""
        columns, rows = self._select("metadata")
        for raw in rows:
            data = dict(zip(columns, raw, strict=False))
            key, value, updated = data.get("key"), data.get("value"), data.get("updated_at")
            where = f"the row of key {_text_of(key)}"
            if not isinstance(key, str) or not key.strip():
                raise self._refuse("metadata", where, "key", f"holds {_text_of(key)}, not a non-empty text")
            self._check_size("metadata", where, "key", key)
            self._check_size("metadata", where, "value", value)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                raise self._refuse("metadata", where, "value", f"holds {_text_of(value)}, not text")
            if updated is not None and (isinstance(updated, bool) or not isinstance(updated, int)):
                raise self._refuse(
                    "metadata", where, "updated_at", f"holds {_text_of(updated)}, not a whole number"
                )
            yield key, value, updated


_PARAM_COLUMNS = frozenset(f.column_name for f in ModelConfig._meta.sorted_fields) - set(META_COLUMNS)
#: The activity tables an import copies, with how a message names one of their rows.
ACTIVITY_TABLES: dict[str, str] = {
    "requests": "request",
    "instance_samples": "instance sample",
    "daily_totals": "daily total",
}
_ACTIVITY_REQUIRED: dict[str, tuple[str, ...]] = {
    "requests": ("id", "finished_at", "model", "status"),
    "instance_samples": ("id", "timestamp", "model"),
    "daily_totals": DAILY_TOTAL_COLUMNS[:2],
}


def _backup_name(db_path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = db_path.with_name(f"{db_path.name}.bak-{stamp}")
    number = 2
    while candidate.exists():
        candidate = db_path.with_name(f"{db_path.name}.bak-{stamp}-{number}")
        number += 1
    return candidate


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _machine_rows(database: api.Database) -> list[tuple[str, str, int | None]]:
    """This computer's settings in the open database (see :data:`MACHINE_METADATA_KEYS`)."""
    try:
        rows = (
            database.db.thread_connection().execute("SELECT key, value, updated_at FROM metadata").fetchall()
        )
    except SQL_ERRORS as exc:
        raise DatabaseError(f"could not read the current settings: {exc}") from exc
    return [(k, v, u) for k, v, u in rows if isinstance(k, str) and is_machine_key(k)]


#: Tables of this computer that an import keeps as they are and never takes from the file: the RPC
#: workers (a local one is a program this computer runs, bound to its network; a remote one is a
#: machine this computer's network reaches) and what llama-bench measured on this computer.
MACHINE_TABLES: tuple[str, ...] = ("workers", "bench_results")


def _machine_tables(database: api.Database) -> list[tuple[str, list[str], list[tuple[Any, ...]]]]:
    """The rows of :data:`MACHINE_TABLES` in the open database: (table, columns, rows)."""
    kept = []
    conn = database.db.thread_connection()
    for table in MACHINE_TABLES:
        try:
            cursor = conn.execute(f'SELECT * FROM "{table}"')
        except SQL_ERRORS as exc:
            raise DatabaseError(f"could not read the current {table}: {exc}") from exc
        kept.append((table, [d[0] for d in cursor.description], cursor.fetchall()))
    return kept


def _insert_sql(table: str, columns: list[str] | tuple[str, ...]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" for _ in columns)})'


def _copy_rows(
    reader: _RowReader, conn: sqlite3.Connection, machine_rows: list[tuple[str, str, int | None]] | None
) -> None:
    """Copy the checked rows into the staging database (our tables, created by our DDL)."""
    metrics_sql = ""
    batch: list[tuple[Any, ...]] = []
    for columns, row in reader.metrics():
        if not metrics_sql:
            metrics_sql = _insert_sql("metrics_history", columns)
        batch.append(row)
        if len(batch) >= 5000:
            conn.executemany(metrics_sql, batch)
            batch = []
    if batch:
        conn.executemany(metrics_sql, batch)
    fields = ModelConfig._meta.columns
    model_sql = _insert_sql("models", MODEL_COLUMNS)
    models: list[tuple[Any, ...]] = []
    for model in reader.models():
        models.append(tuple(fields[c].db_value(model.get(c)) for c in MODEL_COLUMNS))
        if len(models) >= 2000:
            conn.executemany(model_sql, models)
            models = []
    if models:
        conn.executemany(model_sql, models)
    for table in ACTIVITY_TABLES:
        activity_sql = ""
        batch = []
        for columns, row in reader.activity(table):
            if not activity_sql:
                activity_sql = _insert_sql(table, columns)
            batch.append(row)
            if len(batch) >= 5000:
                conn.executemany(activity_sql, batch)
                batch = []
        if batch:
            conn.executemany(activity_sql, batch)
    metadata_sql = _insert_sql("metadata", ("key", "value", "updated_at"))
    seen: set[str] = set()
    for key, value, updated in reader.metadata():
        if (is_machine_key(key) and machine_rows is not None) or key in seen:
            continue  # this computer's own settings stay as they are (below)
        seen.add(key)
        conn.execute(metadata_sql, (key, value, updated))
    for key, value, updated in machine_rows or ():
        if key not in seen:
            conn.execute(metadata_sql, (key, value, updated))


def _stage(
    source: Path,
    staging: Path,
    info: dict[str, Any],
    machine_rows: list[tuple[str, str, int | None]] | None,
    machine_tables: list[tuple[str, list[str], list[tuple[Any, ...]]]] | tuple[()] = (),
) -> None:
    """Build ``staging``: our DDL, then the checked rows of ``source`` (which is only read).

    ``machine_rows``: this computer's settings, which replace the file's (None: the file's
    metadata is not wanted at all, only its models and metrics). ``machine_tables``: this
    computer's rows of :data:`MACHINE_TABLES` (its RPC workers), put in instead of the file's.
    """
    create_database_file(staging)  # private, incremental auto-vacuum, WAL
    staged = make_database(staging)
    try:
        src = open_readonly(source)
        try:
            with staged.atomic("IMMEDIATE"):
                for model in ALL_MODELS:  # tables only: the indexes come after the upgrade's renames
                    peewee.SchemaManager(model, database=staged).create_table(safe=False)
                _copy_rows(_RowReader(src, source, info), staged.thread_connection(), machine_rows)
                for table, columns, rows in machine_tables:
                    staged.thread_connection().executemany(_insert_sql(table, columns), rows)
        finally:
            src.close()
        upgrade_schema(staged, now_ms())
        problems = [row[0] for row in run_sql(staged, "PRAGMA quick_check(5)").fetchall()]
        if problems != ["ok"]:
            raise DatabaseFileError(f"{source} is damaged: {'; '.join(problems)}")
    except peewee.PeeweeException as exc:
        raise DatabaseFileError(f"{source} could not be imported: {exc}") from exc
    finally:
        staged.close_all()


def import_database(path: str | os.PathLike[str]) -> Path:
    """Replace the database with the data of ``path``; returns the backup of the replaced one.

    Only data comes in (see the module's description): the rows of our tables, checked as
    input, in tables built by llamadash; this computer's own settings
    (:data:`MACHINE_METADATA_KEYS`) keep their current values. The staged copy is upgraded to the
    current schema; the current database is kept as ``<db>.bak-<timestamp>`` beside it and the
    staged file is renamed into place. On any failure the current database stays as it was.
    Afterwards every API call works on the imported content.

    Raises:
        DatabaseFileError: the file cannot be imported (the message says why; a bad value is
            named by table, column and row).
        SchemaVersionError: the file was written by a newer llamadash.
        DatabaseError: the replacement failed (the previous database has been put back).
    """
    source = Path(path).expanduser().absolute()
    database = api.current()
    with database.lock:
        db_path = database.path
        if _same_file(source, db_path):
            raise DatabaseFileError(f"{source} is the database in use; there is nothing to import")
        info = probe_file(source, for_import=True, check_integrity=True)
        machine_rows = _machine_rows(database)
        machine_tables = _machine_tables(database)
        # The pid in the name tells a later start that this file is not stale while we live.
        fd, name = tempfile.mkstemp(prefix=staging_prefix(db_path), suffix=".tmp", dir=db_path.parent)
        os.close(fd)
        staging = Path(name)
        try:
            try:
                _stage(source, staging, info, machine_rows, machine_tables)
            except sqlite3.Error as exc:
                raise DatabaseFileError(f"{source} could not be read: {exc}") from exc
            return _swap_in(database, staging)
        finally:
            _remove_quietly(staging, *_companions(staging))


def read_database_models(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The models a database file holds, as :func:`get_models` gives them; changes nothing.

    For "merge models" imports: the file is validated like an import (each row checked as input)
    and read through an upgraded temporary copy, so a seed-format or older llamadash file gives
    current model dicts.

    Raises:
        DatabaseFileError: the file cannot be imported (the message says why).
        SchemaVersionError: the file was written by a newer llamadash.
    """
    source = Path(path).expanduser().absolute()
    info = probe_file(source, for_import=True, check_integrity=True)
    with tempfile.TemporaryDirectory(prefix="llamadash-read-") as folder:
        staging = Path(folder) / "models.db"
        try:
            _stage(source, staging, info, None)
            conn = sqlite3.connect(staging)
            try:
                rows = conn.execute(
                    f"SELECT {', '.join(chr(34) + c + chr(34) for c in MODEL_COLUMNS)} FROM models "
                    "ORDER BY created_at, id"
                ).fetchall()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise DatabaseFileError(f"{source} could not be read: {exc}") from exc
    fields = [ModelConfig._meta.columns[c] for c in MODEL_COLUMNS]
    return [{f.column_name: f.python_value(v) for f, v in zip(fields, row, strict=True)} for row in rows]


def _swap_in(database: api.Database, staging: Path) -> Path:
    """Put ``staging`` in the place of the database's file and reopen it; the caller holds its lock."""
    db_path = database.path
    backup = _backup_name(db_path)
    database.disconnect_locked()
    wal = Path(f"{db_path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        # Another process still has the database open (our last close would have emptied the WAL).
        database.connect_locked()
        raise DatabaseError(f"{db_path} is in use by another program; close it and import again")
    try:
        _link_or_copy(db_path, backup)
    except OSError as exc:
        _remove_quietly(backup)
        database.connect_locked()
        raise DatabaseError(
            f"could not keep a copy of the current database ({exc}); nothing was imported"
        ) from exc
    try:
        _remove_quietly(*_companions(db_path))
        os.replace(staging, db_path)
        database.connect_locked()
    except BaseException as exc:
        _restore(database, backup, exc)
        if isinstance(exc, Exception) and not isinstance(exc, DatabaseError):
            raise DatabaseError(f"the import failed and the previous database was put back: {exc}") from exc
        raise
    return backup


def _restore(database: api.Database, backup: Path, cause: BaseException) -> None:
    db_path = database.path
    database.disconnect_locked()
    if backup.exists():  # it is whole: a failed copy is removed before the swap starts
        fd, name = tempfile.mkstemp(prefix=f".{db_path.name}.restore-", suffix=".tmp", dir=db_path.parent)
        os.close(fd)
        try:
            shutil.copyfile(backup, name)
            _remove_quietly(*_companions(db_path))
            os.replace(name, db_path)
        finally:
            _remove_quietly(Path(name))
    try:
        database.connect_locked()
    except DatabaseError as exc:
        raise DatabaseError(
            f"the import failed ({cause}) and the previous database could not be reopened ({exc}); "
            f"a copy of it is {backup}"
        ) from cause
