"""``llamadash run NAME [--start-workers]``: the model's stopped local RPC workers.

A model whose ``--rpc`` list names a local worker that does not run would stop at once. ``run``
says which, and how to start them (``llamadash workers start W``); with ``--start-workers`` it
starts them itself (in this process, like ``workers start``), waits until each accepts
connections, runs the model, and stops them again when the model stops.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, TextIO

from llamadash.core import model_workers, worker_records, workers
from llamadash.core.workers import WorkerError

__all__ = ["START_WORKERS_FLAG", "add_run_argument", "start_stopped_workers", "stop_started_workers"]

START_WORKERS_FLAG = "--start-workers"
#: How long a worker started for ``run`` may take to accept connections.
WORKER_READY_TIMEOUT_S = 60.0


def add_run_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        START_WORKERS_FLAG,
        dest="start_workers",
        action="store_true",
        help="start the model's stopped local RPC workers first (and stop them when it stops)",
    )


def _running_elsewhere() -> set[str]:
    found = worker_records.scan()
    return {r.model for r in found.foreign + found.orphans}


def start_stopped_workers(
    args: argparse.Namespace, model: dict[str, Any], err: TextIO, data_dir: Path
) -> Any | None:
    """Refuse, or start (``--start-workers``), the stopped local workers of ``model``'s ``--rpc`` list.

    Call with the application object made. Returns the ``WorkerService`` that runs the workers
    started here (``None``: none were needed).

    Raises:
        WorkerError: some are stopped and ``--start-workers`` was not given (the message names
            them and the commands), or one did not start.
    """
    elsewhere = _running_elsewhere()
    stopped = model_workers.stopped_local_workers(model, lambda name: name in elsewhere)
    if not stopped:
        return None
    names = [w.name for w in stopped]
    if not getattr(args, "start_workers", False):
        commands = "; ".join(f"'llamadash workers start {n}'" for n in names)
        raise WorkerError(
            f"{model['name']} runs across RPC workers, and these local ones are stopped: "
            f"{', '.join(names)}. Start them first ({commands}, each in its own terminal), "
            f"or run with {START_WORKERS_FLAG}"
        )
    from PySide6.QtCore import QCoreApplication

    from llamadash.services.rpc_workers import WorkerService, WorkerState

    service = WorkerService(data_dir=data_dir, rpc_server=workers.configured_rpc_server)
    try:
        for worker in stopped:
            print(f"llamadash: starting worker {worker.name} at {worker.endpoint}", file=err, flush=True)
            service.start(worker)
        deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
        while True:
            states = {w.name: service.state(w.name) for w in stopped}
            failed = [n for n, s in states.items() if s in (WorkerState.ERROR, WorkerState.STOPPED)]
            if failed:
                raise WorkerError(
                    f"worker {failed[0]} did not start (see its log: {service.log_path(failed[0])})"
                )
            if all(s == WorkerState.RUNNING for s in states.values()):
                break
            if time.monotonic() > deadline:
                raise WorkerError(
                    f"the workers {', '.join(names)} did not accept connections within {WORKER_READY_TIMEOUT_S:g} s"
                )
            QCoreApplication.processEvents()
            time.sleep(0.05)
    except BaseException:
        stop_started_workers(service, err)
        raise
    for worker in stopped:
        print(f"llamadash: worker {worker.name} is ready at {worker.endpoint}", file=err, flush=True)
    return service


def stop_started_workers(service: Any | None, err: TextIO) -> bool:
    """Stop the workers :func:`start_stopped_workers` started; ``False`` if one did not stop."""
    if service is None:
        return True
    stopped = bool(service.stop_all(timeout_s=10.0))
    if not stopped:
        print("llamadash: error: an RPC worker started for this run did not stop", file=err)
    service.deleteLater()
    return stopped
