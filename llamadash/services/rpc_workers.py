"""llama.cpp RPC workers as services: local ``ggml-rpc-server`` processes and remote reachability.

:class:`LocalWorkerProcess` runs one local worker the way llamadash runs a server: a managed
``QProcess`` (:class:`~llamadash.services.process_driver.ManagedProcess`: own session, output read
in chunks), a PID record written the moment it exists (:mod:`llamadash.core.worker_records`, so a
killed dashboard's workers are found as orphans), a log (lines in memory and a rotating file),
readiness when a TCP connection to its port succeeds (the RPC protocol has no health endpoint), a
crash reported as ``error`` with the exit and the last lines, and a stop that escalates from
terminate to killing the process tree.

:class:`ReachabilityCheck` asks whether a ``host:port`` accepts a TCP connection without blocking
the event loop (``QTcpSocket``), for remote workers. :class:`WorkerService` keeps both per worker
name, for the window and the CLI.

Readiness is probed only while a worker starts: ``ggml-rpc-server`` serves one client at a time and
logs every connection, so a running worker is followed through its process, not polled.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from pathlib import Path

import psutil
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtNetwork import QAbstractSocket, QTcpSocket

from llamadash.core import paths, serverlog, worker_records, workers
from llamadash.core.launch import LaunchPlan
from llamadash.core.pidfile import InstanceRecord, owner_identity
from llamadash.core.workers import Worker, WorkerError
from llamadash.services.ports import port_is_free, port_owner
from llamadash.services.process_driver import ManagedProcess, ProcessDriver

__all__ = ["LocalWorkerProcess", "ReachabilityCheck", "WorkerService", "WorkerState"]

#: Lines of a worker's output kept in memory.
BUFFER_LINES = 2000
#: Lines of output quoted when a worker ends unexpectedly.
TAIL_LINES = 12


class WorkerState:
    """The states of a local worker (text values, as the instances' states are)."""

    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    ERROR = "error"


class ReachabilityCheck(QObject):
    """One non-blocking TCP connect to ``host:port``; reports once through :attr:`finished`.

    Args:
        host: The address.
        port: The port.
        timeout_s: How long the connection may take before the check says unreachable.
        parent: The Qt parent.
    """

    finished = Signal(bool, str)
    """(reachable, reason): the reason is "" when reachable, else why not (refused, timed out...)."""

    def __init__(
        self, host: str, port: int, *, timeout_s: float = 3.0, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.host = host
        self.port = port
        self._done = False
        self._socket = QTcpSocket(self)
        self._socket.connected.connect(self._on_connected)
        self._socket.errorOccurred.connect(self._on_error)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(max(1, round(timeout_s * 1000)))
        self._timer.timeout.connect(self._on_timeout)

    def start(self) -> None:
        """Begin connecting (returns at once)."""
        self._timer.start()
        self._socket.connectToHost(workers.connect_host(self.host), self.port)

    def _finish(self, ok: bool, reason: str) -> None:
        if self._done:
            return
        self._done = True
        self._timer.stop()
        self._socket.abort()
        self.finished.emit(ok, reason)

    def _on_connected(self) -> None:
        self._finish(True, "")

    def _on_error(self, _error: QAbstractSocket.SocketError) -> None:
        self._finish(False, self._socket.errorString() or "the connection failed")

    def _on_timeout(self) -> None:
        self._finish(False, f"no answer within {self._timer.interval() / 1000:g} s")


class LocalWorkerProcess(QObject):
    """One local ``ggml-rpc-server``: start, readiness by connecting, log, crash, stop.

    Args:
        worker: The worker's settings (a local one).
        binary: The ``ggml-rpc-server`` executable.
        log_path: The rotating log file; ``None`` keeps none.
        ready_timeout_s: Seconds the worker may take to accept a connection after it started.
        stop_timeout_s: Seconds between terminate and kill.
        parent: The Qt parent.
    """

    stateChanged = Signal(str, str)
    """(state, reason): the reason is "" or why (the refusal, the exit and the last lines)."""

    logLine = Signal(str)
    """One line of the worker's output."""

    def __init__(
        self,
        worker: Worker,
        binary: str | Path,
        *,
        log_path: Path | None = None,
        ready_timeout_s: float = 30.0,
        stop_timeout_s: float = 5.0,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.worker = worker
        self.binary = str(binary)
        self.log_path = log_path
        self.state = WorkerState.STOPPED
        self.reason = ""
        self._ready_timeout_s = ready_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._driver: ManagedProcess | None = None
        self._lines: collections.deque[str] = collections.deque(maxlen=BUFFER_LINES)
        self._splitter = serverlog.LineSplitter()
        self._log_file: serverlog.RotatingLogFile | None = None
        self._pid: int | None = None
        self._probe: ReachabilityCheck | None = None
        self._ready_deadline = 0.0
        self._stopping_with_error = False
        self._probe_timer = QTimer(self)
        self._probe_timer.setSingleShot(True)
        self._probe_timer.setInterval(200)
        self._probe_timer.timeout.connect(self._probe_once)

    # -- facts --------------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The process id while the process exists."""
        return self._pid

    @property
    def active(self) -> bool:
        """Starting, running or stopping: a process exists."""
        return self.state in (WorkerState.STARTING, WorkerState.RUNNING, WorkerState.STOPPING)

    def log_lines(self) -> list[str]:
        """The lines kept in memory, oldest first."""
        return list(self._lines)

    # -- start ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker; ``starting`` now, ``running`` once its port accepts a connection.

        Raises:
            WorkerError: the command is refused (a non-loopback bind nobody confirmed, bad
                settings), the port is taken, or the program could not be run; nothing runs then.
        """
        if self.active:
            return
        argv = workers.build_worker_command(self.binary, self.worker)  # checks the bind address
        host, port = self.worker.host, self.worker.port
        try:
            free = port_is_free(host, port)
        except OSError as exc:
            raise WorkerError(f"cannot start worker {self.worker.name}: cannot bind {host}: {exc}") from None
        if not free:
            raise WorkerError(
                f"cannot start worker {self.worker.name}: port {port} is in use{port_owner(port)}; "
                "choose another with --port"
            )
        markers = worker_records.marker_environment(self.worker.name, host, port)
        plan = LaunchPlan(
            argv=tuple(argv), env=markers, host=host, port=port, binary=self.binary, health_check=False
        )
        driver = ManagedProcess(plan, on_output=self._on_output, on_exit=self._on_exit, parent=self)
        self._lines.clear()
        self._splitter = serverlog.LineSplitter()
        self._open_log(argv)
        pid = driver.spawn()
        self._driver = driver
        if pid is not None:
            self._record(pid)
        problem = driver.wait_started()
        if problem is not None:
            self._driver = None
            self._forget_record()
            self._close_log()
            raise WorkerError(f"cannot start worker {self.worker.name}: {self.binary}: {problem}")
        if driver.pid is not None and driver.pid != self._pid:
            self._forget_record()
            self._record(driver.pid)
        self._ready_deadline = time.monotonic() + self._ready_timeout_s
        self._set_state(WorkerState.STARTING, "")
        self._probe_timer.start(0)

    def _record(self, pid: int) -> None:
        try:
            create_time = psutil.Process(pid).create_time()
        except psutil.Error:
            return
        owner_pid, owner_create = owner_identity()
        worker_records.add_record(
            InstanceRecord(
                pid=pid,
                create_time=create_time,
                model=self.worker.name,
                model_id=self.worker.id,
                host=self.worker.host,
                port=self.worker.port,
                binary=self.binary,
                started_at_ms=time.time_ns() // 1_000_000,
                owner_pid=owner_pid,
                owner_create_time=owner_create,
            )
        )
        self._pid = pid

    def _forget_record(self) -> None:
        if self._pid is not None:
            worker_records.remove_record(self._pid)
            self._pid = None

    def _probe_once(self) -> None:
        if self.state != WorkerState.STARTING:
            return
        probe = self._probe = ReachabilityCheck(
            self.worker.host, self.worker.port, timeout_s=1.0, parent=self
        )
        probe.finished.connect(self._on_probe)
        probe.start()

    def _on_probe(self, ok: bool, _reason: str) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.deleteLater()
        if self.state != WorkerState.STARTING:
            return
        if ok:
            self._set_state(WorkerState.RUNNING, "")
        elif time.monotonic() > self._ready_deadline:
            self._note(
                f"not listening on port {self.worker.port} after {self._ready_timeout_s:g} s; stopping it"
            )
            self.reason = f"worker {self.worker.name} did not listen on port {self.worker.port}"
            self._stop_process(error=True)
        else:
            self._probe_timer.start()

    # -- stop ----------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the worker (asynchronous): terminate, then kill the tree after ``stop_timeout_s``."""
        if self._driver is None or self.state == WorkerState.STOPPING:
            return
        self._stop_process(error=False)

    def _stop_process(self, *, error: bool) -> None:
        self._probe_timer.stop()
        self._stopping_with_error = error
        self._set_state(WorkerState.STOPPING, "")
        assert self._driver is not None
        self._driver.terminate(self._stop_timeout_s)

    def wait_stopped(self, timeout_s: float) -> bool:
        """Wait (blocking, bounded) for the process to end; True when it has."""
        if self._driver is None:
            return True
        return self._driver.wait(timeout_s)

    # -- output and exit -----------------------------------------------------------------------------
    def _on_output(self, data: bytes) -> None:
        lines = self._splitter.feed(data)
        if not lines:
            return
        self._lines.extend(lines)
        if self._log_file is not None:
            self._log_file.write_lines(lines)
        for line in lines:
            self.logLine.emit(line)

    def _on_exit(self, _driver: ProcessDriver, exit_code: int | None, crashed: bool) -> None:
        rest = self._splitter.pending
        if rest:
            self._on_output(b"\n")
        self._driver = None
        self._probe_timer.stop()
        self._forget_record()
        was = self.state
        error = self._stopping_with_error
        self._stopping_with_error = False
        if was == WorkerState.STOPPING and not error:
            self._note("stopped")
            self._close_log()
            self._set_state(WorkerState.STOPPED, "")
            return
        how = "crashed" if crashed else f"exited with status {exit_code}"
        tail = "\n".join(list(self._lines)[-TAIL_LINES:])
        reason = self.reason if error and self.reason else f"worker {self.worker.name} {how}"
        if tail:
            reason += "\n" + tail
        self._note(f"ended: {how}")
        self._close_log()
        self._set_state(WorkerState.ERROR, reason)

    # -- log file ------------------------------------------------------------------------------------
    def _open_log(self, argv: list[str]) -> None:
        if self.log_path is None:
            return
        self._log_file = serverlog.RotatingLogFile(self.log_path)
        self._note("starting: " + " ".join(argv))

    def _note(self, text: str) -> None:
        if self._log_file is not None:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            self._log_file.write_lines([f"=== llamadash {stamp}: worker {self.worker.name} {text} ==="])

    def _close_log(self) -> None:
        log_file, self._log_file = self._log_file, None
        if log_file is not None:
            log_file.close()

    def _set_state(self, state: str, reason: str) -> None:
        self.state = state
        self.reason = reason
        self.stateChanged.emit(state, reason)


class WorkerService(QObject):
    """The workers of one data directory: local processes started here and remote reachability.

    Widgets and the CLI hold a reference and connect to the signals; they never own a process.

    Args:
        data_dir: The data directory (worker logs go to its ``logs`` folder). The database must be open.
        rpc_server: The ``ggml-rpc-server`` to run, or a function that finds it at each start (the
            configured llama-server may change); ``None`` (or ``None`` found): a start is refused.
        parent: The Qt parent.
    """

    stateChanged = Signal(str, str, str)
    """(worker name, state, reason) of a local worker."""

    logLine = Signal(str, str)
    """(worker name, one line of its output)."""

    reachability = Signal(str, bool, str)
    """(worker name, reachable, reason): the result of :meth:`check`."""

    def __init__(
        self,
        *,
        data_dir: Path,
        rpc_server: str | Path | Callable[[], Path | None] | None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._data_dir = Path(data_dir)
        self._rpc_server = rpc_server
        self._processes: dict[str, LocalWorkerProcess] = {}
        self._checks: dict[str, ReachabilityCheck] = {}

    def rpc_server(self) -> str | None:
        """The ``ggml-rpc-server`` a start runs now, or ``None``."""
        found = self._rpc_server() if callable(self._rpc_server) else self._rpc_server
        return None if found is None else str(found)

    def log_path(self, name: str) -> Path:
        """The log file of worker ``name`` (``<data dir>/logs/worker-<name>.log``)."""
        return paths.logs_dir(self._data_dir) / serverlog.log_file_name(f"worker-{name}")

    def process(self, name: str) -> LocalWorkerProcess | None:
        """The process object of local worker ``name``, if it was started here."""
        return self._processes.get(name)

    def running_names(self) -> list[str]:
        """The local workers started here that run now, in start order."""
        return [n for n, p in self._processes.items() if p.state == WorkerState.RUNNING]

    def state(self, name: str) -> str:
        """The state of local worker ``name`` here (``stopped`` when never started)."""
        proc = self._processes.get(name)
        return proc.state if proc is not None else WorkerState.STOPPED

    def start(self, worker: Worker) -> LocalWorkerProcess:
        """Start local worker ``worker`` (see :meth:`LocalWorkerProcess.start`).

        Raises:
            WorkerError: it is remote, already runs, there is no ``ggml-rpc-server``, or the start is refused.
        """
        if not worker.local:
            raise WorkerError(f"{worker.name} is a remote worker: another machine runs it")
        binary = self.rpc_server()
        if binary is None:
            raise WorkerError(
                "no ggml-rpc-server found beside llama-server or on PATH: llama.cpp builds it with "
                "-DGGML_RPC=ON (see the README)"
            )
        old = self._processes.get(worker.name)
        if old is not None and old.active:
            raise WorkerError(f"worker {worker.name} is already running (pid {old.pid})")
        found = worker_records.scan()
        for record in found.foreign + found.orphans:
            if record.model == worker.name:
                raise WorkerError(
                    f"worker {worker.name} is already running (pid {record.pid}); stop that one first"
                )
        if old is not None:
            old.setParent(None)  # ended: dropped with its last reference
        proc = LocalWorkerProcess(worker, binary, log_path=self.log_path(worker.name), parent=self)
        proc.stateChanged.connect(
            lambda state, reason, n=worker.name: self.stateChanged.emit(n, state, reason)
        )
        proc.logLine.connect(lambda line, n=worker.name: self.logLine.emit(n, line))
        self._processes[worker.name] = proc
        try:
            proc.start()
        except WorkerError:
            del self._processes[worker.name]
            proc.setParent(None)  # nothing ran: dropped with its last reference
            raise
        return proc

    def stop(self, name: str) -> None:
        """Stop local worker ``name`` if it runs here (asynchronous)."""
        proc = self._processes.get(name)
        if proc is not None:
            proc.stop()

    def stop_all(self, timeout_s: float = 10.0) -> bool:
        """Stop every local worker started here and wait (bounded); True when none is left."""
        procs = [p for p in self._processes.values() if p.active]
        for proc in procs:
            proc.stop()
        deadline = time.monotonic() + timeout_s
        return all(proc.wait_stopped(max(0.0, deadline - time.monotonic())) for proc in procs)

    def check(self, worker: Worker, *, timeout_s: float = 3.0) -> None:
        """Ask whether ``worker`` accepts a connection; the answer comes by :attr:`reachability`."""
        if worker.name in self._checks:
            return  # one at a time per worker
        probe = ReachabilityCheck(
            workers.connect_host(worker.host), worker.port, timeout_s=timeout_s, parent=self
        )
        self._checks[worker.name] = probe

        def done(ok: bool, reason: str, name: str = worker.name) -> None:
            finished = self._checks.pop(name, None)
            if finished is not None:
                finished.deleteLater()
            self.reachability.emit(name, ok, reason)

        probe.finished.connect(done)
        probe.start()
