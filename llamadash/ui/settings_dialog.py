"""The settings dialog, built from the settings table (:data:`llamadash.core.settings.SPECS`).

Its sections are the settings' ``group`` declarations, in the order the settings are declared.

The dialog only edits values: it hands them to a ``save`` function (the window's, which stores them
in the database) and stays open with the reason in red when that refuses them. Changing the theme
previews it at once (``themePreviewRequested``); Cancel puts the previous theme back.

Number fields show each setting's unit (``SettingSpec.unit``) and take any number typed: a value outside the
setting's limits is refused with a message when OK is pressed (and shown as it is typed), never
clamped or cut short by the spin box.

The llama-server field shows which build the chosen binary is. Asking the binary (``--help`` and
``--version``, cached per file) takes up to a second on the first run, so it happens on a worker
thread and the answer comes back by signal.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSize, Qt, Signal
from PySide6.QtGui import QFontMetrics, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from llamadash.core import settings as settings_mod
from llamadash.core.settings import Settings, SettingsError, SettingSpec
from llamadash.ui.icons import status_color
from llamadash.ui.theme import error_style_sheet

__all__ = ["SettingsDialog", "describe_binary"]


def _groups() -> list[tuple[str, list[str]]]:
    """The dialog's sections in the order of the settings, each with its settings' names."""
    groups: dict[str, list[str]] = {}
    for item in settings_mod.SPECS:
        groups.setdefault(item.group, []).append(item.name)
    return list(groups.items())


_THEME_TEXT = {"system": "Follow the desktop", "light": "Light", "dark": "Dark"}
#: How far a number field lets a person type. Far beyond every setting's limits, so that what is
#: typed stays as typed (a spin box drops a keystroke past its range) and the limits are checked,
#: with a message, on OK.
_TYPING_LIMIT = 999_999


def _limit_typing(box: QSpinBox | QDoubleSpinBox, item: SettingSpec) -> None:
    box.setRange(-_TYPING_LIMIT, _TYPING_LIMIT)
    box.setSuffix(f" {item.unit}")
    box.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToPreviousValue)


class _Bounded:
    """The arrows of a number field stay within the setting's limits; typing does not (OK checks)."""

    low: float
    high: float

    def stepBy(self, steps: int) -> None:
        box: Any = self
        box.setValue(min(self.high, max(self.low, box.value() + steps * box.singleStep())))
        box.selectAll()

    def stepEnabled(self) -> QAbstractSpinBox.StepEnabledFlag:
        value = self.value()  # type: ignore[attr-defined]
        flags = QAbstractSpinBox.StepEnabledFlag.StepNone
        if value < self.high:
            flags |= QAbstractSpinBox.StepEnabledFlag.StepUpEnabled
        if value > self.low:
            flags |= QAbstractSpinBox.StepEnabledFlag.StepDownEnabled
        return flags


class _IntField(_Bounded, QSpinBox):
    """A whole-number setting."""

    def __init__(self, item: SettingSpec) -> None:
        super().__init__()
        self.low, self.high = int(item.minimum or 0), int(item.maximum or 0)
        _limit_typing(self, item)


class _FloatField(_Bounded, QDoubleSpinBox):
    """A number setting, shown without trailing zeros (``1 s``, ``2.5 s``); up to three decimals."""

    def __init__(self, item: SettingSpec) -> None:
        super().__init__()
        self.low, self.high = float(item.minimum or 0), float(item.maximum or 0)
        self.setDecimals(3)
        self.setSingleStep(0.25)
        _limit_typing(self, item)

    def textFromValue(self, value: float) -> str:
        text = super().textFromValue(value)
        point = self.locale().decimalPoint()
        return text.rstrip("0").rstrip(point) if point in text else text


#: Said under a "not found" reason: what a person at the window can do about it.
NOT_FOUND_HINT = (
    "Choose your llama-server with Browse…, or install llama.cpp so that llama-server is on PATH"
    " and press Auto-detect."
)


def _elide_long_words(text: str, metrics: QFontMetrics, width: int) -> str:
    """Middle-elide each word wider than ``width`` (a long path); the rest wraps at spaces."""
    words = text.split(" ")
    return " ".join(
        metrics.elidedText(word, Qt.TextElideMode.ElideMiddle, width)
        if metrics.horizontalAdvance(word) > width
        else word
        for word in words
    )


