"""A server that takes the connection and never answers: the request times out, and the reply Qt
closed at its transfer timeout is not read.

Qt closes a timed-out reply before it finishes; reading it then warns ``QIODevice::read
(QNetworkReplyHttpImpl): device not open``, which pytest-qt turns into a failure (the router suite
failed on it once in CI, when a poll of a killed router's model timed out).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from llamadash.core.states import InstanceState
from llamadash.services import chat_client
from llamadash.services.chat_client import ChatRequest
from llamadash.services.endpoint_poller import EndpointPoller
from llamadash.services.process_driver import Endpoint


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listening socket that accepts (the kernel's backlog does) and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


@dataclass
class _Loading:
    state: InstanceState = InstanceState.LOADING
    stopping: bool = False
    active: bool = True
    pid: int | None = None

    def requests_per_minute(self) -> float | None:
        return None


def test_a_health_check_that_times_out_is_a_failed_check_without_a_qt_warning(qtbot, silent_port):
    answers: list[tuple[int | None, str]] = []
    poller = EndpointPoller(
        _Loading(),
        poll_interval_s=0.05,  # transfer timeout: 1 s, the least
        vram_reader=None,
        on_health=lambda status, error: answers.append((status, error)),
        on_figures=lambda figures: None,
        before_poll=lambda: True,
    )
    poller.aim(Endpoint(port=silent_port), None, monitors=False)
    poller.begin()
    poller.start_health_checks()
    qtbot.waitUntil(lambda: bool(answers), timeout=5000)
    poller.cancel()
    status, error = answers[0]
    assert status is None and "timed out" in error.lower()


def test_a_chat_request_that_times_out_fails_with_why_without_a_qt_warning(qtbot, silent_port, monkeypatch):
    monkeypatch.setattr(chat_client, "IDLE_TIMEOUT_MS", 300)
    request = ChatRequest(f"http://127.0.0.1:{silent_port}", "hello")
    failures: list[str] = []
    request.failed.connect(failures.append)
    request.send()
    qtbot.waitUntil(lambda: bool(failures), timeout=5000)
    assert "timed out" in failures[0].lower(), failures
