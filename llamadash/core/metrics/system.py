"""CPU, memory and disk readings through psutil; a reading psutil cannot give is ``None``."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["SystemMetrics", "SystemReading"]

_log = logging.getLogger(__name__)

# psutil counts CPU time in clock ticks (10 ms on Linux); over a shorter span the percentage is noise.
MIN_CPU_SPAN_S = 0.1


@dataclass(frozen=True, slots=True)
class SystemReading:
    """Whole-machine readings at one moment, each in percent (0–100) or ``None`` if unavailable.

    Attributes:
        cpu_percent: CPU busy time over all cores since the previous reading.
        memory_percent: Memory in use (psutil's ``virtual_memory().percent``: total minus available).
        disk_percent: Space used on the filesystem that holds the watched path.
    """

    cpu_percent: float | None
    memory_percent: float | None
    disk_percent: float | None


class SystemMetrics:
    """Reads CPU %, memory % and disk % without ever blocking to measure.

    CPU % is psutil's non-blocking ``cpu_percent(interval=None)``: the busy share since the previous
    call. The first call has nothing to compare with, so the constructor primes it, and a reading
    taken less than 0.1 s after the previous one is ``None`` rather than noise. psutil keeps that
    "previous call" in one module-wide slot, so nothing else in the process should call
    ``psutil.cpu_percent()`` without an interval.

    Args:
        disk_path: A path on the disk to watch: the models directory, or the data directory when no
            models directory is set. It need not exist yet; its nearest existing parent is measured.
        psutil_module: The psutil module, or a stand-in for tests.
        clock: Monotonic clock in seconds.
    """

    def __init__(
        self,
        disk_path: str | os.PathLike[str],
        *,
        psutil_module: ModuleType | Any | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if psutil_module is None:
            import psutil

            psutil_module = psutil
        self._psutil: Any = psutil_module
        self._clock = clock
        self.disk_path = Path(disk_path)
        self._last_cpu_call = self._clock()
        self._guarded(self._psutil.cpu_percent, interval=None)  # the priming call; its value means nothing

    @property
    def disk_path(self) -> Path:
        """The path whose filesystem ``disk_percent`` describes; may be changed between readings."""
        return self._disk_path

    @disk_path.setter
    def disk_path(self, value: str | os.PathLike[str]) -> None:
        self._disk_path = Path(value)

    def read(self) -> SystemReading:
        """Take one reading; cheap (tens of µs) and never blocks."""
        now = self._clock()
        cpu = self._guarded(self._psutil.cpu_percent, interval=None)
        if now - self._last_cpu_call < MIN_CPU_SPAN_S:
            cpu = None
        self._last_cpu_call = now
        memory = self._guarded(self._psutil.virtual_memory)
        disk = self._guarded(self._psutil.disk_usage, str(_existing(self._disk_path)))
        return SystemReading(
            cpu_percent=_percent(cpu),
            memory_percent=_percent(getattr(memory, "percent", None)),
            disk_percent=_percent(getattr(disk, "percent", None)),
        )

    def _guarded(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (OSError, RuntimeError) as exc:
            # psutil.Error derives from Exception only, so name it as well as the OS errors.
            _log.debug("psutil %s failed: %s", getattr(function, "__name__", function), exc)
            return None
        except Exception as exc:
            if isinstance(exc, getattr(self._psutil, "Error", ())):
                _log.debug("psutil %s failed: %s", getattr(function, "__name__", function), exc)
                return None
            raise


def _existing(path: Path) -> Path:
    """The path itself, or its nearest existing parent (a models directory not created yet)."""
    path = path.expanduser()
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return path


def _percent(value: Any) -> float | None:
    if value is None:
        return None
    return min(100.0, max(0.0, float(value)))
