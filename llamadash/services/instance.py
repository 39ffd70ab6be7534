"""One llama-server instance: a ``QObject`` that owns a private ``QProcess``, its log and its live figures.

A :class:`ServerInstance` is one of three kinds:

* **managed**: llamadash starts the process (from a :class:`LaunchPlan` that a ``prepare`` callable
  builds at each start, so a restart picks up an edited configuration), reads its output, and stops it;
* **adopted**: a llama-server that a killed dashboard left running; it is monitored through its PID
  and HTTP endpoints and can be stopped (its output is gone with the dead dashboard's pipe), and a
  restart starts it as a managed one;
* **external**: a server attached by URL; monitor only, no process control. ``start``/``stop`` begin
  and end the monitoring.

The state machine (:class:`InstanceState`): ``start`` sets ``loading`` as soon as the process runs and
``running`` only when ``GET /health`` answers 200; a load timeout ends in ``error``. ``stop`` is
asynchronous: terminate, then kill the process tree after ``stop_timeout_s``; ``stopped`` comes when the
process is gone. An unexpected exit is ``error`` with the exit code or signal and the last log lines,
optionally followed by an automatic restart (with backoff and a crash-loop cap, see
:class:`CrashPolicy`).

Everything runs on the owner's thread through the Qt event loop: the health checks and figures use
``QNetworkAccessManager``; the output is read in bounded chunks so a child that floods its output cannot
stall the loop; nothing waits on the process except :meth:`ServerInstance.wait_stopped`, which is bounded.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import psutil
from PySide6.QtCore import QByteArray, QObject, QProcess, QProcessEnvironment, QTimer, QUrl, Signal
from PySide6.QtNetwork import QNetworkAccessManager, QNetworkProxy, QNetworkReply, QNetworkRequest

from llamadash.core import serverlog
from llamadash.core.pidfile import InstanceRecord, connect_host
from llamadash.core.prometheus import REQUESTS_DEFERRED, REQUESTS_PROCESSING, CounterRates, parse_metrics
from llamadash.core.serverlog import EventKind, LineSplitter, LogEvent, RotatingLogFile
from llamadash.core.states import InstanceState

__all__ = [
    "CrashPolicy",
    "InstanceError",
    "InstanceFigures",
    "InstanceState",
    "LaunchPlan",
    "PortInUseError",
    "ServerInstance",
]

_log = logging.getLogger(__name__)

#: Lines kept in memory per instance for the UI (older ones are in the log file).
DEFAULT_BUFFER_LINES = 5000
#: Bytes of output handled per event-loop turn; the rest waits for the next turn.
READ_CHUNK_BYTES = 64 * 1024
#: How often /health is asked while a model loads (capped by the poll interval).
HEALTH_INTERVAL_MS = 200
#: Log lines quoted in a crash reason.
CRASH_TAIL_LINES = 10
#: Requests per minute are counted over this window.
REQUEST_WINDOW_S = 60.0
_MIB = 1024 * 1024


class InstanceError(Exception):
    """A start was refused before anything was launched; the message says why, for the user."""


class PortInUseError(InstanceError):
    """The instance's port is taken.

    Attributes:
        port: The port that is taken.
        suggested_port: The next free port from ``port`` on, or ``None`` if none was found.
    """

    def __init__(self, message: str, port: int, suggested_port: int | None) -> None:
        super().__init__(message)
        self.port = port
        self.suggested_port = suggested_port


@dataclass(frozen=True)
class InstanceFigures:
    """Live figures of one instance; every field is ``None`` when not known (shown as n/a).

    Attributes:
        prompt_tokens_per_s: Prompt tokens processed per second over the last poll interval
            (from ``/metrics`` counter deltas; 0 when idle, ``None`` until two scrapes exist).
        generation_tokens_per_s: Tokens generated per second, likewise.
        requests_processing: Requests being processed now (``/metrics`` gauge).
        requests_deferred: Requests waiting for a slot (``/metrics`` gauge).
        busy_slots: Slots processing now (``/slots``).
        total_slots: Slots in all (``/slots``).
        requests_per_minute: Requests finished in the last 60 s, counted from the log (managed
            instances only: an external or adopted server's output is not available).
        cpu_percent: CPU % of the process tree, summed over processes (100 = one core busy).
        rss_mb: Resident memory of the process tree, MiB.
        vram_mb: GPU memory of the process tree as NVML reports it, MiB.
    """

    prompt_tokens_per_s: float | None = None
    generation_tokens_per_s: float | None = None
    requests_processing: float | None = None
    requests_deferred: float | None = None
    busy_slots: float | None = None
    total_slots: float | None = None
    requests_per_minute: float | None = None
    cpu_percent: float | None = None
    rss_mb: float | None = None
    vram_mb: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        """The figures as a plain dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


NO_FIGURES = InstanceFigures()


@dataclass(frozen=True)
class LaunchPlan:
    """Everything needed to launch one process, checked before launch.

    Attributes:
        argv: The command (argv[0] is the executable); never a shell string.
        env: Variables added to the dashboard's environment (secrets such as ``LLAMA_API_KEY``).
        host: The address the server binds (``0.0.0.0`` is reached on loopback).
        port: Its port; ``None`` for a process that is not a server.
        api_key: Sent as ``Authorization: Bearer`` to ``/metrics`` and ``/slots``.
        api_prefix: The server's ``--api-prefix``.
        scheme: ``http`` or ``https`` (with ``--ssl-*``).
        binary: The executable, recorded for orphan detection.
        health_check: ``False`` for a process that is no server (benchmarks): it is ``running`` as
            soon as it started.
        counts_requests: Whether the log shows each finished request (not with ``--log-disable`` or
            a verbosity below 3); when it does not, requests per minute are ``None``, not 0.
        warnings: What the user should know about this launch (e.g. a server reachable from other
            machines without an API key); shown when it starts, never a refusal.
    """

    argv: tuple[str, ...]
    env: dict[str, str]
    host: str = "127.0.0.1"
    port: int | None = None
    api_key: str | None = None
    api_prefix: str = ""
    scheme: str = "http"
    binary: str = ""
    health_check: bool = True
    counts_requests: bool = True
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class CrashPolicy:
    """What happens after an unexpected exit when auto-restart is on.

    The n-th crash within ``window_s`` is followed by a restart after
    ``backoff_s * 2 ** (n - 1)`` seconds (at most ``max_backoff_s``); the ``max_crashes``-th crash
    within the window is a crash loop: the instance stays in ``error``.

    A rate alone lets a slow loop (a crash every ``window_s / 2`` seconds) go on for ever, so
    failed restarts are also counted: an automatic restart whose run ends unexpectedly within
    ``stable_run_s`` seconds failed; after ``max_failed_restarts`` failed restarts in a row the
    instance stays in ``error`` too. A run that stays up ``stable_run_s`` seconds, or a start by
    the user, begins the count again.
    """

    backoff_s: float = 2.0
    max_crashes: int = 3
    window_s: float = 60.0
    max_backoff_s: float = 60.0
    max_failed_restarts: int = 5
    stable_run_s: float = 300.0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def describe_exit(exit_code: int, crashed: bool) -> str:
    """``"exited with code 1"`` or ``"killed by signal 9 (SIGKILL)"``."""
    if not crashed:
        return f"exited with code {exit_code}"
    if sys.platform == "win32":
        return f"crashed (exit code {exit_code:#x})"
    try:
        name = signal.Signals(exit_code).name
    except ValueError:
        return f"killed by signal {exit_code}"
    return f"killed by signal {exit_code} ({name})"


class _ProcessTreeStats:
    """CPU % and RSS of a process and its children, keeping psutil objects between polls.

    psutil's ``cpu_percent`` compares with the previous call on the same object; the first call
    of each object means nothing, so a brand-new root reads ``None``.
    """

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}

    def read(self, pid: int | None) -> tuple[float | None, float | None, list[int]]:
        if pid is None:
            self._procs.clear()
            return None, None, []
        try:
            root = self._procs.get(pid) or psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            self._procs.clear()
            return None, None, []
        cpu_total: float | None = 0.0
        rss_total: float | None = 0.0
        current: dict[int, psutil.Process] = {}
        for proc in tree:
            known = self._procs.get(proc.pid)
            handle = known if known is not None else proc
            current[proc.pid] = handle
            try:
                with handle.oneshot():
                    cpu = handle.cpu_percent(None)
                    rss = handle.memory_info().rss / _MIB
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                current.pop(proc.pid, None)
                continue
            except psutil.AccessDenied:
                cpu, rss = math.nan, math.nan
            if known is None and proc.pid == pid:
                cpu_total = None  # first reading of the root: no baseline yet
            elif cpu_total is not None:
                cpu_total = None if math.isnan(cpu) else cpu_total + cpu
            if rss_total is not None:
                rss_total = None if math.isnan(rss) else rss_total + rss
        self._procs = current
        if pid not in current:
            return None, None, []
        return cpu_total, rss_total, list(current)


