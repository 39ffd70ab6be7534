"""Checking what callers give the database: model rows, metrics samples, metadata, activity rows.

Every check raises :class:`~llamadash.core.db.errors.DatabaseError` with a message meant for a
person; what passes comes back in the form the database stores (a model row through the parameter
schema, a metrics sample as the row to insert).
"""

from __future__ import annotations

import datetime
import json
import math
import numbers
import re
import time
from collections.abc import Mapping
from typing import Any

from llamadash.core.db import connection
from llamadash.core.db.errors import DatabaseError
from llamadash.core.db.models import (
    ACTIVITY_INTEGER_COLUMNS,
    AUTO_RESTART_COLUMN,
    DAILY_TOTAL_COLUMNS,
    LOAD_ON_STARTUP_COLUMN,
    MAX_STOP_TIMEOUT_S,
    SERVED_COLUMN,
    STOP_TIMEOUT_COLUMN,
    INSTANCE_SAMPLE_INPUT_COLUMNS,
    METRICS_INPUT_COLUMNS,
    METRICS_INTEGER_COLUMNS,
    MODEL_COLUMNS,
    PARAM_FIELDS,
    REMOTE_URL_COLUMN,
    REQUEST_INPUT_COLUMNS,
)
from llamadash.core.messages import short_repr
from llamadash.core.params import ParamValueError, load_schema
from llamadash.core.remote import RemoteUrlError, check_remote_url
from llamadash.core.requests_log import RequestRecord, RequestStatus
from llamadash.core.states import MODEL_STATUSES

#: The longest model name and type, in characters (a name is also a file name of its log).
MAX_NAME_LENGTH = 200
#: The longest ``custom_params``, as JSON text.
MAX_CUSTOM_PARAMS_LENGTH = 256 * 1024
#: The longest metadata value (window layouts and settings take a few KB).
MAX_METADATA_LENGTH = 1024 * 1024
#: Metadata keys that llamadash maintains itself and callers may not set or delete.
RESERVED_METADATA_KEYS = frozenset({"db_version"})

CREATED_AT_INDEX = METRICS_INPUT_COLUMNS.index("created_at")
_TIMESTAMP_INDEX = METRICS_INPUT_COLUMNS.index("timestamp")
_METRICS_INPUT_SET = frozenset(METRICS_INPUT_COLUMNS)
_METRICS_KINDS = tuple((c, c in METRICS_INTEGER_COLUMNS) for c in METRICS_INPUT_COLUMNS)
_MODEL_INPUT = frozenset(MODEL_COLUMNS) - {"id"}


# ------------------------------------------------------------------------------------------------
# metrics
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INF, _NEG_INF = math.inf, -math.inf


def _metric_value(column: str, is_integer: bool, value: Any) -> Any:
    kind = type(value)
    if kind is float:
        if math.isnan(value):  # SQLite has no NaN; it is a missing reading
            return None
        if value in (math.inf, -math.inf):
            raise DatabaseError(f"metrics value {column} must be finite, got {short_repr(value)}")
        return round(value) if is_integer else value
    if kind is int:
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise DatabaseError(f"metrics value {column} is too large to store, got {short_repr(value)}")
        return value
    if kind is bool or not isinstance(value, numbers.Real):
        raise DatabaseError(f"metrics value {column} must be a number or None, got {short_repr(value)}")
    return _metric_value(column, is_integer, float(value))


def metrics_row(metrics: Mapping[str, Any]) -> list[Any]:
    """The row to insert for a metrics sample (in :data:`METRICS_INPUT_COLUMNS` order), checked."""
    if not isinstance(metrics, Mapping):
        raise DatabaseError(f"save_metrics expects a dict of readings, got {type(metrics).__name__}")
    if not _METRICS_INPUT_SET.issuperset(metrics):
        unknown = sorted(str(key) for key in metrics if key not in _METRICS_INPUT_SET)
        raise DatabaseError(
            f"unknown metrics key(s): {', '.join(unknown)}; known keys: {', '.join(METRICS_INPUT_COLUMNS)}"
        )
    row: list[Any] = []
    append = row.append
    get = metrics.get
    # The common values (None, a finite float, an int in range) are checked inline: once a second,
    # a call per reading was most of what the API added to the bare sqlite3 save.
    for column, is_integer in _METRICS_KINDS:
        value = get(column)
        kind = type(value)
        if value is None:
            append(None)
        elif kind is float and _NEG_INF < value < _INF:  # not NaN, not infinite
            append(round(value) if is_integer else value)
        elif kind is int and _INT64_MIN <= value <= _INT64_MAX:
            append(value)
        else:
            append(_metric_value(column, is_integer, value))
    now = None
    if row[_TIMESTAMP_INDEX] is None:
        now = connection.now_ms()
        row[_TIMESTAMP_INDEX] = now
    if row[CREATED_AT_INDEX] is None:
        row[CREATED_AT_INDEX] = now if now is not None else connection.now_ms()
    return row


