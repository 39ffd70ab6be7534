"""The model library and the parameter editor inside the launched main window."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import launch_gui

from llamadash.app import shutdown
from llamadash.core import database
from llamadash.core.llama_server import METADATA_KEY
from llamadash.ui.param_editor import ParamEditor


@pytest.fixture
def launched(qtbot, tmp_path: Path, tiny_model: Path, llama_server: Path):
    data_dir = tmp_path / "data"
    database.init_database(data_dir / "llama-dashboard.db")
    database.set_metadata(METADATA_KEY, str(llama_server))
    database.save_model({"name": "tiny", "type": "llama", "status": "stopped", "model_path": str(tiny_model)})
    database.close_database()
    gui = launch_gui(qtbot, data_dir)
    yield gui
    shutdown(gui)


def test_library_tab_and_editor_dock_edit_the_stored_model(launched, qtbot):
    window = launched.window
    tabs = [window.workspace.tabText(i) for i in range(window.workspace.count())]
    assert "Library" in tabs
    library = window.library_widget
    assert library.visible_names() == ["tiny"]

    window.open_configuration("tiny")  # what double-click / Ctrl+E / "Configure…" do
    editor = window.findChild(ParamEditor)
    assert editor is not None and window.workspace.currentWidget() is editor
    assert window.workspace.tabText(window.workspace.currentIndex()) == "Configuration — tiny"
    assert editor.model_id == database.get_model_by_name("tiny")["id"]
    # checked against the real binary's --help: the build's label reaches the preview's checks
    editor.param_model.set_value("hf_file_v", "voc.gguf")
    assert any("not supported by llama-server b11434" in issue.message for issue in editor.issues())
    assert not editor.property("startAllowed")
    editor.param_model.set_value("hf_file_v", None)

    editor.param_model.set_value("ctx_size", 512)
    assert database.get_model_by_name("tiny")["ctx_size"] == 512  # saved at once
    assert "--ctx-size 512" in editor.command_text().replace(" \\\n  ", " ")


def test_activating_a_library_row_opens_its_configuration(launched, qtbot):
    window = launched.window
    library = window.library_widget
    model = database.get_model_by_name("tiny")
    with qtbot.waitSignal(window.configureRequested, timeout=2_000) as opened:
        library.modelActivated.emit(model)
    assert opened.args == ["tiny"]
    assert window.findChild(ParamEditor).model_id == model["id"]


def test_a_running_model_can_be_neither_renamed_nor_deleted(launched, qtbot, monkeypatch):
    window, library = launched.window, launched.window.library_widget
    errors: list[str] = []
    monkeypatch.setattr(library, "_show_error", lambda title, text: errors.append(text))
    monkeypatch.setattr(library, "_confirm", lambda *_: True)
    qtbot.waitUntil(lambda: launched.manager is not None, timeout=5_000)
    model_id = database.get_model_by_name("tiny")["id"]
    launched.manager.start("tiny")
    qtbot.waitUntil(lambda: window.instances_model.state_of("tiny") == "running", timeout=60_000)
    # the library's status column follows the server (it said "stopped" until re-read)
    assert library.select_model(model_id)
    assert library.selected_model()["status"] == "running"

    assert not library.rename_selected("renamed") and errors[-1] == "Stop tiny before renaming it."
    assert not library.delete_selected() and errors[-1] == "Stop tiny before deleting it."
    assert database.get_model_by_name("tiny") is not None

    launched.manager.stop("tiny")
    qtbot.waitUntil(lambda: window.instances_model.state_of("tiny") == "stopped", timeout=20_000)
    assert library.select_model(model_id) and library.selected_model()["status"] == "stopped"
    assert library.rename_selected("renamed")
    assert database.get_model_by_name("renamed")["id"] == model_id


def test_start_is_not_offered_while_the_editor_finds_an_error(launched, qtbot):
    window = launched.window
    qtbot.waitUntil(lambda: launched.manager is not None, timeout=5_000)
    window.open_configuration("tiny")
    editor = window.findChild(ParamEditor)
    view = window.instances_view
    assert view.select("tiny") and view.start_action.isEnabled()
    path = editor.param_model.value("model_path") if hasattr(editor.param_model, "value") else None
    editor.param_model.set_value("model_path", None)  # no model source: it cannot start
    assert not view.start_action.isEnabled() and not view.restart_action.isEnabled()
    assert view.start_action.toolTip().startswith("tiny cannot start: "), (
        view.start_action.toolTip(),
        editor.start_problem,
    )
    editor.param_model.set_value("model_path", path or database.get_model_by_name("tiny")["model_path"] or "")
    qtbot.waitUntil(view.start_action.isEnabled, timeout=2_000)
    assert "cannot start" not in view.start_action.toolTip()


def test_the_editor_follows_a_rename_and_empties_when_its_model_is_deleted(launched, qtbot, monkeypatch):
    window, library = launched.window, launched.window.library_widget
    monkeypatch.setattr(library, "_confirm", lambda *_: True)
    window.open_configuration("tiny")
    editor = window.findChild(ParamEditor)
    tab = window.workspace.indexOf(editor)
    assert library.select_model(database.get_model_by_name("tiny")["id"])
    assert library.rename_selected("tiny-renamed")
    assert window.workspace.tabText(tab) == "Configuration — tiny-renamed"
    assert editor.model_name == "tiny-renamed"
    editor.param_model.set_value("ctx_size", 1024)  # still saves to the same row
    assert database.get_model_by_name("tiny-renamed")["ctx_size"] == 1024
    assert library.delete_selected()
    assert not editor.has_model and editor.model_id is None
    assert window.workspace.tabText(tab) == "Configuration"


def test_the_configuration_tab_gets_room_and_the_docks_get_it_back(launched, qtbot):
    window = launched.window
    window.show()
    qtbot.waitExposed(window)
    window.resize(1000, 900)  # the default layout leaves the central area ~300 px of this
    qtbot.wait(100)
    log_height = window.logs_dock.height()
    instances_height = window.workspace.height()
    window.open_configuration("tiny")
    qtbot.waitUntil(lambda: window.workspace.height() > instances_height + 50, timeout=2_000)
    assert window.logs_dock.height() < log_height  # the log gave way to the parameter tree
    window.workspace.setCurrentWidget(window.instances_view)
    qtbot.waitUntil(lambda: abs(window.logs_dock.height() - log_height) <= 2, timeout=2_000)


def test_restart_to_apply_keeps_a_working_server_when_the_new_configuration_cannot_start(
    launched, qtbot, tmp_path: Path
):
    window = launched.window
    qtbot.waitUntil(lambda: launched.manager is not None, timeout=5_000)
    launched.manager.start("tiny")
    qtbot.waitUntil(lambda: window.instances_model.state_of("tiny") == "running", timeout=60_000)
    first_pid = launched.manager.instance("tiny").pid
    window.open_configuration("tiny")
    editor = window.findChild(ParamEditor)

    editor.param_model.set_value("model_path", str(tmp_path / "gone.gguf"))  # saved, but cannot start
    assert editor.restart_bar.isVisible() and not editor.restart_button.isVisible()
    assert "file not found" in editor.restart_label.text()
    editor.restartRequested.emit(editor.model_id)  # an offer made before the error: refused too
    box = window.refusal_box
    assert box is not None and box.isVisible() and "The running server was kept." in box.text()
    assert "does not exist" in box.text()
    box.close()
    qtbot.wait(300)
    assert window.instances_model.state_of("tiny") == "running"
    assert launched.manager.instance("tiny").pid == first_pid

    editor.undo_button.click()  # the model file again, and a change to apply
    editor.param_model.set_value("ctx_size", 256)
    assert editor.restart_offered and editor.restart_button.isVisible()
    editor.restart_button.click()
    qtbot.waitUntil(
        lambda: (
            launched.manager.instance("tiny").pid not in (None, first_pid)
            and window.instances_model.state_of("tiny") == "running"
        ),
        timeout=60_000,
    )
    plan = launched.manager.instance("tiny").launch_plan
    assert plan is not None and "--ctx-size" in plan.argv  # started with the saved change
    launched.manager.stop("tiny")
    qtbot.waitUntil(lambda: window.instances_model.state_of("tiny") == "stopped", timeout=20_000)
