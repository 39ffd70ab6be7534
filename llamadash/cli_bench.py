"""``llamadash fit`` and ``llamadash bench``: will a model fit, how fast is it, which settings are fastest.

The work is :mod:`llamadash.core.perf.service`'s (the window uses the same functions); this module
parses, prints and stores. Every figure is what llama.cpp's own tools printed: ``llama-fit-params``
for memory, ``llama-bench`` for speed. Ctrl-C stops the tool, leaves no process and stores nothing
of the run it interrupted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any, TextIO

from llamadash.core import database as db
from llamadash.core.library_service import Library, running_by_process_records
from llamadash.core.llama_server import METADATA_KEY, LocatedBinary, find_llama_server
from llamadash.core.perf.bench import (
    DEFAULT_GEN_TOKENS,
    DEFAULT_PROMPT_TOKENS,
    DEFAULT_REPETITIONS,
    MAX_SWEEP_RUNS,
    OBJECTIVES,
    BenchError,
    BenchResult,
    best_index,
    parse_sweep,
    sweep_grid,
)
from llamadash.core.perf.fit import FitError, gib
from llamadash.core.perf.run import ToolCancelled, ToolFailed
from llamadash.core.perf.service import BenchRun, FitOutcome, check_fit, run_bench, store_result
from llamadash.core.perf.tools import ToolNotFound

__all__ = ["FIT_COMMAND", "add_parsers", "cmd_bench", "cmd_fit", "placement_json"]

#: The fit check's command name (``llamadash fit NAME``), which happens to spell the ``fit`` row.
FIT_COMMAND = "fit"

#: What each objective optimises, in words.
OBJECTIVE_WORDS = {"gen": "generation speed", "prompt": "prompt speed", "mix": "prompt and generation speed"}
_ERRORS = (ToolNotFound, FitError, BenchError, ToolFailed)


def add_parsers(sub: Any) -> None:
    """Register ``fit`` and ``bench`` on the CLI's subparsers."""
    p = sub.add_parser(
        FIT_COMMAND,
        help="ask llama-fit-params whether a model's configuration fits in memory, and what it would change",
    )
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--refresh", action="store_true", help="run llama-fit-params again instead of the cached answer"
    )
    p = sub.add_parser(
        "bench",
        help="measure a model's prompt and generation speed with llama-bench; --sweep tries several settings",
    )
    p.add_argument("name")
    p.add_argument(
        "--pp", type=int, default=DEFAULT_PROMPT_TOKENS, metavar="N", help="prompt tokens (default 512)"
    )
    p.add_argument(
        "--tg", type=int, default=DEFAULT_GEN_TOKENS, metavar="N", help="generated tokens (default 128)"
    )
    p.add_argument(
        "--reps", type=int, default=DEFAULT_REPETITIONS, metavar="N", help="repetitions (default 3)"
    )
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="PARAM=V1,V2",
        help=f"try each value (repeat for more parameters; at most {MAX_SWEEP_RUNS} runs in all)",
    )
    p.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default="gen",
        help="what the sweep's best is best at: gen (generation), prompt, or mix (both; default gen)",
    )
    p.add_argument("--apply", action="store_true", help="write the sweep's best settings into the model")
    p.add_argument("--force", action="store_true", help="run even while the model's own server runs")


def _server() -> LocatedBinary:
    return find_llama_server(db.get_metadata(METADATA_KEY))


def _build_label(located: LocatedBinary) -> str | None:
    if located.label and " b" in located.label:
        return located.label.rsplit(" ", 1)[-1]
    return located.label


def _library() -> Library:
    from llamadash.core import db as store

    return Library(store, is_running=running_by_process_records)


def _fail(err: TextIO, exc: BaseException) -> int:
    print(f"llamadash: error: {exc}", file=err)
    return 1


