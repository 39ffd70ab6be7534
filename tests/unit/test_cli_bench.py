"""`llamadash fit` and `llamadash bench`: what they refuse, before any tool runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import cli, recorded_llama_server

from llamadash.core import database
from llamadash.core.db.bench_store import get_bench_results


@pytest.fixture
def data_dir(tmp_path: Path, tiny_model: Path) -> Path:
    directory = tmp_path / "data"
    code, _, err = cli("models", "add", "tiny", "--model-path", str(tiny_model), data_dir=directory)
    assert code == 0, err
    return directory


def _stored(data_dir: Path) -> list[dict]:
    database.init_database(data_dir / "llama-dashboard.db", record_start=False)
    try:
        return get_bench_results()
    finally:
        database.close_database()


def test_a_benchmark_is_refused_while_the_model_s_server_runs(data_dir, tmp_path) -> None:
    database.init_database(data_dir / "llama-dashboard.db", record_start=False)
    try:
        with recorded_llama_server(tmp_path, "tiny"):
            database.close_database()
            code, out, err = cli("bench", "tiny", data_dir=data_dir)
    finally:
        database.close_database()
    assert code == 1 and out == ""
    assert "tiny's server is running" in err and "--force" in err
    assert _stored(data_dir) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sweep", "threads"], "expected PARAM=V1,V2"),
        (["--sweep", "temperature=0.1,0.2"], "llama-bench cannot vary temperature"),
        (["--sweep", "threads=1,2", "--sweep", "threads=3"], "threads is swept twice"),
        (["--apply"], "--apply needs a --sweep"),
        (["--reps", "0"], "--reps must be a whole number from 1"),
        (["--pp", "0", "--tg", "0"], "nothing to measure"),
    ],
)
def test_bad_benchmark_requests_are_refused_and_store_nothing(data_dir, args, message) -> None:
    code, _, err = cli("bench", "tiny", *args, data_dir=data_dir)
    assert code == 1 and message in err
    assert _stored(data_dir) == []


def test_fit_needs_a_model_file(data_dir) -> None:
    code, _, err = cli("models", "add", "remote", "--from-command", "llama-server -hf a/b", data_dir=data_dir)
    assert code == 0, err
    code, _, err = cli("fit", "remote", data_dir=data_dir)
    assert code == 1 and "checking the fit needs the model's file (model_path)" in err


def _crashing_build(tmp_path: Path, llama_server: Path) -> Path:
    """A build whose llama-bench and llama-fit-params crash (a real one cannot be made to, on cue).

    llama-server and both tools' --help are the real ones; a measuring run writes two lines to
    stderr and dies of SIGSEGV (llama-fit-params) or exits 3 (llama-bench).
    """
    from llamadash.core.perf.tools import BENCH_TOOL, FIT_TOOL, tool_path

    folder = tmp_path / "crashing-bin"
    folder.mkdir()
    server = folder / "llama-server"
    server.write_text(f'#!/bin/sh\nexec "{llama_server}" "$@"\n')
    fit = folder / FIT_TOOL
    fit.write_text(
        f'#!/bin/sh\n[ "$1" = --help ] || [ "$1" = --version ] && exec "{tool_path(llama_server, FIT_TOOL)}" "$@"\n'
        'echo "loading the model" >&2\necho "GGML_ASSERT failed: boom" >&2\nkill -SEGV $$\n'
    )
    bench = folder / BENCH_TOOL
    bench.write_text('#!/bin/sh\necho "main: error: something broke" >&2\necho "last words" >&2\nexit 3\n')
    for script in (server, fit, bench):
        script.chmod(0o755)
    return server


def test_a_crashing_tool_shows_its_exit_and_last_lines_and_nothing_is_kept(
    data_dir, tmp_path, llama_server
) -> None:
    server = _crashing_build(tmp_path, llama_server)
    code, _, err = cli("llama-server", "--path", str(server), data_dir=data_dir)
    assert code == 0, err
    code, out, err = cli("bench", "tiny", data_dir=data_dir)
    assert code == 1 and out == ""
    assert "llama-bench exited with status 3; its last lines:" in err and "last words" in err
    assert _stored(data_dir) == []
    code, _, err = cli("fit", "tiny", data_dir=data_dir)
    assert (
        code == 1 and "llama-fit-params was killed by signal 11" in err and "GGML_ASSERT failed: boom" in err
    )
    assert not (data_dir / "cache" / "fit-params").exists() or not any(
        (data_dir / "cache" / "fit-params").iterdir()
    )
