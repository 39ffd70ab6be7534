"""Fixtures for the widget tests."""

from __future__ import annotations

import pyqtgraph as pg
import pytest
from PySide6.QtGui import QPalette


@pytest.fixture(autouse=True)
def _restore_app_look(qapp):
    """The main window applies a theme to the whole application: put the test session's look back."""
    style, palette = qapp.style().name(), QPalette(qapp.palette())
    background, foreground = pg.getConfigOption("background"), pg.getConfigOption("foreground")
    yield
    qapp.setStyle(style)
    qapp.setPalette(palette)
    pg.setConfigOptions(background=background, foreground=foreground)
