"""NVML readings: right units, ``None`` for exactly the reading that failed, no retry storms."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pynvml
import pytest

from llamadash.core.metrics.nvml import GpuReading, Nvml

MIB = 1024 * 1024

# Which calls feed which reading ("temperature" needs both forms to fail: one falls back on the other).
READING_CALLS = {
    "utilization": ["nvmlDeviceGetUtilizationRates"],
    "temperature": ["nvmlDeviceGetTemperatureV", "nvmlDeviceGetTemperature"],
    "memory": ["nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetMemoryInfo"],
    "power_w": ["nvmlDeviceGetPowerUsage"],
}
PER_CALL_ERRORS = [
    pynvml.NVMLError_NotSupported,
    pynvml.NVMLError_NoPermission,
    pynvml.NVMLError_InvalidArgument,
    pynvml.NVMLError_Timeout,
]
LOST_ERRORS = [pynvml.NVMLError_GpuIsLost, pynvml.NVMLError_Unknown]
# The calls a healthy modern driver gets (the legacy forms are only fallbacks).
READING_PRIMARY_CALLS = [calls[0] for calls in READING_CALLS.values()]


def fields(reading: GpuReading) -> dict[str, object]:
    return {
        "utilization": reading.utilization,
        "temperature": reading.temperature,
        "memory": (reading.memory_used_mb, reading.memory_total_mb),
        "power_w": reading.power_w,
    }


def healthy_fields(index: int) -> dict[str, object]:
    return {
        "utilization": 30.0 + index,
        "temperature": 40.0 + index,
        "memory": (1011.0, 143_771.0),
        "power_w": 121.456,
    }


def test_reads_every_gpu_in_the_units_users_know(fake_nvml, clock):
    nvml = Nvml(fake_nvml, clock=clock)
    readings = nvml.read_all()
    assert readings == [
        GpuReading(0, "NVIDIA H200 #0", "GPU-00000000", 30.0, 40.0, 1011.0, 143_771.0, 121.456),
        GpuReading(1, "NVIDIA H200 #1", "GPU-00000001", 31.0, 41.0, 1011.0, 143_771.0, 121.456),
    ]
    assert nvml.available and nvml.status == "ready"
    # Memory comes from v2 (what nvidia-smi shows), not v1 which counts the driver's reservation.
    assert fake_nvml.calls["nvmlDeviceGetMemoryInfo"] == 0
    # Initialised once, however often it is read.
    for _ in range(5):
        nvml.read_all()
    assert fake_nvml.calls["nvmlInit"] == 1 and nvml.init_attempts == 1


def test_readings_are_frozen(fake_nvml, clock):
    reading = Nvml(fake_nvml, clock=clock).read_all()[0]
    with pytest.raises(AttributeError):
        reading.power_w = 0.0  # type: ignore[misc]


def test_nvml_is_not_touched_before_the_first_reading(fake_nvml, clock):
    nvml = Nvml(fake_nvml, clock=clock)
    assert not nvml.available  # asking must not initialise (100 ms on a real driver)
    assert fake_nvml.calls["nvmlInit"] == 0


@pytest.mark.parametrize("error", PER_CALL_ERRORS, ids=lambda e: e.__name__)
@pytest.mark.parametrize("reading", list(READING_CALLS))
def test_a_failing_call_blanks_only_its_reading(fake_nvml, clock, reading, error):
    for call in READING_CALLS[reading]:
        fake_nvml.fail[call] = (error, {0})
    nvml = Nvml(fake_nvml, clock=clock)
    for _ in range(3):
        gpu0, gpu1 = nvml.read_all()
        expected = healthy_fields(0)
        expected[reading] = (None, None) if reading == "memory" else None
        assert fields(gpu0) == expected
        assert fields(gpu1) == healthy_fields(1)  # the other GPU is untouched
        assert gpu0.name == "NVIDIA H200 #0"
    # A board that does not support a reading is not a reason to restart NVML.
    assert fake_nvml.calls["nvmlInit"] == 1


@pytest.mark.parametrize("call", ["nvmlDeviceGetName", "nvmlDeviceGetUUID"])
def test_a_nameless_gpu_still_reports(fake_nvml, clock, call):
    fake_nvml.fail[call] = (pynvml.NVMLError_NotSupported, {0})
    gpu0 = Nvml(fake_nvml, clock=clock).read_all()[0]
    assert (gpu0.name is None) == (call == "nvmlDeviceGetName")
    assert (gpu0.uuid is None) == (call == "nvmlDeviceGetUUID")
    assert fields(gpu0) == healthy_fields(0)


def test_memory_falls_back_to_v1_on_an_old_driver_and_stays_there(fake_nvml, clock):
    fake_nvml.fail["nvmlDeviceGetMemoryInfo_v2"] = (pynvml.NVMLError_FunctionNotFound, None)
    nvml = Nvml(fake_nvml, clock=clock)
    gpu0 = nvml.read_all()[0]
    assert gpu0.memory_used_mb == 1011.0 + 615.0  # v1: reservation included, but a real number
    nvml.read_all()
    assert fake_nvml.calls["nvmlDeviceGetMemoryInfo_v2"] == 2  # tried once per GPU, then not again


def test_temperature_falls_back_to_the_legacy_call(fake_nvml, clock):
    fake_nvml.fail["nvmlDeviceGetTemperatureV"] = (pynvml.NVMLError_FunctionNotFound, None)
    nvml = Nvml(fake_nvml, clock=clock)
    assert [gpu.temperature for gpu in nvml.read_all()] == [40.0, 41.0]
    assert [gpu.temperature for gpu in nvml.read_all()] == [40.0, 41.0]
    assert fake_nvml.calls["nvmlDeviceGetTemperatureV"] == 2


def test_bindings_without_a_function_give_none_for_that_reading(fake_nvml, clock):
    bare = SimpleNamespace(
        **{name: getattr(fake_nvml, name) for name in dir(type(fake_nvml)) if name.startswith("nvml")},
        NVMLError=pynvml.NVMLError,
        NVML_TEMPERATURE_GPU=0,
    )
    del bare.nvmlDeviceGetPowerUsage
    del bare.nvmlDeviceGetTemperatureV
    gpu0 = Nvml(bare, clock=clock).read_all()[0]
    assert gpu0.power_w is None
    assert gpu0.temperature == 40.0  # the legacy call is used when the V form is missing
    assert gpu0.utilization == 30.0


def test_no_library_means_no_gpus_and_no_retries(fake_nvml, clock):
    fake_nvml.fail["nvmlInit"] = (pynvml.NVMLError_LibraryNotFound, None)
    nvml = Nvml(fake_nvml, clock=clock)
    for _ in range(600):  # ten minutes of samples
        assert nvml.read_all() == []
        assert nvml.process_memory_mb() == {}
        clock.advance(1)
    assert fake_nvml.calls["nvmlInit"] == 1
    assert "NVML library not found" in nvml.status
    assert not nvml.available


@pytest.mark.parametrize(
    "error",
    [pynvml.NVMLError_DriverNotLoaded, pynvml.NVMLError_LibRmVersionMismatch, pynvml.NVMLError_Unknown],
)
def test_a_failed_init_is_retried_with_backoff_then_recovers(fake_nvml, clock, error):
    fake_nvml.fail["nvmlInit"] = (error, None)
    nvml = Nvml(fake_nvml, clock=clock, retry_initial_s=5, retry_max_s=120)
    for _ in range(600):
        assert nvml.read_all() == []
        clock.advance(1)
    # Attempts at 0, 5, 15, 35, 75, 155, 275, 395, 515 s: not one per sample.
    assert fake_nvml.calls["nvmlInit"] == 9
    assert not nvml.available and nvml.status
    del fake_nvml.fail["nvmlInit"]  # the driver comes up
    recovered_after = 0
    while not nvml.read_all():
        clock.advance(1)
        recovered_after += 1
    assert recovered_after <= 120
    assert fields(nvml.read_all()[0]) == healthy_fields(0)


def test_the_real_bindings_on_this_machine(clock):
    nvml = Nvml(clock=clock)  # imports the real pynvml
    readings = nvml.read_all()
    if nvml.available:  # a machine with an NVIDIA GPU
        assert readings and all(r.memory_total_mb and r.memory_total_mb > 0 for r in readings)
    else:
        assert readings == [] and nvml.status != "ready"
        nvml.read_all()
        assert nvml.init_attempts == 1  # the clock has not moved: no second attempt


def test_missing_bindings_package_disables_gpu_readings(monkeypatch, clock):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    nvml = Nvml(clock=clock)
    assert nvml.read_all() == []
    assert "nvidia-ml-py" in nvml.status


@pytest.mark.parametrize("error", LOST_ERRORS, ids=lambda e: e.__name__)
@pytest.mark.parametrize("call", READING_PRIMARY_CALLS)
def test_a_gpu_lost_mid_run_reads_none_then_recovers(fake_nvml, clock, call, error):
    nvml = Nvml(fake_nvml, clock=clock, retry_initial_s=5, retry_max_s=120)
    assert fields(nvml.read_all()[0]) == healthy_fields(0)

    fake_nvml.fail[call] = (error, {0})
    gpu0, gpu1 = nvml.read_all()
    assert fields(gpu0) == {"utilization": None, "temperature": None, "memory": (None, None), "power_w": None}
    assert gpu0.index == 0 and gpu0.uuid == "GPU-00000000"  # it keeps its place in the list
    assert fields(gpu1) == healthy_fields(1)
    assert not fake_nvml.calls["nvmlShutdown"]  # GPU 1 keeps reading meanwhile

    # Until the backoff expires: no re-init and no more calls to the lost GPU.
    calls_before = fake_nvml.gpu_calls[call, 0]
    for _ in range(4):
        clock.advance(1)
        gpu0, gpu1 = nvml.read_all()
        assert gpu0.utilization is None and gpu1.utilization == 31.0
    assert fake_nvml.calls["nvmlInit"] == 1
    assert fake_nvml.gpu_calls[call, 0] == calls_before

    del fake_nvml.fail[call]  # the GPU is back (e.g. after a reset)
    clock.advance(1)
    gpu0, gpu1 = nvml.read_all()
    assert fake_nvml.calls["nvmlInit"] == 2
    assert fields(gpu0) == healthy_fields(0) and fields(gpu1) == healthy_fields(1)


def test_a_gpu_that_stays_lost_is_retried_ever_more_rarely(fake_nvml, clock):
    fake_nvml.fail["nvmlDeviceGetUtilizationRates"] = (pynvml.NVMLError_GpuIsLost, {1})
    nvml = Nvml(fake_nvml, clock=clock, retry_initial_s=5, retry_max_s=120)
    for _ in range(600):
        gpu0, gpu1 = nvml.read_all()
        assert gpu0.utilization == 30.0 and gpu1.utilization is None
        clock.advance(1)
    # First read, then re-inits after 5, 10, 20, 40, 80, 120, 120, 120 s...
    assert 7 <= fake_nvml.calls["nvmlInit"] <= 10


def test_losing_nvml_itself_waits_then_recovers(fake_nvml, clock):
    nvml = Nvml(fake_nvml, clock=clock, retry_initial_s=5)
    nvml.read_all()
    fake_nvml.fail["nvmlDeviceGetUtilizationRates"] = (pynvml.NVMLError_GpuIsLost, None)
    fake_nvml.fail["nvmlDeviceGetCount"] = (pynvml.NVMLError_Unknown, None)
    assert [gpu.utilization for gpu in nvml.read_all()] == [None, None]
    clock.advance(5)
    assert nvml.read_all() == []  # the re-init could not even count the GPUs
    assert not nvml.available
    fake_nvml.fail.clear()
    for _ in range(9):  # the next attempt is after the doubled wait (10 s)
        clock.advance(1)
        assert nvml.read_all() == []
    clock.advance(1)
    assert [gpu.utilization for gpu in nvml.read_all()] == [30.0, 31.0]


def test_a_gpu_without_permission_is_skipped_without_retries(fake_nvml, clock):
    fake_nvml.fail["nvmlDeviceGetHandleByIndex"] = (pynvml.NVMLError_NoPermission, {1})
    nvml = Nvml(fake_nvml, clock=clock)
    for _ in range(300):
        gpu0, gpu1 = nvml.read_all()
        clock.advance(1)
    assert fields(gpu0) == healthy_fields(0)
    assert gpu1 == GpuReading(1, None, None, None, None, None, None, None)
    assert fake_nvml.calls["nvmlInit"] == 1


def test_process_memory_per_pid(fake_nvml, clock):
    fake_nvml.gpus[0].processes = [
        SimpleNamespace(pid=100, usedGpuMemory=512 * MIB),
        SimpleNamespace(pid=200, usedGpuMemory=None),  # Windows WDDM: not reported
    ]
    fake_nvml.gpus[1].processes = [SimpleNamespace(pid=100, usedGpuMemory=256 * MIB)]
    nvml = Nvml(fake_nvml, clock=clock)
    assert nvml.process_memory_mb() == {100: 768.0, 200: None}
    assert nvml.process_memory_mb(index=1) == {100: 256.0}
    assert nvml.process_memory_mb(index=7) == {}
    fake_nvml.fail["nvmlDeviceGetComputeRunningProcesses"] = (pynvml.NVMLError_NotSupported, {0})
    assert nvml.process_memory_mb() == {100: 256.0}  # only what was reported, never a made-up 0


def test_shutdown_releases_nvml_and_a_later_read_starts_again(fake_nvml, clock):
    nvml = Nvml(fake_nvml, clock=clock)
    nvml.read_all()
    nvml.shutdown()
    assert fake_nvml.initialised == 0 and not nvml.available
    nvml.shutdown()  # twice is harmless
    assert fake_nvml.calls["nvmlShutdown"] == 1
    assert len(nvml.read_all()) == 2 and fake_nvml.initialised == 1
