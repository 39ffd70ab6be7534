"""Which llama-server processes llamadash started, kept in the database so that a killed dashboard's
leftovers (orphans) are found by the next start.

Pure Python (psutil + the database). The records live in the metadata key ``instance_pids`` as a
JSON list, one object per running instance: its PID, create time, port, host, model, binary, start
time, and the PID and create time of the llamadash process that owns it. At start-up a dashboard
sorts the records out with :func:`scan`:

* the owner is alive (another llamadash, e.g. ``llamadash run`` in a terminal): the instance is
  *foreign*; it is left alone;
* the owner is gone but the process is still the same llama-server (same PID, same create time, a
  llama-server executable): an *orphan*, to adopt (monitor) or stop;
* neither: a stale record, dropped.

A PID alone is not trusted: after a reboot or a long time the number belongs to another program, so
the process's create time and executable must match too.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from llamadash.core import database as db

__all__ = [
    "METADATA_KEY",
    "InstanceRecord",
    "Leftovers",
    "add_record",
    "is_llama_server",
    "load_records",
    "owner_identity",
    "remove_record",
    "reset_stale_statuses",
    "save_records",
    "scan",
    "stop_processes",
]

_log = logging.getLogger(__name__)

METADATA_KEY = "instance_pids"
#: Create times are floats from /proc; a record matches its process within this many seconds.
CREATE_TIME_SLACK_S = 1.0


@dataclass(frozen=True)
class InstanceRecord:
    """One llama-server process started by llamadash.

    Attributes:
        pid: The llama-server process.
        create_time: Its ``psutil.Process.create_time()`` (Unix seconds).
        model: The model's name when it was started.
        model_id: The model's database id.
        host: The address it listens on.
        port: The port it listens on.
        binary: The llama-server executable.
        started_at_ms: When llamadash started it (Unix ms).
        owner_pid: The llamadash process that started it.
        owner_create_time: That process's create time.
    """

    pid: int
    create_time: float
    model: str
    model_id: int | None = None
    host: str = "127.0.0.1"
    port: int | None = None
    binary: str = ""
    started_at_ms: int | None = None
    owner_pid: int = 0
    owner_create_time: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InstanceRecord:
        """A record from :meth:`as_dict` output (unknown keys ignored).

        Raises:
            ValueError: A required field is missing or of the wrong type.
        """
        try:
            return cls(
                pid=int(data["pid"]),
                create_time=float(data["create_time"]),
                model=str(data["model"]),
                model_id=None if data.get("model_id") is None else int(data["model_id"]),
                host=str(data.get("host") or "127.0.0.1"),
                port=None if data.get("port") is None else int(data["port"]),
                binary=str(data.get("binary") or ""),
                started_at_ms=None if data.get("started_at_ms") is None else int(data["started_at_ms"]),
                owner_pid=int(data.get("owner_pid") or 0),
                owner_create_time=float(data.get("owner_create_time") or 0.0),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"bad instance record {data!r}: {exc}") from None

    @property
    def url(self) -> str:
        """The base URL the server answers on."""
        host = connect_host(self.host)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"


def connect_host(host: str | None) -> str:
    """Where a client on this machine reaches a server bound to ``host`` (``0.0.0.0`` -> loopback)."""
    if not host or host == "0.0.0.0":
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "::1"
    return host.strip("[]")


@dataclass
class Leftovers:
    """What :func:`scan` found.

    Attributes:
        orphans: llama-server processes whose llamadash is gone.
        foreign: Instances owned by another llamadash process that is still running.
        dropped: Records whose process is gone (removed from the database).
    """

    orphans: list[InstanceRecord] = field(default_factory=list)
    foreign: list[InstanceRecord] = field(default_factory=list)
    dropped: list[InstanceRecord] = field(default_factory=list)


_own_identity: tuple[int, float] | None = None


def owner_identity() -> tuple[int, float]:
    """This process's (PID, create time), which records carry as their owner."""
    global _own_identity
    pid = os.getpid()
    if _own_identity is None or _own_identity[0] != pid:  # a fork gets a new identity
        _own_identity = (pid, psutil.Process(pid).create_time())
    return _own_identity


def load_records() -> list[InstanceRecord]:
    """The records in the database; unreadable entries are skipped (and logged)."""
    text = db.get_metadata(METADATA_KEY)
    if not text:
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        _log.warning("the %s metadata is not JSON; ignoring it", METADATA_KEY)
        return []
    records = []
    for item in data if isinstance(data, list) else []:
        try:
            records.append(InstanceRecord.from_dict(item))
        except ValueError as exc:
            _log.warning("%s", exc)
    return records


