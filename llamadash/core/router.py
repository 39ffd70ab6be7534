"""The library router: one llama-server in router mode that serves every model marked *served*.

Pure Python, no Qt, no process and no network. llama-server's own router (``--models-preset FILE``)
starts a child llama-server for a model when a request names it, unloads the least recently used
one when more than ``--models-max`` would run, and puts an idle model to sleep after
``--sleep-idle-seconds``; llamadash only plans it:

* :func:`plan_router` turns the library (the models whose ``served`` column is on) and the router's
  settings (:class:`RouterSettings`) into a :class:`RouterPlan`: the presets INI, the router's own
  command line, and every served model it had to leave out (missing file, a flag this build does not
  have, a name no section can hold), by name and why, so that nothing is left out silently;
* :func:`parse_models` reads the router's ``GET /models`` answer into :class:`RouterModel` states
  (``unloaded``, ``loading``, ``loaded``, ``sleeping``, ``failed`` with the exit code, ...).

Per model, the presets file carries llama-server's preset-only keys ``load-on-startup`` (the
``load_on_startup`` column) and ``stop-timeout`` (``stop_timeout_s``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from llamadash.core import model_export
from llamadash.core.launch import LaunchError, plan_launch
from llamadash.core.library_service import LOAD_ON_STARTUP, SERVED, STOP_TIMEOUT
from llamadash.core.remote import is_remote
from llamadash.core.params import COLUMN, Capabilities, CommandError, build_command
from llamadash.core.requests_log import RequestLogParser, RequestRecord
from llamadash.core.settings import Settings

__all__ = [
    "DEFAULT_ROUTER_PORT",
    "MODEL_STATES",
    "ROUTER_HTTP_THREADS",
    "ROUTER_NAME",
    "LeftOut",
    "RouterModel",
    "RouterPlan",
    "RouterReplyError",
    "RouterRequestParser",
    "RouterSettings",
    "SseBuffer",
    "apply_event",
    "is_served",
    "parse_models",
    "plan_router",
    "settings_from_argv",
]

#: The name of the router's instance (in the instance manager, its PID record and its log). No
#: library model can be served under it: a presets section name cannot hold ``[`` or ``]``.
ROUTER_NAME = "[router]"
#: The port the router listens on unless the settings say otherwise (the library's models take
#: 8080 and up).
DEFAULT_ROUTER_PORT = 8090
#: What the router says of a model (``status.value``), plus ``failed``: its process ended badly.
MODEL_STATES = ("unloaded", "loading", "loaded", "sleeping", "downloading", "downloaded", "failed")
#: The router's HTTP threads (``--threads-http``): its clients' streams and proxied requests, and
#: llamadash's own polls and event stream, each hold one.
ROUTER_HTTP_THREADS = 32
#: The states in which a model's process runs (it takes memory).
RUNNING_STATES = frozenset({"loading", "loaded", "sleeping"})


class RouterReplyError(ValueError):
    """The router's ``/models`` answer is not what llama-server sends; the message says what is wrong."""


@dataclass(frozen=True)
class RouterSettings:
    """The router's own settings (Settings > Router, or ``llamadash serve``'s options).

    Attributes:
        port: The one port clients use.
        host: The address it binds (``127.0.0.1``: this machine only).
        max_models: The most models loaded at once; another request unloads the least recently used
            one. ``0``: no limit.
        autoload: A request naming a model that is not loaded loads it (off: only Load does).
        idle_s: Seconds without requests after which a loaded model goes to sleep (its memory is
            freed; the next request wakes it). ``0``: never.
    """

    port: int = DEFAULT_ROUTER_PORT
    host: str = "127.0.0.1"
    max_models: int = 4
    autoload: bool = True
    idle_s: int = 0

    @classmethod
    def of(cls, settings: Settings) -> RouterSettings:
        """The router's settings as the user's :class:`~llamadash.core.settings.Settings` hold them."""
        return cls(
            port=settings.router_port,
            max_models=settings.router_max_models,
            autoload=settings.router_autoload,
            idle_s=settings.router_idle_s,
        )

    def problems(self) -> list[str]:
        """What is wrong with these settings, in words (empty: nothing)."""
        found = []
        if not 1 <= self.port <= 65535:
            found.append(f"the router's port must be from 1 to 65535, got {self.port}")
        if self.max_models < 0:
            found.append(
                f"the most models loaded at once must be 0 (no limit) or more, got {self.max_models}"
            )
        if self.idle_s < 0:
            found.append(f"the idle time must be 0 (never sleep) or more seconds, got {self.idle_s}")
        return found


