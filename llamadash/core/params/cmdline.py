"""A pasted ``llama-server ...`` command line -> a stored configuration.

The inverse of :func:`llamadash.core.params.command.build_command` followed by
:func:`~llamadash.core.params.command.format_command`: it reads what people paste from READMEs,
shell scripts and other launchers, so it accepts more than llama-server itself does
(``--flag=value``, ``\\`` line continuations, a leading ``env``), and maps every spelling a schema
row knows (aliases, short and legacy flags, negative forms, ``--load-mode``) back to its column.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from llamadash.core.params.capabilities import LOAD_MODE_FLAGS, normalize_flag
from llamadash.core.params.command import LOAD_MODES, _merge_custom, looks_like_flag
from llamadash.core.params.schema import Param, ParamValueError, load_schema, parse_bool

_ENV_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.DOTALL)
#: Kinds whose text is the value itself: no stripping, no number parsing.
_TEXT_KINDS = ("string", "file", "dir", "enum", "list")
#: Environment variables of the load mode (b11434) and of the flags it replaced (older builds).
_LOAD_MODE_ENV = "LLAMA_ARG_LOAD_MODE"
_LEGACY_LOAD_ENV = {"LLAMA_ARG_MMAP": "mmap", "LLAMA_ARG_NO_MMAP": "mmap", "LLAMA_ARG_MLOCK": "mlock"}


class CommandLineError(ValueError):
    """A command line that cannot be read (bad quoting, a missing or bad value)."""


def parse_command_line(text: str) -> dict[str, Any]:
    """Read a ``llama-server`` command line into a config (column -> canonical value).

    Accepted: leading ``VAR=value`` assignments (``LLAMA_API_KEY``, ``HF_TOKEN`` and the
    ``LLAMA_ARG_*`` variables of schema rows), an optional binary as first word, ``\\``-newline
    continuations, ``--flag value`` and ``--flag=value``, short flags, aliases, legacy spellings,
    ``_`` for ``-`` in long flags, negative forms of pairs, ``--load-mode`` (mapped to
    ``mmap``/``mlock``) and repeated list flags (appended). As in llama-server, a later flag wins
    over an earlier one and over the environment.

    Flags no row covers go to ``custom_params``: ``{"--flag": "value"}`` when a value follows,
    else ``{"--flag": True}``; a negative number (``-1``) is a value, not a flag.

    Raises:
        CommandLineError: unbalanced quotes, a flag missing its value, a bad value for a known
            flag, an argument that belongs to no flag, or an environment variable no column takes.
    """
    tokens = _split(text)
    if not tokens:
        raise CommandLineError("the command line is empty")
    index = 0
    if tokens and tokens[0] == "env":
        index = 1
    env: list[tuple[str, str]] = []
    while index < len(tokens):
        match = _ENV_ASSIGNMENT.fullmatch(tokens[index])
        if not match:
            break
        env.append((match.group(1), match.group(2)))
        index += 1
    if index < len(tokens) and not tokens[index].startswith("-"):
        index += 1  # the binary: /path/llama-server, llama-server.exe, ./llama-server

    state = _State()
    for name, value in env:
        state.apply_env(name, value)
    state.from_env = set(state.config)
    state.apply_args(tokens[index:])
    return state.result()


def _split(text: str) -> list[str]:
    try:
        return shlex.split(_join_continuations(text), posix=True)
    except ValueError as exc:
        raise CommandLineError(f"cannot read the command line: {exc} (an unclosed quote?)") from None


def _join_continuations(text: str) -> str:
    """Drop backslash-newline pairs as sh does: outside single quotes, unless the backslash is escaped."""
    out: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote == "'":
            quote = "" if ch == "'" else quote
        elif ch == "\\":
            pair = text[i : i + 3] if text[i + 1 : i + 3] == "\r\n" else text[i : i + 2]
            if pair in ("\\\n", "\\\r\n"):
                i += len(pair)
                continue
            out.append(text[i : i + 2])
            i += 2
            continue
        elif ch in "'\"" and not quote:
            quote = ch
        elif ch == '"' and quote == '"':
            quote = ""
        out.append(ch)
        i += 1
    return "".join(out)


class _State:
    """The config being built while the words are read."""

    def __init__(self) -> None:
        self.schema = load_schema()
        self.config: dict[str, Any] = {}
        self.custom: dict[str, Any] = {}
        self.from_env: set[str] = set()  # columns set by the environment, until a flag sets them
        self.env_map: dict[str, tuple[Param, bool]] = {}
        for param in self.schema:
            if param.env:
                self.env_map.setdefault(param.env, (param, True))
            if param.env_negative:
                self.env_map.setdefault(param.env_negative, (param, False))
            if param.secret_env:
                self.env_map.setdefault(param.secret_env, (param, True))

    # -- environment ------------------------------------------------------------------------
    def apply_env(self, name: str, text: str) -> None:
        if name == _LOAD_MODE_ENV:
            self._apply_load_mode(name, text)
            return
        if name in _LEGACY_LOAD_ENV:
            # llama-server before --load-mode: LLAMA_ARG_NO_MMAP (any value) turns mmap off
            value = False if name == "LLAMA_ARG_NO_MMAP" else self._bool_word(name, text)
            self.config[_LEGACY_LOAD_ENV[name]] = value
            return
        if name not in self.env_map:
            raise CommandLineError(
                f"{name}={text!r}: no llamadash parameter reads the environment variable {name}; "
                "remove it or pass the setting as a flag"
            )
        param, positive = self.env_map[name]
        if not positive:
            # llama-server: LLAMA_ARG_NO_X set to anything turns X off
            self._set(param, False)
        elif param.kind == "switch" and param.negative_flags:
            # the negative half of a pair (no_webui <- LLAMA_ARG_NO_UI): any value turns it on
            self._set(param, True)
        elif param.kind in ("switch", "bool_pair"):
            self._set(param, self._bool_word(name, text))
        else:
            self._set(param, self._value(param, name, text))

    # -- arguments --------------------------------------------------------------------------
    def apply_args(self, args: list[str]) -> None:
        i = 0
        while i < len(args):
            token = args[i]
            i += 1
            if not looks_like_flag(token):
                raise CommandLineError(
                    f"unexpected argument {token!r}: it follows no flag that takes a value "
                    "(llama-server takes no positional arguments)"
                )
            name, eq, inline_text = token.partition("=")
            inline = inline_text if eq else None
            flag = normalize_flag(name)
            if flag in LOAD_MODE_FLAGS:
                text, i = self._take(token, args, i, inline, 1)
                self._apply_load_mode(token, text[0])
                continue
            param = self.schema.by_flag.get(flag)
            if param is None:
                i = self._apply_custom(flag, args, i, inline)
                continue
            if param.kind in ("switch", "bool_pair"):
                positive = flag not in param.negative_flags
                self._set(param, positive if inline is None else self._bool_word(token, inline) == positive)
                continue
            count = 2 if param.kind == "int_pair" else 1
            texts, i = self._take(token, args, i, inline, count)
            value: Any = self._value(param, token, " ".join(texts))
            previous = self.config.get(param.column)
            if param.kind == "list" and param.column not in self.from_env and isinstance(previous, list):
                value = previous + (value or [])  # a repeated list flag adds items
            self.from_env.discard(param.column)
            self._set(param, value)

    def _take(
        self, token: str, args: list[str], i: int, inline: str | None, count: int
    ) -> tuple[list[str], int]:
        """The value words of ``token``: llama-server takes the next words whatever they look like."""
        texts = [inline] if inline is not None else []
        while len(texts) < count:
            if i >= len(args):
                need = "a value" if count == 1 else f"{count} values"
                raise CommandLineError(f"{token} needs {need} but the command line ends")
            texts.append(args[i])
            i += 1
        return texts, i

    def _apply_custom(self, flag: str, args: list[str], i: int, inline: str | None) -> int:
        if inline is not None:
            value: Any = inline
        elif i < len(args) and not looks_like_flag(args[i]):
            value = args[i]
            i += 1
        else:
            value = True
        _merge_custom(self.custom, flag, value)
        return i

    def _apply_load_mode(self, where: str, text: str) -> None:
        if text not in LOAD_MODES:
            raise CommandLineError(f"{where}: expected one of {', '.join(LOAD_MODES)}, got {text!r}")
        pair = LOAD_MODES[text]
        if pair is None:
            self.custom[LOAD_MODE_FLAGS[0]] = text  # no column expresses it (dio)
            return
        self.custom.pop(LOAD_MODE_FLAGS[0], None)
        for column, value in zip(("mmap", "mlock"), pair, strict=True):
            if value is None:
                self.config.pop(column, None)
            else:
                self.config[column] = value

    # -- values -----------------------------------------------------------------------------
    def _value(self, param: Param, where: str, text: str) -> Any:
        try:
            if param.kind in _TEXT_KINDS:
                return param.coerce(text) if text != "" else None
            return param.from_text(text)
        except ParamValueError as exc:
            raise CommandLineError(f"{where}: {exc.message} (parameter {param.column})") from None

    @staticmethod
    def _bool_word(where: str, text: str) -> bool:
        flag = parse_bool(text)
        if flag is not None:
            return flag
        raise CommandLineError(f"{where}: expected true/false, on/off or 1/0, got {text!r}")

    def _set(self, param: Param, value: Any) -> None:
        if value is None:
            self.config.pop(param.column, None)
        else:
            self.config[param.column] = value

    def result(self) -> dict[str, Any]:
        config = dict(self.config)
        if self.custom:
            config["custom_params"] = self.custom
        return config
