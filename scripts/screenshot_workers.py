"""Take the README screenshot of the Workers tab (``docs/screenshots/workers.png``).

Run under a virtual X server::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot_workers.py

Everything shown is real: three local ``ggml-rpc-server`` processes of the test extra's llama.cpp
build (one bound to 0.0.0.0 after the confirmation, so its row carries llama.cpp's warning), a
remote worker that answers (a listening socket of this script) and one that does not, and a model
given two of the workers.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def run_for(app, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots" / "workers.png")
    parser.add_argument("--size", default="1400x760")
    options = parser.parse_args()

    from PySide6.QtWidgets import QApplication
    from support import free_port

    from llamadash.core import database as db
    from llamadash.core import settings as settings_mod
    from llamadash.core import workers
    from llamadash.ui import workers_view
    from llamadash.ui.library_controller import LibraryController
    from llamadash.ui.main_window import MainWindow

    tmp = Path(tempfile.mkdtemp(prefix="llamadash-workers-shot-"))
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("llamadash")
    data_dir = tmp / "data"
    db_path = data_dir / "llama-dashboard.db"
    db.init_database(db_path)
    db.save_model({"name": "llama-3.3-70b-q4", "type": "llama", "status": "stopped", "port": 8090})
    db.save_model({"name": "qwen2.5-32b-q5", "type": "qwen2", "status": "stopped", "port": 8091})
    settings_mod.save_settings(settings_mod.Settings(theme_preference="light"), db)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    for worker in (
        workers.make_worker("gpu-a", port=free_port(), threads=2),
        workers.make_worker("gpu-b", port=free_port(), threads=2, cache=True),
        workers.make_worker("lan", host="0.0.0.0", port=free_port(), threads=1, confirm_open_network=True),
        workers.make_worker("box2", kind="remote", host="127.0.0.1", port=listener.getsockname()[1]),
        workers.make_worker("box3", kind="remote", host="127.0.0.1", port=free_port()),
    ):
        workers.add_worker(worker)

    window = MainWindow(store=db, db_path=db_path, load_models=db.get_models, data_dir=data_dir)
    library = LibraryController(window, db, data_dir)
    service = workers_view.install(window, data_dir, library.service)
    view = window.lazy_tabs.widget("workers")
    for name in ("gpu-a", "gpu-b", "lan"):
        found = workers.get_worker(name)
        assert found is not None
        service.start(found)
    width, height = (int(v) for v in options.size.split("x"))
    window.resize(width, height)
    window.show()
    window.workspace.setCurrentWidget(view)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(
        service.state(n) != "running" for n in ("gpu-a", "gpu-b", "lan")
    ):
        run_for(app, 0.2)
    run_for(app, 2.0)
    view.model_box.setCurrentText("llama-3.3-70b-q4")
    view.select("gpu-a", "gpu-b")
    view.use_button.click()
    run_for(app, 1.0)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(options.out))
    print(f"wrote {options.out}")
    service.stop_all(10)
    listener.close()
    window.close()
    db.close_database()
    return 0


if __name__ == "__main__":
    sys.exit(main())
