"""``llamadash serve``: the whole library at one address (llama-server's router), headless.

``serve`` starts llama-server in router mode with a presets file of every model marked served
(``llamadash models set NAME served=off`` takes one out), prints the one base URL, and runs until
Ctrl-C or SIGTERM, which stop the router and every model process it started. Its settings are those
of the window's Settings > Router, which ``--port``, ``--max-models``, ``--idle`` and
``--no-autoload`` override for this run. ``llamadash status`` lists the router's models and their
states (:func:`router_status`). While it runs it looks at the library every
:data:`LIBRARY_CHECK_MS` (one cheap query: :func:`library_stamp`): an edit made by another process
(``llamadash models set``, the window) rewrites the presets file and has the router read it again,
as the window does for its own router, and what changed is printed (:func:`library_changes`).
The per-model settings ``served``, ``load_on_startup`` and
``stop_timeout_s`` are set with ``models set`` (parsed here: :func:`stop_timeout_value`).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

from llamadash import cli_remote
from llamadash.core import database as db
from llamadash.core.library_service import LOAD_ON_STARTUP, SERVED, STOP_TIMEOUT
from llamadash.core.pidfile import InstanceRecord
from llamadash.core.router import (
    ROUTER_NAME,
    RouterModel,
    RouterPlan,
    RouterReplyError,
    RouterSettings,
    parse_models,
)

__all__ = [
    "LIBRARY_CHECK_MS",
    "add_parser",
    "cmd_serve",
    "library_changes",
    "library_stamp",
    "print_router_settings",
    "router_status",
    "stop_timeout_value",
]

#: How long ``status`` waits for a router's ``/models`` answer.
STATUS_TIMEOUT_S = 2.0
#: How often a running ``serve`` looks for library edits made by another process (ms).
LIBRARY_CHECK_MS = 2000


def library_stamp() -> tuple[Any, ...]:
    """What changes whenever the models table does: its row count, latest ``updated_at`` and id."""
    models = db.get_models()
    return (
        len(models),
        max((int(m.get("updated_at") or 0) for m in models), default=0),
        max((int(m["id"]) for m in models), default=0),
    )


def library_changes(before: RouterPlan, after: RouterPlan) -> list[str]:
    """What a library edit changed for the running router, one line each (empty: nothing)."""
    lines = [f"{name} is served now" for name in after.served if name not in before.served]
    lines += [f"{name} is no longer served" for name in before.served if name not in after.served]
    lines += [
        f"{name}: its settings changed (used from its next load)" for name in after.changed_since(before)
    ]
    left = {item.name for item in before.left_out}
    lines += [f"warning: {item.message()}" for item in after.left_out if item.name not in left]
    return lines


class ServeError(ValueError):
    """A bad option of ``serve`` or ``models set``; the message is for the user."""


def stop_timeout_value(text: str) -> int | None:
    """``stop_timeout_s=N`` of ``models set``: whole seconds, or empty for llama-server's default."""
    if not text.strip():
        return None
    try:
        seconds = int(text.strip())
    except ValueError:
        raise ServeError(f"{STOP_TIMEOUT} is a whole number of seconds, got {text!r}") from None
    if seconds < 0:
        raise ServeError(f"{STOP_TIMEOUT} must be 0 or more seconds, got {seconds}")
    return seconds


def print_router_settings(model: Mapping[str, Any], out: TextIO) -> None:
    """The router lines of ``models show``."""
    timeout = model.get(STOP_TIMEOUT)
    print(
        f"{SERVED}: {'on' if model.get(SERVED, True) else 'off'}, "
        f"{LOAD_ON_STARTUP}: {'on' if model.get(LOAD_ON_STARTUP) else 'off'}, "
        f"{STOP_TIMEOUT}: {'default' if timeout is None else timeout}",
        file=out,
    )


def add_parser(sub: Any) -> None:
    """Register ``serve`` on the CLI's subparsers."""
    p = sub.add_parser(
        "serve",
        help="serve every model marked served at one address (llama-server's router), in the "
        "foreground; Ctrl-C or SIGTERM stops it and its models",
    )
    p.add_argument("--port", type=int, default=None, help="the router's port (default: Settings > Router)")
    p.add_argument(
        "--max-models",
        metavar="N",
        type=int,
        default=None,
        help="the most models loaded at once (0: no limit)",
    )
    p.add_argument(
        "--idle",
        metavar="S",
        type=int,
        default=None,
        help="seconds without requests after which a loaded model sleeps (0: never)",
    )
    p.add_argument(
        "--autoload",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="load a model when a request names it (default: on)",
    )
    p.add_argument(
        "--ready-timeout", metavar="S", type=float, default=120.0, help="seconds the router may take to start"
    )
    cli_remote.add_run_arguments(p)


def _router_settings(args: argparse.Namespace) -> RouterSettings:
    from llamadash.core.settings import load_settings

    stored = RouterSettings.of(load_settings(db))
    chosen = RouterSettings(
        port=stored.port if args.port is None else args.port,
        max_models=stored.max_models if args.max_models is None else args.max_models,
        autoload=stored.autoload if args.autoload is None else args.autoload,
        idle_s=stored.idle_s if args.idle is None else args.idle,
    )
    problems = chosen.problems()
    if problems:
        raise ServeError("; ".join(problems))
    return chosen


