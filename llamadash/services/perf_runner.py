"""The window's fit checks and benchmarks: a worker thread for ``llama-fit-params``, a QProcess for ``llama-bench``.

Widgets hold these services and listen to their signals; they own no process. Both can be
cancelled at any moment: the tool is stopped (terminate, then kill after a grace period) and
nothing of the interrupted run is stored. What is measured and how it is read is
:mod:`llamadash.core.perf`'s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QProcess, QThread, QTimer, Signal, Slot

from llamadash.core.perf.bench import (
    BenchError,
    BenchTest,
    bench_command,
    parse_bench_line,
    result_from_tests,
)
from llamadash.core.perf.fit import FitError
from llamadash.core.perf.run import STOP_GRACE_S, ToolCancelled, ToolFailed, tool_env
from llamadash.core.perf.service import BenchRun, check_fit, store_result
from llamadash.core.perf.tools import BENCH_TOOL, ToolNotFound, find_tool

__all__ = ["BenchRunner", "FitCheck"]


def _stop_when_quitting(stop: Any) -> None:
    """Quitting the application stops the tool first (no thread or process outlives the window)."""
    app = QCoreApplication.instance()
    if app is not None:
        app.aboutToQuit.connect(stop)


class _FitWorker(QObject):
    """Runs one fit check on its thread; the result comes back by signal (never touch widgets here)."""

    done = Signal(object)  # FitOutcome
    failed = Signal(str)
    cancelled = Signal()

    def __init__(
        self, config: Mapping[str, Any], binary: str | None, cache_dir: Path | None, refresh: bool
    ) -> None:
        super().__init__()
        self._config = dict(config)
        self._binary = binary
        self._cache_dir = cache_dir
        self._refresh = refresh
        self.cancel_event = threading.Event()

    @Slot()
    def run(self) -> None:
        try:
            outcome = check_fit(
                self._config, self._binary, self._cache_dir, refresh=self._refresh, cancel=self.cancel_event
            )
        except ToolCancelled:
            self.cancelled.emit()
        except (ToolNotFound, FitError, ToolFailed, OSError) as exc:
            self.failed.emit(str(exc))
        else:
            self.done.emit(outcome)


class FitCheck(QObject):
    """Asks ``llama-fit-params`` about one configuration on a worker thread.

    Signals are delivered on the thread that owns this object (the GUI's).
    """

    #: The check ended: a :class:`~llamadash.core.perf.service.FitOutcome`.
    done = Signal(object)
    #: The check failed: why (a missing tool says where it looked; a crash its last lines).
    failed = Signal(str)
    #: The check was cancelled; nothing was kept.
    cancelled = Signal()
    #: A check started (True) or ended in any way (False).
    busyChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: QThread | None = None
        self._worker: _FitWorker | None = None
        _stop_when_quitting(self.wait)

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def start(
        self, config: Mapping[str, Any], binary: str | None, cache_dir: Path | None, *, refresh: bool = False
    ) -> None:
        """Start a check (one at a time: a second start while busy is ignored)."""
        if self.busy:
            return
        thread = QThread(self)
        worker = _FitWorker(config, binary, cache_dir, refresh)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.done.connect(self._on_done)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        self._thread, self._worker = thread, worker
        thread.start()
        self.busyChanged.emit(True)

    def cancel(self) -> None:
        """Stop the tool; :attr:`cancelled` follows once it is gone."""
        if self._worker is not None:
            self._worker.cancel_event.set()

    def wait(self, timeout_ms: int = 10_000) -> bool:
        """Cancel and wait for the worker thread (closing the window)."""
        self.cancel()
        thread = self._thread
        return thread is None or thread.wait(timeout_ms)

    def _finish(self) -> None:
        thread, worker = self._thread, self._worker
        self._thread = self._worker = None
        if thread is not None:
            thread.quit()
            thread.wait(5000)
            thread.deleteLater()
        if worker is not None:
            worker.deleteLater()
        self.busyChanged.emit(False)

    @Slot(object)
    def _on_done(self, outcome: Any) -> None:
        self._finish()
        self.done.emit(outcome)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._finish()
        self.failed.emit(message)

    @Slot()
    def _on_cancelled(self) -> None:
        self._finish()
        self.cancelled.emit()


class BenchRunner(QObject):
    """Runs ``llama-bench -o jsonl`` once per set of overrides, one after another, in a QProcess.

    Each finished run is stored at once (``bench_results``); a failed or cancelled run stores
    nothing, and a cancel ends the series.
    """

    #: Run ``index`` (0-based) of ``total`` started with these overrides.
    runStarted = Signal(int, int, dict)
    #: Tests done of all tests of the series (a run has a prompt and a generation test).
    progress = Signal(int, int)
    #: Run ``index`` finished and was stored: (index, overrides, result id, BenchRun).
    resultReady = Signal(int, dict, int, object)
    #: A run failed: why (exit status and last lines); the series stops.
    failed = Signal(str)
    #: The series was cancelled; the run in progress was not stored.
    cancelled = Signal()
    #: Every run finished.
    finished = Signal()
    #: Running (True) or not (False).
    busyChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._process: QProcess | None = None
        self._queue: list[dict[str, Any]] = []
        self._index = 0
        self._total = 0
        self._tests: list[BenchTest] = []
        self._buffer = b""
        self._stdout: list[str] = []
        self._stderr = b""
        self._config: dict[str, Any] = {}
        self._model = ""
        self._tool = ""
        self._build: str | None = None
        self._sweep: str | None = None
        self._sizes = (0, 0, 1)
        self._started_at = 0.0
        self._command: Any = None
        self._cancelling = False
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill)
        _stop_when_quitting(self.wait)

    @property
    def busy(self) -> bool:
        return self._process is not None

    @property
    def process_id(self) -> int | None:
        """The running llama-bench's pid (tests), or ``None``."""
        if self._process is None:
            return None
        pid = int(self._process.processId())
        return pid or None

    def start(
        self,
        model_name: str,
        config: Mapping[str, Any],
        binary: str | None,
        runs: Sequence[Mapping[str, Any]] = ({},),
        *,
        prompt_tokens: int = 512,
        gen_tokens: int = 128,
        repetitions: int = 3,
        build_label: str | None = None,
        sweep: str | None = None,
    ) -> None:
        """Start the series; a problem found before anything runs comes as :attr:`failed`.

        ``sweep`` marks every stored result as one sweep's (the tuner's).
        """
        if self.busy:
            return
        try:
            self._tool = str(find_tool(binary, BENCH_TOOL))
            for overrides in runs:  # every run's command is checked before the first starts
                bench_command(
                    config,
                    self._tool,
                    prompt_tokens=prompt_tokens,
                    gen_tokens=gen_tokens,
                    repetitions=repetitions,
                    overrides=overrides,
                )
        except (ToolNotFound, BenchError) as exc:
            self.failed.emit(str(exc))
            return
        self._model, self._config, self._build, self._sweep = model_name, dict(config), build_label, sweep
        self._sizes = (prompt_tokens, gen_tokens, repetitions)
        self._queue = [dict(r) for r in runs]
        self._total = len(self._queue)
        self._index = -1
        self._cancelling = False
        self.busyChanged.emit(True)
        self._next()

    @property
    def tests_per_run(self) -> int:
        return int(self._sizes[0] > 0) + int(self._sizes[1] > 0)

    def cancel(self) -> None:
        """Stop llama-bench (terminate, kill after a grace period); nothing of its run is stored."""
        if self._process is None:
            return
        self._cancelling = True
        self._queue.clear()
        self._process.terminate()
        self._kill_timer.start(int(STOP_GRACE_S * 1000))

    def wait(self, timeout_ms: int = 10_000) -> bool:
        """Cancel and wait until the process is gone (closing the window)."""
        process = self._process
        if process is None:
            return True
        self.cancel()
        if not process.waitForFinished(timeout_ms):
            process.kill()
            return process.waitForFinished(2000)
        return True

    def _next(self) -> None:
        if not self._queue:
            self._end()
            self.finished.emit()
            return
        overrides = self._queue.pop(0)
        self._index += 1
        pp, tg, reps = self._sizes
        self._command = bench_command(
            self._config, self._tool, prompt_tokens=pp, gen_tokens=tg, repetitions=reps, overrides=overrides
        )
        self._overrides = overrides
        self._tests, self._buffer, self._stdout, self._stderr = [], b"", [], b""
        process = QProcess(self)
        environment = process.processEnvironment()
        environment.clear()
        for key, value in tool_env().items():
            environment.insert(key, value)
        process.setProcessEnvironment(environment)
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        self._process = process
        self._started_at = time.monotonic()
        self.runStarted.emit(self._index, self._total, dict(overrides))
        process.start(self._command.argv[0], self._command.argv[1:])

    @Slot()
    def _read_stdout(self) -> None:
        if self._process is None:
            return
        self._buffer += bytes(self._process.readAllStandardOutput().data())
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            text = raw.decode("utf-8", errors="replace")
            self._stdout.append(text)
            test = parse_bench_line(text)
            if test is not None:
                self._tests.append(test)
                done = self._index * self.tests_per_run + len(self._tests)
                self.progress.emit(done, self._total * self.tests_per_run)

    @Slot()
    def _read_stderr(self) -> None:
        if self._process is not None:
            self._stderr = (self._stderr + bytes(self._process.readAllStandardError().data()))[-65536:]

    @Slot(QProcess.ProcessError)
    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self._process is not None:
            message = f"{self._tool} could not be started: {self._process.errorString()}"
            self._discard()
            self._end()
            self.failed.emit(message)

    @Slot(int, QProcess.ExitStatus)
    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._kill_timer.stop()
        if self._process is None:
            return
        self._read_stdout()
        self._read_stderr()
        if self._buffer:
            self._stdout.append(self._buffer.decode("utf-8", errors="replace"))
            test = parse_bench_line(self._stdout[-1])
            if test is not None:
                self._tests.append(test)
        self._discard()
        if self._cancelling:
            self._end()
            self.cancelled.emit()
            return
        tail = [line for line in self._stderr.decode("utf-8", errors="replace").splitlines() if line.strip()][
            -12:
        ]
        crashed = status == QProcess.ExitStatus.CrashExit
        if crashed or code != 0 or len(self._tests) < self.tests_per_run:
            returncode = -9 if crashed else code
            what = (
                ""
                if (crashed or code != 0)
                else f"printed {len(self._tests)} of {self.tests_per_run} results"
            )
            self._end()
            self.failed.emit(str(ToolFailed(self._tool, returncode, tail, what)))
            return
        run = BenchRun(
            self._command,
            result_from_tests(self._tests),
            time.monotonic() - self._started_at,
            self._sizes[2],
            "\n".join(self._stdout),
        )
        try:
            result_id = store_result(self._model, run, build_label=self._build, sweep=self._sweep)
        except Exception as exc:  # the database refused: say so and stop the series
            self._end()
            self.failed.emit(f"the result could not be stored: {exc}")
            return
        self.resultReady.emit(self._index, dict(self._overrides), result_id, run)
        self._next()

    def _discard(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.deleteLater()

    def _end(self) -> None:
        self._queue.clear()
        self.busyChanged.emit(False)

    @Slot()
    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()
