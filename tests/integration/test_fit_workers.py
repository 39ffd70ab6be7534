"""The fit check across two real ``ggml-rpc-server`` workers on loopback.

``llamadash fit NAME`` passes the model's ``--rpc`` list (its workers) to the real
llama-fit-params, which measures each worker's device: the report lists the RPC devices with the
figures the tool printed for them, named by worker. A worker that does not answer is said so
before the tool runs (the tool itself aborts with signal 6 on it).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import cli, free_port

from llamadash.core.params import COLUMN
from llamadash.core.perf.fit import NO_WORKERS_NOTE
from llamadash.core.perf.service import check_fit
from llamadash.core.perf.tools import FIT_TOOL, tool_path
from llamadash.core.workers import find_rpc_server

pytestmark = pytest.mark.integration


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def two_workers(llama_server: Path, tmp_path: Path) -> Iterator[list[int]]:
    binary = find_rpc_server(llama_server)
    assert binary is not None, f"ggml-rpc-server is missing beside {llama_server}: the tests' build has RPC"
    ports = [free_port(), free_port()]
    procs = []
    for port in ports:
        with (tmp_path / f"w{port}.log").open("wb") as log:
            procs.append(
                subprocess.Popen([str(binary), "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
            )
    try:
        deadline = time.monotonic() + 30
        while not all(_listening(p) for p in ports):
            assert time.monotonic() < deadline, "the workers did not listen within 30 s"
            time.sleep(0.1)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def test_fit_lists_the_rpc_workers_devices(
    tmp_path: Path, tiny_model: Path, llama_server: Path, two_workers: list[int]
) -> None:
    data = tmp_path / "data"
    endpoints = [f"127.0.0.1:{p}" for p in two_workers]
    assert cli("llama-server", "--path", str(llama_server), data_dir=data)[0] == 0
    added = cli(
        "models", "add", "tiny", "--model-path", str(tiny_model), "--set", "ctx_size=256", data_dir=data
    )
    assert added[0] == 0, added[2]
    for name, endpoint in zip(("w1", "w2"), endpoints, strict=True):
        assert cli("workers", "add", name, endpoint, data_dir=data)[0] == 0
    assert cli("workers", "use", "tiny", "w1,w2", data_dir=data)[0] == 0

    code, out, err = cli("fit", "tiny", "--json", data_dir=data)
    assert code == 0, err
    report = json.loads(out)
    assert f"--rpc {','.join(endpoints)}" in " ".join(report["command"])
    devices = report["rpc_devices"]
    assert [(d["worker"], d["endpoint"]) for d in devices] == [("w1", endpoints[0]), ("w2", endpoints[1])]
    assert not report["cached"] and "workers not taken into account" not in " ".join(report["notes"])

    # the same figures as the tool printed for each worker's device, asked directly
    direct = subprocess.run(
        [str(tool_path(llama_server, FIT_TOOL)), "-m", str(tiny_model), "-c", "256", "-lv", "4", "--rpc", ",".join(endpoints)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert direct.returncode == 0, direct.stderr[-2000:]
    for device in devices:
        line = re.search(
            rf"- {device['name']} \({re.escape(device['endpoint'])}\):\s+(\d+) total,\s+\d+ used,\s+(\d+) free",
            direct.stderr,
        )
        assert line, direct.stderr[-2000:]
        assert device["total"] == int(line.group(1)) > 0
        assert abs(device["free"] - int(line.group(2))) <= 64  # the worker's own free memory moves a little
        assert device["needed"] is not None

    code, text, err = cli("fit", "tiny", data_dir=data)
    assert code == 0, err
    assert f"worker w1 ({endpoints[0]})" in text and f"worker w2 ({endpoints[1]})" in text


def test_fit_says_which_worker_does_not_answer(
    tmp_path: Path, tiny_model: Path, llama_server: Path, two_workers: list[int]
) -> None:
    data = tmp_path / "data"
    assert cli("llama-server", "--path", str(llama_server), data_dir=data)[0] == 0
    assert cli("models", "add", "tiny", "--model-path", str(tiny_model), data_dir=data)[0] == 0
    down = free_port()
    assert cli("workers", "add", "up", f"127.0.0.1:{two_workers[0]}", data_dir=data)[0] == 0
    assert cli("workers", "add", "down", f"127.0.0.1:{down}", data_dir=data)[0] == 0
    assert cli("workers", "use", "tiny", "up,down", data_dir=data)[0] == 0
    code, out, err = cli("fit", "tiny", data_dir=data)
    assert code == 1 and out == ""
    assert f"the RPC worker 127.0.0.1:{down} of the model's --rpc list does not answer" in err
    assert "signal" not in err  # said before the tool ran, not its abort


def test_a_fit_tool_without_rpc_says_the_workers_were_not_taken_into_account(
    tmp_path: Path, tiny_model: Path, llama_server: Path, two_workers: list[int]
) -> None:
    # a build made without -DGGML_RPC=ON: its llama-fit-params does not list --rpc in its help
    bin_dir = tmp_path / "no-rpc-bin"
    bin_dir.mkdir()
    (bin_dir / "llama-server").symlink_to(llama_server)
    real = tool_path(llama_server, FIT_TOOL)
    tool = bin_dir / FIT_TOOL
    tool.write_text(
        f'#!/bin/sh\nif [ "$1" = --help ]; then "{real}" --help 2>&1 | grep -v -e --rpc -e LLAMA_ARG_RPC; exit 0; fi\n'
        f'exec "{real}" "$@"\n'
    )
    tool.chmod(0o755)
    config = {
        COLUMN.model_path: str(tiny_model),
        COLUMN.ctx_size: 256,
        COLUMN.rpc: [f"127.0.0.1:{two_workers[0]}"],
    }
    outcome = check_fit(config, bin_dir / "llama-server", tmp_path / "cache")
    assert outcome.command.argv[0] == str(tool)
    assert "--rpc" not in outcome.command.argv and outcome.report.rpc_devices == []
    assert outcome.report.fitted_args  # the fit itself was answered, on this machine's devices only
    assert any(note.startswith(NO_WORKERS_NOTE) for note in outcome.notes), outcome.notes
    assert "workers not taken into account by this build" in NO_WORKERS_NOTE


def test_bench_says_which_worker_does_not_answer(
    tmp_path: Path, tiny_model: Path, llama_server: Path
) -> None:
    data = tmp_path / "data"
    assert cli("llama-server", "--path", str(llama_server), data_dir=data)[0] == 0
    assert cli("models", "add", "tiny", "--model-path", str(tiny_model), data_dir=data)[0] == 0
    down = free_port()
    assert cli("workers", "add", "down", f"127.0.0.1:{down}", data_dir=data)[0] == 0
    assert cli("workers", "use", "tiny", "down", data_dir=data)[0] == 0
    code, _out, err = cli("bench", "tiny", "--reps", "1", "--pp", "8", "--tg", "4", data_dir=data)
    assert code == 1
    assert f"the RPC worker 127.0.0.1:{down} of the model's --rpc list does not answer" in err
