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

A record is written the moment the child exists, but a dashboard can be killed even sooner (between
the fork and the write). So every launch also puts marker variables in the child's environment
(:func:`marker_environment`: which database launched it, the model, the owner's PID and create
time), and :func:`scan` also finds llama-server processes that carry this database's markers but
have no record (:func:`discover`). Where a process's environment cannot be read, a llama-server
whose command line is what llamadash would use for a library model (its ``--model`` and
``--port``) and which listens on that port counts too. Processes launched from another database
(another data directory) are never taken for ours.

A PID alone is not trusted: after a reboot or a long time the number belongs to another program, so
the process's create time and executable must match too.
"""

from __future__ import annotations

import contextlib
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
from llamadash.core import library, proc_children
from llamadash.core.llama_server import METADATA_KEY as BINARY_METADATA_KEY
from llamadash.core.params import COLUMN, DEFAULT_HOST, load_schema
from llamadash.core.states import ACTIVE_STATES

__all__ = [
    "ERROR_KEY_PREFIX",
    "METADATA_KEY",
    "SERVER_RECORDS",
    "InstanceRecord",
    "Leftovers",
    "RecordStore",
    "add_record",
    "canonical_path",
    "clear_error_reason",
    "discover",
    "is_llama_server",
    "load_error_reason",
    "load_records",
    "marker_environment",
    "owner_alive",
    "owner_identity",
    "remove_record",
    "reset_stale_statuses",
    "runs_program",
    "save_error_reason",
    "save_records",
    "scan",
    "stop_processes",
]

_log = logging.getLogger(__name__)

METADATA_KEY = "instance_pids"
#: Create times are floats from /proc; a record matches its process within this many seconds.
CREATE_TIME_SLACK_S = 1.0

#: The marker variables every launched llama-server carries (see :func:`marker_environment`).
ENV_DATABASE = "LLAMADASH_INSTANCE_DATABASE"
ENV_MODEL = "LLAMADASH_INSTANCE_MODEL"
ENV_MODEL_ID = "LLAMADASH_INSTANCE_MODEL_ID"
ENV_HOST = "LLAMADASH_INSTANCE_HOST"
ENV_PORT = "LLAMADASH_INSTANCE_PORT"
ENV_BINARY = "LLAMADASH_INSTANCE_BINARY"
ENV_STARTED_AT_MS = "LLAMADASH_INSTANCE_STARTED_AT_MS"
ENV_OWNER_PID = "LLAMADASH_INSTANCE_OWNER_PID"
ENV_OWNER_CREATE_TIME = "LLAMADASH_INSTANCE_OWNER_CREATE_TIME"
#: Why a model is in error (metadata ``instance_error:<model id>``), for ``status`` and ``models show``.
ERROR_KEY_PREFIX = "instance_error:"
#: Characters of an error reason kept (a crash reason ends with a log tail).
MAX_ERROR_REASON_CHARS = 4000

MARKER_VARIABLES = (
    ENV_DATABASE,
    ENV_MODEL,
    ENV_MODEL_ID,
    ENV_HOST,
    ENV_PORT,
    ENV_BINARY,
    ENV_STARTED_AT_MS,
    ENV_OWNER_PID,
    ENV_OWNER_CREATE_TIME,
)


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


class RecordStore:
    """The records of one kind of process that llamadash starts, kept under one metadata key.

    llama-servers use :data:`SERVER_RECORDS` (:data:`METADATA_KEY`); the RPC workers of
    :mod:`llamadash.core.worker_records` their own key. Adding and removing a record is one write
    transaction (``BEGIN IMMEDIATE``): two processes that start servers at the same moment both keep
    their record.
    """

    def __init__(self, key: str) -> None:
        self.key = key

    def load(self) -> list[InstanceRecord]:
        """The records in the database; unreadable entries are skipped (and logged)."""
        text = db.get_metadata(self.key)
        if not text:
            return []
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            _log.warning("the %s metadata is not JSON; ignoring it", self.key)
            return []
        records = []
        for item in data if isinstance(data, list) else []:
            try:
                records.append(InstanceRecord.from_dict(item))
            except ValueError as exc:
                _log.warning("%s", exc)
        return records

    def save(self, records: Iterable[InstanceRecord]) -> None:
        """Replace the records in the database (the key is deleted when there are none)."""
        items = [r.as_dict() for r in records]
        if items:
            db.set_metadata(self.key, json.dumps(items))
        else:
            db.delete_metadata(self.key)

    def add(self, record: InstanceRecord) -> None:
        """Remember a started process (replacing a record of the same PID)."""
        with db.transaction():
            self.save([*(r for r in self.load() if r.pid != record.pid), record])

    def remove(self, pid: int) -> None:
        """Forget a process."""
        with db.transaction():
            records = self.load()
            kept = [r for r in records if r.pid != pid]
            if len(kept) != len(records):
                self.save(kept)


#: The llama-servers' records.
SERVER_RECORDS = RecordStore(METADATA_KEY)


def load_records() -> list[InstanceRecord]:
    """The llama-servers' records in the database; unreadable entries are skipped (and logged)."""
    return SERVER_RECORDS.load()


