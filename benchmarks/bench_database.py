"""Benchmark the database API against the same SQL issued with the stdlib ``sqlite3`` module.

Run: ``python benchmarks/bench_database.py [--quick]``

For each case it prints the median time per call through the API and through plain ``sqlite3``
(same file layout, made by ``init_database``; same pragmas; same statements), and their ratio.
The two are called alternately, so that machine noise affects both alike.

* ``save_metrics``: a table holding 10 minutes at 1 Hz (600 rows); every insert expires exactly one
  row (retention cleanup in the same transaction) and updates ``last_metrics_save``. Time stamps
  advance one second per call, so the table stays at 600 rows.
* ``get_metrics_history(10)``: 600 rows (1 Hz) and 6,000 rows (10 Hz) in the window. The plain
  ``sqlite3`` side builds the same list of dicts; a "tuples only" line shows the bare fetch.

Targets: API within 3x of plain sqlite3, ``save_metrics`` under 1 ms median.
"""

from __future__ import annotations

import argparse
import gc
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llamadash.core import database
from llamadash.core.db import api
from llamadash.core.db.models import METRICS_COLUMNS, METRICS_INPUT_COLUMNS, PRAGMAS

SQL = api.METRICS_SQL
RETENTION_MS = 10 * 60_000


def sample(ts: int) -> dict[str, float | int]:
    return {
        "timestamp": ts,
        "created_at": ts,
        "cpu_usage": 42.5,
        "memory_usage": 61.0,
        "disk_usage": 70.25,
        "gpu_usage": 88.0,
        "gpu_temperature": 71.0,
        "gpu_memory_used": 6123.0,
        "gpu_memory_total": 24576.0,
        "gpu_power_usage": 250.5,
        "active_models": 2,
        "uptime": 3600,
        "requests_per_minute": 12.0,
    }


def row_of(metrics: dict[str, float | int]) -> tuple:
    return tuple(metrics.get(column) for column in METRICS_INPUT_COLUMNS)


def paired_medians_us(
    functions: dict[str, Callable[[], object]], repeat: int, warmup: int
) -> dict[str, float]:
    """Median microseconds per call of each function, calls interleaved so noise hits all alike."""
    for _ in range(warmup):
        for function in functions.values():
            function()
    times: dict[str, list[int]] = {name: [] for name in functions}
    clock = time.perf_counter_ns
    gc.collect()
    for _ in range(repeat):
        for name, function in functions.items():
            start = clock()
            function()
            times[name].append(clock() - start)
    return {name: statistics.median(values) / 1000 for name, values in times.items()}


def make_file(path: Path) -> None:
    """Create the file the way the application does (tables, indexes, pragmas)."""
    database.init_database(path)
    database.close_database()


def raw_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=api.BUSY_TIMEOUT_S)
    for name, value in PRAGMAS:
        conn.execute(f"PRAGMA {name} = {value}")
    return conn


def fill(conn: sqlite3.Connection, first_ts: int, count: int, step_ms: int) -> None:
    conn.execute("BEGIN")
    conn.execute("DELETE FROM metrics_history")
    conn.executemany(SQL["insert"], [row_of(sample(first_ts + i * step_ms)) for i in range(count)])
    conn.execute("COMMIT")


def bench_save(workdir: Path, repeat: int) -> tuple[float, float]:
    warmup = 200
    start = api.now_ms() - RETENTION_MS

    raw_path, api_path = workdir / "save-raw.db", workdir / "save-api.db"
    for path in (raw_path, api_path):
        make_file(path)
        conn = raw_connect(path)
        fill(conn, start, 600, 1000)
        conn.close()

    conn = raw_connect(raw_path)
    database.init_database(api_path, retention_minutes=10)
    raw_ts = [start + 600 * 1000]
    api_ts = [start + 600 * 1000]

    def raw_save() -> None:
        ts = raw_ts[0]
        raw_ts[0] = ts + 1000
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(SQL["insert"], row_of(sample(ts)))
        conn.execute(SQL["expire"], (ts - RETENTION_MS,))
        if conn.execute(SQL["metadata_update"], (str(ts), ts, "last_metrics_save")).rowcount == 0:
            conn.execute(SQL["metadata_insert"], ("last_metrics_save", str(ts), ts))
        conn.execute("COMMIT")

    def api_save() -> None:
        ts = api_ts[0]
        api_ts[0] = ts + 1000
        database.save_metrics(sample(ts))

    medians = paired_medians_us({"api": api_save, "raw": raw_save}, repeat, warmup)
    raw_rows = conn.execute("SELECT count(*) FROM metrics_history").fetchone()[0]
    api_rows = database.count_rows()["metrics_history"]
    conn.close()
    database.close_database()
    assert raw_rows == api_rows == 600, (raw_rows, api_rows)
    return medians["api"], medians["raw"]


def bench_history(workdir: Path, rows: int, step_ms: int, repeat: int) -> tuple[float, float, float]:
    warmup = 20
    path = workdir / f"history-{rows}.db"
    make_file(path)
    conn = raw_connect(path)
    # The window ends a minute from now so every row stays inside it for the whole run.
    fill(conn, api.now_ms() + 60_000 - rows * step_ms, rows, step_ms)

    def raw_dicts() -> list[dict]:
        cutoff = api.now_ms() - RETENTION_MS
        return [
            dict(zip(METRICS_COLUMNS, row, strict=False))
            for row in conn.execute(SQL["history"], (cutoff,)).fetchall()
        ]

    def raw_tuples() -> list[tuple]:
        return conn.execute(SQL["history"], (api.now_ms() - RETENTION_MS,)).fetchall()

    database.init_database(path)
    assert len(raw_dicts()) == len(database.get_metrics_history(10)) == rows
    medians = paired_medians_us(
        {"api": lambda: database.get_metrics_history(10), "raw": raw_dicts, "tuples": raw_tuples},
        repeat,
        warmup,
    )
    conn.close()
    database.close_database()
    return medians["api"], medians["raw"], medians["tuples"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0

    print(f"SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}")
    print(f"{'case':44} {'API':>10} {'sqlite3':>10} {'ratio':>7}")
    failures = []
    with tempfile.TemporaryDirectory(prefix="llamadash-bench-") as tmp:
        workdir = Path(tmp)
        through_api, raw = bench_save(workdir, int(3000 * scale))
        print(
            f"{'save_metrics (600 rows, 1 expires per insert)':44} {through_api:8.1f}us {raw:8.1f}us {through_api / raw:6.2f}x"
        )
        if through_api > 1000:
            failures.append("save_metrics median is over 1 ms")
        if through_api > 3 * raw:
            failures.append("save_metrics is more than 3x plain sqlite3")
        for rows, step, repeat in ((600, 1000, 500), (6000, 100, 100)):
            through_api, raw, bare = bench_history(workdir, rows, step, max(10, int(repeat * scale)))
            label = f"get_metrics_history(10), {rows} rows"
            print(f"{label:44} {through_api:8.1f}us {raw:8.1f}us {through_api / raw:6.2f}x")
            label = f"  (sqlite3 fetch as tuples only, {rows} rows)"
            print(f"{label:44} {'':10} {bare:8.1f}us {through_api / bare:6.2f}x")
            if through_api > 3 * raw:
                failures.append(f"get_metrics_history with {rows} rows is more than 3x plain sqlite3")
    for failure in failures:
        print("MISSED TARGET:", failure)
    print("all targets met" if not failures else f"{len(failures)} target(s) missed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
