"""Which ``ggml-rpc-server`` processes llamadash started, so that a killed dashboard's workers are found.

The same scheme as the llama-servers' records (:mod:`llamadash.core.pidfile`), under its own
metadata key (:data:`METADATA_KEY`): one :class:`~llamadash.core.pidfile.InstanceRecord` per running
local worker (its ``model`` field holds the worker's name), written the moment the process exists
and removed when it ends. :func:`scan` sorts them: the owner is alive (a ``llamadash workers start``
in a terminal, or the window) -> *foreign*, left alone; the owner is gone but the process is still
the same worker (PID, create time and a worker executable) -> *orphan*, to stop; neither -> dropped.

A dashboard can be killed between creating the process and writing its record, so every worker
also carries marker variables (:func:`marker_environment`: the database that launched it, its
name, its owner); :func:`scan` also finds ``ggml-rpc-server`` processes with this database's
markers and no record. Workers launched from another data directory are never taken for ours.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import psutil

from llamadash.core import database as db
from llamadash.core.pidfile import (
    CREATE_TIME_SLACK_S,
    InstanceRecord,
    Leftovers,
    RecordStore,
    canonical_path,
    owner_alive,
    owner_identity,
    runs_program,
    stop_processes,
)
from llamadash.core.workers import RPC_SERVER_NAMES

__all__ = [
    "METADATA_KEY",
    "add_record",
    "discover",
    "load_records",
    "marker_environment",
    "remove_record",
    "scan",
    "stop_orphans",
]

_log = logging.getLogger(__name__)

METADATA_KEY = "worker_pids"
#: The marker variables of a launched worker (see :func:`marker_environment`).
ENV_DATABASE = "LLAMADASH_WORKER_DATABASE"
ENV_NAME = "LLAMADASH_WORKER_NAME"
ENV_HOST = "LLAMADASH_WORKER_HOST"
ENV_PORT = "LLAMADASH_WORKER_PORT"
ENV_OWNER_PID = "LLAMADASH_WORKER_OWNER_PID"
ENV_OWNER_CREATE_TIME = "LLAMADASH_WORKER_OWNER_CREATE_TIME"


def marker_environment(
    name: str, host: str, port: int, *, database_path: Path | None = None
) -> dict[str, str]:
    """The variables a launched worker carries, so that it is found even without a record."""
    owner_pid, owner_created = owner_identity()
    path = database_path if database_path is not None else db.get_database_path()
    values = {
        ENV_DATABASE: canonical_path(path),
        ENV_NAME: name,
        ENV_HOST: host,
        ENV_PORT: str(port),
        ENV_OWNER_PID: str(owner_pid),
        ENV_OWNER_CREATE_TIME: repr(owner_created),
    }
    return {key: value.replace("\0", "") for key, value in values.items()}


def discover(known_pids: Iterable[int] = (), *, database_path: Path | None = None) -> list[InstanceRecord]:
    """Workers that carry this database's markers but are not in ``known_pids`` (no record)."""
    known = set(known_pids)
    database = canonical_path(database_path if database_path is not None else db.get_database_path())
    found = []
    for proc in psutil.process_iter():
        if proc.pid in known or not is_rpc_server(proc):
            continue
        try:
            env = proc.environ()
            created = proc.create_time()
        except (psutil.Error, OSError):
            continue  # another user's process, or gone
        marked = env.get(ENV_DATABASE)
        if not marked or canonical_path(marked) != database:
            continue
        try:
            owner_created = float(env.get(ENV_OWNER_CREATE_TIME) or 0.0)
            port = int(env.get(ENV_PORT) or 0) or None
            owner_pid = int(env.get(ENV_OWNER_PID) or 0)
        except ValueError:
            owner_created, port, owner_pid = 0.0, None, 0
        found.append(
            InstanceRecord(
                pid=proc.pid,
                create_time=created,
                model=env.get(ENV_NAME) or "",
                host=env.get(ENV_HOST) or "127.0.0.1",
                port=port,
                owner_pid=owner_pid,
                owner_create_time=owner_created,
            )
        )
    return found


#: The workers' records (the same scheme as the llama-servers', under :data:`METADATA_KEY`).
RECORDS = RecordStore(METADATA_KEY)


def load_records() -> list[InstanceRecord]:
    """The stored worker records; unreadable entries are skipped (and logged)."""
    return RECORDS.load()


def add_record(record: InstanceRecord) -> None:
    """Remember a started worker (replacing a record of the same PID)."""
    RECORDS.add(record)


def remove_record(pid: int) -> None:
    """Forget a worker process."""
    RECORDS.remove(pid)


def is_rpc_server(proc: psutil.Process, binary: str = "") -> bool:
    """Whether ``proc`` runs ``ggml-rpc-server`` (or the recorded ``binary``)."""
    return runs_program(proc, RPC_SERVER_NAMES, binary)


def _alive(record: InstanceRecord) -> bool:
    try:
        proc = psutil.Process(record.pid)
        if abs(proc.create_time() - record.create_time) > CREATE_TIME_SLACK_S:
            return False
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
    except psutil.Error:
        return False
    return is_rpc_server(proc, record.binary)


def scan(*, prune: bool = True, unrecorded: bool = True) -> Leftovers:
    """Sort the worker records into orphans, foreign (a live llamadash runs them) and stale ones.

    Args:
        prune: Remove stale records from the database.
        unrecorded: Also look for workers of this database that have no record (:func:`discover`).
    """
    found = Leftovers()
    live: set[int] = set()
    for record in load_records():
        if not _alive(record):
            found.dropped.append(record)
            continue
        live.add(record.pid)
        (found.foreign if owner_alive(record) else found.orphans).append(record)
    for record in discover(live) if unrecorded else ():
        (found.foreign if owner_alive(record) else found.orphans).append(record)
    if prune and found.dropped:
        dropped = {r.pid for r in found.dropped}
        with db.transaction():
            RECORDS.save([r for r in load_records() if r.pid not in dropped])
    return found


def stop_orphans(
    orphans: Iterable[InstanceRecord], timeout_s: float = 5.0
) -> tuple[list[InstanceRecord], list[InstanceRecord]]:
    """Stop leftover workers (terminate, then kill) and forget their records; blocking but bounded.

    Returns:
        (the records whose processes were stopped, those still alive afterwards).
    """
    records = list(orphans)
    if not records:
        return [], []
    left = set(stop_processes([r.pid for r in records], timeout_s))
    stopped = [r for r in records if r.pid not in left]
    for record in stopped:
        remove_record(record.pid)
    return stopped, [r for r in records if r.pid in left]
