"""The chart docks: one ``QDockWidget`` with a pyqtgraph plot per metric group.

:data:`CHART_SPECS` declares the charts (title, unit, the ``metrics_history`` columns they draw);
:class:`ChartBoard` owns their docks and feeds them: first the saved history, then each new sample,
the instance manager's per-instance tokens/s and the instance events (vertical markers). The
tokens/s chart comes back on launch too, from the stored per-instance samples
(:meth:`ChartBoard.load_instance_history`), and a moment can be marked on every chart (the Activity
view marks the selected request's, :meth:`ChartBoard.mark_time`).

How the charts stay cheap whatever the sample rate: every curve is created once and only given new
data with ``setData``; a new sample updates the readouts (two labels a chart) at once but only marks
the plots dirty, and a single-shot timer redraws them at most once per :data:`REDRAW_INTERVAL_MS`;
curves clip to the view and downsample.

How gaps stay gaps: a missing reading is NaN, and where two samples are further apart than
:data:`~llamadash.core.metrics.GAP_FACTOR` intervals (the dashboard was closed, the machine slept) a
NaN is put between them; the curves connect finite points only, so neither is bridged by a line.
The interval is the one the samples were taken at: saved history is judged by its own spacing
(:func:`~llamadash.core.metrics.split_on_gaps`), not by a shorter interval set since.
"""

from __future__ import annotations

