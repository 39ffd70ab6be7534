"""The chart docks: history drawn at once, gaps kept, live samples, GPU message, markers, throttling."""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QApplication, QWidget

from llamadash.core import database
from llamadash.core.events import InstanceEvent
from llamadash.core.metrics import GpuReading, Sample
from llamadash.ui.charts import (
    CHART_SPECS,
    GPU_COLUMNS,
    IDLE_PLOT_STEP_PIXELS,
    IDLE_PLOT_STEP_S,
    MAX_PLOT_STEP_S,
    REDRAW_INTERVAL_MS,
    TOKENS_CHART,
    ChartBoard,
    SeriesBuffer,
    ValueAxis,
)
from llamadash.ui.theme import chart_colors

NOW_S = 1_800_000_000.0
COLUMNS = [series.column for spec in CHART_SPECS for series in spec.series]


def row(t_s: float, **values: float | None) -> dict[str, float | int | None]:
    base: dict[str, float | int | None] = dict.fromkeys(COLUMNS)
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


def line_segments(curve) -> int:
    """The lines the curve draws: it connects finite neighbours only, so a lone point draws nothing."""
    assert curve.opts["connect"] == "finite"
    finite = ~np.isnan(curve.yData)
    return int(np.count_nonzero(finite[1:] & finite[:-1]))


