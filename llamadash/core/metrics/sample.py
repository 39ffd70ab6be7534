"""One dashboard sample (system, GPU and instance figures), how to gather it, and the history helpers.

Nothing here imports the database at module import time: the GPU check script runs this package on
machines that have neither peewee nor Qt.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Protocol, TypeVar, runtime_checkable

from llamadash.core.metrics.nvml import GpuReading, Nvml
from llamadash.core.metrics.system import SystemMetrics

__all__ = [
    "GAP_FACTOR",
    "InstanceFigures",
    "InstanceStats",
    "MetricsCollector",
    "Sample",
    "dashboard_start_time_ms",
    "load_history",
    "run_starts",
    "split_on_gaps",
]

_log = logging.getLogger(__name__)

GAP_FACTOR = 2.5
"""Consecutive samples further apart than this many intervals are drawn with a gap between them."""
_NEIGHBOUR_STEPS = 5
"""How many steps on each side of a long step :func:`split_on_gaps` looks at to judge it."""


@runtime_checkable
class InstanceStats(Protocol):
    """What the sampler needs from the instance manager (which will implement it).

    Both methods are called on the GUI thread once per sample, so they must be cheap getters.
    """

    def active_models(self) -> int:
        """How many llama-server instances are running now."""
        ...

    def requests_per_minute(self) -> float:
        """Requests served per minute, summed over all instances."""
        ...


@dataclass(frozen=True, slots=True)
class InstanceFigures:
    """The instance manager's figures for one sample; ``None`` where the provider failed.

    Attributes:
        active_models: Instances running.
        requests_per_minute: Requests per minute over all instances.
    """

    active_models: int | None = 0
    requests_per_minute: float | None = 0.0

    @classmethod
    def from_provider(cls, stats: InstanceStats | None) -> InstanceFigures:
        """Ask ``stats`` for its figures; with no provider no instance runs, so the figures are 0.

        A provider that raises gives ``None`` for that figure: a sample is never lost to it.
        """
        if stats is None:
            return cls()
        return cls(
            active_models=_ask(stats.active_models, int),
            requests_per_minute=_ask(stats.requests_per_minute, float),
        )


NO_INSTANCES = InstanceFigures()


@dataclass(frozen=True, slots=True)
class Sample:
    """Everything the dashboard shows for one moment.

    The flat fields are the columns of ``metrics_history`` (see :meth:`as_row`); the ``gpu_*`` ones
    describe the GPU at ``gpu_index`` and are ``None`` when there is no such GPU. ``gpus`` keeps every
    GPU's readings for the UI.

    Attributes:
        timestamp: When the sample was taken, Unix time in milliseconds.
        cpu_usage: CPU busy %, over all cores.
        memory_usage: Memory used %.
        disk_usage: Disk used % of the models (or data) directory's filesystem.
        gpu_usage: Utilization % of the chosen GPU.
        gpu_temperature: Its temperature in °C.
        gpu_memory_used: Its memory in use in MB (MiB, as nvidia-smi).
        gpu_memory_total: Its total memory in MB.
        gpu_power_usage: Its power draw in W.
        active_models: Instances running.
        uptime: Seconds since the dashboard started; ``None`` if the start time is unknown.
        requests_per_minute: Requests per minute over all instances.
        gpus: Every GPU's readings, in NVML index order.
        gpu_index: The index of the GPU the ``gpu_*`` fields describe.
    """

    timestamp: int
    cpu_usage: float | None = None
    memory_usage: float | None = None
    disk_usage: float | None = None
    gpu_usage: float | None = None
    gpu_temperature: float | None = None
    gpu_memory_used: float | None = None
    gpu_memory_total: float | None = None
    gpu_power_usage: float | None = None
    active_models: int | None = None
    uptime: int | None = None
    requests_per_minute: float | None = None
    gpus: tuple[GpuReading, ...] = field(default=())
    gpu_index: int = 0

    def as_row(self) -> dict[str, Any]:
        """The sample as the dict ``database.save_metrics`` takes (timestamp included)."""
        return {
            "timestamp": self.timestamp,
            "cpu_usage": self.cpu_usage,
            "memory_usage": self.memory_usage,
            "disk_usage": self.disk_usage,
            "gpu_usage": self.gpu_usage,
            "gpu_temperature": self.gpu_temperature,
            "gpu_memory_used": self.gpu_memory_used,
            "gpu_memory_total": self.gpu_memory_total,
            "gpu_power_usage": self.gpu_power_usage,
            "active_models": self.active_models,
            "uptime": self.uptime,
            "requests_per_minute": self.requests_per_minute,
        }


class MetricsCollector:
    """Gathers one :class:`Sample` from psutil and NVML; pure Python, usable without Qt.

    Gathering costs well under a millisecond on a healthy machine, but the first call initialises
    NVML (about 100 ms) and a sick driver can stall, so the sampler runs it on a worker thread.

    Args:
        disk_path: A path on the disk whose usage is shown: the models directory, or the data
            directory when none is set. Settable later through ``system.disk_path``.
        start_time_ms: When the dashboard started (Unix ms), the origin of ``uptime``; ``None`` reads
            ``server_start_time`` from the database metadata on first use (and keeps trying while the
            database has none).
        gpu_index: The GPU whose readings fill the ``gpu_*`` columns.
        system: A ready :class:`SystemMetrics` (tests); built from ``disk_path`` when ``None``.
        nvml: A ready :class:`Nvml` (tests); a lazily initialised one when ``None``.
        clock_ms: Wall clock in Unix ms, for timestamps and uptime.
    """

    def __init__(
        self,
        disk_path: str | os.PathLike[str] = ".",
        *,
        start_time_ms: int | None = None,
        gpu_index: int = 0,
        system: SystemMetrics | None = None,
        nvml: Nvml | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.system = system if system is not None else SystemMetrics(disk_path)
        self.nvml = nvml if nvml is not None else Nvml()
        self.gpu_index = gpu_index
        self._start_time_ms = start_time_ms
        self._clock_ms = clock_ms or _now_ms

    @property
    def start_time_ms(self) -> int | None:
        """The origin of ``uptime`` (Unix ms), or ``None`` while it is unknown."""
        if self._start_time_ms is None:
            self._start_time_ms = dashboard_start_time_ms()
        return self._start_time_ms

    def gather(self, instances: InstanceFigures = NO_INSTANCES) -> Sample:
        """Take one sample now.

        Args:
            instances: The instance manager's figures, read by the caller (on the GUI thread, where
                the manager lives). The default means no instance is running.

        Returns:
            The sample; readings that could not be taken are ``None``.
        """
        now = self._clock_ms()
        system = self.system.read()
        gpus = tuple(self.nvml.read_all())
        gpu_index = self.gpu_index  # read once: the GUI may change it while this runs on the worker
        chosen = next((gpu for gpu in gpus if gpu.index == gpu_index), None)
        start = self.start_time_ms
        return Sample(
            timestamp=now,
            cpu_usage=system.cpu_percent,
            memory_usage=system.memory_percent,
            disk_usage=system.disk_percent,
            gpu_usage=chosen.utilization if chosen else None,
            gpu_temperature=chosen.temperature if chosen else None,
            gpu_memory_used=chosen.memory_used_mb if chosen else None,
            gpu_memory_total=chosen.memory_total_mb if chosen else None,
            gpu_power_usage=chosen.power_w if chosen else None,
            active_models=instances.active_models,
            uptime=None if start is None else max(0, (now - start) // 1000),
            requests_per_minute=instances.requests_per_minute,
            gpus=gpus,
            gpu_index=gpu_index,
        )

    def close(self) -> None:
        """Release NVML."""
        self.nvml.shutdown()


def dashboard_start_time_ms() -> int | None:
    """``server_start_time`` from the database metadata (Unix ms), or ``None`` if unset or unreadable."""
    try:
        from llamadash.core import database
    except ImportError:  # peewee missing (e.g. the GPU check machine): there is no database
        return None
    try:
        value = database.get_metadata("server_start_time")
    except Exception as exc:
        _log.debug("cannot read server_start_time: %s", exc)
        return None
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        _log.warning("server_start_time in the database is not a number: %r", value)
        return None


def load_history(minutes: float = 10) -> list[dict[str, Any]]:
    """The last ``minutes`` of saved samples, oldest first, as dicts of the table's columns."""
    from llamadash.core import database

    return database.get_metrics_history(minutes)


