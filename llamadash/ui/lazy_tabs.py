"""Tabs whose widgets are made the first time they are needed, not while the window is built.

A tab behind another costs nothing at start-up: it holds an empty placeholder until it is first
shown (or its widget is asked for), when the factory makes the widget (and imports its module),
which then takes the placeholder's place in the same position with the same title. The window
makes them in turns a moment after its first paint (:meth:`LazyTabs.make_all_in_turns`), before
anyone could click: made on the click while the services were starting, a tab took up to 170 ms
on a busy machine; made beforehand it shows in the 25-50 ms it did when built with the window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QTabWidget, QWidget

__all__ = ["LazyTabs"]


@dataclass
class _Tab:
    title: str
    factory: Callable[[], QWidget]
    placeholder: QWidget
    widget: QWidget | None = None


class LazyTabs(QObject):
    """The lazily made tabs of one ``QTabWidget``, by key.

    Args:
        tabs: The tab widget; a tab it brings forward is made before it is painted.
    """

    def __init__(self, tabs: QTabWidget) -> None:
        super().__init__(tabs)
        self._tabs_widget = tabs
        self._tabs: dict[str, _Tab] = {}
        self._swapping = False
        self._halted = False
        tabs.currentChanged.connect(self._on_current_changed)

    def halt(self) -> None:
        """Make no more tabs ahead of time (the app is quitting: their data may be gone)."""
        self._halted = True

    def add(self, key: str, title: str, factory: Callable[[], QWidget], index: int | None = None) -> None:
        """Add a tab at ``index`` (the end when ``None``) whose widget ``factory`` makes when needed."""
        placeholder = QWidget()
        placeholder.setObjectName(f"{key}Placeholder")
        self._tabs[key] = _Tab(title, factory, placeholder)
        if index is None:
            self._tabs_widget.addTab(placeholder, title)
        else:
            self._tabs_widget.insertTab(index, placeholder, title)

    def remove(self, key: str) -> None:
        """Take the tab away (made or not) and delete its widget."""
        tab = self._tabs.pop(key, None)
        if tab is None:
            return
        for widget in (tab.placeholder, tab.widget):
            if widget is not None:
                index = self._tabs_widget.indexOf(widget)
                if index >= 0:
                    self._tabs_widget.removeTab(index)
                widget.deleteLater()

    def __contains__(self, key: str) -> bool:
        return key in self._tabs

    def is_made(self, key: str) -> bool:
        """Whether the tab's widget has been made."""
        tab = self._tabs.get(key)
        return tab is not None and tab.widget is not None

    def made(self, key: str) -> QWidget | None:
        """The tab's widget if it has been made, else ``None`` (it is not made by asking)."""
        tab = self._tabs.get(key)
        return tab.widget if tab is not None else None

    def widget(self, key: str) -> QWidget:
        """The tab's widget, made now if it was not yet (it stays where its placeholder was).

        Raises:
            KeyError: If there is no such tab.
        """
        tab = self._tabs[key]
        if tab.widget is None:
            self._make(tab)
        assert tab.widget is not None
        return tab.widget

    def make_all_in_turns(self, gap_ms: int = 150) -> None:
        """Make the tabs not made yet, one per turn of the event loop ``gap_ms`` apart.

        Called once the window is up: a tab the user opens later is then ready at once, and none of
        them delayed the window's first paint.
        """
        waiting = [key for key in self._tabs if not self.is_made(key)]
        if not waiting or self._halted:
            return
        key = waiting[0]
        self._make(self._tabs[key])
        if len(waiting) > 1:
            QTimer.singleShot(gap_ms, self, lambda: self.make_all_in_turns(gap_ms))

    def key_of(self, widget: QWidget | None) -> str | None:
        """The key of the tab that shows ``widget`` (its placeholder or its widget), or ``None``."""
        for key, tab in self._tabs.items():
            if widget is not None and widget in (tab.placeholder, tab.widget):
                return key
        return None

    def _make(self, tab: _Tab) -> None:
        tabs = self._tabs_widget
        widget = tab.factory()
        tab.widget = widget
        index = tabs.indexOf(tab.placeholder)
        if index < 0:  # the placeholder was taken away by someone else: nothing to swap
            return
        current = tabs.currentIndex() == index
        self._swapping = True
        blocked = tabs.blockSignals(True)  # the swap is no change of tab for the window
        try:
            tabs.removeTab(index)
            tabs.insertTab(index, widget, tab.title)
            if current:
                tabs.setCurrentIndex(index)
        finally:
            tabs.blockSignals(blocked)
            self._swapping = False
        tab.placeholder.deleteLater()
        if current:
            tabs.currentChanged.emit(index)  # the window fits itself to the tab's real widget

    def _on_current_changed(self, index: int) -> None:
        if self._swapping:
            return
        key = self.key_of(self._tabs_widget.widget(index))
        if key is not None and not self.is_made(key):
            self._make(self._tabs[key])
