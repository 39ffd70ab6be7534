"""Light and dark themes: a Qt palette for the widgets and matching colours for the charts.

The Fusion style draws every widget from the palette, so one palette per theme gives the same look
on every platform. ``system`` follows the desktop's colour scheme where Qt can read it (Qt 6.5+),
and is light where it cannot (e.g. a bare X server).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

__all__ = [
    "ERROR_BACKGROUND",
    "ERROR_TEXT",
    "ChartColors",
    "Theme",
    "apply_theme",
    "chart_colors",
    "error_style_sheet",
    "fusion_application",
    "resolve_theme",
]

#: An error message: white on a deep red, the same in both themes (contrast 6.5:1, WCAG AA). Fixed
#: colours rather than palette roles: the palette's BrightText is itself red in both themes.
ERROR_TEXT = "#ffffff"
ERROR_BACKGROUND = "#b3261e"


#: The application :func:`fusion_application` made, whose style is Fusion from its start.
_fusion_app: QApplication | None = None


def fusion_application(program: str) -> QApplication:
    """A ``QApplication`` that starts with the Fusion style (``-style Fusion`` on its command line).

    Asking an application for its style (``app.style()``) makes PySide6 create the Python class of
    ``QStyle``, with its ~20 enums: 10-15 ms before the first paint, for a class the window does not
    use. :func:`apply_theme` does not ask this application. Qt reads ``-style`` before
    ``QT_STYLE_OVERRIDE`` and the platform's style, as :func:`apply_theme` would have overridden them.
    """
    global _fusion_app
    app = QApplication([program, "-style", "Fusion"])
    _fusion_app = app
    return app


def error_style_sheet() -> str:
    """The style sheet of a label that shows an error (readable in the light and the dark theme)."""
    return f"color: {ERROR_TEXT}; background: {ERROR_BACKGROUND}; padding: 4px; border-radius: 3px;"


@dataclass(frozen=True)
class ChartColors:
    """What the charts paint with for one theme.

    Attributes:
        background: The plot background.
        foreground: Axes, tick labels and text.
        grid_alpha: Opacity of the grid lines (0–1).
        series: Line colours, used in order for a chart's curves.
        readout: The colour of the latest-value readout.
        muted: Secondary text (the "no GPU" message, units).
        events: Marker colour per instance event.
    """

    background: str
    foreground: str
    grid_alpha: float
    series: tuple[str, ...]
    readout: str
    muted: str
    events: dict[str, str]


@dataclass(frozen=True)
class Theme:
    """A resolved theme: ``name`` is ``light`` or ``dark``."""

    name: str
    palette: QPalette
    charts: ChartColors


_EVENTS_LIGHT = {"started": "#1f6feb", "ready": "#1a7f37", "stopped": "#6e7781", "crashed": "#cf222e"}
_EVENTS_DARK = {"started": "#58a6ff", "ready": "#3fb950", "stopped": "#8b949e", "crashed": "#f85149"}

_CHARTS = {
    "light": ChartColors(
        background="#ffffff",
        foreground="#24292f",
        grid_alpha=0.15,
        series=("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"),
        readout="#0b5394",
        muted="#6e7781",
        events=_EVENTS_LIGHT,
    ),
    "dark": ChartColors(
        background="#1b1f24",
        foreground="#d0d7de",
        grid_alpha=0.18,
        series=("#4cc2ff", "#ff7b72", "#56d364", "#d2a8ff", "#ffa657", "#39d0d8", "#e3b341", "#f778ba"),
        readout="#79c0ff",
        muted="#8b949e",
        events=_EVENTS_DARK,
    ),
    # pyqtgraph's own look, for users who turn "charts follow the app theme" off.
    "classic": ChartColors(
        background="#000000",
        foreground="#c8c8c8",
        grid_alpha=0.25,
        series=("#ffff00", "#00ffff", "#ff00ff", "#00ff00", "#ff8000", "#8080ff", "#ff4040", "#ffffff"),
        readout="#ffff00",
        muted="#a0a0a0",
        events=_EVENTS_DARK,
    ),
}


def _palette(name: str) -> QPalette:
    palette = QPalette()
    group_all = QPalette.ColorGroup.All
    role = QPalette.ColorRole
    if name == "dark":
        colours = {
            role.Window: "#22272e",
            role.WindowText: "#d0d7de",
            role.Base: "#1b1f24",
            role.AlternateBase: "#262c33",
            role.ToolTipBase: "#2d333b",
            role.ToolTipText: "#e6edf3",
            role.PlaceholderText: "#7d8590",
            role.Text: "#e6edf3",
            role.Button: "#2d333b",
            role.ButtonText: "#e6edf3",
            role.BrightText: "#ff7b72",
            role.Light: "#3d444d",
            role.Midlight: "#343b44",
            role.Mid: "#2a3038",
            role.Dark: "#15191e",
            role.Shadow: "#0d1014",
            role.Highlight: "#2f81f7",
            role.HighlightedText: "#ffffff",
            role.Link: "#58a6ff",
            role.LinkVisited: "#bc8cff",
        }
        disabled = {role.WindowText: "#6e7681", role.Text: "#6e7681", role.ButtonText: "#6e7681"}
    else:
        colours = {
            role.Window: "#f3f4f6",
            role.WindowText: "#1f2328",
            role.Base: "#ffffff",
            role.AlternateBase: "#f6f8fa",
            role.ToolTipBase: "#ffffe1",
            role.ToolTipText: "#1f2328",
            role.PlaceholderText: "#8c959f",
            role.Text: "#1f2328",
            role.Button: "#f6f8fa",
            role.ButtonText: "#1f2328",
            role.BrightText: "#cf222e",
            role.Light: "#ffffff",
            role.Midlight: "#eaeef2",
            role.Mid: "#c8d0d8",
            role.Dark: "#8c959f",
            role.Shadow: "#57606a",
            role.Highlight: "#0969da",
            role.HighlightedText: "#ffffff",
            role.Link: "#0969da",
            role.LinkVisited: "#8250df",
        }
        disabled = {role.WindowText: "#8c959f", role.Text: "#8c959f", role.ButtonText: "#8c959f"}
    for colour_role, colour in colours.items():
        palette.setColor(group_all, colour_role, QColor(colour))
    for colour_role, colour in disabled.items():
        palette.setColor(QPalette.ColorGroup.Disabled, colour_role, QColor(colour))
    return palette


def resolve_theme(preference: str) -> str:
    """``light`` or ``dark`` for a ``theme_preference`` (``system`` asks the desktop)."""
    if preference in ("light", "dark"):
        return preference
    app = QGuiApplication.instance()
    dark = Qt.ColorScheme.Dark
    if isinstance(app, QGuiApplication) and QGuiApplication.styleHints().colorScheme() == dark:
        return "dark"
    return "light"


def chart_colors(theme_name: str, follow_app: bool = True) -> ChartColors:
    """The chart colours for a resolved theme (``classic`` pyqtgraph colours when not following)."""
    return _CHARTS[theme_name if follow_app else "classic"]


def apply_theme(preference: str, *, charts_follow: bool = True) -> Theme:
    """Apply a theme to the running application at once and return it.

    Sets the Fusion style (unless the application was made with it: :func:`fusion_application`)
    and the theme's palette on the ``QApplication`` and pyqtgraph's default
    colours (for plots made later); existing charts are recoloured by their owner from
    :attr:`Theme.charts`.
    """
    name = resolve_theme(preference)
    app = QApplication.instance()
    palette = _palette(name)
    if isinstance(app, QApplication):
        if app is not _fusion_app and app.style().name().lower() != "fusion":
            app.setStyle("Fusion")
        app.setPalette(palette)
    colours = chart_colors(name, charts_follow)
    pg.setConfigOptions(background=colours.background, foreground=colours.foreground)
    return Theme(name=name, palette=palette, charts=colours)
