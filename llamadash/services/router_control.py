"""The library router's part of the instance manager: start, adopt, refresh and follow it.

:class:`RouterControl` is a mixin of :class:`~llamadash.services.manager.InstanceManager`. The
router (llama-server in router mode, serving every model marked served) is one more instance of
the manager, named :data:`~llamadash.core.router.ROUTER_NAME`: started health-gated, logged, PID
recorded, stopped with kill escalation, its crash an error like any other. This mixin plans it
(:func:`~llamadash.services.router.plan_router_launch`), adopts the router a killed dashboard left
(with its models), has a running router read its presets again after the library changed, and
follows its models' states (:attr:`RouterControl.router_models`). QtCore only.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
from PySide6.QtCore import QObject

from llamadash.core.launch import LaunchError as InstanceError
from llamadash.core.launch import LaunchPlan
from llamadash.core.pidfile import InstanceRecord
from llamadash.core.requests_log import RequestRecord
from llamadash.core.router import ROUTER_NAME, RouterPlan, RouterSettings, settings_from_argv
from llamadash.core.states import InstanceState
from llamadash.services.figures import InstanceFigures, VramReadings
from llamadash.services.instance import ServerInstance
from llamadash.services.records import InstanceRecords
from llamadash.services.router import RouterWatcher, plan_router_launch
from llamadash.services.router_figures import RouterModelFigures

__all__ = ["RouterControl"]


class RouterControl:
    """Start, adopt, refresh and follow the library router (a mixin of the instance manager)."""

    # what the manager has, that this mixin uses
    _instances: dict[str, ServerInstance]
    _data_dir: Path
    _records: InstanceRecords
    _read_vram: VramReadings

    def _add(self, name: str, inst: ServerInstance) -> ServerInstance:
        raise NotImplementedError

    def _instance_options(self, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def _adopted(self, name: str, record: InstanceRecord, inst: ServerInstance) -> ServerInstance:
        raise NotImplementedError

    def _init_router(self, poll_interval_s: float) -> None:
        """Called once by the manager's constructor (its ``stateChanged`` exists by then)."""
        assert isinstance(self, QObject)
        self._router_models = RouterWatcher(interval_s=poll_interval_s, parent=self)
        self._router_figures = RouterModelFigures(
            self._router_model_figures,
            poll_interval_s=poll_interval_s,
            vram_reader=self._read_vram,
            parent=self,
        )
        self._router_models.modelsChanged.connect(self._router_figures.follow)
        self._router_models.unloading.connect(self._router_figures.forget)
        self._router_plan: RouterPlan | None = None
        self._router_settings = RouterSettings()  # those of the router that runs (or ran last)
        self._router_next: RouterSettings | None = None  # changed since: its next (re)start takes them
        self.stateChanged.connect(self._follow_router)  # type: ignore[attr-defined]  # the manager's
        self.requestRecorded.connect(self._router_request)  # type: ignore[attr-defined]  # the manager's

    @staticmethod
    def is_router_record(record: InstanceRecord) -> bool:
        """Whether a PID record (an orphan's) is a library router's."""
        return record.model == ROUTER_NAME

    def start_router(self, settings: RouterSettings | None = None) -> ServerInstance:
        """Start the library router (llama-server in router mode) serving every model marked served.

        Its instance is :meth:`instance` (:data:`~llamadash.core.router.ROUTER_NAME`), stopped,
        restarted and followed like any other; :attr:`router_models` follows its models. A served
        model the build cannot start is left out, named in the instance's warnings.

        Raises:
            InstanceError: The start was refused (no binary, no router mode, no served model, the
                port taken, already running).
        """
        self._router_settings = settings or RouterSettings()
        self._router_next = None
        inst = self._instances.get(ROUTER_NAME)
        if inst is not None and inst.active:
            raise InstanceError(f"the router is already {inst.state.value}")
        prepare = self._prepare_router
        if inst is None:
            inst = self._add(
                ROUTER_NAME,
                ServerInstance(ROUTER_NAME, prepare=prepare, **self._instance_options(ROUTER_NAME)),
            )
        else:
            inst.set_prepare(prepare)
        inst.start()
        return inst

    @property
    def router_settings(self) -> RouterSettings:
        """The settings of the router that runs (or ran last; an adopted one's, from its command line)."""
        return self._router_settings

    def set_router_settings(self, settings: RouterSettings) -> None:
        """The Router settings changed: the router's next start or restart takes them (a running one
        keeps its own until then)."""
        self._router_next = settings if settings != self._router_settings else None

    def _prepare_router(self) -> LaunchPlan:
        if self._router_next is not None:  # a restart after the Settings changed: the new ones
            self._router_settings, self._router_next = self._router_next, None
        reserved = self._records.reserved_ports(self._instances.values(), None)
        plan, self._router_plan = plan_router_launch(self._data_dir, self._router_settings, reserved=reserved)
        return plan

    def _adopt_router(self, record: InstanceRecord) -> ServerInstance:
        """A killed dashboard's router: followed (its models too), stopped with its children, restartable."""
        port = record.port or self._router_settings.port
        default = replace(self._router_settings, port=port, host=record.host or self._router_settings.host)
        self._router_settings = settings_from_argv(_command_line(record.pid), default)
        self._router_next = None
        try:  # what it serves, as far as the library now says (the base URL above all)
            _launch, self._router_plan = plan_router_launch(
                self._data_dir, self._router_settings, reserved={}, port_check=False
            )
        except (InstanceError, OSError):
            self._router_plan = None
        inst = ServerInstance(
            ROUTER_NAME, prepare=self._prepare_router, adopted=record, **self._instance_options(ROUTER_NAME)
        )
        return self._adopted(ROUTER_NAME, record, inst)

    @property
    def router_models(self) -> RouterWatcher:
        """The library router's models and their states (polled while the router runs)."""
        return self._router_models

    @property
    def router_figures(self) -> RouterModelFigures:
        """The figures of each model the router has loaded (``/slots?model=``, ``/metrics?model=``)."""
        return self._router_figures

    def _router_model_figures(self, name: str, figures: InstanceFigures) -> None:
        own = self._instances.get(name)
        if own is not None and own.active:
            return  # the model also runs as its own server: its row shows that one's figures
        self.figuresChanged.emit(name, figures)  # type: ignore[attr-defined]  # the manager's

    def _router_request(self, name: str, record: RequestRecord) -> None:
        if name == ROUTER_NAME:
            self._router_figures.add_request(record)

    def _shown_figures(self, inst: ServerInstance, figures: Any) -> Any:
        """What an instance's figures show as: the router's own with its models' rates and slots."""
        if inst.name == ROUTER_NAME and isinstance(figures, InstanceFigures):
            return self._router_figures.router_figures(figures)
        return figures

    def _router_model_samples(self) -> list[dict[str, Any]]:
        """One history row per model the router has loaded (unless it also runs as its own server)."""
        rows = []
        for name in self._router_figures.polled():
            own = self._instances.get(name)
            figures = self._router_figures.figures(name)
            if figures is not None and (own is None or not own.active):
                rows.append(figures.sample_row(name))
        return rows

    @property
    def router_plan(self) -> RouterPlan | None:
        """The plan of the router's latest start (served and left-out models, the base URL)."""
        return self._router_plan

    def refresh_router(self) -> list[str]:
        """The library changed: rewrite the running router's presets file and have it read it again.

        A model added, removed or marked (not) served is (not) listed from now on; an edited one
        loads with its new settings next time.

        Returns:
            What the user should know: each model that is loaded with its earlier settings (unload
            it to apply the new ones), and each served model left out. Empty when no router runs.

        Raises:
            InstanceError: The new presets cannot be planned (e.g. no served model left); the
                router goes on with the file it has.
        """
        inst = self._instances.get(ROUTER_NAME)
        if inst is None or inst.state is not InstanceState.RUNNING:
            return []
        earlier = self._router_plan
        _launch, plan = plan_router_launch(
            self._data_dir, self._router_settings, reserved={}, port_check=False
        )
        self._router_plan = plan
        self._router_models.poll(reload=True)
        notes = [item.message() for item in plan.left_out]
        for name in plan.changed_since(earlier) if earlier is not None else []:
            model = self._router_models.model(name)
            if model is not None and model.running:
                notes.append(f"{name} is loaded with its earlier settings: unload it to apply the new ones")
        return notes

    def _follow_router(self, name: str, state: str, _reason: str) -> None:
        if name != ROUTER_NAME:
            return
        inst = self._instances.get(ROUTER_NAME)
        if state == InstanceState.RUNNING.value and inst is not None:
            self._router_figures.aim(inst.url, inst.api_key, inst.pid)
            self.router_models.watch(inst.url, inst.api_key)
        elif state != InstanceState.LOADING.value:
            self.router_models.halt()
            self._router_figures.halt()


def _command_line(pid: int) -> list[str]:
    """The command line of process ``pid`` (empty when it cannot be read)."""
    try:
        return list(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []
