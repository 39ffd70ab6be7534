"""The database API: the seed's functions in snake_case, plain dicts in and out.

One database is open per process, chosen by :func:`init_database`. Every function may be called
from any thread: Peewee keeps one SQLite connection per thread (opened on first use, with the
pragmas applied), and a process-wide re-entrant lock orders the calls so that closing, importing
or re-initialising never pulls a connection away under a running call. A worker thread that is
done with the database may call :func:`release_connection`; connections of threads that have
ended are closed when another thread connects, and :func:`close_database` closes them all.

Times (``timestamp``, ``created_at``, ``updated_at``) are Unix milliseconds. A missing metrics
reading is ``None`` (``NULL``), never 0. Every mistake a caller can make raises
:class:`DatabaseError` with a message meant for a person, and changes nothing.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import math
import numbers
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import peewee

from llamadash.core.db.errors import DatabaseError, DatabaseNotOpenError, DiskFullError
from llamadash.core.db.migrations import (
    file_mode_private,
    probe_file,
    remove_stale_staging_files,
    stored_version,
    upgrade_schema,
)
from llamadash.core.db.models import (
    METRICS_COLUMNS,
    METRICS_INPUT_COLUMNS,
    METRICS_INTEGER_COLUMNS,
    MODEL_COLUMNS,
    MODEL_STATUSES,
    NEW_DATABASE_PRAGMAS,
    PARAM_FIELDS,
    PRAGMAS,
    TABLE_NAMES,
    ModelConfig,
    database_proxy,
)
from llamadash.core.messages import (
    LOW_SPACE_BYTES,
    disk_full_text,
    free_bytes,
    is_no_space,
    short_repr,
    shorten,
)
from llamadash.core.params import ParamValueError, load_schema
from llamadash.core.paths import default_database_path, make_private_dir

log = logging.getLogger(__name__)

#: How long metrics are kept, in minutes (the seed's 10). ``init_database(retention_minutes=...)``
#: overrides it for one open database.
METRICS_RETENTION_MINUTES: float = 10.0
#: Run ``PRAGMA incremental_vacuum`` after this many ``save_metrics`` calls (10 minutes at 1 Hz):
#: retention frees a page now and then, returning them one call in 600 costs nothing noticeable.
INCREMENTAL_VACUUM_EVERY = 600
#: Seconds a call waits for another connection's write lock before failing.
BUSY_TIMEOUT_S = 5.0
#: The longest model name and type, in characters (a name is also a file name of its log).
MAX_NAME_LENGTH = 200
#: The longest ``custom_params``, as JSON text.
MAX_CUSTOM_PARAMS_LENGTH = 256 * 1024
#: The longest metadata value (window layouts and settings take a few KB).
MAX_METADATA_LENGTH = 1024 * 1024
#: Metadata keys that llamadash maintains itself and callers may not set or delete.
RESERVED_METADATA_KEYS = frozenset({"db_version"})


def now_ms() -> int:
    """The current time as Unix milliseconds."""
    return time.time_ns() // 1_000_000


# ------------------------------------------------------------------------------------------------
# connections
class TrackingSqliteDatabase(peewee.SqliteDatabase):
    """A Peewee ``SqliteDatabase`` (one connection per thread) that remembers every connection.

    Peewee only lets a thread close its own connection; :meth:`close_all` also closes those opened
    by other threads (``check_same_thread=False`` makes that legal), and a connection whose thread
    has ended is closed as soon as another thread connects.
    """

    def __init__(self, database: str, **kwargs: Any):
        self._opened: list[tuple[sqlite3.Connection, threading.Thread]] = []
        self._opened_lock = threading.Lock()
        super().__init__(database, **kwargs)

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection = super()._connect()  # type: ignore[misc]
        with self._opened_lock:
            alive = []
            for other, thread in self._opened:
                if thread.is_alive():
                    alive.append((other, thread))
                else:
                    other.close()
            alive.append((conn, threading.current_thread()))
            self._opened = alive
        return conn

    def _close(self, conn: sqlite3.Connection) -> None:
        with self._opened_lock:
            self._opened = [(c, t) for c, t in self._opened if c is not conn]
        conn.close()

    @property
    def open_connections(self) -> int:
        """How many connections are open (all threads)."""
        with self._opened_lock:
            return len(self._opened)

    def close_all(self) -> None:
        """Close the connections of every thread."""
        # this thread may be inside a transaction; its connection is closed below anyway
        with contextlib.suppress(peewee.PeeweeException):
            self.close()
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for conn, _thread in opened:
            conn.close()


def make_database(path: Path) -> TrackingSqliteDatabase:
    """A Peewee database on ``path`` with our pragmas on every connection (nothing is opened yet)."""
    return TrackingSqliteDatabase(
        str(path), pragmas=list(PRAGMAS), check_same_thread=False, timeout=BUSY_TIMEOUT_S
    )


@dataclass
class _OpenDatabase:
    db: TrackingSqliteDatabase
    path: Path
    retention_ms: int
    record_start: bool = True
    saves_since_vacuum: int = 0


_lock = threading.RLock()
_state: _OpenDatabase | None = None


def _require() -> _OpenDatabase:
    if _state is None:
        raise DatabaseNotOpenError("the database is not open: call init_database() first")
    return _state


def _wrap(action: str, exc: BaseException) -> DatabaseError:
    """The error to raise for a failed call: what could not be done, and why in plain words."""
    return describe_failure(f"could not {action}", exc, _state.path.parent if _state is not None else None)


#: SQLite's primary result codes (the low byte of an extended code) that name the cause.
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_IOERR = 10
_SQLITE_FULL = 13
#: What SQLite (or Peewee) says after a failed write, when the real cause was a full disk: a
#: commit that failed rolls back by itself, and the rollback that follows finds no transaction.
_DISK_SYMPTOMS = ("disk i/o error", "no transaction is active", "database or disk is full", "unable to open")


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and the errors it was raised from or during (Peewee's wrapper keeps the original)."""
    found: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        todo += [current.__cause__, current.__context__]
        todo += [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]
    return found


