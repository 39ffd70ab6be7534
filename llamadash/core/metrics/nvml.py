"""NVIDIA GPU readings through NVML (the ``pynvml`` module of the ``nvidia-ml-py`` package).

Every NVML call goes through one guarded helper, :meth:`Nvml._call`, in the manner of nvitop's
``libnvml``: NVML is initialised lazily, once; a reading that fails is ``None`` (shown as "n/a"),
never a made-up 0; a machine without the NVIDIA library or driver simply has no GPUs; and a GPU that
is lost at runtime is marked unavailable while NVML is re-initialised later with an exponential
backoff, so a broken driver costs one attempt per backoff period rather than one per sample.

Units: memory in MB meaning MiB (2**20 bytes), as nvidia-smi prints it; power in W; temperature in °C;
utilization in % of the driver's sample period.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = ["GpuReading", "Nvml"]

_log = logging.getLogger(__name__)

_MIB = 1024 * 1024

# Errors after which the device handle (or the whole NVML session) is no longer trustworthy: the GPU
# fell off the bus, was reset, or the driver was reloaded/upgraded underneath us.
_LOST_ERRORS = (
    "NVMLError_GpuIsLost",
    "NVMLError_Unknown",
    "NVMLError_Uninitialized",
    "NVMLError_DriverNotLoaded",
    "NVMLError_LibRmVersionMismatch",
    "NVMLError_ResetRequired",
)
# A versioned call the driver does not know: the unversioned fallback still works there.
_VERSION_ERRORS = (
    "NVMLError_FunctionNotFound",
    "NVMLError_ArgumentVersionMismatch",
    "NVMLError_NotSupported",
)


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One GPU's readings at one moment; any reading the driver did not give is ``None``.

    Attributes:
        index: NVML device index (the order of ``nvidia-smi -L``).
        name: Product name, e.g. "NVIDIA H200"; ``None`` if NVML would not say.
        uuid: Stable identifier ("GPU-…"), the key to remember a user's GPU choice by.
        utilization: Percent of the last sample period in which a kernel ran (0–100).
        temperature: Core temperature in °C.
        memory_used_mb: Memory in use in MiB, excluding what the driver reserves (as nvidia-smi).
        memory_total_mb: Total memory in MiB.
        power_w: Power draw in watts.
    """

    index: int
    name: str | None
    uuid: str | None
    utilization: float | None
    temperature: float | None
    memory_used_mb: float | None
    memory_total_mb: float | None
    power_w: float | None


class _State(enum.Enum):
    NEW = "not initialised yet"
    READY = "ready"
    WAITING = "waiting to retry"
    DISABLED = "disabled"


@dataclass
class _Device:
    index: int
    handle: Any
    name: str | None
    uuid: str | None
    lost: bool = False
    memory_v2: bool = True
    temperature_v: bool = True


