"""``llamadash activity`` and ``llamadash metrics --instances`` on real database files (#15)."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest
from support import cli, run_cli

from llamadash.core import activity
from llamadash.core import database as db
from llamadash.core.db.checks import local_day

MINUTE_MS = 60_000


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def request(model: str, finished_at: int, task: int, **extra):
    row = {
        "model": model,
        "status": "finished",
        "finished_at": finished_at,
        "slot": 1,
        "task": task,
        "prompt_tokens": 1234,
        "cached_tokens": 56,
        "prompt_ms": 80.0,
        "prompt_tps": 411.5,
        "generated_tokens": 64,
        "generation_ms": 1400.0,
        "generation_tps": 45.71,
        "total_ms": 1480.0,
        "truncated": False,
    }
    row.update(extra)
    return row


@pytest.fixture
def stored(data_dir: Path) -> int:
    """Three requests of qwen (1, 2 and 90 minutes ago) and an aborted one of llama; returns now."""
    now = now_ms()
    db.init_database(data_dir / "llama-dashboard.db")
    db.save_requests(
        [
            request("qwen", now - MINUTE_MS, 1),
            request("qwen", now - 2 * MINUTE_MS, 2, truncated=True),
            request("qwen", now - 90 * MINUTE_MS, 3),
            request(
                "llama", now - 3 * MINUTE_MS, 4, status="aborted", prompt_tps=None, generated_tokens=None,
                generation_ms=None, generation_tps=None, total_ms=None, cached_tokens=None,
            ),
        ]
    )  # fmt: skip
    db.save_instance_samples(
        [
            {
                "model": "qwen",
                "timestamp": now - 1000,
                "tokens_per_second": 45.5,
                "busy_slots": 1,
                "total_slots": 2,
            }
        ]
    )
    db.save_metrics({"cpu_usage": 12.5})
    db.close_database()
    return now


def test_activity_without_requests_says_how_they_appear(data_dir: Path):
    code, out, err = cli("activity", data_dir=data_dir)
    assert (code, err) == (0, "")
    assert "no requests" in out and "records each request" in out


def test_the_table_is_newest_first_with_the_figures_and_na_for_missing(data_dir: Path, stored: int):
    code, out, err = cli("activity", data_dir=data_dir)
    assert code == 0, err
    header, *lines = out.splitlines()
    for column in activity.TABLE_COLUMNS:  # the Activity view's columns, as the window heads them
        assert column.header in header
    for word in (
        "Time",
        "Model",
        "cached",
        "Prompt t/s",
        "Generated",
        "Generation t/s",
        "Total ms",
        "Status",
    ):
        assert word in header
    assert [line.split()[2] for line in lines] == ["qwen", "qwen", "llama", "qwen"]  # newest first
    assert "1,234 (56)" in lines[0] and "411.5" in lines[0] and "45.7" in lines[0] and "1,480" in lines[0]
    assert lines[1].rstrip().endswith("finished · truncated")
    assert lines[2].rstrip().endswith("aborted") and lines[2].count("n/a") == 4  # never a made-up 0


def test_model_since_and_limit_filter(data_dir: Path, stored: int):
    def models(*args: str) -> list[str]:
        code, out, err = cli("activity", *args, data_dir=data_dir)
        assert code == 0, err
        return [line.split()[2] for line in out.splitlines()[1:]]

    assert models("--model", "llama") == ["llama"]
    assert models("--since", "1h") == ["qwen", "qwen", "llama"]
    assert models("--since", "30m", "--model", "qwen") == ["qwen", "qwen"]
    assert models("--since", "2h") == ["qwen", "qwen", "llama", "qwen"]
    assert models("--limit", "2") == ["qwen", "qwen"]
    code, out, _ = cli("activity", "--model", "nobody", "--since", "1d", data_dir=data_dir)
    assert code == 0 and "no requests of nobody in the last 1d" in out


def test_json_gives_the_stored_records(data_dir: Path, stored: int):
    code, out, err = cli("activity", "--json", "--since", "1h", data_dir=data_dir)
    assert code == 0, err
    rows = json.loads(out)
    assert [r["task"] for r in rows] == [1, 2, 4]
    assert rows[1]["truncated"] is True and rows[2]["generated_tokens"] is None
    assert rows[0]["finished_at"] == stored - MINUTE_MS


def test_csv_has_a_header_row_and_empty_cells_for_missing_figures(data_dir: Path, stored: int):
    code, out, err = cli("activity", "--csv", data_dir=data_dir)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["task"] for r in rows] == ["1", "2", "4", "3"]
    assert rows[0]["prompt_tokens"] == "1234" and rows[0]["finished_at"] == str(stored - MINUTE_MS)
    assert rows[2]["status"] == "aborted" and rows[2]["generated_tokens"] == ""  # missing, not 0
    assert rows[1]["truncated"] == "1" and rows[0]["truncated"] == "0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since must be an age such as 30m, 1h, 1d, 7d"),
        (["--since", "0h"], "--since must be an age"),
        (["--since=-1d"], "--since must be an age"),
        (["--limit", "0"], "--limit must be 1 or more"),
        (["--model", " "], "--model is empty"),
    ],
)
def test_bad_options_are_a_clear_error(data_dir: Path, args: list[str], message: str):
    code, out, err = cli("activity", *args, data_dir=data_dir)
    assert code == 1 and out == ""
    assert err.startswith("llamadash: error: ") and message in err and "Traceback" not in err


def test_json_and_csv_exclude_each_other(data_dir: Path, capsys: pytest.CaptureFixture[str]):
    code, _, _ = cli("activity", "--json", "--csv", data_dir=data_dir)
    assert code == 2 and "not allowed with" in capsys.readouterr().err  # argparse's usage error


def test_activity_as_a_real_process(data_dir: Path, stored: int):
    proc = run_cli(data_dir, "activity", "--csv", "--model", "qwen", "--limit", "1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("time,finished_at,model,") and len(lines) == 2 and ",qwen," in lines[1]
    bad = run_cli(data_dir, "activity", "--since", "1 fortnight")
    assert bad.returncode == 1 and "--since must be an age" in bad.stderr and "Traceback" not in bad.stderr


def test_metrics_json_stays_a_list_and_gains_the_instances_with_a_flag(data_dir: Path, stored: int):
    code, out, err = cli("metrics", "--json", data_dir=data_dir)
    assert code == 0, err
    system = json.loads(out)
    assert isinstance(system, list) and system[-1]["cpu_usage"] == 12.5  # as scripts read it before
    code, out, err = cli("metrics", "--json", "--instances", data_dir=data_dir)
    assert code == 0, err
    both = json.loads(out)
    assert set(both) == {"system", "instances"}
    assert both["system"][-1]["cpu_usage"] == 12.5
    [sample] = both["instances"]
    assert (sample["model"], sample["tokens_per_second"], sample["busy_slots"], sample["vram_mb"]) == (
        "qwen",
        45.5,
        1,
        None,
    )


def test_metrics_instances_table(data_dir: Path, stored: int):
    code, out, err = cli("metrics", "--instances", data_dir=data_dir)
    assert code == 0, err
    header, line = out.splitlines()
    assert "TOK/S" in header and "BUSY" in header and "VRAM MB" in header
    assert "qwen" in line and "45.5" in line and "n/a" in line
    empty = cli("metrics", "--instances", data_dir=data_dir.parent / "empty")
    assert empty[0] == 0 and "no instance samples" in empty[1]


def test_db_info_lists_the_activity_tables(data_dir: Path, stored: int):
    code, out, err = cli("db", "info", data_dir=data_dir)
    assert code == 0, err
    assert f"version:  {db.SCHEMA_VERSION}" in out
    lines = {line.split(":")[0]: line for line in out.splitlines()}
    assert lines["requests"].split()[1:] == ["4", "rows"]
    assert lines["instance_samples"].split()[1:] == ["1", "rows"]
    # qwen's and llama's day, and qwen's of 90 minutes ago if that was yesterday
    days = {
        (local_day(stored - minutes * MINUTE_MS), model) for minutes, model in ((1, "q"), (90, "q"), (3, "l"))
    }
    assert lines["daily_totals"].split()[1:] == [str(len(days)), "rows"]


def test_db_import_says_how_many_request_records_came(data_dir: Path, stored: int, tmp_path: Path):
    backup = tmp_path / "backup.db"
    assert cli("db", "export", str(backup), data_dir=data_dir)[0] == 0
    other = tmp_path / "other"
    code, out, err = cli("db", "import", str(backup), data_dir=other)
    assert code == 0, err
    assert "4 request records" in out
    assert json.loads(cli("activity", "--json", data_dir=other)[1]) == json.loads(
        cli("activity", "--json", data_dir=data_dir)[1]
    )
