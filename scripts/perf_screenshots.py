"""Take the screenshots of the fit check, the benchmark and the tuner (docs/screenshots/).

Run under a virtual X server::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/perf_screenshots.py

Everything shown is real: the tests' llama-fit-params and llama-bench run on tiny random-weight
models (``tests/support.write_tiny_gguf``) on this machine; the fit margin is chosen so that the
tool has to cut the context, which is the case worth showing. Writes ``fit.png``, ``bench.png`` and
``tuner.png``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def wait_for(app, condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    options = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="llamadash-perf-shots-"))
    os.environ["LLAMADASH_DATA_DIR"] = str(tmp / "data")

    from PySide6.QtWidgets import QApplication
    from support import write_tiny_gguf

    from llamadash.core import database
    from llamadash.core.llama_server import find_llama_server
    from llamadash.core.params import COLUMN
    from llamadash.core.perf.tools import FIT_TOOL, tool_path
    from llamadash.ui.perf_dialogs import BenchDialog, FitDialog, TunerDialog
    from llamadash.ui.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv)
    apply_theme("light")
    server = find_llama_server().path
    model_file = write_tiny_gguf(tmp / "tiny-long-context.gguf", n_ctx=65536)
    log = subprocess.run(
        [str(tool_path(server, FIT_TOOL)), "-m", str(model_file), "-lv", "4"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    line = next(x for x in log.splitlines() if "projected to use" in x)
    numbers = [int(word) for word in line.split() if word.isdigit()]
    margin = numbers[-1] - numbers[-2] + 24  # a little short of the full context: it gets cut
    database.init_database(tmp / "data" / "llama-dashboard.db")
    model = {
        "name": "tiny-long-context",
        "type": "llama",
        "status": "stopped",
        COLUMN.model_path: str(model_file),
        COLUMN.fit_target: margin,
        COLUMN.threads: 2,
    }
    database.save_model(model)
    options.out.mkdir(parents=True, exist_ok=True)

    fit = FitDialog(model, str(server), tmp / "cache")
    fit.resize(760, 400)
    fit.show()
    assert wait_for(app, lambda: fit.outcome is not None, 60), "llama-fit-params gave no answer"
    wait_for(app, lambda: False, 0.3)
    fit.grab().save(str(options.out / "fit.png"))
    fit.close()

    bench = BenchDialog(model, str(server), build_label="b11434")
    bench.resize(1000, 520)
    bench.show()
    for threads, flash in ((1, "on"), (2, "on"), (2, "off")):
        database.update_model(database.get_model_by_name(model["name"])["id"], {COLUMN.threads: threads})
        bench._model = {**database.get_model_by_name(model["name"]), COLUMN.flash_attn: flash}
        bench.pp_box.setValue(256)
        bench.tg_box.setValue(64)
        bench.reps_box.setValue(3)
        done: list[bool] = []
        bench.runner.finished.connect(lambda done=done: done.append(True))
        bench.start()
        assert wait_for(app, lambda done=done: bool(done), 120), "llama-bench did not finish"
    wait_for(app, lambda: False, 0.3)
    bench.grab().save(str(options.out / "bench.png"))
    bench.close()

    tuner = TunerDialog(database.get_model_by_name(model["name"]), str(server), lambda changes: None)
    tuner.choose(COLUMN.threads, "1,2")
    tuner.choose(COLUMN.flash_attn, "on,off")
    tuner.pp_box.setValue(256)
    tuner.tg_box.setValue(64)
    tuner.reps_box.setValue(3)
    tuner.resize(780, 760)
    tuner.show()
    finished: list[bool] = []
    tuner.runner.finished.connect(lambda: finished.append(True))
    tuner.start()
    assert wait_for(app, lambda: bool(finished), 240), "the sweep did not finish"
    wait_for(app, lambda: False, 0.3)
    tuner.grab().save(str(options.out / "tuner.png"))
    tuner.close()
    database.close_database()
    print(f"wrote fit.png, bench.png and tuner.png to {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
