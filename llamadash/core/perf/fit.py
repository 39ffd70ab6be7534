"""Will it fit? What ``llama-fit-params`` decides for a configuration, and what ``--fit`` chose at launch.

llama.cpp answers the question itself: ``llama-fit-params`` takes llama-server's common flags,
measures the model against the free memory of each device (no weights are loaded) and prints the
arguments it would adjust (``-c 8192 -ngl -1``); with ``--fit-print on`` it prints the memory each
device needs (model, context, compute, in MiB). llama-server logs the same fitting steps when it
starts with ``--fit on`` (its default). Nothing here estimates memory: these are parsers of what
the tools print, and the command that asks them.

Parsing is defensive: the wording changes between builds (``cannot fulfill margin`` became
``cannot meet free memory target``), so each line is matched on its message, not on the function
name before it, and a figure no line gave is ``None`` (shown as "not reported"), never a guess.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llamadash.core.params import COLUMN, Capabilities, CommandError, build_command, load_schema
from llamadash.core.params.command import normalize_config, unsupported_message

__all__ = [
    "FIT_PRINT_FLAG",
    "NO_WORKERS_NOTE",
    "DeviceMemory",
    "DevicePlacement",
    "FitCommand",
    "FitError",
    "FitReport",
    "MemoryBreakdownRow",
    "RpcDevice",
    "apply_exit",
    "fit_command",
    "gib",
    "parse_fit_output",
    "parse_fit_print",
]

#: The flag that makes ``llama-fit-params`` print the memory per device instead of arguments.
FIT_PRINT_FLAG = "--fit-print"
MIB_PER_GIB = 1024
NOT_REPORTED = "not reported"
#: What the fit says when the tool cannot take the model's ``--rpc`` list.
NO_WORKERS_NOTE = "workers not taken into account by this build (its llama-fit-params has no --rpc)"
#: What a fit measured against: the GPUs' own memory, or system memory (CPU only).
GPU_MEMORY = "gpu"
SYSTEM_MEMORY = "system"
#: The name of the system-memory row in ``--fit-print`` and the breakdown table (lower case).
HOST_ROW = "Host".lower()


class FitError(ValueError):
    """The configuration cannot be checked (no model file, a value llama-server would refuse)."""


def gib(mib: int | None) -> str:
    """``3174`` -> ``"3.1 GiB"``; ``None`` -> ``"not reported"``."""
    if mib is None:
        return NOT_REPORTED
    return f"{mib / MIB_PER_GIB:.1f} GiB"


# ------------------------------------------------------------------------------------------------
# the command


@dataclass(frozen=True)
class FitCommand:
    """The ``llama-fit-params`` argv for a configuration.

    Attributes:
        argv: the command (argv[0] is the tool).
        env: what goes into its environment (nothing secret: no fit row is a secret).
        passed: the columns that went on the command line.
        not_passed: ``(column, why)`` for set rows that matter to memory but the tool does not take.
    """

    argv: list[str]
    env: dict[str, str]
    passed: tuple[str, ...]
    not_passed: tuple[tuple[str, str], ...] = ()


def fit_rows() -> tuple[str, ...]:
    """The columns that go to llama-fit-params (the schema's ``fit_params`` rows)."""
    return tuple(p.column for p in load_schema() if p.fit_params)


def fit_command(
    config: Mapping[str, Any],
    capabilities: Capabilities | None,
    tool: str,
    *,
    extra: Sequence[str] = (),
) -> FitCommand:
    """The ``llama-fit-params`` command for ``config`` (a ``models`` row).

    Args:
        config: the model's configuration.
        capabilities: what the tool accepts (from its own ``--help``; the same format as
            llama-server's), or ``None`` to assume the schema's spellings.
        tool: the llama-fit-params binary.
        extra: arguments added at the end (``--fit-print on``, fitted arguments).

    Raises:
        FitError: the model has no file, or a value cannot go on a command line.
    """
    try:
        values = normalize_config(config)
    except CommandError as exc:
        raise FitError(str(exc)) from None
    if not values.get(COLUMN.model_path):
        raise FitError(
            "checking the fit needs the model's file (model_path): llama-fit-params reads the "
            "model from disk and downloads nothing"
        )
    schema = load_schema()
    chosen: dict[str, Any] = {}
    not_passed: list[tuple[str, str]] = []
    for column, value in values.items():
        if column == "custom_params":
            continue
        param = schema[column]
        if not param.fit_params:
            continue
        problem = unsupported_message(param, capabilities, value)
        if problem:
            not_passed.append((column, problem.replace("llama-server", "llama-fit-params", 1)))
            continue
        chosen[column] = value
    try:
        argv, env = build_command(chosen, capabilities, binary=tool)
    except CommandError as exc:
        raise FitError(str(exc)) from None
    return FitCommand(argv + list(extra), env, tuple(chosen), tuple(not_passed))


# ------------------------------------------------------------------------------------------------
# what it prints


@dataclass(frozen=True)
class DeviceMemory:
    """The memory one device needs, from ``--fit-print on`` (MiB; ``None``: not reported).

    ``free``/``total`` come from the fitting log's projection lines when a build prints them.
    """

    name: str
    model: int | None = None
    context: int | None = None
    compute: int | None = None
    free: int | None = None
    total: int | None = None

    @property
    def needed(self) -> int | None:
        """model + context + compute, when all three were reported."""
        parts = (self.model, self.context, self.compute)
        return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)


