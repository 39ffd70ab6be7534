"""Storing the request records of the instances: in batches, on a thread of its own.

Every request an instance's log tells about becomes a
:class:`~llamadash.core.requests_log.RequestRecord` on the GUI thread (see
:mod:`~llamadash.services.output_pipe`). :class:`RequestStore` collects them and hands them on in
batches, at most :data:`FLUSH_INTERVAL_S` after the first of a batch arrived or as soon as
:data:`BATCH_SIZE` have, to one worker thread that stores each batch in one transaction
(``database.save_requests``, which also adds to the daily totals). The GUI thread never waits for
SQLite: a write that waits for another process's lock (up to the database's busy timeout) or a slow
disk holds up only the worker. What cannot be stored is dropped with a warning (once per failure
streak), and while the worker is behind, at most :data:`MAX_WAITING` records wait: the oldest go
first. :meth:`RequestStore.close` stores what is left (bounded wait), for quitting.

QtCore only (the timer); the worker is a plain thread that touches nothing but the save function.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence

from PySide6.QtCore import QObject, QTimer

from llamadash.core.requests_log import RequestRecord

__all__ = ["BATCH_SIZE", "FLUSH_INTERVAL_S", "MAX_WAITING", "RequestStore", "save_to_database"]

_log = logging.getLogger(__name__)

#: A batch is handed to the worker this long after its first record at the latest...
FLUSH_INTERVAL_S = 1.0
#: ...or as soon as it holds this many records.
BATCH_SIZE = 50
#: Records waiting (in batches not yet stored) at most; beyond it the oldest are dropped.
MAX_WAITING = 20_000

SaveRecords = Callable[[Sequence[RequestRecord]], object]


def save_to_database(records: Sequence[RequestRecord]) -> None:
    """Store ``records`` in one transaction with ``database.save_requests`` (daily totals too)."""
    from llamadash.core import database

    database.save_requests([database.requests_row(record) for record in records])


class RequestStore(QObject):
    """Batches request records and stores them on a worker thread; see the module docstring.

    Args:
        save: Stores one batch (called on the worker thread); defaults to :func:`save_to_database`.
        flush_interval_s: The longest a record waits before its batch is handed on.
        batch_size: A batch this large is handed on at once.
        max_waiting: Records waiting at most (the oldest batch is dropped first).
        parent: The Qt parent.
    """

    def __init__(
        self,
        save: SaveRecords = save_to_database,
        *,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        batch_size: int = BATCH_SIZE,
        max_waiting: int = MAX_WAITING,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._save = save
        self._batch_size = max(1, batch_size)
        self._max_waiting = max(self._batch_size, max_waiting)
        self._batch: list[RequestRecord] = []
        self._queue: queue.Queue[list[RequestRecord] | None] = queue.Queue()
        self._lock = threading.Lock()  # guards the counts the worker changes
        self._waiting = 0  # records handed on and not yet stored
        self._thread: threading.Thread | None = None
        self._closed = False
        self._failing = False
        self.stored = 0
        """Records stored since construction."""
        self.dropped = 0
        """Records dropped since construction (their batch failed, or too many were waiting)."""
        self.batches = 0
        """Batches stored since construction."""
        self.last_error = ""
        """Why the latest batch could not be stored ("" once one is stored again)."""
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(max(0, round(flush_interval_s * 1000)))
        self._timer.timeout.connect(self.flush)

    @property
    def pending(self) -> int:
        """Records not stored yet (in the batch being collected and handed on)."""
        with self._lock:
            return len(self._batch) + self._waiting

    def add(self, record: RequestRecord) -> None:
        """Store ``record`` with the next batch (cheap: the GUI thread only appends)."""
        if self._closed:
            return
        self._batch.append(record)
        if len(self._batch) >= self._batch_size:
            self.flush()
        elif not self._timer.isActive():
            self._timer.start()

    def record(self, _model: str, record: object) -> None:
        """:meth:`add` for the manager's ``requestRecorded(model, record)``."""
        if isinstance(record, RequestRecord):
            self.add(record)

    def flush(self) -> None:
        """Hand the batch being collected to the worker now."""
        self._timer.stop()
        batch, self._batch = self._batch, []
        if not batch:
            return
        with self._lock:
            self._waiting += len(batch)
            over = self._waiting - self._max_waiting
        if over > 0:  # the worker is far behind (a locked or failing database): drop the oldest
            self._drop_waiting(over)
        self._queue.put(batch)
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="llamadash-requests", daemon=True)
            self._thread.start()

    def close(self, timeout_s: float = 5.0) -> bool:
        """Store what is left and end the worker, waiting at most ``timeout_s``.

        Returns:
            True if everything handed on was stored (or dropped) in time.
        """
        if self._closed:
            return self._thread is None or not self._thread.is_alive()
        self.flush()
        self._closed = True
        thread = self._thread
        if thread is None:
            return True
        self._queue.put(None)
        thread.join(max(0.0, timeout_s))
        if thread.is_alive():
            _log.warning("%d request records were not stored within %.1f s", self.pending, timeout_s)
            return False
        return True

    def _drop_waiting(self, count: int) -> None:
        dropped = 0
        while dropped < count:
            try:
                batch = self._queue.get_nowait()
            except queue.Empty:
                break
            if batch is None:  # never swallow the worker's end
                self._queue.put(None)
                break
            dropped += len(batch)
        if dropped:
            with self._lock:
                self._waiting -= dropped
                self.dropped += dropped
            _log.warning("%d request records dropped: the database is too far behind", dropped)

    def _work(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                break
            try:
                self._save(batch)
            except Exception as exc:
                with self._lock:
                    self._waiting -= len(batch)
                    self.dropped += len(batch)
                    self.last_error = str(exc) or type(exc).__name__
                if not self._failing:  # once per failure streak
                    _log.warning("storing %d request records failed: %s", len(batch), exc)
                self._failing = True
                continue
            with self._lock:
                self._waiting -= len(batch)
                self.stored += len(batch)
                self.batches += 1
                self.last_error = ""
            self._failing = False
        if self._save is save_to_database:
            from llamadash.core import database

            with contextlib.suppress(Exception):
                database.release_connection()  # this thread is done with it
