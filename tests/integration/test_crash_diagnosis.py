"""The real llama-server fails the ways a user meets, and its real output is diagnosed end to end.

Each case runs the binary with a broken setup (a missing file, a file that is not GGUF, an unknown
flag, a taken port, a Hugging Face model on a build without HTTPS, a context that does not fit in
memory) and hands its exit and output to :func:`llamadash.core.diagnosis.diagnose`, as the
instance does. What a build without an accelerator cannot produce (a CUDA out-of-memory, an AMX
crash, the OOM killer) is covered by recorded logs in tests/unit/core/test_diagnosis.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support import free_port

from llamadash.core.diagnosis import Diagnosis, ExitFacts, before_start, diagnose, probe_https_support

pytestmark = pytest.mark.integration


def run_and_diagnose(
    binary: Path,
    args: list[str],
    *,
    config: dict[str, object] | None = None,
    env: dict[str, str] | None = None,
    memory_limit: int | None = None,
) -> tuple[Diagnosis | None, str]:
    """Run ``binary args`` to its end (it must fail by itself) and diagnose what it printed."""

    def limit_memory() -> None:  # in the child, before exec: its address space only
        import resource

        assert memory_limit is not None
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    result = subprocess.run(  # an argv list, no shell
        [str(binary), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("LLAMA_ARG_")} | (env or {}),
        preexec_fn=limit_memory if memory_limit is not None else None,
        check=False,
    )
    output = result.stdout.decode("utf-8", errors="replace")
    assert result.returncode != 0, output
    code, sig = (None, -result.returncode) if result.returncode < 0 else (result.returncode, None)
    return diagnose(ExitFacts(code=code, signal=sig, ready=False), output.splitlines(), config), output


def test_a_missing_model_file(llama_server: Path, tmp_path: Path) -> None:
    missing = tmp_path / "gone.gguf"
    result, output = run_and_diagnose(llama_server, ["-m", str(missing), "--port", str(free_port())])
    assert result is not None, output
    assert result.cause == "model_missing"
    assert result.figures["path"] == str(missing)


def test_a_file_that_is_not_gguf(llama_server: Path, tmp_path: Path) -> None:
    text = tmp_path / "readme.gguf"
    text.write_text("GPT weights are elsewhere\n", encoding="utf-8")
    result, output = run_and_diagnose(llama_server, ["-m", str(text), "--port", str(free_port())])
    assert result is not None, output
    assert result.cause == "not_gguf"
    assert result.figures["magic"] == "GPT "
    assert str(text) in result.summary


def test_an_argument_the_build_does_not_know(llama_server: Path, tiny_model: Path) -> None:
    args = ["-m", str(tiny_model), "--port", str(free_port()), "--frobnicate-weights", "2"]
    result, output = run_and_diagnose(llama_server, args)
    assert result is not None, output
    assert result.cause == "unknown_argument"
    assert result.figures["argument"] == "--frobnicate-weights"


def test_a_value_the_build_refuses(llama_server: Path, tiny_model: Path) -> None:
    args = ["-m", str(tiny_model), "--port", str(free_port()), "--ctx-size", "lots"]
    result, output = run_and_diagnose(llama_server, args)
    assert result is not None, output
    assert result.cause == "invalid_value"
    assert result.figures["argument"] == "--ctx-size"


def test_a_port_that_is_taken(llama_server: Path, tiny_model: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        args = ["-m", str(tiny_model), "--host", "127.0.0.1", "--port", str(port)]
        result, output = run_and_diagnose(llama_server, args, config={"port": port})
    assert result is not None, output
    assert result.cause == "port_taken"
    assert result.figures["port"] == str(port)
    assert f"Port {port} is already in use on 127.0.0.1" in result.summary


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS bounds the allocation on Linux")
def test_a_context_that_does_not_fit_in_memory(llama_server: Path, tiny_model: Path) -> None:
    # 8M tokens of KV cache for the tiny model is ~3.9 GiB, refused under a 3 GB address space
    args = ["-m", str(tiny_model), "--port", str(free_port()), "-c", "8000000", "-np", "1"]
    result, output = run_and_diagnose(llama_server, args, memory_limit=3_000_000_000)
    assert result is not None, output
    assert result.cause == "out_of_memory"
    assert result.figures["ctx"] == "8000000"
    assert float(result.figures["alloc_mib"]) > 3000
    assert "Lower the context size (now 8000000)" in result.fix


def test_a_hugging_face_model_on_a_build_without_https(llama_server: Path, tmp_path: Path) -> None:
    supported = probe_https_support(llama_server)
    assert supported is not None, "the probe could not read this llama-server"
    if supported:  # LLAMA_SERVER_BIN names a build with HTTPS: a download is then not refused
        assert before_start({"hf_repo": "ggml-org/gemma-3-1b-it-GGUF"}, https_supported=supported) is None
        return
    env = {"HOME": str(tmp_path), "LLAMA_CACHE": str(tmp_path / "cache")}  # no network is needed
    args = ["-hf", "ggml-org/gemma-3-1b-it-GGUF", "--port", str(free_port())]
    result, output = run_and_diagnose(llama_server, args, env=env)
    assert "exiting due to model loading error" in output.splitlines()[-1]
    assert result is not None, output
    assert result.cause == "https_unsupported"
    assert result.action == {"open": "configuration", "focus": ("model_path", "hf_repo", "model_url")}


def test_the_https_probe_reads_this_build(llama_server: Path) -> None:
    # the build of the test extra is made with -DLLAMA_OPENSSL=OFF; another build may say True
    answer = probe_https_support(llama_server)
    assert answer in (True, False)
    assert probe_https_support(llama_server) is answer  # cached per file identity
    assert probe_https_support(llama_server.parent / "no-such-llama-server") is None
