"""The settings dialog: values persist, bad ones are refused with a message, the theme applies at once."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QDialogButtonBox

from llamadash.core import database
from llamadash.core import settings as settings_mod
from llamadash.core.llama_server import METADATA_KEY
from llamadash.ui.main_window import MainWindow


class StandInSampler(QObject):
    """The sampler's signals and the knobs the settings turn."""

    sampled = Signal(object)
    failed = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.interval_s = 1.0
        self.collector = SimpleNamespace(system=SimpleNamespace(disk_path=Path(".")))

    def set_interval(self, seconds: float) -> None:
        self.interval_s = seconds


@pytest.fixture
def db(tmp_path: Path):
    database.init_database(tmp_path / "data" / "llama-dashboard.db")
    yield database
    database.close_database()


def open_window(qtbot, db, tmp_path: Path, sampler=None) -> MainWindow:
    retention: list[float] = []
    window = MainWindow(
        store=db,
        db_path=db.get_database_path(),
        load_models=db.get_models,
        sampler=sampler,
        data_dir=tmp_path / "data",
        set_retention=retention.append,
    )
    window.retention_calls = retention  # type: ignore[attr-defined]
    qtbot.addWidget(window)
    window.show()
    return window


def window_colour() -> int:
    return QApplication.instance().palette().color(QPalette.ColorRole.Window).lightness()


def test_settings_persist_and_apply_to_the_running_window(qtbot, db, tmp_path):
    sampler = StandInSampler()
    window = open_window(qtbot, db, tmp_path, sampler)
    models = tmp_path / "models"
    models.mkdir()
    dialog = window.show_settings()
    dialog.editors["sample_interval_s"].setValue(2.5)
    dialog.editors["history_minutes"].setValue(20)
    dialog.editors["models_dir"].setText(str(models))
    dialog.editors["close_to_tray"].setChecked(True)
    dialog.editors["stop_on_quit"].setChecked(False)
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
    assert not dialog.isVisible()

    stored = settings_mod.load_settings(database)
    assert stored.sample_interval_s == 2.5 and stored.history_minutes == 20
    assert stored.models_dir == str(models) and stored.close_to_tray and not stored.stop_on_quit
    assert sampler.interval_s == 2.5  # applied without a restart
    assert Path(sampler.collector.system.disk_path) == models
    assert window.board.window_minutes == 20 and window.retention_calls == [20]

    window.close()
    again = open_window(qtbot, db, tmp_path)
    assert again.settings == stored
    reopened = again.show_settings()
    assert reopened.editors["sample_interval_s"].value() == 2.5
    assert reopened.editors["stop_on_quit"].isChecked() is False
    reopened.reject()


def test_invalid_input_is_refused_with_a_message(qtbot, db, tmp_path):
    window = open_window(qtbot, db, tmp_path)
    dialog = window.show_settings()
    dialog.editors["llama_server_path"].setText(str(tmp_path / "no" / "llama-server"))
    dialog.accept()
    assert dialog.isVisible()  # still open: nothing was saved
    assert dialog.error_label.isVisible()
    assert "does not exist" in dialog.error_label.text()
    assert database.get_metadata(METADATA_KEY) is None
    dialog.editors["llama_server_path"].setText(str(tmp_path))
    dialog.accept()
    assert "is a folder" in dialog.error_label.text() and dialog.isVisible()
    dialog.reject()


def test_the_theme_applies_at_once_and_cancel_puts_it_back(qtbot, db, tmp_path):
    database.set_metadata("theme_preference", "light")
    window = open_window(qtbot, db, tmp_path)
    light = window_colour()
    dialog = window.show_settings()
    combo = dialog.editors["theme_preference"]
    combo.setCurrentIndex(combo.findData("dark"))
    assert window_colour() < light  # before OK
    assert window.board.view("cpu").plot_widget.backgroundBrush().color().lightness() < 100
    dialog.reject()
    assert window_colour() == light
    assert settings_mod.load_settings(database).theme_preference == "light"

    dialog = window.show_settings()
    combo = dialog.editors["theme_preference"]
    combo.setCurrentIndex(combo.findData("dark"))
    dialog.accept()
    assert database.get_metadata("theme_preference") == "dark"
    assert window_colour() < light


def test_the_binary_field_shows_the_detected_build(qtbot, db, tmp_path, llama_server):
    window = open_window(qtbot, db, tmp_path)
    dialog = window.show_settings()
    qtbot.waitUntil(lambda: dialog.binary_info.property("ok") is not None, timeout=30_000)
    assert dialog.binary_info.property("ok") is True
    assert "llama-server" in dialog.binary_info.text()
    dialog.auto_detect()
    qtbot.waitUntil(lambda: dialog.editors["llama_server_path"].text() != "", timeout=30_000)
    found = Path(dialog.editors["llama_server_path"].text())
    assert found.is_file() and os.access(found, os.X_OK)
    dialog.accept()
    assert database.get_metadata(METADATA_KEY) == str(found)
    # the About box names the build too
    qtbot.waitUntil(lambda: "llama-server" in window.binary_text, timeout=30_000)
    assert "llama-server" in window.about_text()


def test_a_broken_binary_is_reported_in_the_dialog(qtbot, db, tmp_path):
    fake = tmp_path / "llama-server"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    window = open_window(qtbot, db, tmp_path)
    dialog = window.show_settings()
    dialog.editors["llama_server_path"].setText(str(fake))
    dialog.probe_binary()
    qtbot.waitUntil(lambda: dialog.binary_info.property("ok") is False, timeout=30_000)
    assert "✖" in dialog.binary_info.text()
    dialog.reject()
