"""Database writes under pressure: two processes changing one library at once, and a full disk.

Real processes (the CLI's own code, run by two child Pythons at the same instant), real SQLite
files, and a real full disk (a 2 MiB tmpfs filled with a big file).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support import run_cli

from llamadash.core import database
from llamadash.core.metrics import MetricsCollector
from llamadash.services.sampler import MetricsSampler

pytestmark = [pytest.mark.reliability]

ROUNDS = 100  # read-modify-writes per process

# Runs the CLI's own code ROUNDS times in one process, starting at a shared instant. A machine
# without llama-server (custom flags are then checked by their shape only, and nothing is probed).
WORKER = textwrap.dedent(
    """
    import io, sys, time
    from llamadash.core import llama_server
    llama_server.usual_places = list
    llama_server._from_python_package = lambda: None
    from llamadash import cli

    data_dir, who, rounds, start_at, action, model_file = sys.argv[1:]
    while time.time() < float(start_at):
        time.sleep(0.001)
    for i in range(int(rounds)):
        if action == "set":
            argv = ["--data-dir", data_dir, "models", "set", "shared", f"--x-{who}-{i}=1"]
        else:
            argv = ["--data-dir", data_dir, "models", "add", f"m-{who}-{i}", "--model-path", model_file]
        out, err = io.StringIO(), io.StringIO()
        code = cli.run(argv, out, err)
        print(code, out.getvalue().strip() or err.getvalue().strip(), flush=True)
    """
)


def _cli(data_dir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LLAMA_SERVER_BIN"}
    return run_cli(data_dir, *args, timeout=timeout, env=env)


def _race(data_dir: Path, action: str, model_file: Path) -> list[list[str]]:
    """Two processes run ``action`` ROUNDS times each from the same instant; their output lines."""
    start_at = time.time() + 1.5  # both are imported and waiting by then
    env = {k: v for k, v in os.environ.items() if k != "LLAMA_SERVER_BIN"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(data_dir),
                who,
                str(ROUNDS),
                str(start_at),
                action,
                str(model_file),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for who in ("a", "b")
    ]
    lines = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        lines.append(out.splitlines())
    return lines


def test_concurrent_models_set_loses_no_custom_flag(tmp_path: Path, tiny_model: Path, figures) -> None:
    data_dir = tmp_path / "data"
    done = _cli(data_dir, "models", "add", "shared", "--model-path", str(tiny_model))
    assert done.returncode == 0, done.stderr

    started = time.monotonic()
    lines = _race(data_dir, "set", tiny_model)
    seconds = time.monotonic() - started

    updated = sum(1 for out in lines for line in out if line.startswith("0 updated shared"))
    refused = [line for out in lines for line in out if not line.startswith("0 ")]
    database.init_database(data_dir / "llama-dashboard.db", record_start=False)
    try:
        flags = set(database.get_model_by_name("shared")["custom_params"])
    finally:
        database.close_database()
    expected = {f"--x-{who}-{i}" for who in "ab" for i in range(ROUNDS)}
    lost = expected - flags
    figures.record(
        "2 processes x 100 concurrent `models set NAME --flag=1`",
        trials=2 * ROUNDS,
        failures=len(lost) + len(refused),
        note=f"{len(lost)} flags lost, {len(refused)} refused, {seconds:.1f} s",
    )
    assert refused == []
    assert updated == 2 * ROUNDS
    assert lost == set(), f"{len(lost)} of {2 * ROUNDS} updates lost, e.g. {sorted(lost)[:5]}"


def test_concurrent_models_add_never_share_a_port(tmp_path: Path, tiny_model: Path, figures) -> None:
    data_dir = tmp_path / "data"

    started = time.monotonic()
    lines = _race(data_dir, "add", tiny_model)
    seconds = time.monotonic() - started

    refused = [line for out in lines for line in out if not line.startswith("0 added")]
    database.init_database(data_dir / "llama-dashboard.db", record_start=False)
    try:
        models = database.get_models()
    finally:
        database.close_database()
    ports = [m["port"] for m in models]
    duplicates = len(ports) - len(set(ports))
    figures.record(
        "2 processes x 100 concurrent `models add` without a port",
        trials=2 * ROUNDS,
        failures=duplicates + len(refused),
        note=f"{duplicates} duplicate ports, {len(refused)} refused, {seconds:.1f} s",
    )
    assert refused == []
    assert len(models) == 2 * ROUNDS
    assert duplicates == 0, sorted(ports)


# ------------------------------------------------------------------------------------------------
# a full disk
def _fill(folder: Path) -> Path:
    """Take every free byte of ``folder``'s disk with one file; returns it."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as handle:  # unbuffered: nothing left to fail at close
        for size in (65536, 512, 1):  # down to the last bytes, so that not even a WAL page fits
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError:
                pass
    return filler


