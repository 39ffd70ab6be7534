"""Log files on a disk that fills up for real (a 2 MiB tmpfs): nothing is lost silently, the log
recovers when space returns, the server never notices.

Two layers: the log file itself (writes cut short by the full disk, many times over), and
``llamadash run`` with its whole data folder on the small disk, as a user would run it.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from support import health_status, stop_process, tiny_model_record

from llamadash.core import database
from llamadash.core.llama_server import METADATA_KEY
from llamadash.core.serverlog import RotatingLogFile, log_file_name

pytestmark = [pytest.mark.reliability]

REPO = Path(__file__).resolve().parents[2]
NOTE = "lines of output could not be written to this log"


def fill(folder: Path) -> Path:
    """Write a file into ``folder`` until its disk is full; returns the file (delete it for space)."""
    filler = folder / "filler"
    with open(filler, "ab", buffering=0) as handle:
        for size in (1 << 16, 1 << 12, 1):
            try:
                while handle.write(b"\0" * size):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_writes_cut_short_by_a_full_disk_leave_whole_lines_and_an_exact_count(small_disk: Path, figures):
    trials, failures, half_lines = 20, 0, 0
    started = time.monotonic()
    for trial in range(trials):
        clock = Clock()
        path = small_disk / "logs" / f"trial-{trial}.log"
        log = RotatingLogFile(path, clock=clock)
        sent = [f"before {trial}"]
        log.write_lines(sent)
        filler = fill(small_disk)
        # Batches of a length that differs per trial, so that the disk runs out inside a line.
        width = 50 + 97 * trial
        batch = 0
        while log.error is None and batch < 1000:
            lines = [f"line {batch}.{i} " + "x" * width for i in range(7)]
            sent += lines
            log.write_lines(lines)
            batch += 1
        failed_at = len(sent)
        for _ in range(5):  # lost while full, within the retry interval
            sent.append("lost while full")
            log.write_lines(sent[-1:])
        filler.unlink()
        clock.now += 1.5
        sent.append(f"after {trial}")
        log.write_lines(sent[-1:])
        log.close()
        text = path.read_text()
        lines = text.splitlines()
        notes = [line for line in lines if NOTE in line]
        kept = [line for line in lines if NOTE not in line]
        half_lines += sum(1 for line in kept if line not in sent)
        ok = (
            log.error is None
            and batch < 1000
            and text.endswith("\n")
            and len(notes) == 1
            and notes[0].startswith(f"=== llamadash: {log.lost_lines} {NOTE} ")
            and "No space left on device" in notes[0]
            and all(line in sent for line in kept)  # no half line anywhere
            and kept[-1] == f"after {trial}"
            and len(kept) + log.lost_lines == len(sent)  # every line is in the file or counted
            and lines.index(notes[0]) == len(lines) - 2  # the note comes just before the first new line
            and failed_at > 1
        )
        if not ok:
            failures += 1
            print(f"trial {trial}: {log.lost_lines} lost of {len(sent)}, file ends {text[-300:]!r}")
        path.unlink()
    elapsed = time.monotonic() - started
    figures.record(
        "log file on a full disk: writes cut short, space again",
        trials=trials,
        failures=failures,
        note=f"{half_lines} half lines left in the files; {elapsed:.1f} s",
    )
    assert failures == 0


# -- llamadash run, its data folder on the small disk ---------------------------------------------------


def complete(url: str) -> None:
    body = json.dumps({"prompt": "Hi", "n_predict": 4}).encode()
    request = urllib.request.Request(
        f"{url}/completion", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def wait_for(predicate, timeout: float, what: str, step=None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        if step is not None:
            step()
        time.sleep(0.1)


@pytest.mark.integration
def test_run_on_a_full_disk_says_so_once_and_its_log_recovers(
    small_disk: Path, tmp_path: Path, llama_server: Path, tiny_model: Path, figures
):
    data_dir = small_disk / "data"
    database.init_database(data_dir=data_dir)
    database.set_metadata(METADATA_KEY, str(llama_server))
    database.save_model(tiny_model_record(tiny_model, "tiny", threads=1, n_parallel=1))
    database.close_database()
    out_path, err_path = tmp_path / "run.out", tmp_path / "run.err"
    log_path = data_dir / "logs" / log_file_name("tiny")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llamadash", "--data-dir", str(data_dir), "run", "tiny"],
            stdout=out,
            stderr=err,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )

    def stderr() -> str:
        return err_path.read_text(errors="replace")

    cycles, failures = 3, 0
    started = time.monotonic()
    try:
        wait_for(
            lambda: "is ready at " in stderr() or proc.poll() is not None, 60, "run says the model is ready"
        )
        assert proc.poll() is None, stderr()
        url = stderr().split("is ready at ", 1)[1].split()[0]
        port = int(url.rsplit(":", 1)[1])
        for cycle in range(1, cycles + 1):
            filler = fill(small_disk)
            wait_for(
                lambda n=cycle: stderr().count("cannot write the log file") >= n,
                30,
                f"run's stderr reports failure {cycle}",
                step=lambda: complete(url),
            )
            for _ in range(5):  # still full: more lines lost, no more messages
                complete(url)
            reported = stderr().count("cannot write the log file")
            filler.unlink()
            wait_for(
                lambda n=cycle: stderr().count("the log file is written again") >= n,
                30,
                f"run's stderr reports recovery {cycle}",
                step=lambda: complete(url),
            )
            complete(url)
            log = log_path.read_text(errors="replace")
            after_note = log.rsplit(NOTE, 1)[-1]
            ok = (
                reported == cycle  # once per episode, not once per line
                and log.count(NOTE) == cycle
                and "No space left on device" in stderr()
                and "print_timing" in after_note  # the server's new lines are in the file again
                and health_status(port) == 200
                and proc.poll() is None
            )
            if not ok:
                failures += 1
        elapsed = time.monotonic() - started
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, stderr()
    finally:
        stop_process(proc)
    errors = stderr()
    print(errors)  # shown when the test fails (and with -rP)
    figures.record(
        "llamadash run, data folder on a full disk: log failure reported once, log recovers",
        trials=cycles,
        failures=failures,
        note=f"{elapsed:.1f} s",
    )
    assert failures == 0, errors
    assert errors.count("warning: cannot write the log file") == cycles
    assert log_path.read_text().count(NOTE) == cycles
