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

from llamadash.core.db import *  # noqa: F403 - the public face of llamadash.core.db
from llamadash.core.db import __all__  # noqa: F401 - re-exported
