"""The database layer (Peewee on SQLite): the seed's three tables and its API, in snake_case.

Import the API from here or from :mod:`llamadash.core.database` (the same names). The functions
work on the current :class:`Database` (:func:`current`), the object that owns the open file.

The parts: :mod:`~llamadash.core.db.models` (tables), :mod:`~llamadash.core.db.probe` (recognising
files), :mod:`~llamadash.core.db.migrations` (upgrading them), :mod:`~llamadash.core.db.connection` (connections, failures in
words), :mod:`~llamadash.core.db.checks` (what callers give), :mod:`~llamadash.core.db.store`
(:class:`Database`), :mod:`~llamadash.core.db.api` (the seed's functions) and
:mod:`~llamadash.core.db.transfer` (export and import).
"""

from llamadash.core.db.api import (
    METRICS_RETENTION_MINUTES,
    Database,
    close_database,
    count_rows,
    current,
    delete_all_models,
    delete_metadata,
    delete_model,
    get_auto_restart,
    get_database_path,
    get_database_size,
    get_db_version,
    get_metadata,
    get_metrics_history,
    get_model,
    get_model_by_name,
    get_models,
    init_database,
    is_open,
    release_connection,
    save_metrics,
    save_model,
    save_models,
    set_auto_restart,
    set_metadata,
    set_retention_minutes,
    transaction,
    update_model,
    vacuum_database,
)
from llamadash.core.db.errors import (
    DatabaseError,
    DatabaseFileError,
    DatabaseNotOpenError,
    ImportFileError,
    SchemaVersionError,
)
from llamadash.core.db.migrations import AUTORESTART_KEY_PREFIX
from llamadash.core.db.models import AUTO_RESTART_COLUMN, SCHEMA_VERSION
from llamadash.core.states import MODEL_STATUSES
from llamadash.core.db.transfer import (
    export_database,
    import_database,
    inspect_database_file,
    read_database_models,
)

__all__ = [
    "AUTORESTART_KEY_PREFIX",
    "AUTO_RESTART_COLUMN",
    "METRICS_RETENTION_MINUTES",
    "MODEL_STATUSES",
    "SCHEMA_VERSION",
    "Database",
    "DatabaseError",
    "DatabaseFileError",
    "DatabaseNotOpenError",
    "ImportFileError",
    "SchemaVersionError",
    "close_database",
    "count_rows",
    "current",
    "delete_all_models",
    "delete_metadata",
    "delete_model",
    "export_database",
    "get_auto_restart",
    "get_database_path",
    "get_database_size",
    "get_db_version",
    "get_metadata",
    "get_metrics_history",
    "get_model",
    "get_model_by_name",
    "get_models",
    "import_database",
    "init_database",
    "inspect_database_file",
    "is_open",
    "read_database_models",
    "release_connection",
    "save_metrics",
    "save_model",
    "save_models",
    "set_auto_restart",
    "set_metadata",
    "set_retention_minutes",
    "transaction",
    "update_model",
    "vacuum_database",
]
