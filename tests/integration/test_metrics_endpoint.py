"""The Prometheus endpoint, scraped by a real Prometheus server (Debian's ``prometheus`` package).

The test starts /usr/bin/prometheus itself (a temporary config and storage folder, its own port)
pointing at llamadash's endpoint, then asks Prometheus's HTTP API for the series and compares them
with what llamadash shows. The endpoint is bound to a non-loopback address, so it needs a token:
Prometheus sends it; a request without it gets 401.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from prometheus_client import generate_latest
from support import free_port, stop_process

from llamadash.core import database
from llamadash.core.endpoint_address import EndpointConfigError
from llamadash.core.llama_server import METADATA_KEY
from llamadash.core.metrics import MetricsCollector
from llamadash.services.instance import InstanceState
from llamadash.services.manager import InstanceManager
from llamadash.services.metrics_endpoint import MetricsEndpoint
from llamadash.services.sampler import MetricsSampler

pytestmark = pytest.mark.integration

PROMETHEUS = Path("/usr/bin/prometheus")
TOKEN = "scrape-t0ken"
REPO = Path(__file__).resolve().parents[2]


def http_get(url: str, token: str | None = None, timeout: float = 5) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def non_loopback_address() -> str:
    """An IPv4 address of this machine that is not loopback (where a remote scraper would connect)."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    raise AssertionError("this machine has no non-loopback IPv4 address to test the endpoint on")


@pytest.fixture
def data_dir(_isolated_data_dir: Path, llama_server: Path) -> Iterator[Path]:
    database.init_database(data_dir=_isolated_data_dir)
    database.set_metadata(METADATA_KEY, str(llama_server))
    yield _isolated_data_dir
    database.close_database()


@pytest.fixture
def running(qtbot, data_dir: Path, tiny_model: Path) -> Iterator[tuple[InstanceManager, MetricsSampler]]:
    database.save_model(
        {
            "name": "tiny",
            "type": "llama",
            "status": "stopped",
            "model_path": str(tiny_model),
            "ctx_size": 256,
            "threads": 1,
            "n_parallel": 2,
            "port": free_port(),
            "metrics_enabled": True,
        }
    )
    manager = InstanceManager(
        data_dir=data_dir, poll_interval_s=0.25, quit_with_app=False, scan_orphans=False
    )
    sampler = MetricsSampler(MetricsCollector(disk_path=data_dir), stats=manager, interval_s=0.5)
    sampler.start()
    inst = manager.start("tiny")
    qtbot.waitUntil(lambda: inst.state is InstanceState.RUNNING, timeout=60_000)
    yield manager, sampler
    sampler.stop()
    assert manager.stop_all(10)
    manager.close()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Any]:
    """A function that starts a real Prometheus scraping ``host:port`` with the token; its API URL."""
    assert PROMETHEUS.is_file(), "Prometheus is missing: apt-get install prometheus (see .ci/run)"
    started: list[subprocess.Popen] = []

    def start(target: str) -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n"
            "  - job_name: llamadash\n"
            "    authorization:\n      type: Bearer\n"
            f"      credentials: {TOKEN}\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        log = (tmp_path / "prometheus.log").open("wb")
        proc = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")},
        )
        log.close()
        started.append(proc)
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in started:
        stop_process(proc)


def query(api: str, promql: str) -> list[dict[str, Any]]:
    url = f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        status, body = http_get(url, timeout=2)
    except OSError:
        return []  # not listening yet
    if status != 200:
        return []
    answer = json.loads(body)
    return answer["data"]["result"] if answer.get("status") == "success" else []


def value(api: str, promql: str) -> float | None:
    result = query(api, promql)
    return float(result[0]["value"][1]) if len(result) == 1 else None


