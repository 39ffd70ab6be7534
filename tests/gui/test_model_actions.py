"""A model's everyday actions in the window: Open web UI, Copy url, Auto-restart after a crash.

Real widgets over a real database file; the instances are the tests' stand-ins
(:class:`fakes.FakeManager`), which switch auto-restart as the real manager does: on the model's
row, and on its running instance at once.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fakes import FakeInstance, FakeManager
from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QMainWindow, QMenu
from support import tiny_model_record, write_tiny_gguf

from llamadash.core import database
from llamadash.core.states import InstanceState
from llamadash.ui.instances_view import COLUMN, InstancesModel, InstancesView
from llamadash.ui.library_view import LibraryView
from llamadash.ui.tray import TrayController


class _Page(BaseHTTPRequestHandler):
    """``/`` as a llama-server build answers it: its web UI (200), or 404 when built without it."""

    status = 200

    def do_GET(self) -> None:  # http.server calls it by this name
        body = b"<html>chat</html>" if self.status == 200 else b'{"error":{"code":404}}'
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html" if self.status == 200 else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@contextlib.contextmanager
def page_server(status: int) -> Iterator[str]:
    handler = type("Page", (_Page,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def url() -> Iterator[str]:
    """A running server's url whose ``/`` is a web page."""
    with page_server(200) as address:
        yield address


