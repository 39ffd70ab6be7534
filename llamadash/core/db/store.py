"""One open database file as an object: :class:`Database`.

A :class:`Database` owns its Peewee database (one SQLite connection per thread, opened on first
use, with the pragmas applied), its path, its metrics retention and its lock. Every method may be
called from any thread: a re-entrant lock of the object orders the calls so that closing or
importing never pulls a connection away under a running call. The retention can change while it is
open (:meth:`Database.set_retention_minutes`): the next save prunes by the new window, on the same
connections.

The activity tables (requests, instance samples, daily totals) have their own retention: request
records are kept for the ``request_retention_days`` setting (read from the file's metadata; a
:meth:`Database.set_metadata` of that key takes effect at the next save) and at most
:data:`MAX_REQUEST_ROWS` rows, instance samples as long as metrics, daily totals
:data:`DAILY_TOTALS_RETENTION_DAYS` days. Each prune is an index range delete in the same
transaction as the insert, so its cost does not grow with the table.

The seed's functions (:mod:`llamadash.core.db.api`) are a facade over the current instance.
Times (``timestamp``, ``created_at``, ``updated_at``) are Unix milliseconds. A missing metrics
reading is ``None`` (``NULL``), never 0. Every mistake a caller can make raises
:class:`DatabaseError` with a message meant for a person, and changes nothing.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import peewee

from llamadash.core import settings as settings_mod
from llamadash.core.db import checks, connection
from llamadash.core.db.connection import (
    SQL_ERRORS,
    TrackingSqliteDatabase,
    create_database_file,
    describe_failure,
    make_database,
)
from llamadash.core.db.errors import DatabaseError, DatabaseNotOpenError, DiskFullError
from llamadash.core.db.migrations import (
    file_mode_private,
    remove_stale_staging_files,
    stored_version,
    upgrade_schema,
)
from llamadash.core.db.models import (
    AUTO_RESTART_COLUMN,
    DAILY_TOTAL_COLUMNS,
    INSTANCE_SAMPLE_COLUMNS,
    INSTANCE_SAMPLE_INPUT_COLUMNS,
    METRICS_COLUMNS,
    METRICS_INPUT_COLUMNS,
    MODEL_COLUMNS,
    REQUEST_COLUMNS,
    REQUEST_INPUT_COLUMNS,
    TABLE_NAMES,
    ModelConfig,
)
from llamadash.core.db.probe import probe_file
from llamadash.core.messages import short_repr
from llamadash.core.paths import make_private_dir
from llamadash.core.requests_log import RequestRecord
from llamadash.core.states import MODEL_STATUSES

_log = logging.getLogger(__name__)

#: How long metrics are kept, in minutes (the seed's 10), unless a database is told otherwise.
METRICS_RETENTION_MINUTES: float = 10.0
#: Run ``PRAGMA incremental_vacuum`` after this many ``save_metrics`` calls (10 minutes at 1 Hz):
#: retention frees a page now and then, returning them one call in 600 costs nothing noticeable.
INCREMENTAL_VACUUM_EVERY = 600


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_METRICS_INSERT_SQL = (
    f"INSERT INTO metrics_history ({', '.join(map(_quote, METRICS_INPUT_COLUMNS))}) "
    f"VALUES ({', '.join('?' for _ in METRICS_INPUT_COLUMNS)})"
)
_METRICS_EXPIRE_SQL = "DELETE FROM metrics_history WHERE created_at <= ?"
_METRICS_HISTORY_SQL = (
    f"SELECT {', '.join(map(_quote, METRICS_COLUMNS))} FROM metrics_history "
    "WHERE timestamp >= ? ORDER BY timestamp, id"
)
_METADATA_UPDATE_SQL = "UPDATE metadata SET value = ?, updated_at = ? WHERE key = ?"
_METADATA_INSERT_SQL = "INSERT INTO metadata (key, value, updated_at) VALUES (?, ?, ?)"

#: The SQL that ``save_metrics`` and ``get_metrics_history`` run (the benchmark replays it).
METRICS_SQL = {
    "insert": _METRICS_INSERT_SQL,
    "expire": _METRICS_EXPIRE_SQL,
    "history": _METRICS_HISTORY_SQL,
    "metadata_update": _METADATA_UPDATE_SQL,
    "metadata_insert": _METADATA_INSERT_SQL,
}
#: The most request records kept, whatever their age: the oldest (by id, i.e. as stored) go first.
#: 200,000 rows take about 31 MB (measured: 15.6 MB per 100,000); at one request a second, 2.3 days.
MAX_REQUEST_ROWS = 200_000
#: How long daily totals are kept, in days (a year, and the day it started).
DAILY_TOTALS_RETENTION_DAYS = 366
#: The setting that says how many days of request records are kept.
REQUEST_RETENTION_SETTING = "request_retention_days"
_DAY_MS = 86_400_000

_REQUEST_INSERT_SQL = (
    f"INSERT INTO requests ({', '.join(map(_quote, REQUEST_INPUT_COLUMNS))}) "
    f"VALUES ({', '.join('?' for _ in REQUEST_INPUT_COLUMNS)})"
)
_REQUEST_EXPIRE_SQL = "DELETE FROM requests WHERE finished_at < ?"
_REQUEST_BOUND_SQL = "DELETE FROM requests WHERE id <= ?"
_DAILY_ADD_SQL = (
    "INSERT INTO daily_totals (day, model, requests, prompt_tokens, generated_tokens) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (day, model) DO UPDATE SET "
    "requests = requests + excluded.requests, "
    "prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
    "generated_tokens = generated_tokens + excluded.generated_tokens"
)
_DAILY_EXPIRE_SQL = "DELETE FROM daily_totals WHERE day < ?"
_SAMPLE_INSERT_SQL = (
    f"INSERT INTO instance_samples ({', '.join(map(_quote, INSTANCE_SAMPLE_INPUT_COLUMNS))}) "
    f"VALUES ({', '.join('?' for _ in INSTANCE_SAMPLE_INPUT_COLUMNS)})"
)
_SAMPLE_EXPIRE_SQL = "DELETE FROM instance_samples WHERE timestamp <= ?"
_REQUEST_SELECT = f"SELECT {', '.join(map(_quote, REQUEST_COLUMNS))} FROM requests"
_SAMPLE_SELECT = f"SELECT {', '.join(map(_quote, INSTANCE_SAMPLE_COLUMNS))} FROM instance_samples"
_DAILY_SELECT = f"SELECT {', '.join(map(_quote, DAILY_TOTAL_COLUMNS))} FROM daily_totals"
_REQUEST_FLAGS = tuple(REQUEST_COLUMNS.index(c) for c in ("truncated", "context_shifted"))

#: The SQL that ``save_requests`` runs (the benchmark replays it).
REQUESTS_SQL = {
    "insert": _REQUEST_INSERT_SQL,
    "expire": _REQUEST_EXPIRE_SQL,
    "bound": _REQUEST_BOUND_SQL,
    "daily_add": _DAILY_ADD_SQL,
    "daily_expire": _DAILY_EXPIRE_SQL,
}

_MODEL_ID = ModelConfig._meta.primary_key
# The models' SELECT written out once: peewee composed it again at every read (~180 columns: 8 ms of
# the window's start for get_models, and as much for each get_model).
_MODEL_SELECT_SQL = f"SELECT {', '.join(map(_quote, MODEL_COLUMNS))} FROM models"
_MODEL_ORDER_SQL = ' ORDER BY "created_at", "id"'
_AUTO_RESTART = ModelConfig._meta.columns[AUTO_RESTART_COLUMN]


def retention_ms(minutes: Any) -> int:
    """A retention window in minutes, checked, as milliseconds."""
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes > 0:
        raise DatabaseError(f"retention_minutes must be a positive number, got {short_repr(minutes)}")
    if not math.isfinite(minutes):
        raise DatabaseError(f"retention_minutes must be finite, got {short_repr(minutes)}")
    return round(minutes * 60_000)


def _check_filter_ms(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DatabaseError(f"{name} must be Unix milliseconds (a whole number), got {short_repr(value)}")
    return value


def _check_filter_model(model: Any) -> str | None:
    if model is not None and not isinstance(model, str):
        raise DatabaseError(f"model must be a model's name (text), got {short_repr(model)}")
    return None if model is None else model.strip()


def _checked_rows(rows: object, check: Callable[[Any], list[Any]], call: str, what: str) -> list[list[Any]]:
    """``rows`` checked one by one as input (``check`` raises :class:`DatabaseError`); the first bad
    one is named by its position, and nothing is written."""
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Sequence):
        raise DatabaseError(f"{call} expects a list of {what}s, got {type(rows).__name__}")
    checked = []
    for number, row in enumerate(rows, 1):
        try:
            checked.append(check(row))
        except DatabaseError as exc:
            raise DatabaseError(f"{what} {number}: {exc}") from None
    return checked


def _request_filters(model: Any, since_ms: Any, until_ms: Any) -> tuple[str, list[Any]]:
    """The WHERE clause (possibly empty) and its parameters of the request filters, checked."""
    name = _check_filter_model(model)
    since = _check_filter_ms("since_ms", since_ms)
    until = _check_filter_ms("until_ms", until_ms)
    clauses: list[str] = []
    params: list[Any] = []
    if name is not None:
        clauses.append("model = ?")
        params.append(name)
    if since is not None:
        clauses.append("finished_at >= ?")
        params.append(since)
    if until is not None:
        clauses.append("finished_at < ?")
        params.append(until)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _request_dict(row: Sequence[Any]) -> dict[str, Any]:
    values = list(row)
    for index in _REQUEST_FLAGS:
        if values[index] is not None:
            values[index] = bool(values[index])
    return dict(zip(REQUEST_COLUMNS, values, strict=True))


def set_metadata_row(conn: sqlite3.Connection, key: str, value: str, now: int) -> None:
    """Store ``key`` = ``value`` on ``conn`` (inside the caller's transaction)."""
    # UPDATE first: the key nearly always exists, and this needs no unique index on `key`
    # (a seed database might lack one), unlike an upsert.
    if conn.execute(_METADATA_UPDATE_SQL, (value, now, key)).rowcount == 0:
        conn.execute(_METADATA_INSERT_SQL, (key, value, now))


@functools.cache
def _model_converters() -> tuple[tuple[Callable[[Any], Any], bool], ...]:
    """Each ``models`` column's peewee ``python_value``, and whether NULL must go through it too."""
    fields = ModelConfig._meta.sorted_fields
    assert tuple(f.column_name for f in fields) == MODEL_COLUMNS  # the SELECT's order
    return tuple((f.python_value, f.python_value(None) is not None) for f in fields)


class Database:
    """One open llamadash database file (created or upgraded when opened).

    Args:
        path: the database file (made absolute).
        retention_minutes: how long :meth:`save_metrics` keeps rows (default
            :data:`METRICS_RETENTION_MINUTES`); :meth:`set_retention_minutes` changes it later.
        record_start: set ``server_start_time`` to now (the origin of the ``uptime`` metric). A
            short-lived tool such as the CLI passes False so that it does not reset the uptime of
            a dashboard running on the same file. Opening a current database so writes nothing.
        max_request_rows: the most request records kept (default :data:`MAX_REQUEST_ROWS`).

    Raises:
        DatabaseFileError: the file is not a llamadash database; it is left as it is.
        SchemaVersionError: the file was written by a newer llamadash; it is left as it is.
        DatabaseError: anything else that prevents opening it.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        retention_minutes: float | None = None,
        record_start: bool = True,
        max_request_rows: int = MAX_REQUEST_ROWS,
    ) -> None:
        minutes = METRICS_RETENTION_MINUTES if retention_minutes is None else retention_minutes
        self._retention_ms = retention_ms(minutes)
        if (
            isinstance(max_request_rows, bool)
            or not isinstance(max_request_rows, int)
            or max_request_rows < 1
        ):
            raise DatabaseError(
                f"max_request_rows must be a whole number >= 1, got {short_repr(max_request_rows)}"
            )
        self._max_request_rows = max_request_rows
        #: Days of request records kept: read from the metadata on first use (None: not read yet).
        self._request_retention_days: int | None = None
        self._path = Path(path).expanduser().absolute()
        self._record_start = record_start
        self._saves_since_vacuum = 0
        self._db: TrackingSqliteDatabase | None = None
        #: Held by every call; the import holds it across closing, replacing and reopening the file.
        self.lock = threading.RLock()
        with self.lock:
            self.connect_locked()

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<Database {self._path} ({state})>"

    # -- opening and closing -----------------------------------------------------------------------
    def connect_locked(self) -> None:
        """Open the file (create, check, upgrade); the caller holds :attr:`lock` and it is closed."""
        path = self._path
        if path.is_dir():
            raise DatabaseError(f"{path} is a folder; give the database file's path")
        try:
            make_private_dir(path.parent)
            if not path.exists() or path.stat().st_size == 0:
                create_database_file(path)
            else:
                probe_file(path, for_import=False, check_integrity=False)  # refuses without changing it
                remove_stale_staging_files(path)  # what killed imports left beside it
        except (OSError, sqlite3.Error) as exc:
            raise describe_failure(f"cannot create the database {path}", exc, path.parent) from exc
        except DatabaseError as exc:
            # On a full disk SQLite cannot make its shared-memory index and calls the file damaged.
            failure = describe_failure(f"cannot open the database {path}", exc, path.parent)
            if isinstance(failure, DiskFullError):
                raise failure from exc
            raise
        db = make_database(path)
        try:
            now = connection.now_ms()
            upgrade_schema(db, now)
            if self._record_start:
                with db.atomic():
                    set_metadata_row(db.thread_connection(), "server_start_time", str(now), now)
            file_mode_private(path)
        except DatabaseError as exc:
            db.close_all()
            failure = describe_failure(f"cannot open the database {path}", exc, path.parent)
            if isinstance(failure, DiskFullError):
                raise failure from exc
            raise
        except SQL_ERRORS as exc:
            db.close_all()
            raise describe_failure(f"cannot open the database {path}", exc, path.parent) from exc
        except BaseException:
            db.close_all()
            raise
        self._request_retention_days = None  # an imported file has its own setting
        self._db = db

    def disconnect_locked(self) -> None:
        """Close every thread's connection; the caller holds :attr:`lock`."""
        db, self._db = self._db, None
        if db is not None:
            db.close_all()

    def close(self) -> None:
        """Close the database (all threads' connections); safe to call twice."""
        with self.lock:
            self.disconnect_locked()

    def release_connection(self) -> None:
        """Close the calling thread's connection (a worker that is done); the next call reopens one."""
        with self.lock:
            if self._db is not None:
                self._db.close()

    @property
    def is_open(self) -> bool:
        """Whether the file is open (not closed, not in the middle of an import's swap)."""
        return self._db is not None

    @property
    def db(self) -> TrackingSqliteDatabase:
        """The Peewee database (its ``connection()`` is the calling thread's).

        Raises:
            DatabaseNotOpenError: the database has been closed.
        """
        db = self._db
        if db is None:
            raise DatabaseNotOpenError("the database is not open: call init_database() first")
        return db

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def record_start(self) -> bool:
        """Whether opening (and reopening, after an import) records ``server_start_time``."""
        return self._record_start

    # -- retention ---------------------------------------------------------------------------------
    @property
    def retention_minutes(self) -> float:
        """How long :meth:`save_metrics` keeps rows, in minutes."""
        return self._retention_ms / 60_000

    def set_retention_minutes(self, minutes: float) -> None:
        """Keep metrics for ``minutes`` from the next save on; the connections stay as they are.

        Raises:
            DatabaseError: ``minutes`` is not a positive, finite number.
        """
        window = retention_ms(minutes)
        with self.lock:
            self._retention_ms = window

    @property
    def request_retention_days(self) -> int:
        """How many days :meth:`save_requests` keeps request records (the setting, default 7)."""
        with self.lock:
            if self._request_retention_days is None:
                days = settings_mod.read_setting(self, REQUEST_RETENTION_SETTING)
                self._request_retention_days = int(days)
            return self._request_retention_days

    @property
    def max_request_rows(self) -> int:
        """The most request records kept, whatever their age."""
        return self._max_request_rows

    def _wrap(self, action: str, exc: BaseException) -> DatabaseError:
        """The error to raise for a failed call: what could not be done, and why in plain words."""
        return describe_failure(f"could not {action}", exc, self._path.parent)

    def get_db_version(self) -> int:
        """The schema version (``metadata.db_version``)."""
        with self.lock:
            db = self.db
            try:
                version = stored_version(db)
            except SQL_ERRORS as exc:
                raise self._wrap("read the database version", exc) from exc
            if version is None:
                raise DatabaseError("the database has no version (its tables are missing)")
            return version

    @contextlib.contextmanager
    def transaction(self, *, immediate: bool = True) -> Iterator[None]:
        """One write transaction: every change in the block is kept, or (on any exception) none.

        See :func:`llamadash.core.db.api.transaction`.
        """
        with self.lock:
            db = self.db
            try:
                with db.atomic("IMMEDIATE" if immediate else None):
                    yield
            except SQL_ERRORS as exc:
                raise self._wrap("finish the changes", exc) from exc
            if self._saves_since_vacuum >= INCREMENTAL_VACUUM_EVERY:  # came due in the block
                try:
                    self._vacuum_if_outside_transaction(db.thread_connection())
                except SQL_ERRORS as exc:  # the changes are kept: only the tidying failed
                    _log.warning("could not give free database pages back: %s", exc)

    def _vacuum_if_outside_transaction(self, conn: sqlite3.Connection) -> None:
        """Give the free pages back to the file system, unless a transaction is open.

        executescript() steps the pragma to the end (execute() would free a single page), but it
        commits first: inside a transaction (the sampler's, a sample with its instance rows) it
        would break it in two, so the outermost :meth:`transaction` runs it after its commit.
        """
        if conn.in_transaction:
            return
        self._saves_since_vacuum = 0
        conn.executescript("PRAGMA incremental_vacuum;")

    # -- metrics -----------------------------------------------------------------------------------
    def save_metrics(self, metrics: Mapping[str, Any]) -> int:
        """Store one sample and drop the rows past the retention window, atomically; returns its id.

        See :func:`llamadash.core.db.api.save_metrics`.
        """
        row = checks.metrics_row(metrics)
        created_at = row[checks.CREATED_AT_INDEX]
        with self.lock:
            db = self.db
            try:
                conn = db.thread_connection()
                # The statements peewee's atomic() would issue, issued directly (once a second:
                # its bookkeeping was most of what the API added to the bare sqlite3 statements).
                nested = conn.in_transaction  # inside transaction(): a savepoint of it
                conn.execute("SAVEPOINT save_metrics" if nested else "BEGIN IMMEDIATE")
                try:
                    row_id = conn.execute(_METRICS_INSERT_SQL, row).lastrowid
                    conn.execute(_METRICS_EXPIRE_SQL, (created_at - self._retention_ms,))
                    set_metadata_row(conn, "last_metrics_save", str(created_at), created_at)
                    conn.execute("RELEASE save_metrics" if nested else "COMMIT")
                except BaseException:
                    if nested:
                        conn.execute("ROLLBACK TO save_metrics")
                        conn.execute("RELEASE save_metrics")
                    elif conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                self._saves_since_vacuum += 1
                if self._saves_since_vacuum >= INCREMENTAL_VACUUM_EVERY:
                    self._vacuum_if_outside_transaction(conn)
            except SQL_ERRORS as exc:
                raise self._wrap("save metrics", exc) from exc
        assert row_id is not None  # an INSERT that succeeded has a row id
        return row_id

    def get_metrics_history(self, minutes: float = 10) -> list[dict[str, Any]]:
        """The samples of the last ``minutes`` (by ``timestamp``), oldest first."""
        if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes > 0:
            raise DatabaseError(f"minutes must be a positive number, got {short_repr(minutes)}")
        cutoff = connection.now_ms() - round(minutes * 60_000) if math.isfinite(minutes) else -(2**63)
        rows = self._read(_METRICS_HISTORY_SQL, (cutoff,), "read the metrics history")
        return [dict(zip(METRICS_COLUMNS, row, strict=False)) for row in rows]

    def get_metrics_columns(self, minutes: float = 10) -> dict[str, list[Any]]:
        """The samples of the last ``minutes``, oldest first, as one list per column (charts take
        these straight: no dict per row is made)."""
        if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes > 0:
            raise DatabaseError(f"minutes must be a positive number, got {short_repr(minutes)}")
        cutoff = connection.now_ms() - round(minutes * 60_000) if math.isfinite(minutes) else -(2**63)
        rows = self._read(_METRICS_HISTORY_SQL, (cutoff,), "read the metrics history")
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in METRICS_COLUMNS]
        return {name: list(values) for name, values in zip(METRICS_COLUMNS, columns, strict=True)}

    def _read(self, sql: str, params: Sequence[Any], doing: str) -> list[tuple[Any, ...]]:
        """The rows of one read query; a failure is a :class:`DatabaseError` saying what was being done."""
        with self.lock:
            db = self.db
            try:
                return list(db.thread_connection().execute(sql, params).fetchall())
            except SQL_ERRORS as exc:
                raise self._wrap(doing, exc) from exc

    # -- activity: requests, instance samples, daily totals -----------------------------------------
    def save_requests(self, records: Sequence[Mapping[str, Any] | RequestRecord]) -> int:
        """Store request records and add them to the daily totals, atomically; returns how many.

        See :func:`llamadash.core.db.api.save_requests`.
        """
        rows = _checked_rows(records, checks.request_row, "save_requests", "request")
        if not rows:
            return 0
        totals: dict[tuple[str, str], list[int]] = {}
        for row in rows:
            key = (checks.local_day(row[checks.REQUEST_FINISHED_INDEX]), row[checks.REQUEST_MODEL_INDEX])
            total = totals.get(key)
            if total is None:
                total = totals[key] = [0, 0, 0]
            total[0] += 1
            total[1] += row[checks.REQUEST_PROMPT_INDEX] or 0
            total[2] += row[checks.REQUEST_GENERATED_INDEX] or 0
        now = connection.now_ms()
        with self.lock:
            days = self.request_retention_days
            db = self.db
            try:
                conn = db.thread_connection()
                with db.atomic("IMMEDIATE"):
                    if len(rows) == 1:
                        last_id = conn.execute(_REQUEST_INSERT_SQL, rows[0]).lastrowid
                    else:
                        conn.executemany(_REQUEST_INSERT_SQL, rows)
                        last_id = conn.execute("SELECT max(id) FROM requests").fetchone()[0]
                    conn.executemany(_DAILY_ADD_SQL, [(*key, *total) for key, total in totals.items()])
                    conn.execute(_REQUEST_EXPIRE_SQL, (now - days * _DAY_MS,))
                    if last_id is not None and last_id > self._max_request_rows:
                        conn.execute(_REQUEST_BOUND_SQL, (last_id - self._max_request_rows,))
                    oldest_day = checks.local_day(now - (DAILY_TOTALS_RETENTION_DAYS - 1) * _DAY_MS)
                    conn.execute(_DAILY_EXPIRE_SQL, (oldest_day,))
            except SQL_ERRORS as exc:
                raise self._wrap("save the request records", exc) from exc
        return len(rows)

    def get_requests(
        self,
        *,
        model: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Request records, newest first (see :func:`llamadash.core.db.api.get_requests`)."""
        where, params = _request_filters(model, since_ms, until_ms)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise DatabaseError(f"limit must be a whole number >= 0 or None, got {short_repr(limit)}")
        sql = f"{_REQUEST_SELECT}{where} ORDER BY finished_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = self._read(sql, params, "read the request records")
        return [_request_dict(row) for row in rows]

    def count_requests(
        self, *, model: str | None = None, since_ms: int | None = None, until_ms: int | None = None
    ) -> int:
        """How many request records the filters match (those of :meth:`get_requests`)."""
        where, params = _request_filters(model, since_ms, until_ms)
        return int(
            self._read(f"SELECT count(*) FROM requests{where}", params, "count the request records")[0][0]
        )

    def save_instance_samples(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Store instance samples, dropping those past the metrics retention, atomically.

        See :func:`llamadash.core.db.api.save_instance_samples`.
        """
        checked = _checked_rows(rows, checks.instance_sample_row, "save_instance_samples", "instance sample")
        if not checked:
            return
        newest = max(row[checks.SAMPLE_TIMESTAMP_INDEX] for row in checked)
        with self.lock:
            db = self.db
            try:
                conn = db.thread_connection()
                with db.atomic("IMMEDIATE"):
                    conn.executemany(_SAMPLE_INSERT_SQL, checked)
                    conn.execute(_SAMPLE_EXPIRE_SQL, (newest - self._retention_ms,))
            except SQL_ERRORS as exc:
                raise self._wrap("save the instance samples", exc) from exc

    def get_instance_history(
        self, minutes: float | None = None, *, model: str | None = None
    ) -> list[dict[str, Any]]:
        """Instance samples of the last ``minutes`` (None: all kept), oldest first."""
        clauses: list[str] = []
        params: list[Any] = []
        if minutes is not None:
            if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes > 0:
                raise DatabaseError(f"minutes must be a positive number or None, got {short_repr(minutes)}")
            if math.isfinite(minutes):
                clauses.append("timestamp >= ?")
                params.append(connection.now_ms() - round(minutes * 60_000))
        name = _check_filter_model(model)
        if name is not None:
            clauses.append("model = ?")
            params.append(name)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        found = self._read(
            f"{_SAMPLE_SELECT}{where} ORDER BY timestamp, id", params, "read the instance history"
        )
        return [dict(zip(INSTANCE_SAMPLE_COLUMNS, row, strict=True)) for row in found]

    def get_daily_totals(
        self, *, model: str | None = None, since_day: str | None = None
    ) -> list[dict[str, Any]]:
        """Requests and tokens per local day and model, oldest day first (then by model)."""
        clauses: list[str] = []
        params: list[Any] = []
        name = _check_filter_model(model)
        if name is not None:
            clauses.append("model = ?")
            params.append(name)
        if since_day is not None:
            if not isinstance(since_day, str) or not checks.is_day(since_day):
                raise DatabaseError(f"since_day must be a date YYYY-MM-DD, got {short_repr(since_day)}")
            clauses.append("day >= ?")
            params.append(since_day)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        found = self._read(f"{_DAILY_SELECT}{where} ORDER BY day, model", params, "read the daily totals")
        return [dict(zip(DAILY_TOTAL_COLUMNS, row, strict=True)) for row in found]

    # -- models ------------------------------------------------------------------------------------
    def _model_dicts(self, where: str = "", params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        # peewee would call every column's python_value for every row (~170 parameter columns, most
        # of them NULL: 50 models took 50 ms); a NULL needs converting only where it reads as
        # something else (custom_params as {}, the flags as False).
        converters = _model_converters()
        found = []
        cursor = self.db.execute_sql(_MODEL_SELECT_SQL + where, params)  # type: ignore[no-untyped-call]
        for raw in cursor.fetchall():
            found.append(
                {
                    column: value if (value is None and not always) else convert(value)
                    for column, value, (convert, always) in zip(MODEL_COLUMNS, raw, converters, strict=True)
                }
            )
        return found

    def _get_one(self, column: str, value: Any) -> dict[str, Any] | None:
        rows = self._model_dicts(f" WHERE {_quote(column)} = ? LIMIT 1", (value,))
        return rows[0] if rows else None

    def save_model(self, model: Mapping[str, Any]) -> int:
        """Add a model configuration; returns its id (see :func:`llamadash.core.db.api.save_model`)."""
        row = checks.model_row(model, partial=False)
        now = connection.now_ms()
        row.setdefault("created_at", now)
        row.setdefault("updated_at", now)
        with self.lock:
            db = self.db
            try:
                with db.atomic():
                    return int(ModelConfig.insert(row).execute(db))
            except peewee.IntegrityError as exc:
                raise checks.integrity_error(exc, row) from None
            except SQL_ERRORS as exc:
                raise self._wrap("save the model", exc) from exc

    def save_models(self, models: Sequence[Mapping[str, Any]]) -> list[int]:
        """Add many models, all or none; returns their ids (see :func:`llamadash.core.db.api.save_models`)."""
        rows = []
        now = connection.now_ms()
        for number, model in enumerate(models, 1):
            try:
                row = checks.model_row(model, partial=False)
            except DatabaseError as exc:
                name = model.get("name") if isinstance(model, Mapping) else None
                label = f"model {number}" + (f" ({name!r})" if isinstance(name, str) else "")
                raise DatabaseError(f"{label}: {exc}") from None
            row.setdefault("created_at", now)
            row.setdefault("updated_at", now)
            rows.append(row)
        fields = [f for f in ModelConfig._meta.sorted_fields if f.column_name != "id"]
        sql = (
            f"INSERT INTO models ({', '.join(_quote(f.column_name) for f in fields)}) "
            f"VALUES ({', '.join('?' for _ in fields)})"
        )
        position = {f.column_name: (index, f) for index, f in enumerate(fields)}
        ids: list[int] = []
        with self.lock:
            db = self.db
            row = {}
            try:
                with db.atomic():
                    conn = db.thread_connection()
                    for row in rows:
                        values: list[Any] = [None] * len(fields)  # only the columns set need converting
                        for column, value in row.items():
                            index, field = position[column]
                            values[index] = field.db_value(value)
                        row_id = conn.execute(sql, values).lastrowid
                        assert row_id is not None  # an INSERT that succeeded has a row id
                        ids.append(row_id)
            except (peewee.IntegrityError, sqlite3.IntegrityError) as exc:
                raise checks.integrity_error(exc, row) from None
            except SQL_ERRORS as exc:
                raise self._wrap("save the models", exc) from exc
        return ids

    def get_models(self, status: str | None = None, type: str | None = None) -> list[dict[str, Any]]:
        """All model configurations, optionally filtered, oldest first (by ``created_at``, then id)."""
        if status is not None and status not in MODEL_STATUSES:
            allowed = ", ".join(MODEL_STATUSES)
            raise DatabaseError(f"status must be one of {allowed}, got {short_repr(status)}")
        if type is not None and not isinstance(type, str):
            raise DatabaseError(f"type must be text, got {short_repr(type)}")
        clauses = [
            f"{_quote(column)} = ?"
            for column, value in (("status", status), ("type", type))
            if value is not None
        ]
        params = [value for value in (status, type) if value is not None]
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self.lock:
            try:
                return self._model_dicts(where + _MODEL_ORDER_SQL, params)
            except SQL_ERRORS as exc:
                raise self._wrap("read the models", exc) from exc

    def get_model(self, model_id: int) -> dict[str, Any] | None:
        """The model with this id, or None."""
        model_id = checks.check_id(model_id)
        with self.lock:
            try:
                return self._get_one("id", model_id)
            except SQL_ERRORS as exc:
                raise self._wrap("read the model", exc) from exc

    def get_model_by_name(self, name: str) -> dict[str, Any] | None:
        """The model with this name (surrounding spaces ignored), or None."""
        if not isinstance(name, str):
            raise DatabaseError(f"a model name is text, got {short_repr(name)}")
        with self.lock:
            try:
                return self._get_one("name", name.strip())
            except SQL_ERRORS as exc:
                raise self._wrap("read the model", exc) from exc

    def update_model(self, model_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Change some columns of a model; returns it (see :func:`llamadash.core.db.api.update_model`)."""
        model_id = checks.check_id(model_id)
        if isinstance(changes, Mapping) and "id" in changes:
            if changes["id"] != model_id:
                raise DatabaseError(
                    f"a model's id cannot be changed (got id {short_repr(changes['id'])} for model {model_id})"
                )
            changes = {k: v for k, v in changes.items() if k != "id"}
        row = checks.model_row(changes, partial=True)
        row.setdefault("updated_at", connection.now_ms())
        with self.lock:
            db = self.db
            try:
                with db.atomic():
                    count = ModelConfig.update(row).where(model_id == _MODEL_ID).execute(db)
                    if count == 0:
                        raise DatabaseError(f"there is no model with id {model_id}")
                    updated = self._get_one("id", model_id)
            except peewee.IntegrityError as exc:
                raise checks.integrity_error(exc, row) from None
            except SQL_ERRORS as exc:
                raise self._wrap("update the model", exc) from exc
        assert updated is not None
        return updated

    def delete_model(self, model_id: int) -> bool:
        """Delete a model; returns whether it existed."""
        model_id = checks.check_id(model_id)
        with self.lock:
            db = self.db
            try:
                return int(ModelConfig.delete().where(model_id == _MODEL_ID).execute(db)) > 0
            except SQL_ERRORS as exc:
                raise self._wrap("delete the model", exc) from exc

    def delete_all_models(self) -> int:
        """Delete every model; returns how many there were."""
        with self.lock:
            db = self.db
            try:
                return int(ModelConfig.delete().execute(db))
            except SQL_ERRORS as exc:
                raise self._wrap("delete the models", exc) from exc

    def get_auto_restart(self, name: str) -> bool:
        """Whether the model ``name`` restarts after a crash (False when there is no such model)."""
        model = self.get_model_by_name(name)
        return bool(model is not None and model[AUTO_RESTART_COLUMN])

    def set_auto_restart(self, name: str, enabled: bool) -> None:
        """Turn restarting after a crash on or off for the model ``name`` (its row; kept on rename).

        Raises:
            DatabaseError: there is no model of that name, or ``enabled`` is not True or False.
        """
        if not isinstance(name, str):
            raise DatabaseError(f"a model name is text, got {short_repr(name)}")
        value = checks.check_flag(AUTO_RESTART_COLUMN, enabled)
        with self.lock:
            db = self.db
            try:
                changes = {_AUTO_RESTART: value, ModelConfig.updated_at: connection.now_ms()}
                count = ModelConfig.update(changes).where(ModelConfig.name == name.strip()).execute(db)
            except SQL_ERRORS as exc:
                raise self._wrap("change the model", exc) from exc
        if count == 0:
            raise DatabaseError(f"there is no model named {short_repr(name.strip())}")

    # -- metadata ----------------------------------------------------------------------------------
    def set_metadata(self, key: str, value: str | float) -> None:
        """Store a metadata value (see :func:`llamadash.core.db.api.set_metadata`)."""
        key = checks.check_key(key)
        text = checks.check_metadata_value(key, value)
        with self.lock:
            db = self.db
            try:
                with db.atomic():
                    set_metadata_row(db.thread_connection(), key, text, connection.now_ms())
            except SQL_ERRORS as exc:
                raise self._wrap("save the metadata", exc) from exc
            if key == REQUEST_RETENTION_SETTING:
                self._request_retention_days = None  # read again, checked, at the next use

    def get_metadata(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        key = checks.check_key(key)
        with self.lock:
            db = self.db
            try:
                row = (
                    db.thread_connection()
                    .execute("SELECT value FROM metadata WHERE key = ?", (key,))
                    .fetchone()
                )
            except SQL_ERRORS as exc:
                raise self._wrap("read the metadata", exc) from exc
        return None if row is None else str(row[0])

    def delete_metadata(self, key: str) -> bool:
        """Delete a metadata key; returns whether it existed."""
        key = checks.check_key(key)
        if key in checks.RESERVED_METADATA_KEYS:
            raise DatabaseError(f"{key} is maintained by llamadash and cannot be deleted")
        with self.lock:
            db = self.db
            try:
                cursor = db.thread_connection().execute("DELETE FROM metadata WHERE key = ?", (key,))
            except SQL_ERRORS as exc:
                raise self._wrap("delete the metadata", exc) from exc
            if key == REQUEST_RETENTION_SETTING:
                self._request_retention_days = None
        return int(cursor.rowcount) > 0

    # -- maintenance -------------------------------------------------------------------------------
    def vacuum(self) -> None:
        """Rebuild the file compactly (``VACUUM``) and fold the WAL back into it."""
        with self.lock:
            db = self.db
            try:
                conn = db.thread_connection()
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
                conn.execute("VACUUM")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except SQL_ERRORS as exc:
                raise self._wrap("vacuum the database", exc) from exc

    def size(self) -> int:
        """Bytes the database takes on disk: the file plus its write-ahead log."""
        with self.lock:
            self.db  # noqa: B018 - refuses a closed database, as every call does
            total = 0
            for part in (self._path, Path(f"{self._path}-wal")):
                with contextlib.suppress(FileNotFoundError):
                    total += part.stat().st_size
            return total

    def count_rows(self) -> dict[str, int]:
        """Rows per table: ``{"metrics_history": n, "models": n, "metadata": n, "requests": n, ...}``."""
        with self.lock:
            db = self.db
            try:
                conn = db.thread_connection()
                return {
                    table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                    for table in TABLE_NAMES
                }
            except SQL_ERRORS as exc:
                raise self._wrap("count the rows", exc) from exc
