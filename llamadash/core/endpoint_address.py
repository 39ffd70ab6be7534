"""Where llamadash's Prometheus endpoint listens, and whether it must ask for a token (pure Python).

``[HOST:]PORT``: ``9464`` (loopback), ``127.0.0.1:9464``, ``0.0.0.0:9464``, ``[::1]:9464``. The
endpoint tells what runs on this machine (models, load, GPU), so it binds to loopback unless told
otherwise, and on any other address it refuses to start without a bearer token.
"""

from __future__ import annotations

import ipaddress

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "EndpointConfigError",
    "check_bind",
    "is_loopback",
    "parse_bind",
]

#: Where the endpoint listens when only a port is given.
DEFAULT_HOST = "127.0.0.1"
#: The port the window's setting suggests (the one OpenTelemetry's Prometheus exporter uses).
DEFAULT_PORT = 9464


class EndpointConfigError(ValueError):
    """The address is not ``[HOST:]PORT``, or a token is missing; the message says why."""


def parse_bind(spec: str) -> tuple[str, int]:
    """(host, port) of ``[HOST:]PORT`` (an IPv6 host in brackets).

    Raises:
        EndpointConfigError: Not of that form, or the port is not 1-65535.
    """
    text = spec.strip()
    if not text:
        raise EndpointConfigError("the Prometheus address is empty: give [HOST:]PORT, e.g. 9464")
    host = DEFAULT_HOST
    port_text = text
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or not text[end + 1 :].startswith(":"):
            raise EndpointConfigError(f"not [HOST]:PORT: {spec!r}")
        host, port_text = text[1:end], text[end + 2 :]
    elif ":" in text:
        if text.count(":") > 1:
            raise EndpointConfigError(f"an IPv6 address goes in brackets, e.g. [::1]:9464, not {spec!r}")
        host, port_text = text.rsplit(":", 1)
    if not host or any(c.isspace() or not c.isprintable() for c in host):
        raise EndpointConfigError(f"no host in {spec!r}")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise EndpointConfigError(f"the port must be a number from 1 to 65535, not {port_text!r}")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reached only from this machine (``localhost``, ``127.x``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any address


def check_bind(spec: str, token: str | None) -> tuple[str, int]:
    """:func:`parse_bind`, refusing an address other than loopback without a token.

    Raises:
        EndpointConfigError: A bad address, or one reachable from other machines and no token.
    """
    host, port = parse_bind(spec)
    if not is_loopback(host) and not (token and token.strip()):
        raise EndpointConfigError(
            f"the Prometheus endpoint on {host} is reachable from other machines: it needs a bearer "
            "token (scrapers send it as 'Authorization: Bearer TOKEN'); or bind it to 127.0.0.1"
        )
    return host, port
