"""Stored configuration -> the argv and environment that start llama-server.

Pure functions: :func:`build_command` turns a ``models`` row (column -> canonical value) into an
argv list and an environment for one llama-server build, :func:`format_command` shows it as a
shell line. Nothing here runs a process or builds a shell string to execute.

Rules, in short: only values that differ from llama-server's default are emitted; each row uses
the first long spelling the build accepts (else a legacy spelling); ``mmap``/``mlock`` become one
``--load-mode`` value on builds that have it; secrets go into the environment; a set value that the
build cannot express is an error, never silently dropped.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from llamadash.core.messages import short_repr
from llamadash.core.params.capabilities import LOAD_MODE_FLAGS, Capabilities, normalize_flag
from llamadash.core.params.schema import (
    FLOAT32_MAX,
    FLOAT32_MIN_NORMAL,
    META_COLUMNS,
    SECRET_ENV,
    Param,
    ParamValueError,
    load_schema,
)

#: The build the schema's ``flags`` are spelled for; used in messages when no capabilities are given.
REFERENCE_BUILD_LABEL = "llama-server b11434"
#: The canonical load-mode flag (``-lm`` is its short form).
LOAD_MODE_FLAG = LOAD_MODE_FLAGS[0]
#: ``--load-mode`` values, and the (mmap, mlock) pair each one stands for (``None`` = default).
LOAD_MODES: dict[str, tuple[bool | None, bool | None] | None] = {
    "auto": (None, None),
    "none": (False, False),
    "mmap": (True, False),
    "mlock": (False, True),
    "mmap+mlock": (True, True),
    "dio": None,  # no column expresses DirectIO: kept as a custom flag
}
#: Columns that are not parameters; a config may carry them and they are ignored.
IGNORED_COLUMNS = frozenset(c for c in META_COLUMNS if c != "custom_params")
#: Row statuses whose flags the reference build (b11434) does not have.
_UNSUPPORTED_ON_REFERENCE = ("absent", "not_server")
#: Values inside a row's range that llama-server still rejects, with the reason (the rows'
#: ``rejected``, by ``(column, value)``).
REJECTED_VALUES: dict[tuple[str, int], str] = {
    (param.column, value): reason for param in load_schema() for value, reason in param.rejected
}
_FLAG_SYNTAX = re.compile(r"--?[A-Za-z][A-Za-z0-9_.+-]*")


class CommandError(ValueError):
    """The configuration cannot be turned into a command line.

    Attributes:
        problems: every problem found, as ``(column, message)`` pairs.
    """

    def __init__(self, problems: Iterable[tuple[str, str]]):
        self.problems: list[tuple[str, str]] = list(problems)
        lines = "\n".join(f"- {column}: {message}" for column, message in self.problems)
        super().__init__(f"cannot build the llama-server command:\n{lines}")


def build_label(capabilities: Capabilities | None) -> str:
    """The build name used in messages."""
    return capabilities.label if capabilities is not None else REFERENCE_BUILD_LABEL


def looks_like_flag(token: str) -> bool:
    """``-c``/``--ctx-size`` are flags; ``-1``, ``-0.5`` and ``-`` are values."""
    return bool(re.match(r"--?[A-Za-z]", token))


def pick_flag(param: Param, capabilities: Capabilities | None, *, negative: bool = False) -> str | None:
    """The spelling to emit for ``param`` on this build, or ``None`` when it has none.

    Long spellings of the current flags come first, then short ones, then legacy flags (for the
    positive form only). With ``capabilities=None`` the schema's current long flag is used.
    """
    groups = (param.negative_flags,) if negative else (param.flags, param.legacy_flags)
    for group in groups:
        ordered = [f for f in group if f.startswith("--")] + [f for f in group if not f.startswith("--")]
        for flag in ordered:
            if capabilities is None or capabilities.accepts(flag):
                return flag
        if capabilities is None:
            return None  # the reference build: legacy spellings are not tried
    return None


def _expected_values(param: Param) -> int:
    if param.kind in ("switch", "bool_pair"):
        return 0
    return 2 if param.kind == "int_pair" else 1


def unsupported_message(param: Param, capabilities: Capabilities | None, value: Any = True) -> str | None:
    """Why ``param`` set to ``value`` cannot go on this build's command line, or ``None``.

    The message names the column and the build, e.g. ``"hf_file_v is not supported by
    llama-server b11434"``. ``mmap``/``mlock`` count as supported on builds with ``--load-mode``.
    """
    label = build_label(capabilities)
    if param.status == "action":
        return (
            f"{param.column} is not supported by {label} as a server setting: {param.long_flag} "
            "prints and exits; run it as a one-shot command instead"
        )
    if capabilities is None:
        if param.status in _UNSUPPORTED_ON_REFERENCE:
            return f"{param.column} is not supported by {label}"
        return None
    if param.mapping == "load_mode" and capabilities.accepts(LOAD_MODE_FLAG):
        return None
    negative = param.kind == "bool_pair" and value is False
    flag = pick_flag(param, capabilities, negative=negative)
    if flag is None:
        message = f"{param.column} is not supported by {label}"
        gone = [f for f in param.all_flags if f in capabilities.removed]
        if gone:
            message += f" ({gone[0]} has been removed)"
        return message
    entry = capabilities.entry(flag)
    expected = _expected_values(param)
    if entry is not None and entry.value_count != expected:
        counts = {0: "no value", 1: "one value", 2: "two values"}
        takes = counts.get(entry.value_count, f"{entry.value_count} values")
        return (
            f"{param.column} is not supported by {label}: its {flag} takes {takes}, "
            f"llamadash writes {counts[expected]}"
        )
    return None


# ------------------------------------------------------------------------------------------------
# values


def is_unset(param: Param, value: Any) -> bool:
    """True for values that leave llama-server at its default (``None``, ``""``, the default)."""
    if value is None or value == "":
        return True
    return not param.differs_from_default(value)


def argv_value_problem(param: Param, value: Any) -> str | None:
    """Values that pass ``coerce`` but that llama-server (C ``int``/``float``, argv) cannot take."""
    rejected = param.rejected_reason(value)
    if rejected:
        return rejected
    items = value if isinstance(value, list) else [value]
    if param.kind == "list" and any(part in ("float", "int") for part in param.item_parts):
        items = [_number_in_text(kind, piece) for text in value for kind, piece in _item_pieces(param, text)]
    for item in items:
        if isinstance(item, str) and "\x00" in item:
            return "the value contains a NUL character, which a command line cannot carry"
        if isinstance(item, bool):
            continue
        if isinstance(item, int) and param.kind in ("int", "int_or_keyword", "int_pair", "list"):
            low, high = param.int_range  # a row's own max may pass 32 bits: seed is read as unsigned
            if not low <= item <= high:
                return f"{item} does not fit llama-server's 32-bit integer"
        if isinstance(item, float) and not (item == 0 or FLOAT32_MIN_NORMAL <= abs(item) <= FLOAT32_MAX):
            return f"{short_repr(item)} does not fit llama-server's 32-bit float"
    return None


def _item_pieces(param: Param, text: str) -> list[tuple[str, str]]:
    return list(zip(param.item_parts, param.split_item(text), strict=False))


def _number_in_text(kind: str, piece: str) -> Any:
    """A numeric part of a list item as a number (``coerce`` checked its form), other parts as text."""
    if kind == "float":
        return float(piece)
    if kind == "int":
        return int(piece)
    return piece


def set_values(config: Mapping[str, Any], problem: Callable[[str, str], None]) -> Iterator[tuple[Param, Any]]:
    """(param, canonical value) of each set, non-default column of ``config``, in schema order.

    Columns llamadash does not know and values that cannot be read are passed to
    ``problem(column, message)`` and left out. Shared by :func:`build_command` and the validator, so
    that both read a configuration the same way.
    """
    schema = load_schema()
    for key in config:
        if key not in schema and key not in IGNORED_COLUMNS and key != "custom_params":
            problem(key, f"{key} is not a llama-server parameter llamadash knows")
    for param in schema:
        if param.column not in config:
            continue
        try:
            value = param.coerce(config[param.column])
        except ParamValueError as exc:
            problem(param.column, exc.message)
            continue
        if not is_unset(param, value):
            yield param, value


def _coerce_config(config: Mapping[str, Any], problems: list[tuple[str, str]]) -> dict[str, Any]:
    """Canonical values of the set, non-default columns of ``config`` (schema order)."""
    values: dict[str, Any] = {}
    for param, value in set_values(config, lambda column, message: problems.append((column, message))):
        problem = argv_value_problem(param, value)
        if problem:
            problems.append((param.column, problem))
            continue
        values[param.column] = value
    return values


def format_float(value: float) -> str:
    """A float as llama-server's ``std::stof`` reads it and Python reads it back exactly."""
    return repr(float(value))