def _primary_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def describe_failure(what: str, exc: BaseException, folder: Path | None) -> DatabaseError:
    """A :class:`DatabaseError` for ``exc`` that says *why* in words: a full disk, a lock held too long.

    A full disk shows up as ``SQLITE_FULL``, ``ENOSPC``, or (on some file systems, and after the
    automatic rollback of a failed commit) as "disk I/O error" and "cannot rollback - no
    transaction is active"; the last two count as a full disk when the disk holding ``folder``
    has less than :data:`~llamadash.core.messages.LOW_SPACE_BYTES` left.

    Args:
        what: what failed, e.g. ``"could not save metrics"``.
        exc: the error raised by SQLite, Peewee or the OS.
        folder: the data folder (the database file's), whose disk is looked at.

    Returns:
        A :class:`DiskFullError` for a full disk, else a :class:`DatabaseError`.
    """
    causes = _causes(exc)
    codes = {_primary_code(c) for c in causes}
    texts = [str(c).lower() for c in causes]
    full = _SQLITE_FULL in codes or is_no_space(exc) or any("database or disk is full" in t for t in texts)
    if (
        not full
        and folder is not None
        and (_SQLITE_IOERR in codes or any(symptom in t for t in texts for symptom in _DISK_SYMPTOMS))
    ):
        free = free_bytes(folder)
        full = free is not None and free < LOW_SPACE_BYTES
    if full:
        where = folder if folder is not None else "the database"
        return DiskFullError(
            f"{what}: {disk_full_text(where)}; nothing of this was saved. Free some space there "
            "(llamadash saves again by itself once there is room)"
        )
    if codes & {_SQLITE_BUSY, _SQLITE_LOCKED} or any("database is locked" in t for t in texts):
        return DatabaseError(
            f"{what}: the database is busy: another llamadash (or another program) held it locked for "
            f"more than {BUSY_TIMEOUT_S:g} s; try again"
        )
    # the first error is the one the user's call met; a rollback's complaint about it is noise
    original = next((c for c in causes if "no transaction is active" not in str(c)), exc)
    return DatabaseError(f"{what}: {shorten(str(original), 400)}")


