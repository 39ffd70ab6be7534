"""An opt-in Prometheus endpoint: llamadash's readings at ``http://HOST:PORT/metrics``.

:class:`MetricsEndpoint` serves, with the ``prometheus_client`` library, what the window shows: the
system readings of the latest sample (CPU, memory, disk, each GPU), each instance's state, token
rates, requests in flight, slots, memory and VRAM, and the Activity counters (requests finished and
tokens, per model, since llamadash started). Names and units follow Prometheus' conventions
(``_bytes``, ``_seconds``, ``_ratio`` for 0-1, ``_total`` counters); every series has a ``host``
label (this machine), instance series a ``model`` label. A reading that is not known is left out,
never sent as 0.

Threads: the HTTP server runs on a thread of its own and never touches a Qt object. The owner's
thread (the GUI's, or ``llamadash run``'s) keeps a :class:`Snapshot` of plain values up to date
(each sample, state change and finished request) and the scrape reads the latest one under a lock,
so a scrape costs the formatting only and cannot stall the window.

Security: it binds to loopback unless told otherwise; with a token every request must carry
``Authorization: Bearer TOKEN`` (401 without it), and an address other than loopback is refused
without a token (:func:`~llamadash.core.endpoint_address.check_bind`).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector
from PySide6.QtCore import QObject, QTimer

from llamadash import __version__
from llamadash.core.endpoint_address import EndpointConfigError, check_bind
from llamadash.core.metrics import Sample
from llamadash.core.requests_log import RequestRecord
from llamadash.core.states import InstanceState

__all__ = [
    "HOST_LABEL",
    "EndpointConfigError",
    "EndpointError",
    "InstanceSnapshot",
    "LlamadashCollector",
    "MetricsEndpoint",
    "Snapshot",
]

_log = logging.getLogger(__name__)

_MIB = 1024 * 1024
#: The label naming the machine llamadash runs on (on every series; a fleet's dashboards group by it).
HOST_LABEL = "host"
#: How often the instances' figures are copied into the snapshot (the sampler's ticks copy too).
REFRESH_INTERVAL_MS = 1000


class EndpointError(RuntimeError):
    """The endpoint could not start (the port is taken, the address is not this machine's...)."""


@dataclass(frozen=True)
class InstanceSnapshot:
    """One instance's readings, as plain values (``None``: not known)."""

    model: str
    state: str
    url: str
    remote: bool
    up_since_s: float | None = None
    generation_tokens_per_s: float | None = None
    prompt_tokens_per_s: float | None = None
    requests_processing: float | None = None
    requests_deferred: float | None = None
    busy_slots: float | None = None
    total_slots: float | None = None
    cpu_percent: float | None = None
    rss_mb: float | None = None
    vram_mb: float | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything a scrape tells, as plain values taken on the owner's thread."""

    host: str
    sample: Sample | None = None
    instances: tuple[InstanceSnapshot, ...] = ()
    requests: dict[tuple[str, str], int] = field(default_factory=dict)
    """(model, status) -> requests finished since llamadash started."""
    tokens: dict[tuple[str, str], int] = field(default_factory=dict)
    """(model, kind) -> tokens since llamadash started; kind ``prompt``, ``cached`` or ``generated``."""


def _gauge(name: str, doc: str, labels: list[str], unit: str = "") -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels, unit=unit)


