"""The process-tree readings of an instance: CPU and memory of a server and its children."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil

from llamadash.services import figures
from llamadash.services.figures import ProcessTreeStats

# A parent that starts a sleeping child, a second one when the file "more" appears, and ends the
# first (and reaps it) when "more.stop" appears.
_PARENT = """
import os, subprocess, sys, time
kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])]
print(kids[0].pid, flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
kids.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
print(kids[1].pid, flush=True)
while not os.path.exists(sys.argv[1] + ".stop"):
    time.sleep(0.02)
kids[0].kill()
kids[0].wait()
print("reaped", flush=True)
time.sleep(60)
"""


def _wait_for_child(parent: psutil.Process, pid: int) -> None:
    deadline = time.monotonic() + 30
    while pid not in {c.pid for c in parent.children()} and time.monotonic() < deadline:
        time.sleep(0.02)


def test_children_are_looked_for_again_after_the_rescan_period(tmp_path: Path):
    now = [1000.0]
    stats = ProcessTreeStats(clock=lambda: now[0])
    more = tmp_path / "more"
    proc = subprocess.Popen([sys.executable, "-c", _PARENT, str(more)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = int(proc.stdout.readline())
        _wait_for_child(psutil.Process(proc.pid), first)
        cpu, rss, pids = stats.read(proc.pid)
        assert set(pids) == {proc.pid, first}
        assert cpu is None  # the first reading of a root has no baseline
        assert rss is not None and rss > 1

        more.touch()
        second = int(proc.stdout.readline())
        _wait_for_child(psutil.Process(proc.pid), second)
        now[0] += 1.0  # the next poll: the known processes are read, the tree is not walked
        cpu, rss_again, pids = stats.read(proc.pid)
        assert set(pids) == {proc.pid, first}
        assert cpu is not None and cpu >= 0.0

        now[0] += figures.CHILDREN_RESCAN_S  # the rescan is due: the new child is found
        _, rss_all, pids = stats.read(proc.pid)
        assert set(pids) == {proc.pid, first, second}
        assert rss_all is not None and rss_again is not None and rss_all > rss_again

        (tmp_path / "more.stop").touch()
        assert proc.stdout.readline().strip() == "reaped"
        now[0] += 1.0
        _, _, pids = stats.read(proc.pid)  # the gone child is dropped, and the tree walked again
        assert set(pids) == {proc.pid, second}
    finally:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_process_that_is_gone_reads_as_unknown():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    assert ProcessTreeStats().read(proc.pid) == (None, None, [])
    assert ProcessTreeStats().read(None) == (None, None, [])
