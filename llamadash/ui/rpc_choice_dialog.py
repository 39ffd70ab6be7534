"""Library ▸ *Run across workers…*: choose a model's RPC workers and its tensor split.

A small dialog lists the registered workers as checkboxes (the model's current ones checked, in
its order, then the others) and takes a ``--tensor-split`` list. OK sets the model's ``rpc`` column
(and ``tensor_split``) through the library service, as ``llamadash workers use`` does; nothing
checked takes the model off its workers. A value the schema refuses is said in the dialog and
changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from llamadash.core import model_workers, workers
from llamadash.core.params import COLUMN, load_schema
from llamadash.core.workers import Worker, open_network_warning
from llamadash.ui.theme import error_style_sheet

__all__ = ["ACTION_TEXT", "RpcWorkersDialog", "run_across_workers"]

ACTION_TEXT = "Run across workers\u2026"


class RpcWorkersDialog(QDialog):
    """The workers of one model (checkboxes) and its tensor split."""

    def __init__(self, model: dict[str, Any], known: Sequence[Worker], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("rpcWorkersDialog")
        self.setWindowTitle(f"Run {model['name']} across workers")
        schema = load_schema()
        current = model_workers.model_endpoints(model)
        ordered = sorted(
            known, key=lambda w: current.index(w.endpoint) if w.endpoint in current else len(current)
        )
        layout = QVBoxLayout(self)
        intro = QLabel(
            "llama.cpp's RPC backend splits the model over the checked workers (its --rpc list, in "
            "this order); the model's own devices are used too. Applies from its next start."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.boxes: dict[str, QCheckBox] = {}
        for worker in ordered:
            box = QCheckBox(f"{worker.name}  —  {worker.endpoint}  ({worker.kind})")
            box.setObjectName(f"worker_{worker.name}")
            box.setChecked(worker.endpoint in current)
            warning = open_network_warning(worker)
            if warning:
                box.setToolTip(f"WARNING: {warning}")
            self.boxes[worker.name] = box
            layout.addWidget(box)
        self._workers = {w.name: w for w in ordered}
        if not ordered:
            none = QLabel("No workers yet: add them in the Workers tab (or 'llamadash workers add').")
            none.setWordWrap(True)
            layout.addWidget(none)
        form = QFormLayout()
        self.split_edit = QLineEdit(schema[COLUMN.tensor_split].to_text(model.get(COLUMN.tensor_split)) or "")
        self.split_edit.setObjectName("tensorSplitEdit")
        self.split_edit.setPlaceholderText("e.g. 1,1,2 (proportions per device, local ones first)")
        form.addRow("Tensor split:", self.split_edit)
        layout.addLayout(form)
        self.error_label = QLabel()
        self.error_label.setObjectName("rpcError")
        self.error_label.setStyleSheet(error_style_sheet())
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        layout.addWidget(self.error_label)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._on_ok)
        buttons.rejected.connect(self.reject)
        self.buttons = buttons
        layout.addWidget(buttons)
        self.setMinimumWidth(460)
        self._values: dict[str, Any] | None = None

    def chosen(self) -> list[Worker]:
        """The checked workers, in the dialog's order."""
        return [self._workers[n] for n, box in self.boxes.items() if box.isChecked()]

    def values(self) -> dict[str, Any]:
        """``{rpc, tensor_split}`` to set (``None`` clears).

        Raises:
            ValueError: the tensor split is not a list of proportions.
        """
        schema = load_schema()
        endpoints = workers.rpc_list(self.chosen())
        rpc = schema[COLUMN.rpc].from_text(",".join(endpoints)) if endpoints else None
        split = schema[COLUMN.tensor_split].from_text(self.split_edit.text())
        return {COLUMN.rpc: rpc, COLUMN.tensor_split: split}

    def show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.show()

    def _on_ok(self) -> None:
        try:
            self._values = self.values()
        except ValueError as exc:
            self.show_error(f"Tensor split: {exc}")
            return
        self.accept()

    def accepted_values(self) -> dict[str, Any] | None:
        return self._values


def run_across_workers(view: Any) -> RpcWorkersDialog | None:
    """Open the dialog for the Library's selected model; OK sets its workers through ``view.service``.

    The dialog is window-modal (no nested event loop), a child of ``view``, deleted when closed.
    """
    model = view.selected_model()
    if model is None:
        return None
    dialog = RpcWorkersDialog(model, workers.list_workers(), view)
    dialog.setWindowModality(Qt.WindowModality.WindowModal)

    def apply() -> None:
        values = dialog.accepted_values()
        if values is None:
            return
        try:
            view.service.set_parameters(int(model["id"]), values)
        except Exception as exc:  # the library's refusal (a bad value) or the database's
            view._show_error("The workers were not changed", str(exc))
            return
        view.refresh(select_id=model["id"])
        view.libraryChanged.emit()

    dialog.accepted.connect(apply)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    return dialog