def cmd_serve(args: argparse.Namespace, out: TextIO, err: TextIO, data_dir: Path) -> int:
    """Run the library router headless until Ctrl-C/SIGTERM (exit 0) or it fails (exit 1)."""
    from PySide6.QtCore import QCoreApplication, QTimer

    from llamadash.core.launch import LaunchError

    from llamadash.services.manager import InstanceManager, quit_on_signals

    settings = _router_settings(args)
    if not 0 < args.ready_timeout <= 7 * 24 * 3600:
        raise ServeError("--ready-timeout must be a number of seconds above 0 and at most a week")
    prometheus = cli_remote.prometheus_options(args)  # refused before anything starts
    app = QCoreApplication.instance() or QCoreApplication([sys.argv[0] if sys.argv else "llamadash"])
    manager = InstanceManager(data_dir=data_dir, load_timeout_s=args.ready_timeout, quit_with_app=False)
    outcome = {"code": 0, "ready": False}
    states: dict[str, str] = {}

    def say(text: str) -> None:
        print(f"llamadash: {text}", file=err, flush=True)

    def on_line(name: str, line: str) -> None:
        if name == ROUTER_NAME:
            print(line, file=out, flush=True)

    def on_state(name: str, state: str, reason: str) -> None:
        if name != ROUTER_NAME:
            return
        inst = manager.instance(name)
        plan = manager.router_plan
        if state == "running" and not outcome["ready"] and plan is not None:
            outcome["ready"] = True
            say(f"the router is ready: point OpenAI clients at {plan.base_url}")
            say("models: " + ", ".join(plan.served))
        elif state == "error":
            if inst is not None and inst.restart_pending:
                say(f"the router: {reason.splitlines()[0] if reason else 'failed'}")
                return
            say(f"error: {reason.splitlines()[0] if reason else 'the router failed'}")
            outcome["code"] = 1
            app.quit()
        elif state == "stopped" and inst is not None and not inst.active:
            if reason:
                say(f"the router: {reason}")
            app.quit()

    def on_models(models: list[RouterModel]) -> None:
        for model in models:
            shown = model.describe()
            if states.get(model.name) != shown:
                states[model.name] = shown
                say(f"{model.name}: {shown}")

    def on_refused(name: str, why: str) -> None:
        say(f"{name}: {why}")

    manager.logLine.connect(on_line)
    manager.router_models.modelsChanged.connect(on_models)
    manager.router_models.actionFailed.connect(on_refused)
    seen_stamp = [library_stamp()]

    def check_library() -> None:  # an edit by another process: the router reads it as the window's does
        inst = manager.instance(ROUTER_NAME)
        if inst is None or inst.state.value != "running":
            return  # looked at again once it runs
        stamp = library_stamp()
        if stamp == seen_stamp[0]:
            return
        seen_stamp[0] = stamp
        before = manager.router_plan
        try:
            notes = manager.refresh_router()
        except (LaunchError, OSError) as exc:
            say(f"the library changed; the router goes on with its earlier models: {exc}")
            return
        after = manager.router_plan
        changes = library_changes(before, after) if before is not None and after is not None else []
        if changes:
            say("the library changed: " + "; ".join(changes))
        for note in notes:
            if "earlier settings" in note:
                say(note)

    library_timer = QTimer()
    library_timer.setInterval(LIBRARY_CHECK_MS)
    library_timer.timeout.connect(check_library)
    library_timer.start()
    restore = quit_on_signals(app)
    try:
        # As `run` does: the endpoint first, following the states before on_state reports them.
        with cli_remote.headless_monitoring(prometheus, manager, data_dir, err):
            manager.stateChanged.connect(on_state)
            inst = manager.start_router(settings)  # a refusal is a LaunchError: a user error
            for warning in inst.warnings:
                say(f"warning: {warning}")
            app.exec()
    finally:
        library_timer.stop()
        restore()
        manager.router_models.halt()
        if not manager.stop_all(timeout_s=30.0):
            say("error: the router or one of its models did not stop")
            outcome["code"] = 1
        manager.close()
        manager.deleteLater()
    return int(outcome["code"])


# ------------------------------------------------------------------------------------------------
# status
def _ask_models(record: InstanceRecord) -> tuple[list[RouterModel], str]:
    try:
        with urllib.request.urlopen(record.url + "/models", timeout=STATUS_TIMEOUT_S) as response:
            return parse_models(json.load(response)), ""
    except (OSError, ValueError, RouterReplyError) as exc:
        reason = getattr(exc, "reason", None)
        return [], str(reason or exc)


def router_status(records: Iterable[tuple[InstanceRecord, str]]) -> list[dict[str, Any]]:
    """The routers among ``records`` (record, ``"foreign"`` or ``"orphan"``), each with its models.

    A router's model processes carry its markers too: one that has lost its router (killed) is
    listed as such, without models.
    """
    routers = []
    for record, kind in records:
        if record.model != ROUTER_NAME:
            continue
        models, problem = _ask_models(record)
        routers.append(
            {
                "pid": record.pid,
                "url": record.url + "/v1",
                "kind": kind,
                "owner_pid": record.owner_pid if kind == "foreign" else None,
                "problem": problem,
                "models": [
                    {"name": m.name, "state": m.state, "exit_code": m.exit_code, "shown": m.describe()}
                    for m in models
                ],
            }
        )
    return routers


def print_router_status(routers: list[dict[str, Any]], out: TextIO) -> None:
    """The router part of ``llamadash status``."""
    for router in routers:
        who = (
            "left behind by a killed dashboard"
            if router["kind"] == "orphan"
            else f"run by llamadash pid {router['owner_pid']}"
        )
        print(f"\nrouter at {router['url']} (pid {router['pid']}, {who})", file=out)
        if router["problem"]:
            print(f"  its models cannot be read: {router['problem']}", file=out)
            continue
        width = max((len(m["name"]) for m in router["models"]), default=4)
        for model in router["models"]:
            print(f"  {model['name'].ljust(width)}  {model['shown']}", file=out)