@dataclass(frozen=True)
class DevicePlacement:
    """What the fit gave one device: layers and the projected memory after it (MiB)."""

    device: str
    layers: int | None = None
    overflowing: int | None = None
    dense_only_layers: int | None = None
    used: int | None = None
    free: int | None = None


@dataclass(frozen=True)
class MemoryBreakdownRow:
    """One row of llama.cpp's ``memory breakdown [MiB]`` table (``None`` where a cell is blank)."""

    device: str
    total: int | None = None
    free: int | None = None
    self_: int | None = None
    model: int | None = None
    context: int | None = None
    compute: int | None = None
    unaccounted: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.device,
            "total": self.total,
            "free": self.free,
            "self": self.self_,
            "model": self.model,
            "context": self.context,
            "compute": self.compute,
            "unaccounted": self.unaccounted,
        }


@dataclass(frozen=True)
class RpcDevice:
    """One RPC worker's device as llama.cpp named it (``RPC0 (127.0.0.1:50052)``), with its memory.

    ``free``/``total`` are the worker's own figures (the ``using device`` and projection lines);
    ``model``/``context``/``compute`` what the fit puts there (``--fit-print on`` or the memory
    breakdown). MiB; ``None``: not reported.
    """

    name: str
    endpoint: str
    free: int | None = None
    total: int | None = None
    model: int | None = None
    context: int | None = None
    compute: int | None = None

    @property
    def needed(self) -> int | None:
        parts = (self.model, self.context, self.compute)
        return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)

    def as_dict(self) -> dict[str, Any]:
        return {**vars(self), "needed": self.needed}

    def describe(self, worker: str | None = None) -> str:
        """``RPC0 = worker w1 (127.0.0.1:50052): 23.5 GiB free of 23.5 GiB; needs 1 MiB``."""
        label = f"worker {worker} ({self.endpoint})" if worker else f"worker {self.endpoint}"
        has = f"{gib(self.free)} free of {gib(self.total)}" if self.total else f"{gib(self.free)} free"
        needs = f"needs {self.needed:,} MiB" if self.needed is not None else f"needs: {NOT_REPORTED}"
        return f"{self.name} = {label}: {has}; {needs}"


#: ``RPC0 (127.0.0.1:50052)``: how llama.cpp names an RPC worker's device in the fitting lines.
_RPC_NAME = re.compile(r"^(?P<name>RPC\d+)\s*\((?P<endpoint>[^()\s]+:\d+)\)")


