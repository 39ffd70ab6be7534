"""Check llamadash's GPU readings against nvidia-smi on a real NVIDIA GPU, idle -> load -> idle.

Run once on a machine with an NVIDIA GPU, from the repository root::

    PYTHONPATH=. python benchmarks/gpu_check.py

Needs psutil, nvidia-ml-py and (for the load) PyTorch with CUDA; not peewee nor PySide6: it imports
only ``llamadash.core.metrics``. A child process runs a bf16 matmul loop on GPU 0 from t=5 s to
t=25 s of a 30 s window; every second the script takes llamadash's reading of GPU 0 and, at the same
moment, nvidia-smi's, and prints both side by side, then the largest differences, ``nvidia-smi -L``
and llamadash's per-process VRAM reading for the load process. It finishes within 60 s: every
subprocess has a timeout and an alarm ends the script at 58 s whatever happens.

Exit status:
    0  the comparison ran (read the table and the summary);
    1  it ran but failed: the load did not start, or llamadash had no reading where nvidia-smi had one;
    2  nothing to check here: no NVIDIA GPU/driver, no nvidia-smi, or no PyTorch with CUDA.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also without PYTHONPATH=.

from llamadash.core.metrics import MetricsCollector

WINDOW_S = 30
LOAD_FROM_S, LOAD_UNTIL_S = 5, 25
READY_TIMEOUT_S = 20.0  # importing torch and creating a CUDA context
HARD_LIMIT_S = 58
SMI_FIELDS = "utilization.gpu,temperature.gpu,memory.used,memory.total,power.draw"
COLUMNS = ("util %", "temp C", "mem used MB", "mem total MB", "power W")

# The load: waits for "start stop" (Unix times) on stdin, then multiplies bf16 matrices until stop.
LOAD_CODE = r"""
import sys, time
try:
    import torch
    if not torch.cuda.is_available():
        raise RuntimeError("torch.cuda.is_available() is False")
    a = torch.randn(8192, 8192, device="cuda:0", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda:0", dtype=torch.bfloat16)
    (a @ b).sum().item()
except Exception as exc:
    print(f"error {type(exc).__name__}: {exc}", flush=True)
    sys.exit(3)
print("ready", flush=True)
start, stop = map(float, sys.stdin.readline().split())
while time.time() < start:
    time.sleep(0.02)
n = 0
while time.time() < stop:
    for _ in range(10):
        c = a @ b
    torch.cuda.synchronize()
    n += 10
print(f"done {n} matmuls", flush=True)
"""


@dataclass
class Row:
    t: float
    ours: tuple[float | None, ...]
    smi: tuple[float | None, ...]


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError(f"gpu_check exceeded its {HARD_LIMIT_S} s limit")


def run_text(argv: list[str], timeout: float) -> str:
    """Run a command and return its stdout, or a line saying why there is none."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"({argv[0]} failed: {exc})"
    return done.stdout.strip() or f"(no output; exit {done.returncode}: {done.stderr.strip()})"


def parse_smi(line: str) -> tuple[float | None, ...]:
    """One GPU's CSV line from nvidia-smi; "[N/A]" and the like become None."""
    values: list[float | None] = []
    for part in line.split(","):
        try:
            values.append(float(part.strip()))
        except ValueError:
            values.append(None)
    values += [None] * (len(COLUMNS) - len(values))
    return tuple(values[: len(COLUMNS)])


def fmt(value: float | None, width: int = 7) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}.1f}"


def read_line(stream, timeout: float) -> str | None:
    """The next line of a child's stdout, or None after ``timeout`` seconds (never blocks longer)."""
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0].strip() if box else None


