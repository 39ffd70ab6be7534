"""Running one measuring tool to its end, or stopping it: no process is left behind, ever.

Used by the CLI and by the window's fit check (on a worker thread). The child runs in its own
session, so a terminal's Ctrl-C reaches llamadash only; llamadash then stops the child itself
(terminate, a bounded wait, kill) before it reports the cancel. Nothing is kept of a run that was
cancelled or that failed.
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO
from dataclasses import dataclass

__all__ = ["ToolCancelled", "ToolFailed", "ToolRun", "run_tool", "tool_env"]

#: How long a stopped tool gets to exit before it is killed.
STOP_GRACE_S = 3.0
#: How many of its last lines a failure shows.
TAIL_LINES = 12


class ToolCancelled(Exception):
    """The run was cancelled (Ctrl-C, the Cancel button); the tool has been stopped and reaped."""


class ToolFailed(RuntimeError):
    """The tool exited with an error, or printed nothing usable.

    Attributes:
        returncode: its exit status (negative: the signal that ended it).
        tail: its last lines (stderr, else stdout).
    """

    def __init__(self, tool: str, returncode: int, tail: Sequence[str], what: str = "") -> None:
        self.returncode = returncode
        self.tail = list(tail)
        status = (
            f"was killed by signal {-returncode}" if returncode < 0 else f"exited with status {returncode}"
        )
        head = f"{os.path.basename(tool)} {what or status}"
        lines = "\n".join(f"  {line}" for line in self.tail)
        super().__init__(f"{head}; its last lines:\n{lines}" if lines else f"{head} and printed nothing")


@dataclass(frozen=True)
class ToolRun:
    """A finished run: its argv, exit status, output and how long it took."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def tail(self, count: int = TAIL_LINES) -> list[str]:
        lines = [line for line in (self.stderr or self.stdout).splitlines() if line.strip()]
        return lines[-count:]


def tool_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The tools' environment: this one without ``LLAMA_ARG_*`` (they would change what is
    measured behind the configuration's back), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_ARG_")}
    env.update(extra or {})
    return env


def _reader(stream: IO[bytes], sink: queue.Queue[tuple[str, str | None]], name: str) -> None:
    try:
        for raw in iter(stream.readline, b""):
            sink.put((name, raw.decode("utf-8", errors="replace")))
    finally:
        sink.put((name, None))


def run_tool(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cancel: threading.Event | None = None,
    on_stdout_line: Callable[[str], None] | None = None,
    timeout_s: float | None = None,
) -> ToolRun:
    """Run ``argv`` to its end; ``on_stdout_line`` gets each stdout line as it comes (caller's thread).

    Raises:
        ToolCancelled: ``cancel`` was set, or Ctrl-C (KeyboardInterrupt) came; the tool is stopped.
        ToolFailed: it could not be started, or ran past ``timeout_s`` (it is stopped).
    """
    started = time.monotonic()
    try:
        proc = subprocess.Popen(  # an argv list, never a shell
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=tool_env(env),
            start_new_session=True,
        )
    except OSError as exc:
        raise ToolFailed(argv[0], 127, [], f"could not be started: {exc.strerror or exc}") from None
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    readers = [
        threading.Thread(target=_reader, args=(proc.stdout, lines, "out"), daemon=True),
        threading.Thread(target=_reader, args=(proc.stderr, lines, "err"), daemon=True),
    ]
    for reader in readers:
        reader.start()
    out: list[str] = []
    err: list[str] = []
    open_streams = 2
    try:
        while open_streams:
            if cancel is not None and cancel.is_set():
                raise ToolCancelled(f"{os.path.basename(argv[0])} was cancelled")
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                _stop(proc)
                raise ToolFailed(argv[0], -9, err[-TAIL_LINES:], f"did not finish within {timeout_s:g} s")
            try:
                name, line = lines.get(timeout=0.05)
            except queue.Empty:
                continue
            if line is None:
                open_streams -= 1
                continue
            if name == "out":
                out.append(line)
                if on_stdout_line is not None:
                    on_stdout_line(line.rstrip("\n"))
            else:
                err.append(line)
        while proc.poll() is None:
            if cancel is not None and cancel.is_set():
                raise ToolCancelled(f"{os.path.basename(argv[0])} was cancelled")
            time.sleep(0.02)
    except KeyboardInterrupt:
        _stop(proc)
        raise ToolCancelled(f"{os.path.basename(argv[0])} was cancelled (Ctrl-C)") from None
    except BaseException:
        _stop(proc)
        raise
    finally:
        for reader in readers:
            reader.join(timeout=1.0)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return ToolRun(list(argv), int(proc.returncode), "".join(out), "".join(err), time.monotonic() - started)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate, wait a little, kill; always reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