def describe_binary(path: str, cache_dir: Path | None = None) -> tuple[bool, str, str]:
    """Find and ask a llama-server binary what it is.

    Args:
        path: The configured path; empty finds one the way llamadash does at run time.
        cache_dir: Where the capability probe caches its answer.

    Returns:
        ``(ok, binary path, text for the user)``: the build label and version, or why not.
    """
    from llamadash.core.llama_server import LlamaServerNotFound, find_llama_server
    from llamadash.core.params import CapabilityError, probe_binary

    try:
        located = find_llama_server(path or None)
    except LlamaServerNotFound as exc:
        return False, "", str(exc)
    try:
        caps = probe_binary(located.path, label=located.label, cache_dir=cache_dir, timeout=10)
    except CapabilityError as exc:
        return False, str(located.path), str(exc)
    version = caps.version_text.strip().splitlines()[0] if caps.version_text.strip() else ""
    found_by = "" if located.source == "configured" else f" (found by {located.source})"
    text = caps.label + (f" — {version}" if version and version not in caps.label else "") + found_by
    return True, str(located.path), text


class _WrappingLabel(QLabel):
    """A word-wrapped label that asks for the height its text needs at the width it has.

    A plain QLabel guesses its wrapped height for a narrower width than it gets, and a dialog is not
    made taller for it: a long reason would be cut off at the bottom, or a short one left with a gap.
    """

    def _fitted(self, hint: QSize) -> QSize:
        if self.wordWrap() and self.width() > 0:
            margins = self.contentsMargins()
            hint.setHeight(self.heightForWidth(self.width()) or hint.height())
            hint.setHeight(max(hint.height(), self.fontMetrics().height() + margins.top() + margins.bottom()))
        return hint

    def sizeHint(self) -> QSize:
        return self._fitted(super().sizeHint())

    def minimumSizeHint(self) -> QSize:
        return self._fitted(super().minimumSizeHint())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width():
            self.updateGeometry()  # another width, another height

    def setText(self, text: str) -> None:
        super().setText(text)
        self.updateGeometry()


class _Prober(QObject):
    """Carries a worker thread's answer back to the GUI thread (a queued signal)."""

    done = Signal(int, bool, str, str)  # (request number, ok, binary path, text)


