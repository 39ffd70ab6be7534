"""The model library's pure logic: what a GGUF file is, what a models directory holds, names.

Everything here reads only GGUF *headers* (metadata and tensor descriptions, a few kilobytes to a
few megabytes for the vocabulary), never the tensor data, so looking at a 30 GB model is cheap.

* :func:`read_model_info` -> :class:`ModelInfo`: architecture (the library's ``type``), name,
  parameter count, quantization, trained context length and size on disk of all parts.
* :func:`scan_directory` -> :class:`ScanResult`: the models and multimodal projectors below a
  directory; ``x-00001-of-00003.gguf`` .. ``x-00003-of-00003.gguf`` are one model, ``mmproj*``
  files are projectors.
* :func:`parse_hf_spec`: ``user/model[:quant]`` -> the ``hf_repo`` value llama-server's ``-hf`` takes.
* :func:`unique_name`: ``"name"`` -> ``"name (copy)"`` -> ``"name (copy 2)"`` for duplicates.
* The pieces of the library's rules: :func:`model_file_refusal` (what cannot be added),
  :func:`entry_of_file` (which entry has a file already), :func:`next_free_port` and
  :func:`add_model` (a port no entry uses, chosen and saved in one transaction),
  :func:`config_from_command_line` (a pasted line with absolute paths), :func:`merge_custom_params`.

The operations that put these rules together (add, scan, duplicate, rename, delete, set, import),
for the window and the CLI alike, are :class:`llamadash.core.library_service.Library`'s; front ends
call that, not these pieces.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from typing import Any, Literal, Protocol

from llamadash.core import gguf_info
from llamadash.core.gguf_info import GGUFError
from llamadash.core.messages import format_size
from llamadash.core.params import COLUMN, SOURCE_COLUMNS, load_schema, parse_command_line
from llamadash.core.remote import REMOTE_URL

#: The ``type`` stored for a model whose architecture is not known (yet): an HF repo, a URL.
UNKNOWN_TYPE = "unknown"
#: The status a newly added model gets.
NEW_MODEL_STATUS = "stopped"
#: Columns a duplicate must not copy: the database assigns or stamps them.
_NOT_COPIED = ("id", "created_at", "updated_at")

_SPLIT_RE = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_HF_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?"
_HF_SPEC_RE = re.compile(rf"^(?P<user>{_HF_NAME})/(?P<model>{_HF_NAME})(?::(?P<quant>[A-Za-z0-9_.+-]+))?$")
_HF_URL_PREFIXES = ("https://huggingface.co/", "http://huggingface.co/", "huggingface.co/", "hf.co/")
_SIZE_LABEL_RE = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?P<unit>[KMBT])$", re.IGNORECASE)
_COPY_RE = re.compile(r"^(?P<base>.*) \(copy(?: (?P<number>\d+))?\)$")

#: ``general.file_type`` (llama.h ``llama_ftype``) -> the quantization name people use.
FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
    39: "NVFP4",
    40: "Q1_0",
}
#: Approximate bits per weight of whole files of each type (the quantized tensors plus the f32/f16
#: ones kept alongside), for estimating a parameter count from the file size when neither the
#: tensor table nor a size label can be used. Rough figures: an estimate is labelled as one.
_BITS_PER_WEIGHT: dict[int, float] = {
    0: 32.0,
    1: 16.0,
    32: 16.0,
    2: 4.5,
    3: 5.0,
    7: 8.5,
    8: 5.5,
    9: 6.0,
    10: 2.96,
    11: 3.5,
    12: 3.91,
    13: 4.27,
    14: 4.58,
    15: 4.89,
    16: 5.54,
    17: 5.7,
    18: 6.56,
    19: 2.06,
    20: 2.31,
    21: 2.96,
    22: 3.3,
    23: 3.06,
    24: 1.56,
    25: 4.5,
    26: 3.44,
    27: 3.66,
    28: 2.5,
    29: 2.7,
    30: 4.25,
    31: 1.75,
    36: 1.69,
    37: 2.06,
    38: 4.25,
}

ParameterSource = Literal["tensors", "size_label", "estimate"]


@dataclass(frozen=True)
class ModelInfo:
    """What the header(s) of one GGUF model (all its parts) say.

    Attributes:
        path: the file llama-server is given (the first part of a split model).
        parts: every part found on disk, in order (one item for a single-file model).
        expected_parts: how many parts the file names announce (1 for a single file).
        architecture: ``general.architecture`` (``llama``, ``qwen3``, ``clip``...), the library's
            ``type``; ``None`` when the header could not be read.
        name: ``general.name``, if the file has one.
        parameter_count: the number of weights, or ``None`` when unknown.
        parameter_source: how ``parameter_count`` was found: ``"tensors"`` (summed from the tensor
            shapes in the headers: exact), ``"size_label"`` (``general.size_label``, e.g. ``8B``)
            or ``"estimate"`` (file size divided by the file type's typical bits per weight).
        size_label: ``general.size_label`` as written (``8B``, ``8x7B``), if any.
        file_type: ``general.file_type`` (llama.cpp's ``llama_ftype``), if any.
        context_length: ``<architecture>.context_length``, the context the model was trained with.
        size_bytes: the size on disk of all parts found.
        is_projector: a multimodal projector (``mmproj*`` file name or ``clip`` architecture).
        metadata: the first part's key/value metadata (arrays left out as ``None``).
        error: why the header could not be read, or ``None``.
    """

    path: Path
    parts: tuple[Path, ...]
    expected_parts: int = 1
    architecture: str | None = None
    name: str | None = None
    parameter_count: int | None = None
    parameter_source: ParameterSource | None = None
    size_label: str | None = None
    file_type: int | None = None
    context_length: int | None = None
    size_bytes: int = 0
    is_projector: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    error: str | None = None

    @property
    def quantization(self) -> str | None:
        """``Q4_K_M``, ``F16``... from ``general.file_type``, or ``None`` when the file has none."""
        if self.file_type is None:
            return None
        return FILE_TYPES.get(self.file_type, f"type {self.file_type}")

    @property
    def missing_parts(self) -> tuple[int, ...]:
        """1-based numbers of announced parts that are not on disk (a download still running?)."""
        if self.expected_parts <= 1:
            return ()
        present = {part[1] for part in map(split_part, self.parts) if part is not None}
        return tuple(i for i in range(1, self.expected_parts + 1) if i not in present)

    @property
    def display_name(self) -> str:
        """A name for a new library entry: ``general.name``, else the file name without parts."""
        if self.name and self.name.strip():
            return self.name.strip()
        return model_stem(self.path)

    def summary(self) -> list[tuple[str, str]]:
        """(label, text) rows for showing the model; unknown values read ``n/a``."""
        rows = [
            ("Architecture", self.architecture or "n/a"),
            ("Name", self.name or "n/a"),
            ("Parameters", describe_parameters(self)),
            ("Quantization", self.quantization or "n/a"),
            ("Trained context", f"{self.context_length:,} tokens" if self.context_length else "n/a"),
            ("Size on disk", format_size(self.size_bytes)),
        ]
        if self.expected_parts > 1:
            text = f"{len(self.parts)} of {self.expected_parts}"
            if self.missing_parts:
                text += " (missing: " + ", ".join(str(i) for i in self.missing_parts) + ")"
            rows.append(("Parts", text))
        rows.append(("File", str(self.path)))
        if self.error:
            rows.append(("Problem", self.error))
        return rows


@dataclass(frozen=True)
class ScanResult:
    """What :func:`scan_directory` found.

    Attributes:
        models: one :class:`ModelInfo` per model (split models once), sorted by path.
        projectors: the multimodal projector files (``mmproj*``), sorted by path.
        problems: files that could not be read, as ``"path: reason"`` lines.
    """

    models: list[ModelInfo]
    projectors: list[ModelInfo]
    problems: list[str]


@dataclass(frozen=True)
class HFSpec:
    """A Hugging Face model spec as llama-server's ``-hf`` takes it: ``user/model[:quant]``."""

    user: str
    model: str
    quant: str | None = None

    @property
    def repo(self) -> str:
        return f"{self.user}/{self.model}"

    @property
    def hf_repo(self) -> str:
        """The value of the ``hf_repo`` column (``-hf``): the repo with ``:quant`` when given."""
        return f"{self.repo}:{self.quant}" if self.quant else self.repo

    @property
    def suggested_name(self) -> str:
        """``Qwen3-8B-GGUF:Q4_K_M`` -> ``Qwen3-8B-Q4_K_M``: a library name for the entry."""
        base = re.sub(r"[-_.]GGUF$", "", self.model, flags=re.IGNORECASE)
        return f"{base}-{self.quant}" if self.quant else base


# ------------------------------------------------------------------------------------------------
# file names


def split_part(path: str | os.PathLike[str]) -> tuple[str, int, int] | None:
    """``x-00002-of-00005.gguf`` -> ``("x", 2, 5)``; ``None`` for a file that is not a part."""
    match = _SPLIT_RE.match(Path(path).name)
    if not match:
        return None
    index, count = int(match.group("index")), int(match.group("count"))
    if count < 1 or not 1 <= index <= count:
        return None
    return match.group("stem"), index, count


def model_stem(path: str | os.PathLike[str]) -> str:
    """The file name without ``.gguf`` and without the ``-0000i-of-0000N`` part suffix."""
    part = split_part(path)
    if part is not None:
        return part[0]
    name = Path(path).name
    return name[:-5] if name.lower().endswith(".gguf") else name


def is_projector_file(path: str | os.PathLike[str]) -> bool:
    """``mmproj*.gguf`` (any case): llama.cpp's name for multimodal projector files."""
    return Path(path).name.lower().startswith("mmproj")


def find_parts(path: str | os.PathLike[str]) -> tuple[tuple[Path, ...], int]:
    """Every part of the model ``path`` belongs to, and how many parts its name announces.

    Any part may be given; the result starts with part 1 when it is on disk.
    """
    path = Path(path)
    match = _SPLIT_RE.match(path.name)
    if match is None or split_part(path) is None:
        return (path,), 1
    stem, count = match.group("stem"), int(match.group("count"))
    width = len(match.group("count"))
    parts = []
    for index in range(1, count + 1):
        candidate = path.with_name(f"{stem}-{index:0{width}d}-of-{count:0{width}d}{path.suffix}")
        if candidate.exists():
            parts.append(candidate)
    return tuple(parts) or (path,), count


# ------------------------------------------------------------------------------------------------
# headers


def _read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The key/value metadata and the number of weights described by the tensor table."""
    header = gguf_info.read_header(path, count_weights=True)
    return header.metadata, header.weight_count or 0


def parse_size_label(label: str) -> int | None:
    """``8B`` -> 8_000_000_000, ``135M`` -> 135_000_000; ``None`` for ``8x7B``-style labels.

    Mixture-of-experts labels (``8x7B``, ``30B-A3B``) do not name the total, so only a plain
    number with a unit counts; for ``30B-A3B`` the first part (the total) is used.
    """
    first = label.strip().split("-")[0]
    match = _SIZE_LABEL_RE.match(first)
    if not match:
        return None
    scale = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[match.group("unit").upper()]
    return round(float(match.group("number")) * scale)


def estimate_parameters(size_bytes: int, file_type: int | None) -> int | None:
    """Weights estimated from the file size and the file type's typical bits per weight."""
    bits = _BITS_PER_WEIGHT.get(file_type) if file_type is not None else None
    if not bits or size_bytes <= 0:
        return None
    return round(size_bytes * 8 / bits)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_model_info(path: str | os.PathLike[str]) -> ModelInfo:
    """Read the GGUF header(s) of the model at ``path`` (any part of a split model).

    Never raises for an unreadable file: the result carries ``error`` and what the file system
    knows (parts, size). The parameter count comes from the tensor tables of all parts when they
    can be read, else from ``general.size_label``, else it is estimated from size and file type.
    """
    parts, expected = find_parts(path)
    first = parts[0]
    size = 0
    for part in parts:
        with suppress(OSError):
            size += part.stat().st_size
    projector = is_projector_file(first)
    try:
        metadata, weights = _read_header(first)
    except (OSError, GGUFError) as exc:
        return ModelInfo(
            path=first,
            parts=parts,
            expected_parts=expected,
            size_bytes=size,
            is_projector=projector,
            error=getattr(exc, "strerror", None) or str(exc),
        )

    counted: int | None = weights
    for part in parts[1:]:
        try:
            counted = (counted or 0) + _read_header(part)[1]
        except (OSError, GGUFError):
            counted = None  # one unreadable part: the sum would be wrong
            break
    if len(parts) < expected:
        counted = None  # parts missing: the tensor sum would be too small

    architecture = metadata.get("general.architecture")
    architecture = architecture if isinstance(architecture, str) and architecture else None
    label = metadata.get("general.size_label")
    label = label if isinstance(label, str) and label.strip() else None
    file_type = _int_or_none(metadata.get("general.file_type"))

    count: int | None = None
    source: ParameterSource | None = None
    if counted:
        count, source = counted, "tensors"
    elif label and parse_size_label(label):
        count, source = parse_size_label(label), "size_label"
    elif (estimate := estimate_parameters(size, file_type)) is not None:
        count, source = estimate, "estimate"

    name = metadata.get("general.name")
    return ModelInfo(
        path=first,
        parts=parts,
        expected_parts=expected,
        architecture=architecture,
        name=name if isinstance(name, str) and name.strip() else None,
        parameter_count=count,
        parameter_source=source,
        size_label=label,
        file_type=file_type,
        context_length=_int_or_none(metadata.get(f"{architecture}.context_length")) if architecture else None,
        size_bytes=size,
        is_projector=projector or architecture == "clip" or metadata.get("general.type") == "mmproj",
        metadata=metadata,
    )


# ------------------------------------------------------------------------------------------------
# directories


def scan_directory(directory: str | os.PathLike[str], *, recursive: bool = True) -> ScanResult:
    """Find the models and projectors below ``directory``.

    Split models are returned once (by their first part, or the lowest part present); parts of
    one model found in different directories are different models. Hidden directories are
    skipped (llama.cpp's and Hugging Face's caches keep partial downloads there).

    Raises:
        NotADirectoryError: ``directory`` is not a directory.
    """
    root = Path(directory)
    if not root.is_dir():
        raise NotADirectoryError(f"not a directory: {root}")
    files: list[Path] = []
    if recursive:
        for current, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            files += [Path(current) / n for n in names if n.lower().endswith(".gguf")]
    else:
        files = [p for p in root.iterdir() if p.is_file() and p.name.lower().endswith(".gguf")]

    seen: set[tuple[Path, str, int]] = set()
    models: list[ModelInfo] = []
    projectors: list[ModelInfo] = []
    problems: list[str] = []
    for file in sorted(files):
        part = split_part(file)
        if part is not None:
            key = (file.parent, part[0], part[2])
            if key in seen:
                continue
            seen.add(key)
        info = read_model_info(file)
        if info.error:
            problems.append(f"{file}: {info.error}")
            continue
        (projectors if info.is_projector else models).append(info)
    return ScanResult(models=models, projectors=projectors, problems=problems)


def projector_for(model: ModelInfo, projectors: Iterable[ModelInfo]) -> ModelInfo | None:
    """The projector to offer with ``model``: the only one in its directory, or ``None``.

    Hugging Face repos keep one ``mmproj-*.gguf`` next to the quantizations of a model; with
    several in one directory the choice is the user's.
    """
    here = [p for p in projectors if p.path.parent == model.path.parent]
    return here[0] if len(here) == 1 else None


# ------------------------------------------------------------------------------------------------
# specs and names


def parse_hf_spec(text: str) -> HFSpec:
    """Read ``user/model[:quant]`` (or a ``https://huggingface.co/user/model`` address).

    Raises:
        ValueError: the text is not such a spec; the message says what is expected.
    """
    spec = text.strip()
    for prefix in _HF_URL_PREFIXES:
        if spec.lower().startswith(prefix):
            rest = spec[len(prefix) :].strip("/")
            user_model = "/".join(rest.split("/")[:2])  # drop /tree/main, /blob/... suffixes
            spec = user_model
            break
    match = _HF_SPEC_RE.match(spec)
    if not match:
        raise ValueError(
            f"expected a Hugging Face repo as user/model or user/model:quant "
            f"(e.g. ggml-org/gemma-3-1b-it-GGUF:Q4_K_M), got {text.strip()!r}"
        )
    return HFSpec(match.group("user"), match.group("model"), match.group("quant"))


def unique_name(name: str, existing: Iterable[str], *, copy: bool = False) -> str:
    """``name`` if free, else ``name (copy)``, ``name (copy 2)``... (``copy``: never ``name`` itself).

    A name that already ends in ``(copy N)`` counts on from there instead of stacking suffixes.
    """
    taken = {n.strip() for n in existing}
    base = name.strip()
    if not copy and base not in taken:
        return base
    match = _COPY_RE.match(base)
    if match:
        base = match.group("base")
    candidate = f"{base} (copy)"
    number = 2
    while candidate in taken:
        candidate = f"{base} (copy {number})"
        number += 1
    return candidate


#: llama-server's own default port (the schema's ``port`` default).
LLAMA_SERVER_DEFAULT_PORT: int = int(load_schema()[COLUMN.port].default)


class ModelStore(Protocol):
    """Where new entries go: :mod:`llamadash.core.database` satisfies it."""

    def get_models(self) -> list[dict[str, Any]]: ...

    def save_model(self, model: Mapping[str, Any]) -> int: ...

    def transaction(self) -> AbstractContextManager[None]: ...


def configured_port(model: Mapping[str, Any]) -> int | None:
    """The port llama-server will listen on for this entry: the stored one, 8080 when none is.

    ``None`` when the stored value is not a port (a row written by another program, such as
    ``'abc'`` or ``0``): llamadash does not start such a model; the value is reported instead.
    A remote server's is the one in its URL (where it answers, on its own machine).
    """
    if model.get(REMOTE_URL):
        try:
            parts = urlsplit(str(model[REMOTE_URL]))
            return parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return None
    port = model.get(COLUMN.port)
    if port is None:
        return LLAMA_SERVER_DEFAULT_PORT
    if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
        return port
    return None


def next_free_port(models: Iterable[Mapping[str, Any]], start: int = LLAMA_SERVER_DEFAULT_PORT) -> int:
    """The lowest port from ``start`` that no library entry uses (one without a port uses 8080).

    New entries get one, so that several models can run at once without editing each port. A
    stored value that is not a port takes none.
    """
    # a remote server's port is on its own machine: it takes none here
    taken = {port for m in models if not m.get(REMOTE_URL) and (port := configured_port(m)) is not None}
    port = start
    while port in taken and port < 65535:
        port += 1
    return port


def add_model(store: ModelStore, model: Mapping[str, Any], *, new_port: bool = False) -> int:
    """Save a new library entry; returns its id.

    An entry without a port (or, with ``new_port``, any entry: a duplicate) gets the lowest port
    no other entry uses. Choosing it and saving the entry are one write transaction, so two
    processes adding models at the same moment never get the same port.

    Raises:
        DatabaseError: what ``store.save_model`` refuses (a name taken, a wrong value, a full disk).
    """
    with store.transaction():
        if new_port or not model.get(COLUMN.port):
            model = {**model, COLUMN.port: next_free_port(store.get_models())}
        return store.save_model(model)


def absolute_path(path: str | os.PathLike[str]) -> Path:
    """``~`` expanded and made absolute from the working directory, symbolic links kept (a Hugging
    Face cache's snapshot links keep their file names): how the library stores a path it is given."""
    return Path(os.path.abspath(Path(path).expanduser()))


def config_from_command_line(text: str) -> dict[str, Any]:
    """The configuration of a pasted ``llama-server ...`` line, with its file and folder paths absolute.

    A relative path in a pasted line means "from where I am now", which is not where llamadash
    starts llama-server from later; the window and the CLI both add pasted lines through here.

    Raises:
        CommandLineError: the line cannot be read; the message says why.
    """
    config = parse_command_line(text)
    schema = load_schema()

    def absolute(value: Any) -> Any:
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            return str(absolute_path(value))
        return value

    for column, value in config.items():
        if column in schema and schema[column].kind in ("file", "dir"):
            config[column] = [absolute(v) for v in value] if isinstance(value, list) else absolute(value)
    return config


def model_file_refusal(info: ModelInfo) -> str | None:
    """Why a file cannot be added as a model (not GGUF, a projector, parts missing), or None."""
    if info.error:
        return info.error
    if info.is_projector:
        return "a multimodal projector, not a model; choose it as the mmproj of a model"
    if info.missing_parts:
        missing = ", ".join(str(i) for i in info.missing_parts)
        return f"part(s) {missing} of {info.expected_parts} are missing"
    return None


def entry_of_file(info: ModelInfo, models: Iterable[Mapping[str, Any]]) -> str | None:
    """The name of the library entry that already serves the model file ``info`` describes, if any."""
    wanted = {_resolved(part) for part in (info.path, *info.parts)}
    for model in models:
        path = model.get(COLUMN.model_path)
        if isinstance(path, str) and path and _resolved(Path(path).expanduser()) in wanted:
            return str(model.get("name"))
    return None


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def merge_custom_params(stored: Any, before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """Apply one edit of custom flags (``before`` -> ``after``) to what is stored now.

    The window's editor holds the flags it loaded; another process (``models set NAME --flag=1``)
    may have changed the stored ones since. Only what the edit changed is applied: flags it took
    out are removed, flags it set or changed are set, and every other stored flag stays. A stored
    list of argv strings (not a dict) cannot be merged by flag: the edit's flags are taken.
    """
    if not isinstance(stored, Mapping):
        return dict(after)
    merged = dict(stored)
    for flag in before:
        if flag not in after:
            merged.pop(flag, None)
    for flag, value in after.items():
        if flag not in before or before[flag] != value:
            merged[flag] = value
    return merged


def new_model_from_file(
    info: ModelInfo, existing_names: Iterable[str], projector: Path | None = None
) -> dict[str, Any]:
    """The library entry for a GGUF file: name, ``type`` from its architecture, ``model_path``."""
    model: dict[str, Any] = {
        "name": unique_name(info.display_name, existing_names),
        "type": info.architecture or UNKNOWN_TYPE,
        "status": NEW_MODEL_STATUS,
        COLUMN.model_path: str(info.path),
    }
    if projector is not None:
        model[COLUMN.mmproj] = str(projector)
    return model


def new_model_from_hf(spec: HFSpec, existing_names: Iterable[str], name: str | None = None) -> dict[str, Any]:
    """The library entry for a Hugging Face spec (llama-server downloads the file itself)."""
    return {
        "name": unique_name(name or spec.suggested_name, existing_names),
        "type": UNKNOWN_TYPE,  # the architecture is known only once the file is downloaded
        "status": NEW_MODEL_STATUS,
        COLUMN.hf_repo: spec.hf_repo,
    }


def duplicate_model(model: Mapping[str, Any], existing_names: Iterable[str]) -> dict[str, Any]:
    """A copy of a library entry for :func:`save_model`: new name, stopped, no id or timestamps."""
    copy = {k: v for k, v in model.items() if k not in _NOT_COPIED and v is not None}
    copy["name"] = unique_name(str(model.get("name", "model")), existing_names, copy=True)
    copy["status"] = NEW_MODEL_STATUS
    if isinstance(copy.get("custom_params"), dict):
        copy["custom_params"] = dict(copy["custom_params"])
    return copy


def model_source(model: Mapping[str, Any]) -> tuple[str, str] | None:
    """Where a library entry's weights come from: ``("model_path", "/m/x.gguf")``, ... or ``None``.

    A remote server's is its address: ``("remote_url", "http://gpu-box:8080")``.
    """
    if model.get(REMOTE_URL):
        return REMOTE_URL, str(model[REMOTE_URL])
    for column in SOURCE_COLUMNS:
        value = model.get(column)
        if value:
            return column, str(value)
    return None


# ------------------------------------------------------------------------------------------------
# display


def format_count(count: int | None) -> str:
    """``8_030_261_248`` -> ``8.03 B``; ``135_000`` -> ``135 K``; ``n/a`` for ``None``."""
    if count is None:
        return "n/a"
    for scale, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return str(count)


def describe_parameters(info: ModelInfo) -> str:
    """The parameter count and how it was found, e.g. ``8.03 B (counted from the tensors)``."""
    if info.parameter_count is None:
        return "n/a"
    how = {
        "tensors": "counted from the tensor shapes",
        "size_label": f"from the size label {info.size_label}",
        "estimate": "estimated from the file size and quantization",
    }[info.parameter_source or "estimate"]
    return f"{format_count(info.parameter_count)} ({how})"