def save_records(records: Iterable[InstanceRecord]) -> None:
    """Replace the llama-servers' records (the key is deleted when there are none)."""
    SERVER_RECORDS.save(records)


def add_record(record: InstanceRecord) -> None:
    """Remember a started llama-server (replacing a record of the same PID)."""
    SERVER_RECORDS.add(record)


def remove_record(pid: int) -> None:
    """Forget a llama-server process."""
    SERVER_RECORDS.remove(pid)


def save_error_reason(model_id: int, reason: str) -> None:
    """Remember why model ``model_id`` is in error (cut to :data:`MAX_ERROR_REASON_CHARS`)."""
    if len(reason) > MAX_ERROR_REASON_CHARS:
        reason = reason[: MAX_ERROR_REASON_CHARS - 1] + "…"
    db.set_metadata(f"{ERROR_KEY_PREFIX}{int(model_id)}", reason)


def load_error_reason(model_id: int) -> str | None:
    """Why model ``model_id`` last ended in error, or ``None`` (never, or it has run since)."""
    return db.get_metadata(f"{ERROR_KEY_PREFIX}{int(model_id)}") or None


def clear_error_reason(model_id: int) -> None:
    """Forget the error reason of model ``model_id`` (it started successfully)."""
    db.delete_metadata(f"{ERROR_KEY_PREFIX}{int(model_id)}")


def runs_program(proc: psutil.Process, programs: Iterable[str], binary: str = "") -> bool:
    """Whether ``proc`` runs one of ``programs`` (by file name, ``.exe`` too) or the recorded ``binary``."""
    try:
        with proc.oneshot():
            names = [proc.name()]
            with contextlib.suppress(psutil.AccessDenied, psutil.ZombieProcess, OSError):
                names.append(proc.exe())
            cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    if cmdline:
        names.append(cmdline[0])
    wanted = {Path(binary).name} if binary else set()
    wanted |= {name + suffix for name in programs for suffix in ("", ".exe")}
    # /proc's name is cut to 15 characters ("ggml-rpc-server" just fits)
    return any(Path(name).name in wanted or name == binary for name in names if name)


def is_llama_server(proc: psutil.Process, binary: str = "") -> bool:
    """Whether ``proc`` runs llama-server (or the recorded ``binary``)."""
    return runs_program(proc, ("llama-server",), binary)


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


def owner_alive(record: InstanceRecord) -> bool:
    """Whether the process that started ``record``'s (its owner: a window, ``run``, ``serve``) still runs."""
    if record.owner_pid <= 0:
        return False
    try:
        owner = psutil.Process(record.owner_pid)
        return bool(
            abs(owner.create_time() - record.owner_create_time) <= CREATE_TIME_SLACK_S
            and owner.status() != psutil.STATUS_ZOMBIE
        )
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def record_is_live(record: InstanceRecord) -> bool:
    """Whether the record's llama-server process is still running."""
    return _process_of(record) is not None


def scan(*, prune: bool = True, unrecorded: bool = True) -> Leftovers:
    """Sort the stored records into orphans, foreign instances and stale records.

    Records of this very process count as foreign (they are not left behind).

    Args:
        prune: Remove stale records from the database.
        unrecorded: Also look for servers launched from this database that have no record
            (:func:`discover`), sorted the same way by their owner.
    """
    found = Leftovers()
    records = load_records()
    me = owner_identity()

    def sort(record: InstanceRecord) -> None:
        if (record.owner_pid, record.owner_create_time) == me or owner_alive(record):
            found.foreign.append(record)
        else:
            found.orphans.append(record)

    live_pids: set[int] = set()
    for record in records:
        if _process_of(record) is None:
            found.dropped.append(record)
        else:
            live_pids.add(record.pid)
            sort(record)
    if unrecorded:
        for record in discover(live_pids):
            sort(record)
    if prune and found.dropped:
        dropped = {r.pid for r in found.dropped}
        save_records([r for r in load_records() if r.pid not in dropped])
    return found


def canonical_path(path: str | Path) -> str:
    """``path`` as markers and records compare it (absolute, links resolved, case as the OS folds it)."""
    return os.path.normcase(os.path.realpath(os.fspath(path)))


