"""``llamadash workers ...``: llama.cpp RPC workers from the command line.

``list`` shows the local and remote workers (a local one's process from its PID record, a remote
one's reachability by a TCP connect); ``start`` runs a local ``ggml-rpc-server`` in the
foreground, like ``llamadash run`` (Ctrl-C or SIGTERM stops it); ``add`` registers a remote worker;
``remove`` forgets one; ``stop`` ends a local worker another llamadash (or a killed one) left
running; ``use`` gives a model its workers (``--rpc host:port,...`` on its command line, with
``--tensor-split`` and ``--device`` when given).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import socket
import sys
from pathlib import Path
from typing import Any, TextIO

from llamadash.core import pidfile, worker_records, workers
from llamadash.core.params import COLUMN, load_schema
from llamadash.core.workers import Worker, WorkerError

__all__ = ["USER_ERRORS", "add_parser", "cmd_workers", "print_worker_status", "worker_rows"]

USER_ERRORS: tuple[type[BaseException], ...] = (WorkerError,)
CONFIRM_FLAG = "--confirm-open-network"


def add_parser(sub: Any) -> None:
    """Register ``workers`` and its actions on the top-level subparsers."""
    p_workers = sub.add_parser("workers", help="llama.cpp RPC workers: one model across machines")
    w_sub = p_workers.add_subparsers(dest="workers_command", metavar="ACTION", required=True)
    p = w_sub.add_parser("list", help="the local and remote workers, their state and reachability")
    p.add_argument("--json", action="store_true")
    p = w_sub.add_parser(
        "start",
        help="run a local ggml-rpc-server in the foreground (created if NAME is new; the options given "
        "are saved); Ctrl-C or SIGTERM stops it",
    )
    p.add_argument("name")
    p.add_argument("--host", help="the address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, help=f"the port (default: {workers.DEFAULT_WORKER_PORT})")
    p.add_argument("--threads", type=int, help="threads for the CPU device")
    p.add_argument("--device", metavar="DEV[,DEV...]", help="the devices to expose (default: all)")
    cache = p.add_mutually_exclusive_group()
    cache.add_argument(
        "--cache", action="store_true", default=None, help="keep large tensors in a local cache (-c)"
    )
    cache.add_argument("--no-cache", dest="cache", action="store_false", help="no local cache")
    p.add_argument(
        CONFIRM_FLAG,
        dest="confirm_open_network",
        action="store_true",
        help=f"allow a non-loopback --host although llama.cpp warns: {workers.RPC_WARNING}",
    )
    p = w_sub.add_parser("add", help="register a remote worker that another machine runs")
    p.add_argument("name")
    p.add_argument("endpoint", metavar="HOST:PORT")
    p = w_sub.add_parser("remove", help="forget a worker (a local one must be stopped)")
    p.add_argument("name")
    p = w_sub.add_parser("stop", help="stop a local worker that another or a killed llamadash left running")
    p.add_argument("name")
    p = w_sub.add_parser(
        "use", help="run a model across workers: sets its --rpc list (and --tensor-split, --device)"
    )
    p.add_argument("model")
    p.add_argument("names", metavar="WORKER[,WORKER...]", nargs="?", help="the workers, in order")
    p.add_argument("--none", action="store_true", help="take the model off its workers (clears --rpc)")
    p.add_argument("--tensor-split", metavar="N,N,...", help="proportions per device, local ones first")
    p.add_argument("--device", metavar="DEV,...", help="llama-server's --device list (e.g. RPC0,RPC1)")


def cmd_workers(args: argparse.Namespace, out: TextIO, err: TextIO, data_dir: Path) -> int:
    """Run one ``workers`` action; user mistakes raise :class:`WorkerError` (one line, exit 1)."""
    action = args.workers_command
    if action == "list":
        return _list(args, out)
    if action == "start":
        return _start(args, out, err, data_dir)
    if action == "add":
        host, port = workers.parse_endpoint(args.endpoint)
        worker = workers.add_worker(workers.make_worker(args.name, kind="remote", host=host, port=port))
        print(f"added remote worker {worker.name} at {worker.endpoint}", file=out)
        reachable, reason = tcp_check(worker)
        if not reachable:
            print(f"llamadash: warning: {worker.endpoint} does not answer now: {reason}", file=err)
        return 0
    if action == "remove":
        worker = _existing(args.name)
        running = [r for r in _live_records() if r.model == worker.name]
        if running:
            raise WorkerError(
                f"worker {worker.name} is running (pid {running[0].pid}); stop it first "
                f"('llamadash workers stop {worker.name}')"
            )
        workers.delete_worker(worker.name)
        print(f"removed worker {worker.name}", file=out)
        return 0
    if action == "stop":
        worker = _existing(args.name)
        running = [r for r in _live_records() if r.model == worker.name]
        if not running:
            raise WorkerError(f"worker {worker.name} is not running")
        left = pidfile.stop_processes([r.pid for r in running], timeout_s=5.0)
        for record in running:
            if record.pid not in left:
                worker_records.remove_record(record.pid)
        if left:
            raise WorkerError(f"worker {worker.name} did not stop (pid {', '.join(map(str, left))})")
        print(f"stopped worker {worker.name} (pid {', '.join(str(r.pid) for r in running)})", file=out)
        return 0
    if action == "use":
        return _use(args, out, err, data_dir)
    raise AssertionError(action)


# ------------------------------------------------------------------------------------------------
def _existing(name: str) -> Worker:
    worker = workers.get_worker(name)
    if worker is None:
        raise WorkerError(f"no worker called {name!r} (see 'llamadash workers list')")
    return worker


def _live_records() -> list[Any]:
    found = worker_records.scan()
    return found.foreign + found.orphans


def tcp_check(worker: Worker, timeout_s: float = 2.0) -> tuple[bool, str]:
    """Whether ``worker`` accepts a TCP connection now (blocking, bounded; the CLI only)."""
    try:
        with socket.create_connection((workers.connect_host(worker.host), worker.port), timeout=timeout_s):
            return True, ""
    except TimeoutError:
        return False, f"no answer within {timeout_s:g} s"
    except OSError as exc:
        return False, exc.strerror or str(exc)


def worker_rows() -> list[dict[str, Any]]:
    """Every worker as ``workers list --json`` (and ``status --json``) shows it: its fields,
    ``state`` (local: running / stopped / orphan; remote: reachable / unreachable), ``pid``,
    ``reachable``, ``reason``, ``endpoint`` and ``warning``."""
    known = workers.list_workers()
    if not known:
        return []
    found = worker_records.scan()
    foreign = {r.model: r for r in found.foreign}
    orphans = {r.model: r for r in found.orphans}
    remote = [w for w in known if not w.local]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(8, len(remote)))) as pool:
        checks = dict(zip([w.name for w in remote], pool.map(tcp_check, remote), strict=True))
    rows: list[dict[str, Any]] = []
    for worker in known:
        item = worker.as_dict()
        if worker.local:
            record = foreign.get(worker.name) or orphans.get(worker.name)
            item["state"] = "orphan" if worker.name in orphans else ("running" if record else "stopped")
            item["pid"] = record.pid if record else None
            item["reachable"] = None
            item["reason"] = None
        else:
            reachable, reason = checks[worker.name]
            item["state"] = "reachable" if reachable else "unreachable"
            item["pid"] = None
            item["reachable"] = reachable
            item["reason"] = reason or None
        rows.append(item)
    return rows


def print_worker_status(rows: list[dict[str, Any]], out: TextIO) -> None:
    """The workers' part of ``llamadash status`` (nothing when there are none)."""
    if not rows:
        return
    print("\nRPC workers:", file=out)
    table = [("NAME", "KIND", "ENDPOINT", "STATE", "PID", "")]
    for item in rows:
        note = item["reason"] or ""
        if item["warning"]:
            note += ("; " if note else "") + "WARNING: " + item["warning"]
        pid = str(item["pid"] or "-")
        table.append((item["name"], item["kind"], item["endpoint"], item["state"], pid, note))
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    for r in table:
        print(("  ".join(r[i].ljust(widths[i]) for i in range(5)) + "  " + r[5]).rstrip(), file=out)


