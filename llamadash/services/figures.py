"""The live figures of one instance, and the readings of its process tree they come from.

:class:`InstanceFigures` is what an instance publishes after each poll; :class:`ProcessTreeStats`
reads CPU and memory of the server's process tree (psutil), :func:`tree_vram_mb` sums its GPU
memory from an NVML reading, and :class:`VramReadings` is the NVML reading all instances of a manager
share. A figure that is not known is ``None`` (shown as n/a), never a made-up 0. Qt-free;
:class:`~llamadash.services.endpoint_poller.EndpointPoller` puts the figures together.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import psutil

from llamadash.core import proc_children
from llamadash.core.metrics import Nvml

__all__ = ["NO_FIGURES", "InstanceFigures", "ProcessTreeStats", "VramReadings", "tree_vram_mb"]

_MIB = 1024 * 1024


@dataclass(frozen=True)
class InstanceFigures:
    """Live figures of one instance; every field is ``None`` when not known (shown as n/a).

    The token rates are live: a :class:`~llamadash.core.throughput.ThroughputMeter` fed with
    ``/slots`` snapshots (twice a second while a slot is busy) and each request's record from the
    log, over its last 2 s. (``/metrics``' token counters move only when a request ends: a delta of
    them is tokens per request, not per second.) An external or adopted server's log is not read:
    the tokens a request made after its last snapshot (up to 0.5 s of them) are not counted there.

    Attributes:
        prompt_tokens_per_s: Prompt tokens evaluated per second, all slots together (0.0 when
            idle; ``None`` while unknown: no two ``/slots`` snapshots yet, or they stopped coming).
            Also :attr:`prompt_tokens_per_second`.
        generation_tokens_per_s: Tokens generated per second, likewise. Also :attr:`tokens_per_second`.
        requests_processing: Requests being processed now (``/metrics`` gauge).
        requests_deferred: Requests waiting for a slot (``/metrics`` gauge).
        busy_slots: Slots processing now (the latest ``/slots``).
        total_slots: Slots in all (the latest ``/slots``).
        requests_per_minute: Requests finished in the last 60 s, counted from the log (an external
            or adopted server's output is not available: from its ``/slots`` there).
        cpu_percent: CPU % of the process tree, summed over processes (100 = one core busy).
        rss_mb: Resident memory of the process tree, MiB.
        vram_mb: GPU memory of the process tree as NVML reports it, MiB.
    """

    prompt_tokens_per_s: float | None = None
    generation_tokens_per_s: float | None = None
    requests_processing: float | None = None
    requests_deferred: float | None = None
    busy_slots: float | None = None
    total_slots: float | None = None
    requests_per_minute: float | None = None
    cpu_percent: float | None = None
    rss_mb: float | None = None
    vram_mb: float | None = None

    @property
    def tokens_per_second(self) -> float | None:
        """:attr:`generation_tokens_per_s` under the name of the ``instance_samples`` column."""
        return self.generation_tokens_per_s

    @property
    def prompt_tokens_per_second(self) -> float | None:
        """:attr:`prompt_tokens_per_s` under the name of the ``instance_samples`` column."""
        return self.prompt_tokens_per_s

    def as_dict(self) -> dict[str, float | None]:
        """The figures as a plain dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def sample_row(self, model: str) -> dict[str, Any]:
        """One ``instance_samples`` row of model ``model`` (no ``timestamp``: the sampler sets it)."""
        return {
            "model": model,
            "tokens_per_second": self.generation_tokens_per_s,
            "prompt_tokens_per_second": self.prompt_tokens_per_s,
            "busy_slots": _int_or_none(self.busy_slots),
            "total_slots": _int_or_none(self.total_slots),
            "requests_processing": self.requests_processing,
            "requests_deferred": self.requests_deferred,
            "cpu_percent": self.cpu_percent,
            "memory_mb": self.rss_mb,
            "vram_mb": self.vram_mb,
        }


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else round(value)


NO_FIGURES = InstanceFigures()


#: How often the process tree is walked again for new child processes, in seconds. psutil found
#: children by reading /proc/*/stat of every process on the machine (4 ms a poll under cProfile,
#: the dashboard's largest idle cost with two instances); :mod:`llamadash.core.proc_children` reads
#: the server's own per-thread lists instead, and llama-server rarely starts any.
CHILDREN_RESCAN_S = 10.0


class ProcessTreeStats:
    """CPU % and RSS of a process and its children, keeping psutil objects between polls.

    psutil's ``cpu_percent`` compares with the previous call on the same object; the first call
    of each object means nothing, so a brand-new root reads ``None``. The children are looked for
    at the first read and then every :data:`CHILDREN_RESCAN_S` (or when one has gone); between
    those, the known processes are read.

    Args:
        clock: Monotonic clock in seconds (tests).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._procs: dict[int, psutil.Process] = {}
        self._clock = clock
        self._rescan_at = -math.inf

    def read(self, pid: int | None) -> tuple[float | None, float | None, list[int]]:
        """``(cpu %, RSS MiB, PIDs of the tree)`` of the tree under ``pid`` (``None``s when unknown)."""
        if pid is None:
            self._procs.clear()
            return None, None, []
        now = self._clock()
        try:
            known_root = self._procs.get(pid)
            root = known_root or psutil.Process(pid)
            if known_root is None or now >= self._rescan_at:
                tree = [root, *proc_children.children(root)]
                self._rescan_at = now + CHILDREN_RESCAN_S
            else:
                tree = list(self._procs.values())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            self._procs.clear()
            return None, None, []
        cpu_total: float | None = 0.0
        rss_total: float | None = 0.0
        current: dict[int, psutil.Process] = {}
        for proc in tree:
            known = self._procs.get(proc.pid)
            handle = known if known is not None else proc
            current[proc.pid] = handle
            try:
                with handle.oneshot():
                    cpu = handle.cpu_percent(None)
                    rss = handle.memory_info().rss / _MIB
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                current.pop(proc.pid, None)
                self._rescan_at = -math.inf  # one has gone: look again at the next read
                continue
            except psutil.AccessDenied:
                cpu, rss = math.nan, math.nan
            if known is None and proc.pid == pid:
                cpu_total = None  # first reading of the root: no baseline yet
            elif cpu_total is not None:
                cpu_total = None if math.isnan(cpu) else cpu_total + cpu
            if rss_total is not None:
                rss_total = None if math.isnan(rss) else rss_total + rss
        self._procs = current
        if pid not in current:
            return None, None, []
        return cpu_total, rss_total, list(current)


def tree_vram_mb(reader: Callable[[], dict[int, float | None]] | None, pids: list[int]) -> float | None:
    """The GPU memory of the processes ``pids``, from ``reader`` (PID -> MiB); ``None`` when not known.

    A process NVML does not list, or lists without an amount (containers, WDDM), makes the sum
    unknown: n/a, never 0.
    """
    if reader is None or not pids:
        return None
    try:
        used = reader()
    except Exception:
        return None
    known = [used[pid] for pid in pids if pid in used]
    if not known or any(value is None for value in known):
        return None
    return float(sum(v for v in known if v is not None))


class VramReadings:
    """Per-PID VRAM from one NVML session, read at most twice a second (call it: PID -> MiB).

    It never initialises NVML on the caller's thread (``nvmlInit`` can take 100 ms): a session it
    makes itself is initialised on a thread of its own, and until NVML is up the reading is empty.

    Args:
        nvml: The session to share (the sampler's); ``None`` makes one, closed by :meth:`close`.
    """

    def __init__(self, nvml: Nvml | None) -> None:
        self._own = nvml is None
        self._nvml = nvml if nvml is not None else Nvml()
        if self._own:
            threading.Thread(target=self._nvml.read_all, name="llamadash-nvml-init", daemon=True).start()
        self._cache: tuple[float, dict[int, float | None]] = (0.0, {})

    def __call__(self) -> dict[int, float | None]:
        at, cached = self._cache
        now = time.monotonic()
        if now - at < 0.5:
            return cached
        readings = self._nvml.process_memory_mb() if self._nvml.available else {}
        self._cache = (now, readings)
        return readings

    def close(self) -> None:
        """Release NVML if this made the session."""
        if self._own:
            self._nvml.shutdown()
