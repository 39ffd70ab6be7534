"""The model library: the configured models, how to add them, and what their GGUF files hold.

:class:`LibraryView` lists the library (name, type, status, size, quantization, parameters,
trained context, source; sortable by each, numbers as numbers), filters it by status and type, and
adds models from ``.gguf`` files (file dialog or drag and drop), from a Hugging Face
spec, from a pasted llama-server command line, or from a directory scan. It duplicates, renames
and deletes entries and shows the GGUF metadata of the selected model. Every change goes through
the core's :class:`~llamadash.core.library_service.Library`, which owns the rules (the CLI uses the
same one); the view keeps the dialogs and shows the service's refusals. Storage is a
:class:`~llamadash.core.library_service.LibraryStore` it is given (the ``llamadash.core.database``
module is one); the view never opens the database itself. While the library is empty it explains,
in place of the list, the ways to add a model.

The size, quantization, parameter and context columns come from each model file's GGUF header. The
headers are read on worker threads (:class:`HeaderReader`), once per file version, and the rows
fill in as they arrive ("…" until then): a folder of large models never blocks the window.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from queue import SimpleQueue
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from llamadash.core import library
from llamadash.core.library import ModelInfo, ScanResult
from llamadash.core.messages import format_size
from llamadash.core.library_service import (
    AUTO_RESTART,
    AddReport,
    Added,
    InvalidSource,
    IsRunning,
    Library,
    LibraryError,
    LibraryStore,
    ModelRunning,
    NoModelsFound,
    running_by_process_records,
)
from llamadash.core.params import COLUMN, SOURCE_LABELS, CommandLineError
from llamadash.core.remote import REMOTE_URL
from llamadash.ui.remote_dialog import RemoteServerDialog
from llamadash.ui.instances_view import AutoRestartSwitch
from llamadash.ui.theme import error_style_sheet

_Index = QModelIndex | QPersistentModelIndex
#: The statuses a library entry can have (the database's ``MODEL_STATUSES``).
STATUSES = ("running", "stopped", "loading", "error")
ALL = "All"
_SOURCE_LABELS = {**SOURCE_LABELS, REMOTE_URL: "remote server"}  # the schema's, and a remote server's
#: A model file version: (path, mtime in ns, size), the key under which its header is kept.
FileKey = tuple[str, int, int]
#: What a header column shows while the file's header is being read.
READING = "\u2026"
#: What the library says while it holds no model (rich text).
EMPTY_TEXT = (
    "<h3>Your library is empty</h3>"
    "<p><b>Add ▸ GGUF file…</b> — or drop .gguf files here from your file manager<br>"
    "<b>Add ▸ Scan a directory…</b> — every model in a folder<br>"
    "<b>Add ▸ Hugging Face repo…</b> — a model llama-server downloads on its first start<br>"
    "<b>Add ▸ Command line…</b> — paste a <code>llama-server …</code> line you already use<br>"
    "<b>Add ▸ Remote server…</b> — watch a llama-server another machine runs</p>"
)


def source_text(model: Mapping[str, Any]) -> str:
    """``file: x.gguf``, ``Hugging Face: user/model:Q4_K_M``... or ``(no model source)``."""
    source = library.model_source(model)
    if source is None:
        return "(no model source)"
    column, value = source
    if column == COLUMN.model_path:
        value = Path(value).name
    return f"{_SOURCE_LABELS[column]}: {value}"


# ------------------------------------------------------------------------------------------------
# the table


def file_key(path: str | os.PathLike[str]) -> FileKey | None:
    """The version of a model file its header is cached under, or ``None`` when it cannot be seen."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (str(path), stat.st_mtime_ns, stat.st_size)


