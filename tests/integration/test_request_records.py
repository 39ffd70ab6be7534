"""Request records and live tokens/s against the real llama-server, with a model that takes seconds.

The tiny 0.5 MB model finishes a request in milliseconds, so it cannot show a live rate. Here a
random-weight F32 model a few hundred times larger generates for seconds on a CPU; its answers are
gibberish, but its timings are real. The server's log is read while it runs, as the dashboard does.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import free_port, health_status, stop_process, write_tiny_gguf

from llamadash.core.requests_log import (
    LOG_FORMATS,
    RequestLogParser,
    RequestRecord,
    RequestStatus,
    parse_request_line,
)
from llamadash.core.throughput import ThroughputMeter, parse_slots

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data"
#: Seconds of generation the long request aims at (its n_predict is calibrated on this machine).
LONG_GENERATION_S = 5.0
POLL_S = 0.25


def write_slow_gguf(path: Path, n_embd: int = 768, n_layer: int = 6, n_ctx: int = 4096) -> Path:
    """A llama GGUF with random F32 weights (~140 MB): ~100 tokens/s on two CPU cores."""
    return write_tiny_gguf(path, "slow-test-llama", n_embd=n_embd, n_layer=n_layer, n_head=8, n_ctx=n_ctx)


@dataclass
class Server:
    url: str
    log_path: Path
    proc: subprocess.Popen[bytes]
    _read: int = 0
    parser: RequestLogParser = field(default_factory=lambda: RequestLogParser("slow"))

    def new_records(self) -> list[RequestRecord]:
        """Feed the log lines written since the last call to the parser: the requests they finished."""
        with open(self.log_path, "rb") as log:
            log.seek(self._read)
            data = log.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._read += len(complete)
        records: list[RequestRecord] = []
        for line in complete.decode("utf-8", errors="replace").splitlines():
            records.extend(self.parser.feed(line))
        return records


@pytest.fixture(scope="module")
def server(llama_server: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("slow")
    model = write_slow_gguf(folder / "slow.gguf")
    port = free_port()
    log_path = folder / "server.log"
    argv = [str(llama_server), "-m", str(model), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--parallel", "2", "-c", "4096", "--threads", "2", "--no-warmup"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while health_status(port) != 200:
            assert proc.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, "llama-server did not become healthy"
            time.sleep(0.05)
        yield Server(f"http://127.0.0.1:{port}", log_path, proc)
    finally:
        stop_process(proc)


def post(url: str, body: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def post_streamed(
    url: str,
    body: dict[str, Any],
    first_token: list[float] | None = None,
    progress: list[tuple[float, int, float]] | None = None,
    timeout: float = 120,
) -> dict[str, Any]:
    """POST with ``"stream": true``; return the timings of the last event.

    Args:
        url: The endpoint.
        body: The request (``stream`` is added).
        first_token: Gets the moment the first event arrived.
        progress: Gets (arrival, predicted_n, predicted_ms) of every event that carries timings
            (with ``"timings_per_token": true`` in ``body``, every event does).
        timeout: Seconds to wait for the server.
    """
    request = urllib.request.Request(
        url,
        data=json.dumps({**body, "stream": True}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    timings: dict[str, Any] | None = None
    with urllib.request.urlopen(request, timeout=timeout) as response:
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[len("data: ") :])
            if first_token is not None and not first_token:
                first_token.append(time.monotonic())
            if "timings" in event:
                timings = event["timings"]
                if progress is not None:
                    progress.append((time.monotonic(), timings["predicted_n"], timings["predicted_ms"]))
    assert timings is not None, "the stream ended without timings"
    return {"timings": timings}


def slots(server: Server) -> object:
    with urllib.request.urlopen(f"{server.url}/slots", timeout=10) as response:
        return json.loads(response.read())


def calibrated_n_predict(server: Server, seconds: float) -> int:
    """How many tokens this machine generates in about ``seconds`` with this model."""
    rate = 0.0
    for _ in range(2):  # the first request also pages the model in: the faster of two
        body = {"prompt": "calibrate", "n_predict": 64, "ignore_eos": True}
        rate = max(rate, post(f"{server.url}/completion", body)["timings"]["predicted_per_second"])
    return max(256, min(1800, int(rate * seconds)))


def test_each_request_gives_one_record_with_the_servers_own_counts(server: Server) -> None:
    server.new_records()  # what came before this test
    completion, chat = f"{server.url}/completion", f"{server.url}/v1/chat/completions"
    prompt = "The quick brown fox jumps over the lazy dog. " * 3
    jobs: list[tuple[str, dict[str, Any], bool]] = [
        (completion, {"prompt": prompt, "n_predict": 40}, False),
        (completion, {"prompt": "Tell me a story", "n_predict": 56}, True),
        (chat, {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 32}, False),
        (chat, {"messages": [{"role": "user", "content": "hi there"}], "max_tokens": 48}, True),
        # the same prompt again: most of it comes from the slot's cache
        (completion, {"prompt": prompt, "n_predict": 24}, True),
        (completion, {"prompt": prompt + "Again.", "n_predict": 30}, False),
    ]
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def run(job: tuple[str, dict[str, Any], bool]) -> None:
        url, body, streamed = job
        answer = post_streamed(url, body) if streamed else post(url, body)
        with lock:
            answers.append(answer["timings"])

    for pair in range(0, len(jobs), 2):  # two at once, on the two slots
        threads = [threading.Thread(target=run, args=(job,)) for job in jobs[pair : pair + 2]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
    assert len(answers) == len(jobs)

    records: list[RequestRecord] = []
    deadline = time.monotonic() + 10
    while len(records) < len(jobs) and time.monotonic() < deadline:
        records += server.new_records()
        time.sleep(0.05)

    assert len(records) == len(jobs), records
    assert all(record.status is RequestStatus.FINISHED for record in records)
    assert {record.slot for record in records} == {0, 1}
    expected = sorted((t["prompt_n"], t["predicted_n"], t["cache_n"]) for t in answers)
    got = sorted((r.prompt_tokens, r.generated_tokens, r.cached_tokens) for r in records)
    assert got == expected
    for record in records:
        assert record.model == "slow"
        assert record.truncated is False
        assert record.prompt_ms is not None and record.generation_ms is not None
        assert record.total_ms == pytest.approx(record.prompt_ms + record.generation_ms, abs=0.02)
        assert record.generation_tps is not None and record.generation_tps > 0


def test_live_tokens_per_second_follow_the_servers_own_timing(server: Server) -> None:
    n_predict = calibrated_n_predict(server, LONG_GENERATION_S)
    server.new_records()
    meter = ThroughputMeter(window_s=2.0)
    first_token: list[float] = []
    progress: list[tuple[float, int, float]] = []
    result: dict[str, Any] = {}

    def generate() -> None:
        body = {"prompt": "Once upon a time", "n_predict": n_predict, "ignore_eos": True}
        body["timings_per_token"] = True  # the server's own running count, to compare any span with
        result.update(post_streamed(f"{server.url}/completion", body, first_token, progress))

    readings: list[tuple[float, float | None, int | None]] = []
    spans: dict[float, float] = {}  # the time each reading was measured over
    worker = threading.Thread(target=generate)
    worker.start()
    try:
        while True:
            payload = slots(server)
            now = time.monotonic()
            parsed = parse_slots(payload)
            assert parsed is not None
            meter.add_slots(now, parsed)
            for record in server.new_records():
                meter.add_request(now, record)
            reading = meter.reading(now)
            readings.append((now, reading.generation_tps, reading.busy_slots))
            spans[now] = reading.span_s or 0.0
            if not worker.is_alive():
                break
            time.sleep(POLL_S)
    finally:
        worker.join(180)

    timings = result["timings"]
    assert timings["predicted_n"] == n_predict
    server_rate = timings["predicted_per_second"]
    assert first_token, "no token arrived"
    start = first_token[0]
    end = start + timings["predicted_ms"] / 1000.0

    # non-zero within 2 s of the first token
    live = [(at, tps) for at, tps, _ in readings if tps]
    assert live and live[0][0] - start <= 2.0, (start, readings[:12])

    def server_rate_between(since: float, until: float) -> float:
        """The server's own tokens/s between two moments, from its running timings."""
        before = [event for event in progress if event[0] <= since][-1]
        after = [event for event in progress if event[0] <= until][-1]
        return (after[1] - before[1]) / ((after[2] - before[2]) / 1000.0)

    # over the request: the live counts between the first poll after the first token and the last
    # poll while it generated, within 5 % of the server's own timings over that time (the CPU is
    # shared, so the speed changes during a request: the same span is compared)
    during = [at for at, _, busy in readings if start < at < end and busy]
    assert len(during) >= 8, readings
    over_request = meter.average(during[0], during[-1]).generation_tps
    assert over_request is not None
    server_over_request = server_rate_between(during[0], during[-1])

    # and each 2-s reading against the server's timings over the span it measured: the median of
    # those whose window held 20 tokens or more (the shared CPU can slow the server to a few tokens a
    # second, when one token's arrival time is a large share of a window), as the manager's test does
    def server_tokens(since: float, until: float) -> int:
        before = [event for event in progress if event[0] <= since][-1]
        after = [event for event in progress if event[0] <= until][-1]
        return after[1] - before[1]

    errors = []
    for at, tps, busy in readings:
        measured = start + spans[at] + POLL_S <= at <= during[-1] and busy
        if measured and tps and server_tokens(at - spans[at], at) >= 20:
            errors.append(abs(tps / server_rate_between(at - spans[at], at) - 1))
    errors.sort()
    assert len(errors) >= 3, (
        "too few readings with 20 tokens in their window: the CPU is too busy",
        readings,
    )
    print(
        f"\nlive tokens/s: server {server_rate:.2f} over the whole request, {server_over_request:.2f} "
        f"over {during[-1] - during[0]:.1f} s of it, meter {over_request:.2f} over the same; "
        f"2-s readings off by median {errors[len(errors) // 2]:.1%}, max {errors[-1]:.1%}; "
        f"first non-zero {live[0][0] - start:+.2f} s after the first token; {n_predict} tokens"
    )
    assert over_request == pytest.approx(server_over_request, rel=0.05), (server_over_request, readings)
    assert errors[len(errors) // 2] <= 0.05, errors
    # and every 2-s reading while it ran was a rate: never 0 while generating, and never the
    # request's token count (what the /metrics delta showed); the rate itself follows the CPU's load
    steady = [tps for at, tps, busy in readings if start + 2.0 <= at <= end - 0.1 and busy]
    assert steady and all(tps and tps > 0 for tps in steady), readings
    assert max(tps for _, tps in live) < n_predict, readings
    # idle again: 0.0 once the window has passed, not None and not the last rate
    time.sleep(0.3)
    idle_at = time.monotonic() + 2.5
    meter.add_slots(idle_at, parse_slots(slots(server)) or [])
    assert meter.reading(idle_at).busy_slots == 0
    later = idle_at + 2.5
    meter.add_slots(later, parse_slots(slots(server)) or [])
    assert meter.reading(later).generation_tps == 0.0


def test_saved_log_matches_this_build(server: Server) -> None:
    """tests/data holds a captured log of this build: the live log has no kind of slot line it lacks."""

    def kinds(lines: list[str]) -> set[str]:
        found = (parse_request_line(line, LOG_FORMATS["b11434"]) for line in lines)
        return {update.pattern for update in found if update is not None}

    saved = (DATA / "llama-server-requests-b11434.log").read_text(encoding="utf-8").splitlines()
    live_lines = server.log_path.read_text(errors="replace").splitlines()
    assert {"launch", "prompt_timing", "generation_timing", "total_timing", "release"} <= kinds(live_lines)
    assert kinds(live_lines) <= kinds(saved)
    live = RequestLogParser(family="b11434")
    live_records = [record for line in live_lines for record in live.feed(line)]
    assert live_records
    assert all(record.status is RequestStatus.FINISHED for record in live_records)
