"""Checks of a stored configuration before llama-server sees it, keyed by parameter.

:func:`validate_config` finds what a user should fix in the editor: values of the wrong type or
range, files that do not exist, settings that contradict each other, and (given a build's
capabilities) settings that build cannot take. Errors stop a launch; warnings are advice.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llamadash.core.params.capabilities import Capabilities
from llamadash.core.params.command import (
    CommandError,
    argv_value_problem,
    custom_params_dict,
    custom_params_problems,
    set_values,
    unsupported_message,
)
from llamadash.core.params.schema import (
    DEFAULT_HOST,
    DRAFT_COLUMNS,
    DRAFT_SOURCE_COLUMNS,
    MODEL_SOURCE_COLUMNS,
    ROUTER_SOURCE_COLUMNS,
    Param,
    load_schema,
)

Severity = Literal["error", "warning"]

#: Where llama-server can get its model from; one is needed unless it runs as a router.
MODEL_SOURCES = MODEL_SOURCE_COLUMNS
ROUTER_SOURCES = ROUTER_SOURCE_COLUMNS
DRAFT_MODEL_SOURCES = DRAFT_SOURCE_COLUMNS
#: Custom flags that turn on speculative decoding without a draft model (n-gram, MTP, presets).
_SPECULATION_FLAGS = ("--spec-type", "--spec-default")


@dataclass(frozen=True)
class Issue:
    """One finding about one parameter (``column``), for the editor to show next to it."""

    column: str
    severity: Severity
    message: str


def has_errors(issues: Iterable[Issue]) -> bool:
    """True when any issue is an error (the configuration must not be launched)."""
    return any(issue.severity == "error" for issue in issues)


def validate_config(
    config: Mapping[str, Any],
    capabilities: Capabilities | None = None,
    *,
    check_files: bool = True,
) -> list[Issue]:
    """Everything wrong with ``config``, errors and warnings, in schema order.

    Args:
        config: column -> value (canonical or as stored), plus optional ``custom_params``.
        capabilities: the target build; when given, settings it cannot express are errors.
        check_files: look at the file system for files and directories that must exist.
    """
    issues: list[Issue] = []
    values: dict[str, Any] = {}

    def error(column: str, message: str) -> None:
        issues.append(Issue(column, "error", message))

    def warning(column: str, message: str) -> None:
        issues.append(Issue(column, "warning", message))

    for param, value in set_values(config, error):
        values[param.column] = value
        problem = argv_value_problem(param, value)
        if problem:
            error(param.column, problem)
        message = unsupported_message(param, capabilities, value)
        if message:
            error(param.column, message)
        if param.status == "deprecated":
            warning(param.column, f"{param.column} is deprecated: {param.note or 'llama-server ignores it'}")
        if check_files:
            for message in _path_problems(param, value):
                error(param.column, message)

    _check_cross_fields(values, config.get("custom_params"), error, warning)

    for column, message in custom_params_problems(config.get("custom_params"), capabilities, values):
        error(column, message)
    return issues


def _path_problems(param: Param, value: Any) -> list[str]:
    if param.kind == "list":
        # the path parts of the items: "file" items, or the FNAME of "file:float" (FNAME:SCALE)
        checked = [
            (kind, piece)
            for text in value
            for kind, piece in zip(param.item_parts, param.split_item(text), strict=False)
            if kind in ("file", "dir")
        ]
    elif param.kind in ("file", "dir") and param.must_exist:
        checked = [(param.kind, value)]
    else:
        return []
    problems = []
    for kind, text in checked:
        path = Path(text)
        if kind == "file" and path.is_file():
            continue
        if kind == "dir" and path.is_dir():
            continue
        what = "file" if kind == "file" else "directory"
        if path.exists():
            problems.append(f"{text} is not a {what}")
        elif text.startswith("~") and Path(text).expanduser().exists():
            problems.append(f"{text}: llama-server does not expand '~'; use the full path")
        else:
            problems.append(f"{what} not found: {text}")
    return problems


def _is_local_host(host: str) -> bool:
    host = host.strip()
    if host.endswith(".sock") or "/" in host:
        return True  # a unix socket path
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def exposure_warning(config: Mapping[str, Any]) -> str | None:
    """The warning for a server that other machines can reach without an API key, or ``None``.

    One rule for every front end: ``models add``/``set`` and the editor (through
    :func:`validate_config`), and the start of a server (``llamadash run``, the instances pane).

    Args:
        config: column -> value; ``None`` and empty values count as not set.
    """
    schema = load_schema()
    host = config.get("host") or DEFAULT_HOST
    hosts = host if isinstance(host, (list, tuple)) else str(host).split(",")
    exposed = [str(h).strip() for h in hosts if str(h).strip() and not _is_local_host(str(h))]
    if not exposed or any(config.get(p.column) for p in schema.with_role("auth")):
        return None
    return (
        f"llama-server listens on {', '.join(exposed)} without an API key: anyone who can reach "
        "it can use it; set api_key or api_key_file"
    )


def _check_cross_fields(values: Mapping[str, Any], custom: Any, error: Any, warning: Any) -> None:
    schema = load_schema()

    def effective(column: str) -> Any:
        return values.get(column, schema[column].default)

    batch, ubatch = effective("batch_size"), effective("ubatch_size")
    if isinstance(batch, int) and isinstance(ubatch, int) and ubatch > batch:
        error("ubatch_size", f"ubatch_size ({ubatch}) must not be larger than batch_size ({batch})")

    exposed = exposure_warning(values)
    if exposed:
        warning("host", exposed)

    custom_flags = _custom_flag_names(custom)
    speculation = any(flag in custom_flags for flag in _SPECULATION_FLAGS)
    if not any(col in values for col in DRAFT_MODEL_SOURCES) and not speculation:
        for column in DRAFT_COLUMNS:
            if column in values:
                warning(
                    column, f"{column} only applies with a draft model (set model_draft or hf_repo_draft)"
                )

    router = any(col in values for col in ROUTER_SOURCES)
    preset = any(flag.endswith(("-default", "-spec")) and flag != "--spec-default" for flag in custom_flags)
    if not router and not preset and not any(col in values for col in MODEL_SOURCES):
        error(
            MODEL_SOURCES[0],
            f"no model: set {', '.join(MODEL_SOURCES[:-1])} or {MODEL_SOURCES[-1]} "
            f"(or {' / '.join(ROUTER_SOURCES)} to run llama-server as a router)",
        )


def _custom_flag_names(custom: Any) -> set[str]:
    try:
        return set(custom_params_dict(custom))
    except CommandError:
        return set()
