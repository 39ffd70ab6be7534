"""Start at login: the system's entry is the truth, and saving other settings leaves it alone."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from support import launch_gui

from llamadash.app import shutdown
from llamadash.core import autostart


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config"


def test_an_entry_made_elsewhere_shows_as_on_and_survives_saving_other_settings(qtbot, tmp_path, config_home):
    autostart.set_enabled(True)  # e.g. the installer's "Start with Windows", or made by hand
    entry = autostart.autostart_path()
    gui = launch_gui(qtbot, tmp_path / "data")
    try:
        window = gui.window
        assert window.settings.start_at_login is True  # what Settings shows
        window.save_settings(replace(window.settings, theme_preference="dark"))  # another setting
        assert entry.is_file()
        window.save_settings(replace(window.settings, start_at_login=False))  # the user turns it off
        assert not entry.exists()
    finally:
        shutdown(gui)


def test_without_an_entry_saving_other_settings_makes_none(qtbot, tmp_path, config_home):
    gui = launch_gui(qtbot, tmp_path / "data")
    try:
        window = gui.window
        assert window.settings.start_at_login is False
        window.save_settings(replace(window.settings, theme_preference="dark"))
        assert not autostart.autostart_path().exists()
        window.save_settings(replace(window.settings, start_at_login=True))
        assert autostart.autostart_path().is_file()
    finally:
        shutdown(gui)
        autostart.set_enabled(False)
