"""Library ▸ Add ▸ Remote server… and the Instances view's Attach/Detach for a remote llama-server."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QDialogButtonBox, QLineEdit
from support import free_port, health_status, stop_process

from llamadash.core import database
from llamadash.ui.instances_view import InstancesModel, InstancesView
from llamadash.ui.library_view import LibraryView
from llamadash.ui.remote_dialog import RemoteServerDialog

KEY = "gui-k3y"


class RecordingView(LibraryView):
    def __init__(self, store: Any) -> None:
        self.errors: list[tuple[str, str]] = []
        super().__init__(store)

    def _show_error(self, title: str, text: str) -> None:
        self.errors.append((title, text))


@pytest.fixture
def db() -> Iterator[Any]:
    database.init_database()
    yield database
    database.close_database()


def test_the_dialog_accepts_only_a_name_and_a_server_url(qtbot):
    dialog = RemoteServerDialog()
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert not ok.isEnabled()
    dialog.url_edit.setText("http://me:secret@gpu-box:8080")
    assert not ok.isEnabled() and "user name or password" in dialog.status_label.text()
    dialog.url_edit.setText("http://gpu-box:8080/")
    assert not ok.isEnabled()  # no name yet
    dialog.name_edit.setText("gpu-box")
    assert ok.isEnabled() and dialog.status_label.text() == ""
    assert dialog.url() == "http://gpu-box:8080"
    assert dialog.key_edit.echoMode() == QLineEdit.EchoMode.Password and dialog.api_key() is None
    dialog.key_edit.setText("  k  ")
    assert dialog.api_key() == "k"


def test_the_library_adds_a_remote_server_and_shows_its_address(qtbot, db):
    view = RecordingView(db)
    qtbot.addWidget(view)
    menu = view.add_button.menu()
    assert "Remote server\u2026" in [a.text() for a in menu.actions()]
    model_id = view.add_remote("gpu-box", "http://gpu-box:8080", KEY)
    assert model_id is not None and view.errors == []
    stored = db.get_model(model_id)
    assert (stored["type"], stored["remote_url"], stored["api_key"]) == (
        "remote",
        "http://gpu-box:8080",
        [KEY],
    )
    assert dict(view.details_rows())["Source"] == "remote server: http://gpu-box:8080"
    assert view.add_remote("gpu-box", "http://other:1") is None  # the name is taken: told, not added
    assert "already exists" in view.errors[-1][1]


@pytest.mark.integration
def test_attach_and_detach_a_real_remote_server_in_the_instances_view(
    qtbot, tmp_path: Path, tiny_model: Path, llama_server: Path
):
    from llamadash.services.manager import InstanceManager

    port = free_port()
    argv = [
        str(llama_server),
        "-m",
        str(tiny_model),
        "--port",
        str(port),
        "-c",
        "256",
        "-t",
        "1",
        "--metrics",
    ]
    with (tmp_path / "remote.log").open("wb") as log:
        server = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "LLAMA_API_KEY": KEY}
        )
    database.init_database(tmp_path / "data" / "llama-dashboard.db")
    manager = InstanceManager(
        data_dir=tmp_path / "data", poll_interval_s=0.25, quit_with_app=False, scan_orphans=False
    )
    try:
        deadline = time.monotonic() + 60
        while health_status(port) != 200:
            assert server.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        from llamadash.core.library_service import Library

        Library(database, lambda _name: False).add_remote("gpu-box", f"http://127.0.0.1:{port}", api_key=KEY)
        model = InstancesModel(database.get_models, manager)
        view = InstancesView(model)
        qtbot.addWidget(view)
        view.show()
        assert view.select("gpu-box")
        assert view.start_action.text() == "&Attach" and view.stop_action.text() == "De&tach"
        assert view.start_action.isEnabled() and not view.stop_action.isEnabled()
        view.start_action.trigger()
        qtbot.waitUntil(lambda: model.state_of("gpu-box") == "running", timeout=30_000)
        assert not view.start_action.isEnabled() and view.stop_action.isEnabled()

        stop_process(server)  # the other machine's server goes away: an error with the reason
        qtbot.waitUntil(lambda: model.state_of("gpu-box") == "error", timeout=15_000)
        assert "unreachable" in model.reason_of("gpu-box")
        qtbot.waitUntil(lambda: view.detail.isVisible(), timeout=5_000)
        assert view.detail_log.toPlainText() == "(its log stays on its own machine)"
        assert view.stop_action.isEnabled()  # still attached (retrying): it can be detached
        view.stop_action.trigger()
        qtbot.waitUntil(lambda: model.state_of("gpu-box") == "stopped", timeout=5_000)
        assert view.start_action.isEnabled()
    finally:
        stop_process(server)
        assert manager.stop_all(10)
        manager.close()
        database.close_database()


def test_the_window_serves_prometheus_as_its_setting_says(qtbot, tmp_path: Path):
    import urllib.error
    import urllib.request

    from llamadash.app import shutdown
    from llamadash.core import paths
    from llamadash.core import settings as settings_mod
    from support import launch_gui

    data_dir = tmp_path / "data"
    port = free_port()
    database.init_database(paths.default_database_path(paths.resolve_data_dir(str(data_dir))))
    settings_mod.save_settings(settings_mod.Settings(prometheus_address=f"127.0.0.1:{port}"), database)
    database.close_database()
    url = f"http://127.0.0.1:{port}/metrics"

    def answers(series: bytes = b"llamadash_info") -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200 and series in response.read()
        except OSError:
            return False

    gui = launch_gui(qtbot, data_dir)
    try:
        window = gui.window
        qtbot.waitUntil(answers, timeout=30_000)  # once the manager has started after the first paint
        qtbot.waitUntil(
            lambda: answers(b"llamadash_memory_usage_ratio{host="), timeout=10_000
        )  # the sampler's
        with pytest.raises(settings_mod.SettingsError, match="needs a bearer token"):
            window.save_settings(window.settings.replace(prometheus_address=f"0.0.0.0:{port}"))
        assert answers()  # refused: nothing changed
        moved = free_port()
        window.save_settings(
            window.settings.replace(prometheus_address=f"0.0.0.0:{moved}", prometheus_token="t")
        )
        assert not answers()
        assert window.statusBar().currentMessage() == f"Prometheus metrics at http://0.0.0.0:{moved}/metrics"
        request = urllib.request.Request(
            f"http://127.0.0.1:{moved}/metrics", headers={"Authorization": "Bearer t"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{moved}/metrics", timeout=5)
        assert refused.value.code == 401
        refused.value.close()
        window.save_settings(window.settings.replace(prometheus_address=""))  # off
        assert window.prometheus.endpoint is None
    finally:
        shutdown(gui)


def test_a_remote_servers_url_and_key_are_changed_from_its_menu(qtbot, db):
    view = RecordingView(db)
    qtbot.addWidget(view)
    model_id = view.add_remote("gpu-box", "http://gpu-box:8080", KEY)
    assert model_id is not None
    menu = view.context_menu()
    texts = {a.text(): a for a in menu.actions()}
    assert "Server URL and key\u2026" in texts and not texts["Auto-restart after a crash"].isEnabled()
    # the dialog it opens is filled in: the name read-only, the key kept unless typed
    dialog = RemoteServerDialog(name="gpu-box", url="http://gpu-box:8080", has_key=True)
    qtbot.addWidget(dialog)
    assert dialog.name_edit.isReadOnly() and dialog.url() == "http://gpu-box:8080"
    assert "unchanged" in dialog.key_edit.placeholderText()
    assert view.set_remote(model_id, "https://gpu-box.lan:8443")
    stored = db.get_model(model_id)
    assert stored["remote_url"] == "https://gpu-box.lan:8443" and stored["api_key"] == [KEY]  # key kept
    assert view.set_remote(model_id, "https://gpu-box.lan:8443", "new-key")
    assert db.get_model(model_id)["api_key"] == ["new-key"]
    assert not view.set_remote(model_id, "ftp://nope")  # refused, told, nothing changed
    assert "http://" in view.errors[-1][1]
    assert db.get_model(model_id)["remote_url"] == "https://gpu-box.lan:8443"
