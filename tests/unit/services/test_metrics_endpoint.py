"""The Prometheus endpoint's collector: names, units, labels, unknown readings left out; and the
shipped Grafana dashboard asks only for series the collector makes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llamadash.core.metrics import Sample
from llamadash.core.metrics.nvml import GpuReading
from llamadash.services.metrics_endpoint import InstanceSnapshot, LlamadashCollector, Snapshot

DASHBOARD = Path(__file__).resolve().parents[3] / "resources" / "grafana" / "llamadash-fleet.json"


def scrape(snapshot: Snapshot) -> dict[str, list]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LlamadashCollector(lambda: snapshot))
    text = generate_latest(registry).decode()
    series: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series.setdefault(sample.name, []).append((sample.labels, sample.value))
    return series


def full_snapshot() -> Snapshot:
    gpu = GpuReading(0, "NVIDIA H200", "GPU-0", 50.0, 60.0, 1024.0, 2048.0, 300.0)
    sample = Sample(
        timestamp=0,
        cpu_usage=25.0,
        memory_usage=50.0,
        disk_usage=75.0,
        active_models=1,
        uptime=60,
        gpus=(gpu,),
    )
    inst = InstanceSnapshot(
        model="qwen", state="running", url="http://127.0.0.1:8080", remote=False, up_since_s=1.7e9,
        generation_tokens_per_s=40.0, prompt_tokens_per_s=None, requests_processing=1.0, requests_deferred=0.0,
        busy_slots=1.0, total_slots=4.0, cpu_percent=150.0, rss_mb=512.0, vram_mb=None,
    )  # fmt: skip
    return Snapshot(
        host="box", sample=sample, instances=(inst,), requests={("qwen", "finished"): 3},
        tokens={("qwen", "generated"): 120, ("qwen", "prompt"): 30},
    )  # fmt: skip


def test_the_readings_come_out_in_base_units_with_host_and_model_labels():
    series = scrape(full_snapshot())
    one = lambda name: series[name][0]  # noqa: E731
    assert one("llamadash_cpu_usage_ratio") == ({"host": "box"}, 0.25)
    assert one("llamadash_gpu_memory_used_bytes") == (
        {"host": "box", "gpu": "0", "gpu_name": "NVIDIA H200"},
        1024 * 2**20,
    )
    assert one("llamadash_gpu_utilization_ratio")[1] == 0.5
    assert one("llamadash_instance_memory_rss_bytes")[1] == 512 * 2**20
    assert one("llamadash_instance_cpu_cores") == ({"host": "box", "model": "qwen"}, 1.5)
    assert one("llamadash_instance_up") == ({"host": "box", "model": "qwen"}, 1.0)
    states = {labels["state"]: value for labels, value in series["llamadash_instance_state"]}
    assert states["running"] == 1.0 and states["error"] == 0.0 and sum(states.values()) == 1.0
    assert series["llamadash_requests_total"] == [
        ({"host": "box", "model": "qwen", "status": "finished"}, 3.0)
    ]
    tokens = {labels["kind"]: value for labels, value in series["llamadash_tokens_total"]}
    assert tokens == {"generated": 120.0, "prompt": 30.0}
    assert series["llamadash_info"][0][0]["host"] == "box"


def test_an_unknown_reading_is_left_out_never_zero():
    series = scrape(full_snapshot())
    assert "llamadash_instance_prompt_tokens_per_second" not in series  # None
    assert "llamadash_instance_vram_bytes" not in series  # None
    empty = scrape(Snapshot(host="box"))
    assert "llamadash_cpu_usage_ratio" not in empty and "llamadash_instance_up" not in empty
    assert "llamadash_info" in empty


def test_the_grafana_dashboard_asks_only_for_series_the_endpoint_makes():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["panels"] and dashboard["__inputs"][0]["pluginId"] == "prometheus"
    names = {"llamadash_info", "llamadash_instance_vram_bytes", "llamadash_instance_prompt_tokens_per_second"}
    names |= set(scrape(full_snapshot()))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"]]
    used = {name for expr in exprs for name in re.findall(r"\bllamadash_[a-z_]+", expr)}
    assert used and used <= names, sorted(used - names)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:  # each fits Grafana's 24-column grid
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
