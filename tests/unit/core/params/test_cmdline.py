"""Pasted llama-server command lines -> configs, and the round trip through build_command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import help_capabilities

from llamadash.core.params.capabilities import Capabilities
from llamadash.core.params.cmdline import CommandLineError, parse_command_line
from llamadash.core.params.command import (
    REJECTED_VALUES,
    build_command,
    expressible,
    format_command,
    normalize_config,
)
from llamadash.core.params.schema import Param, load_schema

DATA = Path(__file__).resolve().parents[3] / "data"


B11434 = help_capabilities("b11434")
B10001 = help_capabilities("b10001")


# ------------------------------------------------------------------------------------------------
# reading what people paste


def test_a_readme_style_command() -> None:
    text = """\
LLAMA_API_KEY=sekrit HF_TOKEN='hf abc' /opt/llama.cpp/build/bin/llama-server \\
    -m ~/models/qwen.gguf \\
    -c 8192 --n-gpu-layers all -fa on \\
    --temp=0.7 --top_k 20 -np 4 --host 0.0.0.0 --port 8081 --metrics --no-webui
"""
    assert parse_command_line(text) == {
        "api_key": ["sekrit"],
        "hf_token": "hf abc",
        "model_path": "~/models/qwen.gguf",
        "ctx_size": 8192,
        "gpu_layers": "all",
        "flash_attn": "on",
        "temperature": 0.7,
        "top_k": 20,
        "n_parallel": 4,
        "host": "0.0.0.0",
        "port": 8081,
        "metrics_enabled": True,
        "no_webui": True,
    }


@pytest.mark.parametrize(
    "binary",
    [
        "llama-server",
        "./llama-server",
        "/usr/local/bin/llama-server",
        "llama-server.exe",
        "'C:/llama/llama-server.exe'",
    ],
)
def test_binary_as_first_word_is_optional(binary: str) -> None:
    assert parse_command_line(f"{binary} -c 512") == {"ctx_size": 512}
    assert parse_command_line("-c 512") == {"ctx_size": 512}
    assert parse_command_line("env LLAMA_ARG_CTX_SIZE=512 llama-server") == {"ctx_size": 512}


def test_aliases_short_legacy_and_underscore_spellings() -> None:
    assert parse_command_line("llama-server --temperature 0.5") == {"temperature": 0.5}
    assert parse_command_line("llama-server --temp 0.5") == {"temperature": 0.5}
    assert parse_command_line("llama-server --ctx_size 100 --n_predict 5") == {"ctx_size": 100, "predict": 5}
    assert parse_command_line("llama-server -md d.gguf --model-draft e.gguf") == {"model_draft": "e.gguf"}
    assert parse_command_line("llama-server --draft-max 8 --draft-n-min 2") == {
        "draft_max": 8,
        "draft_min": 2,
    }
    assert parse_command_line("llama-server -hf org/m -hff m.gguf") == {
        "hf_repo": "org/m",
        "hf_file": "m.gguf",
    }


def test_pairs_and_switches() -> None:
    assert parse_command_line("llama-server -nkvo --no-cont-batching --kv-unified") == {
        "kv_offload": False,
        "cont_batching": False,
        "kv_unified": True,
    }
    assert parse_command_line("llama-server --no-jinja --jinja") == {"jinja": True}  # the last one wins
    assert parse_command_line("llama-server --ui") == {"no_webui": False}
    assert parse_command_line("llama-server --jinja=false --metrics=1") == {
        "jinja": False,
        "metrics_enabled": True,
    }


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("none", {"mmap": False, "mlock": False}),
        ("mmap", {"mmap": True, "mlock": False}),
        ("mlock", {"mmap": False, "mlock": True}),
        ("mmap+mlock", {"mmap": True, "mlock": True}),
        ("auto", {}),
        ("dio", {"custom_params": {"--load-mode": "dio"}}),
    ],
)
def test_load_mode_maps_back_to_mmap_and_mlock(mode: str, expected: dict[str, Any]) -> None:
    assert parse_command_line(f"llama-server --load-mode {mode}") == expected
    assert parse_command_line(f"llama-server -lm={mode}") == expected
    assert parse_command_line(f"LLAMA_ARG_LOAD_MODE={mode} llama-server") == expected


def test_older_mmap_and_mlock_flags() -> None:
    assert parse_command_line("llama-server --no-mmap --mlock") == {"mmap": False, "mlock": True}
    assert parse_command_line("llama-server --mmap") == {"mmap": True}
    assert parse_command_line("LLAMA_ARG_NO_MMAP=1 LLAMA_ARG_MLOCK=true llama-server") == {
        "mmap": False,
        "mlock": True,
    }


def test_repeated_list_flags_append() -> None:
    assert parse_command_line("llama-server --lora a.gguf --lora b.gguf,c.gguf") == {
        "lora": ["a.gguf", "b.gguf", "c.gguf"]
    }
    assert parse_command_line("llama-server -ot 'blk\\.1=CPU' -ot exps=CPU") == {
        "override_tensor": ["blk\\.1=CPU", "exps=CPU"]
    }
    # a repeated scalar flag: the last one wins, as in llama-server
    assert parse_command_line("llama-server -c 1 -c 2") == {"ctx_size": 2}


def test_values_that_start_with_a_dash_belong_to_their_flag() -> None:
    assert parse_command_line("llama-server --seed -1 --yarn-ext-factor -0.5 --api-prefix -x") == {
        "seed": -1,
        "yarn_ext_factor": -0.5,
        "api_prefix": "-x",
    }


def test_int_pair_takes_two_words() -> None:
    assert parse_command_line("llama-server --control-vector-layer-range 2 9 -c 5") == {
        "control_vector_layer_range": [2, 9],
        "ctx_size": 5,
    }


def test_unknown_flags_go_to_custom_params() -> None:
    assert parse_command_line("llama-server --alias qwen --special --keep -1 --tags a --tags b -c 4") == {
        "ctx_size": 4,
        "custom_params": {"--alias": "qwen", "--special": True, "--keep": "-1", "--tags": ["a", "b"]},
    }
    assert parse_command_line("llama-server --cors_origins=x") == {"custom_params": {"--cors-origins": "x"}}


def test_environment_of_rows_and_secrets() -> None:
    text = (
        "LLAMA_ARG_CTX_SIZE=4096 LLAMA_ARG_NO_CONT_BATCHING=whatever LLAMA_ARG_JINJA=off "
        "LLAMA_ARG_SWA_FULL=1 LLAMA_ARG_NO_UI=0 LLAMA_API_KEY=a,b llama-server -c 8192"
    )
    assert parse_command_line(text) == {
        "ctx_size": 8192,  # the flag wins over the environment
        "cont_batching": False,  # LLAMA_ARG_NO_X set to anything turns X off
        "jinja": False,
        "swa_full": True,
        "no_webui": True,
        "api_key": ["a", "b"],
    }
    # a list flag replaces what the environment gave, then repeats append
    assert parse_command_line("LLAMA_ARG_DEVICE=CUDA0 llama-server -dev CUDA1 -dev CUDA2") == {
        "device": ["CUDA1", "CUDA2"]
    }


def test_line_continuations_and_quoting() -> None:
    text = 'llama-server \\\n  --chat-template-kwargs \'{"a": 1}\' \\\r\n  --grammar "root ::= \\"x\\""'
    assert parse_command_line(text) == {"chat_template_kwargs": '{"a": 1}', "grammar": 'root ::= "x"'}
    # inside single quotes a backslash-newline is kept, as in sh
    assert parse_command_line("llama-server --grammar 'a\\\nb'") == {"grammar": "a\\\nb"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("llama-server -m 'unclosed", "unclosed quote"),
        ("llama-server -c", "-c needs a value but the command line ends"),
        ("llama-server --control-vector-layer-range 1", "needs 2 values"),
        ("llama-server -c big", "-c: expected a whole number >= 0, got 'big' (parameter ctx_size)"),
        ("llama-server --port 99999", "--port: 99999 is above the maximum 65535"),
        ("llama-server -fa maybe", "-fa: expected one of on, off, auto"),
        ("llama-server --load-mode fast", "--load-mode: expected one of auto, none"),
        ("llama-server --jinja=perhaps", "--jinja=perhaps: expected true/false"),
        ("llama-server -c 5 model.gguf", "unexpected argument 'model.gguf'"),
        ("CUDA_VISIBLE_DEVICES=0 llama-server", "environment variable CUDA_VISIBLE_DEVICES"),
        ("LLAMA_ARG_CTX_SIZE=big llama-server", "LLAMA_ARG_CTX_SIZE: expected a whole number"),
        ("   ", "empty"),
    ],
)
def test_malformed_input_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(CommandLineError) as info:
        parse_command_line(text)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


# ------------------------------------------------------------------------------------------------
# round trip: config -> argv/env -> shell line -> config

_INT_LOW, _INT_HIGH = -(2**31), 2**31 - 1
_FLOAT_MAX = 3.4e38
_text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=20)


def _item(param: Param) -> st.SearchStrategy[str]:
    """One list item of the row's ``item`` kind (``FNAME:SCALE`` parts joined by ':')."""
    separator = param.separator or ","
    parts = param.item_parts or ("text",)
    low = param.min if param.min is not None else -_FLOAT_MAX
    high = param.max if param.max is not None else _FLOAT_MAX
    numbers = {
        "float": st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)
        .filter(lambda x: x == 0 or abs(x) >= 1.2e-38)
        .map(repr),
        "int": st.integers(int(max(low, _INT_LOW)), int(min(high, _INT_HIGH))).map(str),
    }
    forbidden = separator + (":" if len(parts) > 1 else "")
    text = _text.map(str.strip).filter(lambda s: s != "" and not any(c in s for c in forbidden))
    return st.tuples(*(numbers.get(part, text) for part in parts)).map(":".join)


