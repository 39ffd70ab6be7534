"""pyqtgraph imported without making every Qt class (llamadash.ui.pyqtgraph_import)."""

from __future__ import annotations

import sys
import textwrap

import pyqtgraph
from PySide6 import QtWidgets

from support import run_offscreen_python

from llamadash.ui.pyqtgraph_import import MIRRORS, import_pyqtgraph, is_forwarding

PROBE = textwrap.dedent(
    """
    import sys
    import PySide6.QtWidgets as W
    from llamadash.ui import pyqtgraph_import as pgi

    if sys.argv[1] == "forwarding":
        pg = pgi.import_pyqtgraph()
    elif sys.argv[1] == "broken":  # as with a pyqtgraph whose mirrors are elsewhere: the copy fails
        pgi.MIRRORS = {"pyqtgraph.Qt.QtElsewhere": "PySide6.QtCore"}
        pg = pgi.import_pyqtgraph()
    else:
        import pyqtgraph as pg
    made = len(vars(W))  # the QtWidgets classes made so far (PySide6 makes them when first asked for)
    mirror = pg.Qt.QtWidgets
    copied = "QWizard" in vars(mirror)
    assert "QWizard" in dir(mirror) and "QWizard" in dir(W)
    assert mirror.QWizard is W.QWizard and "QWizard" in vars(mirror)  # kept once asked for
    app = W.QApplication([])
    plot = pg.PlotWidget()
    curve = plot.plot([0, 1, 2], [3, 1, 2])
    plot.resize(200, 120)
    image = plot.grab().toImage()
    assert image.width() == 200 and curve.xData.tolist() == [0, 1, 2]
    print(made, copied, pgi.is_forwarding(), pgi._MirrorFinder in map(type, sys.meta_path))
    """
)


def _probe(mode: str) -> tuple[int, str, str, str]:
    made, copied, forwarding, finder_left = run_offscreen_python(PROBE, mode)
    return int(made), copied, forwarding, finder_left


def test_the_usual_import_makes_every_widget_class():
    made, copied, forwarding, _ = _probe("plain")
    # what forwarding saves: if pyqtgraph or PySide6 stop doing this, this test says so
    assert made > 150
    assert (copied, forwarding) == ("True", "False")


def test_with_forwarding_mirrors_only_the_classes_used_are_made_and_pyqtgraph_draws():
    plain, _, _, _ = _probe("plain")
    made, copied, forwarding, finder_left = _probe("forwarding")
    assert made < plain / 2, (made, plain)
    assert copied == "False"  # the mirror answers for QWizard without holding it
    assert forwarding == "True"
    assert finder_left == "False"  # the import hook is gone after the import


def test_a_pyqtgraph_that_cannot_be_imported_so_is_imported_the_usual_way():
    made, copied, forwarding, finder_left = _probe("broken")
    assert (copied, forwarding, finder_left) == ("True", "False", "False")
    assert made > 150


def test_the_tests_run_on_forwarding_mirrors_and_a_second_call_changes_nothing():
    assert is_forwarding()  # tests/conftest.py imports pyqtgraph as the application does
    assert import_pyqtgraph() is pyqtgraph
    for mirror, source in MIRRORS.items():
        assert sys.modules[mirror].__name__ == mirror and source in sys.modules
    assert pyqtgraph.Qt.QtWidgets.QMainWindow is QtWidgets.QMainWindow
    assert pyqtgraph.QtCore.Signal is not None  # pyqtgraph's exports are its mirrors


DEFERRED_PROBE = textwrap.dedent(
    """
    import sys
    from llamadash.ui import pyqtgraph_import as pgi

    if sys.argv[1] == "needed":  # a pyqtgraph whose other modules import a deferred part by name
        pgi.DEFERRED = (*pgi.DEFERRED, "pyqtgraph.WidgetGroup")  # the view box's menu has it
    pg = pgi.import_pyqtgraph()
    heavy = ("pyqtgraph.parametertree", "pyqtgraph.multiprocess", "pyqtgraph.imageview")
    left_out = [name for name in heavy if name not in sys.modules]
    placeholders = [n for n, m in sys.modules.items() if n.startswith("pyqtgraph") and hasattr(m, "__llamadash_placeholder__")]
    from pyqtgraph.graphicsItems.GradientEditorItem import ColorMapMenu
    import PySide6.QtWidgets as W
    app = W.QApplication([])
    view = pg.ImageView()  # the real one, imported now
    from pyqtgraph import ColorMapParameter
    import pyqtgraph.widgets.ScatterPlotWidget as scatter
    assert pg.imageview.ImageView is pg.ImageView is type(view)
    assert pg.RemoteGraphicsView.__module__ == "pyqtgraph.widgets.RemoteGraphicsView"
    assert ColorMapParameter.__module__ == "pyqtgraph.widgets.ColorMapWidget"
    assert scatter.ScatterPlotWidget is pg.ScatterPlotWidget and pg.DataFilterWidget and pg.ColorMapWidget
    assert ColorMapMenu.__module__ == "pyqtgraph.widgets.ColorMapMenu"
    try:
        pg.no_such_name
    except AttributeError:
        pass
    else:
        raise AssertionError("pg.no_such_name")
    print(",".join(left_out) or "-", len(placeholders), pgi.is_forwarding())
    """
)


