"""Model export/import formats: round trips, and bad input that changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llamadash.core import database as db
from llamadash.core import model_export as mx
from llamadash.core.params import ROUTER_MANAGED_FLAGS

LIBRARY = [
    {
        "name": "qwen-7b",
        "type": "llama",
        "status": "stopped",
        "model_path": "/m/qwen.gguf",
        "ctx_size": 8192,
        "gpu_layers": 99,
        "port": 8081,
        "api_key": ["secret-key"],
        "custom_params": {"--foo": "1"},
    },
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
    assert (
        parsed[0]["name"] == "tiny"
        and parsed[0]["ctx_size"] == 512
        and parsed[0]["model_path"] == "/m/tiny.gguf"
    )


def test_command_line_import_names_the_model_after_its_file() -> None:
    parsed = mx.parse_models_text("llama-server -m /x/Llama-3.gguf -c 4096 --port 9000\n")
    assert parsed[0]["name"] == "Llama-3" and parsed[0]["ctx_size"] == 4096


def test_command_line_import_names_the_model_after_its_alias_and_keeps_it() -> None:
    parsed = mx.parse_models_text(
        "llama-server -m /x/q.gguf --alias coder\nllama-server -m /x/r.gguf -a chat,c2\n"
    )
    assert [m["name"] for m in parsed] == ["coder", "chat"]
    assert parsed[0]["custom_params"] == {"--alias": "coder"}  # clients still call it by that id


@pytest.mark.parametrize(
    "policy,expected",
    [("skip", {"tiny": 512}), ("overwrite", {"tiny": 1024}), ("keep_both", {"tiny": 512, "tiny (2)": 1024})],
)
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
    "bad value": json.dumps(
        {"format": "llamadash-models", "version": 1, "models": [{"name": "x", "ctx_size": "lots"}]}
    ).encode(),
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


@pytest.mark.parametrize(
    ("text", "holds"),
    [
        ("[1,2,3]", "a list of 3 items"),
        (json.dumps([{"name": "x", "type": "llama", "model_path": "/m/x.gguf"}]), "a list of 1 item,"),
        ('  [\n  {"name": "x"},\n  {"name": "y"}\n]\n', "a list of 2 items"),
        ("[]", "an empty list"),
        ("42", "a number"),
        ('"models"', "a string"),
        ("null", "null"),
    ],
)
def test_json_that_is_not_an_object_is_called_json_not_a_presets_file(text: str, holds: str) -> None:
    with pytest.raises(mx.ModelFormatError) as info:
        mx.parse_models_text(text)
    message = str(info.value)
    assert message.startswith("this is JSON, but not a llamadash models file")
    assert holds in message
    assert '"format": "llamadash-models"' in message
    assert "presets" not in message and "version = 1" not in message


@pytest.mark.parametrize(
    "text",
    ['[{"name": "x",}]', "[\n  1,\n  2\n", "[1, 2"],
    ids=["trailing-comma", "unclosed-multiline", "unclosed"],
)
def test_broken_json_arrays_are_called_invalid_json(text: str) -> None:
    with pytest.raises(mx.ModelFormatError, match=r"^this is not valid JSON \("):
        mx.parse_models_text(text)


def test_an_object_without_the_format_is_json_but_not_a_models_file() -> None:
    with pytest.raises(mx.ModelFormatError) as info:
        mx.parse_models_text('{"hello": [1, 2, 3]}')
    assert (
        str(info.value) == 'this is JSON, but not a llamadash models file (no "format": "llamadash-models")'
    )


@pytest.mark.parametrize("text", ["[*]\nctx-size = 1\n", "[tiny]\nctx-size = 4096\n"])
def test_an_ini_without_a_version_is_still_called_a_presets_file(text: str) -> None:
    with pytest.raises(mx.ModelFormatError, match='needs "version = 1"'):
        mx.parse_models_text(text)


def test_deeply_nested_json_is_refused_in_words() -> None:
    with pytest.raises(mx.ModelFormatError, match="nested too deeply"):
        mx.parse_models_text('{"a": ' * 100_000)


# ------------------------------------------------------------------------------------------------
# the shell script and presets INI that llamadash writes come back as the same models

# three models of one GGUF, one with an alias, one with a custom flag and keys
SHARED: list[dict[str, Any]] = [
    {
        "name": "chat model",
        "type": "llama",
        "status": "stopped",
        "model_path": "/m/one.gguf",
        "ctx_size": 4096,
        "api_key": ["k1"],
        "hf_token": "t1",
        "custom_params": {"--cors-origins": "http://x"},
    },
    {"name": "fast", "type": "llama", "status": "stopped", "model_path": "/m/one.gguf", "ctx_size": 1024},
    {
        "name": "aliased",
        "type": "llama",
        "status": "stopped",
        "model_path": "/m/one.gguf",
        "custom_params": {"--alias": "the-id"},
    },
]


@pytest.fixture
def shared(tmp_path: Path):
    db.init_database(tmp_path / "shared.db")
    for model in SHARED:
        db.save_model(model)
    yield db
    db.close_database()


def test_a_shell_export_imports_back_with_its_names_and_without_placeholder_keys(shared) -> None:
    script = mx.export_shell(shared.get_models())  # keys read from the environment: "${LLAMA_API_KEY:?}"
    assert '"${LLAMA_API_KEY:?}"' in script
    parsed = {m["name"]: m for m in mx.parse_models_text(script)}
    assert sorted(parsed) == ["aliased", "chat model", "fast"]  # the "# NAME" comments, not the file
    chat = parsed["chat model"]
    assert "api_key" not in chat and "hf_token" not in chat  # a shell variable is not a key
    assert chat["ctx_size"] == 4096 and chat["custom_params"] == {"--cors-origins": "http://x"}


def test_a_shell_export_with_secrets_keeps_them(shared) -> None:
    parsed = {
        m["name"]: m for m in mx.parse_models_text(mx.export_shell(shared.get_models(), include_secrets=True))
    }
    assert parsed["chat model"]["api_key"] == ["k1"] and parsed["chat model"]["hf_token"] == "t1"


def test_a_presets_export_with_custom_flags_imports_back_when_the_build_knows_them(shared) -> None:
    from support import help_capabilities

    text = mx.export_presets([m for m in shared.get_models() if m["name"] == "chat model"])
    assert "cors-origins = http://x" in text
    with pytest.raises(mx.ModelFormatError, match=r"unknown key.*cors-origins"):
        mx.parse_models_text(text)  # without a build to ask, a key llamadash does not know is refused
    parsed = mx.parse_models_text(text, help_capabilities("b11434"))
    assert parsed[0]["custom_params"] == {"--cors-origins": "http://x"} and parsed[0]["ctx_size"] == 4096
    bad = text + "no-such-flag = 3\n"
    with pytest.raises(mx.ModelFormatError, match="no-such-flag: not flags of llama-server b11434"):
        mx.parse_models_text(bad, help_capabilities("b11434"))


def test_overwriting_from_a_file_without_secrets_keeps_the_keys(shared) -> None:
    text = mx.export_json(shared.get_models())  # secrets left out
    incoming = [
        dict(m, ctx_size=8192) if m["name"] == "chat model" else m for m in mx.parse_models_text(text)
    ]
    mx.apply_import(shared, mx.plan_import(incoming, shared.get_models(), "overwrite"))
    chat = shared.get_model_by_name("chat model")
    assert chat["ctx_size"] == 8192 and chat["api_key"] == ["k1"] and chat["hf_token"] == "t1"


@pytest.mark.parametrize(
    "text",
    ["hello", "ls -la", "set -e\ncd /models\n", '{"format": "llamadash-models", "version": 1, "models": []}'],
)
def test_text_with_no_llama_server_command_or_no_model_is_refused(text: str) -> None:
    with pytest.raises(mx.ModelFormatError, match=r"no llama-server command line|holds no models"):
        mx.parse_models_text(text)


def test_a_script_s_other_commands_are_not_models() -> None:
    script = 'set -e\ncd /m\nexport X=1\n\n# fast\nLLAMA_API_KEY="${LLAMA_API_KEY:?}" /opt/llama-server -m /m/a.gguf\n'
    assert mx.parse_models_text(script) == [{"name": "fast", "type": "llama", "model_path": "/m/a.gguf"}]


def _many(count: int) -> str:
    models = [
        {"name": f"m-{i:05d}", "model_path": f"/m/{i}.gguf", "ctx_size": 4096, "port": 20000 + i}
        for i in range(count)
    ]
    return json.dumps({"format": mx.FORMAT_NAME, "version": mx.FORMAT_VERSION, "models": models})


def test_a_big_import_is_one_transaction(library) -> None:
    """3,000 models go in with one commit: another reader sees none of them or all."""
    from llamadash.core.db import api

    plan = mx.plan_import(mx.parse_models_text(_many(3000)), library.get_models())
    statements: list[str] = []
    conn = api._require().db.connection()
    conn.set_trace_callback(statements.append)
    try:
        counts = mx.apply_import(library, plan)
    finally:
        conn.set_trace_callback(None)
    assert counts["add"] == 3000
    commits = [s for s in statements if s.strip().upper().startswith(("COMMIT", "END"))]
    begins = [s for s in statements if s.strip().upper().startswith("BEGIN")]
    assert (len(begins), len(commits)) == (1, 1), (begins, commits)
    assert len(library.get_models()) == 3000 + len(LIBRARY)


def test_a_bad_model_in_a_bulk_add_adds_none(library) -> None:
    before = _settings(library.get_models())
    models = [
        {"name": "ok-1", "type": "llama", "status": "stopped"},
        {"name": "bad", "type": "llama", "status": "stopped", "port": "abc"},
        {"name": "ok-2", "type": "llama", "status": "stopped"},
    ]
    with pytest.raises(db.DatabaseError, match=r"model 2 \('bad'\): .*port"):
        db.save_models(models)
    with pytest.raises(db.DatabaseError, match="'tiny' already exists"):
        db.save_models(
            [
                {"name": "new", "type": "llama", "status": "stopped"},
                {"name": "tiny", "type": "llama", "status": "stopped"},
            ]
        )
    assert _settings(library.get_models()) == before


def test_no_models_file_sets_the_program_that_runs(library) -> None:
    """A shell line's program is never stored; JSON and presets have no key that names one."""
    [shelly] = mx.parse_models_text("# shelly\n/tmp/evil-server.sh -m /m/x.gguf --port 9999\n")
    assert "/tmp/evil-server.sh" not in json.dumps(shelly)
    with pytest.raises(mx.ModelFormatError, match="no llama-server command line"):
        mx.parse_models_text("/tmp/evil.sh -m /m/x.gguf\n")
    document = {
        "format": mx.FORMAT_NAME,
        "version": 1,
        "models": [{"name": "j", "model_path": "/m/x.gguf", "llama_server_path": "/tmp/evil.sh"}],
    }
    with pytest.raises(mx.ModelFormatError, match=r"unknown setting.*llama_server_path"):
        mx.parse_models_text(json.dumps(document))
    with pytest.raises(mx.ModelFormatError, match="unknown key"):
        mx.parse_models_text("version = 1\n[p]\nmodel = /m/x.gguf\nllama-server-path = /tmp/evil.sh\n")
    mx.apply_import(library, mx.plan_import([shelly], library.get_models()))
    assert db.get_metadata("llama_server_path") is None


def test_a_presets_export_leaves_out_what_the_router_sets_itself() -> None:
    model = {
        "name": "m",
        "model_path": "/m/x.gguf",
        "ctx_size": 2048,
        "host": "0.0.0.0",
        "port": 9001,
        "api_key_file": "/m/keys.txt",
        "custom_params": {"--alias": "the-id"},
    }
    keys = {line.split(" = ")[0] for line in mx.export_presets([model]).splitlines() if " = " in line}
    assert keys == {"version", "model", "ctx-size"}
    assert {"--host", "--port", "--api-key-file", "--alias"} <= ROUTER_MANAGED_FLAGS


def test_a_preset_switch_takes_the_schema_s_words_for_true_and_false() -> None:
    text = "version = 1\n\n[m]\nmodel = /m/x.gguf\ncont-batching = disabled\nmetrics = Yes\n"
    (model,) = mx.parse_models_text(text)
    assert model["cont_batching"] is False and model["metrics_enabled"] is True
