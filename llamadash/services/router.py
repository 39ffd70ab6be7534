"""The library router as an instance: its launch plan, and a watcher of its models' states.

The router is llama-server's own (router mode, ``--models-preset``); the instance manager runs it as
one more :class:`~llamadash.services.instance.ServerInstance` named
:data:`~llamadash.core.router.ROUTER_NAME` (health-gated start, log, stop with kill escalation,
crash handling, PID record and marker variables, which its child model processes inherit, so a
killed dashboard's router and children are found as orphans). This module holds the two parts that
are the router's own:

* :func:`plan_router_launch`: the side-effecting half of planning (find the binary, read the library,
  check the port, write the presets file, add the markers) around the pure
  :func:`llamadash.core.router.plan_router`;
* :class:`RouterWatcher`: follows ``GET /models/sse`` while the router runs (each state change,
  loading progress and failure at once) and polls ``GET /models`` as well (every ``interval_s``;
  one request at a time, each timed: :attr:`RouterWatcher.last_poll_ms`): the poll is the fallback
  where the build has no event stream or it broke, and the truth the events are applied to; it
  publishes the models' states; :meth:`RouterWatcher.load` / :meth:`RouterWatcher.unload` post
  ``/models/load|unload``.

QtCore and QtNetwork only.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QObject, QTimer, QUrl, Signal
from PySide6.QtNetwork import QNetworkAccessManager, QNetworkProxy, QNetworkReply, QNetworkRequest

from llamadash.core import database as db
from llamadash.core import pidfile
from llamadash.core.launch import LaunchPlan
from llamadash.core.router import (
    ROUTER_NAME,
    RouterModel,
    RouterPlan,
    RouterReplyError,
    RouterSettings,
    SseBuffer,
    apply_event,
    parse_models,
)
from llamadash.core.router import plan_router as plan_router_pure
from llamadash.services.launcher import locate_binary
from llamadash.services.ports import check_port
from llamadash.services.replies import reply_body

__all__ = ["UNLOAD_DELAY_MS", "RouterWatcher", "plan_router_launch", "preset_path_of"]

#: How long after the event stream ended (the router restarting, a network hiccup) it is opened again.
SSE_RETRY_MS = 2000
#: How long an unload waits for the model's figure requests on their way to be answered.
UNLOAD_DELAY_MS = 150


def preset_path_of(data_dir: Path) -> Path:
    """Where the router's presets file is written: ``<data dir>/router/models.ini``."""
    return Path(data_dir) / "router" / "models.ini"


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def plan_router_launch(
    data_dir: Path, settings: RouterSettings, *, reserved: dict[int, str], port_check: bool = True
) -> tuple[LaunchPlan, RouterPlan]:
    """Check everything, write the presets file and build the router's launch plan.

    Args:
        data_dir: The data directory (the presets file goes to :func:`preset_path_of`, the binary's
            options are cached in its ``cache``).
        settings: The router's settings.
        reserved: Ports held by the manager's other servers and orphans, each with who holds it.
        port_check: Refuse a taken port (off: the running router's own presets are rewritten).

    Raises:
        LaunchError: The router cannot start (no binary, no router mode, no served model, its port
            taken: :class:`~llamadash.core.launch.PortInUseError`).
    """
    binary, caps, problem = locate_binary(Path(data_dir) / "cache")
    preset = preset_path_of(data_dir)
    plan = plan_router_pure(
        db.get_models(), settings, caps, binary, preset_path=str(preset), binary_problem=problem
    )
    if port_check:
        check_port("the router", plan.host, plan.port, reserved)
    _write_atomically(preset, plan.preset_text)
    assert binary is not None  # plan_router refuses without one
    markers = pidfile.marker_environment(
        model=ROUTER_NAME,
        model_id=None,
        host=plan.host,
        port=plan.port,
        binary=binary,
        started_at_ms=time.time_ns() // 1_000_000,
    )
    launch = LaunchPlan(
        argv=plan.argv,
        env=markers,
        host=plan.host,
        port=plan.port,
        binary=binary,
        counts_requests=True,  # its models' lines, which it passes on, say when each request is done
        warnings=plan.warnings,
        config=plan.config,
    )
    return launch, plan


