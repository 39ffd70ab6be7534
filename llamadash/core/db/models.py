"""Peewee models of the seed's three tables (``metrics_history``, ``models``, ``metadata``), the activity tables and ``workers``.

The activity tables (version 4) record what the servers did: ``requests`` (one row per request a
llama-server finished or aborted, from its log), ``instance_samples`` (each running instance's
live figures at the sampling interval) and ``daily_totals`` (requests and tokens per model and
local day, kept a year). A figure that was not known is ``NULL``, never 0.

The ``models`` table has one column per llama-server parameter; those columns are generated from the
parameter schema (:func:`llamadash.core.params.load_schema`), never written by hand: each keeps the
row's seed SQL type, is nullable (``NULL`` = not set, llama-server's default) and converts with
:meth:`Param.to_db` / :meth:`Param.from_db`. A parameter added to ``schema.toml`` therefore becomes a
column, and :mod:`llamadash.core.db.migrations` adds it to existing databases. After them come
``custom_params`` and the per-model settings llamadash keeps itself (:data:`AUTO_RESTART_COLUMN`).

The models are bound to :data:`database_proxy`, which stays unset: each
:class:`~llamadash.core.db.store.Database` runs its queries on its own Peewee database (passed to
``execute``), so that two open databases never share one binding.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import peewee
from playhouse.sqlite_ext import AutoIncrementField

from llamadash.core.params import META_COLUMNS, Param, load_schema
from llamadash.core.remote import REMOTE_URL
from llamadash.core.states import MODEL_STATUSES  # noqa: F401 - the statuses a model may have, re-exported

log = logging.getLogger(__name__)

#: The schema version this llamadash writes into ``metadata.db_version``. Version 1 is the seed's
#: own design; version 2 adds the unique model-name index and the per-parameter column contract;
#: version 3 moves per-model auto-restart from the metadata key ``autorestart:<name>`` to the
#: model's own row (:data:`AUTO_RESTART_COLUMN`); version 4 adds the activity tables
#: (``requests``, ``instance_samples``, ``daily_totals``); version 5 adds ``workers`` (llama.cpp RPC
#: workers: local ``ggml-rpc-server`` processes and remote ones registered by ``host:port``),
#: ``bench_results`` (what ``llama-bench`` measured for a model's configuration),
#: ``models.remote_url`` (remote llama-servers, :mod:`llamadash.core.remote`) and the router's
#: per-model columns (:data:`SERVED_COLUMN`, :data:`LOAD_ON_STARTUP_COLUMN`, :data:`STOP_TIMEOUT_COLUMN`).
SCHEMA_VERSION = 5
#: The version of a database that has our tables but no ``db_version`` row (the seed's design).
SEED_SCHEMA_VERSION = 1

#: Pragmas applied to every connection.
PRAGMAS: tuple[tuple[str, Any], ...] = (
    ("journal_mode", "wal"),
    ("synchronous", "NORMAL"),
)
#: Pragmas that prepare a new, empty database file, in this order: ``auto_vacuum`` only takes
#: effect before the first table exists and before WAL mode writes the file header, and setting it
#: on an existing database rewrites page 1 (so it is not a per-connection pragma).
NEW_DATABASE_PRAGMAS: tuple[tuple[str, Any], ...] = (
    ("auto_vacuum", "INCREMENTAL"),
    ("journal_mode", "wal"),
)


database_proxy = peewee.DatabaseProxy()


class BaseModel(peewee.Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class ParamField(peewee.Field):
    """A ``models`` column for one llama-server parameter (nullable, the seed's SQL type).

    What is read back is checked as user input is (:meth:`Param.from_db`): a value another
    program stored that does not fit (``port = 'abc'``) reads as an
    :class:`~llamadash.core.params.schema.InvalidStoredValue`, which shows as the stored text and
    which validation refuses with the column named; reading the row never fails on it.
    """

    def __init__(self, param: Param, **kwargs: Any):
        self.param = param
        self.field_type = param.sql_type  # type: ignore[misc]  # per instance: the row's SQL type
        super().__init__(null=True, column_name=param.column, **kwargs)

    def db_value(self, value: Any) -> Any:
        return self.param.to_db(value)

    def python_value(self, value: Any) -> Any:
        return self.param.from_db(value)


class CustomParamsField(peewee.TextField):
    """Extra llama-server arguments as JSON text: a ``{"--flag": value}`` dict or a list of argv strings.

    ``NULL`` (nothing stored) reads back as ``{}``. Text that is not a JSON object or array (only a
    foreign writer can produce it) also reads as ``{}`` and is logged; the row is not changed.
    """

    def db_value(self, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False, allow_nan=False)

    def python_value(self, value: Any) -> Any:
        if value is None:
            return {}
        try:
            decoded = json.loads(value)
        except (TypeError, ValueError):
            log.warning("custom_params holds text that is not JSON; read as {}: %.80r", value)
            return {}
        if not isinstance(decoded, (dict, list)):
            log.warning("custom_params holds JSON that is neither an object nor a list; read as {}")
            return {}
        return decoded


class FlagField(peewee.BooleanField):
    """An on/off column; ``NULL`` (a row from before the column existed) reads as off, None writes off."""

    def db_value(self, value: Any) -> bool:
        return bool(value)  # None: off (the column is NOT NULL)

    def python_value(self, value: Any) -> bool:
        return bool(value)


class ServedField(FlagField):
    """An on/off column that is on by default: ``NULL`` (a row from before the column) reads as on."""

    def db_value(self, value: Any) -> bool:
        return True if value is None else bool(value)

    def python_value(self, value: Any) -> bool:
        return True if value is None else bool(value)


#: The ``models`` column that says whether llamadash restarts the model's server after a crash:
#: llamadash's own per-model setting (not a llama-server parameter), off by default, kept with the
#: row so that a renamed model keeps it and a new model given an old name does not inherit it.
AUTO_RESTART_COLUMN = "auto_restart"
#: The ``models`` column of a remote entry: the base URL of a llama-server another machine runs
#: (``NULL`` for a local model); see :mod:`llamadash.core.remote`.
REMOTE_URL_COLUMN = REMOTE_URL
#: The per-model settings of the library router (:mod:`llamadash.core.router`): whether the router
#: serves the model (on by default), loads it when it starts (off), and how many seconds it waits
#: for the model's process to stop before killing it (``NULL``: llama-server's default, 10 s).
SERVED_COLUMN = "served"
LOAD_ON_STARTUP_COLUMN = "load_on_startup"
STOP_TIMEOUT_COLUMN = "stop_timeout_s"
#: The longest stop timeout a model may have, in seconds (an hour).
MAX_STOP_TIMEOUT_S = 3600


class MetricsHistory(BaseModel):
    """One metrics sample; a missing reading is ``NULL``, never 0."""

    id = peewee.AutoField()
    timestamp = peewee.IntegerField(null=True)  # Unix ms of the sample
    cpu_usage = peewee.FloatField(null=True)  # percent 0-100
    memory_usage = peewee.FloatField(null=True)  # percent 0-100
    disk_usage = peewee.FloatField(null=True)  # percent 0-100
    gpu_usage = peewee.FloatField(null=True)  # percent 0-100
    gpu_temperature = peewee.FloatField(null=True)  # degrees C
    gpu_memory_used = peewee.FloatField(null=True)  # MB
    gpu_memory_total = peewee.FloatField(null=True)  # MB
    gpu_power_usage = peewee.FloatField(null=True)  # W
    active_models = peewee.IntegerField(null=True)
    uptime = peewee.IntegerField(null=True)  # seconds
    requests_per_minute = peewee.FloatField(null=True)
    created_at = peewee.IntegerField(null=True)  # Unix ms when the row was written

    class Meta:
        table_name = "metrics_history"


MetricsHistory.add_index(MetricsHistory.timestamp, name="idx_metrics_timestamp")
MetricsHistory.add_index(MetricsHistory.created_at, name="idx_metrics_created_at")


class ModelConfig(BaseModel):
    """A saved model configuration (the ``models`` table).

    The identity columns are declared here; one column per llama-server parameter and then
    ``custom_params`` are added below from the schema.
    """

    id = AutoIncrementField()
    name = peewee.TextField()
    type = peewee.TextField()
    status = peewee.TextField()  # one of MODEL_STATUSES
    created_at = peewee.IntegerField(null=True)  # Unix ms
    updated_at = peewee.IntegerField(null=True)  # Unix ms

    class Meta:
        table_name = "models"


def _add_parameter_columns() -> None:
    meta = ModelConfig._meta
    for param in load_schema():
        if param.column in meta.fields or param.column in META_COLUMNS:
            raise RuntimeError(f"parameter column {param.column!r} clashes with a models meta column")
        meta.add_field(param.column, ParamField(param))
    meta.add_field("custom_params", CustomParamsField(null=True))
    # DEFAULT 0 in the table too: another program's INSERT that names only the seed's columns works.
    meta.add_field(AUTO_RESTART_COLUMN, FlagField(default=False, constraints=[peewee.SQL("DEFAULT 0")]))
    meta.add_field(REMOTE_URL_COLUMN, peewee.TextField(null=True))
    meta.add_field(SERVED_COLUMN, ServedField(default=True, constraints=[peewee.SQL("DEFAULT 1")]))
    meta.add_field(LOAD_ON_STARTUP_COLUMN, FlagField(default=False, constraints=[peewee.SQL("DEFAULT 0")]))
    meta.add_field(STOP_TIMEOUT_COLUMN, peewee.IntegerField(null=True))


_add_parameter_columns()
ModelConfig.add_index(ModelConfig.name, unique=True, name="idx_models_name")
ModelConfig.add_index(ModelConfig.status, name="idx_models_status")
ModelConfig.add_index(ModelConfig.type, name="idx_models_type")
ModelConfig.add_index(ModelConfig.created_at, name="idx_models_created")


class Metadata(BaseModel):
    """Global key/value state (``db_version``, ``server_start_time``, ``last_metrics_save``, ...)."""

    key = peewee.TextField(primary_key=True)
    value = peewee.TextField()
    updated_at = peewee.IntegerField(null=True)  # Unix ms

    class Meta:
        table_name = "metadata"


class RequestRow(BaseModel):
    """One request a llama-server ran (a task on a slot), as its log told it; times are Unix ms.

    ``status`` is a :class:`~llamadash.core.requests_log.RequestStatus` value. ``prompt_tokens``
    are the prompt tokens evaluated, ``cached_tokens`` those reused from the cache.
    """

    id = peewee.AutoField()
    finished_at = peewee.IntegerField()  # Unix ms when the request ended
    started_at = peewee.IntegerField(null=True)  # Unix ms
    model = peewee.TextField()
    slot = peewee.IntegerField(null=True)
    task = peewee.IntegerField(null=True)
    status = peewee.TextField()  # finished | aborted | incomplete
    prompt_tokens = peewee.IntegerField(null=True)
    cached_tokens = peewee.IntegerField(null=True)
    prompt_ms = peewee.FloatField(null=True)
    prompt_tps = peewee.FloatField(null=True)
    generated_tokens = peewee.IntegerField(null=True)
    generation_ms = peewee.FloatField(null=True)
    generation_tps = peewee.FloatField(null=True)
    total_ms = peewee.FloatField(null=True)
    context_tokens = peewee.IntegerField(null=True)
    truncated = peewee.BooleanField(null=True)
    context_shifted = peewee.BooleanField(null=True)

    class Meta:
        table_name = "requests"


RequestRow.add_index(RequestRow.finished_at, name="idx_requests_finished_at")
RequestRow.add_index(RequestRow.model, RequestRow.finished_at, name="idx_requests_model_finished_at")


class InstanceSample(BaseModel):
    """One running instance's live figures at one sampling tick; kept as long as ``metrics_history``."""

    id = peewee.AutoField()
    timestamp = peewee.IntegerField()  # Unix ms of the sample
    model = peewee.TextField()
    tokens_per_second = peewee.FloatField(null=True)
    prompt_tokens_per_second = peewee.FloatField(null=True)
    busy_slots = peewee.IntegerField(null=True)
    total_slots = peewee.IntegerField(null=True)
    requests_processing = peewee.IntegerField(null=True)
    requests_deferred = peewee.IntegerField(null=True)
    cpu_percent = peewee.FloatField(null=True)  # the server process's CPU, percent of one core
    memory_mb = peewee.FloatField(null=True)  # the server process's resident memory
    vram_mb = peewee.FloatField(null=True)

    class Meta:
        table_name = "instance_samples"


InstanceSample.add_index(InstanceSample.timestamp, name="idx_instance_samples_timestamp")


class DailyTotal(BaseModel):
    """Requests and tokens of one model on one local day (``YYYY-MM-DD``); kept a year."""

    day = peewee.TextField()
    model = peewee.TextField()
    requests = peewee.IntegerField(default=0)
    prompt_tokens = peewee.IntegerField(default=0)
    generated_tokens = peewee.IntegerField(default=0)

    class Meta:
        table_name = "daily_totals"
        primary_key = peewee.CompositeKey("day", "model")


class WorkerRow(BaseModel):
    """One llama.cpp RPC worker (see :mod:`llamadash.core.workers`): a local ``ggml-rpc-server`` that
    llamadash starts (``kind = 'local'``) or one another machine runs (``kind = 'remote'``).

    ``devices`` is the comma-separated ``--device`` list (``NULL``: the worker's default, every
    device); ``threads`` ``NULL`` is the worker's default. ``open_network`` records that the user
    confirmed binding a local worker to an address other machines can reach.
    """

    id = peewee.AutoField()
    name = peewee.TextField()
    kind = peewee.TextField()  # local | remote
    host = peewee.TextField()
    port = peewee.IntegerField()
    devices = peewee.TextField(null=True)
    threads = peewee.IntegerField(null=True)
    cache = FlagField(default=False, constraints=[peewee.SQL("DEFAULT 0")])
    open_network = FlagField(default=False, constraints=[peewee.SQL("DEFAULT 0")])
    created_at = peewee.IntegerField(null=True)  # Unix ms
    updated_at = peewee.IntegerField(null=True)  # Unix ms

    class Meta:
        table_name = "workers"


WorkerRow.add_index(WorkerRow.name, unique=True, name="idx_workers_name")


class BenchResultRow(BaseModel):
    """One ``llama-bench`` run of a model's configuration (version 5); tokens/s as llama-bench printed.

    ``params`` is the JSON of the parameters it ran with (column -> value; never the model's
    path), ``config_hash`` their fingerprint, ``build`` the llama.cpp build, ``machine`` the CPU
    and GPU llama-bench named. A test that was not run (``--pp 0``) is ``NULL``, never 0. This
    computer's measurements: an import does not bring another computer's.
    """

    id = peewee.AutoField()
    created_at = peewee.IntegerField()  # Unix ms when the run finished
    model = peewee.TextField()
    config_hash = peewee.TextField()
    params = peewee.TextField()  # JSON object
    build = peewee.TextField(null=True)
    machine = peewee.TextField(null=True)
    pp_tokens = peewee.IntegerField(null=True)
    tg_tokens = peewee.IntegerField(null=True)
    repetitions = peewee.IntegerField(null=True)
    pp_tps_mean = peewee.FloatField(null=True)
    pp_tps_sd = peewee.FloatField(null=True)
    tg_tps_mean = peewee.FloatField(null=True)
    tg_tps_sd = peewee.FloatField(null=True)
    duration_s = peewee.FloatField(null=True)  # wall time of the run
    sweep = peewee.TextField(null=True)  # the sweep's id when the run was part of one

    class Meta:
        table_name = "bench_results"


BenchResultRow.add_index(BenchResultRow.model, BenchResultRow.created_at, name="idx_bench_results_model")

#: The tables added by version 4.
ACTIVITY_MODELS: tuple[type[BaseModel], ...] = (RequestRow, InstanceSample, DailyTotal)
ALL_MODELS: tuple[type[BaseModel], ...] = (
    MetricsHistory,
    ModelConfig,
    Metadata,
    *ACTIVITY_MODELS,
    WorkerRow,
    BenchResultRow,
)
TABLE_NAMES: tuple[str, ...] = tuple(m._meta.table_name for m in ALL_MODELS)

METRICS_COLUMNS: tuple[str, ...] = tuple(f.column_name for f in MetricsHistory._meta.sorted_fields)
#: Columns a caller may give to ``save_metrics`` (everything but the id).
METRICS_INPUT_COLUMNS: tuple[str, ...] = tuple(c for c in METRICS_COLUMNS if c != "id")
#: Metrics columns stored as whole numbers.
METRICS_INTEGER_COLUMNS: frozenset[str] = frozenset(
    f.column_name
    for f in MetricsHistory._meta.sorted_fields
    if isinstance(f, peewee.IntegerField) and f.column_name != "id"
)

MODEL_COLUMNS: tuple[str, ...] = tuple(f.column_name for f in ModelConfig._meta.sorted_fields)
PARAM_FIELDS: dict[str, ParamField] = {
    f.column_name: f for f in ModelConfig._meta.sorted_fields if isinstance(f, ParamField)
}

REQUEST_COLUMNS: tuple[str, ...] = tuple(f.column_name for f in RequestRow._meta.sorted_fields)
#: Columns a caller may give to ``save_requests`` (everything but the id).
REQUEST_INPUT_COLUMNS: tuple[str, ...] = tuple(c for c in REQUEST_COLUMNS if c != "id")
INSTANCE_SAMPLE_COLUMNS: tuple[str, ...] = tuple(f.column_name for f in InstanceSample._meta.sorted_fields)
#: Columns a caller may give to ``save_instance_samples`` (everything but the id).
INSTANCE_SAMPLE_INPUT_COLUMNS: tuple[str, ...] = tuple(c for c in INSTANCE_SAMPLE_COLUMNS if c != "id")
DAILY_TOTAL_COLUMNS: tuple[str, ...] = tuple(f.column_name for f in DailyTotal._meta.sorted_fields)
#: Whole-number columns of the activity tables (the others are REAL, TEXT or on/off).
ACTIVITY_INTEGER_COLUMNS: frozenset[str] = frozenset(
    f.column_name
    for model in ACTIVITY_MODELS
    for f in model._meta.sorted_fields
    if isinstance(f, peewee.IntegerField) and not isinstance(f, peewee.BooleanField)
)

#: Columns an existing table must already have for the file to count as ours (they cannot be added
#: later: a primary key, or what identifies the table's rows).
REQUIRED_COLUMNS: dict[str, frozenset[str]] = {
    "metrics_history": frozenset({"id", "timestamp"}),
    "models": frozenset({"id", "name"}),
    "metadata": frozenset({"key", "value"}),
    "requests": frozenset({"id"}),
    "instance_samples": frozenset({"id"}),
    "daily_totals": frozenset({"day", "model"}),
    "workers": frozenset({"id", "name"}),
    "bench_results": frozenset({"id"}),
}
#: Tables that identify a file as a llamadash (or seed) database.
IDENTITY_TABLES = ("models", "metrics_history")
