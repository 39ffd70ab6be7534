"""PID records: orphans are told apart from live dashboards' instances and from reused PIDs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from llamadash.core import database, pidfile
from llamadash.core.pidfile import InstanceRecord


@pytest.fixture
def db(tmp_path: Path) -> Iterator[None]:
    database.init_database(tmp_path / "pids.db")
    yield
    database.close_database()


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[subprocess.Popen]:
    """A process whose executable is called llama-server (a link to ``sleep``)."""
    sleep = shutil.which("sleep")
    assert sleep
    link = tmp_path / "bin" / "llama-server"
    link.parent.mkdir()
    link.symlink_to(sleep)
    proc = subprocess.Popen([str(link), "60"])
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def dead_pid() -> tuple[int, float]:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    created = psutil.Process(proc.pid).create_time()
    proc.wait()
    return proc.pid, created


def record_for(proc: subprocess.Popen, owner: tuple[int, float], **extra) -> InstanceRecord:
    return InstanceRecord(
        pid=proc.pid,
        create_time=psutil.Process(proc.pid).create_time(),
        model=extra.pop("model", "tiny"),
        port=extra.pop("port", 8080),
        owner_pid=owner[0],
        owner_create_time=owner[1],
        **extra,
    )


def test_records_round_trip(db):
    record = InstanceRecord(
        pid=1234, create_time=1.5, model="m", model_id=3, port=8081, binary="/x/llama-server"
    )
    pidfile.add_record(record)
    pidfile.add_record(InstanceRecord(pid=99, create_time=2.0, model="n"))
    assert pidfile.load_records() == [record, InstanceRecord(pid=99, create_time=2.0, model="n")]
    pidfile.remove_record(1234)
    assert [r.pid for r in pidfile.load_records()] == [99]
    pidfile.remove_record(99)
    assert database.get_metadata(pidfile.METADATA_KEY) is None


def test_garbage_in_the_metadata_is_ignored(db):
    database.set_metadata(pidfile.METADATA_KEY, '[{"pid": "x"}, {"pid": 5, "create_time": 1, "model": "m"}]')
    assert [r.pid for r in pidfile.load_records()] == [5]
    database.set_metadata(pidfile.METADATA_KEY, "not json")
    assert pidfile.load_records() == []


def test_scan_sorts_orphans_foreign_and_stale(db, fake_server):
    pidfile.add_record(record_for(fake_server, dead_pid(), model="orphaned"))
    gone_pid, gone_created = dead_pid()
    pidfile.add_record(InstanceRecord(pid=gone_pid, create_time=gone_created, model="gone"))
    found = pidfile.scan()
    assert [r.model for r in found.orphans] == ["orphaned"]
    assert [r.model for r in found.dropped] == ["gone"]
    assert [r.model for r in pidfile.load_records()] == ["orphaned"]  # the stale one was pruned

    # the same process owned by a live llamadash (this test process) is not an orphan
    pidfile.save_records([record_for(fake_server, pidfile.owner_identity(), model="mine")])
    found = pidfile.scan()
    assert found.orphans == [] and [r.model for r in found.foreign] == ["mine"]


def test_a_reused_pid_is_not_taken_for_the_recorded_server(db, fake_server):
    record = record_for(fake_server, dead_pid())
    pidfile.save_records([InstanceRecord(**{**record.as_dict(), "create_time": record.create_time - 3600})])
    assert pidfile.scan().orphans == []


def test_a_process_that_is_not_llama_server_is_not_an_orphan(db):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pidfile.add_record(record_for(proc, dead_pid(), binary="/opt/llama/llama-server"))
        assert pidfile.scan().orphans == []
    finally:
        proc.kill()
        proc.wait()


def test_reset_stale_statuses(db):
    for name, status in (("a", "running"), ("b", "loading"), ("c", "running"), ("d", "error")):
        database.save_model({"name": name, "type": "llama", "status": status})
    assert sorted(pidfile.reset_stale_statuses(live_models={"c"})) == ["a", "b"]
    statuses = {m["name"]: m["status"] for m in database.get_models()}
    assert statuses == {"a": "stopped", "b": "stopped", "c": "running", "d": "error"}


def test_stop_processes_terminates_then_kills(tmp_path: Path):
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('ready', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
    )
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
    started = time.monotonic()
    left = pidfile.stop_processes([stubborn.pid, polite.pid], timeout_s=0.5)
    assert left == []
    assert time.monotonic() - started < 5
    stubborn.stdout.close()
    if os.name == "posix":
        assert polite.wait(5) == -15  # SIGTERM was enough
        assert stubborn.wait(5) == -9  # it ignored SIGTERM: killed


# -- servers launched from this database that have no record -------------------------------------


def marked_server(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen:
    """A real process called llama-server (a link to ``sleep``) that carries ``env``."""
    sleep = shutil.which("sleep")
    assert sleep
    link = tmp_path / "marked-bin" / "llama-server"
    link.parent.mkdir(exist_ok=True)
    if not link.exists():
        link.symlink_to(sleep)
    return subprocess.Popen([str(link), "60", *args], env={**os.environ, **env})


def markers(owner: tuple[int, float], **overrides) -> dict[str, str]:
    env = pidfile.marker_environment(
        model="tiny", model_id=7, host="127.0.0.1", port=8123, binary="/x/llama-server"
    )
    env[pidfile.ENV_OWNER_PID], env[pidfile.ENV_OWNER_CREATE_TIME] = str(owner[0]), repr(owner[1])
    return {**env, **overrides}


def test_an_unrecorded_server_with_this_databases_markers_is_found(db, tmp_path: Path):
    # the dashboard was killed between the fork and the record: only the environment tells
    orphan = marked_server(tmp_path, markers(dead_pid()))
    live_owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    foreign = marked_server(tmp_path, markers((live_owner.pid, psutil.Process(live_owner.pid).create_time())))
    other_db = marked_server(
        tmp_path, markers(dead_pid(), **{pidfile.ENV_DATABASE: str(tmp_path / "other.db")})
    )
    try:
        assert pidfile.load_records() == []
        found = pidfile.scan()
        assert [(r.pid, r.model, r.model_id, r.port) for r in found.orphans] == [
            (orphan.pid, "tiny", 7, 8123)
        ]
        assert [r.pid for r in found.foreign] == [foreign.pid]
        assert other_db.pid not in {r.pid for r in found.orphans + found.foreign}  # another data dir's
        assert found.orphans[0].create_time == psutil.Process(orphan.pid).create_time()
        # a recorded process is not reported twice
        pidfile.add_record(found.orphans[0])
        again = pidfile.scan()
        assert [r.pid for r in again.orphans] == [orphan.pid]
    finally:
        for proc in (orphan, foreign, other_db, live_owner):
            proc.kill()
            proc.wait()


def listening_server(tmp_path: Path, model: Path, stack: list[subprocess.Popen]) -> int:
    """Start a real process called llama-server that listens with llamadash's ``--model``/``--port``.

    The process binds a port the kernel picks (two ``free_port()`` calls can collide with each other or
    with another test's server) and then shows it on its command line by re-executing itself with
    ``--port N``; it is appended to ``stack`` at once so the caller always cleans it up. Returns the port.
    """
    link = tmp_path / "listen-bin" / "llama-server"
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(Path(sys.executable).resolve())
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMADASH_INSTANCE_")}
    # bind first, then exec with the bound socket inherited, so the argv names the port it holds
    bind = (
        "import os, socket, sys; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); s.set_inheritable(True);"
        " port = s.getsockname()[1]; print(port, flush=True);"
        " os.execv(sys.argv[1], [sys.argv[1], '-c', 'import time; time.sleep(60)',"
        " '--model', sys.argv[2], '--port', str(port), '--fd', str(s.fileno())])"
    )
    proc = subprocess.Popen([str(link), "-c", bind, str(link), str(model)], stdout=subprocess.PIPE, env=env)
    stack.append(proc)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip().isdigit(), line
    return int(line)


def test_where_the_environment_cannot_be_read_the_command_line_and_port_tell(db, tmp_path: Path, monkeypatch):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    procs: list[subprocess.Popen] = []
    try:
        port = listening_server(tmp_path, model, procs)
        (tmp_path / "b").mkdir()
        listening_server(tmp_path / "b", model, procs)  # no library model on that port
        ours, not_ours = procs
        database.save_model(
            {"name": "lib", "type": "llama", "status": "stopped", "model_path": str(model), "port": port}
        )
        # As root every environment is readable: make it unreadable, as another user's process on macOS is.
        real_environ = psutil.Process.environ

        def environ(self):
            if self.pid in (ours.pid, not_ours.pid):
                raise psutil.AccessDenied(self.pid)
            return real_environ(self)

        monkeypatch.setattr(psutil.Process, "environ", environ)
        found = pidfile.scan()
        assert [(r.pid, r.model, r.port) for r in found.orphans] == [(ours.pid, "lib", port)]
        assert not_ours.pid not in {r.pid for r in found.foreign}
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()


def test_error_reasons_are_kept_per_model_and_bounded(db):
    pidfile.save_error_reason(3, "llama-server exited with code 1: boom")
    assert pidfile.load_error_reason(3) == "llama-server exited with code 1: boom"
    assert pidfile.load_error_reason(4) is None
    pidfile.save_error_reason(4, "x" * 100_000)
    assert len(pidfile.load_error_reason(4) or "") == pidfile.MAX_ERROR_REASON_CHARS
    pidfile.clear_error_reason(3)
    assert pidfile.load_error_reason(3) is None


def test_stop_orphans_stops_forgets_and_marks_the_model_stopped(db, fake_server: subprocess.Popen):
    # the one home of "stop the leftovers": `status --stop-orphans` and the window's manager call it
    model_id = database.save_model({"name": "left", "type": "llama", "status": "running"})
    record = InstanceRecord(
        pid=fake_server.pid,
        create_time=psutil.Process(fake_server.pid).create_time(),
        model="left",
        model_id=model_id,
        port=18099,
        owner_pid=2**22 + 7,
        owner_create_time=1.0,
    )
    pidfile.add_record(record)
    assert [r.pid for r in pidfile.scan().orphans] == [fake_server.pid]
    stopped, left = pidfile.stop_orphans(pidfile.scan().orphans, timeout_s=2.0)
    assert [r.pid for r in stopped] == [fake_server.pid] and left == []
    assert fake_server.wait(5) is not None
    assert pidfile.load_records() == []
    assert database.get_model(model_id)["status"] == "stopped"
