"""The metrics sampler: one sample per interval, gathered off the GUI thread, saved and broadcast.

A ``QTimer`` on the owner's thread (normally the GUI thread) ticks; each tick reads the instance
manager's figures there (cheap getters on an object that lives there) and asks a worker ``QObject``
living in its own ``QThread`` to gather the system and GPU readings and save them. The result comes
back by queued signal. At most one sample is in flight: a tick that finds the previous sample still
running is skipped and counted, so a stalled driver never queues up work.

When the instance figures' provider is also an :class:`InstanceSampleSource` (the instance manager
is), each tick also takes one ``instance_samples`` row per active instance there, and the worker
stores them with the sample's timestamp, in the same transaction as the ``metrics_history`` row.

QtCore only, so it runs under a plain ``QCoreApplication`` as well as under the GUI.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from PySide6.QtCore import QCoreApplication, QDeadlineTimer, QObject, Qt, QThread, QTimer, Signal, Slot

from llamadash.core.metrics import InstanceFigures, InstanceStats, MetricsCollector, Sample

__all__ = [
    "MAX_INTERVAL_S",
    "MIN_INTERVAL_S",
    "InstanceSampleSource",
    "MetricsSampler",
    "check_interval",
    "save_instance_samples_to_database",
    "save_to_database",
]

_log = logging.getLogger(__name__)

MIN_INTERVAL_S = 0.25
MAX_INTERVAL_S = 10.0

SaveFunction = Callable[[dict[str, Any]], object]
SaveRowsFunction = Callable[[Sequence[dict[str, Any]]], object]
Transaction = Callable[[], AbstractContextManager[object]]


@runtime_checkable
class InstanceSampleSource(InstanceStats, Protocol):
    """An :class:`~llamadash.core.metrics.InstanceStats` that also gives per-instance samples."""

    def instance_samples(self) -> list[dict[str, Any]]:
        """One ``instance_samples`` row (without ``timestamp``) per active instance; a cheap getter."""
        ...


def save_to_database(row: dict[str, Any]) -> None:
    """Save one sample row with ``database.save_metrics`` (which also drops rows past retention)."""
    from llamadash.core import database

    database.save_metrics(row)


def save_instance_samples_to_database(rows: Sequence[dict[str, Any]]) -> None:
    """Save per-instance sample rows with ``database.save_instance_samples``."""
    from llamadash.core import database

    database.save_instance_samples(rows)


def database_transaction() -> AbstractContextManager[object]:
    """``database.transaction()``: the sample's rows are kept together or not at all."""
    from llamadash.core import database

    return database.transaction()


def check_interval(seconds: float) -> float:
    """Return ``seconds`` as a float if it is an allowed sampling interval.

    Raises:
        ValueError: If it is not a number from 0.25 to 10 seconds.
    """
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(seconds, bool) or not (MIN_INTERVAL_S <= value <= MAX_INTERVAL_S):
        raise ValueError(
            f"the sampling interval must be from {MIN_INTERVAL_S} to {MAX_INTERVAL_S:g} seconds, not {seconds!r}"
        )
    return value


class _SampleWorker(QObject):
    """Lives on the sampler's thread; gathers and saves one sample per request."""

    done = Signal(object, float, str, object)
    """(sample or None, seconds spent, error text or "", save outcome): sent back to the sampler's
    thread. The save outcome is None when nothing was saved (no sample, or no save function), ""
    when the sample was saved, else why it was not."""

    def __init__(
        self,
        collector: MetricsCollector,
        save: SaveFunction | None,
        save_instances: SaveRowsFunction | None = None,
        transaction: Transaction | None = None,
    ) -> None:
        super().__init__()
        self._collector = collector
        self._save = save
        self._save_instances = save_instances
        self._transaction = transaction

    @Slot(object, object)
    def take_sample(self, instances: InstanceFigures, instance_rows: list[dict[str, Any]]) -> None:
        started = time.perf_counter()
        sample: Sample | None = None
        error = ""
        saved: str | None = None
        try:
            sample = self._collector.gather(instances)
        except Exception as exc:
            _log.exception("gathering a metrics sample failed")
            error = f"gathering a sample failed: {exc}"
        save, save_rows = self._save, self._save_instances
        rows = instance_rows if save_rows is not None else []
        if sample is not None and (save is not None or rows):
            for row in rows:
                row["timestamp"] = sample.timestamp  # the moment of the metrics row they go with
            transaction = self._transaction if save is not None and rows else None
            try:
                with transaction() if transaction is not None else contextlib.nullcontext():
                    if save is not None:
                        save(sample.as_row())
                    if rows and save_rows is not None:
                        save_rows(rows)
                saved = ""
            except Exception as exc:
                error = f"saving a sample failed: {exc}"
                saved = str(exc) or type(exc).__name__
        self.done.emit(sample, time.perf_counter() - started, error, saved)


