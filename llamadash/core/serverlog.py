"""llama-server's output, line by line: splitting a byte stream, recognising what users care about, and
a size-rotated log file.

Pure Python (no Qt): :class:`LineSplitter` turns the child's output chunks into lines (``\\n``,
``\\r\\n`` and a bare ``\\r`` all end a line, so ``\\r`` progress output does not pile up into one
endless line); :func:`parse_line` recognises load progress, "model loaded", the listening address,
errors and each finished request; :class:`RotatingLogFile` keeps a per-instance log file bounded.

What llama-server (b11434, default verbosity) prints, one line each::

    0.00.004.323 I srv    load_model: loading model 'tiny.gguf'
    0.00.013.911 I srv  llama_server: model loaded
    0.00.013.949 I srv  llama_server: listening on http://127.0.0.1:18091
    0.02.008.465 I slot print_timing: id  3 | task 0 | prompt eval time =  0.64 ms /  7 tokens (...)
    0.02.008.887 I slot      release: id  3 | task 0 | stop processing: n_tokens = 22, truncated = 0
    0.00.006.436 E srv    load_model: failed to load model, 'nope.gguf'

The letter after the timestamp is the level (``E`` = error, ``W`` = warning). While tensors load
from a file that is not memory-mapped, llama.cpp prints up to 100 dots with no newline, one per
percent; :func:`progress_from_dots` reads them from the unfinished line.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TextIO

__all__ = [
    "DEFAULT_LOG_BACKUPS",
    "DEFAULT_LOG_MAX_BYTES",
    "MAX_LINE_CHARS",
    "EventKind",
    "LineSplitter",
    "LogEvent",
    "RotatingLogFile",
    "parse_line",
    "progress_from_dots",
]

#: A line longer than this is cut into pieces of this size (a child that never prints a newline
#: must not grow memory without bound).
MAX_LINE_CHARS = 16_384
DEFAULT_LOG_MAX_BYTES = 5 * 1024 * 1024
DEFAULT_LOG_BACKUPS = 3


class LineSplitter:
    """Turns chunks of a child's output into complete text lines.

    Bytes are decoded as UTF-8 incrementally (a character split across two chunks is kept whole;
    invalid bytes become U+FFFD). ``\\n``, ``\\r\\n`` and a bare ``\\r`` end a line; empty lines are
    dropped. The unfinished last line is kept in :attr:`pending` until its end arrives or
    :meth:`flush` is called.

    Args:
        max_line_chars: Longer lines are emitted in pieces of this length.
    """

    def __init__(self, max_line_chars: int = MAX_LINE_CHARS) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._skip_lf = False  # the previous chunk ended with "\r": a leading "\n" belongs to it
        self._max = max_line_chars

    @property
    def pending(self) -> str:
        """The unfinished last line (e.g. a row of progress dots)."""
        return self._pending

    def feed(self, data: bytes) -> list[str]:
        """Add a chunk; return the lines it completed, oldest first."""
        text = self._decoder.decode(data)
        if not text:
            return []
        if self._skip_lf and text.startswith("\n"):
            text = text[1:]
        self._skip_lf = text.endswith("\r")
        text = self._pending + text
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        parts = text.split("\n")
        self._pending = parts.pop()
        lines = [p for p in parts if p]
        if len(self._pending) > self._max:
            cut = len(self._pending) - len(self._pending) % self._max
            lines.extend(self._pending[i : i + self._max] for i in range(0, cut, self._max))
            self._pending = self._pending[cut:]
        if any(len(line) > self._max for line in lines):
            lines = [piece for line in lines for piece in _pieces(line, self._max)]
        return lines

    def flush(self) -> list[str]:
        """End of stream: return the unfinished line (if any) as a last line."""
        tail = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        self._skip_lf = False
        return [p for p in _pieces(tail, self._max) if p]


def _pieces(line: str, size: int) -> list[str]:
    if len(line) <= size:
        return [line]
    return [line[i : i + size] for i in range(0, len(line), size)]


class EventKind(str, Enum):
    """What a recognised log line says."""

    LOAD_PROGRESS = "load_progress"
    MODEL_LOADED = "model_loaded"
    LISTENING = "listening"
    ERROR = "error"
    REQUEST_FINISHED = "request_finished"
    TIMING = "timing"


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One recognised log line.

    Attributes:
        kind: What the line says.
        text: A short description for the UI: the load stage, the error message, the URL, or the
            timing's name (``"prompt"`` or ``"generation"``).
        value: Load progress 0..1 (``None`` when the stage gives no fraction), or tokens per second
            of a timing line.
        url: The listening address (``LISTENING``).
        category: For errors: ``"out_of_memory"``, ``"load_failed"``, ``"bind_failed"`` or ``"other"``.
        slot: The slot id of a request line.
        task: The task id of a request line.
    """

    kind: EventKind
    text: str = ""
    value: float | None = None
    url: str | None = None
    category: str | None = None
    slot: int | None = None
    task: int | None = None