def value_text(param: Param, value: Any) -> str:
    """The argv/env text of a canonical, single-item value (not for switches or int pairs)."""
    if param.kind == "float":
        return format_float(value)
    if param.kind == "list":
        return (param.separator or ",").join(value)
    return str(value)


def _param_args(param: Param, value: Any, flag: str) -> list[str]:
    kind = param.kind
    if kind == "switch":
        return [flag] if value else []
    if kind == "bool_pair":
        return [flag]
    if kind == "int_pair":
        return [flag, str(value[0]), str(value[1])]
    return [flag, value_text(param, value)]


def _load_mode_args(
    values: Mapping[str, Any], capabilities: Capabilities | None, problems: list[tuple[str, str]]
) -> list[str]:
    """``mmap``/``mlock`` -> ``--load-mode MODE`` (newer builds) or ``--no-mmap``/``--mlock``."""
    mmap, mlock = values.get("mmap"), values.get("mlock")  # only non-default values: False / True
    if mmap is None and mlock is None:
        return []
    if capabilities is None or capabilities.accepts(LOAD_MODE_FLAG):
        mode = ("mlock" if mmap is False else "mmap+mlock") if mlock else "none"
        return [LOAD_MODE_FLAG, mode]
    schema = load_schema()
    args: list[str] = []
    for column, value in (("mmap", mmap), ("mlock", mlock)):
        if value is None:
            continue
        param = schema[column]
        flag = pick_flag(param, capabilities, negative=param.kind == "bool_pair" and value is False)
        if flag is None:
            problems.append((column, f"{column} is not supported by {build_label(capabilities)}"))
        else:
            args.append(flag)
    return args


