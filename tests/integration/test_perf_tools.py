"""The fit check, benchmarks and sweeps with the real llama-fit-params, llama-bench and llama-server.

Everything runs the tools of the tests' build (beside its llama-server) on tiny real models; no
figure is written into a test: each is compared with what the tool itself printed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from support import cli, free_port, run_server_until_healthy, write_tiny_gguf

from llamadash.core import database
from llamadash.core.db.bench_store import get_bench_results
from llamadash.core.params import COLUMN, build_command
from llamadash.core.perf.fit import FIT_PRINT_FLAG
from llamadash.core.perf.placement import parse_placement
from llamadash.core.perf.service import run_bench, store_result
from llamadash.core.perf.tools import BENCH_TOOL, FIT_TOOL, tool_path

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def long_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model whose own context is 65,536 tokens: its KV cache is worth cutting."""
    return write_tiny_gguf(tmp_path_factory.mktemp("long") / "long.gguf", n_ctx=65536)


@pytest.fixture
def data_dir(tmp_path: Path, llama_server: Path) -> Path:
    directory = tmp_path / "data"
    code, _, err = cli("llama-server", "--path", str(llama_server), data_dir=directory)
    assert code == 0, err
    return directory


def _tool(llama_server: Path, name: str) -> str:
    path = tool_path(llama_server, name)
    assert path.is_file(), f"{name} is missing beside {llama_server}: the tests' build ships it"
    return str(path)


