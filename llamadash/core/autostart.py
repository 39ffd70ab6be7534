"""Start llamadash at login: an XDG autostart entry on Linux, a per-user Run key on Windows.

Pure Python, no Qt. The entry starts ``llamadash --minimized`` so the dashboard waits in the tray.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DESKTOP_FILE_NAME",
    "RUN_VALUE_NAME",
    "autostart_path",
    "default_command",
    "is_enabled",
    "set_enabled",
]

DESKTOP_FILE_NAME = "io.github.llamadash.llamadash.desktop"
RUN_VALUE_NAME = "llamadash"
_RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"


def autostart_path() -> Path:
    """The XDG autostart entry (``$XDG_CONFIG_HOME/autostart``, default ``~/.config/autostart``)."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "autostart" / DESKTOP_FILE_NAME


def default_command() -> list[str]:
    """How this llamadash is started again: the frozen executable, or this Python with ``-m llamadash``."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--minimized"]
    return [sys.executable, "-m", "llamadash", "--minimized"]


def _desktop_exec(argv: Sequence[str]) -> str:
    # The Desktop Entry spec quotes like a shell but also reserves "%": double it.
    return " ".join(shlex.quote(a).replace("%", "%%") for a in argv)


def _winreg() -> Any:
    """The ``winreg`` module (Windows only; typed ``Any`` so type checks pass on every platform)."""
    return importlib.import_module("winreg")


def is_enabled(platform: str | None = None) -> bool:
    """Whether llamadash starts at login."""
    platform = platform or sys.platform
    if platform == "win32":  # pragma: no cover - Windows only
        winreg = _winreg()
        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, _RUN_KEY) as key:
                winreg.QueryValueEx(key, RUN_VALUE_NAME)
            return True
        except OSError:
            return False
    return autostart_path().is_file()


def set_enabled(enabled: bool, command: Sequence[str] | None = None, platform: str | None = None) -> None:
    """Turn start at login on or off.

    Args:
        enabled: On or off.
        command: The command to run (default :func:`default_command`).
        platform: ``sys.platform`` (tests).

    Raises:
        OSError: The entry cannot be written or removed.
    """
    platform = platform or sys.platform
    argv = list(command or default_command())
    if platform == "win32":  # pragma: no cover - Windows only
        import subprocess

        winreg = _winreg()
        with winreg.CreateKey(winreg.HKEY_CURRENT_USER, _RUN_KEY) as key:
            if enabled:
                winreg.SetValueEx(key, RUN_VALUE_NAME, 0, winreg.REG_SZ, subprocess.list2cmdline(argv))
            else:
                with contextlib.suppress(FileNotFoundError):
                    winreg.DeleteValue(key, RUN_VALUE_NAME)
        return
    path = autostart_path()
    if not enabled:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=llamadash\n"
        "Comment=Dashboard for llama.cpp's llama-server\n"
        f"Exec={_desktop_exec(argv)}\n"
        "Icon=io.github.llamadash.llamadash\n"
        "Terminal=false\n"
        "X-GNOME-Autostart-enabled=true\n"
    )
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
