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

* ``save_requests`` of 1 and of 100 records into a ``requests`` table of 100,000 rows bounded at
  100,000 (every insert drops as many of the oldest rows), with the daily totals added and the
  age and daily-total retention checked in the same transaction. The plain ``sqlite3`` side runs
  the same statements on rows made in advance (no checks); an "insert only" line shows what the
  pruning itself costs.
* ``get_requests(limit=1000)`` on those 100,000 rows (newest first); the plain side builds the
  same dicts.
* ``get_models()`` of 50 models (the window reads them before its first paint); the plain side
  builds dicts of the same rows with nothing converted.

Targets: API within 3x of plain sqlite3, ``save_metrics`` and ``save_requests`` of one record
under 1 ms median; pruning adds under 100 µs to a save plus 5 µs per row it drops (the table's
size does not count: each prune is an index range delete).
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
from llamadash.core.db import checks
from llamadash.core.db.models import (
    METRICS_COLUMNS,
    MODEL_COLUMNS,
    METRICS_INPUT_COLUMNS,
    PRAGMAS,
    REQUEST_COLUMNS,
    REQUEST_INPUT_COLUMNS,
)
from llamadash.core.db.store import DAILY_TOTALS_RETENTION_DAYS, REQUESTS_SQL, Database

SQL = api.METRICS_SQL
RETENTION_MS = 10 * 60_000
MODELS = 50


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


REQUEST_ROWS = 100_000
_DAY_MS = 86_400_000


def request(finished_at: int, task: int) -> dict[str, object]:
    return {
        "finished_at": finished_at,
        "started_at": finished_at - 1500,
        "model": "qwen2.5-7b-instruct",
        "slot": task % 4,
        "task": task,
        "status": "finished",
        "prompt_tokens": 512,
        "cached_tokens": 128,
        "prompt_ms": 120.5,
        "prompt_tps": 4249.0,
        "generated_tokens": 256,
        "generation_ms": 5600.0,
        "generation_tps": 45.7,
        "total_ms": 5720.5,
        "context_tokens": 895,
        "truncated": False,
        "context_shifted": False,
    }


def request_tuple(record: dict[str, object]) -> tuple:
    return tuple(int(v) if isinstance(v, bool) else v for v in (record.get(c) for c in REQUEST_INPUT_COLUMNS))


def fill_requests(path: Path, now: int) -> None:
    """REQUEST_ROWS records over the last day (all inside the retention), and their daily totals."""
    conn = raw_connect(path)
    first = now - _DAY_MS
    step = _DAY_MS // REQUEST_ROWS
    conn.execute("BEGIN")
    conn.executemany(
        REQUESTS_SQL["insert"], [request_tuple(request(first + i * step, i)) for i in range(REQUEST_ROWS)]
    )
    conn.execute("COMMIT")
    conn.close()


def bench_save_requests(workdir: Path, batch: int, repeat: int) -> tuple[float, float, float]:
    """Median µs per save_requests of ``batch`` records: API, plain sqlite3, plain insert only."""
    now = api.now_ms()
    paths = {name: workdir / f"requests-{batch}-{name}.db" for name in ("api", "raw", "bare")}
    for path in paths.values():
        make_file(path)
        fill_requests(path, now)
    store = Database(paths["api"], max_request_rows=REQUEST_ROWS, record_start=False)
    raw, bare = raw_connect(paths["raw"]), raw_connect(paths["bare"])
    clock = {"api": now, "raw": now, "bare": now}
    days = int(store.request_retention_days)

    def records(name: str) -> list[dict[str, object]]:
        start = clock[name]
        clock[name] = start + batch
        return [request(start + i, i) for i in range(batch)]

    def api_save() -> None:
        store.save_requests(records("api"))

    def raw_save() -> None:
        rows = [request_tuple(r) for r in records("raw")]
        newest = clock["raw"]
        raw.execute("BEGIN IMMEDIATE")
        raw.executemany(REQUESTS_SQL["insert"], rows)
        last_id = raw.execute("SELECT max(id) FROM requests").fetchone()[0]
        raw.execute(
            REQUESTS_SQL["daily_add"],
            (checks.local_day(newest), "qwen2.5-7b-instruct", batch, 512 * batch, 256 * batch),
        )
        raw.execute(REQUESTS_SQL["expire"], (newest - days * _DAY_MS,))
        raw.execute(REQUESTS_SQL["bound"], (last_id - REQUEST_ROWS,))
        raw.execute(
            REQUESTS_SQL["daily_expire"],
            (checks.local_day(newest - (DAILY_TOTALS_RETENTION_DAYS - 1) * _DAY_MS),),
        )
        raw.execute("COMMIT")

    def bare_insert() -> None:
        rows = [request_tuple(r) for r in records("bare")]
        bare.execute("BEGIN IMMEDIATE")
        bare.executemany(REQUESTS_SQL["insert"], rows)
        bare.execute("COMMIT")

    medians = paired_medians_us({"api": api_save, "raw": raw_save, "bare": bare_insert}, repeat, 20)
    api_rows = store.count_requests()
    raw_rows = raw.execute("SELECT count(*) FROM requests").fetchone()[0]
    store.close()
    raw.close()
    bare.close()
    assert api_rows == raw_rows == REQUEST_ROWS, (api_rows, raw_rows)
    return medians["api"], medians["raw"], medians["bare"]


