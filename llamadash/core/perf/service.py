"""The fit check and the benchmark as operations: one home for what the CLI and the window offer.

:func:`check_fit` runs ``llama-fit-params`` for a configuration (cached per model file,
configuration and build), :func:`run_bench` runs ``llama-bench`` once and :func:`store_result`
keeps its result. The tools are those beside the llama-server llamadash runs
(:func:`~llamadash.core.perf.tools.find_tool`). Pure of Qt; the window calls these on a worker
thread with a cancel event, the CLI on its own thread (Ctrl-C cancels).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamadash.core.params import COLUMN, CapabilityError, probe_binary
from llamadash.core.perf.bench import (
    DEFAULT_GEN_TOKENS,
    DEFAULT_PROMPT_TOKENS,
    DEFAULT_REPETITIONS,
    BenchCommand,
    BenchError,
    BenchResult,
    bench_command,
    config_hash,
    parse_bench_line,
    result_from_tests,
)
from llamadash.core.perf.fit import (
    FIT_PRINT_FLAG,
    NO_WORKERS_NOTE,
    FitCommand,
    FitError,
    FitReport,
    apply_exit,
    fit_command,
    parse_fit_output,
    parse_fit_print,
)
from llamadash.core.perf.run import ToolFailed, ToolRun, run_tool
from llamadash.core.perf.tools import BENCH_TOOL, FIT_TOOL, find_tool

__all__ = [
    "BenchRun",
    "FitOutcome",
    "check_fit",
    "rpc_endpoints",
    "run_bench",
    "store_result",
]

#: llama-fit-params logs its fitting steps at verbosity 4 ("trace") on b11434; older builds at info.
_VERBOSITY_FLAGS = ("--verbosity", "-lv", "--log-verbosity")
FIT_VERBOSITY = "4"
FIT_CACHE_DIR = "fit-params"
#: Bumped when what a cache entry holds changes: older entries are then not read.
_FIT_CACHE_VERSION = 1


@dataclass
class FitOutcome:
    """A fit check: the report, the command that made it, and whether it came from the cache."""

    report: FitReport
    command: FitCommand
    tool: Path
    cached: bool
    print_argv: list[str] | None = None
    fit_off: bool = False
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.report.as_dict(),
            "command": list(self.command.argv),
            "not_passed": [{"column": c, "why": w} for c, w in self.command.not_passed],
            "tool": str(self.tool),
            "cached": self.cached,
            "fit_off": self.fit_off,
            "notes": list(self.notes),
        }


def _file_identity(path: Path) -> list[Any]:
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def fit_cache_key(tool: Path, model: Path, argv: list[str]) -> str:
    """The cache key of a fit: the tool's build (its file), the model file and the arguments."""
    text = json.dumps([_FIT_CACHE_VERSION, _file_identity(tool), _file_identity(model), argv[1:]])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def check_fit(
    config: Mapping[str, Any],
    server_binary: str | os.PathLike[str] | None,
    cache_dir: Path | None,
    *,
    refresh: bool = False,
    cancel: threading.Event | None = None,
) -> FitOutcome:
    """Ask ``llama-fit-params`` whether ``config`` fits, and how it would be fitted.

    Runs it once for the fitted arguments and the fitting log, then (when the build has
    ``--fit-print``) once more with the fitted arguments to print the memory each device needs.

    Raises:
        ToolNotFound: no llama-fit-params beside ``server_binary`` (the message says where).
        FitError: the configuration cannot be checked.
        ToolFailed: the tool crashed or printed nothing about the fit (exit status and last lines).
        ToolCancelled: ``cancel`` was set; nothing is cached.
    """
    tool = find_tool(server_binary, FIT_TOOL)
    try:
        caps = probe_binary(tool, cache_dir=cache_dir, label=FIT_TOOL)
    except CapabilityError as exc:
        raise ToolFailed(str(tool), 1, [], f"cannot be asked what it accepts: {exc}") from None
    verbosity = next((flag for flag in _VERBOSITY_FLAGS if caps.accepts(flag)), None)
    extra = [verbosity, FIT_VERBOSITY] if verbosity else []
    command = fit_command(config, caps, str(tool), extra=extra)
    model = Path(str(config.get(COLUMN.model_path)))
    if not model.is_file():
        raise FitError(f"the model file {model} does not exist")
    fit_off = str(config.get(COLUMN.fit) or "on") == "off"
    endpoints = rpc_endpoints(config) if COLUMN.rpc in command.passed else []
    _workers_answer(endpoints, FitError)  # llama-fit-params aborts (signal 6) on one that does not
    key = fit_cache_key(tool, model, command.argv)
    # workers' free memory is theirs and changes: a fit across workers is always asked anew
    cache_file = (
        cache_dir / FIT_CACHE_DIR / f"{key}.json" if cache_dir is not None and not endpoints else None
    )
    stored = None if refresh or cache_file is None else _read_cache(cache_file)
    if stored is not None:
        outcome = _outcome(command, tool, stored, cached=True)
    else:
        first, report = _fit_run(command, cancel)
        stored = {"version": _FIT_CACHE_VERSION, "returncode": first.returncode}
        stored.update(stdout=first.stdout, stderr=first.stderr, print_stdout=None, print_argv=None)
        _check_usable(first, report)
        if report.success and report.fitted_args and caps.accepts(FIT_PRINT_FLAG):
            print_argv = [*command.argv, *report.fitted_args, FIT_PRINT_FLAG, "on"]
            second = run_tool(print_argv, env=command.env, cancel=cancel)
            if second.returncode == 0:
                stored.update(print_stdout=second.stdout, print_argv=print_argv)
        outcome = _outcome(command, tool, stored, cached=False)
        if cache_file is not None:
            _write_cache(cache_file, stored)
    outcome.fit_off = fit_off
    if fit_off:
        outcome.notes.append("fit is off for this model: llama-server will not apply these changes")
    for column, why in command.not_passed:
        if column == COLUMN.rpc:
            outcome.notes.append(f"{NO_WORKERS_NOTE} ({why})")
        else:
            outcome.notes.append(f"not checked: {why}")
    if endpoints and not outcome.report.rpc_devices:
        outcome.notes.append("the workers' memory: not reported by this build of llama-fit-params")
    if config.get("custom_params"):
        outcome.notes.append(
            "custom flags are not passed to llama-fit-params: what they change is not checked"
        )
    return outcome


