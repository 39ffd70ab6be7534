"""One streamed chat completion sent to a running server: the Try pane's request.

:class:`ChatRequest` POSTs ``{url}/v1/chat/completions`` (a system and a user message,
``max_tokens``, ``"stream": true`` with usage) through a ``QNetworkAccessManager`` on the owner's
thread, so the GUI never waits: each piece of the answer is emitted as it arrives
(:attr:`ChatRequest.delta`), then the figures of the server's last chunk
(:attr:`ChatRequest.finished`, a :class:`~llamadash.core.chat_stream.ChatResult`), or a readable
:attr:`ChatRequest.failed` message. The event stream is read by
:class:`~llamadash.core.chat_stream.ChatStream` (pure, in core). A request to this machine never
goes through a proxy from the environment, as the poller's do.
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import QByteArray, QObject, QTimer, QUrl, Signal
from PySide6.QtNetwork import QNetworkAccessManager, QNetworkProxy, QNetworkReply, QNetworkRequest

from llamadash.core.chat_stream import ChatResult, ChatStream, error_message
from llamadash.core.pidfile import connect_host
from llamadash.services.replies import reply_body

__all__ = ["IDLE_TIMEOUT_MS", "ChatRequest"]

#: A request fails when no byte arrived for this long (a long prompt on a CPU is slow to start).
IDLE_TIMEOUT_MS = 300_000


class ChatRequest(QObject):
    """One streamed chat completion; see the module docstring.

    Args:
        url: The server's base URL (``http://127.0.0.1:8080``); empty when it has no port.
        prompt: The user message.
        system_prompt: The system message (none when empty).
        max_tokens: The most tokens generated.
        api_key: Sent as ``Authorization: Bearer`` when set.
        extra: More fields of the request body (``{"ignore_eos": True}``, ``temperature``).
        parent: The Qt parent.

    Call :meth:`send` once; :meth:`cancel` aborts, after which no signal is emitted.
    """

    delta = Signal(str)
    """A piece of the answer, as it arrives."""
    finished = Signal(object)
    """The answer is complete: its :class:`~llamadash.core.chat_stream.ChatResult`."""
    failed = Signal(str)
    """No answer, or a broken one: a readable message (``HTTP 400: ...``, ``Connection refused``)."""

    def __init__(
        self,
        url: str,
        prompt: str,
        *,
        system_prompt: str = "",
        max_tokens: int = 256,
        api_key: str | None = None,
        extra: dict[str, Any] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.url = url.rstrip("/")
        self.prompt = prompt
        self.system_prompt = system_prompt
        self.max_tokens = max_tokens
        self.api_key = api_key
        self.extra = dict(extra or {})
        self._nam = QNetworkAccessManager(self)
        self._reply: QNetworkReply | None = None
        self._stream = ChatStream()
        self._error_body = b""
        self._over = False
        self.deltas = 0
        """Pieces emitted so far."""

    @property
    def running(self) -> bool:
        """Sent and neither finished, failed nor cancelled."""
        return self._reply is not None and not self._over

    @property
    def text(self) -> str:
        """The answer received so far."""
        return self._stream.text

    def body(self) -> dict[str, Any]:
        """The JSON body sent."""
        messages = []
        if self.system_prompt.strip():
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": self.prompt})
        return {
            "messages": messages,
            "max_tokens": self.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            **self.extra,
        }

    def send(self) -> None:
        """Send the request (a failure to send is emitted at the next event-loop turn)."""
        qurl = QUrl(self.url + "/v1/chat/completions")
        if not self.url or not qurl.isValid() or not qurl.host():
            self._over = True
            QTimer.singleShot(
                0, self, lambda: self.failed.emit("the server is not running (it has no address)")
            )
            return
        if connect_host(qurl.host()) in ("127.0.0.1", "::1", "localhost"):
            self._nam.setProxy(QNetworkProxy(QNetworkProxy.ProxyType.NoProxy))
        request = QNetworkRequest(qurl)
        request.setHeader(QNetworkRequest.KnownHeaders.ContentTypeHeader, "application/json")
        request.setRawHeader(QByteArray(b"Accept"), QByteArray(b"text/event-stream"))
        request.setRawHeader(QByteArray(b"Connection"), QByteArray(b"close"))  # none left idle open
        if self.api_key:
            request.setRawHeader(QByteArray(b"Authorization"), QByteArray(f"Bearer {self.api_key}".encode()))
        request.setTransferTimeout(IDLE_TIMEOUT_MS)
        reply = self._nam.post(request, QByteArray(json.dumps(self.body()).encode()))
        reply.readyRead.connect(self._on_ready_read)
        reply.finished.connect(self._on_finished)
        self._reply = reply

    def cancel(self) -> None:
        """Abort the request; no signal follows."""
        self._over = True
        reply, self._reply = self._reply, None
        if reply is not None:
            reply.abort()
            reply.deleteLater()

    def _status(self) -> int | None:
        if self._reply is None:
            return None
        status = self._reply.attribute(QNetworkRequest.Attribute.HttpStatusCodeAttribute)
        return int(status) if status is not None else None

    def _on_ready_read(self) -> None:
        reply = self._reply
        if reply is None or self._over:
            return
        data = reply_body(reply)
        status = self._status()
        if status is not None and status >= 300:
            self._error_body += data  # an error's body is one JSON object, not events
            return
        for chunk in self._stream.feed(data):
            if chunk.text:
                self.deltas += 1
                self.delta.emit(chunk.text)
            if self._over:  # a slot connected to delta cancelled
                return

    def _on_finished(self) -> None:
        reply = self._reply
        if reply is None or self._over:
            return
        self._on_ready_read()
        if self._over:
            return
        self._over = True
        status = self._status()
        error = reply.error()
        error_text = reply.errorString()
        reply.deleteLater()
        if status is not None and status >= 300:
            self.failed.emit(error_message(status, self._error_body))
        elif status is None or (error != QNetworkReply.NetworkError.NoError and not self._stream.done):
            self.failed.emit(error_message(None, b"", _network_error(error, error_text)))
        elif self._stream.error is not None:
            self.failed.emit(self._stream.error)
        else:
            result: ChatResult = self._stream.result()
            self.finished.emit(result)


def _network_error(error: QNetworkReply.NetworkError, text: str) -> str:
    """Qt's text, with the usual cause said first."""
    if error == QNetworkReply.NetworkError.ConnectionRefusedError:
        return f"connection refused: is the server running? ({text})"
    if error == QNetworkReply.NetworkError.RemoteHostClosedError:
        return f"the server closed the connection before the answer was complete ({text})"
    if error == QNetworkReply.NetworkError.OperationCanceledError:
        return f"no answer within {IDLE_TIMEOUT_MS // 1000} s ({text})"
    return text or "no answer from the server"