#: What the driver raises on a failed statement (OverflowError: an integer beyond 64 bits).
_SQL_ERRORS = (sqlite3.Error, peewee.PeeweeException, OverflowError)


# ------------------------------------------------------------------------------------------------
# lifecycle
def _create_database_file(path: Path) -> None:
    """Create an empty database file: private, incremental auto-vacuum, WAL mode."""
    if not path.exists():
        # SQLite gives the -wal and -shm files the mode of the database file, so creating the
        # file 0o600 before SQLite sees it keeps all three private (POSIX; ignored on Windows).
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            pass  # another process (a second command started at the same moment) made it first
        else:
            os.close(fd)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for name, value in NEW_DATABASE_PRAGMAS:
            conn.execute(f"PRAGMA {name} = {value}").fetchall()
    finally:
        conn.close()


def _open_locked(path: Path, retention_ms: int, record_start: bool = True) -> Path:
    global _state
    if path.is_dir():
        raise DatabaseError(f"{path} is a folder; give the database file's path")
    try:
        make_private_dir(path.parent)
        if not path.exists() or path.stat().st_size == 0:
            _create_database_file(path)
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
        now = now_ms()
        upgrade_schema(db, now)
        if record_start:
            with db.atomic():
                _set_metadata_row(db.connection(), "server_start_time", str(now), now)
        file_mode_private(path)
    except DatabaseError as exc:
        db.close_all()
        failure = describe_failure(f"cannot open the database {path}", exc, path.parent)
        if isinstance(failure, DiskFullError):
            raise failure from exc
        raise
    except _SQL_ERRORS as exc:
        db.close_all()
        raise describe_failure(f"cannot open the database {path}", exc, path.parent) from exc
    except BaseException:
        db.close_all()
        raise
    _state = _OpenDatabase(db=db, path=path, retention_ms=retention_ms, record_start=record_start)
    database_proxy.initialize(db)
    return path


def _close_locked() -> None:
    global _state
    if _state is None:
        return
    state, _state = _state, None
    database_proxy.initialize(None)
    state.db.close_all()


def _retention_ms(retention_minutes: float | None) -> int:
    minutes = METRICS_RETENTION_MINUTES if retention_minutes is None else retention_minutes
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes > 0:
        raise DatabaseError(f"retention_minutes must be a positive number, got {short_repr(minutes)}")
    if not math.isfinite(minutes):
        raise DatabaseError(f"retention_minutes must be finite, got {short_repr(minutes)}")
    return round(minutes * 60_000)


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
    retention = _retention_ms(retention_minutes)
    with _lock:
        _close_locked()
        if path is not None:
            target = Path(path).expanduser().absolute()
        else:
            try:
                target = default_database_path(data_dir)
            except OSError as exc:
                raise DatabaseError(f"cannot use the data directory: {exc}") from exc
        return _open_locked(target, retention, record_start)


def close_database() -> None:
    """Close the database (all threads' connections); safe to call when it is not open."""
    with _lock:
        _close_locked()


def release_connection() -> None:
    """Close the calling thread's connection (a worker that is done); the next call reopens one."""
    with _lock:
        if _state is not None:
            _state.db.close()


def is_open() -> bool:
    """Whether :func:`init_database` has opened a database."""
    return _state is not None


def get_database_path() -> Path:
    """The open database's file."""
    with _lock:
        return _require().path


