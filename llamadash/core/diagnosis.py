"""Why a run of llama-server failed, in words people can act on: crash diagnoses from the exit and the log.

:func:`diagnose` reads how a run ended (:class:`ExitFacts`: exit code or signal, whether the server
had become ready, how long it ran) and the lines it printed, and applies the rules of
:mod:`llamadash.core.diagnosis_rules` in order; the first that matches gives a :class:`Diagnosis`:
the cause (``out_of_memory``, ``port_taken``, ...), a one-line summary, a suggested fix, figures
read from the log (the MiB that could not be allocated, the port) and, where one exists, an action
the window can offer as one click (``{"set": {"repack": False}}``). An exit no rule knows gives
``None``: the caller keeps its own words (the signal and the log tail).

:func:`before_start` says the same before a start where the build shows it: a Hugging Face or URL
model on a llama-server built without HTTPS. The ``--help`` of such a build is the same as that of
one with HTTPS, so :func:`probe_https_support` asks the binary itself (it starts it once with an
``https://`` model URL on 127.0.0.1 and reads whether it refuses HTTPS; nothing leaves the machine).

Pure Python, no Qt: the services layer calls :func:`diagnose_outcome` with its ``ExitOutcome``.
"""

from __future__ import annotations

import functools
import os
import re
import signal as signal_module
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from llamadash.core.diagnosis_rules import (
    BEFORE_START_HTTPS,
    REMOTE_MODEL_COLUMNS,
    RULES,
    URL_MODEL_COLUMNS,
    Rule,
)
from llamadash.core.params import FALSE_WORDS, TRUE_WORDS

if TYPE_CHECKING:
    from llamadash.core.params.capabilities import Capabilities

__all__ = [
    "DIAGNOSIS_TAIL_LINES",
    "Diagnosis",
    "ExitFacts",
    "ExitLike",
    "before_start",
    "check_rules",
    "diagnose",
    "diagnose_outcome",
    "probe_https_support",
]

#: How many of a run's last lines to hand to :func:`diagnose`: the cause of a failed Hugging Face
#: download is printed near the start, ten lines before the end.
DIAGNOSIS_TAIL_LINES = 400

_OPTIONAL_PART = re.compile(r"\[([^\[\]]*)\]")
_FIELD = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class ExitFacts:
    """How one run ended, as far as the rules need it.

    Attributes:
        code: The exit code; ``None`` when a signal ended it or it is unknown.
        signal: The signal that ended it (POSIX), if one did.
        ready: Whether the server had become ready (``/health`` 200); ``None``: not known.
        ran_s: Seconds the run lasted, if known.
    """

    code: int | None = None
    signal: int | None = None
    ready: bool | None = None
    ran_s: float | None = None

    @classmethod
    def of(cls, outcome: ExitLike, *, ready: bool | None = None, ran_s: float | None = None) -> ExitFacts:
        """The facts of an ``ExitOutcome`` (or anything with ``code`` and ``signal``)."""
        return cls(code=outcome.code, signal=outcome.signal, ready=ready, ran_s=ran_s)

    @property
    def signal_name(self) -> str | None:
        """``"SIGILL"`` for signal 4 (this platform's numbering), ``None`` without a signal."""
        if self.signal is None:
            return None
        try:
            return signal_module.Signals(self.signal).name
        except ValueError:
            return f"signal {self.signal}"


class ExitLike(Protocol):
    """What :func:`diagnose_outcome` reads of ``llamadash.services.restart_policy.ExitOutcome``."""

    @property
    def code(self) -> int | None: ...
    @property
    def signal(self) -> int | None: ...
    @property
    def last_lines(self) -> tuple[str, ...]: ...
    @property
    def status_known(self) -> bool: ...


@dataclass(frozen=True)
class Diagnosis:
    """A known cause of a failed run, with what to do about it.

    Attributes:
        cause: What went wrong: ``amx_repack``, ``out_of_memory``, ``port_taken``,
            ``model_missing``, ``not_gguf``, ``unknown_argument``, ``invalid_value`` or
            ``https_unsupported``.
        summary: One line for people ("Port 8080 is already in use ...").
        fix: What to do about it.
        action: What the window can do in one click, or ``None``: ``{"set": {column: value}}``
            changes the model's configuration; ``{"open": "configuration", "focus": (columns...)}``
            opens it at those parameters.
        figures: What the log (or the configuration) said, by name: ``alloc_mib``, ``ctx``,
            ``port``, ``path``, ``argument``, ``signal``, ...
        rule: The id of the rule that matched.
        evidence: The log line that shows the cause, if a line did.
    """

    cause: str
    summary: str
    fix: str
    action: Mapping[str, Any] | None = None
    figures: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    rule: str = ""
    evidence: str | None = None

    @property
    def message(self) -> str:
        """The summary and the fix in one text: ``"<summary> <fix>"``."""
        return f"{self.summary} {self.fix}"


@dataclass(frozen=True)
class _Compiled:
    rule: Rule
    lines: tuple[re.Pattern[str], ...]
    figures: tuple[re.Pattern[str], ...]
    ignore: tuple[re.Pattern[str], ...]


