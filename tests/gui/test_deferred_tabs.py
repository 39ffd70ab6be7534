"""What waits until it is needed, and is there when it is: the tabs made when first opened, and the
saved history on the charts' first paint (the launched window, ``build_gui``)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from support import launch_gui

from llamadash.app import Gui, shutdown
from llamadash.core import database

HISTORY_ROWS = 300


@pytest.fixture
def launched(qtbot, tmp_path: Path):
    """llamadash launched on a data folder with 5 minutes of history, three models and a request."""
    data_dir = tmp_path / "data"
    database.init_database(data_dir / "llama-dashboard.db")
    now = time.time_ns() // 1_000_000
    for i in range(HISTORY_ROWS):
        database.save_metrics({"timestamp": now - (HISTORY_ROWS - i) * 1000, "cpu_usage": 20.0 + i % 30})
    for name in ("alpha", "beta", "gamma"):
        database.save_model(
            {"name": name, "type": "llama", "status": "stopped", "model_path": f"/m/{name}.gguf"}
        )
    database.close_database()
    gui = launch_gui(qtbot, data_dir)
    yield gui
    shutdown(gui)


def shown_cpu_points(gui: Gui) -> int:
    view = gui.window.board.view("cpu")
    if not view.has_plot:
        return 0
    y = view.curves["cpu_usage"].yData
    return 0 if y is None else int(np.count_nonzero(~np.isnan(y)))


def test_the_first_painted_charts_show_the_saved_history(qtbot, launched: Gui):
    window = launched.window
    with qtbot.waitSignal(window.firstPainted, timeout=10_000):
        pass
    qtbot.waitUntil(lambda: window.board.view("cpu").has_plot, timeout=5000)
    # drawn in the turn after the window's first paint, from the history read at start-up
    assert shown_cpu_points(launched) == HISTORY_ROWS
    assert window.board.view("cpu").readout_label.text().startswith(f"{20.0 + (HISTORY_ROWS - 1) % 30:.1f}")


def made_tabs(gui: Gui) -> list[str]:
    return [key for key in ("library", "activity", "try", "workers") if gui.window.lazy_tabs.is_made(key)]


def test_hidden_tabs_wait_for_the_first_paint_then_are_made_without_being_opened(qtbot, launched: Gui):
    window = launched.window
    at_first_paint: list[list[str]] = []
    window.firstPainted.connect(lambda: at_first_paint.append(made_tabs(launched)))
    with qtbot.waitSignal(window.firstPainted, timeout=10_000):
        pass
    assert at_first_paint == [[]]  # none of them was made before the window was painted
    qtbot.waitUntil(lambda: made_tabs(launched) == ["library", "activity", "try", "workers"], timeout=10_000)
    tabs = window.workspace
    assert tabs.currentIndex() == 0  # made behind Instances, not shown
    assert [tabs.tabText(i) for i in range(tabs.count())] == [
        "Instances",
        "Library",
        "Activity",
        "Try",
        "Workers",
    ]
    activity = window.lazy_tabs.made("activity")
    assert activity is not None and not activity.loaded  # it reads its requests when first shown
    qtbot.waitUntil(lambda: activity.built, timeout=5_000)  # its widgets, in a turn of their own
    assert not activity.isVisible() and not activity.loaded
    tabs.setCurrentWidget(activity)
    assert activity.loaded and activity.isVisible()


def test_hidden_tabs_opened_before_they_were_made_are_ready_at_once(qtbot, launched: Gui):
    window = launched.window
    tabs = window.workspace
    assert made_tabs(launched) == []  # not painted yet: nothing was made
    assert [tabs.tabText(i) for i in range(tabs.count())] == [
        "Instances",
        "Library",
        "Activity",
        "Try",
        "Workers",
    ]

    tabs.setCurrentIndex(1)  # the user clicks "Library": it is there when the click returns
    library = window.lazy_tabs.made("library")
    assert library is not None and tabs.currentWidget() is library and library.isVisible()
    assert sorted(library.visible_names()) == ["alpha", "beta", "gamma"]
    assert window.library_widget is library and tabs.tabText(1) == "Library"

    tabs.setCurrentIndex(2)  # Activity: made, current, and (as before) reading its first page
    activity = window.activity_view
    assert activity is not None and tabs.currentWidget() is activity
    qtbot.waitUntil(lambda: activity.loaded, timeout=5000)
    qtbot.waitUntil(lambda: launched.manager is not None, timeout=10_000)
    assert activity.manager is launched.manager

    window.instances_view.select("beta")
    window.show_try()  # Instances ▸ Try…: the pane is made with the selection chosen
    pane = window.try_pane
    assert tabs.currentWidget() is pane and tabs.tabText(3) == "Try"
    assert pane.manager is launched.manager and not pane.running_models()  # follows the manager
    assert [tabs.tabText(i) for i in range(tabs.count())] == [
        "Instances",
        "Library",
        "Activity",
        "Try",
        "Workers",
    ]


def test_a_library_never_opened_still_follows_changes(qtbot, launched: Gui):
    """Models added while the Library tab was never made show when it is first opened."""
    window = launched.window
    database.save_model(
        {"name": "delta", "type": "llama", "status": "stopped", "model_path": "/m/delta.gguf"}
    )
    window.refresh_models()
    assert not window.lazy_tabs.is_made("library")
    window.show_library()
    assert "delta" in window.library_widget.visible_names()


DEFERRED_MODULES = (
    "prometheus_client",  # the Prometheus endpoint: off unless a setting turns it on
    "llamadash.services.metrics_endpoint",
    "llamadash.ui.perf_dialogs",  # the Performance menu's dialogs
    "llamadash.core.perf.fit",  # the fit parser (also the placement report's)
    "llamadash.services.router",  # the router's model watcher (no router runs)
    "llamadash.core.diagnosis",  # why a start failed: read when one did
    "psutil",  # the disk reading's (CPU and memory come from /proc): at the first sample, on its thread
    "playhouse.migrate",  # only when the database needs a change (an upgrade, a new column)
    "llamadash.core.throughput",  # the endpoint pollers' (after the services start)
    "difflib",  # to word a "did you mean" error
    "configparser",  # a presets file's
    # pyqtgraph's parts the charts do not draw with (llamadash.ui.pyqtgraph_import.DEFERRED)
    "pyqtgraph.graphicsItems.PlotItem",
    "pyqtgraph.widgets.PlotWidget",
    "pyqtgraph.graphicsItems.ImageItem",
    "pyqtgraph.colormap",
    "pyqtgraph.graphicsItems.ROI",
    "pyqtgraph.widgets.TableWidget",
)

_FIRST_PAINT_SCRIPT = r"""
import json, sys
from PySide6.QtWidgets import QApplication
app = QApplication([])
from llamadash.app import build_gui, shutdown
gui = build_gui(["--data-dir", sys.argv[1]])
app.processEvents()  # the first paint
loaded = sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)
import time
deadline = time.monotonic() + 60
while gui.manager is None and time.monotonic() < deadline:  # the services start after the paint
    app.processEvents()
    time.sleep(0.01)
