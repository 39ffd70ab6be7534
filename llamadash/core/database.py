"""The database API (see :mod:`llamadash.core.db`, where it lives): the seed's functions, snake_case.

::

    from llamadash.core import database

    database.init_database()                      # the data directory's llama-dashboard.db
    database.save_metrics({"cpu_usage": 75.5, "gpu_temperature": 72})
    history = database.get_metrics_history(10)    # list of dicts, oldest first
    model_id = database.save_model({"name": "llama-3-8b", "type": "llama", "status": "stopped",
                                    "ctx_size": 8192, "custom_params": {"--some-flag": "x"}})
    database.update_model(model_id, {"status": "running"})
    database.close_database()
"""

from llamadash.core.db import (
    METRICS_RETENTION_MINUTES,
    MODEL_STATUSES,
    SCHEMA_VERSION,
    DatabaseError,
    DatabaseFileError,
    DatabaseNotOpenError,
    ImportFileError,
    SchemaVersionError,
    close_database,
    count_rows,
    delete_all_models,
    delete_metadata,
    delete_model,
    export_database,
    get_database_path,
    get_database_size,
    get_db_version,
    get_metadata,
    get_metrics_history,
    get_model,
    get_model_by_name,
    get_models,
    import_database,
    init_database,
    inspect_database_file,
    is_open,
    release_connection,
    save_metrics,
    save_model,
    set_metadata,
    update_model,
    vacuum_database,
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
    "release_connection",
    "save_metrics",
    "save_model",
    "set_metadata",
    "update_model",
    "vacuum_database",
]
