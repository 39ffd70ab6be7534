"""How much CPU the metrics sampler costs at 1 Hz, and how long one sample takes.

Run from the repository root::

    .venv/bin/python benchmarks/bench_sampler.py            # 60 s idle baseline + 60 s sampling
    .venv/bin/python benchmarks/bench_sampler.py --duration 10

Method: the process's CPU time (all threads) is measured over a window with the Qt event loop
running and no sampler (the idle baseline), then over a window of the same length with the sampler
running on the real sources (psutil, NVML) and saving into a real SQLite database in a temporary
directory. The sampler's cost is the difference, as % of one core. The time per sample is what the
worker thread spends gathering and saving one sample.

The floor, measured in the same run at the same interval on a thread of its own: the same three
readings straight from psutil (CPU %, memory %, disk %) and the same row saved with the stdlib
``sqlite3`` module (the statements ``save_metrics`` runs: insert, expire, ``last_metrics_save``) in
a copy of the database. Both the time per sample and the % of one core are printed as ratios to it.
The sampler takes one sample before the measured window (NVML's initialisation, ~20 ms once, is
not a cost per sample); ``--profile FILE`` writes a cProfile (CPU time) of the worker's samples.

Exit status: 0 when both figures are within their targets (under 0.1 % of one core, at most 0.3 ms a
sample), 1 otherwise; each RESULT line says OK or OVER TARGET for its own figure.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer

from llamadash.core import database
from llamadash.core.db import api
from llamadash.core.db.models import METRICS_INPUT_COLUMNS, PRAGMAS
from llamadash.core.metrics import MetricsCollector, Sample
from llamadash.services import sampler as sampler_mod
from llamadash.services.sampler import MetricsSampler

TARGET_PERCENT_OF_ONE_CORE = 0.1
TARGET_MS_PER_SAMPLE = 0.3
WARM_SAMPLES = 200


def run_loop(seconds: float) -> tuple[float, float]:
    """Run an event loop for ``seconds``; return (wall seconds, process CPU seconds of all threads)."""
    # A local QEventLoop, not app.exec(): leaving that emits aboutToQuit, which stops the sampler.
    loop = QEventLoop()
    QTimer.singleShot(round(seconds * 1000), loop.quit)
    wall, cpu = time.perf_counter(), time.process_time()
    loop.exec()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure_floor(
    db_file: Path, disk_path: str, interval_s: float, seconds: float
) -> tuple[list[float], list[float], float, list[float]]:
    """The floor: psutil's three readings and a raw sqlite3 save, once per interval on a thread.

    Returns the seconds each took, the CPU seconds each took, the thread's CPU seconds over the
    window, and the CPU seconds of each of :data:`WARM_SAMPLES` more taken back to back (warm
    caches: once a second, the same work costs several times that on a virtual machine).
    """
    import psutil

    sql = api.METRICS_SQL
    conn = sqlite3.connect(db_file, isolation_level=None, check_same_thread=False)
    for name, value in PRAGMAS:
        conn.execute(f"PRAGMA {name} = {value}")
    retention_ms = 10 * 60_000
    durations: list[float] = []
    cpus: list[float] = []
    warm: list[float] = []
    cpu = [0.0]

    def sample_once() -> None:
        cpu_percent = psutil.cpu_percent(None)
        memory = psutil.virtual_memory().percent
        disk = psutil.disk_usage(disk_path).percent
        now = time.time_ns() // 1_000_000
        values = {"timestamp": now, "created_at": now, "cpu_usage": cpu_percent}
        values.update(memory_usage=memory, disk_usage=disk, active_models=0, requests_per_minute=0.0)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(sql["insert"], tuple(values.get(column) for column in METRICS_INPUT_COLUMNS))
        conn.execute(sql["expire"], (now - retention_ms,))
        if conn.execute(sql["metadata_update"], (str(now), now, "last_metrics_save")).rowcount == 0:
            conn.execute(sql["metadata_insert"], ("last_metrics_save", str(now), now))
        conn.execute("COMMIT")

    def run() -> None:
        sample_once()  # warm-up, as the sampler's first sample
        started_cpu = time.thread_time()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(interval_s)
            t, c = time.perf_counter(), time.thread_time()
            sample_once()
            durations.append(time.perf_counter() - t)
            cpus.append(time.thread_time() - c)
        cpu[0] = time.thread_time() - started_cpu
        for _ in range(WARM_SAMPLES):  # the same work back to back: what it costs with warm caches
            c = time.thread_time()
            sample_once()
            warm.append(time.thread_time() - c)

    thread = threading.Thread(target=run, name="floor")
    thread.start()
    thread.join()
    conn.close()
    return durations, cpus, cpu[0], warm


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per window (default 60)")
    parser.add_argument("--interval", type=float, default=1.0, help="sampling interval in s (default 1)")
    parser.add_argument(
        "--profile", metavar="FILE", help="write a cProfile (CPU time) of the worker's samples"
    )
    args = parser.parse_args(argv)
    profile = cProfile.Profile(time.thread_time) if args.profile else None
    worker_cpu: list[float] = []  # CPU seconds of each sample on the worker thread (not preempted time)
    take_sample = sampler_mod._SampleWorker.take_sample

    def timed(self, *a):
        started = time.thread_time()
        if profile is not None:
            profile.enable()
        try:
            take_sample(self, *a)
        finally:
            if profile is not None:
                profile.disable()
            worker_cpu.append(time.thread_time() - started)

    sampler_mod._SampleWorker.take_sample = timed  # type: ignore[method-assign]

    app = QCoreApplication(sys.argv[:1])  # noqa: F841 - the event loops need it
    with tempfile.TemporaryDirectory(prefix="llamadash-bench-") as tmp:
        database.init_database(Path(tmp) / "bench.db")
        try:
            collector = MetricsCollector(tmp)
            sampler = MetricsSampler(collector, interval_s=args.interval)
            durations: list[float] = []
            samples: list[Sample] = []

            def on_sample(sample: Sample) -> None:
                samples.append(sample)
                if sampler.last_duration_s is not None:
                    durations.append(sampler.last_duration_s)

            sampler.sampled.connect(on_sample)

            print(f"llamadash sampler benchmark: {args.duration:g} s idle + {args.duration:g} s sampling")
            print(
                f"  {platform.python_implementation()} {platform.python_version()}, {platform.machine()}, "
                f"{os.cpu_count()} logical CPUs, interval {args.interval:g} s"
            )
            idle_wall, idle_cpu = run_loop(args.duration)
            sampler.start()
            while not samples:  # the first sample (NVML's initialisation) is a warm-up
                run_loop(args.interval / 2)
            first_ms = durations[0] * 1000 if durations else float("nan")
            samples.clear()
            durations.clear()
            worker_cpu.clear()
            busy_wall, busy_cpu = run_loop(args.duration)
            gpu = collector.nvml.status  # before stop(), which releases NVML
            sampler.stop()
            warm_sampler: list[float] = []  # the sampler's gather + save back to back, as the floor's
            for _ in range(WARM_SAMPLES):
                c = time.thread_time()
                database.save_metrics(collector.gather().as_row())
                warm_sampler.append(time.thread_time() - c)
            rows = database.get_metrics_history()
        finally:
            database.close_database()
        floor_file = Path(tmp) / "floor.db"
        database.init_database(floor_file)
        database.close_database()
        floor_durations, floor_cpus, floor_cpu, warm_cpus = measure_floor(
            floor_file, tmp, args.interval, args.duration
        )
    if profile is not None:
        profile.dump_stats(args.profile)

    idle_pct = 100 * idle_cpu / idle_wall
    busy_pct = 100 * busy_cpu / busy_wall
    cost_pct = busy_pct - idle_pct
    floor_pct = 100 * floor_cpu / args.duration
    print(f"  GPU readings: {gpu}; GPUs seen: {len(samples[-1].gpus) if samples else 0}")
    print(
        f"  idle baseline : {idle_cpu * 1000:8.1f} ms CPU over {idle_wall:6.1f} s = {idle_pct:6.3f} % of one core"
    )
    print(
        f"  with sampler  : {busy_cpu * 1000:8.1f} ms CPU over {busy_wall:6.1f} s = {busy_pct:6.3f} % of one core"
    )
    print(f"  samples: {len(samples)} emitted, {len(rows)} saved, {sampler.skipped_ticks} ticks skipped")
    print(f"  first sample (NVML initialisation, before the window): {first_ms:.2f} ms")
    per_sample = statistics.median(durations) * 1000 if durations else float("nan")
    cpu_per_sample = statistics.median(worker_cpu) * 1000 if worker_cpu else float("nan")
    floor_ms = statistics.median(floor_durations) * 1000 if floor_durations else float("nan")
    floor_cpu_ms = statistics.median(floor_cpus) * 1000 if floor_cpus else float("nan")
    if durations:
        print(
            f"  time per sample (gather + save, worker thread): median {per_sample:.3f} ms wall, "
            f"{cpu_per_sample:.3f} ms CPU; max {max(durations) * 1000:.2f} ms wall"
        )
    print(
        f"  floor (psutil's 3 readings + raw sqlite3 save, same interval): median {floor_ms:.3f} ms wall, "
        f"{floor_cpu_ms:.3f} ms CPU per sample; {floor_pct:.3f} % of one core"
    )
    print(
        f"  the floor's work back to back ({WARM_SAMPLES} times, warm caches): median "
        f"{statistics.median(warm_cpus) * 1000:.3f} ms CPU per sample; the sampler's gather + save so: "
        f"{statistics.median(warm_sampler) * 1000:.3f} ms CPU"
    )
    cost_ok = cost_pct < TARGET_PERCENT_OF_ONE_CORE
    sample_ok = per_sample <= TARGET_MS_PER_SAMPLE
    print(
        f"RESULT per sample: {per_sample:.3f} ms wall = {per_sample / floor_ms:.2f}x the floor; "
        f"{cpu_per_sample:.3f} ms CPU = {cpu_per_sample / floor_cpu_ms:.2f}x the floor's "
        f"(target <= {TARGET_MS_PER_SAMPLE} ms): {'OK' if sample_ok else 'OVER TARGET'}"
    )
    ratio = cost_pct / floor_pct if floor_pct > 0 else float("nan")
    print(
        f"RESULT sampler cost: {cost_pct:.3f} % of one core = {ratio:.2f}x the floor "
        f"(target < {TARGET_PERCENT_OF_ONE_CORE} %): {'OK' if cost_ok else 'OVER TARGET'}"
    )
    ok = cost_ok and sample_ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
