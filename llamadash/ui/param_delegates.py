"""Editors for the parameter tree, chosen by the row's kind.

:class:`ParamDelegate` creates one editor per value cell from the row's :class:`Param` (or, for an
"other flag" of the build, its help entry):

========================  ===============================================================
kind                      editor
========================  ===============================================================
int                       :class:`IntEditor` (a spin box with the row's range; a text field
                          when the range does not fit a 32-bit spin box, e.g. ``seed``)
float                     :class:`FloatEditor` (a double spin box with the row's range)
enum                      :class:`ChoiceEditor` ("default (f16)", then the choices)
switch, bool_pair         :class:`ChoiceEditor` tri-state: default / on / off
int_or_keyword            :class:`KeywordEditor` (editable combo: ``auto``, ``all`` or N)
file, dir                 :class:`PathEditor` (text field + browse button)
secret                    :class:`SecretEditor` (masked text field + reveal button)
list, string, int_pair    :class:`TextEditor` (list items joined by the row's separator)
========================  ===============================================================

Editors that hold a value (combos, a stepped spin box) write it with ``EditRole``; editors that
hold text, and a spin box the user typed a number into, write it with
:data:`~llamadash.ui.param_model.TEXT_EDIT_ROLE`, and the model parses and checks it (an invalid
text is refused there, with its message: a spin box never stores a number other than the one typed).
"""

from __future__ import annotations

import math
from typing import Any, cast

from PySide6.QtCore import QAbstractItemModel, QLocale, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QSpinBox,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QWidget,
)

from llamadash.core.params import INT32_RANGE, HelpEntry, Param
from llamadash.ui.param_model import DESCRIPTOR_ROLE, TEXT_EDIT_ROLE, VALUE_ROLE

_Index = QModelIndex | QPersistentModelIndex
#: A finite range for float rows without limits (a spin box needs one).
_FLOAT_LIMIT = 1e12
_EDIT_ROLE = Qt.ItemDataRole.EditRole.value


class _TypedNumber:
    """What the spin boxes share: the number the user typed is the number that is checked and stored.

    Qt's own spin box validator silently drops a keystroke that would leave the range (typing
    ``70000`` into 1..65535 leaves ``7000``) and clamps what it cannot show. Here any text may be
    typed: it goes to the model as text (:data:`TEXT_EDIT_ROLE`), which parses it with the row's
    ``from_text`` and refuses what does not fit, with the reason, storing nothing. The arrow keys
    and the wheel step within the range as usual, and a stepped value goes as a number. An editor
    closed on the number it showed first hands back the value it was given, unchanged (even one
    outside its range, which it cannot show).
    """

    _param: Param
    #: What the user last typed (the line edit's whole text), until the value is set or stepped.
    _typed: str | None = None
    #: The row's value when the editor was filled, and the number the box showed for it.
    _original: Any = None
    _shown: Any = None

    def _track_typing(self) -> None:
        box = cast(QAbstractSpinBox, self)
        # Numbers in llama-server's own notation ("0.5"), whatever the desktop's language.
        box.setLocale(QLocale.c())
        box.setToolTip(f"{self._param.describe_type().capitalize()}; Return saves it, Esc cancels")
        box.lineEdit().textEdited.connect(self._on_text_edited)

    def _on_text_edited(self, text: str) -> None:
        self._typed = text  # only what the user types: Qt's own rewrites of the text don't count

    def _forget_edits(self, original: Any) -> None:
        self._original, self._shown, self._typed = original, self._number(), None

    def validate(self, text: str, pos: int, /) -> tuple[QValidator.State, str, int]:
        # Never "Invalid": an out-of-range or mistyped number must reach the model to be refused
        # with its reason; "Intermediate" keeps the keystroke and leaves the value as it was.
        state, text, pos = cast(Any, super()).validate(text, pos)
        if state == QValidator.State.Invalid:
            state = QValidator.State.Intermediate
        return state, text, pos

    def stepBy(self, steps: int, /) -> None:
        self._typed = None  # a step starts from the last good value and stays in the range
        cast(Any, super()).stepBy(steps)

    @property
    def role(self) -> int:
        return TEXT_EDIT_ROLE if self._typed is not None else _EDIT_ROLE

    def typed_text(self) -> str | None:
        """The number as typed, without the unit; ``None`` when nothing was typed."""
        if self._typed is None:
            return None
        box = cast(QAbstractSpinBox, self)
        text = self._typed.strip()
        prefix, suffix = cast(Any, box).prefix().strip(), cast(Any, box).suffix().strip()
        if prefix and text.startswith(prefix):
            text = text[len(prefix) :]
        if suffix and text.endswith(suffix):
            text = text[: -len(suffix)]
        return text.strip()

    def _number(self) -> Any:
        raise NotImplementedError

    def result(self) -> Any:
        typed = self.typed_text()
        if typed is not None:
            return typed
        number = self._number()
        return number if number != self._shown else self._original


