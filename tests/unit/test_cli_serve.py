"""The library router's per-model settings through ``models set``/``show``, and ``serve``'s refusals (real files)."""

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


def test_a_new_model_is_served_not_loaded_at_start_with_the_default_stop_timeout(data_dir: Path, tiny: str):
    text, model = shown(data_dir, tiny)
    assert "served: on, load_on_startup: off, stop_timeout_s: default" in text.splitlines()
    assert (model["served"], model["load_on_startup"], model["stop_timeout_s"]) == (True, False, None)


def test_the_router_settings_of_a_model_are_set_and_kept_on_its_row(data_dir: Path, tiny: str):
    code, out, err = cli(
        "models", "set", tiny, "served=off", "load_on_startup=on", "stop_timeout_s=5", data_dir=data_dir
    )
    assert code == 0, err
    assert out.startswith("updated tiny: ")
    text, model = shown(data_dir, tiny)
    assert "served: off, load_on_startup: on, stop_timeout_s: 5" in text.splitlines()
    with raw_sqlite(data_dir / "llama-dashboard.db") as conn:
        row = conn.execute(
            "SELECT served, load_on_startup, stop_timeout_s FROM models WHERE name = ?", (tiny,)
        ).fetchone()
    assert row == (0, 1, 5)
    code, _out, err = cli("models", "set", tiny, "served=on", "stop_timeout_s=", data_dir=data_dir)
    assert code == 0, err
    _text, model = shown(data_dir, tiny)
    assert (model["served"], model["stop_timeout_s"]) == (True, None)


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("served=maybe", "served is on or off"),
        ("load_on_startup=2", "load_on_startup is on or off"),
        ("stop_timeout_s=soon", "stop_timeout_s is a whole number of seconds"),
        ("stop_timeout_s=-1", "stop_timeout_s must be 0 or more seconds"),
        ("stop_timeout_s=99999", "stop_timeout_s must be from 0 to 3600 seconds"),
    ],
)
def test_a_bad_router_setting_is_refused_and_changes_nothing(
    data_dir: Path, tiny: str, assignment: str, message: str
):
    before = shown(data_dir, tiny)[1]
    code, _out, err = cli("models", "set", tiny, assignment, data_dir=data_dir)
    assert code == 1 and message in err, err
    assert shown(data_dir, tiny)[1] == before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--max-models", "-1"], "0 (no limit) or more"),
        (["--idle", "-5"], "0 (never sleep) or more seconds"),
        (["--port", "70000"], "port must be from 1 to 65535"),
        (["--prometheus", "0.0.0.0:9"], "needs a bearer token"),
    ],
)
def test_serve_refuses_bad_options_before_starting_anything(data_dir: Path, tiny: str, options, message):
    code, _out, err = cli("serve", *options, data_dir=data_dir)
    assert code == 1 and message in err, err


def test_serve_with_no_served_model_says_so(data_dir: Path, tiny: str, llama_server: Path):
    assert cli("llama-server", "--path", str(llama_server), data_dir=data_dir)[0] == 0
    assert cli("models", "set", tiny, "served=off", data_dir=data_dir)[0] == 0
    code, _out, err = cli("serve", data_dir=data_dir)
    assert code == 1
    assert "no model of the library is marked served" in err, err


def test_status_lists_no_router_when_none_runs(data_dir: Path, tiny: str):
    code, out, err = cli("status", "--json", data_dir=data_dir)
    assert code == 0, err
    assert json.loads(out)["routers"] == []


def test_a_library_edit_is_told_by_what_it_changed_for_the_running_router():
    from llamadash.cli_serve import library_changes
    from llamadash.core.router import LeftOut, RouterPlan

    def plan(sections: dict[str, str], left_out: tuple[LeftOut, ...] = ()) -> RouterPlan:
        return RouterPlan(
            argv=("llama-server",),
            preset_text="",
            preset_path="",
            served=tuple(sections),
            left_out=left_out,
            sections=sections,
        )

    before = plan({"alpha": "[alpha]\nctx-size = 256", "beta": "[beta]"})
    after = plan(
        {"alpha": "[alpha]\nctx-size = 512", "gamma": "[gamma]"},
        (LeftOut("delta", "the model file /d.gguf does not exist"),),
    )
    assert library_changes(before, after) == [
        "gamma is served now",
        "beta is no longer served",
        "alpha: its settings changed (used from its next load)",
        "warning: delta is not served: the model file /d.gguf does not exist",
    ]
    assert library_changes(after, after) == []
