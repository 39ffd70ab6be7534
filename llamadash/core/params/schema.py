"""The llama-server parameter schema, loaded from ``schema.toml`` into frozen dataclasses.

The descriptor is data: one row per seed ``models`` column that is a llama-server parameter. This
module loads it, knows how a value of each *kind* is checked, stored and read back, and derives
the facts other code needs from the rows' data (their ``roles``, ``source_rank``, ``rejected``
values) and the descriptor's tables (``[numbers]``, ``[booleans]``, ``[router]``, ``[sections]``):
:data:`SECTIONS`, :data:`SOURCE_COLUMNS`, :data:`SECRET_COLUMNS`, :func:`secret_env_var`, :data:`INT32_RANGE`,
:data:`TRUE_WORDS`/:func:`parse_bool`, :data:`ROUTER_MANAGED_FLAGS`, :data:`DEFAULT_PORT` and
:data:`COLUMN` (a column's name without writing it as a literal). None of them is written twice.
What a build accepts on its command line lives in :mod:`llamadash.core.params.capabilities` and
:mod:`llamadash.core.params.command`.
"""

from __future__ import annotations

import contextlib
import marshal
import math
import os
import re
import sys
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from llamadash.core.messages import short_repr

KINDS = (
    "int",
    "float",
    "string",
    "enum",
    "switch",
    "bool_pair",
    "int_or_keyword",
    "file",
    "dir",
    "list",
    "int_pair",
)
#: What one item of a ``list`` row is (its ``item``). An item made of parts joined by ``:`` is
#: written ``"file:float"`` (llama-server's ``FNAME:SCALE``). Numbers are checked as llama-server's
#: ``std::stof``/``std::stoi`` will read them, within the row's ``min``/``max``.
ITEM_KINDS = ("text", "file", "dir", "float", "int")
#: The separator between the parts of a list item (``FNAME:SCALE``).
ITEM_PART_SEPARATOR = ":"
SQL_TYPES = ("INTEGER", "REAL", "TEXT", "BOOLEAN")
STATUSES = ("clean", "partial", "renamed", "deprecated", "absent", "not_server", "action")
#: Columns of the seed's ``models`` table that are not llama-server parameters.
SEED_META_COLUMNS = ("id", "name", "type", "status", "created_at", "updated_at", "custom_params")
#: Every ``models`` column that is not a llama-server parameter: the seed's, then the per-model
#: settings llamadash keeps itself (``auto_restart``: restart the server after a crash;
#: ``remote_url``: the entry is a llama-server another machine runs, see :mod:`llamadash.core.remote`;
#: ``served``: the model is one of the library router's, ``load_on_startup`` and ``stop_timeout_s``:
#: what the router's presets file says of it, see :mod:`llamadash.core.router`).
META_COLUMNS = (
    *SEED_META_COLUMNS,
    "auto_restart",
    "remote_url",
    "served",
    "load_on_startup",
    "stop_timeout_s",
)
#: What a row can be to llamadash (its ``roles``), and what each role means.
ROLES = {
    "source": "where llama-server gets the model's weights (one is needed unless it is a router)",
    "router_source": "where llama-server running as a router finds its models",
    "draft_source": "where llama-server gets the draft model for speculative decoding",
    "draft": "a setting that only does something with a draft model",
    "secret": "never on a command line or in an export unless asked: its value travels in its env",
    "auth": "an API key clients must present (the server is not open to anyone)",
    "network": "where the server listens",
    "router_managed": "set by llama-server's router for each model it starts: never in a preset",
}
#: The roles of a row whose model a library entry is: they carry ``source_rank``/``source_label``.
SOURCE_ROLES = ("source", "router_source")

# Plain decimal numbers only: no "inf"/"nan", hex or "1_000", which Python reads but stof does not
# (or reads differently).
_FLOAT_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INT_TEXT = re.compile(r"[+-]?\d+")
_ITEM_WORDS = {
    "text": ("text", "items", "TEXT"),
    "file": ("a file path", "file paths", "FILE"),
    "dir": ("a directory path", "directory paths", "DIR"),
    "float": ("a number", "numbers", "NUMBER"),
    "int": ("a whole number", "whole numbers", "N"),
}


