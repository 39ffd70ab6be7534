"""Stored configuration -> llama-server argv, checked against the --help of two real builds."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
from support import help_capabilities

from llamadash.core.params.capabilities import Capabilities, parse_help
from llamadash.core.params.command import (
    REJECTED_VALUES,
    CommandError,
    build_command,
    expressible,
    format_command,
    normalize_config,
)
from llamadash.core.params.schema import Param, load_schema

DATA = Path(__file__).resolve().parents[3] / "data"


B11434 = help_capabilities("b11434")
B10001 = help_capabilities("b10001")
# an older build whose help still has --draft-max (and no --spec-draft-n-max, no --load-mode)
OLD_HELP = """\
----- common params -----

-m,    --model FNAME                    model path to load
--mmap, --no-mmap                       whether to memory-map model (default: enabled)
--mlock                                 force system to keep model in RAM
--draft-max, --draft, --draft-n N       number of tokens to draft for speculative decoding (default: 16)
--draft-min, --draft-n-min N            minimum number of draft tokens (default: 0)
-fa,   --flash-attn                     enable Flash Attention (default: disabled)
"""
OLD = parse_help(OLD_HELP, label="llama-server b5000")
BOTH = pytest.mark.parametrize("caps", [B11434, B10001], ids=["b11434", "b10001"])


def args(config: dict[str, Any], caps: Capabilities | None = B11434) -> list[str]:
    argv, _env = build_command(config, caps)
    assert argv[0] == "llama-server"
    return argv[1:]


def problems(config: dict[str, Any], caps: Capabilities | None = B11434) -> list[tuple[str, str]]:
    with pytest.raises(CommandError) as info:
        build_command(config, caps)
    return info.value.problems


# ------------------------------------------------------------------------------------------------
# the same stored configuration on different builds


@pytest.mark.parametrize(
    ("caps", "expected"),
    [
        (B11434, ["--load-mode", "mlock"]),
        (B10001, ["--no-mmap", "--mlock"]),
        (OLD, ["--no-mmap", "--mlock"]),
        (None, ["--load-mode", "mlock"]),
    ],
    ids=["b11434", "b10001", "old", "no-caps"],
)
def test_mmap_off_mlock_on_per_build(caps: Capabilities | None, expected: list[str]) -> None:
    assert args({"mmap": False, "mlock": True}, caps) == expected


@pytest.mark.parametrize(
    ("mmap", "mlock", "b11434", "b10001"),
    [
        (None, None, [], []),
        (True, None, [], []),
        (True, False, [], []),
        (None, False, [], []),
        (False, None, ["--load-mode", "none"], ["--no-mmap"]),
        (False, False, ["--load-mode", "none"], ["--no-mmap"]),
        (None, True, ["--load-mode", "mmap+mlock"], ["--mlock"]),
        (True, True, ["--load-mode", "mmap+mlock"], ["--mlock"]),
        (False, True, ["--load-mode", "mlock"], ["--no-mmap", "--mlock"]),
    ],
)
def test_load_mode_table(mmap: bool | None, mlock: bool | None, b11434: list[str], b10001: list[str]) -> None:
    config = {"mmap": mmap, "mlock": mlock}
    assert args(config, B11434) == b11434
    assert args(config, B10001) == b10001


def test_load_mode_values_from_the_database_form() -> None:
    # SQLite gives 0/1 integers: they are coerced first
    assert args({"mmap": 0, "mlock": 1}) == ["--load-mode", "mlock"]


def test_draft_max_uses_the_spelling_each_build_accepts() -> None:
    assert args({"draft_max": 8}, B11434) == ["--spec-draft-n-max", "8"]
    assert args({"draft_max": 8}, B10001) == ["--spec-draft-n-max", "8"]
    assert args({"draft_max": 8, "draft_min": 2}, OLD) == ["--draft-max", "8", "--draft-min", "2"]
    # b11434/b10001 register --draft-max only to reject it: it must never be emitted there
    assert "--draft-max" in B11434.removed


def test_hf_file_v_is_an_error_where_the_build_lacks_it() -> None:
    assert args({"hf_file_v": "x.gguf"}, B10001) == ["--hf-file-v", "x.gguf"]
    assert problems({"hf_file_v": "x.gguf"}, B11434) == [
        ("hf_file_v", "hf_file_v is not supported by llama-server b11434")
    ]
    assert problems({"hf_file_v": "x.gguf"}, None) == [
        ("hf_file_v", "hf_file_v is not supported by llama-server b11434")
    ]


def test_a_build_without_rpc_rejects_rpc() -> None:
    assert args({"rpc": ["10.0.0.2:50052"]}, B11434) == ["--rpc", "10.0.0.2:50052"]
    assert problems({"rpc": ["10.0.0.2:50052"]}, B10001) == [
        ("rpc", "rpc is not supported by llama-server b10001")
    ]


def test_removed_flag_is_named_in_the_error() -> None:
    # a build that has removed --draft-max and lacks --spec-draft-n-max
    caps = parse_help(
        "--draft-max N                           the argument has been removed. use --spec-draft-n-max\n",
        label="llama-server b9999",
    )
    [(column, message)] = problems({"draft_max": 8}, caps)
    assert column == "draft_max"
    assert message == "draft_max is not supported by llama-server b9999 (--draft-max has been removed)"


def test_a_flag_whose_form_changed_is_an_error_not_a_broken_command() -> None:
    # older builds had a bare -fa switch; llamadash writes --flash-attn on|off|auto
    [(column, message)] = problems({"flash_attn": "on"}, OLD)
    assert column == "flash_attn"
    assert message.startswith(
        "flash_attn is not supported by llama-server b5000: its --flash-attn takes no value"
    )


def test_load_mode_columns_on_a_build_with_neither_form() -> None:
    caps = parse_help("-m,    --model FNAME                    model path to load\n", label="llama-server bX")
    assert problems({"mmap": False, "mlock": True}, caps) == [
        ("mmap", "mmap is not supported by llama-server bX"),
        ("mlock", "mlock is not supported by llama-server bX"),
    ]


# ------------------------------------------------------------------------------------------------
# value forms


def test_defaults_and_unset_values_emit_nothing() -> None:
    config = {
        "ctx_size": 0,
        "temperature": 0.8,
        "cont_batching": True,
        "metrics_enabled": False,
        "gpu_layers": "auto",
        "host": "127.0.0.1",
        "port": None,
        "chat_template": "",
        "fit": "on",
    }
    assert args(config) == []


def test_kinds_render_as_llama_server_parses_them() -> None:
    config = {
        "model_path": "/models/a b.gguf",
        "ctx_size": 8192,
        "temperature": 0.1,
        "top_p": 1e-05,
        "metrics_enabled": True,
        "cont_batching": False,
        "kv_unified": True,
        "gpu_layers": 99,
        "n_gpu_layers_draft": "all",
        "device": ["CUDA0", "CUDA1"],
        "samplers": ["top_k", "temperature"],
        "control_vector_layer_range": [3, 12],
        "flash_attn": "on",
    }
    assert args(config) == [
        "--model", "/models/a b.gguf",
        "--ctx-size", "8192",
        "--no-cont-batching",
        "--device", "CUDA0,CUDA1",
        "--gpu-layers", "99",
        "--kv-unified",
        "--temp", "0.1",
        "--top-p", "1e-05",
        "--samplers", "top_k;temperature",
        "--flash-attn", "on",
        "--control-vector-layer-range", "3", "12",
        "--spec-draft-ngl", "all",
        "--metrics",
    ]  # fmt: skip


def test_bool_pair_without_default_emits_both_forms() -> None:
    assert args({"kv_unified": False}) == ["--no-kv-unified"]
    assert args({"kv_unified": True}) == ["--kv-unified"]


def test_floats_round_trip_exactly() -> None:
    for value in (0.1, 0.7000000000000001, 1.5e-7, 123456.789, -0.5):
        [flag, text] = args({"yarn_ext_factor": value})
        assert flag == "--yarn-ext-factor"
        assert float(text) == value


def test_gpu_layers_seed_minus_one_means_auto() -> None:
    assert args({"gpu_layers": -1}) == []
    assert args({"gpu_layers": 0}) == ["--gpu-layers", "0"]


def test_values_from_the_database_are_coerced() -> None:
    assert args({"cont_batching": 0, "ctx_size": 4096.0, "lora": "a.gguf, b.gguf"}) == [
        "--ctx-size",
        "4096",
        "--no-cont-batching",
        "--lora",
        "a.gguf,b.gguf",
    ]


def test_secrets_go_to_the_environment_never_argv() -> None:
    argv, env = build_command({"api_key": ["k1", "k2"], "hf_token": "hf_secret", "hf_repo": "org/m"}, B11434)
    assert argv == ["llama-server", "--hf-repo", "org/m"]
    assert env == {"LLAMA_API_KEY": "k1,k2", "HF_TOKEN": "hf_secret"}
    assert "k1" not in " ".join(argv) and "hf_secret" not in " ".join(argv)


def test_format_command_masks_or_quotes_secrets() -> None:
    argv, env = build_command({"api_key": ["it's secret"], "model_path": "/m/my model.gguf"}, B11434)
    masked = format_command(argv, env)
    assert masked == "LLAMA_API_KEY=*** llama-server --model '/m/my model.gguf'"
    plain = format_command(argv, env, mask_secrets=False)
    assert plain == """LLAMA_API_KEY='it'"'"'s secret' llama-server --model '/m/my model.gguf'"""
    assert shlex.split(plain) == ["LLAMA_API_KEY=it's secret", "llama-server", "--model", "/m/my model.gguf"]


def test_binary_is_argv0() -> None:
    assert build_command({}, B11434)[0] == ["llama-server"]
    assert build_command({}, B11434, binary="/opt/llama/llama-server")[0] == ["/opt/llama/llama-server"]
    with_binary = parse_help("-m,    --model FNAME    model\n", binary="/usr/bin/llama-server")
    assert build_command({}, with_binary)[0] == ["/usr/bin/llama-server"]
    assert build_command({}, with_binary, binary="x")[0] == ["x"]


def test_meta_columns_are_ignored_unknown_columns_are_errors() -> None:
    meta = {"id": 3, "name": "qwen", "type": "llama", "status": "running", "created_at": 1, "updated_at": 2}
    assert args(meta) == []
    assert problems({"ctx_sise": 4096}) == [
        ("ctx_sise", "ctx_sise is not a llama-server parameter llamadash knows")
    ]


def test_all_problems_are_reported_together() -> None:
    config = {
        "ctx_size": "big",
        "port": 70000,
        "hf_file_v": "v.gguf",
        "list_devices": True,
        "custom_params": {"--ctx-size": "4096", "--no-such-flag": True},
    }
    with pytest.raises(CommandError) as info:
        build_command(config, B11434)
    found = info.value.problems
    assert [column for column, _ in found] == [
        "ctx_size",
        "port",
        "hf_file_v",
        "list_devices",
        "custom_params",
        "custom_params",
    ]
    assert found[0][1] == "expected a whole number, got 'big'"
    assert found[1][1] == "70000 is above the maximum 65535"
    assert found[3][1].startswith("list_devices is not supported by llama-server b11434 as a server setting")
    message = str(info.value)
    assert message.startswith("cannot build the llama-server command:\n- ctx_size: ")
    assert "- custom_params: --no-such-flag is not accepted by llama-server b11434" in message
    assert isinstance(info.value, ValueError)


def test_values_llama_server_cannot_read_are_errors() -> None:
    assert problems({"ctx_size": 2**31}) == [
        ("ctx_size", "2147483648 does not fit llama-server's 32-bit integer")
    ]
    assert args({"seed": 4294967295}) == ["--seed", "4294967295"]  # read as unsigned
    assert problems({"rope_freq_base": 1e39})[0][0] == "rope_freq_base"
    assert problems({"rope_freq_base": 1e-40})[0][0] == "rope_freq_base"  # std::stof: out of range
    assert problems({"grammar": "a\x00b"})[0][1].startswith("the value contains a NUL")
    # inside the range, but llama-server b11434 rejects them
    assert problems({"n_parallel": 0}) == [("n_parallel", "0 is rejected; -1 = auto")]
    assert problems({"sleep_idle_seconds": 0}) == [("sleep_idle_seconds", "0 is rejected; -1 = disabled")]


# ------------------------------------------------------------------------------------------------
# custom_params


def test_numeric_list_items_are_checked_before_llama_server_sees_them() -> None:
    """llama-server stops with 'error while handling argument "--tensor-split": stof' otherwise."""
    assert args({"tensor_split": "3,1"}) == ["--tensor-split", "3,1"]
    assert args({"tensor_split": [1, 0.5]}) == ["--tensor-split", "1,0.5"]
    assert problems({"tensor_split": "a,b"}) == [
        ("tensor_split", "'a' is not a number; expected numbers >= 0 separated by ','")
    ]
    # numbers that std::stof cannot hold: out of its range
    assert problems({"tensor_split": "1,1e39"}) == [
        ("tensor_split", "1e+39 does not fit llama-server's 32-bit float")
    ]
    assert problems({"tensor_split": "1e-40"})[0][0] == "tensor_split"
    assert problems({"lora_scaled": ["/m/a.gguf:1e39"]})[0] == (
        "lora_scaled",
        "1e+39 does not fit llama-server's 32-bit float",
    )
    assert problems({"control_vector_scaled": ["/m/cv.gguf:x"]})[0][0] == "control_vector_scaled"
    assert args({"lora_scaled": ["/m/a.gguf:0.5", "/m/b.gguf:-1"]}) == [
        "--lora-scaled", "/m/a.gguf:0.5,/m/b.gguf:-1"
    ]  # fmt: skip


def test_custom_params_dict_forms() -> None:
    custom = {"--alias": "qwen", "--special": True, "--keep": 32, "--tags": ["a", "b"], "--reuse-port": False}
    assert args({"custom_params": custom}) == [
        "--alias", "qwen", "--special", "--keep", "32", "--tags", "a", "--tags", "b",
    ]  # fmt: skip


def test_custom_params_argv_list_and_json_text() -> None:
    assert args({"custom_params": ["--alias", "qwen", "--special", "--keep", "-1"]}) == [
        "--alias",
        "qwen",
        "--special",
        "--keep",
        "-1",
    ]
    assert args({"custom_params": '{"--alias": "qwen", "--special": true}'}) == [
        "--alias",
        "qwen",
        "--special",
    ]
    assert args({"custom_params": ""}) == []
    assert args({"custom_params": None}) == []


def test_custom_flag_that_a_column_covers_names_the_column() -> None:
    assert problems({"custom_params": {"-c": "4096"}}) == [
        ("custom_params", "-c is the parameter ctx_size: set ctx_size instead of a custom flag")
    ]
    assert problems({"custom_params": {"--api_key": "k"}}) == [
        ("custom_params", "--api_key is the parameter api_key: set api_key instead of a custom flag")
    ]
    assert problems({"custom_params": {"--draft-max": "4"}}, OLD)[0][1].startswith(
        "--draft-max is the parameter draft_max"
    )


def test_custom_flag_checks_against_the_build() -> None:
    assert problems({"custom_params": {"--lazy-mode": "on"}}, B10001) == [
        ("custom_params", "--lazy-mode is not accepted by llama-server b10001")
    ]
    assert args({"custom_params": {"--lazy-mode": "on"}}, B11434) == ["--lazy-mode", "on"]
    assert problems({"custom_params": {"--spec-ngram-size-n": "4"}}) == [
        ("custom_params", "--spec-ngram-size-n has been removed from llama-server b11434")
    ]
    assert problems({"custom_params": {"--alias": True}}) == [
        ("custom_params", "--alias needs a value on llama-server b11434")
    ]
    assert problems({"custom_params": {"--special": "yes"}}) == [
        ("custom_params", "--special takes no value on llama-server b11434; set it to true")
    ]
    assert problems({"custom_params": {"alias": "x"}}) == [
        ("custom_params", "'alias' does not look like a flag (-x or --name)")
    ]
    # without capabilities only the shape and the columns are checked
    assert args({"custom_params": {"--anything-new": "1"}}, None) == ["--anything-new", "1"]


def test_custom_load_mode_only_when_the_columns_leave_it_alone() -> None:
    assert args({"custom_params": {"--load-mode": "dio"}}) == ["--load-mode", "dio"]
    [(column, message)] = problems({"mlock": True, "custom_params": {"--load-mode": "dio"}})
    assert column == "custom_params" and "mmap/mlock" in message


# ------------------------------------------------------------------------------------------------
# every row, against both builds


def _sample(param: Param) -> Any:
    kind = param.kind
    if kind == "switch":
        return True
    if kind == "bool_pair":
        return not param.default if param.default is not None else False
    if kind == "enum":
        return next(c for c in param.choices if c != param.default)
    if kind == "int_or_keyword":
        return 7
    if kind == "list":
        words = {"float": "0.5", "int": "3"}
        item = ":".join(words.get(part, "x") for part in param.item_parts or ("text",))
        return [item, item.replace("x", "y")]
    if kind == "int_pair":
        return [1, 2]
    if kind == "int":
        low = int(param.min) if param.min is not None else 0
        value = low + 1 if param.default != low + 1 else low + 2
        if (param.column, value) in REJECTED_VALUES:
            value += 1
        return min(value, int(param.max)) if param.max is not None else value
    if kind == "float":
        floor = param.min if param.min is not None else 0.0
        number = floor + 0.5 if param.default != floor + 0.5 else floor + 0.25
        return min(number, param.max) if param.max is not None else number
    return "value"


@BOTH
def test_every_expressible_row_emits_a_flag_the_build_accepts(caps: Capabilities) -> None:
    checked = 0
    for param in load_schema():
        if not expressible(param, caps) or param.secret:
            continue
        config = {param.column: _sample(param)}
        argv = args(config, caps)
        assert argv, param.column
        flag = argv[0]
        assert caps.accepts(flag), (param.column, flag)
        assert flag not in caps.removed
        entry = caps.entry(flag)
        assert entry is not None
        assert len(argv) == 1 + entry.value_count, (param.column, argv)
        if param.mapping is None:
            assert flag in param.all_flags
            assert flag.startswith("--") or not any(
                f.startswith("--") and caps.accepts(f) for f in param.flags
            )
        checked += 1
    assert checked > 150


@BOTH
def test_rows_a_build_cannot_express_are_errors(caps: Capabilities) -> None:
    unsupported = [p for p in load_schema() if not expressible(p, caps)]
    assert {p.column for p in unsupported} >= {"list_devices", "verbose_prompt", "spec_replace"}
    for param in unsupported:
        [(column, message)] = problems({param.column: _sample(param)}, caps)
        assert column == param.column
        assert message.startswith(param.column)
        assert caps.label in message


def test_which_rows_each_build_cannot_express() -> None:
    def missing(caps: Capabilities) -> set[str]:
        return {p.column for p in load_schema() if not expressible(p, caps)}

    common = {"list_devices", "verbose_prompt", "model_url_draft", "ctx_size_draft", "spec_replace"}
    assert missing(B11434) == common | {"hf_file_v"}
    assert missing(B10001) == common | {"rpc"}


# ------------------------------------------------------------------------------------------------
# normalize_config


def test_normalize_config_drops_unset_default_and_meta() -> None:
    config = {
        "id": 1,
        "name": "x",
        "ctx_size": 0,
        "batch_size": 4096,
        "temperature": 0.8000000000000000001,
        "mmap": 1,
        "mlock": 1,
        "chat_template": "",
        "lora": "a.gguf,b.gguf",
        "custom_params": {"--special": True, "--reuse-port": False, "--keep": 5, "--tags": ["t"]},
    }
    assert normalize_config(config) == {
        "batch_size": 4096,
        "mlock": True,
        "lora": ["a.gguf", "b.gguf"],
        "custom_params": {"--special": True, "--keep": "5", "--tags": "t"},
    }


def test_normalize_config_rejects_bad_values() -> None:
    with pytest.raises(CommandError) as info:
        normalize_config({"port": "eighty"})
    assert info.value.problems[0][0] == "port"
