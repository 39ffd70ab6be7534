"""The command-line interface, run in-process on real database files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from support import cli

from llamadash import __version__
from llamadash.cli import run


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    from support import write_tiny_gguf

    return write_tiny_gguf(tmp_path / "tiny.gguf")


def db_file(data_dir: Path) -> Path:
    return data_dir / "llama-dashboard.db"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_version_through_python_dash_m():
    result = subprocess.run(
        [sys.executable, "-m", "llamadash", "--version"], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"llamadash {__version__}"


def test_db_info_reports_path_version_and_counts(data_dir: Path):
    code, out, err = cli("db", "info", data_dir=data_dir)
    assert code == 0, err
    assert str(db_file(data_dir)) in out
    assert "version:" in out
    assert "models:" in out and "0 rows" in out
    assert db_file(data_dir).exists()


def test_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    env_dir = tmp_path / "from-env"
    monkeypatch.setenv("LLAMADASH_DATA_DIR", str(env_dir))
    out, err = io.StringIO(), io.StringIO()
    assert run(["db", "info"], out, err) == 0, err.getvalue()
    assert (env_dir / "llama-dashboard.db").exists()


def test_add_list_show_and_remove_a_model(data_dir: Path, model_file: Path):
    code, out, err = cli(
        "models",
        "add",
        "tiny",
        "--model-path",
        str(model_file),
        "--set",
        "ctx_size=256",
        "--set",
        "temperature=0.5",
        data_dir=data_dir,
    )
    assert code == 0, err
    assert "type llama" in out  # read from the GGUF header

    code, out, _ = cli("models", "list", data_dir=data_dir)
    assert code == 0 and "tiny" in out and "llama" in out and "stopped" in out

    code, out, _ = cli("models", "list", "--json", data_dir=data_dir)
    listed = json.loads(out)
    assert [m["name"] for m in listed] == ["tiny"]
    assert listed[0]["ctx_size"] == 256 and listed[0]["temperature"] == 0.5

    code, out, _ = cli("models", "show", "tiny", data_dir=data_dir)
    assert code == 0 and "ctx_size = 256" in out and "[Context & Processing]" in out

    code, out, _ = cli("models", "remove", "tiny", data_dir=data_dir)
    assert code == 0
    code, out, _ = cli("models", "list", "--json", data_dir=data_dir)
    assert json.loads(out) == []


def test_add_from_a_pasted_command_line(data_dir: Path, model_file: Path):
    line = f"llama-server -m {model_file} -c 512 --temp 0.7 -ngl all --no-mmap --port 8081 --keep 3"
    code, _, err = cli("models", "add", "pasted", "--from-command", line, data_dir=data_dir)
    assert code == 0, err
    _, out, _ = cli("models", "show", "pasted", "--json", data_dir=data_dir)
    model = json.loads(out)
    assert model["ctx_size"] == 512 and model["temperature"] == 0.7 and model["gpu_layers"] == "all"
    assert model["mmap"] is False and model["port"] == 8081
    assert model["custom_params"] == {"--keep": "3"}


def test_set_changes_and_resets_parameters(data_dir: Path, model_file: Path):
    cli("models", "add", "tiny", "--model-path", str(model_file), data_dir=data_dir)
    code, _, err = cli(
        "models", "set", "tiny", "ctx_size=1024", "flash_attn=off", "kv_offload=false", data_dir=data_dir
    )
    assert code == 0, err
    model = json.loads(cli("models", "show", "tiny", "--json", data_dir=data_dir)[1])
    assert (model["ctx_size"], model["flash_attn"], model["kv_offload"]) == (1024, "off", False)
    assert model["updated_at"] >= model["created_at"]

    code, _, err = cli("models", "set", "tiny", "ctx_size=", data_dir=data_dir)
    assert code == 0, err
    assert json.loads(cli("models", "show", "tiny", "--json", data_dir=data_dir)[1])["ctx_size"] is None


def test_secrets_are_masked_unless_asked(data_dir: Path, model_file: Path):
    cli(
        "models", "add", "tiny", "--model-path", str(model_file), "--set", "api_key=s3cret", data_dir=data_dir
    )
    _, out, _ = cli("models", "show", "tiny", data_dir=data_dir)
    assert "s3cret" not in out and "api_key = ***" in out
    _, out, _ = cli("models", "show", "tiny", "--json", data_dir=data_dir)
    assert "s3cret" not in out
    _, out, _ = cli("models", "show", "tiny", "--json", "--show-secrets", data_dir=data_dir)
    assert json.loads(out)["api_key"] == ["s3cret"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models", "set", "tiny", "ctx_size=big"], "ctx_size"),
        (["models", "set", "tiny", "port=70000"], "port"),
        (["models", "set", "tiny", "flash_attn=maybe"], "flash_attn"),
        (["models", "set", "tiny", "no_such_param=1"], "no_such_param"),
        (["models", "set", "tiny", "ctx_size"], "KEY=VALUE"),
        (["models", "set", "ghost", "ctx_size=1"], "no model named 'ghost'"),
        (["models", "show", "ghost"], "no model named 'ghost'"),
        (["models", "remove", "ghost"], "no model named 'ghost'"),
        (["models", "add", "tiny", "--model-path", "/nonexistent/model.gguf"], "already exists"),
        (["models", "add", "other", "--model-path", "/nonexistent/model.gguf"], "does not exist"),
        (["models", "add", "other", "--from-command", "llama-server -m 'unclosed"], "quot"),
        (["models", "add", "other", "--from-command", "llama-server -m x.gguf -c big"], "ctx"),
        (["metrics", "--minutes", "0"], "positive"),
    ],
)
def test_user_mistakes_are_one_line_errors_and_change_nothing(
    data_dir: Path, model_file: Path, args, message
):
    assert cli("models", "add", "tiny", "--model-path", str(model_file), data_dir=data_dir)[0] == 0
    before = json.loads(cli("models", "list", "--json", data_dir=data_dir)[1])
    code, out, err = cli(*args, data_dir=data_dir)
    assert code == 1
    assert err.startswith("llamadash: error: ") and message.lower() in err.lower()
    assert "Traceback" not in err and out == ""
    assert json.loads(cli("models", "list", "--json", data_dir=data_dir)[1]) == before


def test_unknown_command_is_a_usage_error(data_dir: Path):
    code, _, _ = cli("frobnicate", data_dir=data_dir)
    assert code == 2


def test_export_and_import_round_trip(data_dir: Path, model_file: Path, tmp_path: Path):
    cli("models", "add", "tiny", "--model-path", str(model_file), data_dir=data_dir)
    backup = tmp_path / "backup.db"
    code, out, err = cli("db", "export", str(backup), data_dir=data_dir)
    assert code == 0, err
    assert backup.exists()
    # never overwrite without --force
    code, _, err = cli("db", "export", str(backup), data_dir=data_dir)
    assert code == 1 and "exists" in err
    assert cli("db", "export", str(backup), "--force", data_dir=data_dir)[0] == 0

    other = tmp_path / "other-data"
    code, out, err = cli("db", "import", str(backup), data_dir=other)
    assert code == 0, err
    assert "1 models" in out
    assert [m["name"] for m in json.loads(cli("models", "list", "--json", data_dir=other)[1])] == ["tiny"]


@pytest.mark.parametrize("content", [b"", b"\x00random bytes" * 100, b"SQLite format 3\x00" + b"\x01" * 50])
def test_import_of_a_bad_file_keeps_the_database(data_dir: Path, model_file: Path, tmp_path: Path, content):
    cli("models", "add", "tiny", "--model-path", str(model_file), data_dir=data_dir)
    cli("db", "info", data_dir=data_dir)  # closes cleanly: the file is settled
    before = digest(db_file(data_dir))
    bad = tmp_path / "bad.db"
    bad.write_bytes(content)
    code, _out, err = cli("db", "import", str(bad), data_dir=data_dir)
    assert code == 1 and err.startswith("llamadash: error: ") and "Traceback" not in err
    assert digest(db_file(data_dir)) == before


def test_import_of_another_applications_database_is_refused(data_dir: Path, tmp_path: Path):
    cli("db", "info", data_dir=data_dir)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    code, _, err = cli("db", "import", str(foreign), data_dir=data_dir)
    assert code == 1 and "llamadash" in err.lower()


def test_vacuum_and_metrics(data_dir: Path):
    from llamadash.core import database as db

    db.init_database(db_file(data_dir))
    db.save_metrics({"cpu_usage": 12.5, "memory_usage": 40.0, "active_models": 1, "uptime": 3})
    db.close_database()
    code, out, err = cli("metrics", data_dir=data_dir)
    assert code == 0, err
    assert "12.5" in out and "n/a" in out  # no GPU reading: n/a, never 0
    rows = json.loads(cli("metrics", "--json", data_dir=data_dir)[1])
    assert rows[-1]["cpu_usage"] == 12.5 and rows[-1]["gpu_usage"] is None
    code, out, _ = cli("db", "vacuum", data_dir=data_dir)
    assert code == 0 and "vacuumed" in out


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX-only")
def test_database_file_is_private(data_dir: Path):
    cli("db", "info", data_dir=data_dir)
    assert db_file(data_dir).stat().st_mode & 0o077 == 0


def test_custom_flags_are_set_as_switches_and_taken_out(data_dir: Path, model_file: Path):
    assert cli("models", "add", "m", "--model-path", str(model_file), data_dir=data_dir)[0] == 0
    # --flag=VALUE right after the name, as the README writes it (no "--" needed)
    code, _, err = cli("models", "set", "m", "--cors-origins=http://x", "ctx_size=512", data_dir=data_dir)
    assert code == 0, err
    code, _, err = cli("models", "set", "m", "--cors-credentials", data_dir=data_dir)  # a switch
    assert code == 0, err
    shown = json.loads(cli("models", "show", "m", "--json", data_dir=data_dir)[1])
    assert shown["custom_params"] == {"--cors-origins": "http://x", "--cors-credentials": True}
    assert shown["ctx_size"] == 512
    code, _, err = cli("models", "set", "m", "--cors-credentials=", data_dir=data_dir)  # taken out
    assert code == 0, err
    shown = json.loads(cli("models", "show", "m", "--json", data_dir=data_dir)[1])
    assert shown["custom_params"] == {"--cors-origins": "http://x"}
    code, _, err = cli("models", "set", "m", "--not-there=", data_dir=data_dir)
    assert code == 1 and "m has no custom flag --not-there (it has: --cors-origins)" in err


def test_a_pasted_command_lines_relative_paths_are_made_absolute(data_dir, model_file, monkeypatch):
    monkeypatch.chdir(model_file.parent)
    code, _, err = cli(
        "models", "add", "rel", "--from-command", f"llama-server -m {model_file.name}", data_dir=data_dir
    )
    assert code == 0, err
    shown = json.loads(cli("models", "show", "rel", "--json", data_dir=data_dir)[1])
    assert shown["model_path"] == str(model_file.resolve())


def test_exporting_a_name_twice_writes_it_once(data_dir: Path, model_file: Path, tmp_path: Path):
    cli("models", "add", "a", "--model-path", str(model_file), data_dir=data_dir)
    target = tmp_path / "a.json"
    code, out, err = cli("models", "export", str(target), "a", "a", data_dir=data_dir)
    assert code == 0 and "exported 1 model(s)" in out, err
    other = tmp_path / "other"
    assert cli("models", "import", str(target), data_dir=other)[0] == 0  # its own import takes it


def test_a_refused_llama_server_path_keeps_the_configured_one(data_dir: Path, tmp_path: Path):
    from llamadash.core import database as db

    db.init_database(db_file(data_dir))
    db.set_metadata("llama_server_path", "/opt/llama/llama-server")
    db.close_database()
    code, _, err = cli("llama-server", "--clear", "--path", str(tmp_path / "missing"), data_dir=data_dir)
    assert code == 1 and "does not exist" in err
    db.init_database(db_file(data_dir))
    try:
        assert db.get_metadata("llama_server_path") == "/opt/llama/llama-server"
    finally:
        db.close_database()


def test_messages_name_the_way_out(data_dir: Path, model_file: Path, tmp_path: Path):
    cli("models", "add", "a", "--model-path", str(model_file), data_dir=data_dir)
    assert cli("models", "list", "--status", "running", data_dir=data_dir)[1] == "no model matches\n"
    code, _, err = cli("models", "export", str(tmp_path / "nowhere" / "x.json"), data_dir=data_dir)
    assert code == 1 and "the folder" in err and "does not exist" in err
    code, _, err = cli("models", "export", str(tmp_path), data_dir=data_dir)
    assert code == 1 and "is a folder" in err
    (tmp_path / "b.db").write_bytes(b"")
    code, _, err = cli("db", "export", str(tmp_path / "b.db"), data_dir=data_dir)
    assert code == 1 and "--force" in err
    code, _, err = cli("run", "a", "--ready-timeout", "inf", data_dir=data_dir)
    assert code == 1 and "--ready-timeout must be" in err and "Traceback" not in err


def test_a_closed_pipe_is_not_an_error(data_dir: Path):
    import time

    from llamadash.core import database as db

    db.init_database(db_file(data_dir))
    now = int(time.time() * 1000)
    for i in range(600):  # far more JSON than a pipe holds, so the writer meets the closed pipe
        db.save_metrics({"timestamp": now - i * 1000, "cpu_usage": 1.0, "memory_usage": 2.0})
    db.close_database()
    proc = subprocess.run(
        f"{sys.executable} -m llamadash --data-dir {data_dir} metrics --json | head -c 1",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.stdout == "["
    assert proc.stderr == ""  # no "llamadash: error: [Errno 32] Broken pipe"


def test_an_empty_data_dir_is_refused_not_taken_for_the_default(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("LLAMADASH_DATA_DIR", raising=False)
    out, err = io.StringIO(), io.StringIO()
    assert run(["--data-dir", "", "models", "list"], out, err) == 2
    assert "--data-dir is empty" in err.getvalue()
    assert not (tmp_path / "xdg").exists()


def test_new_models_get_a_port_of_their_own(data_dir: Path, model_file: Path):
    for name in ("a", "b"):
        assert cli("models", "add", name, "--model-path", str(model_file), data_dir=data_dir)[0] == 0
    cli("models", "add", "c", "--model-path", str(model_file), "--set", "port=9000", data_dir=data_dir)
    ports = {m["name"]: m["port"] for m in json.loads(cli("models", "list", "--json", data_dir=data_dir)[1])}
    assert ports == {"a": 8080, "b": 8081, "c": 9000}


def test_no_llama_server_says_how_to_set_one(data_dir: Path, model_file: Path, tmp_path: Path, monkeypatch):
    from support import hide_llama_server

    hide_llama_server(monkeypatch, tmp_path)
    cli("models", "add", "a", "--model-path", str(model_file), data_dir=data_dir)
    code, _, err = cli("models", "command", "a", data_dir=data_dir)
    first, hint = err.splitlines()
    assert code == 1 and first.startswith(
        "llamadash: error: no llama-server found: not configured in Settings"
    )
    assert hint == "llamadash: set one with 'llamadash llama-server --path BIN', or set LLAMA_SERVER_BIN"
