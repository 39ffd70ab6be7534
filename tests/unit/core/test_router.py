"""The library router's planner, its /models reader and its /models/sse events, as pure functions.

No Qt, no process: the build is the real ``--help`` of b11434 kept in tests/data, the binary a path
that is never run; model files are real files (the planner checks that they exist).
"""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

import pytest
from support import help_capabilities

from llamadash.core.launch import LaunchError, MissingBinaryError
from llamadash.core.params.capabilities import parse_help
from llamadash.core.requests_log import RequestStatus
from llamadash.core.router import (
    ROUTER_NAME,
    RouterModel,
    RouterReplyError,
    RouterRequestParser,
    RouterSettings,
    SseBuffer,
    apply_event,
    parse_models,
    plan_router,
)
from llamadash.core.settings import Settings

CAPS = help_capabilities("b11434")
BINARY = "/opt/llama.cpp/bin/llama-server"
PRESET = "/data/router/models.ini"


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF")
    return path


def model(name: str, path: Path, **settings: Any) -> dict[str, Any]:
    return {"id": 1, "name": name, "type": "llama", "status": "stopped", "model_path": str(path), **settings}


def plan(models: list[dict[str, Any]], settings: RouterSettings | None = None, **kwargs: Any):
    return plan_router(
        models,
        settings or RouterSettings(),
        kwargs.pop("caps", CAPS),
        kwargs.pop("binary", BINARY),
        preset_path=PRESET,
        **kwargs,
    )


def sections(text: str) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None, default_section="\x00none")
    parser.read_string("[\x00top]\n" + text)
    return {name: dict(parser[name]) for name in parser.sections()}


def test_the_presets_file_holds_each_served_model_and_the_command_names_it(gguf: Path):
    result = plan(
        [
            model("alpha", gguf, ctx_size=256, port=8081, host="0.0.0.0"),
            model("beta", gguf, threads=2, served=True),
        ],
        RouterSettings(port=8111, max_models=1, autoload=False, idle_s=30),
    )
    found = sections(result.preset_text)
    assert found["\x00top"] == {"version": "1"}
    assert set(found) == {"\x00top", "*", "alpha", "beta"}
    assert found["alpha"]["model"] == str(gguf)
    assert found["alpha"]["ctx-size"] == "256"
    assert "port" not in found["alpha"] and "host" not in found["alpha"]  # the router sets them
    assert found["beta"]["threads"] == "2"
    assert result.served == ("alpha", "beta")
    assert result.left_out == () and result.warnings == ()
    argv = list(result.argv)
    assert argv[0] == BINARY
    assert argv[argv.index("--models-preset") + 1] == PRESET
    assert argv[argv.index("--models-max") + 1] == "1"
    assert "--no-models-autoload" in argv
    assert argv[argv.index("--port") + 1] == "8111"
    assert argv[argv.index("--sleep-idle-seconds") + 1] == "30"
    assert result.base_url == "http://127.0.0.1:8111/v1"


def test_a_model_marked_not_served_is_not_in_the_file(gguf: Path):
    result = plan([model("alpha", gguf), model("beta", gguf, served=False)])
    assert result.served == ("alpha",)
    assert "beta" not in sections(result.preset_text)


def test_a_remote_server_is_never_served_and_not_warned_about(gguf: Path):
    remote = {
        "id": 2,
        "name": "far",
        "type": "remote",
        "status": "stopped",
        "remote_url": "http://10.0.0.2:8080",
    }
    result = plan([model("alpha", gguf), remote])
    assert result.served == ("alpha",)
    assert "far" not in sections(result.preset_text)
    assert result.left_out == () and result.warnings == ()  # it runs elsewhere: nothing to warn about


def test_load_on_startup_and_stop_timeout_are_written_per_model(gguf: Path):
    result = plan([model("alpha", gguf, load_on_startup=True, stop_timeout_s=3), model("beta", gguf)])
    found = sections(result.preset_text)
    assert found["alpha"]["load-on-startup"] == "true"
    assert found["alpha"]["stop-timeout"] == "3"
    assert "load-on-startup" not in found["beta"] and "stop-timeout" not in found["beta"]


