"""A throwaway X desktop for the tray tests and the tray screenshots: Xvfb, a tray host, xdotool.

``Desktop(tray=True)`` starts ``Xvfb`` on a free display and Debian's ``trayer`` tray host at the top
right; ``Desktop(tray=False)`` is a bare display (no tray: the fallback). Programs started with
``desktop.env`` run on it with Qt's xcb platform. ``tray_icon`` finds the window llamadash's
``QSystemTrayIcon`` embedded in the tray (``xwininfo``); ``click``/``hover``/``key`` drive it as a
user would (``xdotool``), and ``open_tray_menu``/``choose_in_menu`` its menu; ``grab`` saves part of
the screen as a PNG.

Needs the apt packages in ``INSTALL_HINT``; a missing one raises :class:`DesktopError` naming them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self, TypeVar

from support import stop_process

INSTALL_HINT = "apt-get install xvfb trayer xdotool x11-utils"
TRAY_HEIGHT = 30
T = TypeVar("T")

_GRAB = r"""
import sys
from PySide6.QtCore import QRect
from PySide6.QtGui import QGuiApplication
app = QGuiApplication(sys.argv[:1])
x, y, w, h = (int(v) for v in sys.argv[2:6])
shot = app.primaryScreen().grabWindow(0).copy(QRect(x, y, w, h))
sys.exit(0 if shot.save(sys.argv[1]) else 1)
"""
# xwininfo -tree: 0x400007 "llamadash": ("llamadash" "llamadash")  22x28+0+0  +1001+1
_TREE_LINE = re.compile(
    r'"(?P<name>[^"]*)": \((?P<cls>[^)]*)\)\s+(?P<w>\d+)x(?P<h>\d+)\S*\s+\+(?P<x>-?\d+)\+(?P<y>-?\d+)'
)


class DesktopError(RuntimeError):
    """The desktop could not be set up, or did not do what was waited for."""


def need(tool: str) -> str:
    """The path of ``tool``, or :class:`DesktopError` saying which packages to install."""
    path = shutil.which(tool)
    if path is None:
        raise DesktopError(f"{tool} is not installed: {INSTALL_HINT}")
    return path


def wait_until(condition: Callable[[], T], timeout_s: float, what: str, step_s: float = 0.1) -> T:
    """The first true value of ``condition()``, polled every ``step_s``; DesktopError on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DesktopError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(step_s)


def _free_display() -> int:
    for number in range(90, 200):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            return number
    raise DesktopError("no free X display number")


