"""``llamadash models set NAME auto_restart=on|off`` and what ``models show`` says of it (real files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import cli, raw_sqlite


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def tiny(data_dir: Path, tmp_path: Path) -> str:
    from support import write_tiny_gguf

    model_file = write_tiny_gguf(tmp_path / "tiny.gguf")
    code, _out, err = cli("models", "add", "tiny", "--model-path", str(model_file), data_dir=data_dir)
    assert code == 0, err
    return "tiny"


def shown(data_dir: Path, name: str) -> tuple[str, dict]:
    code, text, err = cli("models", "show", name, data_dir=data_dir)
    assert code == 0, err
    code, raw, err = cli("models", "show", name, "--json", data_dir=data_dir)
    assert code == 0, err
    return text, json.loads(raw)


def test_a_new_model_shows_auto_restart_off(data_dir: Path, tiny: str):
    text, model = shown(data_dir, tiny)
    assert "auto_restart: off" in text.splitlines()
    assert model["auto_restart"] is False


@pytest.mark.parametrize(("word", "enabled"), [("on", True), ("true", True), ("1", True), ("ON", True)])
def test_set_auto_restart_on_and_back_off(data_dir: Path, tiny: str, word: str, enabled: bool):
    code, out, err = cli("models", "set", tiny, f"auto_restart={word}", data_dir=data_dir)
    assert code == 0, err
    assert out.strip() == "updated tiny: auto_restart"
    text, model = shown(data_dir, tiny)
    assert "auto_restart: on" in text.splitlines()
    assert model["auto_restart"] is enabled
    with raw_sqlite(data_dir / "llama-dashboard.db") as conn:  # the row the manager reads at a start
        assert conn.execute("SELECT auto_restart FROM models WHERE name = ?", (tiny,)).fetchone() == (1,)

    for off in ("off", "false", "0"):
        assert cli("models", "set", tiny, "auto_restart=on", data_dir=data_dir)[0] == 0
        code, _out, err = cli("models", "set", tiny, f"auto_restart={off}", data_dir=data_dir)
        assert code == 0, err
        text, model = shown(data_dir, tiny)
        assert "auto_restart: off" in text.splitlines() and model["auto_restart"] is False


@pytest.mark.parametrize("word", ["maybe", "", "2", "onn"])
def test_other_values_are_refused_and_change_nothing(data_dir: Path, tiny: str, word: str):
    before = shown(data_dir, tiny)[1]
    code, out, err = cli("models", "set", tiny, f"auto_restart={word}", data_dir=data_dir)
    assert code != 0 and out == ""
    assert "auto_restart is on or off" in err and repr(word) in err
    assert len(err.strip().splitlines()) == 1
    assert shown(data_dir, tiny)[1] == before


def test_auto_restart_with_parameters_in_one_set(data_dir: Path, tiny: str):
    code, out, err = cli("models", "set", tiny, "auto_restart=yes", "ctx_size=1024", data_dir=data_dir)
    assert code == 0, err
    assert out.strip() == "updated tiny: auto_restart, ctx_size"
    model = shown(data_dir, tiny)[1]
    assert (model["auto_restart"], model["ctx_size"]) == (True, 1024)


def test_auto_restart_is_not_part_of_the_command_line(data_dir: Path, tiny: str, llama_server: Path):
    # the real llama-server of the test extra builds the command (missing is a failure, not a skip)
    assert cli("llama-server", "--path", str(llama_server), data_dir=data_dir)[0] == 0
    code, before, err = cli("models", "command", tiny, data_dir=data_dir)
    assert code == 0, err
    assert cli("models", "set", tiny, "auto_restart=on", data_dir=data_dir)[0] == 0
    assert cli("models", "command", tiny, data_dir=data_dir)[1] == before


def test_a_renamed_model_keeps_auto_restart(data_dir: Path, tiny: str):
    assert cli("models", "set", tiny, "auto_restart=on", data_dir=data_dir)[0] == 0
    code, _out, err = cli("models", "set", tiny, "name=renamed", data_dir=data_dir)
    assert code == 0, err
    text, model = shown(data_dir, "renamed")
    assert "auto_restart: on" in text.splitlines() and model["auto_restart"] is True


def test_add_with_auto_restart_on(data_dir: Path, tmp_path: Path):
    from support import write_tiny_gguf

    model_file = write_tiny_gguf(tmp_path / "other.gguf")
    add = ("models", "add", "other", "--model-path", str(model_file), "--set", "auto_restart=on")
    code, _out, err = cli(*add, data_dir=data_dir)
    assert code == 0, err
    assert shown(data_dir, "other")[1]["auto_restart"] is True