def pixels_of(widget, colour: str) -> int:
    """How many pixels of ``widget`` (as painted now) have exactly ``colour``."""
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    pixels = np.frombuffer(image.constBits(), np.uint32).reshape(image.height(), image.bytesPerLine() // 4)
    return int(np.count_nonzero(pixels[:, : image.width()] & 0xFFFFFF == QColor(colour).rgb() & 0xFFFFFF))


@pytest.fixture
def clock():
    now = [NOW_S]

    def read() -> float:
        return now[0]

    read.now = now  # type: ignore[attr-defined]
    return read


@pytest.fixture
def make_board(qtbot, clock):
    """Makes boards showing 10 minutes; they go with the test, their docks and redraw timers too.

    As in the main window, a widget owns each board: a redraw still pending at the end of a test is
    deleted with it rather than fired at the next test's widgets.
    """
    owners = []

    def make(interval_s: float = 1.0, board_clock=clock) -> ChartBoard:
        owner = QWidget()
        qtbot.addWidget(owner)  # first, so it goes before the docks
        owners.append(owner)
        made = ChartBoard(
            colors=chart_colors("light"),
            window_minutes=10,
            interval_s=interval_s,
            clock=board_clock,
            parent=owner,
        )
        for dock in made.docks.values():
            qtbot.addWidget(dock)
        return made

    return make


@pytest.fixture
def board(make_board):
    return make_board()


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


@pytest.mark.parametrize(("saved_every_s", "interval_s"), [(5.0, 1.0), (1.0, 0.25), (10.0, 0.25)])
def test_history_saved_at_a_longer_interval_is_drawn_as_lines(make_board, saved_every_s, interval_s):
    """The interval was lowered since the history was saved: its rows are not each a gap."""
    board = make_board(interval_s)
    count = round(540 / saved_every_s)
    board.load_history(
        [row(NOW_S - saved_every_s * (count - 1 - i), cpu_usage=float(i)) for i in range(count)]
    )
    board.flush()
    for key, column in (
        ("cpu", "cpu_usage"),
        ("memory", "memory_usage"),
        ("requests", "requests_per_minute"),
    ):
        curve = board.view(key).curves[column]
        assert finite_points(curve) == count
        assert line_segments(curve) == count - 1, key  # one line through them all
    assert board.view("cpu").readout_label.text().startswith(f"{count - 1:.1f}")


def test_a_pause_in_history_saved_at_a_longer_interval_is_still_a_gap(make_board):
    board = make_board()
    before = [row(NOW_S - 595 + 5 * i) for i in range(40)]  # 5 s apart, to NOW - 400
    after = [row(NOW_S - 195 + 5 * i) for i in range(40)]  # the dashboard was closed for 3 minutes
    board.load_history(before + after)
    board.flush()
    x, y = data(board.view("cpu").curves["cpu_usage"])
    breaks = np.flatnonzero(np.isnan(y))
    assert len(breaks) == 1 and NOW_S - 400 < x[breaks[0]] < NOW_S - 195
    assert line_segments(board.view("cpu").curves["cpu_usage"]) == 78  # 39 in each run


def test_live_samples_continue_history_saved_at_a_longer_interval(make_board, clock):
    board = make_board()
    board.load_history([row(NOW_S - 5 * (59 - i)) for i in range(60)])  # saved at 5 s, now 1 s
    curve = board.view("cpu").curves["cpu_usage"]
    # the first new sample comes one saved step after the last row, then every second: no gap
    for t in (NOW_S + 5, NOW_S + 6, NOW_S + 7):
        clock.now[0] = t
        board.add_sample(row(t, cpu_usage=t - NOW_S))
    board.flush()
    assert finite_points(curve) == 63 and line_segments(curve) == 62
    assert board.view("cpu").readout_label.text().startswith("7.0")
    # a minute without samples (the machine slept) is a gap, and the 1 s samples after it a line
    for t in (NOW_S + 67, NOW_S + 68, NOW_S + 69):
        clock.now[0] = t
        board.add_sample(row(t))
    board.flush()
    _x, y = data(curve)
    assert np.count_nonzero(np.isnan(y)) == 1 and math.isnan(y[-4])
    assert finite_points(curve) == 66 and line_segments(curve) == 64


def test_lowering_the_interval_while_sampling_does_not_break_the_line(board, clock):
    board.set_interval(5.0)
    for i in range(10):
        board.add_sample(row(NOW_S + 5 * i))
    board.set_interval(1.0)
    for t in (NOW_S + 49, NOW_S + 50, NOW_S + 51):  # the first 1 s sample 4 s after the last 5 s one
        board.add_sample(row(t))
    clock.now[0] = NOW_S + 51
    board.flush()
    curve = board.view("memory").curves["memory_usage"]
    assert finite_points(curve) == 13 and line_segments(curve) == 12


@pytest.fixture
def saved_every_5_s(tmp_path):
    """A database holding 110 samples saved 5 s apart, the last one now; yields the last one's time (s)."""
    database.init_database(tmp_path / "llama-dashboard.db")
    end_ms = time.time_ns() // 1_000_000
    for i in range(110):
        t = end_ms - 5_000 * (109 - i)
        database.save_metrics(
            {
                "timestamp": t,
                "created_at": t,
                "cpu_usage": 20.0 + i % 30,
                "memory_usage": 45.0,
                "disk_usage": 70.0,
            }
        )
    yield end_ms / 1000
    database.close_database()


def test_saved_history_is_painted_under_a_shorter_interval(make_board, qtbot, saved_every_5_s):
    """QA's case: 5 s rows in the database, the default 1 s interval: the CPU chart showed no line."""
    board = make_board(board_clock=lambda: saved_every_5_s)
    dock = board.docks["cpu"]
    dock.resize(700, 300)
    board.load_history(database.get_metrics_history(10))
    dock.show()
    qtbot.waitExposed(dock)
    view = board.view("cpu")
    qtbot.waitUntil(lambda: view.has_plot and not view.dirty, timeout=5000)
    assert line_segments(view.curves["cpu_usage"]) == 109
    assert view.readout_label.text().startswith("39.0")  # 20 + 109 % 30
    # nine of the ten minutes carry the line: a good part of the plot's width is painted in its colour
    assert pixels_of(view.plot_widget, chart_colors("light").series[0]) > view.plot_widget.width() // 2


def colour_counts(widget) -> dict[int, int]:
    """Pixels of ``widget`` (as painted now) by RGB value."""
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    pixels = np.frombuffer(image.constBits(), np.uint32).reshape(image.height(), image.bytesPerLine() // 4)
    values, counts = np.unique(pixels[:, : image.width()] & 0xFFFFFF, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_grid_lines_are_solid_look_as_pyqtgraph_blends_them_and_lie_under_the_curves(
    make_board, qtbot, theme
):
    """The value axis draws its grid in solid colours (translucent lines were ~4 ms a chart to paint
    first), each the colour pyqtgraph's translucent line makes on the plot's background, under the
    curves: a curve on a grid line is drawn whole."""
    board = make_board()
    colors = chart_colors(theme)
    board.set_colors(colors)
    dock = board.docks["cpu"]
    dock.resize(700, 300)
    board.load_history([row(NOW_S - 599 + i, cpu_usage=40.0) for i in range(600)])  # on the 40 % line
    dock.show()
    qtbot.waitExposed(dock)
    view = board.view("cpu")
    qtbot.waitUntil(lambda: view.has_plot and not view.dirty, timeout=5000)
    axis = view.plot.getAxis("left")
    assert isinstance(axis, ValueAxis)
    assert axis.zValue() < view.plot.getViewBox().zValue()  # under the view box, so under the curves
    image = QImage(10, 10, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        blended = pg.AxisItem.generateDrawSpecs(axis, painter)[1]  # the lines as pyqtgraph draws them
        drawn = axis.generateDrawSpecs(painter)[1]
    finally:
        painter.end()
    assert len(drawn) == len(blended) > 4
    background = QColor(colors.background)
    for (pg_pen, *_ends), (pen, *_same) in zip(blended, drawn, strict=True):
        colour, alpha = pg_pen.color(), pg_pen.color().alphaF()
        assert alpha < 1  # pyqtgraph's own grid lines are translucent
        assert pen.color().alpha() == 255
        for got, line, under in (
            (pen.color().red(), colour.red(), background.red()),
            (pen.color().green(), colour.green(), background.green()),
            (pen.color().blue(), colour.blue(), background.blue()),
        ):
            assert abs(got - (line * alpha + under * (1 - alpha))) <= 1
    painted = colour_counts(view.plot_widget)
    width = round(view.plot.getViewBox().width())  # the plot's width in pixels
    grid = {pen.color().rgb() & 0xFFFFFF for pen, *_ends in drawn}
    assert max(painted.get(colour, 0) for colour in grid) > width  # lines across the plot, in those colours
    curve = QColor(colors.series[0]).rgb() & 0xFFFFFF
    assert painted.get(curve, 0) >= 0.9 * width  # the curve on the 40 % line, drawn whole over it


def test_readouts_show_each_sample_at_once_while_the_plot_waits(board, clock, qtbot):
    """The big number follows the samples (as the status bar does) even while the plot's redraw waits."""
    dock = board.docks["cpu"]
    dock.resize(200, 150)  # 10 minutes over so few pixels: the plot is redrawn every 5 s at most
    dock.show()
    qtbot.waitExposed(dock)
    board.load_history([row(NOW_S - 5 + i) for i in range(6)])  # drawn now
    view = board.view("cpu")
    assert view.plot_step_s(600) == MAX_PLOT_STEP_S
    drawn = board.redraw_count
    clock.now[0] = NOW_S + 1
    board.add_sample(row(NOW_S + 1, cpu_usage=11.0))
    board._on_timer()  # the throttled redraw comes round: the plot's time is 5 s away, it waits
    for i, value in enumerate((42.5, 43.5, 44.5), start=2):
        clock.now[0] = NOW_S + i
        board.add_sample(row(NOW_S + i, cpu_usage=value, memory_usage=value + 10, gpu_power_usage=value * 2))
        QApplication.processEvents()
        assert view.readout_label.text().startswith(f"{value:.1f}")
        assert board.view("memory").readout_label.text().startswith(f"{value + 10:.1f}")  # a hidden one too
        assert board.view("gpu_power").readout_label.text().startswith(f"{value * 2:.0f}")
        board.add_instance_figures("llama-3-8b", value + 20, NOW_S + i)
        QApplication.processEvents()
        assert f"{value + 20:.1f}" in board.view(TOKENS_CHART).readout_label.text()
    assert board.redraw_count == drawn  # the plot itself still waits for its step
    assert finite_points(view.curves["cpu_usage"]) == 6


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


def test_a_flat_line_waits_for_the_longest_step_and_a_change_is_drawn_at_the_usual_one(board, clock, qtbot):
    """An idle chart (its new points within 2 px of those drawn) waits for its time axis to move 8 px; a value
    that moves the line, even one that comes back, is drawn at the usual step."""
    dock = board.docks["cpu"]
    dock.resize(1300, 300)  # the time axis moves 2 px in about a second
    dock.show()
    qtbot.waitExposed(dock)
    board.load_history([row(NOW_S - 5 + i) for i in range(6)])  # drawn now, cpu 30 %
    view = board.view("cpu")
    step = view.plot_step_s(600)
    assert step <= 1.5 < MAX_PLOT_STEP_S
    drawn = board.redraw_count
    for i in range(1, 4):  # 30.1 %: less than 2 px of the 0-100 % scale
        clock.now[0] = NOW_S + i
        board.add_sample(row(NOW_S + i, cpu_usage=30.1))
    assert view.dirty and not view.changed
    # a flat line waits for its time axis to move 8 px: ~3.7 s over this width, 10 s at most ...
    width = view.plot_page.width()
    assert view.wait_s(600) == pytest.approx(IDLE_PLOT_STEP_PIXELS * 600 / width) and step < view.wait_s(600)
    assert view.wait_s(3600) == IDLE_PLOT_STEP_S
    assert view.wait_s(60) < step  # ... and a short window still scrolls smoothly
    qtbot.wait(round(step * 1000) + 300)
    board._on_timer()
    assert board.redraw_count == drawn  # only the time moved: it waits
    assert view.readout_label.text().startswith("30.1")  # the readout did not wait
    clock.now[0] = NOW_S + 4
    board.add_sample(row(NOW_S + 4, cpu_usage=80.0))  # a spike ...
    clock.now[0] = NOW_S + 5
    board.add_sample(row(NOW_S + 5, cpu_usage=30.0))  # ... gone again by the next sample
    assert view.changed
    board._on_timer()
    assert board.redraw_count == drawn + 1  # drawn at the usual step: the spike shows
    assert not view.changed and finite_points(view.curves["cpu_usage"]) == 11
    # a new marker is a change too
    qtbot.wait(round(step * 1000) + 300)
    board.add_event(InstanceEvent("m", "started", round(clock.now[0] * 1000)))
    assert view.changed
    board._on_timer()
    assert board.redraw_count == drawn + 2


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


def test_stored_instance_samples_come_back_one_curve_a_model_with_their_gaps(board, clock):
    def sample(t_s: float, model: str, tps: float | None) -> dict:
        return {"timestamp": round(t_s * 1000), "model": model, "tokens_per_second": tps}

    rows = [sample(NOW_S - 300 + i, "a", 40.0 + i % 3) for i in range(60)]  # a minute...
    rows += [sample(NOW_S - 100 + i, "a", 0.0) for i in range(30)]  # ...a pause of 140 s, then idle
    rows += [sample(NOW_S - 50 + i, "b", None if i == 2 else 12.5) for i in range(5)]
    rows.sort(key=lambda r: r["timestamp"])
    board.load_instance_history(rows)
    board.flush()
    view = board.view(TOKENS_CHART)
    assert set(view.curves) == {"a", "b"}
    assert finite_points(view.curves["a"]) == 90 and line_segments(view.curves["a"]) == 59 + 29  # not bridged
    assert finite_points(view.curves["b"]) == 4  # a missing reading stays a hole, not a 0
    # live figures of an instance of that name carry on its curve
    board.add_instance_figures("a", 55.0, NOW_S + 1)
    clock.now[0] = NOW_S + 2
    board.flush()
    assert finite_points(view.curves["a"]) == 91 and view.buffers["a"].latest == 55.0


def test_a_marked_moment_is_a_line_on_every_chart_even_those_drawn_later(board, clock):
    assert board.mark_time(round((NOW_S - 60) * 1000)) is True
    assert board.marked_time_ms == round((NOW_S - 60) * 1000)
    board.flush()  # the plots are made now, after the mark
    for view in board.views():
        assert view.mark_line is not None and view.mark_line.value() == pytest.approx(NOW_S - 60)
    assert board.mark_time(round((NOW_S - 3600) * 1000)) is False  # older than the 10 minutes shown
    assert board.view("cpu").mark_line.value() == pytest.approx(NOW_S - 3600)
    board.mark_time(None)
    assert board.marked_time_ms is None
    assert all(view.mark_line is None for view in board.views())


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


def columns_of(rows: list[dict]) -> dict[str, list]:
    return {key: [r.get(key) for r in rows] for key in rows[0]}


def test_history_as_columns_draws_what_the_same_rows_draw(make_board):
    """The launcher reads the history as one list per column (get_metrics_columns): the charts
    must come out as they do from the rows, gaps, holes and the GPU's presence included."""
    rows = [row(NOW_S - 500 + i, cpu_usage=float(i)) for i in range(100)]
    rows += [
        row(NOW_S - 300 + i, disk_usage=None if i % 7 == 0 else 60.0, gpu_usage=None) for i in range(100)
    ]
    rows[-1].update(dict.fromkeys(GPU_COLUMNS))  # the newest has no GPU reading: the one before does
    from_rows, from_columns = make_board(), make_board()
    from_rows.load_history(rows)
    from_columns.load_history(columns_of(rows))
    from_rows.flush()
    from_columns.flush()
    for spec in CHART_SPECS:
        for series in spec.series:
            x1, y1 = data(from_rows.view(spec.key).curves[series.column])
            x2, y2 = data(from_columns.view(spec.key).curves[series.column])
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(y1, y2)
        assert from_rows.view(spec.key).readout_text() == from_columns.view(spec.key).readout_text()
    assert from_columns.has_gpu and from_rows.has_gpu
    _x, y = data(from_columns.view("memory").curves["memory_usage"])
    assert np.count_nonzero(np.isnan(y)) == 1  # the gap between the two runs, and nothing else


@pytest.mark.parametrize(
    "values",
    [
        [10, 20.5, 30, 0, 1e9],  # no missing reading (integers from an INTEGER column too)
        [None] * 5,  # nothing but missing readings (a GPU's column on a machine without one)
        [None, 1.0, None, 3, None],  # some missing
        [1.0, 2.0, 3.0, 4.0, None],  # the latest missing
    ],
    ids=["none-missing", "all-missing", "some-missing", "latest-missing"],
)
def test_a_run_of_history_goes_in_as_point_by_point(values):
    """``SeriesBuffer.extend`` (the history's way in) holds what appending each point holds: floats,
    NaN for a missing reading, and the latest reading."""
    times = [100.0 + i for i in range(len(values))]
    whole, one_by_one = SeriesBuffer(), SeriesBuffer()
    whole.extend(times, values)
    for t, value in zip(times, values, strict=True):
        one_by_one.append(t, value)
    x1, y1 = whole.arrays()
    x2, y2 = one_by_one.arrays()
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)  # NaN where the other has NaN
    assert all(type(y) is float for y in whole._y)
    assert whole.latest == one_by_one.latest  # None when the latest reading is missing
    assert np.count_nonzero(np.isnan(y1)) == values.count(None)


def test_the_gpu_charts_stay_as_long_as_the_latest_gpu_reading_in_the_history_is_in_the_window(
    make_board, clock
):
    """The latest row with any GPU reading (here the memory total's, after the others stopped) is
    when the GPU was last seen: its charts stay until that row leaves the 10-minute window."""
    rows = [row(NOW_S - 599 + i, **dict.fromkeys(GPU_COLUMNS)) for i in range(600)]
    for i in range(0, 100):
        rows[i]["gpu_usage"] = 30.0
    rows[149]["gpu_memory_total"] = 24_000.0  # seen last at NOW_S - 450
    board = make_board()
    board.load_history(columns_of(rows))
    assert board.has_gpu
    clock.now[0] = NOW_S + 149  # the reading 1 s from the window's edge
    assert board.has_gpu
    clock.now[0] = NOW_S + 151
    assert not board.has_gpu
    none = make_board()
    none.load_history(columns_of([row(NOW_S - 9 + i, **dict.fromkeys(GPU_COLUMNS)) for i in range(10)]))
    assert not none.has_gpu


def test_history_read_from_the_database_as_columns_is_all_on_the_charts(make_board, tmp_path):
    database.init_database(tmp_path / "db.sqlite")
    try:
        now = round(time.time() * 1000)
        for i in range(600):
            database.save_metrics({"timestamp": now - (599 - i) * 1000, "cpu_usage": float(i % 50)})
        columns = database.get_metrics_columns(10)
        assert columns["cpu_usage"] == [row["cpu_usage"] for row in database.get_metrics_history(10)]
        board = make_board(board_clock=lambda: now / 1000)
        board.load_history(columns)
        board.flush()
        assert finite_points(board.view("cpu").curves["cpu_usage"]) == 600
    finally:
        database.close_database()


def test_a_redraw_is_painted_once(board, clock, qtbot):
    """A redraw moves the time axis: the plot is painted once for it, not once more when the view
    box applies the new range while painting (each paint of a plot runs Python)."""
    from PySide6.QtCore import QEvent, QObject

    board.load_history([row(NOW_S - 60 + i) for i in range(60)])
    dock = board.docks["cpu"]
    dock.show()
    qtbot.waitExposed(dock)
    view = board.view("cpu")
    qtbot.waitUntil(lambda: view.has_plot and not view.dirty, timeout=2000)
    qtbot.wait(100)  # the first paints are over
    viewport = view.plot_widget.viewport()
    paints = []

    class Count(QObject):
        def eventFilter(self, obj, event):
            if obj is viewport and event.type() == QEvent.Type.Paint:
                paints.append(1)
            return False

    counter = Count()
    viewport.installEventFilter(counter)
    for step in range(1, 4):
        clock.now[0] = NOW_S + 5 * step
        board.add_sample(row(NOW_S + 5 * step, cpu_usage=10.0 * step))
        view.redraw(*board._span())
        qtbot.wait(150)  # every paint the redraw asked for has happened
    viewport.removeEventFilter(counter)
    assert len(paints) == 3
