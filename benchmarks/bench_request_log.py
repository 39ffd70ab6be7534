"""What turning llama-server's log into request records costs, against today's line classification.

Run from the repository root::

    .venv/bin/python benchmarks/bench_request_log.py                 # 100 requests/s for 10 s
    .venv/bin/python benchmarks/bench_request_log.py --rate 1000 --seconds 10

Method: the request lines of a real captured log of llama-server b11434
(``tests/data/llama-server-requests-b11434.log``: slot selection, launch, the four ``print_timing``
lines, release, and the occasional warning) are repeated with fresh task ids to make ``--rate``
requests a second for ``--seconds`` seconds, interleaved on two slots the way ``--parallel 2``
prints them. The same lines are then fed, best of ``--repeat`` runs each, to

- the baseline: :func:`llamadash.core.serverlog.parse_line`, which every line already goes through;
- :meth:`llamadash.core.requests_log.RequestLogParser.feed`;
- both, as the instance's output pipe would run them.

It prints the cost per line and per request record, the ratio to the baseline, the share of one
core it takes at that rate, and the longest the pipe would hold the event loop when one 100 ms read
brings that rate's lines at once (the issue's bound: < 50 ms). A :class:`ThroughputMeter` fed with
4 snapshots a second is timed too.

Exit status: 0 when every request became one record and the worst 100 ms batch stays under 50 ms.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

from llamadash.core.requests_log import RequestLogParser
from llamadash.core.serverlog import parse_line
from llamadash.core.throughput import SlotReading, ThroughputMeter

LOG = Path(__file__).resolve().parents[1] / "tests" / "data" / "llama-server-requests-b11434.log"
STALL_LIMIT_MS = 50.0
_TASK = re.compile(r"\| task (\d+) \|")
_SLOT = re.compile(r": id +(\d+) \|")
_ID = re.compile(r"id +\d+ \|")


def request_templates() -> list[list[str]]:
    """The lines of each finished request of the captured log (slot selection to release), by slot."""
    templates: list[list[str]] = []
    current: dict[str, list[str]] = {}
    for line in LOG.read_text(encoding="utf-8").splitlines():
        found = _SLOT.search(line)
        if found is None:
            continue
        kept = current.setdefault(found.group(1), [])
        kept.append(line)
        if "stop processing" in line:
            if any("print_timing" in each for each in kept):
                templates.append(kept)
            del current[found.group(1)]
    return templates


def make_lines(rate: int, seconds: float) -> tuple[list[str], int]:
    """``rate`` requests a second for ``seconds``: the lines, and how many requests they hold."""
    templates = request_templates()
    lines: list[str] = []
    count = int(rate * seconds)
    for number in range(0, count, 2):
        pair = [templates[number % len(templates)], templates[(number + 1) % len(templates)]]
        renamed = []
        for offset, template in enumerate(pair):
            slot, task = offset, number + offset
            renamed.append(
                [_ID.sub(f"id  {slot} |", _TASK.sub(f"| task {task} |", line)) for line in template]
            )
        # two slots at once: their lines interleave
        for index in range(max(len(r) for r in renamed)):
            for request in renamed:
                if index < len(request):
                    lines.append(request[index])
    return lines, count


def best_of(repeat: int, run: Callable[[], int]) -> tuple[float, int]:
    best, result = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=100, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    lines, requests = make_lines(args.rate, args.seconds)

    def baseline() -> int:
        return sum(parse_line(line) is not None for line in lines)

    def records() -> int:
        feeder = RequestLogParser("bench", clock=lambda: 0)
        return sum(len(feeder.feed(line)) for line in lines)

    def both() -> int:
        feeder = RequestLogParser("bench", clock=lambda: 0)
        made = 0
        for line in lines:
            parse_line(line)
            made += len(feeder.feed(line))
        return made

    base_s, _ = best_of(args.repeat, baseline)
    parse_s, made = best_of(args.repeat, records)
    both_s, _ = best_of(args.repeat, both)

    # one 100 ms read of the pipe brings a tenth of a second's lines: the longest the loop is held
    batch = max(1, len(lines) // max(1, int(args.seconds * 10)))
    feeder = RequestLogParser("bench", clock=lambda: 0)
    worst_batch_ms = 0.0
    for first in range(0, len(lines), batch):
        start = time.perf_counter()
        for line in lines[first : first + batch]:
            parse_line(line)
            feeder.feed(line)
        worst_batch_ms = max(worst_batch_ms, (time.perf_counter() - start) * 1000)

    meter = ThroughputMeter()
    snapshots = int(args.seconds * 4)
    start = time.perf_counter()
    for step in range(snapshots):
        at = step * 0.25
        meter.add_slots(at, [SlotReading(0, True, step // 8, step % 8 * 10, 20), SlotReading(1, False, 3)])
        meter.reading(at)
    meter_us = (time.perf_counter() - start) / snapshots * 1e6

    per_line = lambda seconds: seconds / len(lines) * 1e6  # noqa: E731 - µs per line
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.system()}")
    print(
        f"{requests} requests ({args.rate}/s for {args.seconds:g} s), {len(lines)} log lines, "
        f"best of {args.repeat}"
    )
    print(f"baseline serverlog.parse_line : {per_line(base_s):7.2f} µs/line")
    print(
        f"RequestLogParser.feed        : {per_line(parse_s):7.2f} µs/line "
        f"({parse_s / base_s:4.2f}x the baseline), {parse_s / max(made, 1) * 1e6:7.2f} µs/record"
    )
    print(
        f"both (the output pipe)       : {per_line(both_s):7.2f} µs/line "
        f"({both_s / base_s:4.2f}x the baseline), {both_s / max(made, 1) * 1e6:7.2f} µs/record"
    )
    share = both_s / args.seconds * 100
    print(f"at {args.rate} requests/s: {share:.3f} % of one core for both; records {made}/{requests}")
    print(f"worst 100 ms batch ({batch} lines): {worst_batch_ms:.2f} ms (limit {STALL_LIMIT_MS:g} ms)")
    print(f"ThroughputMeter: {meter_us:.1f} µs per /slots snapshot and reading")
    return 0 if made == requests and worst_batch_ms < STALL_LIMIT_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
