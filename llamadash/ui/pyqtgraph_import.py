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

It also leaves out, until first asked for, the parts of pyqtgraph that only its ``__init__``
imports (or only other such parts do) and the window's first paint does not use (:data:`DEFERRED`):
the plot item and plot widget (the charts draw their own :class:`~llamadash.ui.charts.TimePlot`),
images, colour maps and their editors, regions of interest, legends and labels, the bar graph, the
tree and table widgets, the image view, the remote view with pyqtgraph's multiprocessing. Measured
on a 2-core machine: pyqtgraph's import loads 52 modules instead of 105 and takes ~125 instead of
~145 ms, and the window is painted 30-38 ms sooner (medians of 8 and 16 launches alternating with
the previous code, ``benchmarks/bench_startup.py``'s window).

During the import each is a placeholder module that exports nothing; afterwards the placeholders are
gone and ``pyqtgraph.NAME`` for one of their names (``pg.PlotWidget``, ``pg.BarGraphItem``) or a
module (``pg.imageview``) imports then the part that has it (a PEP 562 ``__getattr__`` on the
package: the part named as the name first, then the others in turn until one has it);
``import pyqtgraph.imageview`` imports it as usual. Should any other module of pyqtgraph have kept a
placeholder (a pyqtgraph whose other modules import them), the import counts as failed.

Where pyqtgraph fails to import so (another pyqtgraph, say), the half-imported modules are dropped
and it is imported the usual way: slower, nothing else changes. Where pyqtgraph was already
imported, nothing is done.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
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

#: The parts of pyqtgraph imported when first asked for (see the module): only pyqtgraph's
#: ``__init__`` imports them (with ``import *``, or a name), or only other parts listed here do; the
#: modules pyqtgraph's charts, view box, axes, curves and lines need are not among them.
DEFERRED = (
    # images, colour maps and their editors
    "pyqtgraph.colormap",
    "pyqtgraph.imageview",
    "pyqtgraph.graphicsItems.ColorBarItem",
    "pyqtgraph.graphicsItems.GradientEditorItem",
    "pyqtgraph.graphicsItems.GradientLegend",
    "pyqtgraph.graphicsItems.HistogramLUTItem",
    "pyqtgraph.graphicsItems.ImageItem",
    "pyqtgraph.graphicsItems.IsocurveItem",
    "pyqtgraph.graphicsItems.PColorMeshItem",
    "pyqtgraph.widgets.ColorButton",
    "pyqtgraph.widgets.ColorMapMenu",
    "pyqtgraph.widgets.ColorMapWidget",
    "pyqtgraph.widgets.GradientWidget",
    "pyqtgraph.widgets.HistogramLUTWidget",
    "pyqtgraph.widgets.RawImageWidget",
    # the plot item and what only it (or a layout of plots) uses: the charts draw their own
    "pyqtgraph.graphicsItems.PlotItem",
    "pyqtgraph.graphicsItems.GraphicsLayout",
    "pyqtgraph.graphicsItems.LabelItem",
    "pyqtgraph.graphicsItems.LegendItem",
    "pyqtgraph.widgets.FileDialog",
    "pyqtgraph.widgets.GraphicsLayoutWidget",
    "pyqtgraph.widgets.PlotWidget",
    # other items: arrows, bars, boxes, regions of interest, ...
    "pyqtgraph.graphicsItems.ArrowItem",
    "pyqtgraph.graphicsItems.BarGraphItem",
    "pyqtgraph.graphicsItems.BoxplotItem",
    "pyqtgraph.graphicsItems.CurvePoint",
    "pyqtgraph.graphicsItems.ErrorBarItem",
    "pyqtgraph.graphicsItems.FillBetweenItem",
    "pyqtgraph.graphicsItems.GraphItem",
    "pyqtgraph.graphicsItems.GridItem",
    "pyqtgraph.graphicsItems.LinearRegionItem",
    "pyqtgraph.graphicsItems.ROI",
    "pyqtgraph.graphicsItems.ScaleBar",
    "pyqtgraph.graphicsItems.TargetItem",
    "pyqtgraph.graphicsItems.VTickGroup",
    # widgets
    "pyqtgraph.widgets.CheckTable",
    "pyqtgraph.widgets.DataFilterWidget",
    "pyqtgraph.widgets.DataTreeWidget",
    "pyqtgraph.widgets.DiffTreeWidget",
    "pyqtgraph.widgets.FeedbackButton",
    "pyqtgraph.widgets.GroupBox",
    "pyqtgraph.widgets.JoystickButton",
    "pyqtgraph.widgets.LayoutWidget",
    "pyqtgraph.widgets.PathButton",
    "pyqtgraph.widgets.ProgressDialog",
    "pyqtgraph.widgets.RemoteGraphicsView",
    "pyqtgraph.widgets.ScatterPlotWidget",
    "pyqtgraph.widgets.SpinBox",
    "pyqtgraph.widgets.TableWidget",
    "pyqtgraph.widgets.TreeWidget",
    "pyqtgraph.widgets.ValueLabel",
    "pyqtgraph.widgets.VerticalLabel",
)

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


class _Deferred:
    """What a placeholder gives for a name asked of it by name (``from M import NAME``)."""

    def __repr__(self) -> str:
        return "<deferred pyqtgraph name>"


_DEFERRED_NAME = _Deferred()
#: Set on a placeholder module (what :func:`_settle` looks for).
_PLACEHOLDER = "__llamadash_placeholder__"


class _PlaceholderLoader(importlib.abc.Loader):
    """A module that exports nothing (``__all__`` empty) and answers any name with a marker."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default module

    def exec_module(self, module: ModuleType) -> None:
        module.__all__ = []  # type: ignore[attr-defined]
        setattr(module, _PLACEHOLDER, True)
        module.__getattr__ = lambda name: _DEFERRED_NAME  # type: ignore[method-assign]


class _MirrorFinder(importlib.abc.MetaPathFinder):
    """Finds the mirrors as the usual path finder does, with :class:`_ForwardingLoader`, and gives
    a placeholder for each :data:`DEFERRED` part."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in DEFERRED:
            return importlib.machinery.ModuleSpec(fullname, _PlaceholderLoader())
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


def _is_placeholder(value: object) -> bool:
    return value is _DEFERRED_NAME or (isinstance(value, ModuleType) and hasattr(value, _PLACEHOLDER))


def _settle(pyqtgraph: ModuleType) -> bool:
    """Remove the placeholders and give ``pyqtgraph`` its ``__getattr__`` for the deferred parts.

    Returns False (leaving the placeholders) when a module other than pyqtgraph's ``__init__``
    kept one: that pyqtgraph needs a deferred part, and must be imported the usual way.
    """
    modules = [
        (n, m) for n, m in list(sys.modules.items()) if n.startswith("pyqtgraph.") and n not in DEFERRED
    ]
    for module_name, module in modules:
        for name, value in vars(module).items():  # a package's own submodule slot aside
            if _is_placeholder(value) and f"{module_name}.{name}" not in DEFERRED:
                return False
            # an import in a class's body (its class attributes) kept one too
            own_class = isinstance(value, type) and value.__module__ == module_name
            if own_class and any(map(_is_placeholder, vars(value).values())):
                return False
    namespace = vars(pyqtgraph)
    for name in [name for name, value in namespace.items() if _is_placeholder(value)]:
        del namespace[name]  # pg.RemoteGraphicsView, pg.imageview
    for fullname in DEFERRED:
        parent, _, child = fullname.rpartition(".")
        if _is_placeholder(getattr(sys.modules.get(parent), child, None)):
            delattr(sys.modules[parent], child)  # pyqtgraph.widgets.ColorMapWidget
        if _is_placeholder(sys.modules.get(fullname)):
            del sys.modules[fullname]

    importing: list[bool] = []
    waiting = list(DEFERRED)  # the parts not imported through this yet

    def __getattr__(name: str) -> Any:
        """A deferred part's module, or a name of one (its part imported when first needed)."""
        missing = AttributeError(f"module 'pyqtgraph' has no attribute {name!r}")
        # what inspect, copy and the like probe for; and a name asked while a part is imported
        if name.startswith("__") or importing:
            raise missing
        fullname = f"pyqtgraph.{name}"
        if fullname in DEFERRED:
            return importlib.import_module(fullname)
        if importlib.util.find_spec(fullname) is not None:  # another submodule: the import system's
            raise missing
        importing.append(True)
        try:
            # pyqtgraph names a module after the class it holds: that part first, then the others
            for part in sorted(waiting, key=lambda part: part.rpartition(".")[2] != name):
                module = importlib.import_module(part)
                waiting.remove(part)
                exported = getattr(module, "__all__", None) or [n for n in vars(module) if n[0] != "_"]
                for public in exported:  # as pyqtgraph's import * would have, keeping what is there
                    namespace.setdefault(public, getattr(module, public))
                if name in namespace:
                    return namespace[name]
        finally:
            importing.clear()
        raise missing

    pyqtgraph.__getattr__ = __getattr__  # type: ignore[method-assign]
    return True


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
    if pyqtgraph is None or not is_forwarding() or not _settle(pyqtgraph):
        _drop_pyqtgraph()
        import pyqtgraph
    return pyqtgraph
