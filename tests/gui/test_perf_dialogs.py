"""Check fit, Benchmark and Find the fastest settings in the window, with the real tools."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
from support import launch_gui, write_tiny_gguf

from llamadash.app import shutdown
from llamadash.core import database
from llamadash.core.db.bench_store import get_bench_results
from llamadash.core.llama_server import METADATA_KEY
from llamadash.core.params import COLUMN
from llamadash.core.perf.tools import FIT_TOOL, tool_path
from llamadash.ui.param_editor import ParamEditor
from llamadash.ui.perf_actions import APPLY_STEP, PerfActions
from llamadash.ui.perf_dialogs import BenchDialog, FitDialog, TunerDialog


@pytest.fixture
def launched(qtbot, tmp_path: Path, tiny_model: Path, llama_server: Path):
    data_dir = tmp_path / "data"
    database.init_database(data_dir / "llama-dashboard.db")
    database.set_metadata(METADATA_KEY, str(llama_server))
    database.save_model({"name": "tiny", "type": "llama", "status": "stopped", "model_path": str(tiny_model)})
    database.close_database()
    gui = launch_gui(qtbot, data_dir)
    yield gui
    shutdown(gui)


def _perf(gui) -> PerfActions:
    actions = gui.window.findChild(PerfActions)
    assert actions is not None
    library = gui.window.library_widget
    library.select_model(database.get_model_by_name("tiny")["id"])
    return actions


def test_the_library_offers_the_three_actions(launched) -> None:
    actions = _perf(launched)
    menu = actions.button.menu()
    assert [a.text() for a in menu.actions()] == [
        "Check fit\u2026",
        "Benchmark\u2026",
        "Find the fastest settings\u2026",
    ]
    assert actions.button.isVisibleTo(launched.window.library_widget)


def test_check_fit_shows_llama_fit_params_answer(launched, qtbot) -> None:
    dialog = _perf(launched).open_fit()
    assert isinstance(dialog, FitDialog)
    qtbot.waitUntil(lambda: dialog.outcome is not None, timeout=60_000)
    report = dialog.outcome.report
    assert dialog.verdict_label.text().count(report.verdict) == 1
    assert report.verdict.startswith("fits in system memory")  # no GPU on this machine
    assert dialog.memory_table.rowCount() == len(report.devices) >= 1
    assert dialog.memory_table.item(0, 0).text() == "Host"
    assert not dialog.busy_bar.isVisible() and not dialog.cancel_button.isEnabled()
    dialog.close()


def test_cancelling_a_fit_check_leaves_no_process(qtbot, tmp_path, llama_server, tiny_model) -> None:
    # a fit check that would take long: a llama-fit-params that answers --help and then waits
    bin_dir = tmp_path / "slow-bin"
    bin_dir.mkdir()
    server = bin_dir / "llama-server"
    server.symlink_to(llama_server)
    slow = bin_dir / FIT_TOOL
    real = tool_path(llama_server, FIT_TOOL)
    slow.write_text(
        f'#!/bin/sh\n[ "$1" = --help ] || [ "$1" = --version ] && exec "{real}" "$@"\nexec sleep 60\n'
    )
    slow.chmod(0o755)
    dialog = FitDialog({"name": "tiny", COLUMN.model_path: str(tiny_model)}, str(server), None)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: bool(_children_named("sleep")), timeout=20_000)
    assert dialog.busy_bar.isVisible() and dialog.cancel_button.isEnabled()
    with qtbot.waitSignal(dialog.check.cancelled, timeout=20_000):
        dialog.cancel_button.click()
    assert "Cancelled" in dialog.verdict_label.text() and not dialog.check.busy
    assert _children_named("sleep") == []


def _children_named(name: str) -> list[int]:
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.name() == name and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except psutil.NoSuchProcess:
            pass
    return found


def test_a_benchmark_is_stored_and_shown_as_a_row_and_a_bar(launched, qtbot) -> None:
    dialog = _perf(launched).open_bench()
    assert isinstance(dialog, BenchDialog)
    dialog.pp_box.setValue(32)
    dialog.tg_box.setValue(8)
    dialog.reps_box.setValue(1)
    with qtbot.waitSignal(dialog.runner.finished, timeout=60_000):
        dialog.run_button.click()
    [row] = get_bench_results("tiny")
    assert dialog.table.rowCount() == 1 and dialog.table.item(0, 0).text() == str(row["id"])
    assert dialog.table.item(0, 3).text().startswith(f"{row['tg_tps_mean']:,.1f} ± ")
    assert dialog.progress_bar.value() == dialog.progress_bar.maximum() == 2
    [bar] = dialog.chart._bars
    assert list(bar.opts["height"]) == [row["tg_tps_mean"]]
    dialog.close()


def test_cancelling_a_benchmark_stores_nothing_and_leaves_no_process(qtbot, tmp_path, llama_server) -> None:
    slow = write_tiny_gguf(tmp_path / "slow.gguf", n_embd=512, n_layer=8, n_ctx=4096)
    database.init_database(tmp_path / "db.sqlite")
    try:
        dialog = BenchDialog({"name": "slow", COLUMN.model_path: str(slow)}, str(llama_server))
        qtbot.addWidget(dialog)
        dialog.pp_box.setValue(2048)
        dialog.tg_box.setValue(1024)
        dialog.reps_box.setValue(50)
        dialog.run_button.click()
        qtbot.waitUntil(lambda: dialog.runner.process_id is not None, timeout=20_000)
        pid = dialog.runner.process_id
        qtbot.wait(500)
        with qtbot.waitSignal(dialog.runner.cancelled, timeout=20_000):
            dialog.cancel_button.click()
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        assert get_bench_results() == [] and dialog.table.rowCount() == 0
        assert "nothing of that run was stored" in dialog.status_label.text()
    finally:
        database.close_database()


def test_the_tuner_runs_a_sweep_and_applies_the_best_as_one_undo_step(launched, qtbot) -> None:
    dialog = _perf(launched).open_tuner()
    assert isinstance(dialog, TunerDialog)
    assert not dialog.start_button.isEnabled()  # nothing chosen yet
    dialog.choose(COLUMN.threads, "1,2")
    dialog.choose(COLUMN.flash_attn, "on,off")
    dialog.pp_box.setValue(16)
    dialog.tg_box.setValue(8)
    dialog.reps_box.setValue(1)
    assert dialog.plan_label.text().startswith("4 runs of llama-bench; estimated time: ")
    with qtbot.waitSignal(dialog.runner.finished, timeout=120_000):
        dialog.start_button.click()
    rows = get_bench_results("tiny")
    assert len(rows) == 4 and dialog.table.rowCount() == 4 and len({r["sweep"] for r in rows}) == 1
    best = max(rows, key=lambda r: r["tg_tps_mean"])["params"]
    assert dialog.best() == {COLUMN.threads: best[COLUMN.threads], COLUMN.flash_attn: best[COLUMN.flash_attn]}
    dialog.apply_button.click()
    stored = database.get_model_by_name("tiny")
    assert (stored[COLUMN.threads], stored[COLUMN.flash_attn]) == (
        best[COLUMN.threads],
        best[COLUMN.flash_attn],
    )
    editor = launched.window.findChild(ParamEditor)
    assert editor.undo_action.text() == f"Undo {APPLY_STEP}"
    editor.undo_action.trigger()  # one step takes both back
    stored = database.get_model_by_name("tiny")
    assert stored[COLUMN.threads] is None and stored[COLUMN.flash_attn] is None
    dialog.close()


def test_the_editor_offers_them_for_the_model_it_shows(launched, qtbot) -> None:
    from PySide6.QtWidgets import QToolButton

    launched.window.open_configuration("tiny")
    editor = launched.window.findChild(ParamEditor)
    button = editor.findChild(QToolButton, "editorPerformanceButton")
    assert button is not None and button.isVisibleTo(editor)
    check_fit = button.menu().actions()[0]
    assert check_fit.text() == "Check fit\u2026"
    check_fit.trigger()
    dialog = launched.window.findChild(PerfActions).dialog
    assert isinstance(dialog, FitDialog) and dialog.windowTitle() == "Check fit — tiny"
    qtbot.waitUntil(lambda: dialog.outcome is not None, timeout=60_000)
    dialog.close()


def test_check_fit_lists_the_rpc_workers_devices(qtbot, tmp_path, llama_server, tiny_model) -> None:
    import socket
    import subprocess
    import time

    from support import free_port

    from llamadash.core.workers import find_rpc_server

    binary = find_rpc_server(llama_server)
    assert binary is not None, f"ggml-rpc-server is missing beside {llama_server}: the tests' build has RPC"
    ports = [free_port(), free_port()]
    procs = [subprocess.Popen([str(binary), "--port", str(p)], stdout=subprocess.DEVNULL) for p in ports]

    def listening(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    try:
        deadline = time.monotonic() + 30
        while not all(listening(p) for p in ports):
            assert time.monotonic() < deadline, "the workers did not listen within 30 s"
            time.sleep(0.1)
        endpoints = [f"127.0.0.1:{p}" for p in ports]
        config = {
            "name": "tiny",
            COLUMN.model_path: str(tiny_model),
            COLUMN.ctx_size: 256,
            COLUMN.rpc: endpoints,
        }
        dialog = FitDialog(config, str(llama_server), None)
        qtbot.addWidget(dialog)
        dialog.show()
        qtbot.waitUntil(lambda: dialog.outcome is not None, timeout=60_000)
        text = dialog.details.text()
        devices = dialog.outcome.report.rpc_devices
        assert [d.endpoint for d in devices] == endpoints
        for device in devices:
            assert device.describe() in text and f"worker {device.endpoint}" in text
        dialog.close()
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
