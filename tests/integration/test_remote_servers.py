"""Remote llama-servers: a real llama-server on another loopback port, added as a library entry with a
URL, attached (never started) with and without its key, taken down and brought back."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QElapsedTimer, QTimer
from support import cli as cli_once
from support import free_port, health_status, stop_process

from llamadash.core import database
from llamadash.core.llama_server import METADATA_KEY
from llamadash.services.instance import InstanceState, ServerInstance
from llamadash.services.manager import InstanceManager

pytestmark = pytest.mark.integration

KEY = "remote-k3y"


def start_server(
    llama_server: Path, model: Path, port: int, log: Path, *, key: str | None
) -> subprocess.Popen:
    argv = [str(llama_server), "-m", str(model), "--port", str(port), "-c", "256", "-t", "1", "-np", "1"]
    argv += ["--metrics"]
    env = {k: v for k, v in os.environ.items() if k != "LLAMA_API_KEY"}
    if key:
        env["LLAMA_API_KEY"] = key
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while health_status(port) != 200:
        assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
        assert time.monotonic() < deadline, "llama-server did not become healthy"
        time.sleep(0.05)
    return proc


def complete(url: str, key: str | None, n_predict: int = 8) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = json.dumps({"prompt": "Hello", "n_predict": n_predict}).encode()
    request = urllib.request.Request(f"{url}/completion", data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def cli(*args: str, data_dir: Path) -> tuple[int, str, str]:
    """The CLI in this process; the database it closes when done is opened again for the test."""
    result = cli_once(*args, data_dir=data_dir)
    database.init_database(data_dir=data_dir)
    return result


@pytest.fixture
def data_dir(_isolated_data_dir: Path, llama_server: Path) -> Iterator[Path]:
    database.init_database(data_dir=_isolated_data_dir)
    database.set_metadata(METADATA_KEY, str(llama_server))
    yield _isolated_data_dir
    database.close_database()


@pytest.fixture
def manager(qtbot, data_dir: Path) -> Iterator[InstanceManager]:
    made = InstanceManager(data_dir=data_dir, poll_interval_s=0.25, quit_with_app=False)
    yield made
    assert made.stop_all(10)
    made.close()


@pytest.fixture
def keyed_server(
    llama_server: Path, tiny_model: Path, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    proc = start_server(llama_server, tiny_model, port, tmp_path / "keyed.log", key=KEY)
    yield f"http://127.0.0.1:{port}", proc
    stop_process(proc)


def wait_state(qtbot, inst: ServerInstance, state: InstanceState, timeout: int = 30_000) -> None:
    qtbot.waitUntil(lambda: inst.state is state, timeout=timeout)


def test_a_remote_server_is_added_by_url_and_attached_with_its_key(
    qtbot, data_dir: Path, manager: InstanceManager, keyed_server, monkeypatch
):
    url, server = keyed_server
    monkeypatch.setenv("GPU_BOX_KEY", KEY)
    code, out, err = cli(
        "models", "add", "gpu-box", "--url", url + "/", "--api-key-env", "GPU_BOX_KEY", data_dir=data_dir
    )
    assert code == 0, err
    assert "remote server" in out and KEY not in out
    model = database.get_model_by_name("gpu-box")
    assert model is not None and model["remote_url"] == url and model["type"] == "remote"
    assert model["api_key"] == [KEY] and model["port"] is None  # nothing listens here for it

    code, out, _ = cli("models", "list", data_dir=data_dir)
    assert code == 0 and "gpu-box" in out and url in out
    code, out, _ = cli("models", "show", "gpu-box", "--json", data_dir=data_dir)
    assert json.loads(out)["remote_url"] == url and KEY not in out  # the key is masked

    records: list[Any] = []
    manager.requestRecorded.connect(lambda name, record: records.append((name, record)))
    inst = manager.start("gpu-box")  # attaching: no process is started
    assert inst.external and inst.pid is None and inst.model_id == model["id"]
    wait_state(qtbot, inst, InstanceState.RUNNING)
    qtbot.waitUntil(lambda: inst.figures.total_slots == 1.0, timeout=10_000)
    answer = complete(url, KEY, n_predict=16)
    # the request is told by /slots (the log is on the other machine)
    qtbot.waitUntil(lambda: len(records) >= 1, timeout=15_000)
    name, record = records[0]
    assert name == "gpu-box" and record.model == "gpu-box"
    # its figures: the growth of /metrics' counters, asked right after /slots told it ended
    assert record.generated_tokens == answer["timings"]["predicted_n"] == answer["tokens_predicted"]
    assert record.prompt_tokens == answer["timings"]["prompt_n"]
    assert record.generation_ms is not None and record.generation_ms > 0
    assert inst.state is InstanceState.RUNNING
    qtbot.waitUntil(lambda: inst.figures.requests_per_minute == 1.0, timeout=10_000)  # the Req/min column
    manager.requests.flush()  # stored for the Activity view, like a local server's
    qtbot.waitUntil(lambda: len(database.get_requests(model="gpu-box")) >= 1, timeout=10_000)

    assert database.get_model_by_name("gpu-box")["status"] == "running"  # the library shows it too
    manager.stop("gpu-box")  # detaching
    assert inst.state is InstanceState.STOPPED
    assert database.get_model_by_name("gpu-box")["status"] == "stopped"
    assert server.poll() is None and health_status(int(url.rsplit(":", 1)[1])) == 200  # it goes on


def test_a_missing_or_wrong_key_is_a_clear_error_and_a_corrected_key_recovers(
    qtbot, data_dir: Path, manager: InstanceManager, keyed_server, monkeypatch
):
    url, _server = keyed_server
    assert cli("models", "add", "nokey", "--url", url, data_dir=data_dir)[0] == 0
    monkeypatch.setenv("WRONG_KEY", "not-the-key")
    assert (
        cli("models", "add", "wrong", "--url", url, "--api-key-env", "WRONG_KEY", data_dir=data_dir)[0] == 0
    )

    nokey = manager.start("nokey")
    wrong = manager.start("wrong")
    wait_state(qtbot, nokey, InstanceState.ERROR, 15_000)
    wait_state(qtbot, wrong, InstanceState.ERROR, 15_000)
    assert "API key required" in nokey.reason and "HTTP 401" in nokey.reason
    code, out, _ = cli("models", "show", "nokey", data_dir=data_dir)  # the reason is kept, as a crash's is
    assert code == 0 and "error: API key required" in out
    assert "API key refused" in wrong.reason and "HTTP 401" in wrong.reason
    # it does not flap back to running while the key is refused
    qtbot.wait(1500)
    assert wrong.state is InstanceState.ERROR and "API key refused" in wrong.reason

    wrong.set_external_api_key(KEY)  # the probe of /slots sees the key taken
    wait_state(qtbot, wrong, InstanceState.RUNNING, 15_000)
    qtbot.waitUntil(lambda: wrong.figures.total_slots == 1.0, timeout=10_000)


def test_a_remote_server_taken_down_is_unreachable_with_backoff_and_running_again_when_back(
    qtbot, data_dir: Path, manager: InstanceManager, llama_server: Path, tiny_model: Path, tmp_path: Path
):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(llama_server, tiny_model, port, tmp_path / "open.log", key=None)
    try:
        assert cli("models", "add", "open-box", "--url", url, data_dir=data_dir)[0] == 0
        inst = manager.start("open-box")
        wait_state(qtbot, inst, InstanceState.RUNNING)
        states: list[tuple[str, str]] = []
        manager.stateChanged.connect(lambda name, state, reason: states.append((state, reason)))

        # the event loop keeps turning while the server is gone (nothing blocks on it)
        stalls: list[int] = []
        clock = QElapsedTimer()
        clock.start()

        def tick() -> None:
            stalls.append(clock.restart())

        timer = QTimer()
        timer.timeout.connect(tick)
        timer.start(20)

        stop_process(server)
        wait_state(qtbot, inst, InstanceState.ERROR, 15_000)
        assert f"{url} is unreachable" in inst.reason
        qtbot.waitUntil(lambda: "trying again in" in inst.reason, timeout=15_000)
        qtbot.waitUntil(lambda: inst._poller.failures >= 2, timeout=20_000)  # backing off: 2 s, 4 s...
        timer.stop()
        assert max(stalls) < 1000, f"the event loop stalled {max(stalls)} ms"
        assert inst.active  # still attached: it keeps trying

        server = start_server(llama_server, tiny_model, port, tmp_path / "open.log", key=None)
        wait_state(qtbot, inst, InstanceState.RUNNING, 90_000)
        assert inst._poller.failures == 0 and inst.reason == ""
        assert [s for s, _ in states][-1] == "running" and "error" in [s for s, _ in states]
    finally:
        stop_process(server)


def test_a_remote_entry_travels_in_an_export_without_its_key(data_dir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("K", KEY)
    assert (
        cli(
            "models",
            "add",
            "far",
            "--url",
            "https://far.example:8443/llama",
            "--api-key-env",
            "K",
            data_dir=data_dir,
        )[0]
        == 0
    )
    target = tmp_path / "models.json"
    code, _, err = cli("models", "export", str(target), "far", data_dir=data_dir)
    assert code == 0, err
    exported = json.loads(target.read_text())["models"][0]
    assert exported["remote_url"] == "https://far.example:8443/llama" and "api_key" not in exported
    assert KEY not in target.read_text()

    # no llama-server command line of ours: refused for `models command`, a comment in sh/ini exports
    code, _, err = cli("models", "command", "far", data_dir=data_dir)
    assert code == 1 and "far is a remote server (https://far.example:8443/llama)" in err
    for fmt in ("sh", "ini"):
        script = tmp_path / f"models.{fmt}"
        assert cli("models", "export", str(script), "far", data_dir=data_dir)[0] == 0
        assert "# far: a remote server at https://far.example:8443/llama, left out" in script.read_text()
        assert "llama-server" not in script.read_text().split("exported by llamadash", 1)[-1]
    code, out, _ = cli("models", "list", data_dir=data_dir)
    assert code == 0 and out.splitlines()[1].split()[:4] == ["far", "remote", "stopped", "8443"]

    other = tmp_path / "other-data"
    code, _, err = cli("models", "import", str(target), data_dir=other)
    assert code == 0, err
    imported = database.get_model_by_name("far")
    assert imported is not None and imported["remote_url"] == "https://far.example:8443/llama"
    assert imported["api_key"] is None


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["--url", "http://u:p@box:8080"], "user name or password"),
        (["--url", "ftp://box"], "http://"),
        (["--url", "http://box:8080", "--api-key-env", "NOT_SET_ANYWHERE"], "NOT_SET_ANYWHERE is not set"),
        (["--url", "http://box:8080", "--set", "ctx_size=5"], "no llama-server settings"),
        (["--model-path", "/x.gguf", "--api-key-env", "K"], "--api-key-env goes with --url"),
    ],
)
def test_a_bad_remote_entry_is_refused_and_nothing_is_added(
    data_dir: Path, args: list[str], why: str, monkeypatch
):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    code, _, err = cli("models", "add", "bad", *args, data_dir=data_dir)
    assert code == 1 and why in err
    assert database.get_model_by_name("bad") is None


def test_an_imported_remote_url_is_checked(data_dir: Path, tmp_path: Path):
    bad = {
        "format": "llamadash-models",
        "version": 1,
        "models": [{"name": "x", "remote_url": "file:///bin/sh"}],
    }
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    code, _, err = cli("models", "import", str(path), data_dir=data_dir)
    assert code == 1 and "http://" in err
    assert database.get_model_by_name("x") is None


def test_an_address_where_no_llama_server_answers_says_so(
    qtbot, data_dir: Path, manager: InstanceManager, llama_server: Path, tiny_model: Path, tmp_path: Path
):
    port = free_port()
    server = start_server(llama_server, tiny_model, port, tmp_path / "open.log", key=None)
    try:
        url = f"http://127.0.0.1:{port}/not-here"  # the server is there, its API is not under that path
        assert cli("models", "add", "wrong-path", "--url", url, data_dir=data_dir)[0] == 0
        inst = manager.start("wrong-path")
        wait_state(qtbot, inst, InstanceState.ERROR, 15_000)
        assert (
            inst.reason == f"{url}/health answered HTTP 404: is a llama-server there (and is the path right)?"
        )
    finally:
        stop_process(server)


def test_a_remote_entry_changes_its_url_and_key_but_keeps_no_llama_server_settings(
    data_dir: Path, tiny_model: Path
):
    assert cli("models", "add", "far", "--url", "http://far:8080", data_dir=data_dir)[0] == 0
    code, out, err = cli("models", "set", "far", "remote_url=https://far:8443/", data_dir=data_dir)
    assert (code, err) == (0, "") and "remote_url" in out
    code, out, _ = cli("models", "show", "far", data_dir=data_dir)
    assert "remote server: https://far:8443 (attached, never started here)" in out
    for bad, why in (
        ("remote_url=file:///bin/sh", "http://"),
        ("ctx_size=512", "settings are on its own machine"),
    ):
        code, _, err = cli("models", "set", "far", bad, data_dir=data_dir)
        assert code == 1 and why in err
    model = database.get_model_by_name("far")
    assert model is not None and model["remote_url"] == "https://far:8443" and model["ctx_size"] is None
    assert cli("models", "add", "loc", "--model-path", str(tiny_model), data_dir=data_dir)[0] == 0
    code, _, err = cli("models", "set", "loc", "remote_url=http://x:1", data_dir=data_dir)
    assert code == 1 and "loc is not a remote server" in err
