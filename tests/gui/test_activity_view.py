"""The Activity tab with a real database: stored requests newest first, filters, live rows, CSV,
summaries, the empty state, the selected request on the charts, and the tokens/s chart on launch."""

from __future__ import annotations

import csv
import json
import threading
import time
import urllib.request

import numpy as np
import pytest
from PySide6.QtWidgets import QFileDialog

from llamadash.app import shutdown
from llamadash.core import database, paths
from llamadash.core.activity import CSV_FIELDS, TABLE_COLUMNS, cell_text
from llamadash.core.requests_log import RequestRecord, RequestStatus
from llamadash.ui.activity_view import EMPTY_TEXT, NO_MATCH_TEXT, ActivityView
from llamadash.ui.charts import TOKENS_CHART
from llamadash.ui.main_window import MainWindow
from fakes import FakeManager
from support import launch_gui, tiny_model_record

MINUTE_MS = 60_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def stored(minutes_ago: float, model: str = "qwen", *, base_ms: int, **figures) -> dict:
    row = {
        "finished_at": base_ms - round(minutes_ago * MINUTE_MS),
        "model": model,
        "slot": 0,
        "task": 7,
        "status": "finished",
        "prompt_tokens": 12,
        "cached_tokens": 4,
        "prompt_ms": 30.0,
        "prompt_tps": 400.0,
        "generated_tokens": 64,
        "generation_ms": 1280.0,
        "generation_tps": 50.0,
        "total_ms": 1310.0,
        "truncated": False,
    }
    row.update(figures)
    return row


@pytest.fixture
def db(tmp_path):
    database.init_database(tmp_path / "activity.db")
    yield database
    database.close_database()


def open_window(qtbot, db, **kwargs) -> MainWindow:
    window = MainWindow(
        store=db, db_path=db.get_database_path(), load_models=db.get_models, restore_layout=False, **kwargs
    )
    qtbot.addWidget(window)
    window.show()
    return window


def open_activity(qtbot, window: MainWindow) -> ActivityView:
    view = window.activity_view
    assert view is not None
    window.show_activity()
    qtbot.waitUntil(lambda: view.loaded)
    qtbot.waitUntil(lambda: not view.summary_pending, timeout=10000)
    return view


def column(view: ActivityView, key: str) -> list[str]:
    """What the table shows in column ``key``, top to bottom."""
    index = [c.key for c in TABLE_COLUMNS].index(key)
    return [view.model.index(r, index).data() for r in range(view.model.rowCount())]


def test_the_tab_lists_stored_requests_newest_first_and_filters_them(qtbot, db):
    base = now_ms()
    rows = [
        stored(30, base_ms=base, generation_tps=40.0),
        stored(2, base_ms=base, generation_tps=41.0),
        stored(3 * 60, "gemma", base_ms=base, generation_tps=20.0),
        stored(3 * 24 * 60, base_ms=base, generation_tps=None, total_ms=None),  # 3 days ago
    ]
    db.save_requests(rows)
    window = open_window(qtbot, db)
    tabs = [window.workspace.tabText(i) for i in range(window.workspace.count())]
    assert tabs == ["Instances", "Activity", "Try"]
    view = window.activity_view
    assert view is not None and not view.loaded  # nothing read before the tab is shown
    view = open_activity(qtbot, window)

    assert view.time_range.key == "day"  # the last day at first
    assert column(view, "generation_tps") == ["41.0", "40.0", "20.0"]
    assert column(view, "model") == ["qwen", "qwen", "gemma"]
    assert column(view, "prompt") == ["12 (4)"] * 3
    assert view.count_label.text() == "3 requests"

    view.set_filters(range_key="all")
    assert column(view, "generation_tps") == ["41.0", "40.0", "20.0", "n/a"]  # missing: n/a, not 0
    assert column(view, "total_ms")[-1] == "n/a"
    assert view.count_label.text() == "4 requests"

    # the model filter offers every model with requests
    offered = [view.model_combo.itemText(i) for i in range(view.model_combo.count())]
    assert offered == ["All models", "gemma", "qwen"]
    view.model_combo.setCurrentIndex(view.model_combo.findText("gemma"))
    assert column(view, "model") == ["gemma"]
    view.set_filters("qwen", "hour")
    assert column(view, "generation_tps") == ["41.0", "40.0"]
    assert view.count_label.text() == "2 requests"
    view.set_filters("gemma", "hour")  # gemma's request was 3 hours ago
    assert view.shows_empty_state and view.empty_label.text() == NO_MATCH_TEXT


