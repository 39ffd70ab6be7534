"""RPC workers in the core: the checks, the ggml-rpc-server command, the open-network guard, the table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from llamadash.core import database, workers
from llamadash.core.workers import OpenNetworkRefused, Worker, WorkerError


@pytest.fixture
def open_db(tmp_path: Path):
    database.init_database(tmp_path / "db.sqlite")
    yield tmp_path / "db.sqlite"
    database.close_database()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_addresses_are_loopback(host: str) -> None:
    assert workers.is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "example.org", "fe80::1"])
def test_other_addresses_are_not(host: str) -> None:
    assert not workers.is_loopback(host)


def test_a_local_worker_binds_loopback_by_default_and_the_command_says_so() -> None:
    worker = workers.make_worker("w1", port=50100)
    argv = workers.build_worker_command("/opt/ggml-rpc-server", worker)
    assert argv == ["/opt/ggml-rpc-server", "--host", "127.0.0.1", "--port", "50100"]
    assert workers.open_network_warning(worker) is None


def test_the_command_carries_devices_threads_and_the_cache() -> None:
    worker = workers.make_worker("gpu", port=50052, devices="CUDA0, CUDA1", threads=6, cache=True)
    assert workers.build_worker_command("rpc", worker) == [
        "rpc", "--host", "127.0.0.1", "--port", "50052",
        "--device", "CUDA0,CUDA1", "--threads", "6", "--cache",
    ]  # fmt: skip


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_a_non_loopback_bind_is_refused_without_the_confirmation(host: str) -> None:
    with pytest.raises(OpenNetworkRefused) as refused:
        workers.make_worker("exposed", host=host)
    message = str(refused.value)
    assert host in message
    assert "never run the RPC server on an open network" in message


def test_a_confirmed_non_loopback_bind_is_built_and_keeps_its_warning() -> None:
    worker = workers.make_worker("exposed", host="0.0.0.0", confirm_open_network=True)
    assert worker.open_network
    assert workers.build_worker_command("rpc", worker)[1:3] == ["--host", "0.0.0.0"]
    warning = workers.open_network_warning(worker)
    assert warning is not None and "never run the RPC server on an open network" in warning
    assert worker.endpoint == "127.0.0.1:50052"  # a wildcard bind is reached on loopback


def test_no_command_is_built_for_an_exposed_worker_nobody_confirmed() -> None:
    # a row written by hand (or by an older file): the command builder checks the bind again
    worker = Worker(name="sneaky", host="0.0.0.0", open_network=False)
    with pytest.raises(OpenNetworkRefused):
        workers.build_worker_command("rpc", worker)


def test_a_remote_worker_has_no_command_and_no_local_settings() -> None:
    remote = workers.make_worker("far", kind="remote", host="192.168.1.20", port=50052)
    assert remote.endpoint == "192.168.1.20:50052"
    assert workers.open_network_warning(remote) is None  # another machine chose its bind
    with pytest.raises(WorkerError, match="remote"):
        workers.build_worker_command("rpc", remote)
    with pytest.raises(WorkerError, match="local worker's settings"):
        workers.make_worker("far", kind="remote", host="192.168.1.20", threads=4)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.168.1.20:50052", ("192.168.1.20", 50052)),
        ("[fe80::1]:7000", ("fe80::1", 7000)),
        ("box:1", ("box", 1)),
    ],
)
def test_endpoints_parse(text: str, expected: tuple[str, int]) -> None:
    assert workers.parse_endpoint(text) == expected


@pytest.mark.parametrize(
    "text", ["", "host", "host:", ":50052", "host:0", "host:70000", "a b:1", "fe80::1:50052"]
)
def test_bad_endpoints_are_refused(text: str) -> None:
    with pytest.raises(WorkerError):
        workers.parse_endpoint(text)


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", ""), ("name", "has space"), ("name", "a,b"), ("port", 0), ("port", "x"), ("threads", 0),
     ("devices", "CUDA0;rm"), ("host", "a b")],
)  # fmt: skip
def test_bad_settings_are_refused(field: str, value: object) -> None:
    settings: dict[str, object] = {"name": "ok", "port": 50052}
    settings[field] = value
    name = settings.pop("name")
    with pytest.raises(WorkerError):
        workers.make_worker(name, **settings)  # type: ignore[arg-type]


def test_the_rpc_list_is_in_order_and_each_endpoint_once() -> None:
    a = workers.make_worker("a", port=50001)
    b = workers.make_worker("b", kind="remote", host="10.0.0.2", port=50052)
    assert workers.rpc_list([a, b, a]) == ["127.0.0.1:50001", "10.0.0.2:50052"]


def test_the_worker_program_is_found_beside_llama_server(tmp_path: Path) -> None:
    server = tmp_path / "llama-server"
    rpc = tmp_path / "ggml-rpc-server"
    for path in (server, rpc):
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    assert workers.find_rpc_server(server) == rpc


def test_workers_are_saved_listed_changed_and_removed(open_db: Path) -> None:
    saved = workers.add_worker(workers.make_worker("w1", port=50100, devices="CPU", threads=2, cache=True))
    workers.add_worker(workers.make_worker("far", kind="remote", host="10.0.0.2", port=50052))
    assert saved.id is not None
    assert [w.name for w in workers.list_workers()] == ["far", "w1"]
    again = workers.get_worker("w1")
    assert again is not None
    assert (again.port, again.devices, again.threads, again.cache, again.kind) == (
        50100,
        ("CPU",),
        2,
        True,
        "local",
    )
    changed = workers.update_worker(workers.make_worker("w1", port=50101))
    assert (changed.port, changed.devices, changed.threads, changed.cache) == (50101, (), None, False)
    with pytest.raises(WorkerError, match="already a worker called w1"):
        workers.add_worker(workers.make_worker("w1"))
    assert workers.delete_worker("w1")
    assert not workers.delete_worker("w1")
    assert [w.name for w in workers.list_workers()] == ["far"]
    with pytest.raises(WorkerError, match="no such worker: ghost"):
        workers.resolve_workers(["far", "ghost"])


def test_an_older_database_gets_the_workers_table(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    database.init_database(path)
    database.close_database()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE workers")
        conn.execute("UPDATE metadata SET value = '4' WHERE key = 'db_version'")
    conn.close()
    database.init_database(path)
    try:
        assert database.get_db_version() == 5
        assert workers.list_workers() == []
        workers.add_worker(workers.make_worker("w1"))
        assert database.count_rows()["workers"] == 1
    finally:
        database.close_database()


def test_an_import_keeps_this_computers_workers_and_never_takes_the_files(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    database.init_database(other)
    database.save_model({"name": "from-file", "type": "llama", "status": "stopped"})
    workers.add_worker(workers.make_worker("theirs", host="0.0.0.0", confirm_open_network=True))
    database.set_metadata("worker_pids", "[]")
    database.close_database()
    database.init_database(tmp_path / "mine.sqlite")
    try:
        workers.add_worker(workers.make_worker("mine", port=50111))
        database.import_database(other)
        assert [m["name"] for m in database.get_models()] == ["from-file"]
        assert [(w.name, w.port) for w in workers.list_workers()] == [("mine", 50111)]
    finally:
        database.close_database()


def test_the_devices_a_worker_exposes_are_read_from_its_log() -> None:
    lines = [
        "Starting RPC server v7.0.0",
        "  endpoint       : 127.0.0.1:50991",
        "  local cache    : n/a",
        "Devices:",
        "  CPU: AMD EPYC (24105 MiB, 24105 MiB free)",
        "  CUDA0: NVIDIA GeForce RTX 5090 (32109 MiB, 31588 MiB free)",
        "  transport      : TCP",
        "Accepted client connection",
    ]
    assert workers.devices_from_log(lines) == [
        "CPU: AMD EPYC (24105 MiB, 24105 MiB free)",
        "CUDA0: NVIDIA GeForce RTX 5090 (32109 MiB, 31588 MiB free)",
    ]
    assert workers.devices_from_log(lines[:3]) == []


def test_a_worker_whose_dashboard_died_before_recording_it_is_found_by_its_markers(
    open_db: Path, llama_server: Path, tmp_path: Path
) -> None:
    import os
    import subprocess

    from support import free_port

    from llamadash.core import pidfile, worker_records

    binary = llama_server.with_name("ggml-rpc-server")
    dead = subprocess.Popen(["true"])  # the dashboard that launched it, gone since
    dead.wait()
    ours = {
        **worker_records.marker_environment("lost", "127.0.0.1", 1),
        worker_records.ENV_OWNER_PID: str(dead.pid),
    }
    theirs = worker_records.marker_environment("other", "127.0.0.1", 2, database_path=tmp_path / "other.db")
    procs = [
        subprocess.Popen(
            [str(binary), "--port", str(free_port()), "--threads", "1"],
            env={**os.environ, **markers},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for markers in (ours, theirs)
    ]
    try:
        found = worker_records.scan()
        assert [(r.model, r.pid) for r in found.orphans] == [("lost", procs[0].pid)]
        assert found.foreign == []  # the other data directory's worker is not ours
        stopped, left = worker_records.stop_orphans(found.orphans)
        assert [r.pid for r in stopped] == [procs[0].pid] and left == []
        assert procs[0].wait(5) is not None
        assert procs[1].poll() is None
    finally:
        pidfile.stop_processes([p.pid for p in procs if p.poll() is None])
        for proc in procs:
            proc.wait(5)
