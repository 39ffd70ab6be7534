"""One model across two real RPC workers on loopback, driven by the ``llamadash workers`` commands.

Two ``llamadash workers start`` run real ``ggml-rpc-server`` processes; the tiny model is given them
(``llamadash workers use``) and ``llamadash run`` starts llama-server with ``--rpc`` across them:
its log shows the RPC devices, each worker's log shows llama-server's connection, and a completion
answers. Stopping leaves no process. A non-loopback bind is refused without the confirmation, and
a worker whose llamadash was killed is found as an orphan and stopped.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from support import free_port, run_cli

from llamadash.core import database, paths, workers

pytestmark = pytest.mark.integration


def llamadash(data_dir: Path, *args: str, log: Path) -> subprocess.Popen:
    """``python -m llamadash --data-dir DIR ARGS`` in the background, stdout and stderr to ``log``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "llamadash", "--data-dir", str(data_dir), *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )


def wait_for(
    predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None
):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            text = log.read_text(errors="replace") if log else ""
            pytest.fail(f"{what}: the process exited with {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.1)
    text = log.read_text(errors="replace") if log else ""
    pytest.fail(f"{what}: not within {timeout:g} s\n{text[-3000:]}")


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def interrupt(proc: subprocess.Popen, timeout: float = 30) -> int:
    """Ctrl-C a foreground llamadash command; its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("the command did not end after Ctrl-C")


@pytest.fixture
def background() -> Iterator[list[subprocess.Popen]]:
    """Processes a test started; ended (SIGINT, then kill) at the end even if it failed."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in reversed(started):
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def worker_list(data_dir: Path) -> dict[str, dict]:
    done = run_cli(data_dir, "workers", "list", "--json")
    assert done.returncode == 0, done.stderr
    return {item["name"]: item for item in json.loads(done.stdout)}


def test_one_model_runs_across_two_loopback_workers(
    tmp_path: Path, tiny_model: Path, llama_server: Path, background: list[subprocess.Popen]
) -> None:
    data = tmp_path / "data"
    ports = {"w1": free_port(), "w2": free_port()}
    worker_procs = {}
    for name, port in ports.items():
        log = tmp_path / f"{name}.out"
        proc = llamadash(data, "workers", "start", name, "--port", str(port), "--threads", "1", log=log)
        background.append(proc)
        worker_procs[name] = proc
        wait_for(
            lambda log=log: "is ready at" in log.read_text(errors="replace"), 60, f"{name} ready", proc, log
        )
        assert listening(port)
    listed = worker_list(data)
    assert {n: (w["state"], w["endpoint"]) for n, w in listed.items()} == {
        "w1": ("running", f"127.0.0.1:{ports['w1']}"),
        "w2": ("running", f"127.0.0.1:{ports['w2']}"),
    }
    worker_pids = {n: listed[n]["pid"] for n in ports}

    server_port = free_port()
    added = run_cli(
        data, "models", "add", "tiny", "--model-path", str(tiny_model),
        "--set", f"port={server_port}", "--set", "ctx_size=256", "--set", "gpu_layers=99", "--set", "log_verbose=4",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    used = run_cli(data, "workers", "use", "tiny", "w1,w2")
    assert used.returncode == 0, used.stderr
    assert f"127.0.0.1:{ports['w1']},127.0.0.1:{ports['w2']}" in used.stdout
    command = run_cli(data, "models", "command", "tiny").stdout
    assert f"--rpc 127.0.0.1:{ports['w1']},127.0.0.1:{ports['w2']}" in command

    def connections(name: str) -> int:  # the workers log each client (llamadash's readiness probe too)
        return (tmp_path / f"{name}.out").read_text(errors="replace").count("Accepted client connection")

    before = {name: connections(name) for name in ports}
    server_log = tmp_path / "server.out"
    server = llamadash(data, "run", "tiny", log=server_log)
    background.append(server)
    wait_for(
        lambda: "is ready at" in server_log.read_text(errors="replace"),
        180,
        "model ready",
        server,
        server_log,
    )
    text = server_log.read_text(errors="replace")
    for port in ports.values():  # llama-server uses both workers' devices and put weights on each
        assert re.search(rf"using device RPC\d \(127\.0\.0\.1:{port}\)", text), text[-4000:]
        assert re.search(rf"RPC\d\[127\.0\.0\.1:{port}\] model buffer size", text), text[-4000:]
    body = json.dumps({"prompt": "Hello", "n_predict": 4}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{server_port}/completion", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 200
        answer = json.loads(response.read())
    assert answer["tokens_predicted"] >= 1
    for name in ports:  # each worker served llama-server
        assert connections(name) > before[name], (tmp_path / f"{name}.out").read_text(errors="replace")[
            -2000:
        ]

    assert interrupt(server) == 0
    for name, proc in worker_procs.items():
        assert interrupt(proc) == 0, (tmp_path / f"{name}.out").read_text(errors="replace")[-2000:]
    for name, pid in worker_pids.items():
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, name
        assert not listening(ports[name])
    assert {n: w["state"] for n, w in worker_list(data).items()} == {"w1": "stopped", "w2": "stopped"}


def test_a_non_loopback_bind_is_refused_without_the_confirmation(tmp_path: Path, llama_server: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    refused = run_cli(data, "workers", "start", "exposed", "--host", "0.0.0.0", "--port", str(port))
    assert refused.returncode == 1
    assert "never run the RPC server on an open network" in refused.stderr
    assert "0.0.0.0" in refused.stderr
    assert not listening(port)
    assert worker_list(data) == {}  # nothing was saved either


def test_a_confirmed_open_worker_warns_and_keeps_the_warning(
    tmp_path: Path, llama_server: Path, background: list[subprocess.Popen]
) -> None:
    data = tmp_path / "data"
    port = free_port()
    log = tmp_path / "open.out"
    proc = llamadash(
        data, "workers", "start", "open", "--host", "0.0.0.0", "--port", str(port), "--threads", "1",
        "--confirm-open-network", log=log,
    )  # fmt: skip
    background.append(proc)
    wait_for(lambda: "is ready at" in log.read_text(errors="replace"), 60, "worker ready", proc, log)
    assert "never run the RPC server on an open network" in log.read_text(errors="replace")
    item = worker_list(data)["open"]
    assert item["state"] == "running" and item["open_network"] is True
    assert "never run the RPC server on an open network" in item["warning"]
    table = run_cli(data, "workers", "list").stdout
    assert "WARNING" in table and "0.0.0.0" in table
    down = free_port()
    assert run_cli(data, "workers", "add", "far", f"127.0.0.1:{down}").returncode == 0
    # llamadash status lists the workers beside the models: name, kind, endpoint, state, pid, warning
    status = run_cli(data, "status", "--json")
    assert status.returncode == 0, status.stderr
    rows = {w["name"]: w for w in json.loads(status.stdout)["workers"]}
    assert {n: (w["kind"], w["endpoint"], w["state"]) for n, w in rows.items()} == {
        "open": ("local", f"127.0.0.1:{port}", "running"),
        "far": ("remote", f"127.0.0.1:{down}", "unreachable"),
    }
    assert rows["open"]["pid"] == item["pid"] and psutil.Process(item["pid"]).is_running()
    assert "never run the RPC server" in rows["open"]["warning"] and rows["far"]["warning"] is None
    text = run_cli(data, "status").stdout
    assert "RPC workers:" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("open "))
    assert all(
        part in line for part in ("local", f"127.0.0.1:{port}", "running", str(item["pid"]), "WARNING")
    )
    assert interrupt(proc) == 0
    stopped = json.loads(run_cli(data, "status", "--json").stdout)["workers"]
    assert [(w["name"], w["state"], w["pid"]) for w in stopped if w["kind"] == "local"] == [
        ("open", "stopped", None)
    ]


def test_a_killed_llamadash_leaves_an_orphan_worker_that_is_found_and_stopped(
    tmp_path: Path, llama_server: Path, background: list[subprocess.Popen]
) -> None:
    data = tmp_path / "data"
    port = free_port()
    log = tmp_path / "w.out"
    proc = llamadash(data, "workers", "start", "w1", "--port", str(port), "--threads", "1", log=log)
    background.append(proc)
    wait_for(lambda: "is ready at" in log.read_text(errors="replace"), 60, "worker ready", proc, log)
    twice = run_cli(data, "workers", "start", "w1", "--port", str(free_port()))
    assert twice.returncode == 1 and "already running" in twice.stderr
    assert worker_list(data)["w1"]["port"] == port  # its settings did not change under it
    proc.kill()  # the dashboard dies; the worker, in its own session, goes on
    proc.wait()
    item = worker_list(data)["w1"]
    assert item["state"] == "orphan" and item["pid"]
    # (no test connection here: the orphan's output pipe is gone, and the line it logs for a client
    # would end it with SIGPIPE before 'workers stop' could)
    assert psutil.Process(item["pid"]).is_running()
    assert "killed" in run_cli(data, "workers", "list").stdout
    stopped = run_cli(data, "workers", "stop", "w1")
    assert stopped.returncode == 0, stopped.stderr
    assert not psutil.pid_exists(item["pid"]) or psutil.Process(item["pid"]).status() == psutil.STATUS_ZOMBIE
    assert worker_list(data)["w1"]["state"] == "stopped"
    assert not listening(port)
    removed = run_cli(data, "workers", "remove", "w1")
    assert removed.returncode == 0 and worker_list(data) == {}


def test_a_model_whose_worker_does_not_answer_says_so(
    tmp_path: Path, tiny_model: Path, llama_server: Path
) -> None:
    data = tmp_path / "data"
    port = free_port()  # nothing listens there: the worker is not started
    assert run_cli(data, "workers", "add", "off", f"127.0.0.1:{port}").returncode == 0
    added = run_cli(data, "models", "add", "tiny", "--model-path", str(tiny_model), "--set", "ctx_size=256")
    assert added.returncode == 0, added.stderr
    assert run_cli(data, "workers", "use", "tiny", "off").returncode == 0
    ran = run_cli(data, "run", "tiny", timeout=120)
    assert ran.returncode == 1
    assert f"The RPC worker 127.0.0.1:{port} of the model's --rpc list does not answer" in ran.stderr
    assert "llamadash workers start NAME" in ran.stderr


# ------------------------------------------------------------------------------------------------
# run with stopped local workers: refused with the commands, or --start-workers
def _two_stopped_local_workers(data: Path, tiny_model: Path) -> tuple[dict[str, int], int]:
    server_port = free_port()
    added = run_cli(
        data, "models", "add", "tiny", "--model-path", str(tiny_model),
        "--set", f"port={server_port}", "--set", "ctx_size=256", "--set", "gpu_layers=99", "--set", "log_verbose=4",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    ports = {"w1": free_port(), "w2": free_port()}
    database.init_database(paths.default_database_path(data))
    try:  # registered, never started: as the Workers tab's "New local worker" leaves them when not started
        for name, port in ports.items():
            workers.add_worker(workers.make_worker(name, port=port, threads=1))
    finally:
        database.close_database()
    used = run_cli(data, "workers", "use", "tiny", "w1,w2")
    assert used.returncode == 0, used.stderr
    return ports, server_port


def test_run_names_the_stopped_local_workers_and_starts_nothing(
    tmp_path: Path, tiny_model: Path, llama_server: Path
) -> None:
    data = tmp_path / "data"
    ports, server_port = _two_stopped_local_workers(data, tiny_model)
    ran = run_cli(data, "run", "tiny", timeout=120)
    assert ran.returncode == 1
    assert "these local ones are stopped: w1, w2" in ran.stderr
    assert "'llamadash workers start w1'" in ran.stderr and "'llamadash workers start w2'" in ran.stderr
    assert "--start-workers" in ran.stderr
    assert not listening(server_port) and not any(listening(p) for p in ports.values())
    listed = json.loads(run_cli(data, "status", "--json").stdout)
    assert {w["name"]: w["state"] for w in listed["workers"]} == {"w1": "stopped", "w2": "stopped"}
    assert {m["name"]: m["state"] for m in listed["models"]} == {"tiny": "stopped"}


def test_run_start_workers_starts_them_first_and_stops_them_after(
    tmp_path: Path,
    tiny_model: Path,
    llama_server: Path,
    background,
) -> None:
    data = tmp_path / "data"
    ports, server_port = _two_stopped_local_workers(data, tiny_model)
    log = tmp_path / "run.out"
    proc = llamadash(data, "run", "tiny", "--start-workers", log=log)
    background.append(proc)
    wait_for(
        lambda: (
            "is ready at" in log.read_text(errors="replace")
            and "tiny is ready" in log.read_text(errors="replace")
        ),
        180,
        "model ready",
        proc,
        log,
    )
    text = log.read_text(errors="replace")
    for name, port in ports.items():
        assert f"worker {name} is ready at 127.0.0.1:{port}" in text
        assert re.search(rf"using device RPC\d \(127\.0\.0\.1:{port}\)", text), text[-3000:]
    status = json.loads(run_cli(data, "status", "--json").stdout)
    rows = {w["name"]: w for w in status["workers"]}
    assert {n: w["state"] for n, w in rows.items()} == {"w1": "running", "w2": "running"}
    pids = {n: w["pid"] for n, w in rows.items()}
    assert all(pids.values())
    body = json.dumps({"prompt": "Hello", "n_predict": 4}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{server_port}/completion", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        assert json.loads(response.read())["tokens_predicted"] >= 1
    assert interrupt(proc) == 0, log.read_text(errors="replace")[-3000:]
    for name, pid in pids.items():
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, name
        assert not listening(ports[name])
    assert not listening(server_port)
