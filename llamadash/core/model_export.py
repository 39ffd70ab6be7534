"""Model configurations to and from files: llamadash JSON, a shell script, llama-server presets INI.

Pure Python, no Qt. Three formats go out:

* ``llamadash-models`` JSON (versioned): every stored setting of each model; the secrets
  (``api_key``, ``hf_token``) are left out unless asked for;
* a POSIX shell script with one ``llama-server`` command line per model;
* a llama-server router presets INI (``models.ini`` for ``--models-preset``): ``version = 1``, a
  ``[*]`` section and one section per model whose keys are the long flags without their dashes
  (``ctx-size = 4096``; a switch is ``flag = true``). The router chooses host, port, alias and API
  key itself (the schema's ``ROUTER_MANAGED_FLAGS``), so those are not written.

And three come in: those JSON files, a presets INI and pasted command lines (one per line).
Reading never touches the database; :func:`plan_import` says what an import would do, and
:func:`apply_import` does it only after every model has been checked, so bad input changes nothing,
and in one transaction, so a write that fails midway leaves the library as it was.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from llamadash import __version__
from llamadash.core import library
from llamadash.core.params import (
    COLUMN,
    META_COLUMNS,
    ROUTER_MANAGED_FLAGS,
    SECRET_COLUMNS,
    CommandError,
    CommandLineError,
    build_command,
    format_command,
    load_schema,
    normalize_config,
    parse_bool,
    parse_command_line,
)
from llamadash.core.params.capabilities import LOAD_MODE_FLAGS, Capabilities
from llamadash.core.params.command import looks_like_flag
from llamadash.core.remote import REMOTE_URL, RemoteUrlError, check_remote_url

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MERGE_POLICIES",
    "ImportAction",
    "ModelFormatError",
    "ModelStore",
    "apply_import",
    "export_json",
    "export_presets",
    "export_shell",
    "parse_command_lines",
    "parse_models_file",
    "parse_models_json",
    "parse_models_text",
    "parse_presets",
    "plan_import",
    "preset_lines",
]

FORMAT_NAME = "llamadash-models"
FORMAT_VERSION = 1
#: How a model whose name is already in the library is imported.
MERGE_POLICIES = ("skip", "overwrite", "keep_both")
#: Keys only a preset knows (llama-server's README).
_PRESET_ONLY_KEYS = frozenset({"load-on-startup", "stop-timeout", "dedup-cache-models"})
_DEFAULT_TYPE = "llama"


class ModelFormatError(ValueError):
    """Input that cannot be imported; the message says why, in words for the user."""


class ModelStore(Protocol):
    """What an import writes to: :mod:`llamadash.core.database` satisfies this."""

    def get_models(self) -> list[dict[str, Any]]: ...

    def save_model(self, model: Mapping[str, Any]) -> int: ...

    def update_model(self, model_id: int, changes: Mapping[str, Any]) -> dict[str, Any]: ...

    def transaction(self) -> AbstractContextManager[None]: ...


def _columns() -> frozenset[str]:
    return frozenset(p.column for p in load_schema())


def model_config(model: Mapping[str, Any], *, include_secrets: bool = False) -> dict[str, Any]:
    """A model's name, type and set values, as exported (no id, status or timestamps)."""
    secrets = () if include_secrets else SECRET_COLUMNS
    config: dict[str, Any] = {"name": model["name"], "type": model.get("type") or _DEFAULT_TYPE}
    for key, value in model.items():
        if key in META_COLUMNS or key in secrets or value is None:
            continue
        config[key] = value
    if model.get("custom_params"):
        config["custom_params"] = model["custom_params"]
    if model.get(REMOTE_URL):  # a remote server's address: data, like a path
        config[REMOTE_URL] = model[REMOTE_URL]
    return config


