"""The three performance dialogs: Check fit, Benchmark, Find the fastest settings.

They show what llama.cpp's tools said (through :mod:`llamadash.services.perf_runner`) and own no
process: the services run the tools and report by signal. Every figure is the tools'; a missing
one reads "not reported".
"""

from __future__ import annotations

import datetime as dt
import html
import statistics
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from llamadash.core.params import COLUMN, load_schema
from llamadash.core.perf.bench import (
    MAX_SWEEP_RUNS,
    BenchError,
    BenchResult,
    best_index,
    parse_sweep,
    sweep_grid,
)
from llamadash.core.perf.fit import gib
from llamadash.services.perf_runner import BenchRunner, FitCheck

__all__ = ["BenchDialog", "FitDialog", "TunerDialog"]

#: The tuner's parameters offered first, with values worth trying (the user edits them).
TUNER_SUGGESTIONS: tuple[tuple[str, str], ...] = (
    (COLUMN.threads, "1,2"),
    (COLUMN.flash_attn, "on,off"),
    (COLUMN.ubatch_size, "128,256,512"),
    (COLUMN.batch_size, "512,2048"),
    (COLUMN.cache_type_k, "f16,q8_0"),
    (COLUMN.cache_type_v, "f16,q8_0"),
    (COLUMN.gpu_layers, "0,all"),
    (COLUMN.n_cpu_moe, "0,8"),
    (COLUMN.mmap, "on,off"),
)
OBJECTIVE_LABELS = (("gen", "Generation speed"), ("prompt", "Prompt speed"), ("mix", "Both (half and half)"))
NA = "not reported"


