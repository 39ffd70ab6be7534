"""File → Export/Import: the database and the model library to and from files.

Four tabs:

* **Export database**: a full copy to a file, on a worker thread (the application keeps sampling),
  with a progress bar; an existing file is replaced only when "Replace an existing file" is ticked.
* **Import database**: what a file holds (version, models, metrics rows, size, date) is shown before
  anything changes, with what an import leaves out (the file's triggers, views and other tables:
  only data comes in) and the settings of this computer it keeps (the llama-server binary, the
  models folder, ...: never taken from a file); *Replace* swaps it in, keeping a backup of the
  current database. A failure leaves the current database as it was and says why.
* **Export models**: the ticked models as ``llamadash-models`` JSON (secrets only when asked), a
  shell script of llama-server command lines, or a llama-server router presets INI.
* **Import models**: from such a file or pasted command lines; a preview says what is added,
  overwritten or skipped (by the chosen policy for names already in the library) before *Apply*.

The dialog does not import the database layer: it is given it (the :mod:`llamadash.core.database`
module, or any object with the same functions) and a callback to run after the library changed.
"""

from __future__ import annotations

import datetime
import html
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from llamadash.core import library, model_export
from llamadash.core.library_service import Library, running_by_process_records
from llamadash.core.model_export import ImportAction, ModelFormatError
from llamadash.core.params import COLUMN
from llamadash.ui.theme import error_style_sheet

__all__ = ["MODEL_FORMATS", "TransferDialog"]

#: The model export formats: (key, label, file suffix, file-dialog filter).
MODEL_FORMATS: tuple[tuple[str, str, str, str], ...] = (
    ("json", "llamadash JSON (all settings)", ".json", "llamadash models (*.json)"),
    ("sh", "Shell script (llama-server command lines)", ".sh", "Shell scripts (*.sh)"),
    ("ini", "llama-server router presets (models.ini)", ".ini", "Presets (*.ini)"),
)
_POLICIES: tuple[tuple[str, str], ...] = (
    ("skip", "Skip models whose name exists"),
    ("overwrite", "Overwrite models whose name exists"),
    ("keep_both", "Keep both (the imported one is renamed)"),
)
_DB_FILTER = "llamadash database (*.db *.sqlite *.sqlite3);;All files (*)"


class _Bridge(QObject):
    """Carries the export thread's progress and result to the GUI thread (queued signals)."""

    progress = Signal(int, int)
    done = Signal(bool, str)


