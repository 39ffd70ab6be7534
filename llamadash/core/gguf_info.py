"""Reading a GGUF file's metadata header without reading its tensors.

Only the key/value section at the start of the file is read, so a 30 GB model costs a few
kilobytes of I/O. Arrays (the tokenizer's vocabulary) are skipped, not loaded.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

GGUF_MAGIC = b"GGUF"
_SCALARS = {  # GGUF value type -> struct format
    0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d",
}
_STRING, _ARRAY = 8, 9
_MAX_KV = 100_000
_MAX_STRING = 64 * 1024 * 1024


class GGUFError(ValueError):
    """The file is not a readable GGUF model."""


def _read(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise GGUFError("the file ends inside its GGUF header (truncated?)")
    return data


def _unpack(stream: BinaryIO, fmt: str) -> Any:
    return struct.unpack(fmt, _read(stream, struct.calcsize(fmt)))[0]


def _read_string(stream: BinaryIO) -> str:
    length = _unpack(stream, "<Q")
    if length > _MAX_STRING:
        raise GGUFError("a GGUF string is implausibly long (corrupt header?)")
    return _read(stream, length).decode("utf-8", errors="replace")


def _read_value(stream: BinaryIO, vtype: int, keep_arrays: bool) -> Any:
    if vtype in _SCALARS:
        return _unpack(stream, _SCALARS[vtype])
    if vtype == _STRING:
        return _read_string(stream)
    if vtype == _ARRAY:
        item_type = _unpack(stream, "<I")
        count = _unpack(stream, "<Q")
        if item_type in _SCALARS and not keep_arrays:
            stream.seek(struct.calcsize(_SCALARS[item_type]) * count, 1)
            return None
        items = [_read_value(stream, item_type, keep_arrays) for _ in range(count)]
        return items if keep_arrays else None
    raise GGUFError(f"unknown GGUF value type {vtype} (corrupt header?)")


def read_metadata(path: str | Path, *, keep_arrays: bool = False) -> dict[str, Any]:
    """Return the GGUF key/value metadata of ``path`` (arrays as ``None`` unless ``keep_arrays``).

    Raises:
        GGUFError: the file is not GGUF or its header is damaged.
        OSError: the file cannot be read.
    """
    with open(path, "rb") as stream:
        if stream.read(4) != GGUF_MAGIC:
            raise GGUFError(f"{path} is not a GGUF file")
        version = _unpack(stream, "<I")
        if version < 2:
            raise GGUFError(f"{path} uses GGUF version {version}, which is too old")
        tensor_count = _unpack(stream, "<Q")
        kv_count = _unpack(stream, "<Q")
        if kv_count > _MAX_KV:
            raise GGUFError(f"{path} claims {kv_count} metadata entries (corrupt header?)")
        metadata: dict[str, Any] = {"GGUF.version": version, "GGUF.tensor_count": tensor_count}
        for _ in range(kv_count):
            key = _read_string(stream)
            vtype = _unpack(stream, "<I")
            metadata[key] = _read_value(stream, vtype, keep_arrays)
    return metadata


def model_type(path: str | Path) -> str | None:
    """The model's architecture (``general.architecture``, e.g. ``llama``), or None if unreadable."""
    try:
        value = read_metadata(path).get("general.architecture")
    except (OSError, GGUFError):
        return None
    return value if isinstance(value, str) and value else None