class Desktop:
    """An Xvfb display, with the trayer tray host at the top right when ``tray`` is true."""

    def __init__(
        self, *, tray: bool = True, size: tuple[int, int] = (1024, 640), background: str = ""
    ) -> None:
        self.size = size
        self.procs: list[subprocess.Popen[bytes]] = []
        number = _free_display()
        self.display = f":{number}"
        self.env = {**os.environ, "DISPLAY": self.display, "QT_QPA_PLATFORM": "xcb"}
        self.env.pop("WAYLAND_DISPLAY", None)
        xvfb = subprocess.Popen(
            [need("Xvfb"), self.display, "-screen", "0", f"{size[0]}x{size[1]}x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(xvfb)
        try:
            wait_until(
                lambda: xvfb.poll() is not None or Path(f"/tmp/.X11-unix/X{number}").exists(), 10, "Xvfb"
            )
            if xvfb.poll() is not None:
                raise DesktopError(f"Xvfb {self.display} exited at once ({xvfb.returncode})")
            if tray:
                self._start_tray()
            if background and shutil.which("xsetroot"):  # x11-xserver-utils; black without it
                subprocess.run(["xsetroot", "-solid", background], env=self.env, check=False)
        except BaseException:
            self.close()
            raise

    def _start_tray(self) -> None:
        host = subprocess.Popen(
            [need("trayer"), "--edge", "top", "--align", "right", "--widthtype", "pixel",
             "--width", "160", "--height", str(TRAY_HEIGHT), "--margin", "6", "--tint", "0x2b2f36",
             "--transparent", "true", "--alpha", "0"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.procs.append(host)
        # trayer is ready once its panel window is mapped
        wait_until(lambda: host.poll() is not None or '"panel"' in self._tree(), 10, "the trayer panel")
        if host.poll() is not None:
            raise DesktopError(f"trayer exited at once ({host.returncode})")

    def _tree(self) -> str:
        return subprocess.run(
            [need("xwininfo"), "-root", "-tree", "-display", self.display],
            capture_output=True,
            text=True,
            check=False,
        ).stdout

    def tray_icon(self, app_class: str = "llamadash") -> tuple[int, int, int, int] | None:
        """(x, y, width, height) on screen of the icon ``app_class`` put in the tray, or ``None``."""
        for line in self._tree().splitlines():
            match = _TREE_LINE.search(line)
            if match is None or f'"{app_class}"' not in match["cls"]:
                continue
            w, h, x, y = (int(match[k]) for k in ("w", "h", "x", "y"))
            # the embedded icon: icon-sized, inside the panel at the top (not Qt's 1x1 helper windows)
            if 8 <= w <= TRAY_HEIGHT + 4 and 8 <= h <= TRAY_HEIGHT + 4 and 0 <= y < TRAY_HEIGHT:
                return x, y, w, h
        return None

    def tray_icon_centre(self, timeout_s: float = 30) -> tuple[int, int]:
        found = wait_until(self.tray_icon, timeout_s, "llamadash's icon in the tray", 0.25)
        assert found is not None  # wait_until returns a true value or raises
        x, y, w, h = found
        return x + w // 2, y + h // 2

    def xdotool(self, *args: str) -> str:
        done = subprocess.run(
            [need("xdotool"), *args], env=self.env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise DesktopError(f"xdotool {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def visible_windows(self, app_class: str = "llamadash") -> dict[str, tuple[int, int, int, int]]:
        """The mapped windows of ``app_class``: id -> (x, y, width, height) on screen."""
        done = subprocess.run(
            [need("xdotool"), "search", "--onlyvisible", "--class", app_class],
            env=self.env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        found: dict[str, tuple[int, int, int, int]] = {}
        for window in done.stdout.split():  # exit status 1: none found
            try:
                shell = self.xdotool("getwindowgeometry", "--shell", window)
            except DesktopError:
                continue  # unmapped and gone between the search and the question
            values = dict(line.split("=", 1) for line in shell.splitlines() if "=" in line)
            try:
                found[window] = tuple(int(values[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))  # type: ignore[assignment]
            except (KeyError, ValueError):
                continue
        return found

    def open_tray_menu(
        self, app_class: str = "llamadash", timeout_s: float = 30
    ) -> tuple[int, int, int, int]:
        """Right-click ``app_class``'s tray icon until its menu shows; returns the menu's rectangle.

        The icon is looked up anew before each click (the tray host may lay its icons out again), the
        menu is waited for instead of slept for (a busy machine opens it late: keys sent before it
        holds the keyboard are lost), and the pointer is then moved off the menu, which opens under it:
        an item under the pointer would be made current by Qt's hover, and the keys would start
        from it instead of from the top.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            before = set(self.visible_windows(app_class))
            x, y = self.tray_icon_centre(max(1.0, deadline - time.monotonic()))
            self.click(x, y, button=3)

            def new_windows(before: set[str] = before) -> list[tuple[int, int, int, int]]:
                return [r for w, r in self.visible_windows(app_class).items() if w not in before]

            try:
                menu = wait_until(
                    new_windows,
                    min(5.0, max(0.5, deadline - time.monotonic())),
                    f"{app_class}'s tray menu",
                    0.1,
                )[0]
                break
            except DesktopError:
                if time.monotonic() > deadline:
                    raise
                self.key("Escape")  # a menu shown just too late closes; the click is tried again
        away = (5, self.size[1] - 5) if menu[0] > 10 else (self.size[0] - 5, self.size[1] - 5)
        self.xdotool("mousemove", str(away[0]), str(away[1]))
        time.sleep(0.3)  # Qt takes the pointer's leaving the menu, and its keyboard grab is in place
        return menu

    def choose_in_menu(self, menu: tuple[int, int, int, int], *keys: str, timeout_s: float = 10) -> None:
        """Send ``keys`` to an open menu (ending with the key that picks), and wait for it to close."""
        self.key(*keys)
        wait_until(lambda: menu not in self.visible_windows().values(), timeout_s, "the menu to close", 0.1)

    def click(self, x: int, y: int, button: int = 1) -> None:
        self.xdotool("mousemove", str(x), str(y), "click", str(button))

    def key(self, *keys: str, pause_s: float = 0.15) -> None:
        for name in keys:
            self.xdotool("key", name)
            time.sleep(pause_s)

    def hover(self, x: int, y: int) -> None:
        """Rest the pointer on (x, y): Qt shows a tooltip after motion inside a widget, not a jump."""
        for dx, dy in ((-2, -2), (0, 0), (1, 1), (0, 1), (1, 0)):
            self.xdotool("mousemove", str(x + dx), str(y + dy))
            time.sleep(0.15)

    def grab(self, path: Path, rect: tuple[int, int, int, int]) -> None:
        """Save the screen's ``rect`` (x, y, width, height) as the PNG ``path``."""
        done = subprocess.run(
            [sys.executable, "-c", _GRAB, str(path), *(str(v) for v in rect)],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise DesktopError(f"cannot grab the screen: {done.stderr[-2000:]}")

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc, 5)
        self.procs.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
