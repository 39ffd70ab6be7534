"""One stand-in for the instance manager and its instances, for the widget tests.

:class:`FakeManager` and :class:`FakeInstance` implement :class:`llamadash.services.protocols.Manager`
and :class:`~llamadash.services.protocols.Instance` (``tests/unit/services/test_protocols.py`` keeps
them so). They are for what a real llama-server cannot be made to do on cue: crash at a chosen
moment, be refused with a chosen reason, be left over by an earlier session. The manager is a
``QObject`` with the real manager's signals; the test drives them (:meth:`FakeManager.set_state`
emits what the real manager would) and reads back what the widgets asked for (``calls``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from llamadash.core.diagnosis import Diagnosis
from llamadash.core.router import RouterPlan, RouterSettings
from llamadash.core.serverlog import log_file_name
from llamadash.core.states import ACTIVE_STATES, InstanceState
from llamadash.services.router import RouterWatcher

__all__ = ["FakeFigures", "FakeInstance", "FakeManager"]


@dataclass
class FakeFigures:
    """The figures of one poll (what ``figuresChanged`` carries); ``None``: not available."""

    generation_tokens_per_s: float | None = None
    requests_per_minute: float | None = None
    cpu_percent: float | None = None
    rss_mb: float | None = None
    vram_mb: float | None = None
    busy_slots: float | None = None
    total_slots: float | None = None
    prompt_tokens_per_s: float | None = None

    @property
    def tokens_per_second(self) -> float | None:  # the real figures' other name for it
        return self.generation_tokens_per_s

    @property
    def prompt_tokens_per_second(self) -> float | None:
        return self.prompt_tokens_per_s


@dataclass
class FakeInstance:
    """An instance whose every member the test sets (``lines`` is its output buffer)."""

    name: str
    state: InstanceState = InstanceState.STOPPED
    reason: str = ""
    diagnosis: Diagnosis | None = None
    api_key: str | None = None
    port: int | None = None
    url: str = ""
    pid: int | None = None
    started_at_ms: int | None = None
    log_path: Path | None = None
    external: bool = False
    restart_pending: bool = False
    load_progress: tuple[float | None, str] = (None, "")
    warnings: tuple[str, ...] = ()
    log_file_problem: str = ""
    log_file_recovery_note: str = ""
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state = InstanceState(self.state)  # "running" as the enum, like the real instance's

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def log_lines(self) -> list[str]:
        return list(self.lines)


class FakeManager(QObject):
    """The instance manager's signals and calls, driven by the test.

    Args:
        instances: The instances it has from the start.
        orphans: Leftover servers of an "earlier session" (dicts with ``pid``, ``model``, ``port``).
        logs_dir: Where :meth:`log_path` says the logs are (default: a folder that does not exist).
    """

    instanceAdded = Signal(str)
    instanceRemoved = Signal(str)
    stateChanged = Signal(str, str, str)
    figuresChanged = Signal(str, object)
    logLine = Signal(str, str)
    eventOccurred = Signal(str, str, "qint64")  # type: ignore[arg-type]  # as the real manager's
    orphansChanged = Signal()
    logFileProblem = Signal(str, str)
    requestRecorded = Signal(str, object)

    def __init__(
        self,
        instances: Iterable[FakeInstance] = (),
        *,
        orphans: Iterable[Mapping[str, Any]] = (),
        logs_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self._instances: dict[str, FakeInstance] = {i.name: i for i in instances}
        self.left: list[dict[str, Any]] = [dict(o) for o in orphans]
        self.logs_dir = logs_dir or Path(tempfile.gettempdir()) / "llamadash-fake-manager-logs-never-made"
        self.calls: list[tuple[str, str]] = []  # ("start" | "stop" | "restart", name), in order
        self.refuse: str | None = None  # set: start raises with this text
        self.adopted: list[int] = []
        self.stopped_with: list[float] = []  # stop_all's timeouts
        self.closed = False
        self.router_models = RouterWatcher()  # the real watcher: it polls nothing until told to
        self.router_plan: RouterPlan | None = None
        self.router_starts: list[RouterSettings | None] = []
        self.router_refreshes = 0  # refresh_router calls (the library changed)
        self.router_settings = RouterSettings()
        self.router_next: list[RouterSettings] = []  # set_router_settings calls

    # -- driven by the test --------------------------------------------------------------------------

    def add(self, instance: FakeInstance) -> FakeInstance:
        """Make ``instance`` the instance of its name and say so (``instanceAdded``)."""
        self._instances[instance.name] = instance
        self.instanceAdded.emit(instance.name)
        return instance

    def set_state(self, name: str, state: str, reason: str = "", **attributes: Any) -> FakeInstance:
        """Put ``name``'s instance (made on first use) in ``state`` and emit ``stateChanged``."""
        inst = self._instances.get(name)
        if inst is None:
            inst = self.add(FakeInstance(name))
        inst.state, inst.reason = InstanceState(state), reason
        for key, value in attributes.items():
            setattr(inst, key, value)
        self.stateChanged.emit(name, str(inst.state), reason)
        return inst

    # -- the Manager protocol ------------------------------------------------------------------------

    def instance(self, name: str) -> FakeInstance | None:
        return self._instances.get(name)

    def instances(self) -> list[FakeInstance]:
        return list(self._instances.values())

    def start(self, name: str) -> None:
        if self.refuse:
            raise RuntimeError(self.refuse)
        self.calls.append(("start", name))

    def stop(self, name: str) -> None:
        self.calls.append(("stop", name))

    def restart(self, name: str) -> None:
        self.calls.append(("restart", name))

    def log_path(self, name: str, *, existing: bool = False) -> Path:
        return self.logs_dir / log_file_name(name)

    def orphans(self) -> list[dict[str, Any]]:
        return list(self.left)

    def adopt_orphan(self, pid: int) -> None:
        self.adopted.append(pid)
        self.left = [o for o in self.left if o["pid"] != pid]
        self.orphansChanged.emit()

    def stop_orphans(self) -> list[int]:
        stopped, self.left = [o["pid"] for o in self.left], []
        self.orphansChanged.emit()
        return stopped

    def stop_all(self, timeout_s: float = 10.0) -> bool:
        self.stopped_with.append(timeout_s)
        return True

    def close(self) -> None:
        self.closed = True

    def start_router(self, settings: RouterSettings | None = None) -> None:
        if self.refuse:
            raise RuntimeError(self.refuse)
        self.router_starts.append(settings)
        self.router_settings = settings or RouterSettings()

    def refresh_router(self) -> list[str]:
        self.router_refreshes += 1
        return []

    def set_router_settings(self, settings: RouterSettings) -> None:
        self.router_next.append(settings)
