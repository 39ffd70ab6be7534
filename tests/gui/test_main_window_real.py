"""The whole window with the real instance manager and a real llama-server: start, watch, quit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psutil
import pytest
from support import launch_gui, tiny_model_record

from llamadash.app import shutdown
from llamadash.core import database, events
from llamadash.ui.charts import TOKENS_CHART

pytestmark = pytest.mark.integration


def test_a_real_instance_is_started_watched_charted_and_stopped_on_quit(
    qtbot, tmp_path: Path, tiny_model: Path, llama_server: Path
):
    data_dir = tmp_path / "data"
    database.init_database(data_dir / "llama-dashboard.db")
    database.save_model(tiny_model_record(tiny_model))
    database.close_database()
    gui = launch_gui(qtbot, data_dir)
    window = gui.window
    pid = None
    try:
        view, model = window.instances_view, window.instances_model
        qtbot.waitUntil(lambda: gui.manager is not None, timeout=5_000)  # started once the window painted
        assert view.select("tiny")
        assert not window.stop_all_action.isEnabled()  # nothing to stop yet
        window.instances_view.start_action.trigger()  # the toolbar's Start
        qtbot.waitUntil(lambda: model.state_of("tiny") == "running", timeout=60_000)
        pid = gui.manager.instance("tiny").pid
        assert pid and psutil.pid_exists(pid)
        assert window.stop_all_action.isEnabled()  # in the Instances menu, the toolbar and the tray

        # its log, live, in the log dock
        assert window.logs_dock.instance_name == "tiny"
        qtbot.waitUntil(lambda: "listening on" in window.logs_dock.text.toPlainText(), timeout=5_000)

        # start and ready are marked on the charts and kept in the database
        qtbot.waitUntil(lambda: len(window.board.view("cpu").markers) >= 2, timeout=5_000)
        kinds = [e.event for e in window.board.view("cpu").markers]
        assert kinds[:2] == ["started", "ready"]
        assert [e.event for e in events.load_events(database)][:2] == ["started", "ready"]

        # the sampler counts it, and its tokens/s get a curve of their own
        qtbot.waitUntil(
            lambda: window.board.view("active_models").buffers["active_models"].latest == 1, timeout=10_000
        )
        qtbot.waitUntil(lambda: "tiny" in window.board.view(TOKENS_CHART).curves, timeout=10_000)
        tokens = window.board.view(TOKENS_CHART).curves["tiny"]
        qtbot.waitUntil(lambda: tokens.yData is not None and np.any(~np.isnan(tokens.yData)), timeout=10_000)

        # Stop all stops it, and is then no longer offered
        window.stop_all_action.trigger()
        qtbot.waitUntil(lambda: model.state_of("tiny") == "stopped", timeout=20_000)
        assert not window.stop_all_action.isEnabled()
        gui.manager.start("tiny")  # running again, for the quit below
        qtbot.waitUntil(lambda: model.state_of("tiny") == "running", timeout=60_000)
        pid = gui.manager.instance("tiny").pid
    finally:
        shutdown(gui)  # what quitting does: "stop instances on quit" is on by default
    assert pid is not None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
