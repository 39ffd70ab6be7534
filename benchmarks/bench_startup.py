"""How fast the main window appears, and how much CPU the idle dashboard costs.

Run from the repository root (under Xvfb for a real X server, or offscreen)::

    xvfb-run -a .venv/bin/python benchmarks/bench_startup.py                 # 5 launches each, 60 s idle
    .venv/bin/python benchmarks/bench_startup.py --repeat 3 --idle-seconds 20

Startup: the time from starting a process to the first paint of its main window, for llamadash
(launched exactly as ``llamadash`` launches, on a database holding 10 minutes of metrics at 1 Hz and
50 configured models) next to a bare PySide6 + pyqtgraph window (a ``QMainWindow`` with one
``PlotWidget``), alternating in the same run; medians over the repetitions, and their ratio. Each
child reports the wall-clock time of its first paint (the end of the first event-loop turn that
painted the window) and exits at once.

Idle CPU: llamadash runs with 1 Hz sampling and two instances of a tiny model serving nothing (real
llama-server processes started by the instance manager); after a warm-up, the dashboard process's
CPU time (all its threads, not the servers') is measured over ``--idle-seconds``, as % of one core.

Memory: the resident set (``ps -o rss``) of the idle llamadash window (services started, 1 Hz
sampling, no instance) next to the bare window's, each ``--settle-seconds`` after its charts were
painted; and the bare window's idle CPU over the same window as the dashboard's, as its baseline.

Every figure is printed on a ``RESULT`` line with its ratio to the baseline of the same run.
``--only startup|memory|idle`` runs one part; ``--profile DIR`` writes CPU-time cProfiles of
llamadash's start (to the charts painted) and of its main thread while idle.

Targets: first paint within 1.2× of the bare window, charts painted within 1.25×, resident
memory within 1.25×; idle CPU under 1 % of one core. Exit status 0 when all are met.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import cProfile

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

STARTUP_RATIO_TARGET = 1.2
CHARTS_RATIO_TARGET = 1.25
MEMORY_RATIO_TARGET = 1.25
IDLE_CPU_TARGET = 1.0
TAB_READY_MS = 100.0
IDLE_WARM_UP_S = 5.0
HISTORY_ROWS = 600
MODELS = 50
CAPABILITIES_CACHE = "llama-server-capabilities.json"  # what probe_binary keeps in DATA_DIR/cache


# ------------------------------------------------------------------------------------------------
# children


def _settle_seconds() -> float:
    """``LLAMADASH_BENCH_SETTLE``: stay this long after the charts were painted, then say SETTLED."""
    return float(os.environ.get("LLAMADASH_BENCH_SETTLE", "0") or 0)


def _profile_path() -> str | None:
    return os.environ.get("LLAMADASH_BENCH_PROFILE") or None


# The cProfile profile of child_app's start, for _report_first_paint to stop at the charts' paint.
_startup_profile: dict[str, cProfile.Profile | None] = {}


def _report_first_paint(app, window) -> None:
    """Print when ``window`` first finished painting, then when a plot in it did; then leave.

    Two times, because llamadash paints its window first and its plots in the next turn of the event
    loop: ``PAINTED`` is the first painted window, ``CHARTS`` the first painted chart (for the bare
    window both come with its one paint).

    The probe wraps paint handlers that are Python already: the window class's ``paintEvent`` (the
    bare window's is a Python subclass too) and pyqtgraph's ``GraphicsView.paintEvent`` (a plot's
    viewport). An application-wide event filter would hand every event of every object to Python,
    and PySide6 makes the Python class of each event type (with its enums) the first time it hands
    one over: llamadash makes its Qt classes when first used (``llamadash/ui/pyqtgraph_import.py``)
    while the bare window's pyqtgraph made them all at import, so such a probe cost llamadash alone
    ~40-60 ms (10 launches each way).
    """
    import pyqtgraph as pg
    from PySide6.QtCore import QTimer

    seen = {"window": False, "plot": False}
    window_class = type(window)
    window_paint = window_class.paintEvent
    view_paint = pg.GraphicsView.paintEvent

    def painted() -> None:
        if not seen["window"]:
            seen["window"] = True
            QTimer.singleShot(
                0, lambda: print(f"PAINTED {time.time():.6f} {time.process_time():.6f}", flush=True)
            )

    def paint(self, event):
        if self is window:  # first: before what the window's own paintEvent queues for after it
            painted()
        window_paint(self, event)

    def paint_view(self, event):  # also the window's first paint where no part of the window shows
        result = view_paint(self, event)
        if not seen["plot"] and self.window() is window:
            painted()
            seen["plot"] = True
            QTimer.singleShot(0, done)  # after this paint batch has been drawn
        return result

    def done() -> None:
        print(f"CHARTS {time.time():.6f} {time.process_time():.6f}", flush=True)
        profile, path = _startup_profile.get("profile"), _profile_path()
        if profile is not None and path:
            profile.disable()
            profile.dump_stats(path)
        if os.environ.get("LLAMADASH_BENCH_TABS"):  # open each tab behind Instances, timed
            after_s = float(os.environ["LLAMADASH_BENCH_TABS"])
            QTimer.singleShot(round(after_s * 1000), lambda: _open_tabs(app, window))
            return
        settle = _settle_seconds()
        if settle > 0:  # the parent reads the settled process, then ends it
            QTimer.singleShot(round(settle * 1000), lambda: print("SETTLED", flush=True))
            return
        os._exit(0)  # the measurement is over; tearing down is not part of it

    window_class.paintEvent = paint
    pg.GraphicsView.paintEvent = paint_view


def _open_tabs(app, window) -> None:
    """Bring each tab after the first forward in turn; print how long until it was painted."""
    from PySide6.QtCore import QEvent, QObject

    tabs = window.workspace
    for index in range(1, tabs.count()):
        title = tabs.tabText(index)
        painted: list[float] = []

        class Painted(QObject):
            def __init__(self, painted: list[float]) -> None:
                super().__init__()
                self.painted = painted

            def eventFilter(self, obj, event):
                if event.type() == QEvent.Type.Paint and not self.painted and obj is tabs.currentWidget():
                    self.painted.append(time.perf_counter())
                return False

        watcher = Painted(painted)
        app.installEventFilter(watcher)
        started = time.perf_counter()
        tabs.setCurrentIndex(index)  # as a click on the tab does
        deadline = started + 5
        while not painted and time.perf_counter() < deadline:
            app.processEvents()
        app.removeEventFilter(watcher)
        shown = (painted[0] - started) * 1000 if painted else float("nan")
        print(f"TAB {title.replace(' ', '_')} {shown:.1f}", flush=True)
    os._exit(0)


def child_app(data_dir: str) -> None:
    profile = None
    if _profile_path():
        import cProfile

        profile = cProfile.Profile(time.process_time)
        profile.enable()
    import llamadash.app as launcher

    # What build_gui does first (the launcher imports PySide6 after it): the imports below are its.
    startup_gc = getattr(launcher, "startup_gc", None)  # None: a tree from before it
    if startup_gc is not None:
        startup_gc.freeze_at_resume = True  # as run_gui, which launches the window, sets it
        startup_gc.pause()
    # build_gui makes the QApplication, as it does when launched (with the Fusion style from its
    # command line where it does so: asking for the style costs a Python class), so the probe is put
    # in place when the window is shown: patch show().
    # Importing the window's module here, before build_gui, must not cost what build_gui spares it
    # (PySide6 reading each module's source): first what build_gui does first.
    try:
        from llamadash.ui.import_scan import skip_source_scan
    except ImportError:  # a tree from before it, measured as a baseline
        pass
    else:
        skip_source_scan()
    try:
        from llamadash.ui.pyqtgraph_import import import_pyqtgraph
    except ImportError:  # a tree from before it
        pass
    else:
        import_pyqtgraph()
    from llamadash.ui import main_window

    original_show = main_window.MainWindow.show

    def show(self) -> None:
        from PySide6.QtWidgets import QApplication

        _startup_profile["profile"] = profile
        _report_first_paint(QApplication.instance(), self)
        original_show(self)

    main_window.MainWindow.show = show  # type: ignore[method-assign]
    gui = launcher.build_gui(["--data-dir", data_dir])
    if isinstance(gui, int):
        sys.exit(gui)
    gui.app.exec()


def child_bare() -> None:
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication, QMainWindow

    app = QApplication(sys.argv[:1])

    class BareWindow(QMainWindow):  # a paintEvent in Python, as llamadash's window has
        def paintEvent(self, event):
            super().paintEvent(event)

    window = BareWindow()
    window.setCentralWidget(pg.PlotWidget())
    window.resize(1440, 900)
    _report_first_paint(app, window)
    window.show()
    app.exec()


def child_idle(data_dir: str, instances: list[str]) -> None:
    from PySide6.QtCore import QTimer

    from llamadash.app import build_gui, shutdown
    from llamadash.services.manager import quit_on_signals

    gui = build_gui(["--data-dir", data_dir])  # makes the QApplication, as when launched
    if isinstance(gui, int):
        sys.exit(gui)
    app = gui.app
    started = False
    ready_at: list[float] = []

    def step() -> None:
        nonlocal started
        if gui.manager is None:  # the manager starts once the window has been painted
            QTimer.singleShot(100, step)
            return
        if not started:
            for name in instances:
                gui.manager.start(name)
            started = True
        if all(
            (inst := gui.manager.instance(n)) is not None and inst.state.value == "running" for n in instances
        ):
            print("READY", flush=True)
            ready_at.append(time.monotonic())
        else:
            QTimer.singleShot(100, step)

    QTimer.singleShot(100, step)
    restore = quit_on_signals(app)
    profile = None
    if _profile_path():  # the main thread while idle, from the end of the parent's warm-up on
        import cProfile

        profile = cProfile.Profile(time.process_time)

        def start_profile() -> None:
            if ready_at and time.monotonic() - ready_at[0] >= IDLE_WARM_UP_S and profile is not None:
                profile.enable()
            else:
                QTimer.singleShot(200, start_profile)

        QTimer.singleShot(200, start_profile)
    app.exec()
    restore()
    if profile is not None:
        profile.disable()
        profile.dump_stats(str(_profile_path()))
    shutdown(gui)


# ------------------------------------------------------------------------------------------------
# the parent


def prepare(data_dir: Path, with_instances: bool) -> list[str]:
    """A database with 10 minutes of history and 50 models; returns the models to start for idle."""
    from llamadash.core import database

    database.init_database(data_dir / "llama-dashboard.db")
    now = time.time_ns() // 1_000_000
    for i in range(HISTORY_ROWS):
        t = now - (HISTORY_ROWS - 1 - i) * 1000
        database.save_metrics(
            {
                "timestamp": t,
                "created_at": t,
                "cpu_usage": 10 + i % 40,
                "memory_usage": 45.0,
                "disk_usage": 70.0,
                "active_models": 2,
                "requests_per_minute": 0.0,
            }
        )
    for i in range(MODELS):
        database.save_model(
            {
                "name": f"model-{i:02d}",
                "type": "llama",
                "status": "stopped",
                "port": 9000 + i,
                "model_path": f"/srv/models/model-{i:02d}.gguf",
                "ctx_size": 4096,
            }
        )
    started: list[str] = []
    if with_instances:
        from support import free_port, write_tiny_gguf

        tiny = write_tiny_gguf(data_dir.parent / "tiny.gguf")
        for name in ("tiny-a", "tiny-b"):
            database.save_model(
                {
                    "name": name,
                    "type": "llama",
                    "status": "stopped",
                    "port": free_port(),
                    "model_path": str(tiny),
                    "ctx_size": 256,
                }
            )
            started.append(name)
    database.set_metadata("sample_interval_s", "1.0")
    database.close_database()
    return started


def launch_once(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> tuple[float, float, float, float]:
    """Seconds from starting the child to its first painted window and to its first painted chart,
    then the child's CPU seconds (all threads) at each of the two."""
    started = time.time()
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, env=env)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    times: dict[str, tuple[float, float]] = {}
    for line in out.splitlines():
        word, *values = line.split()
        if word in ("PAINTED", "CHARTS"):
            times[word] = (float(values[0]) - started, float(values[1]))
    if "PAINTED" not in times or "CHARTS" not in times:
        raise RuntimeError(f"the child {args} never painted (exit {proc.returncode})")
    return times["PAINTED"][0], times["CHARTS"][0], times["PAINTED"][1], times["CHARTS"][1]


