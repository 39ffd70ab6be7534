"""How fast is it? ``llama-bench`` commands for a configuration, its JSONL output, sweeps and scores.

``llama-bench`` has its own argument parser: each flag takes a comma-separated list of
alternatives (``-t 1,2`` runs both), so a value that has commas of its own is written with the
schema's ``bench_join`` (``-ts 3/1``), and on/off rows have their own words (``-nkvo 1`` is
"no KV offload"). The schema rows say all of it (``bench_flag``, ``bench_values``,
``bench_join``); this module only reads them. A row llama-bench has no flag for is reported as
"not passed", never silently dropped.

Every figure comes from what llama-bench printed (``avg_ts``/``stddev_ts`` of each test);
nothing here estimates a speed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llamadash.core.params import COLUMN, CommandError, Param, load_schema
from llamadash.core.params.command import LOAD_MODES, normalize_config

__all__ = [
    "DEFAULT_GEN_TOKENS",
    "DEFAULT_PROMPT_TOKENS",
    "DEFAULT_REPETITIONS",
    "MAX_SWEEP_RUNS",
    "OBJECTIVES",
    "BenchCommand",
    "BenchError",
    "BenchResult",
    "BenchTest",
    "bench_command",
    "bench_rows",
    "config_hash",
    "parse_bench_jsonl",
    "parse_sweep",
    "result_from_tests",
    "score",
    "sweep_grid",
]

DEFAULT_PROMPT_TOKENS = 512
DEFAULT_GEN_TOKENS = 128
DEFAULT_REPETITIONS = 3
#: The most runs one sweep may have: a sweep is bounded, so that it ends in minutes, not days.
MAX_SWEEP_RUNS = 64
#: What a tuner can optimise: generation speed, prompt speed, or a mix of both.
OBJECTIVES = ("gen", "prompt", "mix")
#: The load modes of llama-bench's ``-lm`` by (mmap, mlock) (``None``: llama-server's default).
_LOAD_MODE_BY_PAIR = {pair: mode for mode, pair in LOAD_MODES.items() if pair is not None}


class BenchError(ValueError):
    """A benchmark cannot be run as asked (a bad sweep, no model file, an unknown parameter)."""


def bench_rows() -> tuple[Param, ...]:
    """The schema rows llama-bench takes (they have a ``bench_flag``)."""
    return tuple(p for p in load_schema() if p.bench_flag)


@dataclass(frozen=True)
class BenchCommand:
    """One ``llama-bench`` run.

    Attributes:
        argv: the command (argv[0] is the tool); always ``-o jsonl``.
        params: the parameters it runs with, column -> canonical value (what a result stores).
        not_passed: ``(column, why)`` for set rows llama-bench has no flag for.
    """

    argv: list[str]
    params: dict[str, Any]
    not_passed: tuple[tuple[str, str], ...] = ()


def _bench_text(param: Param, value: Any) -> str | None:
    """The llama-bench text of a canonical value, or ``None`` when llama-bench has no word for it."""
    words = dict(param.bench_values)
    if isinstance(value, bool):
        key = "true" if value else "false"
        if key in words:
            return words[key]
        return ("1" if value else "0") if param.kind == "bool_pair" else (None if not value else "1")
    if isinstance(value, list):
        return (param.bench_join or param.separator or ",").join(str(v) for v in value)
    text = str(value)
    if param.kind == "int_or_keyword" and text in param.keywords:
        return words.get(text)
    return words.get(text, text)


def bench_command(
    config: Mapping[str, Any],
    tool: str,
    *,
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
    gen_tokens: int = DEFAULT_GEN_TOKENS,
    repetitions: int = DEFAULT_REPETITIONS,
    overrides: Mapping[str, Any] | None = None,
) -> BenchCommand:
    """The ``llama-bench -o jsonl`` command for ``config`` (a ``models`` row), ``overrides`` applied.

    Raises:
        BenchError: the model has no file, a count is out of range, or a value is not valid.
    """
    for name, count, low in (("--pp", prompt_tokens, 0), ("--tg", gen_tokens, 0), ("--reps", repetitions, 1)):
        if isinstance(count, bool) or not isinstance(count, int) or count < low or count > 1_000_000:
            raise BenchError(f"{name} must be a whole number from {low} to 1000000, got {count!r}")
    if prompt_tokens == 0 and gen_tokens == 0:
        raise BenchError("--pp and --tg are both 0: there is nothing to measure")
    merged = dict(config)
    merged.update(overrides or {})
    try:
        values = normalize_config(merged)
    except CommandError as exc:
        raise BenchError(str(exc)) from None
    model = values.get(COLUMN.model_path)
    if not model:
        raise BenchError("a benchmark needs the model's file (model_path): llama-bench downloads nothing")
    schema = load_schema()
    argv = [tool, "-m", str(model)]
    params: dict[str, Any] = {}
    not_passed: list[tuple[str, str]] = []
    load_mode_done = False
    for column, value in values.items():
        if column in ("custom_params", COLUMN.model_path):
            continue
        param = schema[column]
        if not param.bench_flag:
            if _matters_for_speed(param):
                not_passed.append((column, f"llama-bench has no flag for {column}"))
            continue
        if param.mapping == "load_mode":
            if not load_mode_done:
                load_mode_done = True
                pair = (values.get(COLUMN.mmap, True), values.get(COLUMN.mlock, False))
                argv += [param.bench_flag, _LOAD_MODE_BY_PAIR.get(pair, "auto")]
                for name in (COLUMN.mmap, COLUMN.mlock):
                    if name in values:
                        params[name] = values[name]
            continue
        text = _bench_text(param, value)
        if text is None:
            not_passed.append(
                (column, f"llama-bench has no value for {column} = {value}: its default is used")
            )
            continue
        argv += [param.bench_flag, text]
        params[column] = value
    argv += ["-p", str(prompt_tokens), "-n", str(gen_tokens), "-r", str(repetitions), "-o", "jsonl"]
    return BenchCommand(argv, params, tuple(not_passed))


def _matters_for_speed(param: Param) -> bool:
    """Rows that change speed but llama-bench cannot take (said, so that nobody is misled)."""
    return param.fit_params or param.section in ("Threading", "Memory & Performance")


# ------------------------------------------------------------------------------------------------
# output


@dataclass(frozen=True)
class BenchTest:
    """One test line of ``llama-bench -o jsonl`` (a prompt or a generation test)."""

    n_prompt: int
    n_gen: int
    avg_ts: float
    stddev_ts: float
    samples_ts: tuple[float, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def kind(self) -> str:
        """``pp`` (prompt processing), ``tg`` (generation) or ``pg`` (both in one test)."""
        if self.n_gen == 0:
            return "pp"
        if self.n_prompt == 0:
            return "tg"
        return "pg"

    @property
    def name(self) -> str:
        """llama-bench's own test name: ``pp512``, ``tg128``."""
        if self.kind == "pg":
            return f"pp{self.n_prompt}+tg{self.n_gen}"
        return f"{self.kind}{self.n_prompt or self.n_gen}"


