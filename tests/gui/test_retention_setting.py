"""The history window set in the running dashboard changes what the database keeps, without reopening it."""

from __future__ import annotations

from pathlib import Path

from support import launch_gui

from llamadash.app import shutdown
from llamadash.core import database
from llamadash.core import settings as settings_mod


def test_the_history_window_sets_the_retention_of_the_open_database(qtbot, tmp_path: Path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    database.init_database(data_dir / "llama-dashboard.db")
    settings_mod.save_settings(settings_mod.Settings(history_minutes=25), database)  # stored before
    database.close_database()

    gui = launch_gui(qtbot, data_dir)
    try:
        opened = database.current()
        assert opened.retention_minutes == 25  # the stored window, from the start
        start = database.get_metadata("server_start_time")
        with qtbot.waitSignal(gui.sampler.sampled, timeout=10_000):
            pass
        conn = opened.db.connection()

        gui.window.save_settings(gui.window.settings.replace(history_minutes=5))
        assert database.current() is opened and opened.db.connection() is conn  # not reopened
        assert opened.retention_minutes == 5
        assert database.get_metadata("server_start_time") == start  # nothing re-recorded
        assert gui.window.board.window_minutes == 5
        with qtbot.waitSignal(gui.sampler.sampled, timeout=10_000):
            pass  # the sampler goes on saving into the same database
        assert database.current() is opened
    finally:
        shutdown(gui)
