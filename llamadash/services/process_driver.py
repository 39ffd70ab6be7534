"""How one instance's server is run and ended: a managed ``QProcess``, an adopted PID, or a URL.

Three small drivers behind one interface (:class:`ProcessDriver`): where the server answers
(:attr:`~ProcessDriver.endpoint`), whether its readiness is followed by asking ``/health`` at each
poll (:attr:`~ProcessDriver.monitored`), its PID, and a polite stop that escalates to killing the
whole process tree, a kill, and a bounded wait.

* :class:`ManagedProcess`: one run of a process llamadash starts from a
  :class:`~llamadash.core.launch.LaunchPlan`. Its output is read in bounded chunks (one per
  event-loop turn, so a child that floods its output cannot stall the loop) and handed on; the exit
  is reported only once all output has been handed on.
* :class:`AdoptedProcess`: a llama-server a killed dashboard left behind, followed through psutil
  (its output went with the dead dashboard's pipe, its exit status cannot be read).
* :class:`ExternalServer`: a server attached by URL; no process at all.

A driver reports the end of its process once, through the ``on_exit(driver, exit_code, crashed)``
callback (``exit_code`` ``None``: unknown); the owner
(:class:`~llamadash.services.instance.ServerInstance`) decides what the exit means.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil
from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, QUrl

from llamadash.core import proc_children
from llamadash.core.launch import LaunchError, LaunchPlan
from llamadash.core.pidfile import InstanceRecord, connect_host

__all__ = [
    "READ_CHUNK_BYTES",
    "AdoptedProcess",
    "Endpoint",
    "ExternalServer",
    "ManagedProcess",
    "ProcessDriver",
]

_log = logging.getLogger(__name__)

#: Bytes of output handled per event-loop turn; the rest waits for the next turn.
READ_CHUNK_BYTES = 64 * 1024
#: How often an adopted process being stopped is looked for.
_WATCH_INTERVAL_MS = 100

ExitCallback = Callable[["ProcessDriver", "int | None", bool], None]


@dataclass(frozen=True)
class Endpoint:
    """Where a server answers: ``scheme://host:port/prefix``."""

    host: str = "127.0.0.1"
    port: int | None = None
    scheme: str = "http"
    api_prefix: str = ""

    @property
    def url(self) -> str:
        """The base URL clients use, e.g. ``http://127.0.0.1:8080`` (with the API prefix)."""
        host = connect_host(self.host)
        host = f"[{host}]" if ":" in host else host
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{host}{port}{self.api_prefix}"

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        """The endpoint of ``url`` (``http(s)://host[:port][/prefix]``).

        Raises:
            LaunchError: ``url`` is not an http(s) URL with a host.
        """
        qurl = QUrl(url.strip())
        if not qurl.isValid() or qurl.scheme() not in ("http", "https") or not qurl.host():
            raise LaunchError(f"not an http(s) URL: {url!r}")
        scheme = qurl.scheme()
        return cls(qurl.host(), qurl.port(443 if scheme == "https" else 80), scheme, qurl.path().rstrip("/"))

    @property
    def local(self) -> bool:
        """Reached on this machine's loopback."""
        return connect_host(self.host) in ("127.0.0.1", "::1", "localhost")


class ProcessDriver(QObject):
    """What the instance's state machine asks of the process behind it (see the module docstring).

    Args:
        endpoint: Where the server answers.
        on_exit: Called once when the process is gone.
        parent: The Qt parent (the instance).
    """

    monitored = False
    """Readiness is asked at each poll (the server was not started by this instance)."""

    def __init__(self, endpoint: Endpoint, on_exit: ExitCallback | None, parent: QObject | None) -> None:
        super().__init__(parent)
        self.endpoint = endpoint
        self._on_exit = on_exit
        self._done = False
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self.kill)

    @property
    def pid(self) -> int | None:
        """The process id, while there is a process."""
        return None

    def terminate(self, kill_after_s: float) -> None:
        """Ask the process to end; kill its tree after ``kill_after_s`` (Windows: at once)."""

    def kill(self) -> None:
        """Kill the process tree now."""

    def wait(self, timeout_s: float) -> bool:
        """Wait (blocking, at most ``timeout_s``) for the process to end; True when it has (reported)."""
        return True

    def _finish(self, exit_code: int | None, crashed: bool) -> None:
        if self._done:
            return
        self._done = True
        self._kill_timer.stop()
        if self._on_exit is not None:
            self._on_exit(self, exit_code, crashed)

    def _kill_tree(self, kill_root: Callable[[], None]) -> None:
        pid = self.pid
        children: list[psutil.Process] = []
        if pid is not None:
            with contextlib.suppress(psutil.Error):
                children = proc_children.children(psutil.Process(pid))
        kill_root()
        for child in children:  # router mode's per-model servers, or anything the server spawned
            with contextlib.suppress(psutil.Error):
                child.kill()