class RouterWatcher(QObject):
    """Follows the router's models through ``GET /models``; loads and unloads them.

    Args:
        interval_s: Seconds between two polls while the router runs.
        parent: The Qt parent.
    """

    modelsChanged = Signal(object)
    """A list of :class:`~llamadash.core.router.RouterModel` after each poll that changed anything
    (an empty list once the router stopped)."""

    actionFailed = Signal(str, str)
    """(model name, why): a load or an unload was refused by the router or got no answer."""

    unloading = Signal(str)
    """A model name: it is about to be unloaded (its figures' polls stop first)."""

    def __init__(self, *, interval_s: float = 1.0, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._nam = QNetworkAccessManager(self)
        self._nam.setProxy(QNetworkProxy(QNetworkProxy.ProxyType.NoProxy))
        self._base = ""
        self._api_key: str | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(max(100, round(interval_s * 1000)))
        self._timer.timeout.connect(self.poll)
        self._pending: QNetworkReply | None = None
        self._sent_at = 0.0
        self._events_at_send = 0
        self._epoch = 0
        self.models: list[RouterModel] = []
        """The models as of the last poll (empty while the router does not run)."""
        self.last_poll_ms: float | None = None
        """How long the last ``GET /models`` took, from sending to its parsed answer (ms)."""
        self.problem = ""
        """Why the last poll failed ("" when it did not)."""
        self._sse: QNetworkReply | None = None
        self._sse_buffer = SseBuffer()
        self.sse_supported = True
        """Whether the router answers ``/models/sse`` (False after a 404: polls only)."""
        self.sse_events = 0
        """Events read from ``/models/sse`` since construction (for tests)."""

    @property
    def watching(self) -> bool:
        """Whether it polls (the router runs)."""
        return bool(self._base)

    def watch(self, base_url: str, api_key: str | None = None) -> None:
        """Poll the router at ``base_url`` (``http://127.0.0.1:8090``) from now on."""
        self._base = base_url.rstrip("/")
        self._api_key = api_key
        self._epoch += 1
        self.sse_supported = True
        self._timer.start()
        self.poll()
        self._open_events()

    @property
    def live(self) -> bool:
        """Whether the event stream is open (state changes show without waiting for a poll)."""
        return self._sse is not None

    def halt(self) -> None:
        """Stop polling (the router stopped); publishes an empty list."""
        self._timer.stop()
        self._base = ""
        self._epoch += 1
        if self._pending is not None:
            self._pending.abort()
            self._pending = None
        self._close_events()
        if self.models:
            self.models = []
            self.modelsChanged.emit([])

    def model(self, name: str) -> RouterModel | None:
        """The model ``name`` as of the last poll."""
        return next((m for m in self.models if m.name == name), None)

    def poll(self, *, reload: bool = False) -> None:
        """Ask ``/models`` now (unless an answer is on its way).

        Args:
            reload: Make the router read its presets file again (``?reload=1``): models added to it
                appear, and an edited model's next load uses its new settings.
        """
        if not self._base or (self._pending is not None and not reload):
            return
        if self._pending is not None:
            self._pending.abort()  # its answer is older than the file
        self._sent_at = time.perf_counter()
        self._events_at_send = self.sse_events
        reply = self._nam.get(self._request("/models?reload=1" if reload else "/models"))
        epoch = self._epoch
        self._pending = reply
        reply.finished.connect(lambda: self._on_models(reply, epoch))

    def load(self, name: str) -> None:
        """Ask the router to load model ``name`` (its state follows at the next polls)."""
        self._post("/models/load", name)

    def unload(self, name: str) -> None:
        """Ask the router to unload model ``name`` (its process stops; its memory is freed).

        Its figures' polls stop first (:attr:`unloading`) and the unload is posted a moment later:
        a request passed on to the model while it exits makes its exit a failure (code 1).
        """
        self.unloading.emit(name)
        QTimer.singleShot(UNLOAD_DELAY_MS, self, lambda: self._post("/models/unload", name))

    # -- internals ----------------------------------------------------------------------------------

    def _open_events(self) -> None:
        if not self._base or not self.sse_supported or self._sse is not None:
            return
        request = QNetworkRequest(QUrl(self._base + "/models/sse"))  # no transfer timeout: it streams
        request.setRawHeader(QByteArray(b"Accept"), QByteArray(b"text/event-stream"))
        if self._api_key:
            request.setRawHeader(QByteArray(b"Authorization"), QByteArray(f"Bearer {self._api_key}".encode()))
        self._sse_buffer = SseBuffer()
        reply = self._sse = self._nam.get(request)
        epoch = self._epoch
        reply.readyRead.connect(lambda: self._on_events(reply, epoch))
        reply.finished.connect(lambda: self._on_events_end(reply, epoch))

    def _close_events(self) -> None:
        reply, self._sse = self._sse, None
        if reply is not None:
            reply.abort()

    def _on_events(self, reply: QNetworkReply, epoch: int) -> None:
        if epoch != self._epoch or reply is not self._sse:
            return
        status = reply.attribute(QNetworkRequest.Attribute.HttpStatusCodeAttribute)
        if status is not None and status != 200:
            return  # an error page: its end says what follows
        models: list[RouterModel] | None = self.models
        for event in self._sse_buffer.feed(reply_body(reply)):
            self.sse_events += 1
            models = apply_event(models, event) if models is not None else None
        if models is None:
            self.poll()  # a model added or removed, or a reload: the list again
        elif models != self.models:
            self.models = models
            self.modelsChanged.emit(list(models))

    def _on_events_end(self, reply: QNetworkReply, epoch: int) -> None:
        status = reply.attribute(QNetworkRequest.Attribute.HttpStatusCodeAttribute)
        reply.deleteLater()
        if reply is self._sse:
            self._sse = None
        if epoch != self._epoch or not self._base:
            return
        if status in (404, 405, 501):
            self.sse_supported = False  # this build has no event stream: the polls alone follow it
            return
        QTimer.singleShot(SSE_RETRY_MS, self, self._open_events)

    def _request(self, path: str) -> QNetworkRequest:
        request = QNetworkRequest(QUrl(self._base + path))
        request.setTransferTimeout(5000)
        if self._api_key:
            request.setRawHeader(QByteArray(b"Authorization"), QByteArray(f"Bearer {self._api_key}".encode()))
        return request

    def _post(self, path: str, name: str) -> None:
        if not self._base:
            self.actionFailed.emit(name, "the router is not running")
            return
        request = self._request(path)
        request.setHeader(QNetworkRequest.KnownHeaders.ContentTypeHeader, "application/json")
        reply = self._nam.post(request, QByteArray(json.dumps({"model": name}).encode()))
        reply.finished.connect(lambda: self._on_action(reply, name))

    def _on_action(self, reply: QNetworkReply, name: str) -> None:
        status = reply.attribute(QNetworkRequest.Attribute.HttpStatusCodeAttribute)
        body = reply_body(reply)
        error = reply.errorString() if reply.error() != QNetworkReply.NetworkError.NoError else ""
        reply.deleteLater()
        if status == 200:
            self.poll()
            return
        self.actionFailed.emit(name, _error_message(body) or error or f"HTTP {status}")
        self.poll()

    def _on_models(self, reply: QNetworkReply, epoch: int) -> None:
        if reply is self._pending:
            self._pending = None
        body = reply_body(reply)
        status = reply.attribute(QNetworkRequest.Attribute.HttpStatusCodeAttribute)
        error = reply.errorString()
        reply.deleteLater()
        if epoch != self._epoch:
            return
        try:
            if status != 200:
                raise RouterReplyError(_error_message(body) or (f"HTTP {status}" if status else error))
            models = parse_models(json.loads(body))
        except (ValueError, RouterReplyError) as exc:
            self.problem = str(exc)
            return
        self.last_poll_ms = (time.perf_counter() - self._sent_at) * 1000
        self.problem = ""
        if self.sse_events != self._events_at_send:
            # the stream told of a change while this answer was on its way: the answer may be the
            # older news (a "loading" arriving after the stream's "loaded"); ask again
            self.poll()
            return
        if models != self.models:
            self.models = models
            self.modelsChanged.emit(list(models))


def _error_message(body: bytes) -> str:
    """The message of llama-server's error envelope (``{"error": {"message": ...}}``), or ""."""
    try:
        decoded: Any = json.loads(body)
    except ValueError:
        return ""
    if isinstance(decoded, dict) and isinstance(decoded.get("error"), dict):
        return str(decoded["error"].get("message") or "")
    return ""