def measure_tabs(args: list[str], env: dict[str, str], after_s: float) -> dict[str, float]:
    """Milliseconds from bringing each hidden tab forward to its first paint, ``after_s`` after the
    charts were painted; one launch."""
    env = dict(env, LLAMADASH_BENCH_TABS=str(after_s))
    out = subprocess.run(
        [sys.executable, __file__, *args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        timeout=120,
        check=False,
    ).stdout
    return {
        words[1].replace("_", " "): float(words[2])
        for words in (line.split() for line in out.splitlines())
        if len(words) == 3 and words[0] == "TAB"
    }


def measure_settled(
    args: list[str], env: dict[str, str], settle_s: float, idle_s: float
) -> tuple[int, float]:
    """(resident bytes, % of one core over ``idle_s``) of a window ``settle_s`` after its charts painted."""
    import psutil

    env = dict(env, LLAMADASH_BENCH_SETTLE=str(settle_s))
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "SETTLED":
                break
        else:
            raise RuntimeError(f"the child {args} never settled (exit {proc.wait()})")
        me = psutil.Process(proc.pid)
        rss = me.memory_info().rss
        before, wall = me.cpu_times(), time.monotonic()
        time.sleep(idle_s)
        after, elapsed = me.cpu_times(), time.monotonic() - wall
        cpu = (after.user + after.system - before.user - before.system) / elapsed * 100
        return rss, cpu
    finally:
        proc.kill()
        proc.wait(30)


def measure_idle(
    data_dir: Path, instances: list[str], seconds: float, env: dict[str, str]
) -> tuple[float, float]:
    """(% of one core used by the dashboard process, % used by its llama-server children) over ``seconds``.

    The dashboard's share counts all its threads (the sampler's too), not the servers'.
    """
    import psutil

    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", "idle", "--data-dir", str(data_dir), "--instances", *instances],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.strip() == "READY" or not line:
                break
        if proc.poll() is not None:
            raise RuntimeError("the dashboard exited before its instances were ready")
        time.sleep(IDLE_WARM_UP_S)  # warm-up: first samples, first figures, NVML initialisation
        me = psutil.Process(proc.pid)
        servers = [c for c in me.children(recursive=True) if "llama" in c.name()]

        def cpu(p: psutil.Process) -> float:
            times = p.cpu_times()
            return times.user + times.system

        before = cpu(me), sum(cpu(s) for s in servers)
        wall = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - wall
        after = cpu(me), sum(cpu(s) for s in servers)
        return (after[0] - before[0]) / elapsed * 100, (after[1] - before[1]) / elapsed * 100
    finally:
        proc.terminate()  # SIGTERM: the dashboard quits cleanly and stops its instances
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="launches of each window (default 5)")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="idle CPU window (default 60)")
    parser.add_argument("--no-instances", action="store_true", help="measure idle CPU without instances")
    parser.add_argument(
        "--settle-seconds", type=float, default=5.0, help="wait before reading memory (default 5)"
    )
    parser.add_argument("--only", choices=("startup", "tabs", "memory", "idle"), help="run one part only")
    parser.add_argument("--profile", metavar="DIR", help="write CPU-time cProfiles of llamadash into DIR")
    parser.add_argument("--child", choices=("app", "bare", "idle"), help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--instances", nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child == "app":
        child_app(args.data_dir)
        return 0
    if args.child == "bare":
        child_bare()
        return 0
    if args.child == "idle":
        child_idle(args.data_dir, args.instances)
        return 0

    env = dict(os.environ)
    # Both windows start from cached bytecode, as an installed application does: site-packages has
    # its .pyc files from pip, while a checkout run with PYTHONDONTWRITEBYTECODE would compile all of
    # llamadash at every launch. The warm-up launches fill a private cache (the tree stays clean).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    platform_name = env.get("QT_QPA_PLATFORM") or ("xcb" if env.get("DISPLAY") else "wayland")
    with tempfile.TemporaryDirectory(prefix="llamadash-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        env["LLAMADASH_DATA_DIR"] = str(data_dir)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        instances = prepare(data_dir, with_instances=not args.no_instances)
        print(
            f"llamadash startup benchmark — {platform.platform()}, Python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, Qt platform {platform_name}"
        )
        print(f"database: {HISTORY_ROWS} metrics rows (10 min at 1 Hz), {MODELS + len(instances)} models")
        results: list[tuple[str, float, float]] = []  # (what, ratio or value, target)
        app_args = ["--child", "app", "--data-dir", str(data_dir)]
        launch_once(["--child", "bare"], env)  # warm the file and bytecode caches (not counted)
        launch_once(app_args, env)
        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
            args.profile = str(Path(args.profile).resolve())
        if args.only in (None, "startup"):
            app_runs: list[tuple[float, ...]] = []
            bare_runs: list[tuple[float, ...]] = []
            for _ in range(args.repeat):
                bare_runs.append(launch_once(["--child", "bare"], env))
                app_runs.append(launch_once(app_args, env))

            def report(label: str, runs: list[tuple[float, ...]], which: int) -> float:
                values = [run[which] for run in runs]
                median = statistics.median(values)
                print(
                    f"{label:<48} median {median * 1000:5.0f} ms  "
                    f"({', '.join(f'{v * 1000:.0f}' for v in values)})"
                )
                return median

            bare_median = report("bare PySide6 + pyqtgraph window, painted:", bare_runs, 0)
            app_median = report("llamadash main window, painted:", app_runs, 0)
            charts_median = report("llamadash main window, charts painted:", app_runs, 1)
            # CPU time, less disturbed by other processes on a busy machine than the wall clock
            bare_cpu = report("  CPU time: bare window, painted:", bare_runs, 2)
            app_cpu = report("  CPU time: llamadash, painted:", app_runs, 2)
            charts_cpu = report("  CPU time: llamadash, charts painted:", app_runs, 3)
            print(
                f"  CPU-time ratios: first paint {app_cpu / bare_cpu:.2f}x, charts painted "
                f"{charts_cpu / bare_cpu:.2f}x"
            )
            results.append(("first paint vs the bare window", app_median / bare_median, STARTUP_RATIO_TARGET))
            results.append(
                ("charts painted vs the bare window", charts_median / bare_median, CHARTS_RATIO_TARGET)
            )
            if args.profile:
                out = Path(args.profile) / "startup.prof"
                launch_once(app_args, dict(env, LLAMADASH_BENCH_PROFILE=str(out)))
                print(f"profile of the start (to the charts painted): {out}")

        if args.only in (None, "tabs"):
            # An installed application has the bytecode of what it imports after its first paint too
            # (the tabs' modules, the stdlib's that describing llama-server needs): one launch that
            # opens them, not counted, compiles it into the private cache as pip and Python's
            # installers compile theirs.
            measure_tabs(app_args, env, 5.0)
            # 1 s: while the window describes llama-server (a second after its first paint; its
            # cached answer removed: the first launch after llama-server changed, which runs
            # `llama-server --help` and `--version`); 5 s: once the window has settled
            for after_s in (1.0, 5.0):
                (data_dir / "cache" / CAPABILITIES_CACHE).unlink(missing_ok=True)
                opened = measure_tabs(app_args, env, after_s)
                listed = ", ".join(f"{t} {ms:.0f} ms" for t, ms in opened.items())
                print(f"hidden tabs opened {after_s:g} s after the charts painted, to painted: {listed}")
                slowest = max(opened.values()) if opened else math.nan
                what = f"slowest hidden tab opened at {after_s:g} s, to painted, ms"
                results.append((what, slowest, TAB_READY_MS))

        if args.only in (None, "memory"):
            idle_s = min(args.idle_seconds, 20.0)
            # The warm-up launches leave at the first paint: the modules imported after it (services,
            # hidden tabs) have no bytecode yet, and compiling them here would count (~15 MB).
            measure_settled(app_args, env, 2.0, 0.0)
            bare_rss, bare_cpu = measure_settled(["--child", "bare"], env, args.settle_seconds, idle_s)
            app_rss, app_cpu = measure_settled(app_args, env, args.settle_seconds, idle_s)
            print(
                f"resident memory {args.settle_seconds:g} s after the charts painted: llamadash (services "
                f"started, no instance) {app_rss / 2**20:.0f} MB, bare window {bare_rss / 2**20:.0f} MB"
            )
            print(
                f"idle CPU over {idle_s:g} s, no instance: llamadash {app_cpu:.2f} %, bare window "
                f"{bare_cpu:.2f} % of one core"
            )
            results.append(("resident memory vs the bare window", app_rss / bare_rss, MEMORY_RATIO_TARGET))

        if args.only in (None, "idle"):
            if args.profile:
                env = dict(env, LLAMADASH_BENCH_PROFILE=str(Path(args.profile) / "idle.prof"))
            dashboard, servers = measure_idle(data_dir, instances, args.idle_seconds, env)
            what = f"{len(instances)} idle instances" if instances else "no instances"
            print(
                f"idle CPU over {args.idle_seconds:.0f} s, 1 Hz sampling, {what}: dashboard {dashboard:.2f} % "
                f"of one core; llama-server processes {servers:.2f} %"
            )
            results.append((f"idle CPU, % of one core, 1 Hz, {what}", dashboard, IDLE_CPU_TARGET))
            if args.profile:
                print(f"profile of the idle main thread: {Path(args.profile) / 'idle.prof'}")

    ok = True
    for what, value, target in results:
        met = value < target if what.startswith("idle CPU") else value <= target
        if math.isnan(value):
            met = False
        ok = ok and met
        unit = " %" if what.startswith("idle CPU") else " ms" if what.endswith("ms") else "x"
        print(f"RESULT {what}: {value:.2f}{unit} (target {'<' if unit == ' %' else '<='} {target}{unit})")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