def _value_strategy(param: Param) -> st.SearchStrategy[Any]:
    kind = param.kind
    if kind in ("switch", "bool_pair"):
        return st.booleans()
    if kind in ("int", "int_pair"):
        low = int(param.min) if param.min is not None else _INT_LOW
        high = int(param.max) if param.max is not None else _INT_HIGH
        ints = st.integers(low, high)
        if kind == "int":
            return ints.filter(lambda v: (param.column, v) not in REJECTED_VALUES)
        return st.tuples(ints, ints).map(sorted)
    if kind == "float":
        floor = param.min if param.min is not None else -_FLOAT_MAX
        ceiling = param.max if param.max is not None else _FLOAT_MAX
        floats = st.floats(floor, ceiling, allow_nan=False, allow_infinity=False, allow_subnormal=False)
        return floats.filter(lambda x: x == 0 or abs(x) >= 1.2e-38)
    if kind == "enum":
        return st.sampled_from(param.choices)
    if kind == "int_or_keyword":
        return st.one_of(st.sampled_from(param.keywords), st.integers(int(param.min or 0), _INT_HIGH))
    if kind == "list":
        return st.lists(_item(param), min_size=1, max_size=3)
    if kind in ("file", "dir"):
        return _text.filter(lambda s: s.strip() != "")
    return _text