import math
import operator
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise, repeat
from typing import Any, cast

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import (
    QDockWidget,
    QGraphicsGridLayout,
    QGraphicsItem,
    QHBoxLayout,
    QLabel,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from llamadash.core.events import InstanceEvent
from llamadash.core.metrics import GAP_FACTOR, Sample, run_starts, split_on_gaps
from llamadash.ui.theme import ChartColors, chart_colors

__all__ = [
    "CHART_SPECS",
    "GPU_COLUMNS",
    "REDRAW_INTERVAL_MS",
    "TOKENS_CHART",
    "ChartBoard",
    "ChartDock",
    "ChartSpec",
    "ChartView",
    "SeriesBuffer",
    "SeriesSpec",
    "ValueAxis",
    "history_columns",
    "history_last_row",
]

#: The shortest time between two redraws; samples arriving faster are drawn together.
REDRAW_INTERVAL_MS = 250
#: A visible plot is redrawn once its time axis has moved this many pixels (its readout at once).
PLOT_STEP_PIXELS = 2
#: The longest a visible plot whose values changed waits for a redraw.
MAX_PLOT_STEP_S = 5.0
#: A visible plot whose new points all lie within :data:`PLOT_STEP_PIXELS` of the values it shows
#: (an idle chart: only its time axis moves) waits until that axis moved this many pixels ...
IDLE_PLOT_STEP_PIXELS = 8
#: ... or this many seconds, whichever comes first (a short time window scrolls smoothly, a long one
#: is not repainted for a shift nobody sees: a flat chart of 10 minutes moves 8 px in ~9 s).
IDLE_PLOT_STEP_S = 10.0
#: How many of the last steps of the history tell the interval it was saved at.
HISTORY_SPACING_STEPS = 5
#: Curve width in pixels: 1 px lines are drawn on a fast path that wider ones miss.
PEN_WIDTH = 1.0
#: The ``metrics_history`` columns that come from the GPU.
GPU_COLUMNS = ("gpu_usage", "gpu_temperature", "gpu_memory_used", "gpu_memory_total", "gpu_power_usage")
#: The key of the per-instance tokens/s chart (its curves are the instances, not columns).
TOKENS_CHART = "tokens"

NO_INSTANCE_TEXT = "Each running instance's generation speed appears here."
NO_GPU_TEXT = (
    "<b>No NVIDIA GPU detected</b><br><br>GPU charts need an NVIDIA GPU and its driver (NVML).<br>"
    "CPU, memory and disk are charted as usual."
)


class ValueAxis(pg.AxisItem):
    """The value axis, whose grid lines are drawn in solid colours, under the curves.

    pyqtgraph draws grid lines in the axis's colour at a fraction of its opacity, over the plot: each
    translucent line is blended pixel by pixel, ~4 ms a chart for its first paint here (the grid
    was about two thirds of the charts' painting before they first showed; a solid line costs a
    twentieth). The same colour, mixed with :attr:`background` beforehand, looks the same on the
    plain background; and the axis lies under the view box (see :class:`TimePlot`), so a curve
    on a grid line is drawn over it rather than under it.
    """

    background: QColor | None = None
    """The plot's background colour, which the grid's colours are mixed with (``None``: not yet
    known, the lines are drawn as pyqtgraph draws them)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__("left", parent=parent)
        self._solid_pens: dict[tuple[int, int], QPen] = {}

    def set_background(self, colour: Any) -> None:
        """Mix the grid's colours with ``colour`` (anything ``pg.mkColor`` takes) from the next paint."""
        self.background = pg.mkColor(colour)
        self._solid_pens.clear()
        self.picture = None  # drawn again with the new mix
        self.update()

    def generateDrawSpecs(self, p: QPainter) -> Any:
        specs = super().generateDrawSpecs(p)
        background = self.background
        if specs is None or background is None or self.grid is False:
            return specs
        axis_spec, tick_specs, text_specs = specs
        return axis_spec, [(self._solid(pen), p1, p2) for pen, p1, p2 in tick_specs], text_specs

    def _solid(self, pen: QPen) -> QPen:
        colour = pen.color()
        if colour.alpha() == 255 or pen.brush().style() != Qt.BrushStyle.SolidPattern:
            return pen
        background = self.background
        assert background is not None
        key = (colour.rgba(), background.rgba())
        solid = self._solid_pens.get(key)
        if solid is None:
            alpha = colour.alphaF()
            mixed = QColor.fromRgbF(
                colour.redF() * alpha + background.redF() * (1 - alpha),
                colour.greenF() * alpha + background.greenF() * (1 - alpha),
                colour.blueF() * alpha + background.blueF() * (1 - alpha),
            )
            solid = QPen(pen)
            solid.setColor(mixed)
            self._solid_pens[key] = solid
        return solid


class TimePlot(pg.GraphicsWidget):
    """A value axis, a time axis and a view box: the part of a ``pg.PlotItem`` a chart uses.

    ``PlotItem`` also builds its options form, a context menu, the title and the top/right axes for
    every plot, about two thirds of its cost (~10 ms a chart here, paid before the charts can paint);
    the charts use none of them. The methods the charts and their tests call keep ``PlotItem``'s
    names and meaning.
    """

    def __init__(self) -> None:
        super().__init__()
        grid = QGraphicsGridLayout()
        grid.setContentsMargins(1, 1, 1, 1)
        grid.setHorizontalSpacing(0)
        grid.setVerticalSpacing(0)
        self.setLayout(grid)
        self.vb = pg.ViewBox(parent=self, enableMenu=False)
        self.vb.setMouseEnabled(x=False, y=False)  # panning and zooming would fight the next redraw
        self.axes = {
            "left": ValueAxis(parent=self),
            "bottom": pg.DateAxisItem("bottom", parent=self),
        }
        # under the view box (whose z is -100): the grid lines it draws across the plot lie under
        # the curves; its labels and line are beside the view box, where nothing covers them
        self.axes["left"].setZValue(-200)
        for axis in self.axes.values():
            axis.linkToView(self.vb)
        grid.addItem(self.axes["left"], 0, 0)
        grid.addItem(self.vb, 0, 1)
        grid.addItem(self.axes["bottom"], 1, 1)
        grid.setRowStretchFactor(0, 100)
        grid.setColumnStretchFactor(1, 100)

    def getViewBox(self) -> pg.ViewBox:
        return self.vb

    def getAxis(self, name: str) -> pg.AxisItem:
        return self.axes[name]

    def setXRange(self, low: float, high: float, padding: float | None = None) -> None:
        self.vb.setXRange(low, high, padding=padding)

    def setYRange(self, low: float, high: float, padding: float | None = None) -> None:
        self.vb.setYRange(low, high, padding=padding)

    def setLabel(self, name: str, text: str) -> None:
        self.axes[name].setLabel(text)

    def showGrid(self, y: bool, alpha: float) -> None:
        """Horizontal grid lines of ``alpha`` (0-1), drawn by the value axis."""
        self.axes["left"].setGrid(int(min(1.0, max(0.0, alpha)) * 255) if y else False)

    def plot(self, pen: Any, name: str) -> pg.PlotDataItem:
        """A curve that clips to the view and downsamples (peak) to the plot's width."""
        curve = pg.PlotDataItem(pen=pen, name=name)
        curve.setClipToView(True)
        curve.setDownsampling(auto=True, method="peak")
        self.vb.addItem(curve)
        return curve

    def addItem(self, item: QGraphicsItem, ignoreBounds: bool = False) -> None:
        self.vb.addItem(item, ignoreBounds=ignoreBounds)

    def removeItem(self, item: QGraphicsItem) -> None:
        self.vb.removeItem(item)


class TimePlotWidget(pg.GraphicsView):
    """A ``pg.GraphicsView`` showing one :class:`TimePlot` (what ``pg.PlotWidget`` is to ``PlotItem``).

    Signals:
        firstPainted: its first paint has been drawn (emitted once).
    """

    firstPainted = Signal()

    def __init__(self) -> None:
        super().__init__()
        self._plot = TimePlot()
        self.setCentralItem(self._plot)
        self._painted = False

    def useOpenGL(self, b: bool = True) -> None:
        """Without OpenGL, a viewport made here, in Python, instead of asking for the one Qt made.

        ``GraphicsView.__init__`` asks (``viewport()``) to see whether it is already a plain widget.
        PySide6 finds the Python class of a widget that C++ made by trying every ``QWidget``
        subclass, and creates each one it tries (with its enums): ~200 classes, 30-40 ms before the
        first chart can paint, that llamadash does not use. A widget Python made is known.
        """
        if b:
            super().useOpenGL(b)
        else:
            self.setViewport(QWidget())

    def paintEvent(self, event: Any) -> None:
        super().paintEvent(event)
        if not self._painted:
            self._painted = True
            self.firstPainted.emit()

    def getPlotItem(self) -> TimePlot:
        return self._plot


@dataclass(frozen=True)
class SeriesSpec:
    """One curve of a chart: a ``metrics_history`` column and its legend label."""

    column: str
    label: str


@dataclass(frozen=True)
class ChartSpec:
    """One chart dock.

    Attributes:
        key: Stable identifier; the dock's ``objectName`` is ``chart-<key>`` (saved layouts use it).
        title: The dock's title.
        unit: The unit on the axis and after the readout.
        series: The curves; empty for the per-instance chart, whose curves come and go.
        y_range: A fixed value range (percentages), or ``None`` to fit the data from 0.
        gpu: Whether the chart shows GPU readings (and a message where there is no GPU).
        decimals: Decimals of the readout.
        label_events: Whether event markers carry a text label here (the others only show the line,
            so the small charts are not covered in text).
    """

    key: str
    title: str
    unit: str
    series: tuple[SeriesSpec, ...]
    y_range: tuple[float, float] | None = None
    gpu: bool = False
    decimals: int = 1
    label_events: bool = False

    @property
    def object_name(self) -> str:
        return f"chart-{self.key}"


CHART_SPECS: tuple[ChartSpec, ...] = (
    ChartSpec("cpu", "CPU", "%", (SeriesSpec("cpu_usage", "CPU"),), (0, 100)),
    ChartSpec("memory", "Memory", "%", (SeriesSpec("memory_usage", "RAM"),), (0, 100)),
    ChartSpec("disk", "Disk", "%", (SeriesSpec("disk_usage", "Used"),), (0, 100)),
    ChartSpec("gpu_usage", "GPU utilization", "%", (SeriesSpec("gpu_usage", "GPU"),), (0, 100), gpu=True),
    ChartSpec(
        "gpu_temperature",
        "GPU temperature",
        "°C",
        (SeriesSpec("gpu_temperature", "Core"),),
        gpu=True,
        decimals=0,
    ),
    ChartSpec(
        "gpu_memory",
        "GPU memory",
        "MB",
        (SeriesSpec("gpu_memory_used", "Used"), SeriesSpec("gpu_memory_total", "Total")),
        gpu=True,
        decimals=0,
    ),
    ChartSpec("gpu_power", "GPU power", "W", (SeriesSpec("gpu_power_usage", "Draw"),), gpu=True, decimals=0),
    ChartSpec(
        "active_models",
        "Active models",
        "models",
        (SeriesSpec("active_models", "Running"),),
        decimals=0,
        label_events=True,
    ),
    ChartSpec(
        "requests",
        "Requests per minute",
        "req/min",
        (SeriesSpec("requests_per_minute", "All instances"),),
        label_events=True,
    ),
    ChartSpec(TOKENS_CHART, "Generation tokens/s", "tok/s", (), label_events=True),
)

_EVENT_GLYPHS = {"started": "▶", "ready": "✓", "stopped": "■", "crashed": "✖"}


class SeriesBuffer:
    """One curve's points: times in Unix seconds and values, NaN for missing readings and gaps."""

    def __init__(self) -> None:
        self._x: deque[float] = deque()
        self._y: deque[float] = deque()
        self.latest: float | None = None
        self.interval_s: float | None = None
        """The sampling interval of the last points, when known (see :meth:`append`)."""

    def __len__(self) -> int:
        return len(self._x)

    def append(self, t: float, value: float | None, interval_s: float | None = None) -> None:
        """Add a point; with ``interval_s``, the sampling interval, a step that is a gap puts a break before it.

        A gap is a step longer than :data:`GAP_FACTOR` intervals: the interval now, or that of the
        points before it where that was longer (the interval was lowered since), so a change of
        interval is not a gap.
        """
        if interval_s is not None:
            gap_s = GAP_FACTOR * max(interval_s, self.interval_s or 0.0)
            if self._x and t - self._x[-1] > gap_s and not math.isnan(self._y[-1]):
                self._x.append((self._x[-1] + t) / 2)
                self._y.append(math.nan)
            self.interval_s = interval_s
        if self._x and t < self._x[-1]:
            return  # the clock went back (or a late duplicate): keep the line monotonic
        y = math.nan if value is None else float(value)
        self._x.append(t)
        self._y.append(y)
        self.latest = None if value is None else y

    def extend(self, times: Sequence[float], values: Sequence[float | None]) -> None:
        """Add a run of points at once (``times`` ascending, none before the last point): the history."""
        if not times:
            return
        if self._x and times[0] < self._x[-1]:
            for t, value in zip(times, values, strict=True):
                self.append(t, value)
            return
        self._x.extend(times)
        # A history's column mostly holds no missing reading, or nothing but missing ones (a GPU's
        # on a machine without one): both go in without a Python step per value (float() of None
        # is the TypeError that tells a missing reading is there).
        ys: Iterable[float]
        try:
            ys = list(map(float, cast(Sequence[float], values)))  # None: the TypeError below
        except TypeError:
            ys = (
                repeat(math.nan, len(values))
                if _no_reading(values)
                else [math.nan if value is None else float(value) for value in values]
            )
        self._y.extend(ys)
        last = values[-1]
        self.latest = None if last is None else float(last)

    def add_break(self, t: float) -> None:
        """Break the line at ``t`` (between two runs of the history)."""
        if self._x and not math.isnan(self._y[-1]):
            self._x.append(t)
            self._y.append(math.nan)

    def prune(self, before: float) -> None:
        """Drop the points older than ``before``, keeping one so the line enters the view from the edge."""
        while len(self._x) > 1 and self._x[1] < before:
            self._x.popleft()
            self._y.popleft()

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        n = len(self._x)
        return np.fromiter(self._x, float, n), np.fromiter(self._y, float, n)

    def finite_count(self) -> int:
        """How many real readings (not breaks, not missing) the buffer holds."""
        return sum(1 for y in self._y if not math.isnan(y))


def _no_reading(values: Sequence[Any]) -> bool:
    """Whether a history column holds nothing but missing readings (the GPU's, on a machine without
    one): one count at C speed, not a Python test per row."""
    return operator.countOf(values, None) == len(values)


def _latest_reading(columns: Iterable[Sequence[Any] | None]) -> int | None:
    """The index of the latest row where any of ``columns`` (``None``: not given) holds a reading.

    A column with no reading at all is passed over at once (:func:`_no_reading`): testing every row
    of every column in Python was ~40 % of the history's way into the charts at start-up.
    """
    latest = -1
    for values in columns:
        if not values or _no_reading(values):
            continue
        for i in range(len(values) - 1, latest, -1):
            if values[i] is not None:
                latest = i
                break
    return latest if latest >= 0 else None


def _spacing_s(stamps_ms: Sequence[float]) -> float | None:
    """How far apart these rows were saved, in seconds: their lower median step (``None`` for one row)."""
    steps = sorted(later - earlier for earlier, later in pairwise(stamps_ms))
    return steps[(len(steps) - 1) // 2] / 1000 if steps else None


def _format_value(value: float | None, decimals: int) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:,.{decimals}f}"


class ChartView(QWidget):
    """A plot with a time axis, its curves, a latest-value readout and a "no GPU" page.

    The pyqtgraph plot is made the first time the chart can be seen (or its curves are asked for):
    a chart behind another's tab, or a GPU chart on a machine without GPU, costs nothing at start-up.
    Its data is buffered from the start either way.

    Args:
        spec: What the chart shows.
        colors: The theme's chart colours.
    """

    plotPainted = Signal()
    """Its plot has been painted for the first time."""

    def __init__(self, spec: ChartSpec, colors: ChartColors, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        self._colors = colors
        self.buffers: dict[str, SeriesBuffer] = {}
        self._labels: dict[str, str] = {}
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._events: list[InstanceEvent] = []
        self._markers: dict[InstanceEvent, pg.InfiniteLine] = {}
        self._mark_s: float | None = None
        self._mark_line: pg.InfiniteLine | None = None
        self._plot_widget: TimePlotWidget | None = None
        self._readout_text = ""
        self._legend_text = ""
        self._dirty = True
        self.changed = True
        """Something the plot shows changed more than its time: a value :data:`PLOT_STEP_PIXELS`
        away from the one drawn, a series, a marker (see :meth:`note_point`)."""
        self._drawn_latest: dict[str, float | None] = {}
        self._value_step = 0.0  # the values of PLOT_STEP_PIXELS at the last redraw
        self.last_drawn = -math.inf
        self.on_shown: Callable[[], None] | None = None
        """Called when the chart becomes visible with data it has not drawn (set by the board)."""

        self.legend_label = QLabel()
        self.legend_label.setObjectName("chartLegend")
        self.legend_label.setTextFormat(Qt.TextFormat.RichText)
        self.readout_label = QLabel("n/a")
        self.readout_label.setObjectName("chartReadout")
        self.readout_label.setTextFormat(Qt.TextFormat.RichText)
        self.readout_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        font = QFont(self.readout_label.font())
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.readout_label.setFont(font)
        self.readout_label.setToolTip("The latest sample")
        header = QHBoxLayout()
        header.setContentsMargins(6, 2, 6, 0)
        header.addWidget(self.legend_label, 1)
        header.addWidget(self.readout_label)

        self.plot_page = QWidget()
        self.plot_page.setMinimumSize(160, 90)
        self._plot_layout = QVBoxLayout(self.plot_page)
        self._plot_layout.setContentsMargins(0, 0, 0, 0)
        self.no_gpu_label = QLabel(NO_GPU_TEXT)
        self.no_gpu_label.setObjectName("noGpuMessage")
        self.no_gpu_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.no_gpu_label.setWordWrap(True)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.plot_page)
        self.stack.addWidget(self.no_gpu_label)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addWidget(self.stack, 1)

        for series in spec.series:
            self.add_series(series.column, series.label)
        if spec.key == TOKENS_CHART:  # its curves come with the instances: until then, say so
            self.set_message(NO_INSTANCE_TEXT)
        self.set_colors(colors)

    # -- the plot -----------------------------------------------------------------------------------

    @property
    def dirty(self) -> bool:
        """New data (or a new time) that the plot does not show yet."""
        return self._dirty

    @dirty.setter
    def dirty(self, value: bool) -> None:
        self._dirty = value
        if value:
            self.changed = True

    def note_point(self, key: str) -> None:
        """Series ``key`` got a new point: the plot is dirty; :attr:`changed` when it would show.

        A point within :data:`PLOT_STEP_PIXELS` of the value drawn last (a flat idle line) moves
        nothing but the time axis, so the plot may wait :data:`IDLE_PLOT_STEP_PIXELS` of it
        (:data:`IDLE_PLOT_STEP_S` at most).
        """
        self._dirty = True
        if self.changed:
            return
        latest = self.buffers[key].latest
        drawn = self._drawn_latest.get(key, math.nan)
        if latest is None or drawn is None:
            self.changed = latest is not drawn
        else:  # a NaN drawn (never drawn) is always a change
            self.changed = not abs(latest - drawn) <= self._value_step

    def wait_s(self, window_s: float) -> float:
        """How long after its last redraw the plot is due again (see :attr:`changed`)."""
        if self.changed:
            return self.plot_step_s(window_s)
        width = max(1, self.plot_page.width())
        return min(IDLE_PLOT_STEP_S, max(REDRAW_INTERVAL_MS / 1000, IDLE_PLOT_STEP_PIXELS * window_s / width))

    @property
    def has_plot(self) -> bool:
        """Whether the pyqtgraph plot has been made yet."""
        return self._plot_widget is not None

    @property
    def plot_widget(self) -> TimePlotWidget:
        """The pyqtgraph widget (made now if it was not yet)."""
        self.ensure_plot()
        assert self._plot_widget is not None
        return self._plot_widget

    @property
    def plot(self) -> TimePlot:
        """The pyqtgraph plot item (made now if it was not yet)."""
        return self.plot_widget.getPlotItem()

    @property
    def curves(self) -> dict[str, pg.PlotDataItem]:
        """The curves by series key, holding the buffered points (the plot is made if needed)."""
        self.ensure_plot()
        return self._curves

    def ensure_plot(self) -> None:
        """Make the plot with its curves, markers and colours, once."""
        if self._plot_widget is not None:
            return
        spec = self.spec
        # No context menu, options or buttons: the view is always "the last N minutes".
        widget = TimePlotWidget()
        widget.firstPainted.connect(self.plotPainted)
        plot = widget.getPlotItem()
        left_axis = plot.getAxis("left")
        left_axis.setWidth(60 if spec.key == "gpu_memory" else 46)  # room for "25000"
        # no "(x0.001)" rescaling of the unit: an idle chart reads 0 req/min, not 20 milli-req/min
        left_axis.enableAutoSIPrefix(False)
        # The value axis (and its grid lines) changes only with the value range; caching its pixels
        # spares replaying its drawing at every tick of the time axis.
        left_axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        plot.setLabel("left", spec.unit)
        if spec.y_range is not None:
            plot.setYRange(*self._fixed_range(), padding=0)
        plot.getViewBox().disableAutoRange()
        self._plot_widget = widget
        self._plot_layout.addWidget(widget)
        for key in self.buffers:
            self._make_curve(key)
        self._apply_plot_colors()
        if self._mark_s is not None:
            self._show_mark()

    def _make_curve(self, key: str) -> None:
        plot = self.plot
        curve = plot.plot(pg.mkPen(self._curve_colour(key), width=PEN_WIDTH), self._labels[key])
        curve.setData(*self.buffers[key].arrays(), connect="finite")
        self._curves[key] = curve

    def _fixed_range(self) -> tuple[float, float]:
        low, high = self.spec.y_range or (0.0, 1.0)
        return low, high + (high - low) * 0.04  # headroom, so the top tick label ("100") is drawn

    # -- curves -----------------------------------------------------------------------------------

    def add_series(self, key: str, label: str) -> SeriesBuffer:
        """Create a series (its curve is made once, with the plot) and return its buffer."""
        if key in self.buffers:
            return self.buffers[key]
        self.buffers[key] = SeriesBuffer()
        self._labels[key] = label
        self._legend_text = ""  # rebuilt on the next redraw
        if self._plot_widget is not None:
            self._make_curve(key)
        if self.message_text() == NO_INSTANCE_TEXT:
            self.set_message(None)
        return self.buffers[key]

    def plot_step_s(self, window_s: float) -> float:
        """How long the time axis takes to move two pixels: redrawing more often shows next to nothing."""
        width = max(1, self.plot_page.width())
        return min(MAX_PLOT_STEP_S, max(REDRAW_INTERVAL_MS / 1000, PLOT_STEP_PIXELS * window_s / width))

    def is_shown(self) -> bool:
        """Whether the plot can be seen (not closed, not a tab behind another, window not minimized)."""
        # A dock behind another's tab stays "visible" but is moved out of sight: ask what shows.
        if not self.isVisible() or self.stack.currentIndex() != 0 or self.visibleRegion().isEmpty():
            return False
        window = self.window()
        return window is None or not window.isMinimized()

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if self.on_shown is not None and (self.dirty or not self.has_plot) and self.is_shown():
            self.on_shown()

    def redraw(self, start: float, end: float) -> None:
        """Give every curve its buffered points and show ``start``–``end`` (Unix seconds)."""
        self.ensure_plot()
        self.dirty = False
        self.last_drawn = time.monotonic()
        plot = self.plot
        highest = 0.0
        for key, buffer in self.buffers.items():
            buffer.prune(start)
            x, y = buffer.arrays()
            self._curves[key].setData(x, y)
            if self.spec.y_range is None and len(y):
                visible = y[x >= start]
                if visible.size and not np.all(np.isnan(visible)):
                    highest = max(highest, float(np.nanmax(visible)))
        plot.setXRange(start, end, padding=0)
        if self.spec.y_range is None:
            plot.setYRange(0, max(highest * 1.15, 1.0), padding=0)  # an idle chart still has a scale
        self._prune_markers(start)
        # The view box would apply the new range at paint time, and the items it moves then ask
        # for a second paint: applied now, one redraw is one paint (it was two, counted per chart).
        view_box = plot.getViewBox()
        if getattr(view_box, "_matrixNeedsUpdate", False):
            view_box.updateMatrix()
        low, high = view_box.viewRange()[1]
        self._value_step = (high - low) * PLOT_STEP_PIXELS / max(1.0, view_box.height())
        self._drawn_latest = {key: buffer.latest for key, buffer in self.buffers.items()}
        self.changed = False
        self._update_header()

    def update_header(self) -> None:
        """Update the legend and the latest-value readout (cheap: two labels)."""
        self._update_header()

    def _update_header(self) -> None:
        if not self._legend_text:  # made again only after a series or the colours changed
            legend = "&nbsp;&nbsp;".join(
                f"<span style='color:{self._curve_colour(key)}'>●</span>&nbsp;{label}"
                for key, label in self._labels.items()
            )
            self._legend_text = legend
            if legend != self.legend_label.text():
                self.legend_label.setText(legend)
        text = "" if self.shows_no_gpu else self.readout_text()
        if text and text != self._readout_text:
            self._readout_text = text
            self.readout_label.setText(text)

    def _curve_colour(self, key: str) -> str:
        index = list(self.buffers).index(key)
        return self._colors.series[index % len(self._colors.series)]

    def readout_text(self) -> str:
        """The latest value(s) with the unit, "n/a" for a missing reading (rich text)."""
        spec = self.spec
        if not self.buffers:
            return f"<span style='color:{self._colors.muted}'>n/a</span>"
        if spec.key == "gpu_memory":
            used = self.buffers["gpu_memory_used"].latest
            total = self.buffers["gpu_memory_total"].latest
            value = f"{_format_value(used, 0)} / {_format_value(total, 0)}"
        elif len(self.buffers) == 1:
            value = _format_value(next(iter(self.buffers.values())).latest, spec.decimals)
        else:  # one value per curve, in the curve's colour (the legend names them)
            value = " · ".join(
                f"<span style='color:{self._curve_colour(key)}'>"
                f"{_format_value(b.latest, spec.decimals)}</span>"
                for key, b in self.buffers.items()
            )
        return f"{value} <span style='font-weight:normal; color:{self._colors.muted}'>{spec.unit}</span>"

    # -- GPU message --------------------------------------------------------------------------------

    def set_message(self, text: str | None) -> None:
        """Show ``text`` instead of the plot, or (``None``) the plot again."""
        if text is None:
            if self.stack.currentIndex() != 0:
                self.stack.setCurrentIndex(0)
                self.dirty = True
            return
        self.no_gpu_label.setText(text)
        self.stack.setCurrentIndex(1)

    def message_text(self) -> str | None:
        """The message shown instead of the plot, if one is."""
        return self.no_gpu_label.text() if self.stack.currentIndex() == 1 else None

    def set_no_gpu(self, no_gpu: bool) -> None:
        """Show the "no NVIDIA GPU" message instead of the plot (or the plot again)."""
        self.set_message(NO_GPU_TEXT if no_gpu else None)
        if no_gpu:
            self.readout_label.setText(f"<span style='color:{self._colors.muted}'>no GPU</span>")
            self._readout_text = ""

    @property
    def shows_no_gpu(self) -> bool:
        """Whether the "no NVIDIA GPU" message is shown rather than the plot."""
        return self.message_text() == NO_GPU_TEXT

    # -- events -----------------------------------------------------------------------------------

    def add_marker(self, event: InstanceEvent) -> None:
        """A vertical line at the event's time, labelled where this chart labels events."""
        if event in self._events:
            return
        self._events.append(event)
        if self._plot_widget is not None:
            self._add_marker_item(event)

    def _add_marker_item(self, event: InstanceEvent) -> None:
        colour = self._colors.events.get(event.event, self._colors.muted)
        when = datetime.fromtimestamp(event.ms / 1000).strftime("%H:%M:%S")
        line = pg.InfiniteLine(
            pos=event.ms / 1000,
            angle=90,
            movable=False,
            pen=pg.mkPen(colour, width=1.2, style=Qt.PenStyle.DashLine),
        )
        if self.spec.label_events:
            # A glyph only: names of events close in time would overlap; the tooltip has them.
            label = pg.InfLineLabel(
                line,
                text=_EVENT_GLYPHS.get(event.event, "•"),
                position=0.96,
                anchor=(0.5, 0.5),
                color=colour,
            )
            label.setToolTip(f"{event.name} {event.event} at {when}")
        line.setToolTip(f"{event.name} {event.event} at {when}")
        line.setZValue(-10)  # behind the curves
        self.plot.addItem(line, ignoreBounds=True)
        self._markers[event] = line

    @property
    def markers(self) -> dict[InstanceEvent, pg.InfiniteLine]:
        """The marker lines by event (the plot is made if needed)."""
        self.ensure_plot()
        return self._markers

    def _prune_markers(self, before: float) -> None:
        self._events = [e for e in self._events if e.ms / 1000 >= before]
        for event in [e for e in self._markers if e.ms / 1000 < before]:
            self.plot.removeItem(self._markers.pop(event))

    # -- the marked moment ------------------------------------------------------------------------

    def mark_time(self, seconds: float | None) -> None:
        """Mark a moment (Unix seconds) with a solid vertical line (the axes' colour), or (``None``) none.

        One moment at a time: a new one moves the line. It is kept where the plot is not made yet.
        """
        self._mark_s = None if seconds is None else float(seconds)
        if self._plot_widget is not None:
            self._show_mark()

    @property
    def marked_time(self) -> float | None:
        """The marked moment (Unix seconds), if any."""
        return self._mark_s

    @property
    def mark_line(self) -> pg.InfiniteLine | None:
        """The line of the marked moment, once the plot is made and a moment marked (tests)."""
        return self._mark_line if self._mark_line is not None and self._mark_line.isVisible() else None

    def _show_mark(self) -> None:
        if self._mark_s is None:
            if self._mark_line is not None:
                self._mark_line.hide()
            return
        if self._mark_line is None:
            self._mark_line = pg.InfiniteLine(angle=90, movable=False)
            self._mark_line.setZValue(5)  # over the curves: it is what the user asked to see
            self.plot.addItem(self._mark_line, ignoreBounds=True)
        self._mark_line.setPen(pg.mkPen(self._colors.foreground, width=1.5))
        self._mark_line.setPos(self._mark_s)
        self._mark_line.setToolTip(
            "Selected request, " + datetime.fromtimestamp(self._mark_s).strftime("%H:%M:%S")
        )
        self._mark_line.show()

    # -- theme ------------------------------------------------------------------------------------

    def set_colors(self, colors: ChartColors) -> None:
        """Recolour the header and, once it exists, the plot: background, axes, grid, curves, markers."""
        self._colors = colors
        self.no_gpu_label.setStyleSheet(f"color: {colors.muted};")
        if self._plot_widget is not None:
            self._apply_plot_colors()
        self._legend_text = self._readout_text = ""
        self._update_header()

    def _apply_plot_colors(self) -> None:
        colors = self._colors
        plot = self.plot
        self.plot_widget.setBackground(colors.background)
        for name in ("left", "bottom"):
            axis = plot.getAxis(name)
            axis.setPen(pg.mkPen(colors.foreground))
            axis.setTextPen(pg.mkPen(colors.foreground))
        # Horizontal grid lines only: they belong to the cached value axis, while vertical ones would
        # be drawn again at every move of the time axis.
        plot.showGrid(y=True, alpha=colors.grid_alpha)
        value_axis = plot.getAxis("left")
        if isinstance(value_axis, ValueAxis):
            value_axis.set_background(colors.background)
        for key, curve in self._curves.items():
            curve.setPen(pg.mkPen(self._curve_colour(key), width=PEN_WIDTH))
        for line in self._markers.values():
            plot.removeItem(line)
        self._markers.clear()
        for event in self._events:
            self._add_marker_item(event)
        if self._mark_line is not None:
            self._show_mark()


class ChartDock(QDockWidget):
    """A dock holding one :class:`ChartView`; movable, floatable, closable and tabbable."""

    def __init__(self, spec: ChartSpec, colors: ChartColors, parent: QWidget | None = None) -> None:
        super().__init__(spec.title, parent)
        self.setObjectName(spec.object_name)
        self.view = ChartView(spec, colors)
        self.setWidget(self.view)
        self.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetClosable
            | QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )


