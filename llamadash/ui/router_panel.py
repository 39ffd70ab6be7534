"""The library router in the Instances tab: serve the library at one address, its models and their states.

:class:`RouterPanel` sits under the instances table (whose ``[router]`` row is the router's own
instance: state, uptime, log, stop and restart like any server). It offers **Serve the library**
(starts the router with the Settings' Router options) and **Stop**, shows the one base URL with a
**Copy** button and the model names to put in requests, and lists the router's models ("via
router") with their states from ``GET /models`` (unloaded, loading, loaded, sleeping, failed with
the exit code) and **Load** / **Unload** for the selected one. Served models left out because the
build cannot start them are named under the table. It owns no process: it calls the manager.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from llamadash.core.launch import LaunchError
from llamadash.core.router import ROUTER_NAME, RouterModel, RouterSettings
from llamadash.core.states import InstanceState
from llamadash.services.protocols import Manager

__all__ = ["RouterPanel"]

_STATE_TIPS = {
    "unloaded": "not in memory; a request naming it loads it (when autoload is on)",
    "loading": "its llama-server is starting",
    "loaded": "in memory, answering requests",
    "sleeping": "idle: its memory was freed; the next request wakes it",
    "failed": "its llama-server ended badly; the next request tries again",
}


class RouterPanel(QWidget):
    """Serve the library at one address; the router's models with Load/Unload.

    Args:
        router_settings: The router's settings in force (the window's Settings ▸ Router).
        parent: The Qt parent.
    """

    refused = Signal(str, str, str)
    """(verb, what, why): a start, load or unload was refused; the window shows it (``show_refusal``)."""

    def __init__(self, router_settings: Callable[[], RouterSettings], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("routerPanel")
        self._settings = router_settings
        self._manager: Manager | None = None
        self._extra_notes: list[str] = []  # what the last library edit meant for the running router

        title = QLabel("<b>Library router</b>")
        title.setToolTip("One address for the whole library: llama-server's router mode")
        self.serve_button = QPushButton("Serve the library")
        self.serve_button.setToolTip(
            "Start llama-server's router: every model marked served, at one address; a model loads when "
            "a request names it"
        )
        self.serve_button.clicked.connect(self.serve)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop the router and every model it loaded")
        self.stop_button.clicked.connect(self.stop)
        self.state_label = QLabel()
        self.state_label.setObjectName("routerState")
        self.url_edit = QLineEdit()
        self.url_edit.setObjectName("routerUrl")
        self.url_edit.setReadOnly(True)
        self.url_edit.setMinimumWidth(120)
        self.url_edit.setToolTip("The OpenAI base URL: put a model's name below in the request's \"model\"")
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the base URL")
        self.copy_button.clicked.connect(self.copy_url)
        # the state's text may be long (a refusal): it never widens the window
        self.state_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(title)
        top.addSpacing(12)
        top.addWidget(self.serve_button)
        top.addWidget(self.stop_button)
        top.addWidget(self.state_label, 1)
        address = QHBoxLayout()
        address.setContentsMargins(0, 0, 0, 0)
        address.addWidget(QLabel("Base URL:"))
        address.addWidget(self.url_edit, 1)
        address.addWidget(self.copy_button)

        self.table = QTableWidget(0, 2)
        self.table.setObjectName("routerModels")
        self.table.setHorizontalHeaderLabels(["Model (via router)", "State"])
        name_header = QTableWidgetItem("Model (via router)")
        name_header.setToolTip('The name to put in a request\'s "model"')
        self.table.setHorizontalHeaderItem(0, name_header)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        # as tall as its rows (2 to 6 shown), so the instances table above keeps the room
        self.table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._fit_table()
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.load_button = QPushButton("Load")
        self.load_button.setToolTip("Load the selected model now (without waiting for a request)")
        self.load_button.clicked.connect(lambda: self._act("load"))
        self.unload_button = QPushButton("Unload")
        self.unload_button.setToolTip(
            "Unload the selected model: its llama-server stops, its memory is freed"
        )
        self.unload_button.clicked.connect(lambda: self._act("unload"))
        actions = QVBoxLayout()
        actions.addWidget(self.load_button)
        actions.addWidget(self.unload_button)
        actions.addStretch(1)
        middle = QHBoxLayout()
        middle.setContentsMargins(0, 0, 0, 0)
        middle.addWidget(self.table, 1)
        middle.addLayout(actions)

        self.restart_button = QPushButton("Restart with the new settings")
        self.restart_button.setObjectName("routerRestart")
        self.restart_button.setToolTip(
            "Restart the router with Settings ▸ Router (its loaded models are stopped and load again on demand)"
        )
        self.restart_button.clicked.connect(self.restart_with_settings)
        self.restart_button.hide()
        self.notes_label = QLabel()
        self.notes_label.setObjectName("routerNotes")
        self.notes_label.setWordWrap(True)
        self.notes_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addLayout(top)
        # the address and the models fold away while the router is stopped: the instances table
        # above keeps the room (at 1280x800 it showed 4 rows with them open)
        self.details = QWidget()
        self.details.setObjectName("routerDetails")
        details = QVBoxLayout(self.details)
        details.setContentsMargins(0, 0, 0, 0)
        details.addLayout(address)
        details.addLayout(middle)
        layout.addWidget(self.details)
        layout.addWidget(self.notes_label)
        restart_row = QHBoxLayout()
        restart_row.setContentsMargins(0, 0, 0, 0)
        restart_row.addWidget(self.restart_button)
        restart_row.addStretch(1)
        layout.addLayout(restart_row)
        self._update()

    # -- following the manager ------------------------------------------------------------------------

    def set_manager(self, manager: Manager) -> None:
        """Follow ``manager``'s router (started after the window appeared)."""
        if self._manager is not None:
            self._manager.stateChanged.disconnect(self._on_state)
            self._manager.router_models.modelsChanged.disconnect(self._show_models)
            self._manager.router_models.actionFailed.disconnect(self._on_refused_action)
        self._manager = manager
        manager.stateChanged.connect(self._on_state)
        manager.router_models.modelsChanged.connect(self._show_models)
        manager.router_models.actionFailed.connect(self._on_refused_action)
        self._show_models(manager.router_models.models)
        self._update()

    def _router_state(self) -> InstanceState:
        inst = self._manager.instance(ROUTER_NAME) if self._manager is not None else None
        return inst.state if inst is not None else InstanceState.STOPPED

    def _on_state(self, name: str, _state: str, _reason: str) -> None:
        if name == ROUTER_NAME:
            self._update()

    # -- actions ------------------------------------------------------------------------------------

    def serve(self) -> None:
        """Start the router (Serve the library)."""
        if self._manager is None:
            return
        settings = self._settings()
        try:
            self._manager.start_router(settings)
        except (LaunchError, OSError) as exc:  # a refusal: its text says why, for the user
            self.refused.emit("start", "the library router", str(exc))
        self._update()

    def library_changed(self) -> None:
        """The library was edited: a running router re-reads its presets; what it says is shown."""
        if self._manager is None:
            return
        try:
            self._extra_notes = self._manager.refresh_router()
        except (LaunchError, OSError) as exc:
            self._extra_notes = [f"the router goes on with its earlier models: {exc}"]
        self._update()

    def settings_changed(self) -> None:
        """The Settings were saved: the router's next (re)start takes them; a running one keeps its
        own until then (said so, with **Restart with the new settings**)."""
        if self._manager is not None:
            self._manager.set_router_settings(self._settings())
        self._update()

    def restart_with_settings(self) -> None:
        """Restart the running router with the Settings' Router options."""
        if self._manager is None:
            return
        self._manager.set_router_settings(self._settings())
        try:
            self._manager.restart(ROUTER_NAME)
        except (LaunchError, OSError) as exc:
            self.refused.emit("restart", "the library router", str(exc))
        self._update()

    def stop(self) -> None:
        """Stop the router and its models."""
        if self._manager is not None:
            self._manager.stop(ROUTER_NAME)

    def copy_url(self) -> None:
        """Copy the base URL to the clipboard."""
        if self.url_edit.text():
            QGuiApplication.clipboard().setText(self.url_edit.text())

    def selected_model(self) -> str | None:
        """The name of the selected model, if any."""
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return item.text() if item is not None else None

    def select(self, name: str) -> bool:
        """Select the model ``name``; False when the router lists none of that name."""
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and item.text() == name:
                self.table.selectRow(row)
                return True
        return False

    def _act(self, action: str) -> None:
        name = self.selected_model()
        if self._manager is None or name is None:
            return
        if action == "load":
            self._manager.router_models.load(name)
        else:
            self._manager.router_models.unload(name)

    def _on_refused_action(self, name: str, why: str) -> None:
        self.refused.emit("load or unload", name, why)

    # -- display --------------------------------------------------------------------------------------

    def _show_models(self, models: list[RouterModel]) -> None:
        selected = self.selected_model()
        self.table.setRowCount(len(models))
        for row, model in enumerate(models):
            name = QTableWidgetItem(model.name)
            state = QTableWidgetItem(model.describe())
            tip = model.reason or _STATE_TIPS.get(model.state, "")
            state.setToolTip(tip)
            name.setToolTip(tip)
            self.table.setItem(row, 0, name)
            self.table.setItem(row, 1, state)
        if selected is not None:
            self.select(selected)
        self._fit_table()
        self._update_buttons()

    def _fit_table(self) -> None:
        rows = min(6, max(2, self.table.rowCount()))
        header = self.table.horizontalHeader().sizeHint().height()
        row = self.table.verticalHeader().defaultSectionSize()
        self.table.setFixedHeight(header + rows * row + 2 * self.table.frameWidth())

    def state_of(self, name: str) -> str | None:
        """The state shown for model ``name`` (``loaded``, ``loading 40%``...), or ``None``."""
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            state = self.table.item(row, 1)
            if item is not None and state is not None and item.text() == name:
                return state.text()
        return None

    def _update(self) -> None:
        state = self._router_state()
        active = state in (InstanceState.LOADING, InstanceState.RUNNING)
        self.serve_button.setEnabled(self._manager is not None and not active)
        self.stop_button.setEnabled(active)
        plan = self._manager.router_plan if self._manager is not None else None
        settings = self._settings()
        if state is InstanceState.RUNNING and plan is not None:
            self.url_edit.setText(plan.base_url)
            self.state_label.setText(f"serving {len(plan.served)} model(s)")
        else:
            self.url_edit.setText(plan.base_url if plan is not None and active else "")
            self.url_edit.setPlaceholderText(f"http://127.0.0.1:{settings.port}/v1 once it runs")
            inst = self._manager.instance(ROUTER_NAME) if self._manager is not None else None
            reason = inst.reason.splitlines()[0] if inst is not None and inst.reason else ""
            if reason:
                self.state_label.setText(f"{state.value}: {reason}")
            else:
                self.state_label.setText(
                    f"{state.value} (serves every model marked served at http://127.0.0.1:{settings.port}/v1)"
                )
        self.copy_button.setEnabled(bool(self.url_edit.text()))
        self.details.setVisible(active or self.table.rowCount() > 0)
        if not active:
            self._extra_notes = []
        notes = list(plan.warnings) if plan is not None and active else []
        notes += [note for note in self._extra_notes if note not in notes]
        differ = active and self._manager is not None and self._manager.router_settings != settings
        if differ:
            notes.append(
                "The router runs with other settings than Settings ▸ Router: restart it to apply them."
            )
        self.restart_button.setVisible(differ)
        self.restart_button.setEnabled(state is InstanceState.RUNNING)
        self.notes_label.setText("\n".join(notes))
        self.notes_label.setVisible(bool(notes))
        self._update_buttons()

    def _update_buttons(self) -> None:
        name = self.selected_model()
        model = self._manager.router_models.model(name) if self._manager is not None and name else None
        running = self._router_state() is InstanceState.RUNNING
        self.load_button.setEnabled(running and model is not None and not model.running)
        self.unload_button.setEnabled(running and model is not None and model.running)
