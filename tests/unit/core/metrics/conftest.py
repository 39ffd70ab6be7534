"""A stand-in for the ``pynvml`` module: a real GPU cannot fail on cue, this one can.

It raises the real ``pynvml`` error classes (the bindings import fine without a driver), so the code
under test matches exceptions exactly as it would against NVIDIA's module.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml
import pytest

MIB = 1024 * 1024


@dataclass
class FakeGpu:
    name: str = "NVIDIA H200"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    utilization: int = 37
    temperature: int = 45
    total: int = 143_771 * MIB
    used: int = 1_011 * MIB  # as nvidia-smi shows: without the driver's reservation
    reserved: int = 615 * MIB
    milliwatts: int = 121_456
    processes: list[SimpleNamespace] = field(default_factory=list)


class FakeNvml:
    """Enough of pynvml for llamadash: healthy GPUs unless told to fail.

    ``fail[name] = (ErrorClass, indexes)`` makes the function ``name`` raise for the GPUs at
    ``indexes`` (``None``: every GPU, and functions that take no handle). ``calls`` counts calls,
    ``gpu_calls`` counts them per GPU.
    """

    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    nvmlMemory_v2 = pynvml.nvmlMemory_v2

    def __init__(self, gpus: int = 2) -> None:
        self.gpus = [
            FakeGpu(name=f"NVIDIA H200 #{i}", uuid=f"GPU-{i:08d}", utilization=30 + i, temperature=40 + i)
            for i in range(gpus)
        ]
        self.fail: dict[str, tuple[type[BaseException], set[int] | None]] = {}
        self.calls: Counter[str] = Counter()
        self.gpu_calls: Counter[tuple[str, int]] = Counter()  # (function, GPU index)
        self.initialised = 0  # nvmlInit minus nvmlShutdown

    def __getattr__(self, name: str) -> Any:
        # Every error class of the real bindings (NVMLError, NVMLError_GpuIsLost, ...).
        if name.startswith("NVMLError") or name == "NVMLLibraryMismatchError":
            return getattr(pynvml, name)
        raise AttributeError(name)

    def _enter(self, name: str, handle: Any = None) -> None:
        self.calls[name] += 1
        if handle is not None:
            self.gpu_calls[name, handle.index] += 1
        if name not in ("nvmlInit", "nvmlShutdown") and self.initialised <= 0:
            raise pynvml.NVMLError_Uninitialized()
        error, indexes = self.fail.get(name, (None, None))
        if error is not None and (indexes is None or (handle is not None and handle.index in indexes)):
            raise error()

    def nvmlInit(self) -> None:
        self._enter("nvmlInit")
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self.initialised -= 1

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> SimpleNamespace:
        handle = SimpleNamespace(index=index)
        self._enter("nvmlDeviceGetHandleByIndex", handle)
        return handle

    def nvmlDeviceGetName(self, handle: SimpleNamespace) -> str:
        self._enter("nvmlDeviceGetName", handle)
        return self.gpus[handle.index].name

    def nvmlDeviceGetUUID(self, handle: SimpleNamespace) -> str:
        self._enter("nvmlDeviceGetUUID", handle)
        return self.gpus[handle.index].uuid

    def nvmlDeviceGetUtilizationRates(self, handle: SimpleNamespace) -> SimpleNamespace:
        self._enter("nvmlDeviceGetUtilizationRates", handle)
        return SimpleNamespace(gpu=self.gpus[handle.index].utilization, memory=5)

    def nvmlDeviceGetTemperatureV(self, handle: SimpleNamespace, sensor: int) -> int:
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        self._enter("nvmlDeviceGetTemperatureV", handle)
        return self.gpus[handle.index].temperature

    def nvmlDeviceGetTemperature(self, handle: SimpleNamespace, sensor: int) -> int:
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        self._enter("nvmlDeviceGetTemperature", handle)
        return self.gpus[handle.index].temperature

    def nvmlDeviceGetMemoryInfo(self, handle: SimpleNamespace, version: int | None = None) -> SimpleNamespace:
        gpu = self.gpus[handle.index]
        if version is None:
            self._enter("nvmlDeviceGetMemoryInfo", handle)
            # v1 counts the driver's reservation as used
            return SimpleNamespace(total=gpu.total, used=gpu.used + gpu.reserved, free=gpu.total - gpu.used)
        assert version == pynvml.nvmlMemory_v2
        self._enter("nvmlDeviceGetMemoryInfo_v2", handle)
        return SimpleNamespace(total=gpu.total, used=gpu.used, reserved=gpu.reserved, free=0)

    def nvmlDeviceGetPowerUsage(self, handle: SimpleNamespace) -> int:
        self._enter("nvmlDeviceGetPowerUsage", handle)
        return self.gpus[handle.index].milliwatts

    def nvmlDeviceGetComputeRunningProcesses(self, handle: SimpleNamespace) -> list[SimpleNamespace]:
        self._enter("nvmlDeviceGetComputeRunningProcesses", handle)
        return list(self.gpus[handle.index].processes)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake_nvml() -> FakeNvml:
    return FakeNvml()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