def get_db_version() -> int:
    """The open database's schema version (``metadata.db_version``)."""
    with _lock:
        state = _require()
        try:
            version = stored_version(state.db)
        except _SQL_ERRORS as exc:
            raise _wrap("read the database version", exc) from exc
        if version is None:
            raise DatabaseError("the database has no version (its tables are missing)")
        return version


# ------------------------------------------------------------------------------------------------
# metrics
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
_CREATED_AT_INDEX = METRICS_INPUT_COLUMNS.index("created_at")
_TIMESTAMP_INDEX = METRICS_INPUT_COLUMNS.index("timestamp")
_METRICS_INPUT_SET = frozenset(METRICS_INPUT_COLUMNS)
_METRICS_KINDS = tuple((c, c in METRICS_INTEGER_COLUMNS) for c in METRICS_INPUT_COLUMNS)

#: The SQL that :func:`save_metrics` and :func:`get_metrics_history` run (the benchmark replays it).
METRICS_SQL = {
    "insert": _METRICS_INSERT_SQL,
    "expire": _METRICS_EXPIRE_SQL,
    "history": _METRICS_HISTORY_SQL,
    "metadata_update": _METADATA_UPDATE_SQL,
    "metadata_insert": _METADATA_INSERT_SQL,
}


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _metric_value(column: str, is_integer: bool, value: Any) -> Any:
    kind = type(value)
    if kind is float:
        if math.isnan(value):  # SQLite has no NaN; it is a missing reading
            return None
        if value in (math.inf, -math.inf):
            raise DatabaseError(f"metrics value {column} must be finite, got {short_repr(value)}")
        return round(value) if is_integer else value
    if kind is int:
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise DatabaseError(f"metrics value {column} is too large to store, got {short_repr(value)}")
        return value
    if kind is bool or not isinstance(value, numbers.Real):
        raise DatabaseError(f"metrics value {column} must be a number or None, got {short_repr(value)}")
    return _metric_value(column, is_integer, float(value))


def _metrics_row(metrics: Mapping[str, Any]) -> list[Any]:
    if not isinstance(metrics, Mapping):
        raise DatabaseError(f"save_metrics expects a dict of readings, got {type(metrics).__name__}")
    if not _METRICS_INPUT_SET.issuperset(metrics):
        unknown = sorted(str(key) for key in metrics if key not in _METRICS_INPUT_SET)
        raise DatabaseError(
            f"unknown metrics key(s): {', '.join(unknown)}; known keys: {', '.join(METRICS_INPUT_COLUMNS)}"
        )
    row = []
    get = metrics.get
    for column, is_integer in _METRICS_KINDS:
        value = get(column)
        row.append(None if value is None else _metric_value(column, is_integer, value))
    now = None
    if row[_TIMESTAMP_INDEX] is None:
        now = now_ms()
        row[_TIMESTAMP_INDEX] = now
    if row[_CREATED_AT_INDEX] is None:
        row[_CREATED_AT_INDEX] = now if now is not None else now_ms()
    return row


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
    row = _metrics_row(metrics)
    created_at = row[_CREATED_AT_INDEX]
    with _lock:
        state = _require()
        db = state.db
        try:
            conn = db.connection()
            with db.atomic("IMMEDIATE"):
                row_id = conn.execute(_METRICS_INSERT_SQL, row).lastrowid
                conn.execute(_METRICS_EXPIRE_SQL, (created_at - state.retention_ms,))
                _set_metadata_row(conn, "last_metrics_save", str(created_at), created_at)
            state.saves_since_vacuum += 1
            if state.saves_since_vacuum >= INCREMENTAL_VACUUM_EVERY:
                state.saves_since_vacuum = 0
                # executescript steps the pragma to the end; execute() would free a single page.
                conn.executescript("PRAGMA incremental_vacuum;")
        except _SQL_ERRORS as exc:
            raise _wrap("save metrics", exc) from exc
    return row_id


