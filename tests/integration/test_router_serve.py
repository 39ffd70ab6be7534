"""The library router with the real llama-server (router mode) and two tiny models.

A request naming a model loads it and answers, and a loaded model has figures of its own
(``/slots?model=``); with ``--models-max 1`` the next one evicts it; an idle model goes to sleep;
Unload frees it; stopping leaves no process (router and children); the headless ``llamadash serve``
stops everything on SIGTERM, and a killed one leaves the router and its children to be found as
orphans and stopped by ``status --stop-orphans``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from support import free_port, write_tiny_gguf

from llamadash.core import database, pidfile
from llamadash.core.launch import PortInUseError
from llamadash.core.llama_server import METADATA_KEY
from llamadash.core.router import ROUTER_NAME, RouterSettings
from llamadash.services.instance import InstanceState, ServerInstance
from llamadash.services.manager import InstanceManager

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    try:
        root = psutil.Process(pid)
        return [p.pid for p in [root, *root.children(recursive=True)] if alive(p.pid)]
    except psutil.NoSuchProcess:
        return []


def llama_servers_below(pid: int) -> list[int]:
    found = []
    try:
        procs = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    for proc in procs:
        try:
            if proc.name() == "llama-server" and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except psutil.NoSuchProcess:
            pass
    return found


def wait_gone(pids: list[int], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def complete(base: str, model: str, timeout: float = 120) -> dict[str, Any]:
    body = {"model": model, "prompt": "Hello", "n_predict": 4, "ignore_eos": True}
    request = urllib.request.Request(
        f"{base}/completion", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def post(base: str, path: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def models_of(base: str) -> dict[str, str]:
    with urllib.request.urlopen(f"{base}/models", timeout=10) as response:
        return {m["id"]: m["status"]["value"] for m in json.load(response)["data"]}


@pytest.fixture
def data_dir(_isolated_data_dir: Path, llama_server: Path, tmp_path: Path) -> Iterator[Path]:
    """An open database naming the real llama-server, with two tiny models, alpha and beta."""
    database.init_database(data_dir=_isolated_data_dir)
    database.set_metadata(METADATA_KEY, str(llama_server))
    for name in ("alpha", "beta"):
        path = write_tiny_gguf(tmp_path / f"{name}.gguf", name)
        database.save_model(
            {
                "name": name,
                "type": "llama",
                "status": "stopped",
                "model_path": str(path),
                "ctx_size": 256,
                "threads": 1,
            }
        )
    yield _isolated_data_dir
    database.close_database()


@pytest.fixture
def manager(qtbot, data_dir: Path) -> Iterator[InstanceManager]:
    made = InstanceManager(data_dir=data_dir, poll_interval_s=0.25, stop_timeout_s=10, quit_with_app=False)
    yield made
    assert made.stop_all(20)
    made.close()
    assert llama_servers_below(os.getpid()) == []


def wait_state(qtbot, inst: ServerInstance, state: InstanceState, timeout: int = 60_000) -> None:
    qtbot.waitUntil(lambda: inst.state is state, timeout=timeout)


def wait_model(qtbot, manager: InstanceManager, name: str, state: str, timeout: int = 60_000) -> None:
    def reached() -> bool:
        model = manager.router_models.model(name)
        return model is not None and model.state == state

    qtbot.waitUntil(reached, timeout=timeout)


def test_requests_load_models_the_limit_evicts_unload_frees_and_stop_leaves_nothing(qtbot, manager, data_dir):
    port = free_port()
    inst = manager.start_router(RouterSettings(port=port, max_models=1))
    assert inst.name == ROUTER_NAME and inst.state is InstanceState.LOADING
    wait_state(qtbot, inst, InstanceState.RUNNING)
    router_pid = inst.pid
    assert router_pid is not None
    plan = manager.router_plan
    assert plan is not None and plan.served == ("alpha", "beta")
    assert plan.base_url == f"http://127.0.0.1:{port}/v1"
    assert (data_dir / "router" / "models.ini").read_text() == plan.preset_text
    wait_model(qtbot, manager, "alpha", "unloaded")
    assert manager.router_models.model("beta").state == "unloaded"
    assert manager.router_models.last_poll_ms is not None
    assert llama_servers_below(router_pid) == []  # nothing loaded until asked
    # its PID record is there, under the router's name
    assert [r.model for r in pidfile.load_records()] == [ROUTER_NAME]
    records: list[Any] = []
    manager.requestRecorded.connect(lambda name, record: records.append((name, record.model)))

    answer = complete(inst.url, "alpha")
    assert answer["tokens_predicted"] == 4
    wait_model(qtbot, manager, "alpha", "loaded")
    assert len(llama_servers_below(router_pid)) == 1

    answer = complete(inst.url, "beta")
    assert answer["tokens_predicted"] == 4
    wait_model(qtbot, manager, "beta", "loaded")
    wait_model(qtbot, manager, "alpha", "unloaded")  # --models-max 1: beta evicted alpha
    qtbot.waitUntil(lambda: len(llama_servers_below(router_pid)) == 1, timeout=15_000)

    # each request is recorded as its model's (the Activity view's), from the router's log
    qtbot.waitUntil(lambda: len(records) == 2, timeout=15_000)
    assert records == [(ROUTER_NAME, "alpha"), (ROUTER_NAME, "beta")]

    child = llama_servers_below(router_pid)[0]
    manager.router_models.unload("beta")
    wait_model(qtbot, manager, "beta", "unloaded")
    assert wait_gone([child]), "Unload left the model's process running"

    manager.router_models.load("alpha")  # Load without a request
    wait_model(qtbot, manager, "alpha", "loaded")
    children = llama_servers_below(router_pid)
    assert len(children) == 1
    refused: list[tuple[str, str]] = []
    manager.router_models.actionFailed.connect(lambda name, why: refused.append((name, why)))
    manager.router_models.unload("nosuch")
    qtbot.waitUntil(lambda: bool(refused), timeout=10_000)
    assert refused[0][0] == "nosuch" and "not found" in refused[0][1]

    inst.stop()  # with a model loaded: the router and its child both go
    wait_state(qtbot, inst, InstanceState.STOPPED, timeout=30_000)
    assert wait_gone([router_pid, *children], timeout=5)
    assert manager.router_models.models == []
    assert pidfile.load_records() == []


def test_an_idle_model_goes_to_sleep(qtbot, manager):
    inst = manager.start_router(RouterSettings(port=free_port(), idle_s=1))
    wait_state(qtbot, inst, InstanceState.RUNNING)
    complete(inst.url, "alpha")
    wait_model(qtbot, manager, "alpha", "sleeping", timeout=30_000)
    answer = complete(inst.url, "alpha")  # the next request wakes it
    assert answer["tokens_predicted"] == 4


def test_a_model_that_cannot_start_is_left_out_by_name_and_a_taken_port_is_refused(
    qtbot, manager, data_dir, tmp_path
):
    database.save_model(
        {"name": "gone", "type": "llama", "status": "stopped", "model_path": str(tmp_path / "missing.gguf")}
    )
    database.save_model(
        {
            "name": "quiet",
            "type": "llama",
            "status": "stopped",
            "model_path": str(tmp_path / "alpha.gguf"),
            "served": False,
        }
    )
    inst = manager.start_router(RouterSettings(port=free_port()))
    assert any(w.startswith("gone is not served: ") and "does not exist" in w for w in inst.warnings)
    wait_state(qtbot, inst, InstanceState.RUNNING)
    wait_model(qtbot, manager, "alpha", "unloaded")
    assert sorted(m.name for m in manager.router_models.models) == ["alpha", "beta"]
    inst.stop()
    wait_state(qtbot, inst, InstanceState.STOPPED, timeout=30_000)

    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        with pytest.raises(PortInUseError):
            manager.start_router(RouterSettings(port=blocker.getsockname()[1]))


# -- the CLI -------------------------------------------------------------------------------------------


def serve(data_dir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "llamadash", "--data-dir", str(data_dir), "serve", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def wait_line(proc: subprocess.Popen, text: str) -> list[str]:
    """The lines ``serve`` writes on stderr up to the first one holding ``text``."""
    assert proc.stderr is not None
    lines: list[str] = []
    while True:
        line = proc.stderr.readline()
        assert line, f"serve exited ({proc.wait()}) before it said {text!r}:\n{''.join(lines)}"
        lines.append(line)
        if text in line:
            return lines


def wait_ready(proc: subprocess.Popen) -> list[str]:
    return wait_line(proc, "the router is ready")


def cli_json(data_dir: Path, *args: str) -> dict[str, Any]:
    from llamadash.cli import run as cli_run

    import io

    out, err = io.StringIO(), io.StringIO()
    assert cli_run(["--data-dir", str(data_dir), *args], out, err) == 0, err.getvalue()
    return json.loads(out.getvalue())


def test_cli_serve_status_and_sigterm_leave_no_process(data_dir: Path):
    from llamadash.cli import run as cli_run

    import io

    assert (
        cli_run(
            ["--data-dir", str(data_dir), "models", "set", "beta", "served=off"], io.StringIO(), io.StringIO()
        )
        == 0
    )
    database.release_connection()
    port = free_port()
    metrics_port = free_port()
    proc = serve(data_dir, "--port", str(port), "--max-models", "1", "--prometheus", str(metrics_port))
    lines = wait_ready(proc)
    assert f"point OpenAI clients at http://127.0.0.1:{port}/v1" in lines[-1]
    base = f"http://127.0.0.1:{port}"
    assert models_of(base) == {"alpha": "unloaded"}  # beta is not served
    assert complete(base, "alpha")["tokens_predicted"] == 4
    wait_line(proc, "llamadash: alpha: loaded")  # serve tells each model's state as it changes
    (router,) = cli_json(data_dir, "status", "--json")["routers"]
    assert router["kind"] == "foreign" and router["owner_pid"] == proc.pid
    assert [(m["name"], m["state"]) for m in router["models"]] == [("alpha", "loaded")]
    out = io.StringIO()
    assert cli_run(["--data-dir", str(data_dir), "status"], out, io.StringIO()) == 0
    text = out.getvalue()
    assert (
        f"router at http://127.0.0.1:{port}/v1 (pid {router['pid']}, run by llamadash pid {proc.pid})" in text
    )
    assert "  alpha  loaded" in text.splitlines()
    pids = tree(proc.pid)[1:]
    assert len(pids) == 2  # the router and alpha's process
    # --prometheus works as for `run`: the router is an instance of the endpoint
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
        scraped = response.read().decode()
    assert 'model="[router]"} 1.0' in scraped and "llamadash_instance_up" in scraped, scraped[:2000]

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    assert proc.stderr is not None
    proc.stderr.close()
    assert wait_gone(pids, timeout=5), "serve left a process behind"
    database.init_database(data_dir=data_dir)
    assert pidfile.load_records() == []


def test_a_killed_serve_leaves_the_router_and_its_models_as_orphans_that_status_stops(data_dir: Path):
    database.release_connection()
    port = free_port()
    proc = serve(data_dir, "--port", str(port))
    wait_ready(proc)
    base = f"http://127.0.0.1:{port}"
    complete(base, "alpha")
    complete(base, "beta")
    pids = tree(proc.pid)[1:]
    assert len(pids) == 3  # the router, alpha's and beta's processes
    proc.kill()
    proc.wait(10)
    assert proc.stderr is not None
    proc.stderr.close()
    assert all(alive(pid) for pid in pids)  # left behind

    report = cli_json(data_dir, "status", "--json")
    assert [o["model"] for o in report["orphans"]] == [ROUTER_NAME]  # one orphan: the router's tree
    (router,) = report["routers"]
    assert router["kind"] == "orphan"
    assert sorted((m["name"], m["state"]) for m in router["models"]) == [
        ("alpha", "loaded"),
        ("beta", "loaded"),
    ]

    report = cli_json(data_dir, "status", "--stop-orphans", "--json")
    assert report["stopped_orphans"] == [router["pid"]]
    assert wait_gone(pids, timeout=5), "status --stop-orphans left a model process running"
    assert cli_json(data_dir, "status", "--json")["orphans"] == []


def test_an_edited_library_is_read_again_by_the_running_router(qtbot, manager, tmp_path):
    inst = manager.start_router(RouterSettings(port=free_port()))
    wait_state(qtbot, inst, InstanceState.RUNNING)
    wait_model(qtbot, manager, "alpha", "unloaded")
    complete(inst.url, "alpha")
    wait_model(qtbot, manager, "alpha", "loaded")

    gamma = write_tiny_gguf(tmp_path / "gamma.gguf", "gamma")
    database.save_model({"name": "gamma", "type": "llama", "status": "stopped", "model_path": str(gamma)})
    alpha = database.get_model_by_name("alpha")
    database.update_model(alpha["id"], {"ctx_size": 512})
    beta = database.get_model_by_name("beta")
    database.update_model(beta["id"], {"served": False})
    notes = manager.refresh_router()
    assert notes == ["alpha is loaded with its earlier settings: unload it to apply the new ones"]
    qtbot.waitUntil(lambda: manager.router_models.model("gamma") is not None, timeout=15_000)
    assert "ctx-size = 512" in (manager.data_dir / "router" / "models.ini").read_text()
    assert complete(inst.url, "gamma")["tokens_predicted"] == 4  # served without a restart
    qtbot.waitUntil(lambda: manager.router_models.model("beta") is None, timeout=15_000)


def test_a_crashed_router_is_an_error_and_its_models_go_with_it(qtbot, manager):
    inst = manager.start_router(RouterSettings(port=free_port()))
    wait_state(qtbot, inst, InstanceState.RUNNING)
    complete(inst.url, "alpha")
    assert inst.pid is not None
    children = llama_servers_below(inst.pid)
    assert len(children) == 1
    os.kill(inst.pid, signal.SIGKILL)
    wait_state(qtbot, inst, InstanceState.ERROR, timeout=15_000)
    assert "SIGKILL" in inst.reason or "signal 9" in inst.reason or "killed" in inst.reason, inst.reason
    assert wait_gone(children), "a model process outlived its router"
    qtbot.waitUntil(lambda: manager.router_models.models == [], timeout=5_000)
    assert pidfile.load_records() == []


def test_a_killed_serves_router_is_adopted_followed_and_stopped_with_its_models(qtbot, data_dir: Path):
    database.release_connection()
    port = free_port()
    proc = serve(data_dir, "--port", str(port), "--max-models", "1", "--idle", "300", "--no-autoload")
    wait_ready(proc)
    post(f"http://127.0.0.1:{port}", "/models/load", {"model": "alpha"})  # autoload is off
    deadline = time.monotonic() + 60
    while models_of(f"http://127.0.0.1:{port}")["alpha"] != "loaded" and time.monotonic() < deadline:
        time.sleep(0.1)
    pids = tree(proc.pid)[1:]
    assert len(pids) == 2  # the router and alpha's process
    proc.kill()
    proc.wait(10)
    assert proc.stderr is not None
    proc.stderr.close()
    database.init_database(data_dir=data_dir)

    manager = InstanceManager(data_dir=data_dir, poll_interval_s=0.25, stop_timeout_s=10, quit_with_app=False)
    try:
        (orphan,) = manager.orphans()
        assert (orphan["model"], orphan["port"]) == (ROUTER_NAME, port)
        inst = manager.adopt_orphan(orphan["pid"])
        assert inst.adopted and inst.name == ROUTER_NAME
        wait_state(qtbot, inst, InstanceState.RUNNING, timeout=15_000)
        wait_model(qtbot, manager, "alpha", "loaded", timeout=15_000)
        assert (
            manager.router_plan is not None and manager.router_plan.base_url == f"http://127.0.0.1:{port}/v1"
        )
        # its own settings, read from its command line: a restart keeps them
        assert manager.router_settings == RouterSettings(port=port, max_models=1, autoload=False, idle_s=300)
        inst.restart()
        qtbot.waitUntil(lambda: inst.pid not in (None, orphan["pid"]), timeout=30_000)
        wait_state(qtbot, inst, InstanceState.RUNNING, timeout=30_000)
        argv = psutil.Process(inst.pid).cmdline()
        assert argv[argv.index("--models-max") + 1] == "1" and "--no-models-autoload" in argv
        assert argv[argv.index("--sleep-idle-seconds") + 1] == "300"
        assert wait_gone(pids, timeout=5), "the restart left the adopted router or its model running"
        assert inst.pid is not None
        pids = tree(inst.pid)
        inst.stop()
        wait_state(qtbot, inst, InstanceState.STOPPED, timeout=30_000)
        assert wait_gone(pids, timeout=5), "stopping the adopted router left a model process running"
        assert manager.orphans() == [] and pidfile.load_records() == []
    finally:
        assert manager.stop_all(10)
        manager.close()


def test_a_loaded_model_has_its_own_figures_and_the_router_row_sums_them(qtbot, manager):
    seen: dict[str, list[Any]] = {}
    manager.figuresChanged.connect(lambda name, figures: seen.setdefault(name, []).append(figures))
    inst = manager.start_router(RouterSettings(port=free_port(), max_models=2))
    wait_state(qtbot, inst, InstanceState.RUNNING)
    wait_model(qtbot, manager, "alpha", "unloaded")
    assert manager.router_figures.polled() == []  # nothing loaded: nothing asked of a model
    complete(inst.url, "alpha")
    wait_model(qtbot, manager, "alpha", "loaded")
    qtbot.waitUntil(lambda: manager.router_figures.polled() == ["alpha"], timeout=10_000)
    poller = manager.router_figures.poller("alpha")
    assert poller is not None

    # requests in a loop while the figures are read: its rate through the router is measured
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            complete(inst.url, "alpha")

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:

        def measured() -> bool:
            return any((f.generation_tokens_per_s or 0) > 0 for f in seen.get("alpha", []))

        qtbot.waitUntil(measured, timeout=30_000)
    finally:
        stop.set()
        worker.join(30)
    figures = [f for f in seen["alpha"] if f.total_slots is not None]
    assert figures, "the model's /slots through the router gave no slots"
    latest = figures[-1]
    assert latest.total_slots >= 1 and latest.busy_slots is not None
    assert latest.rss_mb is not None and latest.rss_mb > 0  # its own child process, found by --alias
    child = manager.router_figures.poller("alpha")._subject.pid
    assert child in [p.pid for p in psutil.Process(inst.pid).children()]
    assert "beta" not in seen  # never loaded: never polled

    def router_row_measured() -> bool:  # the router's row: its models' rates and slots, summed
        rows = seen.get(ROUTER_NAME, [])
        return any(f.generation_tokens_per_s is not None and (f.total_slots or 0) >= 1 for f in rows)

    qtbot.waitUntil(router_row_measured, timeout=10_000)
    names = [row["model"] for row in manager.instance_samples()]
    assert ROUTER_NAME in names and "alpha" in names

    # idle again, after requests (its slots are known now): /metrics is what tells a request began
    # (its /slots is asked only then), so it is asked at every poll, not every 10 s as for an idle
    # server of its own
    asked = poller.metrics_requests
    qtbot.wait(2_000)
    assert poller.metrics_requests - asked >= 3

    manager.router_models.unload("alpha")
    wait_model(qtbot, manager, "alpha", "unloaded")
    qtbot.waitUntil(lambda: manager.router_figures.polled() == [], timeout=10_000)
    assert seen["alpha"][-1].total_slots is None  # its figures are gone with it
    inst.stop()
    wait_state(qtbot, inst, InstanceState.STOPPED, timeout=30_000)


def test_the_event_stream_shows_a_load_and_an_unload_without_waiting_for_a_poll(qtbot, manager):
    from llamadash.services.router import RouterWatcher

    inst = manager.start_router(RouterSettings(port=free_port()))
    wait_state(qtbot, inst, InstanceState.RUNNING)
    watcher = RouterWatcher(interval_s=600)  # one poll at the start, then none for ten minutes
    seen: list[str] = []
    watcher.modelsChanged.connect(
        lambda models: seen.extend(m.describe() for m in models if m.name == "alpha")
    )
    watcher.watch(inst.url)
    try:
        qtbot.waitUntil(lambda: watcher.model("alpha") is not None and watcher.live, timeout=10_000)
        assert watcher.model("alpha").state == "unloaded"
        watcher.load("alpha")
        qtbot.waitUntil(lambda: watcher.model("alpha").state == "loaded", timeout=30_000)
        assert watcher.sse_events > 0  # told by the stream: the one poll after the Load saw it start
        watcher.unload("alpha")
        qtbot.waitUntil(lambda: watcher.model("alpha").state == "unloaded", timeout=30_000)
    finally:
        watcher.halt()
    assert not watcher.live
    inst.stop()
    wait_state(qtbot, inst, InstanceState.STOPPED, timeout=30_000)


def test_a_running_serve_follows_library_edits_made_by_another_process(data_dir: Path):
    database.release_connection()
    port = free_port()
    proc = serve(data_dir, "--port", str(port))
    wait_ready(proc)
    base = f"http://127.0.0.1:{port}"
    assert set(models_of(base)) == {"alpha", "beta"}
    done = subprocess.run(  # another process: the CLI
        [
            sys.executable,
            "-m",
            "llamadash",
            "--data-dir",
            str(data_dir),
            "models",
            "set",
            "beta",
            "served=off",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    lines = wait_line(proc, "the library changed")
    assert "beta is no longer served" in lines[-1]
    deadline = time.monotonic() + 10
    while "beta" in models_of(base) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert set(models_of(base)) == {"alpha"}, "the running router still lists beta"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    assert proc.stderr is not None
    proc.stderr.close()


def test_a_restart_after_the_router_settings_changed_takes_the_new_ones(qtbot, manager):
    port = free_port()
    inst = manager.start_router(RouterSettings(port=port, max_models=4))
    wait_state(qtbot, inst, InstanceState.RUNNING)
    first = inst.pid
    manager.set_router_settings(RouterSettings(port=port, max_models=1, idle_s=60))
    assert manager.router_settings.max_models == 4  # the running router keeps its own until then
    manager.restart(ROUTER_NAME)
    qtbot.waitUntil(lambda: inst.pid not in (None, first), timeout=30_000)
    wait_state(qtbot, inst, InstanceState.RUNNING, timeout=30_000)
    argv = psutil.Process(inst.pid).cmdline()
    assert argv[argv.index("--models-max") + 1] == "1"
    assert argv[argv.index("--sleep-idle-seconds") + 1] == "60"
    assert manager.router_settings == RouterSettings(port=port, max_models=1, idle_s=60)
    inst.stop()
    wait_state(qtbot, inst, InstanceState.STOPPED, timeout=30_000)


def test_open_event_streams_do_not_starve_the_router(qtbot, manager):
    # Every /models/sse stream (a dashboard, a client) holds one of the router's HTTP threads; with
    # llama-server's default pool (5 on a 2-core machine) 5 streams left GET /models unanswered.
    import socket

    inst = manager.start_router(RouterSettings(port=free_port()))
    wait_state(qtbot, inst, InstanceState.RUNNING)
    port = int(inst.url.rsplit(":", 1)[1])
    streams = []
    try:
        for _ in range(12):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET /models/sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
            streams.append(sock)
        time.sleep(0.5)  # the router has taken them all
        started = time.monotonic()
        assert set(models_of(inst.url)) == {"alpha", "beta"}
        assert time.monotonic() - started < 5
    finally:
        for sock in streams:
            sock.close()
    inst.stop()
    wait_state(qtbot, inst, InstanceState.STOPPED, timeout=30_000)
