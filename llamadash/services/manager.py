"""The instance manager: every llama-server instance of the dashboard, by model name.

:class:`InstanceManager` starts, stops and restarts instances by model name (several at once on
distinct ports), persists their states to the ``models`` table, re-emits their signals with the model
name, attaches external servers by URL, stops everything when the application quits, and remembers
the PIDs it started (metadata key ``instance_pids``, see :mod:`llamadash.core.pidfile`) so that the
next start finds the llama-server processes a killed dashboard left behind (:meth:`orphans`) and can
adopt or stop them.

Auto-restart is a per-model setting kept on the model's own row (its ``auto_restart`` column, off by
default, so a renamed model keeps it and a new model given an old name does not inherit it):
:meth:`InstanceManager.set_autorestart`. A crash is followed by a
restart after a backoff (``restart_backoff_s``, doubling); ``crash_loop_max`` crashes within
``crash_loop_window_s`` seconds leave the instance in ``error``, and so do ``failed_restart_max``
automatic restarts in a row that each ended within ``stable_run_s`` seconds (a slow loop). The
reason of the latest error is kept per model (:func:`llamadash.core.pidfile.save_error_reason`) for
``llamadash status`` and ``models show``, and cleared when the model next runs.

Every launch carries marker variables in its environment (:func:`llamadash.core.pidfile.marker_environment`)
and is recorded the moment its process exists (:attr:`ServerInstance.spawned`), so a dashboard killed at
any moment leaves nothing that the next start cannot find.

It implements the sampler's ``InstanceStats`` protocol (:meth:`active_models`,
:meth:`requests_per_minute`). QtCore/QtNetwork only.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
from PySide6.QtCore import QCoreApplication, QObject, QTimer, QUrl, Signal

from llamadash.core import database as db
from llamadash.core import library, paths, pidfile, serverlog
from llamadash.core.llama_server import METADATA_KEY as BINARY_METADATA_KEY
from llamadash.core.llama_server import LlamaServerNotFound, find_llama_server
from llamadash.core.metrics import Nvml
from llamadash.core.params import CapabilityError, CommandError, build_command, probe_binary, validate_config
from llamadash.core.params.schema import META_COLUMNS
from llamadash.core.params.validate import exposure_warning
from llamadash.core.pidfile import InstanceRecord
from llamadash.services.instance import (
    DEFAULT_BUFFER_LINES,
    CrashPolicy,
    InstanceError,
    InstanceState,
    LaunchPlan,
    PortInUseError,
    ServerInstance,
)

__all__ = [
    "AUTORESTART_KEY_PREFIX",
    "DEFAULT_PORT",
    "InstanceManager",
    "next_free_port",
    "port_is_free",
    "quit_on_signals",
]

_log = logging.getLogger(__name__)

AUTORESTART_KEY_PREFIX = db.AUTORESTART_KEY_PREFIX  # before db version 3; the upgrade moves it to the rows
#: llama-server's own default port.
DEFAULT_PORT = library.LLAMA_SERVER_DEFAULT_PORT
#: Columns of a ``models`` row that are not llama-server parameters.
_NOT_PARAMS = frozenset(c for c in META_COLUMNS if c != "custom_params")


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could bind ``host:port`` now (what llama-server will try)."""
    bind_host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            if sys.platform != "win32":  # as llama-server does: TIME_WAIT leftovers do not count
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((bind_host, port))
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES, getattr(errno, "WSAEADDRINUSE", -1)):
            return False
        raise
    return True


def next_free_port(host: str, start: int, *, exclude: Iterable[int] = (), limit: int = 200) -> int | None:
    """The first free port from ``start`` on (at most ``limit`` tried), skipping ``exclude``."""
    excluded = set(exclude)
    for port in range(max(1, start), min(65536, start + limit)):
        if port in excluded:
            continue
        try:
            if port_is_free(host, port):
                return port
        except OSError:
            return None
    return None


