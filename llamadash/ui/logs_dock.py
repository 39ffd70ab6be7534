"""The logs dock: the selected instance's live llama-server output.

Lines arrive through the manager's ``logLine(name, line)`` signal; the dock keeps those of the
instance it shows. They are appended in batches (every :data:`FLUSH_INTERVAL_MS`), because
llama-server prints hundreds of lines while a model loads and one append per line would keep the
GUI thread busy. The view holds at most :data:`MAX_LINES` lines (older ones scroll away; the full
log is in the instance's log file, which "Open log file" opens).

Levels are coloured from llama-server's marker after the timestamp (``0.00.010.123 E srv ...``:
``E`` error, ``W`` warning, ``I`` info, ``D``/``T`` debug); a search highlights every match and
steps through them.

When a model's log file cannot be written (a full disk), a notice above the view says so for as
long as it lasts (the manager's ``logFileProblem(name, text)``), and says when the file is written
again and what the file notes about the lines it lost.
"""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path
from typing import Any

from PySide6.QtCore import QRegularExpression, Qt, QTimer, QUrl
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QFontDatabase,
    QGuiApplication,
    QKeySequence,
    QPalette,
    QShortcut,
    QSyntaxHighlighter,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from llamadash.services.protocols import Instance, Manager
from llamadash.ui.theme import error_style_sheet

__all__ = ["FLUSH_INTERVAL_MS", "MAX_LINES", "LogHighlighter", "LogsDock", "line_level"]

#: Lines the view keeps; older ones are dropped from the top.
MAX_LINES = 5000
#: How often queued lines are appended to the view.
FLUSH_INTERVAL_MS = 100

_LEVEL = re.compile(r"^\s*\d+(?:\.\d+){2,3} ([IWEDT]) ")
_LEVEL_COLOURS = {
    # (light theme, dark theme)
    "E": ("#cf222e", "#ff7b72"),
    "W": ("#9a6700", "#e3b341"),
    "D": ("#6e7781", "#8b949e"),
    "T": ("#6e7781", "#8b949e"),
}


def line_level(line: str) -> str:
    """The level letter of a llama-server line (``E``, ``W``, ``I``, ``D``, ``T``), or ``""``.

    Lines without the marker (llama.cpp's loader prints some) count as errors when they say so.
    """
    match = _LEVEL.match(line)
    if match:
        return match.group(1)
    lowered = line.lstrip().lower()
    if lowered.startswith(("error", "terminate called", "ggml_assert")):
        return "E"
    if lowered.startswith("warning"):
        return "W"
    return ""


def _tail_of_file(path: Path | None, count: int, max_bytes: int = 512 * 1024) -> list[str]:
    """The last ``count`` lines of a text file (reading at most its last ``max_bytes``)."""
    if path is None:
        return []
    try:
        if not path.is_file():  # a device (a link to /dev/zero would never end) or a folder
            return []
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - max_bytes))
            data = handle.read(max_bytes)
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > max_bytes:
        lines = lines[1:]  # the read began inside a line
    return lines[-count:]


class LogHighlighter(QSyntaxHighlighter):
    """Colours each line by its level and marks search matches."""

    def __init__(self, document: QTextDocument) -> None:
        super().__init__(document)
        self._dark = False
        self._formats: dict[str, QTextCharFormat] = {}
        self._search: QRegularExpression | None = None
        self._match_format = QTextCharFormat()
        self.set_dark(False)

    def set_dark(self, dark: bool) -> None:
        """Use the colours for a dark (or light) background."""
        self._dark = dark
        self._formats = {}
        for level, colours in _LEVEL_COLOURS.items():
            fmt = QTextCharFormat()
            fmt.setForeground(QColor(colours[1] if dark else colours[0]))
            if level == "E":
                fmt.setFontWeight(600)
            self._formats[level] = fmt
        self._match_format = QTextCharFormat()
        self._match_format.setBackground(QColor("#6e5600" if dark else "#fff8c5"))
        self.rehighlight()

    def set_search(self, text: str) -> None:
        """Mark every occurrence of ``text`` (case-insensitive); empty clears the marks."""
        if text:
            self._search = QRegularExpression(
                QRegularExpression.escape(text), QRegularExpression.PatternOption.CaseInsensitiveOption
            )
        else:
            self._search = None
        self.rehighlight()

    def highlightBlock(self, text: str) -> None:
        fmt = self._formats.get(line_level(text))
        if fmt is not None:
            self.setFormat(0, len(text), fmt)
        if self._search is not None:
            matches = self._search.globalMatch(text)
            while matches.hasNext():
                match = matches.next()
                self.setFormat(match.capturedStart(), match.capturedLength(), self._match_format)