def marker_environment(
    *,
    model: str,
    model_id: int | None,
    host: str,
    port: int | None,
    binary: str,
    started_at_ms: int | None = None,
    database_path: Path | None = None,
) -> dict[str, str]:
    """The variables a launched llama-server carries, so that it is found even without a record.

    Args:
        model: The model's name.
        model_id: Its database id.
        host: The address the server binds.
        port: Its port.
        binary: The llama-server executable.
        started_at_ms: When the launch began (Unix ms).
        database_path: The database that launches it (default: the open one).
    """
    owner_pid, owner_created = owner_identity()
    path = database_path if database_path is not None else db.get_database_path()
    values = {
        ENV_DATABASE: canonical_path(path),
        ENV_MODEL: model,
        ENV_MODEL_ID: "" if model_id is None else str(model_id),
        ENV_HOST: host,
        ENV_PORT: "" if port is None else str(port),
        ENV_BINARY: binary,
        ENV_STARTED_AT_MS: "" if started_at_ms is None else str(started_at_ms),
        ENV_OWNER_PID: str(owner_pid),
        ENV_OWNER_CREATE_TIME: repr(owner_created),
    }
    return {key: value.replace("\0", "") for key, value in values.items()}


def _optional_int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _record_from_markers(proc: psutil.Process, env: dict[str, str], database: str) -> InstanceRecord | None:
    """The record a marked process stands for, or ``None`` when another database launched it."""
    marked = env.get(ENV_DATABASE)
    if not marked or canonical_path(marked) != database:
        return None
    try:
        owner_created = float(env.get(ENV_OWNER_CREATE_TIME) or 0.0)
    except ValueError:
        owner_created = 0.0
    try:
        created = proc.create_time()
    except psutil.Error:
        return None
    return InstanceRecord(
        pid=proc.pid,
        create_time=created,
        model=env.get(ENV_MODEL) or "",
        model_id=_optional_int(env.get(ENV_MODEL_ID)),
        host=env.get(ENV_HOST) or "127.0.0.1",
        port=_optional_int(env.get(ENV_PORT)),
        binary=env.get(ENV_BINARY) or "",
        started_at_ms=_optional_int(env.get(ENV_STARTED_AT_MS)),
        owner_pid=_optional_int(env.get(ENV_OWNER_PID)) or 0,
        owner_create_time=owner_created,
    )


def _flag_value(argv: list[str], names: tuple[str, ...]) -> str | None:
    """The value of the last of ``names`` in ``argv`` (``--port 8080`` or ``--port=8080``)."""
    value = None
    for i, arg in enumerate(argv):
        if arg in names and i + 1 < len(argv):
            value = argv[i + 1]
        else:
            for name in names:
                if arg.startswith(name + "="):
                    value = arg[len(name) + 1 :]
    return value


def _listens_on(proc: psutil.Process, port: int) -> bool:
    try:
        connections = proc.net_connections(kind="tcp")
    except psutil.AccessDenied:
        try:  # another user's process: the system-wide table still says whether the port is taken
            connections = [c for c in psutil.net_connections(kind="tcp") if c.pid in (None, proc.pid)]
        except (psutil.Error, OSError):
            return False
    except (psutil.Error, OSError):
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in connections)


_LLAMADASH_PROGRAMS = frozenset({"llamadash", "llamadash-cli", "llamadash.exe", "llamadash-cli.exe"})


def _is_llamadash(argv: list[str]) -> bool:
    """Whether a command line runs llamadash (``llamadash ...``, ``python -m llamadash ...``)."""
    if any(Path(part).name in _LLAMADASH_PROGRAMS for part in argv[:2]):
        return True
    return any(argv[i] == "-m" and argv[i + 1] == "llamadash" for i in range(len(argv) - 1))


def _owner_of_unmarked(proc: psutil.Process) -> tuple[int, float]:
    """The llamadash process that runs ``proc`` (its parent, when that is llamadash), else (0, 0)."""
    try:
        parent = proc.parent()
        if parent is not None and _is_llamadash(parent.cmdline()):
            return parent.pid, parent.create_time()
    except psutil.Error:
        pass
    return 0, 0.0


