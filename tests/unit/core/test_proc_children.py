"""Children read from the kernel's per-thread lists are psutil's children, found without a scan."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from llamadash.core import proc_children

# A parent that starts one child from its main thread and one from another thread (listed under
# that thread by the kernel, as llama-server's router starts its model servers), the first of which
# starts a grandchild; it prints the three PIDs.
_PARENT = """
import subprocess, sys, threading, time
sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
grand = [sys.executable, "-c",
         "import subprocess, sys, time; p = subprocess.Popen(%r); print(p.pid, flush=True); time.sleep(60)" % sleep]
a = subprocess.Popen(grand, stdout=subprocess.PIPE, text=True)
b = []
t = threading.Thread(target=lambda: b.append(subprocess.Popen(sleep)))
t.start(); t.join()
print(a.pid, b[0].pid, a.stdout.readline().strip(), flush=True)
time.sleep(60)
"""


@pytest.fixture
def tree():
    proc = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        pids = [int(field) for field in proc.stdout.readline().split()]
        yield psutil.Process(proc.pid), pids
    finally:
        root = psutil.Process(proc.pid)
        for child in root.children(recursive=True):
            child.kill()
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_the_kernel_lists_children_on_this_linux():
    assert sys.platform != "linux" or proc_children.kernel_lists_children()


def test_children_match_psutil_recursive_and_direct(tree):
    root, (child, thread_child, grandchild) = tree
    found = proc_children.children(root)
    assert {p.pid for p in found} == {c.pid for c in root.children(recursive=True)}
    assert {p.pid for p in found} == {child, thread_child, grandchild}
    direct = proc_children.children(root, recursive=False)
    assert {p.pid for p in direct} == {child, thread_child}
    assert all(isinstance(p, psutil.Process) and p.is_running() for p in found)


def test_without_the_kernel_lists_psutil_answers(tree, monkeypatch):
    root, pids = tree
    monkeypatch.setattr(proc_children, "_supported", False)
    assert {p.pid for p in proc_children.children(root)} == set(pids)


def test_a_gone_process_raises_as_psutil_does():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    handle = psutil.Process(proc.pid)
    proc.wait()
    deadline = time.monotonic() + 10
    while handle.is_running() and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(psutil.NoSuchProcess):
        proc_children.children(handle)


def test_no_scan_of_every_process(tree, monkeypatch):
    """The point of it: psutil's parent map (every /proc/*/stat) is not built."""
    from psutil import _pslinux

    def no_scan():
        raise AssertionError("ppid_map was built")

    monkeypatch.setattr(_pslinux, "ppid_map", no_scan)
    root, pids = tree
    assert {p.pid for p in proc_children.children(root)} == set(pids)