def test_parts_only_pyqtgraphs_init_imports_wait_until_asked_for_and_then_are_the_real_ones():
    left_out, placeholders, forwarding = run_offscreen_python(DEFERRED_PROBE, "plain")
    assert left_out == "pyqtgraph.parametertree,pyqtgraph.multiprocess,pyqtgraph.imageview"
    assert (placeholders, forwarding) == ("0", "True")


def test_a_pyqtgraph_whose_modules_need_a_deferred_part_is_imported_the_usual_way():
    left_out, placeholders, forwarding = run_offscreen_python(DEFERRED_PROBE, "needed")
    assert (left_out, placeholders, forwarding) == ("-", "0", "False")


def test_the_tests_run_on_the_deferring_import():
    assert "__getattr__" in vars(pyqtgraph)  # the package answers for its deferred parts
    assert all(not hasattr(m, "__llamadash_placeholder__") for m in list(sys.modules.values()))


KEPT_PROBE = textwrap.dedent(
    """
    import sys, types
    from llamadash.ui import pyqtgraph_import as pgi

    pg = pgi.import_pyqtgraph()
    # a module of pyqtgraph that kept a placeholder's name in a class's body (an import there)
    kept = types.ModuleType("pyqtgraph._kept_probe")
    kept.Item = type("Item", (), {"__module__": kept.__name__, "Part": pgi._DEFERRED_NAME})
    sys.modules[kept.__name__] = kept
    in_class = pgi._settle(pg)
    kept.Item.Part = None
    kept.Part = pgi._DEFERRED_NAME  # at the module's level
    at_module = pgi._settle(pg)
    del kept.Part
    print(in_class, at_module, pgi._settle(pg))
    """
)


def test_a_placeholder_kept_by_another_module_or_its_class_counts_as_needed():
    assert run_offscreen_python(KEPT_PROBE) == ["False", "False", "True"]


ONE_PART_PROBE = textwrap.dedent(
    """
    import sys
    from llamadash.ui import pyqtgraph_import as pgi

    pg = pgi.import_pyqtgraph()
    plot_widget = "pyqtgraph.widgets.PlotWidget"
    before = plot_widget in sys.modules
    bars = pg.BarGraphItem  # the Activity view's bars: their part, not the plot widget's
    after_bars = plot_widget in sys.modules
    widget = pg.PlotWidget
    print(before, after_bars, bars.__module__, widget.__module__, plot_widget in sys.modules)
    """
)


def test_a_deferred_name_imports_the_part_that_has_it():
    assert run_offscreen_python(ONE_PART_PROBE) == [
        "False", "False", "pyqtgraph.graphicsItems.BarGraphItem", "pyqtgraph.widgets.PlotWidget", "True",
    ]  # fmt: skip


NAMES_PROBE = textwrap.dedent(
    """
    import json, sys, types
    from llamadash.ui import pyqtgraph_import as pgi

    if sys.argv[1] == "plain":
        import pyqtgraph as pg
        names = sorted(n for n in vars(pg) if not n.startswith("_"))
    else:
        pg = pgi.import_pyqtgraph()
        names = json.loads(sys.stdin.read())

    def what(value):
        if isinstance(value, types.ModuleType):
            return "module:" + value.__name__  # no spaces: the output is read as words
        return f"{type(value).__name__}:{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', '')}"

    print(json.dumps({name: what(getattr(pg, name)) for name in names}, separators=(",", ":")))
    """
)


def test_every_name_of_a_plain_pyqtgraph_is_there_and_the_same_with_the_deferring_import():
    import json
    import os
    import subprocess

    plain = json.loads(run_offscreen_python(NAMES_PROBE, "plain")[-1])
    assert "PlotWidget" in plain and "BarGraphItem" in plain and "ImageView" in plain
    done = subprocess.run(
        [sys.executable, "-c", NAMES_PROBE, "deferring"],
        input=json.dumps(sorted(plain)),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.split()[-1]) == plain
