"""The Instances tab's library router, with the real manager and the real llama-server in router mode.

Serve the library, see its models and their states, copy the one base URL, load and unload a
model, stop it all; a refusal is shown, never swallowed.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import psutil
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMessageBox
from support import free_port, launch_gui, write_tiny_gguf

from llamadash.app import shutdown
from llamadash.core import database
from llamadash.core.router import ROUTER_NAME

pytestmark = pytest.mark.integration


def llama_servers_below(pid: int) -> list[int]:
    found = []
    for proc in psutil.Process(pid).children(recursive=True):
        try:
            if proc.name() == "llama-server" and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except psutil.NoSuchProcess:
            pass
    return found


def complete(base_v1: str, model: str) -> dict:
    base = base_v1.removesuffix("/v1")
    body = {"model": model, "prompt": "Hi", "n_predict": 2, "ignore_eos": True}
    request = urllib.request.Request(
        f"{base}/completion", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def shown(model, name: str, key: str) -> str:
    """What the Instances table shows for ``name`` in column ``key``."""
    from llamadash.ui.instances_view import COLUMN

    return model.data(model.index(model.row_of(name), COLUMN[key]))


def make_library(data_dir: Path, tmp_path: Path, llama_server: Path, port: int) -> None:
    database.init_database(data_dir / "llama-dashboard.db")
    database.set_metadata("llama_server_path", str(llama_server))
    database.set_metadata("router_port", str(port))
    for name in ("alpha", "beta"):
        path = write_tiny_gguf(tmp_path / f"{name}.gguf", name)
        database.save_model(
            {"name": name, "type": "llama", "status": "stopped", "model_path": str(path), "ctx_size": 256}
        )
    database.close_database()


def test_serve_the_library_shows_its_models_copies_the_url_loads_unloads_and_stops(
    qtbot, tmp_path: Path, llama_server: Path
):
    data_dir = tmp_path / "data"
    port = free_port()
    make_library(data_dir, tmp_path, llama_server, port)
    gui = launch_gui(qtbot, data_dir)
    window = gui.window
    panel = window.router_panel
    try:
        qtbot.waitUntil(lambda: gui.manager is not None, timeout=5_000)
        assert panel.isVisibleTo(window.instances_view)
        assert panel.serve_button.isEnabled() and not panel.stop_button.isEnabled()
        assert panel.url_edit.text() == "" and f":{port}/v1" in panel.url_edit.placeholderText()
        # stopped, the address and model list fold away (the instances table keeps the room) and the
        # state line says where the router will be
        assert not panel.details.isVisibleTo(panel) and f"127.0.0.1:{port}/v1" in panel.state_label.text()

        qtbot.mouseClick(panel.serve_button, Qt.MouseButton.LeftButton)
        model = window.instances_model
        qtbot.waitUntil(lambda: model.state_of(ROUTER_NAME) == "running", timeout=60_000)  # its own row
        qtbot.waitUntil(lambda: panel.state_of("alpha") == "unloaded", timeout=15_000)
        assert panel.state_of("beta") == "unloaded"
        url = f"http://127.0.0.1:{port}/v1"
        assert panel.url_edit.text() == url and panel.details.isVisibleTo(panel)
        assert not panel.serve_button.isEnabled() and panel.stop_button.isEnabled()
        panel.copy_button.click()
        assert QGuiApplication.clipboard().text() == url

        # a request through the one address loads the model; the panel follows
        assert complete(url, "alpha")["tokens_predicted"] == 2
        qtbot.waitUntil(lambda: panel.state_of("alpha") == "loaded", timeout=15_000)
        # its library row is not "Stopped": the router's state, with its figures through the router
        qtbot.waitUntil(lambda: shown(model, "alpha", "state") == "Loaded (router)", timeout=10_000)
        qtbot.waitUntil(lambda: shown(model, "alpha", "tokens") not in ("–", "n/a"), timeout=15_000)
        qtbot.waitUntil(lambda: shown(model, ROUTER_NAME, "tokens") != "n/a", timeout=15_000)
        assert shown(model, "alpha", "ram").endswith("MB")
        assert shown(model, "beta", "state") == "Stopped"
        assert "child processes" in model.data(
            model.index(model.row_of(ROUTER_NAME), 0), Qt.ItemDataRole.ToolTipRole
        )
        assert panel.select("alpha")
        assert panel.unload_button.isEnabled() and not panel.load_button.isEnabled()
        router_pid = gui.manager.instance(ROUTER_NAME).pid
        assert len(llama_servers_below(router_pid)) == 1
        panel.unload_button.click()
        qtbot.waitUntil(lambda: panel.state_of("alpha") == "unloaded", timeout=15_000)
        qtbot.waitUntil(lambda: llama_servers_below(router_pid) == [], timeout=15_000)
        qtbot.waitUntil(lambda: shown(model, "alpha", "state") == "Stopped", timeout=5_000)
        assert shown(model, "alpha", "tokens") == "–"

        assert panel.select("beta") and panel.load_button.isEnabled()
        panel.load_button.click()
        qtbot.waitUntil(lambda: panel.state_of("beta") == "loaded", timeout=30_000)
        if os.environ.get("LLAMADASH_ROUTER_SCREENSHOT"):  # the README's picture (scripts take it)
            window.grab().save(os.environ["LLAMADASH_ROUTER_SCREENSHOT"])

        panel.stop_button.click()
        qtbot.waitUntil(lambda: model.state_of(ROUTER_NAME) == "stopped", timeout=30_000)
        qtbot.waitUntil(lambda: panel.table.rowCount() == 0, timeout=5_000)
        assert llama_servers_below(os.getpid()) == []
        assert panel.serve_button.isEnabled() and panel.url_edit.text() == ""
        assert not panel.details.isVisibleTo(panel)
    finally:
        shutdown(gui)


def test_a_refused_start_is_shown_with_its_reason(qtbot, tmp_path: Path, llama_server: Path):
    import socket

    data_dir = tmp_path / "data"
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        make_library(data_dir, tmp_path, llama_server, blocker.getsockname()[1])
        gui = launch_gui(qtbot, data_dir)
        window = gui.window
        try:
            qtbot.waitUntil(lambda: gui.manager is not None, timeout=5_000)
            window.router_panel.serve_button.click()
            qtbot.waitUntil(lambda: isinstance(window.findChild(QMessageBox, "refusalBox"), QMessageBox))
            box = window.findChild(QMessageBox, "refusalBox")
            assert box.windowTitle() == "Cannot start the library router"
            assert "is already in use" in box.text()
            assert window.router_panel.serve_button.isEnabled()
            box.close()
        finally:
            shutdown(gui)


def test_a_library_edit_asks_the_running_router_to_read_it_again_and_shows_what_it_says(qtbot):
    from fakes import FakeManager

    from llamadash.core.router import LeftOut, RouterPlan, RouterSettings
    from llamadash.ui.router_panel import RouterPanel

    class Manager(FakeManager):
        def refresh_router(self) -> list[str]:
            super().refresh_router()
            return ["alpha is loaded with its earlier settings: unload it to apply the new ones"]

    manager = Manager()
    manager.router_settings = RouterSettings(port=8111)  # it runs with the Settings' own
    panel = RouterPanel(lambda: RouterSettings(port=8111))
    qtbot.addWidget(panel)
    panel.set_manager(manager)
    assert "8111/v1" in panel.url_edit.placeholderText() and not panel.stop_button.isEnabled()
    manager.router_plan = RouterPlan(
        argv=("llama-server",),
        preset_text="",
        preset_path="",
        served=("alpha",),
        left_out=(LeftOut("gone", "the model file /x.gguf does not exist"),),
        warnings=("gone is not served: the model file /x.gguf does not exist",),
        port=8111,
    )
    manager.set_state(ROUTER_NAME, "running")
    assert panel.url_edit.text() == "http://127.0.0.1:8111/v1" and panel.stop_button.isEnabled()
    assert panel.notes_label.text() == "gone is not served: the model file /x.gguf does not exist"
    panel.library_changed()
    assert manager.router_refreshes == 1
    assert "alpha is loaded with its earlier settings" in panel.notes_label.text()
    manager.set_state(ROUTER_NAME, "stopped")
    assert panel.notes_label.text() == "" and panel.url_edit.text() == ""


def test_changed_router_settings_say_how_to_apply_them_to_the_running_router(qtbot):
    from fakes import FakeManager

    from llamadash.core.router import RouterPlan, RouterSettings
    from llamadash.ui.router_panel import RouterPanel

    chosen = [RouterSettings(port=8111)]
    manager = FakeManager()
    panel = RouterPanel(lambda: chosen[0])
    qtbot.addWidget(panel)
    panel.set_manager(manager)
    panel.serve()
    assert manager.router_starts == [RouterSettings(port=8111)]
    manager.router_plan = RouterPlan(
        argv=("llama-server",), preset_text="", preset_path="", served=("a",), port=8111
    )
    manager.set_state(ROUTER_NAME, "running")
    assert panel.notes_label.text() == ""
    assert panel.restart_button.isHidden()
    chosen[0] = RouterSettings(port=8111, max_models=1)
    panel.settings_changed()
    assert manager.router_next == [chosen[0]]  # the router's next (re)start takes them
    assert "restart it to apply them" in panel.notes_label.text()
    assert not panel.restart_button.isHidden() and panel.restart_button.isEnabled()
    panel.restart_button.click()
    assert manager.calls[-1] == ("restart", ROUTER_NAME) and manager.router_next[-1] == chosen[0]
    manager.set_state(ROUTER_NAME, "stopped")
    assert panel.notes_label.text() == "" and panel.serve_button.isEnabled()
    assert panel.restart_button.isHidden()
