"""What finding a server's child processes costs: the kernel's per-thread lists against psutil's scan.

Run from the repository root::

    .venv/bin/python benchmarks/bench_process_tree.py                 # this machine as it is
    .venv/bin/python benchmarks/bench_process_tree.py --extra 300     # plus 300 idle processes (a desktop)

A stand-in server (a Python process with ``--threads`` threads and one child, as a llama-server with
its HTTP and compute threads) is started; then, interleaved so that machine noise hits both alike
(median CPU time of ``--repeat`` calls each):

* the baseline: psutil's ``Process.children(recursive=True)``, which reads ``/proc/*/stat`` of every
  process on the machine;
* ``llamadash.core.proc_children.children``, what the instance poller uses at each tree rescan.

Both must find the same child. The RESULT line gives the ratio of the second to the first (lower is
better); exit status 0 when it is below 1.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

import psutil

from llamadash.core import proc_children

_SERVER = """
import subprocess, sys, threading, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
for _ in range(int(sys.argv[1])):
    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
print(child.pid, flush=True)
time.sleep(600)
"""


def _cpu_ms(call: Callable[[], object]) -> float:
    begun = time.process_time()
    call()
    return (time.process_time() - begun) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=8, help="threads of the stand-in server (default 8)")
    parser.add_argument("--extra", type=int, default=0, help="idle processes to add to the machine")
    parser.add_argument("--repeat", type=int, default=200, help="calls of each (default 200)")
    args = parser.parse_args(argv)

    extra: list[subprocess.Popen[bytes]] = [subprocess.Popen(["sleep", "600"]) for _ in range(args.extra)]
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(args.threads)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        child = int(server.stdout.readline())
        root = psutil.Process(server.pid)
        time.sleep(0.2)  # its threads started
        for found in (root.children(recursive=True), proc_children.children(root)):
            assert [p.pid for p in found] == [child], found
        scan, lists = [], []
        for _ in range(args.repeat):
            scan.append(_cpu_ms(lambda: root.children(recursive=True)))
            lists.append(_cpu_ms(lambda: proc_children.children(root)))
        processes = len(psutil.pids())
        threads = root.num_threads()
        base, ours = statistics.median(scan), statistics.median(lists)
        print(f"machine: {processes} processes; stand-in server: {threads} threads, 1 child")
        print(f"psutil children(recursive=True): {base:.3f} ms CPU per call (median of {args.repeat})")
        print(f"kernel per-thread lists:         {ours:.3f} ms CPU per call")
        print(f"RESULT children lookup vs psutil's scan: {ours / base:.2f}x ({processes} processes)")
        return 0 if ours < base else 1
    finally:
        with contextlib.suppress(psutil.Error):
            for orphan in psutil.Process(server.pid).children(recursive=True):
                orphan.kill()
        server.kill()
        server.wait()
        for sleeper in extra:
            sleeper.kill()
        for sleeper in extra:
            sleeper.wait()
        if server.stdout is not None:
            server.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
