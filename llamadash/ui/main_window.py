"""The main window: the instances, the chart docks, the log, menus, toolbar, status bar and tray.

The window owns no process and no database connection. It is given:

* ``store``, where settings and the window layout are kept (the :mod:`llamadash.core.database`
  module, or anything with ``get_metadata``/``set_metadata``/``delete_metadata``);
* ``load_models``, which returns the model library;
* the saved metrics ``history``, per-instance samples (``instance_history``, the tokens/s chart)
  and instance ``events``, drawn before the first new sample;
* the metrics ``sampler`` to follow (``sampled``), optional;
* later, once it has been painted, the instance ``manager`` (:meth:`MainWindow.set_manager`, a
  :class:`~llamadash.services.protocols.Manager`): the launcher starts it after the first paint so
  the window appears sooner. Until then the instances are listed as stopped and cannot be started.

When ``store`` also keeps the record of requests (``get_requests``, ``count_requests``,
``get_daily_totals``: the database module), an "Activity" tab lists them
(:class:`~llamadash.ui.activity_view.ActivityView`, read when first shown); selecting a request marks
its moment on the charts.

Places kept for the model library and the parameter editor (another part of llamadash fills them):
:meth:`MainWindow.set_library_widget` adds the library as a tab of the central area, next to the
instances (before Activity); :meth:`MainWindow.set_editor_widget` puts the editor in a "Configuration" tab.
Double-clicking an instance calls :meth:`MainWindow.open_configuration`, which emits
:attr:`MainWindow.configureRequested`.

A start the manager refuses is shown in a message box (:meth:`MainWindow.show_refusal`); when the
reason is that no llama-server was found, the box offers to open the settings.
"""

from __future__ import annotations

import contextlib
import html
import itertools
import logging
import platform
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pyqtgraph as pg
from PySide6 import __version__ as pyside_version
from PySide6.QtCore import QByteArray, QObject, Qt, QTimer, QUrl, Signal, qVersion
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFrame,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSystemTrayIcon,
    QTabWidget,
    QToolBar,
    QWidget,
)

from llamadash import APP_NAME, __version__
from llamadash.core import settings as settings_mod
from llamadash.core.events import InstanceEvent
from llamadash.core.llama_server import configured_capabilities
from llamadash.core.router import RouterSettings
from llamadash.core.settings import MetadataStore, Settings
from llamadash.core.states import ACTIVE_STATES, InstanceState
from llamadash.services.endpoint_switch import EndpointSwitch
from llamadash.services.protocols import Instance, Manager
from llamadash.ui.charts import ChartBoard, ChartDock, history_last_row
from llamadash.ui.icons import action_icon, app_icon
from llamadash.ui.instances_view import InstancesModel, InstancesView, count_text
from llamadash.ui.router_panel import RouterPanel
from llamadash.ui.lazy_tabs import LazyTabs
from llamadash.ui.logs_dock import LogsDock
from llamadash.ui.theme import Theme, apply_theme, error_style_sheet

if TYPE_CHECKING:  # made (and imported) when first shown or opened: see LazyTabs
    from llamadash.ui.activity_view import ActivityView
    from llamadash.ui.settings_dialog import SettingsDialog
    from llamadash.ui.try_pane import TryPane

__all__ = ["GEOMETRY_KEY", "LAYOUT_VERSION", "STATE_KEY", "MainWindow"]

_log = logging.getLogger(__name__)

#: Metadata keys of the saved dock layout and window geometry (base64 of Qt's own formats).
STATE_KEY = "window_state"
GEOMETRY_KEY = "window_geometry"
#: Bump when the docks change so an old layout is not forced onto new docks.
LAYOUT_VERSION = 1
#: How long the window waits for the instances to stop when quitting.
QUIT_STOP_TIMEOUT_S = 10.0
#: How long after the first paint the tabs behind Instances start being made (see LazyTabs).
MAKE_TABS_AFTER_MS = 300

# The default layout, by chart key: one column per entry along the bottom, tabs within a column.
_BOTTOM_COLUMNS: tuple[tuple[str, ...], ...] = (
    ("cpu",),
    ("memory", "disk"),
    ("gpu_usage", "gpu_temperature"),
    ("gpu_memory", "gpu_power"),
)
_RIGHT_COLUMN: tuple[tuple[str, ...], ...] = (("tokens",), ("requests", "active_models"))


def describe_binary(path: str, cache_dir: Path | None = None) -> tuple[bool, str, str]:
    """:func:`llamadash.ui.settings_dialog.describe_binary`; that module is imported when first needed."""
    from llamadash.ui.settings_dialog import describe_binary as describe

    return describe(path, cache_dir)


class _BinaryInfo(QObject):
    """Carries the llama-server description from a worker thread to the window."""

    done = Signal(bool, str)


