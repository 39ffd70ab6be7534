"""The CLI with values another program stored, ports as stored, bounded input (in-process, real files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import cli, raw_sqlite


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    from support import write_tiny_gguf

    return write_tiny_gguf(tmp_path / "tiny.gguf")


@pytest.fixture
def tiny(data_dir: Path, model_file: Path) -> str:
    code, _out, err = cli("models", "add", "tiny", "--model-path", str(model_file), data_dir=data_dir)
    assert code == 0, err
    return "tiny"


def store(data_dir: Path, sql: str) -> None:
    """Write as another program would (sqlite3 directly)."""
    with raw_sqlite(data_dir / "llama-dashboard.db") as conn:
        conn.execute(sql)


WARNING = "llamadash: warning: model 'tiny': port: the value stored in the database is not valid"


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("status", "--json"),
        ("models", "list"),
        ("models", "list", "--json"),
        ("models", "show", "tiny"),
        ("models", "show", "tiny", "--json"),
    ],
)
def test_a_bad_stored_port_is_warned_about_and_crashes_nothing(data_dir: Path, tiny: str, args):
    store(data_dir, "UPDATE models SET port = 'abc'")
    code, out, err = cli(*args, data_dir=data_dir)
    assert code == 0, err
    assert WARNING in err and "got 'abc'" in err
    assert "models set tiny port=VALUE" in err
    assert "tiny" in out


def test_run_of_a_model_with_a_bad_stored_value_refuses_naming_model_and_column(data_dir: Path, tiny: str):
    store(data_dir, "UPDATE models SET port = 'abc', temperature = 'hot'")
    code, _out, err = cli("run", "tiny", data_dir=data_dir)
    assert code == 1
    assert err.startswith("llamadash: error: tiny is not started: model 'tiny': ")
    assert "port: the value stored in the database is not valid: expected a whole number, got 'abc'" in err
    assert "temperature: the value stored in the database is not valid" in err
    assert "Traceback" not in err


def test_models_command_names_the_bad_column(data_dir: Path, tiny: str, llama_server):
    store(data_dir, "UPDATE models SET ctx_size = 'lots'")
    code, _out, err = cli("models", "command", "tiny", data_dir=data_dir)
    assert code == 1
    assert "model 'tiny': ctx_size: the value stored in the database is not valid" in err


def test_a_bad_stored_value_can_be_fixed_with_models_set(data_dir: Path, tiny: str):
    store(data_dir, "UPDATE models SET port = 'abc'")
    code, out, err = cli("models", "set", "tiny", "port=8090", data_dir=data_dir)
    assert code == 0, err
    code, out, err = cli("models", "list", data_dir=data_dir)
    assert err == "" and "8090" in out


def test_a_stored_port_0_is_shown_as_stored_not_as_8080(data_dir: Path, tiny: str):
    store(data_dir, "UPDATE models SET port = 0")
    code, out, err = cli("models", "list", data_dir=data_dir)
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("tiny"))
    assert "0 (invalid)" in row and "8080" not in row
    assert "port: the value stored in the database is not valid: 0 is below the minimum 1" in err
    code, out, err = cli("status", "--json", data_dir=data_dir)
    assert json.loads(out)["models"][0]["port"] is None  # no port llama-server could use
    code, out, err = cli("status", data_dir=data_dir)
    assert "8080" not in out and "invalid" in out


def test_a_model_without_a_port_lists_the_one_llama_server_uses(data_dir: Path, tiny: str):
    store(data_dir, "UPDATE models SET port = NULL")
    code, out, err = cli("models", "list", data_dir=data_dir)
    assert code == 0 and err == ""
    assert "8080" in next(line for line in out.splitlines() if line.startswith("tiny"))


def test_a_huge_api_key_is_refused_and_not_repeated(data_dir: Path, tiny: str):
    key = "k" * 1_000_000
    code, _out, err = cli("models", "set", "tiny", f"api_key={key}", data_dir=data_dir)
    assert code == 1
    assert "api_key" in err and "1,000,000 characters" in err and "kkkkkkkk" not in err
    assert len(err) < 300


def test_a_10_kb_value_is_not_repeated_in_full(data_dir: Path, tiny: str):
    code, _out, err = cli("models", "set", "tiny", "flash_attn=" + "x" * 10_000, data_dir=data_dir)
    assert code == 1
    assert "10000 characters" in err and len(err) < 400
