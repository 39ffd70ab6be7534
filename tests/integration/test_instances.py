"""Running the real llama-server with the tiny model: states, several instances, crashes, refusals,
quitting (also by signal), orphans after a killed dashboard, live figures, the headless CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from support import free_port, health_status

from llamadash.core import database, pidfile
from llamadash.core.launch import LaunchError
from llamadash.core.llama_server import METADATA_KEY
from llamadash.core.throughput import ThroughputMeter
from llamadash.services.instance import (
    InstanceError,
    InstanceFigures,
    InstanceState,
    MissingBinaryError,
    PortInUseError,
    ServerInstance,
)
from llamadash.services.manager import InstanceManager

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


# -- helpers ----------------------------------------------------------------------------------------


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def llama_children() -> list[int]:
    """llama-server processes that are (grand)children of this test process."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.name() == "llama-server" and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except psutil.NoSuchProcess:
            pass
    return found


def wait_gone(pids: list[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def post_json(
    url: str, body: dict[str, Any], api_key: str | None = None, timeout: float = 30
) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@pytest.fixture
def data_dir(_isolated_data_dir: Path, llama_server: Path) -> Iterator[Path]:
    """An open database in the test's data directory that names the real llama-server."""
    database.init_database(data_dir=_isolated_data_dir)
    database.set_metadata(METADATA_KEY, str(llama_server))
    yield _isolated_data_dir
    database.close_database()


@pytest.fixture
def add_model(data_dir: Path, tiny_model: Path):
    def add(name: str, **settings: Any) -> dict[str, Any]:
        row = {
            "name": name,
            "type": "llama",
            "status": "stopped",
            "model_path": str(tiny_model),
            "ctx_size": 256,
            "threads": 1,
            "n_parallel": 1,
            "port": free_port(),
            **settings,
        }
        model = database.get_model(database.save_model(row))
        assert model is not None
        return model

    return add


@pytest.fixture
def managers(qtbot, data_dir: Path) -> Iterator[list[InstanceManager]]:
    made: list[InstanceManager] = []
    yield made
    for manager in made:
        assert manager.stop_all(10)
        manager.close()
    assert llama_children() == []


@pytest.fixture
def manager(managers: list[InstanceManager], data_dir: Path) -> InstanceManager:
    made = InstanceManager(
        data_dir=data_dir, poll_interval_s=0.25, stop_timeout_s=5, restart_backoff_s=0.2, quit_with_app=False
    )
    managers.append(made)
    return made


def wait_state(qtbot, inst: ServerInstance, state: InstanceState, timeout: int = 30_000) -> None:
    qtbot.waitUntil(lambda: inst.state is state, timeout=timeout)


# -- start, stop, states ------------------------------------------------------------------------------


def test_start_loading_running_completion_stop(qtbot, manager: InstanceManager, add_model):
    model = add_model("tiny")
    seen: list[tuple[str, str, str]] = []  # (state signalled, status in the database at that moment, reason)

    def on_state(name: str, state: str, reason: str) -> None:
        seen.append((state, database.get_model(model["id"])["status"], reason))

    events: list[str] = []
    manager.stateChanged.connect(on_state)
    manager.eventOccurred.connect(lambda name, event, ms: events.append(event))
    inst = manager.start("tiny")
    assert inst.state is InstanceState.LOADING and inst.pid in llama_children()
    wait_state(qtbot, inst, InstanceState.RUNNING)
    assert inst.port is not None and health_status(inst.port) == 200
    answer = post_json(f"{inst.url}/completion", {"prompt": "Hello", "n_predict": 8, "ignore_eos": True})
    assert answer["tokens_predicted"] == 8

    pid = inst.pid
    inst.stop()
    wait_state(qtbot, inst, InstanceState.STOPPED, timeout=10_000)
    assert [(state, status) for state, status, _ in seen] == [
        ("loading", "loading"),
        ("running", "running"),
        ("stopped", "stopped"),
    ]
    assert events == ["started", "ready", "stopped"]
    assert not alive(pid) and llama_children() == []
    assert database.get_metadata(pidfile.METADATA_KEY) is None
    log = manager.log_path("tiny").read_text()
    assert "model loaded" in log and "listening on" in log
    assert any("model loaded" in line for line in inst.log_lines())
    assert inst.started_at_ms and inst.ready_at_ms and inst.ready_at_ms >= inst.started_at_ms


def test_four_instances_at_once_and_a_taken_port(qtbot, manager: InstanceManager, add_model):
    models = [add_model(f"m{i}") for i in range(4)]
    insts = [manager.start(m["name"]) for m in models]
    for inst in insts:
        wait_state(qtbot, inst, InstanceState.RUNNING)
    assert len({inst.port for inst in insts}) == 4 and len({inst.pid for inst in insts}) == 4
    assert all(inst.port is not None and health_status(inst.port) == 200 for inst in insts)
    assert manager.active_models() == 4
    before = sorted(llama_children())

    add_model("clash", port=insts[0].port)
    with pytest.raises(PortInUseError) as refused:
        manager.start("clash")
    assert f"port {insts[0].port} is already in use by m0" in str(refused.value)
    suggested = refused.value.suggested_port
    assert suggested is not None and suggested not in {inst.port for inst in insts}

    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        add_model("blocked", port=blocker.getsockname()[1])
        with pytest.raises(PortInUseError, match="already in use"):
            manager.start("blocked")
    assert sorted(llama_children()) == before  # nothing was launched
    assert database.get_model_by_name("clash")["status"] == "stopped"

    clash = manager.start("clash", port=suggested)  # the offered port works
    wait_state(qtbot, clash, InstanceState.RUNNING)
    assert clash.port == suggested


# -- crashes ------------------------------------------------------------------------------------------


def test_kill_9_is_an_error_with_signal_and_log_tail_and_auto_restart_has_a_cap(
    qtbot, manager: InstanceManager, add_model
):
    add_model("crashy")
    inst = manager.start("crashy")
    wait_state(qtbot, inst, InstanceState.RUNNING)
    assert inst.pid is not None
    os.kill(inst.pid, signal.SIGKILL)
    wait_state(qtbot, inst, InstanceState.ERROR, timeout=10_000)
    assert inst.reason.startswith("llama-server killed by signal 9 (SIGKILL)")
    assert "last log lines:" in inst.reason and "listening on http://" in inst.reason
    assert database.get_model_by_name("crashy")["status"] == "error"
    qtbot.wait(500)
    assert inst.state is InstanceState.ERROR and llama_children() == []  # no auto-restart by default

    manager.set_autorestart("crashy", True)
    assert manager.autorestart("crashy")
    manager.start("crashy")
    wait_state(qtbot, inst, InstanceState.RUNNING)
    pids = []
    for round_ in range(3):
        assert inst.pid is not None
        pids.append(inst.pid)
        os.kill(inst.pid, signal.SIGKILL)
        if round_ < 2:  # crashes 1 and 2 come back on their own
            qtbot.waitUntil(
                lambda: inst.state is InstanceState.RUNNING and inst.pid not in pids, timeout=30_000
            )
    wait_state(qtbot, inst, InstanceState.ERROR, timeout=10_000)
    assert "crash loop: 3 crashes within 60 s" in inst.reason
    qtbot.wait(1000)
    assert inst.state is InstanceState.ERROR and not inst.restart_pending and llama_children() == []


# -- refusals -----------------------------------------------------------------------------------------


def test_refusals_launch_nothing(qtbot, manager: InstanceManager, add_model, tmp_path: Path):
    add_model("ok")
    add_model("no-file", model_path=str(tmp_path / "missing.gguf"))
    add_model("bad-param", n_parallel=0)

    with pytest.raises(InstanceError, match=r"the model file .*missing\.gguf does not exist") as refused:
        manager.start("no-file")
    assert not isinstance(refused.value, MissingBinaryError)
    with pytest.raises(InstanceError, match="invalid configuration: n_parallel: 0 is rejected"):
        manager.start("bad-param")
    database.set_metadata(METADATA_KEY, str(tmp_path / "bin" / "llama-server"))
    with pytest.raises(
        MissingBinaryError, match=r"^cannot start ok: the configured llama-server .*does not exist"
    ):
        manager.start("ok")  # a MissingBinaryError is an InstanceError: every caller catches it
    with pytest.raises(InstanceError, match="no model named"):
        manager.start("unknown")
    assert llama_children() == []
    assert {m["status"] for m in database.get_models()} == {"stopped"}


def test_no_llama_server_refuses_run_and_says_how_to_set_one(qtbot, tmp_path: Path, monkeypatch):
    """The CLI tells a missing binary by its type (MissingBinaryError), not by walking the exception chain."""
    from support import cli, hide_llama_server, write_tiny_gguf

    hide_llama_server(monkeypatch, tmp_path)
    data_dir = tmp_path / "cli-data"
    model = write_tiny_gguf(tmp_path / "tiny.gguf")
    assert cli("models", "add", "a", "--model-path", str(model), data_dir=data_dir)[0] == 0
    code, _, err = cli("run", "a", data_dir=data_dir)
    first, hint = err.splitlines()
    assert code == 1 and first.startswith("llamadash: error: cannot start a: no llama-server found")
    assert hint == "llamadash: set one with 'llamadash llama-server --path BIN', or set LLAMA_SERVER_BIN"
    assert llama_children() == []


# -- quitting -----------------------------------------------------------------------------------------


def test_stop_all_leaves_nothing(qtbot, manager: InstanceManager, add_model):
    insts = [manager.start(add_model(f"q{i}")["name"]) for i in range(3)]
    for inst in insts:
        wait_state(qtbot, inst, InstanceState.RUNNING)
    pids = [inst.pid for inst in insts]
    started = time.monotonic()
    assert manager.stop_all(timeout_s=10)
    assert time.monotonic() - started < 10
    assert not any(alive(pid) for pid in pids) and llama_children() == []
    assert {m["status"] for m in database.get_models()} == {"stopped"}
    assert database.get_metadata(pidfile.METADATA_KEY) is None


DASHBOARD = """
import json, sys
from pathlib import Path
from PySide6.QtCore import QCoreApplication
from llamadash.core import database
from llamadash.services.manager import InstanceManager, quit_on_signals

app = QCoreApplication([])
data_dir = Path(sys.argv[1])
database.init_database(data_dir=data_dir)
manager = InstanceManager(data_dir=data_dir, poll_interval_s=0.5)
names = sys.argv[2:]
reported = []

def on_state(name, state, reason):
    insts = [manager.instance(n) for n in names]
    if not reported and all(i is not None and i.state.value == "running" for i in insts):
        reported.append(True)
        print(json.dumps({i.name: i.pid for i in insts}), flush=True)

manager.stateChanged.connect(on_state)
quit_on_signals(app)
for name in names:
    manager.start(name)
app.exec()
print("quit", flush=True)
"""


def start_dashboard(
    data_dir: Path, names: list[str], tmp_path: Path
) -> tuple[subprocess.Popen, dict[str, int]]:
    script = tmp_path / "dashboard.py"
    script.write_text(textwrap.dedent(DASHBOARD))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(data_dir), *names],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"the dashboard process exited with {proc.wait()}"
    return proc, json.loads(line)


def test_sigterm_to_the_dashboard_stops_every_instance(data_dir: Path, add_model, tmp_path: Path):
    names = [add_model(f"t{i}")["name"] for i in range(3)]
    database.release_connection()
    proc, pids = start_dashboard(data_dir, names, tmp_path)
    assert all(alive(pid) for pid in pids.values())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert proc.stdout is not None and proc.stdout.read().strip() == "quit"
    proc.stdout.close()
    assert wait_gone(list(pids.values()), timeout=2)
    assert {m["status"] for m in database.get_models()} == {"stopped"}


def test_sigkill_of_the_dashboard_leaves_orphans_the_next_start_finds_adopts_and_stops(
    qtbot, managers: list[InstanceManager], data_dir: Path, add_model, tmp_path: Path
):
    from llamadash.cli import run as cli_run

    names = [add_model(f"o{i}")["name"] for i in range(3)]
    database.release_connection()
    proc, pids = start_dashboard(data_dir, names, tmp_path)
    proc.kill()
    proc.wait(10)
    assert proc.stdout is not None
    proc.stdout.close()
    assert all(alive(pid) for pid in pids.values())  # left behind

    import io

    out, err = io.StringIO(), io.StringIO()
    assert cli_run(["--data-dir", str(data_dir), "status"], out, err) == 0
    text = out.getvalue()
    assert "left behind by a dashboard that was killed" in text
    for name, pid in pids.items():
        assert f"pid {pid}" in text and f"model {name}" in text
    database.init_database(data_dir=data_dir)  # the CLI closed it

    manager = InstanceManager(data_dir=data_dir, poll_interval_s=0.25, stop_timeout_s=5, quit_with_app=False)
    managers.append(manager)
    orphans = manager.orphans()
    assert {o["model"]: o["pid"] for o in orphans} == pids
    assert all(o["port"] == database.get_model_by_name(o["model"])["port"] for o in orphans)

    adopted = manager.adopt_orphan(pids["o0"])
    figures: list[InstanceFigures] = []
    adopted.figuresChanged.connect(figures.append)
    wait_state(qtbot, adopted, InstanceState.RUNNING)
    qtbot.waitUntil(lambda: any(f.rss_mb and f.total_slots == 1 for f in figures), timeout=10_000)
    assert adopted.adopted and adopted.pid == pids["o0"]

    stopped = manager.stop_orphans()
    assert sorted(stopped) == sorted([pids["o1"], pids["o2"]])
    assert manager.orphans() == []
    adopted.stop()
    wait_state(qtbot, adopted, InstanceState.STOPPED, timeout=10_000)
    assert wait_gone(list(pids.values()), timeout=2)
    assert {m["status"] for m in database.get_models()} == {"stopped"}
    assert pidfile.load_records() == []

    # and the CLI way: a killed dashboard's leftovers, stopped by `status --stop-orphans`
    database.release_connection()
    proc, pids = start_dashboard(data_dir, ["o1"], tmp_path)
    proc.kill()
    proc.wait(10)
    assert proc.stdout is not None
    proc.stdout.close()
    out = io.StringIO()
    assert (
        cli_run(["--data-dir", str(data_dir), "status", "--stop-orphans", "--json"], out, io.StringIO()) == 0
    )
    report = json.loads(out.getvalue())
    assert report["stopped_orphans"] == [pids["o1"]] and report["orphans"] == []
    assert wait_gone([pids["o1"]], timeout=2)
    database.init_database(data_dir=data_dir)
    assert database.get_model_by_name("o1")["status"] == "stopped"


# -- live figures -------------------------------------------------------------------------------------


def test_requests_per_minute_and_tokens_per_second(qtbot, manager: InstanceManager, add_model):
    key = "secret-key-1"
    add_model("busy", api_key=[key])
    inst = manager.start("busy")
    wait_state(qtbot, inst, InstanceState.RUNNING)
    figures: list[InstanceFigures] = []
    inst.figuresChanged.connect(figures.append)
    finished: list[None] = []
    inst.requestFinished.connect(lambda: finished.append(None))
    errors: list[BaseException] = []

    def send() -> None:
        try:
            for i in range(30):
                body = {"prompt": f"Request {i}", "n_predict": 24, "ignore_eos": True}
                answer = post_json(f"{inst.url}/completion", body, key)
                assert answer["tokens_predicted"] == 24
                time.sleep(0.04)
        except BaseException as exc:
            errors.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    qtbot.waitUntil(lambda: not sender.is_alive(), timeout=60_000)
    sender.join()
    assert not errors
    qtbot.waitUntil(lambda: len(finished) == 30, timeout=10_000)
    assert inst.requests_per_minute() == 30.0
    assert manager.requests_per_minute() == 30.0
    qtbot.waitUntil(lambda: figures and figures[-1].requests_per_minute == 30.0, timeout=5_000)
    busy = [f for f in figures if f.generation_tokens_per_s]
    assert busy, "no poll saw tokens being generated"
    assert all((f.generation_tokens_per_s or 0) > 0 and (f.prompt_tokens_per_s or 0) > 0 for f in busy)
    assert figures[-1].total_slots == 1  # /slots answered: the key was sent
    n_before = len(figures)
    # idle: 0.0 (never None) once the live rate's 2-s window has passed the last request
    window_s = ThroughputMeter().window_s
    qtbot.waitUntil(lambda: len(figures) >= n_before + 3, timeout=10_000)
    qtbot.wait(round(window_s * 1000) + 500)
    idle = figures[-1]
    assert idle.generation_tokens_per_s == 0.0 and idle.prompt_tokens_per_s == 0.0
    assert idle.requests_processing == 0.0 and idle.busy_slots == 0.0
    assert idle.cpu_percent is not None and idle.rss_mb is not None and idle.rss_mb > 1


def _busy_until(inst, figures: list[InstanceFigures], qtbot) -> float:
    """Send completions back to back until the figures show one processing; seconds that took."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def send() -> None:  # back to back, so that the polls find the slot busy
        try:
            while not stop.is_set():
                post_json(f"{inst.url}/completion", {"prompt": "Go", "n_predict": 200, "ignore_eos": True})
        except BaseException as exc:
            errors.append(exc)

    sender = threading.Thread(target=send)
    started = time.monotonic()
    sender.start()
    try:
        qtbot.waitUntil(lambda: any(f.requests_processing == 1.0 for f in figures), timeout=10_000)
        seen_after = time.monotonic() - started
        qtbot.waitUntil(lambda: any((f.generation_tokens_per_s or 0) > 0 for f in figures), timeout=10_000)
    finally:
        stop.set()
        sender.join(60)
    assert not errors
    return seen_after


def test_an_idle_instance_rests_and_wakes_at_the_first_line_of_a_request(
    qtbot, manager: InstanceManager, add_model
):
    """Idle (its log read here): /slots and /metrics every 10 s at most, the figures read 0; a
    request's first log line brings /slots at once, then /metrics and /slots at each poll."""
    add_model("quiet")
    inst = manager.start("quiet")
    wait_state(qtbot, inst, InstanceState.RUNNING)
    poller = inst._poller
    assert poller.log_tells_activity
    qtbot.waitUntil(lambda: inst.figures.total_slots is not None, timeout=10_000)
    qtbot.wait(1_000)  # the rates settle at 0: the polls rest from here
    slots, metrics = poller.slots_requests, poller.metrics_requests
    figures: list[InstanceFigures] = []
    inst.figuresChanged.connect(figures.append)
    qtbot.wait(2_500)  # 10 polls at 0.25 s
    assert len(figures) >= 5  # the figures go on at each poll (CPU, memory)
    assert poller.slots_requests - slots <= 1  # every IDLE_SLOTS_INTERVAL_S only
    assert poller.metrics_requests - metrics <= 1  # every IDLE_METRICS_INTERVAL_S only
    idle = figures[-1]
    assert idle.requests_processing == 0.0 and idle.requests_deferred == 0.0 and idle.busy_slots == 0.0
    assert idle.generation_tokens_per_s == 0.0 and idle.prompt_tokens_per_s == 0.0  # never "unknown"

    metrics = poller.metrics_requests
    seen_after = _busy_until(inst, figures, qtbot)
    assert poller.metrics_requests - metrics >= 1  # busy: /metrics is asked again
    assert seen_after < 5  # generous under load; about one poll on a quiet machine
    assert poller.log_tells_activity  # each request showed in the log: still resting when idle


def test_an_instance_whose_log_hides_requests_is_asked_slots_at_each_poll(
    qtbot, manager: InstanceManager, add_model
):
    """With --log-disable the log tells nothing: /slots at each poll, as for a server not started here."""
    add_model("silent", log_disable=True)
    inst = manager.start("silent")
    wait_state(qtbot, inst, InstanceState.RUNNING)
    poller = inst._poller
    assert not poller.log_tells_activity
    qtbot.waitUntil(lambda: inst.figures.total_slots is not None, timeout=10_000)
    slots = poller.slots_requests
    qtbot.wait(2_500)  # 10 polls at 0.25 s
    assert poller.slots_requests - slots >= 5
    figures: list[InstanceFigures] = []
    inst.figuresChanged.connect(figures.append)
    assert _busy_until(inst, figures, qtbot) < 5


def test_attach_an_external_server_by_url(
    qtbot, manager: InstanceManager, llama_server: Path, tiny_model: Path, tmp_path: Path
):
    port = free_port()
    key = "ext-key"
    log = open(tmp_path / "external.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [str(llama_server), "-m", str(tiny_model), "--port", str(port), "-c", "256", "-t", "1", "--metrics"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "LLAMA_API_KEY": key},
    )
    try:
        inst = manager.attach(f"http://127.0.0.1:{port}", api_key=key)
        assert inst.external and inst.name == f"127.0.0.1:{port}" and manager.instance(inst.name) is inst
        figures: list[InstanceFigures] = []
        inst.figuresChanged.connect(figures.append)
        wait_state(qtbot, inst, InstanceState.RUNNING)
        # requests are told by /slots from its first snapshot on (what ran before is not known)
        qtbot.waitUntil(lambda: inst.figures.total_slots is not None, timeout=10_000)
        post_json(f"{inst.url}/completion", {"prompt": "Hi", "n_predict": 4}, key)
        qtbot.waitUntil(
            lambda: len([f for f in figures if f.generation_tokens_per_s is not None]) >= 2, timeout=10_000
        )
        # its log is not here: the request is told by /slots
        qtbot.waitUntil(lambda: figures[-1].requests_per_minute == 1.0, timeout=10_000)
        last = figures[-1]
        assert last.total_slots is not None and last.requests_processing == 0.0
        assert last.cpu_percent is None  # no process here: n/a
        assert inst.pid is None
        manager.detach(inst.name)
        assert manager.instance(inst.name) is None
        assert server.poll() is None  # monitor only: it keeps running
    finally:
        server.terminate()
        server.wait(10)
        log.close()


# -- the headless CLI ---------------------------------------------------------------------------------


def run_cli(data_dir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "llamadash", "--data-dir", str(data_dir), "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_cli_run_wait_ready_then_sigterm(data_dir: Path, add_model):
    add_model("headless")
    database.release_connection()
    proc = run_cli(data_dir, "headless", "--wait-ready", "--ready-timeout", "60")
    assert proc.stdout is not None and proc.stderr is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:")
    port = int(url.rsplit(":", 1)[1])
    assert health_status(port) == 200
    assert database.get_model_by_name("headless")["status"] == "running"
    children = [p.pid for p in psutil.Process(proc.pid).children() if p.name() == "llama-server"]
    assert len(children) == 1
    # while it runs, it can be neither renamed nor removed (its process is known by its name)
    for change in (["set", "headless", "name=renamed"], ["remove", "headless"]):
        refused = subprocess.run(
            [sys.executable, "-m", "llamadash", "--data-dir", str(data_dir), "models", *change],
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert refused.returncode == 1 and "headless is running" in refused.stderr, refused.stderr
    assert database.get_model_by_name("headless") is not None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert "model loaded" in proc.stderr.read()  # with --wait-ready the log goes to stderr
    proc.stdout.close()
    proc.stderr.close()
    assert wait_gone(children, timeout=2)
    assert database.get_model_by_name("headless")["status"] == "stopped"


def test_cli_run_exits_non_zero_when_never_ready(data_dir: Path, add_model, tmp_path: Path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    add_model("broken", model_path=str(broken))
    database.release_connection()
    proc = run_cli(data_dir, "broken", "--wait-ready", "--ready-timeout", "30")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert out == ""
    assert "llamadash: error: llama-server exited with code" in err
    assert database.get_model_by_name("broken")["status"] == "error"
    assert not [p for p in psutil.process_iter(["name", "ppid"]) if p.info["ppid"] == proc.pid]


def test_sampler_follows_the_manager_active_models_and_requests(
    qtbot, manager: InstanceManager, add_model, tmp_path: Path
):
    # The metrics sampler (issue 5) reads its dashboard figures from the real instance manager.
    from llamadash.core.metrics import MetricsCollector
    from llamadash.services.sampler import MetricsSampler

    add_model("sampled")
    samples: list[Any] = []
    sampler = MetricsSampler(MetricsCollector(disk_path=tmp_path), interval_s=0.25, stats=manager)
    sampler.sampled.connect(samples.append)
    sampler.start()
    try:
        qtbot.waitUntil(lambda: len(samples) >= 2, timeout=5_000)
        assert samples[-1].active_models == 0 and samples[-1].requests_per_minute == 0.0
        assert samples[-1].gpu_usage is None or samples[-1].gpus  # no GPU here: NULL, never 0
        inst = manager.start("sampled")
        wait_state(qtbot, inst, InstanceState.RUNNING)
        for i in range(5):
            post_json(f"{inst.url}/completion", {"prompt": f"hi {i}", "n_predict": 4, "ignore_eos": True})
        qtbot.waitUntil(
            lambda: samples[-1].active_models == 1 and samples[-1].requests_per_minute == 5.0, timeout=10_000
        )
        stored = database.get_metrics_history(1)
        assert stored[-1]["active_models"] == 1 and stored[-1]["requests_per_minute"] == 5.0
        assert stored[-1]["uptime"] is not None and stored[-1]["uptime"] >= stored[0]["uptime"]
        # one instance_samples row per tick for the running instance, at the metrics row's timestamp
        qtbot.waitUntil(lambda: len(database.get_instance_history(1, model="sampled")) >= 2, timeout=5_000)
        rows = database.get_instance_history(1, model="sampled")
        metric_times = {row["timestamp"] for row in database.get_metrics_history(1)}
        assert {row["timestamp"] for row in rows} <= metric_times
        assert rows[-1]["total_slots"] == 1 and rows[-1]["memory_mb"] and rows[-1]["memory_mb"] > 1
        # /slots answers: a rate is stored (0.0 idle), not NULL; on a loaded machine the reading of the
        # tick right after the last request may still lack a second snapshot, so the next ticks count
        qtbot.waitUntil(
            lambda: database.get_instance_history(1, model="sampled")[-1]["tokens_per_second"] is not None,
            timeout=5_000,
        )
        manager.stop("sampled")
        wait_state(qtbot, inst, InstanceState.STOPPED)
        qtbot.waitUntil(lambda: samples[-1].active_models == 0, timeout=5_000)
    finally:
        sampler.stop()


# -- slow crash loops, error reasons, warnings at start --------------------------------------------


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llamadash", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_a_slow_crash_loop_gives_up_after_failed_restarts_and_status_says_why(
    qtbot, managers: list[InstanceManager], data_dir: Path, add_model, tmp_path: Path, tiny_model: Path
):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)  # a real llama-server refuses it and exits
    model = add_model("crashloop", model_path=str(broken))
    # The rate cap never fires (each crash is alone in its 1 ms window), as with a crash every 31 s
    # under the default 3-in-60-s cap: only the count of failed restarts can stop it.
    manager = InstanceManager(
        data_dir=data_dir,
        poll_interval_s=0.25,
        stop_timeout_s=5,
        restart_backoff_s=0.05,
        crash_loop_max=1000,
        crash_loop_window_s=0.001,
        failed_restart_max=3,
        stable_run_s=60,
        quit_with_app=False,
    )
    managers.append(manager)
    manager.set_autorestart("crashloop", True)
    starts: list[str] = []
    manager.eventOccurred.connect(
        lambda name, event, _ms: starts.append(name) if event == "started" else None
    )
    inst = manager.start("crashloop")
    qtbot.waitUntil(
        lambda: inst.state is InstanceState.ERROR and not inst.restart_pending and not inst.active,
        timeout=60_000,
    )
    qtbot.wait(1000)
    assert len(starts) == 4  # the user's start and 3 automatic restarts, then no more
    assert inst.state is InstanceState.ERROR and not inst.restart_pending and llama_children() == []
    assert inst.reason.startswith("llama-server exited with code")
    assert "automatic restart gave up: 3 restarts in a row failed, none stayed up 60 s" in inst.reason
    assert database.get_model_by_name("crashloop")["status"] == "error"

    database.release_connection()
    status = cli(data_dir, "status")
    assert status.returncode == 0, status.stderr
    row = next(line for line in status.stdout.splitlines() if line.startswith("crashloop"))
    assert "error" in row and "llama-server exited with code" in row
    shown = cli(data_dir, "models", "show", "crashloop")
    assert "error: llama-server exited with code" in shown.stdout
    assert "3 restarts in a row failed" in shown.stdout
    as_json = json.loads(cli(data_dir, "status", "--json").stdout)
    reason = next(m["reason"] for m in as_json["models"] if m["name"] == "crashloop")
    assert reason == inst.reason

    # a successful start forgets the reason
    database.update_model(model["id"], {"model_path": str(tiny_model)})
    manager.start("crashloop")
    wait_state(qtbot, inst, InstanceState.RUNNING)
    assert pidfile.load_error_reason(model["id"]) is None
    manager.stop("crashloop")
    wait_state(qtbot, inst, InstanceState.STOPPED)
    database.release_connection()
    shown = cli(data_dir, "models", "show", "crashloop")
    assert "error:" not in shown.stdout and "(llama, stopped)" in shown.stdout


def test_cli_run_warns_at_start_when_the_server_is_reachable_without_an_api_key(data_dir: Path, add_model):
    add_model("exposed", host="0.0.0.0")
    add_model("keyed", host="0.0.0.0", api_key="sekret")
    database.release_connection()
    for name, warned in (("exposed", True), ("keyed", False)):
        proc = run_cli(data_dir, name, "--wait-ready", "--ready-timeout", "60")
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().strip().startswith("http://127.0.0.1:")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        warning = "llamadash: warning: llama-server listens on 0.0.0.0 without an API key"
        assert (warning in err) is warned, err


def test_a_known_crash_cause_leads_the_reason_with_what_to_do(
    qtbot, manager: InstanceManager, add_model, tmp_path: Path, tiny_model: Path
):
    bad = tmp_path / "swapped.gguf"
    bad.write_bytes(b"NOPE" + bytes(256))  # the file was replaced after it was added: not GGUF now
    add_model("swapped", model_path=str(bad))
    inst = manager.start("swapped")
    wait_state(qtbot, inst, InstanceState.ERROR)
    diagnosis = inst.diagnosis
    assert diagnosis is not None and diagnosis.cause == "not_gguf", inst.reason
    lines = inst.reason.splitlines()
    assert lines[0] == diagnosis.message  # what it means and what to do, first
    assert lines[1].startswith("llama-server exited with code")  # then the exit, as before
    assert str(bad) in diagnosis.message or bad.name in diagnosis.message
    # the next run that works clears it
    shutil.copyfile(tiny_model, bad)
    inst = manager.start("swapped")
    wait_state(qtbot, inst, InstanceState.RUNNING)
    assert inst.diagnosis is None and inst.reason == ""


def test_a_model_to_download_is_refused_before_start_on_a_build_without_https(
    qtbot, manager: InstanceManager, add_model
):
    # this machine's llama-server is built with LLAMA_CURL=OFF and LLAMA_OPENSSL=OFF
    add_model("remote", model_path=None, hf_repo="ggml-org/gemma-3-1b-it-GGUF")
    with pytest.raises(LaunchError, match="HTTPS") as refused:
        manager.start("remote")
    assert "cannot start remote" in str(refused.value)
    assert llama_children() == []  # nothing was launched
