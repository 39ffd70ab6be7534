"""Every parameter row, launched for real: the installed llama-server accepts what we emit.

For each row of the schema, the real llama-server is started with the tiny model and a non-default
value of that row, built by ``build_command`` for the capabilities parsed from the binary's own
``--help``. Each case says what must happen:

- ``ok``: the server reaches ``/health`` 200;
- ``fails``: the value needs an external resource this machine does not have (a LoRA adapter, SSL
  support, RPC support, a download), so the server stops for *that* reason (matched in its log), and
  never with an argument error;
- ``unsupported``: this build cannot express the row at all, and ``build_command`` refuses it before
  launch, naming the column and the build;
- ``build_lacks``: the build lists the flag in ``--help`` but was compiled without the feature
  (``--rpc`` without the RPC backend); the server refuses it with that reason, which ``--help`` cannot
  show in advance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import free_port, run_server_until_healthy

from llamadash.core.params import CommandError, build_command, load_schema, probe_binary

pytestmark = pytest.mark.integration

ARGUMENT_ERROR = re.compile(
    r"invalid argument|error while handling argument|the argument has been removed|unknown argument|"
    r"expected value for argument",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Case:
    value: Any
    expect: str = "ok"  # ok | fails | unsupported | build_lacks
    reason: str = ""  # regex the log must match when expect == "fails"
    extra: dict[str, Any] = field(default_factory=dict)  # other columns this case needs
    router: bool = False  # no model_path: router mode (or a model from another source)
    host: str = "127.0.0.1"
    health_path: str = "/health"


# Values that need files refer to them as "{name}"; see the `files` fixture.
CASES: dict[str, Case] = {
    # Model Path & Loading
    "model_path": Case("{model}"),
    "model_url": Case("http://127.0.0.1:9/tiny.gguf"),  # the file is already there: no download
    "docker_repo": Case("ai/smollm2", "fails", r"SSL|OpenSSL", extra={"offline": True}, router=True),
    "hf_repo": Case(
        "ggml-org/tiny-model-GGUF", "fails", r"failed to load model", extra={"offline": True}, router=True
    ),
    "hf_repo_draft": Case(
        "ggml-org/tiny-draft-GGUF", "fails", r"failed to load draft model", extra={"offline": True}
    ),
    "hf_file": Case("tiny.gguf"),
    "hf_file_v": Case("vocoder.gguf", "unsupported"),
    "hf_token": Case("hf_test_token_not_real"),
    # Context & Processing
    "ctx_size": Case(256),
    "predict": Case(32),
    "batch_size": Case(1024),
    "ubatch_size": Case(256),
    "n_parallel": Case(2),
    "cont_batching": Case(False),
    # Threading
    "threads": Case(1),
    "threads_batch": Case(1),
    "cpu_mask": Case("0x1"),
    "cpu_range": Case("0-0"),
    "cpu_strict": Case(1),
    "cpu_mask_batch": Case("0x1"),
    "cpu_range_batch": Case("0-0"),
    "cpu_strict_batch": Case(1),
    "priority": Case(1),
    "priority_batch": Case(1),
    # Memory & Performance
    "cache_ram": Case(256),
    "cache_type_k": Case("f32"),
    "cache_type_v": Case("f32"),
    "mmap": Case(False),
    "mlock": Case(True),
    "numa": Case("distribute"),
    "defrag_thold": Case(0.5),
    # GPU Offloading
    "device": Case(["none"]),
    "list_devices": Case(True, "unsupported"),
    "gpu_layers": Case("all"),
    "split_mode": Case("none"),
    "tensor_split": Case(["1", "1"]),
    "main_gpu": Case(1),
    "kv_offload": Case(False),
    "repack": Case(False),
    "no_host": Case(True),
    # Advanced Memory
    "swa_full": Case(True),
    "override_tensor": Case([r"blk\.0\.ffn_.*=CPU"]),
    "cpu_moe": Case(True),
    "n_cpu_moe": Case(1),
    "kv_unified": Case(False),
    # Sampling
    "temperature": Case(0.5),
    "top_k": Case(20),
    "top_p": Case(0.9),
    "min_p": Case(0.1),
    "top_nsigma": Case(1.5),
    "xtc_probability": Case(0.5),
    "xtc_threshold": Case(0.2),
    "typical": Case(0.9),
    "repeat_last_n": Case(32),
    "repeat_penalty": Case(1.1),
    "presence_penalty": Case(0.5),
    "frequency_penalty": Case(0.5),
    "dry_multiplier": Case(0.8),
    "dry_base": Case(2.0),
    "dry_allowed_length": Case(3),
    "dry_penalty_last_n": Case(0),
    "dry_sequence_breaker": Case("none"),
    "dynatemp_range": Case(0.5),
    "dynatemp_exp": Case(1.5),
    "mirostat": Case(2),
    "mirostat_lr": Case(0.2),
    "mirostat_ent": Case(4.0),
    "samplers": Case(["top_k", "temperature"]),
    "sampler_seq": Case("kt"),
    "seed": Case(42),
    # Grammar & Constraints
    "grammar": Case('root ::= "a"'),
    "grammar_file": Case("{grammar}"),
    "json_schema": Case('{"type": "object"}'),
    "json_schema_file": Case("{json_schema}"),
    "ignore_eos": Case(True),
    "escape": Case(False),
    # RoPE & Attention
    "rope_scaling_type": Case("linear"),
    "rope_scale": Case(2.0),
    "rope_freq_base": Case(20000.0),
    "rope_freq_scale": Case(0.5),
    "yarn_orig_ctx": Case(256),
    "yarn_ext_factor": Case(0.5),
    "yarn_attn_factor": Case(1.0),
    "yarn_beta_slow": Case(1.0),
    "yarn_beta_fast": Case(32.0),
    "flash_attn": Case("off"),
    # Multi-modal
    "mmproj": Case("{model}", "fails", r"failed to load multimodal model"),
    "mmproj_url": Case("http://127.0.0.1:9/mmproj.gguf", "fails", r"failed to download"),
    "mmproj_auto": Case(False),
    "mmproj_offload": Case(False),
    "image_min_tokens": Case(16),
    "image_max_tokens": Case(512),
    # LoRA & Control Vectors
    "lora": Case(["{model}"], "fails", r"failed to load lora adapter"),
    "lora_scaled": Case(["{model}:0.5"], "fails", r"failed to load lora adapter"),
    "control_vector": Case("{model}"),
    "control_vector_scaled": Case(["{model}:0.5"]),
    "control_vector_layer_range": Case([0, 1]),
    # Draft Model
    "model_draft": Case("{model}"),  # the tiny model drafts for itself
    "model_url_draft": Case("http://127.0.0.1:9/draft.gguf", "unsupported"),
    "ctx_size_draft": Case(128, "unsupported"),
    "threads_draft": Case(1),
    "threads_batch_draft": Case(1),
    "draft_max": Case(8),
    "draft_min": Case(1),
    "draft_p_min": Case(0.5),
    "cache_type_k_draft": Case("f32"),
    "cache_type_v_draft": Case("f32"),
    "cpu_moe_draft": Case(True),
    "n_cpu_moe_draft": Case(1),
    "n_gpu_layers_draft": Case("all"),
    "device_draft": Case(["none"]),
    "spec_replace": Case("a b", "unsupported"),
    # Logging
    "log_disable": Case(True),
    "log_file": Case("{log_file}"),
    "log_colors": Case("off"),
    "log_verbose": Case(4),
    "log_prefix": Case(False),
    "log_timestamps": Case(False),
    "logit_bias": Case("15+1"),
    # Server Configuration
    "host": Case("127.0.0.2", host="127.0.0.2"),
    "port": Case("{port}"),
    "api_prefix": Case("/api", health_path="/api/health"),
    "path": Case("{static_dir}"),
    "webui": Case('{"theme": "dark"}'),
    "webui_config_file": Case("{webui_config}"),
    "no_webui": Case(True),
    "embeddings": Case(True),
    "reranking": Case(True),
    "api_key": Case(["test-key-1", "test-key-2"]),  # /health stays public
    "api_key_file": Case("{api_key_file}"),
    # SSL needs both files; this build (LLAMA_OPENSSL=OFF) then refuses for want of SSL support
    "ssl_key_file": Case(
        "{pem}", "build_lacks", r"built without SSL support", extra={"ssl_cert_file": "{pem}"}
    ),
    "ssl_cert_file": Case(
        "{pem}", "build_lacks", r"built without SSL support", extra={"ssl_key_file": "{pem}"}
    ),
    "timeout": Case(60),
    "threads_http": Case(2),
    "cache_reuse": Case(64),
    "metrics_enabled": Case(True),
    "props_enabled": Case(True),
    "slots_enabled": Case(False),
    "slot_save_path": Case("{slot_dir}"),
    "media_path": Case("{media_dir}"),
    "models_dir": Case("{models_dir}", router=True),
    "models_preset": Case("{preset}", router=True),
    "models_max": Case(2, extra={"models_dir": "{models_dir}"}, router=True),
    "models_autoload": Case(False, extra={"models_dir": "{models_dir}"}, router=True),
    "jinja": Case(False),
    "chat_template": Case("chatml"),
    "chat_template_file": Case("{chat_template}"),
    "chat_template_kwargs": Case('{"enable_thinking": false}'),
    "prefill_assistant": Case(False),
    # Example-Specific
    "ctx_checkpoints": Case(4),
    # Advanced
    "verbose_prompt": Case(True, "unsupported"),
    "warmup": Case(False),
    "spm_infill": Case(True),
    "pooling": Case("mean", extra={"embeddings": True}),
    "context_shift": Case(True),
    # the test build has the RPC backend (-DGGML_RPC=ON): no RPC server listens there
    "rpc": Case(["127.0.0.1:50052"], "fails", r"Failed to connect to 127\.0\.0\.1:50052"),
    "offline": Case(True),
    "override_kv": Case(["llama.context_length=int:256"]),
    "op_offload": Case(False),
    "fit": Case("off"),
    "fit_target": Case(512),
    "fit_ctx": Case(256),
    "check_tensors": Case(True),
    "sleep_idle_seconds": Case(60),
    "polling": Case(0),
    "polling_batch": Case(1),
    "reasoning_format": Case("none"),
    "reasoning_budget": Case(0),
}


@pytest.fixture(scope="module")
def capabilities(llama_server: Path):
    return probe_binary(llama_server)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> dict[str, str]:
    root = tmp_path_factory.mktemp("param-files")
    (root / "grammar.gbnf").write_text('root ::= "a" | "b"\n')
    (root / "schema.json").write_text('{"type": "object"}\n')
    (root / "webui.json").write_text('{"theme": "dark"}\n')
    (root / "keys.txt").write_text("# keys\nfile-key-1\n")
    (root / "template.jinja").write_text("{% for m in messages %}{{ m.content }}{% endfor %}")
    (root / "cert.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nnot a real certificate\n-----END CERTIFICATE-----\n"
    )
    for name in ("static", "slots", "media", "models"):
        (root / name).mkdir()
    (root / "static" / "index.html").write_text("<html><body>llamadash test</body></html>")
    (root / "models" / "tiny.gguf").write_bytes(tiny_model.read_bytes())
    (root / "preset.ini").write_text(f"version = 1\n\n[tiny]\nmodel = {tiny_model}\n")
    return {
        "model": str(tiny_model),
        "grammar": str(root / "grammar.gbnf"),
        "json_schema": str(root / "schema.json"),
        "webui_config": str(root / "webui.json"),
        "api_key_file": str(root / "keys.txt"),
        "chat_template": str(root / "template.jinja"),
        "pem": str(root / "cert.pem"),
        "static_dir": str(root / "static"),
        "slot_dir": str(root / "slots"),
        "media_dir": str(root / "media"),
        "models_dir": str(root / "models"),
        "preset": str(root / "preset.ini"),
        "log_file": str(root / "server.log"),
    }


def _fill(value: Any, names: dict[str, Any]) -> Any:
    if isinstance(value, str) and "{" in value and not value.lstrip().startswith(('{"', "{ ")):
        filled = value.format(**names)
        return int(filled) if filled.isdigit() and value == "{port}" else filled
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    return value


def test_every_row_has_a_case():
    assert set(CASES) == set(load_schema().columns)


def test_every_case_value_differs_from_the_default():
    schema = load_schema()
    for column, case in CASES.items():
        if case.expect == "unsupported" or "{" in str(case.value):
            continue
        value = schema[column].coerce(case.value)
        assert schema[column].differs_from_default(value), column


@pytest.mark.parametrize("column", sorted(CASES))
def test_llama_server_accepts_the_row(column: str, capabilities, files, tmp_path: Path):
    case = CASES[column]
    port = free_port()
    names = {**files, "port": port}
    config: dict[str, Any] = {} if case.router else {"model_path": files["model"]}
    config["port"] = port
    config.update({key: _fill(value, names) for key, value in case.extra.items()})
    config[column] = _fill(case.value, names)

    if case.expect == "unsupported":
        with pytest.raises(CommandError) as info:
            build_command(config, capabilities)
        assert column in str(info.value) and "not supported" in str(info.value)
        return

    argv, env = build_command(config, capabilities)
    param = load_schema()[column]
    if param.secret:  # secrets travel in the environment, never on the command line
        secret = config[column] if isinstance(config[column], str) else ",".join(config[column])
        assert secret not in " ".join(argv)
        assert env[param.secret_env] == secret
    else:
        assert any(
            flag in argv for flag in (*param.flags, *param.negative_flags, *param.legacy_flags, "--load-mode")
        ), argv

    if case.host != "127.0.0.1":
        argv_host_ok = case.host in argv
        assert argv_host_ok
    run = run_server_until_healthy(
        argv, env, port, tmp_path / "server.log", host=case.host, health_path=case.health_path, timeout=60
    )
    if case.expect != "build_lacks":
        assert not ARGUMENT_ERROR.search(run.output), run.output[-3000:]
    if case.expect == "ok":
        assert run.healthy, f"{column}: {argv}\n{run.output[-3000:]}"
    else:
        assert not run.healthy, f"{column} unexpectedly became healthy: {argv}"
        assert re.search(case.reason, run.output), f"{column}: expected /{case.reason}/\n{run.output[-3000:]}"
