"""Import pyqtgraph without making every Qt class at once.

pyqtgraph keeps its own mirrors of ``QtCore``, ``QtGui`` and ``QtWidgets`` (``pyqtgraph.Qt.QtCore``
and so on, empty modules it fills). Its ``pyqtgraph.Qt`` fills them at import by copying every name
of PySide6's modules: ``getattr`` on all ~720 of them. PySide6 makes its classes (and their enums)
lazily, when first asked for, so that copy makes every one of them: measured on a 2-core machine,
150-250 ms of the ~600 ms a bare PySide6 + pyqtgraph window takes to import, for classes llamadash
never uses (``benchmarks/bench_startup.py``).

:func:`import_pyqtgraph` imports pyqtgraph with its mirrors forwarding instead: each mirror gets a
module ``__getattr__`` (PEP 562) that fetches PySide6's object when a name is first asked for and
keeps it in the mirror (later uses are plain lookups, as with the copy), and a ``__dir__`` that
lists PySide6's names too, while PySide6's modules list no names to the copy (their
``__dir__`` is swapped for the length of the import only, then put back). pyqtgraph's own
additions to its mirrors are kept as it makes them. What pyqtgraph (and anything using its
mirrors) gets for a name is the same object as before; only when it is made changes.

Where pyqtgraph fails to import so (another pyqtgraph, say), the half-imported modules are dropped
and it is imported the usual way: slower, nothing else changes. Where pyqtgraph was already
imported, nothing is done.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import logging
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

_log = logging.getLogger(__name__)

#: pyqtgraph's mirror modules and the PySide6 modules they mirror.
MIRRORS = {
    "pyqtgraph.Qt.QtCore": "PySide6.QtCore",
    "pyqtgraph.Qt.QtGui": "PySide6.QtGui",
    "pyqtgraph.Qt.QtWidgets": "PySide6.QtWidgets",
}

#: Set on a mirror module that forwards (what the tests and :func:`is_forwarding` look for).
FORWARDS_TO = "__llamadash_forwards_to__"


def _forward(module: ModuleType, source: ModuleType) -> None:
    """Give ``module`` a PEP 562 ``__getattr__``/``__dir__`` that answer from ``source``."""

    def __getattr__(name: str) -> Any:
        try:
            value = getattr(source, name)
        except AttributeError:
            raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}") from None
        setattr(module, name, value)  # kept, as the copy did: the next use is a plain lookup
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(module)) | set(dir(source)))

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    module.__dir__ = __dir__  # type: ignore[method-assign]
    setattr(module, FORWARDS_TO, source.__name__)


class _ForwardingLoader(importlib.abc.Loader):
    """The mirror's own loader, then :func:`_forward` (before ``pyqtgraph.Qt`` fills it)."""

    def __init__(self, loader: importlib.abc.Loader, source: str) -> None:
        self._loader = loader
        self._source = source

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _forward(module, importlib.import_module(self._source))


class _MirrorFinder(importlib.abc.MetaPathFinder):
    """Finds the mirrors as the usual path finder does, with :class:`_ForwardingLoader`."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = MIRRORS.get(fullname)
        if source is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _ForwardingLoader(spec.loader, source)
        return spec


def is_forwarding() -> bool:
    """Whether the imported pyqtgraph's mirrors forward to PySide6 (see :func:`import_pyqtgraph`)."""
    return all(getattr(sys.modules.get(name), FORWARDS_TO, None) == src for name, src in MIRRORS.items())


def _drop_pyqtgraph() -> None:
    for name in [n for n in sys.modules if n == "pyqtgraph" or n.startswith("pyqtgraph.")]:
        del sys.modules[name]


def import_pyqtgraph() -> ModuleType:
    """pyqtgraph, imported with forwarding mirrors when it is not imported yet (see the module)."""
    if "pyqtgraph" in sys.modules:
        return sys.modules["pyqtgraph"]
    import PySide6.QtCore
    import PySide6.QtGui
    import PySide6.QtWidgets

    sources = (PySide6.QtCore, PySide6.QtGui, PySide6.QtWidgets)
    missing = object()
    saved = [vars(source).get("__dir__", missing) for source in sources]
    finder = _MirrorFinder()
    sys.meta_path.insert(0, finder)
    for source in sources:
        source.__dir__ = list  # type: ignore[method-assign]  # nothing for pyqtgraph.Qt to copy
    try:
        import pyqtgraph
    except Exception as exc:  # another pyqtgraph: import it the usual way below
        _log.debug("pyqtgraph with forwarding mirrors failed (%s): importing it as usual", exc)
        pyqtgraph = None
    finally:
        sys.meta_path.remove(finder)
        for source, before in zip(sources, saved, strict=True):
            if before is missing:
                del source.__dir__
            else:
                source.__dir__ = before  # type: ignore[method-assign]
    if pyqtgraph is None or not is_forwarding():
        _drop_pyqtgraph()
        import pyqtgraph
    return pyqtgraph
