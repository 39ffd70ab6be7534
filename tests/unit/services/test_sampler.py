"""The sampler: on time, persisted, never two samples at once, never blocking the GUI thread."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest
from PySide6.QtCore import QThread, QTimer

from llamadash.core import database
from llamadash.core.metrics import InstanceFigures, MetricsCollector, Sample
from llamadash.core.metrics.sample import NO_INSTANCES
from llamadash.services.sampler import MetricsSampler

GPU_COLUMNS = ("gpu_usage", "gpu_temperature", "gpu_memory_used", "gpu_memory_total", "gpu_power_usage")


@pytest.fixture
def db(tmp_path: Path):
    database.init_database(tmp_path / "metrics.db")
    yield database
    database.close_database()


@pytest.fixture
def samplers():
    """Samplers made by a test; stopped at the end even if the test fails half-way."""
    made: list[MetricsSampler] = []
    yield made
    for sampler in made:
        sampler.stop()


class SlowCollector:
    """Stands in for a source that stalls (a sick GPU driver); records overlap and threads."""

    def __init__(self, delay_s: float = 0.5) -> None:
        self.delay_s = delay_s
        self.active = 0
        self.max_active = 0
        self.gathered = 0
        self.threads: set[int] = set()
        self.closed = 0
        self._lock = threading.Lock()

    def gather(self, instances: InstanceFigures = NO_INSTANCES) -> Sample:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        self.threads.add(threading.get_ident())
        time.sleep(self.delay_s)
        with self._lock:
            self.active -= 1
            self.gathered += 1
        return Sample(
            timestamp=time.time_ns() // 1_000_000,
            active_models=instances.active_models,
            requests_per_minute=instances.requests_per_minute,
        )

    def close(self) -> None:
        self.closed += 1


class FailingCollector(SlowCollector):
    def gather(self, instances: InstanceFigures = NO_INSTANCES) -> Sample:
        raise RuntimeError("sensor exploded")


def make(samplers, collector, **kwargs) -> MetricsSampler:
    sampler = MetricsSampler(collector, **kwargs)
    samplers.append(sampler)
    return sampler


@pytest.mark.parametrize("bad", [0.2, 10.5, 0, -1, float("nan"), float("inf"), "fast", None, True])
def test_interval_out_of_range_is_refused_with_a_clear_message(bad):
    with pytest.raises(ValueError, match=r"sampling interval must be from 0\.25 to 10 seconds"):
        MetricsSampler(SlowCollector(), interval_s=bad, save=None)  # type: ignore[arg-type]


def test_interval_bounds_are_allowed_and_can_change(qtbot, samplers):
    sampler = make(samplers, SlowCollector(), interval_s=0.25, save=None)
    sampler.set_interval(10)
    assert sampler.interval_s == 10.0
    with pytest.raises(ValueError):
        sampler.set_interval(11)
    assert sampler.interval_s == 10.0


def test_samples_come_at_the_interval_and_are_persisted(qtbot, samplers, tmp_path: Path, db):
    collector = MetricsCollector(tmp_path)  # the real sources: psutil, and NVML (no GPU here)
    sampler = make(samplers, collector, interval_s=0.25)
    received: list[Sample] = []
    sampler.sampled.connect(received.append)
    sampler.start()
    assert sampler.running
    qtbot.waitUntil(lambda: len(received) >= 6, timeout=5000)
    assert sampler.stop()

    steps = [b.timestamp - a.timestamp for a, b in itertools.pairwise(received)]
    assert all(150 <= step <= 450 for step in steps), steps
    history = database.get_metrics_history()
    assert [row["timestamp"] for row in history] == [sample.timestamp for sample in received]
    for row in history:
        for column in ("cpu_usage", "memory_usage", "disk_usage"):
            assert 0.0 <= row[column] <= 100.0, (column, row)
        if not collector.nvml.available:
            assert all(row[column] is None for column in GPU_COLUMNS), row
        assert row["active_models"] == 0 and row["requests_per_minute"] == 0.0
    uptimes = [row["uptime"] for row in history]
    assert uptimes == sorted(uptimes) and uptimes[-1] > uptimes[0]  # 1.5 s of samples
    assert sampler.last_sample == received[-1]
    assert sampler.last_duration_s is not None and sampler.last_duration_s < 0.2


def test_instance_figures_are_read_on_the_gui_thread_and_stored(qtbot, samplers, db):
    gui_thread = threading.get_ident()

    class Manager:
        calls_from: ClassVar[set[int]] = set()

        def active_models(self) -> int:
            self.calls_from.add(threading.get_ident())
            return 2

        def requests_per_minute(self) -> float:
            return 12.5

    collector = SlowCollector(delay_s=0)
    sampler = make(samplers, collector, interval_s=0.25, save=database.save_metrics)
    sampler.set_instance_stats(Manager())
    with qtbot.waitSignal(sampler.sampled, timeout=2000) as signal:
        sampler.start()
    assert (signal.args[0].active_models, signal.args[0].requests_per_minute) == (2, 12.5)
    sampler.stop()
    assert Manager.calls_from == {gui_thread}
    assert gui_thread not in collector.threads  # the sources ran on the worker thread
    stored = database.get_metrics_history()[-1]
    assert (stored["active_models"], stored["requests_per_minute"]) == (2, 12.5)


class InstancesManager:
    """A provider with per-instance samples (the real manager is an InstanceSampleSource too)."""

    def __init__(self) -> None:
        self.rows = [{"model": "a", "tokens_per_second": 41.5, "busy_slots": 1, "total_slots": 2}]
        self.calls_from: set[int] = set()
        self.broken = False

    def active_models(self) -> int:
        return len(self.rows)

    def requests_per_minute(self) -> float:
        return 3.0

    def instance_samples(self) -> list[dict]:
        self.calls_from.add(threading.get_ident())
        if self.broken:
            raise RuntimeError("instance table is being rebuilt")
        return self.rows


def test_one_instance_row_per_instance_is_stored_with_the_metrics_row(qtbot, samplers, db):
    from llamadash.services.manager import InstanceManager
    from llamadash.services.sampler import InstanceSampleSource

    assert issubclass(InstanceManager, InstanceSampleSource)  # the real manager gives them
    manager = InstancesManager()
    sampler = make(samplers, SlowCollector(delay_s=0), interval_s=0.25, save=database.save_metrics)
    sampler.set_instance_stats(manager)
    with qtbot.waitSignal(sampler.sampled, timeout=2000) as signal:
        sampler.start()
    qtbot.waitUntil(lambda: len(database.get_instance_history(1)) >= 1, timeout=2000)
    sampler.stop()
    assert manager.calls_from == {threading.get_ident()}  # read on the GUI thread, stored on the worker
    rows = database.get_instance_history(1)
    assert rows[0]["model"] == "a" and rows[0]["tokens_per_second"] == 41.5 and rows[0]["total_slots"] == 2
    assert rows[0]["prompt_tokens_per_second"] is None  # not given: NULL, never 0
    stamps = {row["timestamp"] for row in database.get_metrics_history(1)}
    assert signal.args[0].timestamp in stamps and {row["timestamp"] for row in rows} <= stamps


def test_the_metrics_and_instance_rows_of_a_sample_are_kept_together_or_not_at_all(qtbot, samplers, db):
    manager = InstancesManager()
    manager.rows = [{"model": "a", "tokens_per_second": "fast"}]  # refused by the database
    errors: list[str] = []
    sampler = make(samplers, SlowCollector(delay_s=0), interval_s=0.25, save=database.save_metrics)
    sampler.set_instance_stats(manager)
    sampler.failed.connect(errors.append)
    sampler.start()
    qtbot.waitUntil(lambda: len(errors) >= 1, timeout=2000)
    sampler.stop()
    assert "saving a sample failed" in errors[0]
    assert database.get_metrics_history(1) == [] and database.get_instance_history(1) == []


def test_failing_instance_rows_never_cost_the_sample(qtbot, samplers, db, caplog):
    manager = InstancesManager()
    manager.broken = True
    received: list[Sample] = []
    sampler = make(samplers, SlowCollector(delay_s=0), interval_s=0.25, save=database.save_metrics)
    sampler.set_instance_stats(manager)
    sampler.sampled.connect(received.append)
    sampler.start()
    qtbot.waitUntil(lambda: len(received) >= 2, timeout=2000)
    sampler.stop()
    assert database.get_metrics_history(1) and database.get_instance_history(1) == []
    assert "instance table is being rebuilt" in caplog.text


def test_a_slow_source_skips_ticks_and_never_overlaps(qtbot, samplers):
    collector = SlowCollector(delay_s=0.5)
    sampler = make(samplers, collector, interval_s=0.25, save=None)
    skipped: list[int] = []
    sampler.tick_skipped.connect(skipped.append)
    sampler.start()
    qtbot.waitUntil(lambda: collector.gathered >= 2, timeout=4000)
    sampler.stop()
    assert collector.max_active == 1
    assert sampler.skipped_ticks >= 2 and skipped[-1] == sampler.skipped_ticks
    assert skipped == list(range(1, len(skipped) + 1))


def test_a_slow_source_does_not_block_the_gui_thread(qtbot, samplers):
    sampler = make(samplers, SlowCollector(delay_s=0.5), interval_s=0.25, save=None)
    stamps: list[float] = []
    probe = QTimer()
    probe.setInterval(10)
    probe.timeout.connect(lambda: stamps.append(time.perf_counter()))
    probe.start()
    sampler.start()
    qtbot.wait(1300)  # two slow samples and several skipped ticks
    probe.stop()
    sampler.stop()
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert len(stamps) > 50
    assert max(gaps) < 0.1, f"the event loop stalled for {max(gaps) * 1000:.0f} ms"


def test_stop_joins_the_thread_and_closes_the_collector(qtbot, samplers):
    collector = SlowCollector(delay_s=0.3)
    sampler = make(samplers, collector, interval_s=0.25, save=None)
    received: list[Sample] = []
    sampler.sampled.connect(received.append)
    sampler.start()
    thread: QThread = sampler._thread  # type: ignore[assignment]
    assert thread.isRunning()
    qtbot.waitUntil(lambda: collector.active == 1, timeout=2000)  # stop while a sample is in flight
    assert sampler.stop()
    assert thread.isFinished() and not sampler.running
    assert collector.closed == 1 and collector.active == 0
    count = len(received)
    qtbot.wait(400)
    assert len(received) == count  # nothing arrives after stop()
    assert sampler.stop()  # stopping twice is harmless

    sampler.start()  # and it can start again
    qtbot.waitUntil(lambda: len(received) > count, timeout=2000)
    assert sampler.stop()


def test_a_failing_source_reports_and_sampling_goes_on(qtbot, samplers, caplog):
    sampler = make(samplers, FailingCollector(), interval_s=0.25, save=None)
    errors: list[str] = []
    sampler.failed.connect(errors.append)
    sampler.start()
    qtbot.waitUntil(lambda: len(errors) >= 2, timeout=2000)
    sampler.stop()
    assert "sensor exploded" in errors[0]
    assert sampler.last_sample is None


def test_a_failing_save_still_shows_the_sample(qtbot, samplers, caplog):
    def save(row: dict) -> None:
        raise OSError("disk full")

    sampler = make(samplers, SlowCollector(delay_s=0), interval_s=0.25, save=save)
    received: list[Sample] = []
    errors: list[str] = []
    sampler.sampled.connect(received.append)
    sampler.failed.connect(errors.append)
    sampler.start()
    qtbot.waitUntil(lambda: len(errors) >= 2, timeout=2000)
    sampler.stop()
    assert errors[0] == "saving a sample failed: disk full"
    assert len(received) >= 2 and sampler.last_sample is received[-1]
    assert caplog.text.count("disk full") == 1  # logged once per failure streak, signalled every time


def test_sampling_does_not_wear_down_the_reference_count_of_true(qtbot, samplers):
    # PySide6 6.12.0's emit() drops a reference to the True it returns; on CPython 3.11 that aborted
    # the benchmark ("Fatal Python error: bool_dealloc") after a minute of sampling.
    collector = SlowCollector(delay_s=0)
    sampler = make(samplers, collector, interval_s=0.25, save=None)
    received: list[Sample] = []
    sampler.sampled.connect(received.append)
    sampler.start()
    qtbot.waitUntil(lambda: len(received) >= 1, timeout=2000)
    before = sys.getrefcount(True)
    qtbot.waitUntil(lambda: len(received) >= 7, timeout=4000)
    after = sys.getrefcount(True)
    sampler.stop()
    # Three emits per sample: broken, six samples cost at least 18 references.
    assert after - before > -9, f"True lost {before - after} references over six samples"


def test_it_runs_headless_under_a_core_application(tmp_path: Path):
    script = textwrap.dedent(
        f"""
        import sys
        from PySide6.QtCore import QCoreApplication, QTimer
        from llamadash.core import database
        from llamadash.core.metrics import MetricsCollector
        from llamadash.services.sampler import MetricsSampler

        app = QCoreApplication([])
        database.init_database({str(tmp_path / "headless.db")!r})
        sampler = MetricsSampler(MetricsCollector({str(tmp_path)!r}), interval_s=0.25)
        got = []
        def on_sample(sample):
            got.append(sample)
            if len(got) == 3:
                app.quit()
        sampler.sampled.connect(on_sample)
        sampler.start()
        QTimer.singleShot(5000, app.quit)
        app.exec()
        sampler.stop()
        rows = database.get_metrics_history()
        database.close_database()
        print(len(got), len(rows), "PySide6.QtWidgets" in sys.modules, "PySide6.QtGui" in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[3],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3", "3", "False", "False"]
    assert result.stderr == ""


def test_saving_changed_says_when_history_stops_and_starts_being_saved(qtbot, samplers, tmp_path: Path):
    database.close_database()  # a real failing save: nothing to save into yet
    sampler = make(samplers, SlowCollector(delay_s=0), interval_s=0.25)
    changes: list[tuple[bool, str]] = []
    sampler.saving_changed.connect(lambda saving, reason: changes.append((saving, reason)))
    received: list[Sample] = []
    sampler.sampled.connect(received.append)
    sampler.start()
    qtbot.waitUntil(lambda: len(received) >= 3, timeout=3000)
    assert changes == [(False, "the database is not open: call init_database() first")]
    assert sampler.save_problem == changes[0][1]

    database.init_database(tmp_path / "later.db")
    try:
        qtbot.waitUntil(lambda: len(changes) == 2, timeout=3000)
        assert changes[1] == (True, "")
        assert sampler.save_problem is None
        count = len(received)
        qtbot.waitUntil(lambda: len(received) >= count + 2, timeout=3000)
        assert len(changes) == 2  # sent on changes only
        assert database.count_rows()["metrics_history"] >= 2
    finally:
        sampler.stop()
        database.close_database()


def test_a_failing_source_does_not_count_as_history_not_saved(qtbot, samplers, caplog):
    sampler = make(samplers, FailingCollector(), interval_s=0.25)
    changes: list[tuple[bool, str]] = []
    errors: list[str] = []
    sampler.saving_changed.connect(lambda saving, reason: changes.append((saving, reason)))
    sampler.failed.connect(errors.append)
    sampler.start()
    qtbot.waitUntil(lambda: len(errors) >= 2, timeout=2000)
    assert changes == [] and sampler.save_problem is None
