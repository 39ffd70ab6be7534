"""The Activity tab: every request the models answered, newest first, live; summaries; tokens per day.

The view reads the record of requests through a :class:`RequestsSource` (the
:mod:`llamadash.core.database` module in the application) and follows the instance manager's
``requestRecorded`` (model name, :class:`~llamadash.core.requests_log.RequestRecord`) for the
requests that finish while it is open. It owns no database connection and no process.

What keeps it fast with 100,000 stored requests:

* nothing is read until the tab is first shown (the window's start-up does not pay for it);
* the table is a :class:`RequestsModel` over a list of rows that Qt fills a page at a time
  (``canFetchMore``/``fetchMore``, :data:`PAGE_SIZE` rows per page) as the user scrolls;
* the summaries, which need every request of the last week, are computed on a worker thread and
  come back by signal (no widget is touched off the GUI thread); while requests arrive they are
  computed again at most every :data:`SUMMARY_REFRESH_MS` (longer where they take long), and
  only while the tab is seen;
* the daily tokens chart draws ``daily_totals``, one row a model and day, and live requests are
  added to today's bar, redrawn at most every :data:`DAILY_REDRAW_MS`.

The figures, cells and CSV columns are :mod:`llamadash.core.activity`'s, which the CLI shares.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from llamadash.core import activity
from llamadash.core.activity import NA, TABLE_COLUMNS, TIME_RANGES, ActivitySummary, TimeRange
from llamadash.ui.theme import ChartColors, chart_colors

__all__ = [
    "DAILY_DAYS",
    "EMPTY_TEXT",
    "NO_MATCH_TEXT",
    "PAGE_SIZE",
    "ActivityView",
    "RequestsModel",
    "RequestsSource",
]

_log = logging.getLogger(__name__)

#: Rows read from the database at a time (the first page opens the tab; scrolling reads more).
PAGE_SIZE = 500
#: The shortest time between two summaries while requests arrive.
SUMMARY_REFRESH_MS = 5000
#: ... and at least this many times as long as the last one took (it reads a week of requests: on
#: 100,000 of them about a second of a core), so a busy server costs a few % of a core at most.
SUMMARY_REFRESH_FACTOR = 20
#: The shortest time between two redraws of the daily chart while requests arrive.
DAILY_REDRAW_MS = 1000
#: How many days the daily tokens chart shows (today included).
DAILY_DAYS = 30

EMPTY_TEXT = (
    "<b>No requests yet</b><br><br>"
    "Requests appear here as your models answer them: start a model and send it a request — "
    "llama-server's log is read as it runs."
)
NO_MATCH_TEXT = "No request matches these filters: choose another model or a longer time."
ALL_MODELS = "All models"

#: The summary table's columns: header, and how a summary fills it.
_SUMMARY_COLUMNS: tuple[tuple[str, Callable[[ActivitySummary], str]], ...] = (
    ("Model", lambda s: s.model or ALL_MODELS),
    ("Period", lambda s: s.period.label),
    ("Requests", lambda s: activity.figure_text(s.requests)),
    (
        "Tokens in (cached)",
        # as the table's Prompt (cached) column writes it
        lambda s: activity.cell_text(
            {"prompt_tokens": s.prompt_tokens, "cached_tokens": s.cached_tokens}, "prompt"
        ),
    ),
    ("Tokens out", lambda s: activity.figure_text(s.generated_tokens)),
    ("Median t/s", lambda s: activity.figure_text(s.median_generation_tps, 1)),
    ("p95 t/s", lambda s: activity.figure_text(s.p95_generation_tps, 1)),
    ("Median ms", lambda s: activity.figure_text(s.median_latency_ms)),
    ("p95 ms", lambda s: activity.figure_text(s.p95_latency_ms)),
)


class RequestsSource(Protocol):
    """Where the stored requests are read (the :mod:`llamadash.core.database` functions)."""

    def get_requests(
        self,
        *,
        model: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]: ...

    def count_requests(
        self, *, model: str | None = None, since_ms: int | None = None, until_ms: int | None = None
    ) -> int: ...

    def get_daily_totals(
        self, *, model: str | None = None, since_day: str | None = None
    ) -> list[dict[str, Any]]: ...


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _local_day(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ms / 1000))


def row_of_record(name: str, record: Any) -> dict[str, Any]:
    """A live request (a ``RequestRecord``, or a row already) as a stored row, ``model`` set to ``name``."""
    if isinstance(record, Mapping):
        row = dict(record)
    else:
        from llamadash.core.database import requests_row

        row = requests_row(record)
    if not row.get("model"):
        row["model"] = name
    return row


class RequestsModel(QAbstractTableModel):
    """The requests table: a list of rows, newest first, read a page at a time.

    Args:
        source: Where the rows are read.
        page_size: Rows a page.

    :meth:`load` reads the first page for a filter; Qt asks for the next (``fetchMore``) as the view
    scrolls near the end. :meth:`prepend` adds a live request at the top.
    """

    ROW_ROLE = Qt.ItemDataRole.UserRole + 1
    """The row's dict (``data(index, ROW_ROLE)``)."""

    def __init__(self, source: RequestsSource, *, page_size: int = PAGE_SIZE, parent: QObject | None = None):
        super().__init__(parent)
        self.source = source
        self.page_size = page_size
        self.rows: list[Mapping[str, Any]] = []
        self.model_filter: str | None = None
        self.since_ms: int | None = None
        self._more = False
        self.pages_read = 0
        self._muted = QPalette().color(QPalette.ColorRole.PlaceholderText)

    # -- reading ------------------------------------------------------------------------------------

    def load(self, model: str | None = None, since_ms: int | None = None) -> None:
        """Show the newest page of the requests of ``model`` (``None``: all) since ``since_ms``."""
        self.beginResetModel()
        self.model_filter, self.since_ms = model, since_ms
        self.rows = []
        self.pages_read = 0
        self._more = True
        try:
            self.rows = self._read_page()
        finally:
            self.endResetModel()

    def _read_page(self) -> list[Mapping[str, Any]]:
        """The next page, older than the rows held (rows sharing the oldest time are not repeated)."""
        oldest = self.rows[-1].get("finished_at") if self.rows else None
        # until_ms is exclusive: ask up to the oldest millisecond held included, so that requests
        # of that very millisecond beyond the page are not skipped, and drop those already held
        until = None if oldest is None else int(oldest) + 1
        page: list[Mapping[str, Any]] = list(
            self.source.get_requests(
                model=self.model_filter, since_ms=self.since_ms, until_ms=until, limit=self.page_size
            )
        )
        self.pages_read += 1
        if len(page) < self.page_size:
            self._more = False
        if oldest is not None:
            held = {r.get("id") for r in self.rows if r.get("finished_at") == oldest}
            page = [r for r in page if r.get("finished_at") != oldest or r.get("id") not in held]
            if not page:
                self._more = False
        return page

    def canFetchMore(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and self._more

    def fetchMore(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> None:  # noqa: B008
        if parent.isValid() or not self._more:
            return
        first = len(self.rows)
        try:
            page = self._read_page()
        except Exception as exc:  # the database went away: show what is held
            _log.warning("cannot read more requests: %s", exc)
            self._more = False
            return
        if not page:
            return
        self.beginInsertRows(QModelIndex(), first, first + len(page) - 1)
        self.rows.extend(page)
        self.endInsertRows()

    def prepend(self, row: Mapping[str, Any]) -> None:
        """A new request at the top."""
        self.beginInsertRows(QModelIndex(), 0, 0)
        self.rows.insert(0, row)
        self.endInsertRows()

    def accepts(self, row: Mapping[str, Any]) -> bool:
        """Whether a new request passes the filter shown."""
        if self.model_filter is not None and row.get("model") != self.model_filter:
            return False
        finished = row.get("finished_at")
        return self.since_ms is None or finished is None or finished >= self.since_ms

    def row(self, index: int) -> Mapping[str, Any]:
        return self.rows[index]

    # -- the Qt model -------------------------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(TABLE_COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(TABLE_COLUMNS):
            return None
        column = TABLE_COLUMNS[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.header
        if role == Qt.ItemDataRole.ToolTipRole:
            return column.tooltip
        if role == Qt.ItemDataRole.TextAlignmentRole and column.numeric:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        row = self.rows[index.row()]
        column = TABLE_COLUMNS[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return activity.cell_text(row, column.key)
        if role == Qt.ItemDataRole.TextAlignmentRole and column.numeric:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and activity.cell_text(row, column.key) == NA:
            return self._muted
        if role == Qt.ItemDataRole.ToolTipRole and column.key == "prompt":
            return "Prompt tokens evaluated (tokens reused from the cache)"
        if role == self.ROW_ROLE:
            return row
        return None


class _SummaryJob(QObject):
    """Carries a summary from the worker thread to the view."""

    done = Signal(int, object)  # generation, list[ActivitySummary] (or an Exception)

    def __init__(self) -> None:
        super().__init__()
        self.seconds: float | None = None


def short_count(value: float) -> str:
    """A count for an axis: 950, 12k, 1.5M."""
    size = abs(value)
    if size >= 1_000_000:
        return f"{value / 1_000_000:.3g}M"
    if size >= 1000:
        return f"{value / 1000:.3g}k"
    return f"{value:.0f}"


class _CountAxis(pg.AxisItem):
    """A value axis that writes 600k rather than 600000 (the axis stays narrow)."""

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        return [short_count(value * scale) for value in values]


class DailyTokensChart(QWidget):
    """Prompt and generated tokens per day, stacked bars over the last :data:`DAILY_DAYS` days.

    The bars are made once and given new heights (``setOpts``); the plot is redrawn at most every
    :data:`DAILY_REDRAW_MS` however fast requests arrive.
    """

    def __init__(self, colors: ChartColors, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._colors = colors
        self.totals: dict[str, list[int]] = {}  # day -> [prompt, generated]
        self.days: list[str] = []
        self.legend_label = QLabel()
        self.legend_label.setObjectName("dailyLegend")
        self.legend_label.setTextFormat(Qt.TextFormat.RichText)
        self.plot_widget = pg.PlotWidget(enableMenu=False, axisItems={"left": _CountAxis(orientation="left")})
        plot = self.plot_widget.getPlotItem()
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.getAxis("left").setWidth(44)
        self.generated_bars = pg.BarGraphItem(x=[], height=[], width=0.7)
        self.prompt_bars = pg.BarGraphItem(x=[], height=[], y0=[], width=0.7)
        plot.addItem(self.generated_bars)
        plot.addItem(self.prompt_bars)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DAILY_REDRAW_MS)
        self._timer.timeout.connect(self.redraw)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.legend_label)
        layout.addWidget(self.plot_widget, 1)
        self.set_colors(colors)

    def set_totals(self, rows: Iterable[Mapping[str, Any]], today: date | None = None) -> None:
        """Show these ``daily_totals`` rows (summed over models), over the days up to ``today``."""
        today = today or date.today()
        self.days = [(today - timedelta(days=n)).isoformat() for n in range(DAILY_DAYS - 1, -1, -1)]
        self.totals = {day: [0, 0] for day in self.days}
        for row in rows:
            entry = self.totals.get(str(row.get("day")))
            if entry is not None:
                entry[0] += int(row.get("prompt_tokens") or 0)
                entry[1] += int(row.get("generated_tokens") or 0)
        self.redraw()

    def add_request(self, row: Mapping[str, Any]) -> None:
        """Add a live request to its day's bar (drawn within :data:`DAILY_REDRAW_MS`)."""
        finished = row.get("finished_at")
        entry = self.totals.get(_local_day(int(finished))) if finished is not None else None
        if entry is None:
            return
        entry[0] += int(row.get("prompt_tokens") or 0)
        entry[1] += int(row.get("generated_tokens") or 0)
        if not self._timer.isActive():
            self._timer.start()

    def redraw(self) -> None:
        self._timer.stop()
        x = np.arange(len(self.days), dtype=float)
        prompt = np.array([self.totals[d][0] for d in self.days], dtype=float)
        generated = np.array([self.totals[d][1] for d in self.days], dtype=float)
        self.generated_bars.setOpts(x=x, height=generated, width=0.7)
        self.prompt_bars.setOpts(x=x, height=prompt, y0=generated, width=0.7)
        plot = self.plot_widget.getPlotItem()
        top = float((prompt + generated).max()) if len(x) else 0.0
        plot.setYRange(0, max(top * 1.1, 10.0), padding=0)
        plot.setXRange(-0.6, max(len(x) - 0.4, 0.4), padding=0)
        # a date every week, counted back from today, so today is always labelled
        ticks = [(float(i), self.days[i][5:]) for i in range(len(self.days) - 1, -1, -7)]
        plot.getAxis("bottom").setTicks([ticks, []])

    def set_colors(self, colors: ChartColors) -> None:
        self._colors = colors
        self.plot_widget.setBackground(colors.background)
        plot = self.plot_widget.getPlotItem()
        for name in ("left", "bottom"):
            axis = plot.getAxis(name)
            axis.setPen(pg.mkPen(colors.foreground))
            axis.setTextPen(pg.mkPen(colors.foreground))
        plot.showGrid(x=False, y=True, alpha=colors.grid_alpha)
        generated, prompt = colors.series[0], colors.series[1 % len(colors.series)]
        self.generated_bars.setOpts(brush=pg.mkBrush(generated), pen=pg.mkPen(None))
        self.prompt_bars.setOpts(brush=pg.mkBrush(prompt), pen=pg.mkPen(None))
        self.legend_label.setText(
            f"<b>Tokens per day</b> <span style='color:{colors.muted}'>(last {DAILY_DAYS} days)</span>"
            f"&nbsp;&nbsp;<span style='color:{generated}'>■</span>&nbsp;generated"
            f"&nbsp;&nbsp;<span style='color:{prompt}'>■</span>&nbsp;prompt"
        )

    def day_total(self, day: str) -> tuple[int, int]:
        """The (prompt, generated) tokens of ``day`` ("YYYY-MM-DD") as drawn."""
        prompt, generated = self.totals.get(day, [0, 0])
        return prompt, generated


class ActivityView(QWidget):
    """The Activity tab.

    Args:
        source: Where the stored requests are read.
        model_names: The library's model names (offered in the model filter with those that have
            requests).
        colors: The theme's chart colours.
        clock: The time in Unix ms (tests).
    """

    requestSelected = Signal(object)
    """The user selected a request: its ``finished_at`` (Unix ms), or ``None`` when none is selected."""

    summaryUpdated = Signal()
    """The summary table shows new figures."""

    exported = Signal(str, int)
    """Requests were written to a CSV file (path, count)."""

    def __init__(
        self,
        source: RequestsSource,
        *,
        model_names: Callable[[], Iterable[str]] = tuple,
        colors: ChartColors | None = None,
        clock: Callable[[], int] = _now_ms,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("activityView")
        self.source = source
        self._model_names = model_names
        self._clock = clock
        self.loaded = False
        self.total_count = 0
        self.summaries: list[ActivitySummary] = []
        self._summary_generation = 0
        self._summary_shown = 0
        self._summary_stale = False
        self.summary_seconds: float | None = None
        """How long the last summary took on its thread."""
        self._summary_jobs: list[_SummaryJob] = []
        self.manager: Any | None = None

        self._colors = colors or chart_colors("light")
        self.built = False
        """Whether the widgets are made (by :meth:`ensure_built`: the window asks in a turn of its own after
        the tab is made; the first show does, when it comes first)."""
        # As small as the Instances tab may be: the window's minimum size must not grow with this
        # tab (a narrow window clips the filter bar instead).
        self.setMinimumSize(160, 120)
        self._summary_timer = QTimer(self)
        self._summary_timer.setSingleShot(True)
        self._summary_timer.setInterval(SUMMARY_REFRESH_MS)
        self._summary_timer.timeout.connect(self.refresh_summary)

    def ensure_built(self) -> None:
        """Make the widgets, once (the first show does; so does anything that needs them)."""
        if self.built:
            return
        self.built = True
        self.model_combo = QComboBox()
        self.model_combo.setObjectName("activityModel")
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.model_combo.addItem(ALL_MODELS, None)
        self.range_combo = QComboBox()
        self.range_combo.setObjectName("activityRange")
        for time_range in TIME_RANGES:
            self.range_combo.addItem(time_range.label, time_range.key)
        self.range_combo.setCurrentIndex(self.range_combo.findData("day"))
        self.count_label = QLabel("")
        self.count_label.setObjectName("activityCount")
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setObjectName("exportCsv")
        self.export_button.setToolTip("Write the requests shown (every one the filters match) to a CSV file")
        self.export_button.clicked.connect(self.ask_export)
        bar = QHBoxLayout()
        bar.setContentsMargins(6, 4, 6, 0)
        bar.addWidget(QLabel("Model:"))
        bar.addWidget(self.model_combo)
        bar.addSpacing(12)
        bar.addWidget(QLabel("Time:"))
        bar.addWidget(self.range_combo)
        bar.addSpacing(12)
        bar.addWidget(self.count_label, 1)
        bar.addWidget(self.export_button)

        self.model = RequestsModel(self.source, parent=self)
        self.table = QTableView()
        self.table.setObjectName("requestsTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        # fixed row heights and column widths: no measuring of 100k rows
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        widths = {"time": 150, "model": 190, "slot": 44, "prompt": 120, "status": 110}
        metrics = header.fontMetrics()
        for number, column in enumerate(TABLE_COLUMNS):
            room = metrics.horizontalAdvance(column.header) + 24  # the header's text is never cut
            header.resizeSection(number, max(widths.get(column.key, 96), room))
        self.table.selectionModel().currentRowChanged.connect(self._on_current_row)

        self.empty_label = QLabel(EMPTY_TEXT)
        self.empty_label.setObjectName("activityEmpty")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setMargin(24)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.table)
        self.stack.addWidget(self.empty_label)

        self.summary_table = QTableWidget(0, len(_SUMMARY_COLUMNS))
        self.summary_table.setObjectName("activitySummary")
        self.summary_table.setHorizontalHeaderLabels([header for header, _fill in _SUMMARY_COLUMNS])
        self.summary_table.verticalHeader().setVisible(False)
        self.summary_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.summary_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.summary_table.setWordWrap(False)
        self.summary_table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 4)
        self.summary_table.horizontalHeader().setStretchLastSection(True)
        self.summary_table.setToolTip(
            "Per model: requests, tokens in (evaluated, and reused from the cache) and out, and the median and "
            "95th percentile of the generation speed and of the latency (the server's total ms)"
        )
        self.summary_title = QLabel("<b>Summary</b>")
        summary_box = QWidget()
        summary_layout = QVBoxLayout(summary_box)
        summary_layout.setContentsMargins(0, 0, 0, 0)
        summary_layout.setSpacing(2)
        summary_layout.addWidget(self.summary_title)
        summary_layout.addWidget(self.summary_table, 1)

        self.daily_chart = DailyTokensChart(self._colors)
        self.daily_chart.setObjectName("dailyTokens")
        self.bottom = QSplitter(Qt.Orientation.Horizontal)
        self.bottom.addWidget(summary_box)
        self.bottom.addWidget(self.daily_chart)
        self.bottom.setStretchFactor(0, 3)
        self.bottom.setStretchFactor(1, 2)
        self.bottom.setSizes([680, 320])  # the summary's nine columns first
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("activitySplitter")
        self.splitter.addWidget(self.stack)
        self.splitter.addWidget(self.bottom)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([400, 330])  # the summary's lines of 3 models, and the table the rest

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 4)
        layout.addLayout(bar)
        layout.addWidget(self.splitter, 1)

        self.model_combo.currentIndexChanged.connect(lambda _i: self.reload())
        self.range_combo.currentIndexChanged.connect(lambda _i: self.reload())

    # -- following the manager ----------------------------------------------------------------------

    def set_manager(self, manager: Any) -> None:
        """Follow ``manager.requestRecorded`` (model name, record): each request appears as it ends."""
        if manager is self.manager:
            return
        if self.manager is not None:
            self.manager.requestRecorded.disconnect(self.add_record)
        self.manager = manager
        manager.requestRecorded.connect(self.add_record)

    def add_record(self, name: str, record: Any) -> None:
        """A request just ended: at the top of the table where the filters let it, and in the totals."""
        if not self.loaded:
            return  # read with the rest when the tab is first shown
        row = row_of_record(name, record)
        model = row.get("model")
        if model and self.model_combo.findData(model) < 0:
            self.model_combo.addItem(str(model), model)
        if not self.model.accepts(row):
            return
        self.model.prepend(row)
        self.total_count += 1
        self._show_count()
        self.daily_chart.add_request(row)
        if not self.isVisible():
            self._summary_stale = True  # summarized again when the tab is shown
        elif not self._summary_timer.isActive():
            self._summary_timer.start()

    # -- reading ------------------------------------------------------------------------------------

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if not self.loaded:
            self.ensure_built()
            self.reload()
        elif self._summary_stale:
            self.refresh_summary()

    @property
    def model_filter(self) -> str | None:
        """The model shown (``None``: every model)."""
        data = self.model_combo.currentData()
        return None if data is None else str(data)

    @property
    def time_range(self) -> TimeRange:
        key = self.range_combo.currentData()
        return next(r for r in TIME_RANGES if r.key == key)

    def set_filters(self, model: str | None = None, range_key: str | None = None) -> None:
        """Choose the model (``None``: all) and the time range (``hour``, ``day``, ``week``, ``all``)."""
        self.ensure_built()
        if model is not None and self.model_combo.findData(model) < 0:
            self.model_combo.addItem(model, model)
        self.model_combo.blockSignals(True)
        self.model_combo.setCurrentIndex(0 if model is None else self.model_combo.findData(model))
        self.model_combo.blockSignals(False)
        if range_key is not None:
            self.range_combo.blockSignals(True)
            self.range_combo.setCurrentIndex(self.range_combo.findData(range_key))
            self.range_combo.blockSignals(False)
        self.reload()

    def reload(self) -> None:
        """Read the newest page for the filters, the count, the daily totals; the summary follows."""
        self.ensure_built()
        self.loaded = True
        model, since = self.model_filter, self.time_range.since_ms(self._clock())
        try:
            self.model.load(model, since)
            self.total_count = int(self.source.count_requests(model=model, since_ms=since))
            since_day = (date.today() - timedelta(days=DAILY_DAYS - 1)).isoformat()
            daily = self.source.get_daily_totals(model=model, since_day=since_day)
            if model is None:
                self._offer_models(r.get("model") for r in self.source.get_daily_totals())
        except Exception as exc:  # a database that cannot be read: say so, keep the window
            _log.warning("cannot read the requests: %s", exc)
            self.count_label.setText(f"Cannot read the requests: {exc}")
            return
        self.daily_chart.set_totals(daily)
        self._show_count()
        self.requestSelected.emit(None)  # the selection went with the rows: its mark goes too
        self.refresh_summary()

    def _offer_models(self, with_requests: Iterable[Any]) -> None:
        names = {str(n) for n in with_requests if n}
        try:
            names.update(str(n) for n in self._model_names())
        except Exception as exc:
            _log.debug("no model names: %s", exc)
        known = {self.model_combo.itemData(i) for i in range(1, self.model_combo.count())}
        for name in sorted(names - known):
            self.model_combo.addItem(name, name)

    def _show_count(self) -> None:
        has_rows = self.model.rowCount() > 0
        if not has_rows:
            filtered = self.model_filter is not None or self.time_range.span_ms is not None
            anything = filtered and self._any_request()
            self.empty_label.setText(NO_MATCH_TEXT if anything else EMPTY_TEXT)
        self.stack.setCurrentIndex(0 if has_rows else 1)
        self.export_button.setEnabled(has_rows)
        noun = "request" if self.total_count == 1 else "requests"
        self.count_label.setText(f"{self.total_count:,} {noun}")

    def _any_request(self) -> bool:
        try:
            return bool(self.source.count_requests())
        except Exception:
            return False

    @property
    def shows_empty_state(self) -> bool:
        """Whether the "no requests" text is shown instead of the table."""
        return self.stack.currentIndex() == 1

    # -- summary ------------------------------------------------------------------------------------

    def refresh_summary(self) -> None:
        """Summarize the last week of the model(s) shown, on a worker thread; the table follows."""
        self._summary_timer.stop()
        self._summary_stale = False
        self._summary_generation += 1
        generation, model, now = self._summary_generation, self.model_filter, self._clock()
        since = now - max(p.span_ms or 0 for p in activity.SUMMARY_PERIODS)
        job = _SummaryJob()
        job.done.connect(self._on_summary)
        self._summary_jobs.append(job)  # kept alive until it has answered
        source = self.source

        def work() -> None:
            started = time.perf_counter()
            try:
                rows = source.get_requests(model=model, since_ms=since)
                result: Any = activity.summarize(rows, now_ms=now)
            except Exception as exc:  # the database closed under it: nothing to show
                result = exc
            job.seconds = time.perf_counter() - started
            job.done.emit(generation, result)

        threading.Thread(target=work, name="llamadash-activity-summary", daemon=True).start()

    def _on_summary(self, generation: int, result: Any) -> None:
        job = self.sender()
        self._summary_jobs = [j for j in self._summary_jobs if j is not job]
        seconds = getattr(job, "seconds", None)
        if seconds is not None:
            self.summary_seconds = seconds
            self._summary_timer.setInterval(
                max(SUMMARY_REFRESH_MS, round(seconds * 1000 * SUMMARY_REFRESH_FACTOR))
            )
        if generation != self._summary_generation:
            return  # a newer one is on its way
        self._summary_shown = generation
        if isinstance(result, Exception):
            _log.warning("cannot summarize the requests: %s", result)
            return
        self.summaries = list(result)
        self._fill_summary(self.summaries)
        self.summaryUpdated.emit()

    @property
    def summary_pending(self) -> bool:
        """Whether a summary is being computed (the table shows an older one, or none)."""
        return self._summary_shown != self._summary_generation

    def _fill_summary(self, summaries: Sequence[ActivitySummary]) -> None:
        table = self.summary_table
        table.setRowCount(len(summaries))
        muted = self.palette().color(QPalette.ColorRole.PlaceholderText)
        previous: str | None = None
        for row, summary in enumerate(summaries):
            for column, (_header, fill) in enumerate(_SUMMARY_COLUMNS):
                text = fill(summary)
                if column == 0:  # the model once, on its first period's line
                    text, previous = ("" if text == previous else text), text
                item = QTableWidgetItem(text)
                if column >= 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if text == NA or (column >= 2 and summary.requests == 0):
                    item.setForeground(muted)
                table.setItem(row, column, item)
        table.resizeColumnsToContents()

    def summary_text(self, row: int, header: str) -> str:
        """The summary table's text at ``row`` under ``header`` (tests)."""
        column = [h for h, _fill in _SUMMARY_COLUMNS].index(header)
        item = self.summary_table.item(row, column)
        return "" if item is None else item.text()

    # -- selection, export ----------------------------------------------------------------------------

    def _on_current_row(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            self.requestSelected.emit(None)
            return
        finished = self.model.row(current.row()).get("finished_at")
        self.requestSelected.emit(None if finished is None else int(finished))

    def select_row(self, row: int) -> None:
        """Select the table's ``row`` (as a click would)."""
        self.table.setCurrentIndex(self.model.index(row, 0))

    def export_csv(self, path: Path | str) -> int:
        """Write every request the filters match, newest first, to ``path`` as CSV; returns the count."""
        self.ensure_built()
        model, since = self.model_filter, self.time_range.since_ms(self._clock())
        rows = self.source.get_requests(model=model, since_ms=since)
        with open(path, "w", encoding="utf-8", newline="") as file:
            count = activity.write_csv(rows, file)
        self.exported.emit(str(path), count)
        return count

    def ask_export(self) -> None:
        """Ask where to save the CSV file, then write it (Export CSV…)."""
        suggested = f"llamadash-requests-{time.strftime('%Y%m%d-%H%M')}.csv"
        path, _filter = QFileDialog.getSaveFileName(
            self, "Export requests as CSV", str(Path.home() / suggested), "CSV files (*.csv);;All files (*)"
        )
        if not path:
            return
        try:
            count = self.export_csv(path)
        except Exception as exc:
            self.count_label.setText(f"Could not export: {exc}")
            return
        self.count_label.setText(f"{self.total_count:,} requests · exported {count:,} to {Path(path).name}")

    def set_colors(self, colors: ChartColors) -> None:
        """Recolour the daily chart (the table follows the application palette)."""
        self._colors = colors
        if not self.built:
            return
        self.daily_chart.set_colors(colors)
        self.model._muted = QPalette().color(QPalette.ColorRole.PlaceholderText)