def test_more_startup_models_than_may_be_loaded_are_served_but_not_loaded_at_start(gguf: Path):
    # llama-server refuses to start with more load-on-startup models than --models-max
    result = plan(
        [model("alpha", gguf, load_on_startup=True), model("beta", gguf, load_on_startup=True)],
        RouterSettings(max_models=1),
    )
    found = sections(result.preset_text)
    assert found["alpha"]["load-on-startup"] == "true"
    assert "load-on-startup" not in found["beta"]
    assert result.served == ("alpha", "beta")
    assert any("beta is not loaded when the router starts" in w for w in result.warnings), result.warnings


def test_a_served_model_whose_file_is_missing_is_left_out_by_name(gguf: Path, tmp_path: Path):
    result = plan([model("alpha", gguf), model("gone", tmp_path / "missing.gguf")])
    assert result.served == ("alpha",)
    assert [item.name for item in result.left_out] == ["gone"]
    assert "does not exist" in result.left_out[0].reason
    assert result.warnings[0].startswith("gone is not served: ")
    assert "gone" not in sections(result.preset_text)


def test_a_served_model_with_a_flag_the_build_lacks_is_left_out_by_name(gguf: Path):
    result = plan([model("alpha", gguf), model("odd", gguf, custom_params={"--frobnicate-weights": True})])
    assert result.served == ("alpha",)
    assert [item.name for item in result.left_out] == ["odd"]
    assert "frobnicate" in result.left_out[0].reason


def test_a_name_no_presets_section_can_hold_is_left_out(gguf: Path):
    result = plan([model("alpha", gguf), model("a]b", gguf)])
    assert [item.name for item in result.left_out] == ["a]b"]
    assert "section" in result.left_out[0].reason


def test_no_model_left_to_serve_is_a_refusal_that_says_why(tmp_path: Path):
    with pytest.raises(LaunchError, match=r"no model to serve.*gone is not served"):
        plan([model("gone", tmp_path / "missing.gguf")])
    with pytest.raises(LaunchError, match="no model of the library is marked served"):
        plan([])


def test_no_binary_and_a_build_without_router_mode_are_refused():
    with pytest.raises(MissingBinaryError):
        plan([], binary=None, binary_problem="no llama-server found")
    old = parse_help("-m, --model FNAME     model path\n--port PORT    port\n", label="llama-server b3000")
    with pytest.raises(LaunchError, match="b3000 has no router mode"):
        plan([], caps=old)


def test_bad_settings_are_refused_before_anything_is_written(gguf: Path):
    with pytest.raises(LaunchError, match="port must be from 1 to 65535"):
        plan([model("alpha", gguf)], RouterSettings(port=0))
    with pytest.raises(LaunchError, match="0 \\(no limit\\) or more"):
        plan([model("alpha", gguf)], RouterSettings(max_models=-1))


def test_the_router_settings_come_from_the_users_settings():
    stored = Settings().replace(
        router_port=9001, router_max_models=2, router_autoload=False, router_idle_s=60
    )
    assert RouterSettings.of(stored) == RouterSettings(port=9001, max_models=2, autoload=False, idle_s=60)
    assert RouterSettings.of(Settings()) == RouterSettings()


def test_no_library_model_can_be_served_under_the_routers_own_name(gguf: Path):
    result = plan([model("alpha", gguf), model(ROUTER_NAME, gguf)])
    assert [item.name for item in result.left_out] == [ROUTER_NAME]


