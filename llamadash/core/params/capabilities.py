"""What one llama-server binary accepts on its command line, read from its own ``--help``.

llama.cpp renames and removes flags between builds (``--mmap`` became ``--load-mode``,
``--draft-max`` became ``--spec-draft-n-max``), and builds made from source report no usable
version number. The only reliable description of a binary is its ``--help`` text, so
:func:`parse_help` turns that text into a :class:`Capabilities`, and :func:`probe_binary` runs the
binary once (cached per file identity) to get it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llamadash.core.params.schema import Schema

#: The label used in messages when a build's version is unknown and no label was given.
UNKNOWN_BUILD_LABEL = "this llama-server build"
#: Flags that print something and exit: never server settings, never offered as extra flags.
PRINT_AND_EXIT_FLAGS = frozenset(
    {"--help", "--version", "--list-devices", "--cache-list", "--completion-bash"}
)
#: How ``--help`` marks a flag that is registered only to fail with a pointer to its successor.
REMOVED_MARKER = "the argument has been removed"
#: Flags that the ``mmap``/``mlock`` columns map onto on builds that have them.
LOAD_MODE_FLAGS = ("--load-mode", "-lm")

_FLAG_RE = re.compile(r"-{1,2}[A-Za-z][A-Za-z0-9_.+-]*")
_SECTION_RE = re.compile(r"^-{3,}\s*(.*?)\s*-{3,}\s*$")
_ENV_RE = re.compile(r"\(env:\s*([A-Za-z_][A-Za-z0-9_]*)\)")
_VALUE_WORD_RE = re.compile(r"[A-Z][A-Z0-9_]*")
_CACHE_FILE = "llama-server-capabilities.json"


class CapabilityError(RuntimeError):
    """A llama-server binary could not be asked what it accepts (missing, not runnable, hung)."""


def normalize_flag(flag: str) -> str:
    """The spelling llama-server looks up: it turns ``_`` into ``-`` in ``--long`` options."""
    return flag.replace("_", "-") if flag.startswith("--") else flag


@dataclass(frozen=True)
class HelpEntry:
    """One option of ``--help``: its spellings, the value hint after them and the help text.

    Attributes:
        flags: every spelling the entry lists, positive and negative forms, in help order.
        value_hint: the placeholder after the flags (``N``, ``{none,linear,yarn}``,
            ``START END``), or ``None`` for an option that takes no value.
        help: the help text, continuation lines joined with newlines, ``(env: ...)`` included.
        section: the help section (``common``, ``sampling``, ``speculative``, ...).
    """

    flags: tuple[str, ...]
    value_hint: str | None
    help: str
    section: str = ""

    @property
    def takes_value(self) -> bool:
        return self.value_hint is not None

    @property
    def value_count(self) -> int:
        """How many argv items follow the flag (``START END`` is two)."""
        if self.value_hint is None:
            return 0
        words = self.value_hint.split()
        if len(words) > 1 and all(_VALUE_WORD_RE.fullmatch(w) for w in words):
            return len(words)
        return 1

    @property
    def removed(self) -> bool:
        """Registered only to throw "the argument has been removed"."""
        return REMOVED_MARKER in self.help.lower()

    @property
    def env(self) -> str | None:
        match = _ENV_RE.search(self.help)
        return match.group(1) if match else None

    @property
    def is_print_and_exit(self) -> bool:
        return any(f in PRINT_AND_EXIT_FLAGS for f in self.flags)

    @property
    def long_flag(self) -> str:
        return next((f for f in self.flags if f.startswith("--")), self.flags[0])

    @property
    def default(self) -> str | None:
        """What the help says the default is (see :func:`help_default`), or ``None``."""
        return help_default(self.help)


_DEFAULT_OPEN = "(default:"


def help_default(help_text: str) -> str | None:
    """The text of the help's ``(default: ...)``, on one line, or ``None`` when it has none.

    The parenthesis is matched, so what follows it (``.``, an ``(env: ...)`` line, a link) is left
    out and one inside it is kept: ``"(default: unset, behavior unchanged).\\nwhen set ..."`` ->
    ``"unset, behavior unchanged"``; ``"(default: 0, -1 =\\nall)"`` -> ``"0, -1 = all"``.
    """
    start = help_text.find(_DEFAULT_OPEN)
    if start < 0:
        return None
    depth = 1
    end = -1
    for position in range(start + len(_DEFAULT_OPEN), len(help_text)):
        if help_text[position] == "(":
            depth += 1
        elif help_text[position] == ")":
            depth -= 1
            if depth == 0:
                end = position
                break
    if end < 0:  # never closed: up to the end of its line
        end = help_text.find("\n", start)
        end = len(help_text) if end < 0 else end
    text = " ".join(help_text[start + len(_DEFAULT_OPEN) : end].split())
    return text or None


@dataclass(frozen=True)
class Capabilities:
    """What one llama-server build accepts, from its ``--help`` (see :func:`parse_help`).

    Attributes:
        flags: every spelling the build accepts (positive and negative forms).
        value_flags: the accepted spellings that take a value.
        removed: spellings the build registers only to reject ("the argument has been removed").
        entries: the help entries in help order (removed ones included, marked by ``removed``).
        label: a name for messages, e.g. ``"llama-server b6765"``.
        build: the build number when ``--version`` reports one (> 0), else ``None``.
        binary: the binary the help came from, when known.
        version_text: what ``--version`` printed (stripped), for display.
    """

    flags: frozenset[str]
    value_flags: frozenset[str]
    removed: frozenset[str]
    entries: tuple[HelpEntry, ...]
    label: str = UNKNOWN_BUILD_LABEL
    build: int | None = None
    binary: str | None = None
    version_text: str = ""
    by_flag: dict[str, HelpEntry] = field(default_factory=dict, repr=False, compare=False, hash=False)

    def accepts(self, flag: str) -> bool:
        """True when this build parses ``flag`` (``--ctx_size`` counts as ``--ctx-size``)."""
        return normalize_flag(flag) in self.flags

    def takes_value(self, flag: str) -> bool:
        return normalize_flag(flag) in self.value_flags

    def entry(self, flag: str) -> HelpEntry | None:
        """The help entry listing ``flag`` (removed entries included), or ``None``."""
        return self.by_flag.get(normalize_flag(flag))

    def uncovered(self, schema: Schema) -> list[HelpEntry]:
        """The build's options that no schema row covers, for "Other flags of this build".

        Print-and-exit actions and removed flags are left out; ``--load-mode`` counts as covered
        (the ``mmap``/``mlock`` columns map onto it).
        """
        covered = {normalize_flag(f) for param in schema for f in param.all_flags}
        covered.update(LOAD_MODE_FLAGS)
        return [
            entry
            for entry in self.entries
            if not entry.removed
            and not entry.is_print_and_exit
            and not any(normalize_flag(f) in covered for f in entry.flags)
        ]


def parse_help(
    help_text: str,
    version_text: str = "",
    *,
    binary: str | None = None,
    label: str | None = None,
) -> Capabilities:
    """Read ``llama-server --help`` (and optionally ``--version``) into :class:`Capabilities`.

    The help prints one entry per option: ``-c,    --ctx-size N`` then the help text from column
    40, or on the following indented lines when the flags are long. Negative forms share the line
    (``--mmap, --no-mmap``); a value hint follows the last flag after one space.

    Args:
        help_text: what ``llama-server --help`` printed.
        version_text: what ``llama-server --version`` printed (for the label), may be empty.
        binary: the binary the text came from.
        label: the label to use when the version text names no build number.
    """
    entries: list[HelpEntry] = []
    section = ""
    current: dict[str, Any] | None = None

    def finish() -> None:
        if current is not None:
            entries.append(
                HelpEntry(
                    flags=tuple(current["flags"]),
                    value_hint=current["hint"],
                    help="\n".join(current["help"]).strip(),
                    section=section,
                )
            )

    for raw_line in help_text.splitlines():
        line = raw_line.rstrip()
        if not line.strip():
            continue
        header = _SECTION_RE.match(line)
        if header:
            finish()
            current = None
            section = header.group(1).removesuffix(" params").strip()
            continue
        if line[0].isspace():
            if current is not None:
                current["help"].append(line.strip())
            continue
        parsed = _parse_option_line(line)
        if parsed is None:
            continue  # a stray line (usage banner, build chatter): not an option
        finish()
        flags, hint, text = parsed
        current = {"flags": flags, "hint": hint, "help": [text] if text else []}
    finish()

    accepted: set[str] = set()
    value_flags: set[str] = set()
    removed: set[str] = set()
    by_flag: dict[str, HelpEntry] = {}
    for entry in entries:
        for flag in entry.flags:
            by_flag.setdefault(flag, entry)
            if entry.removed:
                removed.add(flag)
            else:
                accepted.add(flag)
                if entry.takes_value:
                    value_flags.add(flag)
    removed -= accepted  # a spelling that one entry removes but another still accepts is accepted

    build = build_number(version_text)
    if build is not None:
        label = f"llama-server b{build}"
    elif label is None:
        # a build from source has no build number, but often a version: "version: 0.6.0-dev (build 0, ...)"
        named = re.search(r"version:\s*(\d+\.\d+[\w.+-]*)", version_text)
        if named:
            label = f"llama-server {named.group(1)}"
    return Capabilities(
        flags=frozenset(accepted),
        value_flags=frozenset(value_flags),
        removed=frozenset(removed),
        entries=tuple(entries),
        label=label or UNKNOWN_BUILD_LABEL,
        build=build,
        binary=binary,
        version_text=version_text.strip(),
        by_flag=by_flag,
    )


def _parse_option_line(line: str) -> tuple[list[str], str | None, str] | None:
    """Split ``-c,    --ctx-size N   help...`` into flags, value hint and help text."""
    flags: list[str] = []
    pos = 0
    while True:
        match = _FLAG_RE.match(line, pos)
        if not match:
            return None
        flags.append(match.group(0))
        pos = match.end()
        comma = re.match(r",\s*", line[pos:])
        if comma and _FLAG_RE.match(line, pos + comma.end()):
            pos += comma.end()
            continue
        break
    rest = line[pos:]
    if not rest:
        return flags, None, ""
    if rest.startswith("  "):  # padding before the help column: no value hint
        return flags, None, rest.strip()
    if not rest.startswith(" "):
        return None  # e.g. "-foo," followed by something that is not a flag
    # " HINT" then (optionally) two or more spaces and the help text; hints may hold single spaces
    hint, _, text = rest[1:].partition("  ")
    return flags, hint.strip() or None, text.strip()


def build_number(version_text: str) -> int | None:
    """The build number in ``--version`` output (``version: 6765 (abc123)`` -> 6765), if > 0.

    Builds made from source say ``version: 0 (unknown)`` or ``version: 0.6.0-dev (build 0, ...)``:
    those give ``None``.
    """
    for pattern in (r"version:\s*(\d+)\s*\(", r"\(build\s+(\d+)", r"\bb(\d{3,})\b"):
        match = re.search(pattern, version_text)
        if match and int(match.group(1)) > 0:
            return int(match.group(1))
    return None


# ------------------------------------------------------------------------------------------------
# running a binary

_memory_cache: dict[tuple[str, int, int], tuple[str, str]] = {}
_memory_lock = threading.Lock()


def probe_binary(
    path: str | os.PathLike[str],
    *,
    timeout: float = 20,
    cache_dir: str | os.PathLike[str] | None = None,
    label: str | None = None,
) -> Capabilities:
    """Ask a llama-server binary what it accepts: runs ``BIN --help`` and ``BIN --version``.

    Results are cached per (resolved path, mtime_ns, size), in memory and, with ``cache_dir``, in
    a JSON file there, so a GUI start does not rerun ``--help`` for an unchanged binary.

    Args:
        path: the binary (a bare name such as ``llama-server`` is looked up on ``PATH``).
        timeout: seconds each of the two runs may take.
        cache_dir: a directory for the on-disk cache (created when missing), or ``None``.
        label: the label for messages when ``--version`` names no build number.

    Raises:
        CapabilityError: the file is missing or not executable, exits non-zero without printing
            help, or does not finish within ``timeout``.
    """
    binary = _locate(path)
    stat = binary.stat()
    key = (str(binary), stat.st_mtime_ns, stat.st_size)

    with _memory_lock:
        texts = _memory_cache.get(key)
    if texts is None and cache_dir is not None:
        texts = _read_disk_cache(Path(cache_dir), key)
    if texts is None:
        help_text = _run_for_text(binary, "--help", timeout, required=True)
        version_text = _run_for_text(binary, "--version", timeout, required=False)
        texts = (help_text, version_text)
        if cache_dir is not None:
            _write_disk_cache(Path(cache_dir), key, texts)
    with _memory_lock:
        _memory_cache[key] = texts
    caps = parse_help(texts[0], texts[1], binary=str(binary), label=label)
    if not caps.flags:
        raise CapabilityError(f"{binary} printed no llama-server options for --help")
    return caps


def clear_probe_cache() -> None:
    """Forget the in-memory probe results (tests; a user who replaced a binary in place)."""
    with _memory_lock:
        _memory_cache.clear()


def _locate(path: str | os.PathLike[str]) -> Path:
    text = os.fspath(path)
    candidate = Path(text).expanduser()
    if not candidate.exists() and os.sep not in text and "/" not in text:
        found = shutil.which(text)
        if found:
            candidate = Path(found)
    if not candidate.exists():
        raise CapabilityError(f"llama-server binary not found: {text}")
    if candidate.is_dir():
        raise CapabilityError(f"{text} is a directory, not a llama-server binary")
    if not os.access(candidate, os.X_OK):
        raise CapabilityError(f"{text} is not executable")
    return candidate.resolve()


def _probe_env() -> dict[str, str]:
    # llama-server reads LLAMA_ARG_* before it looks at argv: a bad value there would make even
    # --help fail, so the probe runs without them.
    return {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_ARG_")}


def _run_for_text(binary: Path, option: str, timeout: float, *, required: bool) -> str:
    try:
        result = subprocess.run(  # an argv list, no shell
            [str(binary), option],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            env=_probe_env(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CapabilityError(f"{binary} {option} did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise CapabilityError(f"cannot run {binary}: {exc.strerror or exc}") from None
    stdout = result.stdout.decode("utf-8", errors="replace")
    stderr = result.stderr.decode("utf-8", errors="replace")
    if option == "--help":
        # llama-server prints help on stdout; take whichever stream holds options
        text = next((t for t in (stdout, stderr) if _FLAG_LINE_RE.search(t)), "")
    else:
        text = next((t for t in (stderr, stdout) if t.strip()), "")
    if required and not text:
        detail = (stderr or stdout).strip().splitlines()
        tail = f": {detail[-1]}" if detail else ""
        raise CapabilityError(
            f"{binary} {option} exited with status {result.returncode} without help text{tail}"
        )
    return text


_FLAG_LINE_RE = re.compile(r"^--?[A-Za-z]", re.MULTILINE)


def _cache_key_text(key: tuple[str, int, int]) -> str:
    return f"{key[0]}|{key[1]}|{key[2]}"


def _load_cache_file(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_disk_cache(cache_dir: Path, key: tuple[str, int, int]) -> tuple[str, str] | None:
    record = _load_cache_file(cache_dir / _CACHE_FILE).get(_cache_key_text(key))
    if not isinstance(record, dict):
        return None
    help_text, version_text = record.get("help"), record.get("version", "")
    if not isinstance(help_text, str) or not isinstance(version_text, str):
        return None
    return help_text, version_text


def _write_disk_cache(cache_dir: Path, key: tuple[str, int, int], texts: tuple[str, str]) -> None:
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        file = cache_dir / _CACHE_FILE
        data = _load_cache_file(file)
        # one record per binary path: drop what an older file at the same path left behind
        data = {k: v for k, v in data.items() if k.rsplit("|", 2)[0] != key[0]}
        data[_cache_key_text(key)] = {"help": texts[0], "version": texts[1]}
        tmp = file.with_name(f"{file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, file)
    except OSError:
        pass  # the cache is an optimisation; a read-only data dir must not break probing
