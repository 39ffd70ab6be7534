"""Per-model figures through the library router: ``/slots?model=`` and ``/metrics?model=``.

llama-server's router passes ``GET /slots`` and ``GET /metrics`` on to the child of the model named
by ``?model=`` (``&autoload=false``: a model that is not loaded answers 400 instead of loading).
:class:`RouterModelFigures` keeps one :class:`~llamadash.services.endpoint_poller.EndpointPoller`
per model the router has **loaded** (none for a sleeping or unloaded one: ``/slots`` would wake a
sleeping model), polled like a normal instance (true tokens/s from the
:class:`~llamadash.core.throughput.ThroughputMeter`, busy slots, the gauges), with the CPU, memory
and VRAM of that model's own child process (found once among the router's children by its
``--alias NAME``). Each poll's figures are handed to ``on_figures`` under the model's name, so the
Instances table, the tokens/s chart and the history have a figure per served model; the router's
own row takes the sum of its models' rates (:meth:`RouterModelFigures.router_figures`).

Each model's requests (from the router's log) count at once (:meth:`RouterModelFigures.add_request`)
and give its requests per minute. QtCore only.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import quote

import psutil
from PySide6.QtCore import QObject

from llamadash.core import proc_children
from llamadash.core.requests_log import RequestRecord
from llamadash.core.router import RouterModel
from llamadash.core.states import InstanceState
from llamadash.services.endpoint_poller import EndpointPoller
from llamadash.services.figures import NO_FIGURES, InstanceFigures
from llamadash.services.process_driver import Endpoint

__all__ = ["RouterModelFigures", "child_pid_of"]

#: The router's state in which a model's figures are asked.
POLLED_STATE = "loaded"


def child_pid_of(router_pid: int | None, name: str) -> int | None:
    """The PID of the router's child llama-server that serves ``name`` (started with ``--alias NAME``)."""
    if router_pid is None:
        return None
    try:
        children = proc_children.children(psutil.Process(router_pid), recursive=False)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    for child in children:
        try:
            argv = child.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if any(a == "--alias" and b == name for a, b in itertools.pairwise(argv)):
            return child.pid
    return None


class _ModelSubject:
    """What a model's poller reads of it (:class:`~llamadash.services.endpoint_poller.PollSubject`)."""

    def __init__(self, name: str, router_pid: Callable[[], int | None]) -> None:
        self.name = name
        self._router_pid = router_pid
        self._pid: int | None = None
        self._ended_at: deque[float] = deque()
        self.loaded = True

    @property
    def state(self) -> InstanceState:
        return InstanceState.RUNNING if self.loaded else InstanceState.STOPPED

    @property
    def stopping(self) -> bool:
        return False

    @property
    def active(self) -> bool:
        return self.loaded

    @property
    def pid(self) -> int | None:
        if self._pid is None or not psutil.pid_exists(self._pid):
            self._pid = child_pid_of(self._router_pid(), self.name)
        return self._pid

    def add_request(self) -> None:
        self._ended_at.append(time.monotonic())

    def requests_per_minute(self) -> float | None:
        cutoff = time.monotonic() - 60.0
        while self._ended_at and self._ended_at[0] < cutoff:
            self._ended_at.popleft()
        return float(len(self._ended_at))


