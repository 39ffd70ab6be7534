"""The tray: :class:`TrayController` offscreen (fallback and forced-available), and a real tray host.

The real tests start ``Xvfb`` and the ``trayer`` tray host (``tests/xdesktop.py``): llamadash's tray
in a subprocess on the xcb platform (without a tray host the fallback must be used), and the whole
app started ``--minimized`` whose tray icon ``xdotool`` right-clicks to start and stop a real
llama-server. The tools missing is a failure, not a skip: ``.ci/run`` installs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from fakes import FakeManager
from PySide6.QtWidgets import QMainWindow
from support import health_status, tiny_model_record
from xdesktop import Desktop, wait_until

from llamadash.core import database
from llamadash.ui.tray import ThresholdAlarm, TrayController, overall_state


class FakeWindow(QMainWindow):
    """What the tray uses of the main window: its settings, two actions, showing it again."""

    def __init__(self) -> None:
        super().__init__()
        from PySide6.QtGui import QAction

        self.settings = SimpleNamespace(
            notifications=True, gpu_temp_alert_c=85.0, vram_alert_percent=95.0, ram_alert_percent=90.0
        )
        self.calls: list[str] = []
        self.stop_all_action = QAction("Stop all", self)
        self.stop_all_action.triggered.connect(lambda: self.calls.append("stop_all"))
        self.quit_action = QAction("Quit", self)
        self.quit_action.triggered.connect(lambda: self.calls.append("quit"))

    def show_from_tray(self) -> None:
        self.calls.append("show")
        self.showNormal()


@pytest.fixture
def parts(qtbot, tmp_path):
    manager = FakeManager()
    window = FakeWindow()
    qtbot.addWidget(window)
    names = ["alpha", "beta"]
    tray = TrayController(window, model_names=lambda: names, logs_dir=lambda: tmp_path, available=False)
    tray.set_manager(manager)
    notes: list[tuple[str, str]] = []
    tray.notified.connect(lambda title, text: notes.append((title, text)))
    return SimpleNamespace(manager=manager, window=window, tray=tray, notes=notes)


def test_overall_state_is_the_most_urgent():
    assert overall_state([]) == "idle"
    assert overall_state(["stopped"]) == "idle"
    assert overall_state(["running", "stopped"]) == "running"
    assert overall_state(["running", "loading"]) == "loading"
    assert overall_state(["loading", "error", "running"]) == "error"


def test_the_fallback_makes_no_icon_and_says_so(parts):
    assert parts.tray.available is False
    assert parts.tray.icon is None
    assert "no system tray" in parts.tray.fallback_message
    parts.tray.notify("llamadash", "hello")
    assert parts.notes == [("llamadash", "hello")]
    assert "hello" in parts.window.statusBar().currentMessage()  # where a balloon cannot go


def test_the_state_follows_the_instances(parts):
    manager, tray = parts.manager, parts.tray
    assert tray.state == "idle"
    manager.set_state("alpha", "running")
    assert tray.state == "running"
    manager.set_state("beta", "loading")
    assert tray.state == "loading"
    manager.set_state("alpha", "error", "exit 1")
    assert tray.state == "error"
    manager.set_state("alpha", "stopped")
    manager.set_state("beta", "stopped")
    assert tray.state == "idle"


def test_the_tooltip_has_the_figures_and_the_running_models(parts):
    manager, tray = parts.manager, parts.tray
    assert "no model running" in tray.tooltip_text()
    manager.set_state("alpha", "running")
    manager.set_state("beta", "loading")
    manager.figuresChanged.emit("alpha", SimpleNamespace(generation_tokens_per_s=42.25))
    tray.on_sample(
        {
            "cpu_usage": 12.4,
            "memory_usage": 55.0,
            "gpu_usage": 80.0,
            "gpu_temperature": 66.0,
            "gpu_memory_used": 4096.0,
            "gpu_memory_total": 8192.0,
        }
    )
    text = tray.tooltip_text()
    assert "CPU 12%" in text and "RAM 55%" in text
    assert "GPU 80% 66°C" in text and "VRAM 4.0/8 GB" in text
    assert "alpha: 42.2 tok/s" in text or "alpha: 42.3 tok/s" in text
    assert "beta: loading" in text


def test_the_tooltip_lists_the_models_the_router_has_in_memory(parts):
    from llamadash.core.router import ROUTER_NAME, RouterModel

    manager, tray = parts.manager, parts.tray
    manager.set_state(ROUTER_NAME, "running")
    manager.router_models.models = [
        RouterModel("alpha", "loaded"),
        RouterModel("beta", "unloaded"),
        RouterModel("gamma", "sleeping"),
    ]
    lines = tray.tooltip_text().splitlines()
    assert "alpha (via router): loaded" in lines and "gamma (via router): sleeping" in lines
    assert not any(line.startswith("beta") for line in lines)  # not in memory: not listed


def test_the_menu_actions_call_the_window_and_the_manager(parts):
    manager, window, tray = parts.manager, parts.window, parts.tray
    manager.set_state("alpha", "running")
    tray.rebuild_menu()
    texts = [a.text() for a in tray.menu.actions() if a.text()]
    assert texts[0] in ("Show llamadash", "Hide llamadash")
    assert "Stop alpha" in texts and "Start beta" in texts
    assert "Stop all" in texts and "Open logs folder" in texts and texts[-1] == "Quit"
    tray.model_actions["alpha"].trigger()
    tray.model_actions["beta"].trigger()
    assert manager.calls == [("stop", "alpha"), ("start", "beta")]
    window.stop_all_action.trigger()
    window.quit_action.trigger()
    assert window.calls == ["stop_all", "quit"]
    window.show()
    tray.toggle_window()
    assert not window.isVisible()
    assert tray.toggle_action.text() == "Show llamadash"
    tray.toggle_window()
    assert window.calls[-1] == "show" and window.isVisible()
    assert tray.toggle_action.text() == "Hide llamadash"


def test_notifications_on_ready_crash_and_crash_loop(parts):
    manager, notes = parts.manager, parts.notes
    manager.eventOccurred.emit("alpha", "ready", 0)
    manager.eventOccurred.emit("alpha", "crashed", 0)
    manager.eventOccurred.emit("alpha", "stopped", 0)  # not notified
    manager.set_state("alpha", "error", "crash loop: 5 crashes in 60 s")
    assert [text for _title, text in notes[:2]] == ["alpha is ready", "alpha crashed"]
    assert len(notes) == 3 and "keeps crashing" in notes[2][0]
    parts.window.settings.notifications = False
    manager.eventOccurred.emit("alpha", "ready", 0)
    assert len(notes) == 3


def test_threshold_notifications_have_hysteresis(parts):
    tray, notes = parts.tray, parts.notes
    for value in (80, 86, 90, 84, 86, 81, 79, 85):
        tray.on_sample({"gpu_temperature": float(value)})
    alerts = [text for title, text in notes if "threshold" in title]
    # 86 alarms; 90, 84 and 86 stay quiet (not 5 below); 79 re-arms; 85 alarms again
    assert len(alerts) == 2
    assert "86 °C" in alerts[0] and "85 °C" in alerts[1]
    tray.on_sample({"gpu_memory_used": 7900.0, "gpu_memory_total": 8000.0, "memory_usage": 95.0})
    alerts = [text for title, text in notes if "threshold" in title]
    assert any("GPU memory is 99% full" in a for a in alerts)
    assert any("System memory is 95% full" in a for a in alerts)


def test_threshold_alarm_ignores_missing_readings():
    alarm = ThresholdAlarm(10, hysteresis=2)
    assert not alarm.update(None)
    assert alarm.update(10)
    assert not alarm.update(None) and alarm.raised
    assert not alarm.update(8.5)
    assert not alarm.update(12)
    assert not alarm.update(7.9)
    assert alarm.update(11)


@pytest.mark.qt_log_ignore("systemTrayWindowChanged")  # offscreen has no tray window to follow
def test_a_forced_available_tray_shows_an_icon_with_the_tooltip(qtbot, tmp_path):
    manager = FakeManager()
    window = FakeWindow()
    qtbot.addWidget(window)
    tray = TrayController(window, model_names=list, logs_dir=lambda: tmp_path, available=True)
    tray.set_manager(manager)
    assert tray.icon is not None and tray.icon.contextMenu() is tray.menu
    manager.set_state("alpha", "running")
    assert "alpha" in tray.icon.toolTip()
    shown: list[tuple[str, str]] = []
    tray.icon.showMessage = lambda title, text, *a: shown.append((title, text))  # type: ignore[method-assign]
    tray.notify("t", "m")
    from PySide6.QtWidgets import QSystemTrayIcon

    if QSystemTrayIcon.supportsMessages():
        assert shown == [("t", "m")]
    else:
        assert "m" in window.statusBar().currentMessage()


# ------------------------------------------------------------------------------------------------
# the real thing: Xvfb and the trayer tray host, the tray in a subprocess on xcb

_SCRIPT = r"""
import json, sys
from PySide6.QtWidgets import QApplication, QSystemTrayIcon
app = QApplication(sys.argv)
sys.path[:0] = [sys.argv[1], __import__("os").path.dirname(sys.argv[1])]  # test_tray; fakes, xdesktop
from fakes import FakeManager
from test_tray import FakeWindow
from llamadash.ui.tray import TrayController
from PySide6.QtCore import QTimer
deadline = __import__("time").monotonic() + 10
while not QSystemTrayIcon.isSystemTrayAvailable() and __import__("time").monotonic() < deadline and sys.argv[2] == "wait":
    app.processEvents(); __import__("time").sleep(0.1)
