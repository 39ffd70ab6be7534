"""The logs dock: the selected instance's live log, bounded, coloured, searchable, pausable."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import FakeInstance, FakeManager
from PySide6.QtGui import QDesktopServices, QGuiApplication

from llamadash.ui import logs_dock
from llamadash.ui.logs_dock import FLUSH_INTERVAL_MS, MAX_LINES, LogsDock, line_level


ERROR = "0.00.006.436 E srv    load_model: failed to load model, 'nope.gguf'"
WARNING = "0.00.005.420 W srv  llama_server: security: no API key is set"
INFO = "0.00.013.949 I srv  llama_server: listening on http://127.0.0.1:18091"


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "a.log"
    path.write_text(INFO + "\n")
    return path


@pytest.fixture
def dock(qtbot, log_file, tmp_path):
    manager = FakeManager(
        [
            FakeInstance("a", lines=[INFO, WARNING], log_path=log_file),
            FakeInstance("b", lines=["b was here"]),
        ],
        logs_dir=tmp_path / "logs",
    )
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

    def open_url(url):
        opened.append(url.toLocalFile())
        return True

    monkeypatch.setattr(QDesktopServices, "openUrl", open_url)
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
        manager.log_path("alpha").write_text(
            "".join(f"line {i}\n" for i in range(MAX_LINES + 50)) + ERROR + "\n"
        )
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


def test_an_instance_started_or_adopted_while_shown_replaces_the_files_tail(qtbot, log_file, tmp_path):
    manager = FakeManager(logs_dir=tmp_path / "logs")
    dock = LogsDock(manager)
    qtbot.addWidget(dock)
    dock.show_instance("a")
    assert lines_of(dock) == []
    manager.add(
        FakeInstance("a", lines=["adopted: its earlier output is in the log file"], log_path=log_file)
    )
    assert lines_of(dock) == ["adopted: its earlier output is in the log file"]
    assert dock.open_button.isEnabled()


# -- the log file's health ------------------------------------------------------------------------------


def test_a_log_file_that_cannot_be_written_shows_a_notice_until_it_is_written_again(
    qtbot, log_file, tmp_path
):
    a = FakeInstance("a", lines=[INFO], log_path=log_file)
    manager = FakeManager([a, FakeInstance("b")], logs_dir=tmp_path / "logs")
    dock = LogsDock(manager)
    qtbot.addWidget(dock)
    dock.show()
    dock.show_instance("a")
    assert not dock.notice_bar.isVisible() and dock.log_file_notice() == ""
    problem = f"cannot write the log file {log_file}: No space left on device"
    manager.logFileProblem.emit("b", problem)
    assert not dock.notice_bar.isVisible()  # another model's log: not this view's notice
    manager.logFileProblem.emit("a", problem)
    assert dock.notice_bar.isVisible() and dock.notice_label.isVisible()  # shown, not a tooltip
    assert (
        "a's log is not being saved" in dock.log_file_notice()
        and "No space left on device" in dock.log_file_notice()
    )
    assert not dock.notice_dismiss.isVisible()  # it stays while the problem lasts
    dock.show_instance("b")
    assert "b's log is not being saved" in dock.log_file_notice()
    manager.logFileProblem.emit("b", "")
    dock.show_instance("a")
    assert "a's log is not being saved" in dock.log_file_notice()
    a.log_file_recovery_note = "12 lines of output could not be written to this log at 2026-12-01 20:40:01"
    manager.logFileProblem.emit("a", "")
    assert dock.log_file_notice() == f"a's log file is written again: {a.log_file_recovery_note}."
    assert dock.notice_dismiss.isVisible()
    dock.notice_dismiss.click()
    assert not dock.notice_bar.isVisible() and dock.log_file_notice() == ""


def test_the_log_of_an_earlier_version_is_found_under_its_old_name(qtbot, tmp_path):
    from llamadash.core.serverlog import legacy_log_file_name
    from llamadash.services.manager import InstanceManager

    manager = InstanceManager(data_dir=tmp_path, quit_with_app=False)
    try:
        name = "org/model:Q4"
        old = manager.log_path(name).with_name(legacy_log_file_name(name))
        assert old != manager.log_path(name)
        old.parent.mkdir(parents=True, exist_ok=True)
        old.write_text(ERROR + "\n")
        dock = LogsDock(manager)
        qtbot.addWidget(dock)
        dock.show_instance(name)
        assert lines_of(dock) == [f"(the end of {name}'s log file from an earlier run)", ERROR]
        assert dock.log_path() == old and dock.open_button.isEnabled()
        manager.log_path(name).write_text(INFO + "\n")  # once it ran with this version, its own file
        dock.show_instance(name, reload=True)
        assert lines_of(dock)[1:] == [INFO] and dock.log_path() == manager.log_path(name)
    finally:
        manager.close()


@pytest.mark.integration
def test_a_real_server_whose_log_file_fails_is_shown_then_recovers(qtbot, tmp_path, llama_server, tiny_model):
    # The whole path: llama-server's output -> the instance's log file (a link to /dev/full: every
    # write fails with ENOSPC, as on a full disk) -> the manager's logFileProblem -> the dock.
    import json
    import urllib.request

    from support import tiny_model_record

    from llamadash.core import database
    from llamadash.core.llama_server import METADATA_KEY
    from llamadash.services.instance import InstanceState
    from llamadash.services.manager import InstanceManager

    database.init_database(data_dir=tmp_path)
    database.set_metadata(METADATA_KEY, str(llama_server))
    database.save_model(tiny_model_record(tiny_model, "tiny/q4", threads=1, n_parallel=1))
    manager = InstanceManager(data_dir=tmp_path, quit_with_app=False, stop_timeout_s=5)
    signals: list[tuple[str, str]] = []
    manager.logFileProblem.connect(lambda name, text: signals.append((name, text)))
    log = manager.log_path("tiny/q4")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.symlink_to("/dev/full")
    try:
        dock = LogsDock(manager)
        qtbot.addWidget(dock)
        dock.show()
        dock.show_instance("tiny/q4")
        inst = manager.start("tiny/q4")
        qtbot.waitUntil(lambda: inst.state is InstanceState.RUNNING, timeout=30_000)
        assert signals == [("tiny/q4", f"cannot write the log file {log}: No space left on device")]
        assert "No space left on device" in dock.log_file_notice()
        qtbot.waitUntil(lambda: "model loaded" in dock.text.toPlainText(), timeout=5_000)  # the view goes on
        log.unlink()
        qtbot.wait(1100)  # the retry interval
        body = json.dumps({"prompt": "Hi", "n_predict": 4}).encode()
        request = urllib.request.Request(f"{inst.url}/completion", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        qtbot.waitUntil(lambda: len(signals) == 2, timeout=5_000)
        assert signals[1] == ("tiny/q4", "")
        assert dock.log_file_notice().startswith("tiny/q4's log file is written again: ")
        assert "lines of output could not be written to this log" in log.read_text()
        assert "print_timing" in log.read_text()
    finally:
        assert manager.stop_all(10)
        manager.close()
        database.close_database()
