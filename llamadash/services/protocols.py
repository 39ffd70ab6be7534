"""What the front ends need from the instance manager and from an instance, as typing Protocols.

The window, the tray, the instances view and the logs dock are typed against :class:`Manager` and
:class:`Instance`, not against :class:`~llamadash.services.manager.InstanceManager` and
:class:`~llamadash.services.instance.ServerInstance`: they read these members and nothing else, and
the widget tests drive them with one stand-in (``tests/fakes.py``) that provides the same members.
``tests/unit/services/test_protocols.py`` checks that the real classes and the stand-ins provide
every member declared here (and that their signals carry the same arguments), so a member added
here and not there fails a test.

The members are read-only properties where the real class has a property: a plain attribute
(a dataclass field of the stand-in) satisfies them too. Signals are declared as the
:class:`~PySide6.QtCore.SignalInstance` an instance's ``Signal`` class attribute yields.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import SignalInstance

from llamadash.core.states import InstanceState

if TYPE_CHECKING:  # annotations only: the window imports this module before its first paint
    from llamadash.core.diagnosis import Diagnosis
    from llamadash.core.router import RouterPlan, RouterSettings
    from llamadash.services.router import RouterWatcher

__all__ = ["Instance", "Manager"]


class Instance(Protocol):
    """One llama-server instance as the front ends see it (a :class:`ServerInstance`).

    The state is ``stopped``, ``loading``, ``running`` or ``error``; figures arrive through the
    manager's ``figuresChanged``, not from here.
    """

    @property
    def name(self) -> str:
        """The model's name (or the external server's label)."""
        ...

    @property
    def state(self) -> InstanceState:
        """The current state."""
        ...

    @property
    def reason(self) -> str:
        """Why the instance is in its state ("" when there is nothing to say)."""
        ...

    @property
    def api_key(self) -> str | None:
        """The key its server wants (``Authorization: Bearer``), if it has one."""
        ...

    @property
    def diagnosis(self) -> Diagnosis | None:
        """A known cause of the last failed run and what to do, or ``None`` (see core/diagnosis)."""
        ...

    @property
    def active(self) -> bool:
        """True while there is a process (or, for an external server, while it is monitored)."""
        ...

    @property
    def external(self) -> bool:
        """True for a server attached by URL (llamadash does not own its process)."""
        ...

    @property
    def restart_pending(self) -> bool:
        """True while an automatic restart is scheduled (Stop cancels it)."""
        ...

    @property
    def port(self) -> int | None:
        """The server's port (known once started)."""
        ...

    @property
    def url(self) -> str:
        """The base URL clients use, e.g. ``http://127.0.0.1:8080``."""
        ...

    @property
    def pid(self) -> int | None:
        """The llama-server process id while there is one."""
        ...

    @property
    def started_at_ms(self) -> int | None:
        """When the process was started (Unix ms): the uptime counts from it."""
        ...

    @property
    def load_progress(self) -> tuple[float | None, str]:
        """(fraction or ``None``, stage) of the load in progress, as read from the log."""
        ...

    @property
    def warnings(self) -> Sequence[str]:
        """What the user should know about the latest start (e.g. reachable without an API key)."""
        ...

    @property
    def log_path(self) -> Path | None:
        """The instance's log file; ``None`` for an external server."""
        ...

    @property
    def log_file_problem(self) -> str:
        """Why the log file cannot be written now ("" while it can)."""
        ...

    @property
    def log_file_recovery_note(self) -> str:
        """What the log file says about the lines its last failure lost ("" if it never failed)."""
        ...

    def log_lines(self) -> list[str]:
        """The bounded buffer of output lines, oldest first."""
        ...


class Manager(Protocol):
    """The instance manager as the front ends see it (an :class:`InstanceManager`).

    The window follows its signals and calls start, stop, restart and the leftover-server actions;
    the launcher (:mod:`llamadash.app`) stops everything and closes it on quit. Starting, stopping
    and restarting are asynchronous: the outcome arrives through ``stateChanged``. A refusal is
    raised (its text says "cannot start NAME: why").
    """

    instanceAdded: SignalInstance
    """``(name)``: an instance now exists (after a first start, an attach or an adoption)."""

    instanceRemoved: SignalInstance
    """``(name)``: its instance was removed."""

    stateChanged: SignalInstance
    """``(name, state, reason)``: an instance's state changed (the state as its text)."""

    figuresChanged: SignalInstance
    """``(name, figures)``: the latest :class:`~llamadash.services.instance.InstanceFigures`, each poll."""

    logLine: SignalInstance
    """``(name, line)``: one line of an instance's output."""

    eventOccurred: SignalInstance
    """``(name, event, unix_ms)``: ``started``, ``ready``, ``stopped`` or ``crashed`` (a 64-bit ms)."""

    orphansChanged: SignalInstance
    """``()``: the list of :meth:`orphans` changed (found at start, adopted or stopped)."""

    logFileProblem: SignalInstance
    """``(name, problem)``: its log file cannot be written (why), or ``""`` once it is written again."""

    requestRecorded: SignalInstance
    """``(name, record)``: a :class:`~llamadash.core.requests_log.RequestRecord` of a request its log
    told of (finished, aborted, or incomplete when the server ended); already being stored."""

    def instance(self, name: str) -> Instance | None:
        """The instance of model ``name``, or ``None`` when it has none (never started)."""
        ...

    def instances(self) -> Sequence[Instance]:
        """Every instance, in the order they were added."""
        ...

    def start(self, name: str) -> object:
        """Start model ``name`` (the front ends ignore what it returns); raises when it is refused."""
        ...

    def stop(self, name: str) -> None:
        """Stop model ``name`` (or cancel its pending automatic restart)."""
        ...

    def restart(self, name: str) -> None:
        """Stop model ``name`` and start it again; raises when the new start is refused."""
        ...

    def log_path(self, name: str, *, existing: bool = False) -> Path:
        """Where model ``name``'s log file is; ``existing``: the one to read (an earlier version's name)."""
        ...

    def orphans(self) -> list[dict[str, Any]]:
        """The llama-servers a killed dashboard left running (``pid``, ``model``, ``port``, ...)."""
        ...

    def adopt_orphan(self, pid: int) -> object:
        """Monitor the leftover server ``pid`` as its model's instance; raises when it cannot."""
        ...

    def stop_orphans(self) -> list[int]:
        """Stop every leftover server (blocking, bounded); returns the PIDs stopped."""
        ...

    def stop_all(self, timeout_s: float = ...) -> bool:
        """Stop every instance and wait at most ``timeout_s`` (quitting); true if none is left."""
        ...

    def close(self) -> None:
        """Release what the manager holds (NVML); the instances are not stopped."""
        ...

    @property
    def router_models(self) -> RouterWatcher:
        """The library router's models and their states; loads and unloads them."""
        ...

    @property
    def router_plan(self) -> RouterPlan | None:
        """The plan of the router's latest start (served and left-out models, base URL), if any."""
        ...

    def start_router(self, settings: RouterSettings | None = None) -> object:
        """Start the library router (instance ``[router]``); raises when the start is refused."""
        ...

    def refresh_router(self) -> list[str]:
        """The library changed: the running router re-reads its rewritten presets; what to tell the user."""
        ...

    @property
    def router_settings(self) -> RouterSettings:
        """The settings of the router that runs (or ran last)."""
        ...

    def set_router_settings(self, settings: RouterSettings) -> None:
        """The Router settings changed: the router's next start or restart takes them."""
        ...