def _compile(rule: Rule) -> _Compiled:
    return _Compiled(
        rule,
        tuple(re.compile(p) for p in rule.lines),
        tuple(re.compile(p) for p in rule.figures),
        tuple(re.compile(p) for p in rule.ignore),
    )


@functools.cache
def _compiled_rules() -> tuple[_Compiled, ...]:
    """The rules' patterns, compiled at the first diagnosis (11 ms at import, on every start)."""
    return tuple(_compile(rule) for rule in RULES)


def diagnose(
    exit: ExitFacts,
    log_lines: Sequence[str],
    config: Mapping[str, Any] | None = None,
    capabilities: Capabilities | None = None,
) -> Diagnosis | None:
    """The known cause of a failed run, or ``None`` when no rule knows it (or it did not fail).

    Call it for an unexpected exit only: a run that llamadash itself stopped (terminate, then
    kill) ended by llamadash's signal, not by its cause.

    Args:
        exit: How the run ended.
        log_lines: What it printed, oldest first (the last :data:`DIAGNOSIS_TAIL_LINES` are enough).
        config: The model's configuration (columns to values), for figures such as the context
            size and to leave out fixes already applied (repacking already off).
        capabilities: The build that ran, for its name in messages.
    """
    if exit.signal is None and exit.code == 0:
        return None  # it exited by itself, cleanly: nothing to diagnose
    settings: Mapping[str, Any] = config or {}
    for compiled in _compiled_rules():
        found = _match(compiled, exit, log_lines, settings)
        if found is not None:
            evidence, figures = found
            return _diagnosis(compiled, exit, log_lines, settings, capabilities, evidence, figures)
    return None


def diagnose_outcome(
    outcome: ExitLike,
    log_lines: Sequence[str] | None = None,
    config: Mapping[str, Any] | None = None,
    capabilities: Capabilities | None = None,
    *,
    ready: bool | None = None,
    ran_s: float | None = None,
) -> Diagnosis | None:
    """:func:`diagnose` for an ``ExitOutcome``: its last lines unless ``log_lines`` gives more.

    An outcome whose status nobody knows (an adopted process) gives ``None``.
    """
    if not outcome.status_known:
        return None
    lines = outcome.last_lines if log_lines is None else log_lines
    return diagnose(ExitFacts.of(outcome, ready=ready, ran_s=ran_s), lines, config, capabilities)


def before_start(
    config: Mapping[str, Any],
    capabilities: Capabilities | None = None,
    *,
    https_supported: bool | None = None,
) -> Diagnosis | None:
    """What will fail before it is started, where the build shows it; ``None``: nothing known.

    Today one case: a model to download (Hugging Face repository, Docker repository, ``https://``
    URL) on a build without HTTPS support.

    Args:
        config: The model's configuration (columns to values).
        capabilities: The build that will run, for its name in the message.
        https_supported: Whether the build can download over HTTPS (see
            :func:`probe_https_support`); ``None``: not known, nothing is said.
    """
    if https_supported is not False:
        return None
    for column in REMOTE_MODEL_COLUMNS:
        value = config.get(column)
        if not isinstance(value, str) or not value.strip():
            continue
        if column in URL_MODEL_COLUMNS and not value.strip().lower().startswith("https://"):
            continue  # a plain http:// URL downloads without HTTPS support
        figures = {"column": column, "value": value.strip()}
        if capabilities is not None:
            figures["build"] = capabilities.label
        rule = BEFORE_START_HTTPS
        return Diagnosis(
            cause=rule.cause,
            summary=_render(rule.summary, figures),
            fix=_render(rule.fix, figures),
            action=_frozen_action(rule.action),
            figures=MappingProxyType(figures),
            rule=rule.id,
        )
    return None


# ------------------------------------------------------------------------------------------------
# matching


def _match(
    compiled: _Compiled, exit: ExitFacts, log_lines: Sequence[str], config: Mapping[str, Any]
) -> tuple[str | None, dict[str, str]] | None:
    rule = compiled.rule
    if rule.signals and exit.signal_name not in rule.signals:
        return None
    if rule.ready is not None and exit.ready is not rule.ready:
        return None
    for column, value in rule.unless_config:
        if _config_equals(config.get(column), value):
            return None
    if not compiled.lines:
        return None, {}
    for line in log_lines:
        if any(p.search(line) for p in compiled.ignore):
            continue
        for pattern in compiled.lines:
            found = pattern.search(line)
            if found:
                groups = {k: v for k, v in found.groupdict().items() if v is not None}
                return line.strip(), groups
    return None


