"""The Workers tab: llama.cpp RPC workers, local and remote, and which model runs across them.

A table of the workers (name, kind, ``host:port``, state, details, warning) with *New local
worker…*, *Add remote worker…*, *Start*, *Stop*, *Check*, *Remove* and *Log*; below it, a model chosen
from the library is given the selected workers (its ``--rpc`` list) or taken off them.

A local worker binds loopback; another address needs the user's confirmation in a dialog that
quotes llama.cpp's warning (:data:`~llamadash.core.workers.RPC_WARNING`), and the warning stays on
the worker's row. Remote workers are checked for reachability without blocking (when added, on *Check*, and
every :data:`RECHECK_INTERVAL_S`). The processes belong to the
:class:`~llamadash.services.rpc_workers.WorkerService`; the view only asks it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QStyle,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from llamadash.core import pidfile, worker_records, workers
from llamadash.core.db.errors import DatabaseNotOpenError
from llamadash.core.workers import RPC_WARNING, OpenNetworkRefused, Worker, WorkerError
from llamadash.services.rpc_workers import WorkerService, WorkerState
from llamadash.ui.theme import error_style_sheet

__all__ = [
    "COLUMNS",
    "RECHECK_INTERVAL_S",
    "LocalWorkerDialog",
    "RemoteWorkerDialog",
    "WorkersView",
    "make_service",
    "make_view",
]

COLUMNS = ("Name", "Kind", "Endpoint", "State", "Warning", "Details")
#: What the Warning cell of a worker bound to the network says (the tooltip has the whole warning).
ROW_WARNING = "Reachable from other machines: never run the RPC server on an open network"
#: Seconds between reachability checks of the remote workers (each one is a line in the worker's log).
RECHECK_INTERVAL_S = 60.0
#: The colour of the warning column's text.
WARNING_STYLE = "#d9480f"


def open_network_box(host: str, parent: QWidget | None = None) -> QMessageBox:
    """The dialog that asks to bind a worker to ``host``: llama.cpp's warning, No by default."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Bind an RPC worker to the network?")
    box.setText(f"Bind this worker to {host}? Other machines on the network will be able to reach it.")
    box.setInformativeText(
        "The RPC protocol has no authentication: anyone who reaches the port can use this "
        f'machine\'s devices and memory. llama.cpp warns: "{RPC_WARNING}".\n\n'
        "Bind it only on a network you trust."
    )
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    yes = box.button(QMessageBox.StandardButton.Yes)
    yes.setText("Bind to the network")
    return box


class LocalWorkerDialog(QDialog):
    """Name, host, port, threads, devices and the local cache of a new local worker.

    :meth:`worker` makes the checked :class:`Worker`; a non-loopback host asks
    :attr:`confirm_open_network` (by default :func:`open_network_box`).
    """

    def __init__(self, parent: QWidget | None = None, *, port: int = workers.DEFAULT_WORKER_PORT) -> None:
        super().__init__(parent)
        self.setWindowTitle("New local RPC worker")
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("e.g. gpu0")
        self.host_edit = QLineEdit("127.0.0.1")
        self.host_edit.setToolTip("127.0.0.1: only this machine reaches it. Another address asks first.")
        self.port_box = QSpinBox()
        self.port_box.setRange(1, 65535)
        self.port_box.setValue(port)
        self.threads_box = QSpinBox()
        self.threads_box.setRange(0, 4096)
        self.threads_box.setSpecialValueText("default")
        self.devices_edit = QLineEdit()
        self.devices_edit.setPlaceholderText("all (e.g. CUDA0,CUDA1)")
        self.cache_box = QCheckBox("Keep large tensors in a local cache (-c)")
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet(error_style_sheet())
        self.problem.hide()
        form = QFormLayout()
        form.addRow("Name", self.name_edit)
        form.addRow("Host", self.host_edit)
        form.addRow("Port", self.port_box)
        form.addRow("Threads", self.threads_box)
        form.addRow("Devices", self.devices_edit)
        form.addRow("", self.cache_box)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._on_ok)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(buttons)
        self.result_worker: Worker | None = None
        self.confirm_open_network: Callable[[str], bool] = self._ask
        """Asked for a non-loopback host; True binds it (tests replace it)."""

    def _ask(self, host: str) -> bool:
        return open_network_box(host, self).exec() == QMessageBox.StandardButton.Yes

    def worker(self) -> Worker:
        """The worker the fields describe (asks before a non-loopback host).

        Raises:
            WorkerError: a field is not valid, or the user did not confirm the network bind.
        """
        name = self.name_edit.text()
        host = self.host_edit.text().strip()

        def make(confirmed: bool) -> Worker:
            return workers.make_worker(
                name,
                host=host,
                port=self.port_box.value(),
                threads=self.threads_box.value() or None,
                devices=self.devices_edit.text(),
                cache=self.cache_box.isChecked(),
                confirm_open_network=confirmed,
            )

        try:
            return make(False)
        except OpenNetworkRefused:
            if not self.confirm_open_network(host):
                raise
            return make(True)

    def _on_ok(self) -> None:
        try:
            self.result_worker = self.worker()
        except WorkerError as exc:
            self.problem.setText(str(exc))
            self.problem.show()
            return
        self.accept()


