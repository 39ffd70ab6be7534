"""The request store: batches of records, stored on a thread of its own, the GUI thread never waiting."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from llamadash.core import database
from llamadash.core.requests_log import RequestRecord, RequestStatus
from llamadash.services.request_store import BATCH_SIZE, RequestStore


def record(task: int, model: str = "m", generated: int | None = 10) -> RequestRecord:
    return RequestRecord(
        slot=task % 2,
        task=task,
        finished_at_ms=int(time.time() * 1000),
        status=RequestStatus.FINISHED,
        model=model,
        prompt_tokens=5,
        generated_tokens=generated,
    )


class Saver:
    """Records each batch and the thread it came on; optionally slow or failing."""

    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        self.batches: list[list[RequestRecord]] = []
        self.threads: set[int] = set()
        self.delay_s, self.fail = delay_s, fail
        self.release = threading.Event()
        self.release.set()

    def __call__(self, records: Sequence[RequestRecord]) -> None:
        self.threads.add(threading.get_ident())
        self.release.wait(10)
        time.sleep(self.delay_s)
        if self.fail:
            raise OSError("disk full")
        self.batches.append(list(records))


@pytest.fixture
def stores():
    made: list[RequestStore] = []
    yield made
    for store in made:
        store.close(5)


def test_a_batch_goes_after_the_flush_interval_on_another_thread(qtbot, stores):
    saver = Saver()
    store = RequestStore(saver, flush_interval_s=0.2)
    stores.append(store)
    for task in range(3):
        store.add(record(task))
    assert saver.batches == [] and store.pending == 3  # nothing stored at once
    qtbot.waitUntil(lambda: store.stored == 3, timeout=2000)
    assert [[r.task for r in batch] for batch in saver.batches] == [[0, 1, 2]]  # one batch
    assert threading.get_ident() not in saver.threads
    assert store.pending == 0 and store.batches == 1


def test_a_full_batch_goes_at_once(qtbot, stores):
    saver = Saver()
    store = RequestStore(saver, flush_interval_s=60, batch_size=50)
    stores.append(store)
    for task in range(120):
        store.add(record(task))
    qtbot.waitUntil(lambda: store.stored == 100, timeout=2000)
    assert [len(batch) for batch in saver.batches] == [50, 50]
    assert store.pending == 20  # the rest waits for the interval (or close)
    assert store.close(2)
    assert store.stored == 120 and [len(b) for b in saver.batches] == [50, 50, 20]


def test_a_slow_database_never_holds_up_the_caller(qtbot, stores):
    saver = Saver()
    saver.release.clear()  # the database is locked by another process
    store = RequestStore(saver, flush_interval_s=0.05, batch_size=BATCH_SIZE)
    stores.append(store)
    started = time.perf_counter()
    for task in range(1000):
        store.add(record(task))
    spent = time.perf_counter() - started
    assert spent < 0.5, spent  # appending only (20 full batches handed on)
    assert store.stored == 0 and store.pending == 1000
    saver.release.set()
    qtbot.waitUntil(lambda: store.stored == 1000, timeout=5000)


def test_too_many_waiting_drops_the_oldest_and_says_so(qtbot, stores, caplog):
    saver = Saver()
    saver.release.clear()
    store = RequestStore(saver, flush_interval_s=60, batch_size=10, max_waiting=30)
    stores.append(store)
    for task in range(60):
        store.add(record(task))
    assert store.dropped > 0 and store.pending <= 30 + 10  # one batch may be in the worker's hands
    assert "dropped" in caplog.text
    saver.release.set()
    assert store.close(5)
    stored_tasks = [r.task for batch in saver.batches for r in batch]
    assert stored_tasks[-1] == 59  # the newest are kept
    assert store.stored + store.dropped == 60


def test_a_failing_save_drops_the_batch_logs_once_and_goes_on(qtbot, stores, caplog):
    saver = Saver(fail=True)
    store = RequestStore(saver, flush_interval_s=0.05)
    stores.append(store)
    store.add(record(1))
    qtbot.waitUntil(lambda: store.dropped == 1, timeout=2000)
    store.add(record(2))
    qtbot.waitUntil(lambda: store.dropped == 2, timeout=2000)
    assert store.last_error == "disk full" and caplog.text.count("disk full") == 1
    saver.fail = False
    store.add(record(3))
    qtbot.waitUntil(lambda: store.stored == 1, timeout=2000)
    assert store.last_error == ""


def test_close_stores_what_is_left_and_later_records_are_ignored(qtbot):
    saver = Saver(delay_s=0.05)
    store = RequestStore(saver, flush_interval_s=60)
    store.add(record(1))
    assert store.close(5)
    assert store.stored == 1
    store.add(record(2))
    assert store.pending == 0 and store.close(1)


def test_close_is_bounded_when_the_database_hangs(qtbot):
    saver = Saver()
    saver.release.clear()
    store = RequestStore(saver, flush_interval_s=60)
    store.add(record(1))
    started = time.perf_counter()
    assert not store.close(0.2)
    assert time.perf_counter() - started < 1.0
    saver.release.set()


def test_the_default_save_stores_rows_and_daily_totals(qtbot, tmp_path: Path):
    database.init_database(tmp_path / "requests.db")
    try:
        store = RequestStore(flush_interval_s=0.05)
        store.record("m", record(7, generated=None))  # what the manager's signal carries
        store.record("m", record(8))
        qtbot.waitUntil(lambda: store.stored == 2, timeout=5000)
        assert store.close(5)
        rows = database.get_requests(model="m")
        assert sorted(r["task"] for r in rows) == [7, 8]
        assert {r["task"]: r["generated_tokens"] for r in rows} == {7: None, 8: 10}  # unknown: NULL
        assert sum(d["requests"] for d in database.get_daily_totals(model="m")) == 2
    finally:
        database.close_database()