def test_a_real_prometheus_scrapes_what_llamadash_shows(qtbot, running, prometheus):
    manager, sampler = running
    inst = manager.instance("tiny")
    assert inst is not None
    records: list[Any] = []
    manager.requestRecorded.connect(lambda _name, record: records.append(record))
    endpoint = MetricsEndpoint(
        manager=manager, sampler=sampler, address=f"0.0.0.0:{free_port()}", token=TOKEN
    )
    endpoint.start()
    try:
        # two requests, told by the log: the Activity counters
        for _ in range(2):
            body = json.dumps({"prompt": "Hi", "n_predict": 6}).encode()
            request = urllib.request.Request(f"{inst.url}/completion", data=body, method="POST")
            with urllib.request.urlopen(request, timeout=60):
                pass
        qtbot.waitUntil(lambda: len(records) == 2, timeout=15_000)
        qtbot.waitUntil(lambda: sampler.last_sample is not None, timeout=10_000)

        # a request without the token on this non-loopback bind is refused
        address = non_loopback_address()
        direct = f"http://{address}:{endpoint.port}/metrics"
        assert http_get(direct)[0] == 401
        assert http_get(direct, token="wrong")[0] == 401
        status, text = http_get(direct, token=TOKEN)
        assert status == 200 and "llamadash_instance_up{host=" in text

        api = prometheus(f"{address}:{endpoint.port}")
        host = socket.gethostname()
        selector = f'{{host="{host}",model="tiny"}}'

        def scraped() -> bool:
            return value(api, f"llamadash_instance_up{selector}") == 1.0

        qtbot.waitUntil(scraped, timeout=60_000)  # the event loop keeps running while we wait
        assert (
            value(api, 'up{job="llamadash"}') == 1.0
        )  # Prometheus's own: the scrape (with the token) worked

        figures = inst.figures
        assert value(api, f"llamadash_instance_slots{selector}") == figures.total_slots == 2.0
        assert value(api, f'llamadash_instance_state{{host="{host}",model="tiny",state="running"}}') == 1.0
        assert value(api, f'llamadash_instance_state{{host="{host}",model="tiny",state="error"}}') == 0.0
        finished = f'{{host="{host}",model="tiny",status="finished"}}'
        qtbot.waitUntil(lambda: value(api, f"llamadash_requests_total{finished}") == 2.0, timeout=15_000)
        generated = sum(r.generated_tokens for r in records)
        tokens = f'llamadash_tokens_total{{host="{host}",model="tiny",kind="generated"}}'
        assert value(api, tokens) == float(generated) > 0
        rss = value(api, f"llamadash_instance_memory_rss_bytes{selector}")
        assert rss is not None and figures.rss_mb is not None
        assert abs(rss / 2**20 - figures.rss_mb) < 0.2 * figures.rss_mb  # a second apart at most
        memory = value(api, f'llamadash_memory_usage_ratio{{host="{host}"}}')
        sample = sampler.last_sample
        assert memory is not None and sample is not None and sample.memory_usage is not None
        assert 0 < memory < 1 and abs(memory - sample.memory_usage / 100) < 0.1
        assert value(api, f'llamadash_active_models{{host="{host}"}}') == 1.0
        info = query(api, f"llamadash_instance_info{selector}")
        assert info and info[0]["metric"]["url"] == inst.url and info[0]["metric"]["remote"] == "false"

        # every query of the shipped Grafana dashboard is valid PromQL to this Prometheus, and those
        # about this machine's CPU, instances and requests find series
        dashboard = json.loads((REPO / "resources" / "grafana" / "llamadash-fleet.json").read_text())
        found = 0
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                promql = target["expr"].replace("$host", ".*").replace("$model", ".*")
                url = f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
                status, answer = http_get(url)
                assert status == 200 and json.loads(answer)["status"] == "success", (panel["title"], answer)
                found += bool(json.loads(answer)["data"]["result"])
        assert found >= 10, f"only {found} of the dashboard's queries found series"

        # the cost of producing one scrape (collect + format), measured on this machine
        rounds = 200
        began = time.perf_counter()
        for _ in range(rounds):
            generate_latest(endpoint.registry)
        each_ms = (time.perf_counter() - began) / rounds * 1000
        size = len(generate_latest(endpoint.registry))
        print(f"\none scrape: {each_ms:.3f} ms to produce, {size} bytes, 1 instance, {len(records)} records")
        assert endpoint.collector.scrapes > rounds
    finally:
        endpoint.stop()