def save_records(records: Iterable[InstanceRecord]) -> None:
    """Replace the records in the database (the key is deleted when there are none)."""
    items = [r.as_dict() for r in records]
    if items:
        db.set_metadata(METADATA_KEY, json.dumps(items))
    else:
        db.delete_metadata(METADATA_KEY)


def add_record(record: InstanceRecord) -> None:
    """Remember a started process (replacing a record of the same PID)."""
    records = [r for r in load_records() if r.pid != record.pid]
    save_records([*records, record])


def remove_record(pid: int) -> None:
    """Forget a process."""
    records = load_records()
    kept = [r for r in records if r.pid != pid]
    if len(kept) != len(records):
        save_records(kept)


def is_llama_server(proc: psutil.Process, binary: str = "") -> bool:
    """Whether ``proc`` runs llama-server (or the recorded ``binary``)."""
    try:
        with proc.oneshot():
            names = [proc.name()]
            try:
                names.append(proc.exe())
            except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
                pass
            cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    if cmdline:
        names.append(cmdline[0])
    wanted = {Path(binary).name} if binary else set()
    wanted |= {"llama-server", "llama-server.exe"}
    return any(Path(name).name in wanted or name == binary for name in names if name)


def _process_of(record: InstanceRecord) -> psutil.Process | None:
    """The live process ``record`` describes, or ``None`` when it is gone or the PID was reused."""
    try:
        proc = psutil.Process(record.pid)
        if abs(proc.create_time() - record.create_time) > CREATE_TIME_SLACK_S:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return proc if is_llama_server(proc, record.binary) else None


def _owner_alive(record: InstanceRecord) -> bool:
    if record.owner_pid <= 0:
        return False
    try:
        owner = psutil.Process(record.owner_pid)
        return (
            abs(owner.create_time() - record.owner_create_time) <= CREATE_TIME_SLACK_S
            and owner.status() != psutil.STATUS_ZOMBIE
        )
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def record_is_live(record: InstanceRecord) -> bool:
    """Whether the record's llama-server process is still running."""
    return _process_of(record) is not None


def scan(*, prune: bool = True) -> Leftovers:
    """Sort the stored records into orphans, foreign instances and stale records.

    Records of this very process count as foreign (they are not left behind).

    Args:
        prune: Remove stale records from the database.
    """
    found = Leftovers()
    records = load_records()
    me = owner_identity()
    for record in records:
        live = _process_of(record) is not None
        if not live:
            found.dropped.append(record)
        elif (record.owner_pid, record.owner_create_time) == me or _owner_alive(record):
            found.foreign.append(record)
        else:
            found.orphans.append(record)
    if prune and found.dropped:
        dropped = {r.pid for r in found.dropped}
        save_records([r for r in load_records() if r.pid not in dropped])
    return found


def reset_stale_statuses(live_models: Iterable[str]) -> list[str]:
    """Set models the database calls running/loading, but that have no live process, to ``stopped``.

    Args:
        live_models: Names of models whose llama-server is running (orphans and foreign instances).

    Returns:
        The names that were reset.
    """
    live = set(live_models)
    reset = []
    for status in ("running", "loading"):
        for model in db.get_models(status=status):
            if model["name"] not in live:
                db.update_model(model["id"], {"status": "stopped"})
                reset.append(model["name"])
    return reset


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []


def _alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (an orphan's zombie waits for init to reap it: it is gone for us)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_gone(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    alive = [p for p in procs if _alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if _alive(p)]
    return alive


def stop_processes(pids: Iterable[int], timeout_s: float = 5.0) -> list[int]:
    """Stop processes and their children: terminate, wait up to ``timeout_s``, then kill.

    On Windows the tree is killed at once: console programs ignore the polite request.

    Returns:
        The PIDs (of those given) still alive afterwards (normally none).
    """
    wanted = list(pids)
    procs: list[psutil.Process] = []
    for pid in wanted:
        procs.extend(_tree(pid))
    if not procs:
        return []
    gentle = sys.platform != "win32"
    for proc in procs:
        try:
            if gentle:
                proc.terminate()
            else:
                proc.kill()
        except psutil.Error:
            pass
    alive = _wait_gone(procs, timeout_s if gentle else 1.0)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    still = {p.pid for p in _wait_gone(alive, 2.0)}
    return [pid for pid in wanted if pid in still]