class SwitchingManager(FakeManager):
    """The stand-in with the real manager's auto-restart switch (the row, then the instance)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.switched: list[tuple[str, bool]] = []

    def autorestart(self, name: str) -> bool:
        return database.get_auto_restart(name)

    def set_autorestart(self, name: str, enabled: bool) -> None:
        database.set_auto_restart(name, enabled)
        self.switched.append((name, enabled))
        inst = self.instance(name)
        if inst is not None:
            inst.auto_restart = enabled  # type: ignore[attr-defined]  # the stand-in's own attribute


@pytest.fixture
def db(tmp_path: Path):
    database.init_database()  # in the test's own data directory (conftest)
    model_file = write_tiny_gguf(tmp_path / "tiny.gguf")
    database.save_model(tiny_model_record(model_file, "alpha", port=8081))
    database.save_model(tiny_model_record(model_file, "beta", port=8082))
    yield database
    database.close_database()


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    urls: list[str] = []

    def open_url(url: QUrl) -> bool:
        urls.append(url.toString())
        return True

    monkeypatch.setattr(QDesktopServices, "openUrl", open_url)
    return urls


def make_view(qtbot, manager: FakeManager | None) -> InstancesView:
    model = InstancesModel(database.get_models, manager)
    view = InstancesView(model)
    qtbot.addWidget(view)
    view.resize(1000, 400)
    view.show()
    return view


def texts(menu: QMenu) -> list[str]:
    return [a.text() for a in menu.actions() if a.text()]


# -- Open web UI / Copy url ----------------------------------------------------------------------


def test_web_ui_and_url_are_offered_only_while_the_model_runs(qtbot, db, opened, url):
    manager = SwitchingManager()
    view = make_view(qtbot, manager)
    assert view.select("alpha")
    assert not view.open_web_ui_action.isEnabled() and not view.copy_url_action.isEnabled()
    manager.set_state("alpha", "loading", url=url)
    assert not view.open_web_ui_action.isEnabled()  # its page does not answer yet
    manager.set_state("alpha", "running", url=url)
    assert view.open_web_ui_action.isEnabled() and view.copy_url_action.isEnabled()

    menu = view.context_menu()
    assert view.open_web_ui_action in menu.actions() and view.copy_url_action in menu.actions()
    view.open_web_ui_action.trigger()
    qtbot.waitUntil(lambda: opened == [url], timeout=5000)  # once the server said it has a page
    QGuiApplication.clipboard().clear()
    view.copy_url_action.trigger()
    assert QGuiApplication.clipboard().text() == url

    manager.set_state("alpha", "error", "crashed")
    assert not view.open_web_ui_action.isEnabled() and not view.copy_url_action.isEnabled()
    assert view.select("beta")  # another model, stopped
    assert not view.open_web_ui_action.isEnabled()


def test_a_build_without_the_web_ui_is_said_instead_of_opening_its_404(qtbot, db, opened):
    manager = SwitchingManager()
    view = make_view(qtbot, manager)
    refusals: list[tuple[str, str, str, bool]] = []
    view.refused.connect(lambda *args: refusals.append(args))
    with page_server(404) as address:
        manager.set_state("alpha", "running", url=address)
        assert view.select("alpha")
        view.open_web_ui_action.trigger()
        qtbot.waitUntil(lambda: bool(refusals), timeout=5000)
    verb, name, text, _missing = refusals[0]
    assert (verb, name) == ("open the web UI of", "alpha")
    assert "serves no web UI" in text and f"{address}/v1" in text
    assert opened == []


def test_a_server_that_does_not_answer_is_opened_anyway(qtbot, db, opened):
    from support import free_port

    address = f"http://127.0.0.1:{free_port()}"  # nothing listens: the browser says so
    manager = SwitchingManager()
    view = make_view(qtbot, manager)
    manager.set_state("alpha", "running", url=address)
    assert view.select("alpha")
    view.open_web_ui_action.trigger()
    qtbot.waitUntil(lambda: opened == [address], timeout=5000)


def test_the_toolbar_has_web_ui_and_copy_url_after_start_stop_restart(qtbot, db):
    from llamadash.ui.main_window import MainWindow

    path = database.get_database_path()
    window = MainWindow(store=database, db_path=path, load_models=database.get_models)
    qtbot.addWidget(window)
    actions = window.toolbar.actions()
    view = window.instances_view
    wanted = (view.restart_action, view.open_web_ui_action, view.copy_url_action)
    assert all(a in actions for a in wanted)
    order = [actions.index(a) for a in wanted]
    assert order == sorted(order)
    assert not view.open_web_ui_action.isEnabled()  # nothing runs


def test_the_tray_opens_and_copies_each_running_models_url(qtbot, tmp_path, opened, url):
    window = QMainWindow()
    qtbot.addWidget(window)

    window.stop_all_action = QAction("Stop all", window)  # type: ignore[attr-defined]
    window.quit_action = QAction("Quit", window)  # type: ignore[attr-defined]
    window.settings = SimpleNamespace(  # type: ignore[attr-defined]
        notifications=True, gpu_temp_alert_c=85.0, vram_alert_percent=95.0, ram_alert_percent=90.0
    )
    manager = FakeManager()
    tray = TrayController(
        window, model_names=lambda: ["alpha", "beta"], logs_dir=lambda: tmp_path, available=False
    )
    tray.set_manager(manager)
    tray.rebuild_menu()
    assert not tray.web_ui_menu.isEnabled() and not tray.copy_url_menu.isEnabled()

    manager.set_state("alpha", "running", url=url)
    manager.set_state("beta", "loading", url="http://127.0.0.1:8082")
    tray.rebuild_menu()
    assert tray.web_ui_menu.isEnabled()
    assert texts(tray.web_ui_menu) == ["alpha"]  # beta's page does not answer yet
    assert texts(tray.copy_url_menu) == [f"alpha — {url}"]
    tray.web_ui_menu.actions()[0].trigger()
    qtbot.waitUntil(lambda: opened == [url], timeout=5000)  # once the server said it has a page
    QGuiApplication.clipboard().clear()
    tray.copy_url_menu.actions()[0].trigger()
    assert QGuiApplication.clipboard().text() == url


# -- Auto-restart after a crash -----------------------------------------------------------------


def test_the_instances_menu_switches_auto_restart_through_the_manager(qtbot, db):
    alpha = FakeInstance("alpha", state=InstanceState.RUNNING, url="http://127.0.0.1:8081")
    manager = SwitchingManager([alpha])
    view = make_view(qtbot, manager)
    assert view.select("alpha")
    action = view.auto_restart_action
    assert action in view.context_menu().actions() and action.isCheckable()
    assert action.isEnabled() and not action.isChecked()
    assert view.model.data(view.model.index(view.model.row_of("alpha"), COLUMN["auto_restart"])) == ""

    action.trigger()  # on
    assert manager.switched == [("alpha", True)]
    assert database.get_auto_restart("alpha") is True
    assert alpha.auto_restart is True  # type: ignore[attr-defined]  # the running instance follows
    assert action.isChecked()
    index = view.model.index(view.model.row_of("alpha"), COLUMN["auto_restart"])
    assert view.model.data(index) == "on"
    tip = view.model.data(view.model.index(view.model.row_of("alpha"), 0), Qt.ItemDataRole.ToolTipRole)
    assert "Auto-restart after a crash: on" in tip

    assert view.select("beta")
    assert not action.isChecked()  # beta's own row
    assert view.select("alpha")
    assert action.isChecked()
    action.trigger()  # off
    assert database.get_auto_restart("alpha") is False and not action.isChecked()
    assert view.model.data(view.model.index(view.model.row_of("alpha"), COLUMN["auto_restart"])) == ""


def test_the_switch_is_checked_from_the_row_another_program_wrote(qtbot, db):
    database.set_auto_restart("beta", True)  # e.g. `llamadash models set beta auto_restart=on`
    view = make_view(qtbot, SwitchingManager())
    assert view.select("beta")
    assert view.auto_restart_action.isChecked()


def test_without_a_manager_the_instances_switch_is_disabled(qtbot, db):
    view = make_view(qtbot, None)
    assert view.select("alpha")
    assert not view.auto_restart_action.isEnabled()


class RecordingLibrary(LibraryView):
    def __init__(self, store: Any) -> None:
        self.errors: list[tuple[str, str]] = []
        super().__init__(store)

    def _show_error(self, title: str, text: str) -> None:
        self.errors.append((title, text))


def auto_action(menu: QMenu):
    (action,) = [a for a in menu.actions() if a.text() == "Auto-restart after a crash"]
    return action


def test_the_library_menu_switches_auto_restart_on_the_row_without_a_manager(qtbot, db):
    view = RecordingLibrary(db)
    qtbot.addWidget(view)
    view.show()
    changed: list[bool] = []
    view.libraryChanged.connect(lambda: changed.append(True))
    assert view.select_model(int(db.get_model_by_name("alpha")["id"]))
    action = auto_action(view.context_menu())
    assert action.isCheckable() and not action.isChecked()
    action.trigger()
    assert database.get_auto_restart("alpha") is True and changed == [True]
    assert view.selected_model()["name"] == "alpha"  # the selection stays
    assert auto_action(view.context_menu()).isChecked()
    database.set_auto_restart("alpha", False)  # switched elsewhere (the Instances table, the CLI)
    assert not auto_action(view.context_menu()).isChecked()
    assert view.errors == []


def test_the_library_menu_goes_through_the_manager_when_the_window_has_one(qtbot, db):
    alpha = FakeInstance("alpha", state=InstanceState.RUNNING, url="http://127.0.0.1:8081")
    manager = SwitchingManager([alpha])
    view = RecordingLibrary(db)
    qtbot.addWidget(view)
    view.set_auto_restart_switch(manager)
    assert view.select_model(int(db.get_model_by_name("alpha")["id"]))
    auto_action(view.context_menu()).trigger()
    assert manager.switched == [("alpha", True)]
    assert alpha.auto_restart is True  # type: ignore[attr-defined]
    assert database.get_auto_restart("alpha") is True
