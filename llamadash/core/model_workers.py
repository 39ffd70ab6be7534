"""Which RPC workers a model runs across, and which of its local ones are stopped.

A model's ``rpc`` column is its ``--rpc host:port,...`` list; an entry is one of the registered
workers when its endpoint is that worker's (:attr:`~llamadash.core.workers.Worker.endpoint`). A
local worker of the list that does not run makes llama-server stop at once ("Failed to connect"),
so the CLI's ``run`` and the window's Start say so first and offer to start it.

Pure Python; reads the open database.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from llamadash.core import workers
from llamadash.core.params import COLUMN
from llamadash.core.workers import Worker

__all__ = ["model_endpoints", "model_workers", "stopped_local_workers"]


def model_endpoints(model: Mapping[str, Any]) -> list[str]:
    """The ``host:port`` entries of ``model``'s ``rpc`` list, in order."""
    value = model.get(COLUMN.rpc)
    items = value.split(",") if isinstance(value, str) else list(value or [])
    return [str(item).strip() for item in items if str(item).strip()]


def model_workers(model: Mapping[str, Any]) -> list[Worker]:
    """The registered workers ``model``'s ``rpc`` list names, in its order (unregistered entries skipped)."""
    by_endpoint: dict[str, Worker] = {}
    for worker in workers.list_workers():
        by_endpoint.setdefault(worker.endpoint, worker)
    return [by_endpoint[e] for e in model_endpoints(model) if e in by_endpoint]


def stopped_local_workers(model: Mapping[str, Any], running: Callable[[str], bool]) -> list[Worker]:
    """The local workers of ``model``'s ``rpc`` list for which ``running(name)`` is false."""
    return [w for w in model_workers(model) if w.local and not running(w.name)]