class MainWindow(QMainWindow):
    """The llamadash window.

    Args:
        store: Keeps the settings and the window layout (``get/set/delete_metadata``).
        db_path: The database file, shown in the status bar.
        load_models: Returns the model library as dicts (``name``, ``port``, ...).
        settings: The settings in force (default: read from ``store``).
        history: Saved metrics, oldest first, drawn at once: one list per column
            (``database.get_metrics_columns``) or a list of rows.
        instance_history: Saved per-instance samples (``get_instance_history``), oldest first: the
            tokens/s chart draws them at once.
        events: Saved instance events, shown as markers.
        sampler: The metrics sampler, followed through ``sampled``.
        data_dir: The data directory (the disk chart's fallback, "Open data folder").
        set_retention: Called with the new history window (minutes) so the database keeps as much.
        restore_layout: Restore the saved dock layout and geometry (off: start from the default).
    """

    configureRequested = Signal(str)
    """The user asked to edit a model's configuration (double-click, Ctrl+E)."""

    settingsChanged = Signal(object)
    """New :class:`~llamadash.core.settings.Settings` were saved and applied."""

    firstPainted = Signal()
    """The window has been painted for the first time (services that can wait start then)."""

    def __init__(
        self,
        *,
        store: MetadataStore,
        db_path: Path,
        load_models: Callable[[], list[dict[str, Any]]],
        settings: Settings | None = None,
        history: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]] = (),
        instance_history: Sequence[Mapping[str, Any]] = (),
        events: Iterable[InstanceEvent] = (),
        sampler: Any | None = None,
        data_dir: Path | None = None,
        set_retention: Callable[[float], None] | None = None,
        restore_layout: bool = True,
    ) -> None:
        super().__init__()
        self.store = store
        self.db_path = Path(db_path)
        self.data_dir = Path(data_dir) if data_dir else self.db_path.parent
        self.sampler = sampler
        # None until the launcher starts the manager, after the first paint (see set_manager)
        self.manager: Manager | None = None
        self._painted = False
        self._set_retention = set_retention
        self.settings = settings or settings_mod.load_settings(store)
        self.prometheus = EndpointSwitch(self)
        """The opt-in Prometheus endpoint (Settings ▸ Prometheus), served once the manager exists."""
        self.prometheus.apply(self.settings.prometheus_address, self.settings.prometheus_token)
        self._quitting = False
        self.binary_text = ""

        self.setObjectName("mainWindow")
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(app_icon())
        self.setDockNestingEnabled(True)
        self.setDockOptions(
            QMainWindow.DockOption.AnimatedDocks
            | QMainWindow.DockOption.AllowNestedDocks
            | QMainWindow.DockOption.AllowTabbedDocks
        )
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.resize(1440, 900)

        self.theme: Theme = apply_theme(
            self.settings.theme_preference, charts_follow=self.settings.chart_theme_follows_app
        )

        # central area: the instances, and later the model library, as tabs
        # no manager yet: set_manager gives it to the table, the log and the tray once it has started
        self.instances_model = InstancesModel(load_models, None, parent=self)
        self.instances_view = InstancesView(self.instances_model, show_buttons=False)
        self.router_panel = RouterPanel(lambda: RouterSettings.of(self.settings))  # serve the library
        self.instances_view.add_footer(self.router_panel)
        self.workspace = QTabWidget()
        self.workspace.setObjectName("workspace")
        self.workspace.setDocumentMode(True)
        self.workspace.setTabBarAutoHide(True)  # one tab needs no tab bar
        self.workspace.addTab(self.instances_view, "Instances")
        # The other tabs are made when first shown (or asked for): nothing of theirs at start-up.
        self.lazy_tabs = LazyTabs(self.workspace)
        if all(hasattr(store, name) for name in ("get_requests", "count_requests", "get_daily_totals")):
            self.lazy_tabs.add("activity", "Activity", self._make_activity_view)
        self.lazy_tabs.add("try", "Try", self._make_try_pane)  # send a prompt to a running model
        self.instances_view.currentInstanceChanged.connect(self._follow_selection_in_try)
        self.setCentralWidget(self.workspace)
        self.editor_widget: QWidget | None = None
        self._heights_before_editor: list[int] | None = None
        self._describe_thread: threading.Thread | None = None  # asks llama-server what it is
        self._background_halted = False  # set at quit: no llama-server check starts after it
        # without an NVIDIA GPU the four GPU charts fold into one compact note (and back when one shows)
        self._gpu_folded: list[ChartDock] = []
        self.workspace.currentChanged.connect(self._fit_workspace)

        # docks
        self.board = ChartBoard(
            colors=self.theme.charts,
            window_minutes=self.settings.history_minutes,
            interval_s=self.settings.sample_interval_s,
            drawing=False,  # the window first, its plots right after (see firstPainted)
            parent=self,
        )
        self.logs_dock = LogsDock(None, self)
        self.logs_dock.apply_palette(self.theme.palette)
        self.apply_default_layout()

        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_status_bar()
        self._build_tray()

        # feeds
        # Before the window shows: each chart draws this when it is first seen.
        self.board.set_events(events)
        self.board.load_history(history)
        self.board.load_instance_history(instance_history)
        newest = history_last_row(history)
        if newest is not None:
            self._show_glance(newest)
        self.instances_view.currentInstanceChanged.connect(self.logs_dock.show_instance)
        self.instances_view.showLogRequested.connect(self._show_log)
        self.instances_view.configureRequested.connect(self.open_configuration)
        # a refusal is shown in full in a message box, not cut short in the status bar
        self.instances_view.refused.connect(self.show_refusal)
        self.router_panel.refused.connect(self.show_refusal)
        self.settingsChanged.connect(lambda _settings: self.router_panel.settings_changed())
        self.instances_view.libraryRequested.connect(self.show_library)
        self.refusal_box: QMessageBox | None = None
        self.logs_dock.show_instance(self.instances_view.current_name())
        if sampler is not None:
            sampler.sampled.connect(self._on_sample)
            sampler.sampled.connect(self.tray_controller.on_sample)
            sampler.failed.connect(self._on_sample_failed)
            saving_changed = getattr(sampler, "saving_changed", None)
            if saving_changed is not None:
                saving_changed.connect(self.show_saving)
                self.show_saving(getattr(sampler, "save_problem", None) is None, sampler.save_problem or "")
        self._update_orphan_actions()  # none yet: disabled until a manager has found some
        self.firstPainted.connect(self.board.start_drawing)

        self._default_geometry = self.saveGeometry()
        if restore_layout:
            self.restore_layout()
        self.board.gpuPresenceChanged.connect(self._fold_gpu_charts)
        # once the window is laid out: resizing docks of a window not yet shown upsets pyqtgraph
        self.firstPainted.connect(lambda: self._fold_gpu_charts(self.board.has_gpu))
        # Asking llama-server which build it is runs Python on a thread (sharing the interpreter
        # lock) and maybe a process: not while the window is being built and painted.
        self.firstPainted.connect(lambda: QTimer.singleShot(1000, self, self._describe_binary_later))
        # the tabs behind Instances, one at a time once the window is up (a click finds them made)
        self.firstPainted.connect(
            lambda: QTimer.singleShot(MAKE_TABS_AFTER_MS, self, self.lazy_tabs.make_all_in_turns)
        )

    def set_manager(self, manager: Manager) -> None:
        """Follow the instance manager: the table, the log, the tray, the tokens chart, the markers.

        The launcher starts the manager once the window is painted, so the window appears sooner.
        """
        if manager is self.manager:
            return
        if self.manager is not None:
            self.manager.figuresChanged.disconnect(self._on_figures)
            self.manager.eventOccurred.disconnect(self._on_event)
            self.manager.stateChanged.disconnect(self._on_state_changed)
            self.manager.orphansChanged.disconnect(self._update_orphan_actions)
        self.manager = manager
        self._show_prometheus_problem(self.prometheus.set_sources(manager, self.sampler))
        activity = self.lazy_tabs.made("activity")
        if activity is not None:
            cast("ActivityView", activity).set_manager(manager)
        self.tray_controller.set_manager(manager)
        self.instances_model.set_manager(manager)
        self.logs_dock.set_manager(manager)
        try_pane = self.lazy_tabs.made("try")
        if try_pane is not None:
            cast("TryPane", try_pane).set_manager(manager)
        self.router_panel.set_manager(manager)
        manager.figuresChanged.connect(self._on_figures)
        manager.eventOccurred.connect(self._on_event)
        manager.stateChanged.connect(self._on_state_changed)
        manager.orphansChanged.connect(self._update_orphan_actions)
        self._update_stop_all()
        self.instances_view._update_actions()
        self._update_orphan_actions()
        count = len(self._orphans())
        if count:
            self.statusBar().showMessage(
                f"{count} llama-server process(es) from an earlier session are still running: "
                "Instances ▸ Adopt leftover servers, or Stop leftover servers",
                20000,
            )

    # ------------------------------------------------------------------------------------------------
    # servers left running by an earlier session

    def _orphans(self) -> list[dict[str, Any]]:
        if self.manager is None:
            return []
        try:
            return list(self.manager.orphans())
        except Exception:  # a listing that fails offers nothing; the servers go on either way
            return []

    def _update_orphan_actions(self) -> None:
        orphans = self._orphans()
        suffix = f" ({len(orphans)})" if orphans else ""
        self.adopt_orphans_action.setText(f"Adopt &leftover servers{suffix}")
        self.stop_orphans_action.setText(f"Stop leftover ser&vers{suffix}")
        for action in (self.adopt_orphans_action, self.stop_orphans_action):
            action.setEnabled(bool(orphans))

    def adopt_orphans(self) -> None:
        """Monitor the servers an earlier session left running as their models' instances."""
        manager = self.manager
        if manager is None:
            return
        for orphan in self._orphans():
            try:
                manager.adopt_orphan(orphan["pid"])
            except Exception as exc:
                self.statusBar().showMessage(f"Could not adopt {orphan.get('model')}: {exc}", 8000)
        self._update_orphan_actions()

    def stop_orphans(self) -> None:
        """Stop the servers an earlier session left running (waits a few seconds at most)."""
        manager = self.manager
        if manager is not None and self._orphans():
            stopped = manager.stop_orphans()
            self.statusBar().showMessage(f"Stopped {len(stopped)} leftover llama-server process(es)", 5000)
        self._update_orphan_actions()

    def paintEvent(self, event: Any) -> None:
        super().paintEvent(event)
        if not self._painted:
            self._painted = True
            QTimer.singleShot(0, self, self.firstPainted.emit)  # after this paint has reached the screen

    # ------------------------------------------------------------------------------------------------
    # the tabs made when first shown

    @property
    def activity_view(self) -> ActivityView | None:
        """The Activity tab (made now if it was not yet), or ``None`` where the store keeps no requests."""
        if "activity" not in self.lazy_tabs:
            return None
        return cast("ActivityView", self.lazy_tabs.widget("activity"))

    def _make_activity_view(self) -> ActivityView:
        from llamadash.ui.activity_view import ActivityView, RequestsSource

        view = ActivityView(
            cast(RequestsSource, self.store), model_names=self.instances_model.names, colors=self.theme.charts
        )
        view.requestSelected.connect(self._mark_request)
        if self.manager is not None:
            view.set_manager(self.manager)
        # its widgets in the next turn (made in turns, the tab is ready before it is opened: ~70 ms
        # that opening it paid); what it reads is read when it is first shown
        QTimer.singleShot(0, view, view.ensure_built)
        return view

    @property
    def try_pane(self) -> TryPane:
        """The Try tab (made now if it was not yet)."""
        return cast("TryPane", self.lazy_tabs.widget("try"))

    def _make_try_pane(self) -> TryPane:
        from llamadash.ui.try_pane import TryPane

        pane = TryPane()
        if self.manager is not None:
            pane.set_manager(self.manager)
        pane.choose(self.instances_view.current_name())
        return pane

    def _follow_selection_in_try(self, name: str) -> None:
        pane = self.lazy_tabs.made("try")
        if pane is not None:  # one not made yet chooses the selection when it is
            cast("TryPane", pane).choose(name)

    # ------------------------------------------------------------------------------------------------
    # places for the model library and the parameter editor

    @property
    def library_widget(self) -> QWidget | None:
        """The model library's tab widget (made now if it was given as a factory), or ``None``."""
        return self.lazy_tabs.widget("library") if "library" in self.lazy_tabs else None

    def set_library_widget(self, widget: QWidget | Callable[[], QWidget], title: str = "Library") -> None:
        """Show the model library as a tab of the central area, after Instances (replacing one set before).

        ``widget`` may be a function that makes it: it is called when the tab is first shown (or
        :attr:`library_widget` is asked for), so that a library not looked at costs nothing.
        """
        self.lazy_tabs.remove("library")
        factory = widget if not isinstance(widget, QWidget) else (lambda: widget)
        self.lazy_tabs.add("library", title, factory, index=1)
        if isinstance(widget, QWidget):
            self.lazy_tabs.widget("library")
        self.instances_view.set_library_offered(True)

    def show_try(self) -> None:
        """Bring the Try tab forward, with the selected model chosen when it runs."""
        self.try_pane.choose(self.instances_view.current_name())
        self.workspace.setCurrentWidget(self.try_pane)

    def show_activity(self) -> None:
        """Bring the Activity tab forward (where the store keeps requests)."""
        view = self.activity_view
        if view is not None:
            self.workspace.setCurrentWidget(view)

    def _mark_request(self, finished_ms: int | None) -> None:
        """The Activity view's selected request: its moment on every chart."""
        within = self.board.mark_time(finished_ms)
        if finished_ms is not None and not within:
            self.statusBar().showMessage(
                f"That request is older than the {self.board.window_minutes:g} minutes the charts show",
                5000,
            )

    def show_library(self) -> None:
        """Bring the Library tab forward (the instances' empty state asks for it)."""
        if self.library_widget is not None:
            self.workspace.setCurrentWidget(self.library_widget)

    def set_editor_widget(self, widget: QWidget, title: str = "Configuration") -> None:
        """Show the parameter editor as a tab of the central area: ~170 rows need its room."""
        if self.editor_widget is not None:
            self.workspace.removeTab(self.workspace.indexOf(self.editor_widget))
            self.editor_widget.deleteLater()
        self.editor_widget = widget
        self.workspace.addTab(widget, title)

    def open_configuration(self, name: str) -> None:
        """Open ``name``'s configuration: brings the editor's tab forward and emits ``configureRequested``.

        Override it, or connect to the signal, to load the model into the editor.
        """
        if self.editor_widget is not None:
            self.workspace.setCurrentWidget(self.editor_widget)
        self.configureRequested.emit(name)

    def refresh_models(self) -> None:
        """Reload the model library into the instances view (after the library changed)."""
        self.instances_model.refresh()
        self.router_panel.library_changed()  # a running router re-reads the served models
        self.statusBar().showMessage(count_text(self.instances_model.rowCount(), "model"), 3000)

    # ------------------------------------------------------------------------------------------------
    # layout

    @property
    def chart_docks(self) -> dict[str, ChartDock]:
        return self.board.docks

    def all_docks(self) -> list[QDockWidget]:
        """Every dock, charts first."""
        return [*self.board.docks.values(), self.logs_dock]

    def apply_default_layout(self) -> None:
        """Put every dock where it starts: charts along the bottom and right, the log above them."""
        docks = self.board.docks
        for dock in self.all_docks():
            dock.setFloating(False)  # first: a floating dock stays floating when it is added again
            self.removeDockWidget(dock)
        bottom = Qt.DockWidgetArea.BottomDockWidgetArea
        right = Qt.DockWidgetArea.RightDockWidgetArea
        self.addDockWidget(bottom, self.logs_dock)
        first_chart = docks[_BOTTOM_COLUMNS[0][0]]
        self.splitDockWidget(self.logs_dock, first_chart, Qt.Orientation.Vertical)
        for left, right_of_it in itertools.pairwise(_BOTTOM_COLUMNS):
            self.splitDockWidget(docks[left[0]], docks[right_of_it[0]], Qt.Orientation.Horizontal)
        self.addDockWidget(right, docks[_RIGHT_COLUMN[0][0]])
        for above, below in itertools.pairwise(_RIGHT_COLUMN):
            self.splitDockWidget(docks[above[0]], docks[below[0]], Qt.Orientation.Vertical)
        for column in (*_BOTTOM_COLUMNS, *_RIGHT_COLUMN):
            for key in column[1:]:
                self.tabifyDockWidget(docks[column[0]], docks[key])
            docks[column[0]].raise_()
        for dock in self.all_docks():
            dock.setFloating(False)
            dock.show()
        self.resizeDocks([docks["tokens"]], [430], Qt.Orientation.Horizontal)
        self.resizeDocks([self.logs_dock, first_chart], [190, 250], Qt.Orientation.Vertical)
        if self._gpu_folded:  # every dock is shown again: fold the GPU charts anew
            self._gpu_folded = []
            self._fold_gpu_charts(False)

    #: The editor's tree and the Activity tab want this much height; the docks below give way while
    #: one of them is shown.
    EDITOR_MIN_HEIGHT = 480

    def _fit_workspace(self, _index: int = -1) -> None:
        """Give the Configuration, Activity and Try tabs room, and the docks their height back after.

        With the default layout the central area is a third of a 800-pixel window: the tree showed
        four rows (the requests table as many). While one of these tabs is the current one, the log
        and the bottom charts shrink (the user can still drag them); leaving them restores what the
        docks had.
        """
        docks = [self.logs_dock, self.board.docks[_BOTTOM_COLUMNS[0][0]]]
        current = self.workspace.currentWidget()
        roomy = current is not None and (
            current is self.editor_widget or self.lazy_tabs.key_of(current) in ("activity", "try")
        )
        if roomy and self._heights_before_editor is None:
            short = self.workspace.height() < self.EDITOR_MIN_HEIGHT
            if short and all(d.isVisible() and not d.isFloating() for d in docks):
                self._heights_before_editor = [d.height() for d in docks]
                self.resizeDocks(docks, [60, 150], Qt.Orientation.Vertical)
        elif not roomy and self._heights_before_editor is not None:
            heights, self._heights_before_editor = self._heights_before_editor, None
            if all(d.isVisible() and not d.isFloating() for d in docks):
                self.resizeDocks(docks, heights, Qt.Orientation.Vertical)

    #: The GPU charts, and the one that stays (as the note) when there is no GPU.
    _GPU_CHARTS = ("gpu_usage", "gpu_temperature", "gpu_memory", "gpu_power")

    def _fold_gpu_charts(self, present: bool) -> None:
        """Without an NVIDIA GPU, show one compact "no GPU" note instead of four GPU charts saying so,
        and give their room to the others; when a GPU reports, the charts come back as they were."""
        docks = self.board.docks
        note = docks[self._GPU_CHARTS[0]]
        if present:
            for dock in self._gpu_folded:
                dock.setVisible(True)
            self._gpu_folded = []
            note.setWindowTitle(note.view.spec.title)
            return
        if self._gpu_folded:
            return
        self._gpu_folded = [
            docks[key]
            for key in self._GPU_CHARTS[1:]
            if not docks[key].isHidden() and not docks[key].isFloating()
        ]
        for dock in self._gpu_folded:
            dock.setVisible(False)
        if not self._gpu_folded:
            return
        note.setWindowTitle("GPU")
        note.setVisible(True)
        if not note.isFloating():
            others = [docks[key] for key in ("cpu", "memory") if not docks[key].isHidden()]
            self.resizeDocks([*others, note], [10_000] * len(others) + [240], Qt.Orientation.Horizontal)

    def reset_layout(self) -> None:
        """Back to the default layout (the window keeps its size)."""
        self.apply_default_layout()
        self.statusBar().showMessage("Layout reset", 3000)

    def save_layout(self) -> None:
        """Store the dock layout and the window geometry in the database.

        While the Configuration or Activity tab has squeezed the docks below it, the layout stored is
        the one the docks go back to: quitting there must not start the next session squeezed.
        """
        squeezed = self._heights_before_editor
        docks = [self.logs_dock, self.board.docks[_BOTTOM_COLUMNS[0][0]]]
        if squeezed is not None:
            squeezed_heights = [d.height() for d in docks]
            self.resizeDocks(docks, squeezed, Qt.Orientation.Vertical)
        folded = list(self._gpu_folded)
        for dock in folded:  # folded for a machine without a GPU: stored as the user had them
            dock.setVisible(True)
        try:
            state = bytes(self.saveState(LAYOUT_VERSION).toBase64().data()).decode("ascii")
        finally:
            for dock in folded:
                dock.setVisible(False)
            if squeezed is not None:
                self.resizeDocks(docks, squeezed_heights, Qt.Orientation.Vertical)
                # resizeDocks applies sizes at the next layout pass: until then the docks stood at
                # the normal heights just stored (a window that is not quitting showed them so).
                layout = self.layout()
                if layout is not None:
                    layout.activate()
        geometry = bytes(self.saveGeometry().toBase64().data()).decode("ascii")
        self.store.set_metadata(STATE_KEY, state)
        self.store.set_metadata(GEOMETRY_KEY, geometry)

    def restore_layout(self) -> bool:
        """Restore the stored layout and geometry; returns whether a stored layout was applied."""
        geometry = self.store.get_metadata(GEOMETRY_KEY)
        state = self.store.get_metadata(STATE_KEY)
        if geometry:
            self.restoreGeometry(QByteArray.fromBase64(geometry.encode("ascii")))
        if not state:
            return False
        return bool(self.restoreState(QByteArray.fromBase64(state.encode("ascii")), LAYOUT_VERSION))

    # ------------------------------------------------------------------------------------------------
    # actions, menus, toolbar, status bar, tray

    def _build_actions(self) -> None:
        self.settings_action = QAction(action_icon("settings"), "&Settings…", self)
        self.settings_action.setShortcuts(
            [QKeySequence(QKeySequence.StandardKey.Preferences), QKeySequence("Ctrl+,")]
        )
        self.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.settings_action.triggered.connect(self.show_settings)
        self.quit_action = QAction("&Quit", self)
        self.quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.quit_action.triggered.connect(self.quit)
        self.open_data_action = QAction("Open &data folder", self)
        self.open_data_action.triggered.connect(
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.data_dir)))
        )
        self.transfer_action = QAction("&Export/Import…", self)
        self.transfer_action.setToolTip("Back up or restore the database; export or import models")
        self.transfer_action.triggered.connect(self.show_transfer)
        self.refresh_action = QAction("&Reload model library", self)
        # F5 only: the platform's Refresh keys include Ctrl+R on GNOME and KDE, which is Start here.
        self.refresh_action.setShortcut(QKeySequence("F5"))
        self.refresh_action.triggered.connect(self.refresh_models)
        self.stop_all_action = QAction(action_icon("stop-all"), "Stop &all", self)
        self.stop_all_action.setShortcut(QKeySequence("Ctrl+Shift+T"))
        self.stop_all_action.setToolTip("Stop every running llama-server (Ctrl+Shift+T)")
        self.stop_all_action.triggered.connect(self.stop_all)
        self.stop_all_action.setEnabled(False)  # nothing runs yet
        self.adopt_orphans_action = QAction("Adopt &leftover servers", self)
        self.adopt_orphans_action.setToolTip("Monitor the llama-servers an earlier session left running")
        self.adopt_orphans_action.triggered.connect(self.adopt_orphans)
        self.stop_orphans_action = QAction("Stop leftover ser&vers", self)
        self.stop_orphans_action.triggered.connect(self.stop_orphans)
        self.reset_layout_action = QAction("&Reset layout", self)
        self.reset_layout_action.triggered.connect(self.reset_layout)
        self.full_screen_action = QAction("&Full screen", self)
        self.full_screen_action.setCheckable(True)
        self.full_screen_action.setShortcut(QKeySequence.StandardKey.FullScreen)
        self.full_screen_action.toggled.connect(lambda on: self.showFullScreen() if on else self.showNormal())
        self.about_action = QAction(f"&About {APP_NAME}", self)
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        self.about_action.triggered.connect(self.show_about)
        self.about_qt_action = QAction("About &Qt", self)
        self.about_qt_action.triggered.connect(QApplication.aboutQt)
        self.try_action = QAction("Tr&y…", self)
        self.try_action.setToolTip("Send a prompt to the selected running model")
        self.try_action.triggered.connect(self.show_try)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.settings_action)
        file_menu.addAction(self.open_data_action)
        file_menu.addAction(self.transfer_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)

        view = self.instances_view
        instances = bar.addMenu("&Instances")
        for action in (view.start_action, view.stop_action, view.restart_action):
            instances.addAction(action)
        instances.addAction(self.stop_all_action)
        instances.addSeparator()
        instances.addAction(view.configure_action)
        instances.addAction(view.log_action)
        instances.addAction(view.copy_url_action)
        instances.addAction(self.try_action)
        instances.addSeparator()
        instances.addAction(self.adopt_orphans_action)
        instances.addAction(self.stop_orphans_action)
        instances.addSeparator()
        instances.addAction(self.refresh_action)

        view_menu = bar.addMenu("&View")
        charts = view_menu.addMenu("&Charts")
        for dock in self.board.docks.values():
            charts.addAction(dock.toggleViewAction())
        view_menu.addAction(self.logs_dock.toggleViewAction())
        self.view_menu = view_menu
        view_menu.addSeparator()
        self.toolbar_toggle_placeholder = view_menu.addSeparator()
        view_menu.addAction(self.full_screen_action)
        view_menu.addAction(self.reset_layout_action)

        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.about_action)
        help_menu.addAction(self.about_qt_action)

    def _build_toolbar(self) -> None:
        toolbar = QToolBar("Toolbar")
        toolbar.setObjectName("toolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        view = self.instances_view
        toolbar.addAction(view.start_action)
        toolbar.addAction(view.stop_action)
        toolbar.addAction(view.restart_action)
        toolbar.addSeparator()
        toolbar.addAction(view.open_web_ui_action)  # the selected model's, while it runs
        toolbar.addAction(view.copy_url_action)
        toolbar.addSeparator()
        toolbar.addAction(self.stop_all_action)
        toolbar.addSeparator()
        toolbar.addAction(self.settings_action)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)
        self.toolbar = toolbar
        self.view_menu.insertAction(self.toolbar_toggle_placeholder, toolbar.toggleViewAction())

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.glance_label = QLabel("CPU n/a · RAM n/a · GPU n/a")
        self.glance_label.setObjectName("glance")
        self.glance_label.setToolTip("The latest sample")
        self.binary_label = QLabel("")
        self.binary_label.setObjectName("binaryLabel")
        self.db_label = QLabel(f"Database: {self._short_path(self.db_path)}")
        self.db_label.setObjectName("dbPath")
        self.db_label.setToolTip(str(self.db_path))
        self.db_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # Shown while saves fail (a full disk): the charts go on, but nothing is kept for next time.
        self.saving_label = QLabel("")
        self.saving_label.setObjectName("historyNotSaved")
        self.saving_label.setStyleSheet(error_style_sheet())
        self.saving_label.setVisible(False)
        bar.addPermanentWidget(self.saving_label)
        for index, label in enumerate((self.glance_label, self.binary_label, self.db_label)):
            if index:
                separator = QFrame()
                separator.setFrameShape(QFrame.Shape.VLine)
                separator.setFrameShadow(QFrame.Shadow.Sunken)
                bar.addPermanentWidget(separator)
            label.setContentsMargins(6, 0, 6, 0)
            bar.addPermanentWidget(label)
        glance = self.glance_label
        glance.setFixedSize(glance.sizeHint())  # see _show_glance

    def _on_sample_failed(self, text: str) -> None:
        # While saves keep failing the permanent "History is not being saved" label says so: the
        # same failure every second must not flash over it (nor outlive the recovery by 5 s).
        if not self.saving_message:
            self.statusBar().showMessage(text, 5000)

    def show_saving(self, saving: bool, reason: str = "") -> None:
        """Say in the status bar that the metrics history is not being saved (and why), or no more."""
        if saving:
            self.saving_label.clear()
            self.saving_label.setToolTip("")
        else:
            first = reason.splitlines()[0] if reason else "saving failed"
            self.statusBar().clearMessage()  # the label below says it, for as long as it lasts
            self.saving_label.setText(f"History is not being saved: {first}")
            self.saving_label.setToolTip(
                f"The latest metrics sample could not be saved:\n{reason}\n\nThe charts go on; "
                "saving starts again by itself once it works."
            )
        self.saving_label.setVisible(not saving)

    @property
    def saving_message(self) -> str:
        """The status bar's "history is not being saved" text, or "" while it is saved."""
        return self.saving_label.text() if not self.saving_label.isHidden() else ""

    @staticmethod
    def _short_path(path: Path) -> str:
        try:
            return "~/" + str(path.relative_to(Path.home()))
        except ValueError:
            return str(path)

    def _build_tray(self) -> None:
        from llamadash.core import paths
        from llamadash.ui.tray import TrayController

        self.tray_controller = TrayController(
            self,
            model_names=self.instances_model.names,
            logs_dir=lambda: paths.logs_dir(self.data_dir),
        )
        self.tray: QSystemTrayIcon | None = self.tray_controller.icon
        self.settingsChanged.connect(self.tray_controller.apply_settings)
        if self.tray is None and (self.settings.start_minimized or self.settings.close_to_tray):
            # Said once at start: the user asked for the tray and there is none.
            QTimer.singleShot(
                0, self, lambda: self.statusBar().showMessage(self.tray_controller.fallback_message, 15000)
            )

    def show_from_tray(self) -> None:
        """Bring the window back from the tray (or from minimized)."""
        self.showNormal()
        self.raise_()
        self.activateWindow()

    def start_hidden(self) -> None:
        """Start in the tray when there is one, else minimized (``--minimized``, the setting)."""
        if self.tray is not None:
            self.hide()
        else:
            self.showMinimized()

    # ------------------------------------------------------------------------------------------------
    # feeds

    def _on_sample(self, sample: Any) -> None:
        self.board.add_sample(sample)
        self._show_glance(
            sample.as_row() if hasattr(sample, "as_row") else sample, getattr(sample, "gpus", None)
        )

    def _show_glance(self, row: Mapping[str, Any], gpus: Any = None) -> None:
        def pct(value: Any) -> str:
            return "n/a" if value is None else f"{value:.0f}%"

        parts = [f"CPU {pct(row.get('cpu_usage'))}", f"RAM {pct(row.get('memory_usage'))}"]
        if row.get("gpu_usage") is None and row.get("gpu_temperature") is None and not gpus:
            parts.append("GPU n/a" if self.board.has_gpu else "no GPU")
        else:
            gpu = f"GPU {pct(row.get('gpu_usage'))}"
            if row.get("gpu_temperature") is not None:
                gpu += f" {row['gpu_temperature']:.0f}°C"
            used, total = row.get("gpu_memory_used"), row.get("gpu_memory_total")
            if used is not None and total:
                gpu += f" {used / 1024:.1f}/{total / 1024:.0f} GB"
            parts.append(gpu)
        text = "  ·  ".join(parts)
        label = self.glance_label
        if text != label.text():
            # A fixed size, growing only: a label of fixed size asks no relayout of the status bar
            # when its text changes, which would repaint the whole bar at every sample.
            label.setText(text)
            if (width := label.sizeHint().width()) > label.maximumWidth():
                label.setFixedWidth(width)

    def _on_figures(self, name: str, figures: Any) -> None:
        self.board.add_instance_figures(name, getattr(figures, "generation_tokens_per_s", None))

    def _on_event(self, name: str, event: str, ms: int) -> None:
        self.board.add_event(InstanceEvent(name, event, int(ms)))

    def _on_state_changed(self, name: str, state: str, reason: str) -> None:
        self._update_stop_all()
        if state == InstanceState.ERROR:
            self.statusBar().showMessage(f"{name}: {reason or 'error'}", 10000)

    def _show_log(self, name: str) -> None:
        self.logs_dock.show()
        self.logs_dock.raise_()
        self.logs_dock.show_instance(name)

    # ------------------------------------------------------------------------------------------------
    # settings

    def save_settings(self, new: Settings) -> Settings:
        """Validate, store and apply ``new`` (what the settings dialog calls).

        Raises:
            SettingsError: A value is not allowed; nothing was stored or applied.
        """
        saved = settings_mod.save_settings(new, self.store, previous=self.settings)
        self.apply_settings(saved)
        return saved

    def apply_settings(self, new: Settings) -> None:
        """Make the running window and services follow ``new``."""
        old, self.settings = self.settings, new
        changed = new.changed_from(old)
        if changed & {"theme_preference", "chart_theme_follows_app"}:
            self.preview_theme(new.theme_preference, new.chart_theme_follows_app)
        if "sample_interval_s" in changed:
            self.board.set_interval(new.sample_interval_s)
            if self.sampler is not None:
                self.sampler.set_interval(new.sample_interval_s)
        if "history_minutes" in changed:
            self.board.set_window_minutes(new.history_minutes)
            if self._set_retention is not None:
                self._set_retention(new.history_minutes)
        if "models_dir" in changed and self.sampler is not None:
            self.sampler.collector.system.disk_path = new.models_dir or self.data_dir
        if "llama_server_path" in changed:
            self._describe_binary_later()
        if changed & {"prometheus_address", "prometheus_token"}:
            self._show_prometheus_problem(self.prometheus.apply(new.prometheus_address, new.prometheus_token))
        self.settingsChanged.emit(new)

    def _show_prometheus_problem(self, problem: str) -> None:
        endpoint = self.prometheus.endpoint
        if problem:
            self.statusBar().showMessage(f"Prometheus endpoint not started: {problem}", 15000)
        elif endpoint is not None:
            self.statusBar().showMessage(f"Prometheus metrics at {endpoint.url}", 8000)

    def preview_theme(self, preference: str, charts_follow: bool) -> None:
        """Apply a theme now (the settings dialog previews with this)."""
        self.theme = apply_theme(preference, charts_follow=charts_follow)
        self.board.set_colors(self.theme.charts)
        self.logs_dock.apply_palette(self.theme.palette)
        activity = self.lazy_tabs.made("activity")
        if activity is not None:
            cast("ActivityView", activity).set_colors(self.theme.charts)

    def show_settings(self) -> SettingsDialog:
        """Open the settings dialog (non-blocking) and return it; one already open is brought forward."""
        open_dialog = getattr(self, "settings_dialog", None)
        try:
            if open_dialog is not None and open_dialog.isVisible():
                open_dialog.raise_()
                open_dialog.activateWindow()
                return open_dialog
        except RuntimeError:  # closed: Qt has deleted it (WA_DeleteOnClose)
            pass
        from llamadash.ui.settings_dialog import SettingsDialog

        dialog = SettingsDialog(
            self.settings, self.save_settings, cache_dir=self.data_dir / "cache", parent=self
        )
        dialog.themePreviewRequested.connect(self.preview_theme)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        self.settings_dialog = dialog
        return dialog

    def show_refusal(self, verb: str, name: str, text: str, binary_missing: bool = False) -> QMessageBox:
        """Tell the user, in a message box, why ``verb`` (start, restart...) of ``name`` was refused.

        The whole reason is shown (the status bar cuts it off). When it is that no llama-server was
        found, the box says what to do and offers "Open Settings…", which opens the settings with
        the cursor in the llama-server field. The box is window-modal but does not block the
        caller: it is returned (and kept as :attr:`refusal_box`) for whoever wants to follow it.
        """
        box = QMessageBox(self)
        box.setObjectName("refusalBox")
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle(f"Cannot {verb} {name}")
        box.setTextFormat(Qt.TextFormat.PlainText)
        settings_button: QPushButton | None = None
        if binary_missing:
            box.setText(f"{name} cannot {verb}: llamadash found no llama-server to run it with.")
            box.setInformativeText(
                "llamadash runs each model with llama.cpp's llama-server program. Choose it in "
                "File ▸ Settings ▸ llama-server binary (Browse… or Auto-detect), or install llama.cpp "
                f"so that llama-server is on your PATH, then {verb} the model again.\n\n{text}"
            )
            settings_button = box.addButton("Open Settings…", QMessageBox.ButtonRole.AcceptRole)
            settings_button.setObjectName("openSettings")
            box.addButton(QMessageBox.StandardButton.Close)
            box.setDefaultButton(settings_button)
        else:
            box.setText(text)
            box.addButton(QMessageBox.StandardButton.Ok)

        def finished(_result: int) -> None:
            if settings_button is not None and box.clickedButton() is settings_button:
                self.show_settings().focus_binary()

        box.finished.connect(finished)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.refusal_box = box
        return box

    def show_transfer(self) -> Any:
        """Open the Export/Import dialog (non-blocking) and return it.

        It works on ``store`` when that is the database layer (the application's case), else on
        :mod:`llamadash.core.database`.
        """
        from llamadash.ui.transfer_dialog import TransferDialog

        database: Any = self.store
        if not hasattr(database, "export_database"):
            from llamadash.core import database as database_mod

            database = database_mod
        dialog = TransferDialog(
            database,
            on_changed=self._after_transfer,
            capabilities=lambda: configured_capabilities(
                self.settings.llama_server_path, self.data_dir / "cache"
            )[0],
            parent=self,
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        self.transfer_dialog = dialog
        return dialog

    def _after_transfer(self) -> None:
        """The database or the library was imported: show the new models everywhere."""
        self.refresh_models()
        refresh = getattr(self.lazy_tabs.made("library"), "refresh", None)  # one not made reads anew
        if callable(refresh):
            refresh()

    # ------------------------------------------------------------------------------------------------
    # llama-server build, about

    def _describe_binary_later(self) -> None:
        if self._background_halted:
            return  # the window was shut down before its second was up: nothing may start now
        info = _BinaryInfo(self)  # deleted with the window, on this thread, never on the worker's
        info.done.connect(self._on_binary_described)
        path, cache = self.settings.llama_server_path, self.data_dir / "cache"
        self._binary_info = info  # kept alive until the thread has answered

        import llamadash.ui.settings_dialog  # noqa: F401 - imported here, not on the thread

        def work() -> None:
            try:
                ok, _binary, text = describe_binary(path, cache)
            except Exception as exc:
                ok, text = False, str(exc)
            # the window may be gone by now (closed within the second): the answer is then moot
            with contextlib.suppress(RuntimeError):
                info.done.emit(ok, text)

        self._describe_thread = threading.Thread(target=work, name="llamadash-describe", daemon=True)
        self._describe_thread.start()

    def wait_for_background(self, timeout_s: float = 5.0) -> bool:
        """Start no llama-server check from now on, and wait (bounded) for one under way; whether it ended.

        Called when the application quits, so that no thread of ours still runs Python while Qt and
        the interpreter are torn down (a window closed within a second of its first paint crashed so).
        """
        self._background_halted = True  # a check still to come (its timer) will not start
        thread = self._describe_thread
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    def _on_binary_described(self, ok: bool, text: str) -> None:
        self.binary_text = text if ok else f"llama-server not usable: {text}"
        label = text.split(" — ")[0].split(" (found")[0] if ok else "llama-server not found"
        self.binary_label.setText(label)
        self.binary_label.setToolTip(self.binary_text)

    def about_text(self) -> str:
        """The About box's text: versions of llamadash, llama-server, Qt and Python."""
        build = html.escape(self.binary_text or "not checked yet")
        return (
            f"<h3>{APP_NAME} {__version__}</h3>"
            "<p>A desktop dashboard for llama.cpp's llama-server: model library, launcher, monitoring.</p>"
            f"<p><b>llama-server:</b> {build}</p>"
            f"<p><b>Database:</b> {html.escape(str(self.db_path))}</p>"
            f"<p style='color:gray'>Qt {qVersion()} · PySide6 {pyside_version} · "
            f"pyqtgraph {pg.__version__} · "
            f"Python {platform.python_version()} on {html.escape(sys.platform)}</p>"
        )

    def show_about(self) -> None:
        QMessageBox.about(self, f"About {APP_NAME}", self.about_text())

    # ------------------------------------------------------------------------------------------------
    # stopping and quitting

    def _active_instances(self) -> list[Instance]:
        """The instances that are loading, running or about to restart (what Stop all stops)."""
        if self.manager is None:
            return []
        # a pending automatic restart is stopped (cancelled) too
        return [i for i in self.manager.instances() if i.state in ACTIVE_STATES or i.restart_pending]

    def _update_stop_all(self) -> None:
        """Stop all is offered (menu, toolbar, tray) only while something is loading or running."""
        self.stop_all_action.setEnabled(bool(self._active_instances()))

    def stop_all(self) -> None:
        """Stop every instance (asynchronously; the table follows the status signals)."""
        manager = self.manager
        if manager is None:
            return
        for instance in self._active_instances():
            try:
                manager.stop(instance.name)
            except Exception as exc:
                self.statusBar().showMessage(f"Could not stop {instance.name}: {exc}", 8000)

    def quit(self) -> None:
        """Quit llamadash (File ▸ Quit, the tray): saves the layout, then the application quits."""
        self._quitting = True
        self.close()
        app = QApplication.instance()
        if app is not None:
            QTimer.singleShot(0, app.quit)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.settings.close_to_tray and self.tray is not None and not self._quitting:
            event.ignore()
            self.hide()
            self.tray.showMessage(APP_NAME, "llamadash keeps running in the tray.", app_icon(), 3000)
            return
        try:
            self.save_layout()
        except Exception as exc:
            _log.warning("could not save the window layout: %s", exc)
        if self.tray is not None:
            self.tray.hide()
        super().closeEvent(event)
