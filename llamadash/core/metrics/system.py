"""CPU, memory and disk readings through psutil; a reading psutil cannot give is ``None``."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
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
    taken less than 0.1 s after the previous one is ``None`` rather than noise. On Linux the
    readings come from /proc/stat and /proc/meminfo, kept open (the same figures as psutil's, at
    a tenth of the cost), and the "previous call" is this object's; elsewhere psutil keeps it in
    one module-wide slot, so nothing else in the process should call ``psutil.cpu_percent()``
    without an interval.

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
        self._proc: _ProcReadings | None = None
        if psutil_module is None:
            # On Linux the two /proc files psutil parses are read straight (one pread each, two
            # lines looked up): 15 µs instead of psutil's 150 µs, the better part of a sample.
            self._proc = _ProcReadings.open()
        # psutil is then needed for the disk only: imported at the first reading (on the sampler's
        # thread), not here, where the window makes this before its first paint (~10-20 ms).
        self._psutil_module: Any = psutil_module
        self._clock = clock
        self.disk_path = Path(disk_path)
        self._last_cpu_call = self._clock()
        self._cpu_percent()  # the priming call; its value means nothing

    @property
    def _psutil(self) -> Any:
        if self._psutil_module is None:
            import psutil

            self._psutil_module = psutil
        return self._psutil_module

    @property
    def disk_path(self) -> Path:
        """The path whose filesystem ``disk_percent`` describes; may be changed between readings."""
        return self._disk_path

    @disk_path.setter
    def disk_path(self, value: str | os.PathLike[str]) -> None:
        self._disk_path = Path(value)
        self._disk_str = str(self._disk_path.expanduser())  # one stat a reading while it exists

    def _disk_target(self) -> str:
        if os.path.exists(self._disk_str):
            return self._disk_str
        return str(_existing(self._disk_path))  # not created yet: its nearest existing parent

    def read(self) -> SystemReading:
        """Take one reading; cheap (tens of µs) and never blocks."""
        now = self._clock()
        cpu = self._cpu_percent()
        if now - self._last_cpu_call < MIN_CPU_SPAN_S:
            cpu = None
        self._last_cpu_call = now
        memory = self._memory_percent()
        disk = self._guarded(self._psutil.disk_usage, self._disk_target())
        return SystemReading(
            cpu_percent=_percent(cpu),
            memory_percent=_percent(memory),
            disk_percent=_percent(getattr(disk, "percent", None)),
        )

    def _cpu_percent(self) -> float | None:
        if self._proc is not None:
            try:
                return self._proc.cpu_percent()
            except (OSError, ValueError) as exc:
                _log.debug("reading /proc/stat failed (%s); psutil reads the CPU from now on", exc)
                self._proc.close()
                self._proc = None
                self._guarded(self._psutil.cpu_percent, interval=None)  # psutil's own priming call
                return None
        value: float | None = self._guarded(self._psutil.cpu_percent, interval=None)
        return value

    def _memory_percent(self) -> float | None:
        if self._proc is not None:
            try:
                return self._proc.memory_percent()
            except (OSError, ValueError) as exc:
                _log.debug("reading /proc/meminfo failed (%s); psutil reads the memory from now on", exc)
                self._proc.close()
                self._proc = None
        return getattr(self._guarded(self._psutil.virtual_memory), "percent", None)

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


class _ProcReadings:
    """psutil's CPU % and memory % on Linux, from /proc/stat and /proc/meminfo kept open.

    The same figures as psutil's: CPU busy % is the share of all CPU time since the previous call
    that was neither idle nor iowait (guest time is already in user time), memory % is
    ``(MemTotal - MemAvailable) / MemTotal``, both rounded to 0.1 as psutil rounds them.
    """

    def __init__(self, stat_fd: int, meminfo_fd: int) -> None:
        self._stat_fd = stat_fd
        self._meminfo_fd = meminfo_fd
        self._last: tuple[int, int] | None = None  # (all, busy) clock ticks at the previous call

    @classmethod
    def open(cls) -> _ProcReadings | None:
        """The reader, or ``None`` off Linux or where /proc does not read as expected."""
        if not sys.platform.startswith("linux"):
            return None
        fds: list[int] = []
        try:
            for name in ("/proc/stat", "/proc/meminfo"):
                fds.append(os.open(name, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))
            reader = cls(*fds)
            reader.memory_percent()  # both parse here, or psutil is used
            reader.cpu_percent()
            reader._last = None
            return reader
        except (OSError, ValueError):
            for fd in fds:
                os.close(fd)
            return None

    def cpu_percent(self) -> float:
        """Busy % since the previous call (0.0 on the first one, as psutil's first call)."""
        line = os.pread(self._stat_fd, 512, 0).split(b"\n", 1)[0]
        fields = line.split()
        if fields[0] != b"cpu" or len(fields) < 5:
            raise ValueError(f"unexpected /proc/stat line {line[:60]!r}")
        ticks = [int(field) for field in fields[1:]]
        # user nice system idle iowait irq softirq steal guest guest_nice: guest is counted in user
        total = sum(ticks[:8])
        busy = total - ticks[3] - ticks[4]
        last, self._last = self._last, (total, busy)
        if last is None:
            return 0.0
        all_delta, busy_delta = total - last[0], busy - last[1]
        if all_delta <= 0:
            return 0.0
        return round(min(100.0, max(0.0, 100.0 * busy_delta / all_delta)), 1)

    def memory_percent(self) -> float:
        """Memory in use %: total minus available, of the total."""
        text = os.pread(self._meminfo_fd, 8192, 0)
        total = _meminfo_kib(text, b"MemTotal:")
        available = _meminfo_kib(text, b"MemAvailable:")
        if total <= 0:
            raise ValueError("MemTotal in /proc/meminfo is 0")
        return round(100.0 * (total - available) / total, 1)

    def close(self) -> None:
        fds, self._stat_fd, self._meminfo_fd = (self._stat_fd, self._meminfo_fd), -1, -1
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def __del__(self) -> None:
        self.close()


def _meminfo_kib(text: bytes, key: bytes) -> int:
    start = text.find(key)  # the keys start lines, and no key ends in another's name
    if start < 0:
        raise ValueError(f"/proc/meminfo has no {key.decode()}")
    return int(text[start + len(key) : text.index(b"\n", start)].split()[0])


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
