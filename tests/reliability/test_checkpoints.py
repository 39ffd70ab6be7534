"""Interrupted WAL checkpoints: a database whose main file is shorter than its header says, with
the missing pages still in the -wal file, opens with every row (``llamadash db info``).

Ten checkpoints of a few MB of WAL are SIGKILLed at staggered moments, and one case is built
deterministically: the file exactly as a checkpoint killed after page 1 (the new header) leaves it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import run_cli

pytestmark = [pytest.mark.reliability]

ROWS = 40_000  # ~3 MB of WAL

#: A process holding a big WAL: writes ROWS metrics rows with automatic checkpoints off, says
#: "ready", and on a line from stdin checkpoints (TRUNCATE), says "done" and waits to be killed.
HOLDER = r"""
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA wal_autocheckpoint = 0")
conn.execute("PRAGMA synchronous = FULL")
conn.execute("BEGIN")
conn.executemany(
    "INSERT INTO metrics_history (timestamp, created_at, cpu_usage, memory_usage, gpu_usage) VALUES (?,?,?,?,?)",
    [(1_700_000_000_000 + i, 1_700_000_000_000 + i, i * 0.5, 50.0, 99.0) for i in range(int(sys.argv[2]))],
)
conn.execute("COMMIT")
print("ready", flush=True)
sys.stdin.readline()
started = time.perf_counter()
conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
print("done %.6f" % (time.perf_counter() - started), flush=True)
time.sleep(60)
"""


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(data_dir, *args, timeout=60)


def rows_in(info: str, table: str) -> int:
    match = re.search(rf"^{table}:\s+(\d+) rows", info, re.MULTILINE)
    assert match, info
    return int(match.group(1))


def header_exceeds_file(path: Path) -> bool:
    head = path.read_bytes()[:100]
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    return int.from_bytes(head[28:32], "big") * page > path.stat().st_size


def new_database(data_dir: Path) -> Path:
    done = cli(data_dir, "db", "info")
    assert done.returncode == 0, done.stderr
    return data_dir / "llama-dashboard.db"


def hold_and_checkpoint(db: Path, kill_after_s: float | None) -> float | None:
    """Run the holder; SIGKILL it ``kill_after_s`` after the checkpoint starts (None: let it finish).

    Returns the checkpoint's duration when it finished.
    """
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db), str(ROWS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "ready"
        holder.stdin.write("\n")
        holder.stdin.flush()
        if kill_after_s is None:
            line = holder.stdout.readline().split()
            return float(line[1])
        deadline = time.perf_counter() + kill_after_s
        while time.perf_counter() < deadline:
            pass  # a busy wait: sleep() cannot place a kill within a millisecond
        os.kill(holder.pid, signal.SIGKILL)
        return None
    finally:
        holder.kill()
        holder.wait()
        for pipe in (holder.stdin, holder.stdout):
            if pipe is not None:
                # the holder is gone: what it did not read is moot
                with contextlib.suppress(BrokenPipeError):
                    pipe.close()


def test_checkpoints_killed_at_staggered_moments_lose_nothing(tmp_path, figures):
    calibration = new_database(tmp_path / "calibration")
    duration = hold_and_checkpoint(calibration, None) or 0.01
    trials, failures, short_files = 10, 0, 0
    problems: list[tuple[object, ...]] = []
    for trial in range(trials):
        data_dir = tmp_path / f"trial-{trial}"
        db = new_database(data_dir)
        kill_after = duration * trial / (trials - 1)  # from the checkpoint's start to its end
        hold_and_checkpoint(db, kill_after)
        short_files += header_exceeds_file(db)
        info = cli(data_dir, "db", "info")
        if info.returncode != 0 or rows_in(info.stdout, "metrics_history") != ROWS:
            failures += 1
            problems.append((trial, kill_after, info.returncode, info.stdout, info.stderr))
            continue
        with sqlite3.connect(db) as conn:
            if conn.execute("PRAGMA integrity_check").fetchall() != [("ok",)]:
                failures += 1
                problems.append((trial, kill_after, "integrity_check"))
    figures.record(
        "checkpoint (TRUNCATE) of a 3 MB WAL SIGKILLed at staggered moments, then db info",
        trials=trials,
        failures=failures,
        note=f"checkpoint takes {duration * 1000:.1f} ms; {short_files} kills left the main file "
        f"shorter than its header; each must open with all {ROWS:,} rows",
    )
    assert not problems, problems


def test_a_file_shorter_than_its_header_with_the_pages_in_the_wal_opens(tmp_path, figures):
    """Deterministic: the main file as a checkpoint leaves it when killed two pages before its end."""
    data_dir = tmp_path / "data"
    db = new_database(data_dir)
    holder_copy = tmp_path / "wal-while-held"
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("BEGIN")
    writer.executemany(
        "INSERT INTO metrics_history (timestamp, created_at, cpu_usage) VALUES (?, ?, ?)",
        [(i, i, float(i)) for i in range(5000)],
    )
    writer.execute("COMMIT")
    shutil.copyfile(f"{db}-wal", holder_copy)  # the WAL as the disk holds it before the checkpoint
    writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    writer.close()
    whole = db.read_bytes()
    page = int.from_bytes(whole[16:18], "big")
    for name in os.listdir(data_dir):
        if name.startswith(db.name + "-"):
            os.unlink(data_dir / name)
    db.write_bytes(whole[: len(whole) - 2 * page])
    os.replace(holder_copy, f"{db}-wal")
    assert header_exceeds_file(db)

    info = cli(data_dir, "db", "info")
    ok = info.returncode == 0 and rows_in(info.stdout, "metrics_history") == 5000
    figures.record(
        "main file 2 pages shorter than its header, pages in the WAL (constructed), then db info",
        trials=1,
        failures=0 if ok else 1,
        note=f"header says {len(whole)} bytes, file holds {len(whole) - 2 * page}",
    )
    assert info.returncode == 0, info.stderr
    assert rows_in(info.stdout, "metrics_history") == 5000
