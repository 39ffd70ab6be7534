"""kill -9 of ``llamadash run`` at any moment leaves nothing that nobody can find.

Real ``llamadash run`` subprocesses with the tiny model, one data directory for the whole module.
After each kill: SQLite's ``integrity_check`` is ``ok``, the library's rows are intact, and every
llama-server process left behind is an *orphan* that the next dashboard finds (``status --json``,
or the window's :meth:`InstanceManager.orphans`) and stops (``status --stop-orphans``,
:meth:`InstanceManager.stop_orphans`). A server that is left and not found is an *untracked* one:
the figure that must stay at 0.

The moment right after the spawn is hit deterministically: the test polls the children of ``run``
in a tight loop and kills at the spawn plus an offset spread evenly over 0-50 ms.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from support import free_port, raw_sqlite

from llamadash import cli
from llamadash.core import database
from llamadash.core.llama_server import METADATA_KEY

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
SPAWN_KILLS = 40
SPAWN_WINDOW_MS = 50.0
RANDOM_KILLS = 20
RANDOM_WINDOW_S = 5.0


@dataclass
class Lab:
    data_dir: Path
    model_path: Path
    port: int
    binary: Path

    @property
    def database(self) -> Path:
        return self.data_dir / "llama-dashboard.db"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, llama_server: Path, tiny_model: Path) -> Iterator[Lab]:
    data_dir = tmp_path_factory.mktemp("kills") / "data"
    database.init_database(data_dir=data_dir)
    try:
        database.set_metadata(METADATA_KEY, str(llama_server))
        database.save_model(
            {
                "name": "tiny",
                "type": "llama",
                "status": "stopped",
                "model_path": str(tiny_model),
                "port": free_port(),
                "ctx_size": 256,
                "threads": 1,
                "n_parallel": 1,
            }
        )
        port = int(database.get_model_by_name("tiny")["port"])
    finally:
        database.close_database()
    made = Lab(data_dir, tiny_model, port, llama_server)
    yield made
    kill_all(servers_of(made))


def start_run(lab: Lab) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "llamadash", "--data-dir", str(lab.data_dir), "run", "tiny"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def servers_of(lab: Lab) -> list[psutil.Process]:
    """Every live llama-server of this lab: found by its command line (our tiny model's file), not by
    the markers or records under test."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE or proc.name() != "llama-server":
                continue
            if str(lab.model_path) in proc.cmdline():
                found.append(proc)
        except psutil.Error:
            continue
    return found


def kill_all(procs: list[psutil.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=5)


def wait_for_spawn(run: subprocess.Popen, timeout_s: float = 60.0) -> tuple[float, int]:
    """(monotonic time, pid) of the first child of ``run``, polled in a tight loop."""
    parent = psutil.Process(run.pid)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            children = parent.children()
        except psutil.NoSuchProcess:
            children = []
        if children:
            return time.monotonic(), children[0].pid
        if run.poll() is not None:
            raise AssertionError(f"llamadash run exited with {run.returncode} before starting llama-server")
    raise AssertionError("llamadash run started no llama-server within 60 s")


def settle(pid: int | None, timeout_s: float = 3.0) -> None:
    """Let a child caught between fork and exec finish its exec (or die) before we look."""
    if pid is None:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE or proc.name() == "llama-server":
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.005)


def cli_json(lab: Lab, *args: str) -> dict:
    out, err = io.StringIO(), io.StringIO()
    code = cli.run(["--data-dir", str(lab.data_dir), "status", "--json", *args], out=out, err=err)
    assert code == 0, err.getvalue()
    return json.loads(out.getvalue())


def library_rows(lab: Lab) -> tuple[str, list[tuple]]:
    with raw_sqlite(lab.database) as conn:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
        models = conn.execute("SELECT name, model_path, port, ctx_size FROM models ORDER BY id").fetchall()
        binary = conn.execute("SELECT value FROM metadata WHERE key = ?", (METADATA_KEY,)).fetchall()
    return check, [*models, *binary]


def find_and_stop(lab: Lab, via_manager: bool, qapp) -> tuple[set[int], set[int]]:
    """(orphan pids the dashboard found, pids it stopped), by the CLI or by the window's manager."""
    if not via_manager:
        found = {o["pid"] for o in cli_json(lab)["orphans"]}
        stopped = set(cli_json(lab, "--stop-orphans")["stopped_orphans"])
        return found, stopped
    from llamadash.services.manager import InstanceManager

    manager = InstanceManager(data_dir=lab.data_dir, quit_with_app=False)
    try:
        found = {o["pid"] for o in manager.orphans()}
        stopped = set(manager.stop_orphans())
    finally:
        manager.close()
        manager.deleteLater()
        database.close_database()
        qapp.processEvents()
    return found, stopped


def check_after_kill(lab: Lab, expected_rows: list[tuple], via_manager: bool, qapp) -> list[str]:
    """What went wrong after one kill (empty: nothing)."""
    problems = []
    left = {p.pid for p in servers_of(lab)}
    try:
        found, stopped = find_and_stop(lab, via_manager, qapp)
        if found - left:
            problems.append(f"orphans that are no server of this data dir: {sorted(found - left)}")
        if not found <= stopped:
            problems.append(f"found but not stopped: {sorted(found - stopped)}")
        # A server may also end by itself meanwhile (SIGPIPE on the dead dashboard's pipe): only one
        # that is still running after the stop was not found.
        deadline = time.monotonic() + 5
        remaining = [p.pid for p in servers_of(lab)]
        while remaining and set(remaining) & found and time.monotonic() < deadline:
            time.sleep(0.02)
            remaining = [p.pid for p in servers_of(lab)]
        if remaining:
            problems.append(f"untracked llama-server(s) still running: {remaining} (found {sorted(found)})")
        check, rows = library_rows(lab)
        if check != "ok":
            problems.append(f"integrity_check: {check}")
        if rows != expected_rows:
            problems.append(f"rows changed: {rows} != {expected_rows}")
    finally:
        kill_all(servers_of(lab))  # a failing trial leaves nothing for the next one
    return problems


def warm_up(lab: Lab) -> list[tuple]:
    """One run that gets as far as the spawn, so that the binary's --help probe is cached: the first
    child of ``run`` is then llama-server itself."""
    run = start_run(lab)
    try:
        wait_for_spawn(run)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(p.name() == "llama-server" for p in servers_of(lab)):
            time.sleep(0.02)
        time.sleep(0.5)
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(30)
    kill_all(servers_of(lab))
    check, rows = library_rows(lab)
    assert check == "ok"
    return rows


def test_kill_9_right_after_the_server_spawns_leaves_no_untracked_server(lab: Lab, figures, qapp):
    expected = warm_up(lab)
    failures: list[str] = []
    started = time.monotonic()
    for trial in range(SPAWN_KILLS):
        offset_s = SPAWN_WINDOW_MS / 1000 * trial / (SPAWN_KILLS - 1)
        run = start_run(lab)
        child = None
        try:
            spawned_at, child = wait_for_spawn(run)
            while time.monotonic() < spawned_at + offset_s:
                pass  # a busy wait: sleep() overshoots by more than the step
            run.kill()
        finally:
            if run.poll() is None:
                run.kill()
            run.wait(10)
        settle(child)
        problems = check_after_kill(lab, expected, via_manager=trial % 4 == 3, qapp=qapp)
        if problems:
            failures.append(f"trial {trial} (+{offset_s * 1000:.1f} ms): {'; '.join(problems)}")
    elapsed = time.monotonic() - started
    figures.record(
        "kill -9 of run 0-50 ms after llama-server spawns",
        trials=SPAWN_KILLS,
        failures=len(failures),
        note=f"untracked servers, integrity, rows; every 4th found by the window's manager; {elapsed:.0f} s",
    )
    assert failures == []


def test_kill_9_at_random_moments_leaves_no_untracked_server(lab: Lab, figures, qapp):
    expected = warm_up(lab)
    rng = random.Random(13)
    failures: list[str] = []
    started = time.monotonic()
    for trial in range(RANDOM_KILLS):
        delay_s = rng.uniform(0.0, RANDOM_WINDOW_S)
        run = start_run(lab)
        try:
            time.sleep(delay_s)
            children = [c.pid for c in psutil.Process(run.pid).children()] if run.poll() is None else []
            run.kill()
        finally:
            run.wait(10)
        for pid in children:
            settle(pid)
        problems = check_after_kill(lab, expected, via_manager=trial % 4 == 3, qapp=qapp)
        if problems:
            failures.append(f"trial {trial} (at {delay_s:.2f} s): {'; '.join(problems)}")
    elapsed = time.monotonic() - started
    figures.record(
        "kill -9 of run at random moments 0-5 s",
        trials=RANDOM_KILLS,
        failures=len(failures),
        note=f"untracked servers, integrity, rows; {elapsed:.0f} s",
    )
    assert failures == []
