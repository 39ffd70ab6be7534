"""From a library model to a checked :class:`~llamadash.core.launch.LaunchPlan`: the side-effecting half of planning.

:func:`plan_model_launch` reads the model's row, finds the llama-server binary and reads its
options (:func:`locate_binary`), lets :func:`llamadash.core.launch.plan_launch` decide and build the
command, refuses a model to download on a build without HTTPS (:func:`refuse_download_without_https`),
checks the port (:func:`llamadash.services.ports.check_port`) and adds the marker variables
that let the next dashboard find the process whatever happens
(:func:`llamadash.core.pidfile.marker_environment`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from llamadash.core import database as db
from llamadash.core import pidfile
from llamadash.core.diagnosis import before_start, probe_https_support
from llamadash.core.launch import LaunchError, LaunchPlan, plan_launch
from llamadash.core.llama_server import METADATA_KEY as BINARY_METADATA_KEY
from llamadash.core.llama_server import LlamaServerNotFound, find_llama_server
from llamadash.core.params import COLUMN, Capabilities, CapabilityError, probe_binary
from llamadash.services.ports import check_port

__all__ = ["locate_binary", "plan_model_launch"]


def locate_binary(cache_dir: Path) -> tuple[str | None, Capabilities | None, str]:
    """The llama-server to run, what it accepts, and why either is missing.

    The binary configured in llamadash (metadata ``llama_server_path``) or found the usual ways
    (:func:`~llamadash.core.llama_server.find_llama_server`); its options from ``--help``, cached
    per binary in ``cache_dir``.

    Returns:
        ``(binary or None, capabilities or None, problem)``; ``problem`` is "" when both are there.
    """
    try:
        located = find_llama_server(db.get_metadata(BINARY_METADATA_KEY))
    except LlamaServerNotFound as exc:
        return None, None, str(exc)
    try:
        caps = probe_binary(located.path, label=located.label, cache_dir=cache_dir)
    except CapabilityError as exc:
        return str(located.path), None, str(exc)
    return str(located.path), caps, ""


def plan_model_launch(
    model_id: int, *, cache_dir: Path, port_override: int | None = None, reserved: Mapping[int, str]
) -> LaunchPlan:
    """Check everything and build the launch plan of a library model.

    Args:
        model_id: The model's database id.
        cache_dir: Where the binary's options are cached.
        port_override: Use this port instead of the configured one (not saved).
        reserved: Ports of servers the manager knows of, with who holds each (see
            :func:`~llamadash.services.ports.check_port`).

    Raises:
        LaunchError: The start is refused (its subclasses :class:`~llamadash.core.launch.MissingBinaryError`
            and :class:`~llamadash.core.launch.PortInUseError` for no binary and a taken port).
    """
    model = db.get_model(model_id)
    if model is None:
        raise LaunchError("the model is no longer in the library")
    name = model["name"]
    config = dict(model)
    if port_override is not None:
        config[COLUMN.port] = port_override
    binary, caps, problem = locate_binary(cache_dir)
    plan = plan_launch(config, caps, binary, name=name, binary_problem=problem)
    refuse_download_without_https(name, config, caps, plan.binary)
    assert plan.port is not None  # a plan for a model always names its port
    check_port(name, plan.host, plan.port, reserved)
    markers = pidfile.marker_environment(
        model=name,
        model_id=model_id,
        host=plan.host,
        port=plan.port,
        binary=plan.binary,
        started_at_ms=time.time_ns() // 1_000_000,
    )
    return replace(plan, env={**plan.env, **markers})


def refuse_download_without_https(
    name: str, config: Mapping[str, Any], capabilities: Capabilities | None, binary: str
) -> None:
    """Refuse to start a model llama-server would have to download when this build cannot use HTTPS.

    Such a start fails after a while with "exiting due to model loading error", the cause a dozen
    lines up in the log; the build is asked once (:func:`~llamadash.core.diagnosis.probe_https_support`,
    cached per binary) and only for a model to download.
    """
    if not binary or before_start(config, https_supported=False) is None:
        return  # nothing to download: nothing to ask
    known = before_start(config, capabilities, https_supported=probe_https_support(binary))
    if known is not None:
        raise LaunchError(f"cannot start {name}: {known.message}")
