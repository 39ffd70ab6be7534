"""Where a running llama-server put the model: the placement report, read from its own log.

At start llama-server (``--fit on``, its default) fits the unset arguments to the free memory,
then loads the model and allocates the KV cache and compute buffers, and logs each step. This
module reads those lines into a :class:`PlacementReport`: the fitting outcome (context cut,
layers per device; logged at verbosity 4, ``log_verbose = 4``), the context each slot got, the
buffers per device and, once the server stopped, llama.cpp's memory breakdown table.

Defensive by design: the lines differ between builds and verbosities. A figure no line gave is
``None`` ("not reported"). One trap is handled on purpose: a CPU-only build logs
``offloaded 3/3 layers to GPU`` (its "GPU" is the CPU backend), so layers on a GPU are only
reported when a buffer of a GPU device exists; otherwise the model is in system memory.

Known formats: build b11434 (captured in ``tests/data/perf/``). The b10001 log kept in
``tests/data`` holds no fitting lines (it was written at the default verbosity), so for b10001
only the lines shared with b11434 (slots and context, buffers) are known to match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamadash.core.perf.fit import FitReport, MemoryBreakdownRow, gib, parse_fit_output

__all__ = ["Buffer", "PlacementReport", "current_run", "parse_placement", "placement_of_log_file"]

# "0.00.011.021 I " (b11434's timestamp and level) before the function name, when there is one.
_STAMP = re.compile(r"^\s*(?:\d+\.\d+\.\d+\.\d+\s+[A-Z]\s+)?(?:[a-z]{3,4}\s+)?")
_BUFFER = re.compile(
    r"(?P<where>load_tensors|llama_kv_cache|llama_context|sched_reserve|[a-z_]+):\s+(?P<buf>[A-Za-z0-9_+\-]+)\s+"
    r"(?P<kind>model|KV|compute|output|RS)\s+buffer size\s*=\s*(?P<mib>[\d.]+)\s*MiB"
)
_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
_SLOTS = re.compile(r"initializing, n_slots = (\d+), n_ctx_slot = (\d+)")
_N_CTX = re.compile(r"llama_context:\s+n_ctx\s+=\s+(\d+)")
_DEVICE_INFO = re.compile(
    r"^\s*- (?P<name>\S+)\s*: (?P<desc>.+?) \((?P<total>\d+) MiB, (?P<free>\d+) MiB free\)"
)
_FIT_START = re.compile(r"fitting params to device memory")
_LOADED = re.compile(r"model loaded|server is listening|listening on http")
_CPU_BUFFERS = re.compile(r"^(CPU|CPU_Mapped|CPU_REPACK|CPU_AARCH64|AMX|Host)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Buffer:
    """One buffer llama.cpp allocated: on which buffer type (``CUDA0``, ``CPU_Mapped``), for what."""

    buffer: str
    kind: str  # model | KV | compute | output | RS
    mib: float

    @property
    def on_gpu(self) -> bool:
        return not _CPU_BUFFERS.match(self.buffer)


@dataclass
class PlacementReport:
    """What one server run's log says about where the model went (``None``: not reported).

    Attributes:
        fit: the fitting steps (all ``None`` when the log has no fitting lines).
        fit_ran: the log says llama-server fitted the arguments (``--fit on``).
        slots / context_per_slot: ``n_slots`` and ``n_ctx_slot`` of ``load_model``.
        context: ``llama_context``'s ``n_ctx`` (the whole context, all slots).
        offloaded / total_layers: ``offloaded N/M layers to GPU``, kept only with a GPU buffer.
        cpu_only: every buffer is in system memory (no GPU buffer at all).
        buffers: what was allocated, in log order.
        devices: ``(name, description, total MiB, free MiB)`` the server listed at start.
        breakdown: the last ``memory breakdown`` table after loading (printed when it stops).
    """

    fit: FitReport = field(default_factory=FitReport)
    fit_ran: bool = False
    slots: int | None = None
    context_per_slot: int | None = None
    context: int | None = None
    offloaded: int | None = None
    total_layers: int | None = None
    cpu_only: bool | None = None
    buffers: list[Buffer] = field(default_factory=list)
    devices: list[tuple[str, str, int, int]] = field(default_factory=list)
    breakdown: list[MemoryBreakdownRow] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Nothing about placement was in the log (yet)."""
        return not (self.fit_ran or self.buffers or self.slots is not None or self.fit.lines)

    def memory_by_buffer(self) -> dict[str, dict[str, float]]:
        """MiB per buffer type and kind: ``{"CUDA0": {"model": 17904.0, "KV": 384.0}}``."""
        table: dict[str, dict[str, float]] = {}
        for buf in self.buffers:
            row = table.setdefault(buf.buffer, {})
            row[buf.kind] = row.get(buf.kind, 0.0) + buf.mib
        return table

    def summary_lines(self) -> list[str]:
        """The report in a few lines, for the instance pane (every figure from the log)."""
        if self.empty:
            return ["placement: not reported (the log has no loading lines yet)"]
        lines: list[str] = []
        fit = self.fit
        if fit.lines and not fit.context_cut:
            lines.append(f"fit: {fit.verdict}")
        elif fit.lines:
            lines.append(
                f"fit: context reduced from {fit.context_from:,} to {fit.context_to:,} to fit in {fit.where}"
            )
        elif self.fit_ran:
            lines.append("fit: ran; its steps are logged at verbosity 4 (set log_verbose = 4 to see them)")
        else:
            lines.append(
                "fit: not reported (llama-server logs its fitting at verbosity 4: set log_verbose = 4)"
            )
        if self.slots is not None and self.context_per_slot is not None:
            lines.append(f"context: {self.context_per_slot:,} tokens per slot, {self.slots} slots")
        elif self.context is not None:
            lines.append(f"context: {self.context:,} tokens")
        if self.cpu_only:
            lines.append("layers: all in system memory (no GPU buffer)")
        elif self.offloaded is not None and self.total_layers is not None:
            lines.append(f"layers: {self.offloaded} of {self.total_layers} on the GPU")
        for placement in fit.placements:
            lines.append(f"  {placement.device}: {placement.layers} layers, {gib(placement.used)} used")
        table = self.memory_by_buffer()
        if table:
            parts = [
                f"{name} " + " + ".join(f"{kind} {mib:,.1f}" for kind, mib in kinds.items())
                for name, kinds in table.items()
            ]
            lines.append("memory [MiB]: " + "; ".join(parts))
        if self.breakdown:
            rows = ", ".join(f"{r.device} {r.self_} MiB" for r in self.breakdown if r.self_ is not None)
            lines.append(f"memory breakdown at stop: {rows}")
        return lines

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``status --json`` (``None`` = not reported)."""
        return {
            "fit_ran": self.fit_ran,
            "fit_report": self.fit.as_dict() if self.fit.lines else None,
            "context_reduced_from": self.fit.context_from,
            "context_reduced_to": self.fit.context_to,
            "slots": self.slots,
            "context_per_slot": self.context_per_slot,
            "context": self.context,
            "cpu_only": self.cpu_only,
            "layers_on_gpu": self.offloaded,
            "total_layers": self.total_layers,
            "layers_per_device": [
                {"name": p.device, "layers": p.layers, "used_mib": p.used, "free_mib": p.free}
                for p in self.fit.placements
            ],
            "buffers_mib": self.memory_by_buffer(),
            "devices": [
                {"name": n, "description": d, "total_mib": t, "free_mib": f} for n, d, t, f in self.devices
            ],
            "breakdown": [row.as_dict() for row in self.breakdown],
            "summary": self.summary_lines(),
        }


def parse_placement(log: str | Iterable[str]) -> PlacementReport:
    """Read a llama-server log (its output from the start) into a :class:`PlacementReport`."""
    lines = log.splitlines() if isinstance(log, str) else [line.rstrip("\n") for line in log]
    report = PlacementReport()
    fit_lines: list[str] = []
    loaded = False
    after_load: list[str] = []
    offloaded: tuple[int, int] | None = None
    for raw in lines:
        text = _STAMP.sub("", raw, count=1)
        if _FIT_START.search(text):
            report.fit_ran = True
        if not loaded:
            fit_lines.append(raw)
        else:
            after_load.append(raw)
        if _LOADED.search(text):
            loaded = True
        found = _BUFFER.search(text)
        if found:
            report.buffers.append(Buffer(found.group("buf"), found.group("kind"), float(found.group("mib"))))
            continue
        found = _OFFLOADED.search(text)
        if found:
            offloaded = (int(found.group(1)), int(found.group(2)))
            continue
        found = _SLOTS.search(text)
        if found:
            report.slots, report.context_per_slot = int(found.group(1)), int(found.group(2))
            continue
        found = _N_CTX.search(text)
        if found:
            report.context = int(found.group(1))
            continue
        found = _DEVICE_INFO.search(text.split("common_param:", 1)[-1])
        if found and "common_param" in text:
            report.devices.append(
                (
                    found.group("name"),
                    found.group("desc").strip(),
                    int(found.group("total")),
                    int(found.group("free")),
                )
            )
    report.fit = parse_fit_output(fit_lines)
    tables = parse_fit_output(after_load).tables
    report.breakdown = tables[-1] if tables else []
    model_buffers = [b for b in report.buffers if b.kind == "model"]
    if model_buffers:
        gpu = any(b.on_gpu for b in report.buffers)
        report.cpu_only = not gpu
        if gpu and offloaded is not None:
            report.offloaded, report.total_layers = offloaded
    return report


#: How llamadash marks the start of a run in an instance's log (see services/instance.py).
RUN_START_PREFIX = "=== llamadash: starting "
#: The most of a log file read for the current run's placement (its start is near the end).
MAX_LOG_BYTES = 8 * 1024 * 1024


def current_run(lines: Sequence[str]) -> list[str]:
    """The lines of the last run in an instance's log (after its last start note)."""
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith(RUN_START_PREFIX):
            return list(lines[index + 1 :])
    return list(lines)


def placement_of_log_file(path: Path) -> PlacementReport | None:
    """The placement of the last run written to an instance's log file; ``None`` without a file."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - MAX_LOG_BYTES))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    return parse_placement(current_run(text.splitlines()))