class LibraryTableModel(QAbstractTableModel):
    """The library entries, one row each (read-only): name, type, status, source, and what the
    model file's header says: size on disk, quantization, parameters, trained context.

    The header columns show :data:`READING` until :meth:`set_info` gives the file's
    :class:`ModelInfo`, and ``n/a`` for a model without a local file or an unreadable one.
    """

    COLUMNS = ("Name", "Type", "Status", "Size", "Quantization", "Parameters", "Context", "Source")
    NAME, TYPE, STATUS, SIZE, QUANTIZATION, PARAMETERS, CONTEXT, SOURCE = range(len(COLUMNS))
    #: The header's columns (filled from :class:`ModelInfo`).
    HEADER_COLUMNS = (SIZE, QUANTIZATION, PARAMETERS, CONTEXT)
    #: The row's model dict.
    MODEL_ROLE = Qt.ItemDataRole.UserRole.value + 1
    #: What a column sorts by: a number for size, parameters and context (``None`` when unknown),
    #: lower-case text for the others.
    SORT_ROLE = Qt.ItemDataRole.UserRole.value + 2

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._models: list[dict[str, Any]] = []
        self._infos: dict[str, ModelInfo] = {}  # by model_path: the header read for each row's file

    def set_models(self, models: Sequence[Mapping[str, Any]]) -> None:
        self.beginResetModel()
        self._models = [dict(m) for m in models]
        paths = {str(m.get(COLUMN.model_path)) for m in self._models if m.get(COLUMN.model_path)}
        self._infos = {path: info for path, info in self._infos.items() if path in paths}
        self.endResetModel()

    def set_infos(self, infos: Mapping[str, ModelInfo]) -> None:
        """Headers were read (model_path -> info): fill the rows of the models that use them.

        One ``dataChanged`` for the whole batch: a sorted, filtered list is re-sorted once, not
        once per model.
        """
        self._infos.update(infos)
        rows = [i for i, m in enumerate(self._models) if str(m.get(COLUMN.model_path) or "") in infos]
        if rows:
            self.dataChanged.emit(self.index(min(rows), self.SIZE), self.index(max(rows), self.CONTEXT))

    def info(self, row: int) -> ModelInfo | None:
        """The header of a row's model file, once read (``None`` before, or without a file)."""
        path = self._models[row].get(COLUMN.model_path)
        return self._infos.get(str(path)) if path else None

    def models(self) -> list[dict[str, Any]]:
        return list(self._models)

    def row_of(self, model_id: int) -> int:
        return next((i for i, m in enumerate(self._models) if m.get("id") == model_id), -1)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._models)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        header_tip = role == Qt.ItemDataRole.ToolTipRole and section in self.HEADER_COLUMNS
        if orientation == Qt.Orientation.Horizontal and header_tip:
            return "From the model file's GGUF header (n/a: no local file, or not readable)"
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        model = self._models[index.row()]
        column = index.column()
        if role == self.MODEL_ROLE:
            return model
        if role == self.SORT_ROLE:
            return self._sort_key(index.row(), column)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (self.SIZE, self.PARAMETERS, self.CONTEXT):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return None
        if column == self.NAME:
            return str(model.get("name", ""))
        if column == self.TYPE:
            return str(model.get("type", ""))
        if column == self.STATUS:
            return str(model.get("status", ""))
        if column in self.HEADER_COLUMNS:
            return self._header_text(index.row(), column, tooltip=role == Qt.ItemDataRole.ToolTipRole)
        if role == Qt.ItemDataRole.ToolTipRole:
            source = library.model_source(model)
            return source[1] if source else None
        return source_text(model)

    def _header_text(self, row: int, column: int, *, tooltip: bool) -> str | None:
        if not self._models[row].get(COLUMN.model_path):
            return None if tooltip else "n/a"
        info = self.info(row)
        if info is None:
            return "Reading the model file's header\u2026" if tooltip else READING
        if info.error:
            return info.error if tooltip else "n/a"
        if column == self.SIZE:
            text = format_size(info.size_bytes)
            if info.missing_parts:  # a download still running, or a part deleted
                text += f" ({len(info.parts)} of {info.expected_parts})"
                if tooltip:
                    text += " parts on disk"
            return text
        if column == self.QUANTIZATION:
            return info.quantization or "n/a"
        if column == self.PARAMETERS:
            return (
                library.describe_parameters(info) if tooltip else library.format_count(info.parameter_count)
            )
        if tooltip:
            return "The context the model was trained with, in tokens" if info.context_length else None
        return f"{info.context_length:,}" if info.context_length else "n/a"

    def _sort_key(self, row: int, column: int) -> Any:
        info = self.info(row)
        if column == self.SIZE:
            return info.size_bytes if info is not None and not info.error else None
        if column == self.PARAMETERS:
            return info.parameter_count if info is not None else None
        if column == self.CONTEXT:
            return info.context_length if info is not None else None
        if column == self.QUANTIZATION:
            return (info.quantization or "").lower() if info is not None else None
        text = self.data(self.index(row, column))
        return str(text or "").lower()