def settings_from_argv(argv: Iterable[str], default: RouterSettings) -> RouterSettings:
    """The settings a running router was started with, read from its command line.

    What the command line does not say is ``default``'s, except what llama-server itself defaults
    to when the flag is absent (autoload on, no sleep), so that an adopted router restarts as it ran.
    """
    args = list(argv)

    def value(flag: str) -> str | None:
        for index, arg in enumerate(args):
            if arg == flag and index + 1 < len(args):
                return args[index + 1]
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
        return None

    def number(flag: str, otherwise: int) -> int:
        text = value(flag)
        return int(text) if text is not None and text.strip().isdigit() else otherwise

    chosen = RouterSettings(
        port=number("--port", default.port),
        host=value("--host") or default.host,
        max_models=number("--models-max", default.max_models),
        autoload="--no-models-autoload" not in args,
        idle_s=number("--sleep-idle-seconds", 0),
    )
    return chosen if not chosen.problems() else default


@dataclass(frozen=True)
class LeftOut:
    """A served model the router cannot start: left out of the presets file, and why."""

    name: str
    reason: str

    def message(self) -> str:
        """The warning shown before the router starts."""
        return f"{self.name} is not served: {self.reason}"


@dataclass(frozen=True)
class RouterPlan:
    """Everything needed to start the router, checked before it starts.

    Attributes:
        argv: The router's command (argv[0] is the binary); it names ``preset_path``.
        preset_text: The presets INI to write to ``preset_path`` before starting.
        preset_path: Where the presets file goes.
        served: The models in the presets file, by name, in library order.
        left_out: The served models that were left out, each with why.
        warnings: What the user should know (left-out models first).
        host: The address the router binds.
        port: Its port.
        config: The router's own parameters (what its command line was built from).
        sections: Each served model's presets section, by name (to tell what an edit changed).
    """

    argv: tuple[str, ...]
    preset_text: str
    preset_path: str
    served: tuple[str, ...]
    left_out: tuple[LeftOut, ...] = ()
    warnings: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = DEFAULT_ROUTER_PORT
    config: Mapping[str, Any] = field(default_factory=dict)
    sections: Mapping[str, str] = field(default_factory=dict)

    def changed_since(self, earlier: RouterPlan) -> list[str]:
        """The models served by both plans whose presets section differs (in this plan's order)."""
        return [n for n in self.served if n in earlier.sections and earlier.sections[n] != self.sections[n]]

    @property
    def base_url(self) -> str:
        """The OpenAI base URL clients use (``http://127.0.0.1:8090/v1``)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}/v1"


def is_served(model: Mapping[str, Any]) -> bool:
    """Whether the router serves ``model`` (its ``served`` column; a row without it: yes).

    A remote server never is: it runs on another machine, with no model file here to load.
    """
    if is_remote(model):
        return False
    value = model.get(SERVED)
    return True if value is None else bool(value)


def _section_name_problem(name: str) -> str:
    if any(c in name for c in "[]\n\r=;#") or name != name.strip() or not name:
        return "its name cannot be a presets section name (no [ ] = ; # or line breaks)"
    return ""


def plan_router(
    models: Iterable[Mapping[str, Any]],
    settings: RouterSettings,
    capabilities: Capabilities | None,
    binary: str | None,
    *,
    preset_path: str,
    binary_problem: str = "",
) -> RouterPlan:
    """Check the served models and the settings, and plan the router.

    A served model that cannot start with this build (its file is missing, a flag the build does
    not have, an invalid value, a name no presets section can hold) is left out, and the plan says
    so by name (:attr:`RouterPlan.left_out`); the others are served.

    Args:
        models: The library's models (``models`` rows); those whose ``served`` is off are skipped.
        settings: The router's settings.
        capabilities: What the build accepts (``None``: its ``--help`` could not be read).
        binary: The llama-server executable (``None``: none found).
        preset_path: Where the presets file will be written (named in the command line).
        binary_problem: Why ``binary`` or ``capabilities`` is missing.

    Raises:
        LaunchError: The router cannot start at all: no binary, a build without router mode, bad
            settings, or no served model left.
    """
    if binary is None or capabilities is None:
        # plan_launch words the refusal as for a model (MissingBinaryError for no binary)
        plan_launch({}, capabilities, binary, name="the router", binary_problem=binary_problem)
    assert binary is not None and capabilities is not None
    if not capabilities.accepts("--models-preset"):
        raise LaunchError(
            f"cannot start the router: {capabilities.label} has no router mode (no --models-preset); "
            "a newer llama.cpp build has it"
        )
    problems = settings.problems()
    if problems:
        raise LaunchError("cannot start the router: " + "; ".join(problems))
    served: list[str] = []
    left_out: list[LeftOut] = []
    notes: list[str] = []
    sections: dict[str, str] = {}
    at_startup = 0
    for model in models:
        if not is_served(model):
            continue
        name = str(model["name"])
        lines, why = _section(model, capabilities, binary)
        if why:
            left_out.append(LeftOut(name, why))
            continue
        if model.get(LOAD_ON_STARTUP):
            if settings.max_models and at_startup >= settings.max_models:
                # llama-server refuses to start with more startup models than --models-max
                notes.append(
                    f"{name} is not loaded when the router starts: {settings.max_models} model(s) "
                    "already are (the most loaded at once)"
                )
            else:
                at_startup += 1
                lines.append("load-on-startup = true")
        timeout = model.get(STOP_TIMEOUT)
        if timeout is not None:
            lines.append(f"stop-timeout = {int(timeout)}")
        sections[name] = "\n".join([f"[{name}]", *lines])
        served.append(name)
    if not served:
        why = "; ".join(item.message() for item in left_out) or "no model of the library is marked served"
        raise LaunchError(f"cannot start the router: no model to serve ({why})")
    config: dict[str, Any] = {
        COLUMN.models_preset: preset_path,
        COLUMN.models_max: settings.max_models,
        COLUMN.models_autoload: settings.autoload,
        COLUMN.host: settings.host,
        COLUMN.port: settings.port,
        # llama-server's default pool (n_parallel + 2 threads, 5 on a 2-core machine) is held by
        # long-lived connections: each /models/sse stream and each idle keep-alive connection of a
        # poller keeps a thread, and a request proxied to a model holds one while it generates. With
        # the default, 5 open streams left GET /models unanswered; the pool must outgrow them.
        COLUMN.threads_http: ROUTER_HTTP_THREADS,
    }
    warnings = [item.message() for item in left_out]
    warnings.extend(notes)
    if settings.idle_s > 0:
        if capabilities.accepts("--sleep-idle-seconds"):
            # the children inherit the router's arguments: each model sleeps after this idle time
            config[COLUMN.sleep_idle_seconds] = settings.idle_s
        else:
            warnings.append(f"{capabilities.label} has no --sleep-idle-seconds: loaded models never sleep")
    try:
        argv, _env = build_command(config, capabilities, binary=binary)
    except CommandError as exc:
        details = "; ".join(f"{column}: {message}" for column, message in exc.problems)
        raise LaunchError(f"cannot start the router: {details}") from None
    text = "\n\n".join(["version = 1", "[*]", *sections.values()]) + "\n"
    return RouterPlan(
        argv=tuple(argv),
        preset_text=text,
        preset_path=preset_path,
        served=tuple(served),
        left_out=tuple(left_out),
        warnings=tuple(warnings),
        host=settings.host,
        port=settings.port,
        config=config,
        sections=sections,
    )


def _section(model: Mapping[str, Any], capabilities: Capabilities, binary: str) -> tuple[list[str], str]:
    """The ``key = value`` lines of a model's presets section, or ``([], why)`` it cannot be served.

    The model is checked as for a start of its own (:func:`~llamadash.core.launch.plan_launch`: the
    file, the flags of this build, the values), its command is this build's spelling, and what
    the router sets itself (host, port, alias, API key) is not written.
    """
    name = str(model["name"])
    problem = _section_name_problem(name)
    if problem:
        return [], problem
    config = {k: v for k, v in model.items() if k not in (COLUMN.host, COLUMN.port)}
    try:
        plan = plan_launch(config, capabilities, binary, name=name)
    except LaunchError as exc:
        return [], str(exc).removeprefix(f"cannot start {name}: ")
    try:
        return model_export.preset_lines(name, plan.argv[1:]), ""
    except model_export.ModelFormatError as exc:
        return [], str(exc).removeprefix(f"{name}: ")


# ------------------------------------------------------------------------------------------------
# GET /models
@dataclass(frozen=True)
class RouterModel:
    """One model as the router's ``GET /models`` tells it.

    Attributes:
        name: Its id (the presets section name: what requests put in ``"model"``).
        state: One of :data:`MODEL_STATES`; ``failed`` when its process ended badly (it is then
            unloaded, and the next request tries again).
        exit_code: The exit code of a failed process, if the router said.
        progress: While loading, how far (0..1), if the router said.
        aliases: Other names requests may use.
        source: ``preset``, ``models_dir`` or ``cache``.
    """

    name: str
    state: str
    exit_code: int | None = None
    progress: float | None = None
    aliases: tuple[str, ...] = ()
    source: str = ""

    @property
    def running(self) -> bool:
        """Whether its process runs (loading, loaded or asleep)."""
        return self.state in RUNNING_STATES

    @property
    def reason(self) -> str:
        """Why it failed, in words ("" unless failed)."""
        if self.state != "failed":
            return ""
        if self.exit_code is None:
            return "its llama-server ended unexpectedly"
        return f"its llama-server exited with code {self.exit_code}"

    def describe(self) -> str:
        """The state as a person reads it: ``loading 40%``, ``failed (exit code 1)``."""
        if self.state == "loading" and self.progress is not None:
            return f"loading {self.progress:.0%}"
        if self.state == "failed" and self.exit_code is not None:
            return f"failed (exit code {self.exit_code})"
        return self.state


def _progress(status: Mapping[str, Any]) -> float | None:
    progress = status.get("progress")
    if isinstance(progress, (int, float)) and not isinstance(progress, bool):
        value = float(progress)
    elif isinstance(progress, Mapping):
        raw = progress.get("value")
        if not isinstance(raw, (int, float)) or isinstance(raw, bool):
            return None
        value = float(raw)
    else:
        return None
    if not math.isfinite(value):
        return None
    return min(1.0, max(0.0, value))


def parse_models(body: Any) -> list[RouterModel]:
    """The models of a router's ``GET /models`` answer (decoded JSON), in its order.

    Raises:
        RouterReplyError: Not a router's answer (no ``data`` list, an entry without an id or a
            status).
    """
    if not isinstance(body, Mapping) or not isinstance(body.get("data"), list):
        raise RouterReplyError('the answer has no list of models ("data"): is this a llama-server router?')
    models = []
    for index, entry in enumerate(body["data"], 1):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str) or not entry["id"]:
            raise RouterReplyError(f"model {index} of the answer has no id")
        status = entry.get("status")
        if not isinstance(status, Mapping) or not isinstance(status.get("value"), str):
            raise RouterReplyError(
                f"{entry['id']}: the answer gives no status (is this a single-model server?)"
            )
        state = status["value"]
        exit_code = status.get("exit_code")
        if not isinstance(exit_code, int) or isinstance(exit_code, bool):
            exit_code = None
        if status.get("failed") is True and state not in RUNNING_STATES:
            state = "failed"
        aliases = entry.get("aliases")
        models.append(
            RouterModel(
                name=entry["id"],
                state=state,
                exit_code=exit_code,
                progress=_progress(status) if state == "loading" else None,
                aliases=tuple(a for a in aliases if isinstance(a, str)) if isinstance(aliases, list) else (),
                source=str(entry.get("source") or ""),
            )
        )
    return models


# ------------------------------------------------------------------------------------------------
# GET /models/sse
class SseBuffer:
    """Splits a ``text/event-stream`` into its events' decoded ``data`` (JSON objects).

    Bytes come in pieces as they arrive (:meth:`feed`); an event ends at a blank line. A ``data``
    line that is not a JSON object is skipped (a comment line ``:`` too).
    """

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        """The complete events of what arrived so far, in order."""
        self._pending += chunk.replace(b"\r\n", b"\n")
        *complete, self._pending = self._pending.split(b"\n\n")
        events = []
        for block in complete:
            data = "\n".join(
                line[5:].strip()
                for line in block.decode("utf-8", errors="replace").split("\n")
                if line.startswith("data:")
            )
            if not data:
                continue
            try:
                decoded = json.loads(data)
            except ValueError:
                continue
            if isinstance(decoded, dict):
                events.append(decoded)
        return events


def apply_event(models: list[RouterModel], event: Mapping[str, Any]) -> list[RouterModel] | None:
    """The models after one ``/models/sse`` event, or ``None`` when it needs a fresh ``GET /models``.

    ``model_status`` / ``status_change`` (``data.status``, with ``progress`` while loading and
    ``exit_code`` when its process ended) change one listed model; an exit with a code other than 0
    (or ``data.failed``) is ``failed``. ``models_reload``, ``model_remove`` and a model not listed
    yet ask for the list again (``None``); other events (downloads) change nothing.
    """
    kind = event.get("event")
    name = event.get("model")
    raw = event.get("data")
    data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    if kind in ("models_reload", "model_remove"):
        return None
    if kind not in ("model_status", "status_change") or not isinstance(name, str):
        return list(models)
    state = data.get("status")
    if not isinstance(state, str) or state not in MODEL_STATES:
        return list(models)
    index = next((i for i, m in enumerate(models) if m.name == name), None)
    if index is None:
        return None
    exit_code = data.get("exit_code")
    if not isinstance(exit_code, int) or isinstance(exit_code, bool):
        exit_code = None
    if state not in RUNNING_STATES and (data.get("failed") is True or exit_code not in (None, 0)):
        state = "failed"
    progress = _progress(data) if state == "loading" else None
    updated = replace(
        models[index], state=state, exit_code=exit_code if state == "failed" else None, progress=progress
    )
    return [*models[:index], updated, *models[index + 1 :]]


# ------------------------------------------------------------------------------------------------
# the router's log: its models' requests
#: The router's line that names the port of a model it starts.
_SPAWN = re.compile(r"spawning server instance with name=(?P<name>.+?) on port (?P<number>\d+)\s*$")
#: A line of a model's own output, which the router passes on after the model's port in brackets.
_CHILD_LINE = re.compile(r"^\[(?P<number>\d+)\] (?P<rest>.*)$")
#: What a line must hold to be worth a look (one substring test each).
SPAWN_MARK = "spawning server instance with name="


class RouterRequestParser:
    """The requests of each model behind a router, from the router's output, one record per request.

    The router passes on each model's output after ``[PORT] ``; the port of each model comes from
    the router's own ``spawning server instance with name=NAME on port PORT`` line. Each model's
    lines go to a :class:`~llamadash.core.requests_log.RequestLogParser` of its own, so two models'
    slot 0 are two requests, and each record carries the model's name (the Activity view's).
    A model's line of a port the router never named (the log was read from the middle) is skipped.

    Args:
        clock: Unix time in ms, for records whose lines come without a time.
    """

    def __init__(self, clock: Callable[[], int] | None = None) -> None:
        self._clock = clock
        self._names: dict[int, str] = {}
        self._parsers: dict[int, RequestLogParser] = {}

    def feed(self, line: str, at_ms: int | None = None) -> list[RequestRecord]:
        """Read one line of the router's output; return the requests it completed."""
        child = _CHILD_LINE.match(line)
        if child is None:
            spawn = _SPAWN.search(line) if SPAWN_MARK in line else None
            if spawn is not None:
                port = int(spawn["number"])
                self._names[port] = spawn["name"]
                self._parsers.pop(port, None)  # a new process on a port reused: a new run
            return []
        port = int(child["number"])
        name = self._names.get(port)
        if name is None or "| task" not in line:
            return []
        parser = self._parsers.get(port)
        if parser is None:
            parser = self._parsers[port] = (
                RequestLogParser(name, clock=self._clock) if self._clock else RequestLogParser(name)
            )
        return parser.feed(child["rest"], at_ms)

    def flush(self, at_ms: int | None = None) -> list[RequestRecord]:
        """The router's output ended: every model's unfinished requests, ``INCOMPLETE``."""
        done = [record for parser in self._parsers.values() for record in parser.flush(at_ms)]
        self._parsers.clear()
        self._names.clear()
        return done