# --------------------------------------------------------------------------------------------
# fit
def cmd_fit(args: argparse.Namespace, out: TextIO, err: TextIO, data_dir: Path) -> int:
    model = _library().get(args.name)
    located = _server()
    try:
        outcome = check_fit(model, located.path, data_dir / "cache", refresh=args.refresh)
    except ToolCancelled:
        print("llamadash: cancelled; nothing was kept", file=err)
        return 130
    except _ERRORS as exc:
        return _fail(err, exc)
    names = _worker_names()
    if args.json:
        data = {"model": model["name"], **outcome.as_dict()}
        for device in data["rpc_devices"]:
            device["worker"] = names.get(device["endpoint"])
        json.dump(data, out, indent=2)
        print(file=out)
        return 0
    _print_fit(str(model["name"]), outcome, out, names)
    return 0


def _worker_names() -> dict[str, str]:
    """``host:port`` -> the registered worker's name (to name the fit's RPC devices)."""
    from llamadash.core import workers

    return {worker.endpoint: worker.name for worker in workers.list_workers()}


def _print_fit(name: str, outcome: FitOutcome, out: TextIO, workers: dict[str, str] | None = None) -> None:
    report = outcome.report
    print(f"{name}: {report.verdict}", file=out)
    if report.fitted_args:
        print(f"  fitted arguments: {' '.join(report.fitted_args)}", file=out)
    if report.projected_used is not None:
        where = "system memory" if report.memory_kind == "system" else "free device memory"
        line = f"  needs {report.projected_used:,} MiB of {report.available:,} MiB {where}"
        if report.margin is not None:
            line += f", keeping {report.margin:,} MiB free"
        print(line, file=out)
    if report.context_from is not None and report.context_to is not None:
        print(
            f"  context: cut from {report.context_from:,} to {report.context_to:,} tokens "
            f"(saves {report.context_reduction:,} MiB)",
            file=out,
        )
    elif report.context_kept:
        print(f"  context: {report.context_kept}", file=out)
    for placement in report.placements:
        layers = f"{placement.layers} layers" if placement.layers is not None else "layers not reported"
        print(
            f"  {placement.device}: {layers}, {gib(placement.used)} used, {gib(placement.free)} free",
            file=out,
        )
    if report.devices:
        print("  memory per device [MiB]   model  context  compute   total", file=out)
        for device in report.devices:
            cells = [device.model, device.context, device.compute, device.needed]
            text = "  ".join(f"{c:>7,}" if c is not None else f"{'n/a':>7}" for c in cells)
            print(f"    {device.name:<22} {text}", file=out)
    elif not report.breakdown:
        print("  memory per device: not reported by this build", file=out)
    for rpc in report.rpc_devices:
        print(f"  {rpc.describe((workers or {}).get(rpc.endpoint))}", file=out)
    if report.failure and report.verdict_kind == "does_not_fit":
        print(f"  llama-fit-params: {report.failure}", file=out)
    for note in outcome.notes:
        print(f"  note: {note}", file=out)
    if outcome.cached:
        print(
            "  (cached answer for this model file, configuration and build; --refresh asks again)", file=out
        )


# --------------------------------------------------------------------------------------------
# bench
def _result_text(result: BenchResult) -> str:
    parts = []
    if result.pp_mean is not None:
        parts.append(f"pp{result.pp_tokens} {result.pp_mean:,.1f} ± {result.pp_sd or 0:,.1f} t/s")
    if result.tg_mean is not None:
        parts.append(f"tg{result.tg_tokens} {result.tg_mean:,.1f} ± {result.tg_sd or 0:,.1f} t/s")
    return ", ".join(parts)


def _combo_text(combo: dict[str, Any]) -> str:
    return " ".join(f"{k}={_value_text(v)}" for k, v in combo.items()) or "as configured"


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 10 else f"{value:,.0f} s"


def _estimate_s(name: str, args: argparse.Namespace) -> float | None:
    """The median wall time of this model's recent runs of the same size, or None."""
    from llamadash.core.db.bench_store import get_bench_results

    times = [
        r["duration_s"]
        for r in get_bench_results(name, limit=20)
        if r["duration_s"] is not None
        and (r["pp_tokens"] or 0) == (args.pp or 0)
        and (r["tg_tokens"] or 0) == (args.tg or 0)
        and r["repetitions"] == args.reps
    ]
    return statistics.median(times) if times else None