class LogsDock(QDockWidget):
    """Shows one instance's log, live.

    Args:
        manager: The instance manager (its ``logLine``, ``instanceAdded`` and ``logFileProblem``
            signals, ``instance(name)`` and ``log_path(name)``); ``None`` until the launcher has
            started it (:meth:`set_manager`): the window is built before.
        parent: The Qt parent.
    """

    def __init__(self, manager: Manager | None = None, parent: QWidget | None = None) -> None:
        super().__init__("Log", parent)
        self.setObjectName("logs")
        self._manager: Manager | None = None  # set below, or by set_manager once it has started
        self._name = ""
        self._pending: deque[str] = deque(maxlen=MAX_LINES)
        self._log_problems: dict[str, str] = {}  # model name -> why its log file cannot be written
        self._log_recoveries: dict[str, str] = {}  # model name -> its last recovery's note (until dismissed)
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(FLUSH_INTERVAL_MS)
        self._flush_timer.timeout.connect(self.flush)

        self.text = QPlainTextEdit()
        self.text.setObjectName("logText")
        self.text.setReadOnly(True)
        self.text.setUndoRedoEnabled(False)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setMaximumBlockCount(MAX_LINES)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setPlaceholderText("Select an instance to see its llama-server output.")
        self.highlighter = LogHighlighter(self.text.document())

        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search log…")
        self.search_edit.setToolTip("Enter: next match; Shift+F3: previous; Esc clears")
        self.search_edit.setMaximumWidth(240)
        self.search_edit.textChanged.connect(self._on_search_changed)
        self.search_edit.returnPressed.connect(self.find_next)
        self.match_label = QLabel()
        self.follow_button = self._tool_button("Follow", "Keep the newest line in view", checkable=True)
        self.follow_button.setChecked(True)
        self.follow_button.toggled.connect(self._on_follow_toggled)
        self.pause_button = self._tool_button("Pause", "Hold new lines back (they are kept)", checkable=True)
        self.pause_button.toggled.connect(self._on_pause_toggled)
        self.copy_button = self._tool_button("Copy", "Copy the selection, or the whole log")
        self.copy_button.clicked.connect(self.copy)
        self.clear_button = self._tool_button("Clear", "Clear the view (the log file keeps everything)")
        self.clear_button.clicked.connect(self.text.clear)
        self.open_button = self._tool_button("Open log file", "Open the instance's log file")
        self.open_button.clicked.connect(self.open_log_file)

        self.notice_label = QLabel()
        self.notice_label.setObjectName("logFileNotice")
        self.notice_label.setWordWrap(True)
        self.notice_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice_dismiss = self._tool_button("Dismiss", "Hide this note")
        self.notice_dismiss.clicked.connect(self._dismiss_notice)
        self.notice_bar = QWidget()
        notice_layout = QHBoxLayout(self.notice_bar)
        notice_layout.setContentsMargins(4, 2, 4, 2)
        notice_layout.addWidget(self.notice_label, 1)
        notice_layout.addWidget(self.notice_dismiss)
        self.notice_bar.hide()

        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        bar.addStretch(1)
        bar.addWidget(self.search_edit)
        bar.addWidget(self.match_label)
        for button in (
            self.follow_button,
            self.pause_button,
            self.copy_button,
            self.clear_button,
            self.open_button,
        ):
            bar.addWidget(button)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addWidget(self.notice_bar)
        layout.addWidget(self.text, 1)
        self.setWidget(body)

        QShortcut(QKeySequence.StandardKey.Find, body, self.search_edit.setFocus)
        QShortcut(QKeySequence.StandardKey.FindNext, body, self.find_next)
        QShortcut(QKeySequence.StandardKey.FindPrevious, body, self.find_previous)
        if manager is not None:
            self.set_manager(manager)
        self._update_buttons()

    def _tool_button(self, text: str, tip: str, *, checkable: bool = False) -> QToolButton:
        button = QToolButton()
        button.setText(text)
        button.setToolTip(tip)
        button.setCheckable(checkable)
        button.setAutoRaise(True)
        return button

    # -- which instance -----------------------------------------------------------------------------

    @property
    def instance_name(self) -> str:
        return self._name

    def show_instance(self, name: str, *, reload: bool = False) -> None:
        """Show ``name``'s log: what its instance kept so far, then new lines as they come.

        Without an instance in this session (the model ran before llamadash was restarted), the end
        of its log file is shown, so the output of an earlier crash can still be read.
        """
        if name == self._name and not reload:
            return
        self._name = name
        self._pending.clear()
        self.text.clear()
        self.setWindowTitle(f"Log — {name}" if name else "Log")
        self.text.setPlaceholderText(
            f"{name} has written no output yet."
            if name
            else "Select an instance to see its llama-server output."
        )
        instance = self._instance()
        lines: list[str] = []
        if instance is not None:
            try:
                lines = list(instance.log_lines())[-MAX_LINES:]
            except Exception:
                lines = []
        elif name:
            lines = _tail_of_file(self.log_path(), MAX_LINES - 1)  # and the line that says so
            if lines:
                lines = [f"(the end of {name}'s log file from an earlier run)", *lines]
        if lines:
            self.text.setPlainText("\n".join(lines))
            self._scroll_to_end()
        self._update_buttons()
        self._update_notice()

    def _on_instance_added(self, name: str) -> None:
        if name == self._name:  # started or adopted while shown: its buffer replaces the file's tail
            self.show_instance(name, reload=True)

    def _instance(self) -> Instance | None:
        if self._manager is None or not self._name:
            return None
        return self._manager.instance(self._name)

    def log_path(self) -> Path | None:
        """The shown model's log file: its instance's, or where the manager keeps it (earlier runs)."""
        instance = self._instance()
        path = instance.log_path if instance is not None else None
        if not path and self._name and self._manager is not None:
            path = self._manager.log_path(self._name, existing=True)  # an earlier version's name, if only it
        return Path(path) if path else None

    def _update_buttons(self) -> None:
        path = self.log_path()
        self.open_button.setEnabled(path is not None and path.exists())
        self.open_button.setToolTip(str(path) if path else "This instance has no log file yet")

    # -- the log file's health ----------------------------------------------------------------------

    def _on_log_file_problem(self, name: str, problem: str) -> None:
        if problem:
            self._log_problems[name] = problem
            self._log_recoveries.pop(name, None)
        elif self._log_problems.pop(name, None) is not None:
            instance = self._manager.instance(name) if self._manager is not None else None
            note = instance.log_file_recovery_note if instance is not None else ""
            self._log_recoveries[name] = note
        if name == self._name:
            self._update_notice()

    def log_file_notice(self) -> str:
        """The notice about the shown model's log file ("" when there is none)."""
        return self.notice_label.text() if not self.notice_bar.isHidden() else ""

    def _update_notice(self) -> None:
        name = self._name
        instance = self._instance()
        problem = self._log_problems.get(name) or (instance.log_file_problem if instance is not None else "")
        if problem:
            self.notice_label.setText(
                f"{name}'s log is not being saved: {problem}. The server goes on and its new lines"
                " are shown here, but they are not saved until writing works again."
            )
            self.notice_label.setStyleSheet(error_style_sheet())
            self.notice_dismiss.hide()
            self.notice_bar.show()
        elif name in self._log_recoveries:
            note = self._log_recoveries[name]
            self.notice_label.setText(f"{name}'s log file is written again" + (f": {note}." if note else "."))
            self.notice_label.setStyleSheet("padding: 4px;")
            self.notice_dismiss.show()
            self.notice_bar.show()
        else:
            self.notice_bar.hide()

    def _dismiss_notice(self) -> None:
        self._log_recoveries.pop(self._name, None)
        self._update_notice()

    # -- lines --------------------------------------------------------------------------------------

    def _on_log_line(self, name: str, line: str) -> None:
        if name != self._name:
            return
        self._pending.append(line)
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def append_lines(self, lines: list[str]) -> None:
        """Queue lines as if they came from the shown instance (drawn within 100 ms)."""
        for line in lines:
            self._on_log_line(self._name, line)

    def flush(self) -> None:
        """Append the queued lines now (while paused: only count them on the Pause button)."""
        if self.pause_button.isChecked():
            self._update_pause_text()
            return
        if not self._pending:
            return
        lines = list(self._pending)
        self._pending.clear()
        bar = self.text.verticalScrollBar()
        keep = bar.value()
        self.text.appendPlainText("\n".join(lines))
        if self.follow_button.isChecked():
            self._scroll_to_end()
        else:
            bar.setValue(min(keep, bar.maximum()))
        if not self.open_button.isEnabled():  # the log file may have appeared with these lines
            self._update_buttons()
        self._update_pause_text()

    @property
    def pending_count(self) -> int:
        """Lines held back while paused."""
        return len(self._pending)

    def line_count(self) -> int:
        """Lines in the view."""
        return 0 if self.text.document().isEmpty() else self.text.document().blockCount()

    def _scroll_to_end(self) -> None:
        self.text.moveCursor(QTextCursor.MoveOperation.End)
        bar = self.text.verticalScrollBar()
        bar.setValue(bar.maximum())

    def _on_follow_toggled(self, checked: bool) -> None:
        if checked:
            self._scroll_to_end()

    def _on_pause_toggled(self, paused: bool) -> None:
        if not paused:
            self.flush()
        self._update_pause_text()

    def _update_pause_text(self) -> None:
        held = len(self._pending) if self.pause_button.isChecked() else 0
        if held:
            self.pause_button.setText(f"Paused ({held} new)")
        else:
            self.pause_button.setText("Paused" if self.pause_button.isChecked() else "Pause")

    # -- search -------------------------------------------------------------------------------------

    def _on_search_changed(self, text: str) -> None:
        self.highlighter.set_search(text)
        if not text:
            self.match_label.clear()
            return
        count = self.text.toPlainText().lower().count(text.lower())
        self.match_label.setText(f"{count} found" if count else "not found")
        self.find_next(from_start=True)

    def find_next(self, *, from_start: bool = False) -> bool:
        """Select the next match of the search text (wrapping around); returns whether one was found."""
        return self._find(backward=False, from_start=from_start)

    def find_previous(self) -> bool:
        """Select the previous match (wrapping around)."""
        return self._find(backward=True)

    def _find(self, *, backward: bool, from_start: bool = False) -> bool:
        text = self.search_edit.text()
        if not text:
            return False
        flags = QTextDocument.FindFlag.FindBackward if backward else QTextDocument.FindFlag(0)
        if from_start:
            self.text.moveCursor(QTextCursor.MoveOperation.Start)
        if self.text.find(text, flags):
            self.follow_button.setChecked(False)  # the user is reading: do not jump away from the match
            return True
        self.text.moveCursor(QTextCursor.MoveOperation.End if backward else QTextCursor.MoveOperation.Start)
        found = self.text.find(text, flags)
        if found:
            self.follow_button.setChecked(False)
        return found

    # -- copy, open, theme ------------------------------------------------------------------------

    def copy(self) -> None:
        """Copy the selected text, or the whole view when nothing is selected."""
        cursor = self.text.textCursor()
        text = (
            cursor.selectedText().replace("\u2029", "\n")
            if cursor.hasSelection()
            else self.text.toPlainText()
        )
        QGuiApplication.clipboard().setText(text)

    def open_log_file(self) -> bool:
        """Open the log file in the desktop's text viewer; returns whether Qt could hand it over."""
        path = self.log_path()
        if path is None or not path.exists():
            return False
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    def apply_palette(self, palette: QPalette) -> None:
        """Follow the theme: level colours that read on this background."""
        self.highlighter.set_dark(palette.color(QPalette.ColorRole.Base).lightness() < 128)

    def set_manager(self, manager: Manager) -> None:
        """Take lines from this manager (the one started after the window appeared)."""
        if self._manager is not None:
            self._connect(self._manager, False)
        self._manager = manager
        self._log_problems.clear()
        self._log_recoveries.clear()
        self._connect(manager, True)
        name, self._name = self._name, ""
        self.show_instance(name)

    def _connect(self, manager: Manager, connect: bool) -> None:
        for signal_, slot in (
            (manager.logLine, self._on_log_line),
            (manager.instanceAdded, self._on_instance_added),
            (manager.logFileProblem, self._on_log_file_problem),
        ):
            (signal_.connect if connect else signal_.disconnect)(slot)

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self._update_buttons()

    def keyPressEvent(self, event: Any) -> None:
        if event.key() == Qt.Key.Key_Escape and self.search_edit.hasFocus():
            self.search_edit.clear()
            return
        super().keyPressEvent(event)
