"""The Workers tab with the real ggml-rpc-server: start and stop from the table, the open-network
confirmation, remote reachability, and a model given its workers."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from PySide6.QtWidgets import QMessageBox
from support import free_port

from llamadash.core import database, workers
from llamadash.core.library_service import Library
from llamadash.core.params import COLUMN
from llamadash.core.workers import RPC_WARNING, Worker
from llamadash.services.rpc_workers import WorkerService
from llamadash.ui.workers_view import (
    COLUMNS,
    ROW_WARNING,
    LocalWorkerDialog,
    RemoteWorkerDialog,
    WorkersView,
    open_network_box,
)


@pytest.fixture
def rpc_server(llama_server: Path) -> Path:
    path = llama_server.with_name("ggml-rpc-server" + (".exe" if os.name == "nt" else ""))
    assert path.is_file(), f"{path} is missing: the tests' llama.cpp must be built with -DGGML_RPC=ON"
    return path


@pytest.fixture
def service(qtbot, tmp_path: Path, rpc_server: Path) -> Iterator[WorkerService]:
    database.init_database(tmp_path / "db.sqlite")
    made = WorkerService(data_dir=tmp_path, rpc_server=rpc_server)
    yield made
    assert made.stop_all(timeout_s=10)
    database.close_database()


def make_view(qtbot, service: WorkerService, assigned: list | None = None) -> WorkersView:
    def assign(model: str, chosen: list[Worker] | None) -> str:
        from llamadash.core import db as store
        from llamadash.core.library_service import running_by_process_records

        endpoints = workers.rpc_list(chosen) if chosen else None
        Library(store, is_running=running_by_process_records).set_parameters(model, {COLUMN.rpc: endpoints})
        return f"{model}: {endpoints}"

    view = WorkersView(service, model_names=lambda: [m["name"] for m in database.get_models()], assign=assign)
    qtbot.addWidget(view)
    view.resize(1100, 420)
    view.show()
    return view


def row(view: WorkersView, name: str) -> dict[str, str]:
    for texts in view.row_texts():
        if texts[0] == name:
            return dict(zip(COLUMNS, texts, strict=True))
    raise AssertionError(f"no row {name}: {view.row_texts()}")


def fill_local(dialog: LocalWorkerDialog, name: str, port: int, host: str = "127.0.0.1") -> None:
    dialog.name_edit.setText(name)
    dialog.host_edit.setText(host)
    dialog.port_box.setValue(port)
    dialog.threads_box.setValue(1)


def test_a_local_worker_is_created_started_and_stopped_from_the_tab(qtbot, service) -> None:
    view = make_view(qtbot, service)
    view.new_local_worker()
    dialog = view.dialog
    assert isinstance(dialog, LocalWorkerDialog)
    port = free_port()
    fill_local(dialog, "w1", port)
    dialog._on_ok()
    qtbot.waitUntil(lambda: row(view, "w1")["State"] == "running", timeout=30_000)
    qtbot.waitUntil(lambda: "CPU:" in row(view, "w1")["Details"], timeout=10_000)  # what it exposes
    shown = row(view, "w1")
    assert shown["Endpoint"] == f"127.0.0.1:{port}" and shown["Warning"] == ""
    proc = service.process("w1")
    assert proc is not None and proc.pid is not None
    pid = proc.pid
    assert f"pid {pid}" in shown["Details"]
    assert service.running_names() == ["w1"]  # what the tray's tooltip lists
    view.select("w1")
    assert view.stop_button.isEnabled() and not view.start_button.isEnabled()
    view.log_button.click()
    assert "Starting RPC server" in view.log_text("w1")
    assert view.dialog is not None and view.dialog.isVisible()
    view.dialog.close()
    view.stop_button.click()
    qtbot.waitUntil(lambda: row(view, "w1")["State"] == "stopped", timeout=15_000)
    assert service.running_names() == []
    assert "worker w1 stopped" in service.log_path("w1").read_text(encoding="utf-8")
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    view.select("w1")
    view.remove_button.click()
    assert view.row_texts() == []


def test_a_network_bind_needs_the_confirmation_and_keeps_its_warning(qtbot, service) -> None:
    view = make_view(qtbot, service)
    view.new_local_worker()
    dialog = view.dialog
    assert isinstance(dialog, LocalWorkerDialog)
    asked: list[str] = []

    def say_no(host: str) -> bool:
        asked.append(host)
        return False

    dialog.confirm_open_network = say_no
    fill_local(dialog, "exposed", free_port(), host="0.0.0.0")
    dialog._on_ok()
    assert asked == ["0.0.0.0"]
    assert dialog.isVisible() and RPC_WARNING in dialog.problem.text()
    assert workers.list_workers() == []  # nothing saved, nothing started
    dialog.confirm_open_network = lambda host: True  # now Yes
    dialog._on_ok()
    qtbot.waitUntil(lambda: row(view, "exposed")["State"] == "running", timeout=30_000)
    assert row(view, "exposed")["Warning"] == ROW_WARNING
    warning_cell = view.table.item(0, COLUMNS.index("Warning"))
    assert warning_cell is not None and RPC_WARNING in warning_cell.toolTip()  # the whole warning
    view.select("exposed")
    view.stop_button.click()
    qtbot.waitUntil(lambda: row(view, "exposed")["State"] == "stopped", timeout=15_000)
    assert row(view, "exposed")["Warning"] == ROW_WARNING  # the warning stays on the row


def test_the_confirmation_quotes_llama_cpps_warning_and_defaults_to_no(qtbot) -> None:
    box = open_network_box("192.168.1.20")
    qtbot.addWidget(box)
    assert "192.168.1.20" in box.text()
    assert RPC_WARNING in box.informativeText()
    assert box.defaultButton() is box.button(QMessageBox.StandardButton.No)


def test_remote_workers_are_checked_without_blocking(qtbot, service) -> None:
    view = make_view(qtbot, service)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        view.add_remote_worker()
        dialog = view.dialog
        assert isinstance(dialog, RemoteWorkerDialog)
        dialog.name_edit.setText("box")
        dialog.endpoint_edit.setText(f"127.0.0.1:{listener.getsockname()[1]}")
        dialog._on_ok()
        qtbot.waitUntil(lambda: row(view, "box")["State"] == "reachable", timeout=10_000)
    view.add_remote_worker()
    dialog = view.dialog
    assert isinstance(dialog, RemoteWorkerDialog)
    dialog.name_edit.setText("gone")
    dialog.endpoint_edit.setText("nonsense")
    dialog._on_ok()
    assert "HOST:PORT" in dialog.problem.text()
    dialog.endpoint_edit.setText(f"127.0.0.1:{free_port()}")
    dialog._on_ok()
    qtbot.waitUntil(lambda: row(view, "gone")["State"] == "unreachable", timeout=10_000)
    assert "refused" in row(view, "gone")["Details"].lower()
    view.select("box")
    assert not view.start_button.isEnabled()  # another machine runs it


def test_a_model_is_given_the_selected_workers(qtbot, service, tmp_path: Path) -> None:
    database.save_model({"name": "big", "type": "llama", "status": "stopped"})
    workers.add_worker(workers.make_worker("a", kind="remote", host="10.0.0.2", port=50052))
    workers.add_worker(workers.make_worker("b", kind="remote", host="10.0.0.3", port=50052))
    view = make_view(qtbot, service)
    assert view.model_box.currentText() == "big"
    view.select("a", "b")
    view.use_button.click()
    model = database.get_model_by_name("big")
    assert model is not None and model[COLUMN.rpc] == ["10.0.0.2:50052", "10.0.0.3:50052"]
    assert "10.0.0.2:50052" in view.message.text()
    assert "start" not in view.message.text()  # remote workers: nothing to start here
    workers.add_worker(workers.make_worker("c", port=free_port()))
    view.refresh()
    view.select("a", "c")
    view.use_button.click()
    assert "start c before the model" in view.message.text()
    view.clear_button.click()
    model = database.get_model_by_name("big")
    assert model is not None and model[COLUMN.rpc] is None


def test_the_launched_window_has_the_tab_and_quitting_stops_its_workers(
    qtbot, tmp_path: Path, llama_server: Path
) -> None:
    from support import launch_gui

    from llamadash.app import shutdown
    from llamadash.core.llama_server import METADATA_KEY

    data_dir = tmp_path / "data"
    database.init_database(data_dir / "llama-dashboard.db")
    database.set_metadata(METADATA_KEY, str(llama_server))  # the worker program is found beside it
    database.close_database()
    gui = launch_gui(qtbot, data_dir)
    try:
        window = gui.window
        tabs = [window.workspace.tabText(i) for i in range(window.workspace.count())]
        assert "Workers" in tabs
        view = window.lazy_tabs.widget("workers")
        view.new_local_worker()
        dialog = view.dialog
        assert isinstance(dialog, LocalWorkerDialog)
        fill_local(dialog, "w1", free_port())
        dialog._on_ok()
        qtbot.waitUntil(lambda: row(view, "w1")["State"] == "running", timeout=30_000)
        proc = gui.workers.process("w1")
        assert proc is not None and proc.pid is not None
        pid = proc.pid
        tray = window.tray_controller  # the tray's tooltip says which workers run
        assert "RPC workers running: w1" in tray.tooltip_text()
    finally:
        shutdown(gui)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
