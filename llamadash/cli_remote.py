"""The CLI of remote llama-servers and of the Prometheus endpoint (``cli.py`` only registers them).

* ``llamadash models add NAME --url URL [--api-key-env VAR]``: a library entry for a llama-server
  another machine runs (:mod:`llamadash.core.remote`). The key is read from the environment
  variable ``VAR``, never from the command line (where ``ps`` and the shell history would show it).
* ``llamadash run NAME --prometheus [HOST:]PORT [--prometheus-token-env VAR]``: serve ``/metrics``
  while the model runs (:mod:`llamadash.services.metrics_endpoint`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from llamadash.core.library_service import Library, LibraryError
from llamadash.core.remote import REMOTE_URL, is_remote

__all__ = [
    "add_models_add_arguments",
    "add_remote",
    "add_run_arguments",
    "is_remote_add",
    "prometheus_options",
    "refuse_remote",
    "shown_setting",
    "start_endpoint",
]


def add_models_add_arguments(source: Any, parser: argparse.ArgumentParser) -> None:
    """``--url`` (one of ``models add``'s sources) and ``--api-key-env``."""
    source.add_argument(
        "--url",
        metavar="URL",
        help="a llama-server another machine runs (http(s)://host:port): watched, never started here",
    )
    parser.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="with --url: the server's API key is in environment variable VAR (kept as a secret)",
    )


def is_remote_add(args: argparse.Namespace) -> bool:
    """Whether ``models add`` adds a remote server (refuses ``--api-key-env`` without ``--url``)."""
    if getattr(args, "url", None) is not None:
        return True
    if getattr(args, "api_key_env", None):
        raise LibraryError("--api-key-env goes with --url (a remote server's key)")
    return False


def add_remote(args: argparse.Namespace, out: TextIO, library: Library) -> int:
    """``models add NAME --url URL [--api-key-env VAR]``."""
    if args.set or args.type:
        raise LibraryError(
            "a remote server has no llama-server settings here: --set and --type go without --url"
        )
    key: str | None = None
    if args.api_key_env:
        key = os.environ.get(args.api_key_env, "").strip()
        if not key:
            raise LibraryError(
                f"the environment variable {args.api_key_env} is not set (or empty): no API key"
            )
    added = library.add_remote(args.name, args.url, api_key=key)
    model = added.model
    print(
        f"added {added.name} (id {added.id}, remote server {model.get('remote_url')}"
        + (", with an API key" if key else "")
        + "): watch it in the window or with 'llamadash run' (attach, never start)",
        file=out,
    )
    return 0


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """``run``'s ``--prometheus [HOST:]PORT`` and ``--prometheus-token-env VAR``."""
    parser.add_argument(
        "--prometheus",
        metavar="[HOST:]PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics while it runs (HOST: 127.0.0.1 by "
        "default; any other address needs --prometheus-token-env)",
    )
    parser.add_argument(
        "--prometheus-token-env",
        metavar="VAR",
        help="the bearer token scrapers must send is in environment variable VAR",
    )


def prometheus_options(args: argparse.Namespace) -> tuple[str, int, str | None] | None:
    """(host, port, token) of ``--prometheus``, or ``None`` without it.

    Raises:
        LibraryError: A bad address, a token variable that is not set, or a non-loopback address
            without a token.
    """
    from llamadash.core.endpoint_address import EndpointConfigError, check_bind

    spec = getattr(args, "prometheus", None)
    token_env = getattr(args, "prometheus_token_env", None)
    if spec is None:
        if token_env:
            raise LibraryError("--prometheus-token-env goes with --prometheus")
        return None
    token: str | None = None
    if token_env:
        token = os.environ.get(token_env, "").strip()
        if not token:
            raise LibraryError(f"the environment variable {token_env} is not set (or empty): no token")
    try:
        host, port = check_bind(spec, token)
    except EndpointConfigError as exc:
        raise LibraryError(str(exc)) from None
    return host, port, token


def start_endpoint(
    options: tuple[str, int, str | None] | None, manager: Any, sampler: Any, err: TextIO
) -> Any:
    """Serve ``/metrics`` for ``run`` (``None`` without ``--prometheus``); says where on ``err``.

    Raises:
        LibraryError: It cannot listen there.
    """
    if options is None:
        return None
    from llamadash.services.metrics_endpoint import EndpointError, MetricsEndpoint

    host, port, token = options
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    endpoint = MetricsEndpoint(manager=manager, sampler=sampler, address=address, token=token)
    try:
        endpoint.start()
    except EndpointError as exc:
        raise LibraryError(str(exc)) from None
    note = " (bearer token required)" if token else ""
    print(f"llamadash: Prometheus metrics at {endpoint.url}{note}", file=err, flush=True)
    return endpoint


@contextlib.contextmanager
def headless_monitoring(
    prometheus: tuple[str, int, str | None] | None, manager: Any, data_dir: Path, err: TextIO
) -> Iterator[None]:
    """What ``run`` and ``serve`` do while their servers run: sample the system every second into the
    history (as the window does) and, with ``--prometheus``, serve it at ``/metrics``; both end with
    the block.

    Raises:
        LibraryError: The endpoint cannot listen where ``--prometheus`` says.
    """
    from llamadash.core.metrics import MetricsCollector
    from llamadash.services.sampler import MetricsSampler

    sampler = MetricsSampler(MetricsCollector(disk_path=data_dir), stats=manager, interval_s=1.0)
    sampler.start()
    endpoint = None
    try:
        endpoint = start_endpoint(prometheus, manager, sampler, err)
        yield
    finally:
        if endpoint is not None:
            endpoint.stop()
        sampler.stop()


def refuse_remote(model: dict[str, Any], what: str) -> None:
    """Refuse an operation that only a local model has (``what``: ``"has no llama-server command here"``).

    Raises:
        LibraryError: ``model`` is a remote server.
    """
    if is_remote(model):
        raise LibraryError(f"{model['name']} is a remote server ({model[REMOTE_URL]}): it {what}")


def shown_setting(key: str, value: str) -> str:
    """A stored setting as an import's notes print it: a secret one (the endpoint's token) as ``***``."""
    from llamadash.core.settings import SPECS

    return "***" if any(spec.key == key and spec.kind == "secret" for spec in SPECS) else value
