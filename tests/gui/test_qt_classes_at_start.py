"""The window paints its charts without PySide6 making Qt classes it does not use.

PySide6 creates a Python class (and its enums, ~0.3 ms each) when first used. Two uses made ~200
classes before the charts could paint: asking the application for its style (``QStyle``), and a
widget that C++ made handed to Python (PySide6 tries every ``QWidget`` subclass to find its class,
creating each). These tests launch the window as ``llamadash`` does and look at which classes exist
once the charts have been painted.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from support import run_offscreen_python

_LAUNCH = textwrap.dedent(
    """
    import json, sys
    import PySide6.QtWidgets as W
    from PySide6.QtCore import QTimer
    from llamadash.app import build_gui, shutdown

    gui = build_gui(["--data-dir", sys.argv[1]])  # makes the QApplication, as when launched
    seen = {}

    def charts_painted():  # before the services start (they are queued after this)
        views = [v for v in gui.window.board.views() if v.has_plot]
        seen.update(
            style_class="QStyle" in vars(W),
            searched="QWizard" in vars(W),  # made only by a search through every widget class
            painted=[v.spec.key for v in views if v.plot_widget._painted],
            viewport=type(views[0].plot_widget.viewport()).__name__ if views else None,
        )
        QTimer.singleShot(0, gui.app.quit)

    gui.window.board.chartsPainted.connect(charts_painted)
    QTimer.singleShot(30000, gui.app.quit)
    gui.app.exec()
    seen["style"] = gui.app.style().name().lower()
    shutdown(gui)
    print(json.dumps(seen, separators=(",", ":")))  # one word
    """
)


def test_the_charts_are_painted_without_the_style_class_or_a_search_through_widget_classes(
    tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("QT_STYLE_OVERRIDE", "Windows")
    seen = json.loads(run_offscreen_python(_LAUNCH, str(tmp_path / "data"))[-1])
    assert seen["painted"], seen  # the charts in view were painted
    assert seen["viewport"] == "QWidget"
    assert seen["searched"] is False, "a widget made by C++ reached Python before the charts painted"
    assert seen["style_class"] is False, "the application was asked for its style before the charts"
    assert seen["style"] == "fusion"  # and Fusion it is, over QT_STYLE_OVERRIDE


_STYLE = textwrap.dedent(
    """
    import sys
    from llamadash.ui.pyqtgraph_import import import_pyqtgraph
    import_pyqtgraph()
    import PySide6.QtWidgets as W
    from llamadash.ui.theme import apply_theme, fusion_application
    if sys.argv[1] == "fusion":
        app = fusion_application("llamadash")
    else:
        app = W.QApplication(["llamadash"])
    apply_theme("dark")
    asked = "QStyle" in vars(W)
    print(asked, app.style().name().lower(), app.arguments() == ["llamadash"])
    """
)


def test_apply_theme_sets_fusion_and_asks_only_an_application_not_made_with_it(monkeypatch):
    monkeypatch.setenv("QT_STYLE_OVERRIDE", "Windows")
    assert run_offscreen_python(_STYLE, "fusion") == ["False", "fusion", "True"]
    assert run_offscreen_python(_STYLE, "plain") == ["True", "fusion", "True"]


_VIEWPORT = textwrap.dedent(
    """
    from llamadash.ui.pyqtgraph_import import import_pyqtgraph
    import_pyqtgraph()
    import PySide6.QtWidgets as W
    app = W.QApplication([])
    from llamadash.ui.charts import TimePlotWidget
    plot = TimePlotWidget()
    plot.getPlotItem().plot("#ff0000", "cpu").setData([0.0, 1.0, 2.0], [0.0, 50.0, 100.0])
    plot.getPlotItem().setXRange(0.0, 2.0)
    plot.getPlotItem().setYRange(0.0, 100.0)
    plot.resize(240, 140)
    image = plot.grab().toImage()
    red = sum(
        1 for x in range(image.width()) for y in range(image.height())
        if image.pixelColor(x, y).red() > 200 and image.pixelColor(x, y).green() < 80
    )
    print("QWizard" in vars(W), type(plot.viewport()).__name__, red > 20)
    """
)


def test_a_chart_has_a_plain_viewport_made_in_python_and_draws_its_curve():
    searched, viewport, drawn = run_offscreen_python(_VIEWPORT)
    assert (viewport, drawn) == ("QWidget", "True")
    assert searched == "False"  # no search through the widget classes


_ICONS = textwrap.dedent(
    """
    import PySide6.QtGui as G
    import PySide6.QtWidgets as W
    app = W.QApplication([])
    from llamadash.ui.icons import action_icon, status_icon
    for name in ("start", "stop", "restart", "stop-all", "settings", "logs"):
        assert not action_icon(name).isNull()
    for state in ("stopped", "loading", "running", "error"):
        assert not status_icon(state).isNull()
    print("QGradient" in vars(G))
    """
)


def test_the_toolbar_and_status_icons_are_drawn_without_making_the_gradient_classes():
    """The window's icons are painted before its first paint: a ``QBrush(colour)`` there made PySide6
    make the classes of QBrush's other constructors' arguments (QGradient and its enums, 2-4 ms)."""
    assert run_offscreen_python(_ICONS) == ["False"]
