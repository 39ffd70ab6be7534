"""The placement report of the selected instance: where its ``--fit`` put the model (from its log)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

from llamadash.core.states import ACTIVE_STATES

if TYPE_CHECKING:  # the parser (and llamadash.core.perf) is imported with the first running instance shown
    from llamadash.core.perf.placement import PlacementReport

__all__ = ["PlacementLabel"]


class PlacementLabel(QLabel):
    """A few lines under the instances table: the context, layers and memory the server chose.

    Read from the instance's own log lines (kept by its output pipe; widgets own no process) and
    parsed again only when new lines came.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("placementReport")
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._key: tuple[str, int, str] | None = None
        self.report: PlacementReport | None = None
        self.hide()

    def show_for(self, name: str, instance: Any, state: str) -> None:
        """Show ``instance``'s placement (``None``, or a state without a run: hidden)."""
        if not name or instance is None or state not in ACTIVE_STATES:
            self._key = None
            self.report = None
            self.hide()
            return
        lines = instance.log_lines()
        key = (name, len(lines), lines[-1] if lines else "")
        if key != self._key:
            from llamadash.core.perf.placement import current_run, parse_placement

            self._key = key
            self.report = parse_placement(current_run(lines))
            body = "<br>".join(html.escape(line) for line in self.report.summary_lines())
            self.setText(f"<b>{html.escape(name)} placement</b><br>{body}")
        self.show()