def rpc_endpoints(config: Mapping[str, Any]) -> list[str]:
    """The ``host:port`` entries of a configuration's ``rpc`` list (its workers), in order."""
    value = config.get(COLUMN.rpc)
    items = value.split(",") if isinstance(value, str) else list(value or [])
    return [str(item).strip() for item in items if str(item).strip()]


def _workers_answer(endpoints: list[str], error: type[Exception]) -> None:
    """Raise ``error`` naming the first worker of ``endpoints`` that does not answer."""
    for endpoint in endpoints:
        problem = _unreachable(endpoint)
        if problem:
            raise error(
                f"the RPC worker {endpoint} of the model's --rpc list does not answer ({problem}): "
                "start it ('llamadash workers start NAME') or take the model off it "
                "('llamadash workers use MODEL ...'), then try again"
            )


def _unreachable(endpoint: str, timeout_s: float = 2.0) -> str | None:
    """Why ``endpoint`` does not accept a TCP connection now, or ``None`` when it does."""
    host, _, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return None
    except ValueError:
        return "not a host:port"
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except OSError as exc:
        return exc.strerror or str(exc)


#: How often a failed fit is asked again for its whole log (see :func:`_fit_run`).
FIT_ATTEMPTS = 5


def _fit_run(command: FitCommand, cancel: threading.Event | None) -> tuple[ToolRun, FitReport]:
    """Run llama-fit-params; a failure to fit is asked again until its log is whole.

    b11434 exits (status 1) while its log thread may still hold the last lines, so the figure of
    how much is missing comes only some of the time (measured: 8 runs in 20), and now and then
    nothing of its log at all (5 runs in 30). Runs take milliseconds to seconds (no weights are
    loaded), so a few attempts are cheap; a tool that never prints anything still fails after them.
    """
    for _attempt in range(FIT_ATTEMPTS):
        run = run_tool(command.argv, env=command.env, cancel=cancel)
        report = apply_exit(parse_fit_output(run.stderr, run.stdout), run.returncode)
        if run.returncode == 0 or report.need_less is not None:
            break
    return run, report