def test_an_endpoint_off_loopback_without_a_token_is_refused(data_dir: Path):
    manager = InstanceManager(data_dir=data_dir, quit_with_app=False, scan_orphans=False)
    try:
        for address in (f"0.0.0.0:{free_port()}", f"{non_loopback_address()}:{free_port()}"):
            with pytest.raises(EndpointConfigError, match="needs a bearer token"):
                MetricsEndpoint(manager=manager, address=address)
        # loopback goes without one, and answers only /metrics
        endpoint = MetricsEndpoint(manager=manager, address=f"127.0.0.1:{free_port()}")
        endpoint.start()
        try:
            status, text = http_get(endpoint.url)
            assert status == 200 and "llamadash_info{" in text
            assert http_get(endpoint.url.replace("/metrics", "/other"))[0] == 404
        finally:
            endpoint.stop()
        with socket.socket() as sock:  # stopped: nothing listens there any more (TIME_WAIT aside)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", endpoint.port))
    finally:
        manager.close()


def test_headless_run_serves_prometheus_and_refuses_an_open_address_without_a_token(
    data_dir: Path, tiny_model: Path
):
    port = free_port()
    database.save_model(
        {"name": "tiny", "type": "llama", "status": "stopped", "model_path": str(tiny_model), "ctx_size": 256,
         "threads": 1, "port": port}
    )  # fmt: skip
    database.release_connection()
    env = {**os.environ, "PYTHONPATH": str(REPO), "SCRAPE_TOKEN": TOKEN}
    command = [sys.executable, "-m", "llamadash", "--data-dir", str(data_dir), "run", "tiny"]
    metrics_port = free_port()
    refused = subprocess.run(
        [*command, "--prometheus", f"0.0.0.0:{metrics_port}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert refused.returncode == 1 and "needs a bearer token" in refused.stderr
    assert "starting" not in refused.stdout  # refused before llama-server was started

    proc = subprocess.Popen(
        [
            *command,
            "--wait-ready",
            "--prometheus",
            f"0.0.0.0:{metrics_port}",
            "--prometheus-token-env",
            "SCRAPE_TOKEN",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.poll() is not None else url
        endpoint = f"http://127.0.0.1:{metrics_port}/metrics"
        deadline = time.monotonic() + 20
        while True:
            try:
                status, text = http_get(endpoint, token=TOKEN)
                if status == 200 and 'model="tiny"' in text and "llamadash_instance_up" in text:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the headless endpoint did not answer"
            time.sleep(0.2)
        # The first scrape after the ready line already sees the instance running.
        instance_lines = [line for line in text.splitlines() if line.startswith("llamadash_instance_")]
        assert 'llamadash_instance_up{host="' in text and '"tiny"} 1.0' in text, instance_lines
        assert http_get(endpoint)[0] == 401
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert "Prometheus metrics at http://0.0.0.0:" in proc.stderr.read()
    finally:
        stop_process(proc)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_headless_run_with_a_taken_metrics_port_is_refused_before_llama_server_starts(
    data_dir: Path, tiny_model: Path
):
    database.save_model(
        {"name": "tiny", "type": "llama", "status": "stopped", "model_path": str(tiny_model), "ctx_size": 256,
         "threads": 1, "port": free_port()}
    )  # fmt: skip
    database.release_connection()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        metrics_port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "llamadash", "--data-dir", str(data_dir), "run", "tiny",
             "--prometheus", f"127.0.0.1:{metrics_port}"],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"cannot listen on http://127.0.0.1:{metrics_port}/metrics" in result.stderr
    assert result.stdout == ""  # no llama-server output: it was never started
    assert "is ready" not in result.stderr