def _direct(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def _fit_json(data_dir: Path, name: str, *extra: str) -> dict:
    code, out, err = cli("fit", name, "--json", *extra, data_dir=data_dir)
    assert code == 0, err
    return json.loads(out)


def test_fit_reports_what_llama_fit_params_printed(data_dir, llama_server, tiny_model) -> None:
    assert cli("models", "add", "tiny", "--model-path", str(tiny_model), data_dir=data_dir)[0] == 0
    report = _fit_json(data_dir, "tiny")
    direct = _direct([_tool(llama_server, FIT_TOOL), "-m", str(tiny_model), "-lv", "4"])
    assert report["fitted_args"] == direct.stdout.split()
    assert report["verdict_kind"] == "fits" and report["memory_kind"] == "system"  # this machine: CPU only
    assert f"projected to use {report['projected_used_mib']} MiB of host memory" in direct.stderr
    assert report["spare_mib"] is not None and f"will leave {report['spare_mib']} >= " in direct.stderr
    printed = _direct([*direct.args, *direct.stdout.split(), FIT_PRINT_FLAG, "on"]).stdout.split()
    [host] = report["devices"]
    assert [host["name"], str(host["model"]), str(host["context"]), str(host["compute"])] == printed
    assert report["cached"] is False and _fit_json(data_dir, "tiny")["cached"] is True
    os.utime(tiny_model)  # a changed model file is measured again
    assert _fit_json(data_dir, "tiny")["cached"] is False


def test_fit_tells_how_far_the_context_is_cut(data_dir, llama_server, long_model) -> None:
    assert cli("models", "add", "long", "--model-path", str(long_model), data_dir=data_dir)[0] == 0
    first = _fit_json(data_dir, "long")
    # a margin that leaves a little less than the full context needs: the tool must cut it
    margin = first["available_mib"] - first["projected_used_mib"] + 16
    assert cli("models", "set", "long", f"fit_target={margin}", data_dir=data_dir)[0] == 0
    report = _fit_json(data_dir, "long")
    direct = _direct(
        [_tool(llama_server, FIT_TOOL), "-m", str(long_model), "-lv", "4", "--fit-target", str(margin)]
    )
    assert report["verdict_kind"] == "context_cut"
    assert report["context_from"] == 65536 and ["-c", str(report["context_to"])] == direct.stdout.split()[:2]
    assert f"context will be cut from 65,536 to {report['context_to']:,}" in report["verdict"]
    code, out, _ = cli("fit", "long", data_dir=data_dir)
    assert code == 0 and out.startswith(f"long: context will be cut from 65,536 to {report['context_to']:,}")


def test_a_model_that_cannot_fit_says_how_much_is_missing(data_dir, tiny_model) -> None:
    cli("models", "add", "tiny", "--model-path", str(tiny_model), data_dir=data_dir)
    plain = _fit_json(data_dir, "tiny")
    margin = plain["available_mib"] + 4096  # more free memory than this machine has
    cli("models", "set", "tiny", f"fit_target={margin}", data_dir=data_dir)
    report = _fit_json(data_dir, "tiny")
    assert report["verdict_kind"] == "does_not_fit" and report["success"] is False
    if report["need_less_mib"] is not None:  # b11434 may exit before it logs it (see _fit_run)
        assert report["short_by_mib"] == report["need_less_mib"]
        assert abs(report["need_less_mib"] - (margin - plain["spare_mib"])) <= 2  # whole MiB, rounded apart
        assert report["verdict"].startswith("does not fit: ") and "GiB short" in report["verdict"]
    else:
        assert report["verdict"].endswith("how much is missing: not reported")


def test_missing_tools_say_where_they_were_looked_for(tmp_path, llama_server, tiny_model) -> None:
    lonely = tmp_path / "lonely-bin" / "llama-server"  # a working llama-server, with no tools beside it
    lonely.parent.mkdir()
    lonely.write_text(f'#!/bin/sh\nexec "{llama_server}" "$@"\n')
    lonely.chmod(0o755)
    directory = tmp_path / "data"
    code, _, err = cli("llama-server", "--path", str(lonely), data_dir=directory)
    assert code == 0, err
    cli("models", "add", "tiny", "--model-path", str(tiny_model), data_dir=directory)
    code, _, err = cli("fit", "tiny", data_dir=directory)
    assert code == 1 and f"looked for {lonely.parent / FIT_TOOL}" in err
    code, _, err = cli("bench", "tiny", data_dir=directory)
    assert code == 1 and f"looked for {lonely.parent / BENCH_TOOL}" in err


def test_a_stored_benchmark_has_the_figures_llama_bench_printed(data_dir, llama_server, tiny_model) -> None:
    cli("models", "add", "tiny", "--model-path", str(tiny_model), "--set", "threads=1", data_dir=data_dir)
    database.init_database(data_dir / "llama-dashboard.db", record_start=False)
    try:
        model = database.get_model_by_name("tiny")
        assert model is not None
        run = run_bench(model, llama_server, prompt_tokens=32, gen_tokens=8, repetitions=2)
        assert run.command.argv[:5] == [_tool(llama_server, BENCH_TOOL), "-m", str(tiny_model), "-t", "1"]
        store_result("tiny", run)
        [row] = get_bench_results("tiny")
    finally:
        database.close_database()
    printed = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    pp = next(p for p in printed if p["n_gen"] == 0)
    tg = next(p for p in printed if p["n_prompt"] == 0)
    assert (row["pp_tokens"], row["tg_tokens"], row["repetitions"]) == (32, 8, 2)
    assert (row["pp_tps_mean"], row["pp_tps_sd"]) == (pp["avg_ts"], pp["stddev_ts"])
    assert (row["tg_tps_mean"], row["tg_tps_sd"]) == (tg["avg_ts"], tg["stddev_ts"])
    assert row["params"] == {COLUMN.threads: 1} and row["machine"] == pp["cpu_info"]
    assert tg["n_threads"] == 1


def test_the_cli_benchmark_stores_one_result(data_dir, tiny_model) -> None:
    cli("models", "add", "tiny", "--model-path", str(tiny_model), data_dir=data_dir)
    code, out, err = cli("bench", "tiny", "--pp", "16", "--tg", "4", "--reps", "1", data_dir=data_dir)
    assert code == 0, err
    assert out.startswith("pp16 ") and ", tg4 " in out and "t/s" in out
    database.init_database(data_dir / "llama-dashboard.db", record_start=False)
    try:
        [row] = get_bench_results("tiny")
    finally:
        database.close_database()
    assert row["pp_tokens"] == 16 and row["tg_tokens"] == 4 and row["build"] == "b11434"


def test_a_two_by_two_sweep_stores_four_results_and_applies_the_best(data_dir, tiny_model) -> None:
    cli("models", "add", "tiny", "--model-path", str(tiny_model), data_dir=data_dir)
    args = [
        "--pp",
        "16",
        "--tg",
        "8",
        "--reps",
        "1",
        "--sweep",
        "threads=1,2",
        "--sweep",
        "flash_attn=on,off",
    ]
    code, out, err = cli("bench", "tiny", *args, "--apply", "--json", data_dir=data_dir)
    assert code == 0, err
    assert "4 runs" in err and "estimated time" in err
    data = json.loads(out)
    database.init_database(data_dir / "llama-dashboard.db", record_start=False)
    try:
        rows = get_bench_results("tiny")
        model = database.get_model_by_name("tiny")
    finally:
        database.close_database()
    assert len(rows) == 4 and {r["sweep"] for r in rows} == {data["sweep"]}
    combos = {(r["params"][COLUMN.threads], r["params"][COLUMN.flash_attn]) for r in rows}
    assert combos == {(1, "on"), (1, "off"), (2, "on"), (2, "off")}
    best = max(rows, key=lambda r: r["tg_tps_mean"])  # the objective is generation by default
    assert (model[COLUMN.threads], model[COLUMN.flash_attn]) == (
        best["params"][COLUMN.threads],
        best["params"][COLUMN.flash_attn],
    )


#: A benchmark of the slow model that takes many seconds.
BIG_RUN = ("--pp", "2048", "--tg", "1024", "--reps", "50")


def test_ctrl_c_stops_llama_bench_and_stores_nothing(data_dir, tmp_path) -> None:
    slow = write_tiny_gguf(tmp_path / "slow.gguf", n_embd=512, n_layer=8, n_ctx=4096)
    cli("models", "add", "slow", "--model-path", str(slow), data_dir=data_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "llamadash", "--data-dir", str(data_dir), "bench", "slow", *BIG_RUN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    bench: psutil.Process | None = None
    deadline = time.monotonic() + 60
    while bench is None and time.monotonic() < deadline and proc.poll() is None:
        children = psutil.Process(proc.pid).children(recursive=True)
        bench = next((c for c in children if c.name() == BENCH_TOOL), None)
        time.sleep(0.05)
    assert bench is not None, f"llama-bench never started: {proc.communicate()}"
    time.sleep(0.5)  # it is measuring
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "not stored" in err
    assert not psutil.pid_exists(bench.pid) or bench.status() == psutil.STATUS_ZOMBIE
    database.init_database(data_dir / "llama-dashboard.db", record_start=False)
    try:
        assert get_bench_results() == []
    finally:
        database.close_database()


def test_the_placement_report_of_a_real_fit_log(tmp_path, llama_server, long_model) -> None:
    direct = _direct([_tool(llama_server, FIT_TOOL), "-m", str(long_model), "-lv", "4"])
    first = parse_placement(direct.stderr)
    margin = (first.fit.available or 0) - (first.fit.projected_used or 0) + 16
    cut = _direct(
        [_tool(llama_server, FIT_TOOL), "-m", str(long_model), "-lv", "4", "--fit-target", str(margin)]
    )
    port = free_port()
    config = {
        COLUMN.model_path: str(long_model),
        COLUMN.port: port,
        COLUMN.log_verbose: 4,
        COLUMN.fit_target: margin,
    }
    argv, env = build_command(config, None, binary=str(llama_server))
    run = run_server_until_healthy(argv, env, port, tmp_path / "server.log")
    assert run.healthy, run.output[-2000:]
    report = parse_placement(run.output)
    assert report.fit_ran and report.fit.context_from == 65536
    assert ["-c", str(report.fit.context_to)] == cut.stdout.split()[:2]  # what llama-fit-params said
    assert report.context_per_slot == report.fit.context_to
    assert report.cpu_only is True and report.offloaded is None  # no GPU here: never "3/3 on the GPU"
    assert report.as_dict()["context_reduced_to"] == report.fit.context_to
