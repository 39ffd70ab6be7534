"""Gathering a sample, instance figures, uptime, and the history helpers."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pynvml
import pytest

from llamadash.core import database
from llamadash.core.metrics import (
    InstanceFigures,
    InstanceStats,
    MetricsCollector,
    Nvml,
    Sample,
    SystemMetrics,
    dashboard_start_time_ms,
    load_history,
    split_on_gaps,
)

GPU_COLUMNS = ("gpu_usage", "gpu_temperature", "gpu_memory_used", "gpu_memory_total", "gpu_power_usage")
ROW_KEYS = {
    "timestamp", "cpu_usage", "memory_usage", "disk_usage", *GPU_COLUMNS,
    "active_models", "uptime", "requests_per_minute",
}  # fmt: skip


@pytest.fixture
def db(tmp_path: Path):
    database.init_database(tmp_path / "metrics.db")
    yield database
    database.close_database()


class MsClock:
    def __init__(self, start: int) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now


def test_a_machine_without_gpu_gives_null_gpu_columns(tmp_path: Path):
    collector = MetricsCollector(tmp_path, start_time_ms=time.time_ns() // 1_000_000)
    time.sleep(0.15)
    sample = collector.gather()
    row = sample.as_row()
    assert set(row) == ROW_KEYS
    if not collector.nvml.available:  # this machine has no NVIDIA GPU
        assert sample.gpus == ()
        assert all(row[column] is None for column in GPU_COLUMNS)
    for column in ("cpu_usage", "memory_usage", "disk_usage"):
        assert 0.0 <= row[column] <= 100.0
    assert row["active_models"] == 0 and row["requests_per_minute"] == 0.0
    collector.close()


def test_gpu_columns_describe_the_chosen_gpu(tmp_path: Path, fake_nvml, clock):
    fake_nvml.gpus[1].utilization = 99
    collector = MetricsCollector(tmp_path, nvml=Nvml(fake_nvml, clock=clock), start_time_ms=0)
    first = collector.gather()
    assert first.gpu_index == 0 and first.gpu_usage == 30.0
    assert [gpu.index for gpu in first.gpus] == [0, 1]
    assert first.gpu_memory_used == 1011.0 and first.gpu_memory_total == 143_771.0
    assert first.gpu_power_usage == pytest.approx(121.456) and first.gpu_temperature == 40.0

    collector.gpu_index = 1
    second = collector.gather()
    assert second.gpu_usage == 99.0 and second.gpu_temperature == 41.0 and second.gpu_index == 1

    collector.gpu_index = 5  # a GPU that went away: its columns are missing, not 0
    third = collector.gather()
    assert all(third.as_row()[column] is None for column in GPU_COLUMNS)
    assert len(third.gpus) == 2


def test_one_unsupported_reading_leaves_the_rest_of_the_row(tmp_path: Path, fake_nvml, clock):
    fake_nvml.fail["nvmlDeviceGetPowerUsage"] = (pynvml.NVMLError_NotSupported, None)
    row = MetricsCollector(tmp_path, nvml=Nvml(fake_nvml, clock=clock), start_time_ms=0).gather().as_row()
    assert row["gpu_power_usage"] is None
    assert row["gpu_usage"] == 30.0 and row["gpu_memory_total"] == 143_771.0


def test_uptime_counts_whole_seconds_from_the_start_time(tmp_path: Path):
    clock = MsClock(1_700_000_000_000)
    collector = MetricsCollector(tmp_path, start_time_ms=clock.now - 2_500, clock_ms=clock)
    assert collector.gather().uptime == 2
    clock.now += 1_000
    later = collector.gather()
    assert later.uptime == 3 and later.timestamp == clock.now


def test_uptime_comes_from_the_database_start_time(tmp_path: Path, db):
    start = int(db.get_metadata("server_start_time"))
    assert dashboard_start_time_ms() == start
    clock = MsClock(start + 7_200)
    collector = MetricsCollector(tmp_path, clock_ms=clock)
    assert collector.gather().uptime == 7


def test_uptime_is_unknown_without_a_database(tmp_path: Path):
    database.close_database()
    assert dashboard_start_time_ms() is None
    assert MetricsCollector(tmp_path).gather().uptime is None


class Manager:
    """A stand-in for the instance manager."""

    def __init__(self, active: int, rpm: float) -> None:
        self.active, self.rpm = active, rpm

    def active_models(self) -> int:
        return self.active

    def requests_per_minute(self) -> float:
        return self.rpm


class BrokenManager(Manager):
    def requests_per_minute(self) -> float:
        raise RuntimeError("instance table is being rebuilt")


def test_instance_figures_follow_the_provider(tmp_path: Path):
    manager = Manager(2, 12.5)
    assert isinstance(manager, InstanceStats)
    collector = MetricsCollector(tmp_path, start_time_ms=0)
    sample = collector.gather(InstanceFigures.from_provider(manager))
    assert (sample.active_models, sample.requests_per_minute) == (2, 12.5)
    manager.active = 3
    assert collector.gather(InstanceFigures.from_provider(manager)).active_models == 3


def test_no_provider_means_no_instances():
    assert InstanceFigures.from_provider(None) == InstanceFigures(0, 0.0)


def test_a_failing_provider_blanks_only_its_figure(caplog):
    assert InstanceFigures.from_provider(BrokenManager(1, 0)) == InstanceFigures(1, None)
    assert "instance statistics provider failed" in caplog.text


def test_sample_rows_save_and_load_back(tmp_path: Path, db):
    clock = MsClock(time.time_ns() // 1_000_000 - 3_000)
    collector = MetricsCollector(tmp_path, clock_ms=clock)
    stamps = []
    for _ in range(3):
        sample = collector.gather(InstanceFigures(1, 4.0))
        db.save_metrics(sample.as_row())
        stamps.append(sample.timestamp)
        clock.now += 1_000
    history = load_history()
    assert [row["timestamp"] for row in history] == stamps
    assert all(row[column] is None for row in history for column in GPU_COLUMNS) or collector.nvml.available
    assert [row["active_models"] for row in history] == [1, 1, 1]
    assert load_history(minutes=0.01) == []  # older than 0.6 s


def test_samples_are_frozen():
    with pytest.raises(AttributeError):
        Sample(timestamp=0).cpu_usage = 1.0  # type: ignore[misc]


def rows(*stamps: int) -> list[dict[str, int]]:
    return [{"timestamp": t, "cpu_usage": i} for i, t in enumerate(stamps)]


def test_split_on_gaps_keeps_a_jittery_series_whole():
    series = rows(0, 1_000, 2_100, 3_000, 5_400, 6_400)  # 2.4 s is a skipped tick, not a gap
    assert split_on_gaps(series, 1.0) == [series]


def test_split_on_gaps_breaks_where_samples_are_missing():
    series = rows(0, 1_000, 2_000, 4_600, 5_600, 60_000)
    assert split_on_gaps(series, 1.0) == [series[:3], series[3:5], series[5:]]
    assert split_on_gaps(series, 30.0) == [series]


def test_split_on_gaps_judges_rows_saved_further_apart_by_their_own_spacing():
    """History saved at 5 s (or 1 s) stays whole after the interval was lowered to 1 s (or 0.25 s)."""
    every_5_s = rows(*range(0, 550_000, 5_000))
    assert split_on_gaps(every_5_s, 1.0) == [every_5_s]
    assert split_on_gaps(every_5_s, 0.25) == [every_5_s]
    every_second = rows(0, 1_000, 2_000, 4_600, 5_600, 60_000)
    assert split_on_gaps(every_second, 0.25) == split_on_gaps(every_second, 1.0)
    # the dashboard was closed for five minutes: still a gap, whatever the setting now
    closed = rows(*range(0, 300_000, 5_000), *range(600_000, 900_000, 5_000))
    for interval_s in (0.25, 1.0, 5.0):
        assert split_on_gaps(closed, interval_s) == [closed[:60], closed[60:]]


def test_split_on_gaps_a_change_of_interval_is_not_a_gap():
    slow_then_fast = rows(*range(0, 300_000, 5_000), *range(300_000, 360_000, 1_000))
    assert split_on_gaps(slow_then_fast, 1.0) == [slow_then_fast]
    fast_then_slow = rows(*range(0, 60_000, 1_000), *range(60_000, 360_000, 5_000))
    assert split_on_gaps(fast_then_slow, 1.0) == [fast_then_slow]
    # a minute's pause between them is still one
    paused = rows(*range(0, 300_000, 5_000), *range(360_000, 420_000, 1_000))
    assert split_on_gaps(paused, 1.0) == [paused[:60], paused[60:]]


def test_split_on_gaps_edges():
    assert split_on_gaps([], 1.0) == []
    assert split_on_gaps(rows(5), 1.0) == [rows(5)]
    at_limit = rows(0, 1_000, 2_000, 4_500, 7_001)
    assert split_on_gaps(at_limit, 1.0) == [at_limit[:4], at_limit[4:]]
    lone_step = rows(0, 5_000)  # no steps around it to judge it by: the setting judges it
    assert split_on_gaps(lone_step, 1.0) == [lone_step[:1], lone_step[1:]]
    assert split_on_gaps([{"t": 0}, {"t": 9_000}], 1.0, key="t") == [[{"t": 0}], [{"t": 9_000}]]
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="interval_s"):
            split_on_gaps(rows(0), bad)


def test_a_collector_can_share_a_system_source(tmp_path: Path):
    system = SystemMetrics(tmp_path)
    collector = MetricsCollector(system=system, start_time_ms=0)
    assert collector.system is system


def test_the_metrics_package_loads_neither_qt_nor_the_database():
    # benchmarks/gpu_check.py runs it where neither peewee nor PySide6 is installed.
    code = (
        "import sys\n"
        "import llamadash.core.metrics as m\n"
        "m.MetricsCollector('.', start_time_ms=0).gather()\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('peewee', 'PySide6', 'shiboken6'))\n"
        "bad += [n for n in sys.modules if n in ('llamadash.core.database', 'llamadash.core.db')]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""
