"""The main window: launched on a database with history it shows it at once; its layout survives a restart."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from fakes import FakeManager
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QLabel
from support import launch_gui

from llamadash import __version__
from llamadash.app import Gui, shutdown
from llamadash.core import database, events
from llamadash.ui.charts import CHART_SPECS, TOKENS_CHART
from llamadash.ui.main_window import MainWindow

MINUTE_MS = 60_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def write_history(count: int = 600, end_ms: int | None = None) -> int:
    """``count`` rows at 1 Hz ending at ``end_ms`` (now), every column filled; returns the end."""
    end = now_ms() if end_ms is None else end_ms
    for i in range(count):
        t = end - (count - 1 - i) * 1000
        database.save_metrics(
            {
                "timestamp": t,
                "created_at": t,
                "cpu_usage": 20 + i % 50,
                "memory_usage": 40.0,
                "disk_usage": 70.0,
                "gpu_usage": float(i % 100),
                "gpu_temperature": 55.0,
                "gpu_memory_used": 8000.0,
                "gpu_memory_total": 24000.0,
                "gpu_power_usage": 180.0,
                "active_models": 1,
                "requests_per_minute": 3.0,
            }
        )
    return end


def points(curve) -> int:
    """Readings on a curve: everything it was given with ``setData`` that is not a break."""
    return 0 if curve.yData is None else int(np.count_nonzero(~np.isnan(curve.yData)))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def launched(qtbot, data_dir):
    """What ``llamadash`` does on launch, against a database holding 10 minutes of metrics."""
    database.init_database(data_dir / "llama-dashboard.db")
    end = write_history()
    events.record_event(database, "llama-3-8b", "ready", end - 2 * MINUTE_MS)
    database.save_model({"name": "llama-3-8b", "type": "llama", "status": "stopped", "port": 8090})
    database.close_database()
    gui = launch_gui(qtbot, data_dir)
    yield gui
    shutdown(gui)


@pytest.mark.qt_log_ignore("This plugin does not support raise")  # offscreen, floating the dock
def test_launch_shows_the_ten_minutes_of_history_at_once_and_new_samples_extend_it(launched, qtbot):
    window = launched.window
    # before any event is processed, so before the first new sample can arrive
    for spec in CHART_SPECS:
        for series in spec.series:
            assert points(window.board.view(spec.key).curves[series.column]) == 600, spec.key
    assert window.board.view(TOKENS_CHART).curves == {}
    assert not window.board.view("gpu_usage").shows_no_gpu  # the history has GPU readings
    markers = window.board.view("requests").markers
    assert [(e.name, e.event) for e in markers] == [("llama-3-8b", "ready")]
    assert "CPU 69%" in window.glance_label.text()  # the newest row, before any new sample

    # A wide chart: its time axis moves 2 px per second, so it redraws with each sample (a narrow
    # one waits until the axis has moved 2 px; its readout does not wait).
    cpu_dock = window.chart_docks["cpu"]
    cpu_dock.setFloating(True)
    cpu_dock.resize(1300, 300)
    with qtbot.waitSignal(launched.sampler.sampled, timeout=10_000) as got:
        pass
    sample = got.args[0]
    expected = "n/a" if sample.cpu_usage is None else f"{sample.cpu_usage:,.1f}"
    qtbot.waitUntil(lambda: window.board.view("cpu").readout_label.text().startswith(expected), timeout=1_000)
    curve = window.board.view("cpu").curves["cpu_usage"]
    qtbot.waitUntil(lambda: abs(curve.xData[-1] - sample.timestamp / 1000) < 1e-3, timeout=3_000)
    if sample.cpu_usage is None:  # psutil could not say: a hole, not a made-up value
        assert np.isnan(curve.yData[-1])
    else:
        assert curve.yData[-1] == pytest.approx(sample.cpu_usage)
    assert 600 <= points(curve) <= 601  # the oldest may have slid out of the window meanwhile
    assert window.board.view("active_models").buffers["active_models"].latest == 0  # nothing runs now
    assert str(launched.db_path) in window.db_label.toolTip()
    assert database.get_metrics_history(1)[-1]["timestamp"] == sample.timestamp  # and it was saved


@pytest.mark.qt_log_ignore("This plugin does not support raise")  # offscreen, for a floating dock
def test_the_layout_and_geometry_survive_a_restart(qtbot, tmp_path):
    database.init_database(tmp_path / "layout.db")
    try:
        first = MainWindow(store=database, db_path=tmp_path / "layout.db", load_models=database.get_models)
        qtbot.addWidget(first)
        first.show()
        first.resize(760, 560)  # within the offscreen screen (800×600), which geometry is fitted to
        size = (first.size().width(), first.size().height())
        assert size[0] == 760
        docks = first.chart_docks
        docks["disk"].close()
        first.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, docks["cpu"])
        first.tabifyDockWidget(docks["cpu"], docks["gpu_power"])
        assert first.dockWidgetArea(docks["cpu"]) == Qt.DockWidgetArea.LeftDockWidgetArea
        first.close()  # saves

        second = MainWindow(store=database, db_path=tmp_path / "layout.db", load_models=database.get_models)
        qtbot.addWidget(second)
        second.show()
        again = second.chart_docks
        assert (second.size().width(), second.size().height()) == size
        assert again["disk"].isHidden()
        assert second.dockWidgetArea(again["cpu"]) == Qt.DockWidgetArea.LeftDockWidgetArea
        assert again["gpu_power"] in second.tabifiedDockWidgets(again["cpu"])

        second.reset_layout_action.trigger()
        assert not again["disk"].isHidden()
        assert second.dockWidgetArea(again["cpu"]) == Qt.DockWidgetArea.BottomDockWidgetArea
        assert again["gpu_power"] not in second.tabifiedDockWidgets(again["cpu"])
        assert again["gpu_power"] in second.tabifiedDockWidgets(again["gpu_memory"])

        # floating docks (a chart, the log) come back into the window too
        again["tokens"].setFloating(True)
        second.logs_dock.setFloating(True)
        second.reset_layout_action.trigger()
        assert not again["tokens"].isFloating() and not second.logs_dock.isFloating()
        assert second.dockWidgetArea(again["tokens"]) == Qt.DockWidgetArea.RightDockWidgetArea
        assert second.dockWidgetArea(second.logs_dock) == Qt.DockWidgetArea.BottomDockWidgetArea
    finally:
        database.close_database()


def test_a_layout_from_an_older_version_is_ignored(qtbot, tmp_path):
    database.init_database(tmp_path / "old.db")
    try:
        database.set_metadata("window_state", "bm90IGEgc3RhdGU=")  # base64 of garbage
        window = MainWindow(store=database, db_path=tmp_path / "old.db", load_models=database.get_models)
        qtbot.addWidget(window)
        window.show()
        assert all(not dock.isHidden() for dock in window.chart_docks.values())
    finally:
        database.close_database()


def test_menus_toolbar_and_standard_shortcuts(qtbot, tmp_path):
    database.init_database(tmp_path / "m.db")
    try:
        window = MainWindow(store=database, db_path=tmp_path / "m.db", load_models=database.get_models)
        qtbot.addWidget(window)
        titles = [action.text() for action in window.menuBar().actions()]
        assert titles == ["&File", "&Instances", "&View", "&Help"]
        assert window.quit_action.shortcut() == QKeySequence(QKeySequence.StandardKey.Quit)
        assert QKeySequence("Ctrl+,") in window.settings_action.shortcuts()
        assert window.refresh_action.shortcut() == QKeySequence("F5")
        assert window.instances_view.start_action.shortcut() == QKeySequence("Ctrl+R")
        # no key does two things
        keys = [
            key.toString()
            for action in window.findChildren(type(window.quit_action))
            for key in action.shortcuts()
            if not key.isEmpty()
        ]
        assert len(keys) == len(set(keys)), sorted(keys)
        toolbar = [a.text() for a in window.toolbar.actions() if a.text()]
        web = ["Open &web UI", "Copy server &URL"]  # the selected model's, while it runs
        assert toolbar == ["&Start", "S&top", "Rest&art", *web, "Stop &all", "&Settings…"]
        view_menu = [a.text() for a in window.view_menu.actions()]
        assert "&Reset layout" in view_menu and "Log" in view_menu
        about = window.about_text()
        assert __version__ in about and "llama-server" in about and str(tmp_path / "m.db") in about
    finally:
        database.close_database()


def test_places_for_the_library_and_the_editor(qtbot, tmp_path):
    database.init_database(tmp_path / "p.db")
    try:
        database.save_model({"name": "qwen", "type": "qwen2", "status": "stopped"})
        window = MainWindow(store=database, db_path=tmp_path / "p.db", load_models=database.get_models)
        qtbot.addWidget(window)
        window.show()
        library, editor = QLabel("library"), QLabel("editor")
        window.set_library_widget(library)
        window.set_editor_widget(editor)
        assert window.workspace.count() == 5 and window.workspace.tabText(1) == "Library"
        assert window.workspace.tabText(2) == "Activity"  # the record of requests, after the library
        assert window.workspace.tabText(3) == "Try"  # a prompt to a running model
        assert window.workspace.tabText(4) == "Configuration"
        assert window.workspace.currentWidget() is window.instances_view
        view = window.instances_view
        index = view.proxy.index(0, 0)
        with qtbot.waitSignal(window.configureRequested) as asked:
            view.table.doubleClicked.emit(index)
        assert asked.args == ["qwen"]
        assert window.workspace.currentWidget() is editor  # the editor's tab comes forward
        database.save_model({"name": "llama", "type": "llama", "status": "stopped"})
        window.refresh_action.trigger()
        assert window.instances_model.names() == ["qwen", "llama"]
    finally:
        database.close_database()


def test_minimized_start(qtbot, data_dir):
    gui = launch_gui(qtbot, data_dir, "--minimized")
    try:
        assert gui.window.isMinimized() or not gui.window.isVisible()
    finally:
        shutdown(gui)


def test_servers_left_by_an_earlier_session_are_offered_for_adoption(qtbot, tmp_path):
    database.init_database(tmp_path / "o.db")
    try:
        window = MainWindow(store=database, db_path=tmp_path / "o.db", load_models=database.get_models)
        qtbot.addWidget(window)
        assert not window.adopt_orphans_action.isEnabled()
        # two servers an earlier (killed) session left running
        manager = FakeManager(
            orphans=[{"pid": 101, "model": "a", "port": 8081}, {"pid": 102, "model": "b", "port": 8082}]
        )
        window.set_manager(manager)  # as the launcher does once the window is painted
        assert "2 llama-server process(es) from an earlier session" in window.statusBar().currentMessage()
        assert window.adopt_orphans_action.isEnabled() and "(2)" in window.adopt_orphans_action.text()
        window.adopt_orphans_action.trigger()
        assert manager.adopted == [101, 102]
        assert not window.adopt_orphans_action.isEnabled() and not window.stop_orphans_action.isEnabled()
    finally:
        database.close_database()


@pytest.mark.parametrize("stop_on_quit", [True, False])
def test_quitting_stops_the_instances_when_the_setting_says_so(tmp_path, stop_on_quit):
    database.init_database(tmp_path / "q.db")
    manager = FakeManager()
    manager.set_state("a", "running")
    sampler = SimpleNamespace(stop=lambda: None)
    saved = []
    window = SimpleNamespace(
        settings=SimpleNamespace(stop_on_quit=stop_on_quit),
        save_layout=lambda: saved.append(1),
        wait_for_background=lambda: True,
        lazy_tabs=SimpleNamespace(halt=lambda: None),
    )
    gui = Gui(
        app=None,
        window=window,
        sampler=sampler,
        manager=manager,
        data_dir=tmp_path,
        db_path=tmp_path / "q.db",
    )
    left_running = shutdown(gui)
    assert manager.stopped_with == ([10.0] if stop_on_quit else [])
    assert left_running is (not stop_on_quit)
    assert manager.closed and not database.is_open()
    assert saved == [1]  # the layout is kept however llamadash quits


def test_the_status_bar_glance_shows_each_sample_without_moving_its_neighbours(qtbot, tmp_path):
    """The glance grows to fit a longer text and never shrinks: a CPU % going 9 -> 10 -> 9 moves
    (and repaints) nothing else in the status bar."""
    database.init_database(tmp_path / "g.db")
    try:
        window = MainWindow(store=database, db_path=tmp_path / "g.db", load_models=database.get_models)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        glance, db_label = window.glance_label, window.db_label
        window._show_glance({"cpu_usage": 9.0, "memory_usage": 5.0})
        qtbot.wait(50)
        where = db_label.geometry()
        window._show_glance({"cpu_usage": 100.0, "memory_usage": 100.0})
        qtbot.wait(50)
        assert glance.text() == "CPU 100%  ·  RAM 100%  ·  no GPU"
        assert glance.width() >= glance.sizeHint().width()  # all of it shows
        wide, wide_glance = db_label.geometry(), glance.geometry()
        window._show_glance({"cpu_usage": 9.0, "memory_usage": 5.0})
        qtbot.wait(50)
        assert glance.text() == "CPU 9%  ·  RAM 5%  ·  no GPU"
        assert glance.geometry() == wide_glance and db_label.geometry() == wide  # nothing moved
        assert wide.width() == where.width()
    finally:
        database.close_database()
