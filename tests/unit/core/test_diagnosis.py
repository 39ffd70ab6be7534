"""Crash diagnoses on real and recorded llama-server logs (tests/data/crash-logs/).

Each log file begins with comment lines: ``# made:`` how it was made (real output of this
machine's llama-server, or recorded), ``# exit:`` how the run ended (``code=1`` or
``signal=SIGILL ready=false``), ``# expect:`` the rule that must diagnose it (``none``: no rule),
and optionally ``# config:`` the model's settings (``ctx_size=8000000``).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import DATA, help_capabilities

from llamadash.core.diagnosis import (
    DIAGNOSIS_TAIL_LINES,
    Diagnosis,
    ExitFacts,
    before_start,
    check_rules,
    diagnose,
    diagnose_outcome,
)
from llamadash.core.diagnosis_rules import RULES, Rule
from llamadash.services.restart_policy import ExitOutcome

LOGS = DATA / "crash-logs"


@dataclass(frozen=True)
class CrashLog:
    name: str
    made: str
    exit: ExitFacts
    expect: str | None
    config: dict[str, Any]
    lines: tuple[str, ...]


def _value(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    return int(text) if text.lstrip("-").isdigit() else text


def load_log(path: Path) -> CrashLog:
    header: dict[str, str] = {}
    lines: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not lines and line.startswith("# ") and ":" in line:
            key, _, value = line[2:].partition(":")
            header[key.strip()] = value.strip()
        else:
            lines.append(line)
    facts: dict[str, str] = dict(item.split("=", 1) for item in header["exit"].split())
    exit_facts = ExitFacts(
        code=int(facts["code"]) if "code" in facts else None,
        signal=signal.Signals[facts["signal"]].value if "signal" in facts else None,
        ready={"true": True, "false": False}.get(facts.get("ready", "")),
    )
    config = {k: _value(v) for k, v in (item.split("=", 1) for item in header.get("config", "").split())}
    expect = header["expect"]
    return CrashLog(
        path.stem, header["made"], exit_facts, None if expect == "none" else expect, config, tuple(lines)
    )


ALL_LOGS = [load_log(path) for path in sorted(LOGS.glob("*.log"))]
BY_NAME = {log.name: log for log in ALL_LOGS}


def diagnosed(name: str, **config: Any) -> Diagnosis:
    log = BY_NAME[name]
    result = diagnose(log.exit, log.lines, {**log.config, **config})
    assert result is not None, f"{name} was not diagnosed"
    return result


def test_the_rule_table_is_sound() -> None:
    assert check_rules() == []


def test_check_rules_finds_a_template_that_names_a_figure_a_pattern_does_not_give() -> None:
    broken = Rule(id="x", cause="x", summary="port {port}", fix="-", lines=(r"bind failed",))
    assert check_rules([broken]) == ["x: 'bind failed' gives no ['port']"]
    no_evidence = Rule(id="y", cause="y", summary="-", fix="-")
    assert "y: neither log patterns nor signals" in check_rules([no_evidence])[0]


def test_every_log_file_has_a_header_that_says_how_it_was_made() -> None:
    assert len(ALL_LOGS) >= 15
    for log in ALL_LOGS:
        assert log.made.startswith(("real output", "recorded")), log.name
        assert log.lines, log.name


@pytest.mark.parametrize("log", ALL_LOGS, ids=lambda log: log.name)
def test_each_log_is_diagnosed_by_the_rule_it_names(log: CrashLog) -> None:
    result = diagnose(log.exit, log.lines, log.config)
    assert (result.rule if result else None) == log.expect
    if result is not None:
        assert result.summary and result.fix
        assert "{" not in result.summary + result.fix and "[" not in result.summary
        assert result.cause == next(rule.cause for rule in RULES if rule.id == result.rule)


def test_every_rule_is_exercised_by_a_log_file() -> None:
    exercised = {log.expect for log in ALL_LOGS}
    assert {rule.id for rule in RULES} <= exercised
    assert None in exercised  # and at least one log no rule knows


def test_the_cause_of_each_log_file_name_is_its_diagnosis() -> None:
    for log in ALL_LOGS:
        result = diagnose(log.exit, log.lines, log.config)
        if result is not None and not log.name.startswith("amx_repack"):
            assert log.name.split("-")[0] == result.cause, log.name


def test_a_missing_model_file_names_the_path() -> None:
    result = diagnosed("model_missing")
    assert result.cause == "model_missing"
    assert result.summary == "The model file does not exist: /tmp/crash/nope.gguf"
    assert result.figures["path"] == "/tmp/crash/nope.gguf"
    assert result.action == {"open": "configuration", "focus": ("model_path",)}
    assert result.evidence is not None and "failed to open GGUF file" in result.evidence


def test_a_file_that_is_not_gguf_says_how_it_begins() -> None:
    result = diagnosed("not_gguf")
    assert (
        result.summary == "The model file is not a GGUF file: /tmp/crash/notes.gguf (it begins with 'this')."
    )
    assert "convert_hf_to_gguf.py" in result.fix
    empty = diagnosed("not_gguf-empty-file")
    assert empty.summary == "The model file is not a GGUF file: /tmp/crash/empty.gguf."


def test_an_unknown_argument_is_named() -> None:
    result = diagnosed("unknown_argument")
    assert result.summary == "This llama-server build does not know the argument --bogus-flag."
    assert "Remove --bogus-flag" in result.fix
    log = BY_NAME["unknown_argument"]
    with_build = diagnose(log.exit, log.lines, capabilities=help_capabilities("b11434"))
    assert with_build is not None
    assert with_build.summary == (
        "This llama-server build (llama-server b11434) does not know the argument --bogus-flag."
    )


def test_a_refused_value_names_the_argument_or_variable() -> None:
    assert diagnosed("invalid_value").summary == "llama-server refused the value given for --ctx-size (stoi)."
    env = diagnosed("invalid_value-environment")
    assert env.figures["argument"] == "LLAMA_ARG_CTX_SIZE"


def test_a_taken_port_names_the_port_and_host() -> None:
    result = diagnosed("port_taken")
    assert result.summary == "Port 18556 is already in use on 127.0.0.1: another program is listening there."
    assert result.fix == "Stop the program that uses port 18556, or give this model another port."
    assert result.action == {"open": "configuration", "focus": ("port",)}


def test_address_in_use_without_the_port_takes_it_from_the_configuration() -> None:
    lines = ["bind: Address already in use"]
    result = diagnose(ExitFacts(code=1), lines, {"port": 8080})
    assert result is not None and result.summary.startswith("Port 8080 is already in use:")
    bare = diagnose(ExitFacts(code=1), lines)
    assert bare is not None and bare.summary == "Port is already in use: another program is listening there."


@pytest.mark.parametrize("name", ["https_unsupported", "https_unsupported-model-url"])
def test_a_download_on_a_build_without_https_says_so(name: str) -> None:
    result = diagnosed(name)
    assert result.cause == "https_unsupported"
    assert "built without HTTPS support" in result.summary
    assert "(-DLLAMA_OPENSSL=ON)" in result.fix
    # the last line of the log only says "exiting due to model loading error"
    assert "HTTPS" not in BY_NAME[name].lines[-1]


def test_host_out_of_memory_gives_the_size_the_buffer_and_the_context() -> None:
    result = diagnosed("out_of_memory")
    assert result.summary == (
        "Out of memory on CPU: 3906.25 MiB could not be allocated for the kv cache (context size 8000000)."
    )
    assert result.fix.startswith("Lower the context size (now 8000000), offload fewer layers")
    assert "quantized KV cache" in result.fix
    assert result.action == {
        "open": "configuration",
        "focus": ("ctx_size", "gpu_layers", "cache_type_k", "cache_type_v"),
    }
    compute = diagnosed("out_of_memory-compute-buffers")
    assert compute.figures["alloc_mib"] == "1954.39"
    assert compute.figures["purpose"] == "compute"
    assert compute.figures["ctx"] == "2000128"


def test_gpu_out_of_memory_names_the_device() -> None:
    result = diagnosed("out_of_memory-cuda")
    assert (
        result.summary == "Out of memory on CUDA0: 8000.00 MiB could not be allocated (context size 32768)."
    )
    assert result.figures["gpu_layers"] == "99"
    kv = diagnosed("out_of_memory-cuda-kv-cache")
    assert kv.summary == (
        "Out of memory on CUDA0: 16384.00 MiB could not be allocated for the kv cache (context size 131072)."
    )


def test_a_failed_pinned_buffer_is_a_warning_not_the_cause() -> None:
    lines = [
        "W ggml_cuda_host_malloc: failed to allocate 1900.00 MiB of pinned memory: out of memory",
        "I srv  llama_server: model loaded",
    ]
    assert diagnose(ExitFacts(code=1), lines) is None


def test_a_kill_while_loading_is_most_likely_the_oom_killer() -> None:
    result = diagnosed("out_of_memory-oom-killer")
    assert result.cause == "out_of_memory"
    assert result.summary.startswith(
        "llama-server was killed (SIGKILL) while loading with context size 65536:"
    )
    assert "journalctl -k" in result.fix
    log = BY_NAME["out_of_memory-oom-killer"]
    for ready in (True, None):  # after it was ready, or not known: no guess
        assert diagnose(ExitFacts(signal=signal.SIGKILL, ready=ready), log.lines) is None


def test_an_amx_crash_offers_turning_repacking_off() -> None:
    result = diagnosed("amx_repack")
    assert result.cause == "amx_repack"
    assert result.summary.startswith(
        "llama-server crashed (SIGSEGV) running weights repacked for the CPU's AMX"
    )
    assert "(0.70 MiB)" in result.summary
    assert "--no-repack" in result.fix
    assert result.action == {"set": {"repack": False}}
    sigill = diagnosed("amx_repack-sigill")
    assert sigill.rule == "repack_illegal_instruction"
    assert sigill.summary.startswith("llama-server stopped on an illegal instruction (SIGILL)")
    assert sigill.action == {"set": {"repack": False}}


@pytest.mark.parametrize("repack", [False, 0, "false", "off"])
def test_no_repack_advice_when_repacking_is_already_off(repack: Any) -> None:
    for name in ("amx_repack", "amx_repack-sigill"):
        log = BY_NAME[name]
        assert diagnose(log.exit, log.lines, {"repack": repack}) is None


def test_repacking_on_or_unset_still_gets_the_advice() -> None:
    for repack in (True, None, 1, "true"):
        assert diagnosed("amx_repack-sigill", repack=repack).cause == "amx_repack"


def test_a_clean_exit_is_not_diagnosed() -> None:
    log = BY_NAME["out_of_memory"]
    assert diagnose(ExitFacts(code=0), log.lines) is None
    assert diagnose(ExitFacts(code=1), ["I srv  llama_server: model loaded"]) is None
    assert diagnose(ExitFacts(code=1), []) is None


def test_the_action_cannot_be_changed_by_its_reader() -> None:
    result = diagnosed("amx_repack")
    assert result.action is not None
    with pytest.raises(TypeError):
        result.action["set"]["repack"] = True
    assert diagnosed("amx_repack").action == {"set": {"repack": False}}


def test_a_figure_is_never_read_as_a_template() -> None:
    line = "E gguf_init_from_file: failed to open GGUF file '/m/{path}[x].gguf' (No such file or directory)"
    result = diagnose(ExitFacts(code=1), [line])
    assert result is not None and result.summary == "The model file does not exist: /m/{path}[x].gguf"


def test_message_joins_summary_and_fix() -> None:
    result = diagnosed("port_taken")
    assert result.message == f"{result.summary} {result.fix}"


def test_diagnose_outcome_reads_an_exit_outcome() -> None:
    log = BY_NAME["model_missing"]
    outcome = ExitOutcome.of_process(1, False, last_lines=log.lines)
    result = diagnose_outcome(outcome)
    assert result is not None and result.cause == "model_missing"
    assert diagnose_outcome(ExitOutcome.unknown(123), log.lines) is None  # adopted: nothing known
    killed = ExitOutcome.of_process(
        signal.SIGKILL, True, last_lines=BY_NAME["out_of_memory-oom-killer"].lines
    )
    assert diagnose_outcome(killed) is None  # readiness not given: no guess
    oom = diagnose_outcome(killed, ready=False)
    assert oom is not None and oom.rule == "oom_killed"


def test_the_crash_tail_alone_misses_the_https_cause_so_more_lines_are_passed() -> None:
    log = BY_NAME["https_unsupported"]
    outcome = ExitOutcome.of_process(1, False, last_lines=log.lines)  # keeps the last 10 lines
    assert diagnose_outcome(outcome) is None
    result = diagnose_outcome(outcome, log.lines[-DIAGNOSIS_TAIL_LINES:])
    assert result is not None and result.cause == "https_unsupported"


def test_before_start_warns_of_a_download_on_a_build_without_https() -> None:
    caps = help_capabilities("b11434")
    config = {"hf_repo": "ggml-org/gemma-3-1b-it-GGUF", "model_path": ""}
    result = before_start(config, caps, https_supported=False)
    assert result is not None and result.cause == "https_unsupported"
    assert result.summary == (
        "This llama-server build cannot download models (hf_repo = ggml-org/gemma-3-1b-it-GGUF): "
        "it was built without HTTPS support."
    )
    assert result.figures["build"] == "llama-server b11434"
    assert before_start(config, caps, https_supported=True) is None
    assert before_start(config, caps) is None  # not known: nothing said
    url = "https://huggingface.co/x/y/resolve/main/m.gguf"
    assert before_start({"model_url": url}, https_supported=False) is not None
    assert before_start({"model_url": "http://127.0.0.1:8000/m.gguf"}, https_supported=False) is None
    assert before_start({"model_path": "/m.gguf", "hf_repo": None}, https_supported=False) is None