def _port_owner(port: int) -> str:
    """`` (by llama-server, pid 123)`` when the listening process is known, else ``""``."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return f" (by {psutil.Process(conn.pid).name()}, pid {conn.pid})"
    except (psutil.Error, OSError):
        pass
    return ""


def _first_api_key(config: dict[str, Any]) -> str | None:
    keys = config.get("api_key")
    if isinstance(keys, str):
        keys = [k for k in keys.split(",")]
    for key in keys or []:
        if str(key).strip():
            return str(key).strip()
    key_file = config.get("api_key_file")
    if key_file:
        try:
            for line in Path(key_file).read_text(encoding="utf-8").splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    return line.strip()
        except OSError:
            return None
    return None


class InstanceManager(QObject):
    """All server instances of the dashboard, by model name.

    Args:
        data_dir: The data directory (logs go to its ``logs`` folder, the binary probe cache to
            ``cache``). The database must be open (it is opened there when it is not).
        parent: The Qt parent.
        poll_interval_s: Seconds between figure polls of each instance.
        load_timeout_s: Seconds a model may take to load before its start ends in ``error``.
        stop_timeout_s: Seconds between terminate and kill when stopping.
        restart_backoff_s: First delay of an automatic restart (it doubles with each crash).
        crash_loop_max: Crashes within ``crash_loop_window_s`` after which auto-restart gives up.
        crash_loop_window_s: The crash-loop window.
        failed_restart_max: Automatic restarts in a row that may fail (end within ``stable_run_s``)
            before auto-restart gives up.
        stable_run_s: Seconds a run must stay up for its automatic restart to count as a success.
        log_buffer_lines: Lines of output kept in memory per instance.
        nvml: The NVML session for per-process VRAM (share the sampler's); ``None`` makes one,
            initialised off the GUI thread.
        scan_orphans: Look for a killed dashboard's leftovers now (and reset stale statuses).
        quit_with_app: Stop every instance when the application is about to quit.
    """

    instanceAdded = Signal(str)
    """A model name: an instance now exists (after a first start, an attach or an adoption)."""

    instanceRemoved = Signal(str)
    """A model name: its instance was removed (:meth:`remove` / :meth:`detach`)."""

    stateChanged = Signal(str, str, str)
    """(model name, state value, reason); the ``models.status`` column is already updated."""

    figuresChanged = Signal(str, object)
    """(model name, :class:`~llamadash.services.instance.InstanceFigures`), each poll."""

    logLine = Signal(str, str)
    """(model name, one line of its output)."""

    eventOccurred = Signal(str, str, "qint64")  # type: ignore[arg-type]  # a 64-bit int: Unix ms overflow int
    """(model name, ``"started"``/``"ready"``/``"stopped"``/``"crashed"``, Unix ms as a Python int)."""

    orphansChanged = Signal()
    """The list of :meth:`orphans` changed (found at start, adopted or stopped)."""

    logFileProblem = Signal(str, str)
    """(model name, why its log file cannot be written), once per failure; (model name, "") once it
    is written again. The server is not affected either way."""

    def __init__(
        self,
        *,
        data_dir: Path,
        parent: QObject | None = None,
        poll_interval_s: float = 1.0,
        load_timeout_s: float = 600,
        stop_timeout_s: float = 10.0,
        restart_backoff_s: float = 2.0,
        crash_loop_max: int = 3,
        crash_loop_window_s: float = 60.0,
        failed_restart_max: int = 5,
        stable_run_s: float = 300.0,
        log_buffer_lines: int = DEFAULT_BUFFER_LINES,
        nvml: Nvml | None = None,
        scan_orphans: bool = True,
        quit_with_app: bool = True,
    ) -> None:
        super().__init__(parent)
        self._data_dir = Path(data_dir)
        if not db.is_open():
            db.init_database(paths.default_database_path(self._data_dir), record_start=False)
        self._poll_interval_s = poll_interval_s
        self._load_timeout_s = load_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._crash_policy = CrashPolicy(
            backoff_s=restart_backoff_s,
            max_crashes=crash_loop_max,
            window_s=crash_loop_window_s,
            max_failed_restarts=failed_restart_max,
            stable_run_s=stable_run_s,
        )
        self._buffer_lines = log_buffer_lines
        self._instances: dict[str, ServerInstance] = {}
        self._recorded: dict[str, int] = {}  # model name -> PID in instance_pids
        self._orphans: list[InstanceRecord] = []
        self._own_nvml = nvml is None
        self._nvml = nvml if nvml is not None else Nvml()
        if self._own_nvml:  # nvmlInit can take 100 ms: never on the GUI thread
            threading.Thread(target=self._nvml.read_all, name="llamadash-nvml-init", daemon=True).start()
        self._vram_cache: tuple[float, dict[int, float | None]] = (0.0, {})
        if scan_orphans:
            self.rescan()
        app = QCoreApplication.instance()
        if quit_with_app and app is not None:
            app.aboutToQuit.connect(self._on_about_to_quit)

    # -- lookup -------------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The data directory."""
        return self._data_dir

    def instance(self, name: str) -> ServerInstance | None:
        """The instance of model ``name`` (or the external server labelled ``name``), if any."""
        return self._instances.get(name)

    def instances(self) -> list[ServerInstance]:
        """Every instance, in the order they were added."""
        return list(self._instances.values())

    def log_path(self, name: str, *, existing: bool = False) -> Path:
        """The log file of model ``name``: ``<data dir>/logs/<log_file_name(name)>``.

        :func:`~llamadash.core.serverlog.log_file_name` makes it unique per name, bounded and safe.

        Args:
            name: The model's name.
            existing: The file to read rather than to write: where only a log of an earlier
                version exists (under its old, not always unique name), that one.
        """
        logs = paths.logs_dir(self._data_dir)
        path = logs / serverlog.log_file_name(name)
        if existing:
            old = logs / serverlog.legacy_log_file_name(name)
            try:
                if old != path and not path.exists() and old.is_file():
                    return old
            except OSError:  # e.g. an old name too long for this file system: it never was written
                pass
        return path

    # -- control ------------------------------------------------------------------------------------

    def start(self, name: str, *, port: int | None = None) -> ServerInstance:
        """Start model ``name``; returns its instance (``loading`` at first).

        Args:
            name: The model's name in the library.
            port: Use this port for this run instead of the configured one (e.g. the
                :attr:`PortInUseError.suggested_port` the user accepted); not saved.

        Raises:
            InstanceError: The start was refused: unknown model, already running, binary or model
                file missing, invalid configuration, or :class:`PortInUseError` (which carries the
                next free port).
        """
        model = db.get_model_by_name(name)
        if model is None:
            raise InstanceError(f"no model named {name!r}")
        inst = self._instances.get(name)
        if inst is not None and inst.external:
            raise InstanceError(f"{name!r} is an attached external server, not a model of the library")
        if inst is not None and inst.active:
            raise InstanceError(
                f"{name} is still stopping; try again when it has stopped"
                if inst.stopping
                else f"{name} is already {inst.state.value}"
            )
        model_id = int(model["id"])
        override = port

        def prepare() -> LaunchPlan:
            return self._plan(model_id, override)

        if inst is None:
            options = self._instance_options(name)
            inst = self._add(name, ServerInstance(name, prepare=prepare, model_id=model_id, **options))
        else:
            inst.set_prepare(prepare)  # this start's port override
            inst.auto_restart = self.autorestart(name)
        inst.start()
        return inst

    def stop(self, name: str) -> None:
        """Stop model ``name`` (asynchronous; see :meth:`ServerInstance.stop`). Unknown names are ignored."""
        inst = self._instances.get(name)
        if inst is not None:
            inst.stop()

    def restart(self, name: str) -> None:
        """Restart model ``name`` with its current configuration (or start it when it is not running).

        Raises:
            InstanceError: It was not running and the start was refused.
        """
        inst = self._instances.get(name)
        if inst is None or (not inst.active and not inst.external):
            self.start(name)
            return
        inst.restart()

    def remove(self, name: str) -> None:
        """Stop (if needed) and forget the instance of ``name``; its log file stays.

        A process that is still running is stopped at once (killed after at most 2 s, blocking):
        an instance object never goes away with its process still alive.
        """
        inst = self._instances.pop(name, None)
        if inst is None:
            return
        self._dispose(inst)
        self.instanceRemoved.emit(name)

    def detach(self, name: str) -> None:
        """Stop monitoring an external server (same as :meth:`remove`)."""
        self.remove(name)

    def stop_all(self, timeout_s: float = 10.0) -> bool:
        """Stop every instance and wait for them, at most ``timeout_s`` in all (for quitting).

        Terminates all, waits up to 70% of the time, kills what is left (the whole tree), waits for
        the rest. Blocking but bounded.

        Returns:
            True if no process is left.
        """
        deadline = time.monotonic() + max(0.0, timeout_s)
        active = [inst for inst in self._instances.values() if inst.active and not inst.external]
        for inst in self._instances.values():
            if inst.active or inst.restart_pending:  # an instance in error keeps its error
                inst.stop()
        soft_deadline = time.monotonic() + max(0.0, timeout_s) * 0.7
        for inst in active:
            inst.wait_stopped(max(0.0, soft_deadline - time.monotonic()))
        for inst in active:
            if inst.active:
                _log.warning("%s did not stop within %.1f s; killing it", inst.name, timeout_s * 0.7)
                inst.kill()
        for inst in active:
            if inst.active:
                inst.wait_stopped(max(0.1, deadline - time.monotonic()))
        left = [inst.name for inst in active if inst.active]
        if left:
            _log.error("still running after stop_all: %s", ", ".join(left))
        return not left

    def attach(self, url: str, *, name: str | None = None, api_key: str | None = None) -> ServerInstance:
        """Monitor an external llama-server by URL (no process control).

        Args:
            url: Its base URL, e.g. ``http://gpu-box:8080``.
            name: A label; defaults to ``host:port``.
            api_key: Sent to its ``/metrics`` and ``/slots``.

        Raises:
            InstanceError: The URL is not http(s) or the name is taken.
        """
        qurl = QUrl(url.strip())
        if not qurl.isValid() or qurl.scheme() not in ("http", "https") or not qurl.host():
            raise InstanceError(f"not an http(s) URL: {url!r}")
        label = name or f"{qurl.host()}:{qurl.port(443 if qurl.scheme() == 'https' else 80)}"
        if label in self._instances or db.get_model_by_name(label) is not None:
            raise InstanceError(f"the name {label!r} is already used by a model or an attached server")
        inst = ServerInstance(
            label,
            external_url=url,
            api_key=api_key,
            poll_interval_s=self._poll_interval_s,
            buffer_lines=self._buffer_lines,
        )
        self._add(label, inst)
        inst.start()
        return inst

    # -- auto-restart ---------------------------------------------------------------------------------

    def autorestart(self, name: str) -> bool:
        """Whether model ``name`` restarts automatically after a crash (its row; False: no such model)."""
        return db.get_auto_restart(name)

    def set_autorestart(self, name: str, enabled: bool) -> None:
        """Turn automatic restart after a crash on or off for model ``name`` (kept on its row).

        Raises:
            DatabaseError: there is no model of that name.
        """
        db.set_auto_restart(name, enabled)
        inst = self._instances.get(name)
        if inst is not None and not inst.external:
            inst.auto_restart = enabled

    # -- orphans ------------------------------------------------------------------------------------

    def rescan(self) -> list[dict[str, Any]]:
        """Look again for llama-server processes a killed dashboard left behind; reset stale statuses.

        Models the database calls ``running``/``loading`` that have no live process (neither ours,
        nor an orphan, nor another running llamadash's) are set to ``stopped``.

        Returns:
            :meth:`orphans`.
        """
        found = pidfile.scan()
        adopted = {inst.pid for inst in self._instances.values() if inst.adopted}
        self._orphans = [r for r in found.orphans if r.pid not in adopted]
        live = {r.model for r in found.orphans + found.foreign}
        live |= {inst.name for inst in self._instances.values() if inst.active}
        for name in pidfile.reset_stale_statuses(live):
            _log.info("%s was marked running but no process is left; now stopped", name)
        self.orphansChanged.emit()
        return self.orphans()

    def orphans(self) -> list[dict[str, Any]]:
        """llama-server processes left behind by a killed dashboard.

        Returns:
            One dict each: ``pid``, ``port``, ``host``, ``url``, ``model``, ``model_id``, ``binary``,
            ``started_at_ms``.
        """
        return [
            {
                "pid": r.pid,
                "port": r.port,
                "host": r.host,
                "url": r.url,
                "model": r.model,
                "model_id": r.model_id,
                "binary": r.binary,
                "started_at_ms": r.started_at_ms,
            }
            for r in self._orphans
        ]

    def adopt_orphan(self, pid: int) -> ServerInstance:
        """Monitor an orphan as its model's instance (figures, stop, restart; its output is lost).

        Raises:
            InstanceError: No such orphan, or its model already has an active instance.
        """
        record = next((r for r in self._orphans if r.pid == pid), None)
        if record is None:
            raise InstanceError(f"no orphaned llama-server with pid {pid}")
        existing = self._instances.get(record.model)
        if existing is not None and existing.active:
            raise InstanceError(f"{record.model} already has a running instance")
        model = db.get_model(record.model_id) if record.model_id is not None else None
        if model is None:
            model = db.get_model_by_name(record.model)
        model_id = int(model["id"]) if model else None
        name = model["name"] if model else record.model

        def prepare() -> LaunchPlan:
            if model_id is None:
                raise InstanceError(f"the model {name!r} is no longer in the library")
            return self._plan(model_id, None)

        options = self._instance_options(name)
        config = self._config(model) if model else {}
        inst = ServerInstance(
            name,
            prepare=prepare,
            model_id=model_id,
            adopted=record,
            api_key=_first_api_key(config),
            **options,
        )
        if existing is not None:
            self._instances.pop(name)
            self._dispose(existing)
            self.instanceRemoved.emit(name)
        self._orphans = [r for r in self._orphans if r.pid != pid]
        owner_pid, owner_created = pidfile.owner_identity()
        try:  # it is ours now: another dashboard starting up must not take it for an orphan
            pidfile.add_record(replace(record, owner_pid=owner_pid, owner_create_time=owner_created))
        except db.DatabaseError as exc:
            _log.warning("cannot record the adoption of pid %s: %s", pid, exc)
        self._recorded[name] = record.pid
        self._add(name, inst)
        self.orphansChanged.emit()
        return inst

    def stop_orphans(self, timeout_s: float = 5.0) -> list[int]:
        """Stop every orphan (terminate, then kill after ``timeout_s``); blocking but bounded.

        Returns:
            The PIDs that were stopped.
        """
        if not self._orphans:
            return []
        try:
            stopped, self._orphans = pidfile.stop_orphans(self._orphans, timeout_s)
        finally:
            self.orphansChanged.emit()
        return [r.pid for r in stopped]

    # -- InstanceStats ------------------------------------------------------------------------------

    def active_models(self) -> int:
        """How many instances are running (``/health`` 200), external ones included."""
        return sum(1 for inst in self._instances.values() if inst.state is InstanceState.RUNNING)

    def requests_per_minute(self) -> float:
        """Requests finished in the last minute over every instance whose log is read."""
        total = 0.0
        for inst in self._instances.values():
            value = inst.requests_per_minute()
            if value is not None:
                total += value
        return total

    # -- internals ----------------------------------------------------------------------------------

    def _instance_options(self, name: str) -> dict[str, Any]:
        return {
            "log_path": self.log_path(name),
            "poll_interval_s": self._poll_interval_s,
            "load_timeout_s": self._load_timeout_s,
            "stop_timeout_s": self._stop_timeout_s,
            "buffer_lines": self._buffer_lines,
            "crash_policy": self._crash_policy,
            "auto_restart": self.autorestart(name),
            "vram_reader": self._read_vram,
        }

    def _add(self, name: str, inst: ServerInstance) -> ServerInstance:
        # Bound methods that find the instance with sender(), not lambdas that capture it: a closure
        # kept alive by the instance's own connections would free its Python wrapper in the middle of
        # the C++ destructor after deleteLater() (a crash).
        inst.setParent(self)
        self._instances[name] = inst
        inst.spawned.connect(self._on_instance_spawned)
        inst.stateChanged.connect(self._on_instance_state)
        inst.figuresChanged.connect(self._on_instance_figures)
        inst.logLine.connect(self._on_instance_line)
        inst.eventOccurred.connect(self._on_instance_event)
        inst.logFileProblem.connect(self._on_instance_log_file)
        self.instanceAdded.emit(name)
        return inst

    def _dispose(self, inst: ServerInstance) -> None:
        """Stop (bounded, killing if needed), disconnect and delete a removed instance."""
        inst.stop()
        if inst.active and not inst.external:
            inst.wait_stopped(2.0)
            if inst.active:
                inst.kill()
                inst.wait_stopped(2.0)
        for signal_, slot in (
            (inst.spawned, self._on_instance_spawned),
            (inst.stateChanged, self._on_instance_state),
            (inst.figuresChanged, self._on_instance_figures),
            (inst.logLine, self._on_instance_line),
            (inst.eventOccurred, self._on_instance_event),
            (inst.logFileProblem, self._on_instance_log_file),
        ):
            with contextlib.suppress(RuntimeError, TypeError):
                signal_.disconnect(slot)
        inst.deleteLater()

    def _sender(self) -> ServerInstance | None:
        sender = self.sender()
        return sender if isinstance(sender, ServerInstance) else None

    def _on_instance_spawned(self, _pid: int) -> None:
        inst = self._sender()
        if inst is not None:
            self._update_record(inst)

    def _on_instance_state(self, state: str, reason: str) -> None:
        inst = self._sender()
        if inst is not None:
            self._on_state(inst, state, reason)

    def _on_instance_figures(self, figures: object) -> None:
        inst = self._sender()
        if inst is not None:
            self.figuresChanged.emit(inst.name, figures)

    def _on_instance_line(self, line: str) -> None:
        inst = self._sender()
        if inst is not None:
            self.logLine.emit(inst.name, line)

    def _on_instance_event(self, event: str, ms: int) -> None:
        inst = self._sender()
        if inst is not None:
            self.eventOccurred.emit(inst.name, event, ms)

    def _on_instance_log_file(self, problem: str) -> None:
        inst = self._sender()
        if inst is not None:
            self.logFileProblem.emit(inst.name, problem)

    def _on_state(self, inst: ServerInstance, state: str, reason: str) -> None:
        if not inst.external:
            self._update_record(inst)  # first: the record is what finds the process again
            self._set_status(inst.model_id, inst.name, InstanceState(state))
            self._keep_error_reason(inst.model_id, InstanceState(state), reason)
        self.stateChanged.emit(inst.name, state, reason)

    def _keep_error_reason(self, model_id: int | None, state: InstanceState, reason: str) -> None:
        """Remember why a model is in error (for ``status``/``models show``); forget it once it runs."""
        if model_id is None:
            return
        try:
            if state is InstanceState.ERROR:
                pidfile.save_error_reason(model_id, reason or "failed")
            elif state is InstanceState.RUNNING:
                pidfile.clear_error_reason(model_id)
        except db.DatabaseError as exc:
            _log.warning("cannot save the error reason of model %s: %s", model_id, exc)

    def _set_status(self, model_id: int | None, name: str, state: InstanceState) -> None:
        try:
            if model_id is None:
                model = db.get_model_by_name(name)
                model_id = int(model["id"]) if model else None
            if model_id is not None and db.get_model(model_id) is not None:
                db.update_model(model_id, {"status": state.value})
        except db.DatabaseError as exc:
            _log.warning("cannot save the status of %s: %s", name, exc)

    def _update_record(self, inst: ServerInstance) -> None:
        recorded = self._recorded.get(inst.name)
        pid = inst.pid
        try:
            if recorded is not None and recorded != pid:
                pidfile.remove_record(recorded)
                del self._recorded[inst.name]
            if pid is not None and recorded != pid and not inst.adopted:
                owner_pid, owner_created = pidfile.owner_identity()
                try:
                    created = psutil.Process(pid).create_time()
                except psutil.Error:
                    return
                plan = inst.launch_plan
                pidfile.add_record(
                    InstanceRecord(
                        pid=pid,
                        create_time=created,
                        model=inst.name,
                        model_id=inst.model_id,
                        host=inst.host,
                        port=inst.port,
                        binary=plan.binary if plan else "",
                        started_at_ms=inst.started_at_ms,
                        owner_pid=owner_pid,
                        owner_create_time=owner_created,
                    )
                )
                self._recorded[inst.name] = pid
        except db.DatabaseError as exc:
            _log.warning("cannot record the PID of %s: %s", inst.name, exc)

    def _read_vram(self) -> dict[int, float | None]:
        """Per-PID VRAM, read at most twice a second and only once NVML is up (never initialising it here)."""
        at, cached = self._vram_cache
        now = time.monotonic()
        if now - at < 0.5:
            return cached
        readings = self._nvml.process_memory_mb() if self._nvml.available else {}
        self._vram_cache = (now, readings)
        return readings

    def _config(self, model: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in model.items() if k not in _NOT_PARAMS}

    def _plan(self, model_id: int, port_override: int | None) -> LaunchPlan:
        """Check everything and build the launch plan of a model; raises InstanceError to refuse."""
        model = db.get_model(model_id)
        if model is None:
            raise InstanceError("the model is no longer in the library")
        name = model["name"]
        config = self._config(model)
        if port_override is not None:
            config["port"] = port_override
        if config.get("metrics_enabled") is None:
            config["metrics_enabled"] = True  # the figures need /metrics; an explicit "off" is respected
        try:
            located = find_llama_server(db.get_metadata(BINARY_METADATA_KEY))
            caps = probe_binary(located.path, label=located.label, cache_dir=self._data_dir / "cache")
        except (LlamaServerNotFound, CapabilityError) as exc:
            raise InstanceError(f"cannot start {name}: {exc}") from None
        model_path = config.get("model_path")
        if model_path and not Path(str(model_path)).expanduser().is_file():
            raise InstanceError(f"cannot start {name}: the model file {model_path} does not exist")
        errors = [i for i in validate_config(config, caps) if i.severity == "error"]
        if errors:
            details = "; ".join(f"{i.column}: {i.message}" for i in errors)
            raise InstanceError(f"cannot start {name}: invalid configuration: {details}")
        try:
            argv, env = build_command(config, caps, binary=str(located.path))
        except CommandError as exc:
            details = "; ".join(f"{column}: {message}" for column, message in exc.problems)
            raise InstanceError(f"cannot start {name}: {details}") from None
        host = str(config.get("host") or "127.0.0.1")
        if host.endswith(".sock"):
            raise InstanceError(f"cannot start {name}: a unix socket host ({host}) cannot be monitored")
        port = int(config.get("port") or DEFAULT_PORT)
        self._check_port(name, host, port)
        secure = bool(config.get("ssl_key_file") and config.get("ssl_cert_file"))
        verbosity = config.get("log_verbose")
        counts_requests = not config.get("log_disable") and (verbosity is None or int(verbosity) >= 3)
        markers = pidfile.marker_environment(
            model=name,
            model_id=model_id,
            host=host,
            port=port,
            binary=str(located.path),
            started_at_ms=time.time_ns() // 1_000_000,
        )
        warning = exposure_warning(config)
        return LaunchPlan(
            argv=tuple(argv),
            env={**env, **markers},
            warnings=(warning,) if warning else (),
            host=host,
            port=port,
            api_key=_first_api_key(config),
            api_prefix=str(config.get("api_prefix") or "").rstrip("/"),
            scheme="https" if secure else "http",
            binary=str(located.path),
            counts_requests=counts_requests,
        )

    def _check_port(self, name: str, host: str, port: int) -> None:
        ours = {
            inst.port: inst.name
            for inst in self._instances.values()
            if inst.active and not inst.external and inst.name != name and inst.port is not None
        }
        orphan_ports = {r.port: r for r in self._orphans if r.port is not None}
        taken_by = ""
        if port in ours:
            taken_by = f" by {ours[port]}"
        elif port in orphan_ports:
            orphan = orphan_ports[port]
            taken_by = (
                f" by a llama-server ({orphan.model}, pid {orphan.pid}) left behind by a killed dashboard"
            )
        else:
            try:
                if port_is_free(host, port):
                    return
            except OSError as exc:
                raise InstanceError(f"cannot start {name}: cannot use {host}:{port}: {exc}") from None
            taken_by = _port_owner(port)
        reserved = set(ours) | set(orphan_ports)
        suggested = next_free_port(host, port + 1, exclude=reserved)
        offer = f"; port {suggested} is free" if suggested else ""
        raise PortInUseError(
            f"cannot start {name}: port {port} is already in use{taken_by}{offer}", port, suggested
        )

    def _on_about_to_quit(self) -> None:
        self.stop_all(self._stop_timeout_s)
        self.close()

    def close(self) -> None:
        """Release NVML (when this manager made it). Instances are not stopped: see :meth:`stop_all`."""
        if self._own_nvml:
            self._nvml.shutdown()


def quit_on_signals(
    app: QCoreApplication,
    signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM),
    on_signal: Callable[[int], None] | None = None,
) -> Callable[[], None]:
    """Make SIGINT/SIGTERM quit the Qt event loop cleanly (so ``aboutToQuit`` stops the instances).

    Python runs signal handlers only between bytecodes, never while Qt's C++ event loop waits; a
    200 ms timer gives it the chance.

    Args:
        app: The application to quit.
        signals: The signals to handle.
        on_signal: Called with the signal number (on the main thread) before quitting.

    Returns:
        A function that restores the previous handlers and stops the timer.
    """
    previous = {}

    def handler(signum: int, _frame: object) -> None:
        if on_signal is not None:
            on_signal(signum)
        # Posted, not called: quit() before exec() is ignored, and a signal can arrive just before it.
        QTimer.singleShot(0, app.quit)

    for signum in signals:
        previous[signum] = signal.signal(signum, handler)
    timer = QTimer(app)
    timer.setInterval(200)
    timer.timeout.connect(lambda: None)
    timer.start()

    def restore() -> None:
        timer.stop()
        timer.deleteLater()
        for signum, old in previous.items():
            signal.signal(signum, old)

    return restore
