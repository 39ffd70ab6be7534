"""A child that floods its output must not freeze the dashboard: event-loop stalls and buffer memory.

Run from the repository root::

    .venv/bin/python benchmarks/bench_log_flood.py                # 100k lines
    .venv/bin/python benchmarks/bench_log_flood.py --lines 1000000 --line-length 200

Method: a :class:`~llamadash.services.instance.ServerInstance` runs a small Python child (through the
same launch, read, split, parse, buffer, log-file and signal path as llama-server, with the health
check off) that prints ``--lines`` lines as fast as it can. A slot is connected to ``logLine`` the way
the UI's log view is. A 10 ms ``QTimer`` measures the event loop: the worst stall is the longest gap
between two ticks minus the 10 ms interval. The buffer's memory is the size of the bounded deque and
the strings in it (``sys.getsizeof``), once the child has finished.

Exit status: 0 when the worst stall is under 100 ms, every line arrived, and the buffer holds at most
its bound; 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer

from llamadash.services.instance import DEFAULT_BUFFER_LINES, InstanceState, LaunchPlan, ServerInstance

TARGET_STALL_MS = 100.0
TICK_MS = 10


class StallMeter:
    """How long the event loop goes without running a timer of ``tick_ms``: its stalls, in ms.

    ``start`` it just before the work, ``stop`` it after; :attr:`gaps` holds every interval between
    ticks, :meth:`stall_ms` the worst (or a percentile) less the tick itself.
    """

    def __init__(self, tick_ms: int = TICK_MS) -> None:
        self.tick_ms = tick_ms
        self.gaps: list[float] = []
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.setInterval(tick_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append((now - self._last) * 1000.0)
        self._last = now

    def stall_ms(self, percentile: float = 1.0) -> float:
        """The worst stall (``percentile`` 1.0), or the one at that share of the sorted gaps."""
        if not self.gaps:
            return 0.0
        ordered = sorted(self.gaps)
        gap = ordered[-1] if percentile >= 1.0 else ordered[int(len(ordered) * percentile) - 1]
        return max(0.0, gap - self.tick_ms)


CHILD = """
import sys
n, width = int(sys.argv[1]), int(sys.argv[2])
pad = "x" * max(0, width - 40)
write = sys.stdout.write
for i in range(n):
    write(f"0.00.{i:07d} I slot flood: line {i} {pad}\\n")
sys.stdout.flush()
"""


def buffer_bytes(lines: list[str]) -> int:
    import collections

    deque = collections.deque(lines, maxlen=DEFAULT_BUFFER_LINES)
    return sys.getsizeof(deque) + sum(sys.getsizeof(line) for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--line-length", type=int, default=60, help="characters per line (about)")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)

    app = QCoreApplication.instance() or QCoreApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "flood.log"
        plan = LaunchPlan(
            argv=(sys.executable, "-c", CHILD, str(args.lines), str(args.line_length)),
            env={},
            health_check=False,
        )
        inst = ServerInstance("flood", prepare=lambda: plan, log_path=log_path, poll_interval_s=1.0)
        received = [0]

        def on_line(_line: str) -> None:  # what a log view's slot costs at the least
            received[0] += 1

        inst.logLine.connect(on_line)
        meter = StallMeter()
        meter.start()
        started = time.perf_counter()
        inst.start()
        deadline = started + args.timeout
        while inst.active and time.perf_counter() < deadline:
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        elapsed = time.perf_counter() - started
        # a few more ticks after the end, so a stall at the very end is measured too
        end = time.perf_counter() + 0.1
        while time.perf_counter() < end:
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        meter.stop()
        if inst.active:
            inst.kill()
            inst.wait_stopped(5)
        lines = inst.log_lines()
        worst_stall, p99 = meter.stall_ms(), meter.stall_ms(0.99)
        file_size = sum(p.stat().st_size for p in Path(tmp).glob("flood.log*"))
        memory = buffer_bytes(lines)
        ok_lines = received[0] == args.lines and inst.lines_received == args.lines
        ok_bound = len(lines) <= DEFAULT_BUFFER_LINES
        ok_stall = worst_stall < TARGET_STALL_MS

        print(
            f"machine:          {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        )
        print(f"child:            {args.lines} lines of ~{args.line_length} chars, as fast as it can")
        print(f"finished in:      {elapsed:.2f} s ({args.lines / elapsed:,.0f} lines/s through the instance)")
        print(
            f"state at the end: {inst.state.value} ({'exit 0' if inst.state is InstanceState.STOPPED else inst.reason})"
        )
        print(f"lines emitted:    {received[0]} (logLine), {inst.lines_received} received")
        print(
            f"event loop:       worst stall {worst_stall:.1f} ms, 99th percentile {p99:.1f} ms "
            f"({len(meter.gaps)} ticks of {TICK_MS} ms); target < {TARGET_STALL_MS:.0f} ms"
        )
        print(
            f"buffer:           {len(lines)} lines held (bound {DEFAULT_BUFFER_LINES}), "
            f"{memory / 1024:.0f} KiB"
        )
        print(f"log file:         {file_size / 1024 / 1024:.1f} MiB written (rotated at 5 MiB x 3)")
        verdict = ok_lines and ok_bound and ok_stall
        print("result:           " + ("PASS" if verdict else "FAIL"))
        inst.deleteLater()
        return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