def test_requests_arrive_live_at_the_top_where_the_filters_let_them(qtbot, db):
    base = now_ms()
    db.save_requests([stored(5, base_ms=base)])
    window = open_window(qtbot, db)
    manager = FakeManager()
    window.set_manager(manager)
    view = open_activity(qtbot, window)
    assert view.model.rowCount() == 1

    record = RequestRecord(
        slot=1,
        task=99,
        finished_at_ms=now_ms(),
        status=RequestStatus.FINISHED,
        model="qwen",
        prompt_tokens=300,
        cached_tokens=None,
        generated_tokens=128,
        generation_tps=47.25,
        total_ms=2900.0,
    )
    manager.requestRecorded.emit("qwen", record)
    assert view.model.rowCount() == 2
    assert column(view, "generation_tps")[0] == "47.2"
    assert column(view, "prompt")[0] == "300"  # no cached count known: none shown
    assert column(view, "slot")[0] == "1"
    assert view.count_label.text() == "2 requests"

    # a model first seen live is offered in the filter; a request of another model stays out
    manager.requestRecorded.emit(
        "gemma", RequestRecord(slot=0, task=1, finished_at_ms=now_ms(), status=RequestStatus.ABORTED)
    )
    assert view.model_combo.findData("gemma") > 0
    assert column(view, "model")[0] == "gemma" and column(view, "status")[0] == "aborted"
    assert column(view, "generated")[0] == "n/a"
    view.set_filters("qwen")
    count = view.model.rowCount()
    manager.requestRecorded.emit(
        "gemma", RequestRecord(slot=0, task=2, finished_at_ms=now_ms(), status=RequestStatus.FINISHED)
    )
    assert view.model.rowCount() == count
    # today's bar of the daily chart counts the live request's tokens too
    today = time.strftime("%Y-%m-%d")
    manager.requestRecorded.emit("qwen", record)
    qtbot.waitUntil(lambda: view.daily_chart.day_total(today)[1] >= 64 + 128)


def test_empty_state_says_how_requests_appear_until_the_first_one(qtbot, db):
    window = open_window(qtbot, db)
    manager = FakeManager()
    window.set_manager(manager)
    view = open_activity(qtbot, window)
    assert view.shows_empty_state and view.empty_label.text() == EMPTY_TEXT
    assert "start a model and send it a request" in view.empty_label.text()
    assert not view.export_button.isEnabled()
    assert view.count_label.text() == "0 requests"
    manager.requestRecorded.emit(
        "qwen", RequestRecord(slot=0, task=1, finished_at_ms=now_ms(), status=RequestStatus.FINISHED)
    )
    assert not view.shows_empty_state and view.export_button.isEnabled()


def test_export_csv_writes_the_requests_the_filters_match(qtbot, db, tmp_path, monkeypatch):
    base = now_ms()
    rows = [
        stored(1, base_ms=base, generation_tps=33.5),
        stored(10, "gemma", base_ms=base, cached_tokens=None),
    ]
    rows.append(stored(4 * 24 * 60, base_ms=base))  # outside the last day
    db.save_requests(rows)
    window = open_window(qtbot, db)
    view = open_activity(qtbot, window)
    target = tmp_path / "out" / "requests.csv"
    target.parent.mkdir()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "CSV files (*.csv)"))
    with qtbot.waitSignal(view.exported) as exported:
        view.export_button.click()
    assert exported.args == [str(target), 2]
    with target.open(newline="", encoding="utf-8") as file:
        lines = list(csv.DictReader(file))
    assert list(lines[0]) == list(CSV_FIELDS)
    assert [line["model"] for line in lines] == ["qwen", "gemma"]  # newest first, as the table
    assert lines[0]["generation_tps"] == "33.5" and lines[0]["finished_at"] == str(rows[0]["finished_at"])
    assert lines[0]["time"] == cell_text(rows[0], "time")
    assert lines[1]["cached_tokens"] == ""  # missing: empty, never 0
    assert "exported 2" in view.count_label.text()


