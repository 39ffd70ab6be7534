"""The chart docks: history drawn at once, gaps kept, live samples, GPU message, markers, throttling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from llamadash.core.events import InstanceEvent
from llamadash.core.metrics import GpuReading, Sample
from llamadash.ui.charts import CHART_SPECS, GPU_COLUMNS, REDRAW_INTERVAL_MS, TOKENS_CHART, ChartBoard
from llamadash.ui.theme import chart_colors

NOW_S = 1_800_000_000.0
COLUMNS = [series.column for spec in CHART_SPECS for series in spec.series]


def row(t_s: float, **values) -> dict:
    base = {column: None for column in COLUMNS}
    base.update(
        cpu_usage=30.0,
        memory_usage=50.0,
        disk_usage=70.0,
        active_models=1,
        requests_per_minute=4.0,
        gpu_usage=40.0,
        gpu_temperature=60.0,
        gpu_memory_used=8000.0,
        gpu_memory_total=24000.0,
        gpu_power_usage=150.0,
    )
    base.update(values)
    base["timestamp"] = round(t_s * 1000)
    return base


def finite_points(curve) -> int:
    """Readings the curve holds (``yData``: all of them, before clipping to the view and downsampling)."""
    y = curve.yData
    return 0 if y is None else int(np.count_nonzero(~np.isnan(y)))


def data(curve) -> tuple[np.ndarray, np.ndarray]:
    """Everything the curve was given (its ``setData``), as (times, values)."""
    return curve.xData, curve.yData


@pytest.fixture
def clock():
    now = [NOW_S]

    def read() -> float:
        return now[0]

    read.now = now  # type: ignore[attr-defined]
    return read


@pytest.fixture
def board(qtbot, clock):
    made = ChartBoard(colors=chart_colors("light"), window_minutes=10, interval_s=1.0, clock=clock)
    for dock in made.docks.values():
        qtbot.addWidget(dock)
    return made


def test_ten_minutes_of_history_are_all_on_the_charts_at_once(board):
    rows = [row(NOW_S - 599 + i, cpu_usage=float(i % 100)) for i in range(600)]
    board.load_history(rows)
    board.flush()  # as when the charts are shown
    for spec in CHART_SPECS:
        view = board.view(spec.key)
        for series in spec.series:
            assert finite_points(view.curves[series.column]) == 600, (spec.key, series.column)
    x, y = data(board.view("cpu").curves["cpu_usage"])
    assert x[0] == pytest.approx(NOW_S - 599) and x[-1] == pytest.approx(NOW_S)
    assert y[-1] == 599 % 100
    view_range = board.view("cpu").plot.getViewBox().viewRange()[0]
    assert view_range == pytest.approx([NOW_S - 600, NOW_S])
    assert board.view("cpu").readout_label.text().startswith("99.0")


def test_a_gap_in_the_history_stays_a_gap(board):
    rows = [row(NOW_S - 500 + i) for i in range(100)] + [row(NOW_S - 300 + i) for i in range(100)]
    board.load_history(rows)
    x, y = data(board.view("memory").curves["memory_usage"])
    breaks = np.flatnonzero(np.isnan(y))
    assert len(breaks) == 1
    assert NOW_S - 401 < x[breaks[0]] < NOW_S - 300
    assert np.count_nonzero(~np.isnan(y)) == 200


def test_a_missing_reading_is_a_hole_and_reads_n_a(board):
    board.load_history([row(NOW_S - 3), row(NOW_S - 2, disk_usage=None), row(NOW_S - 1)])
    _x, y = data(board.view("disk").curves["disk_usage"])
    assert math.isnan(y[1]) and finite_points(board.view("disk").curves["disk_usage"]) == 2
    board.add_sample(row(NOW_S, disk_usage=None))
    board.flush()
    assert board.view("disk").readout_label.text().startswith("n/a")


def test_a_new_sample_extends_every_curve(board, clock):
    board.load_history([row(NOW_S - 10 + i) for i in range(10)])
    clock.now[0] = NOW_S + 1
    board.add_sample(row(NOW_S + 1, cpu_usage=77.5))
    board.flush()
    for spec in CHART_SPECS:
        for series in spec.series:
            assert finite_points(board.view(spec.key).curves[series.column]) == 11
    assert board.view("cpu").readout_label.text().startswith("77.5")
    assert "%" in board.view("cpu").readout_label.text()


def test_samples_after_a_pause_do_not_bridge_the_pause(board, clock):
    board.load_history([row(NOW_S - 10 + i) for i in range(10)])
    clock.now[0] = NOW_S + 60
    board.add_sample(row(NOW_S + 60))  # the dashboard was closed for a minute
    board.flush()
    _x, y = data(board.view("cpu").curves["cpu_usage"])
    assert math.isnan(y[-2]) and not math.isnan(y[-1])


def test_redraws_are_throttled(board, clock, qtbot):
    dock = board.docks["cpu"]
    dock.resize(1300, 300)  # 10 minutes over ~1200 px: the time axis moves 2 px in about a second
    dock.show()
    qtbot.waitExposed(dock)
    board.load_history([row(NOW_S - 5 + i) for i in range(5)])
    view = board.view("cpu")
    step = view.plot_step_s(600)
    assert REDRAW_INTERVAL_MS / 1000 <= step <= 1.5
    before = board.redraw_count
    clock.now[0] = NOW_S + 1
    for i in range(20):  # a burst of samples, far faster than anyone can see
        board.add_sample(row(NOW_S + 0.01 * (i + 1), cpu_usage=float(i)))
    assert board.redraw_count == before  # nothing is drawn while the samples come in
    qtbot.waitUntil(lambda: board.redraw_count == before + 1, timeout=round(step * 1000) + 2000)
    assert view.readout_label.text().startswith("19.0")
    assert finite_points(view.curves["cpu_usage"]) == 25  # all of them, in one redraw
    qtbot.wait(REDRAW_INTERVAL_MS * 2)
    assert board.redraw_count == before + 1
    # the hidden charts were not drawn at all: they draw when shown
    assert not board.view("gpu_power").has_plot


def test_a_hidden_chart_draws_when_shown(board, clock, qtbot):
    board.load_history([row(NOW_S - 5 + i) for i in range(5)])
    dock = board.docks["disk"]
    board.add_sample(row(NOW_S + 1))
    clock.now[0] = NOW_S + 1
    board._on_timer()  # the throttled redraw skips what cannot be seen
    assert board.view("disk").dirty
    dock.show()
    qtbot.waitExposed(dock)
    qtbot.waitUntil(lambda: not board.view("disk").dirty, timeout=2000)
    assert finite_points(board.view("disk").curves["disk_usage"]) == 6


def test_old_points_leave_the_view(board, clock):
    board.load_history([row(NOW_S - 599 + i) for i in range(600)])
    clock.now[0] = NOW_S + 120
    for i in range(120):
        board.add_sample(row(NOW_S + 1 + i))
    board.flush()
    x, _y = data(board.view("cpu").curves["cpu_usage"])
    assert x[0] >= NOW_S + 120 - 601  # at most one point before the left edge, to enter the view
    assert len(x) <= 602


def test_without_an_nvidia_gpu_the_gpu_docks_say_so(board, clock):
    no_gpu = {column: None for column in GPU_COLUMNS}
    board.load_history([row(NOW_S - 10 + i, **no_gpu) for i in range(10)])
    gpu_views = [board.view(spec.key) for spec in CHART_SPECS if spec.gpu]
    assert len(gpu_views) == 4
    for view in gpu_views:
        assert view.shows_no_gpu
        assert "No NVIDIA GPU" in view.no_gpu_label.text()
    assert not board.view("cpu").shows_no_gpu
    # a sample from a machine without GPU keeps the message
    board.add_sample(Sample(timestamp=round((NOW_S + 1) * 1000), cpu_usage=5.0))
    board.flush()
    assert all(view.shows_no_gpu for view in gpu_views)
    # a GPU appears (driver loaded): the charts come back
    gpu = GpuReading(0, "NVIDIA H200", "GPU-1", 37.0, 45.0, 1011.0, 143771.0, 121.5)
    board.add_sample(
        Sample(timestamp=round((NOW_S + 2) * 1000), gpu_usage=37.0, gpu_temperature=45.0, gpus=(gpu,))
    )
    board.flush()
    assert not any(view.shows_no_gpu for view in gpu_views)
    assert board.view("gpu_temperature").readout_label.text().startswith("45")


def test_gpu_history_shows_the_plots(board):
    board.load_history([row(NOW_S - 10 + i) for i in range(10)])
    assert not board.view("gpu_usage").shows_no_gpu
    assert board.view("gpu_memory").readout_label.text().startswith("8,000 / 24,000")


def test_instance_events_are_marked_and_old_ones_drop_out(board, clock):
    board.load_history([row(NOW_S - 10 + i) for i in range(10)])
    ready = InstanceEvent("llama-3-8b", "ready", round((NOW_S - 5) * 1000))
    old = InstanceEvent("qwen", "crashed", round((NOW_S - 900) * 1000))
    board.set_events([old, ready])
    board.flush()
    for view in board.views():
        positions = [line.value() for line in view.markers.values()]
        assert positions == [pytest.approx(NOW_S - 5)]
    assert "llama-3-8b ready" in board.view("requests").markers[ready].toolTip()
    clock.now[0] = NOW_S + 700
    board.flush()
    assert all(not view.markers for view in board.views())


def test_each_instance_gets_its_own_tokens_curve(board, clock):
    board.load_history([row(NOW_S - 2), row(NOW_S - 1)])
    for i in range(3):
        board.add_instance_figures("a", 40.0 + i, NOW_S + i)
        board.add_instance_figures("b", None if i == 1 else 10.0, NOW_S + i)
    clock.now[0] = NOW_S + 3
    board.flush()
    view = board.view(TOKENS_CHART)
    assert set(view.curves) == {"a", "b"}
    assert finite_points(view.curves["a"]) == 3 and finite_points(view.curves["b"]) == 2
    assert "42.0" in view.readout_label.text() and "10.0" in view.readout_label.text()
    assert "tok/s" in view.readout_label.text()


def test_changing_the_window_and_theme_applies_at_once(board, clock):
    board.load_history([row(NOW_S - 599 + i) for i in range(600)])
    board.set_window_minutes(5)
    board.flush()
    assert board.view("cpu").plot.getViewBox().viewRange()[0] == pytest.approx([NOW_S - 300, NOW_S])
    board.set_colors(chart_colors("dark"))
    background = board.view("cpu").plot_widget.backgroundBrush().color().name()
    assert background == chart_colors("dark").background
    QApplication.processEvents()


def test_docks_can_be_moved_floated_closed_and_have_stable_names(board):
    names = [dock.objectName() for dock in board.docks.values()]
    assert len(set(names)) == len(CHART_SPECS) == 10
    for dock in board.docks.values():
        features = dock.features()
        assert features & dock.DockWidgetFeature.DockWidgetClosable
        assert features & dock.DockWidgetFeature.DockWidgetMovable
        assert features & dock.DockWidgetFeature.DockWidgetFloatable