# and each works when first used: the Performance menu's fit dialog, the placement parser, the endpoint
from llamadash.core.perf.placement import parse_placement
from llamadash.services.endpoint_switch import EndpointSwitch
switch = gui.window.prometheus
problem = switch.apply("127.0.0.1:" + sys.argv[3], "")
serving = switch.endpoint is not None
switch.stop()
from llamadash.ui.library_controller import LibraryController
from llamadash.ui.perf_dialogs import FitDialog  # what the Performance menu opens (tests/gui/test_perf_dialogs.py)
controller = gui.window.findChild(LibraryController)
actions = [a.text() for a in controller.perf.button.menu().actions()]
print(json.dumps({"loaded": loaded, "problem": problem, "serving": serving, "actions": actions,
                  "fit_dialog": FitDialog.__name__, "report": type(parse_placement([])).__name__}))
shutdown(gui)
"""


def test_what_is_off_or_unused_is_not_imported_before_the_first_paint_and_works_when_used(tmp_path: Path):
    import json
    import os
    import subprocess
    import sys

    from support import free_port

    data_dir = tmp_path / "data"
    database.init_database(data_dir / "llama-dashboard.db")
    database.save_model(
        {"name": "alpha", "type": "llama", "status": "stopped", "model_path": "/m/alpha.gguf"}
    )
    database.close_database()
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _FIRST_PAINT_SCRIPT,
            str(data_dir),
            json.dumps(DEFERRED_MODULES),
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    assert result["problem"] == "" and result["serving"]
    assert result["actions"] == ["Check fit\u2026", "Benchmark\u2026", "Find the fastest settings\u2026"]
    assert result["fit_dialog"] == "FitDialog" and result["report"] == "PlacementReport"


def test_the_services_start_once_the_charts_have_been_painted(qtbot, tmp_path: Path, monkeypatch):
    from PySide6.QtCore import QTimer

    from llamadash.ui import charts

    real = charts.ChartBoard.start_drawing

    def late_charts(self) -> None:  # a slow machine: the charts are painted well after the window
        QTimer.singleShot(400, lambda: real(self))

    monkeypatch.setattr(charts.ChartBoard, "start_drawing", late_charts)
    launched = launch_gui(qtbot, tmp_path / "data")
    try:
        window = launched.window
        at_charts: list[tuple[bool, list[str]]] = []

        def painted_plots() -> list[str]:
            return [v.spec.key for v in window.board.views() if v.has_plot and v.plot_widget._painted]

        window.board.chartsPainted.connect(
            lambda: at_charts.append((launched.services_started, painted_plots()))
        )
        qtbot.waitUntil(lambda: launched.services_started, timeout=10_000)
        qtbot.waitUntil(lambda: bool(at_charts), timeout=10_000)
        started_before, plots = at_charts[0]
        assert not started_before  # the charts came first
        assert "cpu" in plots  # the CPU chart, in view, had been painted
    finally:
        shutdown(launched)


def test_with_no_chart_in_view_the_charts_are_painted_at_once(qtbot):
    from llamadash.ui.charts import ChartBoard

    board = ChartBoard(drawing=False)  # its docks are in no window: none can be seen
    with qtbot.waitSignal(board.chartsPainted, timeout=2000):
        board.start_drawing()
    assert not any(view.has_plot for view in board.views())