class RemoteWorkerDialog(QDialog):
    """Name and ``host:port`` of a worker another machine runs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add a remote RPC worker")
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("e.g. box2")
        self.endpoint_edit = QLineEdit()
        self.endpoint_edit.setPlaceholderText(f"e.g. 192.168.1.20:{workers.DEFAULT_WORKER_PORT}")
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet(error_style_sheet())
        self.problem.hide()
        note = QLabel(
            "On that machine: ggml-rpc-server --host ADDRESS --port PORT (llama.cpp built with -DGGML_RPC=ON)."
        )
        note.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Name", self.name_edit)
        form.addRow("Host:port", self.endpoint_edit)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._on_ok)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.problem)
        layout.addWidget(buttons)
        self.result_worker: Worker | None = None

    def worker(self) -> Worker:
        """The remote worker the fields describe.

        Raises:
            WorkerError: the name or ``host:port`` is not valid.
        """
        host, port = workers.parse_endpoint(self.endpoint_edit.text())
        return workers.make_worker(self.name_edit.text(), kind="remote", host=host, port=port)

    def _on_ok(self) -> None:
        try:
            self.result_worker = self.worker()
        except WorkerError as exc:
            self.problem.setText(str(exc))
            self.problem.show()
            return
        self.accept()


class WorkersView(QWidget):
    """The Workers tab (see the module docstring).

    Args:
        service: Starts, stops and checks the workers.
        model_names: The library's model names, for the model chooser.
        assign: Gives model ``name`` the workers (``None``: takes it off them); returns what changed,
            for the status line; raises ``Exception`` with the message to show when it is refused.
        parent: The Qt parent.
    """

    changed = Signal()
    """Workers were added, removed, started or stopped (after the table was refreshed)."""

    def __init__(
        self,
        service: WorkerService,
        *,
        model_names: Callable[[], Sequence[str]] = list,
        assign: Callable[[str, list[Worker] | None], str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.service = service
        self._model_names = model_names
        self._assign = assign
        self._reachable: dict[str, tuple[bool, str]] = {}
        self._workers: list[Worker] = []
        self.dialog: QDialog | None = None
        """The dialog open now (a test fills it in)."""

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("workersTable")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        for column in range(len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COLUMNS.index("Details"), QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)

        self.new_local_button = QPushButton("New local worker…")
        self.new_local_button.setToolTip("Run a ggml-rpc-server on this machine")
        self.add_remote_button = QPushButton("Add remote worker…")
        self.add_remote_button.setToolTip("Register a ggml-rpc-server another machine runs (host:port)")
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.check_button = QPushButton("Check")
        self.check_button.setToolTip("Does it accept a connection now?")
        self.remove_button = QPushButton("Remove")
        self.log_button = QPushButton("Log")
        self.log_button.setToolTip("The selected local worker's output (also in the logs folder)")
        self.log_button.clicked.connect(self.show_log)
        self.new_local_button.clicked.connect(self.new_local_worker)
        self.add_remote_button.clicked.connect(self.add_remote_worker)
        self.start_button.clicked.connect(self.start_selected)
        self.stop_button.clicked.connect(self.stop_selected)
        self.check_button.clicked.connect(self.check_selected)
        self.remove_button.clicked.connect(self.remove_selected)
        buttons = QHBoxLayout()
        for button in (
            self.new_local_button,
            self.add_remote_button,
            self.start_button,
            self.stop_button,
            self.check_button,
            self.remove_button,
            self.log_button,
        ):
            buttons.addWidget(button)
        buttons.addStretch(1)

        self.model_box = QComboBox()
        self.model_box.setObjectName("workersModel")
        self.model_box.setMinimumContentsLength(16)
        self.use_button = QPushButton("Run it across the selected workers")
        self.use_button.setToolTip("Sets the model's --rpc list to the selected workers, in table order")
        self.clear_button = QPushButton("Take it off its workers")
        self.use_button.clicked.connect(self.use_selected_for_model)
        self.clear_button.clicked.connect(self.clear_model_workers)
        model_row = QHBoxLayout()
        model_row.addWidget(QLabel("Model:"))
        model_row.addWidget(self.model_box)
        model_row.addWidget(self.use_button)
        model_row.addWidget(self.clear_button)
        model_row.addStretch(1)

        intro = QLabel(
            "llama.cpp's RPC workers lend a model the devices of other processes or machines: start "
            "local ones here, register those other machines run, then run a model across them."
        )
        intro.setWordWrap(True)
        self.message = QLabel()
        self.message.setObjectName("workersMessage")
        self.message.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)
        layout.addLayout(model_row)
        layout.addWidget(self.message)

        self._recheck = QTimer(self)
        self._recheck.setInterval(round(RECHECK_INTERVAL_S * 1000))
        self._recheck.timeout.connect(self.check_remote_workers)
        self._recheck.start()
        # a worker's output (the devices it exposes, printed as it starts) refreshes the rows, coalesced
        self._refresh_soon = QTimer(self)
        self._refresh_soon.setSingleShot(True)
        self._refresh_soon.setInterval(250)
        self._refresh_soon.timeout.connect(self.refresh)
        service.stateChanged.connect(self._on_state)
        service.reachability.connect(self._on_reachability)
        service.logLine.connect(self._on_log_line)
        self.refresh()
        self.check_remote_workers()

    # -- the table -------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Reload the workers and their states; keeps the selection by name."""
        selected = set(self.selected_names())
        try:
            self._workers = workers.list_workers()
        except DatabaseNotOpenError:  # a refresh the last worker's stop left queued at quit
            return
        found = worker_records.scan()
        elsewhere = {r.model: ("running elsewhere", r.pid) for r in found.foreign}
        elsewhere.update({r.model: ("orphan", r.pid) for r in found.orphans})
        self.table.setRowCount(len(self._workers))
        for row, worker in enumerate(self._workers):
            state, details = self._describe(worker, elsewhere)
            warning = workers.open_network_warning(worker) or ""
            cells = (
                worker.name,
                worker.kind,
                # a local worker's bind address (0.0.0.0 says "open"), a remote one's address
                workers.format_endpoint(worker.host, worker.port),
                state,
                ROW_WARNING if warning else "",
                details,
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if column == COLUMNS.index("Warning") and warning:
                    item.setForeground(_warning_brush())
                    item.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning))
                    item.setToolTip(f"{worker.name} {warning}")
                self.table.setItem(row, column, item)
            if worker.name in selected:
                self.table.selectRow(row)
        names = list(self._model_names())
        current = self.model_box.currentText()
        self.model_box.clear()
        self.model_box.addItems(names)
        if current in names:
            self.model_box.setCurrentText(current)
        self._update_buttons()

    def _describe(self, worker: Worker, elsewhere: dict[str, tuple[str, int]]) -> tuple[str, str]:
        details: list[str] = []
        if not worker.local:
            result = self._reachable.get(worker.name)
            if result is None:
                return "checking…", ""
            ok, reason = result
            return ("reachable", "") if ok else ("unreachable", reason)
        proc = self.service.process(worker.name)
        state = self.service.state(worker.name)
        if proc is not None and proc.pid is not None:
            details.append(f"pid {proc.pid}")
        if state == WorkerState.STOPPED and worker.name in elsewhere:
            state, pid = elsewhere[worker.name]
            details.append(f"pid {pid}")
        if worker.threads:
            details.append(f"{worker.threads} thread{'s' if worker.threads != 1 else ''}")
        if worker.cache:
            details.append("cache")
        exposed = workers.devices_from_log(proc.log_lines()) if proc is not None and proc.active else []
        if exposed:
            details.append("; ".join(exposed))
        elif worker.devices:
            details.append("devices " + ",".join(worker.devices))
        if state == WorkerState.ERROR and proc is not None and proc.reason:
            details.append(proc.reason.splitlines()[0])
        return state, "; ".join(details)

    def row_texts(self) -> list[tuple[str, ...]]:
        """The table as text, row by row (what a user reads)."""
        rows = []
        for row in range(self.table.rowCount()):
            items = [self.table.item(row, column) for column in range(len(COLUMNS))]
            rows.append(tuple(item.text() if item is not None else "" for item in items))
        return rows

    def selected_names(self) -> list[str]:
        """The selected workers' names, in table order."""
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self._workers[row].name for row in rows if row < len(self._workers)]

    def select(self, *names: str) -> None:
        """Select the workers ``names`` (and only them)."""
        self.table.clearSelection()
        for row, worker in enumerate(self._workers):
            if worker.name in names:
                self.table.selectionModel().select(
                    self.table.model().index(row, 0),
                    self.table.selectionModel().SelectionFlag.Select
                    | self.table.selectionModel().SelectionFlag.Rows,
                )

    def _selected(self) -> list[Worker]:
        names = self.selected_names()
        return [w for w in self._workers if w.name in names]

    def _update_buttons(self) -> None:
        chosen = self._selected()
        local = [w for w in chosen if w.local]
        self.start_button.setEnabled(any(self.service.state(w.name) not in _ACTIVE for w in local))
        self.stop_button.setEnabled(bool(local))
        self.check_button.setEnabled(bool(chosen))
        self.remove_button.setEnabled(bool(chosen))
        self.log_button.setEnabled(len(local) == 1)
        has_model = self.model_box.count() > 0 and self._assign is not None
        self.use_button.setEnabled(has_model and bool(chosen))
        self.clear_button.setEnabled(has_model)

    def show_message(self, text: str, *, error: bool = False) -> None:
        """Say what happened (an error in the error style)."""
        self.message.setText(text)
        self.message.setStyleSheet(error_style_sheet() if error else "")

    # -- actions -----------------------------------------------------------------------------------
    def new_local_worker(self) -> None:
        """Open the new-local-worker dialog; on OK the worker is saved and started."""
        used = {w.port for w in self._workers}
        port = next(p for p in range(workers.DEFAULT_WORKER_PORT, 65536) if p not in used)
        dialog = LocalWorkerDialog(self, port=port)
        self.dialog = dialog
        dialog.accepted.connect(lambda: self._add_local(dialog.result_worker))
        dialog.open()

    def _add_local(self, worker: Worker | None) -> None:
        self.dialog = None
        if worker is None:
            return
        try:
            saved = workers.add_worker(worker)
        except WorkerError as exc:
            self.show_message(str(exc), error=True)
            return
        self.refresh()
        self._start(saved)

    def add_remote_worker(self) -> None:
        """Open the remote-worker dialog; on OK the worker is saved and checked."""
        dialog = RemoteWorkerDialog(self)
        self.dialog = dialog
        dialog.accepted.connect(lambda: self._add_remote(dialog.result_worker))
        dialog.open()

    def _add_remote(self, worker: Worker | None) -> None:
        self.dialog = None
        if worker is None:
            return
        try:
            saved = workers.add_worker(worker)
        except WorkerError as exc:
            self.show_message(str(exc), error=True)
            return
        self.show_message(f"Added {saved.name} at {saved.endpoint}; checking whether it answers…")
        self.refresh()
        self.service.check(saved)
        self.changed.emit()

    def start_selected(self) -> None:
        """Start the selected local workers that are not running."""
        for worker in self._selected():
            if worker.local and self.service.state(worker.name) not in _ACTIVE:
                self._start(worker)

    def _start(self, worker: Worker) -> None:
        try:
            self.service.start(worker)
        except WorkerError as exc:
            self.show_message(str(exc), error=True)
        else:
            self.show_message(f"Starting {worker.name} on {worker.endpoint}…")
        self.refresh()

    def stop_selected(self) -> None:
        """Stop the selected local workers: those run here, and those another (or a killed) llamadash left."""
        found = worker_records.scan()
        left = {r.model: r for r in found.foreign + found.orphans}
        for worker in self._selected():
            if not worker.local:
                continue
            if self.service.state(worker.name) in _ACTIVE:
                self.service.stop(worker.name)
            elif worker.name in left:
                record = left[worker.name]
                still = pidfile.stop_processes([record.pid], timeout_s=5.0)  # bounded
                if still:
                    self.show_message(f"{worker.name} (pid {record.pid}) did not stop", error=True)
                else:
                    worker_records.remove_record(record.pid)
                    self.show_message(f"Stopped {worker.name} (pid {record.pid})")
        self.refresh()

    def log_text(self, name: str) -> str:
        """Local worker ``name``'s output: this run's lines, else its log file, else a note."""
        proc = self.service.process(name)
        if proc is not None and proc.log_lines():
            return "\n".join(proc.log_lines())
        path = self.service.log_path(name)
        try:
            return path.read_text(encoding="utf-8", errors="replace")[-200_000:]
        except OSError:
            return f"{name} has written no output yet (its log file is {path})"

    def show_log(self) -> None:
        """Show the selected local worker's output in a window (non-modal)."""
        chosen = [w for w in self._selected() if w.local]
        if len(chosen) != 1:
            return
        name = chosen[0].name
        dialog = QDialog(self)
        dialog.setWindowTitle(f"Log — worker {name}")
        text = QPlainTextEdit(self.log_text(name))
        text.setReadOnly(True)
        text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        text.moveCursor(text.textCursor().MoveOperation.End)
        path = QLabel(str(self.service.log_path(name)))
        path.setTextInteractionFlags(
            path.textInteractionFlags() | Qt.TextInteractionFlag.TextSelectableByMouse
        )
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(dialog.close)
        layout = QVBoxLayout(dialog)
        layout.addWidget(text)
        layout.addWidget(path)
        layout.addWidget(buttons)
        dialog.resize(820, 420)
        self.dialog = dialog
        dialog.show()

    def check_selected(self) -> None:
        """Check the selected workers' reachability (non-blocking)."""
        for worker in self._selected():
            self.service.check(worker)

    def check_remote_workers(self) -> None:
        """Check every remote worker's reachability (non-blocking)."""
        for worker in self._workers:
            if not worker.local:
                self.service.check(worker)

    def remove_selected(self) -> None:
        """Forget the selected workers (a running local one is refused)."""
        for worker in self._selected():
            if worker.local and self.service.state(worker.name) in _ACTIVE:
                self.show_message(f"{worker.name} is running: stop it before removing it", error=True)
                continue
            workers.delete_worker(worker.name)
            self._reachable.pop(worker.name, None)
            self.show_message(f"Removed {worker.name}")
        self.refresh()
        self.changed.emit()

    def use_selected_for_model(self) -> None:
        """Give the chosen model the selected workers (its ``--rpc`` list, in table order)."""
        self._assign_model(self._selected())

    def clear_model_workers(self) -> None:
        """Take the chosen model off its workers (clears its ``--rpc``)."""
        self._assign_model(None)

    def _assign_model(self, chosen: list[Worker] | None) -> None:
        model = self.model_box.currentText()
        if self._assign is None or not model:
            return
        try:
            text = self._assign(model, chosen)
        except Exception as exc:  # the library's refusal, shown as it says it
            self.show_message(str(exc), error=True)
            return
        found = worker_records.scan()
        elsewhere = {r.model for r in found.foreign + found.orphans}
        idle = [
            w.name
            for w in chosen or []
            if w.local and self.service.state(w.name) != WorkerState.RUNNING and w.name not in elsewhere
        ]
        if idle:  # llama-server stops at once when a worker of its --rpc list does not answer
            text += f"; start {', '.join(idle)} before the model"
        self.show_message(text)

    # -- service signals ---------------------------------------------------------------------------
    def _on_state(self, name: str, state: str, reason: str) -> None:
        if state == WorkerState.ERROR:
            self.show_message(reason.splitlines()[0] if reason else f"{name} failed", error=True)
        elif state == WorkerState.RUNNING:
            self.show_message(f"{name} is running")
        self.refresh()
        self.changed.emit()

    def _on_log_line(self, _name: str, _line: str) -> None:
        if not self._refresh_soon.isActive():  # at most one refresh per interval, even in a flood
            self._refresh_soon.start()

    def _on_reachability(self, name: str, ok: bool, reason: str) -> None:
        self._reachable[name] = (ok, reason)
        self.refresh()


