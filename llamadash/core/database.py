"""The database API (see :mod:`llamadash.core.db`, where it lives): the seed's functions, snake_case.

::

    from llamadash.core import database

    database.init_database()                      # the data directory's llama-dashboard.db
    database.save_metrics({"cpu_usage": 75.5, "gpu_temperature": 72})
    history = database.get_metrics_history(10)    # list of dicts, oldest first
    model_id = database.save_model({"name": "llama-3-8b", "type": "llama", "status": "stopped",
                                    "ctx_size": 8192, "custom_params": {"--some-flag": "x"}})
    database.update_model(model_id, {"status": "running"})
    database.set_retention_minutes(30)            # keep 30 minutes of metrics; stays open
    database.close_database()
"""

# The star import alone re-exports llamadash.core.db's __all__; importing that __all__ here as well
# would hide the functions from mypy's check that this module is a settings MetadataStore.
from llamadash.core.db import *  # noqa: F403 - the public face of llamadash.core.db