class InvalidStoredValue(str):
    """A value read back from the database that does not fit its parameter.

    Only another program (``sqlite3``, an old or foreign writer) can store one: llamadash checks
    what it writes. It *is* the stored value's text, so it prints, shows and exports as what is
    stored and never breaks code that displays values; :meth:`Param.coerce` refuses it, so that
    validation names the column and nothing is launched with it.

    Attributes:
        raw: what SQLite returned.
        problem: why it is not a valid value (the message :meth:`Param.coerce` gave).
    """

    raw: Any
    problem: str

    def __new__(cls, raw: Any, problem: str = "") -> InvalidStoredValue:
        value = super().__new__(cls, raw if isinstance(raw, str) else str(raw))
        value.raw = raw
        value.problem = problem
        return value

    def __repr__(self) -> str:
        return repr(self.raw)


def invalid_stored_values(model: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(column, problem)`` for every value of ``model`` (a row read back) that is not valid."""
    return [
        (column, value.problem) for column, value in model.items() if isinstance(value, InvalidStoredValue)
    ]


class ParamValueError(ValueError):
    """A value that does not fit its parameter; ``column`` names the parameter."""

    def __init__(self, column: str, message: str):
        super().__init__(f"{column}: {message}")
        self.column = column
        self.message = message


@dataclass(frozen=True)
class Param:
    """One llama-server parameter (one ``models`` column)."""

    column: str
    section: str
    sql_type: str
    kind: str
    help: str
    status: str
    flags: tuple[str, ...] = ()
    negative_flags: tuple[str, ...] = ()
    legacy_flags: tuple[str, ...] = ()
    mapping: str | None = None
    default: Any = None
    default_text: str | None = None
    choices: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    unit: str | None = None
    separator: str | None = None
    item: str | None = None
    must_exist: bool = False
    repeatable: bool = False
    env: str | None = None
    env_negative: str | None = None
    note: str | None = None
    #: The longest text value (characters; per kind from the schema's ``[limits]``, or per row).
    max_length: int | None = None
    #: The short human name the editor shows ("Context size"); from the column when a row has none.
    label: str = ""
    #: What the row is to llamadash (keys of :data:`ROLES`).
    roles: tuple[str, ...] = ()
    #: A source row's place in the order a model's source is looked up (1 first).
    source_rank: int | None = None
    #: What the library calls a source row ("Hugging Face").
    source_label: str | None = None
    #: ``(value, reason)``: values inside ``min``/``max`` that llama-server still refuses.
    rejected: tuple[tuple[int, str], ...] = ()
    #: The GGUF metadata key that decides the value while the row is unset (``"{arch}"`` stands
    #: for ``general.architecture``): ``ctx_size`` -> ``"{arch}.context_length"``.
    model_default: str | None = None
    #: The row goes to ``llama-fit-params`` (it changes the memory the model needs, or where it goes).
    fit_params: bool = False
    #: ``llama-bench``'s flag for the row, or ``None`` when llama-bench has no equivalent.
    bench_flag: str | None = None
    #: ``(canonical value text, llama-bench text)`` where the two differ (``("true", "0")`` for
    #: ``-nkvo``); a keyword without an entry leaves llama-bench at its default.
    bench_values: tuple[tuple[str, str], ...] = ()
    #: What joins a list's items for llama-bench (its ``,`` separates alternatives).
    bench_join: str | None = None

    def model_value(self, metadata: Mapping[str, Any]) -> Any:
        """What the model's header says this row is when unset (:attr:`model_default`), or ``None``.

        Args:
            metadata: a GGUF file's key/value metadata (``ModelInfo.metadata``).
        """
        if not self.model_default:
            return None
        architecture = metadata.get("general.architecture")
        if "{arch}" in self.model_default and not isinstance(architecture, str):
            return None
        value = metadata.get(self.model_default.replace("{arch}", str(architecture)))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return value

    @property
    def long_flag(self) -> str | None:
        """The canonical long spelling (first ``--`` flag), or ``None`` for a row without flags."""
        return next((f for f in self.flags if f.startswith("--")), self.flags[0] if self.flags else None)

    @property
    def is_bool(self) -> bool:
        return self.kind in ("switch", "bool_pair")

    @property
    def secret(self) -> bool:
        """Never on a command line: the value travels in :attr:`secret_env`."""
        return "secret" in self.roles

    @property
    def secret_env(self) -> str | None:
        """The environment variable a secret's value goes into instead of the command line."""
        return self.env if self.secret else None

    @property
    def int_range(self) -> tuple[int, int]:
        """The whole numbers llama-server can take here: the row's limits, else a C ``int``'s."""
        low, high = INT32_RANGE
        return (
            int(self.min) if self.min is not None else low,
            int(self.max) if self.max is not None else high,
        )

    def rejected_reason(self, value: Any) -> str | None:
        """Why llama-server refuses ``value`` though it is in range (``n_parallel`` 0), or ``None``."""
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        return next((reason for rejected, reason in self.rejected if rejected == value), None)

    @property
    def all_flags(self) -> tuple[str, ...]:
        return self.flags + self.negative_flags + self.legacy_flags

    @property
    def item_parts(self) -> tuple[str, ...]:
        """The kinds of the parts of one list item (``("file", "float")`` for ``FNAME:SCALE``)."""
        return tuple(self.item.split(ITEM_PART_SEPARATOR)) if self.item else ()

    def split_item(self, text: str) -> list[str]:
        """One list item cut into its parts (one part unless ``item`` joins several with ``:``)."""
        return text.split(ITEM_PART_SEPARATOR) if len(self.item_parts) > 1 else [text]

    # ----------------------------------------------------------------------------------------
    # values
    def coerce(self, value: Any) -> Any:
        """Check ``value`` for this parameter and return its canonical Python form.

        ``None`` means "not set" (llama-server's default). Canonical forms: ``int``, ``float``,
        ``str``, ``bool`` for switches and pairs, ``int | keyword`` for int-or-keyword,
        ``list[str]`` for lists and ``[int, int]`` for int pairs.

        Raises:
            ParamValueError: the value has the wrong type, is out of range or not an allowed choice.
        """
        if value is None:
            return None
        if isinstance(value, InvalidStoredValue):
            raise self._error(f"the value stored in the database is not valid: {value.problem}")
        kind = self.kind
        if kind == "int":
            return self._check_range(self._as_int(value))
        if kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._error(f"expected a number, got {short_repr(value)}")
            number = float(value)
            if not math.isfinite(number):
                raise self._error(f"expected a finite number, got {short_repr(value)}")
            return self._check_range(number)
        if kind in ("switch", "bool_pair"):
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise self._error(f"expected true/false (or 1/0), got {short_repr(value)}")
        if kind == "int_or_keyword":
            if isinstance(value, str) and value in self.keywords:
                return value
            if isinstance(value, int) and not isinstance(value, bool):
                if value == -1 and "auto" in self.keywords:
                    return "auto"  # the seed writes -1 for auto
                return self._check_range(value)
            words = ", ".join(self.keywords)
            raise self._error(f"expected a whole number or one of {words}, got {short_repr(value)}")
        if kind == "enum":
            if not isinstance(value, str) or value not in self.choices:
                raise self._error(f"expected one of {', '.join(self.choices)}, got {short_repr(value)}")
            return value
        if kind in ("string", "file", "dir"):
            if not isinstance(value, str):
                raise self._error(f"expected text, got {short_repr(value)}")
            if kind != "string" and not value.strip():
                raise self._error("expected a path, got an empty string")
            return self._check_length(value)
        if kind == "list":
            sep = self.separator or ","
            numeric = self.item_parts in (("float",), ("int",))
            if isinstance(value, str):
                items = [part.strip() for part in value.split(sep)]
            elif isinstance(value, (list, tuple)) and all(
                isinstance(v, str) or (numeric and _is_number(v)) for v in value
            ):
                items = [v.strip() if isinstance(v, str) else _number_text(v) for v in value]
            else:
                raise self._error(f"expected {self.describe_type()}, got {short_repr(value)}")
            items = [v for v in items if v]
            self._check_length(sep.join(items))
            if any(sep in v for v in items):
                raise self._error(f"an item may not contain the separator {short_repr(sep)}")
            for text in items:
                self._check_item(text)
            return items or None
        if kind == "int_pair":
            parts: list[Any]
            if isinstance(value, str):
                parts = value.replace(",", " ").split()
                try:
                    parts = [int(p) for p in parts]
                except ValueError:
                    message = f"expected two whole numbers START END, got {short_repr(value)}"
                    raise self._error(message) from None
            elif isinstance(value, (list, tuple)):
                parts = list(value)
            else:
                raise self._error(f"expected two whole numbers START END, got {short_repr(value)}")
            if len(parts) != 2 or not all(isinstance(p, int) and not isinstance(p, bool) for p in parts):
                raise self._error(f"expected two whole numbers START END, got {short_repr(value)}")
            if parts[0] > parts[1]:
                raise self._error(f"START must not be greater than END, got {parts[0]} {parts[1]}")
            return [self._check_range(parts[0]), self._check_range(parts[1])]
        raise AssertionError(f"unknown kind {kind}")  # the schema test rules this out

    def from_text(self, text: str) -> Any:
        """Parse a value typed by a person (CLI ``key=value``, an editor cell, an INI file).

        An empty string means "not set".
        """
        text = text.strip()
        if text == "":
            return None
        kind = self.kind
        try:
            if kind == "int":
                return self.coerce(int(text, 0) if text.lower().startswith(("0x", "-0x")) else int(text))
            if kind == "float":
                return self.coerce(float(text))
            if kind in ("switch", "bool_pair"):
                flag = parse_bool(text)
                if flag is None:
                    raise self._error(f"expected true/false, on/off or 1/0, got {short_repr(text)}")
                return flag
            if kind == "int_or_keyword":
                return self.coerce(text if text in self.keywords else int(text))
        except ValueError as exc:
            if isinstance(exc, ParamValueError):
                raise
            raise self._error(f"expected {self.describe_type()}, got {short_repr(text)}") from None
        return self.coerce(text)

    def to_text(self, value: Any) -> str:
        """The inverse of :meth:`from_text` for a canonical value (a stored, invalid one: its text)."""
        if value is None:
            return ""
        if isinstance(value, InvalidStoredValue):
            return str(value)
        if self.kind in ("switch", "bool_pair"):
            return "true" if value else "false"
        if self.kind == "list":
            return (self.separator or ",").join(value)
        if self.kind == "int_pair":
            return f"{value[0]} {value[1]}"
        if self.kind == "float":
            return repr(float(value))
        return str(value)

    def to_db(self, value: Any) -> Any:
        """Canonical value -> what goes into the SQLite column."""
        if value is None:
            return None
        if isinstance(value, InvalidStoredValue):
            return value.raw  # unchanged: what is stored stays as it is
        if self.kind in ("switch", "bool_pair"):
            return 1 if value else 0
        if self.kind == "list":
            return (self.separator or ",").join(value)
        if self.kind == "int_pair":
            return f"{value[0]} {value[1]}"
        if self.kind == "int" and self.sql_type == "TEXT":
            return str(value)
        return value

    def from_db(self, raw: Any) -> Any:
        """What SQLite returns -> canonical value, checked as :meth:`coerce` checks user input.

        A row from the live database is input too (another program may have written it): a value
        that does not fit comes back as an :class:`InvalidStoredValue` (the stored text, with the
        problem), never as an exception, so that reading a model never fails on one column.
        """
        if raw is None or isinstance(raw, InvalidStoredValue):
            return raw
        value = self._decode_db(raw)
        try:
            return self.coerce(value)
        except ParamValueError as exc:
            return InvalidStoredValue(raw, exc.message)

    def _decode_db(self, raw: Any) -> Any:
        """The stored form (``"3,1"``, ``1``, ``"-1"``) -> the Python form :meth:`coerce` takes."""
        try:
            if self.kind in ("switch", "bool_pair"):
                if isinstance(raw, str):
                    flag = parse_bool(raw)
                    return raw if flag is None else flag
                return raw
            if self.kind == "int":
                return int(raw) if not isinstance(raw, float) or raw.is_integer() else raw
            if self.kind == "float":
                return float(raw)
            if self.kind == "int_or_keyword":
                if isinstance(raw, str) and raw in self.keywords:
                    return raw
                number = int(raw)
                return "auto" if number == -1 and "auto" in self.keywords else number
            if self.kind in ("list", "int_pair"):
                return str(raw)
        except (TypeError, ValueError):
            return raw  # coerce says what is wrong with it
        return (
            raw
            if not isinstance(raw, (int, float)) or self.kind not in ("string", "enum", "file", "dir")
            else str(raw)
        )

    def differs_from_default(self, value: Any) -> bool:
        """True when ``value`` is set and is not what llama-server does without the flag."""
        if value is None:
            return False
        if self.default is None:
            return True
        if self.kind == "float":
            return not math.isclose(float(value), float(self.default), rel_tol=1e-9, abs_tol=1e-12)
        return bool(value != self.default)

    def describe_type(self) -> str:
        """A short human description of what the value must be."""
        kind = self.kind
        if kind == "int":
            text = "a whole number"
        elif kind == "float":
            text = "a number"
        elif kind in ("switch", "bool_pair"):
            return "true or false"
        elif kind == "enum":
            return "one of " + ", ".join(self.choices)
        elif kind == "int_or_keyword":
            text = "a whole number or " + " or ".join(self.keywords)
        elif kind == "list":
            return self._describe_list()
        elif kind == "int_pair":
            return "two whole numbers START END"
        elif kind == "file":
            return "a file path"
        elif kind == "dir":
            return "a directory path"
        else:
            return "text"
        return text + self._range_text()

    def _range_text(self) -> str:
        if self.min is not None and self.max is not None:
            return f" from {_num(self.min)} to {_num(self.max)}"
        if self.min is not None:
            return f" >= {_num(self.min)}"
        if self.max is not None:
            return f" <= {_num(self.max)}"
        return ""

    def _describe_list(self) -> str:
        sep = repr(self.separator or ",")
        parts = self.item_parts
        if not parts or parts == ("text",):
            return f"a list separated by {sep}"
        if len(parts) == 1:
            numeric = parts[0] in ("float", "int")
            return f"{_ITEM_WORDS[parts[0]][1]}{self._range_text() if numeric else ''} separated by {sep}"
        form = ITEM_PART_SEPARATOR.join(_ITEM_WORDS[p][2] for p in parts)
        words = " and ".join(_ITEM_WORDS[p][0] for p in parts)
        return f"{form} items ({words} joined by {short_repr(ITEM_PART_SEPARATOR)}) separated by {sep}"

    def _check_item(self, text: str) -> None:
        """Refuse a list item that is not what ``item`` says (llama-server would stop on it)."""
        parts = self.item_parts
        if not parts or parts == ("text",):
            return
        pieces = self.split_item(text)
        expected = f"expected {self._describe_list()}"
        if len(pieces) != len(parts):
            form = ITEM_PART_SEPARATOR.join(_ITEM_WORDS[p][2] for p in parts)
            raise self._error(f"{short_repr(text)} is not {form}; {expected}")
        for part, piece in zip(parts, pieces, strict=True):
            word = _ITEM_WORDS[part][0]
            where = short_repr(piece) if len(parts) == 1 else f"{short_repr(piece)} in {short_repr(text)}"
            if part in ("float", "int"):
                number_text = piece.strip()
                pattern = _FLOAT_TEXT if part == "float" else _INT_TEXT
                number = float(number_text) if pattern.fullmatch(number_text) else math.nan
                if not math.isfinite(number):
                    raise self._error(f"{where} is not {word}; {expected}")
                if self.min is not None and number < self.min:
                    raise self._error(f"{where} is below the minimum {_num(self.min)}; {expected}")
                if self.max is not None and number > self.max:
                    raise self._error(f"{where} is above the maximum {_num(self.max)}; {expected}")
            elif not piece.strip():
                raise self._error(f"{short_repr(text)} lacks {word}; {expected}")

    # ----------------------------------------------------------------------------------------
    def _as_int(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise self._error(f"expected a whole number, got {short_repr(value)}")
        return value

    def _check_length(self, text: str) -> str:
        # never quoted: a key or token must not end up in a message, and a long one fills the screen
        if self.max_length is not None and len(text) > self.max_length:
            what = "paths" if self.kind in ("file", "dir") else "values"
            raise self._error(
                f"the value is {len(text):,} characters long; {self.column} {what} may have at most "
                f"{self.max_length:,}"
            )
        return text

    def _check_range(self, value: Any) -> Any:
        if self.min is not None and value < self.min:
            raise self._error(f"{_num(value)} is below the minimum {_num(self.min)}")
        if self.max is not None and value > self.max:
            raise self._error(f"{_num(value)} is above the maximum {_num(self.max)}")
        return value

    def _error(self, message: str) -> ParamValueError:
        return ParamValueError(self.column, message)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number_text(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class Schema:
    """All parameters, in descriptor order, with lookups by column and by flag.

    Besides the rows, what the descriptor's tables say about all of them: the numbers llama-server
    reads (``[numbers]``), the words for true and false (``[booleans]``) and the flags the router
    sets that no row holds (``[router]``) and the order of the sections (``[sections]``). A
    descriptor without a table leaves its fields empty.
    """

    params: tuple[Param, ...]
    by_column: dict[str, Param] = field(repr=False, compare=False, hash=False)
    by_flag: dict[str, Param] = field(repr=False, compare=False, hash=False)
    #: ``[numbers]``: ``int_min``, ``int_max``, ``float_max``, ``float_min_normal``.
    numbers: dict[str, float] = field(default_factory=dict, repr=False, compare=False, hash=False)
    true_words: frozenset[str] = frozenset()
    false_words: frozenset[str] = frozenset()
    #: Flags llama-server's router sets for each model that no row holds (``--alias``).
    router_flags: tuple[str, ...] = ()
    #: ``[sections]``: the order the sections are shown in; sections it does not list follow in
    #: the order their first row comes.
    section_order: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def __getitem__(self, column: str) -> Param:
        return self.by_column[column]

    def __contains__(self, column: object) -> bool:
        return column in self.by_column

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(p.column for p in self.params)

    def sections(self) -> dict[str, list[Param]]:
        """Parameters grouped by section, sections in :attr:`section_order`, rows in descriptor order."""
        grouped: dict[str, list[Param]] = {name: [] for name in self.section_order}
        for param in self.params:
            grouped.setdefault(param.section, []).append(param)
        return {name: rows for name, rows in grouped.items() if rows}

    def with_role(self, role: str) -> tuple[Param, ...]:
        """The rows that have ``role`` (a key of :data:`ROLES`), in descriptor order."""
        return tuple(p for p in self.params if role in p.roles)


_TUPLE_FIELDS = ("flags", "negative_flags", "legacy_flags", "choices", "keywords", "roles")
#: Words a derived label writes in capitals or spells out ("ctx_size" -> "Context size").
_LABEL_WORDS = {"ctx": "context", "kv": "KV", "gpu": "GPU", "cpu": "CPU", "url": "URL", "hf": "Hugging Face"}


def label_from_column(column: str) -> str:
    """A readable label for a row without one: ``"ctx_size_draft"`` -> ``"Context size draft"``."""
    words = [_LABEL_WORDS.get(word, word) for word in column.split("_") if word]
    text = " ".join(words) or column
    return text[:1].upper() + text[1:]


def _param_from_row(row: dict[str, Any]) -> Param:
    values = dict(row)
    for name in _TUPLE_FIELDS:
        if name in values:
            values[name] = tuple(values[name])
    values["rejected"] = tuple((item["value"], item["reason"]) for item in values.get("rejected", ()))
    values["bench_values"] = tuple(
        (str(key), str(text)) for key, text in dict(values.get("bench_values", {})).items()
    )
    values.setdefault("label", label_from_column(str(values.get("column", ""))))
    return Param(**values)


def _schema_from_data(data: dict[str, Any]) -> Schema:
    limits = data.get("limits", {})
    rows = [{"max_length": limits.get(row.get("kind")), **row} for row in data.get("param", [])]
    params = tuple(_param_from_row(row) for row in rows)
    by_flag: dict[str, Param] = {}
    for param in params:
        for flag in param.all_flags:
            by_flag.setdefault(flag, param)
    booleans = data.get("booleans", {})
    return Schema(
        params=params,
        by_column={p.column: p for p in params},
        by_flag=by_flag,
        numbers=dict(data.get("numbers", {})),
        true_words=frozenset(booleans.get("true", ())),
        false_words=frozenset(booleans.get("false", ())),
        router_flags=tuple(data.get("router", {}).get("managed_flags", ())),
        section_order=tuple(data.get("sections", {}).get("order", ())),
    )


def load_schema_text(text: str) -> Schema:
    """Build a :class:`Schema` from descriptor text (TOML with ``[[param]]`` rows).

    A ``[limits]`` table gives the longest text of each kind (``file = 4096``); a row's own
    ``max_length`` wins. ``[numbers]``, ``[booleans]``, ``[router]`` and ``[sections]`` fill the
    schema's fields of the same meaning.
    """
    import tomllib  # not at import: a start whose descriptor is in the cache parses no TOML

    return _schema_from_data(tomllib.loads(text))


def _cache_dir() -> Path:
    """The per-user cache folder (``LLAMADASH_CACHE_DIR`` overrides it)."""
    if override := os.environ.get("LLAMADASH_CACHE_DIR"):
        return Path(override)
    if sys.platform == "win32":
        return (
            Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "llamadash" / "cache"
        )
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "llamadash"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llamadash"


def _parsed_descriptor(raw: bytes) -> dict[str, Any]:
    """``tomllib.loads`` of the shipped descriptor, kept as ``marshal`` data in the user's cache.

    Parsing the TOML takes about 10 ms at every start; the marshalled result loads in 0.3 ms.
    The cache file is named by the descriptor's size and CRC (and Python's version, marshal's
    format follows it), so an edited descriptor is parsed again; marshal data holds plain values
    only (no code is run by loading it). Any problem with the cache: parsed as usual.
    """
    key = f"schema-{len(raw)}-{zlib.crc32(raw):08x}-py{sys.version_info[0]}{sys.version_info[1]}.marshal"
    path = _cache_dir() / key
    with contextlib.suppress(OSError, ValueError, EOFError, TypeError):
        data = marshal.loads(path.read_bytes())
        if isinstance(data, dict):
            return data
    import tomllib

    data = tomllib.loads(raw.decode("utf-8"))
    with contextlib.suppress(OSError, ValueError):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        partial.write_bytes(marshal.dumps(data))
        os.replace(partial, path)  # whole or not at all, whoever else writes it
    return data


@cache
def load_schema() -> Schema:
    """The schema shipped with llamadash (cached; the descriptor never changes at run time)."""
    raw = resources.files(__package__).joinpath("schema.toml").read_bytes()
    return _schema_from_data(_parsed_descriptor(raw))


# ------------------------------------------------------------------------------------------------
# facts derived from the shipped descriptor: import these, never write their values again

_SHIPPED = load_schema()

#: The sections, in the order the editor shows them (``[sections]``: the model, its context, the
#: GPU and sampling first). Every row's section is one of them.
SECTIONS: tuple[str, ...] = _SHIPPED.section_order

#: The whole numbers llama-server's argument parser reads (``std::stoi``: a C ``int``).
INT32_RANGE: tuple[int, int] = (int(_SHIPPED.numbers["int_min"]), int(_SHIPPED.numbers["int_max"]))
#: The largest finite C ``float`` (``std::stof``) and its smallest normal magnitude.
FLOAT32_MAX: float = float(_SHIPPED.numbers["float_max"])
FLOAT32_MIN_NORMAL: float = float(_SHIPPED.numbers["float_min_normal"])
#: What a person may write for true and for false (compared in lower case).
TRUE_WORDS: frozenset[str] = _SHIPPED.true_words
FALSE_WORDS: frozenset[str] = _SHIPPED.false_words
#: Where a model's weights come from, in the order a model's source is looked up (its
#: ``source_rank``): the file, Hugging Face, a URL, Docker, then a router's folder or preset.
SOURCE_COLUMNS: tuple[str, ...] = tuple(
    p.column
    for p in sorted((p for p in _SHIPPED if p.source_rank is not None), key=lambda p: p.source_rank or 0)
)
#: What the library calls each source (``"hf_repo"`` -> ``"Hugging Face"``), in that order.
SOURCE_LABELS: dict[str, str] = {c: _SHIPPED[c].source_label or c for c in SOURCE_COLUMNS}
#: The sources of one model (``source``), of a router (``router_source``), of a draft model.
MODEL_SOURCE_COLUMNS: tuple[str, ...] = tuple(c for c in SOURCE_COLUMNS if "source" in _SHIPPED[c].roles)
ROUTER_SOURCE_COLUMNS: tuple[str, ...] = tuple(
    c for c in SOURCE_COLUMNS if "router_source" in _SHIPPED[c].roles
)
DRAFT_SOURCE_COLUMNS: tuple[str, ...] = tuple(p.column for p in _SHIPPED.with_role("draft_source"))
#: Settings that only do something with a draft model.
DRAFT_COLUMNS: tuple[str, ...] = tuple(p.column for p in _SHIPPED.with_role("draft"))
#: Columns whose values never go on a command line or into an export unless asked.
SECRET_COLUMNS: tuple[str, ...] = tuple(p.column for p in _SHIPPED.with_role("secret"))
#: Each secret column's environment variable (``api_key`` -> ``LLAMA_API_KEY``).
SECRET_ENV: dict[str, str] = {p.column: p.env for p in _SHIPPED.with_role("secret") if p.env}
#: Columns llama-server's router sets for each model it starts, and every spelling of their flags
#: with those of ``[router]`` (``--alias``): a presets file holds none of them.
ROUTER_MANAGED_COLUMNS: tuple[str, ...] = tuple(p.column for p in _SHIPPED.with_role("router_managed"))
ROUTER_MANAGED_FLAGS: frozenset[str] = frozenset(
    (*(f for p in _SHIPPED.with_role("router_managed") for f in p.all_flags), *_SHIPPED.router_flags)
)
#: The port and the address llama-server listens on when a model sets none.
DEFAULT_PORT: int = int(_SHIPPED["port"].default)
DEFAULT_HOST: str = str(_SHIPPED["host"].default)


def secret_env_var(column: str) -> str | None:
    """The environment variable a secret column's value goes into (``"hf_token"`` -> ``"HF_TOKEN"``);
    ``None`` for a column that is not a secret."""
    return SECRET_ENV.get(column)


def parse_bool(text: str) -> bool | None:
    """``True``/``False`` for a word of :data:`TRUE_WORDS`/:data:`FALSE_WORDS` (any case, spaces
    around it), ``None`` for any other text."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


class _Columns:
    """Column names by attribute: ``COLUMN.ctx_size == "ctx_size"``, an ``AttributeError`` for a
    name the schema has no row for, so that code outside the schema names a column without a
    string literal (``tests/unit/test_column_literals.py`` keeps it so) and a typo fails loudly."""

    __slots__ = ()

    def __getattr__(self, name: str) -> str:
        if name in _SHIPPED:
            return name
        raise AttributeError(f"the parameter schema has no column {name!r}")

    def __dir__(self) -> list[str]:
        return list(_SHIPPED.columns)


#: See :class:`_Columns`.
COLUMN = _Columns()
