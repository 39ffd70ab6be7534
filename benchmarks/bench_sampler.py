"""How much CPU the metrics sampler costs at 1 Hz, and how long one sample takes.

Run from the repository root::

    .venv/bin/python benchmarks/bench_sampler.py            # 60 s idle baseline + 60 s sampling
    .venv/bin/python benchmarks/bench_sampler.py --duration 10

Method: the process's CPU time (all threads) is measured over a window with the Qt event loop
running and no sampler (the idle baseline), then over a window of the same length with the sampler
running on the real sources (psutil, NVML) and saving into a real SQLite database in a temporary
directory. The sampler's cost is the difference, as % of one core. The time per sample is what the
worker thread spends gathering and saving one sample.

Exit status: 0 when the cost is under the target (0.5 % of one core), 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer

from llamadash.core import database
from llamadash.core.metrics import MetricsCollector, Sample
from llamadash.services.sampler import MetricsSampler

TARGET_PERCENT_OF_ONE_CORE = 0.5


def run_loop(seconds: float) -> tuple[float, float]:
    """Run an event loop for ``seconds``; return (wall seconds, process CPU seconds of all threads)."""
    # A local QEventLoop, not app.exec(): leaving that emits aboutToQuit, which stops the sampler.
    loop = QEventLoop()
    QTimer.singleShot(round(seconds * 1000), loop.quit)
    wall, cpu = time.perf_counter(), time.process_time()
    loop.exec()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per window (default 60)")
    parser.add_argument("--interval", type=float, default=1.0, help="sampling interval in s (default 1)")
    args = parser.parse_args(argv)

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
            busy_wall, busy_cpu = run_loop(args.duration)
            gpu = collector.nvml.status  # before stop(), which releases NVML
            sampler.stop()
            rows = database.get_metrics_history()
        finally:
            database.close_database()

    idle_pct = 100 * idle_cpu / idle_wall
    busy_pct = 100 * busy_cpu / busy_wall
    cost_pct = busy_pct - idle_pct
    print(f"  GPU readings: {gpu}; GPUs seen: {len(samples[-1].gpus) if samples else 0}")
    print(
        f"  idle baseline : {idle_cpu * 1000:8.1f} ms CPU over {idle_wall:6.1f} s = {idle_pct:6.3f} % of one core"
    )
    print(
        f"  with sampler  : {busy_cpu * 1000:8.1f} ms CPU over {busy_wall:6.1f} s = {busy_pct:6.3f} % of one core"
    )
    verdict = "OK" if cost_pct < TARGET_PERCENT_OF_ONE_CORE else "OVER TARGET"
    print(
        f"  sampler cost  : {cost_pct:6.3f} % of one core (target < {TARGET_PERCENT_OF_ONE_CORE} %): {verdict}"
    )
    print(f"  samples: {len(samples)} emitted, {len(rows)} saved, {sampler.skipped_ticks} ticks skipped")
    if durations:
        print(
            f"  time per sample (gather + save, worker thread): median {statistics.median(durations) * 1000:.2f} ms, "
            f"max {max(durations) * 1000:.2f} ms (the first includes NVML initialisation)"
        )
        if len(durations) > 1:
            print(f"  max excluding the first: {max(durations[1:]) * 1000:.2f} ms")
    return 0 if cost_pct < TARGET_PERCENT_OF_ONE_CORE else 1


if __name__ == "__main__":
    sys.exit(main())
