"""llama.cpp RPC workers: records, the ``ggml-rpc-server`` command, and the open-network guard.

llama.cpp's RPC backend (``tools/rpc`` in llama.cpp) spreads one model over several machines: each
machine runs ``ggml-rpc-server`` (a *worker*, which exposes its devices over TCP) and the
llama-server that serves the model is given ``--rpc host:port,...``. A worker is **local** (a
process llamadash starts on this machine) or **remote** (another machine runs it; llamadash only
checks that it is reachable). The workers are rows of the ``workers`` table
(:class:`~llamadash.core.db.models.WorkerRow`).

The RPC protocol has no authentication: whoever reaches a worker's port can make it allocate
memory and run computations. llama.cpp's README says so plainly (:data:`RPC_WARNING`), so a local
worker binds to loopback unless the caller passes an explicit confirmation
(:func:`check_bind_host`), and the confirmation is kept with the worker so that its row keeps
showing the warning (:func:`open_network_warning`).

Pure Python: building a command (:func:`build_worker_command`) starts nothing; the database
functions work on the open database (:func:`llamadash.core.db.current`).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from llamadash.core.db import workers as worker_rows
from llamadash.core.db.connection import now_ms
from llamadash.core.messages import short_repr

__all__ = [
    "DEFAULT_WORKER_PORT",
    "KINDS",
    "RPC_WARNING",
    "OpenNetworkRefused",
    "Worker",
    "WorkerError",
    "add_worker",
    "build_worker_command",
    "check_bind_host",
    "configured_rpc_server",
    "delete_worker",
    "devices_from_log",
    "find_rpc_server",
    "format_endpoint",
    "get_worker",
    "is_loopback",
    "list_workers",
    "open_network_warning",
    "parse_endpoint",
    "rpc_list",
    "update_worker",
]

#: ``ggml-rpc-server``'s own default port.
DEFAULT_WORKER_PORT = 50052
#: The worker kinds: started here, or run by another machine.
KINDS = ("local", "remote")
#: llama.cpp's warning (``tools/rpc/README.md``), quoted wherever a worker is exposed.
RPC_WARNING = "never run the RPC server on an open network or in a sensitive environment"
#: The worker program's names: the current one first (llama.cpp renamed ``rpc-server``).
RPC_SERVER_NAMES = ("ggml-rpc-server", "rpc-server")
_EXE = ".exe" if sys.platform == "win32" else ""
#: A worker name: what a terminal can type without quoting and a ``--workers`` list can split.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: A device name as llama.cpp prints them (``CPU``, ``CUDA0``, ``Vulkan1``, ``MTL0``...).
_DEVICE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
#: A host name or address: letters, digits, dots, dashes, colons (IPv6), no spaces or commas.
_HOST = re.compile(r"^[A-Za-z0-9._:%-]{1,253}$")


class WorkerError(ValueError):
    """A worker could not be added, changed or started; the message says why, for the user."""


class OpenNetworkRefused(WorkerError):
    """A local worker was to bind an address other machines can reach, and nobody confirmed it."""


@dataclass(frozen=True)
class Worker:
    """One RPC worker (a ``workers`` row).

    Attributes:
        name: Unique; what the CLI and a model's worker list call it.
        kind: ``local`` (llamadash starts it here) or ``remote`` (another machine runs it).
        host: The address a local worker binds, or where a remote one is reached.
        port: Its TCP port.
        devices: The ``--device`` list of a local worker (empty: all of the machine's devices).
        threads: ``--threads`` of a local worker (``None``: the worker's default).
        cache: ``-c``: a local worker keeps large tensors in its local file cache.
        open_network: The user confirmed that this local worker binds a non-loopback address.
        id: The row id (``None`` before it is saved).
    """

    name: str
    kind: str = "local"
    host: str = "127.0.0.1"
    port: int = DEFAULT_WORKER_PORT
    devices: tuple[str, ...] = ()
    threads: int | None = None
    cache: bool = False
    open_network: bool = False
    id: int | None = None
    created_at: int | None = None
    updated_at: int | None = None

    @property
    def endpoint(self) -> str:
        """``host:port`` as llama-server's ``--rpc`` takes it (a wildcard bind is reached on loopback)."""
        return format_endpoint(connect_host(self.host), self.port)

    @property
    def local(self) -> bool:
        """Started and stopped by llamadash on this machine."""
        return self.kind == "local"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: what ``workers list --json`` prints: the fields, ``endpoint`` and ``warning``."""
        data = asdict(self)
        data["devices"] = list(self.devices)
        data["endpoint"] = self.endpoint
        data["warning"] = open_network_warning(self)
        return data


_FIELDS = frozenset(f.name for f in fields(Worker))


# ------------------------------------------------------------------------------------------------
# checks
def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine's loopback only (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    text = host.strip().strip("[]").lower()
    if text in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def connect_host(host: str) -> str:
    """Where this machine reaches a worker bound to ``host`` (a wildcard bind: loopback)."""
    text = host.strip().strip("[]")
    if text in ("", "0.0.0.0"):
        return "127.0.0.1"
    if text == "::":
        return "::1"
    return text


def check_host(host: Any) -> str:
    """``host`` stripped, or :class:`WorkerError` when it is not a host name or address."""
    if not isinstance(host, str) or not _HOST.match(host.strip().strip("[]")):
        raise WorkerError(f"not a host name or IP address: {short_repr(host)}")
    return host.strip().strip("[]")


def check_port(port: Any) -> int:
    """``port`` as an int in 1..65535, or :class:`WorkerError`."""
    if isinstance(port, str) and port.strip().isdigit():
        port = int(port.strip())
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise WorkerError(f"a port is a whole number from 1 to 65535, got {short_repr(port)}")
    return port


def check_name(name: Any) -> str:
    """A worker name (letters, digits, ``.``, ``_``, ``-``; up to 64), or :class:`WorkerError`."""
    if not isinstance(name, str) or not _NAME.match(name.strip()):
        raise WorkerError(
            f"a worker name is 1-64 letters, digits, '.', '_' or '-' (starting with a letter or "
            f"digit), got {short_repr(name)}"
        )
    return name.strip()


def check_devices(devices: Any) -> tuple[str, ...]:
    """A ``--device`` list (a comma-separated text or a sequence) as a tuple, or :class:`WorkerError`."""
    if devices is None:
        return ()
    items = devices.split(",") if isinstance(devices, str) else list(devices)
    names = tuple(str(item).strip() for item in items if str(item).strip())
    for device in names:
        if not _DEVICE.match(device):
            raise WorkerError(f"not a device name (such as CPU, CUDA0, Vulkan1): {short_repr(device)}")
    return names


def check_threads(threads: Any) -> int | None:
    """``threads`` as a positive int (``None``: the worker's default), or :class:`WorkerError`."""
    if threads is None:
        return None
    if isinstance(threads, str) and threads.strip().isdigit():
        threads = int(threads.strip())
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 4096:
        raise WorkerError(f"threads is a whole number from 1 to 4096, got {short_repr(threads)}")
    return threads


def check_bind_host(host: str, *, confirmed: bool) -> str:
    """The address a local worker may bind: loopback, or another one the user confirmed.

    Args:
        host: The address to bind.
        confirmed: The user saw :data:`RPC_WARNING` and chose to bind ``host`` anyway.

    Raises:
        OpenNetworkRefused: ``host`` is not loopback and ``confirmed`` is false.
        WorkerError: ``host`` is not a host name or address.
    """
    host = check_host(host)
    if not is_loopback(host) and not confirmed:
        raise OpenNetworkRefused(
            f"refusing to bind an RPC worker to {host}: other machines could reach it, and the RPC "
            f'protocol has no authentication (llama.cpp\'s README: "{RPC_WARNING}"); bind 127.0.0.1, '
            "or confirm that this network is trusted"
        )
    return host


def open_network_warning(worker: Worker) -> str | None:
    """The warning a worker's row keeps showing, or ``None`` for a loopback (or remote) worker."""
    if not worker.local or is_loopback(worker.host):
        return None
    return f"listens on {worker.host}, reachable from other machines: {RPC_WARNING}"


def format_endpoint(host: str, port: int) -> str:
    """``host:port`` (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_endpoint(text: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) -> (host, port).

    Raises:
        WorkerError: ``text`` is not ``host:port``.
    """
    value = text.strip() if isinstance(text, str) else ""
    match = re.match(r"^\[([^\]]+)\]:(\d+)$", value) or re.match(r"^([^:\[\]]+):(\d+)$", value)
    if match is None:
        raise WorkerError(f"expected HOST:PORT (such as 192.168.1.20:50052), got {short_repr(text)}")
    return check_host(match.group(1)), check_port(int(match.group(2)))


def devices_from_log(lines: Iterable[str]) -> list[str]:
    """The devices a ``ggml-rpc-server`` says it exposes, from its start-up lines.

    It prints ``Devices:`` and then one indented ``NAME: description (total MiB, free MiB)`` line
    per device, e.g. ``  CPU: AMD EPYC (24105 MiB, 24105 MiB free)``.
    """
    found: list[str] = []
    in_devices = False
    for line in lines:
        if line.strip() == "Devices:":
            in_devices, found = True, []
            continue
        if in_devices:
            match = re.match(r"^\s+([A-Za-z][\w.-]*): (.+)$", line)
            if match is None or match.group(1) in ("transport", "endpoint", "local cache"):
                in_devices = False
                continue
            found.append(f"{match.group(1)}: {match.group(2)}")
    return found


def rpc_list(workers: Iterable[Worker]) -> list[str]:
    """The ``--rpc`` items (``host:port``) of ``workers``, in order, each once."""
    return list(dict.fromkeys(worker.endpoint for worker in workers))


# ------------------------------------------------------------------------------------------------
# the command
def find_rpc_server(llama_server: str | os.PathLike[str] | None) -> Path | None:
    """The ``ggml-rpc-server`` to run: beside the llama-server in use (the same build), else on ``PATH``.

    llama.cpp installs the worker next to llama-server when it was built with ``-DGGML_RPC=ON``; a
    worker of another build may not speak the same RPC protocol version.
    """
    if llama_server:
        folder = Path(llama_server).expanduser().parent
        for name in RPC_SERVER_NAMES:
            candidate = folder / (name + _EXE)
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    for name in RPC_SERVER_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def configured_rpc_server() -> Path | None:
    """The ``ggml-rpc-server`` beside the llama-server llamadash uses (else on ``PATH``), or ``None``.

    Needs the open database (the configured llama-server is one of its settings).
    """
    from llamadash.core import database
    from llamadash.core.llama_server import METADATA_KEY, LlamaServerNotFound, find_llama_server

    try:
        llama_server: Path | None = find_llama_server(database.get_metadata(METADATA_KEY)).path
    except LlamaServerNotFound:
        llama_server = None
    return find_rpc_server(llama_server)


def build_worker_command(binary: str | os.PathLike[str], worker: Worker) -> list[str]:
    """The argv that starts ``worker`` as a local ``ggml-rpc-server`` (never a shell string).

    The bind address is checked again here (:func:`check_bind_host` with the worker's
    ``open_network``): no command that exposes a worker nobody confirmed is ever built.

    Raises:
        WorkerError: ``worker`` is remote, or its settings are not valid.
        OpenNetworkRefused: it binds a non-loopback address without the confirmation.
    """
    if not worker.local:
        raise WorkerError(f"{worker.name} is a remote worker: another machine runs it")
    host = check_bind_host(worker.host, confirmed=worker.open_network)
    argv = [os.fspath(binary), "--host", host, "--port", str(check_port(worker.port))]
    devices = check_devices(worker.devices)
    if devices:
        argv += ["--device", ",".join(devices)]
    threads = check_threads(worker.threads)
    if threads is not None:
        argv += ["--threads", str(threads)]
    if worker.cache:
        argv.append("--cache")
    return argv


def make_worker(
    name: str,
    *,
    kind: str = "local",
    host: str = "127.0.0.1",
    port: Any = DEFAULT_WORKER_PORT,
    devices: Any = None,
    threads: Any = None,
    cache: bool = False,
    confirm_open_network: bool = False,
) -> Worker:
    """A checked :class:`Worker` (not saved).

    Raises:
        WorkerError: a value is not valid, or a local worker's settings are given to a remote one.
        OpenNetworkRefused: a local worker binds a non-loopback address without the confirmation.
    """
    if kind not in KINDS:
        raise WorkerError(f"a worker is local or remote, got {short_repr(kind)}")
    name = check_name(name)
    port = check_port(port)
    devices = check_devices(devices)
    threads = check_threads(threads)
    if kind == "remote":
        if devices or threads is not None or cache:
            raise WorkerError(
                "devices, threads and the cache are a local worker's settings: the remote machine "
                "chooses them when it starts its ggml-rpc-server"
            )
        return Worker(name, "remote", check_host(host), port)
    host = check_bind_host(host, confirmed=confirm_open_network)
    return Worker(name, "local", host, port, devices, threads, bool(cache), not is_loopback(host))


# ------------------------------------------------------------------------------------------------
# the workers table (the queries: llamadash.core.db.workers)
def _row_to_worker(row: Mapping[str, Any]) -> Worker:
    values = {key: value for key, value in row.items() if key in _FIELDS}
    values["devices"] = tuple(d for d in str(row.get("devices") or "").split(",") if d)
    values["kind"] = row.get("kind") if row.get("kind") in KINDS else "remote"  # unknown: never started
    values["cache"] = bool(row.get("cache"))
    values["open_network"] = bool(row.get("open_network"))
    return Worker(**values)


def _worker_to_row(worker: Worker) -> dict[str, Any]:
    row = asdict(worker)
    row["devices"] = ",".join(worker.devices) or None
    for key in ("id", "created_at", "updated_at"):
        row.pop(key)
    return row


def list_workers() -> list[Worker]:
    """Every worker, by name."""
    return [_row_to_worker(row) for row in worker_rows.list_rows()]


def get_worker(name: str) -> Worker | None:
    """The worker called ``name`` (surrounding spaces ignored), or ``None``."""
    row = worker_rows.get_row(name.strip() if isinstance(name, str) else "")
    return _row_to_worker(row) if row is not None else None


def add_worker(worker: Worker) -> Worker:
    """Save a new worker (from :func:`make_worker`); returns it with its id.

    Raises:
        WorkerError: the name is taken.
    """
    now = now_ms()
    row_id = worker_rows.insert_row(_worker_to_row(worker), now)
    if row_id is None:
        raise WorkerError(f"there is already a worker called {worker.name}")
    return replace(worker, id=row_id, created_at=now, updated_at=now)


def update_worker(worker: Worker) -> Worker:
    """Save the settings of an existing worker (found by name); returns it.

    Raises:
        WorkerError: there is no worker of that name.
    """
    if not worker_rows.update_row(worker.name, _worker_to_row(worker), now_ms()):
        raise WorkerError(f"there is no worker called {worker.name}")
    saved = get_worker(worker.name)
    assert saved is not None
    return saved


def delete_worker(name: str) -> bool:
    """Forget the worker ``name``; returns whether there was one."""
    return worker_rows.delete_row(name.strip() if isinstance(name, str) else "")


def resolve_workers(names: Sequence[str]) -> list[Worker]:
    """The workers called ``names``, in order.

    Raises:
        WorkerError: a name is not a worker (all unknown names are listed).
    """
    found: list[Worker] = []
    missing: list[str] = []
    for name in names:
        worker = get_worker(name)
        if worker is None:
            missing.append(name)
        else:
            found.append(worker)
    if missing:
        raise WorkerError(
            f"no such worker: {', '.join(missing)} (see 'llamadash workers list'; add one with "
            "'llamadash workers add NAME HOST:PORT' or start one with 'llamadash workers start NAME')"
        )
    return found