def test_the_summary_gives_median_and_p95_per_model_and_period(qtbot, db):
    base = now_ms()
    speeds = [10.0, 20.0, 30.0, 40.0, 50.0]
    rows = [
        stored(i + 1, base_ms=base, generation_tps=s, total_ms=100.0 * (i + 1), generated_tokens=10)
        for i, s in enumerate(speeds)
    ]
    rows.append(stored(5 * 60, base_ms=base, generation_tps=90.0, total_ms=4000.0, generated_tokens=10))
    db.save_requests(rows)
    window = open_window(qtbot, db)
    view = open_activity(qtbot, window)
    by = {(s.model, s.period.key): s for s in view.summaries}
    assert set(by) == {("qwen", "hour"), ("qwen", "day"), ("qwen", "week")}
    hour = by["qwen", "hour"]
    assert hour.requests == 5 and hour.generated_tokens == 50
    assert hour.median_generation_tps == 30.0
    assert hour.p95_generation_tps == pytest.approx(np.percentile(speeds, 95))
    assert hour.p95_latency_ms == pytest.approx(np.percentile([100, 200, 300, 400, 500], 95))
    # the table shows them, one line a period, the model named once
    assert [view.summary_text(r, "Period") for r in range(3)] == ["Last hour", "Last day", "Last week"]
    assert [view.summary_text(r, "Model") for r in range(3)] == ["qwen", "", ""]
    assert view.summary_text(0, "Median t/s") == "30.0"
    assert view.summary_text(0, "p95 t/s") == "48.0"
    assert view.summary_text(1, "Requests") == "6" and view.summary_text(1, "Tokens out") == "60"
    assert view.summary_text(1, "Median ms") == "350"


def test_selecting_a_request_marks_its_moment_on_every_chart(qtbot, db):
    base = now_ms()
    db.save_requests([stored(1, base_ms=base), stored(3, base_ms=base)])
    window = open_window(qtbot, db)
    view = open_activity(qtbot, window)
    view.select_row(1)
    expected = base - 3 * MINUTE_MS
    assert window.board.marked_time_ms == expected
    window.board.flush()
    for chart in window.board.views():
        line = chart.mark_line
        assert line is not None and line.value() == pytest.approx(expected / 1000)
    view.select_row(0)
    assert window.board.view(TOKENS_CHART).mark_line.value() == pytest.approx((base - MINUTE_MS) / 1000)
    # one older than the charts' window is marked too, and the status bar says why it is not in view
    db.save_requests([stored(2 * 24 * 60, base_ms=base)])
    view.set_filters(range_key="week")
    assert window.board.marked_time_ms is None  # new rows, no selection: no mark
    view.select_row(view.model.rowCount() - 1)
    assert "older than the 10 minutes" in window.statusBar().currentMessage()