class _PathRow(QWidget):
    """A file path: a line edit and a "Browse…" button (a save or an open file dialog)."""

    changed = Signal(str)

    def __init__(self, *, save: bool, caption: str, file_filter: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.save = save
        self.caption = caption
        self.file_filter = file_filter
        self.confirmed_overwrite = False
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("Choose a file…")
        self.edit.setClearButtonEnabled(True)
        self.edit.textChanged.connect(self._typed)
        self.browse_button = QPushButton("Browse…")
        self.browse_button.clicked.connect(self.browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.browse_button)

    def _typed(self, text: str) -> None:
        self.confirmed_overwrite = False
        self.changed.emit(text)

    def path(self) -> Path | None:
        """The chosen path, or ``None`` when none is given."""
        text = self.edit.text().strip()
        return Path(text).expanduser() if text else None

    def set_path(self, path: str | Path, *, confirmed_overwrite: bool = False) -> None:
        """Set the path (``confirmed_overwrite``: the user agreed to replace the file)."""
        self.edit.setText(str(path))
        self.confirmed_overwrite = confirmed_overwrite

    def browse(self) -> None:
        """Ask for the file with the platform's file dialog."""
        start = self.edit.text() or str(Path.home())
        if self.save:
            # The dialog itself asks before an existing file is chosen: that is the user's consent.
            name, _ = QFileDialog.getSaveFileName(self, self.caption, start, self.file_filter)
        else:
            name, _ = QFileDialog.getOpenFileName(self, self.caption, start, self.file_filter)
        if name:
            self.set_path(name, confirmed_overwrite=self.save)


def _status_label() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setMinimumHeight(label.fontMetrics().height() * 2)
    return label


def _show(label: QLabel, text: str, *, error: bool = False) -> None:
    label.setProperty("error", error)
    label.setStyleSheet(error_style_sheet() if error else "")
    label.setText(("Error: " if error else "") + text)


def _model_file(model: dict[str, Any]) -> str:
    source = library.model_source(model)
    if source is None:
        return ""
    column, value = source
    return Path(value).name if column == COLUMN.model_path else value


class TransferDialog(QDialog):
    """Export and import the database and the models.

    Args:
        database: The database layer: ``export_database``, ``import_database``,
            ``inspect_database_file``, ``get_models``, ``save_model`` and ``update_model``.
        on_changed: Called after the database or the model library changed (the window refreshes).
        parent: The parent widget.
    """

    databaseExported = Signal(bool, str)
    """(ok, the written file or the error) when a database export ends."""
    changed = Signal()
    """The database or the library changed (an import)."""

    def __init__(
        self,
        database: Any,
        *,
        on_changed: Callable[[], None] | None = None,
        capabilities: Callable[[], Any] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.database = database
        # the library's one home for imports: the same planning and rules as `llamadash models import`
        self.library = Library(database, running_by_process_records)
        self._on_changed = on_changed
        self._capabilities = capabilities  # the user's llama-server build: a preset's custom flags
        self._export_thread: threading.Thread | None = None
        self._bridge = _Bridge(self)
        self._bridge.progress.connect(self._on_export_progress)
        self._bridge.done.connect(self._on_export_done)
        self._inspected: dict[str, Any] | None = None
        self._incoming: list[dict[str, Any]] = []
        self.plan: list[ImportAction] = []

        self.setObjectName("transferDialog")
        self.setWindowTitle("Export / Import")
        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_export_db(), "Export database")
        self.tabs.addTab(self._build_import_db(), "Import database")
        self.tabs.addTab(self._build_export_models(), "Export models")
        self.tabs.addTab(self._build_import_models(), "Import models")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(buttons)
        self.resize(760, 520)
        self.reload_models()

    # ------------------------------------------------------------------------------------------------
    # export database

    def _build_export_db(self) -> QWidget:
        page = QWidget()
        intro = QLabel(
            "A complete copy of the database (models, settings, metrics history and events) in one "
            "file. llamadash keeps running and sampling while it is written."
        )
        intro.setWordWrap(True)
        self.export_db_path = _PathRow(save=True, caption="Export the database to", file_filter=_DB_FILTER)
        self.export_db_overwrite = QCheckBox("Replace the file if it exists")
        self.export_db_button = QPushButton("Export")
        self.export_db_button.setDefault(False)
        self.export_db_button.clicked.connect(self.export_database)
        self.export_db_progress = QProgressBar()
        self.export_db_progress.setRange(0, 100)
        self.export_db_progress.setValue(0)
        self.export_db_status = _status_label()
        form = QFormLayout()
        form.addRow("File:", self.export_db_path)
        form.addRow("", self.export_db_overwrite)
        row = QHBoxLayout()
        row.addWidget(self.export_db_progress, 1)
        row.addWidget(self.export_db_button)
        layout = QVBoxLayout(page)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addLayout(row)
        layout.addWidget(self.export_db_status)
        layout.addStretch(1)
        return page

    def export_database(self) -> bool:
        """Start the export on a worker thread; false when it cannot start (the reason is shown)."""
        path = self.export_db_path.path()
        if path is None:
            _show(self.export_db_status, "choose the file to write", error=True)
            return False
        if self._export_thread is not None and self._export_thread.is_alive():
            return False
        overwrite = self.export_db_overwrite.isChecked() or self.export_db_path.confirmed_overwrite
        self.export_db_progress.setValue(0)
        self.export_db_button.setEnabled(False)
        _show(self.export_db_status, f"Exporting to {path}…")
        bridge = self._bridge
        database = self.database

        def work() -> None:
            try:
                written = database.export_database(
                    path, overwrite=overwrite, progress=lambda done, total: bridge.progress.emit(done, total)
                )
            except Exception as exc:
                bridge.done.emit(False, str(exc))
            else:
                bridge.done.emit(True, str(written))

        self._export_thread = threading.Thread(target=work, name="llamadash-export", daemon=True)
        self._export_thread.start()
        return True

    def _on_export_progress(self, done: int, total: int) -> None:
        self.export_db_progress.setValue(100 if total <= 0 else round(100 * done / total))

    def _on_export_done(self, ok: bool, text: str) -> None:
        self.export_db_button.setEnabled(True)
        if ok:
            self.export_db_progress.setValue(100)
            _show(self.export_db_status, f"The database was exported to {text}")
        else:
            self.export_db_progress.setValue(0)
            _show(self.export_db_status, text, error=True)
        self.databaseExported.emit(ok, text)

    def wait_for_export(self, timeout: float = 30.0) -> None:
        """Wait for the export thread to end (tests, closing)."""
        if self._export_thread is not None:
            self._export_thread.join(timeout)

    # ------------------------------------------------------------------------------------------------
    # import database

    def _build_import_db(self) -> QWidget:
        page = QWidget()
        intro = QLabel(
            "Replace the whole database with a file exported earlier, or merge only its models into "
            "yours. Nothing changes until you press a button; the current database is kept as a "
            "backup beside it first."
        )
        intro.setWordWrap(True)
        self.import_db_path = _PathRow(save=False, caption="Import a database", file_filter=_DB_FILTER)
        self.import_db_path.changed.connect(lambda _text: self._forget_inspection())
        self.inspect_button = QPushButton("Show contents")
        self.inspect_button.clicked.connect(self.inspect_database)
        self.import_db_path.edit.returnPressed.connect(self.inspect_database)
        self.import_db_path.browse_button.clicked.connect(self._inspect_if_chosen)
        self.import_db_summary = QLabel("Choose a file to see what it holds.")
        self.import_db_summary.setWordWrap(True)
        self.import_db_summary.setTextFormat(Qt.TextFormat.RichText)
        self.import_db_summary.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.import_db_summary.setFrameShape(QLabel.Shape.StyledPanel)
        self.import_db_summary.setMargin(8)
        self.import_db_summary.setMinimumHeight(120)
        self.replace_button = QPushButton("Replace the current database")
        self.replace_button.setEnabled(False)
        self.replace_button.clicked.connect(self.replace_database)
        # Merge: only the file's models come in, by name, the rest of the current database stays.
        self.merge_policy = QComboBox()
        for label, policy in (
            ("skip them", "skip"),
            ("overwrite them", "overwrite"),
            ("keep both", "keep_both"),
        ):
            self.merge_policy.addItem(label, policy)
        self.merge_button = QPushButton("Merge its models")
        self.merge_button.setEnabled(False)
        self.merge_button.clicked.connect(self.merge_models)
        self.import_db_status = _status_label()
        row = QHBoxLayout()
        row.addWidget(self.import_db_path, 1)
        row.addWidget(self.inspect_button)
        buttons = QHBoxLayout()
        buttons.addWidget(QLabel("Names already in the library:"))
        buttons.addWidget(self.merge_policy)
        buttons.addWidget(self.merge_button)
        buttons.addStretch(1)
        buttons.addWidget(self.replace_button)
        layout = QVBoxLayout(page)
        layout.addWidget(intro)
        layout.addLayout(row)
        layout.addWidget(self.import_db_summary, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.import_db_status)
        return page

    def _inspect_if_chosen(self) -> None:
        if self.import_db_path.path() is not None:
            self.inspect_database()

    def _forget_inspection(self) -> None:
        self._inspected = None
        self.replace_button.setEnabled(False)
        self.merge_button.setEnabled(False)

    def inspect_database(self) -> dict[str, Any] | None:
        """Show what the chosen file holds (changes nothing); ``None`` when it cannot be imported."""
        self._forget_inspection()
        path = self.import_db_path.path()
        if path is None:
            _show(self.import_db_status, "choose the file to import", error=True)
            return None
        try:
            info = self.database.inspect_database_file(path)
        except Exception as exc:
            self.import_db_summary.setText("This file cannot be imported.")
            _show(self.import_db_status, str(exc), error=True)
            return None
        self._inspected = info
        self.import_db_summary.setText(self.describe(info, path))
        _show(self.import_db_status, "Nothing has changed yet. Replace the database, or merge its models.")
        self.replace_button.setEnabled(True)
        self.merge_button.setEnabled(True)
        return info

    @staticmethod
    def describe(info: dict[str, Any], path: Path) -> str:
        """The summary of an inspected database file (rich text)."""
        names = [str(n) for n in info.get("model_names") or []]
        shown = ", ".join(names[:12]) + (f", … ({len(names) - 12} more)" if len(names) > 12 else "")
        try:
            modified = datetime.datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        except OSError:
            modified = "unknown"
        version = info.get("db_version")
        upgrade = " (it will be upgraded to this version's design)" if info.get("needs_upgrade") else ""
        size = int(info.get("size") or 0)
        rows = [
            ("File", path.name),
            ("Date", modified),
            ("Database version", f"{version}{upgrade}"),
            ("Models", f"{info.get('model_count', 0)}" + (f": {shown}" if names else "")),
            ("Metrics rows", f"{int(info.get('metrics_rows') or 0):,}"),
            ("Size", f"{size / 1024 / 1024:.1f} MiB" if size >= 1024 * 1024 else f"{size / 1024:.0f} KiB"),
        ]
        foreign = [str(f) for f in info.get("foreign_objects") or []]
        if foreign:
            # Only data comes in: what the file adds to the schema is neither copied nor run.
            rows.append(("Left out (not llamadash's)", ", ".join(foreign)))
        kept = sorted(str(k) for k in (info.get("machine_settings") or {}))
        if kept:
            rows.append(("Kept from this computer", ", ".join(kept) + " (the file's values are not taken)"))
        cells = "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
        return f"<table>{cells}</table>"

    def replace_database(self) -> bool:
        """Replace the database with the inspected file; true when it was replaced."""
        path = self.import_db_path.path()
        if self._inspected is None or path is None:
            _show(self.import_db_status, "show the file's contents first", error=True)
            return False
        try:
            backup = self.database.import_database(path)
        except Exception as exc:
            _show(self.import_db_status, f"{exc}\nThe current database has not changed.", error=True)
            return False
        self._forget_inspection()
        _show(self.import_db_status, f"The database was replaced. The previous one is kept as {backup}")
        self._library_changed()
        return True

    def merge_models(self) -> dict[str, int] | None:
        """Bring the inspected file's models into the current database, by name, after a backup.

        Returns the counts added/overwritten/skipped, or ``None`` when nothing changed (the
        message says why). Metrics and settings of the current database stay as they are.
        """
        path = self.import_db_path.path()
        if self._inspected is None or path is None:
            _show(self.import_db_status, "show the file's contents first", error=True)
            return None
        try:
            incoming = [
                {k: v for k, v in m.items() if k not in ("id", "status", "created_at", "updated_at")}
                for m in self.database.read_database_models(path)
            ]
            plan = self.library.plan_import(incoming, self.merge_policy.currentData())
            db_path = Path(self.database.get_database_path())
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            backup = self.database.export_database(db_path.with_name(f"{db_path.name}.bak-merge-{stamp}"))
        except Exception as exc:
            _show(self.import_db_status, f"{exc}\nThe current database has not changed.", error=True)
            return None
        try:
            counts = self.library.apply_import(plan)
        except Exception as exc:
            try:
                self.database.import_database(backup)
            except Exception as restore_exc:
                _show(
                    self.import_db_status, f"{exc}\nRestoring {backup} failed too: {restore_exc}", error=True
                )
                return None
            _show(self.import_db_status, f"{exc}\nThe merge was undone from the backup {backup}.", error=True)
            self._library_changed()
            return None
        _show(
            self.import_db_status,
            f"Merged: {counts['add']} added, {counts['overwrite']} overwritten, {counts['skip']} skipped. "
            f"The database before the merge is kept as {backup}",
        )
        self._library_changed()
        return counts

    # ------------------------------------------------------------------------------------------------
    # export models

    def _build_export_models(self) -> QWidget:
        page = QWidget()
        self.models_list = QListWidget()
        self.models_list.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        all_button = QPushButton("All")
        all_button.clicked.connect(lambda: self._check_all(True))
        none_button = QPushButton("None")
        none_button.clicked.connect(lambda: self._check_all(False))
        self.format_combo = QComboBox()
        for key, label, _suffix, _filter in MODEL_FORMATS:
            self.format_combo.addItem(label, key)
        self.format_combo.currentIndexChanged.connect(self._format_changed)
        self.secrets_check = QCheckBox("Include secrets (API key, Hugging Face token)")
        self.export_models_path = _PathRow(save=True, caption="Export the models to", file_filter="")
        self.export_models_overwrite = QCheckBox("Replace the file if it exists")
        self.export_models_button = QPushButton("Export")
        self.export_models_button.clicked.connect(self.export_models)
        self.export_models_status = _status_label()

        picks = QHBoxLayout()
        picks.addWidget(QLabel("Models to export:"))
        picks.addStretch(1)
        picks.addWidget(all_button)
        picks.addWidget(none_button)
        form = QFormLayout()
        form.addRow("Format:", self.format_combo)
        form.addRow("", self.secrets_check)
        form.addRow("File:", self.export_models_path)
        form.addRow("", self.export_models_overwrite)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.export_models_button)
        layout = QVBoxLayout(page)
        layout.addLayout(picks)
        layout.addWidget(self.models_list, 1)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.export_models_status)
        self._format_changed()
        return page

    def reload_models(self) -> None:
        """Fill the export list from the library (every model ticked)."""
        self.models_list.clear()
        try:
            models = self.database.get_models()
        except Exception as exc:
            _show(self.export_models_status, f"cannot read the models: {exc}", error=True)
            return
        for model in sorted(models, key=lambda m: str(m["name"]).lower()):
            item = QListWidgetItem(str(model["name"]))
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            detail = _model_file(model)
            if detail:
                item.setToolTip(detail)
            self.models_list.addItem(item)

    def _check_all(self, on: bool) -> None:
        state = Qt.CheckState.Checked if on else Qt.CheckState.Unchecked
        for row in range(self.models_list.count()):
            self.models_list.item(row).setCheckState(state)

    def checked_names(self) -> list[str]:
        """The names of the ticked models."""
        items = (self.models_list.item(row) for row in range(self.models_list.count()))
        return [i.text() for i in items if i.checkState() == Qt.CheckState.Checked]

    def set_checked(self, names: Sequence[str]) -> None:
        """Tick exactly ``names``."""
        for row in range(self.models_list.count()):
            item = self.models_list.item(row)
            item.setCheckState(Qt.CheckState.Checked if item.text() in names else Qt.CheckState.Unchecked)

    def set_format(self, key: str) -> None:
        """Choose the export format by key (``json``, ``sh`` or ``ini``)."""
        self.format_combo.setCurrentIndex(self.format_combo.findData(key))

    def _format_changed(self) -> None:
        key = self.format_combo.currentData()
        _, _label, suffix, file_filter = next(f for f in MODEL_FORMATS if f[0] == key)
        self.secrets_check.setEnabled(key in ("json", "sh"))
        if key == "ini":
            self.secrets_check.setToolTip("The router sets the API key itself: a presets file has none.")
        else:
            self.secrets_check.setToolTip("")
        self.export_models_path.file_filter = f"{file_filter};;All files (*)"
        path = self.export_models_path.path()
        if path is not None and path.suffix in {f[2] for f in MODEL_FORMATS}:
            self.export_models_path.edit.setText(str(path.with_suffix(suffix)))

    def export_models(self) -> bool:
        """Write the ticked models in the chosen format; true when the file was written."""
        path = self.export_models_path.path()
        names = self.checked_names()
        if not names:
            _show(self.export_models_status, "tick at least one model", error=True)
            return False
        if path is None:
            _show(self.export_models_status, "choose the file to write", error=True)
            return False
        if not path.parent.is_dir():
            where = path.parent
            reason = f"{where} is not a folder" if where.exists() else f"the folder {where} does not exist"
            _show(self.export_models_status, f"{reason}; choose another place for {path.name}", error=True)
            return False
        overwrite = self.export_models_overwrite.isChecked() or self.export_models_path.confirmed_overwrite
        if path.exists() and not overwrite:
            _show(
                self.export_models_status,
                f"{path} already exists; choose another name or tick “Replace the file if it exists”",
                error=True,
            )
            return False
        key = self.format_combo.currentData()
        secrets = self.secrets_check.isChecked() and self.secrets_check.isEnabled()
        try:
            by_name = {str(m["name"]): m for m in self.database.get_models()}
            models = [by_name[n] for n in names if n in by_name]
            if key == "json":
                text = model_export.export_json(models, include_secrets=secrets)
            elif key == "sh":
                text = model_export.export_shell(models, include_secrets=secrets)
            else:
                text = model_export.export_presets(models)
            path.write_text(text, encoding="utf-8")
            if key == "sh":
                path.chmod(0o755 if secrets is False else 0o700)
            elif secrets:
                path.chmod(0o600)
        except ModelFormatError as exc:
            _show(self.export_models_status, str(exc), error=True)
            return False
        except OSError as exc:  # a full disk, no permission: said in words, not "[Errno 13] ..."
            _show(self.export_models_status, f"cannot write {path}: {exc.strerror or exc}", error=True)
            return False
        _show(self.export_models_status, f"{len(models)} model(s) exported to {path}")
        return True

    # ------------------------------------------------------------------------------------------------
    # import models

    def _build_import_models(self) -> QWidget:
        page = QWidget()
        self.import_models_path = _PathRow(
            save=False,
            caption="Import models",
            file_filter="Models (*.json *.ini *.sh *.txt);;All files (*)",
        )
        self.load_file_button = QPushButton("Read file")
        self.load_file_button.clicked.connect(self.read_models_file)
        self.import_models_path.browse_button.clicked.connect(
            lambda: self.import_models_path.path() is not None and self.read_models_file()
        )
        self.paste_edit = QPlainTextEdit()
        self.paste_edit.setPlaceholderText("…or paste llama-server command lines here, one per line")
        self.paste_edit.setMaximumHeight(self.paste_edit.fontMetrics().height() * 4 + 12)
        self.read_paste_button = QPushButton("Read pasted text")
        self.read_paste_button.clicked.connect(self.read_pasted)
        self.policy_buttons = QButtonGroup(self)
        policies = QHBoxLayout()
        policies.addWidget(QLabel("Names already in the library:"))
        for index, (key, label) in enumerate(_POLICIES):
            radio = QRadioButton(label.split(" (")[0].replace(" models whose name exists", ""))
            radio.setToolTip(label)
            radio.setProperty("policy", key)
            self.policy_buttons.addButton(radio, index)
            policies.addWidget(radio)
            if key == "skip":
                radio.setChecked(True)
        policies.addStretch(1)
        self.policy_buttons.idClicked.connect(lambda _id: self.update_preview())
        self.preview = QTableWidget(0, 3)
        self.preview.setHorizontalHeaderLabels(["Action", "Name in the library", "Model"])
        self.preview.verticalHeader().setVisible(False)
        self.preview.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.preview.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.preview.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.apply_button = QPushButton("Apply")
        self.apply_button.setEnabled(False)
        self.apply_button.clicked.connect(self.apply_models)
        self.import_models_status = _status_label()

        file_row = QHBoxLayout()
        file_row.addWidget(self.import_models_path, 1)
        file_row.addWidget(self.load_file_button)
        paste_row = QHBoxLayout()
        paste_row.addWidget(self.paste_edit, 1)
        paste_row.addWidget(self.read_paste_button, 0, Qt.AlignmentFlag.AlignTop)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.apply_button)
        layout = QVBoxLayout(page)
        layout.addWidget(QLabel("A llamadash JSON file, a presets INI or a shell script of command lines:"))
        layout.addLayout(file_row)
        layout.addLayout(paste_row)
        layout.addLayout(policies)
        layout.addWidget(self.preview, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.import_models_status)
        return page

    def policy(self) -> str:
        """The chosen merge policy: ``skip``, ``overwrite`` or ``keep_both``."""
        button = self.policy_buttons.checkedButton()
        return str(button.property("policy")) if button is not None else "skip"

    def set_policy(self, key: str) -> None:
        """Choose the merge policy by key and update the preview."""
        for button in self.policy_buttons.buttons():
            if button.property("policy") == key:
                button.setChecked(True)
        self.update_preview()

    def read_models_file(self) -> bool:
        """Read the chosen file and preview the import; false when it cannot be read."""
        path = self.import_models_path.path()
        if path is None:
            _show(self.import_models_status, "choose the file to read", error=True)
            return False
        return self._read(lambda: model_export.parse_models_file(path, self._build()), path.name)

    def read_pasted(self) -> bool:
        """Read the pasted command lines and preview the import; false when they cannot be read."""
        text = self.paste_edit.toPlainText()
        return self._read(lambda: model_export.parse_models_text(text, self._build()), "the pasted text")

    def _build(self) -> Any:
        """The configured llama-server's capabilities, or ``None``."""
        return self._capabilities() if self._capabilities is not None else None

    def _read(self, parse: Callable[[], list[dict[str, Any]]], source: str) -> bool:
        self._incoming, self.plan = [], []
        self.apply_button.setEnabled(False)
        try:
            self._incoming = parse()
        except ModelFormatError as exc:
            self.preview.setRowCount(0)
            _show(self.import_models_status, f"{source}: {exc}. Nothing was changed.", error=True)
            return False
        self.update_preview()
        return True

    def update_preview(self) -> None:
        """Plan the import of what was read by the chosen policy, and show the plan."""
        if not self._incoming:
            return
        try:
            self.plan = self.library.plan_import(self._incoming, self.policy())
        except Exception as exc:
            _show(self.import_models_status, f"cannot read the library: {exc}", error=True)
            return
        labels = {"add": "Add", "overwrite": "Overwrite", "skip": "Skip (exists)"}
        self.preview.setRowCount(len(self.plan))
        for row, item in enumerate(self.plan):
            for column, text in enumerate((labels[item.action], item.name, _model_file(item.model))):
                cell = QTableWidgetItem(text)
                if item.action == "skip":
                    cell.setForeground(self.palette().placeholderText())
                self.preview.setItem(row, column, cell)
        counts = {a: sum(1 for p in self.plan if p.action == a) for a in ("add", "overwrite", "skip")}
        _show(
            self.import_models_status,
            f"Preview: {counts['add']} to add, {counts['overwrite']} to overwrite, {counts['skip']} to skip. "
            "Nothing has changed yet.",
        )
        self.apply_button.setEnabled(any(p.action != "skip" for p in self.plan))

    def apply_models(self) -> dict[str, int] | None:
        """Carry out the previewed import; the counts, or ``None`` when it failed."""
        if not self.plan:
            return None
        try:
            counts = self.library.apply_import(self.plan)
        except Exception as exc:
            _show(self.import_models_status, str(exc), error=True)
            return None
        _show(
            self.import_models_status,
            f"Imported: {counts['add']} added, {counts['overwrite']} overwritten, {counts['skip']} skipped.",
        )
        self._incoming, self.plan = [], []
        self.apply_button.setEnabled(False)
        self._library_changed()
        return counts

    # ------------------------------------------------------------------------------------------------

    def _library_changed(self) -> None:
        self.reload_models()
        self.changed.emit()
        if self._on_changed is not None:
            self._on_changed()

    def done(self, result: int) -> None:  # QDialog's: the export thread ends first
        self.wait_for_export()
        super().done(result)
