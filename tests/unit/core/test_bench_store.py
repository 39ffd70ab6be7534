"""The bench_results table: whole results in, newest first out, bad rows refused."""

from __future__ import annotations

import pytest

from llamadash.core import database
from llamadash.core.db.bench_store import delete_bench_results, get_bench_results, save_bench_result


@pytest.fixture
def db(tmp_path):
    database.init_database(tmp_path / "db.sqlite")
    yield
    database.close_database()


def _row(**changes):
    row = {
        "model": "tiny",
        "config_hash": "abc",
        "params": {"threads": 2},
        "pp_tokens": 512,
        "tg_tokens": 128,
        "repetitions": 3,
        "pp_tps_mean": 100.5,
        "pp_tps_sd": 1.5,
        "tg_tps_mean": 20.25,
        "tg_tps_sd": 0.5,
        "build": "b11434",
        "machine": "AMD EPYC",
        "duration_s": 1.0,
    }
    row.update(changes)
    return row


def test_results_come_back_newest_first_with_their_params(db) -> None:
    first = save_bench_result(_row(created_at=1000))
    second = save_bench_result(_row(created_at=2000, tg_tps_mean=30.0, model="other"))
    rows = get_bench_results()
    assert [r["id"] for r in rows] == [second, first]
    [mine] = get_bench_results("tiny")
    assert mine["params"] == {"threads": 2} and mine["tg_tps_mean"] == 20.25 and mine["pp_tokens"] == 512
    assert delete_bench_results("tiny") == 1 and [r["model"] for r in get_bench_results()] == ["other"]


def test_a_test_that_was_not_run_is_null_not_zero(db) -> None:
    save_bench_result(_row(pp_tokens=None, pp_tps_mean=None, pp_tps_sd=None))
    [row] = get_bench_results()
    assert row["pp_tps_mean"] is None and row["pp_tokens"] is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": ""}, "model"),
        ({"tg_tps_mean": float("nan")}, "tg_tps_mean"),
        ({"pp_tps_mean": None, "tg_tps_mean": None}, "neither"),
        ({"params": "x"}, "params"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_bad_rows_are_refused_and_nothing_is_stored(db, change, message) -> None:
    with pytest.raises(database.DatabaseError, match=message):
        save_bench_result(_row(**change))
    assert get_bench_results() == []


def test_an_import_keeps_this_computer_s_results_and_takes_none_from_the_file(tmp_path) -> None:
    other = tmp_path / "other.sqlite"
    database.init_database(other)
    save_bench_result(_row(model="theirs"))  # measured on another computer
    database.close_database()
    database.init_database(tmp_path / "mine.sqlite")
    try:
        save_bench_result(_row(model="mine"))
        database.import_database(other)
        assert [r["model"] for r in get_bench_results()] == ["mine"]
    finally:
        database.close_database()
