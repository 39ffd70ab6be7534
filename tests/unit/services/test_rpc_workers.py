"""Local RPC workers as services, with the real ggml-rpc-server: ready by connecting, log, crash, stop."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from support import free_port

from llamadash.core import database, worker_records, workers
from llamadash.core.workers import OpenNetworkRefused, WorkerError
from llamadash.services.rpc_workers import ReachabilityCheck, WorkerService, WorkerState


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


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_worker_is_running_once_it_accepts_a_connection_and_stopping_leaves_nothing(qtbot, service) -> None:
    worker = workers.add_worker(workers.make_worker("w1", port=free_port(), threads=1))
    states: list[str] = []
    service.stateChanged.connect(lambda name, state, reason: states.append(state))
    proc = service.start(worker)
    pid = proc.pid
    assert pid is not None
    assert [r.pid for r in worker_records.load_records()] == [pid]  # recorded as soon as it exists
    qtbot.waitUntil(lambda: proc.state == WorkerState.RUNNING, timeout=30_000)
    with socket.create_connection(("127.0.0.1", worker.port), timeout=2):
        pass
    qtbot.waitUntil(lambda: any("endpoint" in line for line in proc.log_lines()), timeout=10_000)
    service.stop("w1")
    qtbot.waitUntil(lambda: proc.state == WorkerState.STOPPED, timeout=15_000)
    assert states[:2] == ["starting", "running"] and states[-1] == "stopped"
    assert gone(pid)
    assert worker_records.load_records() == []
    log = service.log_path("w1").read_text(encoding="utf-8")
    assert "--port" in log and "stopped" in log


def test_a_worker_that_dies_is_an_error_with_the_reason(qtbot, service) -> None:
    worker = workers.add_worker(workers.make_worker("w1", port=free_port(), threads=1))
    proc = service.start(worker)
    qtbot.waitUntil(lambda: proc.state == WorkerState.RUNNING, timeout=30_000)
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: proc.state == WorkerState.ERROR, timeout=15_000)
    assert proc.reason.startswith("worker w1 crashed") or "exited" in proc.reason.splitlines()[0]
    assert worker_records.load_records() == []


def test_a_worker_that_refuses_its_settings_is_an_error_with_its_own_words(qtbot, service) -> None:
    worker = workers.add_worker(workers.make_worker("w1", port=free_port(), devices="NOPE0"))
    proc = service.start(worker)
    qtbot.waitUntil(lambda: proc.state == WorkerState.ERROR, timeout=15_000)
    first, *rest = proc.reason.splitlines()
    assert first == "worker w1 exited with status 1"
    assert any("unknown device: NOPE0" in line for line in rest)  # the worker's own message
    assert worker_records.load_records() == []


def test_a_taken_port_is_refused_before_anything_runs(qtbot, service) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        worker = workers.add_worker(workers.make_worker("w1", port=port))
        with pytest.raises(WorkerError, match=f"port {port} is in use"):
            service.start(worker)
    assert worker_records.load_records() == []
    assert service.state("w1") == WorkerState.STOPPED


def test_an_exposed_worker_nobody_confirmed_never_starts(qtbot, service) -> None:
    sneaky = workers.Worker(name="sneaky", host="0.0.0.0", port=free_port())  # open_network False
    with pytest.raises(OpenNetworkRefused, match="never run the RPC server on an open network"):
        service.start(sneaky)
    assert worker_records.load_records() == []


def test_the_same_worker_is_not_started_twice(qtbot, service) -> None:
    worker = workers.add_worker(workers.make_worker("w1", port=free_port(), threads=1))
    proc = service.start(worker)
    with pytest.raises(WorkerError, match="already running"):
        service.start(worker)
    qtbot.waitUntil(lambda: proc.state == WorkerState.RUNNING, timeout=30_000)


def test_reachability_says_yes_to_a_listener_and_why_not_otherwise(qtbot) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        check = ReachabilityCheck("127.0.0.1", listener.getsockname()[1], timeout_s=3)
        with qtbot.waitSignal(check.finished, timeout=5000) as blocker:
            check.start()
        assert blocker.args == [True, ""]
    closed = ReachabilityCheck("127.0.0.1", free_port(), timeout_s=3)
    with qtbot.waitSignal(closed.finished, timeout=5000) as blocker:
        closed.start()
    reachable, reason = blocker.args
    assert reachable is False and "refused" in reason.lower()
