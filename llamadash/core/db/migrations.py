"""Upgrading database files to :data:`SCHEMA_VERSION` (:mod:`llamadash.core.db.probe` recognises them).

* :func:`upgrade_schema` brings an open database to the current schema with Peewee's
  ``SqliteMigrator``: creates missing tables, adds missing columns (including parameter columns
  that a newer ``schema.toml`` added), renames duplicate model names ``"name (2)"`` so the name
  index can be unique, replaces indexes whose definition differs (the seed's non-unique
  ``idx_models_name``), creates missing indexes, turns second-valued times of a seed database
  into milliseconds, moves per-model auto-restart from the metadata keys ``autorestart:<name>``
  (version 2) onto the rows of those names (version 3), creates the activity tables
  ``requests``, ``instance_samples`` and ``daily_totals`` with their indexes (version 4; they
  start empty), drops triggers (llamadash defines none; one can only come from an import made
  before imports took data only, or another program) and records ``db_version``. It runs in one
  transaction; a database from the seed (auto_vacuum off) is then VACUUMed once so that
  incremental auto-vacuum takes effect.

The same upgrade runs on imported files (in a staging copy, before they replace anything), whose
staging files beside the database are named and cleaned up here too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import peewee

from llamadash.core.db.connection import run_sql
from llamadash.core.db.models import (
    ALL_MODELS,
    AUTO_RESTART_COLUMN,
    LOAD_ON_STARTUP_COLUMN,
    SCHEMA_VERSION,
    SEED_SCHEMA_VERSION,
    SERVED_COLUMN,
    TABLE_NAMES,
    BaseModel,
)
from llamadash.core.db.probe import newer_version_error, parse_version, quoted_name

log = logging.getLogger(__name__)

#: What a NOT NULL column gets when an old table lacks it and rows are already there.
_FILL_FOR_MISSING: dict[str, Any] = {
    "type": "unknown",
    "status": "stopped",
    "value": "",
    AUTO_RESTART_COLUMN: 0,
    SERVED_COLUMN: 1,
    LOAD_ON_STARTUP_COLUMN: 0,
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
# upgrading an open database
def stored_version(db: peewee.SqliteDatabase) -> int | None:
    """``db_version`` of an open database; None when it has none of our tables (a new database)."""
    tables = set(db.get_tables())
    if not tables.intersection(TABLE_NAMES):
        return None
    if "metadata" in tables:
        row = run_sql(db, "SELECT value FROM metadata WHERE key = 'db_version'").fetchone()
        if row is not None:
            return parse_version(row[0], Path(db.database))
    return SEED_SCHEMA_VERSION


def _migrate(db: peewee.SqliteDatabase, operations: Callable[[Any], list[Any]]) -> None:
    """Run ``operations(migrator)``'s changes: playhouse.migrate is imported only for a database that
    needs one (4 ms of every start on a 2-core machine, where a current database needs none)."""
    from playhouse.migrate import SqliteMigrator, migrate

    migrate(*operations(SqliteMigrator(db)))


def upgrade_schema(db: peewee.SqliteDatabase, now_ms: int) -> int | None:
    """Bring ``db`` to :data:`SCHEMA_VERSION`; returns the version it had (None: it was new).

    A database that is already current is not written to at all.

    Raises:
        SchemaVersionError: the database is newer than this llamadash (nothing is changed).
    """
    before = stored_version(db)
    if before is not None and before > SCHEMA_VERSION:
        raise newer_version_error(Path(db.database), before)
    with db.atomic("IMMEDIATE"):
        tables = set(db.get_tables())
        for model in ALL_MODELS:
            _create_or_extend_table(db, model, tables)
        if before == SEED_SCHEMA_VERSION:
            _seconds_to_milliseconds(db)
        _fill_metrics_created_at(db)
        renamed = _rename_duplicate_model_names(db)
        if before is not None and before < _AUTO_RESTART_ON_ROWS_VERSION:
            _move_autorestart_to_rows(db)
        triggers = _drop_triggers(db)
        for model in ALL_MODELS:
            _replace_changed_indexes(db, model)
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
        run_sql(db, f"DROP TRIGGER IF EXISTS {quoted_name(name)}")
    return names


def _create_or_extend_table(db: peewee.SqliteDatabase, model: type[BaseModel], tables: set[str]) -> None:
    table = model._meta.table_name
    if table not in tables:
        peewee.SchemaManager(model, database=db).create_table(safe=True)
        return
    have = {column.name for column in db.get_columns(table)}
    added_columns = []
    fills = []
    for field in model._meta.sorted_fields:
        if field.column_name in have:
            continue
        added = field.clone()
        if not added.null:
            # An existing table cannot gain a NOT NULL column without a rebuild; add it nullable
            # and give the rows present a value.
            added.null = True
            fills.append((field.column_name, 0 if isinstance(field, peewee.IntegerField) else ""))
        added_columns.append((field.column_name, added))
    if added_columns:
        log.info("adding %d column(s) to %s", len(added_columns), table)
        _migrate(db, lambda m: [m.add_column(table, name, added) for name, added in added_columns])
    for column, fallback in fills:
        run_sql(
            db,
            f'UPDATE "{table}" SET "{column}" = ? WHERE "{column}" IS NULL',
            (_FILL_FOR_MISSING.get(column, fallback),),
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


def _replace_changed_indexes(db: peewee.SqliteDatabase, model: type[BaseModel]) -> None:
    table = model._meta.table_name
    existing = {index.name: index for index in db.get_indexes(table)}
    drops = []
    for wanted in model._meta.indexes:
        have = existing.get(wanted._name)
        if have is None:
            continue
        columns = [expr.column_name for expr in wanted._expressions]
        if list(have.columns) != columns or bool(have.unique) != bool(wanted._unique):
            drops.append(wanted._name)
    if drops:
        _migrate(db, lambda m: [m.drop_index(table, name) for name in drops])


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
