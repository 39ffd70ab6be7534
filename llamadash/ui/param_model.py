"""The parameter tree: a ``QAbstractItemModel`` generated from the schema descriptor.

One group node per schema section, one row per parameter, and (given a build's capabilities) a
last group "Other flags of this build" for the options no schema row covers; their values live in
the model's ``custom_params``. Columns: parameter (the schema's human label, "Context size"; the
column name and every flag are in the tooltip and found by the search), value, default, flag.

The model holds the configuration being edited. An edit is checked with the parameter's
``coerce``/``from_text`` first (an invalid value is refused with its message and nothing is
saved; a whole number must also fit the 32 bits llama-server reads), then handed to the
``commit`` callable (the editor's save), then recorded on a ``QUndoStack`` so it can be undone.
Every edit reports its outcome: ``editAccepted`` (stored, or nothing to change) or
``editRejected`` (with the reason). An undo or redo that ``commit`` refuses is reported the same
way and leaves the undo stack where it was, so it can be tried again. The model never touches the
database itself.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QFont, QGuiApplication, QPalette, QUndoCommand, QUndoStack
from PySide6.QtWidgets import QApplication, QStyle

from llamadash.core.params import (
    Capabilities,
    CommandError,
    HelpEntry,
    Issue,
    Param,
    ParamValueError,
    Schema,
    parse_bool,
)
from llamadash.core.params.command import build_label, custom_params_dict, expressible, unsupported_message
from llamadash.core.params.schema import load_schema

_Index = QModelIndex | QPersistentModelIndex

#: The title of the group that lists the build's flags no schema row covers.
OTHER_FLAGS_GROUP = "Other flags of this build"
COLUMNS = ("Parameter", "Value", "Default", "Flag")
PARAMETER_COLUMN, VALUE_COLUMN, DEFAULT_COLUMN, FLAG_COLUMN = range(4)

_USER = Qt.ItemDataRole.UserRole.value
#: The row's :class:`Param`, or its :class:`HelpEntry` for an "other flag" (``None`` on groups).
DESCRIPTOR_ROLE = _USER + 1
#: The row's key: the column name, or the flag of an "other flag" (``None`` on groups).
KEY_ROLE = _USER + 2
#: The row's canonical value (``None`` when unset).
VALUE_ROLE = _USER + 3
#: True when the value is set and differs from llama-server's default.
CHANGED_ROLE = _USER + 4
#: Why the configured build cannot take this row, or ``None``.
UNSUPPORTED_ROLE = _USER + 5
#: The text the search box matches: label, name, flags and help.
SEARCH_ROLE = _USER + 6
#: ``setData`` with this role parses text typed by a person (``from_text``) instead of a value.
TEXT_EDIT_ROLE = _USER + 7
#: The row's validation issues (list of :class:`Issue`).
ISSUES_ROLE = _USER + 8
#: True on group nodes.
GROUP_ROLE = _USER + 9

_MASK = "\u2022" * 8


def model_value_text(value: int | float) -> str:
    """A number from a model's header as the Default column says it: ``32768`` -> ``32,768``."""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:g}"
    return f"{int(value):,}"


def _check_int32(param: Param, value: Any) -> None:
    """Refuse a whole number of a row without its own limit that llama-server could not read."""
    if param.kind == "int_pair" and isinstance(value, list):
        for part in value:
            _check_int32_number(param, part)
    elif param.kind in ("int", "int_or_keyword"):
        _check_int32_number(param, value)