class SettingsDialog(QDialog):
    """Edit every setting.

    Args:
        current: The settings now in force.
        save: Validates and stores settings, returning them normalised; raises
            :class:`~llamadash.core.settings.SettingsError` to refuse them.
        cache_dir: The capability probe's cache folder.
        parent: The parent window.
    """

    themePreviewRequested = Signal(str, bool)
    """The theme fields changed: (theme preference, charts follow the theme). Apply it now."""

    def __init__(
        self,
        current: Settings,
        save: Callable[[Settings], Settings],
        *,
        cache_dir: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setObjectName("settingsDialog")
        self._initial = current
        self._save = save
        self._cache_dir = cache_dir
        self.saved: Settings | None = None
        self.editors: dict[str, QWidget] = {}
        self._probe_serial = 0
        self._prober = _Prober()
        self._prober.done.connect(self._on_probe_done)

        layout = QVBoxLayout(self)
        # two columns of groups: in one, the dialog was taller (about 930 px) than a 1280x800 screen
        columns = QHBoxLayout()
        layout.addLayout(columns)
        column_layouts = [QVBoxLayout(), QVBoxLayout()]
        for column in column_layouts:
            columns.addLayout(column, 1)
        groups = list(_groups())
        half = sum(len(names) + 1 for _title, names in groups) / 2
        rows_so_far = 0
        for title, names in groups:
            column = column_layouts[0 if rows_so_far < half else 1]
            rows_so_far += len(names) + 1
            box = QGroupBox(title)
            form = QFormLayout(box)
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
            for name in names:
                item = settings_mod.spec(name)
                editor = self._make_editor(item)
                self.editors[name] = editor
                if item.kind == "bool":
                    form.addRow(editor)
                else:
                    label = QLabel(item.title + ":")
                    label.setToolTip(item.help)
                    form.addRow(label, self._with_buttons(item, editor))
                if name == "llama_server_path":
                    self.binary_info = _WrappingLabel()
                    self.binary_info.setObjectName("binaryInfo")
                    self.binary_info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
                    # the whole reason wraps; only a path longer than the line is shortened
                    self.binary_info.setWordWrap(True)
                    self.binary_info.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
                    form.addRow("", self.binary_info)
            column.addWidget(box)
        for column in column_layouts:
            column.addStretch(1)

        self.error_label = QLabel()
        self.error_label.setObjectName("settingsError")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(error_style_sheet() + " font-weight: 600;")
        self.error_label.hide()
        self._error_name: str | None = None
        layout.addWidget(self.error_label)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(
            lambda: self.set_values(Settings())
        )
        layout.addWidget(self.buttons)

        self.set_values(current)
        self._connect_preview()
        self.probe_binary()
        self.setMinimumWidth(560)

    # -- editors ----------------------------------------------------------------------------------

    def _make_editor(self, item: SettingSpec) -> QWidget:
        editor: QWidget
        if item.kind == "bool":
            editor = QCheckBox(item.title)
        elif item.kind in ("int", "float"):
            number: _IntField | _FloatField = _IntField(item) if item.kind == "int" else _FloatField(item)
            number.valueChanged.connect(lambda _value, name=item.name: self._check_typed(name))
            editor = number
        elif item.kind == "choice":
            combo = QComboBox()
            for choice in item.choices:
                combo.addItem(_THEME_TEXT.get(choice, choice), choice)
            editor = combo
        else:
            line = QLineEdit()
            line.setClearButtonEnabled(True)
            placeholders = {
                "file": "Find automatically",
                "address": "Off (e.g. 9464, or 0.0.0.0:9464 with a token)",
                "secret": "None",
            }
            line.setPlaceholderText(placeholders.get(item.kind, "Not set (the data folder's disk)"))
            if item.kind == "secret":
                line.setEchoMode(QLineEdit.EchoMode.PasswordEchoOnEdit)
            editor = line
        editor.setObjectName(item.name)
        tip = item.help
        if item.kind in ("int", "float"):
            tip += f" Allowed: {item.minimum:g} to {item.maximum:g} {item.unit}."
        editor.setToolTip(tip)
        return editor

    def _with_buttons(self, item: SettingSpec, editor: QWidget) -> QWidget:
        if item.kind not in ("file", "dir"):
            return editor
        assert isinstance(editor, QLineEdit)
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        editor.setMinimumWidth(260)  # a path must stay readable beside its buttons
        layout.addWidget(editor, 1)
        browse = QPushButton("Browse…")
        browse.setObjectName(f"{item.name}_browse")
        browse.clicked.connect(lambda: self._browse(item, editor))
        layout.addWidget(browse)
        if item.kind == "file":
            detect = QPushButton("Auto-detect")
            detect.setObjectName("auto_detect")
            detect.setToolTip("Find llama-server on PATH, in the usual places and in Python packages")
            detect.clicked.connect(self.auto_detect)
            layout.addWidget(detect)
            editor.editingFinished.connect(self.probe_binary)
        return row

    def _browse(self, item: SettingSpec, editor: QLineEdit) -> None:
        start = editor.text() or str(Path.home())
        if item.kind == "dir":
            chosen = QFileDialog.getExistingDirectory(self, item.title, start)
        else:
            chosen, _filter = QFileDialog.getOpenFileName(self, item.title, start)
        if chosen:
            editor.setText(chosen)
            if item.kind == "file":
                self.probe_binary()

    def set_values(self, values: Settings) -> None:
        """Show these values in the editors."""
        for name, editor in self.editors.items():
            value = getattr(values, name)
            if isinstance(editor, QCheckBox):
                editor.setChecked(bool(value))
            elif isinstance(editor, (QDoubleSpinBox, QSpinBox)):
                editor.setValue(value)
            elif isinstance(editor, QComboBox):
                editor.setCurrentIndex(max(0, editor.findData(value)))
            elif isinstance(editor, QLineEdit):
                editor.setText(str(value))

    def values(self) -> Settings:
        """The settings as the editors show them (not validated)."""
        changes: dict[str, Any] = {}
        for name, editor in self.editors.items():
            if isinstance(editor, QCheckBox):
                changes[name] = editor.isChecked()
            elif isinstance(editor, QSpinBox):
                changes[name] = editor.value()
            elif isinstance(editor, QDoubleSpinBox):
                changes[name] = round(editor.value(), editor.decimals())
            elif isinstance(editor, QComboBox):
                changes[name] = editor.currentData()
            elif isinstance(editor, QLineEdit):
                changes[name] = editor.text().strip()
        return self._initial.replace(**changes)

    # -- theme preview ----------------------------------------------------------------------------

    def _connect_preview(self) -> None:
        theme = self.editors["theme_preference"]
        follow = self.editors["chart_theme_follows_app"]
        assert isinstance(theme, QComboBox) and isinstance(follow, QCheckBox)
        theme.currentIndexChanged.connect(self._preview)
        follow.toggled.connect(self._preview)

    def _preview(self, *_args: Any) -> None:
        values = self.values()
        self.themePreviewRequested.emit(values.theme_preference, values.chart_theme_follows_app)

    # -- llama-server build -----------------------------------------------------------------------

    def probe_binary(self) -> None:
        """Ask the binary in the field which build it is (on a worker thread)."""
        editor = self.editors["llama_server_path"]
        assert isinstance(editor, QLineEdit)
        self._start_probe(editor.text().strip(), fill_path=False)

    def auto_detect(self) -> None:
        """Find llama-server as llamadash would with no path set, and put it in the field."""
        self._start_probe("", fill_path=True)

    def _start_probe(self, path: str, *, fill_path: bool) -> None:
        self._probe_serial += 1
        serial = self._probe_serial
        self._fill_path = fill_path
        self.binary_info.setText("<i>Checking the llama-server build…</i>")
        prober, cache_dir = self._prober, self._cache_dir

        def work() -> None:
            try:
                ok, binary, text = describe_binary(path, cache_dir)
            except Exception as exc:
                ok, binary, text = False, "", f"could not check the binary: {exc}"
            prober.done.emit(serial, ok, binary, text)

        threading.Thread(target=work, name="llamadash-probe", daemon=True).start()

    def _on_probe_done(self, serial: int, ok: bool, binary: str, text: str) -> None:
        if serial != self._probe_serial:
            return  # an older question answered late
        if ok and self._fill_path:
            editor = self.editors["llama_server_path"]
            assert isinstance(editor, QLineEdit)
            editor.setText(binary)
        colour = status_color("running" if ok else "error").name()
        mark = "✔" if ok else "✖"
        # The build (the whole --version text is in the tooltip), or all of what is wrong: wrapped,
        # with only a path too long for a line shortened in the middle.
        short = text.split(" — ")[0] if ok else text
        found_by = text[text.rfind(" (found by") :] if ok and " (found by" in text else ""
        if found_by and found_by not in short:
            short += found_by
        short = _elide_long_words(short, self.binary_info.fontMetrics(), max(240, self.width() - 220))
        shown = f"<span style='color:{colour}'>{mark}</span> {html.escape(short)}"
        if not ok and not binary:  # nothing found at all (not a binary that failed to answer)
            shown += f"<br>{html.escape(NOT_FOUND_HINT)}"
        self.binary_info.setText(shown)
        self.binary_info.setToolTip(text)
        self.binary_info.setProperty("ok", ok)

    def focus_binary(self) -> None:
        """Put the cursor in the llama-server field (the window opens Settings for a missing binary)."""
        editor = self.editors["llama_server_path"]
        editor.setFocus()
        if isinstance(editor, QLineEdit):
            editor.selectAll()

    # -- accept -------------------------------------------------------------------------------------

    def typed_problem(self, name: str) -> SettingsError | None:
        """Why the number typed in the field ``name`` is refused, or ``None`` (other fields: ``None``)."""
        editor = self.editors[name]
        if not isinstance(editor, (QSpinBox, QDoubleSpinBox)):
            return None
        item = settings_mod.spec(name)
        if not editor.hasAcceptableInput():
            typed = editor.cleanText().strip()
            what = f"{typed!r} is not a number" if typed else "is empty"
            return SettingsError(
                name, f"{item.title} {what}; enter {item.minimum:g} to {item.maximum:g} {item.unit}"
            )
        try:
            settings_mod.check_value(name, getattr(self.values(), name))
        except SettingsError as exc:
            return SettingsError(name, f"{exc.message} {item.unit}")
        return None

    def _check_typed(self, name: str) -> None:
        """Say at once when a number is out of range; take the message back when it is fixed."""
        problem = self.typed_problem(name)
        if problem is not None:
            self.show_error(problem.message, name, focus=False)
        elif self._error_name == name:
            self.error_label.hide()
            self._error_name = None

    def accept(self) -> None:
        """Save the values; when they are refused, say why and stay open (nothing is saved)."""
        for name in self.editors:
            problem = self.typed_problem(name)
            if problem is not None:
                self.show_error(problem.message, name)
                return
        try:
            self.saved = self._save(self.values())
        except SettingsError as exc:
            self.show_error(exc.message, exc.name)
            return
        self.error_label.hide()
        self._error_name = None
        super().accept()

    def reject(self) -> None:
        """Close without saving and put the theme that was in force back."""
        if self.values().theme_preference != self._initial.theme_preference or (
            self.values().chart_theme_follows_app != self._initial.chart_theme_follows_app
        ):
            self.themePreviewRequested.emit(
                self._initial.theme_preference, self._initial.chart_theme_follows_app
            )
        super().reject()

    def show_error(self, message: str, name: str | None = None, *, focus: bool = True) -> None:
        """Show why the values were refused and (``focus``) put the cursor in the faulty field."""
        self.error_label.setText(message)
        self.error_label.show()
        self._error_name = name
        editor = self.editors.get(name or "")
        if editor is not None and focus:
            editor.setFocus()
            if isinstance(editor, (QLineEdit, QAbstractSpinBox)):
                editor.selectAll()
