"""`llamadash models command NAME`, pasted into a shell, starts the real server."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support import cli, free_port, health_status


pytestmark = pytest.mark.integration


def start_in_shell(line: str, log: Path) -> subprocess.Popen:
    with open(log, "wb") as handle:
        return subprocess.Popen(
            ["/bin/sh", "-c", line],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def wait_healthy(proc: subprocess.Popen, port: int, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if health_status(port) == 200:
            return True
        time.sleep(0.05)
    return False


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def status_of(url: str, key: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_printed_command_starts_the_server(tmp_path: Path, tiny_model: Path, llama_server: Path):
    data_dir = tmp_path / "data"
    port = free_port()
    code, _, err = cli(
        "models",
        "add",
        "tiny",
        "--model-path",
        str(tiny_model),
        "--set",
        f"port={port}",
        "--set",
        "ctx_size=256",
        "--set",
        "mmap=false",
        "--set",
        "flash_attn=off",
        data_dir=data_dir,
    )
    assert code == 0, err
    code, line, err = cli("models", "command", "tiny", data_dir=data_dir)
    assert code == 0, err
    assert "--load-mode none" in line and "--ctx-size 256" in line and f"--port {port}" in line
    proc = start_in_shell(line.strip(), tmp_path / "server.log")
    try:
        assert wait_healthy(proc, port), (tmp_path / "server.log").read_text()[-2000:]
    finally:
        stop(proc)


def test_secrets_are_masked_and_the_revealed_command_enforces_the_key(
    tmp_path: Path, tiny_model: Path, llama_server: Path
):
    data_dir = tmp_path / "data"
    port = free_port()
    cli(
        "models",
        "add",
        "guarded",
        "--model-path",
        str(tiny_model),
        "--set",
        f"port={port}",
        "--set",
        "api_key=k-123",
        data_dir=data_dir,
    )
    _, masked, _ = cli("models", "command", "guarded", data_dir=data_dir)
    assert "k-123" not in masked and "LLAMA_API_KEY=***" in masked and "--api-key" not in masked
    code, line, err = cli("models", "command", "guarded", "--show-secrets", data_dir=data_dir)
    assert code == 0, err
    proc = start_in_shell(line.strip(), tmp_path / "server.log")
    try:
        assert wait_healthy(proc, port), (tmp_path / "server.log").read_text()[-2000:]
        assert status_of(f"http://127.0.0.1:{port}/v1/models") == 401
        assert status_of(f"http://127.0.0.1:{port}/v1/models", "k-123") == 200
    finally:
        stop(proc)


def test_llama_server_command_shows_and_sets_the_binary(tmp_path: Path, llama_server: Path):
    data_dir = tmp_path / "data"
    code, out, err = cli("llama-server", data_dir=data_dir)
    assert code == 0, err
    assert "binary:" in out and "flags:" in out
    version_line = next(line for line in out.splitlines() if line.startswith("version:"))
    assert "version:" not in version_line.removeprefix("version:")  # said once (was "version:  version: 0.6")
    code, out, err = cli("llama-server", "--path", str(llama_server), data_dir=data_dir)
    assert code == 0, err
    assert "found by: configured" in out and str(llama_server.resolve()) in out
    not_a_server = tmp_path / "fake-server"
    not_a_server.write_text("#!/bin/sh\necho hello\n")
    not_a_server.chmod(0o755)
    code, _, err = cli("llama-server", "--path", str(not_a_server), data_dir=data_dir)
    assert code == 1 and err.startswith("llamadash: error: ")
    code, out, _ = cli("llama-server", data_dir=data_dir)
    assert str(llama_server.resolve()) in out  # the bad path was not stored
    code, _, err = cli("llama-server", "--path", str(tmp_path / "missing"), data_dir=data_dir)
    assert code == 1 and "does not exist" in err


def test_a_custom_flag_the_build_does_not_know_is_refused_when_set(
    tmp_path: Path, tiny_model: Path, llama_server: Path
):
    data_dir = tmp_path / "data"
    assert cli("llama-server", "--path", str(llama_server), data_dir=data_dir)[0] == 0
    assert cli("models", "add", "t", "--model-path", str(tiny_model), data_dir=data_dir)[0] == 0
    code, _, err = cli("models", "set", "t", "--flag-nonexistent=3", data_dir=data_dir)
    assert code == 1 and "--flag-nonexistent is not accepted by llama-server" in err
    code, _, err = cli("models", "set", "t", "--cors-origins=http://x", data_dir=data_dir)  # a real flag
    assert code == 0, err
    code, out, err = cli("models", "command", "t", data_dir=data_dir)
    assert code == 0 and "--cors-origins http://x" in out