class IntEditor(_TypedNumber, QSpinBox):
    """A whole number within the row's range; an unset row starts at its default."""

    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._param = param
        self.setRange(*param.int_range)
        if param.unit:
            self.setSuffix(f" {param.unit}")
        self.setAccelerated(True)
        self._track_typing()

    def set_value(self, value: Any) -> None:
        start = value if isinstance(value, int) else self._param.default
        if not isinstance(start, int) or isinstance(start, bool):
            start = 0
        # a stored number outside the box (written by the CLI, say) is shown at the nearest end;
        # it is kept unless the user types or steps (and a 64-bit one would overflow setValue)
        self.setValue(max(self.minimum(), min(start, self.maximum())))
        self._forget_edits(value)

    def _number(self) -> Any:
        return self.value()


class FloatEditor(_TypedNumber, QDoubleSpinBox):
    """A number within the row's range, shown without trailing zeros."""

    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._param = param
        self.setDecimals(6)
        self.setRange(
            param.min if param.min is not None else -_FLOAT_LIMIT,
            param.max if param.max is not None else _FLOAT_LIMIT,
        )
        # probabilities move in hundredths, everything else in tenths
        self.setSingleStep(0.01 if param.max is not None and param.max <= 1 else 0.1)
        if param.unit:
            self.setSuffix(f" {param.unit}")
        self._track_typing()

    def textFromValue(self, value: float) -> str:
        text = f"{value:.6f}".rstrip("0")
        return text + "0" if text.endswith(".") else text

    def set_value(self, value: Any) -> None:
        start = (
            value if isinstance(value, (int, float)) and not isinstance(value, bool) else self._param.default
        )
        number = float(start) if isinstance(start, (int, float)) and math.isfinite(start) else 0.0
        self.setValue(max(self.minimum(), min(number, self.maximum())))
        self._forget_edits(value)

    def _number(self) -> Any:
        return round(self.value(), self.decimals())


class ChoiceEditor(QComboBox):
    """A fixed list: enum choices, or the tri-state default / on / off of a boolean.

    The first entry is always "default (...)", which unsets the row.
    """

    role = _EDIT_ROLE

    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        default = param.default_text or (param.to_text(param.default) if param.default is not None else "")
        if param.is_bool:
            default = "on" if param.default else "off"
            self.addItem(f"default ({default})", None)
            self.addItem("on", True)
            if param.kind == "bool_pair":  # a plain switch has no "off" flag: off *is* the default
                self.addItem("off", False)
        else:
            self.addItem(f"default ({default})" if default else "default", None)
            for choice in param.choices:
                self.addItem(choice, choice)

    def set_value(self, value: Any) -> None:
        for i in range(self.count()):
            if self.itemData(i) == value and type(self.itemData(i)) is type(value):
                self.setCurrentIndex(i)
                return
        self.setCurrentIndex(0)

    def result(self) -> Any:
        return self.currentData()


class KeywordEditor(QComboBox):
    """``auto``, ``all`` (the row's keywords) or a whole number typed in."""

    role = TEXT_EDIT_ROLE

    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setEditable(True)
        self.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.addItems(list(param.keywords))
        line_edit = self.lineEdit()
        assert line_edit is not None  # an editable combo has one
        line_edit.setPlaceholderText(" / ".join(param.keywords) + " / a number")

    def set_value(self, value: Any) -> None:
        self.setCurrentText("" if value is None else str(value))

    def result(self) -> Any:
        return self.currentText()


class TextEditor(QLineEdit):
    """Free text: strings, lists (items joined by the separator), ``START END`` pairs."""

    role = TEXT_EDIT_ROLE

    def __init__(
        self, param: Param | None, parent: QWidget | None = None, *, hint: str | None = None
    ) -> None:
        super().__init__(parent)
        self._param = param
        self.setClearButtonEnabled(True)
        if param is not None and param.kind == "list":
            self.setPlaceholderText(f"items separated by {param.separator or ','!r}")
        elif param is not None and param.kind == "int_pair":
            self.setPlaceholderText("START END")
        elif param is not None and param.kind == "int":
            self.setPlaceholderText(param.describe_type())
        elif hint:
            self.setPlaceholderText(hint)

    def set_value(self, value: Any) -> None:
        if value is None:
            self.setText("")
        elif self._param is not None:
            self.setText(self._param.to_text(value))
        else:
            self.setText(", ".join(value) if isinstance(value, list) else str(value))

    def result(self) -> Any:
        return self.text()


class _LineWithButton(QWidget):
    """A line edit with a tool button beside it; the line edit takes the focus."""

    role = TEXT_EDIT_ROLE
    #: The user finished with the value (Return, or a choice in the file dialog).
    committed = Signal()

    def __init__(self, param: Param, button_text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._param = param
        self.line_edit = QLineEdit(self)
        self.button = QToolButton(self)
        self.button.setText(button_text)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.line_edit, 1)
        layout.addWidget(self.button)
        self.setFocusProxy(self.line_edit)
        self.setAutoFillBackground(True)  # the cell's text must not show through
        self.line_edit.returnPressed.connect(self.committed)

    def set_value(self, value: Any) -> None:
        self.line_edit.setText("" if value is None else self._param.to_text(value))

    def result(self) -> Any:
        return self.line_edit.text()


