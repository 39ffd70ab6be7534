"""Starting the desktop application: the database, the services and the main window, wired together.

The order matters and is the whole job of this module:

1. the database (the window and the services read it; a broken one is reported and nothing starts);
2. the settings from it (theme, sample interval, history window, models folder, ...);
3. the main window, filled from the saved history before the first new sample;
4. once the window and its charts have been painted: the instance manager (which the sampler asks for active models
   and requests per minute; its instance events are recorded in the database so the chart markers
   come back next time) and the metrics sampler (its disk chart watches the models folder, or the
   data folder). Starting them after the first paint makes the window appear sooner;
5. on quit: the sampler stops, and the instances stop with a bounded wait when the settings say so
   (the default). When they say not to, the servers are left running and the next start finds them
   as leftovers to adopt or stop.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from llamadash import APP_NAME, __version__

if TYPE_CHECKING:  # the modules themselves are imported once the QApplication exists
    from llamadash.core.metrics.nvml import Nvml
    from llamadash.services.manager import InstanceManager
    from llamadash.services.protocols import Manager
    from llamadash.services.rpc_workers import WorkerService

_log = logging.getLogger(__name__)


def _parse_gui_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="llamadash", add_help=False)
    parser.add_argument("--data-dir")
    parser.add_argument("--minimized", action="store_true")
    args, _qt_args = parser.parse_known_args(list(argv))
    return args


@dataclass
class Gui:
    """The running application's parts (what :func:`run_gui` wires and shuts down).

    ``manager`` is ``None`` until the window has been painted (see ``build_gui``): quitting before
    then has no instance to stop.
    """

    app: Any
    window: Any
    sampler: Any
    manager: Manager | None
    data_dir: Path
    db_path: Path
    services_started: bool = False
    single_instance: Any | None = None
    workers: Any | None = None  # the RPC workers' service (llamadash.services.rpc_workers)


class _StartupGc:
    """Python's garbage collector, paused while the window is made and painted.

    Importing Qt, numpy, pyqtgraph and the window's modules and making its widgets allocate objects
    by the hundred thousand, almost none of them garbage: the collector ran ~140 young, 13 middle
    and one full collection over them before the first paint, 50-85 ms of it on a 2-core machine.
    It resumes with the services, once the charts have been painted (at once when the window starts hidden, when
    the window goes or the start fails). Left young, the ~105,000 objects made meanwhile would each be
    gone through again by the next young and middle collections, at some later moment; so resuming
    either collects once (50-65 ms; they are old after it), or, for the application itself
    (:attr:`freeze_at_resume`, set by :func:`run_gui`), freezes them (``gc.freeze``: no collection
    looks at them again, now or later; of the 105,000, ~700 were garbage, kept for good).
    """

    def __init__(self) -> None:
        self.paused = False
        #: Resume with ``gc.freeze()`` instead of a collection (the application's own process; a
        #: test process, which makes many windows, keeps collecting them).
        self.freeze_at_resume = False

    def pause(self) -> None:
        if gc.isenabled():
            gc.disable()
            self.paused = True

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            if self.freeze_at_resume:
                gc.freeze()
            else:
                gc.collect()
            gc.enable()


startup_gc = _StartupGc()


def _make_manager(data_dir: Path, nvml: Nvml) -> InstanceManager:
    """The instance manager."""
    from llamadash.services.manager import InstanceManager

    # quit_with_app=False: whether the instances stop on quit is the user's setting, handled below.
    return InstanceManager(data_dir=data_dir, nvml=nvml, quit_with_app=False)


def _start_at_login_as_found(settings: Any) -> Any:
    """``settings`` with *Start at login* as the system has it.

    The entry (XDG autostart file, Windows Run value) is the truth: the installer's "Start with
    Windows" or the user may have made or removed it while llamadash was not looking.
    """
    from dataclasses import replace

    from llamadash.core import autostart

    try:
        return replace(settings, start_at_login=autostart.is_enabled())
    except OSError as exc:
        _log.warning("cannot read start at login: %s", exc)
        return settings


def _start_at_login_follower(initial: bool) -> Any:
    """A ``settingsChanged`` slot that writes or removes the entry only when the setting changes.

    Saving any other setting must not touch an entry made elsewhere (the installer's).
    """
    from llamadash.core import autostart

    last = {"value": bool(initial)}

    def follow(settings: Any) -> None:
        wanted = bool(settings.start_at_login)
        if wanted == last["value"]:
            return
        try:
            autostart.set_enabled(wanted)
            last["value"] = wanted
        except OSError as exc:
            _log.warning("cannot change start at login: %s", exc)

    return follow


def build_gui(argv: Sequence[str]) -> Gui | int:
    """Open the database, start the services and show the main window.

    Python's garbage collector is paused from here until the services start (:class:`_StartupGc`).

    Returns:
        The parts, ready for ``app.exec()``; or an exit status when the database cannot be opened
        (the user has been told why).
    """
    startup_gc.pause()
    try:
        built = _build_gui(argv)
    except BaseException:
        startup_gc.resume()
        raise
    if isinstance(built, int):
        startup_gc.resume()
    return built


def _build_gui(argv: Sequence[str]) -> Gui | int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

    from llamadash.ui.import_scan import forget_scanned_sources, skip_source_scan
    from llamadash.ui.pyqtgraph_import import import_pyqtgraph

    skip_source_scan()  # before the imports below: PySide6 would read each module's source
    import_pyqtgraph()  # before the window's modules: pyqtgraph without making every Qt class
    from llamadash.core import database as db
    from llamadash.core import events as events_mod
    from llamadash.core import paths
    from llamadash.core import settings as settings_mod
    from llamadash.core.metrics import MetricsCollector
    from llamadash.services.sampler import MetricsSampler
    from llamadash.ui.icons import app_icon
    from llamadash.ui.library_controller import LibraryController
    from llamadash.ui.main_window import MainWindow
    from llamadash.ui.theme import fusion_application

    args = _parse_gui_args(argv)
    if args.data_dir is not None and not args.data_dir.strip():
        print(
            "llamadash: error: --data-dir is empty; leave it out to use the default data folder",
            file=sys.stderr,
        )
        return 2
    app = cast(QApplication, QApplication.instance() or fusion_application(sys.argv[0]))
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setOrganizationName(APP_NAME)
    app.setDesktopFileName("io.github.llamadash.llamadash")
    app.setWindowIcon(app_icon())
    try:
        data_dir = paths.resolve_data_dir(args.data_dir)
        # One dashboard per data directory: a second launch shows the first window and leaves.
        from llamadash.ui.single_instance import SingleInstance

        guard = SingleInstance(data_dir)
        if guard.notify_running():
            _log.info("llamadash is already running for %s; brought it forward", data_dir)
            return 0
        guard.listen()
        db_path = paths.default_database_path(data_dir)
        db.init_database(db_path)
        store = cast(settings_mod.MetadataStore, db)
        settings = _start_at_login_as_found(settings_mod.load_settings(store))
        db.set_retention_minutes(settings.history_minutes)  # the database stays open
        history = db.get_metrics_columns(settings.history_minutes)  # straight into the charts
        instance_history = db.get_instance_history(settings.history_minutes)  # the tokens/s chart
        events = events_mod.load_events(store, window_minutes=settings.history_minutes)
    except (db.DatabaseError, OSError) as exc:
        QMessageBox.critical(None, APP_NAME, f"llamadash cannot open its database:\n\n{exc}")
        db.close_database()
        return 1

    collector = MetricsCollector(disk_path=settings.models_dir or data_dir)
    sampler = MetricsSampler(collector, interval_s=settings.sample_interval_s)

    def set_retention(minutes: float) -> None:
        try:
            db.set_retention_minutes(minutes)  # from the next save on, on the same connections
        except db.DatabaseError as exc:
            _log.warning("cannot change how long metrics are kept: %s", exc)

    window = MainWindow(
        store=store,
        db_path=db_path,
        load_models=db.get_models,
        settings=settings,
        history=history,
        instance_history=instance_history,
        events=events,
        sampler=sampler,
        data_dir=data_dir,
        set_retention=set_retention,
    )
    library = LibraryController(window, db, data_dir)  # the Library tab and the Configuration dock
    gui = Gui(app=app, window=window, sampler=sampler, manager=None, data_dir=data_dir, db_path=db_path)
    gui.single_instance = guard
    window.destroyed.connect(lambda *_: startup_gc.resume())

    def workers_service() -> WorkerService:
        """The RPC workers' service, made as the services start (or when the Workers tab is made
        first): its modules and psutil's are not needed for the first paint."""
        if gui.workers is None:
            from llamadash.ui import worker_start, workers_view

            gui.workers = workers_view.make_service(data_dir)
            window.tray_controller.set_workers(gui.workers)  # running workers in the tray's tooltip
            worker_start.install(window, gui.workers)  # Start asks to start a model's stopped workers
        return gui.workers

    def make_workers_tab() -> QWidget:
        from llamadash.ui import workers_view

        return workers_view.make_view(window, workers_service(), library.service)

    # made after the first paint, like the other hidden tabs (window.lazy_tabs.widget("workers"))
    window.lazy_tabs.add("workers", "Workers", make_workers_tab)
    guard.showRequested.connect(window.show_from_tray)
    window.settingsChanged.connect(_start_at_login_follower(settings.start_at_login))

    def record(name: str, event: str, ms: int) -> None:
        try:
            events_mod.record_event(
                store, name, event, int(ms), window_minutes=window.settings.history_minutes
            )
        except (db.DatabaseError, ValueError) as exc:
            _log.warning("cannot record the event %s %s: %s", name, event, exc)

    def start_services() -> None:
        """The manager and the sampler, once the window is on screen (it appears sooner so)."""
        if gui.services_started:
            return
        gui.services_started = True
        try:
            workers_service()
            manager = _make_manager(data_dir, collector.nvml)
            manager.eventOccurred.connect(record)
            window.set_manager(manager)
            library.set_manager(manager)
            sampler.set_instance_stats(manager)
            gui.manager = manager
            sampler.start()
            forget_scanned_sources()  # the window's modules are in: their source lines are not needed
        finally:
            startup_gc.resume()  # also when a service failed to start

    if args.minimized or settings.start_minimized:
        window.start_hidden()
        start_services()  # no paint is coming while hidden
    else:
        # Once the charts (drawn on firstPainted, in the next turns) have been painted: a fixed delay
        # after the window's paint let the services' start come before them on a slow launch.
        window.board.chartsPainted.connect(lambda: QTimer.singleShot(0, window, start_services))
        window.show()
        QTimer.singleShot(2000, window, start_services)  # in case no paint ever comes (an odd platform)
    return gui


