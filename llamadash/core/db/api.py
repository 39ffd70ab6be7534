"""The database API: the seed's functions in snake_case, plain dicts in and out.

One database is *current* per process, opened by :func:`init_database`; every function here is a
thin facade over that :class:`~llamadash.core.db.store.Database` (:func:`current`), which owns the
file, its connections (one per thread), its retention and its lock. Every function may be called
from any thread: the object's re-entrant lock orders the calls so that closing, importing or
re-initialising never pulls a connection away under a running call. A worker thread that is done
with the database may call :func:`release_connection`; connections of threads that have ended are
closed when another thread connects, and :func:`close_database` closes them all. Changing how
long metrics are kept (:func:`set_retention_minutes`) keeps the database open.

Times (``timestamp``, ``created_at``, ``updated_at``) are Unix milliseconds. A missing metrics
reading is ``None`` (``NULL``), never 0. Every mistake a caller can make raises
:class:`DatabaseError` with a message meant for a person, and changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from llamadash.core.db.connection import BUSY_TIMEOUT_S, describe_failure, now_ms
from llamadash.core.db.errors import DatabaseError, DatabaseNotOpenError
from llamadash.core.db.checks import REQUEST_STATUSES, requests_row
from llamadash.core.db.store import (
    DAILY_TOTALS_RETENTION_DAYS,
    INCREMENTAL_VACUUM_EVERY,
    MAX_REQUEST_ROWS,
    METRICS_RETENTION_MINUTES,
    METRICS_SQL,
    REQUEST_RETENTION_SETTING,
    REQUESTS_SQL,
    Database,
)
from llamadash.core.paths import default_database_path
from llamadash.core.requests_log import RequestRecord

__all__ = [
    "BUSY_TIMEOUT_S",
    "DAILY_TOTALS_RETENTION_DAYS",
    "INCREMENTAL_VACUUM_EVERY",
    "MAX_REQUEST_ROWS",
    "METRICS_RETENTION_MINUTES",
    "METRICS_SQL",
    "REQUESTS_SQL",
    "REQUEST_RETENTION_SETTING",
    "REQUEST_STATUSES",
    "Database",
    "close_database",
    "count_requests",
    "count_rows",
    "current",
    "delete_all_models",
    "delete_metadata",
    "delete_model",
    "describe_failure",
    "get_auto_restart",
    "get_daily_totals",
    "get_database_path",
    "get_database_size",
    "get_db_version",
    "get_instance_history",
    "get_metadata",
    "get_metrics_columns",
    "get_metrics_history",
    "get_model",
    "get_model_by_name",
    "get_models",
    "get_requests",
    "init_database",
    "is_open",
    "now_ms",
    "release_connection",
    "requests_row",
    "save_instance_samples",
    "save_metrics",
    "save_model",
    "save_models",
    "save_requests",
    "set_auto_restart",
    "set_metadata",
    "set_retention_minutes",
    "transaction",
    "update_model",
    "vacuum_database",
]

#: Orders opening and closing the current database (each database orders its own calls).
_lock = threading.RLock()
_current: Database | None = None


def current() -> Database:
    """The open database that the functions of this module work on.

    Raises:
        DatabaseNotOpenError: :func:`init_database` has not opened one (or it was closed).
    """
    database = _current
    if database is None:  # a closed one raises the same on use (an import reopens it meanwhile)
        raise DatabaseNotOpenError("the database is not open: call init_database() first")
    return database


_require = current  # the name the tests and tools of earlier versions use


# ------------------------------------------------------------------------------------------------
# lifecycle
def init_database(
    path: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    retention_minutes: float | None = None,
    record_start: bool = True,
) -> Path:
    """Open (creating or upgrading it) the database; closes one opened before.

    Creates missing tables, columns and indexes, upgrades a seed or older llamadash database,
    records ``db_version`` and sets ``server_start_time`` to now. A new file is readable by its
    owner only (POSIX). Opening a current database with ``record_start=False`` writes nothing.

    Args:
        path: the database file; None = ``llama-dashboard.db`` in the data directory.
        data_dir: the data directory when ``path`` is None (the CLI's ``--data-dir``); None = the
            default resolution of :func:`llamadash.core.paths.resolve_data_dir`.
        retention_minutes: how long ``save_metrics`` keeps rows (default
            :data:`METRICS_RETENTION_MINUTES`).
        record_start: set ``server_start_time`` (the dashboard's start, the origin of the
            ``uptime`` metric). A short-lived tool such as the CLI passes False so that it does
            not reset the uptime of a dashboard that is running on the same database.

    Returns:
        The database file's absolute path.

    Raises:
        DatabaseFileError: the file is not a llamadash database (another application's, not SQLite,
            truncated); it is left as it is.
        SchemaVersionError: the file was written by a newer llamadash; it is left as it is.
        DatabaseError: anything else that prevents opening it.
    """
    global _current
    with _lock:
        close_database()
        if path is not None:
            target = Path(path).expanduser().absolute()
        else:
            try:
                target = default_database_path(data_dir)
            except OSError as exc:
                raise DatabaseError(f"cannot use the data directory: {exc}") from exc
        _current = Database(target, retention_minutes=retention_minutes, record_start=record_start)
        return _current.path


def close_database() -> None:
    """Close the database (all threads' connections); safe to call when it is not open."""
    global _current
    with _lock:
        database, _current = _current, None
        if database is not None:
            database.close()


def release_connection() -> None:
    """Close the calling thread's connection (a worker that is done); the next call reopens one."""
    database = _current
    if database is not None:
        database.release_connection()


def is_open() -> bool:
    """Whether :func:`init_database` has opened a database."""
    database = _current
    return database is not None and database.is_open


def set_retention_minutes(minutes: float) -> None:
    """Keep metrics for ``minutes`` from the next :func:`save_metrics` on; the database stays open.

    Raises:
        DatabaseError: ``minutes`` is not a positive, finite number, or no database is open.
    """
    current().set_retention_minutes(minutes)


def get_database_path() -> Path:
    """The open database's file."""
    return current().path


def get_db_version() -> int:
    """The open database's schema version (``metadata.db_version``)."""
    return current().get_db_version()


# ------------------------------------------------------------------------------------------------
# metrics
def save_metrics(metrics: Mapping[str, Any]) -> int:
    """Store one metrics sample and drop the rows older than the retention window, atomically.

    Args:
        metrics: readings by column (``cpu_usage``, ``gpu_temperature``, ...). A missing key or
            ``None`` (or NaN) is stored as NULL. ``timestamp`` and ``created_at`` default to now.
            Retention deletes the rows whose ``created_at`` is the retention window or more
            before this row's ``created_at`` (10 minutes at 1 Hz keep 600 rows). Also sets
            ``metadata.last_metrics_save``.

    Returns:
        The new row's id.

    Raises:
        DatabaseError: an unknown key, a value that is not a number, or a database failure.
    """
    return current().save_metrics(metrics)


def get_metrics_history(minutes: float = 10) -> list[dict[str, Any]]:
    """The metrics samples of the last ``minutes`` (by ``timestamp``), oldest first.

    Each dict has every ``metrics_history`` column; a missing reading is None.
    """
    return current().get_metrics_history(minutes)


def get_metrics_columns(minutes: float = 10) -> dict[str, list[Any]]:
    """:func:`get_metrics_history` as one list per column (every ``metrics_history`` column), oldest first.

    What the charts read at start-up: the rows go straight into their curves, with no dict per row.
    """
    return current().get_metrics_columns(minutes)


# ------------------------------------------------------------------------------------------------
# activity: requests, instance samples, daily totals
def save_requests(records: Sequence[Mapping[str, Any] | RequestRecord]) -> int:
    """Store request records, adding them to the daily totals, in one transaction; returns how many.

    Args:
        records: one dict per request, keyed by the ``requests`` columns: ``finished_at`` (Unix
            ms, default now), ``started_at``, ``model`` (required), ``slot``, ``task``, ``status``
            (required: ``finished``, ``aborted`` or ``incomplete``), ``prompt_tokens``,
            ``cached_tokens``, ``prompt_ms``, ``prompt_tps``, ``generated_tokens``,
            ``generation_ms``, ``generation_tps``, ``total_ms``, ``context_tokens``,
            ``truncated``, ``context_shifted``. A missing figure (or None, or NaN) is NULL, never 0.
            :func:`requests_row` turns a :class:`~llamadash.core.requests_log.RequestRecord`
            into one (a record itself is taken too). Each request adds 1 request and its prompt and generated tokens to the
            ``daily_totals`` row of its model and local day (``finished_at``'s date here).

    Retention, in the same transaction: records whose ``finished_at`` is more than the
    ``request_retention_days`` setting (default 7) before now are dropped, and the oldest beyond
    :data:`MAX_REQUEST_ROWS`; daily totals older than :data:`DAILY_TOTALS_RETENTION_DAYS` days.

    Raises:
        DatabaseError: a record is refused (the message says which, by position, and why), or a
            database failure; then nothing was stored.
    """
    return current().save_requests(records)


def get_requests(
    *,
    model: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Request records, newest first (by ``finished_at``, then id).

    Args:
        model: only this model's.
        since_ms: only those that finished at or after this Unix time (ms).
        until_ms: only those that finished before this Unix time (ms).
        limit: at most this many (the newest).

    Each dict has every ``requests`` column; ``truncated`` and ``context_shifted`` are bools (or
    None), a figure that was not known is None.
    """
    return current().get_requests(model=model, since_ms=since_ms, until_ms=until_ms, limit=limit)


def count_requests(
    *, model: str | None = None, since_ms: int | None = None, until_ms: int | None = None
) -> int:
    """How many request records the filters of :func:`get_requests` match."""
    return current().count_requests(model=model, since_ms=since_ms, until_ms=until_ms)


def save_instance_samples(rows: Sequence[Mapping[str, Any]]) -> None:
    """Store per-instance samples (one per running instance and tick) in one transaction.

    Args:
        rows: dicts keyed by the ``instance_samples`` columns: ``timestamp`` (Unix ms, default
            now), ``model`` (required), ``tokens_per_second``, ``prompt_tokens_per_second``,
            ``busy_slots``, ``total_slots``, ``requests_processing``, ``requests_deferred``,
            ``cpu_percent``, ``memory_mb``, ``vram_mb``. A missing reading is NULL, never 0.

    Samples are kept as long as metrics (:func:`set_retention_minutes`): those whose
    ``timestamp`` is the retention window or more before the newest one given are dropped.

    Raises:
        DatabaseError: a sample is refused (the message says which and why), or a database failure.
    """
    current().save_instance_samples(rows)


def get_instance_history(minutes: float | None = None, *, model: str | None = None) -> list[dict[str, Any]]:
    """The instance samples of the last ``minutes`` (None: all that are kept), oldest first.

    Like :func:`get_metrics_history`: each dict has every ``instance_samples`` column.
    """
    return current().get_instance_history(minutes, model=model)


def get_daily_totals(*, model: str | None = None, since_day: str | None = None) -> list[dict[str, Any]]:
    """Requests and tokens per model and local day: ``day`` (``YYYY-MM-DD``), ``model``,
    ``requests``, ``prompt_tokens``, ``generated_tokens``; oldest day first, then by model.

    Args:
        model: only this model's.
        since_day: only this day (``YYYY-MM-DD``) and later.
    """
    return current().get_daily_totals(model=model, since_day=since_day)


# ------------------------------------------------------------------------------------------------
# models
def save_model(model: Mapping[str, Any]) -> int:
    """Add a model configuration; returns its id.

    Args:
        model: ``name``, ``type``, ``status`` (required), any parameter column (validated against
            the schema), ``custom_params`` and optionally ``created_at``/``updated_at`` (default
            now), ``auto_restart`` (default False). Leading/trailing spaces of ``name`` and ``type`` are dropped.

    Raises:
        DatabaseError: an unknown key, a wrong value, a missing or empty name/type/status, a status
            outside running/stopped/loading/error, or a name that is already taken.
    """
    return current().save_model(model)


@contextlib.contextmanager
def transaction(*, immediate: bool = True) -> Iterator[None]:
    """One write transaction: either every change in the block is kept, or (on any exception) none.

    ``save_model``/``update_model``/``delete_model`` inside the block become savepoints of one
    transaction, committed when the block ends; an exception rolls every one of them back and goes
    on. By default the transaction takes SQLite's write lock at once (``BEGIN IMMEDIATE``), so a
    read-modify-write is safe across processes: what the block reads no other process can change
    before it commits, and another process's block waits (up to :data:`BUSY_TIMEOUT_S`) for this
    one. The sampler's writes from another thread wait for the block too: keep it short (nothing
    slow, such as asking llama-server for its flags, inside).

    Args:
        immediate: take the write lock at ``BEGIN`` (the default); False starts a deferred
            transaction (a read-only snapshot, or writes that do not depend on what was read).
            Nested blocks are savepoints of the outermost one, whose kind counts.

    Raises:
        DatabaseError: the database is not open, it stayed locked by another process for longer
            than :data:`BUSY_TIMEOUT_S`, or the commit failed (then nothing was kept);
            :class:`DiskFullError` when the disk is full.
    """
    with current().transaction(immediate=immediate):
        yield


def get_models(status: str | None = None, type: str | None = None) -> list[dict[str, Any]]:
    """All model configurations, optionally filtered, oldest first (by ``created_at``, then id).

    Each dict holds every column: unset parameters are None, ``custom_params`` is what was stored
    (a dict, or a list of strings; ``{}`` when nothing was).
    """
    return current().get_models(status, type)


def get_model(model_id: int) -> dict[str, Any] | None:
    """The model with this id, or None."""
    return current().get_model(model_id)


def get_model_by_name(name: str) -> dict[str, Any] | None:
    """The model with this name (surrounding spaces ignored), or None."""
    return current().get_model_by_name(name)


def update_model(model_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Change some columns of a model and set ``updated_at`` (now, unless given); returns the model.

    A parameter set to None is cleared (back to llama-server's default). An ``id`` key is allowed
    when it equals ``model_id`` (so a dict from :func:`get_model` can be sent back).

    Raises:
        DatabaseError: no such model, or the same mistakes :func:`save_model` refuses.
    """
    return current().update_model(model_id, changes)


def delete_model(model_id: int) -> bool:
    """Delete a model; returns whether it existed."""
    return current().delete_model(model_id)


def delete_all_models() -> int:
    """Delete every model; returns how many there were."""
    return current().delete_all_models()


def save_models(models: Sequence[Mapping[str, Any]]) -> list[int]:
    """Add many model configurations at once, all or none (one transaction); returns their ids.

    Each model is checked as :func:`save_model` checks it; the rows go in with one prepared
    statement instead of one query built per model (an import of 100,000 models). Inside a
    :func:`transaction` block it joins that transaction.

    Raises:
        DatabaseError: a model is refused (the message says which, by position and name), or a
            name is taken; then none of them was added.
    """
    return current().save_models(models)


def get_auto_restart(name: str) -> bool:
    """Whether the model ``name`` restarts automatically after a crash (False: no such model).

    The setting is the model's own ``auto_restart`` column: a renamed model keeps it, and a new
    model given the name of a deleted one starts with it off.
    """
    return current().get_auto_restart(name)


def set_auto_restart(name: str, enabled: bool) -> None:
    """Turn automatic restart after a crash on or off for the model ``name``; sets ``updated_at``.

    Raises:
        DatabaseError: there is no model of that name, or ``enabled`` is not True or False.
    """
    current().set_auto_restart(name, enabled)


# ------------------------------------------------------------------------------------------------
# metadata
def set_metadata(key: str, value: str | float) -> None:
    """Store a metadata value (numbers are stored as their text).

    Raises:
        DatabaseError: an empty key, a value that is not text or a number (None: use
            :func:`delete_metadata`), or a key llamadash maintains itself (``db_version``).
    """
    current().set_metadata(key, value)


def get_metadata(key: str) -> str | None:
    """The value stored under ``key``, or None."""
    return current().get_metadata(key)


def delete_metadata(key: str) -> bool:
    """Delete a metadata key; returns whether it existed."""
    return current().delete_metadata(key)


# ------------------------------------------------------------------------------------------------
# maintenance
def vacuum_database() -> None:
    """Rebuild the database file compactly (``VACUUM``) and fold the WAL back into it."""
    current().vacuum()


def get_database_size() -> int:
    """Bytes the database takes on disk: the file plus its write-ahead log."""
    return current().size()


def count_rows() -> dict[str, int]:
    """Rows per table: the seed's three, then ``requests``, ``instance_samples``, ``daily_totals``."""
    return current().count_rows()
