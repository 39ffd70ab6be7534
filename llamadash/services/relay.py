"""The wiring between the instance manager and its instances.

:class:`InstanceRelay` passes each instance's signals on to the manager with the instance in front
(its name for the manager's own signals) and disposes of a removed instance, and :func:`stop_instances` stops a set of instances within
one bounded time (for quitting and :meth:`~llamadash.services.manager.InstanceManager.stop_all`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from PySide6.QtCore import QObject, SignalInstance

from llamadash.services.instance import ServerInstance

__all__ = ["InstanceRelay", "stop_instances"]

_log = logging.getLogger(__name__)


class InstanceRelay(QObject):
    """Connects instances to the manager: their signals come out here with the instance named.

    The slots are bound methods that find the instance with ``sender()``, not lambdas that capture
    it: a closure kept alive by the instance's own connections would free its Python wrapper in the
    middle of the C++ destructor after ``deleteLater()`` (a crash).

    Args:
        on_spawned: Called with an instance whose process was just created.
        on_state: Called with (instance, state value, reason).
        figures: Emitted with (name, figures).
        log_line: Emitted with (name, line).
        event: Emitted with (name, event, Unix ms).
        log_file: Emitted with (name, log file problem or "").
        request: Emitted with (name, request record).
        parent: The Qt parent (the manager).
    """

    def __init__(
        self,
        *,
        on_spawned: Callable[[ServerInstance], None],
        on_state: Callable[[ServerInstance, str, str], None],
        figures: SignalInstance,
        log_line: SignalInstance,
        event: SignalInstance,
        log_file: SignalInstance,
        request: SignalInstance,
        figures_of: Callable[[ServerInstance, object], object] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._figures_of = figures_of  # what an instance's figures show as (the router's: its models')
        self._on_spawned = on_spawned
        self._on_state = on_state
        self._figures, self._log_line, self._event, self._log_file = figures, log_line, event, log_file
        self._request = request

    def connect_instance(self, inst: ServerInstance) -> None:
        """Pass ``inst``'s signals on from now on."""
        for signal_, slot in self._pairs(inst):
            signal_.connect(slot)

    def disconnect_instance(self, inst: ServerInstance) -> None:
        """No more of ``inst``'s signals."""
        for signal_, slot in self._pairs(inst):
            with contextlib.suppress(RuntimeError, TypeError):
                signal_.disconnect(slot)

    def dispose_instance(self, inst: ServerInstance) -> None:
        """Stop ``inst`` (bounded: killed after 2 s, then 2 s more at most), disconnect and delete it.

        An instance object never goes away with its process still alive.
        """
        inst.stop()
        if inst.active and not inst.external:
            inst.wait_stopped(2.0)
            if inst.active:
                inst.kill()
                inst.wait_stopped(2.0)
        self.disconnect_instance(inst)
        inst.deleteLater()

    def _pairs(self, inst: ServerInstance) -> list[tuple[Any, Callable[..., None]]]:
        return [
            (inst.spawned, self._spawned),
            (inst.stateChanged, self._state),
            (inst.figuresChanged, self._figures_changed),
            (inst.logLine, self._line),
            (inst.eventOccurred, self._event_occurred),
            (inst.logFileProblem, self._log_file_problem),
            (inst.requestRecorded, self._request_recorded),
        ]

    def _sender(self) -> ServerInstance | None:
        sender = self.sender()
        return sender if isinstance(sender, ServerInstance) else None

    def _spawned(self, _pid: int) -> None:
        inst = self._sender()
        if inst is not None:
            self._on_spawned(inst)

    def _state(self, state: str, reason: str) -> None:
        inst = self._sender()
        if inst is not None:
            self._on_state(inst, state, reason)

    def _figures_changed(self, figures: object) -> None:
        inst = self._sender()
        if inst is not None:
            self._figures.emit(inst.name, self._figures_of(inst, figures) if self._figures_of else figures)

    def _line(self, line: str) -> None:
        inst = self._sender()
        if inst is not None:
            self._log_line.emit(inst.name, line)

    def _event_occurred(self, event: str, ms: int) -> None:
        inst = self._sender()
        if inst is not None:
            self._event.emit(inst.name, event, ms)

    def _log_file_problem(self, problem: str) -> None:
        inst = self._sender()
        if inst is not None:
            self._log_file.emit(inst.name, problem)

    def _request_recorded(self, record: object) -> None:
        inst = self._sender()
        if inst is not None:
            self._request.emit(inst.name, record)


def stop_instances(instances: Iterable[ServerInstance], timeout_s: float) -> list[str]:
    """Stop ``instances`` and wait for them, at most ``timeout_s`` in all; blocking but bounded.

    Terminates all, waits up to 70% of the time, kills what is left (the whole tree), waits for
    the rest. An instance in error keeps its error (only a pending automatic restart is cancelled).

    Returns:
        The names of those whose process is still there.
    """
    instances = list(instances)
    deadline = time.monotonic() + max(0.0, timeout_s)
    active = [inst for inst in instances if inst.active and not inst.external]
    for inst in instances:
        if inst.active or inst.restart_pending:
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
    return [inst.name for inst in active if inst.active]
