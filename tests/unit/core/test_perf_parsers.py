"""The fit, placement and benchmark parsers, on real outputs of the tools (tests/data/perf)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamadash.core.params import COLUMN, load_schema
from llamadash.core.perf.bench import (
    BenchError,
    BenchResult,
    best_index,
    bench_command,
    parse_bench_jsonl,
    parse_sweep,
    result_from_tests,
    sweep_grid,
)
from llamadash.core.perf.fit import (
    GPU_MEMORY,
    SYSTEM_MEMORY,
    FitError,
    apply_exit,
    fit_command,
    parse_fit_output,
    parse_fit_print,
)
from llamadash.core.perf.placement import parse_placement

PERF = Path(__file__).parents[2] / "data" / "perf"


def _fit(name: str):
    return parse_fit_output((PERF / f"{name}.stderr").read_text(), (PERF / f"{name}.stdout").read_text())


def test_a_model_that_fits_on_a_cpu_only_machine() -> None:
    report = _fit("fit-b11434-fits")
    assert report.fitted_args == ["-c", "512", "-ngl", "-1"]
    assert report.memory_kind == SYSTEM_MEMORY
    assert (report.projected_used, report.available, report.spare, report.margin) == (2, 24105, 24102, 1024)
    assert report.success is True and report.verdict_kind == "fits"
    assert report.verdict == "fits in system memory (CPU only) with 23.5 GiB to spare"
    assert [(r.device, r.self_, r.model, r.context, r.compute) for r in report.breakdown] == [
        ("Host", 2, 0, 0, 1)
    ]
    assert report.breakdown[0].total is None  # the host row has no total: not reported, not 0


def test_a_context_that_is_cut_to_fit() -> None:
    report = _fit("fit-b11434-context-cut")
    assert report.fitted_context == 36352 and report.fitted_gpu_layers == -1
    assert (report.context_from, report.context_to, report.context_reduction) == (65536, 36352, 42)
    assert report.verdict == "context will be cut from 65,536 to 36,352 to fit in system memory (CPU only)"
    # the first table is the projection for the settings asked for, not the minimum-context probe
    assert report.breakdown[0].self_ == 97 and len(report.tables) == 2


def test_a_model_that_does_not_fit_says_how_much_is_missing() -> None:
    report = _fit("fit-b11434-short")
    assert report.success is None  # the build exited before writing its failure line
    apply_exit(report, 1)
    assert report.verdict_kind == "does_not_fit" and report.short_by == 5897
    assert report.verdict == "does not fit: 5.8 GiB short (keeping 29.3 GiB free)"
    assert report.context_kept is not None and "512" in report.context_kept


def test_a_gpu_run_from_llama_cpp_s_readme() -> None:
    report = parse_fit_output((PERF / "fit-b6895-cuda-readme.log").read_text())
    assert report.memory_kind == GPU_MEMORY and (report.projected_used, report.available) == (61807, 24077)
    assert (report.margin, report.need_less) == (1024, 42444)
    [placement] = report.placements
    assert placement.device == "CUDA0 (NVIDIA GeForce RTX 4090)"
    assert (placement.layers, placement.overflowing, placement.used, placement.free) == (48, 34, 19187, 1199)
    assert report.verdict_kind == "context_cut"
    assert [
        (r.device, r.total, r.free, r.self_, r.model, r.context, r.compute, r.unaccounted)
        for r in report.breakdown
    ] == [
        ("CUDA0 (RTX 4090)", 24077, 945, 19187, 17904, 384, 898, 3945),
        ("Host", None, None, 58271, 58259, 0, 12, None),
    ]


def test_unknown_output_is_not_reported_never_a_number() -> None:
    report = parse_fit_output("something else entirely\nload_tensors: offloaded 3/3 layers to GPU\n")
    assert report.verdict_kind == "unknown" and report.verdict.startswith("not reported")
    assert report.as_dict()["spare_mib"] is None and report.short_by is None


def test_fit_print_lists_memory_per_device() -> None:
    [host] = parse_fit_print((PERF / "fit-b11434-print.stdout").read_text())
    assert (host.name, host.model, host.context, host.compute, host.needed) == ("Host", 0, 0, 1, 1)


def test_the_placement_of_a_server_that_logged_its_fit() -> None:
    report = parse_placement((PERF / "server-b11434-fit-verbosity4.log").read_text())
    assert report.fit_ran and report.fit.context_to == 36352
    assert (report.slots, report.context_per_slot, report.context) == (4, 36352, 36352)
    # the CPU-only build says "offloaded 3/3 layers to GPU": no GPU buffer, so no GPU layers
    assert report.cpu_only is True and report.offloaded is None
    assert report.memory_by_buffer() == {
        "CPU_Mapped": {"model": 0.44},
        "CPU": {"output": 0.0, "KV": 17.75, "compute": 36.64},
    }
    assert [(r.device, r.self_) for r in report.breakdown] == [("Host", 54)]  # the table printed at stop
    assert report.devices == [("CPU", "AMD EPYC", 24105, 24105)]
    assert (
        report.summary_lines()[0]
        == "fit: context reduced from 65,536 to 36,352 to fit in system memory (CPU only)"
    )


def test_the_placement_at_default_verbosity_says_what_is_not_reported() -> None:
    report = parse_placement((PERF / "server-b11434-default.log").read_text())
    assert not report.fit.lines and report.fit.context_to is None
    assert (report.slots, report.context_per_slot) == (4, 65536)
    assert report.cpu_only is None  # no buffer lines at this verbosity: not known
    assert report.summary_lines()[0].startswith("fit: not reported")


def test_b10001_logs_only_give_what_both_builds_share() -> None:
    text = (Path(__file__).parents[2] / "data" / "llama-server-requests-b10001.log").read_text()
    report = parse_placement(text)
    assert not report.fit.lines  # b10001's log holds no fitting lines
    data = report.as_dict()
    assert data["layers_on_gpu"] is None and data["context_reduced_to"] is None


def test_bench_jsonl_gives_one_test_per_line() -> None:
    tests = parse_bench_jsonl((PERF / "bench-b11434.jsonl").read_text())
    assert [t.name for t in tests] == ["pp64", "tg16"]
    result = result_from_tests(tests)
    assert (result.pp_tokens, result.tg_tokens) == (64, 16)
    assert result.pp_mean == pytest.approx(186376.527630) and result.tg_sd == pytest.approx(10988.329576)
    assert result.machine == "AMD EPYC" and result.used["n_threads"] == 1
    assert result.build == ""  # build 0 / commit unknown: nothing made up


def test_bench_command_maps_the_schema_rows(tmp_path: Path) -> None:
    config = {
        COLUMN.model_path: str(tmp_path / "m.gguf"),
        COLUMN.threads: 3,
        COLUMN.flash_attn: "on",
        COLUMN.kv_offload: False,
        COLUMN.tensor_split: ["3", "1"],
        COLUMN.gpu_layers: "all",
        COLUMN.mmap: False,
        COLUMN.ctx_size: 4096,
        COLUMN.temperature: 0.5,
    }
    command = bench_command(config, "llama-bench", prompt_tokens=32, gen_tokens=8, repetitions=2)
    argv = command.argv
    pairs = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert pairs["-t"] == "3" and pairs["-fa"] == "on" and pairs["-nkvo"] == "1"
    assert pairs["-ts"] == "3/1" and pairs["-ngl"] == "-1" and pairs["-lm"] == "none"
    assert argv[-8:] == ["-p", "32", "-n", "8", "-r", "2", "-o", "jsonl"]
    assert "-c" not in argv and command.params[COLUMN.threads] == 3
    assert COLUMN.temperature not in dict(command.not_passed)  # sampling does not change speed
    assert COLUMN.ctx_size in dict(command.not_passed)  # it matters for memory: said, not dropped


def test_auto_gpu_layers_leave_llama_bench_at_its_default(tmp_path: Path) -> None:
    command = bench_command({COLUMN.model_path: str(tmp_path / "m.gguf"), COLUMN.gpu_layers: 7}, "b")
    assert command.argv[3:5] == ["-ngl", "7"]
    command = bench_command({COLUMN.model_path: str(tmp_path / "m.gguf")}, "b")
    assert "-ngl" not in command.argv


def test_bench_refuses_bad_counts_and_no_model() -> None:
    with pytest.raises(BenchError, match="model_path"):
        bench_command({}, "llama-bench")
    with pytest.raises(BenchError, match="--reps"):
        bench_command({COLUMN.model_path: "/m.gguf"}, "llama-bench", repetitions=0)


def test_sweeps_are_checked_and_bounded() -> None:
    sweep = parse_sweep(["threads=1,2", "flash_attn=on,off"])
    assert sweep == {COLUMN.threads: [1, 2], COLUMN.flash_attn: ["on", "off"]}
    grid = sweep_grid(sweep)
    assert grid == [
        {COLUMN.threads: 1, COLUMN.flash_attn: "on"},
        {COLUMN.threads: 1, COLUMN.flash_attn: "off"},
        {COLUMN.threads: 2, COLUMN.flash_attn: "on"},
        {COLUMN.threads: 2, COLUMN.flash_attn: "off"},
    ]
    with pytest.raises(BenchError, match="cannot vary"):
        parse_sweep(["temperature=0.1,0.2"])
    with pytest.raises(BenchError, match="unknown parameter"):
        parse_sweep(["nonsense=1"])
    with pytest.raises(BenchError, match="expected one of"):
        parse_sweep(["flash_attn=maybe"])
    with pytest.raises(BenchError, match="at most 4"):
        sweep_grid(parse_sweep(["threads=1,2,3", "ubatch_size=1,2"]), max_runs=4)


def _result(pp: float | None, tg: float | None) -> BenchResult:
    return BenchResult(512, 128, pp, 1.0, tg, 1.0, "", "", {})


def test_the_best_result_depends_on_the_objective() -> None:
    results = [_result(1000.0, 10.0), _result(500.0, 20.0), _result(900.0, 18.0)]
    assert best_index(results, "prompt") == 0
    assert best_index(results, "gen") == 1
    assert best_index(results, "mix") == 2  # 0.5*18/20 + 0.5*900/1000 = 0.9 beats 0.75 and 0.75
    assert best_index([_result(None, None)], "gen") is None


def test_every_bench_flag_is_one_llama_bench_has() -> None:
    help_flags = {"-t", "-b", "-ub", "-ctk", "-ctv", "-fa", "-ngl", "-ncmoe", "-sm", "-mg", "-ts", "-dev"}
    help_flags |= {"-nkvo", "-nopo", "--repack", "--no-host", "-lm", "-C", "--cpu-strict", "--poll"}
    help_flags |= {"--prio", "--numa", "-rpc", "-ot"}
    assert {p.bench_flag for p in load_schema() if p.bench_flag} <= help_flags


def test_fit_command_takes_the_fit_rows_only(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    config = {
        COLUMN.model_path: str(model),
        COLUMN.ctx_size: 8192,
        COLUMN.temperature: 0.3,
        COLUMN.port: 9000,
    }
    command = fit_command(config, None, "llama-fit-params", extra=["-lv", "4"])
    assert command.argv == ["llama-fit-params", "--model", str(model), "--ctx-size", "8192", "-lv", "4"]
    assert set(command.passed) == {COLUMN.model_path, COLUMN.ctx_size}
    with pytest.raises(FitError, match="model_path"):
        fit_command({COLUMN.hf_repo: "a/b"}, None, "llama-fit-params")


# Lines in the shape of b11434's format strings (common/fit.cpp) for two GPUs: this machine has
# none, so no real run can show them; the parser must read them, and say nothing it cannot.
TWO_GPUS = """\
0.00.001.000 I common_params_fit_impl: projected memory use with initial parameters [MiB]:
0.00.001.001 I common_params_fit_impl:   - CUDA0 (NVIDIA GeForce RTX 3090):  24135 total,  30100 used,  -6200 free vs. target of   1024
0.00.001.002 I common_params_fit_impl:   - CUDA1 (NVIDIA GeForce RTX 3090):  24135 total,  21000 used,   2900 free vs. target of   1024
0.00.001.003 I common_params_fit_impl: projected to use 51100 MiB of device memory vs. 47800 MiB of free device memory
0.00.001.004 I common_params_fit_impl: cannot meet free memory targets on all devices, need to use 5348 MiB less in total
0.00.001.005 I common_params_fit_impl: context size set by user to 8192 -> no change
0.00.001.006 I common_params_fit_impl:   - CUDA0 (NVIDIA GeForce RTX 3090): 30 layers ( 0 overflowing),  22100 MiB used,   1800 MiB free
0.00.001.007 I common_params_fit_impl:   - CUDA1 (NVIDIA GeForce RTX 3090): 28 layers ( 2 overflowing),  22000 MiB used,   1900 MiB free
0.00.001.008 I common_fit_params: successfully fit params to free device memory
"""


def test_two_gpus_layers_per_device_and_what_is_not_reported() -> None:
    report = parse_fit_output(TWO_GPUS, "-c 8192 -ngl 58 -ts 30,28\n")
    assert report.memory_kind == GPU_MEMORY and report.need_less == 5348 and report.margin is None
    assert [(d.name, d.total, d.free) for d in report.initial] == [
        ("CUDA0 (NVIDIA GeForce RTX 3090)", 24135, -6200),
        ("CUDA1 (NVIDIA GeForce RTX 3090)", 24135, 2900),
    ]
    assert [(p.device, p.layers, p.overflowing, p.used, p.free) for p in report.placements] == [
        ("CUDA0 (NVIDIA GeForce RTX 3090)", 30, 0, 22100, 1800),
        ("CUDA1 (NVIDIA GeForce RTX 3090)", 28, 2, 22000, 1900),
    ]
    assert report.context_kept == "the context size is set to 8,192: not changed"
    assert report.verdict_kind == "partial" and report.fitted_gpu_layers == 58
    assert report.verdict == (
        "only part fits on the GPU: 30 layers on CUDA0 (NVIDIA GeForce RTX 3090), 28 layers on CUDA1 "
        "(NVIDIA GeForce RTX 3090) (2 of them partly in system memory), the rest in system memory"
    )
    assert report.as_dict()["spare_mib"] is None  # not printed for several devices: not made up


def test_the_readme_s_gpu_run_says_both_the_cut_and_the_overflow() -> None:
    report = parse_fit_output((PERF / "fit-b6895-cuda-readme.log").read_text())
    assert report.verdict.startswith(
        "context will be cut from 40,960 to 4,096; only part fits on the GPU: 48 layers"
    )


def test_a_fit_across_two_rpc_workers_lists_their_devices() -> None:
    report = _fit("fit-b11434-rpc")
    report.devices = parse_fit_print((PERF / "fit-b11434-rpc-print.stdout").read_text())
    devices = {d.name: d for d in report.rpc_devices}
    assert list(devices) == ["RPC0", "RPC1"]
    assert devices["RPC0"].endpoint == "127.0.0.1:50911" and devices["RPC1"].endpoint == "127.0.0.1:50912"
    # the projection's own figures, and what --fit-print puts on each
    assert (devices["RPC0"].total, devices["RPC0"].free) == (24105, 24102)
    assert (devices["RPC1"].total, devices["RPC1"].free) == (24105, 24104)
    assert (devices["RPC0"].model, devices["RPC0"].context, devices["RPC0"].compute) == (0, 0, 1)
    assert devices["RPC0"].needed == 1
    assert report.as_dict()["rpc_devices"][1]["endpoint"] == "127.0.0.1:50912"
    assert report.verdict == "fits on 2 devices"


def test_the_using_device_lines_of_a_verbose_log_name_the_rpc_devices() -> None:
    log = (
        "0.00.005.542 I llama_prepare_model_devices: using device RPC0 (127.0.0.1:50911) (unknown id) - 24105 MiB free\n"
        "0.00.005.747 I llama_prepare_model_devices: using device RPC1 (127.0.0.1:50912) (unknown id) - 24105 MiB free\n"
        "0.00.005.800 I llama_prepare_model_devices: using device RPC1 (127.0.0.1:50912) (unknown id) - 24105 MiB free\n"
    )
    devices = parse_fit_output(log).rpc_devices
    assert [(d.name, d.endpoint, d.free, d.total) for d in devices] == [
        ("RPC0", "127.0.0.1:50911", 24105, None),
        ("RPC1", "127.0.0.1:50912", 24105, None),
    ]
    assert parse_fit_output("llama_prepare_model_devices: using device CPU - 1000 MiB free").rpc_devices == []


def test_a_build_without_rpc_does_not_get_the_workers_and_says_so() -> None:
    from llamadash.core.params.capabilities import parse_help
    from llamadash.core.perf.fit import NO_WORKERS_NOTE

    help_text = (Path(__file__).parents[2] / "data" / "llama-server-help-b11434.txt").read_text()
    without_rpc = "\n".join(
        line for line in help_text.splitlines() if "--rpc" not in line and "LLAMA_ARG_RPC" not in line
    )  # what a build made without -DGGML_RPC=ON prints
    config = {COLUMN.model_path: "/m.gguf", COLUMN.rpc: ["127.0.0.1:50052"]}
    with_rpc = fit_command(config, parse_help(help_text, label="b11434"), "llama-fit-params")
    assert "--rpc" in with_rpc.argv and COLUMN.rpc in with_rpc.passed
    command = fit_command(config, parse_help(without_rpc, label="no-rpc"), "llama-fit-params")
    assert "--rpc" not in command.argv
    assert [column for column, _why in command.not_passed] == [COLUMN.rpc]
    assert "workers not taken into account by this build" in NO_WORKERS_NOTE
