"""The main window. For now: the model library as a table; the docks arrive with the main-window issue."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QHeaderView, QLabel, QMainWindow, QMessageBox, QTableView

from llamadash import APP_NAME, __version__

_COLUMNS = (("Name", "name"), ("Type", "type"), ("Status", "status"), ("Port", "port"), ("Model", "model"))
_Index = QModelIndex | QPersistentModelIndex


def _model_source(model: dict[str, Any]) -> str:
    for key in ("model_path", "hf_repo", "model_url", "docker_repo", "models_dir", "models_preset"):
        if model.get(key):
            return str(model[key])
    return "(no model source)"


class ModelsTableModel(QAbstractTableModel):
    """The configured models, one row each (read-only)."""

    def __init__(self, models: list[dict[str, Any]] | None = None) -> None:
        super().__init__()
        self._models: list[dict[str, Any]] = models or []

    def set_models(self, models: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self._models = list(models)
        self.endResetModel()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._models)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(_COLUMNS)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return None
        model = self._models[index.row()]
        key = _COLUMNS[index.column()][1]
        if key == "model":
            return _model_source(model)
        if key == "port":
            return str(model.get("port") or 8080)
        return str(model.get(key, ""))

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return _COLUMNS[section][0]
        return None


class MainWindow(QMainWindow):
    """The application window. It reads models through ``load_models``; it owns no database."""

    def __init__(self, db_path: Path, load_models: Callable[[], list[dict[str, Any]]]) -> None:
        super().__init__()
        self._load_models = load_models
        self.setWindowTitle(f"{APP_NAME} {__version__}")
        self.resize(1000, 600)
        self.models_model = ModelsTableModel()
        self.models_view = QTableView()
        self.models_view.setModel(self.models_model)
        self.models_view.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.models_view.setAlternatingRowColors(True)
        self.models_view.verticalHeader().hide()
        header = self.models_view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.setCentralWidget(self.models_view)

        file_menu = self.menuBar().addMenu("&File")
        refresh = QAction("&Refresh", self, shortcut=QKeySequence.StandardKey.Refresh)
        refresh.triggered.connect(self.refresh)
        file_menu.addAction(refresh)
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("&About llamadash", self)
        about.triggered.connect(self.show_about)
        help_menu.addAction(about)

        self.db_label = QLabel(f"Database: {db_path}")
        self.statusBar().addPermanentWidget(self.db_label)
        self.refresh()

    def refresh(self) -> None:
        models = self._load_models()
        self.models_model.set_models(models)
        self.statusBar().showMessage(f"{len(models)} model(s)")

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            f"About {APP_NAME}",
            f"<b>{APP_NAME} {__version__}</b><br>A desktop dashboard for llama.cpp's llama-server.",
        )
