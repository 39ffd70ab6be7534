"""The system-tray icon: state at a glance, live figures in the tooltip, a menu, notifications.

The icon is the worst state of the instances (error, then loading, then running, else idle). The
tooltip follows each metrics sample: CPU, RAM, GPU, VRAM and the running models with their tokens/s.
The menu shows or hides the window, starts or stops each model, opens a running model's web UI or
copies its URL, stops all, opens the logs folder and quits. Notifications come when a model is
ready, crashes or hits the crash-loop cap, and when the GPU temperature, VRAM or RAM crosses its
threshold; a threshold notifies again only after the reading fell :data:`HYSTERESIS` below it, so
a value hovering at the limit does not nag every second.

Where the desktop has no tray (:meth:`QSystemTrayIcon.isSystemTrayAvailable` is false),
:class:`TrayController` makes no icon, ``available`` is false and :attr:`fallback_message` says
what happens instead (the window minimizes rather than hiding).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from llamadash import APP_NAME
from llamadash.core.router import ROUTER_NAME
from llamadash.core.states import ACTIVE_STATES
from llamadash.services.protocols import Manager
from llamadash.ui.charts import GPU_COLUMNS
from llamadash.ui.icons import app_icon, status_icon
from llamadash.ui.instances_view import WebUiOpener, failure_text

__all__ = ["HYSTERESIS", "ThresholdAlarm", "TrayController", "overall_state"]

_log = logging.getLogger(__name__)

#: How far below its threshold a reading must fall before the same alert may come again.
HYSTERESIS = 5.0
#: The states in order of urgency: the icon shows the first one any instance is in.
_URGENCY = ("error", "loading", "running")


def _state_text(state: Any) -> str:
    return str(state)  # an InstanceState is a StrEnum: its text is its value


def overall_state(states: list[str]) -> str:
    """The tray's state for the instances' states: ``error``, ``loading``, ``running`` or ``idle``."""
    for state in _URGENCY:
        if state in states:
            return state
    return "idle"


class ThresholdAlarm:
    """Says when a reading crosses its limit, once, until it has fallen ``hysteresis`` below it.

    Args:
        limit: The threshold (a reading at or above it alarms).
        hysteresis: How far below the limit the reading must go to re-arm.
    """

    def __init__(self, limit: float, hysteresis: float = HYSTERESIS) -> None:
        self.limit = float(limit)
        self.hysteresis = hysteresis
        self.raised = False

    def update(self, value: float | None) -> bool:
        """Feed a reading (``None``: no reading, changes nothing); true when the alarm goes off now."""
        if value is None:
            return False
        if not self.raised and value >= self.limit:
            self.raised = True
            return True
        if self.raised and value < self.limit - self.hysteresis:
            self.raised = False
        return False


class TrayController(QObject):
    """The tray icon of ``window`` (a :class:`~llamadash.ui.main_window.MainWindow`).

    The instance manager comes later (:meth:`set_manager`): the launcher starts it once the window
    is painted. Until then every model is offered as stopped, and its entry is disabled.

    Args:
        window: The main window: its settings, ``quit_action``, ``stop_all_action`` and status bar.
        model_names: Returns the library's model names (for the start/stop entries).
        logs_dir: The folder "Open logs folder" opens.
        available: Override the platform's answer (tests); ``None`` asks Qt.
    """

    notified = Signal(str, str)
    """(title, message) of each notification shown (also when the tray cannot show balloons)."""

    fallback_message = (
        "This desktop has no system tray: llamadash minimizes to the taskbar instead of hiding, "
        "and notifications appear in the status bar."
    )

    def __init__(
        self,
        window: Any,
        *,
        model_names: Callable[[], list[str]],
        logs_dir: Callable[[], Path],
        available: bool | None = None,
    ) -> None:
        super().__init__(window)
        self.window = window
        self._model_names = model_names
        self._logs_dir = logs_dir
        self.available = QSystemTrayIcon.isSystemTrayAvailable() if available is None else available
        self.state = "idle"
        self._manager: Manager | None = None  # until the launcher has started it
        self._workers: Any = None  # the WorkerService, once the Workers tab is installed
        self._tokens: dict[str, float | None] = {}
        self._last_sample: Mapping[str, Any] = {}
        self._gpu_present = False
        self._alarms: dict[str, ThresholdAlarm] = {}
        self._apply_limits()
        self.icon: QSystemTrayIcon | None = None
        self.menu = QMenu(window if isinstance(window, QWidget) else None)
        self.menu.setObjectName("trayMenu")
        # Owned by the controller: QMenu.clear() deletes the actions the menu owns.
        self.toggle_action = QAction("Hide llamadash", self)
        self.toggle_action.triggered.connect(self.toggle_window)
        self.web_ui = WebUiOpener(self)
        self.web_ui.noWebUi.connect(lambda _url, text: self.notify(APP_NAME, text))
        self.menu.aboutToShow.connect(self.rebuild_menu)
        self.rebuild_menu()
        if not self.available:
            return
        icon = QSystemTrayIcon(self._icon_for("idle"), self)
        icon.setContextMenu(self.menu)
        icon.activated.connect(self._on_activated)
        icon.setToolTip(APP_NAME)
        icon.show()
        self.icon = icon

    # -- window ------------------------------------------------------------------------------------

    def toggle_window(self) -> None:
        """Hide the window to the tray, or bring it back."""
        if self.window.isVisible() and not self.window.isMinimized():
            self.window.hide()
        else:
            self.window.show_from_tray()
        self._update_toggle_text()

    def _update_toggle_text(self) -> None:
        shown = self.window.isVisible() and not self.window.isMinimized()
        self.toggle_action.setText("Hide llamadash" if shown else "Show llamadash")

    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.toggle_window()

    # -- menu --------------------------------------------------------------------------------------

    def rebuild_menu(self) -> None:
        """Fill the menu anew: the models and their states change between two openings."""
        menu = self.menu
        menu.clear()
        self._update_toggle_text()
        menu.addAction(self.toggle_action)
        menu.addSeparator()
        manager = self._manager
        try:
            names = list(self._model_names())
        except Exception as exc:
            _log.warning("cannot list the models for the tray menu: %s", exc)
            names = []
        self.model_actions: dict[str, QAction] = {}
        running: list[tuple[str, str]] = []  # (name, url) of the models whose server answers
        for name in names:
            instance = manager.instance(name) if manager is not None else None
            state = _state_text(instance.state) if instance is not None else "stopped"
            active = state in ACTIVE_STATES
            action = menu.addAction(status_icon(state), f"{'Stop' if active else 'Start'} {name}")
            action.setEnabled(manager is not None)
            action.triggered.connect(lambda _=False, n=name, a=active: self._start_or_stop(n, a))
            self.model_actions[name] = action
            if instance is not None and state == "running" and instance.url:
                running.append((name, instance.url))
        if names:
            menu.addSeparator()
        # each running model's own web page (llama-server's chat UI at "/") and its URL
        self.web_ui_menu = menu.addMenu("Open web UI")
        self.copy_url_menu = menu.addMenu("Copy URL")
        for name, url in running:
            self.web_ui_menu.addAction(name).triggered.connect(lambda _=False, u=url: self.open_web_ui(u))
            copy = self.copy_url_menu.addAction(f"{name} — {url}")
            copy.triggered.connect(lambda _=False, u=url: QGuiApplication.clipboard().setText(u))
        for submenu in (self.web_ui_menu, self.copy_url_menu):
            submenu.setEnabled(bool(running))
            submenu.menuAction().setToolTip("" if running else "No model is running")
        menu.addSeparator()
        menu.addAction(self.window.stop_all_action)
        self.logs_action = menu.addAction("Open logs folder")
        self.logs_action.triggered.connect(self.open_logs)
        menu.addSeparator()
        menu.addAction(self.window.quit_action)

    def _start_or_stop(self, name: str, active: bool) -> None:
        manager = self._manager
        if manager is None:  # the entry was disabled: the manager had not started
            return
        try:
            if active:
                manager.stop(name)
            else:
                manager.start(name)
        except Exception as exc:
            self.notify(APP_NAME, failure_text("stop" if active else "start", name, exc))

    def open_web_ui(self, url: str) -> None:
        """Open a running server's own web page in the browser (unless the server says it has none)."""
        self.web_ui.open(url)

    def open_logs(self) -> None:
        """Open the logs folder in the file manager."""
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self._logs_dir())))

    # -- state and figures -------------------------------------------------------------------------

    def _icon_for(self, state: str) -> Any:
        return app_icon() if state == "idle" else status_icon(state)

    def update_state(self) -> None:
        """Show the instances' overall state in the icon and the tooltip."""
        manager = self._manager
        states = [_state_text(i.state) for i in manager.instances()] if manager is not None else []
        state = overall_state(states)
        if state != self.state:
            self.state = state
            if self.icon is not None:
                self.icon.setIcon(self._icon_for(state))
        self._update_tooltip()

    def on_figures(self, name: str, figures: Any) -> None:
        """A model's latest figures (tokens/s for the tooltip)."""
        self._tokens[name] = getattr(figures, "generation_tokens_per_s", None)
        self._update_tooltip()

    def on_sample(self, sample: Any) -> None:
        """A metrics sample: the tooltip, and the threshold alerts."""
        row = sample.as_row() if hasattr(sample, "as_row") else dict(sample)
        self._last_sample = row
        # the GPUs NVML listed (a sample's ``gpus``); a plain row tells by whether any GPU figure is there
        gpus = getattr(sample, "gpus", None)
        self._gpu_present = (
            bool(gpus) if gpus is not None else any(row.get(c) is not None for c in GPU_COLUMNS)
        )
        self._update_tooltip()
        if not self.window.settings.notifications:
            return
        used, total = row.get("gpu_memory_used"), row.get("gpu_memory_total")
        vram = 100.0 * used / total if used is not None and total else None
        readings = {
            "gpu_temperature": row.get("gpu_temperature"),
            "vram": vram,
            "ram": row.get("memory_usage"),
        }
        messages = {
            "gpu_temperature": "The GPU is at {value:.0f} °C (alert at {limit:.0f} °C)",
            "vram": "GPU memory is {value:.0f}% full (alert at {limit:.0f}%)",
            "ram": "System memory is {value:.0f}% full (alert at {limit:.0f}%)",
        }
        for key, value in readings.items():
            alarm = self._alarms[key]
            if alarm.update(value):
                self.notify(
                    f"{APP_NAME}: threshold crossed", messages[key].format(value=value, limit=alarm.limit)
                )

    def apply_settings(self, _settings: Any = None) -> None:
        """Take new thresholds from the window's settings."""
        self._apply_limits()

    def _apply_limits(self) -> None:
        settings = self.window.settings
        limits = {
            "gpu_temperature": settings.gpu_temp_alert_c,
            "vram": settings.vram_alert_percent,
            "ram": settings.ram_alert_percent,
        }
        for key, limit in limits.items():
            alarm = self._alarms.get(key)
            if alarm is None or alarm.limit != limit:
                self._alarms[key] = ThresholdAlarm(limit)

    def tooltip_text(self) -> str:
        """The tooltip: the live figures and the running models."""
        row = self._last_sample

        def pct(key: str) -> str:
            value = row.get(key)
            return "n/a" if value is None else f"{value:.0f}%"

        used, total = row.get("gpu_memory_used"), row.get("gpu_memory_total")
        vram = "n/a" if used is None or not total else f"{used / 1024:.1f}/{total / 1024:.0f} GB"
        temperature = row.get("gpu_temperature")
        gpu = pct("gpu_usage") + ("" if temperature is None else f" {temperature:.0f}°C")
        # as the status bar says it: "no GPU" where NVML lists none, "n/a" for a reading a GPU did not give
        gpu_line = f"GPU {gpu} · VRAM {vram}" if self._gpu_present else "no GPU"
        lines = [APP_NAME, f"CPU {pct('cpu_usage')} · RAM {pct('memory_usage')}", gpu_line]
        manager = self._manager
        running = []
        if manager is not None:
            for instance in manager.instances():
                state = _state_text(instance.state)
                if state == "running":
                    tokens = self._tokens.get(instance.name)
                    running.append(f"{instance.name}: {'n/a' if tokens is None else f'{tokens:.1f}'} tok/s")
                    if instance.name == ROUTER_NAME:  # the models it has in memory now
                        running += [
                            f"{m.name} (via router): {m.describe()}"
                            for m in manager.router_models.models
                            if m.running
                        ]
                elif state in ("loading", "error"):
                    running.append(f"{instance.name}: {state}")
        lines += running or ["no model running"]
        workers = self._workers.running_names() if self._workers is not None else []
        if workers:
            lines.append(f"RPC workers running: {', '.join(workers)}")
        return "\n".join(lines)

    def _update_tooltip(self) -> None:
        if self.icon is not None:
            text = self.tooltip_text()
            if text != self.icon.toolTip():
                self.icon.setToolTip(text)

    # -- notifications -----------------------------------------------------------------------------

    def on_event(self, name: str, event: str, _ms: int) -> None:
        """An instance event: ``ready`` and ``crashed`` are notified."""
        self.update_state()
        if event == "ready":
            self.notify(APP_NAME, f"{name} is ready")
        elif event == "crashed":
            self.notify(APP_NAME, f"{name} crashed")

    def on_state_changed(self, name: str, state: str, reason: str) -> None:
        """An instance's state: the icon, and the crash-loop cap (automatic restart gave up)."""
        self.update_state()
        if _state_text(state) == "error" and "crash loop" in (reason or ""):
            self.notify(
                f"{APP_NAME}: {name} keeps crashing",
                f"{name} crashed repeatedly; llamadash stopped restarting it. See its log.",
                critical=True,
            )

    def notify(self, title: str, message: str, *, critical: bool = False) -> None:
        """Show a notification (the tray's balloon; the status bar where there is no tray)."""
        if not self.window.settings.notifications:
            return
        self.notified.emit(title, message)
        if self.icon is not None and QSystemTrayIcon.supportsMessages():
            kind = (
                QSystemTrayIcon.MessageIcon.Critical if critical else QSystemTrayIcon.MessageIcon.Information
            )
            self.icon.showMessage(title, message, kind, 8000)
        else:
            self.window.statusBar().showMessage(f"{title}: {message}", 10000)

    def set_workers(self, service: Any) -> None:
        """Follow the local RPC workers (a ``WorkerService``): the running ones are in the tooltip."""
        self._workers = service
        service.stateChanged.connect(lambda *_: self._update_tooltip())
        self._update_tooltip()

    def set_manager(self, manager: Manager) -> None:
        """Follow the instance manager: its states, events and figures, and its models in the menu."""
        old = self._manager
        if manager is old:
            return
        if old is not None:
            old.stateChanged.disconnect(self.on_state_changed)
            old.eventOccurred.disconnect(self.on_event)
            old.figuresChanged.disconnect(self.on_figures)
        self._manager = manager
        manager.stateChanged.connect(self.on_state_changed)
        manager.eventOccurred.connect(self.on_event)
        manager.figuresChanged.connect(self.on_figures)
        self.update_state()
