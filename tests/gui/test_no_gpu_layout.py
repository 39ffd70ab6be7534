"""Without an NVIDIA GPU the four GPU charts fold into one compact note, and come back with a GPU."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from llamadash.core import database
from llamadash.core.metrics.nvml import GpuReading
from llamadash.core.metrics.sample import Sample
from llamadash.ui.main_window import MainWindow

FOLDED = ("gpu_temperature", "gpu_memory", "gpu_power")


@pytest.fixture
def db(tmp_path: Path):
    path = tmp_path / "data" / "llama-dashboard.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    database.init_database(path)
    yield path
    database.close_database()


def gpu_sample() -> Sample:
    gpu = GpuReading(
        index=0, name="GPU", uuid="GPU-1", utilization=30.0, temperature=50.0,
        memory_used_mb=1000.0, memory_total_mb=8000.0, power_w=90.0,
    )  # fmt: skip
    return Sample(
        timestamp=round(time.time() * 1000), cpu_usage=5.0, memory_usage=40.0, gpu_usage=30.0,
        gpu_temperature=50.0, gpu_memory_used=1000.0, gpu_memory_total=8000.0, gpu_power_usage=90.0,
        gpus=(gpu,),
    )  # fmt: skip


def test_no_gpu_folds_the_gpu_charts_into_one_note_and_a_gpu_brings_them_back(qtbot, db: Path):
    window = MainWindow(store=database, db_path=db, load_models=database.get_models, restore_layout=False)
    qtbot.addWidget(window)
    window.resize(1440, 900)
    docks = window.board.docks
    with qtbot.waitSignal(window.firstPainted, timeout=5000):
        window.show()
    qtbot.waitUntil(lambda: all(docks[key].isHidden() for key in FOLDED), timeout=3000)
    note = docks["gpu_usage"]
    assert note.isVisible() and note.windowTitle() == "GPU" and note.view.shows_no_gpu
    qtbot.waitUntil(
        lambda: note.width() < docks["cpu"].width() / 2, timeout=3000
    )  # the room went to the others
    cpu_width = docks["cpu"].width()
    window.save_layout()  # stored as the charts were, not folded
    window.board.add_sample(gpu_sample())  # as the sampler feeds it
    qtbot.waitUntil(lambda: not any(docks[key].isHidden() for key in FOLDED), timeout=3000)
    assert note.windowTitle() == "GPU utilization" and not note.view.shows_no_gpu
    qtbot.waitUntil(lambda: docks["cpu"].width() < cpu_width, timeout=3000)
    again = MainWindow(store=database, db_path=db, load_models=database.get_models, restore_layout=True)
    qtbot.addWidget(again)
    assert not any(again.board.docks[key].isHidden() for key in FOLDED)
