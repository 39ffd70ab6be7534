"""The reliability suite: real processes, real files, real SQLite, tried as a crash tester would.

Every test that runs trials reports them through the ``figures`` fixture
(``figures.record("kill -9 of run, 0-50 ms after spawn", trials=40, failures=0, note="...")``);
the figures of the whole run are printed at the end of the pytest session, so that CI's output
and the closing note of an issue can quote them.

What the suite needs from the machine: a real llama-server (as every integration test), and for
the full-disk cases root (CI runs as root) to mount a small tmpfs; see the README.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Figure:
    name: str
    trials: int
    failures: int
    note: str = ""


_FIGURES: list[Figure] = []


class Figures:
    """Collects (trials, failures) per scenario for the end-of-session report."""

    def record(self, name: str, *, trials: int, failures: int, note: str = "") -> None:
        _FIGURES.append(Figure(name, trials, failures, note))


@pytest.fixture
def figures() -> Figures:
    return Figures()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("reliability figures")
    for fig in _FIGURES:
        line = f"{fig.name}: {fig.trials} trials, {fig.failures} failures"
        if fig.note:
            line += f" ({fig.note})"
        terminalreporter.write_line(line)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a 2 MiB tmpfs of its own (needs root, as in CI): a disk that fills up for real.

    Not root: a failure with the reason, never a skip (the suite is part of CI, which runs as root).
    """
    mount_point = tmp_path / f"small-disk-{uuid.uuid4().hex[:8]}"
    mount_point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.fail("the full-disk tests mount a small tmpfs: run them as root (CI does)", pytrace=False)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the full-disk tests: {done.stderr.strip()}", pytrace=False)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)
