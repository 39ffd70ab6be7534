"""Recognising database files and upgrading them to :data:`SCHEMA_VERSION`.

Two halves:

* :func:`probe_file` looks at a file *without changing it* (read-only, and ``immutable`` when no
  ``-wal`` file is beside it, so not even a ``-shm`` file appears): is it SQLite, is it whole, is it
  ours, which version. It runs before a file is opened as the database and before an import.
* :func:`upgrade_schema` brings an open database to the current schema with Peewee's
  ``SqliteMigrator``: creates missing tables, adds missing columns (including parameter columns
  that a newer ``schema.toml`` added), renames duplicate model names ``"name (2)"`` so the name
  index can be unique, replaces indexes whose definition differs (the seed's non-unique
  ``idx_models_name``), creates missing indexes, turns second-valued times of a seed database
  into milliseconds, moves per-model auto-restart from the metadata keys ``autorestart:<name>``
  (version 2) onto the rows of those names (version 3), drops triggers (llamadash defines none;
  one can only come from an import made before imports took data only, or another program) and
  records ``db_version``. It runs in one
  transaction; a database from the seed (auto_vacuum off) is then VACUUMed once so that
  incremental auto-vacuum takes effect.

The same upgrade runs on imported files (in a staging copy, before they replace anything).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import struct
import time
from pathlib import Path
from typing import Any

import peewee
from playhouse.migrate import SqliteMigrator, migrate

from llamadash.core.db.connection import run_sql
from llamadash.core.db.errors import DatabaseFileError, SchemaVersionError
from llamadash.core.db.models import (
    ALL_MODELS,
    AUTO_RESTART_COLUMN,
    IDENTITY_TABLES,
    REQUIRED_COLUMNS,
    SCHEMA_VERSION,
    SEED_SCHEMA_VERSION,
    TABLE_NAMES,
    BaseModel,
)

log = logging.getLogger(__name__)

_SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100
#: A WAL file this long or shorter holds no frame (its header is 32 bytes).
_WAL_HEADER_SIZE = 32
#: What a NOT NULL column gets when an old table lacks it and rows are already there.
_FILL_FOR_MISSING: dict[str, Any] = {
    "type": "unknown",
    "status": "stopped",
    "value": "",
    AUTO_RESTART_COLUMN: 0,
}
#: The metadata keys that held per-model auto-restart before version 3 (``"1"``/``"0"`` after
#: the prefix and the model's name); the upgrade moves them onto the models' rows.
AUTORESTART_KEY_PREFIX = "autorestart:"
#: The version whose upgrade moves those keys.
_AUTO_RESTART_ON_ROWS_VERSION = 3
_AUTO_VACUUM_INCREMENTAL = 2
#: Time columns the seed does not say are milliseconds (``metrics_history.timestamp`` it does).
_SEED_TIME_COLUMNS = (
    ("metrics_history", "created_at"),
    ("models", "created_at"),
    ("models", "updated_at"),
    ("metadata", "updated_at"),
)


# ------------------------------------------------------------------------------------------------
# probing files
def readonly_uri(path: Path) -> str:
    """A SQLite URI that opens ``path`` without writing anything next to it.

    ``immutable=1`` when there is no ``-wal`` file (nothing can be pending); otherwise plain
    read-only so that the WAL content is read too.
    """
    uri = path.absolute().as_uri()
    if Path(f"{path}-wal").exists():
        return uri + "?mode=ro"
    return uri + "?mode=ro&immutable=1"


def _wal_holds_frames(path: Path) -> bool:
    """Whether a write-ahead log beside ``path`` holds frames (pages not yet in the main file)."""
    try:
        return Path(f"{path}-wal").stat().st_size > _WAL_HEADER_SIZE
    except OSError:
        return False


def _check_header(path: Path) -> tuple[int, str | None]:
    """Check the file is a whole SQLite database file.

    Returns:
        Its size in bytes, and None, or a description of what the main file lacks when the
        write-ahead log beside it may hold it (a checkpoint that was interrupted, a disk that filled
        up): then only SQLite can tell, and the caller asks it (``quick_check``).
    """
    if not path.exists():
        raise DatabaseFileError(f"{path} does not exist")
    if not path.is_file():
        raise DatabaseFileError(f"{path} is not a file")
    size = path.stat().st_size
    if size == 0:
        raise DatabaseFileError(f"{path} is empty (0 bytes); it is not a llamadash database")
    with open(path, "rb") as handle:
        header = handle.read(_HEADER_SIZE)
    if not (_SQLITE_MAGIC.startswith(header) or header.startswith(_SQLITE_MAGIC)):
        raise DatabaseFileError(f"{path} is not a SQLite database (it does not start with the SQLite header)")
    if len(header) < _HEADER_SIZE:
        raise DatabaseFileError(f"{path} is truncated: it holds only {size} bytes of a SQLite database")
    (page_size,) = struct.unpack(">H", header[16:18])
    page_size = 65536 if page_size == 1 else page_size
    change_counter, page_count = struct.unpack(">II", header[24:32])
    (valid_for,) = struct.unpack(">I", header[92:96])
    if page_size < 512 or page_size & (page_size - 1):
        raise DatabaseFileError(f"{path} is damaged: its header gives an impossible page size {page_size}")
    header_bytes = page_count * page_size if valid_for == change_counter else 0
    if size < header_bytes:
        shortfall = f"its header says {header_bytes} bytes but the file holds only {size}"
    elif size % page_size:
        shortfall = f"its size ({size} bytes) is not a whole number of {page_size}-byte pages"
    else:
        return size, None
    if _wal_holds_frames(path):
        # A checkpoint copies pages from the WAL in page order, page 1 (the header) first: one
        # that was killed, or ran out of disk, leaves a short file whose pages the WAL still holds.
        return size, shortfall
    if size < header_bytes:
        raise DatabaseFileError(f"{path} is truncated: {shortfall}")
    raise DatabaseFileError(f"{path} is truncated or damaged: {shortfall}")


def _parse_version(raw: Any, path: Path) -> int:
    try:
        version = int(str(raw).strip())
    except ValueError:
        raise DatabaseFileError(f"{path} has an unreadable db_version {raw!r} in its metadata") from None
    if version < 1:
        raise DatabaseFileError(f"{path} has an impossible db_version {version}")
    return version


def _newer_version_error(path: Path, version: int) -> SchemaVersionError:
    return SchemaVersionError(
        f"{path} was written by a newer llamadash (database version {version}; this llamadash "
        f"understands up to version {SCHEMA_VERSION}). Update llamadash, or use another data "
        f"directory or file; the file was not changed."
    )


def open_readonly(path: Path) -> sqlite3.Connection:
    """A connection that reads ``path`` and nothing more: no writes, and nothing in the file runs.

    ``trusted_schema = OFF``: a view, trigger, default or generated column of the file may use
    no function that has side effects. (llamadash reads only the columns of its own tables; it
    never selects from a view nor writes, so a trigger never fires.)
    """
    conn = sqlite3.connect(readonly_uri(path), uri=True)
    try:
        conn.execute("PRAGMA trusted_schema = OFF")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def probe_file(path: Path, *, for_import: bool, check_integrity: bool) -> dict[str, Any]:
    """Describe a database file without changing it.

    Args:
        path: the file.
        for_import: a file to import must hold llamadash data; when False (the file is about to
            be opened as the database) an empty file or a SQLite file without tables counts as a
            new database (``db_version`` None).
        check_integrity: also run ``PRAGMA quick_check`` (reads every page). It runs anyway when
            the main file is shorter than its header says and a write-ahead log beside it may
            hold the rest (an interrupted checkpoint): SQLite decides whether the pages are there.

    Returns:
        ``path``, ``size`` (bytes), ``db_version`` (None for a new database), ``needs_upgrade``,
        ``tables`` (all table names), ``model_count`` (also as ``models``), ``model_names`` (by
        id), ``metrics_rows``, ``foreign_objects`` (what in the file is not llamadash's and an
        import leaves out: triggers, views, virtual and other tables, indexes, unknown columns;
        one phrase each, e.g. ``"trigger evil (on metrics_history)"``) and ``columns`` (our
        tables' columns the file has that llamadash knows).

    Raises:
        DatabaseFileError: the file is missing, empty (import only), not SQLite, truncated, damaged
            or another application's database, or one of our tables is a view or virtual table.
        SchemaVersionError: the file was written by a newer llamadash.
    """
    path = Path(path)
    empty: dict[str, Any] = {
        "path": str(path),
        "size": 0,
        "db_version": None,
        "needs_upgrade": False,
        "tables": [],
        "model_count": 0,
        "models": 0,
        "model_names": [],
        "metrics_rows": 0,
        "foreign_objects": [],
        "columns": {},
    }
    if not for_import and path.is_file() and path.stat().st_size == 0:
        return empty
    size, shortfall = _check_header(path)
    try:
        conn = open_readonly(path)
    except sqlite3.Error as exc:
        raise DatabaseFileError(f"{path} cannot be opened: {exc}") from None
    try:
        if shortfall is not None:
            _check_pages_in_wal(conn, path, shortfall)
            check_integrity = False  # just done
        return _describe(conn, path, size, for_import=for_import, check_integrity=check_integrity)
    except sqlite3.DatabaseError as exc:
        raise DatabaseFileError(f"{path} is damaged or not a SQLite database: {exc}") from None
    finally:
        conn.close()


def _check_pages_in_wal(conn: sqlite3.Connection, path: Path, shortfall: str) -> None:
    try:
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as exc:
        problems = [str(exc)]
    if problems != ["ok"]:
        raise DatabaseFileError(
            f"{path} is truncated: {shortfall}, and its write-ahead log {path}-wal does not hold "
            f"the missing pages ({'; '.join(problems)})"
        )


def _our_index_names() -> frozenset[str]:
    return frozenset(index._name for model in ALL_MODELS for index in model._meta.indexes)


def _known_columns() -> dict[str, frozenset[str]]:
    return {m._meta.table_name: frozenset(f.column_name for f in m._meta.sorted_fields) for m in ALL_MODELS}


def _inventory(conn: sqlite3.Connection, path: Path) -> tuple[list[str], dict[str, list[str]]]:
    """What in the file is not ours (one phrase each), and the known columns of our tables.

    Raises:
        DatabaseFileError: one of our tables is a view or a virtual table.
    """
    entries = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    for kind, name, _table, sql in entries:
        if name in TABLE_NAMES and (kind == "view" or _is_virtual(kind, sql)):
            what = "a view" if kind == "view" else "a virtual table"
            raise DatabaseFileError(
                f"{path} cannot be used: its {name} is {what}, not a table. A llamadash database "
                f"holds its {name} in a table; this file was made or changed by another program"
            )
    virtual = sorted(name for kind, name, _t, sql in entries if _is_virtual(kind, sql))
    ours_indexes = _our_index_names()
    known = _known_columns()
    foreign: list[str] = []
    columns: dict[str, list[str]] = {}
    for kind, name, table, sql in sorted(entries, key=lambda e: (e[0], e[1])):
        if name.startswith("sqlite_"):
            continue  # SQLite's own: autoindexes, sqlite_sequence, statistics
        if kind == "table" and name in TABLE_NAMES:
            have = [row for row in conn.execute(f"PRAGMA table_xinfo({_quoted(name)})")]
            columns[name] = [row[1] for row in have if row[1] in known[name] and not row[6]]
            for row in have:
                if row[1] not in known[name]:
                    foreign.append(f"column {name}.{row[1]}")
                elif row[6]:
                    foreign.append(f"column {name}.{row[1]} (computed by the file, not stored data)")
            continue
        if kind == "index" and table in TABLE_NAMES and name in ours_indexes:
            continue
        if kind == "table":
            if _is_virtual(kind, sql):
                module = _virtual_module(sql)
                parts = [t for t in _all_tables(entries) if _is_shadow(t, name)]
                with_parts = f", with its {len(parts)} table(s)" if parts else ""
                foreign.append(f"virtual table {name} ({module}{with_parts})")
            elif not any(_is_shadow(name, v) for v in virtual):
                foreign.append(f"table {name}")
        elif kind == "view":
            foreign.append(f"view {name}")
        elif kind == "trigger":
            foreign.append(f"trigger {name} (on {table})")
        elif kind == "index":
            foreign.append(f"index {name} (on {table})")
        else:
            foreign.append(f"{kind} {name}")
    return foreign, columns


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_VIRTUAL_SQL = re.compile(r"\s*CREATE\s+VIRTUAL\s+TABLE\b", re.IGNORECASE)
_VIRTUAL_MODULE = re.compile(r"\bUSING\s+([A-Za-z0-9_]+)", re.IGNORECASE)


def _is_virtual(kind: str, sql: str | None) -> bool:
    return kind == "table" and bool(sql) and _VIRTUAL_SQL.match(sql or "") is not None


def _virtual_module(sql: str) -> str:
    match = _VIRTUAL_MODULE.search(sql)
    return match.group(1) if match else "unknown module"


def _all_tables(entries: list[tuple[str, str, str, str | None]]) -> list[str]:
    return [name for kind, name, _t, sql in entries if kind == "table" and not _is_virtual(kind, sql)]


def _is_shadow(table: str, virtual: str) -> bool:
    return table.startswith(virtual + "_")


def _describe(
    conn: sqlite3.Connection, path: Path, size: int, *, for_import: bool, check_integrity: bool
) -> dict[str, Any]:
    tables = sorted(
        row[0]
        for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not row[0].startswith("sqlite_")
    )
    foreign, known_columns = _inventory(conn, path)
    columns = {
        name: {row[1] for row in conn.execute(f'PRAGMA table_info("{name}")')}
        for name in TABLE_NAMES
        if name in tables
    }
    info: dict[str, Any] = {
        "path": str(path),
        "size": size,
        "db_version": None,
        "needs_upgrade": False,
        "tables": tables,
        "model_count": 0,
        "models": 0,
        "model_names": [],
        "metrics_rows": 0,
        "foreign_objects": foreign,
        "columns": known_columns,
    }
    if not tables and not for_import:
        return info  # a SQLite file without tables: a new database
    if not any(name in columns for name in IDENTITY_TABLES):
        held = f"it holds the tables {', '.join(tables)}" if tables else "it holds no tables"
        raise DatabaseFileError(
            f"{path} is a SQLite database but not a llamadash database: it has no models or "
            f"metrics_history table ({held})"
        )
    for name, have in columns.items():
        lacking = REQUIRED_COLUMNS[name] - have
        if lacking:
            raise DatabaseFileError(
                f"{path} is not a llamadash database: its {name} table lacks the column(s) "
                f"{', '.join(sorted(lacking))}"
            )
    version = SEED_SCHEMA_VERSION
    if "metadata" in columns:
        row = conn.execute("SELECT value FROM metadata WHERE key = 'db_version'").fetchone()
        if row is not None:
            version = _parse_version(row[0], path)
    if version > SCHEMA_VERSION:
        raise _newer_version_error(path, version)
    if check_integrity:
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise DatabaseFileError(f"{path} is damaged: {'; '.join(problems)}")
    info["db_version"] = version
    info["needs_upgrade"] = version < SCHEMA_VERSION or _lacks_schema_parts(columns)
    if "models" in columns:
        names = [row[0] for row in conn.execute("SELECT name FROM models ORDER BY id")]
        info["model_count"] = info["models"] = len(names)
        info["model_names"] = names
    if "metrics_history" in columns:
        info["metrics_rows"] = conn.execute("SELECT count(*) FROM metrics_history").fetchone()[0]
    return info


def _lacks_schema_parts(columns: dict[str, set[str]]) -> bool:
    for model in ALL_MODELS:
        have = columns.get(model._meta.table_name)
        if have is None or any(f.column_name not in have for f in model._meta.sorted_fields):
            return True
    return False


# ------------------------------------------------------------------------------------------------
# upgrading an open database
def stored_version(db: peewee.SqliteDatabase) -> int | None:
    """``db_version`` of an open database; None when it has none of our tables (a new database)."""
    tables = set(db.get_tables())
    if not tables.intersection(TABLE_NAMES):
        return None
    if "metadata" in tables:
        row = run_sql(db, "SELECT value FROM metadata WHERE key = 'db_version'").fetchone()
        if row is not None:
            return _parse_version(row[0], Path(db.database))
    return SEED_SCHEMA_VERSION


def upgrade_schema(db: peewee.SqliteDatabase, now_ms: int) -> int | None:
    """Bring ``db`` to :data:`SCHEMA_VERSION`; returns the version it had (None: it was new).

    A database that is already current is not written to at all.

    Raises:
        SchemaVersionError: the database is newer than this llamadash (nothing is changed).
    """
    before = stored_version(db)
    if before is not None and before > SCHEMA_VERSION:
        raise _newer_version_error(Path(db.database), before)
    migrator = SqliteMigrator(db)
    with db.atomic("IMMEDIATE"):
        tables = set(db.get_tables())
        for model in ALL_MODELS:
            _create_or_extend_table(db, migrator, model, tables)
        if before == SEED_SCHEMA_VERSION:
            _seconds_to_milliseconds(db)
        _fill_metrics_created_at(db)
        renamed = _rename_duplicate_model_names(db)
        if before is not None and before < _AUTO_RESTART_ON_ROWS_VERSION:
            _move_autorestart_to_rows(db)
        triggers = _drop_triggers(db)
        for model in ALL_MODELS:
            _replace_changed_indexes(db, migrator, model)
            peewee.SchemaManager(model, database=db).create_indexes(safe=True)
        if before != SCHEMA_VERSION:
            _write_version(db, now_ms)
    if renamed:
        log.warning("renamed duplicate model names so that names are unique: %s", renamed)
    if triggers:
        log.warning(
            "dropped trigger(s) that llamadash did not make (an import of an older llamadash "
            "or another program put them there): %s",
            ", ".join(triggers),
        )
    if db.pragma("auto_vacuum") != _AUTO_VACUUM_INCREMENTAL:
        # Only a VACUUM turns auto-vacuum on in a database that already has tables.
        run_sql(db, "PRAGMA auto_vacuum = INCREMENTAL")
        run_sql(db, "VACUUM")
    return before


def _drop_triggers(db: peewee.SqliteDatabase) -> list[str]:
    # llamadash defines no trigger: one in its database was put there by a file imported before
    # imports took data only, or by another program, and would run on our writes.
    names = [row[0] for row in run_sql(db, "SELECT name FROM sqlite_master WHERE type = 'trigger'")]
    for name in names:
        run_sql(db, f"DROP TRIGGER IF EXISTS {_quoted(name)}")
    return names


def _create_or_extend_table(
    db: peewee.SqliteDatabase, migrator: SqliteMigrator, model: type[BaseModel], tables: set[str]
) -> None:
    table = model._meta.table_name
    if table not in tables:
        peewee.SchemaManager(model, database=db).create_table(safe=True)
        return
    have = {column.name for column in db.get_columns(table)}
    operations = []
    fills = []
    for field in model._meta.sorted_fields:
        if field.column_name in have:
            continue
        added = field.clone()
        if not added.null:
            # An existing table cannot gain a NOT NULL column without a rebuild; add it nullable
            # and give the rows present a value.
            added.null = True
            fills.append(field.column_name)
        operations.append(migrator.add_column(table, field.column_name, added))
    if operations:
        log.info("adding %d column(s) to %s", len(operations), table)
        migrate(*operations)
    for column in fills:
        run_sql(
            db,
            f'UPDATE "{table}" SET "{column}" = ? WHERE "{column}" IS NULL',
            (_FILL_FOR_MISSING.get(column, ""),),
        )


def _seconds_to_milliseconds(db: peewee.SqliteDatabase) -> None:
    # The seed documents `timestamp` as milliseconds but the other times only as "Unix
    # timestamp"; a value below 1e11 cannot be milliseconds of a real date (1e11 ms is March
    # 1973) and is taken as seconds.
    for table, column in _SEED_TIME_COLUMNS:
        run_sql(
            db,
            f'UPDATE "{table}" SET "{column}" = "{column}" * 1000 '
            f"WHERE typeof(\"{column}\") IN ('integer', 'real') AND \"{column}\" BETWEEN 1 AND 99999999999",
        )


def _fill_metrics_created_at(db: peewee.SqliteDatabase) -> None:
    # Retention deletes by created_at; a row without one (a foreign writer) would never expire.
    run_sql(db, "UPDATE metrics_history SET created_at = COALESCE(timestamp, 0) WHERE created_at IS NULL")


def _rename_duplicate_model_names(db: peewee.SqliteDatabase) -> list[tuple[str, str]]:
    rows = run_sql(db, "SELECT id, name FROM models ORDER BY id").fetchall()
    taken = {name for _, name in rows}
    seen: set[str] = set()
    renamed: list[tuple[str, str]] = []
    for row_id, name in rows:
        if name not in seen:
            seen.add(name)
            continue
        number = 2
        while f"{name} ({number})" in taken:
            number += 1
        new_name = f"{name} ({number})"
        taken.add(new_name)
        seen.add(new_name)
        run_sql(db, "UPDATE models SET name = ? WHERE id = ?", (new_name, row_id))
        renamed.append((name, new_name))
    return renamed


def _move_autorestart_to_rows(db: peewee.SqliteDatabase) -> None:
    # Keyed by name, the setting followed a name, not a model: a renamed model lost it and a new
    # model given the old name inherited it. On the row it stays with the model. A key whose
    # model is gone is dropped with the others.
    prefix = AUTORESTART_KEY_PREFIX
    rows = run_sql(
        db, "SELECT key, value FROM metadata WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
    ).fetchall()
    for key, value in rows:
        enabled = 1 if str(value).strip() == "1" else 0
        run_sql(
            db, f'UPDATE models SET "{AUTO_RESTART_COLUMN}" = ? WHERE name = ?', (enabled, key[len(prefix) :])
        )
    run_sql(db, "DELETE FROM metadata WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))
    if rows:
        log.info("moved auto-restart of %d model name(s) from metadata onto the models' rows", len(rows))


def _replace_changed_indexes(
    db: peewee.SqliteDatabase, migrator: SqliteMigrator, model: type[BaseModel]
) -> None:
    table = model._meta.table_name
    existing = {index.name: index for index in db.get_indexes(table)}
    drops = []
    for wanted in model._meta.indexes:
        have = existing.get(wanted._name)
        if have is None:
            continue
        columns = [expr.column_name for expr in wanted._expressions]
        if list(have.columns) != columns or bool(have.unique) != bool(wanted._unique):
            drops.append(migrator.drop_index(table, wanted._name))
    if drops:
        migrate(*drops)


def _write_version(db: peewee.SqliteDatabase, now_ms: int) -> None:
    cursor = run_sql(
        db,
        "UPDATE metadata SET value = ?, updated_at = ? WHERE key = 'db_version'",
        (str(SCHEMA_VERSION), now_ms),
    )
    if cursor.rowcount == 0:
        run_sql(
            db,
            "INSERT INTO metadata (key, value, updated_at) VALUES ('db_version', ?, ?)",
            (str(SCHEMA_VERSION), now_ms),
        )


def file_mode_private(path: Path) -> None:
    """Make ``path`` and its ``-wal``/``-shm`` companions readable by their owner only (POSIX)."""
    if os.name != "posix":
        return
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            if candidate.exists() and (candidate.stat().st_mode & 0o777) != 0o600:
                os.chmod(candidate, 0o600)
        except OSError:  # a companion may vanish between the checks
            pass


# ------------------------------------------------------------------------------------------------
# staging files of imports
#: How an import's staging file beside the database is named: ``.<db>.import-<pid>-<random>.tmp``.
STAGING_INFIX = ".import-"
#: A staging file of a process that is still alive is stale all the same after this long (its
#: pid was reused), and so is an old-style one without a pid in its name.
STALE_STAGING_AFTER_S = 3600.0
_STAGING_PID = re.compile(r"^(\d+)-")


def staging_prefix(db_path: Path) -> str:
    """The name prefix of this process's import staging files for ``db_path``."""
    return f".{db_path.name}{STAGING_INFIX}{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists, under another user
    return True


def remove_stale_staging_files(db_path: Path, *, now: float | None = None) -> list[Path]:
    """Delete the staging files that killed imports left beside ``db_path``; returns them.

    A file is stale when the process named in it has ended (or when it is older than
    :data:`STALE_STAGING_AFTER_S`); one that a live import is writing stays. Never raises.
    """
    now = time.time() if now is None else now
    lead = f".{db_path.name}{STAGING_INFIX}"
    removed: list[Path] = []
    try:
        candidates = [p for p in db_path.parent.iterdir() if p.name.startswith(lead)]
    except OSError:
        return removed
    for candidate in candidates:
        rest = candidate.name[len(lead) :]
        base = rest
        for suffix in ("-wal", "-shm", "-journal"):
            base = base.removesuffix(suffix)
        if not base.endswith(".tmp"):
            continue
        match = _STAGING_PID.match(rest)
        try:
            age = now - candidate.stat().st_mtime
        except OSError:
            continue
        if match is not None and _pid_alive(int(match.group(1))) and age < STALE_STAGING_AFTER_S:
            continue
        if match is None and age < STALE_STAGING_AFTER_S:
            continue  # an old-style name: maybe an import of an older llamadash that is running
        with contextlib.suppress(OSError):
            candidate.unlink()
            removed.append(candidate)
    if removed:
        log.info("removed %d staging file(s) of interrupted imports: %s", len(removed), removed)
    return removed
