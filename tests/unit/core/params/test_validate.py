"""validate_config: what the editor shows next to each parameter before a launch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import help_capabilities

from llamadash.core.params.capabilities import Capabilities
from llamadash.core.params.command import CommandError, build_command
from llamadash.core.params.schema import load_schema
from llamadash.core.params.validate import Issue, has_errors, validate_config

DATA = Path(__file__).resolve().parents[3] / "data"


B11434 = help_capabilities("b11434")
B10001 = help_capabilities("b10001")
MODEL = {"hf_repo": "org/model-GGUF"}  # a model source that needs no file


def issues_of(config: dict[str, Any], caps: Capabilities | None = None, **kw: Any) -> list[Issue]:
    return validate_config({**MODEL, **config}, caps, **kw)


def errors(config: dict[str, Any], caps: Capabilities | None = None, **kw: Any) -> dict[str, str]:
    return {i.column: i.message for i in issues_of(config, caps, **kw) if i.severity == "error"}


def warnings(config: dict[str, Any], caps: Capabilities | None = None, **kw: Any) -> dict[str, str]:
    return {i.column: i.message for i in issues_of(config, caps, **kw) if i.severity == "warning"}


def test_a_plain_config_is_clean() -> None:
    assert issues_of({"ctx_size": 8192, "temperature": 0.7, "gpu_layers": "all"}) == []
    assert not has_errors([])


def test_type_range_and_enum_errors_are_keyed_by_parameter() -> None:
    found = errors({"ctx_size": "big", "top_p": 1.5, "cache_type_k": "q9", "repeat_last_n": -1})
    assert found == {
        "ctx_size": "expected a whole number, got 'big'",
        "top_p": "1.5 is above the maximum 1",
        "cache_type_k": "expected one of f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1, got 'q9'",
        "repeat_last_n": "-1 is below the minimum 0",
    }


@pytest.mark.parametrize("port", [0, -1, 65536])
def test_port_range(port: int) -> None:
    assert "port" in errors({"port": port})


@pytest.mark.parametrize("port", [1, 8080, 65535])
def test_port_in_range(port: int) -> None:
    assert errors({"port": port}) == {}


def test_files_and_directories_must_exist(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    assert errors({"model_path": str(model), "media_path": str(tmp_path)}) == {}

    missing = tmp_path / "missing.gguf"
    found = errors(
        {"model_path": str(missing), "media_path": str(tmp_path / "nodir"), "grammar_file": str(tmp_path)}
    )
    assert found == {
        "model_path": f"file not found: {missing}",
        "media_path": f"directory not found: {tmp_path / 'nodir'}",
        "grammar_file": f"{tmp_path} is not a file",
    }
    assert errors({"media_path": str(model)}) == {"media_path": f"{model} is not a directory"}
    # log_file is written by llama-server: it need not exist yet
    assert errors({"log_file": str(tmp_path / "new.log")}) == {}
    # no file system look-ups when asked not to
    assert errors({"model_path": str(missing)}, check_files=False) == {}


def test_list_items_that_are_files(tmp_path: Path) -> None:
    present = tmp_path / "a.gguf"
    present.write_bytes(b"x")
    assert errors({"lora": [str(present)]}) == {}
    assert errors({"lora": [str(present), str(tmp_path / "b.gguf")]}) == {
        "lora": f"file not found: {tmp_path / 'b.gguf'}"
    }


def test_the_file_of_a_scaled_adapter_must_exist(tmp_path: Path) -> None:
    present = tmp_path / "a.gguf"
    present.write_bytes(b"x")
    assert errors({"lora_scaled": [f"{present}:0.5"], "control_vector_scaled": [f"{present}:-1"]}) == {}
    assert errors({"lora_scaled": [f"{present}:0.5", f"{tmp_path / 'b.gguf'}:1"]}) == {
        "lora_scaled": f"file not found: {tmp_path / 'b.gguf'}"
    }


@pytest.mark.parametrize(
    ("config", "column"),
    [
        ({"tensor_split": "a,b"}, "tensor_split"),
        ({"tensor_split": "1,-1"}, "tensor_split"),
        ({"lora_scaled": "/m/a.gguf:x"}, "lora_scaled"),
        ({"control_vector_scaled": "/m/cv.gguf"}, "control_vector_scaled"),
    ],
)
def test_list_items_that_are_not_numbers_are_errors(config: dict[str, Any], column: str) -> None:
    found = errors(config, check_files=False)
    assert list(found) == [column]
    assert "expected" in found[column]


def test_tilde_is_not_expanded_by_llama_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "m.gguf").write_bytes(b"x")
    assert errors({"model_path": "~/m.gguf"}) == {
        "model_path": "~/m.gguf: llama-server does not expand '~'; use the full path"
    }


def test_ubatch_must_not_exceed_batch() -> None:
    assert errors({"ubatch_size": 1024, "batch_size": 512}) == {
        "ubatch_size": "ubatch_size (1024) must not be larger than batch_size (512)"
    }
    assert errors({"ubatch_size": 4096}) == {
        "ubatch_size": "ubatch_size (4096) must not be larger than batch_size (2048)"
    }  # against the default batch size
    assert errors({"ubatch_size": 2048}) == {}
    assert errors({"batch_size": 256}) == {
        "ubatch_size": "ubatch_size (512) must not be larger than batch_size (256)"
    }


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "example.org", "127.0.0.1,10.0.0.1"])
def test_exposed_host_without_api_key_warns(host: str) -> None:
    found = warnings({"host": host})
    assert list(found) == ["host"]
    assert "without an API key" in found["host"]
    assert warnings({"host": host, "api_key": ["k"]}) == {}
    assert warnings({"host": host, "api_key_file": "/etc/keys"}, check_files=False) == {}


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.1.2.3", "::1", "localhost", "/run/llama.sock", "127.0.0.1,::1"]
)
def test_local_hosts_need_no_key(host: str) -> None:
    assert warnings({"host": host}) == {}


def test_draft_settings_without_a_draft_model_warn() -> None:
    config = {"draft_max": 8, "draft_p_min": 0.5, "n_gpu_layers_draft": "all", "cache_type_k_draft": "q8_0"}
    found = warnings(config)
    assert set(found) == {"draft_max", "draft_p_min", "n_gpu_layers_draft", "cache_type_k_draft"}
    assert "draft model" in found["draft_max"]
    assert warnings({**config, "model_draft": "/m/d.gguf"}, check_files=False) == {}
    assert warnings({**config, "hf_repo_draft": "org/d"}) == {}
    # n-gram / MTP speculation needs no draft model
    assert warnings({**config, "custom_params": {"--spec-type": "ngram-mod"}}) == {}
    # default values are not "set"
    assert warnings({"draft_max": 3, "cache_type_k_draft": "f16"}) == {}


def test_a_model_source_is_required_unless_router_mode() -> None:
    assert validate_config({}) == [
        Issue(
            "model_path",
            "error",
            "no model: set model_path, hf_repo, model_url or docker_repo "
            "(or models_dir / models_preset to run llama-server as a router)",
        )
    ]
    for source in ({"hf_repo": "a/b"}, {"model_url": "https://x/y.gguf"}, {"docker_repo": "gemma3"}):
        assert validate_config(source) == []
    assert validate_config({"models_preset": "/p.ini"}, check_files=False) == []
    assert validate_config({"models_dir": "/models"}, check_files=False) == []
    assert validate_config({"custom_params": {"--gpt-oss-20b-default": True}}) == []


def test_values_llama_server_rejects_inside_the_range() -> None:
    assert errors({"n_parallel": 0}) == {"n_parallel": "0 is rejected; -1 = auto"}
    assert errors({"n_parallel": -1}) == {}
    assert errors({"sleep_idle_seconds": 0}) == {"sleep_idle_seconds": "0 is rejected; -1 = disabled"}


def test_deprecated_rows_warn_with_their_note() -> None:
    found = warnings({"defrag_thold": 0.1})
    assert found == {"defrag_thold": f"defrag_thold is deprecated: {load_schema()['defrag_thold'].note}"}
    assert not has_errors(issues_of({"defrag_thold": 0.1}))


def test_build_specific_rows_with_capabilities() -> None:
    assert errors({"hf_file_v": "v.gguf"}, B11434) == {
        "hf_file_v": "hf_file_v is not supported by llama-server b11434"
    }
    assert errors({"hf_file_v": "v.gguf"}, B10001) == {}
    assert errors({"rpc": ["h:1"]}, B10001) == {"rpc": "rpc is not supported by llama-server b10001"}
    assert errors({"mmap": False, "mlock": True}, B10001) == {}
    assert errors({"mmap": False, "mlock": True}, B11434) == {}
    assert "list_devices" in errors({"list_devices": True})


def test_custom_params_problems_are_errors() -> None:
    found = issues_of({"custom_params": {"-c": "5", "--lazy-mode": "on", "--alias": "a"}}, B10001)
    assert found == [
        Issue(
            "custom_params", "error", "-c is the parameter ctx_size: set ctx_size instead of a custom flag"
        ),
        Issue("custom_params", "error", "--lazy-mode is not accepted by llama-server b10001"),
    ]


def test_unknown_columns_are_errors_meta_columns_are_not() -> None:
    assert errors({"id": 4, "name": "n", "status": "stopped", "ctx_sise": 1}) == {
        "ctx_sise": "ctx_sise is not a llama-server parameter llamadash knows"
    }


def test_has_errors() -> None:
    assert has_errors([Issue("a", "warning", "w"), Issue("b", "error", "e")])
    assert not has_errors([Issue("a", "warning", "w")])


_any_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**33), 2**33),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.sampled_from(["auto", "all", "on", "f16", "q8_0", "none", "a,b"]),
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(load_schema().columns), _any_value, max_size=6))
def test_whatever_build_command_refuses_validate_reports(config: dict[str, Any]) -> None:
    for caps in (B11434, B10001):
        issues = validate_config(config, caps, check_files=False)
        try:
            build_command(config, caps)
        except CommandError as exc:
            error_columns = {i.column for i in issues if i.severity == "error"}
            assert {column for column, _ in exc.problems} <= error_columns
            for column, message in exc.problems:
                assert Issue(column, "error", message) in issues
