"""One llama-server instance: a small state machine with its signals, over its parts.

A :class:`ServerInstance` is **managed** (started from a :class:`LaunchPlan` that a ``prepare`` callable
builds at each start, so a restart picks up an edited configuration; its output read; stopped by us),
**adopted** (left running by a killed dashboard: followed through its PID and HTTP endpoints, stoppable,
its output gone with the dead dashboard's pipe; a restart starts it as a managed one) or **external**
(attached by URL: monitor only; ``start``/``stop`` begin and end the monitoring). Its parts: a process
driver per kind (:mod:`~llamadash.services.process_driver`), the output pipe
(:mod:`~llamadash.services.output_pipe`: lines, log file, buffer, log events, load progress, request
records), the endpoint poller (:mod:`~llamadash.services.endpoint_poller`: ``/health``, ``/metrics``,
``/slots``, live figures) and the restart policy (:mod:`~llamadash.services.restart_policy`: the exit
as one :class:`ExitOutcome`, backoff, crash-loop counting; Qt-free). The read-only properties come
from its base class, :class:`~llamadash.services.instance_facts.InstanceFacts`.

The states (:class:`InstanceState`): ``start`` sets ``loading`` as soon as the process runs and
``running`` only when ``GET /health`` answers 200; a load timeout ends in ``error``. ``stop`` is
asynchronous: terminate, then kill the process tree after ``stop_timeout_s``; ``stopped`` comes when
the process is gone. An unexpected exit is ``error`` with the exit code or signal and the last log
lines, optionally followed by an automatic restart (see :class:`CrashPolicy`). Everything runs on
the owner's thread; nothing waits on the process but the bounded :meth:`ServerInstance.wait_stopped`.
Plans and refusals come from :mod:`llamadash.core.launch` (``InstanceError`` is its ``LaunchError``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from llamadash.core import serverlog
from llamadash.core.launch import LaunchError, LaunchPlan, MissingBinaryError, PortInUseError
from llamadash.core.pidfile import InstanceRecord
from llamadash.core.states import InstanceState
from llamadash.services.endpoint_poller import EndpointPoller
from llamadash.services.figures import InstanceFigures
from llamadash.services.instance_facts import InstanceFacts
from llamadash.services.output_pipe import DEFAULT_BUFFER_LINES, OutputPipe
from llamadash.services.process_driver import AdoptedProcess, ExternalServer, ManagedProcess, ProcessDriver
from llamadash.services.restart_policy import CrashPolicy, ExitOutcome, RestartTracker, diagnose_exit

__all__ = [
    "DEFAULT_BUFFER_LINES",
    "CrashPolicy",
    "ExitOutcome",
    "InstanceError",
    "InstanceFigures",
    "InstanceState",
    "LaunchPlan",
    "MissingBinaryError",
    "PortInUseError",
    "ServerInstance",
]

InstanceError = LaunchError  # a start was refused before anything was launched (why, for the user)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class ServerInstance(InstanceFacts):
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

    requestRecorded = Signal(object)
    """A :class:`~llamadash.core.requests_log.RequestRecord` (``model`` set) per request released (finished
    or aborted), and when the process ends one per request still running (incomplete). Managed only."""

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
        super().__init__(name, model_id, log_path, external_url is not None, parent)
        if external_url is None and prepare is None:
            raise ValueError("a managed instance needs a prepare callable")
        self._prepare = prepare
        self._load_timeout_s = float(load_timeout_s)
        self._stop_timeout_s = float(stop_timeout_s)
        self._auto_restart = auto_restart
        self._restarts = RestartTracker(crash_policy or CrashPolicy())
        self._api_key = api_key
        self._started_mono: float | None = None
        self._error_after_stop: str | None = None
        self._restart_after_stop = False
        self._automatic_start = False  # the start under way is an automatic restart
        self._run_is_restart = False  # the current (or last) run was started by an automatic restart

        self._pipe = OutputPipe(
            self._log_path,
            buffer_lines=buffer_lines,
            log_max_bytes=log_max_bytes,
            log_backups=log_backups,
            on_line=self.logLine.emit,
            on_event=self.logEvent.emit,
            on_request=self.requestFinished.emit,
            on_progress=self.loadProgress.emit,
            on_file_problem=self.logFileProblem.emit,
            on_record=self.requestRecorded.emit,
            model=name,
            on_slot_line=lambda: self._poller.slot_activity(),
        )
        self._poller = EndpointPoller(
            self,
            poll_interval_s=float(poll_interval_s),
            vram_reader=vram_reader,
            on_health=self._on_health,
            on_figures=self.figuresChanged.emit,
            before_poll=self._poll_allowed,
            on_auth=self._on_auth,
            on_record=self.requestRecorded.emit,
            parent=self,
        )
        self._poller.slot_requests.model = name
        self.requestRecorded.connect(self._poller.add_request)  # first: its tokens count at once
        self._load_timer = QTimer(self, singleShot=True)
        self._load_timer.timeout.connect(self._on_load_timeout)
        self._restart_timer = QTimer(self, singleShot=True)
        self._restart_timer.timeout.connect(self._auto_restart_now)

        if external_url is not None:
            self._driver = ExternalServer.of_url(external_url, parent=self)
            self._endpoint = self._driver.endpoint
            self._poller.aim(self._endpoint, api_key, monitors=True)
            self._poller.backs_off = True  # on another machine, perhaps: retried with a backoff
        if adopted is not None:
            self._adopt(adopted)

    @property
    def auto_restart(self) -> bool:
        """Restart after an unexpected exit (see :class:`CrashPolicy`)."""
        return self._auto_restart

    @auto_restart.setter
    def auto_restart(self, enabled: bool) -> None:
        self._auto_restart = bool(enabled)
        if not enabled:
            self._restart_timer.stop()

    def set_prepare(self, prepare: Callable[[], LaunchPlan]) -> None:
        """Use ``prepare`` to build the launch plan from the next start on."""
        self._prepare = prepare

    # -- control ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server (external: start monitoring it).

        Raises:
            InstanceError: The start was refused before launch (already running, binary or model
                missing, invalid configuration, port taken...), or the process could not be
                executed (then the state is also ``error``).
        """
        if self._external:
            if not self._poller.polling:
                self._poller.begin()
                self._set_state(InstanceState.LOADING, "connecting")
                self._poller.start_polling()
                self._poller.poll()
            return
        if self._driver is not None:
            if self._stopping:
                raise InstanceError(f"{self._name} is still stopping; try again when it has stopped")
            raise InstanceError(f"{self._name} is already {self._state.value}")
        self._restart_timer.stop()
        automatic, self._automatic_start = self._automatic_start, False
        if not automatic:
            self._restarts.user_started()  # the user starts afresh
        assert self._prepare is not None
        self._launch(self._prepare(), automatic=automatic)

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
            if self._poller.polling or self._state is not InstanceState.STOPPED:
                self._poller.halt()
                self._set_state(InstanceState.STOPPED, "")
            return
        if self._driver is None:
            self._set_state(InstanceState.STOPPED, "")
            return
        if self._stopping:
            return
        self._stopping = True
        self._load_timer.stop()
        self._poller.cancel()
        self._driver.terminate(self._stop_timeout_s)

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
        self.stop()
        self._restart_after_stop = True  # after stop(), which cancels any restart

    def wait_stopped(self, timeout_s: float) -> bool:
        """Wait (blocking, at most ``timeout_s``) for a stopping process to end; for quitting only.

        Returns:
            True if no process is left.
        """
        if self._driver is not None and not self._external:
            self._driver.wait(timeout_s)
        return not self.active

    def kill(self) -> None:
        """Kill the process tree now (the escalation of :meth:`stop`)."""
        if self._driver is not None and not self._external:
            self._stopping = True
            self._driver.kill()

    @property
    def api_key(self) -> str | None:
        """The key clients send as ``Authorization: Bearer`` (the run's ``--api-key``), if any."""
        return self._api_key

    def set_external_api_key(self, api_key: str | None) -> None:
        """Change the key sent to an external or adopted server's ``/metrics`` and ``/slots``."""
        self._api_key = self._poller.api_key = api_key

    # -- runs ---------------------------------------------------------------------------------------

    def _start_reporting(self) -> None:
        try:
            self.start()
        except InstanceError as exc:
            if self._state is not InstanceState.ERROR or self._reason != str(exc):
                self._set_state(InstanceState.ERROR, str(exc))

    def _launch(self, plan: LaunchPlan, *, automatic: bool = False) -> None:
        driver = ManagedProcess(plan, on_output=self._pipe.feed, on_exit=self._on_exit, parent=self)
        self._plan = plan
        self._endpoint = driver.endpoint
        self._api_key = plan.api_key
        self._stopping = False
        self._error_after_stop = None
        self._exit = None
        self._diagnosis = None
        self._ready_at_ms = None
        self._pipe.begin_run()
        self._poller.aim(self._endpoint, plan.api_key, monitors=False)
        self._poller.begin()
        self._poller.log_tells_activity = plan.counts_requests  # its output is read here, slot lines too
        warnings = [f"=== llamadash: warning: {warning} ===" for warning in plan.warnings]
        self._pipe.note([f"=== llamadash: starting {' '.join(plan.argv)} ===", *warnings])
        self._run_is_restart = automatic
        # The child exists from here on (fork done; exec may still be on its way): tell the recorder
        # before anything else, so that a dashboard killed now leaves a process somebody can find.
        self._pid = driver.spawn()
        self._started_at_ms = _now_ms()
        self._started_mono = time.monotonic()
        if self._pid is not None:
            self.spawned.emit(self._pid)
        problem = driver.wait_started()
        if problem is not None:
            message = f"cannot run {plan.argv[0]}: {problem}"
            self._pid = None
            driver.deleteLater()
            self._pipe.note([f"=== {message} ==="])
            self._pipe.close_file()
            self._set_state(InstanceState.ERROR, message)
            raise InstanceError(message)
        self._driver = driver
        self._pid = driver.pid or self._pid
        self._set_state(InstanceState.LOADING, "")
        self.eventOccurred.emit("started", self._started_at_ms)
        if plan.health_check and plan.port is not None:
            self._poller.start_polling()  # CPU and memory while it loads (a big model takes minutes)
            if self._load_timeout_s > 0:
                self._load_timer.start(round(self._load_timeout_s * 1000))
            self._poller.start_health_checks()
        else:
            self._became_ready()

    def _adopt(self, record: InstanceRecord) -> None:
        self._driver = AdoptedProcess.of(record, on_exit=self._on_exit, parent=self)
        self._pid = record.pid
        self._endpoint = self._driver.endpoint
        self._started_at_ms = record.started_at_ms
        self._poller.aim(self._endpoint, self._api_key, monitors=True)
        self._poller.begin()
        line = (
            f"=== llamadash: adopted llama-server pid {record.pid} left behind by a dashboard that was "
            "killed; its earlier output is in the log file, new output cannot be read ==="
        )
        self._pipe.note([line], buffered=True)
        self._state = InstanceState.LOADING  # the first /health answer decides; no signal before connect
        self._poller.start_polling()
        self._poller.poll_soon()

    def _set_state(self, state: InstanceState, reason: str) -> None:
        if state is self._state and reason == self._reason:
            return
        self._state = state
        self._reason = reason
        self._pipe.loading = state is InstanceState.LOADING
        self.stateChanged.emit(state.value, reason)

    def _became_ready(self) -> None:
        self._poller.stop_health_checks()
        self._load_timer.stop()
        self._ready_at_ms = _now_ms()
        self._set_state(InstanceState.RUNNING, "")
        self.eventOccurred.emit("ready", self._ready_at_ms)
        self._poller.start_polling()
        self._poller.poll()

    def _on_load_timeout(self) -> None:
        if self._state is not InstanceState.LOADING or not isinstance(self._driver, ManagedProcess):
            return
        self._error_after_stop = (
            f"{self._name} did not become ready within {self._load_timeout_s:g} s (the load timeout); "
            "it was stopped"
        )
        self.stop()

    # -- what the parts report ----------------------------------------------------------------------

    def _poll_allowed(self) -> bool:
        """Before each poll: an adopted process that is gone ends its run instead."""
        driver = self._driver
        return not (isinstance(driver, AdoptedProcess) and driver.check_gone())

    def _on_health(self, status: int | None, error: str) -> None:
        driver = self._driver
        if driver is None or not driver.monitored:  # our own start: ready once it answers 200
            if status == 200 and self._state is InstanceState.LOADING and not self._stopping:
                self._became_ready()
            return
        if status == 200 and self._poller.auth_refused is not None:
            self._set_state(InstanceState.ERROR, self._auth_reason(self._poller.auth_refused))
        elif status == 200:
            if self._state is not InstanceState.RUNNING:
                first = self._ready_at_ms is None
                self._ready_at_ms = self._ready_at_ms or _now_ms()
                self._set_state(InstanceState.RUNNING, "")
                if first:
                    self.eventOccurred.emit("ready", self._ready_at_ms)
        elif status == 503:
            self._set_state(InstanceState.LOADING, "the server is loading its model")
        elif not (isinstance(driver, AdoptedProcess) and driver.check_gone()):
            what = f"HTTP {status}" if status is not None else error or "no answer"
            retry = self._poller.retry_in_s
            again = f"; trying again in {retry:g} s" if retry and self._external else ""
            if self._external and status is not None:  # something answers, but not a llama-server's /health
                reason = (
                    f"{self.url}/health answered {what}: is a llama-server there (and is the path right)?"
                )
            else:
                reason = f"{self.url} is unreachable: {what}{again}"
            self._set_state(InstanceState.ERROR, reason)

    def _on_auth(self, status: int | None) -> None:
        """A monitored server refused the key (``status``), or (``None``) accepts it again."""
        if status is not None:
            self._set_state(InstanceState.ERROR, self._auth_reason(status))
        elif self._state is InstanceState.ERROR:
            self._set_state(InstanceState.RUNNING, "")

    def _auth_reason(self, status: int) -> str:
        if self._api_key:
            return f"API key refused by {self.url} (HTTP {status}): check the key set for {self._name}"
        return f"API key required by {self.url} (HTTP {status}): none is set for {self._name}"

    def _on_exit(self, driver: ProcessDriver, exit_code: int | None, crashed: bool) -> None:
        """The process of ``driver`` is gone (all its output handed on); ``exit_code`` None: unknown."""
        if driver is not self._driver:
            return
        outcome = self._exit = self._pipe.end_run(exit_code, crashed, pid=self._pid)
        driver.deleteLater()
        self._driver = None
        self._pid = None
        self._load_timer.stop()
        self._poller.halt()
        expected, self._stopping = self._stopping, False
        now = _now_ms()
        if self._error_after_stop is not None:
            reason, self._error_after_stop = self._error_after_stop, None
            self._set_state(InstanceState.ERROR, reason)
            self.eventOccurred.emit("stopped", now)
        elif expected:
            self._set_state(InstanceState.STOPPED, "")
            self.eventOccurred.emit("stopped", now)
        elif outcome.clean and self._state is InstanceState.RUNNING:
            self._set_state(InstanceState.STOPPED, f"llama-server {outcome.description} by itself")
            self.eventOccurred.emit("stopped", now)
        else:
            note = self._schedule_auto_restart() if self._auto_restart and outcome.status_known else ""
            ran_s = time.monotonic() - self._started_mono if self._started_mono is not None else None
            config = self._plan.config if self._plan is not None else None
            self._diagnosis = diagnose_exit(outcome, self._pipe, config, self._ready_at_ms is not None, ran_s)
            known = self._diagnosis.message if self._diagnosis is not None else None
            self._set_state(InstanceState.ERROR, outcome.reason(note, diagnosis=known))
            self.eventOccurred.emit("crashed", now)
        if self._restart_after_stop:
            self._restart_after_stop = False
            self._start_reporting()

    def _schedule_auto_restart(self) -> str:
        now = time.monotonic()
        ran_s = now - self._started_mono if self._started_mono is not None else 0.0
        decision = self._restarts.after_crash(now=now, ran_s=ran_s, was_restart=self._run_is_restart)
        if decision.delay_s is not None:
            self._restart_timer.start(max(0, round(decision.delay_s * 1000)))
        return decision.note

    def _auto_restart_now(self) -> None:
        if self.active:
            return
        self._automatic_start = True
        self._start_reporting()
        self._automatic_start = False