def shutdown(gui: Gui) -> bool:
    """Stop the services after the event loop ended; returns whether instances were left running."""
    from llamadash.core import database as db
    from llamadash.ui.main_window import QUIT_STOP_TIMEOUT_S

    gui.services_started = True  # a start still pending must not come after this
    startup_gc.resume()
    gui.window.lazy_tabs.halt()  # a hidden tab made after this would read a closed database
    try:
        gui.window.save_layout()  # also when quitting without closing the window (a signal, the tray)
    except Exception as exc:
        _log.warning("could not save the window layout: %s", exc)
    gui.sampler.stop()
    if not gui.window.wait_for_background():
        _log.warning("the llama-server check of the window had not ended at quit")
    if gui.single_instance is not None:
        gui.single_instance.close()
    left_running = False
    if gui.manager is not None:
        active = [i for i in gui.manager.instances() if i.active and not i.external]
        if gui.window.settings.stop_on_quit:
            if not gui.manager.stop_all(QUIT_STOP_TIMEOUT_S):
                _log.error("some llama-server instances did not stop")
        else:
            left_running = bool(active)
        gui.manager.close()
    # after the servers, which may use them; kept (recorded, found next time) with servers kept running
    if gui.workers is not None and not left_running and not gui.workers.stop_all(QUIT_STOP_TIMEOUT_S):
        _log.error("some RPC workers did not stop")
    db.close_database()
    return left_running


def run_gui(argv: Sequence[str]) -> int:
    """Open the database and the main window; returns the exit status."""
    startup_gc.freeze_at_resume = True  # this process makes one window: see _StartupGc
    built = build_gui(argv)
    if isinstance(built, int):
        return built
    from llamadash.services.manager import quit_on_signals

    restore = quit_on_signals(built.app)
    status = built.app.exec()
    restore()
    if shutdown(built):
        # The user chose to keep the servers running. Qt would kill them while destroying their
        # QProcess objects, so leave without running destructors; their PIDs are recorded, and the
        # next start offers to adopt or stop them.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status