def _check_usable(run: ToolRun, report: FitReport) -> None:
    """A crash, or a run that said nothing about the fit, is a failure (nothing is cached)."""
    if run.returncode == 0 and report.fitted_args:
        return
    if run.returncode != 0 and report.success is False and report.began:
        return  # it measured and found that it does not fit: that is an answer
    raise ToolFailed(run.argv[0], run.returncode, run.tail())


def _outcome(command: FitCommand, tool: Path, stored: Mapping[str, Any], *, cached: bool) -> FitOutcome:
    report = apply_exit(
        parse_fit_output(str(stored.get("stderr") or ""), str(stored.get("stdout") or "")),
        int(stored.get("returncode") or 0),
    )
    if stored.get("print_stdout"):
        report.devices = parse_fit_print(str(stored["print_stdout"]))
    print_argv = stored.get("print_argv")
    return FitOutcome(report, command, tool, cached, list(print_argv) if print_argv else None)


def _read_cache(file: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != _FIT_CACHE_VERSION:
        return None
    return data


def _write_cache(file: Path, data: Mapping[str, Any]) -> None:
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f"{file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, file)
    except OSError:
        pass  # a cache; a read-only data folder must not stop the check


# ------------------------------------------------------------------------------------------------
# benchmarks


@dataclass(frozen=True)
class BenchRun:
    """One finished ``llama-bench`` run: its command, result and wall time."""

    command: BenchCommand
    result: BenchResult
    seconds: float
    repetitions: int
    #: What llama-bench printed on stdout (its JSONL lines), as it printed it.
    stdout: str = ""

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.command.params)


def run_bench(
    config: Mapping[str, Any],
    server_binary: str | os.PathLike[str] | None,
    *,
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
    gen_tokens: int = DEFAULT_GEN_TOKENS,
    repetitions: int = DEFAULT_REPETITIONS,
    overrides: Mapping[str, Any] | None = None,
    cancel: threading.Event | None = None,
    on_test: Callable[[int, int], None] | None = None,
) -> BenchRun:
    """Run ``llama-bench -o jsonl`` once for ``config`` (``overrides`` applied).

    Args:
        on_test: called with (tests done, tests expected) as each test line comes.

    Raises:
        ToolNotFound, BenchError, ToolFailed, ToolCancelled: as the names say; nothing is kept.
    """
    tool = find_tool(server_binary, BENCH_TOOL)
    command = bench_command(
        config,
        str(tool),
        prompt_tokens=prompt_tokens,
        gen_tokens=gen_tokens,
        repetitions=repetitions,
        overrides=overrides,
    )
    model = Path(str(command.argv[2]))
    if not model.is_file():
        raise BenchError(f"the model file {model} does not exist")
    if COLUMN.rpc in command.params:  # llama-bench aborts on a worker that does not answer
        _workers_answer(rpc_endpoints(command.params), BenchError)
    expected = int(prompt_tokens > 0) + int(gen_tokens > 0)
    tests = []

    def line(text: str) -> None:
        test = parse_bench_line(text)
        if test is not None:
            tests.append(test)
            if on_test is not None:
                on_test(len(tests), expected)

    run = run_tool(command.argv, cancel=cancel, on_stdout_line=line)
    if run.returncode != 0:
        raise ToolFailed(run.argv[0], run.returncode, run.tail())
    if len(tests) < expected:
        raise ToolFailed(
            run.argv[0], run.returncode, run.tail(), f"printed {len(tests)} of {expected} results"
        )
    return BenchRun(command, result_from_tests(tests), run.seconds, repetitions, run.stdout)


def store_result(
    model_name: str, run: BenchRun, *, build_label: str | None = None, sweep: str | None = None
) -> int:
    """Keep a finished run in ``bench_results``; returns its id."""
    from llamadash.core.db.bench_store import save_bench_result

    result = run.result
    params = run.params
    return save_bench_result(
        {
            "created_at": int(time.time() * 1000),
            "model": model_name,
            "config_hash": config_hash(params),
            "params": params,
            "build": result.build or build_label,
            "machine": result.machine or None,
            "pp_tokens": result.pp_tokens,
            "tg_tokens": result.tg_tokens,
            "repetitions": run.repetitions,
            "pp_tps_mean": result.pp_mean,
            "pp_tps_sd": result.pp_sd,
            "tg_tps_mean": result.tg_mean,
            "tg_tps_sd": result.tg_sd,
            "duration_s": run.seconds,
            "sweep": sweep,
        }
    )
