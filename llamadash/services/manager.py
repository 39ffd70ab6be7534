"""The instance manager: every llama-server instance of the dashboard, by model name.

:class:`InstanceManager` starts, stops and restarts instances by model name (several at once on
distinct ports), persists their states to the ``models`` table, re-emits their signals with the model
name, attaches external servers by URL, stops everything when the application quits, and finds the
llama-server processes a killed dashboard left behind (:meth:`orphans`) to adopt or stop them. Its
helpers have a module each: launch planning (:mod:`~llamadash.services.launcher`, around the pure
:func:`llamadash.core.launch.plan_launch`), ports (:mod:`~llamadash.services.ports`), the PID
records, statuses, error reasons and orphans (:mod:`~llamadash.services.records`), and the relay of
the instances' signals (:mod:`~llamadash.services.relay`); :func:`quit_on_signals` is
:mod:`~llamadash.services.quitting`'s (importable from here as before).

Auto-restart is a per-model setting kept on the model's own row (its ``auto_restart`` column, off by
default, so a renamed model keeps it and a new model given an old name does not inherit it):
:meth:`InstanceManager.set_autorestart`. A crash is followed by a
restart after a backoff (``restart_backoff_s``, doubling); ``crash_loop_max`` crashes within
``crash_loop_window_s`` seconds leave the instance in ``error``, and so do ``failed_restart_max``
automatic restarts in a row that each ended within ``stable_run_s`` seconds (a slow loop). The
reason of the latest error is kept per model (:func:`llamadash.core.pidfile.save_error_reason`) for
``llamadash status`` and ``models show``, and cleared when the model next runs.

Every launch carries marker variables in its environment (:func:`llamadash.core.pidfile.marker_environment`)
and is recorded the moment its process exists (:attr:`ServerInstance.spawned`, metadata
``instance_pids``), so a dashboard killed at any moment leaves nothing the next start cannot find.

Request records are stored in batches on a thread of their own (:mod:`~llamadash.services.request_store`).
The sampler reads its figures from the :class:`~llamadash.services.totals.InstanceTotals` mixin; the
library router (llama-server in router mode, one more instance) is the
:class:`~llamadash.services.router_control.RouterControl` mixin's. QtCore only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Signal

from llamadash.core import database as db
from llamadash.core import library, paths
from llamadash.core.metrics import Nvml
from llamadash.core.params.command import first_api_key
from llamadash.core.pidfile import InstanceRecord
from llamadash.core.remote import REMOTE_URL, is_remote
from llamadash.services.figures import VramReadings
from llamadash.services.instance import (
    DEFAULT_BUFFER_LINES,
    CrashPolicy,
    InstanceError,
    InstanceState,
    LaunchPlan,
    ServerInstance,
)
from llamadash.services.launcher import plan_model_launch
from llamadash.services.output_pipe import log_file_for
from llamadash.services.ports import next_free_port, port_is_free
from llamadash.services.process_driver import Endpoint
from llamadash.services.quitting import quit_on_signals
from llamadash.services.records import InstanceRecords
from llamadash.services.relay import InstanceRelay, stop_instances
from llamadash.services.request_store import RequestStore
from llamadash.services.router_control import RouterControl
from llamadash.services.totals import InstanceTotals

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


class InstanceManager(InstanceTotals, RouterControl, QObject):
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

    requestRecorded = Signal(str, object)
    """(model name, :class:`~llamadash.core.requests_log.RequestRecord`): one per request its log told
    of (finished, aborted, or incomplete when the server ended); stored in the ``requests`` table."""

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
        self._records = InstanceRecords()
        self._relay = InstanceRelay(
            on_spawned=self._records.follow,
            on_state=self._on_state,
            figures=self.figuresChanged,
            log_line=self.logLine,
            event=self.eventOccurred,
            log_file=self.logFileProblem,
            request=self.requestRecorded,
            figures_of=self._shown_figures,
            parent=self,
        )
        self.requests = RequestStore(parent=self)
        """Stores the request records (batched, off this thread)."""
        self.requestRecorded.connect(self.requests.record)
        self._read_vram = VramReadings(nvml)  # never initialises NVML on the GUI thread
        self._init_router(poll_interval_s)  # the library router (RouterControl)
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
        return log_file_for(paths.logs_dir(self._data_dir), name, existing=existing)

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
        if is_remote(model):  # another machine runs it: starting it is attaching to it
            return self._attach_remote(model, inst)
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
        left = stop_instances(self._instances.values(), timeout_s)
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
        endpoint = Endpoint.from_url(url)
        label = name or f"{endpoint.host}:{endpoint.port}"
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

    def _attach_remote(self, model: dict[str, Any], inst: ServerInstance | None) -> ServerInstance:
        """Monitor the remote entry ``model`` (see :mod:`llamadash.core.remote`); no process control."""
        name, url, key = str(model["name"]), str(model[REMOTE_URL]), first_api_key(model)
        if inst is not None and (not inst.external or inst.url != Endpoint.from_url(url).url):
            self._instances.pop(name)  # its URL changed since: a new instance for the new address
            self._dispose(inst)
            self.instanceRemoved.emit(name)
            inst = None
        if inst is None:
            inst = ServerInstance(
                name,
                external_url=url,
                api_key=key,
                model_id=int(model["id"]),
                poll_interval_s=self._poll_interval_s,
                buffer_lines=self._buffer_lines,
            )
            self._add(name, inst)
        else:
            inst.set_external_api_key(key)
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
        self._records.rescan(self._instances.values())
        self.orphansChanged.emit()
        return self.orphans()

    def orphans(self) -> list[dict[str, Any]]:
        """llama-server processes left behind by a killed dashboard.

        Returns:
            One dict each: ``pid``, ``port``, ``host``, ``url``, ``model``, ``model_id``, ``binary``,
            ``started_at_ms``.
        """
        return self._records.orphan_dicts()

    def adopt_orphan(self, pid: int) -> ServerInstance:
        """Monitor an orphan as its model's instance (figures, stop, restart; its output is lost).

        Raises:
            InstanceError: No such orphan, or its model already has an active instance.
        """
        record = next((r for r in self._records.orphans if r.pid == pid), None)
        if record is None:
            raise InstanceError(f"no orphaned llama-server with pid {pid}")
        existing = self._instances.get(record.model)
        if existing is not None and existing.active:
            raise InstanceError(f"{record.model} already has a running instance")
        if self.is_router_record(record):
            return self._adopt_router(record)
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
        inst = ServerInstance(
            name,
            prepare=prepare,
            model_id=model_id,
            adopted=record,
            api_key=first_api_key(model or {}),
            **options,
        )
        return self._adopted(name, record, inst)

    def stop_orphans(self, timeout_s: float = 5.0) -> list[int]:
        """Stop every orphan (terminate, then kill after ``timeout_s``); blocking but bounded.

        Returns:
            The PIDs that were stopped.
        """
        if not self._records.orphans:
            return []
        try:
            return self._records.stop_orphans(timeout_s)
        finally:
            self.orphansChanged.emit()

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

    def _adopted(self, name: str, record: InstanceRecord, inst: ServerInstance) -> ServerInstance:
        """``inst`` (adopting the orphan ``record``) replaces any instance of ``name``."""
        existing = self._instances.pop(name, None)
        if existing is not None:
            self._dispose(existing)
            self.instanceRemoved.emit(name)
        self._records.claim(name, record)  # ours now: another dashboard must not take it for an orphan
        self._add(name, inst)
        self.orphansChanged.emit()
        return inst

    def _add(self, name: str, inst: ServerInstance) -> ServerInstance:
        inst.setParent(self)
        self._instances[name] = inst
        self._relay.connect_instance(inst)
        self.instanceAdded.emit(name)
        return inst

    def _dispose(self, inst: ServerInstance) -> None:
        """Stop (bounded, killing if needed), disconnect and delete a removed instance."""
        self._relay.dispose_instance(inst)

    def _on_state(self, inst: ServerInstance, state: str, reason: str) -> None:
        if not inst.external or inst.model_id is not None:  # a remote entry's status shows in the library too
            self._records.note_state(inst, InstanceState(state), reason)
        self.stateChanged.emit(inst.name, state, reason)

    def _plan(self, model_id: int, port_override: int | None) -> LaunchPlan:
        """Check everything and build the launch plan of a model; raises InstanceError to refuse."""
        reserved = self._records.reserved_ports(self._instances.values(), model_id)
        return plan_model_launch(
            model_id, cache_dir=self._data_dir / "cache", port_override=port_override, reserved=reserved
        )

    def _on_about_to_quit(self) -> None:
        self.stop_all(self._stop_timeout_s)
        self.close()

    def close(self) -> None:
        """Store the request records left (bounded wait), release NVML (if it made it); stops no instance."""
        self.requests.close()
        self._read_vram.close()