# ------------------------------------------------------------------------------------------------
# export
def export_json(models: Iterable[Mapping[str, Any]], *, include_secrets: bool = False) -> str:
    """The ``llamadash-models`` JSON document of ``models``."""
    document = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "app_version": __version__,
        "secrets_included": include_secrets,
        "models": [model_config(m, include_secrets=include_secrets) for m in models],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def export_shell(
    models: Iterable[Mapping[str, Any]], *, include_secrets: bool = False, binary: str = "llama-server"
) -> str:
    """A shell script with one llama-server command line per model (each a comment names it).

    Without secrets, an API key or token is read from the environment at run time instead.
    """
    lines = ["#!/bin/sh", "# llama-server command lines exported by llamadash", ""]
    for model in models:
        if model.get(REMOTE_URL):  # another machine runs it: no command line of ours
            lines += [_remote_note(model), ""]
            continue
        argv, env = _argv(model, binary=binary)
        # the comment names the model for the import; no control character may end it early
        lines.append("# " + "".join(c if c.isprintable() else "?" for c in str(model["name"])))
        if include_secrets:
            lines.append(format_command(argv, env, mask_secrets=False))
        else:
            # "${NAME:?}" makes the script stop with a clear message when the variable is not set.
            prefix = " ".join(f'{name}="${{{name}:?}}"' for name in env)
            lines.append((prefix + " " if prefix else "") + shlex.join(argv))
        lines.append("")
    return "\n".join(lines)


def export_presets(models: Iterable[Mapping[str, Any]]) -> str:
    """A llama-server router presets INI (``--models-preset``) with one section per model.

    Raises:
        ModelFormatError: A model's name cannot be a section name, or it repeats a flag.
    """
    lines = ["version = 1", "", "[*]", ""]
    for model in models:
        if model.get(REMOTE_URL):
            lines += [_remote_note(model), ""]
            continue
        name = str(model["name"])
        if any(c in name for c in "[]\n\r") or name != name.strip():
            raise ModelFormatError(f"the model name {name!r} cannot be a presets section name")
        argv, _env = _argv(model)
        lines.append(f"[{name}]")
        lines.extend(preset_lines(name, argv[1:]))
        lines.append("")
    return "\n".join(lines)


def _remote_note(model: Mapping[str, Any]) -> str:
    """A comment line that a remote server was left out (it is not run here)."""
    text = f"{model['name']}: a remote server at {model[REMOTE_URL]}, left out (not run here)"
    return "# " + "".join(c if c.isprintable() else "?" for c in text)


def preset_lines(name: str, arguments: Sequence[str]) -> list[str]:
    """The ``key = value`` lines of a presets section from a model's llama-server arguments.

    What the router sets itself for each model (``ROUTER_MANAGED_FLAGS``: host, port, alias, API
    key) is left out; a switch is ``flag = true``.

    Raises:
        ModelFormatError: A flag appears twice, which a presets file cannot express.
    """
    lines = []
    seen: set[str] = set()
    for flag, value in _flag_pairs(arguments):
        if flag in ROUTER_MANAGED_FLAGS:  # the router sets them itself
            continue
        key = flag.lstrip("-")
        if key in seen:
            raise ModelFormatError(f"{name}: {flag} appears twice, which a presets file cannot express")
        seen.add(key)
        lines.append(f"{key} = {'true' if value is None else value}")
    return lines


def _argv(model: Mapping[str, Any], *, binary: str = "llama-server") -> tuple[list[str], dict[str, str]]:
    try:
        return build_command(model, None, binary=binary)
    except CommandError as exc:
        raise ModelFormatError(f"{model.get('name')}: {exc}") from None


def _flag_pairs(tokens: Sequence[str]) -> list[tuple[str, str | None]]:
    """``--flag value`` and ``--switch`` tokens as (flag, value or None) pairs."""
    pairs: list[tuple[str, str | None]] = []
    index = 0
    while index < len(tokens):
        flag = tokens[index]
        if index + 1 < len(tokens) and not looks_like_flag(tokens[index + 1]):
            pairs.append((flag, tokens[index + 1]))
            index += 2
        else:
            pairs.append((flag, None))
            index += 1
    return pairs


