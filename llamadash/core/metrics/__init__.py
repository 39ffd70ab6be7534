"""Metric sources for the dashboard: psutil (CPU, memory, disk), NVML (NVIDIA GPUs), instance figures.

Pure Python, no Qt. The database is imported only by the functions that need it
(:func:`load_history`, :func:`dashboard_start_time_ms`), so this package also runs where peewee is
absent (``benchmarks/gpu_check.py``).
"""

from llamadash.core.metrics.nvml import GpuReading, Nvml
from llamadash.core.metrics.sample import (
    GAP_FACTOR,
    InstanceFigures,
    InstanceStats,
    MetricsCollector,
    Sample,
    dashboard_start_time_ms,
    load_history,
    run_starts,
    split_on_gaps,
)
from llamadash.core.metrics.system import SystemMetrics, SystemReading

__all__ = [
    "GAP_FACTOR",
    "GpuReading",
    "InstanceFigures",
    "InstanceStats",
    "MetricsCollector",
    "Nvml",
    "Sample",
    "SystemMetrics",
    "SystemReading",
    "dashboard_start_time_ms",
    "load_history",
    "run_starts",
    "split_on_gaps",
]
