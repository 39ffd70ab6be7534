"""RouterWatcher against a slow HTTP server: an answer it gives up on is never read.

Qt warns ``QIODevice::read (QNetworkReplyHttpImpl): device not open`` when an aborted reply is
read; pytest-qt fails a test on that warning (CI failed on it once, in the router suite).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import ClassVar
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llamadash.services.router import RouterWatcher

MODELS = {"data": [{"id": "alpha", "status": {"value": "unloaded"}}]}


class _Slow(BaseHTTPRequestHandler):
    delay_s = 0.4
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).asked.append(self.path)
        if self.path.startswith("/models/sse"):
            self.send_error(404)
            return
        time.sleep(self.delay_s)
        body = json.dumps(MODELS).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the watcher hung up: that is the point

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_router() -> Iterator[str]:
    _Slow.asked = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_reload_poll_drops_the_answer_on_its_way_without_reading_it(qtbot, slow_router):
    watcher = RouterWatcher(interval_s=60)
    watcher.watch(slow_router)
    qtbot.waitUntil(lambda: any(p == "/models" for p in _Slow.asked), timeout=5000)
    watcher.poll(reload=True)  # aborts the first poll's reply
    qtbot.waitUntil(lambda: watcher.model("alpha") is not None, timeout=5000)
    assert "/models?reload=1" in _Slow.asked
    watcher.halt()


def test_halting_with_a_poll_on_its_way_reads_nothing(qtbot, slow_router):
    watcher = RouterWatcher(interval_s=60)
    watcher.watch(slow_router)
    qtbot.waitUntil(lambda: any(p == "/models" for p in _Slow.asked), timeout=5000)
    watcher.halt()
    qtbot.wait(600)  # the server answers after the abort
    assert watcher.models == []