class RouterModelFigures(QObject):
    """One poller per loaded model of the router; see the module docstring.

    Args:
        on_figures: Called with (model name, :class:`InstanceFigures`) at each poll of a loaded
            model, and with :data:`~llamadash.services.figures.NO_FIGURES` once it is unloaded.
        poll_interval_s: Seconds between two polls of each model (the normal instances' rate).
        vram_reader: PID -> VRAM MiB, or ``None``.
        parent: The Qt parent.
    """

    def __init__(
        self,
        on_figures: Callable[[str, InstanceFigures], None],
        *,
        poll_interval_s: float,
        vram_reader: Callable[[], dict[int, float | None]] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._on_figures = on_figures
        self._interval_s = poll_interval_s
        self._vram_reader = vram_reader
        self._endpoint = Endpoint()
        self._api_key: str | None = None
        self._router_pid: int | None = None
        self._pollers: dict[str, EndpointPoller] = {}
        self._subjects: dict[str, _ModelSubject] = {}

    def polled(self) -> list[str]:
        """The models whose figures are polled now (those the router has loaded)."""
        return list(self._pollers)

    def poller(self, name: str) -> EndpointPoller | None:
        """The poller of model ``name`` (for tests and the benchmark)."""
        return self._pollers.get(name)

    def figures(self, name: str) -> InstanceFigures | None:
        """The latest figures of model ``name`` (``None`` while it is not polled)."""
        poller = self._pollers.get(name)
        return poller.figures if poller is not None else None

    def aim(self, base_url: str, api_key: str | None, router_pid: int | None) -> None:
        """Ask the router at ``base_url`` from now on."""
        self._endpoint = Endpoint.from_url(base_url)
        self._api_key = api_key
        self._router_pid = router_pid

    def follow(self, models: list[RouterModel]) -> None:
        """The router's models changed: poll each loaded one, stop polling the others."""
        loaded = {m.name for m in models if m.state == POLLED_STATE}
        for name in [n for n in self._pollers if n not in loaded]:
            self._drop(name)
        for name in sorted(loaded - set(self._pollers)):
            self._add(name)

    def forget(self, name: str) -> None:
        """Stop polling ``name`` now (it is about to be unloaded: no request must meet its exit)."""
        if name in self._pollers:
            self._drop(name)

    def halt(self) -> None:
        """The router stopped: no more polls; every model's figures are gone."""
        for name in list(self._pollers):
            self._drop(name)

    def add_request(self, record: RequestRecord) -> None:
        """A request of the router finished (its log said): its model's tokens and requests/min."""
        name = record.model or ""
        poller, subject = self._pollers.get(name), self._subjects.get(name)
        if poller is not None and subject is not None:
            subject.add_request()
            poller.add_request(record)

    def router_figures(self, own: InstanceFigures) -> InstanceFigures:
        """The router row's figures: its own (CPU, memory of its tree) with its models' rates summed."""
        figures = [p.figures for p in self._pollers.values()]

        def total(attribute: str) -> float | None:
            values = [getattr(f, attribute) for f in figures if getattr(f, attribute) is not None]
            return sum(values) if values else None

        return replace(
            own,
            prompt_tokens_per_s=total("prompt_tokens_per_s"),
            generation_tokens_per_s=total("generation_tokens_per_s"),
            requests_processing=total("requests_processing"),
            requests_deferred=total("requests_deferred"),
            busy_slots=total("busy_slots"),
            total_slots=total("total_slots"),
        )

    # -- internals ----------------------------------------------------------------------------------

    def _add(self, name: str) -> None:
        subject = _ModelSubject(name, lambda: self._router_pid)

        def tell(figures: InstanceFigures) -> None:
            self._on_figures(name, figures)

        poller = EndpointPoller(
            subject,
            poll_interval_s=self._interval_s,
            vram_reader=self._vram_reader,
            on_health=lambda _status, _error: None,
            on_figures=tell,
            before_poll=lambda: True,
            parent=self,
        )
        poller.aim(self._endpoint, self._api_key, monitors=False)
        poller.query = f"?model={quote(name, safe='')}&autoload=false"
        poller.slots_when_busy = True  # /slots is activity: asked always, it would keep the model awake
        poller.begin()
        self._pollers[name] = poller
        self._subjects[name] = subject
        poller.start_polling()
        poller.poll_soon()

    def _drop(self, name: str) -> None:
        poller = self._pollers.pop(name)
        subject = self._subjects.pop(name)
        poller.cancel()
        subject.loaded = False
        poller.meter.reset()
        poller.figures = NO_FIGURES
        self._on_figures(name, NO_FIGURES)
        poller.deleteLater()