def bench_get_requests(workdir: Path, repeat: int) -> tuple[float, float]:
    path = workdir / "requests-read.db"
    make_file(path)
    fill_requests(path, api.now_ms())
    store = Database(path, record_start=False)
    conn = raw_connect(path)
    select = f"SELECT {', '.join(chr(34) + c + chr(34) for c in REQUEST_COLUMNS)} FROM requests"
    flags = [REQUEST_COLUMNS.index("truncated"), REQUEST_COLUMNS.index("context_shifted")]

    def raw_dicts() -> list[dict]:
        found = []
        for row in conn.execute(f"{select} ORDER BY finished_at DESC, id DESC LIMIT 1000").fetchall():
            values = list(row)
            for index in flags:
                values[index] = None if values[index] is None else bool(values[index])
            found.append(dict(zip(REQUEST_COLUMNS, values, strict=True)))
        return found

    assert raw_dicts() == store.get_requests(limit=1000)
    medians = paired_medians_us({"api": lambda: store.get_requests(limit=1000), "raw": raw_dicts}, repeat, 10)
    store.close()
    conn.close()
    return medians["api"], medians["raw"]


def bench_get_models(workdir: Path, repeat: int) -> tuple[float, float]:
    """``get_models()`` of 50 models (what the window reads before its first paint) vs plain sqlite3."""
    path = workdir / "models.db"
    store = Database(path, record_start=False)
    for i in range(MODELS):
        store.save_model(
            {
                "name": f"model-{i:02d}",
                "type": "llama",
                "status": "stopped",
                "port": 9000 + i,
                "model_path": f"/m/{i}.gguf",
                "ctx_size": 4096,
            }
        )
    conn = raw_connect(path)
    select = f"SELECT {', '.join(chr(34) + c + chr(34) for c in MODEL_COLUMNS)} FROM models"

    def raw_dicts() -> list[dict]:  # the same rows as dicts, nothing converted
        rows = conn.execute(f"{select} ORDER BY created_at, id").fetchall()
        return [dict(zip(MODEL_COLUMNS, row, strict=True)) for row in rows]

    assert [m["name"] for m in raw_dicts()] == [m["name"] for m in store.get_models()]
    medians = paired_medians_us({"api": store.get_models, "raw": raw_dicts}, repeat, 10)
    store.close()
    conn.close()
    return medians["api"], medians["raw"]


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
        for batch, repeat in ((1, 2000), (100, 300)):
            through_api, raw, bare = bench_save_requests(workdir, batch, max(20, int(repeat * scale)))
            label = f"save_requests({batch}), {REQUEST_ROWS:,} rows, bounded"
            print(f"{label:44} {through_api:8.1f}us {raw:8.1f}us {through_api / raw:6.2f}x")
            label = f"  (sqlite3 insert only, no pruning, {batch})"
            print(f"{label:44} {'':10} {bare:8.1f}us  pruning adds {raw - bare:.1f}us")
            print(f"{'  per record through the API':44} {through_api / batch:8.1f}us")
            if through_api > 3 * raw:
                failures.append(f"save_requests of {batch} is more than 3x plain sqlite3")
            if raw - bare > 100 + 5 * batch:
                failures.append(f"pruning adds more than {100 + 5 * batch} us to a save of {batch}")
            if batch == 1 and through_api > 1000:
                failures.append("save_requests of one record is over 1 ms median")
        through_api, raw = bench_get_requests(workdir, max(10, int(200 * scale)))
        label = f"get_requests(limit=1000), {REQUEST_ROWS:,} rows"
        print(f"{label:44} {through_api:8.1f}us {raw:8.1f}us {through_api / raw:6.2f}x")
        if through_api > 3 * raw:
            failures.append("get_requests(limit=1000) is more than 3x plain sqlite3")
        through_api, raw = bench_get_models(workdir, max(10, int(300 * scale)))
        label = f"get_models(), {MODELS} models"
        print(f"{label:44} {through_api:8.1f}us {raw:8.1f}us {through_api / raw:6.2f}x")
        if through_api > 3 * raw:
            failures.append("get_models() is more than 3x plain sqlite3")
    for failure in failures:
        print("MISSED TARGET:", failure)
    print("all targets met" if not failures else f"{len(failures)} target(s) missed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
