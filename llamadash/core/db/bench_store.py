"""The ``bench_results`` table: what ``llama-bench`` measured, per model and configuration.

Functions on the open database (:func:`llamadash.core.db.current`), like the rest of the API: a
result is stored whole or not at all (a cancelled or failed run stores nothing), and read back
newest first.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from llamadash.core.db import api
from llamadash.core.db.connection import SQL_ERRORS, now_ms
from llamadash.core.db.errors import DatabaseError
from llamadash.core.db.models import BenchResultRow
from llamadash.core.messages import short_repr

__all__ = ["BENCH_COLUMNS", "delete_bench_results", "get_bench_results", "save_bench_result"]

BENCH_COLUMNS: tuple[str, ...] = tuple(f.column_name for f in BenchResultRow._meta.sorted_fields)
_INPUT = tuple(c for c in BENCH_COLUMNS if c != "id")
_INSERT = f"INSERT INTO bench_results ({', '.join(_INPUT)}) VALUES ({', '.join('?' for _ in _INPUT)})"
_SELECT = f"SELECT {', '.join(BENCH_COLUMNS)} FROM bench_results"
_FLOATS = ("pp_tps_mean", "pp_tps_sd", "tg_tps_mean", "tg_tps_sd", "duration_s")
_INTS = ("pp_tokens", "tg_tokens", "repetitions")


def _checked(row: Mapping[str, Any]) -> tuple[Any, ...]:
    unknown = set(row) - set(_INPUT)
    if unknown:
        raise DatabaseError(f"bench result: unknown column(s) {', '.join(sorted(unknown))}")
    model = row.get("model")
    if not isinstance(model, str) or not model.strip():
        raise DatabaseError(f"bench result: model must be a name, got {short_repr(model)}")
    params = row.get("params", {})
    if not isinstance(params, Mapping):
        raise DatabaseError(f"bench result: params must be a mapping, got {short_repr(params)}")
    values: dict[str, Any] = {
        "created_at": row.get("created_at") or now_ms(),
        "model": model,
        "config_hash": str(row.get("config_hash") or ""),
        "params": json.dumps(dict(params), sort_keys=True, default=str),
        "build": row.get("build") or None,
        "machine": row.get("machine") or None,
        "sweep": row.get("sweep") or None,
    }
    for column in _FLOATS:
        value = row.get(column)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        ):
            raise DatabaseError(f"bench result: {column} must be a finite number, got {short_repr(value)}")
        values[column] = float(value) if value is not None else None
    for column in _INTS:
        value = row.get(column)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise DatabaseError(f"bench result: {column} must be a whole number, got {short_repr(value)}")
        values[column] = value
    if values["pp_tps_mean"] is None and values["tg_tps_mean"] is None:
        raise DatabaseError("bench result: it has neither a prompt nor a generation figure")
    return tuple(values[c] for c in _INPUT)


def save_bench_result(row: Mapping[str, Any]) -> int:
    """Store one benchmark result; returns its id.

    Args:
        row: ``model``, ``config_hash``, ``params`` (a mapping), ``build``, ``machine``,
            ``pp_tokens``, ``tg_tokens``, ``repetitions``, ``pp_tps_mean``, ``pp_tps_sd``,
            ``tg_tps_mean``, ``tg_tps_sd``, ``duration_s``, ``sweep``, ``created_at`` (default now).

    Raises:
        DatabaseError: a value is refused (nothing stored) or the database failed.
    """
    values = _checked(row)
    database = api.current()
    with database.lock:
        db = database.db
        try:
            with db.atomic("IMMEDIATE"):
                cursor = db.thread_connection().execute(_INSERT, values)
        except SQL_ERRORS as exc:
            raise DatabaseError(f"could not save the benchmark result: {exc}") from exc
    return int(cursor.lastrowid or 0)


def get_bench_results(model: str | None = None, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Stored results, newest first (``params`` decoded); only ``model``'s when given."""
    sql = _SELECT
    args: list[Any] = []
    if model is not None:
        sql += " WHERE model = ?"
        args.append(model)
    sql += " ORDER BY created_at DESC, id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    database = api.current()
    with database.lock:
        try:
            rows = database.db.thread_connection().execute(sql, args).fetchall()
        except SQL_ERRORS as exc:
            raise DatabaseError(f"could not read the benchmark results: {exc}") from exc
    results = []
    for raw in rows:
        item = dict(zip(BENCH_COLUMNS, raw, strict=True))
        try:
            decoded = json.loads(item["params"] or "{}")
        except ValueError:
            decoded = {}
        item["params"] = decoded if isinstance(decoded, dict) else {}
        results.append(item)
    return results


def delete_bench_results(model: str) -> int:
    """Forget ``model``'s results; returns how many were deleted."""
    database = api.current()
    with database.lock:
        db = database.db
        try:
            with db.atomic("IMMEDIATE"):
                cursor = db.thread_connection().execute("DELETE FROM bench_results WHERE model = ?", (model,))
        except SQL_ERRORS as exc:
            raise DatabaseError(f"could not delete the benchmark results: {exc}") from exc
    return int(cursor.rowcount or 0)
