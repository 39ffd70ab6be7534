"""How long the saved history takes to get into the charts at start-up, against reading it raw.

Run from the repository root::

    .venv/bin/python benchmarks/bench_history.py              # 600 rows (10 minutes at 1 Hz)
    .venv/bin/python benchmarks/bench_history.py --rows 6000

A database holds ``--rows`` metrics samples, 1 s apart, all inside the window. Timed, interleaved so
that machine noise hits all alike (median CPU time of ``--repeat`` calls each):

* the floor: the same SELECT through the stdlib ``sqlite3`` module, tuples only;
* as the application does it: the database read the launcher makes (``get_metrics_columns`` where
  this version has it, else ``get_metrics_history``) and ``ChartBoard.load_history`` of it;
* the rows as dicts (``get_metrics_history``) into the charts, for comparison.

Every case checks that the charts hold every sample afterwards. The RESULT line gives the ratio of
the application's path to the floor. Exit status 0 when it is within 2x of the floor.
"""

from __future__ import annotations

import argparse
import gc
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication

from llamadash.core import database
from llamadash.core.db import api
from llamadash.core.db.models import METRICS_COLUMNS, PRAGMAS
from llamadash.ui.charts import ChartBoard

TARGET_RATIO = 2.0


def fill(path: Path, rows: int) -> None:
    database.init_database(path)
    now = time.time_ns() // 1_000_000 + 60_000  # the window ends a minute from now: all rows stay in it
    conn = sqlite3.connect(path, isolation_level=None)
    columns = (
        "timestamp",
        "created_at",
        "cpu_usage",
        "memory_usage",
        "disk_usage",
        "active_models",
        "uptime",
    )
    conn.execute("BEGIN")
    conn.executemany(
        f"INSERT INTO metrics_history ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
        [(t, t, 10.0 + i % 40, 45.0, 70.0, 2, i) for i in range(rows) for t in [now - (rows - 1 - i) * 1000]],
    )
    conn.execute("COMMIT")
    conn.close()


def median_cpu_us(
    functions: dict[str, Callable[[], object]], repeat: int, reset: Callable[[], None]
) -> dict[str, float]:
    """Median CPU microseconds of each function; ``reset`` runs (untimed) before every call."""
    for function in functions.values():  # warm-up
        reset()
        function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    gc.collect()
    for _ in range(repeat):
        for name, function in functions.items():
            reset()
            started = time.process_time()
            function()
            times[name].append(time.process_time() - started)
    return {name: statistics.median(values) * 1e6 for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=600, help="samples in the window (default 600)")
    parser.add_argument("--repeat", type=int, default=200, help="calls of each case (default 200)")
    args = parser.parse_args(argv)
    app = QApplication(sys.argv[:1])  # noqa: F841 - the charts are widgets
    minutes = args.rows / 60 + 2
    with tempfile.TemporaryDirectory(prefix="llamadash-bench-") as tmp:
        path = Path(tmp) / "history.db"
        fill(path, args.rows)
        database.init_database(path)
        raw = sqlite3.connect(path, isolation_level=None)
        for name, value in PRAGMAS:
            raw.execute(f"PRAGMA {name} = {value}")
        sql = f"SELECT {', '.join(METRICS_COLUMNS)} FROM metrics_history WHERE timestamp >= ? ORDER BY timestamp, id"
        columns_read = getattr(database, "get_metrics_columns", None)
        app_read = columns_read or database.get_metrics_history

        def floor() -> object:
            return raw.execute(sql, (api.now_ms() - round(minutes * 60_000),)).fetchall()

        board = ChartBoard(drawing=False)
        buffers = [buffer for view in board.views() for buffer in view.buffers.values()]

        def reset() -> None:  # the charts as made, without a sample (making them is not timed)
            for buffer in buffers:
                buffer._x.clear()
                buffer._y.clear()
                buffer.latest = buffer.interval_s = None

        def into_charts(read: Callable[[float], object]) -> Callable[[], None]:
            def run() -> None:
                board.load_history(read(minutes))  # type: ignore[arg-type]

            return run

        cases = {
            "floor": floor,
            "app": into_charts(app_read),
            "dicts": into_charts(database.get_metrics_history),
        }
        for name in ("app", "dicts"):
            reset()
            cases[name]()
            held = len(board.view("cpu").buffers["cpu_usage"])
            assert held >= args.rows, f"{name}: the CPU chart holds {held} of {args.rows} samples"
        medians = median_cpu_us(cases, args.repeat, reset)
        raw.close()
        database.close_database()
    app_us, dicts_us, floor_us = medians["app"], medians["dicts"], medians["floor"]
    how = "get_metrics_columns" if columns_read else "get_metrics_history (this version has no columns read)"
    print(f"history into the charts, {args.rows} rows, median CPU time of {args.repeat} calls each")
    print(f"  floor: raw sqlite3 SELECT, tuples                  {floor_us:8.0f} us")
    print(f"  as the app does it: {how}")
    print(f"    + ChartBoard.load_history                        {app_us:8.0f} us")
    print(f"  rows as dicts (get_metrics_history) + load_history {dicts_us:8.0f} us")
    ratio = app_us / floor_us
    print(f"RESULT history into the charts vs the raw read: {ratio:.2f}x (target <= {TARGET_RATIO}x)")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