class LibraryFilterProxy(QSortFilterProxyModel):
    """Shows the entries of one status and/or one type (``None``: any)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._status: str | None = None
        self._type: str | None = None

    def set_filter(self, status: str | None, model_type: str | None) -> None:
        # Qt 6.10 deprecates invalidateFilter() for begin/endFilterChange(); older Qt lacks those
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            self._status, self._type = status, model_type
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self._status, self._type = status, model_type
            self.invalidateRowsFilter()

    def lessThan(self, left: _Index, right: _Index) -> bool:
        """Numbers as numbers (2 GiB before 10 GiB), unknown (``None``) first when ascending."""
        a = left.data(LibraryTableModel.SORT_ROLE)
        b = right.data(LibraryTableModel.SORT_ROLE)
        if a is None or b is None:
            return a is None and b is not None
        return bool(a < b)

    def filterAcceptsRow(self, source_row: int, source_parent: _Index) -> bool:
        model = self.sourceModel().index(source_row, 0, source_parent).data(LibraryTableModel.MODEL_ROLE)
        if self._status is not None and model.get("status") != self._status:
            return False
        return self._type is None or model.get("type") == self._type


class HeaderReader(QObject):
    """Reads GGUF headers on worker threads; the results come back in batches by :attr:`headersRead`.

    Widgets are never touched from the workers: they queue their results and wake the reader,
    which hands them on from its own thread (the GUI's) at most every :attr:`BATCH_MS`, so that a
    folder of 200 models updates the list a few times, not 200 times. A file already asked for is
    not read twice while its read is under way.

    Args:
        parent: the owner (the library view).
        workers: how many headers are read at once. One: parsing is Python, and every worker
            competes with the window for the interpreter lock (with two, listing 200 models took
            seconds instead of a fraction of one, and filling them was no faster).
    """

    #: How long results are gathered before they are handed on, in milliseconds.
    BATCH_MS = 100
    #: Headers were read: ``{file key: ModelInfo}``.
    headersRead = Signal(object)
    #: A worker queued a result (delivered on the reader's thread).
    _woken = Signal()

    def __init__(self, parent: QObject | None = None, workers: int = 1) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gguf-header")
        self._pending: set[FileKey] = set()
        self._results: SimpleQueue[tuple[FileKey, ModelInfo]] = SimpleQueue()
        self._batch = QTimer(self)
        self._batch.setSingleShot(True)
        self._batch.setInterval(self.BATCH_MS)
        self._batch.timeout.connect(self._hand_on)
        self._woken.connect(self._on_woken)
        self.destroyed.connect(lambda *_: self._pool.shutdown(wait=False, cancel_futures=True))

    @property
    def pending(self) -> int:
        """How many headers are still being read."""
        return len(self._pending)

    def request(self, keys: Iterable[FileKey]) -> None:
        """Read the headers of these files, but those whose read is under way.

        One task reads them all in turn: a submit per file would make the window wait for the
        interpreter lock once per file while the worker parses (seconds for 200 files).
        """
        new = [key for key in dict.fromkeys(keys) if key not in self._pending]
        if new:
            self._pending.update(new)
            self._pool.submit(self._read, new)

    def _read(self, keys: list[FileKey]) -> None:  # on a worker thread
        for key in keys:
            try:
                info = library.read_model_info(key[0])
            except Exception as exc:  # a header no reader foresaw: that row says so, the rest go on
                path = Path(key[0])
                info = ModelInfo(path=path, parts=(path,), error=f"the header could not be read: {exc}")
            self._results.put((key, info))
            try:
                self._woken.emit()
            except RuntimeError:  # the reader is gone (the window closed): nobody wants the rest
                return

    def _on_woken(self) -> None:
        if not self._batch.isActive():
            self._batch.start()

    def _hand_on(self) -> None:
        batch: dict[FileKey, ModelInfo] = {}
        while not self._results.empty():
            key, info = self._results.get()
            batch[key] = info
            self._pending.discard(key)
        if batch:
            self.headersRead.emit(batch)

    def shutdown(self) -> None:
        """Stop reading: what is queued is dropped, what is being read finishes unseen."""
        self._pool.shutdown(wait=False, cancel_futures=True)


# ------------------------------------------------------------------------------------------------
# dialogs


class HfSpecDialog(QDialog):
    """Asks for ``user/model[:quant]`` and a name; OK stays disabled until the spec reads."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add a model from Hugging Face")
        self.spec_edit = QLineEdit()
        self.spec_edit.setPlaceholderText(
            "user/model or user/model:quant, e.g. ggml-org/gemma-3-1b-it-GGUF:Q4_K_M"
        )
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("(from the repo name)")
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Repository:", self.spec_edit)
        form.addRow("Name:", self.name_edit)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(
            QLabel("llama-server downloads the file on the first start (<code>-hf</code>) and caches it.")
        )
        layout.addWidget(self.status_label)
        layout.addWidget(self.buttons)
        self.spec_edit.textChanged.connect(self._check)
        self._check("")

    def spec(self) -> library.HFSpec | None:
        try:
            return library.parse_hf_spec(self.spec_edit.text())
        except ValueError:
            return None

    def _check(self, text: str) -> None:
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        if not text.strip():
            self.status_label.setText("")
            ok.setEnabled(False)
            return
        try:
            spec = library.parse_hf_spec(text)
        except ValueError as exc:
            self.status_label.setText(str(exc))
            ok.setEnabled(False)
            return
        quant = spec.quant or "llama-server's choice (Q4_K_M if the repo has it)"
        self.status_label.setText(f"Repository {spec.repo}, quantization {quant}.")
        self.name_edit.setPlaceholderText(spec.suggested_name)
        ok.setEnabled(True)