def history_columns(
    history: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
) -> Mapping[str, Sequence[Any]]:
    """Saved samples as one list per column, whether given so or as rows."""
    if isinstance(history, Mapping):
        return history
    keys = {key for row in history for key in row}
    return {key: [row.get(key) for row in history] for key in keys}


def history_last_row(
    history: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
) -> dict[str, Any] | None:
    """The newest saved sample as a row, or ``None`` when there is none."""
    columns = history_columns(history)
    stamps = columns.get("timestamp") or ()
    if not stamps:
        return None
    return {key: values[-1] for key, values in columns.items()}  # oldest first: the last


def _row_of(sample: Sample | Mapping[str, Any]) -> Mapping[str, Any]:
    return sample.as_row() if isinstance(sample, Sample) else sample


class ChartBoard(QObject):
    """Owns the chart docks and feeds them; the main window places the docks.

    Signals:
        gpuPresenceChanged(bool): the GPU charts now draw (an NVIDIA GPU) or show "no GPU".

    Args:
        colors: The chart colours (see :func:`llamadash.ui.theme.chart_colors`).
        window_minutes: How many minutes the charts show.
        interval_s: The sampling interval (what counts as a gap depends on it).
        clock: Wall clock in Unix seconds (tests).
        drawing: Draw as soon as charts are shown. The main window passes False and calls
            :meth:`start_drawing` once it has been painted, so that the window appears first
            (readouts included) and its plots follow in the next turn of the event loop.
        parent: The Qt parent.
    """

    gpuPresenceChanged = Signal(bool)
    chartsPainted = Signal()
    """Once, after :meth:`start_drawing`: the charts in view have been painted (the first of them
    has; at once when none is in view)."""

    def __init__(
        self,
        *,
        colors: ChartColors | None = None,
        window_minutes: float = 10,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        drawing: bool = True,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._drawing = drawing
        self._charts_painted = False
        self._colors = colors or chart_colors("light")
        self._window_s = window_minutes * 60.0
        self._interval_s = interval_s
        self._clock = clock
        self.docks: dict[str, ChartDock] = {spec.key: ChartDock(spec, self._colors) for spec in CHART_SPECS}
        self._gpu_shown: bool | None = None
        self._events: list[InstanceEvent] = []
        self._gpu_last_seen: float | None = None
        self._gpu_present_now = False
        self.redraw_count = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_INTERVAL_MS)
        self._timer.timeout.connect(self._on_timer)
        for dock in self.docks.values():
            dock.view.plotPainted.connect(self._announce_charts_painted)
            dock.view.on_shown = lambda view=dock.view: self._draw_now(view)
            # raising a dock's tab does not "show" it (it was never hidden), but this says so
            dock.visibilityChanged.connect(
                lambda visible, view=dock.view: (
                    self._draw_now(view) if visible and (view.dirty or not view.has_plot) else None
                )
            )
        self._update_gpu_pages()

    # -- access -----------------------------------------------------------------------------------

    def view(self, key: str) -> ChartView:
        """The chart ``key`` (see :data:`CHART_SPECS`)."""
        return self.docks[key].view

    def views(self) -> list[ChartView]:
        return [dock.view for dock in self.docks.values()]

    @property
    def window_minutes(self) -> float:
        return self._window_s / 60.0

    @property
    def has_gpu(self) -> bool:
        """Whether the GPU charts draw (an NVIDIA GPU reported now or within the window)."""
        if self._gpu_present_now:
            return True
        return self._gpu_last_seen is not None and self._gpu_last_seen >= self._clock() - self._window_s

    # -- feeding ----------------------------------------------------------------------------------

    def load_history(self, history: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]) -> None:
        """Fill the charts from saved samples (oldest first, timestamps in Unix ms); those seen draw at once.

        ``history`` is one list per column (``database.get_metrics_columns``: what the window is
        given at start-up, put into the curves without a dict per row) or a list of rows.

        Runs separated by a gap are drawn as separate lines. What is a gap depends on how far apart
        the rows were saved, not only on the interval now: history saved at 5 s is still a line after
        the interval was lowered to 1 s (see :func:`~llamadash.core.metrics.split_on_gaps`).
        """
        columns = history_columns(history)
        stamps = list(columns.get("timestamp") or ())
        count = len(stamps)
        if count and not all(map(operator.le, stamps, stamps[1:])):  # not oldest first: put it so
            order = sorted(range(count), key=stamps.__getitem__)
            columns = {key: [values[i] for i in order] for key, values in columns.items()}
            stamps = [stamps[i] for i in order]
        times = [stamp / 1000 for stamp in stamps]
        starts = run_starts(stamps, self._interval_s)
        runs = list(pairwise([*starts, count]))
        nothing = [None] * count
        for view in self.views():
            for key, buffer in view.buffers.items():
                values = columns.get(key) or nothing
                for start, end in runs:
                    buffer.add_break(times[start] - self._interval_s / 2)
                    buffer.extend(times[start:end], values[start:end])
        latest_gpu = _latest_reading(columns.get(column) for column in GPU_COLUMNS)
        if latest_gpu is not None:
            self._gpu_last_seen = times[latest_gpu]
        if runs:  # the first new sample is judged by the history's spacing too, where it was longer
            spacing_s = _spacing_s(stamps[max(starts[-1], count - HISTORY_SPACING_STEPS - 1) :])
            for view in self.views():
                for buffer in view.buffers.values():
                    buffer.interval_s = spacing_s
        self._update_gpu_pages()
        self.redraw_shown()

    def load_instance_history(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Fill the tokens/s chart from stored per-instance samples (oldest first): one curve a model.

        ``rows`` are ``instance_samples`` rows (``timestamp`` in Unix ms, ``model``,
        ``tokens_per_second``), as :func:`llamadash.core.database.get_instance_history` returns them.
        Each model's runs are split on its own gaps, as :meth:`load_history` splits the system's; the
        live figures of an instance of that name carry on its curve.
        """
        by_model: dict[str, list[Mapping[str, Any]]] = {}
        for row in rows:
            if row.get("model") and row.get("timestamp") is not None:
                by_model.setdefault(str(row["model"]), []).append(row)
        if not by_model:
            return
        view = self.view(TOKENS_CHART)
        for model, model_rows in by_model.items():
            buffer = view.add_series(model, model)
            runs = split_on_gaps(model_rows, self._interval_s)
            for run in runs:
                buffer.add_break(run[0]["timestamp"] / 1000 - self._interval_s / 2)
                for row in run:
                    buffer.append(row["timestamp"] / 1000, row.get("tokens_per_second"))
            if runs:
                stamps = [row["timestamp"] for row in runs[-1][-(HISTORY_SPACING_STEPS + 1) :]]
                buffer.interval_s = _spacing_s(stamps)
        view.dirty = True
        self.redraw_shown()

    def mark_time(self, ms: int | None) -> bool:
        """Mark a moment (Unix ms) on every chart, or (``None``) unmark; one moment at a time.

        Returns whether the moment lies within the time the charts show now (an older one is marked
        all the same, out of view).
        """
        seconds = None if ms is None else ms / 1000
        for view in self.views():
            view.mark_time(seconds)
        if seconds is None:
            return False
        start, end = self._span()
        return start <= seconds <= end

    @property
    def marked_time_ms(self) -> int | None:
        """The moment marked with :meth:`mark_time`, if any."""
        seconds = self.view(TOKENS_CHART).marked_time
        return None if seconds is None else round(seconds * 1000)

    def add_sample(self, sample: Sample | Mapping[str, Any]) -> None:
        """Add a new sample: the readouts show it at once, the plots within their redraw step."""
        row = _row_of(sample)
        t = row["timestamp"] / 1000
        gpu_reading = any(row.get(column) is not None for column in GPU_COLUMNS)
        gpus = getattr(sample, "gpus", None)
        self._gpu_present_now = bool(gpus) if gpus is not None else gpu_reading
        if gpu_reading:
            self._gpu_last_seen = t
        self._update_gpu_pages()
        for view in self.views():
            if view.spec.key != TOKENS_CHART:
                for key, buffer in view.buffers.items():
                    buffer.append(t, row.get(key), self._interval_s)
                    view.note_point(key)
                # The readout is what the status bar and the instances table show now: it must not
                # wait for the plot, whose redraw may be seconds away (see _on_timer).
                view.update_header()
        self._schedule()

    def add_instance_figures(self, name: str, tokens_per_s: float | None, t: float | None = None) -> None:
        """Add one instance's generation tokens/s (a new instance gets its own curve); its readout at once."""
        view = self.view(TOKENS_CHART)
        buffer = view.add_series(name, name)
        buffer.append(self._clock() if t is None else t, tokens_per_s, self._interval_s)
        view.note_point(name)
        view.update_header()
        self._schedule()

    def set_events(self, events: Iterable[InstanceEvent]) -> None:
        """Show these events as markers (those stored from earlier runs, on launch)."""
        for event in events:
            self.add_event(event, redraw=False)
        self._schedule()

    def add_event(self, event: InstanceEvent, *, redraw: bool = True) -> None:
        """Mark an instance event on every chart."""
        self._events.append(event)
        for view in self.views():
            view.add_marker(event)
            view.dirty = True
        if redraw:
            self._schedule()

    # -- settings ---------------------------------------------------------------------------------

    def set_window_minutes(self, minutes: float) -> None:
        """Show the last ``minutes`` from the next redraw on."""
        self._window_s = float(minutes) * 60.0
        self.redraw_shown()

    def set_interval(self, seconds: float) -> None:
        """The sampling interval changed: gaps are judged by the new one (a longer old one still counts
        for the step to the first sample taken at the new one, see :meth:`SeriesBuffer.append`)."""
        self._interval_s = float(seconds)

    def set_colors(self, colors: ChartColors) -> None:
        """Recolour every chart now."""
        self._colors = colors
        for view in self.views():
            view.set_colors(colors)

    # -- drawing ----------------------------------------------------------------------------------

    def _schedule(self, delay_ms: int = REDRAW_INTERVAL_MS) -> None:
        if not self._timer.isActive():
            self._timer.start(delay_ms)

    def _update_gpu_pages(self) -> None:
        no_gpu = not self.has_gpu
        for view in self.views():
            if view.spec.gpu and view.shows_no_gpu != no_gpu:
                view.set_no_gpu(no_gpu)
        if self._gpu_shown is not (not no_gpu):
            self._gpu_shown = not no_gpu
            self.gpuPresenceChanged.emit(self._gpu_shown)

    def _span(self) -> tuple[float, float]:
        end = self._clock()
        return end - self._window_s, end

    def flush(self) -> None:
        """Redraw every chart now, seen or not (on launch, after a setting changed; tests)."""
        self._timer.stop()
        start, end = self._span()
        self._events = [e for e in self._events if e.ms / 1000 >= start]
        self._update_gpu_pages()
        for view in self.views():
            view.redraw(start, end)
        self.redraw_count += 1

    def redraw_shown(self) -> None:
        """Redraw the charts that can be seen now; the others are drawn when they are shown."""
        self._timer.stop()
        if not self._drawing:
            for view in self.views():
                view.dirty = True
                view.update_header()
            return
        start, end = self._span()
        self._update_gpu_pages()
        drew = False
        for view in self.views():
            view.dirty = True
            view.update_header()
            if view.is_shown():
                view.redraw(start, end)
                drew = True
        if drew:
            self.redraw_count += 1

    def start_drawing(self) -> None:
        """Draw from now on (see the ``drawing`` argument); the charts in view are drawn at once.

        :attr:`chartsPainted` follows once they have been painted (at once when none is in view).
        """
        if not self._drawing:
            self._drawing = True
            self.redraw_shown()
            if not any(view.has_plot and view.is_shown() for view in self.views()):
                QTimer.singleShot(0, self, self._announce_charts_painted)

    def _announce_charts_painted(self) -> None:
        if not self._charts_painted and self._drawing:
            self._charts_painted = True
            self.chartsPainted.emit()

    def _draw_now(self, view: ChartView) -> None:
        if self._drawing:
            view.redraw(*self._span())

    def _on_timer(self) -> None:
        """The throttled redraw: plots that can be seen, once their time axis moved.

        A chart hidden behind a tab, closed or minimized is drawn when it is shown again. The readouts
        do not wait for this: :meth:`add_sample` updates them with each sample.
        """
        if not self._drawing:
            return
        start, end = self._span()
        self._events = [e for e in self._events if e.ms / 1000 >= start]
        self._update_gpu_pages()
        now = time.monotonic()
        waits = []
        drew = False
        for view in self.views():
            if not view.dirty:
                continue
            view.update_header()
            if not view.is_shown():
                continue
            wait = view.last_drawn + view.wait_s(self._window_s) - now
            if wait <= 0:
                view.redraw(start, end)
                drew = True
            else:
                waits.append(wait)
        if drew:
            self.redraw_count += 1
        if waits:  # come back for the plots whose time has not come yet
            self._schedule(max(REDRAW_INTERVAL_MS, round(min(waits) * 1000)))
