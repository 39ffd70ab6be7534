"""The HTTP side of an instance: ``/health``, ``/metrics`` and ``/slots``, and the figures of each poll.

:class:`EndpointPoller` asks the server through a ``QNetworkAccessManager`` on the owner's thread:
``/health`` every 200 ms while a model loads (:meth:`~EndpointPoller.start_health_checks`), and at
each poll (every ``poll_interval_s``) ``/metrics`` and ``/slots`` of a running server, plus
``/health`` of a server it only monitors (adopted or external). Each poll also reads the process
tree (CPU, memory, VRAM) and publishes one :class:`~llamadash.services.figures.InstanceFigures`
once its replies are in (or late). Requests never pile up (one of each kind on its way at most),
each closes its connection, and replies of an earlier run are dropped (an epoch tags each).

The token rates come from a :class:`~llamadash.core.throughput.ThroughputMeter` (:attr:`meter`):
each ``/slots`` answer is a snapshot of the tokens every slot has decoded and evaluated, and while a
slot is busy ``/slots`` is asked every :data:`BUSY_SLOTS_INTERVAL_MS` as well (when the poll
interval is longer), so the last 2 s hold several snapshots; the owner adds each finished request
(:meth:`EndpointPoller.add_request`) for the tokens made after the last snapshot. ``/metrics`` gives
the gauges (requests processing and deferred) only; while ``/slots`` answers and shows no slot busy
it is asked every :data:`IDLE_METRICS_INTERVAL_S` only (an idle server processes nothing and defers
nothing: the gauges read 0 from ``/slots`` then). A server whose output is read here (one this app
started, :attr:`~EndpointPoller.log_tells_activity`) rests too: once ``/slots`` shows every slot idle
and the rates have fallen to 0, ``/slots`` is asked every :data:`IDLE_SLOTS_INTERVAL_S` only, and at
once when the output shows a slot line (:meth:`~EndpointPoller.slot_activity`: llama-server prints
one as it takes a request), so an idle instance costs no request at most polls.

It reads the instance it serves through :class:`PollSubject` (state, PID, requests per minute)
and calls it back with each health answer; what a health answer means is the instance's decision.

A server it only monitors (:attr:`EndpointPoller.monitors`) may be on another machine: while such a
one (:attr:`EndpointPoller.backs_off`) does not answer, the polls back off
(:func:`~llamadash.core.remote.retry_delay_s`: 2 s doubling to 60 s, back to the poll interval at
its first answer); a ``401``/``403`` to ``/metrics`` or ``/slots`` is
told once (``on_auth``) and ``/slots`` keeps being asked, so that a corrected key is seen; and its
finished requests come from ``/slots`` (:class:`~llamadash.core.remote.SlotRequestTracker`,
``on_record``), since its log is not here, with their figures from a ``/metrics`` asked right after
(:func:`~llamadash.core.remote.with_counters`).
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import QByteArray, QObject, QTimer, QUrl
from PySide6.QtNetwork import QNetworkAccessManager, QNetworkProxy, QNetworkReply, QNetworkRequest

from llamadash.core.prometheus import REQUESTS_DEFERRED, REQUESTS_PROCESSING, parse_metrics
from llamadash.core.remote import SlotRequestTracker, retry_delay_s, with_counters
from llamadash.core.requests_log import RequestRecord
from llamadash.core.states import InstanceState
from llamadash.core.throughput import (
    DEFAULT_STALE_AFTER_S,
    FinishedRequest,
    Throughput,
    ThroughputMeter,
    parse_slots,
)
from llamadash.services.figures import NO_FIGURES, InstanceFigures, ProcessTreeStats, tree_vram_mb
from llamadash.services.process_driver import Endpoint
from llamadash.services.replies import reply_body

__all__ = [
    "BUSY_SLOTS_INTERVAL_MS",
    "HEALTH_INTERVAL_MS",
    "IDLE_METRICS_INTERVAL_S",
    "IDLE_SLOTS_INTERVAL_S",
    "EndpointPoller",
    "PollSubject",
]

#: How often /health is asked while a model loads (capped by the poll interval).
HEALTH_INTERVAL_MS = 200
#: How often /slots is asked while a slot is busy (capped by the poll interval).
BUSY_SLOTS_INTERVAL_MS = 500
#: How often /metrics is asked of a server whose /slots shows every slot idle (at each poll otherwise).
IDLE_METRICS_INTERVAL_S = 10.0
#: How often /slots is asked of a resting server whose output is read here (see the module docstring).
IDLE_SLOTS_INTERVAL_S = 10.0

_Pair = tuple[float | None, float | None]


class PollSubject(Protocol):
    """What the poller reads of the instance it serves."""

    @property
    def state(self) -> InstanceState: ...
    @property
    def stopping(self) -> bool: ...
    @property
    def active(self) -> bool: ...
    @property
    def pid(self) -> int | None: ...
    def requests_per_minute(self) -> float | None: ...


class EndpointPoller(QObject):
    """Polls one server; see the module docstring.

    Args:
        subject: The instance.
        poll_interval_s: Seconds between polls.
        vram_reader: PID -> VRAM MiB, or ``None`` for no GPU figures.
        on_health: Called with each ``/health`` answer: (HTTP status or ``None``, error text).
        on_figures: Called with the figures of each poll (and :data:`NO_FIGURES` once halted).
        before_poll: Called at each poll first; False skips it (the process is found gone).
        on_auth: Called when a monitored server refuses the key (its HTTP status), and with
            ``None`` once it accepts it again.
        on_record: Called with each request a monitored server's ``/slots`` showed finished.
        parent: The Qt parent.
    """

    def __init__(
        self,
        subject: PollSubject,
        *,
        poll_interval_s: float,
        vram_reader: Callable[[], dict[int, float | None]] | None,
        on_health: Callable[[int | None, str], None],
        on_figures: Callable[[InstanceFigures], None],
        before_poll: Callable[[], bool],
        on_auth: Callable[[int | None], None] | None = None,
        on_record: Callable[[RequestRecord], None] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._subject = subject
        self._poll_interval_s = poll_interval_s
        self._vram_reader = vram_reader
        self._on_health = on_health
        self._on_figures = on_figures
        self._before_poll = before_poll
        self._on_auth = on_auth
        self._on_record = on_record
        self.auth_refused: int | None = None
        """The HTTP status (401/403) a monitored server refused the key with; ``None``: not refused."""
        self.failures = 0
        """Polls in a row a monitored server did not answer (the backoff follows it)."""
        self.backs_off = False
        """Poll a server that does not answer less often (a remote one; an adopted process is
        looked for at every poll instead)."""
        self.slot_requests = SlotRequestTracker()
        """Tells a monitored server's finished requests from its ``/slots`` (no log here)."""
        self._ended: list[RequestRecord] = []  # told by /slots, waiting for the counters
        self._ended_at: deque[float] = deque()  # when each was told (monotonic), for requests/min
        self._counters: dict[str, float] | None = None  # /metrics when the last ones were told
        self.endpoint = Endpoint()
        self.api_key: str | None = None
        """Sent as ``Authorization: Bearer`` to ``/metrics`` and ``/slots``."""
        self.monitors = False
        """Ask ``/health`` at each poll (a server whose readiness is not followed from its start)."""
        self.query = ""
        """Added to each request's path: ``?model=NAME&autoload=false`` asks one model of a router."""
        self.slots_when_busy = False
        """Ask ``/slots`` only while ``/metrics`` says a request is processing or waiting (a router's
        model: ``/slots`` counts as activity there, so asking it always would keep the model from
        going to sleep); idle then reads 0 tokens/s, and with no ``/metrics`` ``/slots`` is not asked."""
        self._epoch = 0
        self._nam = QNetworkAccessManager(self)
        self._nam.finished.connect(self._on_reply)
        self._in_flight: dict[str, QNetworkReply] = {}
        self._tick_pending: set[str] = set()
        # a reading is stale after a few missed polls (5 s at least)
        self.meter = ThroughputMeter(stale_after_s=max(DEFAULT_STALE_AFTER_S, 3 * poll_interval_s))
        """The live token rates, fed by ``/slots`` and :meth:`add_request`."""
        self._gauges: _Pair = (None, None)
        self._slots: _Pair = (None, None)
        self._metrics_supported = self._slots_supported = True
        self._tree = ProcessTreeStats()
        self._proc_figures: tuple[float | None, float | None, float | None] = (None, None, None)
        self.figures = NO_FIGURES
        """The latest figures."""
        interval_ms = self._base_interval_ms = max(50, round(poll_interval_s * 1000))
        self._health_timer = QTimer(self)
        self._health_timer.setInterval(min(HEALTH_INTERVAL_MS, interval_ms))
        self._health_timer.timeout.connect(self._check_health)
        self._poll_timer = QTimer(self)
        self._poll_timer.setInterval(interval_ms)
        self._poll_timer.timeout.connect(self.poll)
        self._busy_timer = QTimer(self)  # /slots between polls while a slot is busy
        self._busy_timer.setInterval(BUSY_SLOTS_INTERVAL_MS)
        self._busy_timer.timeout.connect(self._poll_busy_slots)
        self.slots_requests = 0
        """``/slots`` requests sent since construction (for tests and benchmarks)."""
        self.metrics_requests = 0
        """``/metrics`` requests sent for the gauges since construction (for tests and benchmarks)."""
        self._metrics_asked_at: float | None = None  # monotonic; None: not asked in this run
        self.log_tells_activity = False
        """The server's output is read here and shows each request as it begins (a server this app
        started): an idle one rests (see the module docstring; :meth:`slot_activity`)."""
        self._slots_asked_at: float | None = None  # monotonic; None: not asked in this run
        self._activity = False  # a slot line since /slots was last asked
        self._asked_on_activity = False  # the last /slots was asked after a slot line
        self._resting = False  # the last poll left /slots out: the server is idle, as its log says

    @property
    def polling(self) -> bool:
        """True while polls are due."""
        return self._poll_timer.isActive()

    def aim(self, endpoint: Endpoint, api_key: str | None, *, monitors: bool) -> None:
        """Poll this server from now on."""
        self.endpoint, self.api_key, self.monitors = endpoint, api_key, monitors
        self.auth_refused = None
        self.log_tells_activity = False  # the owner says so for a run whose output it reads
        if endpoint.local:  # a proxy from the environment must never see requests to this machine
            self._nam.setProxy(QNetworkProxy(QNetworkProxy.ProxyType.NoProxy))

    def begin(self) -> None:
        """A new run: forget the readings of the last one and drop its late replies."""
        self._epoch += 1
        self.meter.reset()
        self._gauges = self._slots = (None, None)
        self._metrics_supported = self._slots_supported = True
        self._tree = ProcessTreeStats()
        self._proc_figures = (None, None, None)
        self.auth_refused = None
        self.slot_requests.reset()
        self._ended, self._counters = [], None
        self._ended_at.clear()
        self._metrics_asked_at = None
        self._slots_asked_at = None
        self._activity = self._resting = False
        self._backoff(answered=True)

    @property
    def retry_in_s(self) -> float:
        """Seconds until the next poll of a monitored server that does not answer (0: no backoff)."""
        return retry_delay_s(self.failures) if self.failures else 0.0

    def _backoff(self, *, answered: bool) -> None:
        """A monitored server answered ``/health`` (any status) or not: the next polls follow."""
        self.failures = 0 if answered else self.failures + 1
        interval = max(self._base_interval_ms, round(self.retry_in_s * 1000))
        if self._poll_timer.interval() != interval:
            self._poll_timer.setInterval(interval)  # an active timer restarts with the new interval

    def start_polling(self) -> None:
        """Poll every interval from now on (the first poll comes after one interval)."""
        self._poll_timer.start()

    def poll_soon(self) -> None:
        """Poll at the next event-loop turn."""
        QTimer.singleShot(0, self, self.poll)

    def start_health_checks(self) -> None:
        """Ask ``/health`` now and every 200 ms while the instance loads."""
        self._health_timer.start()
        self._check_health()

    def stop_health_checks(self) -> None:
        """No more load-time ``/health`` requests."""
        self._health_timer.stop()

    def add_request(self, record: FinishedRequest) -> None:
        """A request finished now (its record was read from the log): its tokens count at once."""
        self.meter.add_request(time.monotonic(), record)

    def slot_activity(self) -> None:
        """The server's output showed a slot line (a request began, went on or ended).

        A resting server is asked ``/slots`` at once: its answer shows the busy slot, and the polls
        follow it from there (every poll, and every :data:`BUSY_SLOTS_INTERVAL_MS` while busy).
        """
        self._activity = True
        if self._resting:
            self._resting = False
            if self._subject.state is InstanceState.RUNNING and self._slots_supported:
                self._request_slots()

    def cancel(self) -> None:
        """No more requests, and no reply of those on their way is taken.

        Each request closes its connection, so none is left open.
        ``QNetworkAccessManager.clearConnectionCache()`` is not used: called while replies are being
        aborted it leaves posted events for deleted objects behind (a crash later on).
        """
        self._epoch += 1
        self._health_timer.stop()
        self._poll_timer.stop()
        self._busy_timer.stop()
        for reply in list(self._in_flight.values()):
            reply.abort()
        self._in_flight.clear()
        self._tick_pending.clear()

    def halt(self) -> None:
        """The run is over: :meth:`cancel`, forget the readings, publish :data:`NO_FIGURES`."""
        self.cancel()
        self.meter.reset()
        self._tree = ProcessTreeStats()
        if self.figures != NO_FIGURES:
            self.figures = NO_FIGURES
            self._on_figures(NO_FIGURES)

    def poll(self) -> None:
        """One poll: process figures now, HTTP figures when their replies arrive."""
        if not self._before_poll():
            return
        if self._tick_pending:
            self._publish()  # the previous tick's replies are late: report what is known
        subject = self._subject
        cpu, rss, pids = self._tree.read(subject.pid)
        self._proc_figures = (cpu, rss, tree_vram_mb(self._vram_reader, pids))
        running = subject.state is InstanceState.RUNNING
        polling_http = self.endpoint.port is not None and (running or self.monitors)
        sent: set[str] = set()
        if polling_http and self.monitors and self._request("/health", "health", auth=False):
            sent.add("health")
        refused = polling_http and self.monitors and not running and self.auth_refused is not None
        if refused and self._request_slots():  # is the key taken now? (a corrected key, or the server's)
            sent.add("slots")
        if polling_http and running:
            if self._metrics_due() and self._request("/metrics", "metrics", auth=True):
                self.metrics_requests += 1
                self._metrics_asked_at = time.monotonic()
                sent.add("metrics")
            # one on its way (asked while busy) is waited for too: the figures take the freshest
            wanted = self._slots_supported and (not self.slots_when_busy or self._gauges_busy())
            self._resting = wanted and self._may_rest()
            if wanted and not self._resting and (self._request_slots() or "slots" in self._in_flight):
                sent.add("slots")
            elif self.slots_when_busy and self._slots[1] is not None:
                self._slots = (0.0, self._slots[1])  # idle, as /metrics says: no slot busy
        self._tick_pending = sent
        if not sent:
            self._publish()

    def _may_rest(self) -> bool:
        """Whether this poll may leave ``/slots`` out (:attr:`log_tells_activity`, see the module
        docstring): every slot idle at the last answer, no slot line since, the rates at 0, and
        ``/slots`` asked less than :data:`IDLE_SLOTS_INTERVAL_S` ago."""
        if not self.log_tells_activity or self._activity or self._slots[0] != 0:
            return False
        asked = self._slots_asked_at
        if asked is None or time.monotonic() - asked >= IDLE_SLOTS_INTERVAL_S:
            return False
        if "slots" in self._in_flight:
            return False
        rates = self.meter.reading(time.monotonic())
        return not rates.generation_tps and not rates.prompt_tps

    def _gauges_busy(self) -> bool:
        """Whether the latest ``/metrics`` told of a request processing or waiting."""
        return self._metrics_supported and any((gauge or 0) > 0 for gauge in self._gauges)

    def _metrics_due(self) -> bool:
        """Whether this poll asks ``/metrics`` for the gauges.

        At every poll while a slot is busy, for a monitored server (its counters are followed), and
        where ``/slots`` does not answer; for an idle server whose ``/slots`` answers, every
        :data:`IDLE_METRICS_INTERVAL_S` (the gauges come from ``/slots`` in between: 0). A model
        behind the router (:attr:`slots_when_busy`) is asked at every poll: there the gauges are what
        says a request began (its ``/slots`` is asked only then).
        """
        if not self._metrics_supported:
            return False
        if self.slots_when_busy or self.monitors or not self._slots_supported:
            return True
        if self._slots[0] is None or self._slots[0] > 0:
            return True
        asked = self._metrics_asked_at
        return asked is None or time.monotonic() - asked >= IDLE_METRICS_INTERVAL_S

    def _request_slots(self) -> bool:
        if not self._request("/slots", "slots", auth=True):
            return False
        self.slots_requests += 1
        self._slots_asked_at = time.monotonic()
        self._asked_on_activity, self._activity = self._activity, False
        if self._busy_timer.isActive():
            self._busy_timer.start()  # the next one 0.5 s after this one, not just after a poll's
        return True

    def _poll_busy_slots(self) -> None:
        if self._subject.state is InstanceState.RUNNING and self._slots_supported:
            self._request_slots()  # its answer feeds the meter; the next poll publishes

    def _check_health(self) -> None:
        subject = self._subject
        if subject.state is InstanceState.LOADING and subject.active and not subject.stopping:
            self._request("/health", "health", auth=False)

    def _request(self, path: str, kind: str, *, auth: bool) -> bool:
        if kind in self._in_flight:
            return False  # the previous one is still on its way: never pile up requests
        request = QNetworkRequest(QUrl(self.endpoint.url + path + self.query))
        request.setTransferTimeout(max(1000, round(self._poll_interval_s * 1000 * 2)))
        # A fresh connection per request: an idle keep-alive connection would delay the server's own
        # graceful shutdown (and a few local connections a second cost nothing).
        request.setRawHeader(QByteArray(b"Connection"), QByteArray(b"close"))
        if auth and self.api_key:
            request.setRawHeader(QByteArray(b"Authorization"), QByteArray(f"Bearer {self.api_key}".encode()))
        reply = self._nam.get(request)
        # Tagged, not captured in a closure: the manager's ``finished`` brings the reply back, and
        # no Python callable outlives it.
        reply.setProperty("llamadash_kind", kind)
        reply.setProperty("llamadash_epoch", self._epoch)
        self._in_flight[kind] = reply
        return True

    def _on_reply(self, reply: QNetworkReply) -> None:
        reply.deleteLater()
        kind, epoch = reply.property("llamadash_kind"), reply.property("llamadash_epoch")
        if self._in_flight.get(kind) is reply:
            del self._in_flight[kind]
        if epoch != self._epoch:
            return
        status = reply.attribute(QNetworkRequest.Attribute.HttpStatusCodeAttribute)
        status = int(status) if status is not None else None
        body = reply_body(reply)
        if kind == "health":
            if self.backs_off:
                self._backoff(answered=status is not None)
            self._on_health(status, reply.errorString() if status is None else "")
        elif kind == "metrics":
            self._on_metrics(status, body)
        elif kind == "counters":
            self._on_counters(status, body)
        elif kind == "slots":
            self._on_slots(status, body)
        if kind in self._tick_pending:
            self._tick_pending.discard(kind)
            if not self._tick_pending:
                self._publish()

    def _follow_auth(self, status: int | None) -> bool:
        """Whether a monitored server refused the key with ``status``; tells when that changes."""
        if not self.monitors:
            return False
        refused = status in (401, 403)
        if refused and self.auth_refused != status:
            self.auth_refused = status
            if self._on_auth is not None:
                self._on_auth(status)
        elif status == 200 and self.auth_refused is not None:
            self.auth_refused = None
            if self._on_auth is not None:
                self._on_auth(None)
        return refused

    def _on_metrics(self, status: int | None, body: bytes) -> None:
        self._follow_auth(status)
        if status == 200:
            try:
                metrics = parse_metrics(body.decode("utf-8", errors="replace"))
            except ValueError:
                metrics = {}
            self._gauges = (metrics.get(REQUESTS_PROCESSING), metrics.get(REQUESTS_DEFERRED))
            if self.monitors and self._counters is None:
                self._counters = metrics  # the baseline of the first requests /slots tells
            return
        if status == 501:
            self._metrics_supported = False  # started without --metrics: stop asking
        self._gauges = (None, None)

    def _on_slots(self, status: int | None, body: bytes) -> None:
        self._follow_auth(status)
        if status == 200:
            try:
                readings = parse_slots(json.loads(body))
            except ValueError:
                readings = None
            if readings is not None:
                self.meter.add_slots(time.monotonic(), readings)
                if self.monitors and self._on_record is not None:
                    self._ended.extend(self.slot_requests.feed(readings))
                    if self._ended and not (self._metrics_supported and self._request_counters()):
                        self._tell_ended(None)
                busy = sum(1 for reading in readings if reading.processing)
                quiet = not (self._activity or self._asked_on_activity)
                if busy and self.log_tells_activity and quiet and self._slots[0] == 0:
                    # a request the output did not show (its lines are off): no more resting
                    self.log_tells_activity = False
                self._slots = (float(busy), float(len(readings)))
                if not busy and self._gauges[0] is not None and "metrics" not in self._tick_pending:
                    self._gauges = (0.0, 0.0)  # no slot busy: nothing processing, nothing waiting
                self._follow_busy(busy > 0)
                return
        if status == 501:
            self._slots_supported = False  # started with --no-slots: no live token rates
            self.meter.reset()
        self._slots = (None, None)
        self._follow_busy(False)

    def _request_counters(self) -> bool:
        """Ask ``/metrics`` now: requests just ended; their tokens are in its counters."""
        return "counters" in self._in_flight or self._request("/metrics", "counters", auth=True)

    def _on_counters(self, status: int | None, body: bytes) -> None:
        metrics: dict[str, float] | None = None
        if status == 200:
            try:
                metrics = parse_metrics(body.decode("utf-8", errors="replace"))
            except ValueError:
                metrics = None
        self._tell_ended(metrics)

    def _tell_ended(self, counters: dict[str, float] | None) -> None:
        """Hand on the requests ``/slots`` told ended, with the counters' figures where they are exact."""
        ended, self._ended = self._ended, []
        if counters is not None:
            ended = with_counters(ended, self._counters, counters)
            self._counters = counters
        now = time.monotonic()
        self._ended_at.extend(now for _ in ended)
        if self._on_record is not None:
            for record in ended:
                self._on_record(record)

    def requests_per_minute(self) -> float:
        """Requests a monitored server's ``/slots`` showed finished in the last 60 s."""
        cutoff = time.monotonic() - 60.0
        while self._ended_at and self._ended_at[0] < cutoff:
            self._ended_at.popleft()
        return float(len(self._ended_at))

    def _follow_busy(self, busy: bool) -> None:
        """Ask ``/slots`` more often while a slot is busy (when polls are further apart)."""
        if not busy or not self.polling or self._poll_timer.interval() <= BUSY_SLOTS_INTERVAL_MS:
            self._busy_timer.stop()
        elif not self._busy_timer.isActive():
            self._busy_timer.start()

    def _publish(self) -> None:
        self._tick_pending.clear()
        subject = self._subject
        if not subject.active:
            return
        cpu, rss, vram = self._proc_figures
        running = subject.state is InstanceState.RUNNING
        rates = self.meter.reading(time.monotonic()) if running else Throughput()
        if running and self._resting:
            # idle, as the last /slots and the output since say (the meter's snapshot may be stale)
            rates = Throughput(generation_tps=0.0, prompt_tps=0.0)
        if running and self.slots_when_busy and self._gauges[0] == 0 and not self._gauges_busy():
            # not asking /slots while idle: /metrics' gauges say nothing is generating
            rates = Throughput(
                generation_tps=0.0 if rates.generation_tps is None else rates.generation_tps,
                prompt_tps=0.0 if rates.prompt_tps is None else rates.prompt_tps,
            )
        figures = InstanceFigures(
            prompt_tokens_per_s=rates.prompt_tps,
            generation_tokens_per_s=rates.generation_tps,
            requests_processing=self._gauges[0] if running else None,
            requests_deferred=self._gauges[1] if running else None,
            busy_slots=self._slots[0] if running else None,
            total_slots=self._slots[1] if running else None,
            requests_per_minute=subject.requests_per_minute(),
            cpu_percent=cpu,
            rss_mb=rss,
            vram_mb=vram,
        )
        self.figures = figures
        self._on_figures(figures)