# ------------------------------------------------------------------------------------------------
# GET /models
def test_the_models_answer_gives_each_models_state():
    body = {
        "object": "list",
        "data": [
            {"id": "alpha", "aliases": ["a"], "source": "preset", "status": {"value": "loaded", "args": []}},
            {
                "id": "beta",
                "status": {"value": "loading", "progress": {"stages": 2, "current": 1, "value": 0.4}},
            },
            {"id": "gamma", "status": {"value": "unloaded"}},
            {"id": "delta", "status": {"value": "sleeping"}},
            {"id": "eps", "status": {"value": "unloaded", "failed": True, "exit_code": 134}},
        ],
    }
    models = parse_models(body)
    assert [m.name for m in models] == ["alpha", "beta", "gamma", "delta", "eps"]
    assert [m.state for m in models] == ["loaded", "loading", "unloaded", "sleeping", "failed"]
    assert models[0].aliases == ("a",) and models[0].source == "preset"
    assert models[1].progress == pytest.approx(0.4)
    assert models[1].describe() == "loading 40%"
    assert models[4].exit_code == 134
    assert models[4].describe() == "failed (exit code 134)"
    assert models[4].reason == "its llama-server exited with code 134"
    assert [m.running for m in models] == [True, True, False, True, False]
    assert models[0].reason == ""


def test_a_failure_without_an_exit_code_still_reads_as_failed():
    (only,) = parse_models({"data": [{"id": "x", "status": {"value": "unloaded", "failed": True}}]})
    assert only == RouterModel(name="x", state="failed")
    assert only.reason == "its llama-server ended unexpectedly"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "no list of models"),
        ({"models": []}, "no list of models"),
        ({"data": [{"status": {"value": "loaded"}}]}, "model 1 of the answer has no id"),
        ({"data": [{"id": "solo", "object": "model"}]}, "solo: the answer gives no status"),
    ],
)
def test_an_answer_that_is_not_a_routers_is_refused(body: Any, message: str):
    with pytest.raises(RouterReplyError, match=message):
        parse_models(body)


def test_a_later_plan_tells_which_served_models_were_edited(gguf: Path):
    before = plan([model("alpha", gguf, ctx_size=256), model("beta", gguf)])
    after = plan([model("alpha", gguf, ctx_size=512), model("beta", gguf), model("gamma", gguf)])
    assert after.changed_since(before) == ["alpha"]  # gamma is new, beta the same
    assert before.sections["alpha"].startswith("[alpha]\n") and "ctx-size = 256" in before.sections["alpha"]


# ------------------------------------------------------------------------------------------------
# the router's log (lines as the real b11434 router writes them)
ROUTER_LOG = """\
0.00.208.392 I srv          load: spawning server instance with name=alpha on port 48707
[48707] 0.00.016.046 I srv  llama_server: model loaded
0.00.232.061 I srv  proxy_reques: proxying request to model alpha on port 48707
[48707] 0.00.017.527 I slot launch_slot_: id  3 | task 0 | processing task, is_child = 0
0.00.513.019 I srv          load: spawning server instance with name=beta on port 55463
[55463] 0.00.017.100 I slot launch_slot_: id  3 | task 0 | processing task, is_child = 0
[48707] 0.00.018.384 I slot print_timing: id 3 | task 0 | prompt eval time = 0.51 ms / 7 tokens (0.07 ms per token, 13618 tokens per second)
[48707] 0.00.018.424 I slot print_timing: id  3 | task 0 |  eval time = 0.31 ms / 4 tokens (0.10 ms per token, 9554.14 tokens per second)
[48707] 0.00.018.857 I slot      release: id  3 | task 0 | stop processing: n_tokens = 10, truncated = 0
[60000] 0.00.018.857 I slot      release: id  1 | task 5 | stop processing: n_tokens = 10, truncated = 0
"""