def parse_bench_jsonl(text: str | Iterable[str]) -> list[BenchTest]:
    """The test lines of ``llama-bench -o jsonl`` output; lines that are not test objects are skipped."""
    lines = text.splitlines() if isinstance(text, str) else list(text)
    tests: list[BenchTest] = []
    for line in lines:
        test = parse_bench_line(line)
        if test is not None:
            tests.append(test)
    return tests


def parse_bench_line(line: str) -> BenchTest | None:
    """One JSONL line as a :class:`BenchTest`, or ``None`` when it is not a test result."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        n_prompt = int(data["n_prompt"])
        n_gen = int(data["n_gen"])
        avg = float(data["avg_ts"])
        sd = float(data.get("stddev_ts", 0.0))
    except (KeyError, TypeError, ValueError):
        return None
    if not math.isfinite(avg) or not math.isfinite(sd):
        return None
    samples = data.get("samples_ts") or []
    clean = tuple(float(s) for s in samples if isinstance(s, (int, float)) and math.isfinite(float(s)))
    return BenchTest(n_prompt, n_gen, avg, sd, clean, data)


@dataclass(frozen=True)
class BenchResult:
    """One benchmark's figures, as stored (tokens/s; ``None`` for a test that was not run)."""

    pp_tokens: int | None
    tg_tokens: int | None
    pp_mean: float | None
    pp_sd: float | None
    tg_mean: float | None
    tg_sd: float | None
    build: str
    machine: str
    used: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "pp_tokens": self.pp_tokens,
            "tg_tokens": self.tg_tokens,
            "pp_tps_mean": self.pp_mean,
            "pp_tps_sd": self.pp_sd,
            "tg_tps_mean": self.tg_mean,
            "tg_tps_sd": self.tg_sd,
            "build": self.build,
            "machine": self.machine,
            "used": dict(self.used),
        }


#: The keys of a llama-bench JSON line that are the test and its timing, not what it ran with (and
#: the model's file name, a place on this computer): everything else is kept with a result.
_NOT_USED_KEYS = frozenset(
    {
        "model_filename",
        "test_time",
        "avg_ns",
        "stddev_ns",
        "avg_ts",
        "stddev_ts",
        "samples_ns",
        "samples_ts",
        "n_prompt",
        "n_gen",
        "build_commit",
        "build_number",
        "cpu_info",
        "gpu_info",
    }
)