_LEVEL = re.compile(r"^\s*\d+\.\d+\.\d+\.\d+ ([IWEDT]) ")
_PREFIX = re.compile(r"^\s*\d+\.\d+\.\d+\.\d+ [IWEDT] (?:\w+\s+)?")
_SLOT_TASK = re.compile(r"id\s+(\d+)\s*\|\s*task\s+(-?\d+)")
_URL = re.compile(r"listening on (\S+?)(?:\s|$)")
_TIMING = re.compile(r"(prompt eval|eval) time\s*=.*?([\d.]+) tokens per second")
_OOM = ("out of memory", "failed to allocate", "cudamalloc failed", "unable to allocate", "insufficient memory",
        "not enough memory", "std::bad_alloc", "failed to fit params")
_LOAD_FAILED = ("failed to load model", "error loading model", "failed to open gguf", "failed to create context",
                "failed to create_context", "exiting due to model loading error", "unknown model architecture")
_BIND_FAILED = ("couldn't bind", "address already in use", "exiting due to http server error")
_ERROR_WORDS = ("error:", "failed", "ggml_assert", "abort", "terminate called", "segmentation fault")
_STAGES = (
    ("loaded meta data", "reading the model's metadata"),
    ("load_tensors: loading model tensors", "loading tensors"),
    ("load_model: initializing", "creating the context"),
    ("warming up the model", "warming up"),
    ("llama_kv_cache", "allocating the KV cache"),
    ("downloading", "downloading the model"),
)


def _message(line: str) -> str:
    """The line without the timestamp, level and module prefix."""
    return _PREFIX.sub("", line, count=1).strip()


def _error_category(lower: str) -> str | None:
    if any(word in lower for word in _OOM):
        return "out_of_memory"
    if any(word in lower for word in _LOAD_FAILED):
        return "load_failed"
    if any(word in lower for word in _BIND_FAILED):
        return "bind_failed"
    return None


def parse_line(line: str) -> LogEvent | None:
    """Recognise one log line of llama-server; ``None`` for the many lines nobody needs to act on.

    It is called for every line of output (100k lines a second in a flood), so the common case, a
    line that matches nothing, costs a few substring tests.
    """
    if "stop processing" in line and "release" in line:
        found = _SLOT_TASK.search(line)
        slot, task = (int(found.group(1)), int(found.group(2))) if found else (None, None)
        return LogEvent(EventKind.REQUEST_FINISHED, _message(line), slot=slot, task=task)
    if "print_timing" in line and "tokens per second" in line:
        timing = _TIMING.search(line)
        if timing:
            name = "prompt" if timing.group(1) == "prompt eval" else "generation"
            return LogEvent(EventKind.TIMING, name, value=float(timing.group(2)))
        return None
    if "listening on" in line:
        found = _URL.search(line)
        if found:
            return LogEvent(EventKind.LISTENING, found.group(1), url=found.group(1))
    if "model loaded" in line:
        return LogEvent(EventKind.MODEL_LOADED, "model loaded", value=1.0)
    level = _LEVEL.match(line)
    lower = line.lower()
    category = _error_category(lower)
    is_error = level.group(1) == "E" if level else any(word in lower for word in _ERROR_WORDS)
    if category is not None or is_error:
        if level is not None and level.group(1) in "ID" and category != "out_of_memory":
            return None  # an info line that mentions "failed" in passing
        return LogEvent(EventKind.ERROR, _message(line), category=category or "other")
    if level is None or level.group(1) == "I":
        fraction = progress_from_dots(line)
        if fraction is not None:
            return LogEvent(EventKind.LOAD_PROGRESS, "loading tensors", value=fraction)
        for needle, stage in _STAGES:
            if needle in line:
                return LogEvent(EventKind.LOAD_PROGRESS, stage)
    return None


def progress_from_dots(text: str) -> float | None:
    """llama.cpp's tensor-loading progress (one dot per percent), or ``None`` if ``text`` is not dots."""
    stripped = text.strip()
    if len(stripped) < 2 or stripped.strip(".") != "":
        return None
    return min(1.0, len(stripped) / 100.0)


class RotatingLogFile:
    """An append-only text log that rotates by size: ``x.log`` -> ``x.log.1`` -> ... -> ``x.log.N``.

    Writing never raises: a failure (disk full, permissions) is kept in :attr:`error` and further
    writes are dropped, because a log file must never take the server down with it.

    Args:
        path: The log file.
        max_bytes: Rotate once the file reaches this size.
        backups: How many rotated files to keep.
    """

    def __init__(self, path: Path, max_bytes: int = DEFAULT_LOG_MAX_BYTES, backups: int = DEFAULT_LOG_BACKUPS):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.error: str | None = None
        self._file: TextIO | None = None
        self._size = 0

    def _open(self) -> bool:
        if self._file is not None:
            return True
        if self.error is not None:
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115 - kept open
            self._size = self._file.tell()
        except OSError as exc:
            self.error = f"cannot write the log file {self.path}: {exc}"
            return False
        return True

    def write_lines(self, lines: Iterable[str]) -> None:
        """Append lines (a newline is added to each) and flush."""
        text = "".join(line + "\n" for line in lines)
        if not text or not self._open():
            return
        assert self._file is not None
        try:
            if self._size > 0 and self._size + len(text) > self.max_bytes:
                self._rotate()
            self._file.write(text)
            self._file.flush()
            self._size += len(text.encode("utf-8", errors="replace")) if not text.isascii() else len(text)
        except OSError as exc:
            self.error = f"cannot write the log file {self.path}: {exc}"
            self.close()

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
        if self.backups > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._open()

    def close(self) -> None:
        """Close the file; a later write opens it again."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None