class ServerInstance(QObject):
    """One llama-server: its process (managed or adopted) or URL (external), state, log and figures.

    Args:
        name: The model's name (or a label for an external server).
        prepare: Builds the :class:`LaunchPlan` at each start; raises :class:`InstanceError` to refuse.
            Required unless ``external_url`` is given.
        model_id: The model's database id (``None`` for external servers and benchmarks).
        log_path: The per-instance log file (rotated); ``None`` keeps no file.
        external_url: Attach to this server by URL: monitor only.
        api_key: For an external or adopted server, the key sent to ``/metrics`` and ``/slots``.
        adopted: A record of a llama-server left behind by a killed dashboard, to monitor and stop.
        poll_interval_s: Seconds between figure polls.
        load_timeout_s: Seconds a start may spend in ``loading`` before it is stopped with ``error``.
        stop_timeout_s: Seconds between terminate and kill when stopping.
        buffer_lines: Lines of output kept in memory.
        log_max_bytes: Size at which the log file rotates.
        log_backups: Rotated log files kept.
        crash_policy: Auto-restart backoff and crash-loop cap.
        auto_restart: Restart after an unexpected exit.
        vram_reader: Returns PID -> VRAM MiB (``Nvml.process_memory_mb``), or ``None`` for no GPU figures.
        parent: The Qt parent.
    """

    stateChanged = Signal(str, str)
    """(new state value, reason): reason is "" or why (error text, exit description, log tail)."""

    logLine = Signal(str)
    """One complete line of the server's output (``\\n``, ``\\r\\n`` or ``\\r`` ended it)."""

    figuresChanged = Signal(object)
    """An :class:`InstanceFigures`, after each poll (all ``None`` once stopped)."""

    requestFinished = Signal()
    """One finished request was parsed from the log (``slot release: ... stop processing``)."""

    loadProgress = Signal(object, str)
    """(fraction 0..1 or ``None``, stage text) while the model loads, from the log."""

    spawned = Signal(int)
    """The PID of a process just created, emitted before anything else happens (it may not have
    executed llama-server yet): whoever records PIDs must do it now, so that a dashboard killed a
    moment later leaves nothing it cannot find."""

    eventOccurred = Signal(str, "qint64")  # type: ignore[arg-type]  # a 64-bit int: Unix ms overflow int
    """(event, Unix ms as a Python int): ``"started"``, ``"ready"``, ``"stopped"`` or ``"crashed"``."""

    logEvent = Signal(object)
    """A recognised log line (:class:`~llamadash.core.serverlog.LogEvent`): errors, listening, loaded..."""

    logFileProblem = Signal(str)
    """Why the log file cannot be written (once per failure episode), or "" once it is written again.

    The server goes on either way; its lines stay in :meth:`log_lines` and ``logLine``."""

    def __init__(
        self,
        name: str,
        *,
        prepare: Callable[[], LaunchPlan] | None = None,
        model_id: int | None = None,
        log_path: Path | None = None,
        external_url: str | None = None,
        api_key: str | None = None,
        adopted: InstanceRecord | None = None,
        poll_interval_s: float = 1.0,
        load_timeout_s: float = 600.0,
        stop_timeout_s: float = 10.0,
        buffer_lines: int = DEFAULT_BUFFER_LINES,
        log_max_bytes: int = serverlog.DEFAULT_LOG_MAX_BYTES,
        log_backups: int = serverlog.DEFAULT_LOG_BACKUPS,
        crash_policy: CrashPolicy | None = None,
        auto_restart: bool = False,
        vram_reader: Callable[[], dict[int, float | None]] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        if external_url is None and prepare is None:
            raise ValueError("a managed instance needs a prepare callable")
        self._name = name
        self._prepare = prepare
        self._model_id = model_id
        self._log_path = Path(log_path) if log_path is not None else None
        self._external = external_url is not None
        self._poll_interval_s = float(poll_interval_s)
        self._load_timeout_s = float(load_timeout_s)
        self._stop_timeout_s = float(stop_timeout_s)
        self._crash_policy = crash_policy or CrashPolicy()
        self._auto_restart = auto_restart
        self._vram_reader = vram_reader

        self._state = InstanceState.STOPPED
        self._reason = ""
        self._plan: LaunchPlan | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None
        self._scheme = "http"
        self._api_prefix = ""
        self._api_key = api_key

        self._process: QProcess | None = None
        self._adopted: psutil.Process | None = None
        self._adopted_record: InstanceRecord | None = None
        self._pid: int | None = None
        self._started_at_ms: int | None = None
        self._ready_at_ms: int | None = None
        self._stopping = False
        self._error_after_stop: str | None = None
        self._restart_after_stop = False
        self._exit: tuple[int, bool] | None = None
        self._exit_code: int | None = None
        self._exit_signal: int | None = None
        self._crashes: collections.deque[float] = collections.deque()
        self._failed_restarts = 0
        self._automatic_start = False  # the start under way is an automatic restart
        self._run_is_restart = False  # the current (or last) run was started by an automatic restart
        self._started_mono: float | None = None
        self._epoch = 0

        self._lines: collections.deque[str] = collections.deque(maxlen=max(1, buffer_lines))
        self._splitter = LineSplitter()
        self._logfile = (
            RotatingLogFile(self._log_path, log_max_bytes, log_backups) if self._log_path else None
        )
        self._drain_scheduled = False
        self._finished_at: collections.deque[float] = collections.deque()
        self._last_error_line: str | None = None
        self._progress: tuple[float | None, str] = (None, "")
        self._listening_url: str | None = None
        self.lines_received = 0
        """Lines of output received since construction (diagnostics, benchmarks)."""

        self._nam = QNetworkAccessManager(self)
        self._nam.finished.connect(self._on_reply)
        self._in_flight: dict[str, QNetworkReply] = {}
        self._tick_pending: set[str] = set()
        self._rates = CounterRates()
        self._gauges: tuple[float | None, float | None] = (None, None)
        self._slots: tuple[float | None, float | None] = (None, None)
        self._metrics_supported = True
        self._slots_supported = True
        self._tree = _ProcessTreeStats()
        self._proc_figures: tuple[float | None, float | None, float | None] = (None, None, None)
        self._figures = NO_FIGURES

        self._health_timer = QTimer(self)
        self._health_timer.setInterval(min(HEALTH_INTERVAL_MS, max(50, round(self._poll_interval_s * 1000))))
        self._health_timer.timeout.connect(self._check_health)
        self._poll_timer = QTimer(self)
        self._poll_timer.setInterval(max(50, round(self._poll_interval_s * 1000)))
        self._poll_timer.timeout.connect(self._poll)
        self._load_timer = self._single_shot(self._on_load_timeout)
        self._kill_timer = self._single_shot(self._kill_now)
        self._restart_timer = self._single_shot(self._auto_restart_now)
        self._watch_timer = QTimer(self)  # an adopted process being stopped: is it gone yet?
        self._watch_timer.setInterval(100)
        self._watch_timer.timeout.connect(self._watch_adopted)

        if external_url is not None:
            self._set_external_url(external_url)
        if adopted is not None:
            self._adopt(adopted)

    def _single_shot(self, slot: Callable[[], None]) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.timeout.connect(slot)
        return timer

    # -- properties ---------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The model's name (or the external server's label)."""
        return self._name

    @property
    def model_id(self) -> int | None:
        """The model's database id; ``None`` for an external server."""
        return self._model_id

    @property
    def host(self) -> str:
        """The address the server binds (as configured)."""
        return self._host

    @property
    def port(self) -> int | None:
        """The server's port (known once started, or from the URL)."""
        return self._port

    @property
    def url(self) -> str:
        """The base URL clients use, e.g. ``http://127.0.0.1:8080`` (with the API prefix)."""
        host = connect_host(self._host)
        host = f"[{host}]" if ":" in host else host
        port = f":{self._port}" if self._port is not None else ""
        return f"{self._scheme}://{host}{port}{self._api_prefix}"

    @property
    def pid(self) -> int | None:
        """The llama-server process id while there is one."""
        return self._pid

    @property
    def state(self) -> InstanceState:
        """The current state."""
        return self._state

    @property
    def reason(self) -> str:
        """Why the instance is in its state ("" when there is nothing to say)."""
        return self._reason

    @property
    def started_at_ms(self) -> int | None:
        """When the process was started (Unix ms)."""
        return self._started_at_ms

    @property
    def ready_at_ms(self) -> int | None:
        """When ``/health`` first answered 200 in this run (Unix ms)."""
        return self._ready_at_ms

    @property
    def log_path(self) -> Path | None:
        """The per-instance log file; ``None`` for an external server."""
        return self._log_path

    @property
    def log_file_problem(self) -> str:
        """Why the log file cannot be written now ("" while it can, or without a log file)."""
        return (self._logfile.error or "") if self._logfile is not None else ""

    @property
    def log_file_recovery_note(self) -> str:
        """What the log file says about the lines its last failure lost ("" if it never failed)."""
        return self._logfile.recovery_note if self._logfile is not None else ""

    @property
    def external(self) -> bool:
        """True for a server attached by URL (no process control)."""
        return self._external

    @property
    def adopted(self) -> bool:
        """True while the process is one a killed dashboard left behind (no output available)."""
        return self._adopted is not None

    @property
    def stopping(self) -> bool:
        """True between :meth:`stop` and the process being gone."""
        return self._stopping

    @property
    def active(self) -> bool:
        """True while there is a process (or, external: while monitoring)."""
        if self._external:
            return self._poll_timer.isActive()
        return self._process is not None or self._adopted is not None

    @property
    def figures(self) -> InstanceFigures:
        """The latest figures."""
        return self._figures

    @property
    def load_progress(self) -> tuple[float | None, str]:
        """(fraction or ``None``, stage) of the load in progress, from the log."""
        return self._progress

    @property
    def exit_code(self) -> int | None:
        """The last run's exit code (``None`` if it was killed by a signal or has not ended)."""
        return self._exit_code

    @property
    def exit_signal(self) -> int | None:
        """The signal that ended the last run, if one did (POSIX)."""
        return self._exit_signal

    @property
    def auto_restart(self) -> bool:
        """Restart after an unexpected exit (see :class:`CrashPolicy`)."""
        return self._auto_restart

    @auto_restart.setter
    def auto_restart(self, enabled: bool) -> None:
        self._auto_restart = bool(enabled)
        if not enabled:
            self._restart_timer.stop()

    @property
    def restart_pending(self) -> bool:
        """True while an automatic restart is scheduled."""
        return self._restart_timer.isActive()

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the user should know about the latest start (see :attr:`LaunchPlan.warnings`)."""
        return self._plan.warnings if self._plan is not None and self._adopted is None else ()

    @property
    def failed_restarts(self) -> int:
        """Automatic restarts that failed in a row (see :class:`CrashPolicy`)."""
        return self._failed_restarts

    @property
    def launch_plan(self) -> LaunchPlan | None:
        """The plan of the latest start (``None`` before one, and for external/adopted servers)."""
        return self._plan

    def set_prepare(self, prepare: Callable[[], LaunchPlan]) -> None:
        """Use ``prepare`` to build the launch plan from the next start on."""
        self._prepare = prepare

    def log_lines(self) -> list[str]:
        """The bounded buffer of output lines, oldest first."""
        return list(self._lines)

    def requests_per_minute(self) -> float | None:
        """Requests finished in the last 60 s (from the log); ``None`` when the log is not available."""
        if self._external or self._adopted is not None or self._started_at_ms is None:
            return None
        if self._plan is not None and not self._plan.counts_requests:
            return None
        cutoff = time.monotonic() - REQUEST_WINDOW_S
        while self._finished_at and self._finished_at[0] < cutoff:
            self._finished_at.popleft()
        return float(len(self._finished_at))

    # -- control ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server (external: start monitoring it).

        Raises:
            InstanceError: The start was refused before launch (already running, binary or model
                missing, invalid configuration, port taken...), or the process could not be
                executed (then the state is also ``error``).
        """
        if self._external:
            if not self._poll_timer.isActive():
                self._epoch += 1
                self._rates.reset()
                self._set_state(InstanceState.LOADING, "connecting")
                self._poll_timer.start()
                self._poll()
            return
        if self._process is not None or self._adopted is not None:
            if self._stopping:
                raise InstanceError(f"{self._name} is still stopping; try again when it has stopped")
            raise InstanceError(f"{self._name} is already {self._state.value}")
        self._restart_timer.stop()
        automatic, self._automatic_start = self._automatic_start, False
        if not automatic:
            self._failed_restarts = 0  # the user starts afresh
        assert self._prepare is not None
        plan = self._prepare()
        self._launch(plan, automatic=automatic)

    def stop(self) -> None:
        """Stop the server; asynchronous: ``stateChanged("stopped")`` comes when the process is gone.

        Terminates the process, then kills its whole tree after ``stop_timeout_s`` (on Windows the
        tree is killed at once: console programs ignore the polite request). External servers: stops
        the monitoring. Stopping an instance that has no process (e.g. in ``error``, perhaps with an
        automatic restart pending) cancels the restart and sets ``stopped`` at once.
        """
        self._restart_timer.stop()
        self._restart_after_stop = False
        if self._external:
            if self._poll_timer.isActive() or self._state is not InstanceState.STOPPED:
                self._halt_polling()
                self._set_state(InstanceState.STOPPED, "")
            return
        if self._adopted is not None:
            self._stop_adopted()
            return
        if self._process is None:
            self._set_state(InstanceState.STOPPED, "")
            return
        if self._stopping:
            return
        self._stopping = True
        self._load_timer.stop()
        self._stop_http()
        if sys.platform == "win32":
            self._kill_now()
            return
        self._process.terminate()
        self._kill_timer.start(max(0, round(self._stop_timeout_s * 1000)))

    def restart(self) -> None:
        """Stop (if running) and start again with the current configuration.

        A refusal of the new start (e.g. the configuration became invalid) leaves the instance in
        ``error`` with the reason. Restarting an instance that has no process is :meth:`start`.

        Raises:
            InstanceError: Only when there was no process to stop and the start was refused.
        """
        if self._external:
            self.stop()
            self.start()
            return
        if not self.active:
            self._restart_timer.stop()
            self.start()
            return
        if self._adopted is not None:
            self._stop_adopted(restart=True)
            return
        self.stop()
        self._restart_after_stop = True  # after stop(), which cancels any restart

    def wait_stopped(self, timeout_s: float) -> bool:
        """Wait (blocking, at most ``timeout_s``) for a stopping process to end; for quitting only.

        Returns:
            True if no process is left.
        """
        deadline = time.monotonic() + max(0.0, timeout_s)
        if self._process is not None:
            remaining = max(0, round((deadline - time.monotonic()) * 1000))
            self._process.waitForFinished(remaining)
            self._flush_remaining()
        while self._adopted is not None and time.monotonic() < deadline:
            self._watch_adopted()
            if self._adopted is not None:
                time.sleep(0.05)
        return not self.active

    def kill(self) -> None:
        """Kill the process tree now (the escalation of :meth:`stop`)."""
        if self._process is not None or self._adopted is not None:
            self._stopping = True
            self._kill_now()

    def set_external_api_key(self, api_key: str | None) -> None:
        """Change the key sent to an external or adopted server's ``/metrics`` and ``/slots``."""
        self._api_key = api_key

    # -- launching ----------------------------------------------------------------------------------

    def _start_reporting(self) -> None:
        try:
            self.start()
        except InstanceError as exc:
            if self._state is not InstanceState.ERROR or self._reason != str(exc):
                self._set_state(InstanceState.ERROR, str(exc))

    def _launch(self, plan: LaunchPlan, *, automatic: bool = False) -> None:
        self._epoch += 1
        self._plan = plan
        self._host, self._port = plan.host, plan.port
        self._scheme, self._api_prefix, self._api_key = plan.scheme, plan.api_prefix, plan.api_key
        self._reset_run()
        self._configure_proxy()
        process = QProcess(self)
        process.setProgram(plan.argv[0])
        process.setArguments(list(plan.argv[1:]))
        environment = QProcessEnvironment.systemEnvironment()
        for key, value in plan.env.items():
            environment.insert(key, value)
        process.setProcessEnvironment(environment)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        if sys.platform != "win32" and hasattr(QProcess, "UnixProcessParameters"):
            # Own session: a Ctrl-C in the dashboard's terminal must not reach the servers (the dashboard
            # stops them itself); default signal dispositions (Python ignores SIGPIPE); no leaked fds.
            params = QProcess.UnixProcessParameters()
            flags = (
                QProcess.UnixProcessFlag.ResetSignalHandlers | QProcess.UnixProcessFlag.CloseFileDescriptors
            )
            if hasattr(QProcess.UnixProcessFlag, "CreateNewSession"):
                flags |= QProcess.UnixProcessFlag.CreateNewSession
            params.flags = flags
            params.lowestFileDescriptorToClose = 3
            process.setUnixProcessParameters(params)
        process.readyReadStandardOutput.connect(self._on_ready_read)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_process_error)
        self._write_file([f"=== llamadash: starting {' '.join(plan.argv)} ==="])
        if plan.warnings:
            self._write_file([f"=== llamadash: warning: {warning} ===" for warning in plan.warnings])
        self._run_is_restart = automatic
        process.start()
        # The child exists from here on (fork done; exec may still be on its way): tell the recorder
        # before anything else, so that a dashboard killed now leaves a process somebody can find.
        self._pid = int(process.processId()) or None
        self._started_at_ms = _now_ms()
        self._started_mono = time.monotonic()
        if self._pid is not None:
            self.spawned.emit(self._pid)
        if not process.waitForStarted(10_000):  # fork/exec: milliseconds; bounded in any case
            message = f"cannot run {plan.argv[0]}: {process.errorString()}"
            self._pid = None
            process.deleteLater()
            self._write_file([f"=== {message} ==="])
            if self._logfile is not None:
                self._logfile.close()
            self._set_state(InstanceState.ERROR, message)
            raise InstanceError(message)
        process.closeWriteChannel()
        self._process = process
        self._pid = int(process.processId()) or self._pid
        self._set_state(InstanceState.LOADING, "")
        self.eventOccurred.emit("started", self._started_at_ms)
        if plan.health_check and plan.port is not None:
            self._poll_timer.start()  # CPU and memory while it loads (a big model takes minutes)
            self._health_timer.start()
            if self._load_timeout_s > 0:
                self._load_timer.start(round(self._load_timeout_s * 1000))
            self._check_health()
        else:
            self._became_ready()

    def _reset_run(self) -> None:
        self._stopping = False
        self._error_after_stop = None
        self._exit = None
        self._exit_code = self._exit_signal = None
        self._ready_at_ms = None
        self._splitter = LineSplitter()
        self._finished_at.clear()
        self._last_error_line = None
        self._progress = (None, "")
        self._listening_url = None
        self._rates.reset()
        self._gauges = (None, None)
        self._slots = (None, None)
        self._metrics_supported = self._slots_supported = True
        self._tree = _ProcessTreeStats()
        self._proc_figures = (None, None, None)

    def _adopt(self, record: InstanceRecord) -> None:
        try:
            proc = psutil.Process(record.pid)
        except psutil.Error as exc:
            raise InstanceError(f"process {record.pid} is gone: {exc}") from None
        self._adopted = proc
        self._adopted_record = record
        self._pid = record.pid
        self._host, self._port = record.host, record.port
        self._started_at_ms = record.started_at_ms
        self._configure_proxy()
        self._epoch += 1
        line = (
            f"=== llamadash: adopted llama-server pid {record.pid} left behind by a dashboard that was "
            "killed; its earlier output is in the log file, new output cannot be read ==="
        )
        self._write_file([line])
        self._lines.append(line)
        self._state = InstanceState.LOADING  # the first /health answer decides; no signal before connect
        self._poll_timer.start()
        QTimer.singleShot(0, self._poll)

    def _set_external_url(self, url: str) -> None:
        qurl = QUrl(url.strip())
        if not qurl.isValid() or qurl.scheme() not in ("http", "https") or not qurl.host():
            raise InstanceError(f"not an http(s) URL: {url!r}")
        self._scheme = qurl.scheme()
        self._host = qurl.host()
        self._port = qurl.port(443 if self._scheme == "https" else 80)
        self._api_prefix = qurl.path().rstrip("/")
        self._configure_proxy()

    # -- state --------------------------------------------------------------------------------------

    def _set_state(self, state: InstanceState, reason: str) -> None:
        if state is self._state and reason == self._reason:
            return
        self._state = state
        self._reason = reason
        self.stateChanged.emit(state.value, reason)

    def _became_ready(self) -> None:
        self._health_timer.stop()
        self._load_timer.stop()
        self._ready_at_ms = _now_ms()
        self._set_state(InstanceState.RUNNING, "")
        self.eventOccurred.emit("ready", self._ready_at_ms)
        self._poll_timer.start()
        self._poll()

    def _on_load_timeout(self) -> None:
        if self._state is not InstanceState.LOADING or self._process is None:
            return
        self._error_after_stop = (
            f"{self._name} did not become ready within {self._load_timeout_s:g} s (the load timeout); "
            "it was stopped"
        )
        self.stop()

    # -- process events -----------------------------------------------------------------------------

    def _on_process_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            return  # reported by _launch
        if self._process is not None:
            _log.debug("%s: process error %s: %s", self._name, error, self._process.errorString())

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        if self._process is None or self._exit is not None:
            return
        self._exit = (int(exit_code), exit_status == QProcess.ExitStatus.CrashExit)
        self._kill_timer.stop()
        if not self._drain_scheduled:
            self._drain()

    def _flush_remaining(self) -> None:
        """Read everything the process left (quitting: no time for the chunked path)."""
        while self._process is not None and self._process.bytesAvailable() > 0:
            self._handle_output(bytes(self._process.read(READ_CHUNK_BYTES).data()))
        if self._process is not None and self._exit is not None:
            self._finalize_exit()

    def _finalize_exit(self) -> None:
        process = self._process
        assert process is not None and self._exit is not None
        self._handle_lines(self._splitter.flush())
        exit_code, crashed = self._exit
        self._exit_code = None if crashed else exit_code
        self._exit_signal = exit_code if crashed and sys.platform != "win32" else None
        description = describe_exit(exit_code, crashed)
        self._write_file([f"=== llama-server {description} ==="])
        self._process = None
        process.deleteLater()
        self._end_run()
        expected = self._stopping
        self._stopping = False
        now = _now_ms()
        if self._error_after_stop is not None:
            reason, self._error_after_stop = self._error_after_stop, None
            self._set_state(InstanceState.ERROR, reason)
            self.eventOccurred.emit("stopped", now)
        elif expected:
            self._set_state(InstanceState.STOPPED, "")
            self.eventOccurred.emit("stopped", now)
        elif not crashed and exit_code == 0 and self._state is InstanceState.RUNNING:
            self._set_state(InstanceState.STOPPED, f"llama-server {description} by itself")
            self.eventOccurred.emit("stopped", now)
        else:
            self._exit_unexpectedly(description, now)
        if self._restart_after_stop:
            self._restart_after_stop = False
            self._start_reporting()

    def _exit_unexpectedly(self, description: str, now_ms: int) -> None:
        reason = f"llama-server {description}"
        if self._last_error_line:
            reason += f": {self._last_error_line}"
        if self._auto_restart:
            reason += self._schedule_auto_restart()
        tail = [line for line in self._lines if not line.startswith("=== llamadash")][-CRASH_TAIL_LINES:]
        if tail:
            reason += "\nlast log lines:\n" + "\n".join(tail)
        self._set_state(InstanceState.ERROR, reason)
        self.eventOccurred.emit("crashed", now_ms)

    def _schedule_auto_restart(self) -> str:
        policy = self._crash_policy
        now = time.monotonic()
        ran_s = now - self._started_mono if self._started_mono is not None else 0.0
        if ran_s >= policy.stable_run_s:
            self._failed_restarts = 0  # it had stayed up: whatever came before is forgiven
        elif self._run_is_restart:
            self._failed_restarts += 1
        if self._failed_restarts >= policy.max_failed_restarts:
            return (
                f" (automatic restart gave up: {self._failed_restarts} restarts in a row failed, "
                f"none stayed up {policy.stable_run_s:g} s)"
            )
        self._crashes.append(now)
        while self._crashes and self._crashes[0] < now - policy.window_s:
            self._crashes.popleft()
        count = len(self._crashes)
        if count >= policy.max_crashes:
            return f" (crash loop: {count} crashes within {policy.window_s:g} s; automatic restart gave up)"
        delay = min(policy.max_backoff_s, policy.backoff_s * 2 ** (count - 1))
        self._restart_timer.start(max(0, round(delay * 1000)))
        return f" (restarting in {delay:g} s: crash {count} of {policy.max_crashes} allowed within {policy.window_s:g} s)"

    def _auto_restart_now(self) -> None:
        if self.active:
            return
        self._automatic_start = True
        self._start_reporting()
        self._automatic_start = False

    def _end_run(self) -> None:
        """The process is gone: stop every timer and request, blank the figures, close the log file."""
        if self._logfile is not None:
            self._logfile.close()
        self._pid = None
        self._adopted = None
        self._adopted_record = None
        self._halt_polling()

    def _stop_http(self) -> None:
        """No more requests (each request closes its connection, so none is left open).

        ``QNetworkAccessManager.clearConnectionCache()`` is not used: called while replies are being
        aborted it leaves posted events for deleted objects behind (a crash later on).
        """
        self._epoch += 1
        self._health_timer.stop()
        self._poll_timer.stop()
        for reply in list(self._in_flight.values()):
            reply.abort()
        self._in_flight.clear()
        self._tick_pending.clear()

    def _halt_polling(self) -> None:
        self._stop_http()
        for timer in (self._load_timer, self._kill_timer, self._watch_timer):
            timer.stop()
        self._rates.reset()
        self._tree = _ProcessTreeStats()
        if self._figures != NO_FIGURES:
            self._figures = NO_FIGURES
            self.figuresChanged.emit(NO_FIGURES)

    def _kill_now(self) -> None:
        pid = self._pid
        children: list[psutil.Process] = []
        if pid is not None:
            try:
                children = psutil.Process(pid).children(recursive=True)
            except psutil.Error:
                children = []
        if self._process is not None:
            self._process.kill()
        elif self._adopted is not None:
            with contextlib.suppress(psutil.Error):
                self._adopted.kill()
        for child in children:  # router mode's per-model servers, or anything the server spawned
            with contextlib.suppress(psutil.Error):
                child.kill()

    # -- adopted processes --------------------------------------------------------------------------

    def _stop_adopted(self, restart: bool = False) -> None:
        assert self._adopted is not None
        self._restart_after_stop = restart
        if self._stopping:
            return
        self._stopping = True
        self._stop_http()
        if sys.platform == "win32":
            self._kill_now()
        else:
            try:
                for child in self._adopted.children(recursive=True):
                    child.terminate()
                self._adopted.terminate()
            except psutil.Error:
                pass
            self._kill_timer.start(max(0, round(self._stop_timeout_s * 1000)))
        self._watch_timer.start()

    def _adopted_alive(self) -> bool:
        proc = self._adopted
        if proc is None:
            return False
        try:
            return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def _watch_adopted(self) -> None:
        if self._adopted is None or self._adopted_alive():
            return
        pid = self._pid
        expected = self._stopping
        self._stopping = False
        self._write_file([f"=== adopted llama-server pid {pid} is gone ==="])
        self._end_run()
        now = _now_ms()
        if expected:
            self._set_state(InstanceState.STOPPED, "")
            self.eventOccurred.emit("stopped", now)
        else:
            reason = f"llama-server (pid {pid}, adopted) exited; its exit status is unknown"
            self._set_state(InstanceState.ERROR, reason)
            self.eventOccurred.emit("crashed", now)
        if self._restart_after_stop:
            self._restart_after_stop = False
            self._start_reporting()

    # -- output -------------------------------------------------------------------------------------

    def _on_ready_read(self) -> None:
        if not self._drain_scheduled:
            self._drain()

    def _drain(self) -> None:
        """Handle at most one chunk of output, then yield to the event loop if more is waiting."""
        self._drain_scheduled = False
        process = self._process
        if process is None:
            return
        if process.bytesAvailable() > 0:
            self._handle_output(bytes(process.read(READ_CHUNK_BYTES).data()))
        if self._process is not process:
            return
        if process.bytesAvailable() > 0:
            self._drain_scheduled = True
            QTimer.singleShot(0, self._drain)
        elif self._exit is not None:
            self._finalize_exit()

    def _handle_output(self, data: bytes) -> None:
        lines = self._splitter.feed(data)
        if lines:
            self._handle_lines(lines)
        pending = self._splitter.pending
        if pending and self._state is InstanceState.LOADING:
            fraction = serverlog.progress_from_dots(pending)
            if fraction is not None:
                self._set_progress(fraction, "loading tensors")

    def _handle_lines(self, lines: list[str]) -> None:
        if not lines:
            return
        self.lines_received += len(lines)
        self._lines.extend(lines)
        self._write_file(lines)
        emit = self.logLine.emit
        for line in lines:
            event = serverlog.parse_line(line)
            if event is not None:
                self._handle_event(event)
            emit(line)

    def _handle_event(self, event: LogEvent) -> None:
        kind = event.kind
        if kind is EventKind.REQUEST_FINISHED:
            self._finished_at.append(time.monotonic())
            self.requestFinished.emit()
        elif kind is EventKind.ERROR:
            self._last_error_line = event.text
        elif kind is EventKind.LOAD_PROGRESS:
            if self._state is InstanceState.LOADING:
                self._set_progress(event.value, event.text)
        elif kind is EventKind.MODEL_LOADED:
            self._set_progress(1.0, "model loaded")
        elif kind is EventKind.LISTENING:
            self._listening_url = event.url
        if kind is not EventKind.REQUEST_FINISHED and kind is not EventKind.TIMING:
            self.logEvent.emit(event)

    def _set_progress(self, fraction: float | None, stage: str) -> None:
        if (fraction, stage) != self._progress:
            self._progress = (fraction, stage)
            self.loadProgress.emit(fraction, stage)

    def _write_file(self, lines: list[str]) -> None:
        logfile = self._logfile
        if logfile is None:
            return
        failing = logfile.error is not None
        logfile.write_lines(lines)
        if (logfile.error is not None) != failing:  # an episode began or ended: say so once
            self.logFileProblem.emit(logfile.error or "")

    # -- HTTP ---------------------------------------------------------------------------------------

    def _request(self, path: str, kind: str, *, auth: bool) -> bool:
        if kind in self._in_flight:
            return False  # the previous one is still on its way: never pile up requests
        request = QNetworkRequest(QUrl(self.url + path))
        timeout_ms = max(1000, round(self._poll_interval_s * 1000 * 2))
        request.setTransferTimeout(timeout_ms)
        # A fresh connection per request: an idle keep-alive connection would delay the server's own
        # graceful shutdown (and a few local connections a second cost nothing).
        request.setRawHeader(QByteArray(b"Connection"), QByteArray(b"close"))
        if auth and self._api_key:
            request.setRawHeader(QByteArray(b"Authorization"), QByteArray(f"Bearer {self._api_key}".encode()))
        reply = self._nam.get(request)
        # Tagged, not captured in a closure: the manager's ``finished`` brings the reply back, and
        # no Python callable outlives it.
        reply.setProperty("llamadash_kind", kind)
        reply.setProperty("llamadash_epoch", self._epoch)
        self._in_flight[kind] = reply
        return True

    def _configure_proxy(self) -> None:
        """A proxy from the environment must never see requests to this machine's servers."""
        if connect_host(self._host) in ("127.0.0.1", "::1", "localhost"):
            self._nam.setProxy(QNetworkProxy(QNetworkProxy.ProxyType.NoProxy))

    def _check_health(self) -> None:
        if self._state is InstanceState.LOADING and self._process is not None and not self._stopping:
            self._request("/health", "health", auth=False)

    def _on_reply(self, reply: QNetworkReply) -> None:
        reply.deleteLater()
        kind, epoch = reply.property("llamadash_kind"), reply.property("llamadash_epoch")
        if self._in_flight.get(kind) is reply:
            del self._in_flight[kind]
        if epoch != self._epoch:
            return
        status = reply.attribute(QNetworkRequest.Attribute.HttpStatusCodeAttribute)
        status = int(status) if status is not None else None
        body = bytes(reply.readAll().data())
        if kind == "health":
            self._on_health(status, reply.errorString() if status is None else "")
        elif kind == "metrics":
            self._on_metrics(status, body)
        elif kind == "slots":
            self._on_slots(status, body)
        if kind in self._tick_pending:
            self._tick_pending.discard(kind)
            if not self._tick_pending:
                self._emit_figures()

    def _on_health(self, status: int | None, error: str) -> None:
        if not self._external and self._adopted is None:
            if status == 200 and self._state is InstanceState.LOADING and not self._stopping:
                self._became_ready()
            return
        if status == 200:
            if self._state is not InstanceState.RUNNING:
                first = self._ready_at_ms is None
                self._ready_at_ms = self._ready_at_ms or _now_ms()
                self._set_state(InstanceState.RUNNING, "")
                if first:
                    self.eventOccurred.emit("ready", self._ready_at_ms)
        elif status == 503:
            self._set_state(InstanceState.LOADING, "the server is loading its model")
        elif self._adopted is not None and not self._adopted_alive():
            self._watch_adopted()
        else:
            what = f"HTTP {status}" if status is not None else error or "no answer"
            self._set_state(InstanceState.ERROR, f"{self.url} is unreachable: {what}")

    def _on_metrics(self, status: int | None, body: bytes) -> None:
        if status == 200:
            try:
                metrics = parse_metrics(body.decode("utf-8", errors="replace"))
            except ValueError:
                metrics = {}
            self._rates.update(metrics, time.monotonic())
            self._gauges = (metrics.get(REQUESTS_PROCESSING), metrics.get(REQUESTS_DEFERRED))
            return
        if status == 501:
            self._metrics_supported = False  # started without --metrics: stop asking
        self._rates.reset()
        self._gauges = (None, None)

    def _on_slots(self, status: int | None, body: bytes) -> None:
        if status == 200:
            try:
                slots = json.loads(body)
            except ValueError:
                slots = None
            if isinstance(slots, list):
                busy = sum(1 for s in slots if isinstance(s, dict) and s.get("is_processing"))
                self._slots = (float(busy), float(len(slots)))
                return
        if status == 501:
            self._slots_supported = False
        self._slots = (None, None)

    def _poll(self) -> None:
        """One poll: process figures now, HTTP figures when their replies arrive."""
        if self._adopted is not None and not self._adopted_alive():
            self._watch_adopted()
            return
        if self._tick_pending:
            self._emit_figures()  # the previous tick's replies are late: report what is known
        cpu, rss, pids = self._tree.read(self._pid)
        vram = self._read_vram(pids)
        self._proc_figures = (cpu, rss, vram)
        sent: set[str] = set()
        polling_http = self._port is not None and (
            self._state is InstanceState.RUNNING or self._external or self._adopted is not None
        )
        if (
            polling_http
            and (self._external or self._adopted is not None)
            and self._request("/health", "health", auth=False)
        ):
            sent.add("health")
        if polling_http and self._state is InstanceState.RUNNING:
            if self._metrics_supported and self._request("/metrics", "metrics", auth=True):
                sent.add("metrics")
            if self._slots_supported and self._request("/slots", "slots", auth=True):
                sent.add("slots")
        self._tick_pending = sent
        if not sent:
            self._emit_figures()

    def _read_vram(self, pids: list[int]) -> float | None:
        if self._vram_reader is None or not pids:
            return None
        try:
            used = self._vram_reader()
        except Exception:
            return None
        known = [used[pid] for pid in pids if pid in used]
        if not known or any(value is None for value in known):
            return None  # not reported (containers, WDDM): n/a, never 0
        return float(sum(v for v in known if v is not None))

    def _emit_figures(self) -> None:
        self._tick_pending.clear()
        if not self.active:
            return
        cpu, rss, vram = self._proc_figures
        running = self._state is InstanceState.RUNNING
        figures = InstanceFigures(
            prompt_tokens_per_s=self._rates.prompt_tokens_per_s if running else None,
            generation_tokens_per_s=self._rates.generation_tokens_per_s if running else None,
            requests_processing=self._gauges[0] if running else None,
            requests_deferred=self._gauges[1] if running else None,
            busy_slots=self._slots[0] if running else None,
            total_slots=self._slots[1] if running else None,
            requests_per_minute=self.requests_per_minute(),
            cpu_percent=cpu,
            rss_mb=rss,
            vram_mb=vram,
        )
        self._figures = figures
        self.figuresChanged.emit(figures)