class MetricsSampler(QObject):
    """Samples the dashboard metrics on a timer without blocking the thread that owns it.

    Args:
        collector: Gathers each sample; it is used from the worker thread only while sampling runs,
            and closed (NVML released) by :meth:`stop`.
        interval_s: Seconds between samples, 0.25 to 10.
        stats: The instance manager's figures, read on this object's thread at each tick; ``None``
            means no instance runs (0 models, 0 requests per minute).
        save: Persists one row; defaults to ``database.save_metrics``; ``None`` keeps nothing.
        save_instances: Persists the per-instance rows of a sample; defaults to
            ``database.save_instance_samples``; ``None`` keeps none.
        transaction: Wraps the saves of one sample when there are both (default:
            ``database.transaction``); ``None``: each save on its own.
        parent: The Qt parent.

    Raises:
        ValueError: If ``interval_s`` is out of range.
    """

    sampled = Signal(object)
    """A new :class:`~llamadash.core.metrics.Sample`, after it was saved (or failed to be)."""

    failed = Signal(str)
    """Gathering or saving a sample failed; the text says which and why. Sampling goes on."""

    saving_changed = Signal(bool, str)
    """The history started or stopped being saved: ``(False, reason)`` after a save failed (a full
    disk, a database locked too long: the reason says which), ``(True, "")`` once a save works
    again. Sent on changes only; sampling and the live readings go on either way."""

    tick_skipped = Signal(int)
    """A tick came while the previous sample was still running; carries the total skipped so far."""

    _request = Signal(object, object)
    """Private: asks the worker for one sample, carrying the tick's :class:`InstanceFigures` and
    per-instance rows."""

    def __init__(
        self,
        collector: MetricsCollector,
        *,
        interval_s: float = 1.0,
        stats: InstanceStats | None = None,
        save: SaveFunction | None = save_to_database,
        save_instances: SaveRowsFunction | None = save_instance_samples_to_database,
        transaction: Transaction | None = database_transaction,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._interval_s = check_interval(interval_s)
        self._collector = collector
        self._save = save
        self._save_instances = save_instances
        self._transaction = transaction
        self._stats = stats
        self._timer = QTimer(self)
        self._timer.setInterval(round(self._interval_s * 1000))
        self._timer.timeout.connect(self._on_tick)
        self._thread: QThread | None = None
        self._worker: _SampleWorker | None = None
        self._busy = False
        self._skipped = 0
        self._last_sample: Sample | None = None
        self._last_duration_s: float | None = None
        self._save_failing = False
        self._save_problem: str | None = None
        self._orphans: list[QThread] = []
        app = QCoreApplication.instance()
        if app is not None:
            # A QThread destroyed while running aborts the process: never leave one behind at exit.
            app.aboutToQuit.connect(self.stop)

    # -- configuration ------------------------------------------------------------------------------

    @property
    def interval_s(self) -> float:
        """Seconds between samples."""
        return self._interval_s

    def set_interval(self, seconds: float) -> None:
        """Change the sampling interval; takes effect from the next tick.

        Raises:
            ValueError: If ``seconds`` is not from 0.25 to 10.
        """
        self._interval_s = check_interval(seconds)
        self._timer.setInterval(round(self._interval_s * 1000))

    def set_instance_stats(self, stats: InstanceStats | None) -> None:
        """Take active models, requests per minute (and instance samples) from ``stats`` from the next tick on."""
        self._stats = stats

    @property
    def collector(self) -> MetricsCollector:
        """The collector, e.g. to change ``gpu_index`` or ``system.disk_path`` between samples."""
        return self._collector

    # -- state ------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the timer is running."""
        return self._timer.isActive()

    @property
    def skipped_ticks(self) -> int:
        """Ticks skipped because the previous sample was still running, since construction."""
        return self._skipped

    @property
    def last_sample(self) -> Sample | None:
        """The latest sample, or ``None`` before the first one."""
        return self._last_sample

    @property
    def save_problem(self) -> str | None:
        """Why the history is not being saved (the latest save failed), or None while it is."""
        return self._save_problem

    @property
    def last_duration_s(self) -> float | None:
        """Seconds the worker spent on the latest sample (gathering and saving)."""
        return self._last_duration_s

    # -- control ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread and the timer; the first sample comes one interval later.

        Starting a running sampler does nothing.
        """
        if self._thread is not None:
            return
        thread = QThread()
        thread.setObjectName("llamadash-sampler")
        worker = _SampleWorker(self._collector, self._save, self._save_instances, self._transaction)
        worker.moveToThread(thread)
        # The worker lives on `thread`, so these connections are queued: requests run there, results
        # come back here.
        self._request.connect(worker.take_sample)
        worker.done.connect(self._on_done)
        thread.finished.connect(worker.deleteLater)
        self._thread, self._worker = thread, worker
        self._busy = False
        thread.start()
        self._timer.start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Stop sampling and join the worker thread.

        Waits at most ``timeout_s`` for a sample in flight (it cannot be interrupted); a thread that
        does not finish by then is left to finish on its own, and closes the collector when it does.

        Returns:
            True if the thread was joined (or was not running).
        """
        self._timer.stop()
        thread, worker = self._thread, self._worker
        if thread is None:
            return True
        assert worker is not None
        self._request.disconnect(worker.take_sample)
        worker.done.disconnect(self._on_done)  # a late result must not arrive after stop()
        thread.quit()
        joined = thread.wait(QDeadlineTimer(round(timeout_s * 1000)))
        self._thread = self._worker = None
        self._busy = False
        if not joined:
            _log.warning("the metrics sampler thread did not stop within %.1f s", timeout_s)
            self._orphans.append(thread)  # keep the QThread object alive while its thread still runs
            # Release NVML on that thread once the sample in flight is done with it.
            thread.finished.connect(self._collector.close, Qt.ConnectionType.DirectConnection)
            if thread.isFinished():  # it finished between the wait and the connect
                self._collector.close()
            return False
        self._collector.close()
        return True

    # -- internals --------------------------------------------------------------------------------

    @Slot()
    def _on_tick(self) -> None:
        if self._busy:
            self._skipped += 1
            self.tick_skipped.emit(self._skipped)
            return
        self._busy = True
        self._request.emit(InstanceFigures.from_provider(self._stats), self._instance_rows())

    def _instance_rows(self) -> list[dict[str, Any]]:
        stats = self._stats
        if self._save_instances is None or not isinstance(stats, InstanceSampleSource):
            return []
        try:
            return [dict(row) for row in stats.instance_samples()]
        except Exception:  # the rows of one tick are lost, never the sample
            _log.exception("reading the per-instance samples failed")
            return []

    @Slot(object, float, str, object)
    def _on_done(self, sample: Sample | None, seconds: float, error: str, saved: str | None) -> None:
        self._busy = False
        self._last_duration_s = seconds
        if sample is not None:
            self._last_sample = sample
            self.sampled.emit(sample)
        if error:
            if not self._save_failing:
                _log.warning("%s", error)  # once per failure streak, not every second
            self._save_failing = True
            self.failed.emit(error)
        else:
            self._save_failing = False
        if saved is not None and (saved or None) != self._save_problem:
            self._save_problem = saved or None
            self.saving_changed.emit(not saved, saved)
