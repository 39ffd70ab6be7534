"""Launch planning as a pure function: a model's configuration and a build in, a LaunchPlan or a refusal out.

No Qt, no process: the build is the real ``--help`` of b11434 kept in tests/data, the binary a path
that is never run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import help_capabilities

from llamadash.core.launch import LaunchError, LaunchPlan, MissingBinaryError, PortInUseError, plan_launch
from llamadash.core.library import LLAMA_SERVER_DEFAULT_PORT

CAPS = help_capabilities("b11434")
BINARY = "/opt/llama.cpp/bin/llama-server"


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF")
    return path


def plan(config: dict[str, Any], **kwargs: Any) -> LaunchPlan:
    return plan_launch(config, kwargs.pop("caps", CAPS), kwargs.pop("binary", BINARY), name="tiny", **kwargs)


def test_a_plan_holds_the_command_and_what_monitoring_needs(model_file: Path):
    result = plan(
        {
            "id": 7,
            "name": "tiny",
            "status": "stopped",
            "model_path": str(model_file),
            "port": 8093,
            "api_key": "sekret,other",
            "api_prefix": "/v1/",
        }
    )
    assert result.argv[0] == BINARY and result.binary == BINARY
    assert "-m" in result.argv or "--model" in result.argv
    assert str(model_file) in result.argv and "8093" in result.argv
    assert "--metrics" in result.argv  # the figures need /metrics: on unless set off
    assert "sekret" not in " ".join(result.argv)  # a secret goes by the environment, never argv
    assert result.env.get("LLAMA_API_KEY") == "sekret,other"
    assert (result.host, result.port, result.scheme) == ("127.0.0.1", 8093, "http")
    assert result.api_key == "sekret" and result.api_prefix == "/v1"
    assert result.health_check and result.counts_requests and result.warnings == ()
    for column in ("7", "stopped"):  # a models row will do: its non-parameter columns are no flags
        assert column not in result.argv


def test_defaults_an_explicit_metrics_off_and_what_the_log_shows(model_file: Path):
    default = plan({"model_path": str(model_file)})
    assert default.port == LLAMA_SERVER_DEFAULT_PORT
    quiet = plan({"model_path": str(model_file), "metrics_enabled": False, "log_verbose": 1})
    assert "--metrics" not in quiet.argv
    assert not quiet.counts_requests  # below verbosity 3 no finished request is logged: n/a, not 0
    assert not plan({"model_path": str(model_file), "log_disable": True}).counts_requests


def test_a_server_others_can_reach_without_a_key_is_planned_with_a_warning(model_file: Path):
    exposed = plan({"model_path": str(model_file), "host": "0.0.0.0"})
    assert len(exposed.warnings) == 1 and "0.0.0.0 without an API key" in exposed.warnings[0]
    keyed = plan({"model_path": str(model_file), "host": "0.0.0.0", "api_key": "k"})
    assert keyed.warnings == ()


def test_an_api_key_file_gives_the_key_to_send(model_file: Path, tmp_path: Path):
    keys = tmp_path / "keys.txt"
    keys.write_text("# the team's key\n\nfile-key\n", encoding="utf-8")
    assert plan({"model_path": str(model_file), "api_key_file": str(keys)}).api_key == "file-key"


def test_no_binary_is_a_missing_binary_error_that_says_why():
    why = "no llama-server found: not configured in Settings"
    with pytest.raises(MissingBinaryError, match=f"^cannot start tiny: {why}$") as refused:
        plan({"model_path": "/nowhere.gguf"}, binary=None, binary_problem=why)
    assert isinstance(refused.value, LaunchError)
    with pytest.raises(MissingBinaryError, match="no llama-server found"):
        plan({}, binary=None)  # without a reason it still says what is missing


def test_the_other_refusals_are_launch_errors_not_a_missing_binary(model_file: Path, tmp_path: Path):
    refusals: list[tuple[dict[str, Any], dict[str, Any], str]] = [
        (dict(caps=None, binary_problem="--help timed out"), {}, "cannot start tiny: --help timed out"),
        ({}, {"model_path": str(tmp_path / "gone.gguf")}, r"the model file .*gone\.gguf does not exist"),
        (
            {},
            {"model_path": str(model_file), "n_parallel": 0},
            "invalid configuration: n_parallel: 0 is rejected",
        ),
        ({}, {"model_path": str(model_file), "host": "/tmp/llama.sock"}, "a unix socket host"),
    ]
    for kwargs, config, message in refusals:
        with pytest.raises(LaunchError, match=message) as refused:
            plan(config, **kwargs)
        assert not isinstance(refused.value, MissingBinaryError)


def test_a_taken_port_carries_the_port_to_offer():
    refusal = PortInUseError("cannot start tiny: port 8080 is already in use", 8080, 8081)
    assert isinstance(refusal, LaunchError) and not isinstance(refusal, MissingBinaryError)
    assert (refusal.port, refusal.suggested_port) == (8080, 8081)


def test_tls_files_make_an_https_plan(model_file: Path, tmp_path: Path):
    key, cert = tmp_path / "server.key", tmp_path / "server.crt"
    key.write_text("key", encoding="utf-8")
    cert.write_text("cert", encoding="utf-8")
    secure = plan({"model_path": str(model_file), "ssl_key_file": str(key), "ssl_cert_file": str(cert)})
    assert secure.scheme == "https"
