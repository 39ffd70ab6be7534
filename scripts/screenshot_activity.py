"""Take the README screenshot of the Activity tab.

Run under a virtual X server::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot_activity.py

Everything shown is stored in a temporary database the way llamadash stores it, and read back by
the real window: four weeks of synthetic requests of three models (through ``save_requests``,
which keeps the daily totals and drops the requests older than the retention), ten minutes of
per-instance samples (the tokens/s chart restored on launch) and of system metrics. No server runs.
A request a few minutes old is selected, so its moment is marked on the charts. Writes ``docs/screenshots/activity.png``.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

#: Model, generation t/s around which it answers, requests a day.
MODELS = (
    ("qwen2.5-coder-7b-q4", 96.0, 260),
    ("llama-3.1-8b-instruct", 71.0, 120),
    ("mistral-nemo-12b", 44.0, 40),
)
HISTORY_S = 600
#: Days of requests made up: those older than the retention (7 days) are dropped as they are saved,
#: having been added to the daily totals, which are kept a year.
DAYS = 26


def requests(now_ms: int, rng: random.Random) -> list[dict]:
    rows = []
    for model, speed, per_day in MODELS:
        for day in range(DAYS):
            count = int(per_day * (0.6 + 0.8 * rng.random()) * (1.4 if day == 0 else 1.0))
            for _ in range(count):
                ago_ms = int((day + rng.random()) * 86_400_000)
                if day == 0 and model == MODELS[0][0] and rng.random() < 0.15:
                    ago_ms = int(rng.random() * HISTORY_S * 1000)  # some within the charts' window
                prompt = int(rng.lognormvariate(6.0, 1.0)) + 8
                cached = min(prompt, int(rng.random() * 400)) if rng.random() < 0.5 else 0
                prompt_tps = rng.uniform(1800, 4200) * (7 / 8 if "8b" in model else 1)
                generated = int(rng.lognormvariate(5.2, 0.8)) + 4
                tps = max(5.0, rng.gauss(speed, speed * 0.08))
                aborted = rng.random() < 0.02
                prompt_ms = prompt / prompt_tps * 1000
                generation_ms = generated / tps * 1000
                rows.append(
                    {
                        "finished_at": now_ms - ago_ms,
                        "model": model,
                        "slot": rng.randint(0, 1),
                        "task": rng.randint(1, 90_000),
                        "status": "aborted" if aborted else "finished",
                        "prompt_tokens": None if aborted else prompt,
                        "cached_tokens": None if aborted else cached,
                        "prompt_ms": None if aborted else prompt_ms,
                        "prompt_tps": None if aborted else prompt_tps,
                        "generated_tokens": None if aborted else generated,
                        "generation_ms": None if aborted else generation_ms,
                        "generation_tps": None if aborted else tps,
                        "total_ms": None if aborted else prompt_ms + generation_ms,
                        "truncated": rng.random() < 0.01,
                    }
                )
    return sorted(rows, key=lambda r: r["finished_at"])


def instance_samples(now_ms: int, rows: list[dict]) -> list[dict]:
    """The tokens/s the first model's instance showed, second by second, from its requests."""
    model = MODELS[0][0]
    busy: dict[int, float] = {}
    for row in rows:
        if row["model"] != model or row["generation_tps"] is None:
            continue
        end_s = row["finished_at"] // 1000
        for s in range(end_s - math.ceil(row["total_ms"] / 1000), end_s + 1):
            busy[s] = busy.get(s, 0.0) + row["generation_tps"]
    now_s = now_ms // 1000
    return [
        {"timestamp": s * 1000, "model": model, "tokens_per_second": busy.get(s, 0.0), "busy_slots": 0}
        for s in range(now_s - HISTORY_S, now_s)
    ]


def metrics(now_ms: int, rng: random.Random) -> list[dict]:
    rows = []
    for i in range(HISTORY_S):
        t = now_ms - (HISTORY_S - i) * 1000
        load = 0.5 + 0.4 * math.sin(i / 40)
        rows.append(
            {
                "timestamp": t,
                "created_at": t,
                "cpu_usage": 12 + 18 * load + rng.gauss(0, 2),
                "memory_usage": 51 + rng.gauss(0, 0.3),
                "disk_usage": 71.4,
                "active_models": 1,
                "requests_per_minute": round(max(0.0, 9 * load + rng.gauss(0, 1)), 1),
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots" / "activity.png")
    parser.add_argument("--theme", default="light")
    parser.add_argument("--size", default="1600x1000")
    options = parser.parse_args()

    from PySide6.QtWidgets import QApplication

    from llamadash.core import database as db
    from llamadash.core import settings as settings_mod
    from llamadash.ui.main_window import MainWindow

    app = QApplication(sys.argv[:1])
    work = Path(tempfile.mkdtemp(prefix="llamadash-activity-shot-"))
    db.init_database(work / "llama-dashboard.db")
    for port, (model, _speed, _per_day) in enumerate(MODELS, start=8091):
        db.save_model({"name": model, "type": "llama", "status": "stopped", "port": port, "ctx_size": 8192})
    settings = settings_mod.Settings(theme_preference=options.theme)
    settings_mod.save_settings(settings, db)
    rng = random.Random(15)
    now_ms = time.time_ns() // 1_000_000
    stored = requests(now_ms, rng)
    db.save_requests(stored)
    db.save_instance_samples(instance_samples(now_ms, stored))
    for row in metrics(now_ms, rng):
        db.save_metrics(row)

    window = MainWindow(
        store=db,
        db_path=work / "llama-dashboard.db",
        load_models=db.get_models,
        settings=settings,
        history=db.get_metrics_history(10),
        instance_history=db.get_instance_history(10),
        data_dir=work,
        restore_layout=False,
    )
    width, height = (int(v) for v in options.size.split("x"))
    window.resize(width, height)
    window.show()
    window.show_activity()
    view = window.activity_view
    assert view is not None
    deadline = time.monotonic() + 30
    while (not view.loaded or view.summary_pending) and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)
    # a request a few minutes old, so that its mark stands inside the charts
    older = [i for i, row in enumerate(view.model.rows) if row["finished_at"] < now_ms - 90_000]
    view.select_row(older[0] if older else 0)
    view.table.scrollToTop()
    for _ in range(40):
        app.processEvents()
        time.sleep(0.02)
    window.board.flush()
    app.processEvents()
    options.out.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(options.out))
    print(f"wrote {options.out} ({len(stored):,} requests)")
    window.close()
    db.close_database()
    return 0


if __name__ == "__main__":
    sys.exit(main())