# ------------------------------------------------------------------------------------------------
# custom_params


def _custom_pairs(custom: Any, problems: list[tuple[str, str]]) -> list[tuple[str, Any]]:
    """``custom_params`` (dict, argv list or their JSON text) -> ``(flag, value)`` pairs.

    Values: ``True`` for a bare flag, a string, or a list of strings for a repeated flag.
    """
    if custom is None:
        return []
    if isinstance(custom, str):
        text = custom.strip()
        if not text:
            return []
        try:
            custom = json.loads(text) if text[0] in "{[" else shlex.split(text)
        except ValueError as exc:
            problems.append(("custom_params", f"cannot read {short_repr(text)}: {exc}"))
            return []
    if isinstance(custom, Mapping):
        pairs: list[tuple[str, Any]] = []
        for flag, value in custom.items():
            if not isinstance(flag, str):
                problems.append(("custom_params", f"{short_repr(flag)} is not a flag"))
                continue
            converted = _custom_value(flag, value, problems)
            if converted is not None:
                pairs.append((flag, converted))
        return pairs
    if isinstance(custom, Sequence) and all(isinstance(t, str) for t in custom):
        return _pairs_from_tokens(list(custom), problems)
    problems.append(
        (
            "custom_params",
            f"expected a mapping of flags to values or a list of arguments, got {short_repr(custom)}",
        )
    )
    return []


def _custom_value(flag: str, value: Any, problems: list[tuple[str, str]]) -> Any:
    if value is None or value is False:
        return None
    if value is True:
        return True
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_float(value) if isinstance(value, float) else str(value)
    if isinstance(value, (list, tuple)):
        items = [_custom_value(flag, v, problems) for v in value]
        if any(item is True or isinstance(item, list) for item in items):
            problems.append(("custom_params", f"{flag}: list items must be text or numbers"))
            return None
        texts = [item for item in items if item is not None]
        if not texts:
            return None
        return texts[0] if len(texts) == 1 else texts
    problems.append(("custom_params", f"{flag}: unsupported value {short_repr(value)}"))
    return None


