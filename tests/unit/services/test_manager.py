"""InstanceManager without llama-server: ports, settings, stale statuses, attach, signals.

The manager with the real llama-server is in tests/integration/test_instances.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from llamadash.core import database
from llamadash.core.metrics import InstanceStats
from llamadash.services.instance import InstanceError, InstanceState
from llamadash.services.manager import InstanceManager, next_free_port, port_is_free

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def data_dir(_isolated_data_dir: Path) -> Iterator[Path]:
    database.init_database(data_dir=_isolated_data_dir)
    yield _isolated_data_dir
    database.close_database()


@pytest.fixture
def manager(qtbot, data_dir: Path) -> Iterator[InstanceManager]:
    made = InstanceManager(data_dir=data_dir, poll_interval_s=0.25, quit_with_app=False)
    yield made
    assert made.stop_all(5)
    made.close()


def test_port_checks():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        assert not port_is_free("127.0.0.1", taken)
        assert not port_is_free("0.0.0.0", taken)  # a wildcard bind clashes with the loopback one
        free = next_free_port("127.0.0.1", taken)
        assert free is not None and free != taken and port_is_free("127.0.0.1", free)
        assert next_free_port("127.0.0.1", free, exclude={free}) != free


def test_stale_running_statuses_are_reset_at_start(qtbot, data_dir: Path):
    for name, status in (("a", "running"), ("b", "loading"), ("c", "error"), ("d", "stopped")):
        database.save_model({"name": name, "type": "llama", "status": status})
    made = InstanceManager(data_dir=data_dir, quit_with_app=False)
    try:
        statuses = {m["name"]: m["status"] for m in database.get_models()}
        assert statuses == {"a": "stopped", "b": "stopped", "c": "error", "d": "stopped"}
        assert made.orphans() == []
    finally:
        made.close()


def test_autorestart_is_a_per_model_setting_in_the_database(manager: InstanceManager):
    model_id = database.save_model({"name": "m", "type": "llama", "status": "stopped"})
    assert manager.autorestart("m") is False
    manager.set_autorestart("m", True)
    assert database.get_model(model_id)["auto_restart"] is True and manager.autorestart("m")
    assert database.get_metadata("autorestart:m") is None  # on the row, not under the name
    database.update_model(model_id, {"name": "renamed"})
    assert manager.autorestart("renamed") and not manager.autorestart("m")  # it follows the model
    manager.set_autorestart("renamed", False)
    assert not manager.autorestart("renamed")
    manager.set_autorestart("renamed", True)
    database.delete_model(model_id)
    database.save_model({"name": "renamed", "type": "llama", "status": "stopped"})
    assert not manager.autorestart("renamed")  # a new model with the old name starts with it off
    with pytest.raises(database.DatabaseError, match="no model named 'nothing'"):
        manager.set_autorestart("nothing", True)


def test_is_the_samplers_instance_stats(manager: InstanceManager):
    assert isinstance(manager, InstanceStats)
    assert manager.active_models() == 0 and manager.requests_per_minute() == 0.0


def test_attach_checks_the_url_and_the_name(qtbot, manager: InstanceManager):
    database.save_model({"name": "taken", "type": "llama", "status": "stopped"})
    with pytest.raises(InstanceError, match="not an http"):
        manager.attach("ftp://example.org")
    with pytest.raises(InstanceError, match="already used"):
        manager.attach("http://127.0.0.1:9", name="taken")
    with socket.socket() as sock:  # a port nothing answers on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    inst = manager.attach(f"http://127.0.0.1:{port}")
    assert inst.name == f"127.0.0.1:{port}" and inst.external
    qtbot.waitUntil(lambda: inst.state is InstanceState.ERROR, timeout=5_000)
    assert "unreachable" in inst.reason
    removed: list[str] = []
    manager.instanceRemoved.connect(removed.append)
    manager.detach(inst.name)
    assert removed == [inst.name] and manager.instances() == []


def test_unknown_model_is_refused(manager: InstanceManager):
    with pytest.raises(InstanceError, match="no model named 'nope'"):
        manager.start("nope")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_quit_on_signals_ends_the_event_loop(tmp_path: Path, signum: int):
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(
            """
            import time
            from PySide6.QtCore import QCoreApplication
            from llamadash.services.manager import quit_on_signals
            app = QCoreApplication([])
            app.aboutToQuit.connect(lambda: print("about to quit", flush=True))
            quit_on_signals(app)
            print("ready", flush=True)
            time.sleep(0.3)  # the signal comes before the event loop runs: it must not be lost
            app.exec()
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    proc.send_signal(signum)
    assert proc.wait(10) == 0
    assert proc.stdout.read() == "about to quit\n"
    proc.stdout.close()
