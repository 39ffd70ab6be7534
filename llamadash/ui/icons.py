"""Icons drawn with QPainter: the instance status badges, the toolbar actions and the app icon.

Drawing them keeps them sharp at any scale and independent of the icon theme installed on the
desktop (a bare Windows or a minimal Linux has none). The app icon is ``resources/llamadash.svg``
when the file is there (a source checkout, a frozen build) and the same design painted otherwise.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap, QPolygonF

__all__ = ["STATUS_COLORS", "action_icon", "app_icon", "status_color", "status_icon"]

#: The colour of each instance state, chosen to read on light and dark backgrounds alike.
STATUS_COLORS: dict[str, str] = {
    "stopped": "#8c959f",
    "loading": "#d29922",
    "running": "#2da44e",
    "error": "#cf222e",
}

_RESOURCES = Path(__file__).resolve().parents[2] / "resources"
_SIZES = (16, 20, 24, 32, 48)


def status_color(state: str) -> QColor:
    """The colour for an instance state (unknown states are grey)."""
    return QColor(STATUS_COLORS.get(state, STATUS_COLORS["stopped"]))


def _render(paint, sizes: tuple[int, ...] = _SIZES) -> QIcon:
    icon = QIcon()
    for size in sizes:
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.scale(size / 16.0, size / 16.0)  # every icon is designed on a 16×16 grid
        paint(painter)
        painter.end()
        icon.addPixmap(pixmap)
    return icon


def _glyph(painter: QPainter, state: str) -> None:
    white = QColor("#ffffff")
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(white)
    if state == "running":
        painter.drawPolygon(QPolygonF([QPointF(6.2, 4.6), QPointF(11.6, 8.0), QPointF(6.2, 11.4)]))
    elif state == "stopped":
        painter.drawRect(QRectF(5.4, 5.4, 5.2, 5.2))
    elif state == "error":
        painter.drawRoundedRect(QRectF(7.1, 3.8, 1.8, 5.6), 0.8, 0.8)
        painter.drawEllipse(QRectF(7.0, 10.3, 2.0, 2.0))
    else:  # loading: an hourglass of three dots
        for x in (4.4, 7.1, 9.8):
            painter.drawEllipse(QRectF(x, 7.0, 1.9, 1.9))


@cache
def status_icon(state: str) -> QIcon:
    """A round badge in the state's colour with a glyph (▶ running, ■ stopped, … loading, ! error)."""

    def paint(painter: QPainter) -> None:
        painter.setPen(QPen(status_color(state).darker(120), 0.8))
        painter.setBrush(status_color(state))
        painter.drawEllipse(QRectF(1.0, 1.0, 14.0, 14.0))
        _glyph(painter, state)

    return _render(paint)


@cache
def action_icon(name: str, color: str = "#57606a") -> QIcon:
    """A toolbar icon: ``start``, ``stop``, ``restart``, ``stop-all``, ``settings``, ``logs``."""
    pen_colour = QColor(color)

    def paint(painter: QPainter) -> None:
        if name == "start":
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(STATUS_COLORS["running"]))
            painter.drawPolygon(QPolygonF([QPointF(3.5, 2.0), QPointF(13.5, 8.0), QPointF(3.5, 14.0)]))
        elif name in ("stop", "stop-all"):
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(STATUS_COLORS["error"]))
            if name == "stop":
                painter.drawRoundedRect(QRectF(3.0, 3.0, 10.0, 10.0), 1.5, 1.5)
            else:
                painter.drawRoundedRect(QRectF(1.5, 4.5, 8.0, 8.0), 1.2, 1.2)
                painter.setBrush(QColor(STATUS_COLORS["error"]).darker(130))
                painter.drawRoundedRect(QRectF(6.5, 1.5, 8.0, 8.0), 1.2, 1.2)
        elif name == "restart":
            painter.setPen(QPen(QColor("#0969da"), 2.0, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawArc(QRectF(2.5, 2.5, 11.0, 11.0), 60 * 16, 280 * 16)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#0969da"))
            painter.drawPolygon(QPolygonF([QPointF(9.0, 0.6), QPointF(13.6, 3.4), QPointF(9.2, 6.4)]))
        elif name == "settings":
            painter.setPen(QPen(pen_colour, 2.4, Qt.PenStyle.DotLine, Qt.PenCapStyle.FlatCap))
            painter.drawEllipse(QRectF(2.2, 2.2, 11.6, 11.6))
            painter.setPen(QPen(pen_colour, 1.6))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawEllipse(QRectF(4.0, 4.0, 8.0, 8.0))
            # the colour, not QBrush(colour): PySide6 picks among QBrush's constructors by making the
            # classes of the others' arguments (gradients, images and their enums), 2-4 ms at the
            # first call, before the first paint
            painter.setBrush(pen_colour)
            painter.drawEllipse(QRectF(6.6, 6.6, 2.8, 2.8))
        elif name == "logs":
            painter.setPen(QPen(pen_colour, 1.2))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(QRectF(2.0, 1.5, 12.0, 13.0), 1.5, 1.5)
            for y in (5.0, 8.0, 11.0):
                painter.drawLine(QPointF(4.5, y), QPointF(11.5, y))

    return _render(paint)


def _paint_app_icon(painter: QPainter) -> None:
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor("#0b3d91"))
    painter.drawRoundedRect(QRectF(0.5, 0.5, 15.0, 15.0), 3.5, 3.5)
    painter.setPen(QPen(QColor("#56d364"), 1.4, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
    painter.setBrush(Qt.BrushStyle.NoBrush)
    line = QPolygonF(
        [QPointF(2.5, 11.0), QPointF(5.5, 8.0), QPointF(8.0, 10.0), QPointF(10.5, 5.0), QPointF(13.5, 6.5)]
    )
    painter.drawPolyline(line)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor("#ffffff"))
    painter.drawEllipse(QRectF(9.6, 4.1, 1.8, 1.8))


@cache
def app_icon() -> QIcon:
    """The llamadash icon: a chart line on a blue tile."""
    svg = _RESOURCES / "llamadash.svg"
    if svg.is_file():
        icon = QIcon(str(svg))
        if not icon.isNull():
            return icon
    return _render(_paint_app_icon, (16, 24, 32, 48, 64, 128, 256))