# ------------------------------------------------------------------------------------------------
# import: reading
def _checked(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A model from a file, checked like the database would, with canonical values."""
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ModelFormatError(f"{where}: a model needs a name")
    columns = _columns()
    unknown = sorted(
        k for k in raw if k not in columns and k not in ("name", "type", "custom_params", REMOTE_URL)
    )
    if unknown:
        raise ModelFormatError(f"{where} ({name}): unknown setting(s) {', '.join(unknown)}")
    model_type = raw.get("type") or _DEFAULT_TYPE
    if not isinstance(model_type, str):
        raise ModelFormatError(f"{where} ({name}): type must be text")
    settings = {k: v for k, v in raw.items() if k not in ("name", "type", REMOTE_URL)}
    remote: dict[str, Any] = {}
    if raw.get(REMOTE_URL) is not None:
        try:  # an address to connect to, checked like the database checks it; never a program
            remote[REMOTE_URL] = check_remote_url(raw[REMOTE_URL])
        except RemoteUrlError as exc:
            raise ModelFormatError(f"{where} ({name}): {exc}") from None
    try:
        normalize_config(settings)  # refuses what no llama-server command line could hold
    except CommandError as exc:
        raise ModelFormatError(f"{where} ({name}): {exc}") from None
    # Keep every value the file sets, a default-valued one too: the import is the exported model.
    schema = load_schema()
    values = {k: schema[k].coerce(v) for k, v in settings.items() if k in schema and v is not None}
    if settings.get("custom_params"):
        values["custom_params"] = settings["custom_params"]
    return {"name": name.strip(), "type": model_type, **values, **remote}


def parse_models_json(text: str) -> list[dict[str, Any]]:
    """The models of a ``llamadash-models`` JSON document.

    Raises:
        ModelFormatError: Not JSON, another shape, a newer version, or a bad model.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"this is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except RecursionError:
        raise ModelFormatError("this JSON is nested too deeply to read") from None
    if not isinstance(document, dict):
        raise ModelFormatError(
            f"this is JSON, but not a llamadash models file: it holds {_json_what(document)}, where a "
            f'models file holds an object with "format": "{FORMAT_NAME}"'
        )
    if document.get("format") != FORMAT_NAME:
        raise ModelFormatError(
            f'this is JSON, but not a llamadash models file (no "format": "{FORMAT_NAME}")'
        )
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFormatError("this models file has no valid version number")
    if version > FORMAT_VERSION:
        raise ModelFormatError(
            f"this models file is version {version}, made by a newer llamadash; this one reads up to "
            f"version {FORMAT_VERSION}"
        )
    models = document.get("models")
    if not isinstance(models, list):
        raise ModelFormatError("this models file has no list of models")
    if not models:
        raise ModelFormatError("this models file holds no models")
    result = []
    for index, raw in enumerate(models, 1):
        if not isinstance(raw, dict):
            raise ModelFormatError(f"model {index} is not an object")
        result.append(_checked(raw, f"model {index}"))
    return _unique(result)


def _json_what(document: Any) -> str:
    if isinstance(document, list):
        count = len(document)
        return f"a list of {count} item{'s' if count != 1 else ''}" if count else "an empty list"
    if isinstance(document, str):
        return "a string"
    if document is None or isinstance(document, bool):
        return json.dumps(document)
    return "a number"


def _looks_like_json(text: str) -> bool:
    """Valid JSON of any shape, or text that starts like a JSON object or array (not an INI section)."""
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        pass
    else:
        return True
    if text.startswith("{"):
        return True
    if not text.startswith("["):
        return False
    first_line = text.splitlines()[0].strip()
    # "[*]", "[my-model]" open a presets section; "[", "[1, 2", "[{", "[[" or '["' open an array
    return first_line[1:].lstrip()[:1] in ("{", "[", '"') or not re.match(r"\[[^\]]+\]", first_line)


def parse_presets(text: str, capabilities: Capabilities | None = None) -> list[dict[str, Any]]:
    """The models of a llama-server presets INI (each section but ``[*]``, with ``[*]``'s defaults).

    A key llamadash has no parameter for becomes a custom flag when ``capabilities`` (the user's
    llama-server build) accepts it, as llamadash writes such flags; otherwise it is refused.

    Raises:
        ModelFormatError: Not an INI, a version other than 1, an unknown key, or a bad value.
    """
    import configparser  # for presets files only

    parser = configparser.ConfigParser(interpolation=None, default_section="\x00none", strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case (env names)
    try:
        parser.read_string("[\x00top]\n" + text)
    except configparser.Error as exc:
        raise ModelFormatError(f"this is not a valid presets INI: {str(exc).splitlines()[0]}") from None
    top = dict(parser["\x00top"])
    if top.get("version", "").strip() != "1":
        raise ModelFormatError('this is not a llama-server presets file (it needs "version = 1" at the top)')
    unknown_top = sorted(set(top) - {"version"})
    if unknown_top:
        raise ModelFormatError(f"unknown key(s) before the first section: {', '.join(unknown_top)}")
    defaults = dict(parser["*"]) if parser.has_section("*") else {}
    known = _known_flags()
    models = []
    for section in parser.sections():
        if section in ("\x00top", "*"):
            continue
        entries = {**defaults, **dict(parser[section])}
        candidates = [
            k for k in entries if not k.isupper() and k not in _PRESET_ONLY_KEYS and "--" + k not in known
        ]
        custom: dict[str, Any] = {}
        for key in [k for k in candidates if capabilities is not None and capabilities.accepts("--" + k)]:
            value = entries.pop(key).strip()
            if capabilities is not None and capabilities.takes_value("--" + key):
                custom["--" + key] = value
            elif parse_bool(value):
                custom["--" + key] = True
            elif parse_bool(value) is None:
                raise ModelFormatError(f"[{section}]: {key} is a switch; write true or false, not {value!r}")
        unknown = sorted(k for k in candidates if k in entries)
        if unknown:
            where = (
                capabilities.label if capabilities is not None else "llamadash (no llama-server build to ask)"
            )
            raise ModelFormatError(f"[{section}]: unknown key(s) {', '.join(unknown)}: not flags of {where}")
        words: list[str] = [f"{k}={v}" for k, v in entries.items() if k.isupper()]
        words.append("llama-server")
        for key, value in entries.items():
            if key.isupper() or key in _PRESET_ONLY_KEYS:
                continue
            switch = parse_bool(value)
            if switch is True and _is_switch("--" + key):
                words.append("--" + key)
            elif switch is False and _is_switch("--" + key):
                negative = _negative_of("--" + key)
                if negative:
                    words.append(negative)
            else:
                words += ["--" + key, value.strip()]
        try:
            config = parse_command_line(shlex.join(words))
        except CommandLineError as exc:
            raise ModelFormatError(f"[{section}]: {exc}") from None
        if custom:
            config["custom_params"] = {**(config.get("custom_params") or {}), **custom}
        models.append(_checked({"name": section, **config}, f"[{section}]"))
    if not models:
        raise ModelFormatError("this presets file has no model sections")
    return _unique(models)


def _known_flags() -> frozenset[str]:
    # --load-mode is what mmap/mlock become on current builds (export_presets writes it)
    flags: set[str] = set(LOAD_MODE_FLAGS)
    for param in load_schema():
        flags.update(param.flags, param.negative_flags, param.legacy_flags)
    return frozenset(f for f in flags if f.startswith("--"))


def _is_switch(flag: str) -> bool:
    for param in load_schema():
        if flag in param.flags or flag in param.negative_flags or flag in param.legacy_flags:
            return param.kind in ("bool_pair", "switch")
    return False


def _negative_of(flag: str) -> str | None:
    for param in load_schema():
        if flag in param.flags and param.negative_flags:
            return param.negative_flags[0]
    return None


def parse_command_lines(text: str) -> list[dict[str, Any]]:
    """Models from pasted ``llama-server`` command lines (one per line; ``\\`` continues a line).

    A model is named by a ``# NAME`` comment on the line just above it (what llamadash's shell
    export writes), else by its ``--alias`` (the first, when there are several; it stays in the
    model's custom parameters, clients address the server by it), else its model file's name, else
    ``imported``. An API key or token given as a shell variable (``"${LLAMA_API_KEY:?}"``, what an
    export without secrets writes) is not a key: it is left out.

    Raises:
        ModelFormatError: Nothing to read, or a line that cannot be read.
    """
    joined = text.replace("\\\r\n", " ").replace("\\\n", " ")
    models = []
    comment = ""
    for number, line in enumerate(joined.splitlines(), 1):
        line = line.strip()
        if line.startswith("#"):
            comment = line[1:].strip() if not line.startswith("#!") else ""
            continue
        if not line:
            comment = ""  # a comment names only the command right below it
            continue
        if not _runs_llama_server(line):
            comment = ""  # `set -e`, `cd models`, `export X=1` in a script: not a model
            continue
        try:
            config = _without_variable_secrets(parse_command_line(line))
        except CommandLineError as exc:
            raise ModelFormatError(f"line {number}: {exc}") from None
        custom = config.get("custom_params") or {}
        alias = custom.get("--alias", custom.get("-a")) if isinstance(custom, Mapping) else None
        name = comment or (str(alias).split(",")[0].strip() if alias not in (None, True) else "")
        comment = ""
        if not name:
            path = config.get(COLUMN.model_path) or config.get(COLUMN.hf_repo)
            name = Path(str(path)).stem if path else "imported"
        models.append(_checked({"name": str(name), **config}, f"line {number}"))
    if not models:
        raise ModelFormatError("there is no llama-server command line to read")
    return _unique(models)


def _runs_llama_server(line: str) -> bool:
    """Whether a script line runs llama-server (any build's name: llama-server, server.exe, ...)
    or is only its arguments (it starts with a flag)."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return True  # let the command-line reader say what is wrong with it
    while words and (words[0] == "env" or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0])):
        words.pop(0)
    if not words or words[0].startswith("-"):
        return bool(words)
    program = re.split(r"[\\/]", words[0])[-1].lower().removesuffix(".exe")
    return "server" in program


_SHELL_VARIABLE = re.compile(r"^\$(\{[A-Za-z_][A-Za-z0-9_]*(:?[-?=+][^}]*)?\}|[A-Za-z_][A-Za-z0-9_]*)$")


def _without_variable_secrets(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without secrets that are shell variables (``${LLAMA_API_KEY:?}``), not keys."""
    for column in SECRET_COLUMNS:
        value = config.get(column)
        values = value if isinstance(value, list) else [value]
        if value is not None and all(isinstance(v, str) and _SHELL_VARIABLE.match(v) for v in values):
            del config[column]
    return config


def parse_models_text(text: str, capabilities: Capabilities | None = None) -> list[dict[str, Any]]:
    """Models from a JSON file's, a presets INI's or command lines' text, whichever it is.

    ``capabilities``: the user's llama-server build, which tells a preset's custom flags (see
    :func:`parse_presets`).
    """
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped:
        raise ModelFormatError("the file is empty")
    if _looks_like_json(stripped):
        return parse_models_json(stripped)
    if stripped.startswith(("version", "[")) or "\n[" in stripped:
        return parse_presets(stripped, capabilities)
    return parse_command_lines(stripped)


def parse_models_file(path: str | Path, capabilities: Capabilities | None = None) -> list[dict[str, Any]]:
    """The models of a models file (JSON, presets INI or command lines); see :func:`parse_models_text`.

    Raises:
        ModelFormatError: The file cannot be read, is not text, or holds no valid models.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelFormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelFormatError(f"{Path(path).name} is not a text file") from None
    if "\x00" in text:
        raise ModelFormatError(f"{Path(path).name} is not a text file")
    return parse_models_text(text, capabilities)


def _unique(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counts = Counter(m["name"] for m in models)
    repeated = sorted(n for n, count in counts.items() if count > 1)
    if repeated:
        raise ModelFormatError(f"the name(s) {', '.join(repeated)} appear more than once")
    return models


# ------------------------------------------------------------------------------------------------
# import: merging
@dataclass(frozen=True)
class ImportAction:
    """What importing one model does.

    Attributes:
        action: ``add``, ``skip`` or ``overwrite``.
        name: The name it gets in the library (``"x (2)"`` when both are kept).
        model: The imported settings.
        existing_id: The library model it replaces (``overwrite`` only).
    """

    action: str
    name: str
    model: dict[str, Any]
    existing_id: int | None = None


def plan_import(
    incoming: Sequence[Mapping[str, Any]], existing: Sequence[Mapping[str, Any]], policy: str = "skip"
) -> list[ImportAction]:
    """What importing ``incoming`` into a library holding ``existing`` does, by ``policy``.

    Raises:
        ValueError: An unknown policy.
    """
    if policy not in MERGE_POLICIES:
        raise ValueError(f"unknown merge policy {policy!r}; one of {', '.join(MERGE_POLICIES)}")
    by_name = {str(m["name"]): m for m in existing}
    taken = set(by_name) | {str(m["name"]) for m in incoming}
    plan = []
    for model in incoming:
        name = str(model["name"])
        if name not in by_name:
            plan.append(ImportAction("add", name, dict(model)))
        elif policy == "skip":
            plan.append(ImportAction("skip", name, dict(model)))
        elif policy == "overwrite":
            plan.append(ImportAction("overwrite", name, dict(model), int(by_name[name]["id"])))
        else:
            number = 2
            while f"{name} ({number})" in taken:
                number += 1
            new_name = f"{name} ({number})"
            taken.add(new_name)
            # a second entry of the same model runs beside the first: it gets a port no entry uses
            port = library.next_free_port([*existing, *incoming, *(a.model for a in plan)])
            plan.append(ImportAction("add", new_name, {**model, "name": new_name, COLUMN.port: port}))
    return plan


def apply_import(store: ModelStore, plan: Sequence[ImportAction]) -> dict[str, int]:
    """Carry out a plan, all of it or nothing (one transaction); how many were added/overwritten/skipped.

    Raises:
        DatabaseError: a model could not be written (a name taken since the plan was made, a full
            disk, ...); no model of the plan was added or changed.
    """
    counts = {"add": 0, "overwrite": 0, "skip": 0}
    columns = _columns()
    with store.transaction():
        # Every column the file does not set goes back to unset: the model becomes the file's.
        # Except the secrets: a file leaves them out unless asked, which is not "no key".
        cleared: dict[str, Any] = {c: None for c in columns - set(SECRET_COLUMNS)}
        cleared["custom_params"] = None
        added: list[dict[str, Any]] = []
        for item in plan:
            counts[item.action] += 1
            if item.action == "add":
                added.append({"status": "stopped", **item.model})
            elif item.action == "overwrite":
                assert item.existing_id is not None
                store.update_model(item.existing_id, {**cleared, **item.model})
        save_models = getattr(store, "save_models", None)
        if save_models is not None:  # one prepared statement for them all (100,000 models: seconds)
            save_models(added)
        else:
            for model in added:
                store.save_model(model)
    return counts
