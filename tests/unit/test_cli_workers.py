"""``llamadash workers add/list/remove/use`` in-process on a real database (the local processes:
tests/integration/test_rpc_workers.py)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from support import cli, free_port


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    from support import write_tiny_gguf

    return write_tiny_gguf(tmp_path / "tiny.gguf")


def listed(data_dir: Path) -> dict[str, dict]:
    code, out, err = cli("workers", "list", "--json", data_dir=data_dir)
    assert code == 0, err
    return {item["name"]: item for item in json.loads(out)}


def test_an_empty_list_says_how_to_add_one(data_dir: Path) -> None:
    code, out, _ = cli("workers", "list", data_dir=data_dir)
    assert code == 0
    assert "llamadash workers add NAME HOST:PORT" in out and "workers start NAME" in out


def test_a_remote_worker_is_added_checked_and_removed(data_dir: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        code, out, err = cli("workers", "add", "box", f"127.0.0.1:{port}", data_dir=data_dir)
        assert code == 0, err
        assert f"added remote worker box at 127.0.0.1:{port}" in out
        assert err == ""  # it answered: no warning
        item = listed(data_dir)["box"]
        assert (item["kind"], item["state"], item["reachable"]) == ("remote", "reachable", True)
    item = listed(data_dir)["box"]
    assert item["state"] == "unreachable" and item["reachable"] is False and item["reason"]
    code, out, _ = cli("workers", "list", data_dir=data_dir)
    assert "box" in out and "unreachable" in out
    code, out, _ = cli("workers", "remove", "box", data_dir=data_dir)
    assert code == 0 and "removed worker box" in out
    assert listed(data_dir) == {}


def test_adding_an_unreachable_worker_warns_but_keeps_it(data_dir: Path) -> None:
    port = free_port()
    code, _, err = cli("workers", "add", "later", f"127.0.0.1:{port}", data_dir=data_dir)
    assert code == 0
    assert "does not answer now" in err
    assert "later" in listed(data_dir)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "box", "nohost"], "expected HOST:PORT"),
        (["add", "bad name", "h:1"], "worker name"),
        (["remove", "ghost"], "no worker called 'ghost'"),
        (["stop", "ghost"], "no worker called 'ghost'"),
        (["use", "m", "ghost"], "no such worker: ghost"),
        (["use", "m"], "give the workers"),
    ],
)
def test_mistakes_are_one_line_and_change_nothing(data_dir: Path, args: list[str], message: str) -> None:
    code, _out, err = cli("workers", *args, data_dir=data_dir)
    assert code == 1
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert listed(data_dir) == {}


def test_a_name_is_taken_once(data_dir: Path) -> None:
    assert cli("workers", "add", "box", "10.0.0.2:50052", data_dir=data_dir)[0] == 0
    code, _, err = cli("workers", "add", "box", "10.0.0.3:50052", data_dir=data_dir)
    assert code == 1 and "already a worker called box" in err
    assert listed(data_dir)["box"]["endpoint"] == "10.0.0.2:50052"


def test_a_model_is_given_its_workers_and_taken_off_them(data_dir: Path, model_file: Path) -> None:
    assert cli("models", "add", "m", "--model-path", str(model_file), data_dir=data_dir)[0] == 0
    cli("workers", "add", "a", "10.0.0.2:50052", data_dir=data_dir)
    cli("workers", "add", "b", "[fe80::2]:50053", data_dir=data_dir)
    code, out, err = cli(
        "workers", "use", "m", "a,b", "--tensor-split", "1,1,2", "--device", "RPC0,RPC1", data_dir=data_dir
    )
    assert code == 0, err
    assert "rpc = 10.0.0.2:50052,[fe80::2]:50053" in out
    code, shown, _ = cli("models", "show", "m", "--json", data_dir=data_dir)
    model = json.loads(shown)
    assert model["rpc"] == ["10.0.0.2:50052", "[fe80::2]:50053"]
    assert model["tensor_split"] == ["1", "1", "2"]
    assert model["device"] == ["RPC0", "RPC1"]
    code, out, _ = cli("workers", "use", "m", "--none", data_dir=data_dir)
    assert code == 0 and "rpc = (none)" in out
    assert json.loads(cli("models", "show", "m", "--json", data_dir=data_dir)[1])["rpc"] is None


def test_a_bad_tensor_split_is_refused_and_changes_nothing(data_dir: Path, model_file: Path) -> None:
    cli("models", "add", "m", "--model-path", str(model_file), data_dir=data_dir)
    cli("workers", "add", "a", "10.0.0.2:50052", data_dir=data_dir)
    code, _, err = cli("workers", "use", "m", "a", "--tensor-split", "1,lots", data_dir=data_dir)
    assert code == 1 and "tensor_split" in err
    assert json.loads(cli("models", "show", "m", "--json", data_dir=data_dir)[1])["rpc"] is None


def test_a_non_loopback_start_is_refused_and_nothing_is_saved(data_dir: Path) -> None:
    code, _, err = cli("workers", "start", "w", "--host", "192.168.1.20", data_dir=data_dir)
    assert code == 1
    assert "never run the RPC server on an open network" in err and "--confirm-open-network" in err
    assert listed(data_dir) == {}


def test_a_remote_worker_is_not_started_here(data_dir: Path) -> None:
    cli("workers", "add", "far", "10.0.0.2:50052", data_dir=data_dir)
    code, _, err = cli("workers", "start", "far", data_dir=data_dir)
    assert code == 1 and "remote worker" in err
