"""Whether a port is free for a server now, which one to offer instead, and who holds a taken one.

Side-effecting helpers for the instance manager's launch checks (they bind test sockets and read
the system's connection table); the pure planning is :func:`llamadash.core.launch.plan_launch`.
"""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Iterable, Mapping

import psutil

from llamadash.core.launch import LaunchError, PortInUseError

__all__ = ["check_port", "next_free_port", "port_is_free"]


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could bind ``host:port`` now (what llama-server will try)."""
    bind_host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            if sys.platform != "win32":  # as llama-server does: TIME_WAIT leftovers do not count
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((bind_host, port))
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES, getattr(errno, "WSAEADDRINUSE", -1)):
            return False
        raise
    return True


def next_free_port(host: str, start: int, *, exclude: Iterable[int] = (), limit: int = 200) -> int | None:
    """The first free port from ``start`` on (at most ``limit`` tried), skipping ``exclude``."""
    excluded = set(exclude)
    for port in range(max(1, start), min(65536, start + limit)):
        if port in excluded:
            continue
        try:
            if port_is_free(host, port):
                return port
        except OSError:
            return None
    return None


def port_owner(port: int) -> str:
    """`` (by llama-server, pid 123)`` when the listening process is known, else ``""``."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return f" (by {psutil.Process(conn.pid).name()}, pid {conn.pid})"
    except (psutil.Error, OSError):
        pass
    return ""


def check_port(name: str, host: str, port: int, reserved: Mapping[int, str]) -> None:
    """Refuse to start ``name`` on ``host:port`` when the port is taken.

    Args:
        name: The model, for the message.
        host: The address it binds.
        port: Its port.
        reserved: Ports held by servers the manager knows of (its instances, orphans), each with
            who holds it (`` by NAME``); these are never offered either.

    Raises:
        PortInUseError: The port is taken (with the next free port to offer, if any).
        LaunchError: The address cannot be used at all.
    """
    taken_by = reserved.get(port)
    if taken_by is None:
        try:
            if port_is_free(host, port):
                return
        except OSError as exc:
            raise LaunchError(f"cannot start {name}: cannot use {host}:{port}: {exc}") from None
        taken_by = port_owner(port)
    suggested = next_free_port(host, port + 1, exclude=reserved)
    offer = f"; port {suggested} is free" if suggested else ""
    raise PortInUseError(
        f"cannot start {name}: port {port} is already in use{taken_by}{offer}", port, suggested
    )
