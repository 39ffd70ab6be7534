"""The crash rules of :mod:`llamadash.core.diagnosis`, as data: one :class:`Rule` per known cause.

Each rule says which exits it applies to (signals, whether the server had become ready), which log
lines show the cause (regular expressions; the first matching line is the evidence and its named
groups become figures), which other lines give figures (a size, the context), and the words for
people: a one-line ``summary``, a ``fix``, and an optional ``action`` the window can offer as one
click. The first rule that matches wins, so the specific causes come before the general ones (a
Hugging Face model on a build without HTTPS also fails with "failed to load model").

Message templates name figures as ``{name}``; a part in ``[...]`` is said only when every figure
it names is known ("Out of memory[ on {buffer_type}]"). A name outside brackets must be a named
group of every ``lines`` pattern of its rule (:func:`llamadash.core.diagnosis.check_rules` checks
it), or the exit's ``{signal}`` for a rule that requires signals.

Actions, for the window to carry out: ``{"set": {column: value}}`` changes the model's
configuration; ``{"open": "configuration", "focus": (columns...)}`` opens the model's
configuration at those parameters.

The patterns are llama-server's own words, from the logs in ``tests/data/crash-logs/`` (real
output of b11434 where a CPU machine can produce the failure, recorded lines for a CUDA
out-of-memory, an AMX crash and the OOM killer); every rule is exercised by one of them (a test
checks it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llamadash.core.params import COLUMN

__all__ = ["BEFORE_START_HTTPS", "REMOTE_MODEL_COLUMNS", "RULES", "URL_MODEL_COLUMNS", "Rule"]

#: The flag that turns weight repacking off, named in messages.
_NO_REPACK = "--no-repack"
_MEMORY_FOCUS = (COLUMN.ctx_size, COLUMN.gpu_layers, COLUMN.cache_type_k, COLUMN.cache_type_v)
_MEMORY_FIX = (
    "Lower the context size[ (now {ctx})], offload fewer layers to the GPU (GPU layers), "
    "or use a quantized KV cache (K and V cache type q8_0)."
)


@dataclass(frozen=True)
class Rule:
    """One known cause of a failed run and what to say about it.

    Attributes:
        id: A unique name for the rule (tests and logs refer to it).
        cause: The cause it diagnoses (several rules may share one: ``out_of_memory``).
        summary: The one line for people (a template, see the module docstring).
        fix: What to do about it (a template).
        lines: Regular expressions over log lines, any of which shows the cause; empty: the exit
            alone shows it (``signals`` must then be given).
        signals: The exit must be by one of these signals (``"SIGILL"``); empty: any exit.
        ready: ``False``: only when the server had not become ready; ``None``: either way.
        figures: Regular expressions over all lines whose named groups add figures (the first
            match of each; a figure already known is kept).
        ignore: Lines matching any of these never count as evidence (a warning that looks alike).
        unless_config: The rule does not apply when the configuration already has these values
            (no "turn repacking off" when it is off).
        config_figures: Configuration columns whose values become figures (``ctx_size`` -> ``ctx``
            is given as ``("ctx", "ctx_size")``), used when the log did not give that figure.
        action: What the window can do in one click, or ``None``.
    """

    id: str
    cause: str
    summary: str
    fix: str
    lines: tuple[str, ...] = ()
    signals: tuple[str, ...] = ()
    ready: bool | None = None
    figures: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    unless_config: tuple[tuple[str, Any], ...] = ()
    config_figures: tuple[tuple[str, str], ...] = ()
    action: dict[str, Any] | None = field(default=None, hash=False)


RULES: tuple[Rule, ...] = (
    Rule(
        id="https_unsupported",
        cause="https_unsupported",
        lines=(
            r"HTTPS is not supported",
            r"(?i)built without (?:lib)?curl",
        ),
        figures=(r"-D(?P<rebuild_option>LLAMA_OPENSSL=ON)",),
        summary="This llama-server build cannot download models: it was built without HTTPS support.",
        fix=(
            "Download the GGUF file yourself and choose it as the model file, or use a llama-server "
            "built with HTTPS support[ (-D{rebuild_option})]."
        ),
        action={"open": "configuration", "focus": (COLUMN.model_path, COLUMN.hf_repo, COLUMN.model_url)},
    ),
    Rule(
        id="unknown_argument",
        cause="unknown_argument",
        lines=(r"error: invalid argument: (?P<argument>\S+)",),
        summary="This llama-server build[ ({build})] does not know the argument {argument}.",
        fix=(
            "Remove {argument} from the model's configuration or extra flags, or use a newer "
            "llama-server (llama-server --help lists what this build accepts)."
        ),
        action={"open": "configuration"},
    ),
    Rule(
        id="invalid_value",
        cause="invalid_value",
        lines=(
            r'error while handling argument "(?P<argument>[^"]+)": (?P<detail>.*\S)',
            r'(?i)error while handling environment variable "(?P<argument>[^"]+)": (?P<detail>.*\S)',
        ),
        summary="llama-server refused the value given for {argument} ({detail}).",
        fix="Correct the value of {argument} in the model's configuration (or in the environment).",
        action={"open": "configuration"},
    ),
    Rule(
        id="port_taken",
        cause="port_taken",
        lines=(
            r"couldn't bind HTTP server socket, hostname: (?P<host>[^,]+), port: (?P<port>\d+)",
            r"(?i)address already in use",
        ),
        summary="Port[ {port}] is already in use[ on {host}]: another program is listening there.",
        fix="Stop the program that uses port[ {port}], or give this model another port.",
        config_figures=((COLUMN.port, COLUMN.port),),
        action={"open": "configuration", "focus": (COLUMN.port,)},
    ),
    Rule(
        id="rpc_worker_unreachable",
        cause="rpc_worker_unreachable",
        lines=(r"ggml-rpc\.cpp:\d+: Failed to connect to (?P<endpoint>\S+)",),
        ready=False,
        summary="The RPC worker {endpoint} of the model's --rpc list does not answer.",
        fix=(
            "Start that worker (Workers tab, or llamadash workers start NAME) or check that its machine "
            "runs ggml-rpc-server and is reachable (llamadash workers list); or take the model off it "
            "(llamadash workers use MODEL --none)."
        ),
        action={"open": "configuration", "focus": (COLUMN.rpc,)},
    ),
    Rule(
        id="model_missing",
        cause="model_missing",
        lines=(r"failed to open GGUF file '(?P<path>.+)' \(No such file or directory\)",),
        summary="The model file does not exist: {path}",
        fix="Check the model path (was the file moved, renamed or deleted?) or choose the file again.",
        action={"open": "configuration", "focus": (COLUMN.model_path,)},
    ),
    Rule(
        id="not_gguf",
        cause="not_gguf",
        lines=(
            r"invalid magic characters: '(?P<magic>.*)', expected 'GGUF'",
            r"gguf_init_from_reader: failed to read magic",
        ),
        figures=(r"loading model '(?P<path>[^']+)'",),
        summary="The model file is not a GGUF file[: {path}][ (it begins with '{magic}')].",
        fix=(
            "llama-server loads GGUF files only: choose a .gguf file, or convert the model with "
            "llama.cpp's convert_hf_to_gguf.py."
        ),
        action={"open": "configuration", "focus": (COLUMN.model_path,)},
    ),
    Rule(
        id="out_of_memory",
        cause="out_of_memory",
        lines=(
            r"cudaMalloc failed: out of memory",
            r"(?i)\bout of memory\b",
            r"(?i)failed to allocate",
            r"insufficient memory",
            r"std::bad_alloc",
            r"(?i)unable to allocate",
        ),
        ignore=(r"(?i)pinned memory",),  # a failed pinned buffer is a warning: llama.cpp goes on
        figures=(
            r"attempted to allocate (?P<alloc_mib>[\d.]+) MB",
            r"allocating (?P<alloc_mib>[\d.]+) MiB on device (?P<device>\d+)",
            r"failed to allocate (?P<buffer_type>[A-Za-z][A-Za-z0-9_]*) buffer of size (?P<alloc_bytes>\d+)",
            r"unable to allocate (?P<buffer_type>[A-Za-z][A-Za-z0-9_]*) buffer",
            r"failed to allocate (?:buffer )?for (?P<purpose>kv cache)",
            r"failed to allocate (?P<purpose>compute) (?:pp )?buffers",
            r"n_ctx_seq \((?P<ctx>\d+)\)",
            r"\bn_ctx\s+=\s+(?P<ctx>\d+)",
        ),
        summary=(
            "Out of memory[ on {buffer_type}][: {alloc_mib} MiB could not be allocated]"
            "[ for the {purpose}][ (context size {ctx})]."
        ),
        fix=_MEMORY_FIX,
        config_figures=(("ctx", COLUMN.ctx_size), (COLUMN.gpu_layers, COLUMN.gpu_layers)),
        action={"open": "configuration", "focus": _MEMORY_FOCUS},
    ),
    Rule(
        id="amx_repack",
        cause="amx_repack",
        signals=("SIGILL", "SIGSEGV", "SIGBUS"),
        lines=(
            r"ggml_backend_amx",
            r"AMX model buffer size",
            r"AMX_INT8 = 1",
        ),
        unless_config=((COLUMN.repack, False),),
        figures=(r"(?P<buffer>AMX|CPU_REPACK) model buffer size\s*=\s*(?P<repacked_mib>[\d.]+) MiB",),
        summary=(
            "llama-server crashed ({signal}) running weights repacked for the CPU's AMX "
            "instructions[ ({repacked_mib} MiB)]: the CPU (often a virtual one) advertises AMX "
            "but cannot run it."
        ),
        fix=f"Turn off weight repacking ({_NO_REPACK}); the model then runs on the plain CPU code.",
        action={"set": {COLUMN.repack: False}},
    ),
    Rule(
        # At the default verbosity llama-server prints no buffer lines: an illegal instruction
        # with repacking on is diagnosed from the exit alone (the buffer line is a figure if shown).
        id="repack_illegal_instruction",
        cause="amx_repack",
        signals=("SIGILL",),
        unless_config=((COLUMN.repack, False),),
        figures=(r"(?P<buffer>CPU_REPACK) model buffer size\s*=\s*(?P<repacked_mib>[\d.]+) MiB",),
        summary=(
            "llama-server stopped on an illegal instruction ({signal}): the CPU (often a virtual "
            "one) advertises instructions it cannot run, most often met in the weights repacked "
            "for it[ ({repacked_mib} MiB repacked)]."
        ),
        fix=(
            f"Turn off weight repacking ({_NO_REPACK}); if it still crashes, use a llama-server "
            "built for this CPU."
        ),
        action={"set": {COLUMN.repack: False}},
    ),
    Rule(
        id="oom_killed",
        cause="out_of_memory",
        signals=("SIGKILL",),
        ready=False,
        figures=(r"n_ctx_seq \((?P<ctx>\d+)\)", r"\bn_ctx\s+=\s+(?P<ctx>\d+)"),
        summary=(
            "llama-server was killed ({signal}) while loading[ with context size {ctx}]: most "
            "likely the system ran out of memory and its out-of-memory killer ended it."
        ),
        fix=_MEMORY_FIX + " (journalctl -k | grep -i oom tells whether the OOM killer did it.)",
        config_figures=(("ctx", COLUMN.ctx_size), (COLUMN.gpu_layers, COLUMN.gpu_layers)),
        action={"open": "configuration", "focus": _MEMORY_FOCUS},
    ),
)

#: Columns whose value makes llama-server download the model over HTTPS.
REMOTE_MODEL_COLUMNS = (
    COLUMN.hf_repo,
    COLUMN.docker_repo,
    COLUMN.model_url,
    COLUMN.hf_repo_draft,
    COLUMN.model_url_draft,
)
#: Of those, the URLs: only an ``https://`` one needs HTTPS.
URL_MODEL_COLUMNS = (COLUMN.model_url, COLUMN.model_url_draft)

#: What :func:`llamadash.core.diagnosis.before_start` says for a remote model on a build without
#: HTTPS (``{column}`` and ``{value}`` name the setting that needs the download).
BEFORE_START_HTTPS = Rule(
    id="https_unsupported_before_start",
    cause="https_unsupported",
    summary=(
        "This llama-server build cannot download models ({column} = {value}): "
        "it was built without HTTPS support."
    ),
    fix=(
        "Download the GGUF file yourself and choose it as the model file, or use a llama-server "
        "built with HTTPS support (-DLLAMA_OPENSSL=ON)."
    ),
    action={"open": "configuration", "focus": (COLUMN.model_path, COLUMN.hf_repo, COLUMN.model_url)},
)
