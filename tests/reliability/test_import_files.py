"""Crafted import files, tried as an attacker would: nothing in a file decides what runs.

Each file is an export of a real library, changed with plain ``sqlite3`` (or a models file made by
hand), imported with the real CLI in a subprocess (``llamadash --data-dir D db import FILE``).
Each must be refused or cleaned; nothing in it may run (a trigger's DELETE never happens, a
would-be binary never writes its marker file); on refusal the current database is byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support import run_cli

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(data_dir, *args)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def evil_script(folder: Path, name: str = "evil.sh") -> tuple[Path, Path]:
    """A would-be binary that leaves a marker file when anything runs it."""
    marker = folder / f"{name}.ran"
    script = folder / name
    script.write_text(f"#!/bin/sh\necho ran >> '{marker}'\n")
    script.chmod(0o755)
    return script, marker


@pytest.fixture
def world(tmp_path: Path, llama_server: Path, tiny_model: Path):
    """A library to export (the attacker's copy) and the victim's data directory."""
    source = tmp_path / "source"
    ok(cli(source, "models", "add", "tiny", "--model-path", str(tiny_model), "--set", "port=18181"))
    ok(cli(source, "models", "add", "other", "--model-path", str(tiny_model), "--set", "port=18182"))
    with sqlite3.connect(source / "llama-dashboard.db") as conn:
        conn.executemany(
            "INSERT INTO metrics_history (timestamp, created_at, cpu_usage) VALUES (?, ?, ?)",
            [(1_700_000_000_000 + i, 1_700_000_000_000 + i, 1.0) for i in range(20)],
        )
    victim = tmp_path / "victim"
    ok(cli(victim, "llama-server", "--path", str(llama_server)))
    ok(cli(victim, "models", "add", "mine", "--model-path", str(tiny_model), "--set", "port=18183"))

    def crafted(name: str, *sql: str) -> Path:
        export = tmp_path / f"{name}.db"
        ok(cli(source, "db", "export", str(export), "--force"))
        with sqlite3.connect(export) as conn:
            for statement in sql:
                conn.execute(statement)
        conn.close()
        return export

    return source, victim, crafted


def names(victim: Path) -> list[str]:
    return sorted(m["name"] for m in json.loads(ok(cli(victim, "models", "list", "--json"))))


def schema(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall()
    conn.close()
    return sorted(rows)


def test_crafted_database_files(world, tmp_path, llama_server, figures):
    _source, victim, crafted = world
    db = victim / "llama-dashboard.db"
    script, marker = evil_script(tmp_path)
    results: list[tuple[str, str | None]] = []

    def scenario(name: str, check: Callable[[], None]) -> None:
        try:
            check()
        except AssertionError as exc:
            results.append((name, str(exc) or repr(exc)))
        else:
            results.append((name, None))

    def cleaned_trigger() -> None:
        export = crafted(
            "trigger", "CREATE TRIGGER evil AFTER INSERT ON metrics_history BEGIN DELETE FROM models; END"
        )
        out = ok(cli(victim, "db", "import", str(export)))
        assert "trigger evil (on metrics_history)" in out
        with sqlite3.connect(db) as conn:  # what the sampler does every second
            conn.execute("INSERT INTO metrics_history (timestamp, created_at) VALUES (1, 1)")
        conn.close()
        assert names(victim) == ["other", "tiny"]  # the DELETE never ran
        assert not [n for kind, n in schema(db) if kind == "trigger"]
        again = tmp_path / "re-export.db"
        ok(cli(victim, "db", "export", str(again), "--force"))
        assert not [n for kind, n in schema(again) if kind == "trigger"]  # not carried on either

    def cleaned_view() -> None:
        export = crafted("view", "CREATE VIEW everything AS SELECT * FROM models")
        out = ok(cli(victim, "db", "import", str(export)))
        assert "view everything" in out
        assert ("view", "everything") not in schema(db)

    def cleaned_virtual_table() -> None:
        try:
            export = crafted(
                "fts", "CREATE VIRTUAL TABLE docs USING fts5(body)", "INSERT INTO docs VALUES ('x')"
            )
        except sqlite3.OperationalError:
            export = crafted("rtree", "CREATE VIRTUAL TABLE docs USING rtree(id, x0, x1)")
        out = ok(cli(victim, "db", "import", str(export)))
        assert "virtual table docs" in out
        assert not [n for _, n in schema(db) if n.startswith("docs")]

    def binary_in_metadata() -> None:
        export = crafted(
            "binary",
            f"INSERT OR REPLACE INTO metadata (key, value) VALUES ('llama_server_path', '{script}')",
            "CREATE TRIGGER rewrite AFTER INSERT ON metrics_history BEGIN "
            f"UPDATE metadata SET value = '{script}' WHERE key = 'llama_server_path'; END",
        )
        out = ok(cli(victim, "db", "import", str(export)))
        assert "llama_server_path" in out and "kept this computer's own settings" in out
        with sqlite3.connect(db) as conn:
            conn.execute("INSERT INTO metrics_history (timestamp, created_at) VALUES (2, 2)")
        conn.close()
        shown = ok(cli(victim, "llama-server"))
        assert str(llama_server) in shown and str(script) not in shown
        command = ok(cli(victim, "models", "command", "tiny"))
        assert command.startswith(str(llama_server)) or str(llama_server) in command.split()[0]
        assert not marker.exists()

    def refused(name: str, message: str, *sql: str) -> Callable[[], None]:
        def check() -> None:
            export = crafted(name, *sql)
            before = file_hash(db)  # the CLI closed it: the file is the whole database
            listing = sorted(p.name for p in victim.iterdir())
            done = cli(victim, "db", "import", str(export))
            assert done.returncode != 0
            assert message in done.stderr, done.stderr
            assert "Traceback" not in done.stderr
            assert file_hash(db) == before
            assert sorted(p.name for p in victim.iterdir()) == listing

        return check

    scenario("trigger: left out, never fires, not re-exported", cleaned_trigger)
    scenario("view: left out", cleaned_view)
    scenario("virtual table: left out", cleaned_virtual_table)
    scenario("metadata names a binary (and a trigger rewrites it): current binary kept", binary_in_metadata)
    scenario(
        "metadata as a view: refused",
        refused(
            "metadata-view",
            "its metadata is a view, not a table",
            "ALTER TABLE metadata RENAME TO real_metadata",
            "CREATE VIEW metadata AS SELECT * FROM real_metadata",
        ),
    )
    scenario(
        "port = 'abc': refused",
        refused(
            "port",
            "the column port",
            "UPDATE models SET port = 'abc' WHERE name = 'tiny'",
        ),
    )
    scenario(
        "a 50 MB text: refused",
        refused(
            "big-text",
            "the column api_key holds 52,428,800 characters",
            "UPDATE models SET api_key = printf('%.*c', 52428800, 'k') WHERE name = 'other'",
        ),
    )
    scenario(
        "metrics value is text: refused",
        refused(
            "metrics-text",
            "the column cpu_usage",
            "UPDATE metrics_history SET cpu_usage = 'x' WHERE id = 3",
        ),
    )
    failures = [r for r in results if r[1] is not None]
    figures.record(
        "crafted database files (trigger, view, virtual table, binary in metadata, metadata view, bad values)",
        trials=len(results),
        failures=len(failures),
        note="refused or cleaned; the marker of the would-be binary never written; refusals byte-identical",
    )
    assert not failures, failures
    assert not marker.exists()


def test_models_files_cannot_choose_the_program(world, tmp_path, llama_server, tiny_model, figures):
    _source, victim, _crafted = world
    db = victim / "llama-dashboard.db"
    script, marker = evil_script(tmp_path, "evil-server.sh")
    plain, plain_marker = evil_script(tmp_path, "evil.sh")
    trials = failures = 0

    shell = tmp_path / "models.sh"
    shell.write_text(f"#!/bin/sh\n# shelly\n{script} -m {tiny_model} --port 18190\n")
    trials += 1
    out = ok(cli(victim, "models", "import", str(shell)))
    command = ok(cli(victim, "models", "command", "shelly"))
    with sqlite3.connect(db) as conn:
        stored = " ".join(str(v) for row in conn.execute("SELECT * FROM metadata") for v in row)
        stored += " ".join(str(v) for row in conn.execute("SELECT * FROM models") for v in row)
    conn.close()
    if "added" not in out or str(script) in stored or str(script) in command or marker.exists():
        failures += 1

    other = tmp_path / "plain.sh"
    other.write_text(f"{plain} -m {tiny_model}\n")
    trials += 1
    before = file_hash(db)
    done = cli(victim, "models", "import", str(other))
    if done.returncode == 0 or file_hash(db) != before or plain_marker.exists():
        failures += 1

    document = {
        "format": "llamadash-models",
        "version": 1,
        "models": [{"name": "j", "model_path": str(tiny_model), "llama_server_path": str(script)}],
    }
    (tmp_path / "m.json").write_text(json.dumps(document))
    trials += 1
    done = cli(victim, "models", "import", str(tmp_path / "m.json"))
    if done.returncode == 0 or "llama_server_path" not in done.stderr:
        failures += 1
    command = ok(cli(victim, "models", "command", "mine"))
    if str(llama_server) not in command:
        failures += 1
    figures.record(
        "models files (shell line naming a program, plain script, JSON with a binary key)",
        trials=trials,
        failures=failures,
        note="no program of a file is stored or run",
    )
    assert failures == 0
    assert not marker.exists() and not plain_marker.exists()


def test_a_killed_import_leaves_no_staging_file_behind(tmp_path, tiny_model, figures):
    """``db import`` SIGKILLed while its staging file exists: the next start removes the file, and
    the database is the one from before the import."""
    import os
    import signal
    import time

    source = tmp_path / "big"
    ok(cli(source, "db", "info"))
    with sqlite3.connect(source / "llama-dashboard.db") as conn:  # enough rows to take a while to stage
        conn.executemany(
            "INSERT INTO models (name, type, status, ctx_size, port) VALUES (?, 'llama', 'stopped', 4096, ?)",
            [(f"m-{i:05d}", 20000 + i) for i in range(8000)],
        )
    conn.close()
    export = tmp_path / "big-export.db"
    ok(cli(source, "db", "export", str(export)))
    trials, failures, caught = 3, 0, 0
    for trial in range(trials):
        victim = tmp_path / f"victim-{trial}"
        ok(cli(victim, "models", "add", "mine", "--model-path", str(tiny_model)))
        before = file_hash(victim / "llama-dashboard.db")
        importer = subprocess.Popen(
            [sys.executable, "-m", "llamadash", "--data-dir", str(victim), "db", "import", str(export)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        staged: list[Path] = []
        while not staged and importer.poll() is None and time.monotonic() < deadline:
            staged = [p for p in victim.iterdir() if ".import-" in p.name]
        if staged:
            os.kill(importer.pid, signal.SIGKILL)
        importer.wait()
        caught += bool(staged) and importer.returncode == -signal.SIGKILL
        left_after_kill = [p.name for p in victim.iterdir() if ".import-" in p.name]
        unchanged = file_hash(victim / "llama-dashboard.db") == before
        info = cli(victim, "db", "info")
        left = [p.name for p in victim.iterdir() if ".import-" in p.name]
        if importer.returncode == -signal.SIGKILL:
            intact = unchanged and names(victim) == ["mine"]
            if info.returncode != 0 or left or not left_after_kill or not intact:
                failures += 1
    figures.record(
        "db import SIGKILLed while staging (8,000 models), then db info",
        trials=trials,
        failures=failures,
        note=f"{caught} kills landed while the staging file existed; each: the file removed, the database as before",
    )
    assert caught >= 1
    assert failures == 0