# ------------------------------------------------------------------------------------------------
# models
def _unknown_key_message(keys: list[str]) -> str:
    schema = load_schema()
    hints = []
    for key in keys:
        param = schema.by_flag.get(key) or schema.by_column.get(key.lstrip("-").replace("-", "_"))
        if key == "id":
            hints.append("id is assigned by the database")
        elif param is not None:
            hints.append(f"{short_repr(key)} is the column {short_repr(param.column)}")
        else:
            import difflib  # only to word an error

            close = difflib.get_close_matches(key[:100], sorted(_MODEL_INPUT), n=1)
            if close:
                hints.append(f"did you mean {short_repr(close[0])} instead of {short_repr(key)}?")
    text = f"unknown model setting(s): {', '.join(short_repr(k) for k in keys[:10])}"
    if hints:
        text += " (" + "; ".join(hints) + ")"
    return (
        text + ". Extra llama-server flags belong in custom_params, e.g. "
        "{'custom_params': {'--some-flag': 'value'}}"
    )


def _check_text(column: str, value: Any) -> str:
    if not isinstance(value, str):
        raise DatabaseError(f"model {column} must be text, got {short_repr(value)}")
    text = value.strip()
    if not text:
        raise DatabaseError(f"model {column} must not be empty")
    if len(text) > MAX_NAME_LENGTH:
        raise DatabaseError(
            f"model {column} must be at most {MAX_NAME_LENGTH} characters, got {len(text):,} "
            f"({short_repr(text)})"
        )
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text):
        # a newline in a name would end the comment line it is written in (shell export, INI, logs)
        raise DatabaseError(
            f"model {column} must not contain control characters (newlines, tabs), got {short_repr(text)}"
        )
    return text


