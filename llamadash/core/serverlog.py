"""llama-server's output, line by line: splitting a byte stream, recognising what users care about, and
a size-rotated log file.

Pure Python (no Qt): :class:`LineSplitter` turns the child's output chunks into lines (``\\n``,
``\\r\\n`` and a bare ``\\r`` all end a line, so ``\\r`` progress output does not pile up into one
endless line); :func:`parse_line` recognises load progress, "model loaded", the listening address,
errors and each finished request; :class:`RotatingLogFile` keeps a per-instance log file bounded
and writes it again once a full disk has room; :func:`log_file_name` gives each model a log file of
its own.

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
import errno
import contextlib
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "DEFAULT_LOG_BACKUPS",
    "DEFAULT_LOG_MAX_BYTES",
    "LOG_NAME_PREFIX_BYTES",
    "LOG_RETRY_INTERVAL_S",
    "MAX_LINE_CHARS",
    "EventKind",
    "LineSplitter",
    "LogEvent",
    "RotatingLogFile",
    "legacy_log_file_name",
    "log_file_name",
    "parse_line",
    "progress_from_dots",
]

#: A line longer than this is cut into pieces of this size (a child that never prints a newline
#: must not grow memory without bound).
MAX_LINE_CHARS = 16_384
DEFAULT_LOG_MAX_BYTES = 5 * 1024 * 1024
DEFAULT_LOG_BACKUPS = 3
#: While a log file cannot be written, seconds between attempts to write it again.
LOG_RETRY_INTERVAL_S = 1.0


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


class EventKind(StrEnum):
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
_OOM = (
    "out of memory",
    "failed to allocate",
    "cudamalloc failed",
    "unable to allocate",
    "insufficient memory",
    "not enough memory",
    "std::bad_alloc",
    "failed to fit params",
)
_LOAD_FAILED = (
    "failed to load model",
    "error loading model",
    "failed to open gguf",
    "failed to create context",
    "failed to create_context",
    "exiting due to model loading error",
    "unknown model architecture",
)
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


#: The readable part of a log file's name is cut to this many bytes (UTF-8).
LOG_NAME_PREFIX_BYTES = 64
_NAME_HASH_CHARS = 10
_LOOKS_HASHED = re.compile(rf"-[0-9a-f]{{{_NAME_HASH_CHARS}}}$")
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{dev}{n}" for dev in ("COM", "LPT") for n in [*"123456789", "\u00b9", "\u00b2", "\u00b3"]]
)


def _safe_char(char: str) -> str:
    return char if char.isalnum() or char in "-_.+" else "_"


def log_file_name(name: str) -> str:
    """The log file name of model ``name``: unique per name, bounded, safe on every file system.

    It is the name with every character other than letters, digits and ``-_.+`` replaced by
    ``_`` (no leading dot, no trailing dot or space), cut to :data:`LOG_NAME_PREFIX_BYTES` bytes;
    when that changed the name, or the name is a Windows device (``CON``, ``com1.x``...), or it
    merely looks like a name with a hash, a short hash of the exact name is added, so that ``a/b``
    and ``a_b``, ``.`` and ``..``, and long names that differ only after the cut get files of their
    own. At most 80 bytes with ``.log``; the same name gives the same file name in every run.
    """
    safe = "".join(_safe_char(c) for c in name).lstrip(".").rstrip(". ") or "model"
    cut = safe.encode("utf-8", errors="replace")[:LOG_NAME_PREFIX_BYTES].decode("utf-8", errors="ignore")
    cut = cut.rstrip(". ") or "model"
    device = cut.split(".", 1)[0].upper() in _WINDOWS_RESERVED
    if device:  # Windows takes "CON" and "CON.txt-..." alike for the console
        cut = cut.replace(".", "_", 1)
    if cut != name or device or _LOOKS_HASHED.search(name):
        digest = hashlib.sha256(name.encode("utf-8", errors="surrogatepass")).hexdigest()[:_NAME_HASH_CHARS]
        cut = f"{cut}-{digest}"
    return f"{cut}.log"


def legacy_log_file_name(name: str) -> str:
    """The log file name earlier versions used (not unique, unbounded): only to find their logs."""
    return ("".join(_safe_char(c) for c in name).lstrip(".") or "model") + ".log"


class RotatingLogFile:
    """An append-only text log that rotates by size: ``x.log`` -> ``x.log.1`` -> ... -> ``x.log.N``.

    Writing never raises, because a log file must never take the server down with it. A failure
    (disk full, permissions, a folder that vanished) starts a *failure episode*: :attr:`error` says
    what is wrong, the lines that could not be written are counted in :attr:`lost_lines`, and later
    writes try the file again at most once every ``retry_interval_s`` (in between a write costs a
    clock reading). The first write that works again ends the episode: it first writes one line
    that says how many lines were lost and when (:attr:`recovery_note`). A write cut short by a full
    disk leaves no half line behind: the file is cut back to its last complete line.

    Args:
        path: The log file.
        max_bytes: Rotate once the file reaches this size.
        backups: How many rotated files to keep.
        retry_interval_s: While writing fails, seconds between attempts.
        clock: Monotonic seconds (tests pass their own to choose the moment of a retry).
        wall_clock: Unix seconds, for the times in the recovery note.
    """

    def __init__(
        self,
        path: Path,
        max_bytes: int = DEFAULT_LOG_MAX_BYTES,
        backups: int = DEFAULT_LOG_BACKUPS,
        *,
        retry_interval_s: float = LOG_RETRY_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.retry_interval_s = retry_interval_s
        self.error: str | None = None
        """What is wrong while writing fails (``None`` while it works)."""
        self.lost_lines = 0
        """Lines not written in the current failure episode (kept after it, until the next one)."""
        self.recovery_note = ""
        """The line written when the last failure episode ended ("" before any)."""
        self._clock = clock
        self._wall_clock = wall_clock
        self._file: BinaryIO | None = None
        self._size = 0
        self._failed_at = 0.0  # Unix time the episode began
        self._last_loss_at = 0.0  # Unix time of the last lost line
        self._next_try = 0.0  # monotonic time of the next attempt while failing
        self._reason = ""

    def write_lines(self, lines: Iterable[str]) -> None:
        """Append lines (a newline is added to each); each call reaches the file before it returns."""
        batch = list(lines)
        if not batch:
            return
        if self.error is None:
            written, failure = self._write(batch)
            if failure is not None:
                self._fail(failure, len(batch) - written)
            return
        now = self._clock()
        if now < self._next_try:  # still failing, most likely: cheap until the next attempt
            self._lose(len(batch))
            return
        self._next_try = now + self.retry_interval_s
        note = self._note_for_recovery()
        written, failure = self._write([f"=== llamadash: {note} ===", *batch])
        if written > 0:  # the note is in the file: this episode is over
            self.error = None
            self.recovery_note = note
        if failure is not None:
            self._fail(failure, len(batch) - max(0, written - 1))

    def _note_for_recovery(self) -> str:
        lost = self.lost_lines
        began = _clock_text(self._failed_at)
        ended = _clock_text(self._last_loss_at or self._failed_at)
        span = f"at {began}" if began == ended else f"from {began} to {ended}"
        lines = f"{lost} line{'s' if lost != 1 else ''}"
        return f"{lines} of output could not be written to this log {span} ({self._reason})"

    def _write(self, lines: list[str]) -> tuple[int, OSError | ValueError | None]:
        """Write ``lines``; returns how many were written whole, and the failure that stopped the rest."""
        data = "".join(line + "\n" for line in lines).encode("utf-8", errors="replace")
        done = 0
        try:
            self._open()
            assert self._file is not None
            if self._size > 0 and self._size + len(data) > self.max_bytes:
                self._rotate()
                assert self._file is not None
            while done < len(data):
                written = self._file.write(data[done:])
                if not written:  # a full disk may take part of a write and refuse the rest
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                done += written
                self._size += written
        except (OSError, ValueError) as exc:
            self._cut_back(done - (data.rfind(b"\n", 0, done) + 1))
            return data.count(b"\n", 0, done), exc
        return len(lines), None

    def _cut_back(self, partial: int) -> None:
        """Remove a half-written last line (``partial`` bytes), then close the file."""
        if self._file is not None and partial > 0:
            try:
                self._file.truncate(self._size - partial)
                self._size -= partial
            except (OSError, ValueError):
                pass  # the next successful open ends the half line instead
        self.close()

    def _fail(self, exc: OSError | ValueError, lost: int) -> None:
        now = self._wall_clock()
        if self.error is None:
            self.lost_lines = 0
            self._failed_at = now
            self._next_try = self._clock() + self.retry_interval_s
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        self._reason = reason
        self.error = f"cannot write the log file {self.path}: {reason}"
        self._lose(lost)

    def _lose(self, count: int) -> None:
        if count > 0:
            self.lost_lines += count
            self._last_loss_at = self._wall_clock()

    def _open(self) -> None:
        if self._file is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Unbuffered: each write reaches the file at once, and a partial one says how far it got.
        handle = open(self.path, "a+b", buffering=0)  # noqa: SIM115 - kept open
        try:
            self._size = handle.seek(0, os.SEEK_END)
            if self._size > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":  # an earlier run stopped in the middle of a line
                    self._size += handle.write(b"\n") or 0
        except OSError:
            handle.close()
            raise
        self._file = handle

    def _rotate(self) -> None:
        self.close()
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
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


def _clock_text(unix_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unix_s))
