"""Request records at 100 requests/s through a real instance: event-loop stalls and cost per record.

Run from the repository root::

    .venv/bin/python benchmarks/bench_request_ingest.py                  # 100 requests/s for 10 s
    .venv/bin/python benchmarks/bench_request_ingest.py --rate 300 --seconds 20

Method: a :class:`~llamadash.services.instance.ServerInstance` runs a small Python child (the same
launch, read, split, parse, buffer, log-file and signal path as llama-server, health check off) that
prints the request lines of a real captured log of llama-server b11434
(``tests/data/llama-server-requests-b11434.log``, renumbered and interleaved on two slots by
``bench_request_log.make_lines``) at ``--rate`` requests a second, in 10 ms steps. A slot counts
``logLine`` the way the log view does, and ``requestRecorded`` goes to a
:class:`~llamadash.services.request_store.RequestStore` that stores into a fresh database (on its
own thread), as the instance manager does. A 10 ms ``QTimer`` measures the event loop: the worst
stall is the longest gap between two ticks less the 10 ms.

The baseline is the same run with the instance's request parser replaced by one that recognises
nothing (and so nothing stored): the ratio and the difference in the GUI thread's CPU time
(``time.thread_time``) are what the records cost. Runs alternate (baseline, records, ...),
``--repeat`` of each; the least CPU of each kind is compared, the worst stall of all is reported.

Exit status: 0 when every request became one record, all were stored, and the worst stall is under
50 ms; 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

from benchmarks.bench_log_flood import TICK_MS, StallMeter
from benchmarks.bench_request_log import make_lines
from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer

from llamadash.core import database
from llamadash.core.requests_log import RequestRecord
from llamadash.services.instance import LaunchPlan, ServerInstance
from llamadash.services.request_store import RequestStore, save_to_database

TARGET_STALL_MS = 50.0

CHILD = """
import sys, time
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
seconds = float(sys.argv[2])
step, started, sent = 0.01, time.monotonic(), 0
write = sys.stdout.write
while sent < len(lines):
    due = min(len(lines), int(len(lines) * (time.monotonic() - started) / seconds) + 1)
    if due > sent:
        write("\\n".join(lines[sent:due]) + "\\n")
        sys.stdout.flush()
        sent = due
    time.sleep(step)
"""


class _RecognisesNothing:
    """The baseline's request parser: every line is one it does not know."""

    model = None

    def feed(self, line: str, at_ms: int | None = None) -> list[RequestRecord]:
        return []

    def flush(self, at_ms: int | None = None) -> list[RequestRecord]:
        return []


def run_once(
    app: QCoreApplication, lines_file: Path, seconds: float, tmp: Path, *, records: bool
) -> dict[str, float]:
    """One run through a fresh instance; the figures of that run."""
    plan = LaunchPlan(
        argv=(sys.executable, "-c", CHILD, str(lines_file), str(seconds)), env={}, health_check=False
    )
    inst = ServerInstance("bench", prepare=lambda: plan, log_path=tmp / "bench.log", poll_interval_s=1.0)
    if not records:
        inst._pipe._requests = _RecognisesNothing()  # type: ignore[assignment]  # the baseline
    store_s = [0.0]

    def timed_save(batch: Sequence[RequestRecord]) -> None:
        started = time.perf_counter()
        save_to_database(batch)
        store_s[0] += time.perf_counter() - started

    store = RequestStore(timed_save)
    got = {"lines": 0, "records": 0}

    def on_line(_line: str) -> None:
        got["lines"] += 1

    def on_record(record: object) -> None:
        got["records"] += 1
        store.record("bench", record)

    inst.logLine.connect(on_line)
    inst.requestRecorded.connect(on_record)
    meter = StallMeter()
    loop = QEventLoop()

    def on_state(_state: str, _reason: str) -> None:
        if not inst.active:
            QTimer.singleShot(100, loop.quit)  # a stall at the very end is measured too

    inst.stateChanged.connect(on_state)
    QTimer.singleShot(round((seconds * 3 + 30) * 1000), loop.quit)
    cpu_start, wall_start = time.thread_time(), time.perf_counter()
    meter.start()
    inst.start()
    loop.exec()  # the loop waits for events (a busy processEvents loop would count its own spinning)
    cpu = time.thread_time() - cpu_start
    meter.stop()
    stored_in_time = store.close(10)
    if inst.active:
        inst.kill()
        inst.wait_stopped(5)
    inst.deleteLater()
    app.processEvents()
    return {
        "cpu_s": cpu,
        "wall_s": time.perf_counter() - wall_start,
        "stall_ms": meter.stall_ms(),
        "lines": got["lines"],
        "records": got["records"],
        "stored": store.stored if stored_in_time else -1,
        "store_s": store_s[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=100, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each kind (alternating)")
    args = parser.parse_args(argv)

    app = QCoreApplication.instance() or QCoreApplication([])
    lines, requests = make_lines(args.rate, args.seconds)
    base_runs: list[dict[str, float]] = []
    record_runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        lines_file = tmp / "lines.log"
        lines_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        database.init_database(tmp / "bench.db")
        try:
            for _ in range(args.repeat):
                base_runs.append(run_once(app, lines_file, args.seconds, tmp, records=False))
                record_runs.append(run_once(app, lines_file, args.seconds, tmp, records=True))
            in_db = database.count_requests(model="bench")
        finally:
            database.close_database()

    base = min(base_runs, key=lambda run: run["cpu_s"])
    best = min(record_runs, key=lambda run: run["cpu_s"])
    worst_stall = max(run["stall_ms"] for run in base_runs + record_runs)
    record_stall = max(run["stall_ms"] for run in record_runs)
    base_stall = max(run["stall_ms"] for run in base_runs)
    extra_us = (best["cpu_s"] - base["cpu_s"]) / max(requests, 1) * 1e6
    store_us = min(run["store_s"] for run in record_runs) / max(requests, 1) * 1e6
    ok_records = all(run["records"] == requests for run in record_runs)
    ok_stored = all(run["stored"] == requests for run in record_runs) and in_db == requests * args.repeat
    ok_lines = all(run["lines"] == len(lines) for run in base_runs + record_runs)

    print(f"machine:       {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(
        f"child:         {requests} requests ({args.rate}/s for {args.seconds:g} s), {len(lines)} real "
        f"b11434 log lines, {args.repeat} runs of each kind"
    )
    print(
        f"GUI thread:    baseline {base['cpu_s'] * 1000:.0f} ms CPU, with records {best['cpu_s'] * 1000:.0f} ms "
        f"({best['cpu_s'] / base['cpu_s']:.2f}x the baseline)"
    )
    print(
        f"per record:    {extra_us:.1f} µs on the GUI thread (parse, signal, hand to the store); "
        f"{store_us:.1f} µs storing on the store's thread (SQLite, daily totals)"
    )
    print(
        f"share at {args.rate}/s: {extra_us * args.rate / 1e4:.3f} % of one core on the GUI thread for the records"
    )
    print(
        f"event loop:    worst stall {record_stall:.1f} ms with records, {base_stall:.1f} ms baseline "
        f"({TICK_MS} ms ticks); target < {TARGET_STALL_MS:.0f} ms"
    )
    print(
        f"records:       {best['records']:.0f}/{requests} emitted, {best['stored']:.0f} stored per run, "
        f"{in_db} rows in the database; lines {best['lines']:.0f}/{len(lines)}"
    )
    verdict = ok_records and ok_stored and ok_lines and worst_stall < TARGET_STALL_MS
    print("result:        " + ("PASS" if verdict else "FAIL"))
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