def _check_ms(column: str, value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DatabaseError(
            f"{column} must be Unix milliseconds (a whole number >= 0), got {short_repr(value)}"
        )
    return value


def check_flag(column: str, value: Any) -> bool:
    """An on/off column's value: True or False (SQLite's 1 and 0 too, as a file stores them)."""
    if isinstance(value, bool):
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    raise DatabaseError(f"model {column} must be true or false, got {short_repr(value)}")


def _check_custom_params(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Mapping):
        bad_keys = [k for k in value if not isinstance(k, str)]
        if bad_keys:
            raise DatabaseError(f"custom_params keys must be text (flags), got {short_repr(bad_keys[0])}")
        value = dict(value)
    elif isinstance(value, (list, tuple)):
        bad = [v for v in value if not isinstance(v, str)]
        if bad:
            raise DatabaseError(
                f"custom_params as a list must hold command-line strings only, got {short_repr(bad[0])}"
            )
        value = list(value)
    else:
        raise DatabaseError(
            "custom_params must be a dict like {'--flag': value} or a list of command-line "
            f"strings, got {short_repr(value)}"
        )
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DatabaseError(f"custom_params must be JSON-serialisable: {exc}") from None
    if len(text) > MAX_CUSTOM_PARAMS_LENGTH:
        raise DatabaseError(
            f"custom_params are {len(text):,} characters long as JSON; at most {MAX_CUSTOM_PARAMS_LENGTH:,} "
            "are kept (put long text in a file and give its path)"
        )
    return value


def model_row(data: Any, *, partial: bool) -> dict[str, Any]:
    """The checked columns of a model given as a dict (``partial``: only some, as an update gives).

    A whole model (not ``partial``) gets the defaults of the columns llamadash keeps itself
    (``auto_restart`` off).
    """
    if not isinstance(data, Mapping):
        raise DatabaseError(f"a model must be given as a dict, got {type(data).__name__}")
    unknown = [str(key) for key in data if key not in _MODEL_INPUT]
    if unknown:
        raise DatabaseError(_unknown_key_message(unknown))
    row: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("name", "type"):
            row[key] = _check_text(key, value)
        elif key == "status":
            if value not in MODEL_STATUSES:
                allowed = ", ".join(MODEL_STATUSES)
                raise DatabaseError(f"model status must be one of {allowed}, got {short_repr(value)}")
            row[key] = value
        elif key in ("created_at", "updated_at"):
            row[key] = _check_ms(key, value)
        elif key == "custom_params":
            row[key] = _check_custom_params(value)
        elif key in (AUTO_RESTART_COLUMN, LOAD_ON_STARTUP_COLUMN):
            row[key] = False if value is None else check_flag(key, value)  # None: back to the default
        elif key == REMOTE_URL_COLUMN:
            try:  # a URL is data (llamadash connects to it), never a program: checked, then kept
                row[key] = None if value is None else check_remote_url(value)
            except RemoteUrlError as exc:
                raise DatabaseError(f"invalid value for {REMOTE_URL_COLUMN}: {exc}") from None
        elif key == SERVED_COLUMN:
            row[key] = True if value is None else check_flag(key, value)  # served unless turned off
        elif key == STOP_TIMEOUT_COLUMN:
            row[key] = check_stop_timeout(value)
        else:
            try:
                row[key] = PARAM_FIELDS[key].param.coerce(value)
            except ParamValueError as exc:
                raise DatabaseError(f"invalid value for {exc.column}: {exc.message}") from None
    if not partial:
        missing = [key for key in ("name", "type", "status") if key not in row]
        if missing:
            raise DatabaseError(f"a model needs {', '.join(missing)}")
        row.setdefault(AUTO_RESTART_COLUMN, False)
        row.setdefault(SERVED_COLUMN, True)
        row.setdefault(LOAD_ON_STARTUP_COLUMN, False)
    return row


def check_stop_timeout(value: Any) -> int | None:
    """A model's router stop timeout: whole seconds from 0 to :data:`MAX_STOP_TIMEOUT_S`, or ``None``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise DatabaseError(f"{STOP_TIMEOUT_COLUMN} is a whole number of seconds, got {short_repr(value)}")
    if not 0 <= int(value) <= MAX_STOP_TIMEOUT_S:
        raise DatabaseError(
            f"{STOP_TIMEOUT_COLUMN} must be from 0 to {MAX_STOP_TIMEOUT_S} seconds, got {value}"
        )
    return int(value)


def integrity_error(exc: Exception, row: dict[str, Any]) -> DatabaseError:
    """The error to raise when SQLite refused ``row`` (a taken name, said as one)."""
    if "models.name" in str(exc) and "name" in row:
        name = short_repr(row["name"])
        return DatabaseError(f"a model named {name} already exists; model names must be unique")
    return DatabaseError(f"the model was not saved: {exc}")


def check_id(model_id: Any) -> int:
    """``model_id`` if it is a model id (a whole number)."""
    if isinstance(model_id, bool) or not isinstance(model_id, int):
        raise DatabaseError(f"a model id is a whole number, got {short_repr(model_id)}")
    return model_id


# ------------------------------------------------------------------------------------------------
# metadata
def check_key(key: Any) -> str:
    """``key`` if it is a metadata key (non-empty text)."""
    if not isinstance(key, str) or not key.strip():
        raise DatabaseError(f"a metadata key is non-empty text, got {short_repr(key)}")
    return key


def check_metadata_value(key: str, value: Any) -> str:
    """The text to store for a metadata value (numbers as their text)."""
    if key in RESERVED_METADATA_KEYS:
        raise DatabaseError(f"{key} is maintained by llamadash and cannot be set")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DatabaseError(f"a metadata value is text or a number, got {short_repr(value)}")
    if len(str(value)) > MAX_METADATA_LENGTH:
        raise DatabaseError(
            f"the metadata value of {short_repr(key)} is {len(str(value)):,} characters long; "
            f"at most {MAX_METADATA_LENGTH:,} are kept"
        )
    return str(value)


# ------------------------------------------------------------------------------------------------
# activity: requests, instance samples, daily totals
#: The statuses a request row may have (:class:`~llamadash.core.requests_log.RequestStatus`).
REQUEST_STATUSES: tuple[str, ...] = tuple(status.value for status in RequestStatus)
_FLAG_COLUMNS = frozenset({"truncated", "context_shifted"})
_TEXT_COLUMNS = frozenset({"model", "status", "day"})
#: Whole-number readings of a gauge that may come as floats (``/metrics``): rounded, not refused.
_GAUGE_COLUMNS = frozenset({"busy_slots", "total_slots", "requests_processing", "requests_deferred"})
#: Columns that may be negative (a task id; everything else counts or measures something).
_SIGNED_COLUMNS = frozenset({"task"})
_REQUEST_INPUT_SET = frozenset(REQUEST_INPUT_COLUMNS)
_SAMPLE_INPUT_SET = frozenset(INSTANCE_SAMPLE_INPUT_COLUMNS)
REQUEST_FINISHED_INDEX = REQUEST_INPUT_COLUMNS.index("finished_at")
REQUEST_MODEL_INDEX = REQUEST_INPUT_COLUMNS.index("model")
REQUEST_PROMPT_INDEX = REQUEST_INPUT_COLUMNS.index("prompt_tokens")
REQUEST_GENERATED_INDEX = REQUEST_INPUT_COLUMNS.index("generated_tokens")
SAMPLE_TIMESTAMP_INDEX = INSTANCE_SAMPLE_INPUT_COLUMNS.index("timestamp")


def activity_value(table: str, column: str, value: Any) -> Any:
    """One cell of an activity row, checked: NULL, a number of the column's kind, a flag, or text.

    ``table`` names the row in the message (``"request"``); flags come back as 0 or 1.
    """
    if value is None:
        return None
    # the usual cells first (a count as an int, a time or speed as a float): one type test each
    kind = type(value)
    if kind is int and column in _PLAIN_INTEGER_COLUMNS and 0 <= value <= _INT64_MAX:
        return value
    if kind is float and column in _PLAIN_REAL_COLUMNS and 0.0 <= value < math.inf:
        return value
    return _activity_value_checked(table, column, value)


def _activity_value_checked(table: str, column: str, value: Any) -> Any:
    if column in _FLAG_COLUMNS:
        if isinstance(value, bool):
            return int(value)
        if type(value) is int and value in (0, 1):
            return value
        raise DatabaseError(f"{table} {column} must be true, false or None, got {short_repr(value)}")
    if column == "status":
        if value not in REQUEST_STATUSES:
            raise DatabaseError(
                f"{table} status must be one of {', '.join(REQUEST_STATUSES)}, got {short_repr(value)}"
            )
        return str(value)
    if column in _TEXT_COLUMNS:
        if column == "day":
            if not isinstance(value, str) or not is_day(value):
                raise DatabaseError(f"{table} day must be a date YYYY-MM-DD, got {short_repr(value)}")
            return value
        text = value.strip() if isinstance(value, str) else ""
        if not text or len(text) > MAX_NAME_LENGTH:
            raise DatabaseError(
                f"{table} {column} must be a model's name (text of 1 to {MAX_NAME_LENGTH} "
                f"characters), got {short_repr(value)}"
            )
        return text
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DatabaseError(f"{table} {column} must be a number or None, got {short_repr(value)}")
    if column in ACTIVITY_INTEGER_COLUMNS:
        if isinstance(value, float):
            if math.isnan(value):
                return None
            if column in _GAUGE_COLUMNS and math.isfinite(value):
                value = round(value)  # a gauge read as a float (Prometheus), as metrics rounds it
            elif not value.is_integer():
                raise DatabaseError(f"{table} {column} must be a whole number, got {short_repr(value)}")
        number: int | float = value if isinstance(value, int) else int(float(value))
        if not _INT64_MIN <= number <= _INT64_MAX:
            raise DatabaseError(f"{table} {column} is too large to store, got {short_repr(value)}")
    else:
        number = float(value)
        if math.isnan(number):  # SQLite has no NaN; it is a figure that is not known
            return None
        if not math.isfinite(number):
            raise DatabaseError(f"{table} {column} must be finite, got {short_repr(value)}")
    if number < 0 and column not in _SIGNED_COLUMNS:
        raise DatabaseError(f"{table} {column} must not be negative, got {short_repr(value)}")
    return number


_ACTIVITY_COLUMNS = frozenset(REQUEST_INPUT_COLUMNS) | frozenset(INSTANCE_SAMPLE_INPUT_COLUMNS)
_PLAIN_INTEGER_COLUMNS = frozenset(c for c in _ACTIVITY_COLUMNS if c in ACTIVITY_INTEGER_COLUMNS) | {
    "requests",
    "prompt_tokens",
    "generated_tokens",
}
_PLAIN_REAL_COLUMNS = _ACTIVITY_COLUMNS - ACTIVITY_INTEGER_COLUMNS - _FLAG_COLUMNS - _TEXT_COLUMNS


_DAY = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")


def is_day(text: str) -> bool:
    """Whether ``text`` is a date written ``YYYY-MM-DD`` (a day that exists).

    Not ``time.strptime``: its first call imports ``_strptime`` and reads the locale's names of
    days and months, ~14 ms when the Activity tab is first shown.
    """
    match = _DAY.fullmatch(text)
    if match is None:
        return False
    try:
        datetime.date(*map(int, match.groups()))
    except ValueError:
        return False
    return True


def _activity_row(
    table: str, data: Any, columns: tuple[str, ...], allowed: frozenset[str], time_column: str
) -> list[Any]:
    if not isinstance(data, Mapping):
        raise DatabaseError(f"a {table} row must be given as a dict, got {type(data).__name__}")
    if not allowed.issuperset(data):
        unknown = sorted(str(key) for key in data if key not in allowed)
        raise DatabaseError(f"unknown {table} key(s): {', '.join(unknown)}; known keys: {', '.join(columns)}")
    get = data.get
    row = [activity_value(table, column, get(column)) for column in columns]
    index = columns.index(time_column)
    if row[index] is None:
        row[index] = connection.now_ms()
    if row[columns.index("model")] is None:
        raise DatabaseError(f"a {table} row needs its model (the model's name)")
    return row


def request_row(data: Mapping[str, Any] | RequestRecord) -> list[Any]:
    """The row to insert for a request (in :data:`REQUEST_INPUT_COLUMNS` order), checked.

    ``finished_at`` defaults to now; ``model`` and ``status`` are required. A missing figure is
    NULL (a NaN too); counts are whole numbers >= 0, times and speeds finite numbers >= 0. A
    :class:`~llamadash.core.requests_log.RequestRecord` is taken as :func:`requests_row` makes it.
    """
    if isinstance(data, RequestRecord):
        data = requests_row(data)
    row = _activity_row("request", data, REQUEST_INPUT_COLUMNS, _REQUEST_INPUT_SET, "finished_at")
    if row[REQUEST_INPUT_COLUMNS.index("status")] is None:
        raise DatabaseError(f"a request row needs its status ({', '.join(REQUEST_STATUSES)})")
    return row


def instance_sample_row(data: Mapping[str, Any]) -> list[Any]:
    """The row to insert for an instance sample (:data:`INSTANCE_SAMPLE_INPUT_COLUMNS` order), checked.

    ``timestamp`` defaults to now; ``model`` is required; a missing reading is NULL.
    """
    return _activity_row(
        "instance sample", data, INSTANCE_SAMPLE_INPUT_COLUMNS, _SAMPLE_INPUT_SET, "timestamp"
    )


def daily_total_row(data: Mapping[str, Any]) -> list[Any]:
    """A ``daily_totals`` row (:data:`DAILY_TOTAL_COLUMNS` order), checked: an imported file's."""
    row = [activity_value("daily total", column, data.get(column)) for column in DAILY_TOTAL_COLUMNS]
    for column, value in zip(DAILY_TOTAL_COLUMNS, row, strict=True):
        if value is None and column in ("day", "model"):
            raise DatabaseError(f"a daily total needs its {column}")
    return [0 if value is None else value for value in row]


def local_day(ms: int) -> str:
    """The local date (``YYYY-MM-DD``) of a Unix time in milliseconds: a daily total's day."""
    return time.strftime("%Y-%m-%d", time.localtime(ms / 1000))


def requests_row(record: RequestRecord) -> dict[str, Any]:
    """A :class:`~llamadash.core.requests_log.RequestRecord` as the row ``save_requests`` takes.

    The fields the table has no column for (the log's own clock, child tasks, speculative
    decoding) are left out; what the log did not tell stays None.
    """
    return {
        "finished_at": record.finished_at_ms,
        "started_at": record.started_at_ms,
        "model": record.model,
        "slot": record.slot,
        "task": record.task,
        "status": str(record.status),
        "prompt_tokens": record.prompt_tokens,
        "cached_tokens": record.cached_tokens,
        "prompt_ms": record.prompt_ms,
        "prompt_tps": record.prompt_tps,
        "generated_tokens": record.generated_tokens,
        "generation_ms": record.generation_ms,
        "generation_tps": record.generation_tps,
        "total_ms": record.total_ms,
        "context_tokens": record.context_tokens,
        "truncated": record.truncated,
        "context_shifted": record.context_shifted,
    }