def _list(args: argparse.Namespace, out: TextIO) -> int:
    known = workers.list_workers()
    rows = worker_rows()
    orphans = {item["name"] for item in rows if item["state"] == "orphan"}
    if args.json:
        json.dump(rows, out, indent=2)
        print(file=out)
        return 0
    if not rows:
        print(
            "no workers yet: start a local one with 'llamadash workers start NAME', or register one "
            "that another machine runs with 'llamadash workers add NAME HOST:PORT'",
            file=out,
        )
        return 0
    table = [("NAME", "KIND", "ENDPOINT", "STATE", "DETAILS")]
    for worker, item in zip(known, rows, strict=True):
        details = []
        if item["pid"]:
            details.append(f"pid {item['pid']}")
        if worker.devices:
            details.append("devices " + ",".join(worker.devices))
        if worker.threads:
            details.append(f"{worker.threads} thread{'s' if worker.threads != 1 else ''}")
        if worker.cache:
            details.append("cache")
        if item["reason"]:
            details.append(item["reason"])
        warning = workers.open_network_warning(worker)
        if warning:
            details.append("WARNING: " + warning)
        table.append((worker.name, worker.kind, worker.endpoint, item["state"], "; ".join(details)))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for r in table:
        print(("  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4]).rstrip(), file=out)
    if orphans:
        print(
            "\nworkers left running by a llamadash that was killed: stop them with 'llamadash workers stop NAME'",
            file=out,
        )
    return 0


def _start_settings(args: argparse.Namespace) -> Worker:
    """The worker to start: the stored one with the options given, or a new one (saved either way)."""
    stored = workers.get_worker(args.name)
    if stored is not None and not stored.local:
        raise WorkerError(f"{stored.name} is a remote worker: another machine runs it")
    base = stored or Worker(name=args.name)
    host = args.host if args.host is not None else base.host
    # a worker the user confirmed once stays confirmed on the same address (its row keeps the warning)
    confirmed = args.confirm_open_network or (
        stored is not None and stored.open_network and host == stored.host
    )
    try:
        worker = _checked_start_worker(args, base, host, confirmed)
    except workers.OpenNetworkRefused as exc:
        raise workers.OpenNetworkRefused(f"{exc} ({CONFIRM_FLAG})") from None
    running = [r for r in _live_records() if r.model == worker.name]
    if running:  # refused before its settings change under the running process
        raise WorkerError(
            f"worker {worker.name} is already running (pid {running[0].pid}); "
            f"stop it first ('llamadash workers stop {worker.name}')"
        )
    if stored is None:
        return workers.add_worker(worker)
    return workers.update_worker(worker)


def _checked_start_worker(args: argparse.Namespace, base: Worker, host: str, confirmed: bool) -> Worker:
    return workers.make_worker(
        args.name,
        host=host,
        port=args.port if args.port is not None else base.port,
        devices=args.device if args.device is not None else base.devices,
        threads=args.threads if args.threads is not None else base.threads,
        cache=args.cache if args.cache is not None else base.cache,
        confirm_open_network=confirmed,
    )


def _start(args: argparse.Namespace, out: TextIO, err: TextIO, data_dir: Path) -> int:
    from PySide6.QtCore import QCoreApplication

    from llamadash.services.quitting import quit_on_signals
    from llamadash.services.rpc_workers import WorkerService, WorkerState

    worker = _start_settings(args)  # refuses a non-loopback bind without the confirmation
    warning = workers.open_network_warning(worker)
    if warning:
        print(f"llamadash: warning: worker {worker.name} {warning}", file=err, flush=True)
    app = QCoreApplication.instance() or QCoreApplication([sys.argv[0] if sys.argv else "llamadash"])
    service = WorkerService(data_dir=data_dir, rpc_server=workers.configured_rpc_server)
    outcome = {"code": 0}

    def on_line(name: str, line: str) -> None:
        print(line, file=out, flush=True)

    def on_state(name: str, state: str, reason: str) -> None:
        if state == WorkerState.RUNNING:
            print(f"llamadash: worker {name} is ready at {worker.endpoint}", file=err, flush=True)
        elif state == WorkerState.ERROR:
            print(f"llamadash: error: {reason.splitlines()[0] if reason else 'failed'}", file=err, flush=True)
            outcome["code"] = 1
            app.quit()
        elif state == WorkerState.STOPPED:
            app.quit()

    service.logLine.connect(on_line)
    service.stateChanged.connect(on_state)
    restore = quit_on_signals(app)
    try:
        service.start(worker)
        app.exec()
    finally:
        restore()
        if not service.stop_all(timeout_s=10.0):
            print(f"llamadash: error: worker {worker.name} did not stop", file=err)
            outcome["code"] = 1
        service.deleteLater()
    return int(outcome["code"])


def _use(args: argparse.Namespace, out: TextIO, err: TextIO, data_dir: Path) -> int:
    from llamadash.cli import _configured_caps, _library, _report_issues

    schema = load_schema()
    if args.none == bool(args.names):
        raise WorkerError("give the workers (WORKER[,WORKER...]) or --none")
    values: dict[str, Any] = {}
    if args.none:
        values[COLUMN.rpc] = None
    else:
        names = [n.strip() for n in args.names.split(",") if n.strip()]
        chosen = workers.resolve_workers(names)
        values[COLUMN.rpc] = schema[COLUMN.rpc].from_text(",".join(workers.rpc_list(chosen)))
        for worker in chosen:
            if not worker.local:
                continue
            if not any(r.model == worker.name for r in _live_records()):
                print(
                    f"llamadash: note: worker {worker.name} is not running; start it before the model "
                    f"('llamadash workers start {worker.name}')",
                    file=err,
                )
    if args.tensor_split is not None:
        values[COLUMN.tensor_split] = schema[COLUMN.tensor_split].from_text(args.tensor_split)
    if args.device is not None:
        values[COLUMN.device] = schema[COLUMN.device].from_text(args.device)
    caps = _configured_caps(data_dir)  # before the transaction: it may run llama-server --help

    def check(config: Any, changed: set[str]) -> None:
        _report_issues(dict(config), changed, err, caps)

    changed = _library().set_parameters(args.model, values, check=check)
    model = changed.model
    rpc = schema[COLUMN.rpc].to_text(model.get(COLUMN.rpc)) if model.get(COLUMN.rpc) else "(none)"
    print(f"updated {model['name']}: rpc = {rpc} (from its next start)", file=out)
    return 0