def _diagnosis(
    compiled: _Compiled,
    exit: ExitFacts,
    log_lines: Sequence[str],
    config: Mapping[str, Any],
    capabilities: Capabilities | None,
    evidence: str | None,
    figures: dict[str, str],
) -> Diagnosis:
    rule = compiled.rule
    for pattern in compiled.figures:
        for line in log_lines:
            found = pattern.search(line)
            if found:
                for name, value in found.groupdict().items():
                    if value is not None:
                        figures.setdefault(name, value)
                break
    for name, column in rule.config_figures:
        value = config.get(column)
        if name not in figures and value not in (None, "", 0, "0") and not isinstance(value, bool):
            figures[name] = str(value)
    if "alloc_bytes" in figures and "alloc_mib" not in figures:
        figures["alloc_mib"] = f"{int(figures['alloc_bytes']) / 2**20:.2f}"
    if exit.signal_name is not None:
        figures.setdefault("signal", exit.signal_name)
    if capabilities is not None:
        figures.setdefault("build", capabilities.label)
    return Diagnosis(
        cause=rule.cause,
        summary=_render(rule.summary, figures),
        fix=_render(rule.fix, figures),
        action=_frozen_action(rule.action),
        figures=MappingProxyType(figures),
        rule=rule.id,
        evidence=evidence,
    )


def _config_equals(value: Any, expected: Any) -> bool:
    if isinstance(expected, bool):
        return _as_bool(value) is expected
    return bool(value == expected)


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in FALSE_WORDS:
            return False
        if word in TRUE_WORDS:
            return True
    return None


def _frozen_action(action: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if action is None:
        return None
    return MappingProxyType(
        {k: MappingProxyType(dict(v)) if isinstance(v, Mapping) else v for k, v in action.items()}
    )


def _render(template: str, figures: Mapping[str, str]) -> str:
    """Fill ``{name}`` from ``figures``; a ``[...]`` part only when all the figures it names are known."""

    def optional(part: re.Match[str]) -> str:
        names = _FIELD.findall(part.group(1))
        return part.group(1) if all(name in figures for name in names) else ""

    text = _OPTIONAL_PART.sub(optional, template)
    # one pass, so that a figure's own text (a path with braces) is never read as a template
    return _FIELD.sub(lambda m: figures.get(m.group(1), "?"), text)


def check_rules(rules: Sequence[Rule] = RULES) -> list[str]:
    """Problems in a rule table (an empty list when it is sound), for a test to assert on.

    Each rule needs a unique id, evidence (log patterns or signals), patterns that compile, and
    templates whose required figures (outside ``[...]``) every pattern of the rule provides.
    """
    problems: list[str] = []
    seen: set[str] = set()
    for rule in (*rules, BEFORE_START_HTTPS):
        if rule.id in seen:
            problems.append(f"{rule.id}: the id is used twice")
        seen.add(rule.id)
        if rule is BEFORE_START_HTTPS:
            continue
        if not rule.lines and not rule.signals:
            problems.append(f"{rule.id}: neither log patterns nor signals: it would match every exit")
        try:
            compiled = _compile(rule)
        except re.error as exc:
            problems.append(f"{rule.id}: a pattern does not compile: {exc}")
            continue
        for template in (rule.summary, rule.fix):
            required = set(_FIELD.findall(_OPTIONAL_PART.sub("", template)))
            if rule.signals:
                required.discard("signal")
            for pattern in compiled.lines:
                missing = required - set(pattern.groupindex)
                if missing:
                    problems.append(f"{rule.id}: {pattern.pattern!r} gives no {sorted(missing)}")
            if not compiled.lines and required:
                problems.append(f"{rule.id}: needs {sorted(required)} but has no log patterns")
    return problems


# ------------------------------------------------------------------------------------------------
# asking a binary whether it can download over HTTPS

_PROBE_URL = "https://127.0.0.1:9/llamadash-https-probe.gguf"
_https_cache: dict[tuple[str, int, int], bool | None] = {}
_https_lock = threading.Lock()


def probe_https_support(binary: str | os.PathLike[str], *, timeout: float = 10.0) -> bool | None:
    """Whether a llama-server binary can download models over HTTPS; ``None``: it could not be told.

    The binary is started once with ``--model-url https://127.0.0.1:9/...`` (a closed local port:
    nothing leaves the machine) and a model path in a temporary folder. A build without HTTPS says
    "HTTPS is not supported" (or "built without CURL" on older builds) and exits at once; one with
    HTTPS tries the download, fails to connect and says so. The answer is cached per file identity.
    """
    path = Path(binary)
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    with _https_lock:
        if key in _https_cache:
            return _https_cache[key]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_ARG_")}
    with tempfile.TemporaryDirectory(prefix="llamadash-https-probe-") as folder:
        argv = [str(path), "--model-url", _PROBE_URL, "-m", str(Path(folder) / "probe.gguf")]
        argv += ["--host", "127.0.0.1", "--port", "0"]
        try:
            result = subprocess.run(  # an argv list, no shell
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                env=env,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
    output = (result.stdout + result.stderr).decode("utf-8", errors="replace")
    https_rule = next(c for c in _compiled_rules() if c.rule.cause == "https_unsupported")
    answer: bool | None
    if any(p.search(output) for p in https_rule.lines):
        answer = False
    elif "download" in output.lower():
        answer = True
    else:
        answer = None  # it failed in some other way (an older build without --model-url)
    with _https_lock:
        _https_cache[key] = answer
    return answer
