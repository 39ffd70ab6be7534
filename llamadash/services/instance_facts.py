"""What is known about one server instance: the read-only side of a :class:`~llamadash.services.instance.ServerInstance`.

:class:`InstanceFacts` holds the facts of the instance and of its current (or last) run (state and
reason, endpoint, PID, times, plan, exit outcome) and answers every read-only property from them and
from the instance's parts (the output pipe, the endpoint poller, the restart tracker). It changes
nothing: the state machine in :class:`~llamadash.services.instance.ServerInstance` does, and sets up
the parts this class reads.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer

from llamadash.core.diagnosis import Diagnosis
from llamadash.core.launch import LaunchPlan
from llamadash.core.states import InstanceState
from llamadash.core.throughput import ThroughputMeter
from llamadash.services.endpoint_poller import EndpointPoller
from llamadash.services.figures import InstanceFigures
from llamadash.services.output_pipe import OutputPipe
from llamadash.services.process_driver import AdoptedProcess, Endpoint, ProcessDriver
from llamadash.services.restart_policy import ExitOutcome, RestartTracker

__all__ = ["InstanceFacts"]


class InstanceFacts(QObject):
    """The facts and read-only properties of an instance (see the module docstring).

    Args:
        name: The model's name (or a label for an external server).
        model_id: The model's database id.
        log_path: The per-instance log file.
        external: A server attached by URL.
        parent: The Qt parent.
    """

    # The parts, made by ServerInstance.__init__.
    _pipe: OutputPipe
    _poller: EndpointPoller
    _restarts: RestartTracker
    _restart_timer: QTimer

    def __init__(
        self, name: str, model_id: int | None, log_path: Path | None, external: bool, parent: QObject | None
    ) -> None:
        super().__init__(parent)
        self._name = name
        self._model_id = model_id
        self._log_path = Path(log_path) if log_path is not None else None
        self._external = external
        self._state = InstanceState.STOPPED
        self._reason = ""
        self._driver: ProcessDriver | None = None  # external: always; else while there is a process
        self._plan: LaunchPlan | None = None
        self._endpoint = Endpoint()
        self._pid: int | None = None
        self._started_at_ms: int | None = None
        self._ready_at_ms: int | None = None
        self._stopping = False
        self._exit: ExitOutcome | None = None
        self._diagnosis: Diagnosis | None = None

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
        return self._endpoint.host

    @property
    def port(self) -> int | None:
        """The server's port (known once started, or from the URL)."""
        return self._endpoint.port

    @property
    def url(self) -> str:
        """The base URL clients use, e.g. ``http://127.0.0.1:8080`` (with the API prefix)."""
        return self._endpoint.url

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
        return self._pipe.file_problem

    @property
    def log_file_recovery_note(self) -> str:
        """What the log file says about the lines its last failure lost ("" if it never failed)."""
        return self._pipe.file_recovery_note

    @property
    def lines_received(self) -> int:
        """Lines of output received since construction (diagnostics, benchmarks)."""
        return self._pipe.lines_received

    @property
    def external(self) -> bool:
        """True for a server attached by URL (no process control)."""
        return self._external

    @property
    def adopted(self) -> bool:
        """True while the process is one a killed dashboard left behind (no output available)."""
        return isinstance(self._driver, AdoptedProcess)

    @property
    def stopping(self) -> bool:
        """True between :meth:`stop` and the process being gone."""
        return self._stopping

    @property
    def active(self) -> bool:
        """True while there is a process (or, external: while monitoring)."""
        return self._poller.polling if self._external else self._driver is not None

    @property
    def figures(self) -> InstanceFigures:
        """The latest figures."""
        return self._poller.figures

    @property
    def throughput(self) -> ThroughputMeter:
        """The meter of the live token rates (``/slots`` snapshots, finished requests): averages over a span."""
        return self._poller.meter

    @property
    def load_progress(self) -> tuple[float | None, str]:
        """(fraction or ``None``, stage) of the load in progress, from the log."""
        return self._pipe.progress

    @property
    def exit_outcome(self) -> ExitOutcome | None:
        """How the last run ended (``None`` while a run is on, and before the first one ends)."""
        return self._exit

    @property
    def diagnosis(self) -> Diagnosis | None:
        """What a known cause of the last failed run means and what to do (``None``: none known)."""
        return self._diagnosis

    @property
    def exit_code(self) -> int | None:
        """The last run's exit code (``None`` if it was killed by a signal or has not ended)."""
        return self._exit.code if self._exit is not None else None

    @property
    def exit_signal(self) -> int | None:
        """The signal that ended the last run, if one did (POSIX)."""
        return self._exit.signal if self._exit is not None else None

    @property
    def restart_pending(self) -> bool:
        """True while an automatic restart is scheduled."""
        return self._restart_timer.isActive()

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the user should know about the latest start (see :attr:`LaunchPlan.warnings`)."""
        return self._plan.warnings if self._plan is not None and not self.adopted else ()

    @property
    def failed_restarts(self) -> int:
        """Automatic restarts that failed in a row (see :class:`~llamadash.services.instance.CrashPolicy`)."""
        return self._restarts.failed_restarts

    @property
    def launch_plan(self) -> LaunchPlan | None:
        """The plan of the latest start (``None`` before one, and for external/adopted servers)."""
        return self._plan

    def log_lines(self) -> list[str]:
        """The bounded buffer of output lines, oldest first."""
        return self._pipe.lines()

    def requests_per_minute(self) -> float | None:
        """Requests finished in the last 60 s: from the log, or (a server whose log is not here:
        external or adopted) from its ``/slots``; ``None`` while not known."""
        if self._external or self.adopted:
            return self._poller.requests_per_minute() if self._poller.polling else None
        if self._started_at_ms is None:
            return None
        if self._plan is not None and not self._plan.counts_requests:
            return None
        return self._pipe.requests_per_minute()