def _pairs_from_tokens(tokens: list[str], problems: list[tuple[str, str]]) -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not looks_like_flag(token):
            problems.append(("custom_params", f"{short_repr(token)} follows no flag"))
            continue
        flag, eq, inline = token.partition("=")
        if eq:
            pairs.append((flag, inline))
        elif i < len(tokens) and not looks_like_flag(tokens[i]):
            pairs.append((flag, tokens[i]))
            i += 1
        else:
            pairs.append((flag, True))
    return pairs


def custom_params_dict(custom: Any) -> dict[str, Any]:
    """``custom_params`` in canonical form: ``{"--flag": True | "value" | ["v1", "v2"]}``.

    Keys get llama-server's spelling (``_`` -> ``-`` in long flags); repeated flags merge into a
    list; ``False``/``None`` entries are dropped. This is what :func:`parse_command_line` returns.

    Raises:
        CommandError: custom_params has a shape that cannot be read.
    """
    problems: list[tuple[str, str]] = []
    merged: dict[str, Any] = {}
    for flag, value in _custom_pairs(custom, problems):
        _merge_custom(merged, normalize_flag(flag), value)
    if problems:
        raise CommandError(problems)
    return merged


def _merge_custom(merged: dict[str, Any], flag: str, value: Any) -> None:
    """Add one occurrence of ``flag`` (``True`` or text, or a list of texts)."""
    old = merged.get(flag)
    if old is None:
        merged[flag] = value
        return
    if value is True:
        return  # a bare flag repeated, or a bare flag after values: nothing to add
    if old is True:
        merged[flag] = value
        return
    old_items = old if isinstance(old, list) else [old]
    new_items = value if isinstance(value, list) else [value]
    merged[flag] = old_items + new_items


def _custom_args(
    custom: Any,
    capabilities: Capabilities | None,
    values: Mapping[str, Any],
    problems: list[tuple[str, str]],
) -> list[str]:
    label = build_label(capabilities)
    args: list[str] = []
    for raw_flag, value in _custom_pairs(custom, problems):
        if not _FLAG_SYNTAX.fullmatch(raw_flag):
            problems.append(
                ("custom_params", f"{short_repr(raw_flag)} does not look like a flag (-x or --name)")
            )
            continue
        flag = normalize_flag(raw_flag)
        column = _covering_column(flag, capabilities)
        if column is not None:
            problems.append(
                (
                    "custom_params",
                    f"{raw_flag} is the parameter {column}: set {column} instead of a custom flag",
                )
            )
            continue
        if flag in LOAD_MODE_FLAGS and ("mmap" in values or "mlock" in values):
            problems.append(
                ("custom_params", f"{raw_flag} conflicts with the mmap/mlock settings: use one or the other")
            )
            continue
        if capabilities is not None:
            if flag in capabilities.removed:
                problems.append(("custom_params", f"{raw_flag} has been removed from {label}"))
                continue
            if not capabilities.accepts(flag):
                problems.append(("custom_params", f"{raw_flag} is not accepted by {label}"))
                continue
            entry = capabilities.entry(flag)
            count = entry.value_count if entry is not None else 1
            if count == 0 and value is not True:
                problems.append(("custom_params", f"{raw_flag} takes no value on {label}; set it to true"))
                continue
            if count > 0 and value is True:
                problems.append(("custom_params", f"{raw_flag} needs a value on {label}"))
                continue
        if value is True:
            args.append(flag)
            continue
        items = value if isinstance(value, list) else [value]
        if any("\x00" in item for item in items):
            problems.append(("custom_params", f"{raw_flag}: the value contains a NUL character"))
            continue
        for item in items:
            args += [flag, item]
    return args


def custom_params_problems(
    custom: Any, capabilities: Capabilities | None, values: Mapping[str, Any] | None = None
) -> list[tuple[str, str]]:
    """What is wrong with ``custom_params`` for this build (``values``: the set columns)."""
    problems: list[tuple[str, str]] = []
    _custom_args(custom, capabilities, values or {}, problems)
    return problems


def _covering_column(flag: str, capabilities: Capabilities | None) -> str | None:
    """The schema row that owns ``flag`` (directly, or through a shared help entry)."""
    schema = load_schema()
    param = schema.by_flag.get(flag)
    if param is not None:
        return param.column
    if capabilities is not None:
        entry = capabilities.entry(flag)
        if entry is not None:
            for other in entry.flags:
                owner = schema.by_flag.get(normalize_flag(other))
                if owner is not None:
                    return owner.column
    return None