manager = FakeManager(); window = FakeWindow(); window.show()
tray = TrayController(window, model_names=lambda: ["alpha"], logs_dir=lambda: sys.argv[1])
tray.set_manager(manager)
manager.set_state("alpha", "running")
for _ in range(20): app.processEvents()
result = {"available": QSystemTrayIcon.isSystemTrayAvailable(), "controller_available": tray.available,
          "icon": tray.icon is not None, "visible": bool(tray.icon and tray.icon.isVisible()),
          "tooltip": tray.icon.toolTip() if tray.icon else None}
menu = tray.icon.contextMenu() if tray.icon else tray.menu
menu.aboutToShow.emit()
acts = {a.text(): a for a in menu.actions() if a.text()}
result["menu"] = sorted(acts)
acts["Stop alpha"].trigger(); acts["Stop all"].trigger(); acts["Hide llamadash"].trigger()
result["hidden"] = not window.isVisible()
acts["Quit"].trigger()
result["manager_calls"] = manager.calls; result["window_calls"] = window.calls
print("RESULT " + json.dumps(result))
"""


@pytest.fixture(scope="module")
def tray_display():
    """An Xvfb display with the trayer tray host; yields the DISPLAY value."""
    with Desktop(tray=True) as desktop:
        yield desktop.display


@pytest.fixture(scope="module")
def bare_display():
    """An Xvfb display without a tray host."""
    with Desktop(tray=False) as desktop:
        yield desktop.display


def _run_tray(display: str, wait: bool) -> dict:
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    env.pop("WAYLAND_DISPLAY", None)
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(Path(__file__).parent), "wait" if wait else "nowait"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1][len("RESULT ") :])


def test_a_real_tray_host_shows_the_icon_and_its_menu_works(tray_display):
    result = _run_tray(tray_display, wait=True)
    assert result["available"] is True
    assert result["controller_available"] is True
    assert result["icon"] and result["visible"]
    assert "alpha" in result["tooltip"]
    assert {"Stop alpha", "Stop all", "Open logs folder", "Quit", "Hide llamadash"} <= set(result["menu"])
    assert result["manager_calls"] == [["stop", "alpha"]]
    assert result["window_calls"] == ["stop_all", "quit"]
    assert result["hidden"] is True


def test_without_a_tray_host_the_fallback_is_used(bare_display):
    result = _run_tray(bare_display, wait=False)
    assert result["available"] is False
    assert result["controller_available"] is False
    assert result["icon"] is False
    assert result["manager_calls"] == [["stop", "alpha"]]
    assert result["window_calls"] == ["stop_all", "quit"]


# ------------------------------------------------------------------------------------------------
# the whole app in a real tray, driven with the mouse and keyboard (xdotool), with a real llama-server


def _healthy(port: int) -> bool:
    return health_status(port) == 200


@pytest.mark.integration
def test_the_app_in_the_tray_starts_and_stops_a_model_from_its_menu(
    tmp_path: Path, tiny_model: Path, llama_server: Path
):
    data_dir = tmp_path / "data"
    database.init_database(data_dir / "llama-dashboard.db")
    tiny = tiny_model_record(tiny_model, name="tiny")
    database.save_model(tiny)
    database.save_model(tiny_model_record(tiny_model, name="other"))
    database.close_database()
    log = tmp_path / "app.log"
    with Desktop(tray=True) as desktop, log.open("w") as out:
        app = subprocess.Popen(
            [sys.executable, "-m", "llamadash", "--data-dir", str(data_dir), "--minimized"],
            env={**desktop.env, "LLAMA_SERVER_BIN": str(llama_server)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            # started minimized: only the tray icon shows it; in the menu, "Show llamadash", then
            # "Start tiny" (the library's order), picked with the keyboard
            menu = desktop.open_tray_menu()
            desktop.choose_in_menu(menu, "Down", "Down", "Return")
            wait_until(lambda: _healthy(tiny["port"]), 60, "tiny to answer /health", 0.25)
            pids = [p.pid for p in psutil.Process(app.pid).children() if "llama-server" in p.name()]
            assert len(pids) == 1

            # the same entry now stops it
            menu = desktop.open_tray_menu()
            desktop.choose_in_menu(menu, "Down", "Down", "Return")
            wait_until(lambda: not psutil.pid_exists(pids[0]), 20, "tiny's llama-server to exit", 0.25)
            assert not _healthy(tiny["port"])
            assert app.poll() is None  # llamadash itself goes on in the tray
        except BaseException:
            out.flush()
            print(f"llamadash's output:\n{log.read_text()[-6000:]}")  # shown by pytest on failure
            raise
        finally:
            app.terminate()
            code = app.wait(30)
    assert code == 0, log.read_text()


def test_the_tooltip_says_no_gpu_as_the_status_bar_does_and_n_a_for_a_missing_reading(parts):
    from llamadash.core.metrics.nvml import GpuReading
    from llamadash.core.metrics.sample import Sample

    tray = parts.tray
    tray.on_sample(Sample(timestamp=1, cpu_usage=5.0, memory_usage=40.0))  # NVML lists no GPU
    text = tray.tooltip_text()
    assert "no GPU" in text and "VRAM" not in text and "n/a" not in text
    gpu = GpuReading(
        index=0, name="GPU", uuid="GPU-1", utilization=None, temperature=None,
        memory_used_mb=None, memory_total_mb=None, power_w=None,
    )  # fmt: skip
    tray.on_sample(Sample(timestamp=2, cpu_usage=5.0, memory_usage=40.0, gpus=(gpu,)))  # a GPU, no readings
    assert "GPU n/a · VRAM n/a" in tray.tooltip_text()