def test_full_disk_is_said_and_saving_recovers(small_disk: Path, tiny_model: Path, qtbot, figures) -> None:
    data_dir = small_disk / "data"
    done = _cli(data_dir, "models", "add", "tiny", "--model-path", str(tiny_model), "--set", "ctx_size=256")
    assert done.returncode == 0, done.stderr
    database.init_database(data_dir / "llama-dashboard.db")
    sampler = MetricsSampler(MetricsCollector(disk_path=data_dir), interval_s=0.25)
    states: list[tuple[bool, str]] = []
    sampler.saving_changed.connect(lambda saving, reason: states.append((saving, reason)))
    sampled: list[object] = []
    sampler.sampled.connect(sampled.append)
    failures = 0
    notes = []
    try:
        sampler.start()
        qtbot.waitUntil(lambda: database.count_rows()["metrics_history"] >= 2, timeout=10_000)
        filler = _fill(small_disk)

        # the sampler: says that history is not being saved, and why; live samples go on
        with qtbot.waitSignal(sampler.saving_changed, timeout=15_000) as stopped:
            pass
        saving, reason = stopped.args
        assert saving is False
        assert "is full" in reason and "free" in reason and str(data_dir) in reason, reason
        assert sampler.save_problem == reason
        rows_when_full = database.count_rows()["metrics_history"]
        seen = len(sampled)
        qtbot.waitUntil(lambda: len(sampled) >= seen + 3, timeout=10_000)

        # the CLI: a change is refused with the reason; nothing half-written, no traceback
        commands = [
            ("models", "set", "tiny", "ctx_size=512"),
            ("models", "set", "tiny", "--keep=16"),
            ("models", "add", "second", "--model-path", str(tiny_model)),
            ("models", "remove", "tiny"),
            ("models", "export", str(small_disk / "models.json")),  # not the database: a file of its own
        ]
        for command in commands:
            result = _cli(data_dir, *command)
            clear = (
                result.returncode == 1
                and "is full" in result.stderr
                and "free" in result.stderr
                and "Traceback" not in result.stderr
                and "no transaction is active" not in result.stderr
            )
            failures += not clear
            notes.append(f"{' '.join(command[:2])}: rc {result.returncode}")
            assert clear, (command, result.returncode, result.stderr)
        listed = _cli(data_dir, "models", "list")  # reading needs no room
        assert listed.returncode == 0 and "tiny" in listed.stdout, listed.stderr
        assert database.get_model_by_name("tiny")["ctx_size"] == 256
        assert database.get_model_by_name("second") is None

        # room again: saving goes on by itself, the status clears, the CLI writes
        filler.unlink()
        with qtbot.waitSignal(sampler.saving_changed, timeout=15_000) as resumed:
            pass
        assert resumed.args == [True, ""]
        assert sampler.save_problem is None
        qtbot.waitUntil(lambda: database.count_rows()["metrics_history"] > rows_when_full + 1, timeout=10_000)
        result = _cli(data_dir, "models", "set", "tiny", "ctx_size=512")
        assert result.returncode == 0, result.stderr
        assert database.get_model_by_name("tiny")["ctx_size"] == 512
        assert [s for s, _ in states] == [False, True]
    finally:
        sampler.stop()
        database.close_database()
    figures.record(
        "full disk: CLI writes refused with 'disk ... is full (... free)'; sampling recovers",
        trials=len(commands),
        failures=failures,
        note="; ".join(notes),
    )


def test_opening_on_a_full_disk_says_so(small_disk: Path, tiny_model: Path, figures) -> None:
    """No connection open: SQLite must create its shared-memory index, which a full disk refuses."""
    data_dir = small_disk / "data"
    assert _cli(data_dir, "models", "add", "tiny", "--model-path", str(tiny_model)).returncode == 0
    filler = _fill(small_disk)
    failures = 0
    commands = (("models", "list"), ("status",), ("models", "set", "tiny", "ctx_size=512"))
    results = [_cli(data_dir, *command) for command in commands]
    for result in results:
        ok = result.returncode == 0 or ("is full" in result.stderr and "free" in result.stderr)
        ok = ok and "Traceback" not in result.stderr and "damaged" not in result.stderr
        failures += not ok
    filler.unlink()
    after = _cli(data_dir, "models", "list")
    figures.record(
        "full disk: commands on a closed database",
        trials=len(results),
        failures=failures,
        note=", ".join(f"rc {r.returncode}" for r in results),
    )
    assert failures == 0, [(r.returncode, r.stderr) for r in results]
    assert results[-1].returncode == 1 and "is full" in results[-1].stderr
    assert after.returncode == 0 and "tiny" in after.stdout, after.stderr


# Adds ROUNDS process records from one process, starting at a shared instant (records of made-up
# PIDs: only the bookkeeping is raced, as two dashboards starting servers at once would race it).
RECORDER = textwrap.dedent(
    """
    import sys, time
    from llamadash.core import database, pidfile

    db_path, who, rounds, start_at = sys.argv[1:]
    database.init_database(db_path, record_start=False)
    while time.time() < float(start_at):
        time.sleep(0.001)
    base = 4_000_000 if who == "a" else 5_000_000
    for i in range(int(rounds)):
        pidfile.add_record(pidfile.InstanceRecord(pid=base + i, create_time=1.0, model=f"m-{who}-{i}", port=8080))
    """
)


def test_concurrent_process_records_are_all_kept(tmp_path: Path, figures) -> None:
    # A record lost here is a llama-server that nobody can find after a crash.
    db_path = tmp_path / "data" / "llama-dashboard.db"
    database.init_database(db_path, record_start=False)
    database.close_database()
    start_at = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RECORDER, str(db_path), who, str(ROUNDS), str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("a", "b")
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    database.init_database(db_path, record_start=False)
    try:
        from llamadash.core import pidfile

        kept = {r.model for r in pidfile.load_records()}
    finally:
        database.close_database()
    lost = {f"m-{who}-{i}" for who in "ab" for i in range(ROUNDS)} - kept
    figures.record(
        "2 processes x 100 concurrent process records added",
        trials=2 * ROUNDS,
        failures=len(lost),
        note=f"{len(lost)} records lost",
    )
    assert lost == set(), f"{len(lost)} of {2 * ROUNDS} records lost"
