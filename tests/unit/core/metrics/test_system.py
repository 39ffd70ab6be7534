"""CPU, memory and disk readings from psutil."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from llamadash.core.metrics.system import SystemMetrics, SystemReading


def test_real_readings_are_percentages(tmp_path: Path):
    metrics = SystemMetrics(tmp_path)
    time.sleep(0.15)
    reading = metrics.read()
    for value in (reading.cpu_percent, reading.memory_percent, reading.disk_percent):
        assert isinstance(value, float) and 0.0 <= value <= 100.0
    assert reading.disk_percent == pytest.approx(psutil.disk_usage(str(tmp_path)).percent, abs=1.0)


def test_cpu_is_none_when_read_too_soon_after_the_previous_reading(tmp_path: Path):
    metrics = SystemMetrics(tmp_path)
    # Immediately after priming the span is a few clock ticks: a percentage of that is noise.
    assert metrics.read().cpu_percent is None
    time.sleep(0.12)
    assert metrics.read().cpu_percent is not None


def test_disk_of_a_directory_not_created_yet_is_that_of_its_parent(tmp_path: Path):
    metrics = SystemMetrics(tmp_path / "models" / "not-yet")
    assert metrics.read().disk_percent == pytest.approx(psutil.disk_usage(str(tmp_path)).percent, abs=1.0)
    metrics.disk_path = tmp_path
    assert metrics.disk_path == tmp_path


class FakePsutil:
    """psutil's three calls, each of which can be made to fail."""

    Error = psutil.Error

    def __init__(self) -> None:
        self.failing: dict[str, BaseException] = {}
        self.cpu_calls: list[object] = []

    def _check(self, name: str) -> None:
        if name in self.failing:
            raise self.failing[name]

    def cpu_percent(self, interval: float | None = 0.1) -> float:
        self.cpu_calls.append(interval)
        self._check("cpu_percent")
        return 12.5

    def virtual_memory(self) -> SimpleNamespace:
        self._check("virtual_memory")
        return SimpleNamespace(percent=42.0)

    def disk_usage(self, path: str) -> SimpleNamespace:
        self._check("disk_usage")
        return SimpleNamespace(percent=77.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cpu_is_primed_once_and_never_blocks(tmp_path: Path):
    fake, clock = FakePsutil(), Clock()
    metrics = SystemMetrics(tmp_path, psutil_module=fake, clock=clock)
    assert fake.cpu_calls == [None]  # primed at construction, without an interval (non-blocking)
    clock.now = 1.0
    assert metrics.read() == SystemReading(12.5, 42.0, 77.0)
    assert fake.cpu_calls == [None, None]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        ("cpu_percent", OSError("no /proc/stat")),
        ("virtual_memory", psutil.AccessDenied()),
        ("disk_usage", PermissionError("denied")),
        ("disk_usage", FileNotFoundError("unmounted")),
    ],
)
def test_a_failing_call_blanks_only_its_reading(tmp_path: Path, call: str, error: BaseException):
    fake, clock = FakePsutil(), Clock()
    fake.failing[call] = error
    metrics = SystemMetrics(tmp_path, psutil_module=fake, clock=clock)
    clock.now = 1.0
    reading = metrics.read()
    expected: dict[str, float | None] = {"cpu_percent": 12.5, "virtual_memory": 42.0, "disk_usage": 77.0}
    expected[call] = None
    assert (reading.cpu_percent, reading.memory_percent, reading.disk_percent) == tuple(expected.values())


def test_a_programming_error_is_not_swallowed(tmp_path: Path):
    fake, clock = FakePsutil(), Clock()
    fake.failing["virtual_memory"] = TypeError("bug")
    metrics = SystemMetrics(tmp_path, psutil_module=fake, clock=clock)
    with pytest.raises(TypeError):
        metrics.read()


def test_proc_readings_agree_with_psutil(tmp_path: Path):
    """The /proc path gives psutil's figures: the same memory %, and CPU % over the same span."""
    from llamadash.core.metrics.system import _ProcReadings

    reader = _ProcReadings.open()
    assert reader is not None, "on Linux /proc/stat and /proc/meminfo are read straight"
    assert reader.memory_percent() == pytest.approx(psutil.virtual_memory().percent, abs=0.5)
    assert reader.cpu_percent() == 0.0  # the first call has nothing to compare with
    psutil.cpu_percent(None)
    sum(i * i for i in range(300_000))  # some busy time in the span
    time.sleep(0.3)
    ours, theirs = reader.cpu_percent(), psutil.cpu_percent(None)
    assert 0.0 <= ours <= 100.0
    assert ours == pytest.approx(theirs, abs=5.0)  # read a few µs apart, so not always to the tick


def test_a_proc_file_that_stops_reading_falls_back_to_psutil(tmp_path: Path, monkeypatch):

    metrics = SystemMetrics(tmp_path)
    assert metrics._proc is not None

    def pread(fd: int, size: int, offset: int) -> bytes:
        raise OSError(5, "Input/output error")  # as if /proc went away

    monkeypatch.setattr(os, "pread", pread)  # the module's os is this os
    time.sleep(0.15)
    first = metrics.read()
    assert metrics._proc is None
    assert first.memory_percent == pytest.approx(psutil.virtual_memory().percent, abs=1.0)
    assert first.cpu_percent is None  # psutil has just been primed: no span to measure yet
    time.sleep(0.15)
    assert metrics.read().cpu_percent is not None
