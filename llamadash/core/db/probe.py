"""Recognising database files without changing them: :func:`probe_file`.

:func:`probe_file` looks at a file read-only (and ``immutable`` when no ``-wal`` file is beside it,
so not even a ``-shm`` file appears): is it SQLite, is it whole, is it ours, which version, and what
in it is not llamadash's. It runs before a file is opened as the database and before an import;
:mod:`llamadash.core.db.migrations` then upgrades it.
"""

from __future__ import annotations

import re
import sqlite3
import struct
from pathlib import Path
from typing import Any

from llamadash.core.db.errors import DatabaseFileError, SchemaVersionError
from llamadash.core.db.models import (
    ALL_MODELS,
    IDENTITY_TABLES,
    REQUIRED_COLUMNS,
    SCHEMA_VERSION,
    SEED_SCHEMA_VERSION,
    TABLE_NAMES,
)

_SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100
#: A WAL file this long or shorter holds no frame (its header is 32 bytes).
_WAL_HEADER_SIZE = 32


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


def parse_version(raw: Any, path: Path) -> int:
    """A ``db_version`` value read from ``path``, checked."""
    try:
        version = int(str(raw).strip())
    except ValueError:
        raise DatabaseFileError(f"{path} has an unreadable db_version {raw!r} in its metadata") from None
    if version < 1:
        raise DatabaseFileError(f"{path} has an impossible db_version {version}")
    return version


def newer_version_error(path: Path, version: int) -> SchemaVersionError:
    """The error for a file of a newer llamadash (nothing is changed)."""
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
        id), ``metrics_rows``, ``request_rows``, ``foreign_objects`` (what in the file is not
        llamadash's and an import leaves out: triggers, views, virtual and other tables, indexes,
        unknown columns; one phrase each, e.g. ``"trigger evil (on metrics_history)"``) and
        ``columns`` (our tables' columns the file has that llamadash knows).

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
        "request_rows": 0,
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
            have = [row for row in conn.execute(f"PRAGMA table_xinfo({quoted_name(name)})")]
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


def quoted_name(name: str) -> str:
    """``name`` as an SQL identifier."""
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
        "request_rows": 0,
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
            version = parse_version(row[0], path)
    if version > SCHEMA_VERSION:
        raise newer_version_error(path, version)
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
    if "requests" in columns:
        info["request_rows"] = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
    return info


def _lacks_schema_parts(columns: dict[str, set[str]]) -> bool:
    for model in ALL_MODELS:
        have = columns.get(model._meta.table_name)
        if have is None or any(f.column_name not in have for f in model._meta.sorted_fields):
            return True
    return False
