"""Helpers for the text of messages meant for a person: short quotes of input, full disks.

Pure Python (no Qt). The database API, the parameter schema and the CLI use them, so that a
10 KB value is never repeated in full in an error, and a full disk reads as a full disk.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any

#: The longest quote of a value in a message, in characters (the repr, with its quotes).
QUOTE_LIMIT = 80
#: Below this many free bytes, an I/O failure of the database is taken to be a full disk: SQLite
#: needs room for its write-ahead log and shared-memory index, a page at a time.
LOW_SPACE_BYTES = 1024 * 1024


def short_repr(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)``, cut to about ``limit`` characters with the length of the whole said.

    ``short_repr("x" * 10_000)`` is ``'xxxx…xx' (10000 characters)``: enough to recognise the
    value, never a screenful of it.
    """
    whole = value
    # the repr of 50 MB would only be cut again: cut the value first
    if isinstance(value, str) and len(value) > 4 * limit:
        value = "".join((value[: 2 * limit], value[-limit:]))
    elif isinstance(value, bytes) and len(value) > 4 * limit:
        value = b"".join((value[: 2 * limit], value[-limit:]))
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    if len(text) <= limit:
        return text
    keep = max(limit - 12, 8)
    head, tail = text[: keep - keep // 4], text[-(keep // 4) :]
    size = f"{len(whole)} characters" if isinstance(whole, (str, bytes)) else f"{len(text)} characters shown"
    return f"{head}…{tail} ({size})"


def shorten(text: str, limit: int = 400) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was (for text already in a message)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def format_size(size: int | None) -> str:
    """Bytes as people read them: ``512 B``, ``1.5 KiB``, ``4.37 GiB``; ``n/a`` for ``None``."""
    if size is None:
        return "n/a"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def free_bytes(path: str | os.PathLike[str]) -> int | None:
    """Free bytes on the disk holding ``path`` (its nearest existing folder), or None when unknown."""
    here = Path(path)
    for candidate in (here, *here.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def disk_full_text(folder: str | os.PathLike[str]) -> str:
    """``the disk holding /data is full (12.0 KiB free)``: the reason, for any message."""
    free = free_bytes(folder)
    amount = "free space unknown" if free is None else f"{format_size(free)} free"
    return f"the disk holding {folder} is full ({amount})"


def is_no_space(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from or during) is "no space left on device"."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        current = current.__cause__ or current.__context__
    return False
