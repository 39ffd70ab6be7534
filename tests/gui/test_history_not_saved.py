"""The status bar says while the metrics history is not being saved, and stops saying it once it is."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from support import launch_gui

from llamadash.app import shutdown
from llamadash.core.db import connection


def test_the_status_bar_says_while_history_is_not_saved(qtbot, tmp_path: Path, monkeypatch):
    # Another program holds the database's write lock for longer than llamadash waits: every save
    # of the sampler fails for real (a full disk does the same; tests/reliability shows that one).
    monkeypatch.setattr(connection, "BUSY_TIMEOUT_S", 0.3)
    gui = launch_gui(qtbot, tmp_path / "data")
    window = gui.window
    holder: sqlite3.Connection | None = None
    try:
        with qtbot.waitSignal(gui.sampler.sampled, timeout=10_000):
            pass
        assert window.saving_message == ""
        holder = sqlite3.connect(gui.db_path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        qtbot.waitUntil(lambda: window.saving_message != "", timeout=10_000)
        assert window.saving_message.startswith(
            "History is not being saved: could not save metrics: the database is busy"
        ), window.saving_message
        assert "could not be saved" in window.saving_label.toolTip()
        for _ in range(2):  # later failures do not flash the same text over the label
            with qtbot.waitSignal(gui.sampler.failed, timeout=10_000):
                pass
            assert window.statusBar().currentMessage() == ""
        holder.execute("ROLLBACK")
        qtbot.waitUntil(lambda: window.saving_message == "", timeout=10_000)
        assert window.saving_label.isHidden()
    finally:
        if holder is not None:
            holder.close()
        shutdown(gui)