def cmd_bench(args: argparse.Namespace, out: TextIO, err: TextIO, data_dir: Path) -> int:
    library = _library()
    model = library.get(args.name)
    name = str(model["name"])
    if library.is_running(model) and not args.force:
        print(
            f"llamadash: error: {name}'s server is running: a benchmark beside it measures both. "
            "Stop it first, or pass --force",
            file=err,
        )
        return 1
    located = _server()
    try:
        sweep = parse_sweep(args.sweep)
        grid = sweep_grid(sweep)
    except BenchError as exc:
        return _fail(err, exc)
    if args.apply and not sweep:
        return _fail(err, BenchError("--apply needs a --sweep: it writes the sweep's best settings"))
    build = _build_label(located)
    sweep_id = uuid.uuid4().hex[:12] if sweep else None
    each = _estimate_s(name, args)
    if sweep:
        shape = " × ".join(
            f"{k} = {', '.join(_value_text(v) for v in values)}" for k, values in sweep.items()
        )
        when = (
            f"about {_seconds(each * len(grid))} (from this model's earlier runs)"
            if each is not None
            else "not known before the first run ends"
        )
        print(f"sweep of {name}: {len(grid)} runs ({shape}); estimated time: {when}", file=err, flush=True)
    runs: list[tuple[dict[str, Any], BenchRun, int]] = []
    started = time.monotonic()
    try:
        for index, combo in enumerate(grid, 1):
            run = run_bench(
                model,
                located.path,
                prompt_tokens=args.pp,
                gen_tokens=args.tg,
                repetitions=args.reps,
                overrides=combo,
            )
            if index == 1:
                for _column, why in run.command.not_passed:
                    print(f"llamadash: note: {why} (not passed to llama-bench)", file=err)
            result_id = store_result(name, run, build_label=build, sweep=sweep_id)
            runs.append((combo, run, result_id))
            if not args.json:
                prefix = f"{index}/{len(grid)} {_combo_text(combo)}: " if sweep else ""
                print(prefix + _result_text(run.result), file=out, flush=True)
            if sweep and index == 1 and each is None and len(grid) > 1:
                left = run.seconds * (len(grid) - 1)
                print(f"estimated time left: about {_seconds(left)}", file=err, flush=True)
    except ToolCancelled:
        kept = f"; {len(runs)} finished run(s) of the sweep were kept" if runs else ""
        print(f"llamadash: cancelled: the run in progress was stopped and not stored{kept}", file=err)
        return 130
    except _ERRORS as exc:
        kept = f" ({len(runs)} finished run(s) of the sweep were kept)" if runs else ""
        return _fail(err, f"{exc}{kept}" if kept else exc)  # type: ignore[arg-type]
    best = best_index([r.result for _, r, _ in runs], args.objective) if sweep else 0
    if args.json:
        json.dump(
            {
                "model": name,
                "sweep": sweep_id,
                "objective": args.objective if sweep else None,
                "best": best,
                "seconds": time.monotonic() - started,
                "runs": [
                    {
                        "id": rid,
                        "overrides": combo,
                        "params": run.params,
                        **run.result.as_dict(),
                        "seconds": run.seconds,
                    }
                    for combo, run, rid in runs
                ],
            },
            out,
            indent=2,
            default=str,
        )
        print(file=out)
    if sweep and best is not None:
        combo = runs[best][0]
        if not args.json:
            print(f"best for {OBJECTIVE_WORDS[args.objective]}: {_combo_text(combo)}", file=out)
        if args.apply:
            library.set_parameters(name, combo)
            print(
                f"applied to {name}: {_combo_text(combo)} (a running server takes it at its next start)",
                file=err,
            )
    elif sweep:
        print(f"llamadash: no run measured {OBJECTIVE_WORDS[args.objective]}: nothing to apply", file=err)
        return 1 if args.apply else 0
    return 0


# --------------------------------------------------------------------------------------------
# status --json
def placement_json(name: str) -> dict[str, Any] | None:
    """The placement report of model ``name``'s current run, from its log file (``status --json``).

    ``None`` when there is no log to read.
    """
    from llamadash.core import paths, serverlog
    from llamadash.core.perf.placement import placement_of_log_file

    log = paths.logs_dir(db.get_database_path().parent) / serverlog.log_file_name(name)
    report = placement_of_log_file(log)
    return report.as_dict() if report is not None else None