class ManagedProcess(ProcessDriver):
    """One run of a process started from a plan; call :meth:`spawn`, then :meth:`wait_started`.

    Args:
        plan: What to run.
        on_output: Called with each chunk of output (stdout and stderr merged), in order.
        on_exit: Called once all output has been handed on, with the exit code and whether it crashed.
        parent: The Qt parent.
    """

    def __init__(
        self,
        plan: LaunchPlan,
        *,
        on_output: Callable[[bytes], None],
        on_exit: ExitCallback,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(Endpoint(plan.host, plan.port, plan.scheme, plan.api_prefix), on_exit, parent)
        self._on_output = on_output
        self._exit: tuple[int, bool] | None = None
        self._drain_scheduled = False
        self._pid: int | None = None
        process = self._process = QProcess(self)
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

    @property
    def pid(self) -> int | None:
        return None if self._done else self._pid

    def spawn(self) -> int | None:
        """Create the process; returns its PID (it may not have executed the program yet)."""
        self._process.start()
        self._pid = int(self._process.processId()) or None
        return self._pid

    def wait_started(self) -> str | None:
        """Wait (bounded) until the program runs; ``None`` when it does, else why it cannot run."""
        if not self._process.waitForStarted(10_000):  # fork/exec: milliseconds; bounded in any case
            self._done = True
            return self._process.errorString()
        self._process.closeWriteChannel()
        self._pid = int(self._process.processId()) or self._pid
        return None

    def terminate(self, kill_after_s: float) -> None:
        if sys.platform == "win32":  # console programs ignore the polite request
            self.kill()
            return
        self._process.terminate()
        self._kill_timer.start(max(0, round(kill_after_s * 1000)))

    def kill(self) -> None:
        if not self._done:
            self._kill_tree(self._process.kill)

    def wait(self, timeout_s: float) -> bool:
        if not self._done:
            self._process.waitForFinished(max(0, round(timeout_s * 1000)))
            # Quitting: no time for the chunked path, read everything the process left.
            while not self._done and self._process.bytesAvailable() > 0:
                self._on_output(bytes(self._process.read(READ_CHUNK_BYTES).data()))
            if self._exit is not None:
                self._finish(*self._exit)
        return self._done

    def _on_process_error(self, error: QProcess.ProcessError) -> None:
        if error != QProcess.ProcessError.FailedToStart:  # that one: see wait_started
            _log.debug("process error %s: %s", error, self._process.errorString())

    def _on_ready_read(self) -> None:
        if not self._drain_scheduled:
            self._drain()

    def _drain(self) -> None:
        """Hand on at most one chunk of output, then yield to the event loop if more is waiting."""
        self._drain_scheduled = False
        if self._done:
            return
        process = self._process
        if process.bytesAvailable() > 0:
            self._on_output(bytes(process.read(READ_CHUNK_BYTES).data()))
        if self._done:
            return  # the owner waited for the end while handling the output
        if process.bytesAvailable() > 0:
            self._drain_scheduled = True
            QTimer.singleShot(0, self, self._drain)
        elif self._exit is not None:
            self._finish(*self._exit)

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        if self._done or self._exit is not None:
            return
        self._exit = (int(exit_code), exit_status == QProcess.ExitStatus.CrashExit)
        self._kill_timer.stop()
        if not self._drain_scheduled:
            self._drain()


class AdoptedProcess(ProcessDriver):
    """A llama-server a killed dashboard left behind: followed through its PID (use :meth:`of`)."""

    monitored = True

    def __init__(
        self, process: psutil.Process, endpoint: Endpoint, on_exit: ExitCallback, parent: QObject | None
    ) -> None:
        super().__init__(endpoint, on_exit, parent)
        self._proc = process
        self._watch_timer = QTimer(self)  # while it is being stopped: is it gone yet?
        self._watch_timer.setInterval(_WATCH_INTERVAL_MS)
        self._watch_timer.timeout.connect(self.check_gone)

    @classmethod
    def of(cls, record: InstanceRecord, *, on_exit: ExitCallback, parent: QObject | None) -> AdoptedProcess:
        """The driver of the process ``record`` names.

        Raises:
            LaunchError: The process is gone.
        """
        try:
            process = psutil.Process(record.pid)
        except psutil.Error as exc:
            raise LaunchError(f"process {record.pid} is gone: {exc}") from None
        return cls(process, Endpoint(record.host, record.port), on_exit, parent)

    @property
    def pid(self) -> int | None:
        return None if self._done else self._proc.pid

    def alive(self) -> bool:
        """Whether the process still runs (a zombie does not)."""
        try:
            return self._proc.is_running() and self._proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def check_gone(self) -> bool:
        """Report the exit if the process is gone; returns whether it is."""
        if self._done:
            return True
        if self.alive():
            return False
        self._watch_timer.stop()
        self._finish(None, False)
        return True

    def terminate(self, kill_after_s: float) -> None:
        if sys.platform == "win32":
            self.kill()
        else:
            try:
                for child in proc_children.children(self._proc):
                    child.terminate()
                self._proc.terminate()
            except psutil.Error:
                pass
            self._kill_timer.start(max(0, round(kill_after_s * 1000)))
        self._watch_timer.start()

    def kill(self) -> None:
        if not self._done:
            self._kill_tree(self._kill_root)

    def wait(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout_s)
        while not self.check_gone() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self._done

    def _kill_root(self) -> None:
        with contextlib.suppress(psutil.Error):
            self._proc.kill()


class ExternalServer(ProcessDriver):
    """A server attached by URL: no process to stop or wait for; it is only monitored (use :meth:`of_url`)."""

    monitored = True

    @classmethod
    def of_url(cls, url: str, *, parent: QObject | None) -> ExternalServer:
        """The driver of the server at ``url``.

        Raises:
            LaunchError: ``url`` is not an http(s) URL with a host.
        """
        return cls(Endpoint.from_url(url), None, parent)