class PathEditor(_LineWithButton):
    """A file or directory path: type it or pick it with the browse button."""

    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(param, "\u2026", parent)
        self.directory = param.kind == "dir"
        self.button.setToolTip("Choose a directory" if self.directory else "Choose a file")
        self.line_edit.setPlaceholderText("a directory" if self.directory else "a file")
        self.button.clicked.connect(self.browse)

    def browse(self) -> None:
        start = self.line_edit.text()
        if self.directory:
            chosen = QFileDialog.getExistingDirectory(self, f"Choose {self._param.column}", start)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, f"Choose {self._param.column}", start)
        if chosen:
            self.line_edit.setText(chosen)
            self.committed.emit()


class SecretEditor(_LineWithButton):
    """A masked text field; the button reveals what was typed while it is pressed down."""

    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(param, "Show", parent)
        self.line_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.button.setCheckable(True)
        self.button.setToolTip("Show or hide the value")
        self.button.toggled.connect(self.reveal)
        if param.kind == "list":
            self.line_edit.setPlaceholderText(f"values separated by {param.separator or ','!r}")

    def reveal(self, shown: bool) -> None:
        mode = QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password
        self.line_edit.setEchoMode(mode)
        self.button.setText("Hide" if shown else "Show")


class FlagSwitchEditor(QComboBox):
    """An "other flag" that takes no value: not set, or on."""

    role = _EDIT_ROLE

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.addItem("not set", None)
        self.addItem("on", True)

    def set_value(self, value: Any) -> None:
        self.setCurrentIndex(1 if value is True else 0)

    def result(self) -> Any:
        return self.currentData()


def editor_class(descriptor: Param | HelpEntry | None) -> type[QWidget]:
    """The editor type for a row: by the parameter's kind, or by whether a flag takes a value."""
    if not isinstance(descriptor, Param):
        if isinstance(descriptor, HelpEntry) and not descriptor.takes_value:
            return FlagSwitchEditor
        return TextEditor
    if descriptor.secret:
        return SecretEditor
    kind = descriptor.kind
    if kind == "int":
        low, high = descriptor.int_range
        fits = INT32_RANGE[0] <= low and high <= INT32_RANGE[1]  # a QSpinBox holds a C int
        return IntEditor if fits else TextEditor
    return {
        "float": FloatEditor,
        "enum": ChoiceEditor,
        "switch": ChoiceEditor,
        "bool_pair": ChoiceEditor,
        "int_or_keyword": KeywordEditor,
        "file": PathEditor,
        "dir": PathEditor,
    }.get(kind, TextEditor)


class ParamDelegate(QStyledItemDelegate):
    """Creates the editor of a value cell from its row's kind and moves values in and out."""

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: _Index) -> QWidget:
        descriptor = index.data(DESCRIPTOR_ROLE)
        cls = editor_class(descriptor)
        if cls is FlagSwitchEditor:
            editor: QWidget = FlagSwitchEditor(parent)
        elif cls is TextEditor:
            hint = descriptor.value_hint if isinstance(descriptor, HelpEntry) else None
            editor = TextEditor(descriptor if isinstance(descriptor, Param) else None, parent, hint=hint)
        else:
            editor = cast(Any, cls)(descriptor, parent)  # every other editor takes (param, parent)
        if isinstance(editor, QComboBox) and not editor.isEditable():
            # a pick from a fixed list is the whole edit: store it at once
            editor.activated.connect(lambda _i, e=editor: self._finish(e))
        if isinstance(editor, _LineWithButton):
            editor.committed.connect(lambda e=editor: self._finish(e))
        return editor

    def initStyleOption(self, option: QStyleOptionViewItem, index: _Index) -> None:
        super().initStyleOption(option, index)
        descriptor = index.data(DESCRIPTOR_ROLE)
        if isinstance(descriptor, Param) and (descriptor.kind in ("file", "dir") or descriptor.item):
            # a long path is recognised by its end: keep the file name visible
            option.textElideMode = Qt.TextElideMode.ElideMiddle

    def _finish(self, editor: QWidget) -> None:
        self.commitData.emit(editor)
        self.closeEditor.emit(editor, QStyledItemDelegate.EndEditHint.NoHint)

    def setEditorData(self, editor: QWidget, index: _Index) -> None:
        if hasattr(editor, "set_value"):
            editor.set_value(index.data(VALUE_ROLE))
        else:
            super().setEditorData(editor, index)

    def setModelData(self, editor: QWidget, model: QAbstractItemModel, index: _Index) -> None:
        if hasattr(editor, "result"):
            # a spin box's role depends on whether a number was typed (text) or stepped (value)
            value, role = editor.result(), getattr(editor, "role", _EDIT_ROLE)
            model.setData(index, value, role)
        else:
            super().setModelData(editor, model, index)

    def updateEditorGeometry(self, editor: QWidget, option: QStyleOptionViewItem, index: _Index) -> None:
        rect = option.rect
        # path and secret editors need room for their button: never narrower than 16 em
        width = max(rect.width(), editor.fontMetrics().horizontalAdvance("M") * 16)
        editor.setGeometry(rect.x(), rect.y(), width, rect.height())
