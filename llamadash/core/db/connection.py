"""Connections to a database file: Peewee's per-thread connections, tracked; new files; failures in words.

:class:`TrackingSqliteDatabase` keeps one SQLite connection per thread (opened on first use, with
:data:`~llamadash.core.db.models.PRAGMAS` applied) and can close every thread's.
:func:`describe_failure` turns what SQLite, Peewee or the OS raised into a
:class:`~llamadash.core.db.errors.DatabaseError` that says why in plain words (a full disk, a lock
held too long).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import peewee

from llamadash.core.db.errors import DatabaseError, DiskFullError
from llamadash.core.db.models import NEW_DATABASE_PRAGMAS, PRAGMAS
from llamadash.core.messages import LOW_SPACE_BYTES, disk_full_text, free_bytes, is_no_space, shorten

#: Seconds a call waits for another connection's write lock before failing.
BUSY_TIMEOUT_S = 5.0


def now_ms() -> int:
    """The current time as Unix milliseconds."""
    return time.time_ns() // 1_000_000


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

    def thread_connection(self) -> sqlite3.Connection:
        """The calling thread's connection (opened on first use, with the pragmas applied)."""
        conn: sqlite3.Connection = self.connection()  # type: ignore[no-untyped-call]
        return conn

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


def run_sql(db: peewee.Database, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
    """Run one statement on the calling thread's connection of ``db`` (Peewee's ``execute_sql``)."""
    cursor: sqlite3.Cursor = db.execute_sql(sql, params)  # type: ignore[no-untyped-call]
    return cursor


def create_database_file(path: Path) -> None:
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
SQL_ERRORS = (sqlite3.Error, peewee.PeeweeException, OverflowError)
