"""How fast the Activity tab opens on 100,000 stored requests, against a bare table of as many rows.

Run from the repository root (under Xvfb for a real X server, or offscreen)::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_activity_view.py
    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_activity_view.py --requests 20000 --repeat 3

Method: a real database (a temporary file) is filled with ``--requests`` request records spread over
the last six days, across four models, through ``save_requests`` as the manager stores them. Then,
``--repeat`` times, a fresh main window is built on it (as the launcher builds it, the Instances tab
in front), shown and painted; the clock starts when the Activity tab is brought forward and stops
when the requests table has painted its rows: making the tab's widgets (they are made when it is
first shown), the model's first page, the count, the daily totals, the docks below giving the tab
room (the window's layout and charts redone) and the first paint. In the same window a bare ``QTableView`` over a minimal
``QAbstractTableModel`` with as many rows and columns (fixed text, nothing read) is brought forward
the same way: the baseline. Medians, and their ratio, are printed.

Also printed: the time the summary of the last week takes on its worker thread (it follows the
first paint and does not hold the event loop), reading the next page while scrolling, and the
longest the event loop was held while the summary ran.

Target: the Activity tab opens in < 300 ms. Exit status 0 when it does.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

OPEN_TARGET_MS = 300.0
MODELS = ("qwen2.5-7b-instruct", "llama-3.1-8b", "gemma-2-9b", "phi-3.5-mini")


def fill(database: Any, count: int, now_ms: int) -> float:
    """Store ``count`` requests over the last six days; returns the seconds it took."""
    rng = random.Random(15)
    span_ms = 6 * 24 * 3_600_000
    started = time.perf_counter()
    batch: list[dict[str, Any]] = []
    for i in range(count):
        generated = rng.randint(16, 800)
        speed = rng.uniform(20.0, 90.0)
        prompt = rng.randint(20, 4000)
        prompt_tps = rng.uniform(300.0, 2500.0)
        batch.append(
            {
                "finished_at": now_ms - span_ms + (span_ms * i) // count,
                "model": MODELS[i % len(MODELS)],
                "slot": i % 2,
                "task": i,
                "status": "finished" if i % 50 else "aborted",
                "prompt_tokens": prompt,
                "cached_tokens": rng.randint(0, 200),
                "prompt_ms": prompt / prompt_tps * 1000,
                "prompt_tps": prompt_tps,
                "generated_tokens": generated,
                "generation_ms": generated / speed * 1000,
                "generation_tps": speed,
                "total_ms": prompt / prompt_tps * 1000 + generated / speed * 1000,
                "truncated": i % 97 == 0,
            }
        )
        if len(batch) == 5000:
            database.save_requests(batch)
            batch = []
    if batch:
        database.save_requests(batch)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args(argv)

    from PySide6.QtCore import QAbstractTableModel, QEvent, QModelIndex, QObject, Qt
    from PySide6.QtWidgets import QApplication, QTableView

    from llamadash.core import database
    from llamadash.core.activity import TABLE_COLUMNS
    from llamadash.ui.activity_view import PAGE_SIZE
    from llamadash.ui.main_window import MainWindow

    app = QApplication(sys.argv[:1])
    work = Path(tempfile.mkdtemp(prefix="llamadash-bench-activity-"))
    database.init_database(work / "llama-dashboard.db")
    now_ms = time.time_ns() // 1_000_000
    fill_s = fill(database, options.requests, now_ms)
    stored = database.count_requests()

    class BareModel(QAbstractTableModel):
        def __init__(self, rows: int) -> None:
            super().__init__()
            self.rows = rows

        def rowCount(self, parent: Any = QModelIndex()) -> int:  # noqa: B008
            return 0 if parent.isValid() else self.rows

        def columnCount(self, parent: Any = QModelIndex()) -> int:  # noqa: B008
            return 0 if parent.isValid() else len(TABLE_COLUMNS)

        def data(self, index: Any, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
            return "12,345" if role == Qt.ItemDataRole.DisplayRole else None

        def headerData(self, section: int, orientation: Any, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
            if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
                return TABLE_COLUMNS[section].header
            return None

    class Painted(QObject):
        """Sees the first paint of the widget ``viewport()`` returns (made on the way, maybe)."""

        def __init__(self, viewport: Any) -> None:
            super().__init__()
            self.viewport = viewport
            self.seen = False

        def eventFilter(self, obj: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint and obj is self.viewport():
                self.seen = True
            return False

    def time_until_painted(viewport: Any, bring_forward: Any) -> float:
        watcher = Painted(viewport)
        app.installEventFilter(watcher)
        started = time.perf_counter()
        bring_forward()
        deadline = started + 30
        while not watcher.seen and time.perf_counter() < deadline:
            app.processEvents()
        app.processEvents()  # the rest of that paint batch
        elapsed = (time.perf_counter() - started) * 1000
        app.removeEventFilter(watcher)
        return elapsed

    opens: list[float] = []
    bares: list[float] = []
    summaries: list[float] = []
    pages: list[float] = []
    held: list[float] = []
    worker: list[float] = []
    for _ in range(options.repeat):
        window = MainWindow(
            store=database,
            db_path=work / "llama-dashboard.db",
            load_models=database.get_models,
            restore_layout=False,
        )
        bare = QTableView()
        bare.setModel(BareModel(stored))
        bare.verticalHeader().setVisible(False)
        window.workspace.addTab(bare, "Bare")
        window.resize(1440, 900)
        window.show()
        for _settle in range(20):
            app.processEvents()
            time.sleep(0.01)
        view = window.activity_view
        assert view is not None and not view.loaded

        # the tab's widgets are made when it is first shown: that is part of opening it
        table_viewport = lambda v=view: v.table.viewport() if v.built else None  # noqa: E731
        opens.append(time_until_painted(table_viewport, window.show_activity))
        assert view.model.rowCount() > 0, "the Activity tab showed no request"

        summary_started = time.perf_counter()
        longest, last = 0.0, time.perf_counter()
        while view.summary_pending and time.perf_counter() - summary_started < 60:
            app.processEvents()
            now = time.perf_counter()
            longest, last = max(longest, now - last), now
        summaries.append((time.perf_counter() - summary_started) * 1000)
        worker.append((view.summary_seconds or 0.0) * 1000)
        held.append(longest * 1000)

        page_started = time.perf_counter()
        view.model.fetchMore()
        pages.append((time.perf_counter() - page_started) * 1000)

        window.workspace.setCurrentIndex(0)
        app.processEvents()
        bares.append(
            time_until_painted(bare.viewport, lambda b=bare, w=window: w.workspace.setCurrentWidget(b))
        )
        window.close()
        window.deleteLater()
        app.processEvents()

    open_ms, bare_ms = statistics.median(opens), statistics.median(bares)
    print(f"llamadash {platform.python_version()} on {platform.platform()}, Qt platform {app.platformName()}")
    print(f"{stored:,} stored requests (filled in {fill_s:.1f} s); {options.repeat} windows")
    print(f"open the Activity tab (first page, count, daily totals, first paint): median {open_ms:.1f} ms")
    print(f"  each: {', '.join(f'{t:.1f}' for t in opens)} ms")
    print(f"bare QTableView over {stored:,} rows, brought forward: median {bare_ms:.1f} ms")
    print(f"ratio: {open_ms / bare_ms:.2f}x the bare table")
    print(
        f"summary of the last week: ready {statistics.median(summaries):.0f} ms after the first paint "
        f"(median; {statistics.median(worker):.0f} ms on its worker thread); the event loop, kept "
        f"busy meanwhile, was held at most {max(held):.1f} ms"
    )
    print(f"the next page ({PAGE_SIZE} rows) when scrolling: median {statistics.median(pages):.1f} ms")
    met = open_ms < OPEN_TARGET_MS
    print(f"target < {OPEN_TARGET_MS:.0f} ms: {'met' if met else 'NOT met'}")
    database.close_database()
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
