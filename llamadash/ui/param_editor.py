"""The parameter editor: the schema tree of one model, its problems and its command line.

:class:`ParamEditor` shows a search box, a "show only changed" switch, the parameter tree
(:class:`~llamadash.ui.param_model.ParamTreeModel` through :class:`ParamFilterProxy`), the
help of the selected row (always visible, not only in a tooltip), the validation findings, the live
command preview and, while the model runs, an offer to restart it: made only when the new
configuration can start (:func:`~llamadash.core.launch.plan_launch` accepts it), else the bar says
why and the running server is kept. Defaults the model decides say what they are for the edited
model's file ("0 (from the model: 32,768)"): its GGUF header is read once per model file.
When there is no llama-server to check against (none found), that is listed as a warning first.
Every edit is saved at once through the ``save(model_id, changes)`` callable it is given; the
editor never opens the database.
"""

from __future__ import annotations

import html
import os
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from PySide6.QtCore import (
    Property,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QAction, QFontDatabase, QGuiApplication, QKeySequence, QTextDocumentFragment
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QStackedLayout,
    QStyle,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from llamadash.core import library
from llamadash.core.launch import LaunchError, plan_launch
from llamadash.core.params import (
    COLUMN,
    Capabilities,
    CommandError,
    HelpEntry,
    Issue,
    Param,
    build_command,
    format_command,
    has_errors,
    validate_config,
)
from llamadash.core.params.command import looks_like_flag
from llamadash.core.params.schema import META_COLUMNS
from llamadash.core.states import ACTIVE_STATES
from llamadash.ui.param_delegates import ParamDelegate
from llamadash.ui.param_model import (
    CHANGED_ROLE,
    DEFAULT_COLUMN,
    DESCRIPTOR_ROLE,
    GROUP_ROLE,
    ISSUES_ROLE,
    KEY_ROLE,
    PARAMETER_COLUMN,
    SEARCH_ROLE,
    UNSUPPORTED_ROLE,
    VALUE_COLUMN,
    CommitRefused,
    ParamTreeModel,
    model_value_text,
)
from llamadash.ui.theme import error_style_sheet

_Index = QModelIndex | QPersistentModelIndex
#: The ``column`` of the finding about the llama-server binary itself (no row of the tree has it).
BINARY_ISSUE_COLUMN = "llama-server binary"
SaveCallable = Callable[[int, dict[str, Any]], Any]
#: What the help panel says while no parameter row is selected.
NO_ROW_HELP = "Select a parameter to see what it does."
#: What the restart bar says when the saved changes can be applied.
RESTART_OFFER = "This model is running: the saved changes apply after a restart."


def _shell_lines(argv: list[str], env: dict[str, str]) -> str:
    """``format_command`` with one flag (and its values) per line, joined by `` \\`` continuations.

    Still one valid shell command when copied; secrets stay masked.
    """
    lines = [format_command(argv[:1], env, mask_secrets=True)]
    for word in argv[1:]:
        if looks_like_flag(word):
            lines.append(shlex.quote(word))
        else:
            lines[-1] += " " + shlex.quote(word)
    return " \\\n  ".join(lines)


class ParamFilterProxy(QSortFilterProxyModel):
    """Filters parameter rows by a search text (name, flag, help) and by "changed only".

    Filtering is recursive: a group stays while any of its rows matches, and disappears when none
    does.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._words: list[str] = []
        self._changed_only = False
        self.setRecursiveFilteringEnabled(True)

    def set_search(self, text: str) -> None:
        """Rows whose name, flags or help contain every word of ``text`` (any case)."""
        self._change_filter(lambda: setattr(self, "_words", text.lower().split()))

    def set_changed_only(self, changed_only: bool) -> None:
        self._change_filter(lambda: setattr(self, "_changed_only", changed_only))

    def _change_filter(self, change: Callable[[], None]) -> None:
        # Qt 6.10 deprecates invalidateFilter() for begin/endFilterChange(); older Qt lacks those
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateRowsFilter()

    @property
    def active(self) -> bool:
        return bool(self._words) or self._changed_only

    def filterAcceptsRow(self, source_row: int, source_parent: _Index) -> bool:
        model = self.sourceModel()
        index = model.index(source_row, 0, source_parent)
        if index.data(GROUP_ROLE):
            # a group is shown through its rows (recursive filtering), or empty when nothing filters
            return not self.active and model.rowCount(index) == 0
        if self._changed_only and not index.data(CHANGED_ROLE):
            return False
        text = (index.data(SEARCH_ROLE) or "").lower()
        return all(word in text for word in self._words)


class ParamEditor(QWidget):
    """Edits one model's llama-server parameters.

    Args:
        model: the library entry (a dict as ``get_model`` returns it: ``id``, ``name``, ``status``,
            parameter columns, ``custom_params``), or ``None`` to start empty (see
            :meth:`clear_model`).
        save: ``save(model_id, changes)`` stores ``changes`` (column -> value, ``None`` resets;
            ``custom_params`` as a whole dict); it raises to refuse, and the message is shown.
        capabilities: the configured llama-server build; rows it cannot take are greyed, and its
            flags that no parameter covers are listed under "Other flags of this build".
        binary: the llama-server binary shown in the command preview (default: the one in
            ``capabilities``, else ``llama-server``).
        check_files: check that files and directories named by the configuration exist.
        binary_problem: why there is no llama-server build to check against (e.g. none was found);
            listed as a warning above the findings, and noted at the top of the command preview.
        parent: the parent widget.
    """

    #: ``startAllowed`` changed: True when the configuration has no validation errors. Emitted
    #: only when the value changes; :attr:`model_name` says which model it is about.
    startAllowedChanged = Signal(bool)
    #: Whether the edited model may start, and why not: (model name or ``None`` when no model is
    #: open, allowed, the first error as "column: message" or "" when allowed). Emitted whenever
    #: any of the three changes: another model, a rename, an edit, undo, another build.
    startStatusChanged = Signal(object, bool, str)
    #: The user asked to restart the running model to apply the saved changes: the model id.
    restartRequested = Signal(int)
    #: Changes were saved: (model id, the changes as given to ``save``). Undo emits it too.
    saved = Signal(int, dict)
    #: The user clicked the llama-server binary warning: open the settings to set the binary.
    settingsRequested = Signal()

    def __init__(
        self,
        model: Mapping[str, Any] | None,
        save: SaveCallable,
        capabilities: Capabilities | None = None,
        *,
        binary: str | None = None,
        check_files: bool = True,
        binary_problem: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._save = save
        self._binary = binary
        self._binary_problem = binary_problem
        self._check_files = check_files
        self._model_id: int | None = None
        self._meta: dict[str, Any] = {}
        self._issues: list[Issue] = []
        self._has_model = False
        self._start_allowed = True
        self._start_status: tuple[str | None, bool, str] = (None, True, "")
        self._restart_pending = False  # saved changes the running server does not have yet
        self._restart_problem: str | None = None
        self._header_key: tuple[str, int, int] | None = None  # the model file whose header is read
        self._build_ui(capabilities)
        if model is None:
            self.clear_model()
        else:
            self.set_model(model)

    # ------------------------------------------------------------------------------------------
    # construction
    def _build_ui(self, capabilities: Capabilities | None) -> None:
        self.param_model = ParamTreeModel(capabilities=capabilities, commit=self._commit, parent=self)
        self.param_model.valueChanged.connect(self._on_value_changed)
        self.param_model.editRejected.connect(self._on_edit_rejected)
        self.param_model.editAccepted.connect(self._on_edit_accepted)
        self.proxy = ParamFilterProxy(self)
        self.proxy.setSourceModel(self.param_model)

        self.search_box = QLineEdit()
        self.search_box.setPlaceholderText("Search parameters, flags and help\u2026")
        self.search_box.setClearButtonEnabled(True)
        self.search_box.textChanged.connect(self._on_search)
        self.changed_only_box = QCheckBox("Show only changed")
        self.changed_only_box.toggled.connect(self._on_changed_only)

        self.reset_action = QAction("Reset to default", self)
        self.reset_action.setToolTip("Set the selected parameter back to llama-server's default")
        self.reset_action.triggered.connect(self.reset_current)
        self.reset_button = QPushButton("Reset to default")
        self.reset_button.clicked.connect(self.reset_current)
        # Not QUndoStack.createUndoAction(): that calls the C++ undo(), which moves the stack even
        # when saving the undone value is refused; the model's stack keeps the step then.
        stack = self.param_model.undo_stack
        self.undo_action = QAction("Undo", self)
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.undo_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.undo_action.triggered.connect(lambda: stack.undo())
        stack.canUndoChanged.connect(self.undo_action.setEnabled)
        stack.undoTextChanged.connect(
            lambda text: self.undo_action.setText(f"Undo {text}" if text else "Undo")
        )
        self.undo_action.setEnabled(False)
        self.addAction(self.undo_action)
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("Undo the last change (Ctrl+Z)")
        self.undo_button.clicked.connect(lambda: stack.undo())
        stack.canUndoChanged.connect(self.undo_button.setEnabled)
        self.undo_button.setEnabled(False)

        top = QHBoxLayout()
        top.addWidget(self.search_box, 1)
        top.addWidget(self.changed_only_box)
        top.addWidget(self.reset_button)
        top.addWidget(self.undo_button)
        self._top = top  # add_tool_button() puts more at its end

        self.tree = QTreeView()
        self.tree.setModel(self.proxy)
        self.delegate = ParamDelegate(self.tree)
        self.tree.setItemDelegateForColumn(VALUE_COLUMN, self.delegate)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.SelectedClicked
        )
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self.tree.selectionModel().currentChanged.connect(self._update_actions)
        self.tree.selectionModel().currentChanged.connect(self._show_help)
        header = self.tree.header()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        em = self.fontMetrics().horizontalAdvance("M")
        header.resizeSection(PARAMETER_COLUMN, 22 * em)
        header.resizeSection(VALUE_COLUMN, 26 * em)
        header.resizeSection(DEFAULT_COLUMN, 30 * em)

        # the help of the selected row, always in view (a tooltip is found by few and read by fewer)
        self.help_label = QLabel(NO_ROW_HELP)
        self.help_label.setObjectName("parameterHelp")
        self.help_label.setWordWrap(True)
        self.help_label.setTextFormat(Qt.TextFormat.RichText)
        self.help_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.help_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.help_label.setContentsMargins(6, 4, 6, 4)
        self.help_panel = QScrollArea()  # a long help scrolls inside its few lines
        self.help_panel.setWidgetResizable(True)
        self.help_panel.setFrameShape(QFrame.Shape.StyledPanel)
        self.help_panel.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.help_panel.setWidget(self.help_label)
        self.help_panel.setFixedHeight(4 * self.fontMetrics().lineSpacing() + 14)

        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_label.setStyleSheet(error_style_sheet())  # readable in both themes
        self.message_label.hide()

        self.issue_list = QListWidget()
        self.issue_list.setWordWrap(True)
        self.issue_list.itemActivated.connect(self._show_issue_row)
        self.issue_list.itemClicked.connect(self._show_issue_row)
        self.issue_list.setToolTip("Click a problem to show its parameter")

        self.restart_bar = QFrame()
        self.restart_bar.setFrameShape(QFrame.Shape.StyledPanel)
        restart_layout = QHBoxLayout(self.restart_bar)
        restart_layout.setContentsMargins(6, 4, 6, 4)
        self.restart_label = QLabel(RESTART_OFFER)
        self.restart_label.setWordWrap(True)
        self.restart_icon = QLabel()  # a warning sign while the changes cannot be applied
        size = self.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize)
        warning = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
        self.restart_icon.setPixmap(warning.pixmap(size, size))
        self.restart_icon.hide()
        self.restart_button = QPushButton("Restart to apply")
        self.restart_button.clicked.connect(self._on_restart_clicked)
        restart_layout.addWidget(self.restart_icon)
        restart_layout.addWidget(self.restart_label, 1)
        restart_layout.addWidget(self.restart_button)
        self.restart_bar.hide()

        self.preview = QPlainTextEdit()
        self.preview.setReadOnly(True)
        self.preview.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.preview.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.preview.setToolTip("The command llamadash runs; secrets are masked")
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the command line (secrets stay masked)")
        self.copy_button.clicked.connect(self.copy_command)
        preview_header = QHBoxLayout()
        preview_header.addWidget(QLabel("<b>Command line</b>"), 1)
        preview_header.addWidget(self.copy_button)

        self.content = QWidget()
        layout = QVBoxLayout(self.content)
        layout.addLayout(top)
        layout.addWidget(self.message_label)
        layout.addWidget(self.restart_bar)
        layout.addWidget(self.tree, 1)  # the findings and the command take what they need
        layout.addWidget(self.help_panel)
        self.issues_title = QLabel()
        layout.addWidget(self.issues_title)
        layout.addWidget(self.issue_list)
        layout.addLayout(preview_header)
        layout.addWidget(self.preview)

        # shown instead of all that while no model is open (none chosen yet, or it was deleted)
        self.empty_label = QLabel()
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self._pages = QStackedLayout(self)
        self._pages.addWidget(self.content)
        self._pages.addWidget(self.empty_label)
        self._update_actions()

    # ------------------------------------------------------------------------------------------
    # public API
    def add_tool_button(self, button: QWidget) -> None:
        """Add a button after Undo (the window's Performance menu)."""
        self._top.addWidget(button)

    def set_model(self, model: Mapping[str, Any]) -> None:
        """Edit another library entry (or the same one re-read); clears undo and messages."""
        self._model_id = model.get("id")
        self._meta = {k: model.get(k) for k in META_COLUMNS if k != "custom_params"}
        self._has_model = True
        self.param_model.set_config(model)
        self._read_model_header()
        self.message_label.hide()
        self._restart_pending = False
        self._pages.setCurrentWidget(self.content)
        self._refresh()
        self._expand_interesting()

    def clear_model(self, message: str | None = None) -> None:
        """Edit nothing: show the empty state, e.g. when the edited model was deleted.

        The undo history and any message go; nothing is saved from now on. Start is allowed
        (nothing here blocks a start) and :attr:`model_name` is ``None``.

        Args:
            message: said above the usual hint, e.g. "tiny was deleted from the library."
        """
        self._model_id = None
        self._meta = {}
        self._has_model = False
        self.param_model.set_config({})
        self._read_model_header()
        self.message_label.hide()
        self._restart_pending = False
        hint = (
            "No model is open. Double-click a model in the Library (or select it and press Ctrl+E)"
            " to edit its parameters."
        )
        self.empty_label.setText(f"{message}\n\n{hint}" if message else hint)
        self._pages.setCurrentWidget(self.empty_label)
        self._refresh()

    def set_model_name(self, name: str) -> None:
        """The edited model was renamed: follow the new name (it is not saved from here)."""
        if self._has_model:
            self._meta["name"] = name
            self._publish_start_status()

    def revalidate(self) -> None:
        """Check the configuration again, e.g. before a start: files may have appeared or gone."""
        self._refresh()

    def set_capabilities(
        self,
        capabilities: Capabilities | None,
        binary: str | None = None,
        *,
        binary_problem: str | None = None,
    ) -> None:
        """Check and preview for another llama-server build.

        Args:
            capabilities: The build, or ``None`` (checked against the schema alone).
            binary: Its path, for the preview (``None`` keeps the one shown, unless ``binary_problem``).
            binary_problem: Why there is no build, e.g. none was found (``None``: no problem).
        """
        self._binary_problem = binary_problem
        if binary is not None or binary_problem:
            self._binary = binary
        self.param_model.set_capabilities(capabilities)
        self._refresh()
        self._expand_interesting()

    def set_running(self, running: bool) -> None:
        """Tell the editor whether the model runs; without it, saving offers no restart."""
        self._meta["status"] = "running" if running else "stopped"
        if not running:
            self._restart_pending = False
        self._update_restart_bar()

    @property
    def model_id(self) -> int | None:
        """The id of the edited model; ``None`` when none is open (or it is not in the library)."""
        return self._model_id

    @property
    def model_name(self) -> str | None:
        """The name of the edited model; ``None`` when none is open."""
        name = self._meta.get("name")
        return name if self._has_model and isinstance(name, str) else None

    @property
    def has_model(self) -> bool:
        """False while the editor shows its empty state."""
        return self._has_model

    @property
    def start_allowed(self) -> bool:
        """False while the configuration has validation errors (the same as ``startAllowed``)."""
        return self._start_allowed

    @property
    def restart_offered(self) -> bool:
        """True while the restart bar offers "Restart to apply" (the new configuration can start)."""
        return self._restart_pending and self._restart_problem is None

    @property
    def restart_problem(self) -> str | None:
        """Why the saved changes cannot be applied by a restart now (``None``: they can, or none)."""
        return self._restart_problem if self._restart_pending else None

    def help_text(self) -> str:
        """What the help panel shows, as plain text."""
        return QTextDocumentFragment.fromHtml(self.help_label.text()).toPlainText()

    @property
    def start_problem(self) -> str | None:
        """Why the model cannot start: its first error as "column: message"; ``None`` when it can."""
        return self._start_status[2] or None

    def config(self) -> dict[str, Any]:
        """The configuration as edited: set parameters and ``custom_params``."""
        return self.param_model.config()

    def issues(self) -> list[Issue]:
        """The current findings (errors and warnings), the llama-server binary's first if it has one."""
        return list(self._issues)

    @property
    def binary_problem(self) -> str | None:
        """Why there is no llama-server build to check against, or ``None``."""
        return self._binary_problem

    def command_text(self) -> str:
        """What the command preview shows."""
        return self.preview.toPlainText()

    def _get_start_allowed(self) -> bool:
        return self._start_allowed

    #: False while the configuration has validation errors: the main window disables "Start".
    startAllowed = Property(bool, _get_start_allowed, notify=startAllowedChanged)

    def copy_command(self) -> None:
        """Put the previewed command line on the clipboard."""
        QGuiApplication.clipboard().setText(self.preview.toPlainText())

    def reset_current(self) -> None:
        """Reset the parameter of the current tree row to its default (undoable)."""
        index = self.tree.currentIndex()
        if index.isValid():
            self.param_model.reset(self.proxy.mapToSource(index))

    def select_parameter(self, key: str) -> None:
        """Show and select the row of a column (or "other flag"), clearing a filter that hides it."""
        source = self.param_model.index_for(key)
        if not source.isValid():
            return
        index = self.proxy.mapFromSource(source)
        if not index.isValid():
            self.search_box.clear()
            self.changed_only_box.setChecked(False)
            index = self.proxy.mapFromSource(source)
        self.tree.expand(index.parent())
        self.tree.setCurrentIndex(index)
        self.tree.scrollTo(index)

    # ------------------------------------------------------------------------------------------
    # saving
    def _commit(self, changes: dict[str, Any]) -> None:
        if self._model_id is None:
            raise CommitRefused("this model is not in the library yet; nothing can be saved")
        try:
            self._save(self._model_id, changes)
        except Exception as exc:
            # ``save`` is the storage boundary (a database, a file, a test double): whatever it
            # refuses with is shown to the user and the edit is dropped, never a crash.
            raise CommitRefused(f"not saved: {exc}") from exc
        self.saved.emit(self._model_id, dict(changes))

    def _on_value_changed(self, key: str, _value: Any) -> None:
        self.message_label.hide()  # an undo or redo that went through: the message is old news
        if self._meta.get("status") in ACTIVE_STATES:
            self._restart_pending = True
        if key == COLUMN.model_path:
            self._read_model_header()
        self._refresh()
        self._update_actions()

    def _on_edit_rejected(self, key: str, message: str) -> None:
        self.message_label.setText(f"{key}: {message}")
        self.message_label.show()

    def _on_edit_accepted(self, _key: str) -> None:
        # the message is about the latest edit: one that went through, or changed nothing, clears it
        self.message_label.hide()

    def _on_restart_clicked(self) -> None:
        self._refresh()  # files may have gone since the bar was shown: check again first
        if not self.restart_offered or self._model_id is None:
            return
        self._restart_pending = False
        self._update_restart_bar()
        self.restartRequested.emit(self._model_id)

    def _launch_problem(self) -> str | None:
        """Why the configuration as saved would not start (what a restart would run into), or ``None``.

        The validation's first error, else what launch planning refuses (no llama-server, a build
        whose options are unknown, a missing model file...): the checks a start makes before it
        launches anything. A restart that would fail is not offered: it would stop a working server.
        """
        if not self._start_allowed:
            return self.start_problem
        caps = self.param_model.capabilities
        binary = None
        if not self._binary_problem:
            binary = self._binary or (caps.binary if caps is not None else None) or "llama-server"
        try:
            plan_launch(
                self.param_model.config(),
                caps,
                binary,
                name=self.model_name or "this model",
                binary_problem=self._binary_problem or "",
            )
        except LaunchError as exc:
            return str(exc)
        return None

    def _update_restart_bar(self) -> None:
        """Offer the restart when the saved changes can start; otherwise say why, with no button."""
        pending = self._has_model and self._restart_pending
        self._restart_problem = self._launch_problem() if pending else None
        if not pending:
            self.restart_bar.hide()
            return
        problem = self._restart_problem
        if problem is None:
            self.restart_label.setText(RESTART_OFFER)
        else:
            column, _, message = problem.partition(": ")
            if message.startswith(column):  # "hf_file_v: hf_file_v is not supported ...": once
                problem = message
            self.restart_label.setText(
                f"Not restarted: the saved changes cannot start ({problem}). The server keeps "
                "running with its previous settings; fix this to restart and apply them."
            )
        self.restart_icon.setVisible(problem is not None)
        self.restart_button.setVisible(problem is None)
        self.restart_bar.show()

    # ------------------------------------------------------------------------------------------
    # validation and preview
    def _refresh(self) -> None:
        config = self.param_model.config()
        caps = self.param_model.capabilities
        if self._has_model:
            self._issues = validate_config(config, caps, check_files=self._check_files)
            if self._binary_problem:
                # A warning, not an error: the manager looks for the binary again at every start (it
                # may be installed or set meanwhile) and a refused start says why and leads to Settings.
                self._issues.insert(0, Issue(BINARY_ISSUE_COLUMN, "warning", self._binary_problem))
            self.preview.setPlainText(self._preview_text(config))
        else:
            self._issues = []
            self.preview.clear()
        self.param_model.set_issues(self._issues)
        self._show_issues()
        self._fit_preview()
        self._publish_start_status()
        self._update_restart_bar()
        self._show_help()

    def _publish_start_status(self) -> None:
        """Emit ``startAllowedChanged`` / ``startStatusChanged`` for what changed since last time."""
        first_error = next((i for i in self._issues if i.severity == "error"), None)
        allowed = not has_errors(self._issues)
        problem = "" if first_error is None else f"{first_error.column}: {first_error.message}"
        status = (self.model_name, allowed, problem)
        allowed_changed = allowed != self._start_allowed
        status_changed = status != self._start_status
        self._start_allowed, self._start_status = allowed, status
        if allowed_changed:
            self.startAllowedChanged.emit(allowed)
        if status_changed:
            self.startStatusChanged.emit(*status)

    def _fit_preview(self) -> None:
        """As tall as the command, up to 14 lines (longer ones scroll): the tree keeps the rest."""
        lines = max(3, min(self.preview.document().blockCount(), 14))
        margins = 2 * (self.preview.frameWidth() + int(self.preview.document().documentMargin()))
        scroll_bar = self.preview.horizontalScrollBar().sizeHint().height()  # for a long path
        self.preview.setFixedHeight(lines * self.preview.fontMetrics().lineSpacing() + margins + scroll_bar)

    def _preview_text(self, config: dict[str, Any]) -> str:
        """The command line; with problems, the line without them after ``#`` lines naming them.

        Showing the rest of the command keeps the preview useful while one setting is wrong; the
        ``#`` lines make a copied text harmless in a shell and say what is left out.
        """
        caps = self.param_model.capabilities
        binary_note = [f"# {self._binary_problem}"] if self._binary_problem else []
        try:
            argv, env = build_command(config, caps, binary=self._binary)
            return "\n".join([*binary_note, _shell_lines(argv, env)])
        except CommandError as exc:
            problems = exc.problems
        notes = binary_note + [
            f"# left out, cannot start: {column}: {message}" for column, message in problems
        ]
        rest = {k: v for k, v in config.items() if k not in {column for column, _ in problems}}
        try:
            argv, env = build_command(rest, caps, binary=self._binary)
        except CommandError:
            return "\n".join(notes)
        return "\n".join([*notes, _shell_lines(argv, env)])

    def _show_issues(self) -> None:
        self.issue_list.clear()
        errors = sum(1 for i in self._issues if i.severity == "error")
        warnings = len(self._issues) - errors
        style = self.style()
        for issue in self._issues:
            icon = style.standardIcon(
                QStyle.StandardPixmap.SP_MessageBoxCritical
                if issue.severity == "error"
                else QStyle.StandardPixmap.SP_MessageBoxWarning
            )
            if issue.column == BINARY_ISSUE_COLUMN:  # says what it is about; clicking opens Settings
                item = QListWidgetItem(icon, issue.message)
                item.setToolTip("Click to open the settings")
            else:
                item = QListWidgetItem(icon, f"{issue.column}: {issue.message}")
            item.setData(Qt.ItemDataRole.UserRole, issue.column)
            self.issue_list.addItem(item)
        if not self._issues:
            self.issues_title.setText("No problems found.")
        else:
            parts = []
            if errors:
                parts.append(f"{errors} error{'s' if errors != 1 else ''} (the model cannot start)")
            if warnings:
                parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
            self.issues_title.setText("<b>Problems:</b> " + ", ".join(parts))
        self.issue_list.setVisible(bool(self._issues))
        if self._issues:
            # as tall as the findings, up to four; more scroll, so the tree keeps its room
            rows = min(len(self._issues), 4)
            frame = 2 * self.issue_list.frameWidth()
            self.issue_list.setFixedHeight(self.issue_list.sizeHintForRow(0) * rows + frame + 2)

    def _read_model_header(self) -> None:
        """Read the GGUF header of the model file (once per file version) for the model's defaults."""
        path = self.param_model.value(COLUMN.model_path) if self._has_model else None
        key: tuple[str, int, int] | None = None
        if isinstance(path, str) and path:
            try:
                stat = os.stat(path)
            except OSError:
                key = None
            else:
                key = (path, stat.st_mtime_ns, stat.st_size)
        if key == self._header_key:
            return
        self._header_key = key
        metadata: Mapping[str, Any] = {}
        if key is not None:
            info = library.read_model_info(key[0])
            metadata = info.metadata if info.error is None else {}
        self.param_model.set_model_metadata(metadata)

    def _show_help(self, *_: Any) -> None:
        """Show the help of the current row below the tree: label, flags, help, what keeps it."""
        index = self.tree.currentIndex()
        descriptor = index.data(DESCRIPTOR_ROLE) if index.isValid() else None
        key = index.data(KEY_ROLE) if index.isValid() else None
        if key is None:
            self.help_label.setText(NO_ROW_HELP)
            return
        if isinstance(descriptor, Param):
            label, flags, help_text = descriptor.label, descriptor.all_flags, descriptor.help
        elif isinstance(descriptor, HelpEntry):
            label, flags, help_text = str(key).lstrip("-"), descriptor.flags, descriptor.help
        else:  # a stored flag the build does not list
            label, flags, help_text = str(key).lstrip("-"), (str(key),), "A flag stored with this model."
        parts = [
            f"<b>{html.escape(label)}</b> &nbsp; <code>{html.escape(', '.join(flags))}</code>",
            html.escape(help_text.strip()).replace("\n", "<br>"),
        ]
        from_model = self.param_model.model_default(str(key))
        if from_model is not None:
            parts.append(f"<i>This model:</i> {html.escape(model_value_text(from_model))} (from its file)")
        unsupported = index.data(UNSUPPORTED_ROLE)
        if unsupported:
            parts.append(f"<b>Not available:</b> {html.escape(unsupported)}")
        for issue in index.data(ISSUES_ROLE) or []:
            parts.append(f"<b>{issue.severity.capitalize()}:</b> {html.escape(issue.message)}")
        self.help_label.setText("<br>".join(parts))

    def _show_issue_row(self, item: QListWidgetItem) -> None:
        column = item.data(Qt.ItemDataRole.UserRole)
        if column == BINARY_ISSUE_COLUMN:
            self.settingsRequested.emit()
        else:
            self.select_parameter(column)

    # ------------------------------------------------------------------------------------------
    # view
    def _on_search(self, text: str) -> None:
        self.proxy.set_search(text)
        self._expand_interesting()

    def _on_changed_only(self, checked: bool) -> None:
        self.proxy.set_changed_only(checked)
        self._expand_interesting()

    def _expand_interesting(self) -> None:
        """Filtering: show every match. Otherwise open the groups that hold changes or problems."""
        if self.proxy.active:
            self.tree.expandAll()
            return
        problem_columns = {issue.column for issue in self._issues}
        for row in range(self.proxy.rowCount()):
            group = self.proxy.index(row, 0)
            interesting = any(
                self.proxy.index(r, 0, group).data(CHANGED_ROLE)
                or self.proxy.index(r, 0, group).data(KEY_ROLE) in problem_columns
                for r in range(self.proxy.rowCount(group))
            )
            self.tree.setExpanded(group, interesting)

    def _current_key(self) -> str | None:
        index = self.tree.currentIndex()
        return index.data(KEY_ROLE) if index.isValid() else None

    def _update_actions(self, *_: Any) -> None:
        key = self._current_key()
        resettable = key is not None and self.param_model.value(key) is not None
        self.reset_action.setEnabled(resettable)
        self.reset_button.setEnabled(resettable)

    def _context_menu(self, pos: QPoint) -> None:
        index = self.tree.indexAt(pos)
        if not index.isValid() or index.data(GROUP_ROLE):
            return
        self.tree.setCurrentIndex(index)
        menu = QMenu(self)
        menu.addAction(self.reset_action)
        menu.addAction(self.undo_action)
        menu.exec(self.tree.viewport().mapToGlobal(pos))