class CommandLineDialog(QDialog):
    """Takes a pasted ``llama-server ...`` command line; errors are shown and the dialog stays."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add a model from a command line")
        self.resize(640, 320)
        self.text_edit = QPlainTextEdit()
        self.text_edit.setPlaceholderText(
            "llama-server -m /models/qwen3-8b-q4_k_m.gguf -c 16384 -ngl 99 --port 8081"
        )
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("(from the model)")
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(error_style_sheet())  # readable in both themes
        self.error_label.hide()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Paste a llama-server command line (line continuations with \\ are fine):"))
        layout.addWidget(self.text_edit, 1)
        form = QFormLayout()
        form.addRow("Name:", self.name_edit)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)
        self.config: dict[str, Any] | None = None

    def accept(self) -> None:
        try:
            self.config = library.config_from_command_line(self.text_edit.toPlainText())
        except CommandLineError as exc:
            self.config = None
            self.error_label.setText(str(exc))
            self.error_label.show()
            return
        super().accept()


class ScanDialog(QDialog):
    """Lists what a directory scan found: models with checkboxes, projectors to pair with them."""

    def __init__(self, result: ScanResult, directory: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Models in {directory}")
        self.resize(900, 480)
        self.scan = result
        self.table = QTableWidget(len(result.models), 5)
        self.table.setHorizontalHeaderLabels(["Model", "Quantization", "Parameters", "Size", "Projector"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self._projector_boxes: list[QComboBox] = []
        for row, info in enumerate(result.models):
            name = QTableWidgetItem(_relative(info.path, directory))
            name.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
            name.setCheckState(Qt.CheckState.Checked)
            name.setToolTip(str(info.path))
            self.table.setItem(row, 0, name)
            self.table.setItem(row, 1, QTableWidgetItem(info.quantization or "n/a"))
            self.table.setItem(row, 2, QTableWidgetItem(library.format_count(info.parameter_count)))
            size = format_size(info.size_bytes)
            if info.expected_parts > 1:
                size += f" ({len(info.parts)} of {info.expected_parts} parts)"
            self.table.setItem(row, 3, QTableWidgetItem(size))
            box = QComboBox()
            box.addItem("(none)", None)
            for projector in result.projectors:
                box.addItem(_relative(projector.path, directory), str(projector.path))
            offered = library.projector_for(info, result.projectors)
            if offered is not None:
                box.setCurrentIndex(box.findData(str(offered.path)))
            self.table.setCellWidget(row, 4, box)
            self._projector_boxes.append(box)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, 5):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)

        self.projector_list = QListWidget()
        for projector in result.projectors:
            self.projector_list.addItem(_relative(projector.path, directory))
        projectors = QGroupBox("Multimodal projectors (offered to the models above, not added as models)")
        projector_layout = QVBoxLayout(projectors)
        projector_layout.addWidget(self.projector_list)
        projectors.setVisible(bool(result.projectors))

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Add checked")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        found = f"{len(result.models)} model(s), {len(result.projectors)} projector(s)"
        layout.addWidget(QLabel(f"Found {found}."))
        layout.addWidget(self.table, 3)
        layout.addWidget(projectors, 1)
        if result.problems:
            problems = QLabel("Could not read:\n" + "\n".join(result.problems))
            problems.setWordWrap(True)
            layout.addWidget(problems)
        layout.addWidget(buttons)

    def _check_item(self, row: int) -> QTableWidgetItem:
        item = self.table.item(row, 0)
        assert item is not None  # every row gets its item in __init__
        return item

    def set_checked(self, row: int, checked: bool) -> None:
        self._check_item(row).setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)

    def projector_box(self, row: int) -> QComboBox:
        return self._projector_boxes[row]

    def chosen(self) -> list[tuple[ModelInfo, Path | None]]:
        """The checked models, each with the projector chosen for it (or ``None``)."""
        chosen = []
        for row, info in enumerate(self.scan.models):
            if self._check_item(row).checkState() != Qt.CheckState.Checked:
                continue
            projector = self._projector_boxes[row].currentData()
            chosen.append((info, Path(projector) if projector else None))
        return chosen


def _relative(path: Path, directory: Path) -> str:
    try:
        return str(path.relative_to(directory))
    except ValueError:
        return str(path)


# ------------------------------------------------------------------------------------------------
# the view


class LibraryView(QWidget):
    """The model library.

    Args:
        store: where the library is stored (see :class:`~llamadash.core.library_service.LibraryStore`).
        parent: the parent widget.
        service: the library service to change it through (default: one over ``store`` that asks
            the process records whether a model runs; the window gives it its instance manager's
            check with :meth:`set_running_check`).
    """

    #: The selection changed: the selected model dict, or ``None``.
    modelSelected = Signal(object)
    #: A model was double-clicked (or Enter pressed on it): its dict. The main window opens it.
    modelActivated = Signal(object)
    #: Entries were added, renamed, duplicated or deleted (the list has been re-read).
    libraryChanged = Signal()

    def __init__(
        self, store: LibraryStore, parent: QWidget | None = None, *, service: Library | None = None
    ) -> None:
        super().__init__(parent)
        self._store = store
        self.service = service if service is not None else Library(store, running_by_process_records)
        self._auto_restart_switch: AutoRestartSwitch | None = None  # the window's instance manager
        self._info_cache: dict[FileKey, ModelInfo] = {}
        self._requested = 0  # header reads asked for but not handed to the reader yet
        self.setAcceptDrops(True)

        self.table_model = LibraryTableModel(self)
        self.header_reader = HeaderReader(self)
        self.header_reader.headersRead.connect(self._on_headers_read)
        self.proxy = LibraryFilterProxy(self)
        self.proxy.setSourceModel(self.table_model)
        self.proxy.setSortRole(LibraryTableModel.SORT_ROLE)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        # library order until a click: the indicator first, or enabling sorting sorts every row by
        # the first column (data() calls into Python for each comparison, thrown away at once)
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        # Name, type and status are fitted to their text when the library is read (_fit_columns),
        # not by Qt's ResizeToContents: that measures every cell through the model (thousands of
        # calls into Python) at each layout, ~30 ms of the tab's first show with 50 models.
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)  # the source: a repo or a file name, the longest text
        self._fitting = False
        self._sized_by_user: set[int] = set()
        header.sectionResized.connect(self._on_section_resized)
        self.table_model.modelReset.connect(self._fit_columns)  # each read of the library
        # the header columns fill in while headers are read: sized once for what they can hold,
        # not re-fitted (every row measured again) at every batch
        metrics = self.table.fontMetrics()
        for column, widest in (
            (LibraryTableModel.SIZE, "99.9 GiB (9 of 9)"),
            (LibraryTableModel.QUANTIZATION, "Quantization"),
            (LibraryTableModel.PARAMETERS, "Parameters"),
            (LibraryTableModel.CONTEXT, "1,048,576"),
        ):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(column, metrics.horizontalAdvance(widest) + 24)
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        self.table.activated.connect(self._on_activated)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)

        self.add_button = QToolButton()
        self.add_button.setText("Add")
        self.add_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        add_menu = QMenu(self.add_button)
        add_menu.addAction("GGUF file\u2026", self.add_files_dialog)
        add_menu.addAction("Hugging Face repo\u2026", self.add_hf_dialog)
        add_menu.addAction("Command line\u2026", self.add_command_line_dialog)
        add_menu.addAction("Scan a directory\u2026", self.scan_dialog)
        add_menu.addAction("Remote server\u2026", self.add_remote_dialog)
        self.add_button.setMenu(add_menu)
        self.duplicate_button = QPushButton("Duplicate")
        self.duplicate_button.clicked.connect(self.duplicate_selected)
        self.rename_button = QPushButton("Rename\u2026")
        self.rename_button.clicked.connect(lambda: self.rename_selected())
        self.delete_button = QPushButton("Delete\u2026")
        self.delete_button.clicked.connect(lambda: self.delete_selected())

        self.status_filter = QComboBox()
        self.status_filter.addItem(ALL, None)
        for status in STATUSES:
            self.status_filter.addItem(status, status)
        self.type_filter = QComboBox()
        self.type_filter.addItem(ALL, None)
        self.status_filter.currentIndexChanged.connect(self._apply_filter)
        self.type_filter.currentIndexChanged.connect(self._apply_filter)

        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.duplicate_button)
        buttons.addWidget(self.rename_button)
        buttons.addWidget(self.delete_button)
        buttons.addStretch(1)
        self._buttons = buttons  # add_tool_button() puts more after Delete
        buttons.addWidget(QLabel("Status:"))
        buttons.addWidget(self.status_filter)
        buttons.addWidget(QLabel("Type:"))
        buttons.addWidget(self.type_filter)

        self.details = QGroupBox("Model file")
        self.details_form = QFormLayout(self.details)
        self.details_form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.details)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)

        # shown instead of the list and the details while the library is empty (a first run)
        self.empty_label = QLabel(EMPTY_TEXT)
        self.empty_label.setObjectName("libraryEmptyText")
        self.empty_label.setTextFormat(Qt.TextFormat.RichText)
        self.empty_label.setWordWrap(True)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_add_button = QPushButton("Add GGUF file\u2026")
        self.empty_add_button.setObjectName("emptyAddFile")
        self.empty_add_button.clicked.connect(self.add_files_dialog)
        self.empty_scan_button = QPushButton("Scan a directory\u2026")
        self.empty_scan_button.setObjectName("emptyScan")
        self.empty_scan_button.clicked.connect(lambda: self.scan_dialog())
        empty_buttons = QHBoxLayout()
        empty_buttons.addStretch(1)
        empty_buttons.addWidget(self.empty_add_button)
        empty_buttons.addWidget(self.empty_scan_button)
        empty_buttons.addStretch(1)
        empty_page = QWidget()
        empty_layout = QVBoxLayout(empty_page)
        empty_layout.addStretch(1)
        empty_layout.addWidget(self.empty_label)
        empty_layout.addLayout(empty_buttons)
        empty_layout.addStretch(2)
        self.empty_state = QScrollArea()  # a short window scrolls the text rather than cutting it
        self.empty_state.setObjectName("libraryEmpty")
        self.empty_state.setFrameShape(QFrame.Shape.NoFrame)
        self.empty_state.setWidgetResizable(True)
        self.empty_state.setWidget(empty_page)

        self.list_page = splitter
        self.pages = QStackedWidget()
        self.pages.addWidget(splitter)
        self.pages.addWidget(self.empty_state)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.pages, 1)
        self.refresh()

    def add_tool_button(self, button: QWidget) -> None:
        """Add a button after Delete (the window's Performance menu)."""
        self._buttons.insertWidget(self._buttons.indexOf(self.delete_button) + 1, button)

    # ------------------------------------------------------------------------------------------
    # reading
    #: The columns fitted to their text (see :meth:`_fit_columns`), and how many rows are measured.
    FITTED_COLUMNS = (LibraryTableModel.NAME, LibraryTableModel.TYPE, LibraryTableModel.STATUS)
    FIT_ROWS = 500

    def _fit_columns(self) -> None:
        """Size the name, type and status columns to their widest text (the first :data:`FIT_ROWS`
        rows), as ResizeToContents would, unless the user has resized the column."""
        model = self.table_model
        cells = self.table.fontMetrics()
        titles = self.table.horizontalHeader().fontMetrics()
        rows = min(model.rowCount(), self.FIT_ROWS)
        self._fitting = True
        try:
            for column in self.FITTED_COLUMNS:
                if column in self._sized_by_user:
                    continue
                texts = (model.data(model.index(row, column)) or "" for row in range(rows))
                widest = max((cells.horizontalAdvance(str(text)) for text in texts), default=0)
                title = titles.horizontalAdvance(model.COLUMNS[column]) + 28  # margins, sort arrow
                self.table.horizontalHeader().resizeSection(column, max(widest + 16, title))
        finally:
            self._fitting = False

    def _on_section_resized(self, column: int, _old: int, _new: int) -> None:
        if not self._fitting and column in self.FITTED_COLUMNS and self.table.isVisible():
            self._sized_by_user.add(column)  # the user's width is kept at the next read

    def refresh(self, select_id: int | None = None) -> None:
        """Re-read the library; keeps (or moves to ``select_id``) the selection."""
        keep = select_id if select_id is not None else (self.selected_model() or {}).get("id")
        try:
            models = self._store.get_models()
        except Exception as exc:
            self._show_error("The library could not be read", str(exc))
            return
        self.table_model.set_models(models)
        self._read_headers(models)
        self.pages.setCurrentWidget(self.list_page if models else self.empty_state)
        self._fill_type_filter(models)
        if keep is not None:
            self.select_model(keep)
        self._on_selection()

    def _fill_type_filter(self, models: Iterable[Mapping[str, Any]]) -> None:
        current = self.type_filter.currentData()
        types = sorted({str(m.get("type")) for m in models if m.get("type")})
        self.type_filter.blockSignals(True)  # refilling is not a new choice of filter
        self.type_filter.clear()
        self.type_filter.addItem(ALL, None)
        for model_type in types:
            self.type_filter.addItem(model_type, model_type)
        position = self.type_filter.findData(current) if current is not None else 0
        self.type_filter.setCurrentIndex(max(position, 0))
        self.type_filter.blockSignals(False)
        self._apply_filter()

    def models(self) -> list[dict[str, Any]]:
        """The library as last read (every entry, filters ignored)."""
        return self.table_model.models()

    @property
    def showing_empty_state(self) -> bool:
        """True while the library is empty and the view explains how to add a model."""
        return self.pages.currentWidget() is self.empty_state

    def visible_names(self) -> list[str]:
        """The names the list shows now (after filtering and sorting)."""
        return [self.proxy.index(r, 0).data() for r in range(self.proxy.rowCount())]

    def selected_model(self) -> dict[str, Any] | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return rows[0].data(LibraryTableModel.MODEL_ROLE) if rows else None

    def select_model(self, model_id: int) -> bool:
        """Select the entry with this id (if the filters show it)."""
        row = self.table_model.row_of(model_id)
        if row < 0:
            return False
        index = self.proxy.mapFromSource(self.table_model.index(row, 0))
        if not index.isValid():
            return False
        self.table.selectRow(index.row())
        return True

    def set_status_filter(self, status: str | None) -> None:
        self.status_filter.setCurrentIndex(max(self.status_filter.findData(status), 0) if status else 0)

    def set_type_filter(self, model_type: str | None) -> None:
        self.type_filter.setCurrentIndex(max(self.type_filter.findData(model_type), 0) if model_type else 0)

    def _apply_filter(self, *_: Any) -> None:
        self.proxy.set_filter(self.status_filter.currentData(), self.type_filter.currentData())

    # ------------------------------------------------------------------------------------------
    # the model files' headers
    def _read_headers(self, models: Iterable[Mapping[str, Any]]) -> None:
        """Fill the header columns: from the cache, else by a read on a worker thread.

        The reads are asked for once the list is shown (the next turn of the event loop), so that
        the worker does not compete with the window while it lays the list out.
        """
        known: dict[str, ModelInfo] = {}
        to_read: list[FileKey] = []
        for model in models:
            path = model.get(COLUMN.model_path)
            if not path:
                continue
            key = file_key(path)
            if key is None:  # gone: say so at once (an error needs no reading)
                known[str(path)] = library.read_model_info(path)
            elif key in self._info_cache:
                known[str(path)] = self._info_cache[key]
            else:
                to_read.append(key)
        self.table_model.set_infos(known)
        if to_read:
            self._requested += len(to_read)
            QTimer.singleShot(0, self, lambda: self._request_headers(to_read))

    def _request_headers(self, keys: list[FileKey]) -> None:
        self._requested -= len(keys)
        self.header_reader.request(keys)

    def _on_headers_read(self, batch: dict[FileKey, ModelInfo]) -> None:
        self._info_cache.update(batch)
        self.table_model.set_infos({key[0]: info for key, info in batch.items()})

    @property
    def headers_pending(self) -> int:
        """How many model files' headers are still to be read (or being read) for the list."""
        return self._requested + self.header_reader.pending

    def column_texts(self, column: str) -> list[str]:
        """What the list shows in a column (by its title), in the order shown."""
        index = LibraryTableModel.COLUMNS.index(column)
        return [self.proxy.index(r, index).data() for r in range(self.proxy.rowCount())]

    def sort_by(self, column: str, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort the list as a click on the column's title does."""
        self.table.sortByColumn(LibraryTableModel.COLUMNS.index(column), order)

    # ------------------------------------------------------------------------------------------
    # details
    def model_info(self, model: Mapping[str, Any]) -> ModelInfo | None:
        """The GGUF header of a model's ``model_path`` (cached per file version), or ``None``."""
        path = model.get(COLUMN.model_path)
        if not path:
            return None
        key = file_key(path)
        if key is None:
            return library.read_model_info(path)  # carries the error for display
        if key not in self._info_cache:
            self._info_cache[key] = library.read_model_info(path)
        return self._info_cache[key]

    def details_rows(self) -> list[tuple[str, str]]:
        """What the details panel shows, as (label, text) rows."""
        rows = []
        for row in range(self.details_form.rowCount()):
            label = self.details_form.itemAt(row, QFormLayout.ItemRole.LabelRole)
            field = self.details_form.itemAt(row, QFormLayout.ItemRole.FieldRole)
            label_widget = label.widget() if label is not None else None
            field_widget = field.widget() if field is not None else None
            if isinstance(label_widget, QLabel) and isinstance(field_widget, QLabel):
                rows.append((label_widget.text().rstrip(":"), field_widget.text()))
        return rows

    def _show_details(self, model: Mapping[str, Any] | None) -> None:
        while self.details_form.rowCount():
            self.details_form.removeRow(0)
        if model is None:
            self.details.setTitle("Model file")
            self.details_form.addRow(QLabel("Select a model to see what its file holds."))
            return
        self.details.setTitle(f"Model file of {model.get('name', '')}")
        info = self.model_info(model)
        if info is not None:
            rows = info.summary()
            if model.get(COLUMN.mmproj):
                rows.append(("Projector", str(model[COLUMN.mmproj])))
        else:
            source = library.model_source(model)
            if source is None:
                rows = [("Source", "no model source: set model_path or hf_repo in the parameters")]
            else:
                rows = [("Source", f"{_SOURCE_LABELS[source[0]]}: {source[1]}")]
                if source[0] in (COLUMN.hf_repo, COLUMN.model_url, COLUMN.docker_repo):
                    rows.append(("Metadata", "n/a until llama-server has downloaded the file"))
        for label, text in rows:
            field = QLabel(text)
            field.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            field.setWordWrap(True)
            self.details_form.addRow(f"{label}:", field)

    def _on_selection(self, *_: Any) -> None:
        model = self.selected_model()
        has = model is not None
        for button in (self.duplicate_button, self.rename_button, self.delete_button):
            button.setEnabled(has)
        self._show_details(model)
        self.modelSelected.emit(model)

    def _on_activated(self, index: _Index) -> None:
        model = index.data(LibraryTableModel.MODEL_ROLE)
        if model is not None:
            self.modelActivated.emit(model)

    # ------------------------------------------------------------------------------------------
    # adding (the service's rules; the view shows what it refused)
    def add_files(self, paths: Iterable[str | os.PathLike[str]]) -> list[int]:
        """Add ``.gguf`` files (any part of a split model adds the model once); returns new ids.

        Files that are not readable GGUF models, projectors and files already in the library are
        refused with one message that says why for each.
        """
        return self._show_report(self._adding(lambda: self.service.add_files(paths)))

    def add_hf_spec(self, text: str, name: str | None = None) -> int | None:
        """Add a model that llama-server downloads from Hugging Face (``user/model[:quant]``).

        Raises:
            ValueError: ``text`` is not such a spec.
        """
        return self._add_one(lambda: self.service.add_hf(text, name or None), raises=(InvalidSource,))

    def add_remote(self, name: str, url: str, api_key: str | None = None) -> int | None:
        """Add a remote llama-server (watched at ``url``, never started here); returns its id."""
        return self._add_one(lambda: self.service.add_remote(name, url, api_key=api_key))

    def add_command_line(self, text: str, name: str | None = None) -> int | None:
        """Add a model configured by a pasted llama-server command line (paths made absolute).

        Raises:
            CommandLineError: the command line cannot be read; the message says why.
        """
        return self._add_one(
            lambda: self.service.add_command_line(text, name or None), raises=(CommandLineError,)
        )

    def add_config(self, config: Mapping[str, Any], name: str | None = None) -> int | None:
        """Add a parsed configuration: ``type`` (and the name) from the model file's header when it has one."""
        return self._add_one(lambda: self.service.add_config(config, name or None))

    def add_scanned(self, chosen: Iterable[tuple[ModelInfo, Path | None]]) -> list[int]:
        """Add models picked from a directory scan, each with its projector (``mmproj``)."""
        return self._show_report(self._adding(lambda: self.service.add_scanned(chosen)))

    def _adding(self, add: Callable[[], AddReport]) -> AddReport:
        try:
            report = add()
        except Exception as exc:  # the database refused (a full disk...): nothing more was added
            self._show_error("The model was not added", str(exc))
            self.refresh()  # the files before it were added
            self.libraryChanged.emit()
            return AddReport()
        return report

    def _show_report(self, report: AddReport) -> list[int]:
        if report.refused:
            self._show_error("Some files were not added", "\n".join(str(e) for e in report.refused))
        self._after_add(report.ids)
        return report.ids

    def _add_one(self, add: Callable[[], Added], raises: tuple[type[Exception], ...] = ()) -> int | None:
        """Run one add of the service; a refusal is shown, except one of ``raises`` (the caller's)."""
        try:
            added = add()
        except raises:
            raise
        except Exception as exc:  # the service's refusal (a name taken...) or the database's
            self._show_error("The model was not added", str(exc))
            return None
        if added.note is not None:
            self._show_info("Already in the library", added.note)
        self._after_add([added.id])
        return added.id

    def _after_add(self, added: list[int]) -> None:
        if not added:
            return
        self.set_status_filter(None)  # a new entry must not be hidden by the filters
        self.set_type_filter(None)
        self.refresh(select_id=added[-1])
        self.libraryChanged.emit()

    # ------------------------------------------------------------------------------------------
    # dialogs
    def add_files_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Add GGUF models", "", "GGUF models (*.gguf);;All files (*)"
        )
        if paths:
            self.add_files(paths)

    def add_hf_dialog(self) -> None:
        dialog = HfSpecDialog(self)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.spec() is not None:
            self.add_hf_spec(dialog.spec_edit.text(), dialog.name_edit.text().strip() or None)

    def add_remote_dialog(self) -> None:
        dialog = RemoteServerDialog(self)
        url = dialog.url() if dialog.exec() == QDialog.DialogCode.Accepted else None
        if url is not None:
            self.add_remote(dialog.name_edit.text().strip(), url, dialog.api_key())

    def add_command_line_dialog(self) -> None:
        dialog = CommandLineDialog(self)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.config is not None:
            self.add_config(dialog.config, dialog.name_edit.text().strip() or None)

    def scan_dialog(self, directory: str | os.PathLike[str] | None = None) -> None:
        """Scan a directory (asked for when not given) and offer what it holds."""
        if directory is None:
            directory = QFileDialog.getExistingDirectory(self, "Scan a models directory")
            if not directory:
                return
        root = Path(directory)
        try:
            result = self.service.scan(root)
        except NoModelsFound as exc:
            self._show_error("No models found", str(exc))
            return
        except LibraryError as exc:
            self._show_error("The directory could not be scanned", str(exc))
            return
        dialog = ScanDialog(result, root, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.add_scanned(dialog.chosen())

    # ------------------------------------------------------------------------------------------
    # changing
    def duplicate_selected(self) -> int | None:
        """Copy the selected entry as "name (copy)", stopped, on a port of its own; returns the new id."""
        model = self.selected_model()
        if model is None:
            return None
        return self._add_one(lambda: self.service.duplicate(int(model["id"])))

    def set_running_check(self, is_running: IsRunning) -> None:
        """Ask ``is_running(name)`` whether a model's server runs (the window's: its instance
        manager, and the process records). A running model is neither renamed nor deleted: that
        would leave its server without its library entry."""
        self.service.set_running_check(is_running)

    def set_auto_restart_switch(self, switch: object) -> None:
        """Switch auto-restart through ``switch`` (the window's instance manager: a running server
        follows at once) when it can; without one the library row is written, which the next
        start reads."""
        self._auto_restart_switch = switch if isinstance(switch, AutoRestartSwitch) else None

    def auto_restart_of_selected(self) -> bool:
        """Whether the selected entry restarts after a crash, as stored now (another view may have
        switched it since the list was read)."""
        model = self.selected_model()
        if model is None:
            return False
        try:
            return bool(self.service.get(int(model["id"])).get(AUTO_RESTART))
        except Exception:
            return bool(model.get(AUTO_RESTART))

    def set_auto_restart_selected(self, enabled: bool) -> bool:
        """Turn restarting after a crash on or off for the selected entry; returns whether it changed."""
        model = self.selected_model()
        if model is None:
            return False
        try:
            if self._auto_restart_switch is not None:
                self._auto_restart_switch.set_autorestart(str(model["name"]), enabled)
            else:
                self.service.set_parameters(int(model["id"]), {AUTO_RESTART: enabled})
        except Exception as exc:
            self._show_error("Auto-restart was not changed", str(exc))
            return False
        self.refresh(select_id=model["id"])
        self.libraryChanged.emit()
        return True

    def context_menu(self) -> QMenu:
        """The menu of the selected entry (right-click)."""
        menu = QMenu(self)
        menu.addAction("Duplicate", self.duplicate_selected)
        menu.addAction("Rename\u2026", lambda: self.rename_selected())
        menu.addAction("Delete\u2026", lambda: self.delete_selected())
        menu.addSeparator()
        auto = menu.addAction("Auto-restart after a crash")
        auto.setObjectName("autoRestartAction")
        auto.setCheckable(True)
        auto.setChecked(self.auto_restart_of_selected())
        auto.setToolTip("Start this model's server again when it crashes")
        auto.triggered.connect(self.set_auto_restart_selected)
        selected = self.selected_model()
        if selected is not None and selected.get(REMOTE_URL):
            auto.setEnabled(False)  # a remote server is not started here, nor restarted
            menu.addAction("Server URL and key\u2026", self.edit_remote_selected)
        elif selected is not None:  # the workers' dialog lives in its own module
            from llamadash.ui import rpc_choice_dialog

            menu.addAction(rpc_choice_dialog.ACTION_TEXT, lambda: rpc_choice_dialog.run_across_workers(self))
        return menu

    def edit_remote_selected(self) -> None:
        """Change the selected remote server's URL (and key) in its dialog."""
        model = self.selected_model()
        if model is None or not model.get(REMOTE_URL):
            return
        dialog = RemoteServerDialog(
            self, name=str(model["name"]), url=str(model[REMOTE_URL]), has_key=bool(model.get(COLUMN.api_key))
        )
        url = dialog.url() if dialog.exec() == QDialog.DialogCode.Accepted else None
        if url is not None:
            self.set_remote(int(model["id"]), url, dialog.api_key())

    def set_remote(self, model_id: int, url: str, api_key: str | None = None) -> bool:
        """A remote server's new URL, and key when one is given (``None`` keeps the one it has)."""
        changes: dict[str, Any] = {REMOTE_URL: url}
        if api_key:
            changes[COLUMN.api_key] = [api_key]
        try:
            self.service.set_parameters(model_id, changes)
        except Exception as exc:  # the library's refusal (a bad URL) or the database's
            self._show_error("The remote server was not changed", str(exc))
            return False
        self.refresh(select_id=model_id)
        self.libraryChanged.emit()
        return True

    def _refused_while_running(self, model: Mapping[str, Any], doing: str) -> bool:
        try:
            self.service.refuse_if_running(model, doing)
        except ModelRunning as exc:
            self._show_error("The model is running", exc.advice)
            return True
        return False

    def rename_selected(self, new_name: str | None = None) -> bool:
        """Rename the selected entry (asks for the name when not given); not while its server runs."""
        model = self.selected_model()
        if model is None:
            return False
        if self._refused_while_running(model, "renaming"):  # before asking for a name in vain
            return False
        if new_name is None:
            new_name = self._ask_text("Rename model", "New name:", str(model.get("name", "")))
            if new_name is None:
                return False
        new_name = new_name.strip()
        if not new_name or new_name == model.get("name"):
            return False
        try:
            self.service.rename(int(model["id"]), new_name)
        except ModelRunning as exc:
            self._show_error("The model is running", exc.advice)
            return False
        except Exception as exc:
            self._show_error("The model was not renamed", str(exc))
            return False
        self.refresh(select_id=model["id"])
        self.libraryChanged.emit()
        return True

    def delete_selected(self, *, confirm: bool = True) -> bool:
        """Delete the selected entry after asking; a running model is not deleted."""
        model = self.selected_model()
        if model is None:
            return False
        name = model.get("name", "")
        if self._refused_while_running(model, "deleting"):
            return False
        question = (
            f"Delete {name} from the library?\n\nIts settings are removed; the model file stays on disk."
        )
        if confirm and not self._confirm("Delete model", question):
            return False
        try:
            self.service.delete(int(model["id"]))
        except ModelRunning as exc:
            self._show_error("The model is running", exc.advice)
            return False
        except Exception as exc:
            self._show_error("The model was not deleted", str(exc))
            return False
        self.refresh()
        self.libraryChanged.emit()
        return True

    def _context_menu(self, pos: Any) -> None:
        if self.selected_model() is None:
            return
        self.context_menu().exec(self.table.viewport().mapToGlobal(pos))

    # ------------------------------------------------------------------------------------------
    # drag and drop
    @staticmethod
    def _dropped_gguf(event: QDragEnterEvent | QDropEvent) -> list[str]:
        mime = event.mimeData()
        if not mime.hasUrls():
            return []
        return [
            url.toLocalFile()
            for url in mime.urls()
            if url.isLocalFile() and url.toLocalFile().lower().endswith(".gguf")
        ]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._dropped_gguf(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: Any) -> None:
        event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = self._dropped_gguf(event)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.add_files(paths)

    # ------------------------------------------------------------------------------------------
    # prompts (instance methods, so a test or an embedding window can answer them)
    def _ask_text(self, title: str, label: str, text: str) -> str | None:
        value, ok = QInputDialog.getText(self, title, label, QLineEdit.EchoMode.Normal, text)
        return value if ok else None

    def _confirm(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text)
        return answer == QMessageBox.StandardButton.Yes

    def _show_error(self, title: str, text: str) -> None:
        QMessageBox.warning(self, title, text)

    def _show_info(self, title: str, text: str) -> None:
        QMessageBox.information(self, title, text)
