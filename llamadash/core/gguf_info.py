"""Reading a GGUF file's metadata header without reading its tensors.

Only the key/value section at the start of the file is read, so a 30 GB model costs a few
kilobytes of I/O. Arrays (the tokenizer's vocabulary) are skipped, not loaded.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

GGUF_MAGIC = b"GGUF"
_SCALARS = {  # GGUF value type -> struct format
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
_MAX_KV = 100_000
_MAX_STRING = 64 * 1024 * 1024


class GGUFError(ValueError):
    """The file is not a readable GGUF model."""


@dataclass(frozen=True)
class GGUFHeader:
    """What a GGUF header says: its key/value metadata and (when counted) the number of weights."""

    metadata: dict[str, Any]
    weight_count: int | None = None


_LENGTH = struct.Struct("<Q")  # a string's length


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
        if item_type == _STRING and not keep_arrays:  # a vocabulary: skipped, not decoded (~3x faster)
            for _ in range(count):
                length = _LENGTH.unpack(_read(stream, 8))[0]
                if length > _MAX_STRING:
                    raise GGUFError("a GGUF string is implausibly long (corrupt header?)")
                stream.seek(length, 1)
            return None
        items = [_read_value(stream, item_type, keep_arrays) for _ in range(count)]
        return items if keep_arrays else None
    raise GGUFError(f"unknown GGUF value type {vtype} (corrupt header?)")


def _count_weights(stream: BinaryIO, tensor_count: int) -> int:
    """Sum the element counts of the tensor table (name, shape, type, offset per tensor)."""
    total = 0
    for _ in range(tensor_count):
        _read_string(stream)  # name
        n_dims = _unpack(stream, "<I")
        if n_dims > 8:  # GGML_MAX_DIMS is 4; anything far above is a damaged header
            raise GGUFError(f"a tensor claims {n_dims} dimensions (corrupt header?)")
        dims = [_unpack(stream, "<Q") for _ in range(n_dims)]
        _unpack(stream, "<I")  # type
        _unpack(stream, "<Q")  # offset
        total += math.prod(dims)
    return total


def read_header(path: str | Path, *, keep_arrays: bool = False, count_weights: bool = False) -> GGUFHeader:
    """Read a GGUF file's key/value metadata and, if asked, count the weights its tensor table lists.

    The tensor table follows the key/value section and holds each tensor's shape, so the weights are
    counted without reading them.

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
        weights = _count_weights(stream, tensor_count) if count_weights else None
    return GGUFHeader(metadata, weights)


def read_metadata(path: str | Path, *, keep_arrays: bool = False) -> dict[str, Any]:
    """Return the GGUF key/value metadata of ``path`` (arrays as ``None`` unless ``keep_arrays``).

    Raises:
        GGUFError: the file is not GGUF or its header is damaged.
        OSError: the file cannot be read.
    """
    return read_header(path, keep_arrays=keep_arrays).metadata


def model_type(path: str | Path) -> str | None:
    """The model's architecture (``general.architecture``, e.g. ``llama``), or None if unreadable."""
    try:
        value = read_metadata(path).get("general.architecture")
    except (OSError, GGUFError):
        return None
    return value if isinstance(value, str) and value else None