def _cell(text: str, *, numeric: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    if numeric:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


def _speed(mean: float | None, sd: float | None) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:,.1f} ± {sd or 0:,.1f}"


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def _params_text(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={_value_text(v)}" for k, v in sorted(params.items())) or "defaults"


def _table(headers: Sequence[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(list(headers))
    table.verticalHeader().hide()
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setAlternatingRowColors(True)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    return table


# ------------------------------------------------------------------------------------------------
# Check fit


class FitDialog(QDialog):
    """Asks llama-fit-params about one model's configuration and shows its answer."""

    def __init__(
        self,
        model: Mapping[str, Any],
        binary: str | None,
        cache_dir: Path | None,
        parent: QWidget | None = None,
        *,
        start: bool = True,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("fitDialog")
        self._model = dict(model)
        self._binary = binary
        self._cache_dir = cache_dir
        self.setWindowTitle(f"Check fit — {model.get('name')}")
        self.check = FitCheck(self)
        self.check.done.connect(self._on_done)
        self.check.failed.connect(self._on_failed)
        self.check.cancelled.connect(self._on_cancelled)
        self.check.busyChanged.connect(self._on_busy)

        self.verdict_label = QLabel("Asking llama-fit-params\u2026")
        self.verdict_label.setObjectName("fitVerdict")
        self.verdict_label.setWordWrap(True)
        self.verdict_label.setTextFormat(Qt.TextFormat.RichText)
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)  # busy: the tool says nothing until it is done
        self.busy_bar.setTextVisible(False)
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.memory_table = _table(["Device", "Model [MiB]", "Context [MiB]", "Compute [MiB]", "Total [MiB]"])
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.check.cancel)
        self.again_button = QPushButton("Check again")
        self.again_button.clicked.connect(lambda: self.start(refresh=True))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.addButton(self.again_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.ActionRole)

        layout = QVBoxLayout(self)
        layout.addWidget(self.verdict_label)
        layout.addWidget(self.busy_bar)
        layout.addWidget(self.details)
        layout.addWidget(
            QLabel("Memory per device, for the fitted settings (from llama-fit-params --fit-print):")
        )
        layout.addWidget(self.memory_table, 1)
        layout.addWidget(buttons)
        self.resize(720, 420)
        self.outcome: Any = None
        self._on_busy(False)
        if start:
            self.start()

    def start(self, *, refresh: bool = False) -> None:
        self.verdict_label.setText("Asking llama-fit-params\u2026")
        self.check.start(self._model, self._binary, self._cache_dir, refresh=refresh)

    def _on_busy(self, busy: bool) -> None:
        self.busy_bar.setVisible(busy)
        self.cancel_button.setEnabled(busy)
        self.again_button.setEnabled(not busy)

    def _on_done(self, outcome: Any) -> None:
        self.outcome = outcome
        report = outcome.report
        self.verdict_label.setText(f"<b style='font-size:13pt'>{html.escape(report.verdict)}</b>")
        lines = []
        if report.fitted_args:
            lines.append(f"Fitted arguments: {' '.join(report.fitted_args)}")
        if report.projected_used is not None:
            where = "system memory" if report.memory_kind == "system" else "free device memory"
            lines.append(
                f"Needs {report.projected_used:,} MiB of {report.available:,} MiB {where}"
                + (f", keeping {report.margin:,} MiB free" if report.margin is not None else "")
            )
        if report.context_from is not None and report.context_to is not None:
            lines.append(f"Context: cut from {report.context_from:,} to {report.context_to:,} tokens")
        elif report.context_kept:
            lines.append(f"Context: {report.context_kept}")
        for placement in report.placements:
            lines.append(f"{placement.device}: {placement.layers} layers, {gib(placement.used)} used")
        lines += [device.describe() for device in report.rpc_devices]  # the model's RPC workers
        lines += [f"Note: {note}" for note in outcome.notes]
        if outcome.cached:
            lines.append("(The cached answer for this model file, configuration and build.)")
        self.details.setText("\n".join(lines))
        self.memory_table.setRowCount(0)
        for device in report.devices:
            row = self.memory_table.rowCount()
            self.memory_table.insertRow(row)
            cells = [device.model, device.context, device.compute, device.needed]
            self.memory_table.setItem(row, 0, _cell(device.name))
            for column, value in enumerate(cells, 1):
                self.memory_table.setItem(
                    row, column, _cell(f"{value:,}" if value is not None else NA, numeric=True)
                )

    def _on_failed(self, message: str) -> None:
        self.verdict_label.setText("<b>The fit could not be checked.</b>")
        self.details.setText(message)

    def _on_cancelled(self) -> None:
        self.verdict_label.setText("<b>Cancelled</b>: llama-fit-params was stopped; nothing was kept.")

    def done(self, result: int) -> None:  # closing stops the tool first
        self.check.wait()
        super().done(result)


# ------------------------------------------------------------------------------------------------
# Benchmark


class ResultsChart(pg.PlotWidget):
    """A bar per stored result: generation (and prompt) tokens/s, comparable across configurations."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("benchChart")
        self.setBackground(None)
        self.showGrid(y=True, alpha=0.3)
        self.setLabel("left", "tokens/s")
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self._bars: list[pg.BarGraphItem] = []
        self.addLegend(offset=(-10, 10))

    def set_results(self, rows: Sequence[Mapping[str, Any]], key: str) -> None:
        """One bar per result (oldest left) of ``key`` (``tg_tps_mean`` or ``pp_tps_mean``)."""
        for bar in self._bars:
            self.removeItem(bar)
        self._bars = []
        ordered = list(reversed(rows))
        values = [float(r[key]) if r.get(key) is not None else 0.0 for r in ordered]
        if not ordered:
            return
        name = "generation (tg)" if key.startswith("tg") else "prompt (pp)"
        bar = pg.BarGraphItem(
            x=list(range(1, len(values) + 1)), height=values, width=0.6, brush="#3d7ebf", name=name
        )
        self.addItem(bar)
        self._bars.append(bar)
        axis = self.getAxis("bottom")
        axis.setTicks([[(i + 1, f"#{r['id']}") for i, r in enumerate(ordered)]])
        self.setXRange(0.3, len(values) + 0.7, padding=0)
        self.setYRange(0, max(values) * 1.15 if max(values) > 0 else 1, padding=0)


class BenchDialog(QDialog):
    """Runs llama-bench on one model (progress, cancel) and shows its stored results."""

    def __init__(
        self,
        model: Mapping[str, Any],
        binary: str | None,
        parent: QWidget | None = None,
        *,
        build_label: str | None = None,
        results: Callable[[str], list[dict[str, Any]]] | None = None,
        running: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("benchDialog")
        self._model = dict(model)
        self._binary = binary
        self._build = build_label
        self._results = results or _stored_results
        self._running = running or (lambda _name: False)
        name = str(model.get("name"))
        self.setWindowTitle(f"Benchmark — {name}")
        self.runner = BenchRunner(self)
        self.runner.progress.connect(self._on_progress)
        self.runner.resultReady.connect(self._on_result)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        self.runner.finished.connect(self._on_finished)
        self.runner.busyChanged.connect(self._on_busy)

        self.pp_box = QSpinBox()
        self.pp_box.setRange(0, 65536)
        self.pp_box.setValue(512)
        self.tg_box = QSpinBox()
        self.tg_box.setRange(0, 65536)
        self.tg_box.setValue(128)
        self.reps_box = QSpinBox()
        self.reps_box.setRange(1, 100)
        self.reps_box.setValue(3)
        form = QHBoxLayout()
        for label, box in (("Prompt tokens (pp)", self.pp_box), ("Generated tokens (tg)", self.tg_box)):
            form.addWidget(QLabel(label))
            form.addWidget(box)
        form.addWidget(QLabel("Repetitions"))
        form.addWidget(self.reps_box)
        form.addStretch(1)
        self.run_button = QPushButton("Run benchmark")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.runner.cancel)
        form.addWidget(self.run_button)
        form.addWidget(self.cancel_button)
        self.progress_bar = QProgressBar()
        self.progress_bar.setFormat("%v of %m tests")
        self.status_label = QLabel(
            "pp: prompt processing, tokens read per second. tg: text generation, tokens written per second "
            "(mean ± standard deviation over the repetitions)."
        )
        self.status_label.setWordWrap(True)
        self.table = _table(["#", "When", "pp t/s", "tg t/s", "Build", "Parameters"])
        self.metric_box = QComboBox()
        self.metric_box.addItem("Generation (tg) tokens/s", "tg_tps_mean")
        self.metric_box.addItem("Prompt (pp) tokens/s", "pp_tps_mean")
        self.metric_box.currentIndexChanged.connect(self.reload)
        self.chart = ResultsChart()
        chart_box = QWidget()
        chart_layout = QVBoxLayout(chart_box)
        chart_layout.setContentsMargins(0, 0, 0, 0)
        chart_layout.addWidget(self.metric_box)
        chart_layout.addWidget(self.chart, 1)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.table)
        splitter.addWidget(chart_box)
        splitter.setSizes([520, 380])
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(
            QLabel(f"Results of {html.escape(name)} (every configuration and build, newest first):")
        )
        layout.addWidget(splitter, 1)
        layout.addWidget(close)
        self.resize(940, 520)
        self._on_busy(False)
        self.reload()

    def start(self) -> None:
        name = str(self._model.get("name"))
        if self._running(name):
            self.status_label.setText(
                f"{name}'s server is running: a benchmark beside it measures both. Stop it first."
            )
            return
        self.progress_bar.setValue(0)
        self.status_label.setText("Running llama-bench\u2026")
        self.runner.start(
            name,
            self._model,
            self._binary,
            prompt_tokens=self.pp_box.value(),
            gen_tokens=self.tg_box.value(),
            repetitions=self.reps_box.value(),
            build_label=self._build,
        )

    def reload(self) -> None:
        rows = self._results(str(self._model.get("name")))
        self.table.setRowCount(0)
        for data in rows:
            row = self.table.rowCount()
            self.table.insertRow(row)
            when = dt.datetime.fromtimestamp(data["created_at"] / 1000).strftime("%Y-%m-%d %H:%M")
            cells = [
                (f"{data['id']}", True),
                (when, False),
                (_speed(data["pp_tps_mean"], data["pp_tps_sd"]), True),
                (_speed(data["tg_tps_mean"], data["tg_tps_sd"]), True),
                (data.get("build") or NA, False),
                (_params_text(data.get("params") or {}), False),
            ]
            for column, (text, numeric) in enumerate(cells):
                self.table.setItem(row, column, _cell(text, numeric=numeric))
        self.chart.set_results(rows, str(self.metric_box.currentData()))

    def _on_busy(self, busy: bool) -> None:
        self.run_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        for box in (self.pp_box, self.tg_box, self.reps_box):
            box.setEnabled(not busy)

    def _on_progress(self, done: int, total: int) -> None:
        self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(done)

    def _on_result(self, _index: int, _overrides: dict, _result_id: int, _run: Any) -> None:
        self.reload()

    def _on_finished(self) -> None:
        self.status_label.setText("Done: the result is stored.")

    def _on_failed(self, message: str) -> None:
        self.status_label.setText(f"The benchmark failed; nothing was stored.\n{message}")

    def _on_cancelled(self) -> None:
        self.status_label.setText("Cancelled: llama-bench was stopped; nothing of that run was stored.")

    def done(self, result: int) -> None:
        self.runner.wait()
        super().done(result)


def _stored_results(name: str) -> list[dict[str, Any]]:
    from llamadash.core.db.bench_store import get_bench_results

    return get_bench_results(name)


# ------------------------------------------------------------------------------------------------
# Find the fastest settings


class TunerDialog(QDialog):
    """A bounded sweep over chosen parameters; the best for the objective can be applied.

    ``apply(changes)`` writes the winner into the model (the window makes it one undo step).
    """

    #: The winner was applied: the changes written.
    applied = Signal(dict)

    def __init__(
        self,
        model: Mapping[str, Any],
        binary: str | None,
        apply: Callable[[dict[str, Any]], str | None],
        parent: QWidget | None = None,
        *,
        build_label: str | None = None,
        results: Callable[[str], list[dict[str, Any]]] | None = None,
        running: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("tunerDialog")
        self._model = dict(model)
        self._binary = binary
        self._apply = apply
        self._build = build_label
        self._results = results or _stored_results
        self._running = running or (lambda _name: False)
        self._runs: list[tuple[dict[str, Any], BenchResult]] = []
        self._grid: list[dict[str, Any]] = []
        name = str(model.get("name"))
        self.setWindowTitle(f"Find the fastest settings — {name}")
        self.runner = BenchRunner(self)
        self.runner.runStarted.connect(self._on_run_started)
        self.runner.progress.connect(self._on_progress)
        self.runner.resultReady.connect(self._on_result)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        self.runner.finished.connect(self._on_finished)
        self.runner.busyChanged.connect(self._on_busy)

        choose = QGroupBox("Parameters to vary (values separated by commas)")
        grid = QFormLayout(choose)
        schema = load_schema()
        self.param_boxes: dict[str, tuple[QCheckBox, QLineEdit]] = {}
        for column, values in TUNER_SUGGESTIONS:
            box = QCheckBox(schema[column].label)
            box.setToolTip(f"{column} (llama-bench {schema[column].bench_flag})")
            edit = QLineEdit(values)
            edit.setEnabled(False)
            box.toggled.connect(edit.setEnabled)
            box.toggled.connect(self._update_plan)
            edit.textChanged.connect(self._update_plan)
            grid.addRow(box, edit)
            self.param_boxes[column] = (box, edit)
        self.objective_box = QComboBox()
        for key, label in OBJECTIVE_LABELS:
            self.objective_box.addItem(label, key)
        self.objective_box.currentIndexChanged.connect(self._show_best)
        self.pp_box = QSpinBox()
        self.pp_box.setRange(0, 65536)
        self.pp_box.setValue(512)
        self.tg_box = QSpinBox()
        self.tg_box.setRange(0, 65536)
        self.tg_box.setValue(128)
        self.reps_box = QSpinBox()
        self.reps_box.setRange(1, 100)
        self.reps_box.setValue(3)
        for spin in (self.pp_box, self.tg_box, self.reps_box):
            spin.valueChanged.connect(self._update_plan)
        sizes = QHBoxLayout()
        for label, spin in (("pp", self.pp_box), ("tg", self.tg_box), ("repetitions", self.reps_box)):
            sizes.addWidget(QLabel(label))
            sizes.addWidget(spin)
        sizes.addStretch(1)
        grid.addRow("Optimise", self.objective_box)
        grid.addRow("Test size", sizes)

        self.plan_label = QLabel()
        self.plan_label.setObjectName("tunerPlan")
        self.plan_label.setWordWrap(True)
        self.progress_bar = QProgressBar()
        self.progress_bar.setFormat("%v of %m tests")
        self.table = _table(["Run", "Settings", "pp t/s", "tg t/s"])
        self.best_label = QLabel()
        self.best_label.setObjectName("tunerBest")
        self.best_label.setWordWrap(True)
        self.best_label.setTextFormat(Qt.TextFormat.RichText)
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.runner.cancel)
        self.apply_button = QPushButton("Apply the best")
        self.apply_button.clicked.connect(self.apply_best)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        for button in (self.start_button, self.cancel_button, self.apply_button):
            buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)

        layout = QVBoxLayout(self)
        layout.addWidget(choose)
        layout.addWidget(self.plan_label)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.best_label)
        layout.addWidget(buttons)
        self.resize(760, 720)
        self._on_busy(False)
        self._update_plan()

    # -- the plan ------------------------------------------------------------------------------
    def sweep_items(self) -> list[str]:
        return [
            f"{column}={edit.text()}" for column, (box, edit) in self.param_boxes.items() if box.isChecked()
        ]

    def choose(self, column: str, values: str) -> None:
        """Vary ``column`` over ``values`` (tests; the same as ticking its box and typing)."""
        box, edit = self.param_boxes[column]
        box.setChecked(True)
        edit.setText(values)

    def _estimate_each_s(self) -> float | None:
        sizes = (self.pp_box.value(), self.tg_box.value(), self.reps_box.value())
        times = [
            r["duration_s"]
            for r in self._results(str(self._model.get("name")))[:20]
            if r.get("duration_s") is not None
            and ((r["pp_tokens"] or 0), (r["tg_tokens"] or 0), r["repetitions"]) == sizes
        ]
        return statistics.median(times) if times else None

    def _update_plan(self) -> None:
        try:
            self._grid = sweep_grid(parse_sweep(self.sweep_items()))
        except BenchError as exc:
            self._grid = []
            self.plan_label.setText(f"⚠ {exc}")
            self.start_button.setEnabled(False)
            return
        if not self.sweep_items():
            self._grid = []
            self.plan_label.setText(f"Tick the parameters to vary (at most {MAX_SWEEP_RUNS} runs in all).")
            self.start_button.setEnabled(False)
            return
        each = self._estimate_each_s()
        when = (
            f"about {each * len(self._grid):,.1f} s (from this model's earlier runs of this size)"
            if each is not None
            else "not known before the first run ends"
        )
        self.plan_label.setText(f"{len(self._grid)} runs of llama-bench; estimated time: {when}.")
        self.start_button.setEnabled(not self.runner.busy)

    # -- running -------------------------------------------------------------------------------
    def start(self) -> None:
        name = str(self._model.get("name"))
        if self._running(name):
            self.plan_label.setText(
                f"{name}'s server is running: a benchmark beside it measures both. Stop it first."
            )
            return
        if not self._grid:
            return
        self._runs = []
        self.table.setRowCount(0)
        self.best_label.setText("")
        self.progress_bar.setValue(0)
        self.runner.start(
            name,
            self._model,
            self._binary,
            self._grid,
            prompt_tokens=self.pp_box.value(),
            gen_tokens=self.tg_box.value(),
            repetitions=self.reps_box.value(),
            build_label=self._build,
            sweep=uuid.uuid4().hex[:12],
        )

    def _on_busy(self, busy: bool) -> None:
        self.start_button.setEnabled(not busy and bool(self._grid))
        self.cancel_button.setEnabled(busy)
        self.apply_button.setEnabled(not busy and self.best() is not None)
        for box, edit in self.param_boxes.values():
            box.setEnabled(not busy)
            edit.setEnabled(not busy and box.isChecked())

    def _on_run_started(self, index: int, total: int, overrides: dict) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        self.table.setItem(row, 0, _cell(f"{index + 1}/{total}", numeric=True))
        self.table.setItem(row, 1, _cell(_params_text(overrides)))
        self.table.setItem(row, 2, _cell("running\u2026"))
        self.table.setItem(row, 3, _cell(""))

    def _on_progress(self, done: int, total: int) -> None:
        self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(done)

    def _on_result(self, index: int, overrides: dict, _result_id: int, run: Any) -> None:
        result = run.result
        self._runs.append((overrides, result))
        self.table.setItem(index, 2, _cell(_speed(result.pp_mean, result.pp_sd), numeric=True))
        self.table.setItem(index, 3, _cell(_speed(result.tg_mean, result.tg_sd), numeric=True))
        if index == 0 and len(self._grid) > 1:
            left = run.seconds * (len(self._grid) - 1)
            self.plan_label.setText(f"{len(self._grid)} runs of llama-bench; about {left:,.1f} s left.")
        self._show_best()

    def _on_finished(self) -> None:
        self.plan_label.setText(f"Done: {len(self._runs)} runs, each stored with its settings.")
        self._show_best()

    def _on_failed(self, message: str) -> None:
        self.plan_label.setText(f"A run failed; it was not stored. {message}")

    def _on_cancelled(self) -> None:
        self.plan_label.setText(
            f"Cancelled: llama-bench was stopped; the run in progress was not stored ({len(self._runs)} finished runs were)."
        )

    # -- the winner ----------------------------------------------------------------------------
    def best(self) -> dict[str, Any] | None:
        if not self._runs:
            return None
        index = best_index([result for _, result in self._runs], str(self.objective_box.currentData()))
        return dict(self._runs[index][0]) if index is not None else None

    def _show_best(self) -> None:
        best = self.best()
        for row in range(self.table.rowCount()):
            for column in range(self.table.columnCount()):
                item = self.table.item(row, column)
                if item is not None:
                    font = item.font()
                    font.setBold(best is not None and row < len(self._runs) and self._runs[row][0] == best)
                    item.setFont(font)
        if best is None:
            self.best_label.setText("")
        else:
            objective = self.objective_box.currentText().lower()
            self.best_label.setText(
                f"<b>Best for {html.escape(objective)}:</b> {html.escape(_params_text(best))}"
            )
        self.apply_button.setEnabled(best is not None and not self.runner.busy)

    def apply_best(self) -> None:
        best = self.best()
        if best is None:
            return
        problem = self._apply(best)
        if problem:
            self.best_label.setText(f"<b>Not applied:</b> {html.escape(problem)}")
            return
        self.best_label.setText(
            f"<b>Applied</b> {html.escape(_params_text(best))} to {html.escape(str(self._model.get('name')))} "
            "(one undo step in the configuration)."
        )
        self.applied.emit(best)

    def done(self, result: int) -> None:
        self.runner.wait()
        super().done(result)
