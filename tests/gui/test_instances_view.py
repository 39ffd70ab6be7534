"""The instances view follows the manager's signals: status, figures, errors, actions.

Most tests drive a small stand-in with the manager's signals (a real server cannot be made to crash
on cue); the last ones follow a real llama-server run through the real instance manager.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeFigures, FakeManager
from PySide6.QtCore import Qt
from support import free_port, tiny_model_record

from llamadash.ui.instances_view import (
    COLUMN,
    InstancesModel,
    InstancesView,
    NameRole,
    SortRole,
    format_uptime,
)

NOW_MS = 1_800_000_000_000

LIBRARY: list[dict[str, Any]] = [
    {"name": "llama-3-8b", "port": 8081},
    {"name": "qwen-coder", "port": None},
    {"name": "mistral", "port": 8083},
]


@pytest.fixture
def manager() -> FakeManager:
    return FakeManager()


@pytest.fixture
def view(qtbot, manager) -> InstancesView:
    model = InstancesModel(lambda: [dict(m) for m in LIBRARY], manager, clock_ms=lambda: NOW_MS)
    widget = InstancesView(model)
    qtbot.addWidget(widget)
    widget.resize(900, 400)
    widget.show()
    return widget


def cell(view: InstancesView, name: str, key: str, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
    model = view.model
    return model.data(model.index(model.row_of(name), COLUMN[key]), role)


def test_every_configured_model_is_listed_stopped(view):
    assert view.model.names() == ["llama-3-8b", "qwen-coder", "mistral"]
    assert cell(view, "llama-3-8b", "state") == "Stopped"
    assert cell(view, "llama-3-8b", "port") == "8081"
    assert cell(view, "qwen-coder", "port") == "8080"  # llama-server's default
    assert cell(view, "mistral", "tokens") == "–"  # nothing runs, so nothing to read
    assert not cell(view, "mistral", "state", Qt.ItemDataRole.DecorationRole).isNull()
    assert "3 models" in view.summary_label.text()


def test_status_follows_the_signals_with_colour_icon_and_uptime(view, manager):
    stopped_icon = cell(view, "llama-3-8b", "state", Qt.ItemDataRole.DecorationRole).cacheKey()
    manager.set_state("llama-3-8b", "loading", port=8081, started_at_ms=NOW_MS - 5_000)
    assert cell(view, "llama-3-8b", "state") == "Loading…"
    manager.instance("llama-3-8b").load_progress = (0.42, "loading tensors")
    assert cell(view, "llama-3-8b", "state") == "Loading… 42%"
    assert cell(view, "llama-3-8b", "uptime") == "5s"
    manager.set_state("llama-3-8b", "running", started_at_ms=NOW_MS - 125_000)
    assert cell(view, "llama-3-8b", "state") == "Running"
    assert cell(view, "llama-3-8b", "uptime") == "2m 05s"
    colour = cell(view, "llama-3-8b", "state", Qt.ItemDataRole.ForegroundRole)
    assert colour.green() > colour.red()
    assert cell(view, "llama-3-8b", "state", Qt.ItemDataRole.DecorationRole).cacheKey() != stopped_icon
    assert "1 running" in view.summary_label.text()
    manager.set_state("llama-3-8b", "stopped")
    assert cell(view, "llama-3-8b", "state") == "Stopped" and cell(view, "llama-3-8b", "uptime") == ""


def test_figures_fill_the_row_and_missing_ones_read_n_a(view, manager):
    manager.set_state("mistral", "running", started_at_ms=NOW_MS)
    manager.figuresChanged.emit(
        "mistral",
        FakeFigures(generation_tokens_per_s=41.25, requests_per_minute=3, cpu_percent=12.4, rss_mb=812.0),
    )
    assert cell(view, "mistral", "tokens") == "41.2"
    assert cell(view, "mistral", "requests") == "3.0"
    assert cell(view, "mistral", "cpu") == "12 %"
    assert cell(view, "mistral", "ram") == "812 MB"
    manager.figuresChanged.emit("mistral", FakeFigures(cpu_percent=3.0))
    assert cell(view, "mistral", "tokens") == "n/a"
    assert cell(view, "mistral", "cpu") == "3 %"


def test_an_error_shows_its_reason_and_the_log_tail(view, manager):
    lines = [f"0.00.00{i}.000 I srv    load_model: step {i}" for i in range(20)]
    lines.append("0.00.020.000 E srv    load_model: failed to load model, '/m/broken.gguf'")
    manager.set_state("qwen-coder", "error", "llama-server exited with code 1", lines=lines)
    tooltip = cell(view, "qwen-coder", "name", Qt.ItemDataRole.ToolTipRole)
    assert "exited with code 1" in tooltip and "failed to load model" in tooltip
    assert view.detail.isHidden()
    assert view.select("qwen-coder")
    assert view.detail.isVisible()
    assert "exited with code 1" in view.detail_title.text()
    tail = view.detail_log.toPlainText().splitlines()
    assert tail[-1].endswith("failed to load model, '/m/broken.gguf'") and len(tail) == 12
    assert view.start_action.isEnabled() and view.restart_action.isEnabled()
    assert not view.stop_action.isEnabled()


def test_buttons_and_context_menu_act_on_the_selected_model(view, manager, qtbot):
    assert view.select("mistral")
    assert view.start_action.isEnabled() and not view.stop_action.isEnabled()
    view.start_action.trigger()
    manager.set_state("mistral", "running", started_at_ms=NOW_MS)
    assert view.stop_action.isEnabled() and not view.start_action.isEnabled()
    view.restart_action.trigger()
    view.stop_action.trigger()
    assert manager.calls == [("start", "mistral"), ("restart", "mistral"), ("stop", "mistral")]
    menu_texts = [a.text() for a in view.context_menu().actions() if a.text()]
    assert menu_texts[:3] == ["&Start", "S&top", "Rest&art"]
    assert "&Configure…" in menu_texts


def test_a_refused_start_is_told_to_the_user(view, manager, qtbot):
    manager.refuse = "port 8083 is already in use; port 8084 is free"
    view.select("mistral")
    with qtbot.waitSignal(view.message) as said:
        view.start_action.trigger()
    assert said.args[0] == "Could not start mistral: port 8083 is already in use; port 8084 is free"
    # the manager's own "cannot start NAME: why" is not wrapped a second time
    manager.refuse = "cannot start mistral: the model file /m.gguf does not exist"
    with qtbot.waitSignal(view.message) as said:
        view.start_action.trigger()
    assert said.args[0] == "Cannot start mistral: the model file /m.gguf does not exist"


def test_counts_are_singular_for_one():
    from llamadash.ui.instances_view import count_text

    assert [count_text(n, "model") for n in (0, 1, 2)] == ["0 models", "1 model", "2 models"]


def test_double_click_asks_for_the_configuration(view, qtbot):
    index = view.proxy.mapFromSource(view.model.index(view.model.row_of("qwen-coder"), 0))
    with qtbot.waitSignal(view.configureRequested) as asked:
        view.table.doubleClicked.emit(index)
    assert asked.args == ["qwen-coder"]


def test_selection_tells_which_instance_to_show(view, qtbot):
    with qtbot.waitSignal(view.currentInstanceChanged) as changed:
        view.select("mistral")
    assert changed.args == ["mistral"]


def test_the_filter_narrows_the_table(view):
    view.filter_edit.setText("QWEN")
    assert view.proxy.rowCount() == 1
    assert view.proxy.index(0, 0).data(NameRole) == "qwen-coder"


def test_an_instance_outside_the_library_is_listed_until_removed(view, manager):
    manager.set_state("gpu-box:8080", "running", started_at_ms=NOW_MS)
    assert "gpu-box:8080" in view.model.names()
    assert "Not in the model library" in cell(view, "gpu-box:8080", "name", Qt.ItemDataRole.ToolTipRole)
    manager.instanceRemoved.emit("gpu-box:8080")
    assert "gpu-box:8080" not in view.model.names()


def test_without_a_manager_the_actions_are_disabled(qtbot):
    widget = InstancesView(InstancesModel(lambda: list(LIBRARY)))
    qtbot.addWidget(widget)
    widget.select("mistral")
    assert not widget.start_action.isEnabled()
    assert widget.configure_action.isEnabled()


def test_uptime_reads_like_a_person_would_write_it():
    assert [format_uptime(s) for s in (None, 0, 59, 61, 3599, 3600 * 5 + 120, 86400 * 2 + 3600)] == [
        "",
        "0s",
        "59s",
        "1m 01s",
        "59m 59s",
        "5h 02m",
        "2d 01h",
    ]


# -- a real llama-server --------------------------------------------------------------------------


@pytest.fixture
def real_setup(tmp_path: Path, tiny_model: Path, llama_server: Path):
    from llamadash.core import database
    from llamadash.services.manager import InstanceManager

    data_dir = tmp_path / "data"
    database.init_database(data_dir / "llama-dashboard.db")
    database.save_model(tiny_model_record(tiny_model))
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)  # a header and nothing else: llama-server refuses it
    database.save_model(
        {
            "name": "broken",
            "type": "llama",
            "status": "stopped",
            "model_path": str(broken),
            "port": free_port(),
        }
    )
    manager = InstanceManager(
        data_dir=data_dir, poll_interval_s=0.25, quit_with_app=False, scan_orphans=False
    )
    yield database, manager
    assert manager.stop_all(10)
    manager.close()
    database.close_database()


@pytest.mark.integration
def test_the_view_follows_a_real_llama_server_run(qtbot, real_setup):
    database, manager = real_setup
    model = InstancesModel(database.get_models, manager)
    view = InstancesView(model)
    qtbot.addWidget(view)
    view.show()
    seen: list[str] = []
    model.dataChanged.connect(lambda *_: seen.append(model.state_of("tiny")))
    view.select("tiny")
    view.start_action.trigger()
    qtbot.waitUntil(lambda: model.state_of("tiny") == "running", timeout=60_000)
    assert "loading" in seen  # the view showed the load before the server was ready
    assert cell(view, "tiny", "state") == "Running"
    port = manager.instance("tiny").port
    assert cell(view, "tiny", "port") == str(port)
    qtbot.waitUntil(lambda: cell(view, "tiny", "ram") not in ("–", "n/a"), timeout=10_000)
    assert cell(view, "tiny", "ram").endswith(" MB")
    assert view.stop_action.isEnabled()
    view.stop_action.trigger()
    qtbot.waitUntil(lambda: model.state_of("tiny") == "stopped", timeout=20_000)
    assert cell(view, "tiny", "state") == "Stopped" and cell(view, "tiny", "ram") == "–"


@pytest.mark.integration
def test_a_real_failed_start_shows_the_reason_and_the_log(qtbot, real_setup):
    database, manager = real_setup
    model = InstancesModel(database.get_models, manager)
    view = InstancesView(model)
    qtbot.addWidget(view)
    view.show()
    view.select("broken")
    started = time.monotonic()
    view.start_action.trigger()
    qtbot.waitUntil(lambda: model.state_of("broken") == "error", timeout=30_000)
    assert time.monotonic() - started < 30
    assert view.detail.isVisible()
    reason = model.reason_of("broken")
    assert "exited with code" in reason
    assert reason.splitlines()[0] in view.detail_title.text()
    assert "model loading error" in cell(view, "broken", "name", Qt.ItemDataRole.ToolTipRole)
    assert view.detail_log.toPlainText().strip() != "(no log output)"
    assert view.start_action.isEnabled()


@pytest.mark.integration
def test_a_real_server_web_ui_opens_and_the_auto_restart_switch_brings_it_back_after_a_kill(
    qtbot, real_setup, monkeypatch
):
    import os
    import signal
    import urllib.error
    import urllib.request

    from PySide6.QtGui import QDesktopServices, QGuiApplication

    database, manager = real_setup
    opened: list[str] = []

    def open_url(url: Any) -> bool:
        opened.append(url.toString())
        return True

    monkeypatch.setattr(QDesktopServices, "openUrl", open_url)
    model = InstancesModel(database.get_models, manager)
    view = InstancesView(model)
    qtbot.addWidget(view)
    view.show()
    view.select("tiny")
    assert not view.open_web_ui_action.isEnabled() and not view.auto_restart_action.isChecked()
    view.start_action.trigger()
    qtbot.waitUntil(lambda: model.state_of("tiny") == "running", timeout=60_000)
    url = manager.instance("tiny").url
    refusals: list[str] = []
    view.refused.connect(lambda _verb, _name, text, _missing: refusals.append(text))
    view.open_web_ui_action.trigger()
    qtbot.waitUntil(lambda: bool(opened or refusals), timeout=10_000)
    try:  # llama-server's own web UI, unless this build was made without it (404 at "/")
        with urllib.request.urlopen(url + "/", timeout=10) as page:
            assert page.status == 200 and "html" in page.headers.get("Content-Type", "")
        assert opened == [url] and refusals == []
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
        assert opened == [] and "serves no web UI" in refusals[0]
    view.copy_url_action.trigger()
    assert QGuiApplication.clipboard().text() == url

    view.auto_restart_action.trigger()  # on, for the server that runs now
    assert database.get_auto_restart("tiny") is True and manager.instance("tiny").auto_restart
    assert cell(view, "tiny", "auto_restart") == "on" and view.auto_restart_action.isChecked()
    first_pid = manager.instance("tiny").pid
    os.kill(first_pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: model.state_of("tiny") == "error", timeout=20_000)
    qtbot.waitUntil(
        lambda: model.state_of("tiny") == "running" and manager.instance("tiny").pid != first_pid,
        timeout=60_000,
    )


def test_the_selection_survives_a_reload_of_the_library(view):
    # the library is re-read after every editor save; the selected row must stay selected
    assert view.select("mistral")
    view.model.refresh()
    assert view.current_name() == "mistral"


def test_the_port_is_the_running_servers_and_otherwise_the_librarys(view, manager):
    # started on another port (the configured one was taken): the table says where it really is
    manager.set_state("mistral", "running", port=8099)
    assert cell(view, "mistral", "port") == "8099"
    manager.set_state("mistral", "stopped")
    assert cell(view, "mistral", "port") == "8083"  # where the next start goes
    LIBRARY[2]["port"] = 9000  # the port is edited in the library
    try:
        view.model.refresh()
        assert cell(view, "mistral", "port") == "9000"
        manager.set_state("mistral", "error", "crashed")
        assert cell(view, "mistral", "port") == "9000"
    finally:
        LIBRARY[2]["port"] = 8083


def test_a_pending_automatic_restart_can_be_stopped(view, manager):
    view.select("mistral")
    manager.set_state("mistral", "error", "crashed; restarting in 2 s", restart_pending=True)
    assert view.stop_action.isEnabled()
    view.stop_action.trigger()
    assert manager.calls[-1] == ("stop", "mistral")
    manager.set_state("mistral", "error", "crashed 3 times; gave up", restart_pending=False)
    assert not view.stop_action.isEnabled()


# -- first run: no model yet, no llama-server -------------------------------------------------------


def test_with_no_model_the_view_says_how_to_add_one_until_there_is_one(qtbot, manager):
    library: list[dict[str, Any]] = []
    model = InstancesModel(lambda: [dict(m) for m in library], manager, clock_ms=lambda: NOW_MS)
    widget = InstancesView(model, show_buttons=False)
    qtbot.addWidget(widget)
    widget.resize(900, 400)
    widget.show()
    assert widget.showing_empty_state and widget.empty_state.isVisible()
    assert not widget.table.isVisible() and not widget.filter_edit.isVisible()
    assert "No models yet" in widget.empty_label.text() and "Add ▸ GGUF file…" in widget.empty_label.text()
    assert not widget.library_button.isVisible()  # nowhere to go until a library is offered
    widget.set_library_offered(True)
    assert widget.library_button.isVisible()
    with qtbot.waitSignal(widget.libraryRequested):
        qtbot.mouseClick(widget.library_button, Qt.MouseButton.LeftButton)

    library.append({"name": "first", "port": 8081})
    model.refresh()  # what the window does when the library changed
    assert not widget.showing_empty_state and widget.table.isVisible()
    assert widget.current_name() == "first" and widget.start_action.isEnabled()

    library.clear()
    model.refresh()
    assert widget.showing_empty_state and not widget.table.isVisible()
    assert not widget.start_action.isEnabled()


def test_the_empty_state_is_made_only_once_the_library_is_empty_and_keeps_the_offer(qtbot, manager):
    from PySide6.QtWidgets import QScrollArea

    library: list[dict[str, Any]] = [{"name": "first", "port": 8081}]
    model = InstancesModel(lambda: [dict(m) for m in library], manager, clock_ms=lambda: NOW_MS)
    widget = InstancesView(model, show_buttons=False)
    qtbot.addWidget(widget)
    widget.set_library_offered(True)  # before there is an empty state to show it in
    widget.resize(900, 400)
    widget.show()
    assert widget.findChild(QScrollArea, "instancesEmpty") is None  # nothing of it while models show
    assert not widget.showing_empty_state and widget.table.isVisible()

    library.clear()
    model.refresh()
    assert widget.findChild(QScrollArea, "instancesEmpty") is widget.empty_state
    assert widget.showing_empty_state and widget.empty_state.isVisible() and not widget.table.isVisible()
    assert widget.library_button.isVisible()  # the offer made before it existed
    layout = widget.layout()
    assert layout.indexOf(widget.empty_state) == layout.indexOf(widget.table) + 1  # in the table's place
    qtbot.waitUntil(lambda: widget.empty_state.height() > 300)  # the table's room (the view is 400 high)


def test_an_instance_outside_the_library_is_no_empty_state(qtbot, manager):
    model = InstancesModel(list, manager, clock_ms=lambda: NOW_MS)
    widget = InstancesView(model)
    qtbot.addWidget(widget)
    assert widget.showing_empty_state
    manager.set_state("gpu-box:8080", "running", started_at_ms=NOW_MS)
    assert not widget.showing_empty_state  # an attached server is something to show


def refusal_like_the_managers(name: str) -> Exception:
    """What the instance manager raises when no llama-server is found (``core.launch.plan_launch``'s refusal)."""
    from llamadash.core.launch import plan_launch
    from llamadash.services.instance import InstanceError

    try:
        plan_launch(
            {},
            None,
            None,
            name=name,
            binary_problem="no llama-server found: not configured (llamadash llama-server --path BIN)",
        )
    except InstanceError as refused:
        return refused
    raise AssertionError("no binary, yet a plan")


def test_a_refused_start_says_whether_no_llama_server_was_found(view, manager, qtbot, monkeypatch):
    from llamadash.core.launch import MissingBinaryError

    assert isinstance(refusal_like_the_managers("mistral"), MissingBinaryError)
    assert not isinstance(RuntimeError("port 8083 is already in use"), MissingBinaryError)
    view.select("mistral")

    def refuse(_name: str) -> None:
        raise refusal_like_the_managers("mistral")

    monkeypatch.setattr(manager, "start", refuse)
    with qtbot.waitSignal(view.refused) as refused:
        view.start_action.trigger()
    verb, name, text, missing = refused.args
    assert (verb, name, missing) == ("start", "mistral", True)
    assert text.startswith("Cannot start mistral: no llama-server found")
    monkeypatch.undo()  # the stand-in's own refusal: any other reason
    manager.refuse = "port 8083 is already in use"
    with qtbot.waitSignal(view.refused) as refused:
        view.start_action.trigger()
    assert refused.args == ["start", "mistral", "Could not start mistral: port 8083 is already in use", False]


@pytest.mark.integration
def test_a_server_reachable_without_an_api_key_is_warned_about_in_the_pane(
    qtbot, real_setup, tiny_model: Path
):
    database, manager = real_setup
    database.save_model(tiny_model_record(tiny_model, name="exposed", host="0.0.0.0"))
    database.save_model(tiny_model_record(tiny_model, name="keyed", host="0.0.0.0", api_key="sekret"))
    model = InstancesModel(database.get_models, manager)
    view = InstancesView(model)
    qtbot.addWidget(view)
    view.show()
    for name in ("exposed", "keyed"):
        view.select(name)
        view.start_action.trigger()
        qtbot.waitUntil(lambda name=name: model.state_of(name) == "running", timeout=60_000)
    view.select("exposed")
    qtbot.waitUntil(view.warning_label.isVisible, timeout=5_000)
    assert "0.0.0.0 without an API key" in view.warning_label.text()
    assert "0.0.0.0 without an API key" in cell(view, "exposed", "name", Qt.ItemDataRole.ToolTipRole)
    view.select("keyed")
    assert not view.warning_label.isVisible()
    view.select("exposed")
    view.stop_action.trigger()
    qtbot.waitUntil(lambda: model.state_of("exposed") == "stopped", timeout=20_000)
    assert not view.warning_label.isVisible()


def test_the_view_is_made_in_library_order_without_sorting_the_rows(qtbot, manager, monkeypatch):
    """The table starts in library order; enabling its sorting must not first sort every row by the
    first column (a few hundred data() calls into Python, thrown away at once, before the first paint)."""
    library = [{"name": f"model-{i:02d}", "port": 9000 + i} for i in range(50)][::-1]  # not by name
    model = InstancesModel(lambda: [dict(m) for m in library], manager, clock_ms=lambda: NOW_MS)
    asked: list[int] = []
    data = InstancesModel.data

    def counting_data(self, index, role=Qt.ItemDataRole.DisplayRole):
        asked.append(role)
        return data(self, index, role)

    monkeypatch.setattr(InstancesModel, "data", counting_data)
    widget = InstancesView(model)
    qtbot.addWidget(widget)
    assert SortRole not in asked
    names = [widget.proxy.index(row, COLUMN["name"]).data() for row in range(widget.proxy.rowCount())]
    assert names == [m["name"] for m in library]
    widget.table.sortByColumn(COLUMN["name"], Qt.SortOrder.AscendingOrder)  # a click on the header
    assert widget.proxy.index(0, COLUMN["name"]).data() == "model-00"