def test_the_table_reads_pages_as_it_scrolls_without_repeating_or_skipping(qtbot, db):
    base = now_ms()
    # 1,100 requests, many sharing a millisecond, across the 500-row page boundaries
    rows = [stored(0, base_ms=base - (i // 7), task=i) for i in range(1100)]
    db.save_requests(rows)
    window = open_window(qtbot, db)
    view = open_activity(qtbot, window)
    assert view.model.rowCount() == 500
    while view.model.canFetchMore():
        view.model.fetchMore()
    tasks = [row["task"] for row in view.model.rows]
    assert len(tasks) == 1100 and sorted(tasks) == list(range(1100))
    stamps = [row["finished_at"] for row in view.model.rows]
    assert stamps == sorted(stamps, reverse=True)
    assert view.count_label.text() == "1,100 requests"


def test_the_tokens_chart_comes_back_from_the_stored_instance_samples(qtbot, db):
    base = now_ms()
    samples = [
        {"timestamp": base - (60 - i) * 1000, "model": "qwen", "tokens_per_second": float(i % 5) * 10}
        for i in range(60)
    ]
    samples += [
        {"timestamp": base - 30_000 + i * 1000, "model": "gemma", "tokens_per_second": None} for i in range(5)
    ]
    db.save_instance_samples(samples)
    window = open_window(qtbot, db, instance_history=db.get_instance_history(10))
    window.board.flush()
    chart = window.board.view(TOKENS_CHART)
    x, y = chart.curves["qwen"].xData, chart.curves["qwen"].yData
    finite = ~np.isnan(y)
    assert int(finite.sum()) == 60
    assert list(y[finite]) == [float(i % 5) * 10 for i in range(60)]
    assert x[finite][0] == pytest.approx((base - 60_000) / 1000)
    assert "gemma" in chart.curves and int((~np.isnan(chart.curves["gemma"].yData)).sum()) == 0  # n/a kept
    assert chart.message_text() is None  # the "each running instance" note gives way to the curves


def test_a_relaunch_restores_the_tokens_chart_from_the_database(qtbot, tmp_path):
    data_dir = tmp_path / "data"
    database.init_database(paths.default_database_path(paths.resolve_data_dir(str(data_dir))))
    base = now_ms()
    database.save_instance_samples(
        [
            {"timestamp": base - (20 - i) * 1000, "model": "tiny", "tokens_per_second": 40.0 + i}
            for i in range(20)
        ]
    )
    database.close_database()
    gui = launch_gui(qtbot, data_dir)
    try:
        chart = gui.window.board.view(TOKENS_CHART)
        assert "tiny" in chart.buffers
        _x, y = chart.buffers["tiny"].arrays()
        assert list(y[~np.isnan(y)]) == [40.0 + i for i in range(20)]
        assert chart.buffers["tiny"].latest == 59.0
        gui.window.board.flush()
        assert int((~np.isnan(chart.curves["tiny"].yData)).sum()) == 20
    finally:
        shutdown(gui)


def test_the_activity_tab_gets_room_from_the_docks_below_and_gives_it_back(qtbot, db):
    window = open_window(qtbot, db)
    window.resize(1200, 900)  # the default layout leaves the central area a third of it
    qtbot.waitUntil(lambda: window.workspace.height() > 300)
    before = (window.logs_dock.height(), window.workspace.height())
    assert before[1] < window.EDITOR_MIN_HEIGHT
    open_activity(qtbot, window)
    qtbot.waitUntil(lambda: window.workspace.height() > before[1] + 100)
    assert window.logs_dock.height() < before[0]
    window.workspace.setCurrentWidget(window.instances_view)
    qtbot.waitUntil(lambda: (window.logs_dock.height(), window.workspace.height()) == before)


@pytest.mark.integration
def test_a_real_servers_requests_are_listed_live_and_again_after_a_relaunch(
    qtbot, tmp_path, tiny_model, llama_server
):
    """The whole loop: llama-server's log, the manager, the tab live; the database after a relaunch."""
    data_dir = tmp_path / "data"
    database.init_database(data_dir / "llama-dashboard.db")
    record = tiny_model_record(tiny_model)
    database.save_model(record)
    database.close_database()
    answers: list[dict] = []

    def ask(n_predict: int) -> None:
        body = json.dumps(
            {"prompt": "Once upon a time", "n_predict": n_predict, "cache_prompt": False}
        ).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{record['port']}/completion",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answers.append(json.loads(response.read())["timings"])

    gui = launch_gui(qtbot, data_dir)
    try:
        window = gui.window
        qtbot.waitUntil(lambda: gui.manager is not None, timeout=5_000)
        view = window.activity_view
        assert view is not None
        window.show_activity()
        qtbot.waitUntil(lambda: view.loaded)
        assert view.shows_empty_state
        gui.manager.start("tiny")
        qtbot.waitUntil(lambda: window.instances_model.state_of("tiny") == "running", timeout=60_000)
        for n_predict in (7, 3):  # one after the other: the second is the newest
            worker = threading.Thread(target=ask, args=(n_predict,))
            worker.start()
            qtbot.waitUntil(lambda w=worker: not w.is_alive(), timeout=30_000)
        qtbot.waitUntil(lambda: view.model.rowCount() == 2, timeout=10_000)
        assert [row["generated_tokens"] for row in view.model.rows] == [
            a["predicted_n"] for a in reversed(answers)
        ]
        assert [row["prompt_tokens"] for row in view.model.rows] == [a["prompt_n"] for a in reversed(answers)]
        assert column(view, "model") == ["tiny", "tiny"] and not view.shows_empty_state
        qtbot.waitUntil(lambda: database.count_requests() == 2, timeout=10_000)  # stored in batches
    finally:
        shutdown(gui)

    again = launch_gui(qtbot, data_dir)
    try:
        view = again.window.activity_view
        assert view is not None
        again.window.show_activity()
        qtbot.waitUntil(lambda: view.loaded)
        assert [row["generated_tokens"] for row in view.model.rows] == [
            a["predicted_n"] for a in reversed(answers)
        ]
        speeds = [row["generation_tps"] for row in view.model.rows]
        assert speeds == pytest.approx([a["predicted_per_second"] for a in reversed(answers)], rel=0.01)
        # the instance's tokens/s, sampled while it ran, come back on the chart
        assert "tiny" in again.window.board.view(TOKENS_CHART).buffers
    finally:
        shutdown(again)


def test_quitting_on_a_tab_that_squeezed_the_docks_stores_the_normal_layout(qtbot, db):
    window = open_window(qtbot, db)
    window.resize(1200, 900)
    qtbot.waitUntil(lambda: window.workspace.height() > 300)
    normal_log_height = window.logs_dock.height()
    open_activity(qtbot, window)
    qtbot.waitUntil(lambda: window.logs_dock.height() < normal_log_height)
    window.save_layout()  # as quitting does, on the Activity tab
    assert window.logs_dock.height() < normal_log_height  # still squeezed while the tab is shown
    again = open_window(qtbot, db)
    again.resize(1200, 900)
    assert again.restore_layout()
    again.show()
    qtbot.waitUntil(lambda: abs(again.logs_dock.height() - normal_log_height) <= 4)
