"""Launch planning: from a model's configuration, a llama-server build and its path to a :class:`LaunchPlan`.

:func:`plan_launch` is the one place that decides whether a model can be started and with what
command: the checks (a binary, readable capabilities, the model file, a valid configuration, a host
that can be monitored) and the command itself (:func:`~llamadash.core.params.build_command`). It
starts nothing and asks no process or network; the caller (the instance manager) finds and probes
the binary, checks the port and adds the marker variables
(:func:`~llamadash.core.pidfile.marker_environment`), then hands the plan to a
:class:`~llamadash.services.instance.ServerInstance`.

A refusal is a :class:`LaunchError` whose message says why, for the user ("cannot start NAME: ...");
its subclasses tell the cases a front end treats apart: :class:`MissingBinaryError` (the window
offers the Settings, the CLI its ``llama-server --path`` command) and :class:`PortInUseError` (which
carries a free port to offer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from llamadash.core.library import LLAMA_SERVER_DEFAULT_PORT
from llamadash.core.params import COLUMN, Capabilities, CommandError, build_command, validate_config
from llamadash.core.params.command import IGNORED_COLUMNS, first_api_key
from llamadash.core.params.validate import exposure_warning

__all__ = [
    "LaunchError",
    "LaunchPlan",
    "MissingBinaryError",
    "PortInUseError",
    "plan_launch",
]


class LaunchError(Exception):
    """A start was refused before anything was launched; the message says why, for the user."""


class MissingBinaryError(LaunchError):
    """The start was refused because no usable llama-server binary was found."""


class PortInUseError(LaunchError):
    """The instance's port is taken.

    Attributes:
        port: The port that is taken.
        suggested_port: The next free port from ``port`` on, or ``None`` if none was found.
    """

    def __init__(self, message: str, port: int, suggested_port: int | None) -> None:
        super().__init__(message)
        self.port = port
        self.suggested_port = suggested_port


@dataclass(frozen=True)
class LaunchPlan:
    """Everything needed to launch one process, checked before launch.

    Attributes:
        argv: The command (argv[0] is the executable); never a shell string.
        env: Variables added to the dashboard's environment (secrets such as ``LLAMA_API_KEY``).
        host: The address the server binds (``0.0.0.0`` is reached on loopback).
        port: Its port; ``None`` for a process that is not a server.
        api_key: Sent as ``Authorization: Bearer`` to ``/metrics`` and ``/slots``.
        api_prefix: The server's ``--api-prefix``.
        scheme: ``http`` or ``https`` (with ``--ssl-*``).
        binary: The executable, recorded for orphan detection.
        health_check: ``False`` for a process that is no server (benchmarks): it is ``running`` as
            soon as it started.
        counts_requests: Whether the log shows each finished request (not with ``--log-disable`` or
            a verbosity below 3); when it does not, requests per minute are ``None``, not 0.
        warnings: What the user should know about this launch (e.g. a server reachable from other
            machines without an API key); shown when it starts, never a refusal.
        config: The parameters it was planned from (what a crash diagnosis weighs: is weight
            repacking already off, which port); empty for a plan not made from a model.
    """

    argv: tuple[str, ...]
    env: dict[str, str]
    host: str = "127.0.0.1"
    port: int | None = None
    api_key: str | None = None
    api_prefix: str = ""
    scheme: str = "http"
    binary: str = ""
    health_check: bool = True
    counts_requests: bool = True
    warnings: tuple[str, ...] = ()
    config: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


def plan_launch(
    config: Mapping[str, Any],
    capabilities: Capabilities | None,
    binary: str | None,
    *,
    name: str,
    binary_problem: str = "",
) -> LaunchPlan:
    """Check a model's configuration and build the plan that starts it.

    Reads no process state and no network; only the files the configuration names are looked at
    (the model file, an ``api_key_file``), as :func:`~llamadash.core.params.validate_config` does.

    Args:
        config: The model's parameters, column -> value (a ``models`` row will do: its columns
            that are not llama-server parameters are ignored). ``metrics_enabled`` unset means on:
            the figures need ``/metrics``; an explicit "off" is respected.
        capabilities: What the build accepts (:func:`~llamadash.core.params.probe_binary`);
            ``None`` when its ``--help`` could not be read (``binary_problem`` says why): refused.
        binary: The llama-server executable; ``None`` when none was found (``binary_problem``
            says where it was looked for): refused with :class:`MissingBinaryError`.
        name: The model's name, for the messages.
        binary_problem: Why ``binary`` or ``capabilities`` is missing.

    Returns:
        The plan; its ``env`` holds the secrets only (the caller adds its marker variables).

    Raises:
        MissingBinaryError: No binary.
        LaunchError: Anything else that refuses the start: the build's options cannot be read,
            the model file does not exist, the configuration is invalid, or the host is a unix socket.
    """
    if binary is None:
        raise MissingBinaryError(f"cannot start {name}: {binary_problem or 'no llama-server found'}")
    if capabilities is None:
        why = binary_problem or f"the options of {binary} could not be read"
        raise LaunchError(f"cannot start {name}: {why}")
    params = {key: value for key, value in config.items() if key not in IGNORED_COLUMNS}
    if params.get(COLUMN.metrics_enabled) is None:
        params[COLUMN.metrics_enabled] = True
    model_path = params.get(COLUMN.model_path)
    if model_path and not Path(str(model_path)).expanduser().is_file():
        raise LaunchError(f"cannot start {name}: the model file {model_path} does not exist")
    errors = [issue for issue in validate_config(params, capabilities) if issue.severity == "error"]
    if errors:
        details = "; ".join(f"{issue.column}: {issue.message}" for issue in errors)
        raise LaunchError(f"cannot start {name}: invalid configuration: {details}")
    try:
        argv, env = build_command(params, capabilities, binary=binary)
    except CommandError as exc:
        details = "; ".join(f"{column}: {message}" for column, message in exc.problems)
        raise LaunchError(f"cannot start {name}: {details}") from None
    host = str(params.get(COLUMN.host) or "127.0.0.1")
    if host.endswith(".sock"):
        raise LaunchError(f"cannot start {name}: a unix socket host ({host}) cannot be monitored")
    verbosity = params.get(COLUMN.log_verbose)
    warning = exposure_warning(params)
    return LaunchPlan(
        argv=tuple(argv),
        env=env,
        host=host,
        port=int(params.get(COLUMN.port) or LLAMA_SERVER_DEFAULT_PORT),
        api_key=first_api_key(params),
        api_prefix=str(params.get(COLUMN.api_prefix) or "").rstrip("/"),
        scheme="https" if params.get(COLUMN.ssl_key_file) and params.get(COLUMN.ssl_cert_file) else "http",
        binary=binary,
        counts_requests=not params.get(COLUMN.log_disable) and (verbosity is None or int(verbosity) >= 3),
        warnings=(warning,) if warning else (),
        config=MappingProxyType(dict(params)),
    )