def get_metrics_history(minutes: float = 10) -> list[dict[str, Any]]:
    """The metrics samples of the last ``minutes`` (by ``timestamp``), oldest first.

    Each dict has every ``metrics_history`` column; a missing reading is None.
    """
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes > 0:
        raise DatabaseError(f"minutes must be a positive number, got {short_repr(minutes)}")
    cutoff = now_ms() - round(minutes * 60_000) if math.isfinite(minutes) else -(2**63)
    columns = METRICS_COLUMNS
    with _lock:
        state = _require()
        try:
            rows = state.db.connection().execute(_METRICS_HISTORY_SQL, (cutoff,)).fetchall()
        except _SQL_ERRORS as exc:
            raise _wrap("read the metrics history", exc) from exc
    return [dict(zip(columns, row, strict=False)) for row in rows]


# ------------------------------------------------------------------------------------------------
# models
_MODEL_INPUT = frozenset(MODEL_COLUMNS) - {"id"}
_MODEL_ID = ModelConfig._meta.primary_key


def _unknown_key_message(keys: list[str]) -> str:
    schema = load_schema()
    hints = []
    for key in keys:
        param = schema.by_flag.get(key) or schema.by_column.get(key.lstrip("-").replace("-", "_"))
        if key == "id":
            hints.append("id is assigned by the database")
        elif param is not None:
            hints.append(f"{short_repr(key)} is the column {short_repr(param.column)}")
        else:
            close = difflib.get_close_matches(key[:100], sorted(_MODEL_INPUT), n=1)
            if close:
                hints.append(f"did you mean {short_repr(close[0])} instead of {short_repr(key)}?")
    text = f"unknown model setting(s): {', '.join(short_repr(k) for k in keys[:10])}"
    if hints:
        text += " (" + "; ".join(hints) + ")"
    return (
        text + ". Extra llama-server flags belong in custom_params, e.g. "
        "{'custom_params': {'--some-flag': 'value'}}"
    )


def _check_text(column: str, value: Any) -> str:
    if not isinstance(value, str):
        raise DatabaseError(f"model {column} must be text, got {short_repr(value)}")
    text = value.strip()
    if not text:
        raise DatabaseError(f"model {column} must not be empty")
    if len(text) > MAX_NAME_LENGTH:
        raise DatabaseError(
            f"model {column} must be at most {MAX_NAME_LENGTH} characters, got {len(text):,} "
            f"({short_repr(text)})"
        )
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text):
        # a newline in a name would end the comment line it is written in (shell export, INI, logs)
        raise DatabaseError(
            f"model {column} must not contain control characters (newlines, tabs), got {short_repr(text)}"
        )
    return text


