"""An instance's output: bytes in; lines, the rotating log file, the line buffer and log events out.

:class:`OutputPipe` splits the server's output into lines (``\\n``, ``\\r\\n`` or ``\\r``), keeps
the last ones in a bounded buffer, appends them to the rotating log file (a failing file never stops
the server: the problem is reported once per failure episode), parses each line for a
:class:`~llamadash.core.serverlog.LogEvent`, counts the finished requests and follows the progress of
a model load (while the owner says it is loading). It calls back the owner
(:class:`~llamadash.services.instance.ServerInstance`) for each line, event, finished request and
progress step, and ends each run with its :class:`~llamadash.services.restart_policy.ExitOutcome`
(the last lines, the last error line). Every line also goes through a
:class:`~llamadash.core.requests_log.RequestLogParser`: each request the server finishes (or
aborts) is handed to the owner as a :class:`~llamadash.core.requests_log.RequestRecord`, and those
still running when the output ends as incomplete ones. Qt-free: the process driver reads the bytes, the owner emits
the signals. :func:`log_file_for` says where a model's log file is.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from llamadash.core import serverlog
from llamadash.core.requests_log import RequestLogParser, RequestRecord
from llamadash.core.router import ROUTER_NAME, SPAWN_MARK, RouterRequestParser
from llamadash.core.serverlog import EventKind, LineSplitter, LogEvent, RotatingLogFile
from llamadash.services.restart_policy import CRASH_TAIL_LINES, ExitOutcome

__all__ = ["DEFAULT_BUFFER_LINES", "NOTE_PREFIX", "REQUEST_WINDOW_S", "OutputPipe", "log_file_for"]

#: Lines kept in memory per instance for the UI (older ones are in the log file).
DEFAULT_BUFFER_LINES = 5000
#: Requests per minute are counted over this window.
REQUEST_WINDOW_S = 60.0
#: How llamadash's own lines in the log begin (they are not the server's output).
NOTE_PREFIX = "=== llamadash"


def log_file_for(logs_dir: Path, name: str, *, existing: bool = False) -> Path:
    """The log file of model ``name``: ``<logs_dir>/<log_file_name(name)>`` (unique, bounded and safe).

    Args:
        logs_dir: The logs folder.
        name: The model's name.
        existing: The file to read rather than to write: where only a log of an earlier version
            exists (under its old, not always unique name), that one.
    """
    path = logs_dir / serverlog.log_file_name(name)
    if existing:
        old = logs_dir / serverlog.legacy_log_file_name(name)
        try:
            if old != path and not path.exists() and old.is_file():
                return old
        except OSError:  # e.g. an old name too long for this file system: it never was written
            pass
    return path


class OutputPipe:
    """The output of an instance's runs, one run after another.

    Args:
        log_path: The log file (rotated); ``None`` keeps no file.
        buffer_lines: Lines kept in memory.
        log_max_bytes: Size at which the log file rotates.
        log_backups: Rotated log files kept.
        on_line: Called with each complete line, after its event.
        on_event: Called with each recognised line's event (not finished requests nor timings).
        on_request: Called for each finished request.
        on_record: Called with the record of each request the server released (finished or
            aborted), and at the end of a run with those it never released (incomplete).
        model: The model's name, for the records.
        on_progress: Called with (fraction 0..1 or ``None``, stage) when the load progress changes.
        on_file_problem: Called with why the log file cannot be written, once per failure
            episode, and with "" once it is written again.
        on_slot_line: Called once per chunk of output that held a slot line (``| task``): a request
            began, went on or ended.
    """

    def __init__(
        self,
        log_path: Path | None,
        *,
        buffer_lines: int,
        log_max_bytes: int,
        log_backups: int,
        on_line: Callable[[str], None],
        on_event: Callable[[LogEvent], None],
        on_request: Callable[[], None],
        on_progress: Callable[[float | None, str], None],
        on_file_problem: Callable[[str], None],
        on_record: Callable[[RequestRecord], None] | None = None,
        model: str | None = None,
        on_slot_line: Callable[[], None] | None = None,
    ) -> None:
        self._on_slot_line = on_slot_line
        self._lines: collections.deque[str] = collections.deque(maxlen=max(1, buffer_lines))
        self._splitter = LineSplitter()
        self._logfile = RotatingLogFile(log_path, log_max_bytes, log_backups) if log_path else None
        self._finished_at: collections.deque[float] = collections.deque()
        self._on_line = on_line
        self._on_event = on_event
        self._on_request = on_request
        self._on_progress = on_progress
        self._on_file_problem = on_file_problem
        self._on_record = on_record
        # the library router's output holds its models' lines: each model's requests are its own
        self._requests: RequestLogParser | RouterRequestParser = (
            RouterRequestParser() if model == ROUTER_NAME else RequestLogParser(model)
        )
        self.loading = False
        """Set by the owner while the model loads: only then do progress lines count."""
        self.progress: tuple[float | None, str] = (None, "")
        """(fraction or ``None``, stage) of the load in progress."""
        self.last_error_line: str | None = None
        """The last error line of the current run's output."""
        self.lines_received = 0
        """Lines of output received since construction (diagnostics, benchmarks)."""

    @property
    def file_problem(self) -> str:
        """Why the log file cannot be written now ("" while it can, or without a log file)."""
        return (self._logfile.error or "") if self._logfile is not None else ""

    @property
    def file_recovery_note(self) -> str:
        """What the log file says about the lines its last failure lost ("" if it never failed)."""
        return self._logfile.recovery_note if self._logfile is not None else ""

    def begin_run(self) -> None:
        """A new run: no partial line, request, error line or progress of the last one."""
        self._splitter = LineSplitter()
        self._requests.flush()  # what a killed run left unfinished is not this run's
        self._finished_at.clear()
        self.last_error_line = None
        self.progress = (None, "")

    def feed(self, data: bytes) -> None:
        """Take a chunk of output; the lines it completes are handled now."""
        self._handle(self._splitter.feed(data))
        pending = self._splitter.pending  # a line being written: the dots of a model load
        if pending and self.loading:
            fraction = serverlog.progress_from_dots(pending)
            if fraction is not None:
                self._set_progress(fraction, "loading tensors")

    def flush(self) -> None:
        """The output ended: a last line without a line end counts too."""
        self._handle(self._splitter.flush())

    def note(self, lines: Iterable[str], *, buffered: bool = False) -> None:
        """Write llamadash's own lines (``=== ... ===``) to the log file; ``buffered``: to the buffer too."""
        batch = list(lines)
        self._write(batch)
        if buffered:
            self._lines.extend(batch)

    def end_run(self, exit_code: int | None, crashed: bool, *, pid: int | None) -> ExitOutcome:
        """The run's process is gone: its last line is handled, its end noted in the log (then closed).

        Args:
            exit_code: The exit code or signal number; ``None``: unknown (an adopted process).
            crashed: It ended by a signal or a crash.
            pid: Its process id.

        Returns:
            How it ended, with the last lines and the last error line of its output.
        """
        if exit_code is None:
            outcome = ExitOutcome.unknown(pid)
            self.note([f"=== adopted llama-server pid {pid} is gone ==="])
        else:
            self.flush()
            self._hand_on(self._requests.flush())
            outcome = ExitOutcome.of_process(
                exit_code,
                crashed,
                last_lines=self.server_tail(CRASH_TAIL_LINES),
                error_line=self.last_error_line,
            )
            self.note([f"=== llama-server {outcome.description} ==="])
        self.close_file()
        return outcome

    def close_file(self) -> None:
        """Close the log file (a later line opens it again)."""
        if self._logfile is not None:
            self._logfile.close()

    def lines(self) -> list[str]:
        """The bounded buffer of lines, oldest first."""
        return list(self._lines)

    def server_tail(self, count: int) -> list[str]:
        """The last ``count`` lines of the server's own output in the buffer (no llamadash notes)."""
        return [line for line in self._lines if not line.startswith(NOTE_PREFIX)][-count:]

    def requests_per_minute(self) -> float:
        """Requests finished in the last :data:`REQUEST_WINDOW_S` seconds of this run."""
        cutoff = time.monotonic() - REQUEST_WINDOW_S
        while self._finished_at and self._finished_at[0] < cutoff:
            self._finished_at.popleft()
        return float(len(self._finished_at))

    def _handle(self, lines: list[str]) -> None:
        if not lines:
            return
        self.lines_received += len(lines)
        self._lines.extend(lines)
        self._write(lines)
        on_line, parse, requests = self._on_line, serverlog.parse_line, self._requests
        read_at_ms: int | None = None
        for line in lines:
            event = parse(line)
            if event is not None:
                self._handle_event(event)
            if "| task" in line:  # a slot line (one substring test for all the others)
                read_at_ms = read_at_ms or time.time_ns() // 1_000_000
                self._hand_on(requests.feed(line, read_at_ms))
            elif SPAWN_MARK in line:  # the router names a model's port
                requests.feed(line)
            on_line(line)
        if read_at_ms is not None and self._on_slot_line is not None:
            self._on_slot_line()

    def _hand_on(self, records: list[RequestRecord]) -> None:
        if self._on_record is not None:
            for record in records:
                self._on_record(record)

    def _handle_event(self, event: LogEvent) -> None:
        kind = event.kind
        if kind is EventKind.REQUEST_FINISHED:
            self._finished_at.append(time.monotonic())
            self._on_request()
            return
        if kind is EventKind.ERROR:
            self.last_error_line = event.text
        elif kind is EventKind.LOAD_PROGRESS:
            if self.loading:
                self._set_progress(event.value, event.text)
        elif kind is EventKind.MODEL_LOADED:
            self._set_progress(1.0, "model loaded")
        if kind is not EventKind.TIMING:
            self._on_event(event)

    def _set_progress(self, fraction: float | None, stage: str) -> None:
        if (fraction, stage) != self.progress:
            self.progress = (fraction, stage)
            self._on_progress(fraction, stage)

    def _write(self, lines: list[str]) -> None:
        logfile = self._logfile
        if logfile is None:
            return
        failing = logfile.error is not None
        logfile.write_lines(lines)
        if (logfile.error is not None) != failing:  # an episode began or ended: say so once
            self._on_file_problem(logfile.error or "")
