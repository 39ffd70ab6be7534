"""The ``workers`` table's queries, on the open database (rows as dicts; the checks and the
:class:`~llamadash.core.workers.Worker` objects are :mod:`llamadash.core.workers`'s)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import peewee

from llamadash.core.db import api
from llamadash.core.db.connection import SQL_ERRORS
from llamadash.core.db.errors import DatabaseError
from llamadash.core.db.models import WorkerRow

__all__ = ["delete_row", "get_row", "insert_row", "list_rows", "update_row"]


def _run(doing: str, query: Callable[[Any], Any]) -> Any:
    database = api.current()
    with database.lock:
        try:
            return query(database.db)
        except peewee.IntegrityError:
            raise
        except SQL_ERRORS as exc:
            raise DatabaseError(f"could not {doing}: {exc}") from exc


def list_rows() -> list[dict[str, Any]]:
    """Every worker row, by name."""
    return list(
        _run(
            "read the workers", lambda d: list(WorkerRow.select().order_by(WorkerRow.name).dicts().execute(d))
        )
    )


def get_row(name: str) -> dict[str, Any] | None:
    """The row of the worker ``name``, or ``None``."""
    rows = _run(
        "read the worker",
        lambda d: list(WorkerRow.select().where(WorkerRow.name == name).limit(1).dicts().execute(d)),
    )
    return dict(rows[0]) if rows else None


def insert_row(row: Mapping[str, Any], now_ms: int) -> int | None:
    """Add a worker row (its times set to ``now_ms``); its id, or ``None`` when the name is taken."""
    values = {**row, "created_at": now_ms, "updated_at": now_ms}
    try:
        return int(_run("save the worker", lambda d: WorkerRow.insert(values).execute(d)))
    except peewee.IntegrityError:
        return None


def update_row(name: str, row: Mapping[str, Any], now_ms: int) -> bool:
    """Replace the settings of the worker ``name``; whether there was one."""
    values = {**row, "updated_at": now_ms}
    count = _run(
        "save the worker", lambda d: WorkerRow.update(values).where(WorkerRow.name == name).execute(d)
    )
    return bool(count)


def delete_row(name: str) -> bool:
    """Delete the worker ``name``; whether there was one."""
    return bool(
        _run("delete the worker", lambda d: WorkerRow.delete().where(WorkerRow.name == name).execute(d))
    )
