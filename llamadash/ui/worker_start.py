"""Start a model whose local RPC workers are stopped: ask, start them, then the model.

llama-server stops at once when a worker of its ``--rpc`` list does not answer. Before the
window's Start, :class:`WorkerStartGate` looks for stopped local workers in the model's list;
when there are some it asks "Start workers w1, w2 first?" (a window-modal box, not a nested event
loop), starts them through the :class:`~llamadash.services.rpc_workers.WorkerService` on Yes, and
starts the model once every one of them accepts connections. A worker that fails is said, and
the model is not started.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QMessageBox

from llamadash.core import database as db
from llamadash.core import model_workers, worker_records
from llamadash.core.launch import MissingBinaryError
from llamadash.core.remote import is_remote
from llamadash.core.workers import WorkerError
from llamadash.services.rpc_workers import WorkerService, WorkerState
from llamadash.ui.instances_view import failure_text

__all__ = ["WorkerStartGate", "install", "question_text"]


def question_text(names: list[str]) -> str:
    """``"Start workers w1, w2 first?"``."""
    return f"Start worker{'s' if len(names) != 1 else ''} {', '.join(names)} first?"


class WorkerStartGate(QObject):
    """The Start action's look at the model's workers (``InstancesView.before_start``)."""

    def __init__(self, window: Any, service: WorkerService) -> None:
        super().__init__(window)
        self._window = window
        self._service = service
        self.box: QMessageBox | None = None
        #: (model, the workers it waits for) while workers started for a Start come up.
        self.pending: tuple[str, list[str]] | None = None
        service.stateChanged.connect(self._on_worker_state)

    def _running(self) -> Any:
        found = worker_records.scan()
        elsewhere = {r.model for r in found.foreign + found.orphans}
        active = (WorkerState.RUNNING, WorkerState.STARTING)
        return lambda name: self._service.state(name) in active or name in elsewhere

    def before_start(self, name: str) -> bool:
        """``True``: start ``name`` now; ``False``: its stopped workers were asked about first."""
        model = db.get_model_by_name(name)
        if model is None or is_remote(model):
            return True
        stopped = model_workers.stopped_local_workers(model, self._running())
        if not stopped:
            return True
        names = [w.name for w in stopped]
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Start workers",
            question_text(names),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self._window,
        )
        box.setObjectName("startWorkersBox")
        box.setInformativeText(
            f"{name} runs across RPC workers, and these local ones are stopped: "
            + ", ".join(f"{w.name} ({w.endpoint})" for w in stopped)
            + ". Without them llama-server stops at once. Yes starts them, then the model."
        )
        box.setDefaultButton(QMessageBox.StandardButton.Yes)
        box.finished.connect(lambda _code: self._answered(box, name, stopped))
        self.box = box
        box.open()
        return False

    def _answered(self, box: QMessageBox, name: str, stopped: list[Any]) -> None:
        if box.standardButton(box.clickedButton()) != QMessageBox.StandardButton.Yes:
            return
        self.pending = (name, [w.name for w in stopped])
        for worker in stopped:
            try:
                self._service.start(worker)
            except WorkerError as exc:
                self.pending = None
                self._window.show_refusal("start", name, f"Could not start worker {worker.name}: {exc}")
                return
        self._check_pending()

    def _on_worker_state(self, worker: str, state: str, reason: str) -> None:
        if self.pending is None or worker not in self.pending[1]:
            return
        if state in (WorkerState.ERROR, WorkerState.STOPPED):
            name = self.pending[0]
            self.pending = None
            why = (reason or state).splitlines()[0]
            self._window.show_refusal(
                "start", name, f"Worker {worker} did not start ({why}): {name} was not started."
            )
            return
        self._check_pending()

    def _check_pending(self) -> None:
        if self.pending is None:
            return
        name, names = self.pending
        if not all(self._service.state(n) == WorkerState.RUNNING for n in names):
            return
        self.pending = None
        manager = self._window.instances_view.model.manager
        if manager is None:
            return
        try:
            manager.start(name)
        except Exception as exc:
            self._window.show_refusal(
                "start", name, failure_text("start", name, exc), isinstance(exc, MissingBinaryError)
            )


def install(window: Any, service: WorkerService) -> WorkerStartGate:
    """Put the gate before the window's Start (the instances view's ``before_start``)."""
    gate = WorkerStartGate(window, service)
    window.instances_view.before_start = gate.before_start
    window.worker_start_gate = gate
    return gate
