"""The logs dock: the selected instance's live log, bounded, coloured, searchable, pausable."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication

from llamadash.ui import logs_dock
from llamadash.ui.logs_dock import FLUSH_INTERVAL_MS, MAX_LINES, LogsDock, line_level


class Instance:
    def __init__(self, name: str, lines: list[str], log_path: Path | None = None) -> None:
        self.name = name
        self.lines = lines
        self.log_path = log_path

    def log_lines(self) -> list[str]:
        return list(self.lines)


class Manager(QObject):
    logLine = Signal(str, str)

    def __init__(self, instances: dict[str, Instance]) -> None:
        super().__init__()
        self._instances = instances

    def instance(self, name: str) -> Instance | None:
        return self._instances.get(name)


ERROR = "0.00.006.436 E srv    load_model: failed to load model, 'nope.gguf'"
WARNING = "0.00.005.420 W srv  llama_server: security: no API key is set"
INFO = "0.00.013.949 I srv  llama_server: listening on http://127.0.0.1:18091"


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "a.log"
    path.write_text(INFO + "\n")
    return path


@pytest.fixture
def dock(qtbot, log_file):
    manager = Manager({"a": Instance("a", [INFO, WARNING], log_file), "b": Instance("b", ["b was here"])})
    widget = LogsDock(manager)
    qtbot.addWidget(widget)
    widget.resize(800, 300)
    widget.show()
    widget.manager = manager  # type: ignore[attr-defined]
    return widget


def lines_of(dock: LogsDock) -> list[str]:
    return dock.text.toPlainText().splitlines()


def test_showing_an_instance_loads_what_it_kept_then_follows_it(dock, qtbot):
    dock.show_instance("a")
    assert lines_of(dock) == [INFO, WARNING]
    assert dock.windowTitle() == "Log — a"
    dock.manager.logLine.emit("a", ERROR)
    dock.manager.logLine.emit("b", "not for this view")
    qtbot.waitUntil(lambda: lines_of(dock)[-1] == ERROR, timeout=FLUSH_INTERVAL_MS * 10)
    assert "not for this view" not in dock.text.toPlainText()
    bar = dock.text.verticalScrollBar()
    assert bar.value() == bar.maximum()  # following the newest line
    dock.show_instance("b")
    assert lines_of(dock) == ["b was here"]


def test_the_view_is_bounded(dock):
    dock.show_instance("a")
    dock.append_lines([f"0.00.000.{i:03d} I line {i}" for i in range(MAX_LINES + 250)])
    dock.flush()
    assert dock.line_count() == MAX_LINES
    assert lines_of(dock)[-1].endswith(f"line {MAX_LINES + 249}")


def test_levels_are_coloured(dock):
    assert [line_level(line) for line in (ERROR, WARNING, INFO, "error: cannot open", "plain")] == [
        "E",
        "W",
        "I",
        "E",
        "",
    ]
    dock.show_instance("a")
    dock.append_lines([ERROR])
    dock.flush()
    document = dock.text.document()
    colours = {}
    for number in range(document.blockCount()):
        block = document.findBlockByNumber(number)
        formats = block.layout().formats()
        colours[block.text()[13]] = formats[0].format.foreground().color().name() if formats else None
    assert colours["E"] == "#cf222e"
    assert colours["W"] == "#9a6700"
    assert colours["I"] is None  # plain text colour


def test_search_finds_highlights_and_steps_through_matches(dock):
    dock.show_instance("a")
    dock.append_lines([ERROR, INFO])
    dock.flush()
    dock.search_edit.setText("LLAMA_SERVER")  # case-insensitive
    assert dock.match_label.text() == "3 found"
    assert dock.text.textCursor().selectedText().lower() == "llama_server"
    first = dock.text.textCursor().blockNumber()
    assert dock.find_next()
    assert dock.text.textCursor().blockNumber() > first
    assert not dock.follow_button.isChecked()  # reading a match: do not jump away
    dock.search_edit.setText("no such text")
    assert dock.match_label.text() == "not found"


def test_pause_holds_lines_back_and_resume_shows_them(dock, qtbot):
    dock.show_instance("a")
    dock.pause_button.setChecked(True)
    dock.manager.logLine.emit("a", ERROR)
    qtbot.wait(FLUSH_INTERVAL_MS * 3)
    assert ERROR not in dock.text.toPlainText()
    assert dock.pending_count == 1
    dock.flush()
    assert "1 new" in dock.pause_button.text()
    dock.pause_button.setChecked(False)
    assert lines_of(dock)[-1] == ERROR


def test_copy_takes_the_selection_or_everything(dock):
    dock.show_instance("a")
    dock.copy()
    assert QGuiApplication.clipboard().text() == f"{INFO}\n{WARNING}"
    dock.text.selectAll()
    cursor = dock.text.textCursor()
    cursor.setPosition(0)
    cursor.setPosition(12, cursor.MoveMode.KeepAnchor)
    dock.text.setTextCursor(cursor)
    dock.copy()
    assert QGuiApplication.clipboard().text() == INFO[:12]


def test_open_log_file_hands_the_file_to_the_desktop(dock, log_file, monkeypatch):
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    dock.show_instance("b")  # no log file
    assert not dock.open_button.isEnabled()
    assert dock.open_log_file() is False
    dock.show_instance("a")
    assert dock.open_button.isEnabled()
    dock.open_button.click()
    assert opened == [str(log_file)]


def test_dark_theme_uses_readable_colours(dock):
    from PySide6.QtGui import QPalette

    dark = QPalette()
    dark.setColor(QPalette.ColorRole.Base, "#1b1f24")
    dock.apply_palette(dark)
    dock.show_instance("a")
    block = dock.text.document().findBlockByNumber(1)
    assert block.layout().formats()[0].format.foreground().color().name() == logs_dock._LEVEL_COLOURS["W"][1]


def test_a_model_that_ran_before_a_restart_shows_the_end_of_its_log_file(qtbot, tmp_path):
    # the real manager of a new session: no instance yet, but the log file of the last run is there
    from llamadash.services.manager import InstanceManager

    manager = InstanceManager(data_dir=tmp_path, quit_with_app=False)
    try:
        manager.log_path("alpha").write_text("".join(f"line {i}\n" for i in range(MAX_LINES + 50)) + ERROR + "\n")
        dock = LogsDock(manager)
        qtbot.addWidget(dock)
        dock.show_instance("alpha")
        shown = lines_of(dock)
        assert shown[0] == "(the end of alpha's log file from an earlier run)"
        assert shown[-1] == ERROR and len(shown) == MAX_LINES  # the bound of the view, header included
        assert dock.open_button.isEnabled() and dock.log_path() == manager.log_path("alpha")
        dock.show_instance("never-ran")
        assert lines_of(dock) == [] and not dock.open_button.isEnabled()
        assert dock.text.placeholderText() == "never-ran has written no output yet."
    finally:
        manager.close()


def test_an_instance_started_or_adopted_while_shown_replaces_the_files_tail(qtbot, log_file):
    class AddingManager(Manager):
        instanceAdded = Signal(str)

    manager = AddingManager({})
    dock = LogsDock(manager)
    qtbot.addWidget(dock)
    dock.show_instance("a")
    assert lines_of(dock) == []
    manager._instances["a"] = Instance("a", ["adopted: its earlier output is in the log file"], log_file)
    manager.instanceAdded.emit("a")
    assert lines_of(dock) == ["adopted: its earlier output is in the log file"]
    assert dock.open_button.isEnabled()
