"""Quitting while the window still asks llama-server what it is: the answer is waited for (bounded)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from llamadash.core import database
from llamadash.ui import main_window as main_window_module
from llamadash.ui.main_window import MainWindow


@pytest.fixture
def db(tmp_path: Path):
    path = tmp_path / "data" / "llama-dashboard.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    database.init_database(path)
    yield path
    database.close_database()


def test_quitting_waits_for_the_binary_check_and_a_late_answer_is_harmless(qtbot, db: Path, monkeypatch):
    started, answered = threading.Event(), threading.Event()

    def slow_describe(_path: str, _cache: Path | None = None) -> tuple[bool, str, str]:
        started.set()
        time.sleep(0.5)  # a llama-server that takes its time to say what it is
        answered.set()
        return True, "/bin/llama-server", "llama-server b1 — slow"

    monkeypatch.setattr(main_window_module, "describe_binary", slow_describe)
    window = MainWindow(store=database, db_path=db, load_models=database.get_models, restore_layout=False)
    qtbot.addWidget(window)
    window._describe_binary_later()
    assert started.wait(5)
    window.close()
    assert window.wait_for_background(5.0)  # joined: no thread of ours outlives the quit
    assert answered.is_set()
    # the answer, posted to the window before it went, is shown or dropped; it never raises
    qtbot.wait(50)


def test_with_nothing_in_flight_quitting_does_not_wait(qtbot, db: Path):
    window = MainWindow(store=database, db_path=db, load_models=database.get_models, restore_layout=False)
    qtbot.addWidget(window)
    begun = time.monotonic()
    assert window.wait_for_background(5.0)
    assert time.monotonic() - begun < 1.0


def test_a_window_quit_within_its_first_second_starts_no_check_afterwards(qtbot, db: Path, monkeypatch):
    """The check waits a second after the first paint; quitting before then cancels it for good.

    A check started after the quit ran beside the next window (a test's, or the app's own teardown):
    its thread asked for a database already closed and answered a window already deleted (a crash).
    """
    calls: list[str] = []

    def describe(path: str, _cache: Path | None = None) -> tuple[bool, str, str]:
        calls.append(path)
        return True, path, "llama-server b1"

    monkeypatch.setattr(main_window_module, "describe_binary", describe)
    window = MainWindow(store=database, db_path=db, load_models=database.get_models, restore_layout=False)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.firstPainted, timeout=10_000):
        window.show()
    assert window.wait_for_background(5.0)  # the quit, at once: the check's second is not up
    qtbot.wait(1500)
    assert window._describe_thread is None and calls == []