def _match_library(procs: list[psutil.Process]) -> list[InstanceRecord]:
    """Unmarked-looking llama-servers (environment unreadable) that run a library model as we would.

    A process counts when its ``--model`` is a library model's file, its ``--port`` is that model's
    port, and it listens on that port.
    """
    try:
        models = db.get_models()
    except db.DatabaseError as exc:
        _log.warning("cannot read the library to look for unrecorded servers: %s", exc)
        return []
    wanted: dict[tuple[str, int], dict[str, Any]] = {}
    for model in models:
        port = library.configured_port(model)
        path = model.get(COLUMN.model_path)
        if port is not None and path:
            wanted[(canonical_path(Path(str(path)).expanduser()), port)] = model
    found = []
    for proc in procs:
        try:
            argv = proc.cmdline()
            created = proc.create_time()
        except psutil.Error:
            continue
        port = _optional_int(_flag_value(argv, load_schema()[COLUMN.port].flags))
        path = _flag_value(argv, load_schema()[COLUMN.model_path].flags)
        if port is None or not path:
            continue
        listed = wanted.get((canonical_path(path), port))
        if listed is None or not _listens_on(proc, port):
            continue
        owner_pid, owner_created = _owner_of_unmarked(proc)
        found.append(
            InstanceRecord(
                pid=proc.pid,
                create_time=created,
                model=str(listed["name"]),
                model_id=int(listed["id"]),
                host=_flag_value(argv, load_schema()[COLUMN.host].flags) or DEFAULT_HOST,
                port=port,
                binary=argv[0] if argv else "",
                owner_pid=owner_pid,
                owner_create_time=owner_created,
            )
        )
    return found


def _configured_binary() -> str:
    try:
        return db.get_metadata(BINARY_METADATA_KEY) or ""
    except db.DatabaseError:
        return ""


def discover(known_pids: Iterable[int] = (), *, database_path: Path | None = None) -> list[InstanceRecord]:
    """llama-server processes launched from this database that have no record (``known_pids``).

    A process counts when its environment carries this database's markers
    (:func:`marker_environment`); where the environment cannot be read, when it runs a library
    model as llamadash would (see :func:`_match_library`). A server's own children (router mode)
    inherit the markers: only the topmost process is returned.

    Args:
        known_pids: PIDs that are recorded already (skipped).
        database_path: The database whose servers to find (default: the open one).
    """
    known = set(known_pids)
    database = canonical_path(database_path if database_path is not None else db.get_database_path())
    binary = _configured_binary()
    me = os.getpid()
    found: list[InstanceRecord] = []
    unreadable: list[psutil.Process] = []
    # The process name alone (one cheap read per process) rules out nearly every process; the full
    # check (executable, command line) only runs for the few whose name could be a llama-server.
    # Linux keeps 15 characters of a process name.
    names = {n[:15] for n in ("llama-server", "llama-server.exe", Path(binary).name if binary else "") if n}
    for proc in psutil.process_iter(["name"]):
        if proc.pid in known or proc.pid == me or (proc.info.get("name") or "")[:15] not in names:
            continue
        if not is_llama_server(proc, binary):
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            env = proc.environ()
        except psutil.AccessDenied:
            unreadable.append(proc)
            continue
        except psutil.Error:
            continue
        record = _record_from_markers(proc, env, database)
        if record is not None:
            found.append(record)
    if unreadable:
        found.extend(_match_library(unreadable))
    tops = known | {r.pid for r in found}
    result = []
    for record in found:
        try:
            parent = psutil.Process(record.pid).ppid()
        except psutil.Error:
            continue
        if parent not in tops:
            result.append(record)
    return result


def reset_stale_statuses(live_models: Iterable[str]) -> list[str]:
    """Set models the database calls running/loading, but that have no live process, to ``stopped``.

    Args:
        live_models: Names of models whose llama-server is running (orphans and foreign instances).

    Returns:
        The names that were reset.
    """
    live = set(live_models)
    reset = []
    for status in sorted(ACTIVE_STATES):
        for model in db.get_models(status=status):
            if model["name"] not in live:
                db.update_model(model["id"], {"status": "stopped"})
                reset.append(model["name"])
    return reset


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *proc_children.children(root)]
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []


def _alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (an orphan's zombie waits for init to reap it: it is gone for us)."""
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
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
        with contextlib.suppress(psutil.Error):
            proc.kill()
    still = {p.pid for p in _wait_gone(alive, 2.0)}
    return [pid for pid in wanted if pid in still]


def stop_orphans(
    orphans: Iterable[InstanceRecord], timeout_s: float = 5.0
) -> tuple[list[InstanceRecord], list[InstanceRecord]]:
    """Stop leftover servers (their process trees), forget their records and mark their models stopped.

    The one way to stop orphans: ``llamadash status --stop-orphans`` and the window's *Stop leftover
    servers* (:meth:`InstanceManager.stop_orphans`) both come here. Blocking but bounded.

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
        model = db.get_model(record.model_id) if record.model_id is not None else None
        if model is None:
            model = db.get_model_by_name(record.model)
        if model is not None and model["status"] != "stopped":
            db.update_model(model["id"], {"status": "stopped"})
    return stopped, [r for r in records if r.pid in left]