Row = TypeVar("Row", bound=Mapping[str, Any])


def split_on_gaps(
    rows: Sequence[Row], interval_s: float, *, key: str = "timestamp", factor: float = GAP_FACTOR
) -> list[list[Row]]:
    """Split a time series into runs, breaking wherever samples are missing, so charts draw a gap.

    A step is a gap when it is longer than ``factor`` sampling intervals. Saved rows may have been
    sampled at a longer interval than ``interval_s`` (the setting was lowered since): where the rows
    around a step were saved further apart, their own spacing is the interval: the lower median of
    the five steps before the step, or of the five after it, whichever is longer. So a gap or two
    among them does not count, nor does a change of interval (history saved at 5 s, then at 1 s).

    Args:
        rows: Samples ordered oldest first, each with a Unix-ms timestamp under ``key``.
        interval_s: The sampling interval in seconds (the shortest the rows are judged by).
        key: The timestamp's key.
        factor: A step longer than ``factor`` intervals is a gap (the default allows for jitter and a
            skipped tick or two without breaking the line).

    Returns:
        The runs, in order; empty for no rows. Concatenated they are ``rows``.

    Raises:
        ValueError: If ``interval_s`` is not a positive finite number.
    """
    starts = run_starts([row[key] for row in rows], interval_s, factor=factor)
    return [list(rows[start:end]) for start, end in pairwise([*starts, len(rows)])]


def run_starts(stamps_ms: Sequence[float], interval_s: float, *, factor: float = GAP_FACTOR) -> list[int]:
    """Where each run of :func:`split_on_gaps` starts, as indexes into ``stamps_ms`` ([] for none).

    The same judgement of gaps, on the time stamps alone (Unix ms, oldest first): the charts read
    the history as columns and split them with this.

    Raises:
        ValueError: If ``interval_s`` is not a positive finite number.
    """
    if not (interval_s > 0 and math.isfinite(interval_s)):
        raise ValueError(f"interval_s must be a positive number of seconds, not {interval_s!r}")
    limit_ms = factor * interval_s * 1000
    steps = [later - earlier for earlier, later in pairwise(stamps_ms)]
    starts = [0] if len(stamps_ms) else []
    for i, step in enumerate(steps):
        # Most steps are within the setting's limit: only a longer one is worth a look at its neighbours.
        if step > limit_ms:
            before = _lower_median(steps[max(0, i - _NEIGHBOUR_STEPS) : i])
            after = _lower_median(steps[i + 1 : i + 1 + _NEIGHBOUR_STEPS])
            if step > factor * max(before, after):  # longer than the setting's limit, and theirs
                starts.append(i + 1)
    return starts


def _lower_median(values: Sequence[float]) -> float:
    """The middle value (the lower of the two middle ones), 0 for no values."""
    return sorted(values)[(len(values) - 1) // 2] if values else 0.0


def _ask(getter: Callable[[], Any], kind: type) -> Any:
    try:
        return kind(getter())
    except Exception:
        _log.exception("the instance statistics provider failed; that figure is n/a for this sample")
        return None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