class Nvml:
    """A guarded, lazily initialised NVML session that never raises to its caller.

    Thread-safe: the sampler reads from its worker thread while the UI may ask for per-process VRAM.

    Args:
        module: The NVML bindings; ``None`` imports ``pynvml`` on first use. Tests pass a stand-in.
        clock: Monotonic clock in seconds, for the retry backoff.
        retry_initial_s: First wait before re-initialising after a failure that may heal (driver not
            loaded yet, GPU lost). The wait doubles while failures continue.
        retry_max_s: Upper bound of the doubling wait.
    """

    def __init__(
        self,
        module: ModuleType | Any | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        retry_initial_s: float = 5.0,
        retry_max_s: float = 120.0,
    ) -> None:
        self._module = module
        self._clock = clock
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._retry_delay_s = retry_initial_s
        self._retry_at = 0.0
        self._state = _State.NEW
        self._reason = "NVML not initialised yet"
        self._devices: list[_Device] = []
        self._lock = threading.RLock()
        self._initialised = False  # nvmlInit succeeded, so nvmlShutdown is owed
        self._last_error: str | None = None
        self._warned: set[tuple[str, str]] = set()
        self.init_attempts = 0
        """How many times ``nvmlInit`` was tried (for diagnostics and tests)."""

    # -- public API -------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """Whether NVML is initialised and answering; never initialises it (that can take 100 ms)."""
        with self._lock:
            return self._state is _State.READY

    @property
    def status(self) -> str:
        """A sentence for the UI on why there are no GPU readings, or "ready"."""
        with self._lock:
            return self._reason

    def read_all(self) -> list[GpuReading]:
        """Read every GPU (initialising NVML on the first call).

        Returns:
            One reading per GPU in NVML index order; an empty list when NVML is unavailable or the
            machine has no NVIDIA GPU. A lost GPU keeps its place with every reading ``None``.
        """
        with self._lock:
            if not self._ensure():
                return []
            retry_due = self._clock() >= self._retry_at
            # Re-enumerate a lost GPU when due: after a reset or driver reload the old handles are stale.
            if retry_due and any(device.lost for device in self._devices) and not self._init():
                return []
            readings = [self._read(device) for device in self._devices]
            if any(device.lost for device in self._devices):
                if self._retry_at <= self._clock():  # first loss of this episode
                    self._schedule_retry()
            else:
                self._retry_delay_s = self._retry_initial_s  # healthy again: next episode starts short
            return readings

    def process_memory_mb(self, index: int | None = None) -> dict[int, float | None]:
        """VRAM used by each process with a compute context, keyed by PID.

        Args:
            index: One GPU's index, or ``None`` to add up every GPU.

        Returns:
            PID -> MiB, with ``None`` where the driver does not report the amount (Windows WDDM).
            A PID that is absent was not reported at all: in containers NVML often hides
            processes, so callers must show "n/a" for an absent PID, never 0.
        """
        with self._lock:
            if not self._ensure():
                return {}
            used: dict[int, float | None] = {}
            for device in self._devices:
                if index is not None and device.index != index:
                    continue
                procs = self._call("nvmlDeviceGetComputeRunningProcesses", device.handle, device=device)
                for proc in procs or ():
                    amount = getattr(proc, "usedGpuMemory", None)
                    mib = None if amount is None else amount / _MIB
                    if proc.pid in used:
                        previous = used[proc.pid]
                        used[proc.pid] = None if previous is None or mib is None else previous + mib
                    else:
                        used[proc.pid] = mib
            return used

    def shutdown(self) -> None:
        """Release NVML; a later reading initialises it again."""
        with self._lock:
            self._teardown()
            self._state = _State.NEW
            self._reason = "NVML not initialised yet"
            self._retry_delay_s = self._retry_initial_s

    # -- the guarded helper ------------------------------------------------------------------------

    def _call(self, name: str, *args: Any, device: _Device | None = None, **kwargs: Any) -> Any:
        """Call ``pynvml.<name>``; every NVML error becomes ``None``.

        A lost-GPU error marks ``device`` lost, and later calls for it are skipped until NVML is
        re-initialised. The class name of the last failure is left in ``self._last_error`` so that a
        versioned call can fall back to the older one.
        """
        self._last_error = None
        if device is not None and (device.lost or device.handle is None):
            return None
        function = getattr(self._module, name, None)
        if function is None:  # bindings older than the call: that reading is simply not available
            self._last_error = "NVMLError_FunctionNotFound"
            return None
        try:
            return function(*args, **kwargs)
        except self._errors("NVMLError", "NVMLLibraryMismatchError") as exc:
            kind = type(exc).__name__
            self._last_error = kind
            if kind in _LOST_ERRORS:
                if device is not None:
                    device.lost = True  # the other GPUs keep reporting
                _log.warning("NVML %s failed with %s; GPU readings will retry later", name, kind)
            elif (name, kind) not in self._warned:
                # NotSupported/NoPermission are lasting properties of a board: say so once, not every second.
                self._warned.add((name, kind))
                _log.info("NVML %s failed (%s); that reading will show n/a", name, kind)
            return None

    # -- internals --------------------------------------------------------------------------------

    def _errors(self, *names: str) -> tuple[type[BaseException], ...]:
        found = tuple(
            getattr(self._module, n) for n in names if isinstance(getattr(self._module, n, None), type)
        )
        return found or (_NeverRaised,)

    def _ensure(self) -> bool:
        if self._state is _State.READY:
            return True
        if self._state is _State.DISABLED:
            return False
        if self._state is _State.WAITING and self._clock() < self._retry_at:
            return False
        return self._init()

    def _init(self) -> bool:
        self._teardown()
        if self._module is None:
            try:
                import pynvml
            except ImportError as exc:  # the dependency is missing: nothing changes until a restart
                self._disable(f"the nvidia-ml-py package is not installed ({exc})")
                return False
            self._module = pynvml
        self.init_attempts += 1
        try:
            self._module.nvmlInit()
        except self._errors("NVMLError_LibraryNotFound"):
            # No NVIDIA driver installed (or not an NVIDIA machine, or macOS): it will not appear.
            self._disable("no NVIDIA driver (NVML library not found)")
            return False
        except self._errors("NVMLError_DriverNotLoaded"):
            self._wait("the NVIDIA driver is not loaded")
            return False
        except self._errors("NVMLError", "NVMLLibraryMismatchError") as exc:
            self._wait(f"NVML could not start ({type(exc).__name__})")
            return False
        self._initialised = True
        count = self._call("nvmlDeviceGetCount")
        if count is None:
            self._wait(f"NVML could not count the GPUs ({self._last_error})")
            return False
        devices = []
        for index in range(count):
            handle = self._call("nvmlDeviceGetHandleByIndex", index)
            # A GPU that cannot be addressed keeps its place, so indexes stay those of nvidia-smi. Only
            # a lost one is worth retrying; NoPermission (a GPU outside our cgroup) will not change.
            device = _Device(
                index, handle, None, None, lost=handle is None and self._last_error in _LOST_ERRORS
            )
            device.name = _text(self._call("nvmlDeviceGetName", handle, device=device))
            device.uuid = _text(self._call("nvmlDeviceGetUUID", handle, device=device))
            devices.append(device)
        self._devices = devices
        self._state = _State.READY
        self._reason = "ready" if devices else "no NVIDIA GPU found"
        _log.debug("NVML ready with %d GPU(s)", len(devices))
        return True

    def _read(self, device: _Device) -> GpuReading:
        util = self._call("nvmlDeviceGetUtilizationRates", device.handle, device=device)
        temperature = self._temperature(device)
        memory = self._memory(device)
        milliwatts = self._call("nvmlDeviceGetPowerUsage", device.handle, device=device)
        if device.lost:  # lost part-way: what came before the loss is not trustworthy either
            util = temperature = memory = milliwatts = None
        return GpuReading(
            index=device.index,
            name=device.name,
            uuid=device.uuid,
            utilization=None if util is None else float(util.gpu),
            temperature=None if temperature is None else float(temperature),
            memory_used_mb=None if memory is None else memory.used / _MIB,
            memory_total_mb=None if memory is None else memory.total / _MIB,
            power_w=None if milliwatts is None else milliwatts / 1000.0,
        )

    def _memory(self, device: _Device) -> Any:
        # v2 leaves out the driver's reservation, which is what nvidia-smi (and the user) calls "used";
        # v1 counts it as used (measured on an H200: 1626 MB v1 vs 1011 MB in nvidia-smi).
        version = getattr(self._module, "nvmlMemory_v2", None)
        if device.memory_v2 and version is not None:
            info = self._call("nvmlDeviceGetMemoryInfo", device.handle, device=device, version=version)
            if info is not None or self._last_error not in _VERSION_ERRORS:
                return info
            device.memory_v2 = False  # an older driver: use v1 from now on
        return self._call("nvmlDeviceGetMemoryInfo", device.handle, device=device)

    def _temperature(self, device: _Device) -> Any:
        sensor = getattr(self._module, "NVML_TEMPERATURE_GPU", 0)
        # nvmlDeviceGetTemperature is deprecated ("removed in CUDA 14"); older drivers lack the V form.
        if device.temperature_v and hasattr(self._module, "nvmlDeviceGetTemperatureV"):
            value = self._call("nvmlDeviceGetTemperatureV", device.handle, sensor, device=device)
            if value is not None or self._last_error not in _VERSION_ERRORS:
                return value
            device.temperature_v = False
        return self._call("nvmlDeviceGetTemperature", device.handle, sensor, device=device)

    def _schedule_retry(self) -> None:
        self._retry_at = self._clock() + self._retry_delay_s
        self._retry_delay_s = min(self._retry_delay_s * 2, self._retry_max_s)

    def _wait(self, reason: str) -> None:
        self._teardown()
        self._state = _State.WAITING
        self._reason = reason
        self._schedule_retry()
        _log.info("GPU readings unavailable: %s; retrying in %.0f s", reason, self._retry_at - self._clock())

    def _disable(self, reason: str) -> None:
        self._teardown()
        self._state = _State.DISABLED
        self._reason = reason
        _log.info("GPU readings disabled: %s", reason)

    def _teardown(self) -> None:
        self._devices = []
        if self._initialised:
            self._initialised = False
            self._call("nvmlShutdown")  # a failure here changes nothing: we are letting go anyway


class _NeverRaised(Exception):
    """Stands in for an error class the bindings do not define, so ``except`` never matches it."""


def _text(value: Any) -> str | None:
    # Bindings older than nvidia-ml-py 11.5 returned bytes.
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return None if value is None else str(value)
