"""``llamadash --smoke-test``: start the whole application once, offscreen, and exit.

The packaging scripts run it on a freshly built bundle (and on the installed package) before anything
is shipped: it proves that the frozen app finds its Python modules, its Qt plugins, the parameter
schema and its resources. Steps, each timed:

1. a temporary data directory (deleted afterwards; the user's data is never touched);
2. the real start-up path (:func:`llamadash.app.build_gui`): the database is created and opened, the
   settings loaded, the main window built and shown on the ``offscreen`` Qt platform (unless
   ``QT_QPA_PLATFORM`` is already set, e.g. to ``xcb`` under Xvfb);
3. the services start after the first paint, and the metrics sampler takes one sample, saved to the
   database;
4. a clean shutdown; exit status 0, or 1 with the reason on stderr.

With ``LLAMADASH_SMOKE_SCREENSHOT=FILE.png`` it also saves a picture of the window (e.g. under Xvfb
with ``QT_QPA_PLATFORM=xcb``). The timings go to stdout (stderr when there is none, as in a windowed Windows build), one
``name: seconds`` line each, so a script can read them.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

#: Seconds the smoke test waits for the window to appear and the first sample to arrive.
TIMEOUT_S = 60.0

#: When set, the smoke test saves a picture of the main window there (PNG), after the first sample.
SCREENSHOT_ENV = "LLAMADASH_SMOKE_SCREENSHOT"

_T0 = time.perf_counter()


def _out() -> TextIO | None:
    """Where the report goes: stdout, else stderr, else nowhere (a windowed build has neither)."""
    return sys.stdout if sys.stdout is not None else sys.stderr


def _say(text: str) -> None:
    stream = _out()
    if stream is not None:
        print(text, file=stream, flush=True)


def _fail(text: str) -> int:
    stream = sys.stderr if sys.stderr is not None else _out()
    if stream is not None:
        print(f"llamadash --smoke-test: FAILED: {text}", file=stream, flush=True)
    return 1


def _wait_for(app: Any, done: Any, timeout_s: float) -> bool:
    """Run the event loop until ``done()`` is true or ``timeout_s`` passes; returns ``done()``."""
    deadline = time.perf_counter() + timeout_s
    while not done() and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.005)
    return bool(done())


def run_smoke_test(argv: Sequence[str] = ()) -> int:
    """Start the application in a temporary data directory, sample once, shut down.

    Args:
        argv: extra arguments (ignored apart from Qt's own; ``--data-dir`` is always the temporary one).

    Returns:
        0 when everything worked, 1 otherwise (the reason is printed on stderr).
    """
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="llamadash-smoke-") as tmp:
        data_dir = Path(tmp) / "data"
        # Children (llama-server, a second llamadash) must not see the user's data either.
        os.environ["LLAMADASH_DATA_DIR"] = str(data_dir)
        try:
            status = _smoke(data_dir, timings)
        except Exception as exc:
            import traceback

            traceback.print_exc()
            status = _fail(f"{type(exc).__name__}: {exc}")
    timings["total"] = time.perf_counter() - _T0
    for name, seconds in timings.items():
        _say(f"{name}: {seconds:.3f} s")
    if status == 0:
        _say("llamadash --smoke-test: OK")
    return status


def _smoke(data_dir: Path, timings: dict[str, float]) -> int:
    """The smoke test proper; fills ``timings`` (seconds since the process's first import of this)."""
    from PySide6.QtWidgets import QApplication

    from llamadash import __version__
    from llamadash.app import build_gui, shutdown
    from llamadash.core import paths
    from llamadash.core.params import schema

    timings["imports"] = time.perf_counter() - _T0
    frozen = bool(getattr(sys, "frozen", False))
    platform = os.environ.get("QT_QPA_PLATFORM")
    _say(f"llamadash {__version__} smoke test, frozen={frozen}, Qt platform {platform}, data dir {data_dir}")
    # The parameter schema is package data: a bundle without it cannot build a command line.
    count = len(schema.load_schema())
    if count == 0:
        return _fail("the parameter schema is empty")
    timings["schema_loaded"] = time.perf_counter() - _T0

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "llamadash"])
    built = build_gui(["--data-dir", str(data_dir)])
    if isinstance(built, int):
        return _fail(f"the application did not start (status {built})")
    timings["window_built"] = time.perf_counter() - _T0
    db_path = paths.default_database_path(data_dir)
    if not db_path.is_file():
        shutdown(built)
        return _fail(f"no database at {db_path}")

    samples: list[Any] = []
    errors: list[str] = []
    built.sampler.sampled.connect(samples.append)
    built.sampler.failed.connect(errors.append)
    built.sampler.set_interval(0.25)  # the first sample one interval after the services start
    try:
        if not _wait_for(app, lambda: built.services_started, TIMEOUT_S):
            return _fail("the services never started (no first paint?)")
        timings["services_started"] = time.perf_counter() - _T0
        if not _wait_for(app, lambda: bool(samples) or bool(errors), TIMEOUT_S):
            return _fail(f"no metrics sample within {TIMEOUT_S:.0f} s")
        if errors:
            return _fail(f"sampling failed: {errors[0]}")
        timings["first_sample"] = time.perf_counter() - _T0
        from llamadash.core import database as db

        if not db.get_metrics_history(10):
            return _fail("the sample was not saved to the database")
        shot = os.environ.get(SCREENSHOT_ENV, "")
        if shot:
            app.processEvents()
            if not built.window.grab().save(shot):
                return _fail(f"cannot save the screenshot to {shot}")
            _say(f"screenshot: {shot}")
    finally:
        built.window.close()
        shutdown(built)
        app.processEvents()
    timings["shutdown"] = time.perf_counter() - _T0
    return 0
