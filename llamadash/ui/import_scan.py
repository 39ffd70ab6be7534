"""Spare PySide6 a read of every module's source at import.

Once PySide6 is imported, each module imported after it passes through shiboken's
``shibokensupport.feature.feature_imported``, which reads the module's whole source
(``inspect.getsource``, kept in ``linecache`` for the life of the process) to see whether it says
"PySide6": whether ``from __feature__ import snake_case`` could apply to it. llamadash selects no
feature, so for the packages it imports after Qt the answer is known beforehand:

- its own modules: "uses PySide6, no feature" (select id 0, what the scan gives a Qt module);
- pyqtgraph, numpy, peewee, psutil and the rest of :data:`FEATURELESS`: "ignore" (-1), what the scan
  gives nearly all of their modules (a module that says "PySide6" would get 0 instead: the same in a
  process where no module selects a feature, as in llamadash).

Measured on a 2-core machine (``benchmarks/bench_startup.py``, ``-X importtime``): the reads took
~25 % of the window's start and ~15 MB of resident memory (the cached lines).
"""

from __future__ import annotations

import linecache
import sys
from types import ModuleType
from typing import Any

#: llamadash's own package: uses PySide6, selects no feature.
OWN_PACKAGES = frozenset({"llamadash"})
#: Packages llamadash imports after Qt that never select a PySide6 feature.
FEATURELESS = frozenset(
    {"pyqtgraph", "numpy", "peewee", "playhouse", "psutil", "prometheus_client", "pynvml", "gguf"}
)


def skip_source_scan() -> bool:
    """Answer PySide6's "does this module use PySide6?" for the known packages without reading them.

    Call once PySide6 is imported, before the rest. Does nothing (returns False) where PySide6 has no
    such scan (another version): imports are then as slow as before and nothing else changes.
    Idempotent.
    """
    feature = sys.modules.get("shibokensupport.feature")
    scan: Any = getattr(feature, "_mod_uses_pyside", None)
    if feature is None or not callable(scan):
        return False
    if getattr(scan, "llamadash_skips", False):
        return True

    def uses_pyside(module: ModuleType) -> bool:
        name = getattr(module, "__name__", "")
        top = name.partition(".")[0] if isinstance(name, str) else ""
        if top in OWN_PACKAGES:
            return True
        if top in FEATURELESS:
            return False
        return bool(scan(module))

    uses_pyside.llamadash_skips = True  # type: ignore[attr-defined]
    feature._mod_uses_pyside = uses_pyside  # type: ignore[attr-defined]
    return True


def forget_scanned_sources() -> None:
    """Drop the source lines the scans before :func:`skip_source_scan` left in ``linecache``.

    A traceback reads a file again when it needs it; nothing else in llamadash uses the cache.
    """
    linecache.clearcache()