def _custom_strategy(caps: Capabilities) -> st.SearchStrategy[dict[str, Any]]:
    word = st.from_regex(r"[A-Za-z0-9_./:][A-Za-z0-9_./: -]{0,10}", fullmatch=True)
    number = st.integers(-5, 10_000)
    candidates = {
        "--alias": word,
        "--tags": st.lists(word, min_size=1, max_size=3),
        "--keep": number,
        "--special": st.just(True),
        "--reuse-port": st.booleans(),
        "--slot-prompt-similarity": st.floats(0, 1, allow_nan=False),
    }
    available = {flag: strategy for flag, strategy in candidates.items() if caps.accepts(flag)}
    return st.fixed_dictionaries({}, optional=available)


def _config_strategy(caps: Capabilities) -> st.SearchStrategy[dict[str, Any]]:
    rows = {p.column: _value_strategy(p) for p in load_schema() if expressible(p, caps)}
    return st.fixed_dictionaries({}, optional={**rows, "custom_params": _custom_strategy(caps)})


def _round_trip(config: dict[str, Any], caps: Capabilities) -> None:
    argv, env = build_command(config, caps)
    line = format_command(argv, env, mask_secrets=False)
    assert normalize_config(parse_command_line(line)) == normalize_config(config)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_config_strategy(B11434))
def test_round_trip_b11434(config: dict[str, Any]) -> None:
    _round_trip(config, B11434)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_config_strategy(B10001))
def test_round_trip_b10001(config: dict[str, Any]) -> None:
    _round_trip(config, B10001)


def test_round_trip_of_every_row_at_once() -> None:
    """One config that sets every expressible row of b11434 to a non-default value."""
    config: dict[str, Any] = {}
    for param in load_schema():
        if not expressible(param, B11434):
            continue
        if param.kind == "switch":
            config[param.column] = True
        elif param.kind == "bool_pair":
            config[param.column] = not param.default if param.default is not None else False
        elif param.kind == "enum":
            config[param.column] = (
                param.choices[-1] if param.choices[-1] != param.default else param.choices[0]
            )
        elif param.kind == "int_pair":
            config[param.column] = [1, 4]
        elif param.kind == "list":
            sample = {"float": ("3", "1.5"), "int": ("7", "-2")}
            first, second = zip(
                *(sample.get(p, ("one", "two words")) for p in param.item_parts or ("text",)), strict=False
            )
            config[param.column] = [":".join(first), ":".join(second)]
        elif param.kind in ("int", "int_or_keyword"):
            config[param.column] = int(param.max) if param.max is not None else 12345
        elif param.kind == "float":
            config[param.column] = param.max if param.max is not None else 2.5
        else:
            config[param.column] = f"{param.column} 'quoted' \"value\" $HOME"
    assert len(normalize_config(config)) > 150
    _round_trip(config, B11434)
