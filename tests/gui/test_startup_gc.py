"""Python's garbage collector waits while the window is made and painted (llamadash.app.startup_gc)."""

from __future__ import annotations

import gc
from pathlib import Path

from support import launch_gui

from llamadash.app import build_gui, shutdown, startup_gc


def test_collection_is_paused_until_the_services_start_then_resumes(qtbot, tmp_path: Path):
    assert gc.isenabled()
    gui = launch_gui(qtbot, tmp_path / "data")
    try:
        at_paint: list[bool] = []
        gui.window.firstPainted.connect(lambda: at_paint.append(gc.isenabled()))
        assert not gc.isenabled()  # the window was made with the collector paused
        with qtbot.waitSignal(gui.window.firstPainted, timeout=10_000):
            pass
        assert at_paint == [False]  # and painted so
        qtbot.waitUntil(lambda: gui.services_started, timeout=10_000)
        assert gc.isenabled()  # on again with the services
    finally:
        shutdown(gui)
    assert gc.isenabled() and not startup_gc.paused


def test_a_hidden_start_resumes_at_once_and_quitting_early_resumes(qtbot, tmp_path: Path):
    gui = launch_gui(qtbot, tmp_path / "hidden", "--minimized")
    try:
        assert gui.services_started and gc.isenabled()  # no paint comes while hidden
    finally:
        shutdown(gui)
    gui = launch_gui(qtbot, tmp_path / "quit")
    assert not gc.isenabled()
    shutdown(gui)  # before the first paint: the services never start
    assert gc.isenabled()


def test_a_start_that_fails_leaves_collection_on(qtbot, tmp_path: Path):
    assert build_gui(["--data-dir", "  "]) == 2  # refused: an empty --data-dir
    assert gc.isenabled()
    not_a_db = tmp_path / "data" / "llama-dashboard.db"
    not_a_db.parent.mkdir()
    not_a_db.write_bytes(b"this is not a database" * 100)
    qtbot_box_closer(qtbot)
    assert build_gui(["--data-dir", str(tmp_path / "data")]) == 1  # the database cannot be opened
    assert gc.isenabled()


def test_collection_already_off_is_left_off(qtbot, tmp_path: Path):
    gc.disable()
    try:
        gui = launch_gui(qtbot, tmp_path / "data")
        qtbot.waitUntil(lambda: gui.services_started, timeout=10_000)
        shutdown(gui)
        assert not gc.isenabled()  # what the caller chose
    finally:
        gc.enable()


def qtbot_box_closer(qtbot) -> None:
    """Close the "cannot open its database" message box as soon as it shows."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    def close() -> None:
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, QMessageBox) and widget.isVisible():
                widget.done(0)
                return
        QTimer.singleShot(50, close)

    QTimer.singleShot(50, close)
