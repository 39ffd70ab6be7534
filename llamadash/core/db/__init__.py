"""The database layer (Peewee on SQLite): the seed's three tables and its API, in snake_case.

Import the API from here or from :mod:`llamadash.core.database` (the same names).
"""

from llamadash.core.db.api import (
    METRICS_RETENTION_MINUTES,
    close_database,
    count_rows,
    delete_all_models,
    delete_metadata,
    delete_model,
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
    set_metadata,
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
from llamadash.core.db.models import MODEL_STATUSES, SCHEMA_VERSION
from llamadash.core.db.transfer import (
    export_database,
    import_database,
    inspect_database_file,
    read_database_models,
)

__all__ = [
    "METRICS_RETENTION_MINUTES",
    "MODEL_STATUSES",
    "SCHEMA_VERSION",
    "DatabaseError",
    "DatabaseFileError",
    "DatabaseNotOpenError",
    "ImportFileError",
    "SchemaVersionError",
    "close_database",
    "count_rows",
    "delete_all_models",
    "delete_metadata",
    "delete_model",
    "export_database",
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
    "set_metadata",
    "update_model",
    "vacuum_database",
]