def _check_ms(column: str, value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DatabaseError(
            f"{column} must be Unix milliseconds (a whole number >= 0), got {short_repr(value)}"
        )
    return value


def _check_custom_params(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Mapping):
        bad_keys = [k for k in value if not isinstance(k, str)]
        if bad_keys:
            raise DatabaseError(f"custom_params keys must be text (flags), got {short_repr(bad_keys[0])}")
        value = dict(value)
    elif isinstance(value, (list, tuple)):
        bad = [v for v in value if not isinstance(v, str)]
        if bad:
            raise DatabaseError(
                f"custom_params as a list must hold command-line strings only, got {short_repr(bad[0])}"
            )
        value = list(value)
    else:
        raise DatabaseError(
            "custom_params must be a dict like {'--flag': value} or a list of command-line "
            f"strings, got {short_repr(value)}"
        )
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DatabaseError(f"custom_params must be JSON-serialisable: {exc}") from None
    if len(text) > MAX_CUSTOM_PARAMS_LENGTH:
        raise DatabaseError(
            f"custom_params are {len(text):,} characters long as JSON; at most {MAX_CUSTOM_PARAMS_LENGTH:,} "
            "are kept (put long text in a file and give its path)"
        )
    return value


def _model_row(data: Any, *, partial: bool) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise DatabaseError(f"a model must be given as a dict, got {type(data).__name__}")
    unknown = [str(key) for key in data if key not in _MODEL_INPUT]
    if unknown:
        raise DatabaseError(_unknown_key_message(unknown))
    row: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("name", "type"):
            row[key] = _check_text(key, value)
        elif key == "status":
            if value not in MODEL_STATUSES:
                allowed = ", ".join(MODEL_STATUSES)
                raise DatabaseError(f"model status must be one of {allowed}, got {short_repr(value)}")
            row[key] = value
        elif key in ("created_at", "updated_at"):
            row[key] = _check_ms(key, value)
        elif key == "custom_params":
            row[key] = _check_custom_params(value)
        else:
            try:
                row[key] = PARAM_FIELDS[key].param.coerce(value)
            except ParamValueError as exc:
                raise DatabaseError(f"invalid value for {exc.column}: {exc.message}") from None
    if not partial:
        missing = [key for key in ("name", "type", "status") if key not in row]
        if missing:
            raise DatabaseError(f"a model needs {', '.join(missing)}")
    return row


def _integrity_error(exc: Exception, row: dict[str, Any]) -> DatabaseError:
    if "models.name" in str(exc) and "name" in row:
        name = short_repr(row["name"])
        return DatabaseError(f"a model named {name} already exists; model names must be unique")
    return DatabaseError(f"the model was not saved: {exc}")


def _check_id(model_id: Any) -> int:
    if isinstance(model_id, bool) or not isinstance(model_id, int):
        raise DatabaseError(f"a model id is a whole number, got {short_repr(model_id)}")
    return model_id


def _model_dicts(query: Any) -> list[dict[str, Any]]:
    return [dict(zip(MODEL_COLUMNS, row, strict=True)) for row in query.tuples()]


def save_model(model: Mapping[str, Any]) -> int:
    """Add a model configuration; returns its id.

    Args:
        model: ``name``, ``type``, ``status`` (required), any parameter column (validated against
            the schema), ``custom_params`` and optionally ``created_at``/``updated_at`` (default
            now). Leading/trailing spaces of ``name`` and ``type`` are dropped.

    Raises:
        DatabaseError: an unknown key, a wrong value, a missing or empty name/type/status, a status
            outside running/stopped/loading/error, or a name that is already taken.
    """
    row = _model_row(model, partial=False)
    now = now_ms()
    row.setdefault("created_at", now)
    row.setdefault("updated_at", now)
    with _lock:
        state = _require()
        try:
            with state.db.atomic():
                return int(ModelConfig.insert(row).execute())
        except peewee.IntegrityError as exc:
            raise _integrity_error(exc, row) from None
        except _SQL_ERRORS as exc:
            raise _wrap("save the model", exc) from exc


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
    with _lock:
        state = _require()
        try:
            with state.db.atomic("IMMEDIATE" if immediate else None):
                yield
        except _SQL_ERRORS as exc:
            raise _wrap("finish the changes", exc) from exc


def get_models(status: str | None = None, type: str | None = None) -> list[dict[str, Any]]:
    """All model configurations, optionally filtered, oldest first (by ``created_at``, then id).

    Each dict holds every column: unset parameters are None, ``custom_params`` is what was stored
    (a dict, or a list of strings; ``{}`` when nothing was).
    """
    if status is not None and status not in MODEL_STATUSES:
        raise DatabaseError(f"status must be one of {', '.join(MODEL_STATUSES)}, got {short_repr(status)}")
    if type is not None and not isinstance(type, str):
        raise DatabaseError(f"type must be text, got {short_repr(type)}")
    with _lock:
        _require()
        query = ModelConfig.select()
        if status is not None:
            query = query.where(ModelConfig.status == status)
        if type is not None:
            query = query.where(ModelConfig.type == type)
        try:
            return _model_dicts(query.order_by(ModelConfig.created_at, _MODEL_ID))
        except _SQL_ERRORS as exc:
            raise _wrap("read the models", exc) from exc


def _get_one(condition: Any) -> dict[str, Any] | None:
    rows = _model_dicts(ModelConfig.select().where(condition).limit(1))
    return rows[0] if rows else None


def get_model(model_id: int) -> dict[str, Any] | None:
    """The model with this id, or None."""
    model_id = _check_id(model_id)
    with _lock:
        _require()
        try:
            return _get_one(model_id == _MODEL_ID)
        except _SQL_ERRORS as exc:
            raise _wrap("read the model", exc) from exc


def get_model_by_name(name: str) -> dict[str, Any] | None:
    """The model with this name (surrounding spaces ignored), or None."""
    if not isinstance(name, str):
        raise DatabaseError(f"a model name is text, got {short_repr(name)}")
    with _lock:
        _require()
        try:
            return _get_one(ModelConfig.name == name.strip())
        except _SQL_ERRORS as exc:
            raise _wrap("read the model", exc) from exc


def update_model(model_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Change some columns of a model and set ``updated_at`` (now, unless given); returns the model.

    A parameter set to None is cleared (back to llama-server's default). An ``id`` key is allowed
    when it equals ``model_id`` (so a dict from :func:`get_model` can be sent back).

    Raises:
        DatabaseError: no such model, or the same mistakes :func:`save_model` refuses.
    """
    model_id = _check_id(model_id)
    if isinstance(changes, Mapping) and "id" in changes:
        if changes["id"] != model_id:
            raise DatabaseError(
                f"a model's id cannot be changed (got id {short_repr(changes['id'])} for model {model_id})"
            )
        changes = {k: v for k, v in changes.items() if k != "id"}
    row = _model_row(changes, partial=True)
    row.setdefault("updated_at", now_ms())
    with _lock:
        state = _require()
        try:
            with state.db.atomic():
                count = ModelConfig.update(row).where(model_id == _MODEL_ID).execute()
                if count == 0:
                    raise DatabaseError(f"there is no model with id {model_id}")
                updated = _get_one(model_id == _MODEL_ID)
        except peewee.IntegrityError as exc:
            raise _integrity_error(exc, row) from None
        except _SQL_ERRORS as exc:
            raise _wrap("update the model", exc) from exc
    assert updated is not None
    return updated


def delete_model(model_id: int) -> bool:
    """Delete a model; returns whether it existed."""
    model_id = _check_id(model_id)
    with _lock:
        _require()
        try:
            return ModelConfig.delete().where(model_id == _MODEL_ID).execute() > 0
        except _SQL_ERRORS as exc:
            raise _wrap("delete the model", exc) from exc


def delete_all_models() -> int:
    """Delete every model; returns how many there were."""
    with _lock:
        _require()
        try:
            return int(ModelConfig.delete().execute())
        except _SQL_ERRORS as exc:
            raise _wrap("delete the models", exc) from exc


def save_models(models: Sequence[Mapping[str, Any]]) -> list[int]:
    """Add many model configurations at once, all or none (one transaction); returns their ids.

    Each model is checked as :func:`save_model` checks it; the rows go in with one prepared
    statement instead of one query built per model (an import of 100,000 models). Inside a
    :func:`transaction` block it joins that transaction.

    Raises:
        DatabaseError: a model is refused (the message says which, by position and name), or a
            name is taken; then none of them was added.
    """
    rows = []
    now = now_ms()
    for number, model in enumerate(models, 1):
        try:
            row = _model_row(model, partial=False)
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
    with _lock:
        state = _require()
        row: dict[str, Any] = {}
        try:
            with state.db.atomic():
                conn = state.db.connection()
                for row in rows:
                    values: list[Any] = [None] * len(fields)  # only the columns set need converting
                    for column, value in row.items():
                        index, field = position[column]
                        values[index] = field.db_value(value)
                    ids.append(int(conn.execute(sql, values).lastrowid))
        except (peewee.IntegrityError, sqlite3.IntegrityError) as exc:
            raise _integrity_error(exc, row) from None
        except _SQL_ERRORS as exc:
            raise _wrap("save the models", exc) from exc
    return ids


# ------------------------------------------------------------------------------------------------
# metadata
def _set_metadata_row(conn: sqlite3.Connection, key: str, value: str, now: int) -> None:
    # UPDATE first: the key nearly always exists, and this needs no unique index on `key`
    # (a seed database might lack one), unlike an upsert.
    if conn.execute(_METADATA_UPDATE_SQL, (value, now, key)).rowcount == 0:
        conn.execute(_METADATA_INSERT_SQL, (key, value, now))


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key.strip():
        raise DatabaseError(f"a metadata key is non-empty text, got {short_repr(key)}")
    return key


def set_metadata(key: str, value: str | float) -> None:
    """Store a metadata value (numbers are stored as their text).

    Raises:
        DatabaseError: an empty key, a value that is not text or a number (None: use
            :func:`delete_metadata`), or a key llamadash maintains itself (``db_version``).
    """
    key = _check_key(key)
    if key in RESERVED_METADATA_KEYS:
        raise DatabaseError(f"{key} is maintained by llamadash and cannot be set")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DatabaseError(f"a metadata value is text or a number, got {short_repr(value)}")
    if len(str(value)) > MAX_METADATA_LENGTH:
        raise DatabaseError(
            f"the metadata value of {short_repr(key)} is {len(str(value)):,} characters long; "
            f"at most {MAX_METADATA_LENGTH:,} are kept"
        )
    with _lock:
        state = _require()
        try:
            with state.db.atomic():
                _set_metadata_row(state.db.connection(), key, str(value), now_ms())
        except _SQL_ERRORS as exc:
            raise _wrap("save the metadata", exc) from exc


def get_metadata(key: str) -> str | None:
    """The value stored under ``key``, or None."""
    key = _check_key(key)
    with _lock:
        state = _require()
        try:
            row = state.db.connection().execute("SELECT value FROM metadata WHERE key = ?", (key,)).fetchone()
        except _SQL_ERRORS as exc:
            raise _wrap("read the metadata", exc) from exc
    return None if row is None else row[0]


def delete_metadata(key: str) -> bool:
    """Delete a metadata key; returns whether it existed."""
    key = _check_key(key)
    if key in RESERVED_METADATA_KEYS:
        raise DatabaseError(f"{key} is maintained by llamadash and cannot be deleted")
    with _lock:
        state = _require()
        try:
            cursor = state.db.connection().execute("DELETE FROM metadata WHERE key = ?", (key,))
        except _SQL_ERRORS as exc:
            raise _wrap("delete the metadata", exc) from exc
    return cursor.rowcount > 0


# ------------------------------------------------------------------------------------------------
# maintenance
def vacuum_database() -> None:
    """Rebuild the database file compactly (``VACUUM``) and fold the WAL back into it."""
    with _lock:
        state = _require()
        try:
            conn = state.db.connection()
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except _SQL_ERRORS as exc:
            raise _wrap("vacuum the database", exc) from exc


def get_database_size() -> int:
    """Bytes the database takes on disk: the file plus its write-ahead log."""
    with _lock:
        path = _require().path
        total = 0
        for part in (path, Path(f"{path}-wal")):
            with contextlib.suppress(FileNotFoundError):
                total += part.stat().st_size
        return total


def count_rows() -> dict[str, int]:
    """Rows per table: ``{"metrics_history": n, "models": n, "metadata": n}``."""
    with _lock:
        state = _require()
        try:
            conn = state.db.connection()
            return {
                table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLE_NAMES
            }
        except _SQL_ERRORS as exc:
            raise _wrap("count the rows", exc) from exc