_ACTIVE = (WorkerState.STARTING, WorkerState.RUNNING, WorkerState.STOPPING)


def _warning_brush() -> Any:
    from PySide6.QtGui import QBrush, QColor

    return QBrush(QColor(WARNING_STYLE))


def make_service(data_dir: Path) -> WorkerService:
    """The service that runs this data directory's local workers (logs under ``data_dir``)."""
    return WorkerService(data_dir=data_dir, rpc_server=workers.configured_rpc_server)


def make_view(window: Any, service: WorkerService, library: Any) -> WorkersView:
    """The Workers tab's view of ``service``.

    Args:
        window: The main window (its models are refreshed after an assignment).
        service: The workers' service.
        library: The :class:`~llamadash.core.library_service.Library` that sets a model's ``--rpc``.
    """
    from llamadash.core import database as db
    from llamadash.core.params import COLUMN

    def names() -> list[str]:
        return [str(m["name"]) for m in db.get_models()]

    def assign(model: str, chosen: list[Worker] | None) -> str:
        endpoints = workers.rpc_list(chosen) if chosen else None
        library.set_parameters(model, {COLUMN.rpc: endpoints})
        window.refresh_models()
        if endpoints is None:
            return f"{model} runs on this machine only at its next start (--rpc cleared)"
        return f"{model} runs across {', '.join(endpoints)} at its next start (--rpc {','.join(endpoints)})"

    view = WorkersView(service, model_names=names, assign=assign)
    view.setObjectName("workersView")
    return view
