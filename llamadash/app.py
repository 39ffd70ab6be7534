"""Starting the desktop application."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from llamadash import APP_NAME, __version__


def _parse_gui_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="llamadash", add_help=False)
    parser.add_argument("--data-dir")
    parser.add_argument("--minimized", action="store_true")
    args, _qt_args = parser.parse_known_args(list(argv))
    return args


def run_gui(argv: Sequence[str]) -> int:
    """Open the database and the main window; returns the exit status."""
    from PySide6.QtWidgets import QApplication, QMessageBox

    from llamadash.core import database as db
    from llamadash.core import paths
    from llamadash.ui.main_window import MainWindow

    args = _parse_gui_args(argv)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setOrganizationName(APP_NAME)
    app.setDesktopFileName("io.github.llamadash.llamadash")
    try:
        db_path = paths.default_database_path(paths.resolve_data_dir(args.data_dir))
        db.init_database(db_path)
    except (db.DatabaseError, OSError) as exc:
        QMessageBox.critical(None, APP_NAME, f"llamadash cannot open its database:\n\n{exc}")
        return 1
    try:
        window = MainWindow(db_path=db_path, load_models=db.get_models)
        if args.minimized:
            window.showMinimized()
        else:
            window.show()
        return app.exec()
    finally:
        db.close_database()
