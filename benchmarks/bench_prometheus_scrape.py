"""What one scrape of llamadash's Prometheus endpoint costs, by the number of instances.

Run from the repository root::

    .venv/bin/python benchmarks/bench_prometheus_scrape.py
    .venv/bin/python benchmarks/bench_prometheus_scrape.py --instances 1 10 50 --repeat 500

Method: a :class:`~llamadash.services.metrics_endpoint.LlamadashCollector` over a snapshot with a
full sample (two GPUs), ``N`` running instances with every figure known and 4 models' Activity
counters; ``--repeat`` times ``prometheus_client.generate_latest`` (collect + text format: all a
scrape does besides the socket) and, as the baseline, a registry holding prometheus_client's own
process collector alone. Medians per scrape, the size of the answer, and the ratio are printed.

The scrape runs on the endpoint's own thread from a snapshot the owner's thread keeps: its cost is
never paid on the GUI thread (which pays a copy of the figures per second, also printed).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

from llamadash.core.metrics import Sample
from llamadash.core.metrics.nvml import GpuReading
from llamadash.services.metrics_endpoint import InstanceSnapshot, LlamadashCollector, Snapshot


def snapshot(instances: int) -> Snapshot:
    gpus = tuple(
        GpuReading(i, "NVIDIA H200", f"GPU-{i}", 55.0, 61.0, 40_000.0, 143_771.0, 310.0) for i in range(2)
    )
    sample = Sample(
        timestamp=0,
        cpu_usage=31.0,
        memory_usage=48.0,
        disk_usage=70.0,
        active_models=instances,
        uptime=3600,
        gpus=gpus,
    )
    models = [
        InstanceSnapshot(
            model=f"model-{i}",
            state="running",
            url=f"http://127.0.0.1:{8080 + i}",
            remote=i % 3 == 0,
            up_since_s=1.7e9,
            generation_tokens_per_s=42.0,
            prompt_tokens_per_s=900.0,
            requests_processing=1.0,
            requests_deferred=0.0,
            busy_slots=1.0,
            total_slots=4.0,
            cpu_percent=180.0,
            rss_mb=2048.0,
            vram_mb=9000.0,
        )
        for i in range(instances)
    ]
    requests = {(f"model-{i}", status): 100 + i for i in range(4) for status in ("finished", "aborted")}
    tokens = {(f"model-{i}", kind): 10_000 for i in range(4) for kind in ("prompt", "cached", "generated")}
    return Snapshot(host="bench", sample=sample, instances=tuple(models), requests=requests, tokens=tokens)


def median_ms(registry: CollectorRegistry, repeat: int) -> tuple[float, int]:
    times = []
    body = b""
    for _ in range(repeat):
        began = time.perf_counter()
        body = generate_latest(registry)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), len(body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    baseline = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=baseline)
    base_ms, base_size = median_ms(baseline, args.repeat)
    print(f"baseline (prometheus_client's process collector alone): {base_ms:.3f} ms, {base_size} bytes")
    for count in args.instances:
        snap = snapshot(count)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(LlamadashCollector(lambda: snap))  # noqa: B023 - used within this iteration
        ms, size = median_ms(registry, args.repeat)
        copy_began = time.perf_counter()
        for _ in range(args.repeat):
            Snapshot(snap.host, snap.sample, tuple(snap.instances), dict(snap.requests), dict(snap.tokens))
        copy_us = (time.perf_counter() - copy_began) / args.repeat * 1e6
        print(
            f"{count:4d} instances: {ms:.3f} ms per scrape ({ms / base_ms:.1f}x the baseline), {size} bytes; "
            f"snapshot copy on the owner's thread {copy_us:.1f} us"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