def result_from_tests(tests: Sequence[BenchTest]) -> BenchResult:
    """A result from a run's tests: the last prompt test and the last generation test.

    Raises:
        BenchError: the run printed no test at all.
    """
    if not tests:
        raise BenchError("llama-bench printed no result")
    pp = next((t for t in reversed(tests) if t.kind == "pp"), None)
    tg = next((t for t in reversed(tests) if t.kind == "tg"), None)
    data = tests[-1].data
    build_number = data.get("build_number")
    commit = data.get("build_commit")
    build = " ".join(
        part
        for part in (
            f"b{build_number}" if isinstance(build_number, int) and build_number > 0 else "",
            f"({commit})" if isinstance(commit, str) and commit and commit != "unknown" else "",
        )
        if part
    )
    machine = " | ".join(
        str(data[key]).strip()
        for key in ("cpu_info", "gpu_info")
        if isinstance(data.get(key), str) and data[key]
    )
    used = {key: value for key, value in data.items() if key not in _NOT_USED_KEYS}
    return BenchResult(
        pp.n_prompt if pp else None,
        tg.n_gen if tg else None,
        pp.avg_ts if pp else None,
        pp.stddev_ts if pp else None,
        tg.avg_ts if tg else None,
        tg.stddev_ts if tg else None,
        build,
        machine,
        used,
    )


def config_hash(params: Mapping[str, Any]) -> str:
    """A short fingerprint of the parameters a benchmark ran with (same params, same hash)."""
    text = json.dumps({k: params[k] for k in sorted(params)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------
# sweeps


def parse_sweep(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["threads=1,2", "flash_attn=on,off"]`` -> ``{"threads": [1, 2], "flash_attn": ["on", "off"]}``.

    Each value is checked as the parameter's input is; only rows llama-bench takes may be swept.

    Raises:
        BenchError: a bad item, an unknown parameter, a row llama-bench cannot vary, a bad value.
    """
    schema = load_schema()
    sweep: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise BenchError(f"expected PARAM=V1,V2,..., got {item!r}")
        if key not in schema:
            raise BenchError(f"unknown parameter {key!r}: see 'llamadash models show NAME' for the names")
        param = schema[key]
        if not param.bench_flag:
            names = ", ".join(p.column for p in bench_rows())
            raise BenchError(f"llama-bench cannot vary {key}; it can vary: {names}")
        if key in sweep:
            raise BenchError(f"{key} is swept twice")
        separator = ";" if param.kind == "list" else ","
        values: list[Any] = []
        for part in text.split(separator):
            try:
                value = param.from_text(part)
            except ValueError as exc:
                raise BenchError(str(exc)) from None
            if value is None:
                raise BenchError(f"{key}: an empty value in {text!r}")
            if value not in values:
                values.append(value)
        sweep[key] = values
    return sweep


def sweep_grid(sweep: Mapping[str, Sequence[Any]], max_runs: int = MAX_SWEEP_RUNS) -> list[dict[str, Any]]:
    """Every combination of the swept values, in a stable order (first parameter slowest).

    Raises:
        BenchError: more than ``max_runs`` combinations.
    """
    if not sweep:
        return [{}]
    keys = list(sweep)
    total = math.prod(len(sweep[k]) for k in keys)
    if total > max_runs:
        raise BenchError(f"the sweep has {total} runs; at most {max_runs} are allowed: sweep fewer values")
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(sweep[k] for k in keys))]


def score(result: BenchResult, objective: str, weight: float = 0.5) -> float | None:
    """How good a result is for ``objective`` (higher is better), or ``None`` when it lacks the figure.

    ``gen``: generation tokens/s; ``prompt``: prompt tokens/s; ``mix``: ``weight`` x generation +
    (1 - ``weight``) x prompt, each relative to the best of the sweep (see :func:`best_index`).
    """
    if objective == "gen":
        return result.tg_mean
    if objective == "prompt":
        return result.pp_mean
    if objective == "mix":
        if result.tg_mean is None or result.pp_mean is None:
            return None
        return weight * result.tg_mean + (1 - weight) * result.pp_mean
    raise BenchError(f"unknown objective {objective!r}: one of {', '.join(OBJECTIVES)}")


def best_index(results: Sequence[BenchResult], objective: str, weight: float = 0.5) -> int | None:
    """The index of the best result for ``objective``; ``None`` when none has the figure.

    For ``mix`` each speed is divided by the best of its kind first, so that prompt speeds (often
    ten times larger) do not drown generation.
    """
    if objective == "mix":
        best_tg = max((r.tg_mean for r in results if r.tg_mean), default=None)
        best_pp = max((r.pp_mean for r in results if r.pp_mean), default=None)
        if not best_tg or not best_pp:
            return None
        scores = [
            weight * r.tg_mean / best_tg + (1 - weight) * r.pp_mean / best_pp
            if r.tg_mean is not None and r.pp_mean is not None
            else None
            for r in results
        ]
    else:
        scores = [score(r, objective, weight) for r in results]
    candidates = [(s, i) for i, s in enumerate(scores) if s is not None]
    if not candidates:
        return None
    return max(candidates, key=lambda pair: (pair[0], -pair[1]))[1]
