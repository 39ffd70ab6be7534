"""Model export/import formats: round trips, and bad input that changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamadash.core import database as db
from llamadash.core import model_export as mx

LIBRARY = [
    {"name": "qwen-7b", "type": "llama", "status": "stopped", "model_path": "/m/qwen.gguf", "ctx_size": 8192,
     "gpu_layers": 99, "port": 8081, "api_key": ["secret-key"], "custom_params": {"--foo": "1"}},
    {"name": "tiny", "type": "llama", "status": "stopped", "model_path": "/m/tiny.gguf", "ctx_size": 512},
]


@pytest.fixture
def library(tmp_path: Path):
    db.init_database(tmp_path / "lib.db")
    for model in LIBRARY:
        db.save_model(model)
    yield db
    db.close_database()


def _settings(models):
    return sorted((mx.model_config(m, include_secrets=True) for m in models), key=lambda m: m["name"])


def test_json_round_trip_gives_the_same_models(library, tmp_path: Path) -> None:
    text = mx.export_json(library.get_models(), include_secrets=True)
    before = _settings(library.get_models())
    db.delete_all_models()
    counts = mx.apply_import(library, mx.plan_import(mx.parse_models_text(text), library.get_models()))
    assert counts["add"] == 2
    assert _settings(library.get_models()) == before


def test_secrets_are_left_out_unless_asked(library) -> None:
    assert "secret-key" not in mx.export_json(library.get_models())
    assert "secret-key" not in mx.export_shell(library.get_models())
    assert "secret-key" in mx.export_json(library.get_models(), include_secrets=True)


def test_presets_round_trip(library) -> None:
    models = [m for m in library.get_models() if m["name"] == "tiny"]
    text = mx.export_presets(models)
    assert text.startswith("version = 1") and "[*]" in text and "[tiny]" in text and "ctx-size = 512" in text
    parsed = mx.parse_models_text(text)
    assert parsed[0]["name"] == "tiny" and parsed[0]["ctx_size"] == 512 and parsed[0]["model_path"] == "/m/tiny.gguf"


def test_command_line_import_names_the_model_after_its_file() -> None:
    parsed = mx.parse_models_text("llama-server -m /x/Llama-3.gguf -c 4096 --port 9000\n")
    assert parsed[0]["name"] == "Llama-3" and parsed[0]["ctx_size"] == 4096


def test_command_line_import_names_the_model_after_its_alias_and_keeps_it() -> None:
    parsed = mx.parse_models_text("llama-server -m /x/q.gguf --alias coder\nllama-server -m /x/r.gguf -a chat,c2\n")
    assert [m["name"] for m in parsed] == ["coder", "chat"]
    assert parsed[0]["custom_params"] == {"--alias": "coder"}  # clients still call it by that id


@pytest.mark.parametrize("policy,expected", [("skip", {"tiny": 512}), ("overwrite", {"tiny": 1024}),
                                             ("keep_both", {"tiny": 512, "tiny (2)": 1024})])
def test_merge_by_name(library, policy, expected) -> None:
    incoming = mx.parse_models_text("llama-server -m /m/tiny.gguf -c 1024 --alias tiny")
    mx.apply_import(library, mx.plan_import(incoming, library.get_models(), policy))
    got = {m["name"]: m["ctx_size"] for m in library.get_models() if m["name"].startswith("tiny")}
    assert got == expected


BAD = {
    "empty": b"",
    "random bytes": bytes(range(256)) * 4,
    "truncated json": mx.export_json(LIBRARY[1:]).encode()[:60],
    "newer version": json.dumps({"format": "llamadash-models", "version": 99, "models": []}).encode(),
    "other json": b'{"hello": [1, 2, 3]}',
    "ini unknown key": b"version = 1\n\n[*]\n\n[m]\nmodel = /x.gguf\nno-such-flag = 3\n",
    "bad value": json.dumps({"format": "llamadash-models", "version": 1,
                              "models": [{"name": "x", "ctx_size": "lots"}]}).encode(),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_files_give_a_clear_message_and_change_nothing(library, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "bad.file"
    path.write_bytes(BAD[kind])
    db_file = library.get_database_path()
    before = library.get_models()
    with pytest.raises(mx.ModelFormatError) as info:
        mx.parse_models_file(path)
    assert str(info.value) and "Traceback" not in str(info.value)
    assert library.get_models() == before and db_file.exists()


def test_an_import_that_fails_midway_keeps_none_of_its_models(library) -> None:
    incoming = mx.parse_models_text(
        "llama-server -m /m/a.gguf --alias first\nllama-server -m /m/b.gguf --alias second\n"
        "llama-server -m /m/tiny.gguf -c 2048 --alias tiny\n"
    )
    plan = mx.plan_import(incoming, library.get_models(), "overwrite")
    assert [p.action for p in plan] == ["add", "add", "overwrite"]
    db.save_model({"name": "second", "type": "llama", "status": "stopped"})  # taken after the preview
    before = _settings(library.get_models())
    with pytest.raises(db.DatabaseError, match="second"):
        mx.apply_import(library, plan)
    assert _settings(library.get_models()) == before  # "first" was not kept, "tiny" not overwritten
    assert "first" not in {m["name"] for m in library.get_models()}
