"""Start at login: the XDG autostart entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamadash.core import autostart


def test_enabling_writes_an_entry_that_starts_minimized(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert not autostart.is_enabled("linux")
    autostart.set_enabled(True, ["/opt/llama dash/llamadash", "--minimized"], platform="linux")
    entry = tmp_path / "autostart" / autostart.DESKTOP_FILE_NAME
    text = entry.read_text()
    assert "Exec='/opt/llama dash/llamadash' --minimized" in text and "Type=Application" in text
    assert autostart.is_enabled("linux")
    autostart.set_enabled(False, platform="linux")
    assert not entry.exists() and not autostart.is_enabled("linux")