def test_each_models_requests_are_read_apart_from_the_routers_log():
    parser = RouterRequestParser(clock=lambda: 1_000)
    done = [record for line in ROUTER_LOG.splitlines() for record in parser.feed(line, 2_000)]
    assert [(r.model, r.slot, r.status) for r in done] == [("alpha", 3, RequestStatus.FINISHED)]
    assert (done[0].prompt_tokens, done[0].generated_tokens) == (7, 4)
    # beta's slot 3 is beta's own request (not alpha's), still running when the log ends
    assert [(r.model, r.slot, r.status) for r in parser.flush(3_000)] == [
        ("beta", 3, RequestStatus.INCOMPLETE)
    ]
    assert parser.flush() == []


# what b11434's GET /models/sse sent while alpha was loaded, then unloaded (abridged "info")
SSE_LOAD = (
    b'data: {"model":"alpha","event":"model_status","data":{"status":"loading"}}\n\n'
    b'data: {"model":"alpha","event":"status_change","data":{"status":"loading","progress":'
    b'{"stages":["text_model"],"current":"text_model","value":0.0}}}\n\n'
    b'data: {"model":"alpha","event":"status_change","data":{"status":"loading","progress":'
    b'{"stages":["text_model"],"current":"text_model","value":1.0}}}\n\n'
    b'data: {"model":"alpha","event":"status_change","data":{"status":"loaded","info":{"id":"alpha"}}}\n\n'
)


def test_the_event_stream_is_split_into_its_events_whatever_the_pieces():
    buffer = SseBuffer()
    events = []
    for start in range(0, len(SSE_LOAD), 7):  # in pieces that cut lines and events anywhere
        events += buffer.feed(SSE_LOAD[start : start + 7])
    assert [e["data"]["status"] for e in events] == ["loading", "loading", "loading", "loaded"]
    assert SseBuffer().feed(b": a comment\n\ndata: not json\n\ndata: [1]\n\n") == []


def test_events_change_the_models_states_and_progress():
    models = [RouterModel("alpha", "unloaded"), RouterModel("beta", "unloaded")]
    states = []
    for event in SseBuffer().feed(SSE_LOAD):
        after = apply_event(models, event)
        assert after is not None
        models = after
        states.append(models[0].describe())
    assert states == ["loading", "loading 0%", "loading 100%", "loaded"]
    assert models[1] == RouterModel("beta", "unloaded")
    unloaded = {"model": "alpha", "event": "status_change", "data": {"status": "unloaded", "exit_code": 0}}
    assert (apply_event(models, unloaded) or [])[0] == RouterModel("alpha", "unloaded")
    crashed = {"model": "alpha", "event": "status_change", "data": {"status": "unloaded", "exit_code": 1}}
    assert (apply_event(models, crashed) or [])[0].describe() == "failed (exit code 1)"


def test_a_reload_or_an_unknown_model_asks_for_the_list_again_and_others_change_nothing():
    models = [RouterModel("alpha", "loaded")]
    assert apply_event(models, {"model": "*", "event": "models_reload"}) is None
    assert (
        apply_event(models, {"model": "new", "event": "status_change", "data": {"status": "loading"}}) is None
    )
    assert apply_event(models, {"model": "alpha", "event": "download_progress", "data": {}}) == models
    assert (
        apply_event(models, {"model": "alpha", "event": "status_change", "data": {"status": "odd"}}) == models
    )


def test_a_running_routers_settings_are_read_from_its_command_line():
    from llamadash.core.router import settings_from_argv

    default = RouterSettings(port=8090, max_models=4, autoload=True, idle_s=0)
    argv = ["llama-server", "--models-preset", "/m.ini", "--models-max", "1", "--no-models-autoload"]
    argv += ["--host", "127.0.0.1", "--port=8111", "--sleep-idle-seconds", "300"]
    assert settings_from_argv(argv, default) == RouterSettings(
        port=8111, max_models=1, autoload=False, idle_s=300
    )
    # what the command line does not say: llama-server's own defaults (autoload on, no sleep)
    assert settings_from_argv(["llama-server"], RouterSettings(autoload=False, idle_s=9)) == RouterSettings()
    # a value that is not a number is not taken
    assert settings_from_argv(["llama-server", "--models-max", "x"], default) == default