class LlamadashCollector(Collector):
    """Turns the latest :class:`Snapshot` into metric families (called on the server's thread)."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot
        self.scrapes = 0
        """Scrapes answered."""
        self.last_duration_s: float | None = None
        """Seconds the latest scrape's collection took (formatting excluded)."""

    def collect(self) -> Iterator[Metric]:
        began = time.perf_counter()
        snap = self._snapshot()
        host = snap.host
        yield from self._system(snap, host)
        yield from self._instances(snap.instances, host)
        yield from self._activity(snap, host)
        scrape = _gauge(
            "llamadash_scrape_collect_duration_seconds",
            "Time the previous scrape took to collect.",
            [HOST_LABEL],
        )
        if self.last_duration_s is not None:
            scrape.add_metric([host], self.last_duration_s)
        yield scrape
        self.scrapes += 1
        self.last_duration_s = time.perf_counter() - began

    @staticmethod
    def _system(snap: Snapshot, host: str) -> Iterator[Metric]:
        info = InfoMetricFamily("llamadash", "llamadash on this machine.", labels=[HOST_LABEL])
        info.add_metric([host], {"version": __version__})
        yield info
        sample = snap.sample
        ratios = (
            ("llamadash_cpu_usage_ratio", "CPU busy, all cores (0-1).", "cpu_usage"),
            ("llamadash_memory_usage_ratio", "Memory in use (0-1).", "memory_usage"),
            ("llamadash_disk_usage_ratio", "Disk in use where the models are (0-1).", "disk_usage"),
        )
        for name, doc, attr in ratios:
            family = _gauge(name, doc, [HOST_LABEL])
            value = getattr(sample, attr) if sample is not None else None
            if value is not None:
                family.add_metric([host], value / 100.0)
            yield family
        active = _gauge("llamadash_active_models", "llama-server instances running.", [HOST_LABEL])
        uptime = _gauge("llamadash_uptime_seconds", "Seconds since the dashboard started.", [HOST_LABEL])
        if sample is not None and sample.active_models is not None:
            active.add_metric([host], sample.active_models)
        if sample is not None and sample.uptime is not None:
            uptime.add_metric([host], sample.uptime)
        yield active
        yield uptime
        labels = [HOST_LABEL, "gpu", "gpu_name"]
        util = _gauge("llamadash_gpu_utilization_ratio", "GPU busy (0-1).", labels)
        temp = _gauge("llamadash_gpu_temperature_celsius", "GPU core temperature.", labels)
        used = _gauge("llamadash_gpu_memory_used_bytes", "GPU memory in use.", labels)
        total = _gauge("llamadash_gpu_memory_total_bytes", "GPU memory in all.", labels)
        power = _gauge("llamadash_gpu_power_watts", "GPU power draw.", labels)
        for gpu in sample.gpus if sample is not None else ():
            values = [host, str(gpu.index), gpu.name or ""]
            for family, value, scale in (
                (util, gpu.utilization, 0.01),
                (temp, gpu.temperature, 1.0),
                (used, gpu.memory_used_mb, _MIB),
                (total, gpu.memory_total_mb, _MIB),
                (power, gpu.power_w, 1.0),
            ):
                if value is not None:
                    family.add_metric(values, value * scale)
        yield from (util, temp, used, total, power)

    @staticmethod
    def _instances(instances: Iterable[InstanceSnapshot], host: str) -> Iterator[Metric]:
        labels = [HOST_LABEL, "model"]
        state = _gauge(
            "llamadash_instance_state",
            "1 for the state the instance is in, 0 for the others.",
            [*labels, "state"],
        )
        up = _gauge("llamadash_instance_up", "1 while the instance answers /health (running).", labels)
        info = InfoMetricFamily("llamadash_instance", "Where each instance answers.", labels=labels)
        started = _gauge(
            "llamadash_instance_ready_timestamp_seconds", "When it became ready (Unix time).", labels
        )
        families = {
            "generation_tokens_per_s": _gauge(
                "llamadash_instance_generation_tokens_per_second",
                "Tokens generated per second (live).",
                labels,
            ),
            "prompt_tokens_per_s": _gauge(
                "llamadash_instance_prompt_tokens_per_second",
                "Prompt tokens evaluated per second (live).",
                labels,
            ),
            "requests_processing": _gauge(
                "llamadash_instance_requests_processing", "Requests being processed.", labels
            ),
            "requests_deferred": _gauge(
                "llamadash_instance_requests_deferred", "Requests waiting for a slot.", labels
            ),
            "busy_slots": _gauge("llamadash_instance_slots_busy", "Slots processing a request.", labels),
            "total_slots": _gauge("llamadash_instance_slots", "Slots in all.", labels),
            "cpu_percent": _gauge("llamadash_instance_cpu_cores", "CPU cores busy (process tree).", labels),
            "rss_mb": _gauge(
                "llamadash_instance_memory_rss_bytes", "Resident memory (process tree).", labels
            ),
            "vram_mb": _gauge("llamadash_instance_vram_bytes", "GPU memory (process tree).", labels),
        }
        scale = {"cpu_percent": 0.01, "rss_mb": _MIB, "vram_mb": _MIB}
        for inst in instances:
            values = [host, inst.model]
            for each in InstanceState:
                state.add_metric([*values, each.value], 1.0 if inst.state == each.value else 0.0)
            up.add_metric(values, 1.0 if inst.state == InstanceState.RUNNING.value else 0.0)
            info.add_metric(values, {"url": inst.url, "remote": "true" if inst.remote else "false"})
            if inst.up_since_s is not None:
                started.add_metric(values, inst.up_since_s)
            for attr, family in families.items():
                value = getattr(inst, attr)
                if value is not None:
                    family.add_metric(values, value * scale.get(attr, 1.0))
        yield from (state, up, info, started, *families.values())

    @staticmethod
    def _activity(snap: Snapshot, host: str) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "llamadash_requests",
            "Requests the servers finished (the Activity view's records).",
            labels=[HOST_LABEL, "model", "status"],
        )
        for (model, status), count in sorted(snap.requests.items()):
            requests.add_metric([host, model, status], count)
        tokens = CounterMetricFamily(
            "llamadash_tokens",
            "Tokens of the finished requests (prompt, cached, generated).",
            labels=[HOST_LABEL, "model", "kind"],
        )
        for (model, kind), count in sorted(snap.tokens.items()):
            tokens.add_metric([host, model, kind], count)
        yield requests
        yield tokens


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("prometheus endpoint: " + format, *args)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_ThreadingServer):
    address_family = socket.AF_INET6