def _check_int32_number(param: Param, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        return
    # The numbers llama-server's argument parser reads (``std::stoi``) are 32-bit: a row without its
    # own limit on a side is held to these, so a number llama-server would reject is refused here.
    low, high = param.int_range
    if value < low:
        raise ParamValueError(param.column, f"{value} is below the minimum {low}")
    if value > high:
        raise ParamValueError(param.column, f"{value} is above the maximum {high}")


class CommitRefused(Exception):
    """Raised by a ``commit`` callable that could not store a change; the message is shown."""


@dataclass
class _Row:
    """One parameter row: a schema parameter, or a flag of the build that no parameter covers."""

    key: str
    param: Param | None = None
    entry: HelpEntry | None = None
    unsupported: str | None = None

    @property
    def is_extra(self) -> bool:
        return self.param is None


@dataclass
class _Group:
    title: str
    rows: list[_Row]


class _SetValue(QUndoCommand):
    """One change of one row, undoable; it knows which of its two values the store holds.

    When pushed, the change is already committed (``push()`` calls ``redo()``: nothing to do).
    """

    def __init__(self, model: ParamTreeModel, key: str, old: Any, new: Any) -> None:
        super().__init__(f"set {key}")
        self._model, self._key, self._old, self._new = model, key, old, new
        self._holds_new = True

    def store(self, new: bool) -> bool:
        """Commit the new (or the old) value unless the store holds it; False when refused."""
        if self._holds_new == new:
            return True
        doing = "redo" if new else "undo"
        if not self._model._apply(self._key, self._new if new else self._old, doing=doing):
            return False
        self._holds_new = new
        return True

    def redo(self) -> None:
        self.store(True)

    def undo(self) -> None:
        self.store(False)


class _UndoStack(QUndoStack):
    """A ``QUndoStack`` whose undo and redo move only when the store took the change.

    ``QUndoStack`` moves its index whatever the command did; a refused undo would use the step
    up while the value stays. Here the command commits first, and the stack moves after it
    succeeded, so a refused undo can be tried again (its reason went out as ``editRejected``).
    Call these Python methods (the editor's Undo button and Ctrl+Z do); C++ callers such as
    ``createUndoAction`` bypass the guard.
    """

    def undo(self) -> None:
        if self.canUndo():
            command = self.command(self.index() - 1)
            if isinstance(command, _SetValue) and not command.store(False):
                return
        super().undo()

    def redo(self) -> None:
        if self.canRedo():
            command = self.command(self.index())
            if isinstance(command, _SetValue) and not command.store(True):
                return
        super().redo()


class ParamTreeModel(QAbstractItemModel):
    """The schema as a tree of editable rows over one configuration.

    Args:
        config: the model being edited (column -> value, ``custom_params``); meta columns ignored.
        capabilities: the configured llama-server build, or ``None`` (rows are not greyed then and
            there is no "Other flags of this build" group beyond flags already stored).
        commit: called with ``{column: value}`` (or ``{"custom_params": {...}}``) for every change,
            undo included, before the model shows it; it raises :class:`CommitRefused` to refuse.
        schema: the schema to show (the shipped one by default).
    """

    #: A change was stored: (key, new value). Emitted for edits, resets and undo.
    valueChanged = Signal(str, object)
    #: An edit was refused and nothing was stored: (key, message for the user). Also a refused
    #: undo or redo (the undo stack stays where it was).
    editRejected = Signal(str, str)
    #: An edit was accepted: it was stored, or it changed nothing (the value was already that).
    #: (key). With ``editRejected`` every edit through ``setData``/``reset`` reports its outcome.
    editAccepted = Signal(str)

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        capabilities: Capabilities | None = None,
        *,
        commit: Callable[[dict[str, Any]], Any] | None = None,
        schema: Schema | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._schema = schema or load_schema()
        self._caps = capabilities
        self._commit = commit
        self._values: dict[str, Any] = {}
        self._custom: dict[str, Any] = {}
        self._issues: dict[str, list[Issue]] = {}
        self._model_metadata: Mapping[str, Any] = {}
        self._groups: list[_Group] = []
        self._rows_by_key: dict[str, tuple[int, int]] = {}
        self.undo_stack: QUndoStack = _UndoStack(self)
        self._load(config or {})
        self._build()

    # ------------------------------------------------------------------------------------------
    # configuration
    def _load(self, config: Mapping[str, Any]) -> None:
        self._values = {}
        for param in self._schema:
            raw = config.get(param.column)
            if raw is None:
                continue
            try:
                self._values[param.column] = param.coerce(raw)  # get_model() gives canonical values
            except ParamValueError:
                try:  # a row as SQLite holds it ("3,1" for a list, 1 for true)
                    self._values[param.column] = param.coerce(param.from_db(raw))
                except ParamValueError:
                    self._values[param.column] = raw  # keep what is stored; validation reports it
        try:
            self._custom = custom_params_dict(config.get("custom_params"))
        except CommandError:
            self._custom = {}

    def _build(self) -> None:
        caps = self._caps
        groups: list[_Group] = []
        for section, params in self._schema.sections().items():
            rows = []
            for param in params:
                reason = None if expressible(param, caps) else unsupported_message(param, caps)
                rows.append(_Row(param.column, param=param, unsupported=reason))
            groups.append(_Group(section, rows))
        extras: list[_Row] = []
        listed: set[str] = set()
        if caps is not None:
            for entry in caps.uncovered(self._schema):
                key = self._custom_key(entry)
                extras.append(_Row(key, entry=entry))
                listed.update(entry.flags)
        for flag in self._custom:
            if flag in listed:
                continue
            reason = None
            if caps is not None and not caps.accepts(flag):
                reason = f"{flag} is not accepted by {build_label(caps)}"
            extras.append(_Row(flag, entry=caps.entry(flag) if caps else None, unsupported=reason))
        if extras:
            groups.append(_Group(OTHER_FLAGS_GROUP, extras))
        self._groups = groups
        self._rows_by_key = {
            row.key: (g, r) for g, group in enumerate(groups) for r, row in enumerate(group.rows)
        }

    def _custom_key(self, entry: HelpEntry) -> str:
        """The flag an "other flag" row stores under: the spelling already stored, else the long one."""
        for flag in entry.flags:
            if flag in self._custom:
                return flag
        return entry.long_flag

    def set_config(self, config: Mapping[str, Any]) -> None:
        """Show another configuration; the undo history is cleared."""
        self.beginResetModel()
        self.undo_stack.clear()
        self._load(config)
        self._build()
        self.endResetModel()

    def set_capabilities(self, capabilities: Capabilities | None) -> None:
        """Grey rows and list "Other flags" for another build."""
        self.beginResetModel()
        self._caps = capabilities
        self._build()
        self.endResetModel()

    @property
    def capabilities(self) -> Capabilities | None:
        return self._caps

    @property
    def schema(self) -> Schema:
        return self._schema

    def config(self) -> dict[str, Any]:
        """The set parameters (column -> canonical value) plus ``custom_params`` when any."""
        config = dict(self._values)
        if self._custom:
            config["custom_params"] = dict(self._custom)
        return config

    def value(self, key: str) -> Any:
        """The value of a column, or of an "other flag" (``None`` when unset)."""
        if key in self._schema:
            return self._values.get(key)
        return self._custom.get(key)

    def set_model_metadata(self, metadata: Mapping[str, Any]) -> None:
        """The GGUF metadata of the edited model's file (``{}``: none known): rows whose default the
        model decides (``model_default``) say what it is, "0 (from the model: 32,768)"."""
        self._model_metadata = dict(metadata)
        self._emit_all_changed()

    def model_default(self, key: str) -> Any:
        """What the model's header says an unset row is (``None``: unknown, or not the model's)."""
        param = self._schema.by_column.get(key)
        return param.model_value(self._model_metadata) if param is not None else None

    def set_issues(self, issues: Iterable[Issue]) -> None:
        """Show validation findings next to their rows."""
        by_column: dict[str, list[Issue]] = {}
        for issue in issues:
            by_column.setdefault(issue.column, []).append(issue)
        self._issues = by_column
        self._emit_all_changed()

    def _emit_all_changed(self) -> None:
        for g, group in enumerate(self._groups):
            if group.rows:
                self.dataChanged.emit(
                    self.createIndex(0, 0, g + 1),
                    self.createIndex(len(group.rows) - 1, len(COLUMNS) - 1, g + 1),
                )
        if self._groups:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._groups) - 1, len(COLUMNS) - 1))

    # ------------------------------------------------------------------------------------------
    # lookups
    def index_for(self, key: str, column: int = PARAMETER_COLUMN) -> QModelIndex:
        """The index of the row of ``key`` (a column name or an "other flag"), or an invalid one."""
        where = self._rows_by_key.get(key)
        if where is None:
            return QModelIndex()
        group, row = where
        return self.createIndex(row, column, group + 1)

    def group_index(self, title: str) -> QModelIndex:
        for row, group in enumerate(self._groups):
            if group.title == title:
                return self.createIndex(row, 0, 0)
        return QModelIndex()

    def group_titles(self) -> list[str]:
        return [group.title for group in self._groups]

    def _row(self, index: _Index) -> _Row | None:
        if not index.isValid() or index.internalId() == 0:
            return None
        group = self._groups[index.internalId() - 1]
        return group.rows[index.row()]

    def _is_changed(self, row: _Row) -> bool:
        value = self.value(row.key)
        if row.param is None:
            return value is not None
        try:
            return row.param.differs_from_default(value)
        except (TypeError, ValueError):
            return value is not None  # a stored value of the wrong type: shown as changed

    # ------------------------------------------------------------------------------------------
    # QAbstractItemModel
    def index(self, row: int, column: int, parent: _Index = QModelIndex()) -> QModelIndex:  # noqa: B008
        if not self.hasIndex(row, column, parent):
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, 0)
        if parent.internalId() == 0 and parent.column() == 0:
            return self.createIndex(row, column, parent.row() + 1)
        return QModelIndex()

    def parent(self, index: _Index | None = None) -> Any:
        if index is None:  # QObject.parent()
            return super().parent()
        if not index.isValid() or index.internalId() == 0:
            return QModelIndex()
        return self.createIndex(index.internalId() - 1, 0, 0)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        if not parent.isValid():
            return len(self._groups)
        if parent.internalId() == 0 and parent.column() == 0:
            return len(self._groups[parent.row()].rows)
        return 0

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < len(COLUMNS)
        ):
            return COLUMNS[section]
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        row = self._row(index)
        # A greyed row stays selectable so that its value can be read and reset; it is not editable
        # because no value of it could reach this build's command line.
        if row is not None and index.column() == VALUE_COLUMN and row.unsupported is None:
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._row(index)
        if row is None:
            return self._group_data(index, role)
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, column)
        if role == Qt.ItemDataRole.EditRole:
            return self.value(row.key) if column == VALUE_COLUMN else self._display(row, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row)
        if role == Qt.ItemDataRole.FontRole:
            bold = column in (PARAMETER_COLUMN, VALUE_COLUMN) and self._is_changed(row)
            italic = column == VALUE_COLUMN and bool(row.unsupported) and self.value(row.key) is None
            if not bold and not italic:
                return None  # the view's own font
            font = QFont()
            font.setBold(bold)
            font.setItalic(italic)
            return font
        if role == Qt.ItemDataRole.ForegroundRole:
            if row.unsupported:
                return QBrush(
                    QGuiApplication.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
                )
            if column in (DEFAULT_COLUMN, FLAG_COLUMN):
                return QBrush(QGuiApplication.palette().color(QPalette.ColorRole.PlaceholderText))
            return None
        if role == Qt.ItemDataRole.DecorationRole and column == VALUE_COLUMN:
            issues = self._issues.get(row.key, [])
            if issues:
                pixmap = (
                    QStyle.StandardPixmap.SP_MessageBoxCritical
                    if any(i.severity == "error" for i in issues)
                    else QStyle.StandardPixmap.SP_MessageBoxWarning
                )
                return QApplication.style().standardIcon(pixmap)
            return None
        if role == DESCRIPTOR_ROLE:
            return row.param if row.param is not None else row.entry
        if role == KEY_ROLE:
            return row.key
        if role == VALUE_ROLE:
            return self.value(row.key)
        if role == CHANGED_ROLE:
            return self._is_changed(row)
        if role == UNSUPPORTED_ROLE:
            return row.unsupported
        if role == SEARCH_ROLE:
            return self._search_text(row)
        if role == ISSUES_ROLE:
            return list(self._issues.get(row.key, []))
        if role == GROUP_ROLE:
            return False
        return None

    def _group_data(self, index: _Index, role: int) -> Any:
        group = self._groups[index.row()]
        if role == GROUP_ROLE:
            return True
        if role == Qt.ItemDataRole.DisplayRole:
            if index.column() == PARAMETER_COLUMN:
                return group.title
            if index.column() == VALUE_COLUMN:
                changed = sum(1 for row in group.rows if self._is_changed(row))
                return f"{changed} changed" if changed else ""
            return ""
        if role == Qt.ItemDataRole.ForegroundRole and index.column() == VALUE_COLUMN:
            return QBrush(QGuiApplication.palette().color(QPalette.ColorRole.PlaceholderText))
        if role == Qt.ItemDataRole.ToolTipRole and group.title == OTHER_FLAGS_GROUP:
            return (
                "Options of the configured llama-server build that no llamadash parameter covers; "
                "their values are stored with the model as custom flags."
            )
        if role == SEARCH_ROLE:
            return ""
        return None

    # ------------------------------------------------------------------------------------------
    # display
    def _display(self, row: _Row, column: int) -> str:
        if column == PARAMETER_COLUMN:
            return row.param.label if row.param is not None else row.key.lstrip("-")
        if column == VALUE_COLUMN:
            value = self.value(row.key)
            if value is None:
                return "not supported" if row.unsupported else ""
            return self._value_text(row, value)
        if column == DEFAULT_COLUMN:
            return self._default_text(row)
        if column == FLAG_COLUMN:
            return self._flag_text(row)
        return ""

    def _value_text(self, row: _Row, value: Any) -> str:
        param = row.param
        if param is None:
            if value is True:
                return "on"
            return ", ".join(value) if isinstance(value, list) else str(value)
        if param.secret:
            return _MASK
        if param.is_bool and isinstance(value, bool):
            return "on" if value else "off"
        try:
            return param.to_text(value)
        except (TypeError, ValueError, IndexError):
            return str(value)

    def _default_text(self, row: _Row) -> str:
        param = row.param
        if param is None:
            return (row.entry.default or "") if row.entry is not None else ""
        from_model = param.model_value(self._model_metadata)
        if from_model is not None:
            said = f"from the model: {model_value_text(from_model)}"
            return f"{param.to_text(param.default)} ({said})" if param.default is not None else said
        if param.default_text is not None:
            return param.default_text
        if param.default is None:
            return ""
        if param.is_bool:
            return "on" if param.default else "off"
        return param.to_text(param.default)

    @staticmethod
    def _flag_text(row: _Row) -> str:
        param = row.param
        if param is None:
            return row.entry.long_flag if row.entry is not None else row.key
        flag = param.long_flag or ""
        negative = next((f for f in param.negative_flags if f.startswith("--")), None)
        return f"{flag} / {negative}" if negative else flag

    def _all_flags(self, row: _Row) -> tuple[str, ...]:
        if row.param is not None:
            return row.param.all_flags
        return row.entry.flags if row.entry is not None else (row.key,)

    def _help(self, row: _Row) -> str:
        if row.param is not None:
            return row.param.help
        return row.entry.help if row.entry is not None else "A flag stored with this model."

    def _search_text(self, row: _Row) -> str:
        label = (row.param.label,) if row.param is not None else ()
        return " ".join((*label, row.key, *self._all_flags(row), self._help(row)))

    def _tooltip(self, row: _Row) -> str:
        flags = html.escape(", ".join(self._all_flags(row)))
        if row.param is not None:
            name = f"<b>{html.escape(row.param.label)}</b> &nbsp; <code>{html.escape(row.key)}</code>"
        else:
            name = f"<b>{html.escape(row.key)}</b>"
        parts = [f"{name} &nbsp; <code>{flags}</code>"]
        parts.append(html.escape(self._help(row)).replace("\n", "<br>"))
        if row.param is not None:
            parts.append(f"<i>Value:</i> {html.escape(row.param.describe_type())}")
            if row.param.note:
                parts.append(f"<i>Note:</i> {html.escape(row.param.note)}")
        if row.unsupported:
            parts.append(f"<b>Not available:</b> {html.escape(row.unsupported)}")
        for issue in self._issues.get(row.key, []):
            parts.append(f"<b>{issue.severity.capitalize()}:</b> {html.escape(issue.message)}")
        return "<p>" + "</p><p>".join(parts) + "</p>"

    # ------------------------------------------------------------------------------------------
    # editing
    def setData(self, index: _Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        """Check, store (through ``commit``) and record one edit of the value column.

        ``EditRole`` takes a value (``None`` resets), :data:`TEXT_EDIT_ROLE` takes text typed by
        a person. A value that does not fit is refused: ``editRejected`` carries the message.
        """
        row = self._row(index)
        if (
            row is None
            or index.column() != VALUE_COLUMN
            or role not in (Qt.ItemDataRole.EditRole, TEXT_EDIT_ROLE)
        ):
            return False
        current = self.value(row.key)
        if role == Qt.ItemDataRole.EditRole and type(value) is type(current) and value == current:
            # the value the row holds, handed back by an editor closed untouched: no change, even
            # when the stored value would not pass the checks (validation lists it)
            self.editAccepted.emit(row.key)
            return False
        try:
            new = self._parse(row, value, text=role == TEXT_EDIT_ROLE)
        except ParamValueError as exc:
            self.editRejected.emit(row.key, exc.message)
            return False
        return self._change(row, new)

    def reset(self, index: _Index) -> bool:
        """Set the row of ``index`` back to llama-server's default (unset); undoable."""
        row = self._row(index)
        return row is not None and self._change(row, None)

    def set_value(self, key: str, value: Any) -> bool:
        """Set a row by key, as an edit would (checked, committed, undoable)."""
        return self.setData(self.index_for(key, VALUE_COLUMN), value)

    def _parse(self, row: _Row, value: Any, *, text: bool) -> Any:
        param = row.param
        if param is None:
            return self._parse_extra(row, value)
        if text:
            if param.kind == "string":
                return param.coerce(str(value)) if str(value).strip() else None
            parsed = param.from_text(str(value))
        else:
            parsed = param.coerce(value)
        _check_int32(param, parsed)
        return parsed

    @staticmethod
    def _parse_extra(row: _Row, value: Any) -> Any:
        """An "other flag": ``True`` for a flag without a value, else its text (``None`` = unset)."""
        takes_value = row.entry.takes_value if row.entry is not None else None
        if isinstance(value, str):
            words = value.strip()
            if takes_value is False and words:
                switch = parse_bool(words)
                if switch is not None:
                    return True if switch else None
                raise ParamValueError(row.key, f"{row.key} takes no value: it is either on or not set")
            value = words or None
        if value is None or value is False:
            return None
        if value is True:
            if row.entry is not None and row.entry.takes_value:
                raise ParamValueError(row.key, f"{row.key} needs a value ({row.entry.value_hint})")
            return True
        if not isinstance(value, str):
            raise ParamValueError(row.key, f"expected text, got {value!r}")
        if "\x00" in value:
            raise ParamValueError(row.key, "the value contains a NUL character")
        return value

    def _change(self, row: _Row, new: Any) -> bool:
        """Store an accepted value; True when something changed (``editAccepted`` either way)."""
        old = self.value(row.key)
        unchanged = new == old or (
            # an editor opened on an unset row and closed on the default: no change
            old is None
            and row.param is not None
            and new is not None
            and not row.param.differs_from_default(new)
        )
        if unchanged:
            self.editAccepted.emit(row.key)
            return False
        if not self._apply(row.key, new):
            return False
        self.undo_stack.push(_SetValue(self, row.key, old, new))
        self.editAccepted.emit(row.key)
        return True

    def _apply(self, key: str, value: Any, *, doing: str | None = None) -> bool:
        """Commit and show one value; False (and ``editRejected``) when the commit is refused.

        ``doing`` is "undo" or "redo" when the value comes from the undo stack (the message says so).
        """
        if key in self._schema:
            changes: dict[str, Any] = {key: value}
        else:
            custom = dict(self._custom)
            if value is None:
                custom.pop(key, None)
            else:
                custom[key] = value
            changes = {"custom_params": custom}
        if self._commit is not None:
            try:
                self._commit(changes)
            except CommitRefused as exc:
                message = str(exc) if doing is None else f"could not {doing} this change, {exc}"
                self.editRejected.emit(key, message)
                return False
        if key in self._schema:
            if value is None:
                self._values.pop(key, None)
            else:
                self._values[key] = value
        else:
            self._custom = changes["custom_params"]
        where = self._rows_by_key.get(key)
        if where is not None:
            group, row = where
            self.dataChanged.emit(
                self.createIndex(row, 0, group + 1), self.createIndex(row, len(COLUMNS) - 1, group + 1)
            )
            self.dataChanged.emit(
                self.createIndex(group, VALUE_COLUMN, 0), self.createIndex(group, VALUE_COLUMN, 0)
            )
        self.valueChanged.emit(key, value)
        return True