@dataclass
class FitReport:
    """What llama.cpp's fitting said, read from its log lines (and the fitted arguments).

    Every figure is MiB and ``None`` when no line reported it.

    Attributes:
        memory_kind: :data:`GPU_MEMORY` or :data:`SYSTEM_MEMORY` (CPU only).
        projected_used: the memory the configuration would use, before any change.
        available: the free device memory (or the total host memory) it was compared with.
        margin: the free memory to keep per device (``--fit-target``).
        spare: what would be left free when no change was needed.
        need_less: how much less it must use to keep the margin.
        context_from / context_to: a context cut (``context_to`` is what llama-server will use).
        context_reduction: the memory that cut saves.
        context_kept: why the context was not cut ("set by user to 8192").
        gpu_layers: the number of layers put on GPUs, when the fit set it.
        placements: the layers and memory per device after the fit.
        initial: the per-device projection before any change (several devices only).
        success: ``True`` it fit, ``False`` it failed, ``None`` no line said.
        failure: why it failed, in llama.cpp's words.
        no_devices: the build found no device with its own memory (older builds; CPU only).
        fitted_args: what the tool printed on stdout (``["-c", "4096", "-ngl", "-1"]``).
        breakdown: the first ``memory breakdown`` table (the projection for the settings asked
            for), when the log has one; ``tables`` has every one, in log order.
        devices: memory per device from ``--fit-print on``.
        seconds: how long the fitting took.
        lines: the fitting lines themselves, as the tool wrote them.
    """

    memory_kind: str | None = None
    projected_used: int | None = None
    available: int | None = None
    margin: int | None = None
    spare: int | None = None
    need_less: int | None = None
    context_from: int | None = None
    context_to: int | None = None
    context_reduction: int | None = None
    context_kept: str | None = None
    gpu_layers: int | None = None
    placements: list[DevicePlacement] = field(default_factory=list)
    initial: list[DeviceMemory] = field(default_factory=list)
    success: bool | None = None
    failure: str | None = None
    no_devices: bool = False
    fitted_args: list[str] = field(default_factory=list)
    breakdown: list[MemoryBreakdownRow] = field(default_factory=list)
    devices: list[DeviceMemory] = field(default_factory=list)
    seconds: float | None = None
    lines: list[str] = field(default_factory=list)
    tables: list[list[MemoryBreakdownRow]] = field(default_factory=list)
    #: The fitting started (its first line is there), whatever came of it.
    began: bool = False
    #: ``(name, endpoint, free MiB)`` of each ``using device RPCn (host:port) ... - N MiB free`` line.
    rpc_seen: list[tuple[str, str, int | None]] = field(default_factory=list)

    @property
    def rpc_devices(self) -> list[RpcDevice]:
        """The RPC workers' devices the tool used, in its order, with what each has and needs."""
        found: dict[str, dict[str, Any]] = {}

        def entry(name: str, endpoint: str) -> dict[str, Any]:
            return found.setdefault(name, {"name": name, "endpoint": endpoint})

        for name, endpoint, free in self.rpc_seen:
            entry(name, endpoint)["free"] = free
        for device in self.initial:
            match = _RPC_NAME.match(device.name)
            if match:
                item = entry(match["name"], match["endpoint"])
                item.update(free=device.free, total=device.total)
        for row in self.breakdown:
            match = _RPC_NAME.match(row.device)
            if match:
                item = entry(match["name"], match["endpoint"])
                item.setdefault("total", row.total)
                item.update(model=row.model, context=row.context, compute=row.compute)
        for printed in self.devices:  # --fit-print names them RPC0, RPC1 (after the fitted arguments)
            if printed.name in found:
                found[printed.name].update(
                    model=printed.model, context=printed.context, compute=printed.compute
                )
        return [RpcDevice(**item) for item in found.values()]

    # -- what the fitted arguments say ---------------------------------------------------------
    def fitted_value(self, *flags: str) -> str | None:
        """The value of a fitted argument (``fitted_value("-c")``), or ``None``."""
        args = self.fitted_args
        for i, token in enumerate(args[:-1]):
            if token in flags:
                return args[i + 1]
        return None

    @property
    def fitted_context(self) -> int | None:
        text = self.fitted_value("-c", "--ctx-size")
        return int(text) if text is not None and re.fullmatch(r"-?\d+", text) else None

    @property
    def fitted_gpu_layers(self) -> int | None:
        text = self.fitted_value("-ngl", "--gpu-layers", "--n-gpu-layers")
        return int(text) if text is not None and re.fullmatch(r"-?\d+", text) else None

    # -- the verdict ---------------------------------------------------------------------------
    @property
    def short_by(self) -> int | None:
        """How much memory is missing when it does not fit (MiB), from the tool's own figures."""
        if self.success is not False or self.need_less is None:
            return None
        return max(self.need_less - (self.context_reduction or 0), 0)

    @property
    def context_cut(self) -> bool:
        """The fit cuts the context (``context_to`` is what llama-server will use)."""
        return (
            self.context_to is not None
            and self.context_from is not None
            and self.context_to < self.context_from
        )

    @property
    def partial(self) -> bool:
        """Only part of the model goes to the GPUs: a layer count was set, or layers overflow."""
        if self.gpu_layers is not None or any(p.overflowing for p in self.placements):
            return True
        layers = self.fitted_gpu_layers
        return self.memory_kind == GPU_MEMORY and layers is not None and layers >= 0

    @property
    def verdict_kind(self) -> str:
        """``fits`` | ``context_cut`` | ``partial`` | ``does_not_fit`` | ``unknown`` (the first that holds)."""
        if self.success is False:
            return "does_not_fit"
        if self.success is None and self.spare is None:
            return "unknown"
        if self.context_cut:
            return "context_cut"
        if self.partial:
            return "partial"
        return "fits"

    @property
    def where(self) -> str:
        """Where the model goes, in words: ``"GPU CUDA0 (NVIDIA ...)"``, ``"system memory"``."""
        if self.memory_kind == SYSTEM_MEMORY or self.no_devices:
            return "system memory (CPU only)"
        names = [p.device for p in self.placements] or [d.name for d in self.initial]
        names = names or [d.name for d in self.devices if d.name.lower() != HOST_ROW]
        if len(names) == 1:
            return names[0]
        if names:
            return f"{len(names)} devices"
        return "device memory"

    @property
    def verdict(self) -> str:
        """One plain sentence: "fits on CUDA0 with 3.1 GiB to spare", "does not fit: 2.3 GiB short"."""
        kind = self.verdict_kind
        if kind == "does_not_fit":
            why = self.failure or "llama-fit-params could not fit it"
            short = self.short_by
            if short is not None:
                keep = f" (keeping {gib(self.margin)} free)" if self.margin is not None else ""
                return f"does not fit: {gib(short)} short{keep}"
            if self.need_less is None:
                return f"does not fit ({why}); how much is missing: not reported"
            return f"does not fit: {why}"
        if kind == "unknown":
            return "not reported: the tool's output says nothing about the fit"
        parts = []
        if self.context_cut:
            parts.append(f"context will be cut from {self.context_from:,} to {self.context_to:,}")
        if self.partial:
            parts.append(self._partial_text())
        if parts:
            if not self.partial:
                parts[-1] += f" to fit in {self.where}"
            return "; ".join(parts)
        if self.no_devices and self.spare is None:
            return "fits: no GPU with its own memory was found; the model runs in system memory (CPU only)"
        spare = f" with {gib(self.spare)} to spare" if self.spare is not None else ""
        if self.placements and self.spare is None:
            low = min((p.free for p in self.placements if p.free is not None), default=None)
            spare = f" with at least {gib(low)} to spare" if low is not None else ""
        preposition = "in" if self.memory_kind == SYSTEM_MEMORY else "on"
        return f"fits {preposition} {self.where}{spare}"

    def _partial_text(self) -> str:
        placed = [p for p in self.placements if p.layers is not None]
        if placed:
            where = ", ".join(
                f"{p.layers} layers on {p.device}"
                + (f" ({p.overflowing} of them partly in system memory)" if p.overflowing else "")
                for p in placed
            )
            return f"only part fits on the GPU: {where}, the rest in system memory"
        layers = self.gpu_layers if self.gpu_layers is not None else self.fitted_gpu_layers
        count = f"{layers} layers" if layers is not None else "some layers"
        return f"only part fits on the GPU: {count} on the GPU, the rest in system memory"

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data (``llamadash fit --json``); ``None`` = not reported."""
        return {
            "verdict": self.verdict,
            "verdict_kind": self.verdict_kind,
            "success": self.success,
            "failure": self.failure,
            "memory_kind": self.memory_kind,
            "fitted_args": list(self.fitted_args),
            "fitted_context": self.fitted_context,
            "fitted_gpu_layers": self.fitted_gpu_layers,
            "projected_used_mib": self.projected_used,
            "available_mib": self.available,
            "margin_mib": self.margin,
            "spare_mib": self.spare,
            "need_less_mib": self.need_less,
            "short_by_mib": self.short_by,
            "context_from": self.context_from,
            "context_to": self.context_to,
            "context_kept": self.context_kept,
            "gpu_layers_set": self.gpu_layers,
            "placements": [vars(p) for p in self.placements],
            "devices": [{**vars(d), "needed": d.needed} for d in self.devices],
            "initial": [vars(d) for d in self.initial],
            "breakdown": [row.as_dict() for row in self.breakdown],
            "rpc_devices": [device.as_dict() for device in self.rpc_devices],
            "seconds": self.seconds,
            "lines": list(self.lines),
        }


# One line of llama.cpp's log: "func_name: message". The name changes between builds
# (llama_params_fit_impl, common_params_fit_impl, common_fit_params): match the message.
# b11434 writes "0.00.005.972 I " (time and level) first, and some lines a 3-4 letter module.
_PREFIX = re.compile(
    r"^(?:\d+\.\d+\.\d+\.\d+\s+[A-Z]\s+)?(?:[a-z]{3,4}\s+)?(?:[A-Za-z_][A-Za-z0-9_]*:\s)?\s*(?P<msg>.*?)\s*$"
)
_N = r"(-?\d+)"
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "projected",
        re.compile(
            rf"projected to use {_N} MiB of (?:(?P<gpu>device)|host) memory vs\. {_N} MiB of (?:free device|total host) memory"
        ),
    ),
    (
        "leave",
        re.compile(rf"will leave (?:at least )?{_N} >= {_N} MiB of (?:free device |free |system )?memory"),
    ),
    ("targets_met", re.compile(r"targets for free memory can be met on all devices, no changes needed")),
    (
        "need_one",
        re.compile(
            rf"cannot (?:meet free memory target|fulfill margin) of {_N} MiB, need to reduce device memory by {_N} MiB"
        ),
    ),
    (
        "need_all",
        re.compile(
            rf"cannot (?:meet free memory targets|fulfill margin of (?:{_N}) MiB) on all devices, "
            rf"need to use {_N} MiB less in total"
        ),
    ),
    ("ctx_cut", re.compile(rf"context size reduced from {_N} to {_N} -> need {_N} MiB less memory")),
    ("ctx_user", re.compile(rf"context size set by user to {_N} -> no change")),
    ("ctx_full", re.compile(rf"user has requested full context size of {_N} -> no change")),
    (
        "ctx_small",
        re.compile(rf"default model context size is {_N} which is <= the min\. context size of {_N}"),
    ),
    ("no_devices", re.compile(r"no devices with dedicated memory found")),
    ("began", re.compile(r"getting device memory data for initial parameters")),
    (
        "rpc_device",
        re.compile(r"using device (?P<dev>RPC\d+) \((?P<ep>[^()\s]+:\d+)\).*?(?:- (\d+) MiB free)?$"),
    ),
    ("set_ngl", re.compile(rf"set n_gpu_layers to {_N}")),
    ("set_moe", re.compile(rf"set to use {_N} dense-only (?:layers )?and {_N} full (?:GPU )?layers")),
    (
        "device_moe",
        re.compile(
            rf"^- (?P<dev>.+?):\s+{_N} dense-only layers,\s+{_N} full layers,\s+{_N} MiB used,\s+{_N} MiB free"
        ),
    ),
    (
        "device_layers",
        re.compile(
            rf"^- (?P<dev>.+?):\s+{_N} layers(?: \(\s*{_N} overflowing\))?,\s+{_N} MiB used,\s+{_N} MiB free"
        ),
    ),
    (
        "device_initial",
        re.compile(
            rf"^- (?P<dev>.+?):\s+{_N} total,\s+{_N} used,\s+{_N} (?:free vs\. target of\s+{_N}|surplus|deficit)"
        ),
    ),
    ("success", re.compile(r"successfully fit params to free device memory")),
    (
        "failed",
        re.compile(
            r"(?:failed to fit params to free device memory"
            r"|encountered an error while trying to fit params to free device memory): (.+)"
        ),
    ),
    ("failed_tool", re.compile(r"failed to fit CLI arguments to free memory")),
    ("took", re.compile(r"fitting params to free memory took ([\d.]+) seconds")),
]
_BREAKDOWN = re.compile(r"\|\s*(?P<name>[^|]+?)\s*\|(?P<cells>[^|]*)\|\s*$")


def _ints(match: re.Match[str]) -> list[int | None]:
    return [int(g) if g is not None and re.fullmatch(r"-?\d+", g) else None for g in match.groups()]


def _parse_breakdown(cells: str) -> list[int | None]:
    """The numbers of one breakdown row: ``24077 =  945 + (19187 = 17904 + 384 + 898) + 3945``.

    GPU rows have all seven (total, free, self, model, context, compute, unaccounted); the host
    and other rows only self, model, context and compute.
    """
    numbers = [int(n) for n in re.findall(r"-?\d+", cells)]
    if len(numbers) == 7:
        return list(numbers)
    if len(numbers) == 4:
        return [None, None, *numbers, None]
    return []


def parse_fit_output(log: str | Iterable[str], stdout: str = "") -> FitReport:
    """Read llama.cpp's fitting lines (from llama-fit-params or a llama-server log) into a report.

    Args:
        log: the log text (or lines): stderr of llama-fit-params, or llama-server's output.
        stdout: what llama-fit-params printed on stdout (the fitted arguments), if any.
    """
    lines = log.splitlines() if isinstance(log, str) else [line.rstrip("\n") for line in log]
    report = FitReport()
    for raw in lines:
        match = _PREFIX.match(raw.strip())
        message = match.group("msg") if match else raw.strip()
        if message.startswith("|"):
            _breakdown_line(report, message)
            continue
        for name, pattern in _PATTERNS:
            found = pattern.search(message)
            if found is None:
                continue
            _apply(report, name, found)
            report.lines.append(raw.strip())
            break
    report.fitted_args = fitted_arguments(stdout)
    report.breakdown = report.tables[0] if report.tables else []
    return report


def _breakdown_line(report: FitReport, message: str) -> None:
    row = _BREAKDOWN.search(message)
    if row is None:
        return
    name = row.group("name").strip()
    if name.startswith("memory breakdown"):
        report.tables.append([])  # llama.cpp prints one per measurement
        return
    if not name.startswith("- ") or not report.tables:
        return
    numbers = _parse_breakdown(row.group("cells"))
    if not numbers:
        return
    total, free, self_, model, context, compute, unaccounted = numbers
    report.tables[-1].append(
        MemoryBreakdownRow(name[2:].strip(), total, free, self_, model, context, compute, unaccounted)
    )


def _apply(report: FitReport, name: str, found: re.Match[str]) -> None:
    if name == "projected":
        report.projected_used = int(found.group(1))
        report.memory_kind = GPU_MEMORY if found.group("gpu") else SYSTEM_MEMORY
        report.available = int(found.group(3))
    elif name == "leave":
        spare, margin = _ints(found)
        report.spare, report.margin = spare, margin
    elif name == "need_one":
        report.margin, report.need_less = _ints(found)
    elif name == "need_all":
        margin, need = _ints(found)
        report.margin = margin if margin is not None else report.margin
        report.need_less = need
    elif name == "ctx_cut":
        report.context_from, report.context_to, report.context_reduction = _ints(found)
    elif name == "ctx_user":
        report.context_kept = f"the context size is set to {int(found.group(1)):,}: not changed"
    elif name == "ctx_full":
        report.context_kept = f"the full context of {int(found.group(1)):,} was asked for: not changed"
    elif name == "ctx_small":
        report.context_kept = (
            f"the model's context of {int(found.group(1)):,} is not above the minimum "
            f"{int(found.group(2)):,}: not changed"
        )
    elif name == "no_devices":
        report.no_devices = True
    elif name == "began":
        report.began = True
    elif name == "rpc_device":
        free = found.group(3)
        seen = (found.group("dev"), found.group("ep"), int(free) if free else None)
        if all(item[:2] != seen[:2] for item in report.rpc_seen):
            report.rpc_seen.append(seen)
    elif name == "set_ngl":
        report.gpu_layers = int(found.group(1))
    elif name == "set_moe":
        dense, full = _ints(found)
        report.gpu_layers = (dense or 0) + (full or 0)
    elif name == "device_moe":
        _, dense, full, used, free = _ints(found)
        on_device = (dense or 0) + (full or 0)
        report.placements.append(DevicePlacement(_device(found), on_device, None, dense, used, free))
    elif name == "device_layers":
        _, layers, overflowing, used, free = _ints(found)
        report.placements.append(DevicePlacement(_device(found), layers, overflowing, None, used, free))
    elif name == "device_initial":
        _, total, _used, free, _target = _ints(found)
        report.initial.append(DeviceMemory(_device(found), total=total, free=free))
    elif name == "success":
        report.success = True
    elif name in ("failed", "failed_tool"):
        report.success = False
        if found.groups():
            report.failure = found.group(1).strip()
    elif name == "took":
        report.seconds = float(found.group(1))


def _device(found: re.Match[str]) -> str:
    return re.sub(r"\s+", " ", found.group("dev")).strip()


def apply_exit(report: FitReport, returncode: int) -> FitReport:
    """Take the tool's exit status into the report.

    llama-fit-params exits 1 when it cannot fit, and b11434 exits before its log thread has
    written the failure line: a non-zero status after fitting lines is a failure to fit.
    """
    measured = report.began or report.projected_used is not None
    if returncode != 0 and report.success is not False and measured:
        report.success = False
        report.failure = report.failure or f"llama-fit-params exited with status {returncode}"
    return report


def fitted_arguments(stdout: str) -> list[str]:
    """The fitted arguments llama-fit-params printed (its last line that starts with a flag)."""
    for line in reversed(stdout.splitlines()):
        text = line.strip()
        if text.startswith("-"):
            try:
                return shlex.split(text)
            except ValueError:
                return text.split()
    return []


def parse_fit_print(stdout: str) -> list[DeviceMemory]:
    """``--fit-print on``'s lines (``CUDA0 17904 384 898``, ``Host 0 0 12``) as device memory."""
    devices: list[DeviceMemory] = []
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and all(re.fullmatch(r"\d+", p) for p in parts[1:]):
            devices.append(DeviceMemory(parts[0], int(parts[1]), int(parts[2]), int(parts[3])))
    return devices