def _authorised(environ: dict[str, Any], token: str | None) -> bool:
    if not token:
        return True
    given = str(environ.get("HTTP_AUTHORIZATION", ""))
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


class MetricsEndpoint(QObject):
    """Serves ``/metrics`` while started; see the module docstring.

    Args:
        manager: The instance manager (read on the owner's thread only): ``instances()``,
            ``stateChanged`` and ``requestRecorded``.
        sampler: The metrics sampler (its ``sampled`` signal and ``last_sample``), or ``None``.
        address: ``[HOST:]PORT``.
        token: The bearer token scrapers must send; required on an address other than loopback.
        parent: The Qt parent.

    Raises:
        EndpointConfigError: A bad address, or one other than loopback without a token.
    """

    def __init__(
        self,
        *,
        manager: Any,
        sampler: Any = None,
        address: str,
        token: str | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.host, self.port = check_bind(address, token)
        self._token = token.strip() if token else None
        self._manager = manager
        self._sampler = sampler
        self._lock = threading.Lock()
        self._snapshot = Snapshot(host=socket.gethostname())
        self._requests: dict[tuple[str, str], int] = {}
        self._tokens: dict[tuple[str, str], int] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = LlamadashCollector(self.snapshot)
        self.registry.register(self.collector)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_INTERVAL_MS)
        self._timer.timeout.connect(self.refresh)

    # -- the owner's thread ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Where it answers, e.g. ``http://127.0.0.1:9464/metrics``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    @property
    def running(self) -> bool:
        """Serving now."""
        return self._server is not None

    def start(self) -> None:
        """Listen and serve (on a thread of its own).

        Raises:
            EndpointError: The address cannot be listened on (the port is taken...).
        """
        if self._server is not None:
            return
        metrics_app = make_wsgi_app(self.registry)
        token = self._token

        def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            if not _authorised(environ, token):
                start_response(
                    "401 Unauthorized",
                    [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Bearer realm="llamadash"')],
                )
                return [b"a bearer token is required: Authorization: Bearer TOKEN\n"]
            if environ.get("PATH_INFO", "/") not in ("/metrics", "/metrics/"):
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [b"llamadash serves /metrics only\n"]
            return metrics_app(environ, start_response)

        server_class = _Server6 if ":" in self.host else _ThreadingServer
        try:
            server = make_server(
                self.host, self.port, app, server_class=server_class, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise EndpointError(
                f"the Prometheus endpoint cannot listen on {self.url}: {exc.strerror or exc}"
            ) from None
        self.port = int(server.server_address[1])  # port 0 in tests: the one chosen
        self._connect(True)
        self.refresh()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="llamadash-prometheus",
            daemon=True,
        )
        self._thread.start()
        self._timer.start()

    def stop(self) -> None:
        """Stop serving (bounded: the server's loop ends within its 0.2 s poll)."""
        self._timer.stop()
        server, self._server = self._server, None
        if server is None:
            return
        self._connect(False)
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def snapshot(self) -> Snapshot:
        """The latest snapshot (any thread)."""
        with self._lock:
            return self._snapshot

    def refresh(self) -> None:
        """Copy the current readings into the snapshot (the owner's thread; cheap getters)."""
        instances = tuple(self._instance_snapshot(inst) for inst in self._manager.instances())
        sample = getattr(self._sampler, "last_sample", None) if self._sampler is not None else None
        with self._lock:
            self._snapshot = Snapshot(
                host=self._snapshot.host,
                sample=sample if isinstance(sample, Sample) else self._snapshot.sample,
                instances=instances,
                requests=dict(self._requests),
                tokens=dict(self._tokens),
            )

    def on_sample(self, sample: object) -> None:
        """A new sample from the sampler."""
        if isinstance(sample, Sample):
            with self._lock:
                self._snapshot = Snapshot(
                    host=self._snapshot.host,
                    sample=sample,
                    instances=self._snapshot.instances,
                    requests=self._snapshot.requests,
                    tokens=self._snapshot.tokens,
                )

    def on_request(self, model: str, record: object) -> None:
        """A request finished (the manager's ``requestRecorded``): the Activity counters grow."""
        if not isinstance(record, RequestRecord):
            return
        key = (model, str(record.status.value))
        self._requests[key] = self._requests.get(key, 0) + 1
        for kind, count in (
            ("prompt", record.prompt_tokens),
            ("cached", record.cached_tokens),
            ("generated", record.generated_tokens),
        ):
            if count is not None:
                self._tokens[(model, kind)] = self._tokens.get((model, kind), 0) + int(count)
        self.refresh()

    def _on_state(self, _name: str, _state: str, _reason: str) -> None:
        self.refresh()

    def _connect(self, on: bool) -> None:
        pairs: list[tuple[Any, Callable[..., None]]] = [
            (self._manager.stateChanged, self._on_state),
            (self._manager.requestRecorded, self.on_request),
        ]
        if self._sampler is not None and hasattr(self._sampler, "sampled"):
            pairs.append((self._sampler.sampled, self.on_sample))
        for signal, slot in pairs:
            if on:
                signal.connect(slot)
            else:
                with contextlib.suppress(RuntimeError, TypeError):  # already gone with its owner
                    signal.disconnect(slot)

    @staticmethod
    def _instance_snapshot(inst: Any) -> InstanceSnapshot:
        figures = inst.figures
        running = inst.state is InstanceState.RUNNING
        ready_ms = getattr(inst, "ready_at_ms", None)
        return InstanceSnapshot(
            model=inst.name,
            state=inst.state.value,
            url=inst.url,
            remote=bool(inst.external),
            up_since_s=ready_ms / 1000.0 if running and isinstance(ready_ms, int) else None,
            generation_tokens_per_s=figures.generation_tokens_per_s,
            prompt_tokens_per_s=figures.prompt_tokens_per_s,
            requests_processing=figures.requests_processing,
            requests_deferred=figures.requests_deferred,
            busy_slots=figures.busy_slots,
            total_slots=figures.total_slots,
            cpu_percent=figures.cpu_percent,
            rss_mb=figures.rss_mb,
            vram_mb=figures.vram_mb,
        )
