"""The window's Start of a model whose local RPC workers are stopped: "Start workers w1, w2
first?", and on Yes real ggml-rpc-server workers start, then the model runs across them."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
from PySide6.QtWidgets import QMessageBox
from support import free_port, launch_gui, tiny_model_record

from llamadash.core import database, workers
from llamadash.core.llama_server import METADATA_KEY
from llamadash.core.params import COLUMN
from llamadash.services.rpc_workers import WorkerState
from llamadash.ui.worker_start import question_text


def _launch_with_two_stopped_workers(qtbot, tmp_path: Path, tiny_model: Path, llama_server: Path):
    data_dir = tmp_path / "data"
    database.init_database(data_dir / "llama-dashboard.db")
    database.set_metadata(METADATA_KEY, str(llama_server))
    made = [workers.add_worker(workers.make_worker(n, port=free_port(), threads=1)) for n in ("w1", "w2")]
    record = tiny_model_record(tiny_model)
    record.update({COLUMN.rpc: workers.rpc_list(made), COLUMN.gpu_layers: 99, COLUMN.log_verbose: 4})
    database.save_model(record)
    database.close_database()
    gui = launch_gui(qtbot, data_dir)
    qtbot.waitUntil(lambda: gui.manager is not None, timeout=10_000)
    return gui, made


def test_start_asks_to_start_the_stopped_workers_then_runs_across_them(
    qtbot, tmp_path: Path, tiny_model: Path, llama_server: Path
) -> None:
    from llamadash.app import shutdown

    gui, made = _launch_with_two_stopped_workers(qtbot, tmp_path, tiny_model, llama_server)
    pids = []
    try:
        window = gui.window
        view = window.instances_view
        assert view.select("tiny")
        view.start_action.trigger()
        box = window.worker_start_gate.box
        assert box is not None and box.isVisible()
        assert box.text() == question_text(["w1", "w2"]) == "Start workers w1, w2 first?"
        assert all(w.endpoint in box.informativeText() for w in made)
        assert gui.manager.instance("tiny") is None or gui.manager.instance("tiny").state == "stopped"
        assert gui.workers.state("w1") == WorkerState.STOPPED  # nothing started before the answer
        if os.environ.get("LLAMADASH_SHOTS"):  # a folder to save the question's screenshot in
            assert box.grab().save(str(Path(os.environ["LLAMADASH_SHOTS"]) / "start-workers-first.png"))
        box.button(QMessageBox.StandardButton.Yes).click()
        qtbot.waitUntil(lambda: gui.workers.running_names() == ["w1", "w2"], timeout=30_000)
        qtbot.waitUntil(lambda: view.model.state_of("tiny") == "running", timeout=60_000)
        pids = [gui.workers.process(n).pid for n in ("w1", "w2")]
        log = "\n".join(gui.manager.instance("tiny").log_lines())
        for worker in made:
            assert f"({worker.endpoint})" in log, log[-3000:]
    finally:
        shutdown(gui)
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_cancel_starts_nothing(qtbot, tmp_path: Path, tiny_model: Path, llama_server: Path) -> None:
    from llamadash.app import shutdown

    gui, _made = _launch_with_two_stopped_workers(qtbot, tmp_path, tiny_model, llama_server)
    try:
        view = gui.window.instances_view
        assert view.select("tiny")
        view.start_action.trigger()
        box = gui.window.worker_start_gate.box
        box.button(QMessageBox.StandardButton.Cancel).click()
        qtbot.wait(300)
        assert gui.workers.running_names() == [] and gui.workers.state("w2") == WorkerState.STOPPED
        assert view.model.state_of("tiny") == "stopped"
    finally:
        shutdown(gui)
