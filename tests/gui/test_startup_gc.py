"""Python's garbage collector waits while the window is made and painted (llamadash.app.startup_gc)."""

from __future__ import annotations

import gc
from pathlib import Path

from support import launch_gui, run_offscreen_python

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


def test_resuming_collects_once_so_what_was_made_meanwhile_is_old():
    startup_gc.pause()
    made = [[i] for i in range(200_000)]  # as the window's start makes objects by the hundred thousand
    startup_gc.resume()
    # all of them in the oldest generation: no later young or middle collection goes through them again
    young = len(gc.get_objects(generation=0)) + len(gc.get_objects(generation=1))
    assert young < 50_000, young
    assert len(made) == 200_000 and gc.isenabled()


def test_the_application_resumes_by_freezing_what_was_made_meanwhile():
    startup_gc.freeze_at_resume = True
    try:
        before = gc.get_freeze_count()
        startup_gc.pause()
        made = [[i] for i in range(100_000)]
        startup_gc.resume()
        assert gc.get_freeze_count() >= before + 100_000  # no collection looks at them again
        assert gc.isenabled() and len(made) == 100_000
    finally:
        startup_gc.freeze_at_resume = False
        gc.unfreeze()  # this test process goes on collecting them


def test_the_launched_window_freezes_at_resume(tmp_path: Path):
    import textwrap

    script = textwrap.dedent(
        """
        import gc, os, sys
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication
        import llamadash.app as launcher
        def check():
            if not launcher.startup_gc.paused and gc.isenabled():
                print("frozen", gc.get_freeze_count(), flush=True)
                QApplication.quit()
            else:
                QTimer.singleShot(50, check)
        real = launcher.build_gui
        def build(argv):
            gui = real(argv)
            QTimer.singleShot(50, check)
            return gui
        launcher.build_gui = build
        sys.exit(launcher.run_gui(["--data-dir", sys.argv[1]]))
        """
    )
    word, count = run_offscreen_python(script, str(tmp_path / "data"))
    assert word == "frozen" and int(count) > 50_000  # the window's start, frozen once