# ------------------------------------------------------------------------------------------------
# public API


def build_command(
    config: Mapping[str, Any],
    capabilities: Capabilities | None,
    *,
    binary: str | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The argv and extra environment that start llama-server with ``config``.

    Args:
        config: column -> canonical value (``None`` = unset), optionally ``custom_params``
            (``{"--flag": value}`` or a list of argv strings); meta columns are ignored.
        capabilities: what the target build accepts; ``None`` assumes the schema's current
            spellings (b11434) and skips the accept checks.
        binary: argv[0]; defaults to ``capabilities.binary`` or ``"llama-server"``.

    Returns:
        ``(argv, env)``: env holds the secrets (``LLAMA_API_KEY``, ``HF_TOKEN``), to be added to
        the child's environment.

    Raises:
        CommandError: with every problem found (bad values, settings the build cannot express,
            bad custom flags).
    """
    schema = load_schema()
    problems: list[tuple[str, str]] = []
    values = _coerce_config(config, problems)
    program = binary or (capabilities.binary if capabilities is not None else None) or "llama-server"
    argv = [program]
    env: dict[str, str] = {}
    load_mode_done = False
    for param in schema:
        if param.column not in values:
            continue
        value = values[param.column]
        if param.mapping == "load_mode":
            if not load_mode_done:
                argv += _load_mode_args(values, capabilities, problems)
                load_mode_done = True
            continue
        message = unsupported_message(param, capabilities, value)
        if message:
            problems.append((param.column, message))
            continue
        if param.secret_env:
            env[param.secret_env] = value_text(param, value)
            continue
        negative = param.kind == "bool_pair" and value is False
        flag = pick_flag(param, capabilities, negative=negative)
        if flag is None:  # a switch set to False: llama-server's default, nothing to write
            continue
        argv += _param_args(param, value, flag)
    argv += _custom_args(config.get("custom_params"), capabilities, values, problems)
    if problems:
        raise CommandError(problems)
    return argv, env


def normalize_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with canonical values and without unset or default-valued entries.

    Meta columns are dropped; ``custom_params`` is kept (canonical dict) when non-empty. Two
    configs that start llama-server the same way normalize to the same dict.

    Raises:
        CommandError: a value does not fit its parameter.
    """
    problems: list[tuple[str, str]] = []
    values = _coerce_config(config, problems)
    if problems:
        raise CommandError(problems)
    custom = custom_params_dict(config.get("custom_params"))
    if custom:
        values["custom_params"] = custom
    return values


def format_command(argv: Sequence[str], env: Mapping[str, str], *, mask_secrets: bool = True) -> str:
    """A POSIX shell line that runs ``argv`` with ``env``: ``LLAMA_API_KEY=*** llama-server ...``.

    For showing and copying only; llamadash itself starts processes from the argv list.
    """
    secret_names = set(SECRET_ENV.values())
    parts = []
    for name, value in env.items():
        shown = "***" if mask_secrets and name in secret_names else shlex.quote(value)
        parts.append(f"{name}={shown}")
    parts.append(shlex.join(argv))
    return " ".join(parts)


def expressible(param: Param, capabilities: Capabilities | None) -> bool:
    """True when some non-default value of ``param`` can be written for this build."""
    if param.kind == "bool_pair":
        return any(unsupported_message(param, capabilities, v) is None for v in (True, False))
    return unsupported_message(param, capabilities) is None


def first_api_key(config: Mapping[str, Any]) -> str | None:
    """The first API key llama-server started with ``config`` accepts, for a client of it to send.

    From ``api_key`` (a list, or its comma-separated text) first, else the first line of
    ``api_key_file`` that is neither blank nor a ``#`` comment (llama-server's format); ``None``
    when there is none or the file cannot be read.
    """
    keys = config.get("api_key")
    if isinstance(keys, str):
        keys = keys.split(",")
    for key in keys or []:
        if str(key).strip():
            return str(key).strip()
    key_file = config.get("api_key_file")
    if key_file:
        try:
            for line in Path(key_file).read_text(encoding="utf-8").splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    return line.strip()
        except OSError:
            return None
    return None