def main() -> int:
    """Run the check; returns the exit status (see the module docstring)."""
    began = time.monotonic()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HARD_LIMIT_S)

    collector = MetricsCollector(".", start_time_ms=time.time_ns() // 1_000_000)
    gpus = collector.nvml.read_all()
    if not gpus:
        print(f"gpu_check: no NVIDIA GPU found ({collector.nvml.status}); nothing to compare.")
        return 2
    smi = shutil.which("nvidia-smi")
    if smi is None:
        print("gpu_check: nvidia-smi is not on PATH; nothing to compare against.")
        return 2

    print("== nvidia-smi -L")
    print(run_text([smi, "-L"], timeout=10))
    print(
        f"== llamadash sees {len(gpus)} GPU(s): " + "; ".join(f"{g.index}: {g.name} {g.uuid}" for g in gpus)
    )

    env = dict(os.environ, CUDA_DEVICE_ORDER="PCI_BUS_ID", CUDA_VISIBLE_DEVICES=str(gpus[0].index))
    child = subprocess.Popen(
        [sys.executable, "-c", LOAD_CODE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    rows: list[Row] = []
    vram_line = "per-process VRAM: not read"
    status = 0
    try:
        ready = read_line(child.stdout, READY_TIMEOUT_S)
        if ready != "ready":
            print(
                f"gpu_check: the PyTorch load did not start: {ready or f'no answer in {READY_TIMEOUT_S:g} s'}"
            )
            return 2 if ready and ready.startswith("error") else 1
        print(f"== load process pid {child.pid} ready after {time.monotonic() - began:.1f} s")

        t0_wall, t0 = time.time(), time.monotonic()
        assert child.stdin is not None
        child.stdin.write(f"{t0_wall + LOAD_FROM_S} {t0_wall + LOAD_UNTIL_S}\n")
        child.stdin.flush()

        print(
            f"== every second: llamadash (ours) | nvidia-smi (smi); load from t={LOAD_FROM_S} to t={LOAD_UNTIL_S} s"
        )
        print(
            f"{'':5} {'ours: util':>10} {'temp':>7} {'used':>9} {'total':>9} {'power':>7} | "
            f"{'smi: util':>10} {'temp':>7} {'used':>9} {'total':>9} {'power':>7}"
        )
        for second in range(WINDOW_S):
            delay = t0 + second - time.monotonic()
            if delay < -0.5:
                continue  # running late (a slow nvidia-smi): skip this second rather than drift
            time.sleep(max(0.0, delay))
            taken_at = time.monotonic() - t0
            query = subprocess.Popen(
                [smi, f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader,nounits", "-i", str(gpus[0].index)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            sample = collector.gather()  # at the same moment as nvidia-smi's query
            try:
                out, _ = query.communicate(timeout=3)
            except subprocess.TimeoutExpired:
                query.kill()
                out, _ = query.communicate()
            ours = (
                sample.gpu_usage,
                sample.gpu_temperature,
                sample.gpu_memory_used,
                sample.gpu_memory_total,
                sample.gpu_power_usage,
            )
            theirs = parse_smi(out.strip().splitlines()[0] if out.strip() else "")
            row = Row(taken_at, ours, theirs)
            rows.append(row)
            print(
                f"{row.t:5.1f} {fmt(ours[0], 10)} {fmt(ours[1])} {fmt(ours[2], 9)} {fmt(ours[3], 9)} "
                f"{fmt(ours[4])} | {fmt(theirs[0], 10)} {fmt(theirs[1])} {fmt(theirs[2], 9)} "
                f"{fmt(theirs[3], 9)} {fmt(theirs[4])}",
                flush=True,
            )
            if second == (LOAD_FROM_S + LOAD_UNTIL_S) // 2:
                per_pid = collector.nvml.process_memory_mb(gpus[0].index)
                if child.pid in per_pid:
                    amount = per_pid[child.pid]
                    vram_line = f"per-process VRAM of the load (pid {child.pid}): " + (
                        "reported without an amount (n/a)" if amount is None else f"{amount:.0f} MB"
                    )
                else:
                    vram_line = (
                        f"per-process VRAM of the load (pid {child.pid}): not reported by NVML (n/a); "
                        f"NVML listed {per_pid or 'no processes'} (PID namespaces hide processes in containers)"
                    )
        done = read_line(child.stdout, 5)
        print(f"== load process said: {done}")
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=5)
        collector.close()

    print(f"== {vram_line}")
    print("== differences |ours - smi| (settled = at least 2 s away from the load switching on/off)")
    missing = 0
    for i, name in enumerate(COLUMNS):
        diffs: list[float] = []
        settled: list[float] = []
        for row in rows:
            mine, smis = row.ours[i], row.smi[i]
            if smis is not None and mine is None:
                missing += 1
            if mine is None or smis is None:
                continue
            diffs.append(abs(mine - smis))
            if min(abs(row.t - LOAD_FROM_S), abs(row.t - LOAD_UNTIL_S)) >= 2:
                settled.append(abs(mine - smis))
        if diffs:
            print(
                f"  {name:>12}: max {max(diffs):8.2f}, median {statistics.median(diffs):8.2f}, "
                f"settled max {max(settled) if settled else math.nan:8.2f}  ({len(diffs)} pairs)"
            )
        else:
            print(f"  {name:>12}: no pairs to compare")
    loaded = [
        row.ours[0]
        for row in rows
        if LOAD_FROM_S + 2 <= row.t <= LOAD_UNTIL_S - 2 and row.ours[0] is not None
    ]
    idle = [
        row.ours[0]
        for row in rows
        if (row.t <= LOAD_FROM_S - 1 or row.t >= LOAD_UNTIL_S + 2) and row.ours[0] is not None
    ]
    if loaded and idle:
        print(
            f"== our utilization: idle median {statistics.median(idle):.0f} %, loaded median {statistics.median(loaded):.0f} %"
        )
    if missing:
        print(f"gpu_check: FAILED: {missing} reading(s) were n/a in llamadash where nvidia-smi had a value")
        status = 1
    if not loaded or statistics.median(loaded) < 50:
        print("gpu_check: FAILED: the load did not show as GPU utilization")
        status = 1
    print(f"== finished in {time.monotonic() - began:.1f} s, exit status {status}")
    return status


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TimeoutError as exc:
        print(f"gpu_check: {exc}")
        sys.exit(1)
