"""The instances view: every configured model with its server's status and figures.

:class:`InstancesModel` is a table model fed by the instance manager's signals (``stateChanged``,
``figuresChanged``, ``instanceAdded``, ``instanceRemoved``); it never polls. :class:`InstancesView`
shows it with start/stop/restart actions, a context menu, and a detail pane that explains an error
(the reason and the end of the log).

The manager is a :class:`~llamadash.services.protocols.Manager` (the real
:class:`~llamadash.services.manager.InstanceManager`, or the tests' stand-in). The window is built
before the launcher starts it (after the first paint); until then every model is listed as stopped
and the actions are disabled.

With no model at all, the view shows what to do instead of an empty table (the first run).
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast, runtime_checkable

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import QAction, QDesktopServices, QFontDatabase, QGuiApplication, QKeySequence
from PySide6.QtNetwork import QNetworkAccessManager, QNetworkRequest
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from llamadash.core import library
from llamadash.core.launch import MissingBinaryError
from llamadash.core.library_service import AUTO_RESTART
from llamadash.core.remote import REMOTE_URL, is_remote
from llamadash.core.messages import short_repr
from llamadash.core.params import COLUMN as PARAM
from llamadash.core.params import load_schema
from llamadash.core.router import ROUTER_NAME, RouterModel
from llamadash.core.states import ACTIVE_STATES
from llamadash.services.protocols import Instance, Manager
from llamadash.ui.placement_pane import PlacementLabel
from llamadash.ui.icons import action_icon, status_color, status_icon
from llamadash.ui.logs_dock import LogHighlighter

__all__ = [
    "COLUMNS",
    "EMPTY_TEXT",
    "LOG_TAIL_LINES",
    "InstancesModel",
    "InstancesView",
    "format_uptime",
]

#: (header, key) of each column.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("Model", "name"),
    ("Status", "state"),
    ("Port", "port"),
    ("Uptime", "uptime"),
    ("Tokens/s", "tokens"),
    ("Req/min", "requests"),
    ("CPU", "cpu"),
    ("RAM", "ram"),
    ("Auto-restart", "auto_restart"),
)
COLUMN = {key: index for index, (_title, key) in enumerate(COLUMNS)}
#: How many of the last log lines an error shows.
LOG_TAIL_LINES = 12

NameRole = Qt.ItemDataRole.UserRole + 1
StateRole = Qt.ItemDataRole.UserRole + 2
SortRole = Qt.ItemDataRole.UserRole + 3
_Index = QModelIndex | QPersistentModelIndex
_ACTIVE = ACTIVE_STATES
_STATE_TEXT = {"stopped": "Stopped", "loading": "Loading…", "running": "Running", "error": "Error"}
#: A library model the router has in memory, shown in its row: (text, the state whose icon it takes).
_ROUTER_STATE = {
    "loaded": ("Loaded (router)", "running"),
    "sleeping": ("Sleeping (router)", "stopped"),
    "loading": ("Loading (router)", "loading"),
}


@runtime_checkable
class AutoRestartSwitch(Protocol):
    """A manager that switches a model's automatic restart after a crash (the real
    :class:`~llamadash.services.manager.InstanceManager`): a running instance follows at once."""

    def autorestart(self, name: str) -> bool: ...

    def set_autorestart(self, name: str, enabled: bool) -> None: ...


class WebUiOpener(QObject):
    """Opens a running server's own web page (llama-server's chat UI at ``/``) in the browser.

    The server is asked first, once per click: a build made without the web UI answers ``/`` with
    404 (a JSON error page), which is said instead of opening it. Any other answer, or none, opens
    the page (the browser says what is wrong then).
    """

    noWebUi = Signal(str, str)
    """The server serves no web UI: (its URL, the sentence to tell the user)."""

    #: How long the server may take to answer before the page is opened anyway.
    TIMEOUT_MS = 3000

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._network = QNetworkAccessManager(self)

    def open(self, url: str) -> None:
        """Ask ``url`` for its page; open it in the browser unless it has none."""
        request = QNetworkRequest(QUrl(url.rstrip("/") + "/"))
        request.setTransferTimeout(self.TIMEOUT_MS)
        reply = self._network.get(request)
        answered: list[bool] = []

        def on_answer() -> None:  # the status is known with the headers: the page is not fetched
            if answered:
                return
            status = reply.attribute(QNetworkRequest.Attribute.HttpStatusCodeAttribute)
            if status is None and not reply.isFinished():
                return
            answered.append(True)
            reply.abort()
            reply.deleteLater()
            if status == 404:
                self.noWebUi.emit(
                    url,
                    f"{url} serves no web UI: this llama-server build was made without it. Its API "
                    f"answers at {url}/v1 (Copy URL gives the address to a client).",
                )
            else:
                QDesktopServices.openUrl(QUrl(url))

        reply.metaDataChanged.connect(on_answer)
        reply.finished.connect(on_answer)
        reply.errorOccurred.connect(lambda _code: on_answer())


def format_uptime(seconds: float | None) -> str:
    """``42s``, ``5m 03s``, ``2h 07m``, ``3d 04h``; empty for ``None``."""
    if seconds is None:
        return ""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def _state_name(state: Any) -> str:
    """The plain state name, whether given as ``InstanceState.RUNNING`` or ``"running"`` (a ``StrEnum``)."""
    return str(state or "stopped")


def count_text(count: int, noun: str) -> str:
    """``1 model``, ``2 models``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def fix_text(action: Mapping[str, Any] | None) -> str | None:
    """The button text for a diagnosis's one-click ``action``, or ``None`` when it has none.

    ``{"set": {"repack": False}}`` reads "Turn Weight repacking off and start"; ``{"open":
    "configuration"}`` reads "Open the configuration".
    """
    if not action:
        return None
    if "set" in action:
        schema = load_schema()
        parts = []
        for column, value in dict(action["set"]).items():
            label = schema[column].label if column in schema else column
            word = ("on" if value else "off") if isinstance(value, bool) else f"to {value}"
            parts.append(f"{label} {word}")
        return f"Turn {', '.join(parts)} and start"
    if action.get("open") == "configuration":
        return "Open the configuration"
    return None


def failure_text(verb: str, name: str, exc: BaseException) -> str:
    """What to tell the user when ``verb`` (start, stop, restart) failed for ``name``.

    The manager's errors already say "cannot start NAME: why"; they are not wrapped a second time.
    """
    text = str(exc)
    if text.lower().startswith(f"cannot {verb} {name}".lower()):
        return text[:1].upper() + text[1:]
    return f"Could not {verb} {name}: {text}"


#: What the view says while the library holds no model (rich text).
EMPTY_TEXT = (
    "<h3>No models yet</h3>"
    "<p>Add a .gguf file in the <b>Library</b> tab (<b>Add ▸ GGUF file…</b>, or drag files onto it),<br>"
    "or let it find every model in a folder (<b>Add ▸ Scan a directory…</b>).<br>"
    "Your models then appear here: select one and press <b>Start</b>.</p>"
)


@dataclass
class _Row:
    name: str
    port: int | None = None
    configured_port: int | None = None  # the library's; ``port`` is the running server's
    bad_port: str | None = None  # the stored value, quoted, when it is not a port (another program wrote it)
    configured: bool = True
    state: str = "stopped"
    reason: str = ""
    figures: Any = None
    started_at_ms: int | None = None
    auto_restart: bool = False  # the library row's: restart the server after a crash
    remote_url: str | None = None  # a remote server's address: attached and detached, never started
    extra: dict[str, Any] = field(default_factory=dict)


class InstancesModel(QAbstractTableModel):
    """The configured models (and any extra instance the manager reports) with their status.

    Args:
        load_models: Returns the model library (dicts with at least ``name`` and ``port``).
        manager: The instance manager; ``None`` until it has started (:meth:`set_manager`).
        clock_ms: Wall clock in Unix ms (uptime).
    """

    def __init__(
        self,
        load_models: Callable[[], list[dict[str, Any]]],
        manager: Manager | None = None,
        *,
        clock_ms: Callable[[], int] | None = None,
        parent: Any = None,
    ) -> None:
        super().__init__(parent)
        self._load_models = load_models
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._rows: list[_Row] = []
        self._index: dict[str, int] = {}
        self._figures_changed: set[int] = set()
        # Figures arrive once per poll per instance and the uptime moves every second: both are
        # announced together once a second, so the table repaints once, not once per instance.
        self._tick_timer = QTimer(self)
        self._tick_timer.setInterval(1000)
        self._tick_timer.timeout.connect(self.tick)
        self._tick_timer.start()
        self._manager: Manager | None = None  # the window's, until the launcher has started it
        self._router_models: dict[str, RouterModel] = {}  # the library router's, by name
        if manager is not None:
            self.set_manager(manager, refresh=False)
        self.refresh()

    @property
    def manager(self) -> Manager | None:
        """The instance manager followed (``None`` until one was given)."""
        return self._manager

    def set_manager(self, manager: Manager, *, refresh: bool = True) -> None:
        """Follow an instance manager, e.g. the one started after the window appeared."""
        old = self._manager
        if old is not None:
            old.stateChanged.disconnect(self._on_state_changed)
            old.figuresChanged.disconnect(self._on_figures_changed)
            old.instanceAdded.disconnect(self._on_instance_added)
            old.instanceRemoved.disconnect(self._on_instance_removed)
            old.router_models.modelsChanged.disconnect(self._on_router_models)
        self._manager = manager
        manager.stateChanged.connect(self._on_state_changed)
        manager.figuresChanged.connect(self._on_figures_changed)
        manager.instanceAdded.connect(self._on_instance_added)
        manager.instanceRemoved.connect(self._on_instance_removed)
        manager.router_models.modelsChanged.connect(self._on_router_models)
        self._router_models = {m.name: m for m in manager.router_models.models}
        if refresh:
            self.refresh()

    # -- rows -------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the model library (names, ports) keeping every instance's live state."""
        known = {row.name: row for row in self._rows}
        rows: list[_Row] = []
        for model in self._load_models():
            name = str(model.get("name", ""))
            row = known.pop(name, None) or _Row(name)
            row.configured = True
            # the port the next start uses; None: the stored value is not a port (the editor says so)
            row.port = row.configured_port = library.configured_port(model)
            stored = model.get(PARAM.port)
            row.bad_port = None if row.configured_port is not None else short_repr(stored, 24)
            row.auto_restart = bool(model.get(AUTO_RESTART))
            row.remote_url = str(model[REMOTE_URL]) if is_remote(model) else None
            rows.append(row)
        for row in known.values():  # instances the manager runs that are not (or no longer) configured
            if row.state in _ACTIVE:
                row.configured = False
                rows.append(row)
        if self._manager is not None:
            names = {row.name for row in rows}
            for instance in self._instances():
                name = instance.name
                if name and name not in names:
                    rows.append(_Row(name, configured=False))
                    names.add(name)
        self.beginResetModel()
        self._figures_changed.clear()
        self._rows = rows
        self._index = {row.name: i for i, row in enumerate(rows)}
        for row in rows:
            self._read_instance(row)
        self.endResetModel()

    def _instances(self) -> list[Instance]:
        return list(self._manager.instances()) if self._manager is not None else []

    def instance(self, name: str) -> Instance | None:
        """The manager's instance for ``name``, if it has one."""
        return self._manager.instance(name) if self._manager is not None else None

    def _read_instance(self, row: _Row) -> None:
        instance = self.instance(row.name)
        if instance is None:
            return
        row.state = _state_name(instance.state)
        row.reason = instance.reason or ""
        if row.state in _ACTIVE:  # a running server's real port; else the one the next start uses
            row.port = instance.port or row.port
        else:
            row.port = row.configured_port or row.port
        row.started_at_ms = instance.started_at_ms

    def names(self) -> list[str]:
        """The row names, in row order."""
        return [row.name for row in self._rows]

    def row_of(self, name: str) -> int:
        """The row of ``name``, or -1."""
        return self._index.get(name, -1)

    def is_configured(self, name: str) -> bool:
        """Whether ``name`` is a model of the library (not only a server started elsewhere)."""
        row = self._index.get(name)
        return row is not None and self._rows[row].configured

    def remote_url_of(self, name: str) -> str | None:
        """The address of ``name`` when it is a remote server (attached, never started), else ``None``."""
        row = self._index.get(name)
        return self._rows[row].remote_url if row is not None else None

    def auto_restart_of(self, name: str) -> bool:
        """Whether the library row of ``name`` says to restart its server after a crash."""
        row = self._index.get(name)
        return row is not None and self._rows[row].auto_restart

    def state_of(self, name: str) -> str:
        """The state shown for ``name`` (``stopped`` for an unknown name)."""
        row = self._index.get(name)
        return self._rows[row].state if row is not None else "stopped"

    def reason_of(self, name: str) -> str:
        row = self._index.get(name)
        return self._rows[row].reason if row is not None else ""

    def warnings_of(self, name: str) -> list[str]:
        """What the user should know about the running instance of ``name`` (e.g. exposed without a key)."""
        instance = self.instance(name)
        if instance is None or self.state_of(name) not in _ACTIVE:
            return []
        return [str(w) for w in instance.warnings]

    def log_tail(self, name: str, lines: int = LOG_TAIL_LINES) -> list[str]:
        """The last ``lines`` lines of the instance's log (empty when there is no instance)."""
        instance = self.instance(name)
        if instance is None:
            return []
        return instance.log_lines()[-lines:]

    # -- manager signals --------------------------------------------------------------------------

    def _row_changed(self, row: int, first: int = 0, last: int | None = None) -> None:
        last = len(COLUMNS) - 1 if last is None else last
        self.dataChanged.emit(self.index(row, first), self.index(row, last))

    def _on_state_changed(self, name: str, state: str, reason: str) -> None:
        row = self._index.get(name)
        if row is None:
            self._append(_Row(name, configured=False))
            row = self._index[name]
        item = self._rows[row]
        item.state = _state_name(state)
        item.reason = reason or ""
        instance = self.instance(name)
        item.started_at_ms = instance.started_at_ms if instance is not None else None
        if item.state in _ACTIVE and instance is not None and instance.port:
            item.port = instance.port
        elif item.state not in _ACTIVE:
            item.port = item.configured_port or item.port
        if item.state not in _ACTIVE:
            item.figures = None
        self._row_changed(row)

    def _on_figures_changed(self, name: str, figures: Any) -> None:
        row = self._index.get(name)
        if row is None:
            return
        self._rows[row].figures = figures
        self._figures_changed.add(row)  # announced by the next tick

    def _on_instance_added(self, name: str) -> None:
        if name not in self._index:
            self._append(_Row(name, configured=False))
        item = self._rows[self._index[name]]
        self._read_instance(item)
        self._row_changed(self._index[name])

    def _on_instance_removed(self, name: str) -> None:
        row = self._index.get(name)
        if row is None:
            return
        if self._rows[row].configured:
            item = self._rows[row]
            item.state, item.figures, item.started_at_ms = "stopped", None, None
            self._row_changed(row)
            return
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._rows[row]
        self._index = {r.name: i for i, r in enumerate(self._rows)}
        self.endRemoveRows()

    def _on_router_models(self, models: list[RouterModel]) -> None:
        before, self._router_models = self._router_models, {m.name: m for m in models}
        for name in set(before) | set(self._router_models):
            row = self._index.get(name)
            if row is not None and before.get(name) != self._router_models.get(name):
                self._row_changed(row)

    def via_router(self, name: str) -> RouterModel | None:
        """The router's model ``name`` when its row shows it (in memory there, no server of its own)."""
        row = self._index.get(name)
        model = self._router_models.get(name)
        if row is None or model is None or model.state not in _ROUTER_STATE:
            return None
        return None if self._rows[row].state in _ACTIVE else model

    def _append(self, row: _Row) -> None:
        self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows))
        self._rows.append(row)
        self._index[row.name] = len(self._rows) - 1
        self.endInsertRows()

    def tick(self) -> None:
        """Announce the figures that changed and the uptimes that moved (once a second)."""
        rows = {row for row in self._figures_changed if row < len(self._rows)}
        self._figures_changed.clear()
        rows.update(
            row for row, item in enumerate(self._rows) if item.state in _ACTIVE and item.started_at_ms
        )
        if rows:
            self.dataChanged.emit(
                self.index(min(rows), COLUMN["uptime"]), self.index(max(rows), COLUMN["ram"])
            )
        for row, item in enumerate(self._rows):
            if item.state == "loading":  # its load progress moves on
                self.dataChanged.emit(self.index(row, COLUMN["state"]), self.index(row, COLUMN["state"]))

    def state_counts(self) -> dict[str, int]:
        """How many rows are in each state."""
        counts: dict[str, int] = {}
        for item in self._rows:
            counts[item.state] = counts.get(item.state, 0) + 1
        return counts

    # -- Qt model ---------------------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section][0]
        if role == Qt.ItemDataRole.TextAlignmentRole and section >= COLUMN["port"]:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _figure(self, item: _Row, attribute: str) -> float | None:
        value = getattr(item.figures, attribute, None) if item.figures is not None else None
        return None if value is None else float(value)

    def _load_fraction(self, item: _Row) -> float | None:
        """How far the model has loaded (0..1), when the server's log says."""
        instance = self.instance(item.name)
        fraction = instance.load_progress[0] if instance is not None else None
        return None if fraction is None else float(fraction)

    def _uptime_s(self, item: _Row) -> float | None:
        if item.state not in _ACTIVE or not item.started_at_ms:
            return None
        return (self._clock_ms() - item.started_at_ms) / 1000

    def _display(self, item: _Row, key: str) -> str:
        if key == "name":
            return item.name
        routed = self.via_router(item.name)
        if routed is not None and key in ("state", "port", "uptime"):
            if key == "state":
                text = _ROUTER_STATE[routed.state][0]
                return text + (f" {routed.progress:.0%}" if routed.progress is not None else "")
            router = self.instance(ROUTER_NAME)
            return str(router.port) if key == "port" and router is not None and router.port else ""
        if key == "state":
            if item.state == "loading":
                fraction = self._load_fraction(item)
                if fraction is not None:
                    return f"Loading… {fraction * 100:.0f}%"
            return _STATE_TEXT.get(item.state, item.state.capitalize())
        if key == "port":
            if item.port is None and item.bad_port is not None:
                return f"⚠ {item.bad_port}"
            return "" if item.port is None else str(item.port)
        if key == "uptime":
            return format_uptime(self._uptime_s(item))
        if key == "auto_restart":
            return "on" if item.auto_restart else ""
        if item.state not in _ACTIVE and routed is None:
            return "–"  # nothing runs, so there is nothing to read
        formats = {
            "tokens": ("generation_tokens_per_s", "{:,.1f}"),
            "requests": ("requests_per_minute", "{:,.1f}"),
            "cpu": ("cpu_percent", "{:.0f} %"),
            "ram": ("rss_mb", "{:,.0f} MB"),
        }
        attribute, pattern = formats[key]
        value = self._figure(item, attribute)
        return "n/a" if value is None else pattern.format(value)

    def _sort_value(self, item: _Row, key: str) -> Any:
        order = {"error": 0, "loading": 1, "running": 2, "stopped": 3}
        if key == "name":
            return item.name.lower()
        if key == "state":
            return order.get(item.state, 4)
        if key == "port":
            return item.port or 0
        if key == "uptime":
            return self._uptime_s(item) or -1.0
        if key == "auto_restart":
            return int(item.auto_restart)
        attribute = {
            "tokens": "generation_tokens_per_s",
            "requests": "requests_per_minute",
            "cpu": "cpu_percent",
            "ram": "rss_mb",
        }[key]
        value = self._figure(item, attribute)
        return -1.0 if value is None else value

    def _tooltip(self, item: _Row) -> str:
        routed = self.via_router(item.name)
        state_text = (
            _ROUTER_STATE[routed.state][0] if routed is not None else _STATE_TEXT.get(item.state, item.state)
        )
        lines = [f"<b>{html.escape(item.name)}</b> — {state_text}"]
        if routed is not None:
            lines.append(
                'Served by the library router: put this name in a request\'s "model"; '
                "its figures are its own process's (asked through the router)"
            )
        if item.name == ROUTER_NAME and item.state in _ACTIVE:
            lines.append("CPU and RAM include the models it loaded (its child processes)")
        instance = self.instance(item.name)
        if item.state == "error":
            if item.reason:
                first = html.escape(item.reason.splitlines()[0])
                lines.append(f"<span style='color:{status_color('error').name()}'>{first}</span>")
            tail = self.log_tail(item.name, 6)
            if tail:
                text = html.escape("\n".join(tail))
                lines.append(f"<pre style='font-size:small'>{text}</pre>")
        elif instance is not None and item.state in _ACTIVE:
            if instance.url:
                lines.append(f"URL: {html.escape(instance.url)}")
            if instance.pid:
                lines.append(f"PID: {instance.pid}")
            colour = status_color("loading").name()
            for warning in self.warnings_of(item.name):
                lines.append(f"<span style='color:{colour}'>⚠ {html.escape(warning)}</span>")
        if item.bad_port is not None and item.state not in _ACTIVE:
            lines.append(
                f"The stored port {html.escape(item.bad_port, quote=False)} is not a port: fix it in the "
                "Configuration tab before starting"
            )
        shown = item.state in _ACTIVE or routed is not None
        vram = self._figure(item, "vram_mb")
        if vram is not None and shown:
            lines.append(f"VRAM: {vram:,.0f} MB")
        slots = self._figure(item, "busy_slots"), self._figure(item, "total_slots")
        if slots[1] is not None and shown:
            busy = "n/a" if slots[0] is None else f"{slots[0]:.0f}"
            lines.append(f"Slots busy: {busy} of {slots[1]:.0f}")
        if item.auto_restart:
            lines.append("Auto-restart after a crash: on")
        if not item.configured:
            lines.append("<i>Not in the model library (started elsewhere)</i>")
        return "<br>".join(lines)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        item = self._rows[index.row()]
        key = COLUMNS[index.column()][1]
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(item, key)
        if role == NameRole:
            return item.name
        if role == StateRole:
            return item.state
        if role == SortRole:
            return self._sort_value(item, key)
        routed = self.via_router(item.name) if key == "state" else None
        shown_state = _ROUTER_STATE[routed.state][1] if routed is not None else item.state
        if role == Qt.ItemDataRole.DecorationRole and key == "state":
            return status_icon(shown_state)
        if role == Qt.ItemDataRole.ForegroundRole and key == "state" and shown_state != "stopped":
            return status_color(shown_state)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(item)
        if role == Qt.ItemDataRole.TextAlignmentRole and key == "auto_restart":
            return int(Qt.AlignmentFlag.AlignCenter)  # an on/off mark, not a figure
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() >= COLUMN["port"]:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class InstancesView(QWidget):
    """The instances table with its actions, context menu and error detail pane.

    Args:
        model: The table model.
        parent: The Qt parent.
        show_buttons: Show start/stop/restart buttons above the table (off where a toolbar has them).
    """

    configureRequested = Signal(str)
    """The user asked to open a model's configuration (double-click, or "Configure…")."""

    currentInstanceChanged = Signal(str)
    """The selected row changed; carries its name ("" when nothing is selected)."""

    showLogRequested = Signal(str)
    """The user asked to see an instance's log."""

    message = Signal(str)
    """Something to tell the user, in one line (e.g. a start that was refused)."""

    refused = Signal(str, str, str, bool)
    """A start, stop or restart was refused: (verb, model name, why, whether the reason is that no
    llama-server binary was found). Emitted before :attr:`message`, with the same text; the main
    window shows this one, in full, in a message box."""

    libraryRequested = Signal()
    """The user asked to go to the model library (the empty state's button)."""

    fixRequested = Signal(str, object)
    """The user took a crash diagnosis's one-click fix: (model name, ``{column: value}`` to set);
    whoever owns the library applies it and starts the model again."""

    def __init__(
        self, model: InstancesModel, parent: QWidget | None = None, *, show_buttons: bool = True
    ) -> None:
        super().__init__(parent)
        self.model = model
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(model)
        self.proxy.setSortRole(SortRole)
        self.proxy.setFilterKeyColumn(COLUMN["name"])
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

        self.start_action = QAction(action_icon("start"), "&Start", self)
        self.start_action.setShortcut(QKeySequence("Ctrl+R"))
        self.start_action.setToolTip("Start the selected model's llama-server (Ctrl+R)")
        self.stop_action = QAction(action_icon("stop"), "S&top", self)
        self.stop_action.setShortcut(QKeySequence("Ctrl+T"))
        self.stop_action.setToolTip("Stop the selected model's llama-server (Ctrl+T)")
        self.restart_action = QAction(action_icon("restart"), "Rest&art", self)
        self.restart_action.setShortcut(QKeySequence("Ctrl+Shift+R"))
        self.restart_action.setToolTip("Restart the selected model's llama-server (Ctrl+Shift+R)")
        self._default_tips = {a: a.toolTip() for a in (self.start_action, self.restart_action)}
        self._start_blocked: dict[str, str] = {}
        #: Asked before a Start: ``False`` means it takes the start over (``ui/worker_start``).
        self.before_start: Callable[[str], bool] | None = None
        self.configure_action = QAction("&Configure…", self)
        self.configure_action.setShortcut(QKeySequence("Ctrl+E"))
        self.log_action = QAction(action_icon("logs"), "Show &log", self)
        self.copy_url_action = QAction("Copy server &URL", self)
        self.copy_url_action.setToolTip("Copy the selected model's server URL (while it runs)")
        self.open_web_ui_action = QAction("Open &web UI", self)
        self.open_web_ui_action.setToolTip("Open the selected model's own web page (llama-server's chat UI)")
        self.auto_restart_action = QAction("Auto-restart after a &crash", self)
        self.auto_restart_action.setCheckable(True)
        self.auto_restart_action.setToolTip("Start the selected model's server again when it crashes")
        for action in (self.start_action, self.stop_action, self.restart_action, self.configure_action):
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.start_action.triggered.connect(lambda: self._act("start"))
        self.stop_action.triggered.connect(lambda: self._act("stop"))
        self.restart_action.triggered.connect(lambda: self._act("restart"))
        self.configure_action.triggered.connect(self._configure_current)
        self.log_action.triggered.connect(lambda: self.showLogRequested.emit(self.current_name()))
        self.copy_url_action.triggered.connect(self._copy_url)
        self.open_web_ui_action.triggered.connect(self._open_web_ui)
        self.web_ui = WebUiOpener(self)
        self.web_ui.noWebUi.connect(self._no_web_ui)
        # triggered, not toggled: setChecked from the row (_update_actions) writes nothing
        self.auto_restart_action.triggered.connect(self._set_auto_restart)

        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter models…")
        self.filter_edit.setToolTip("Type part of a model's name; Esc clears")
        self.filter_edit.setMaximumWidth(260)
        self.filter_edit.textChanged.connect(self.proxy.setFilterFixedString)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        for action in (self.start_action, self.stop_action, self.restart_action) if show_buttons else ():
            button = QToolButton()
            button.setDefaultAction(action)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.summary_label = QLabel()
        self.summary_label.setObjectName("instancesSummary")
        buttons.addWidget(self.summary_label)
        buttons.addSpacing(12)
        buttons.addWidget(self.filter_edit)

        self.table = QTableView()
        self.table.setObjectName("instancesTable")
        self.table.setModel(self.proxy)
        # library order until the user sorts: the indicator first, or enabling sorting sorts every row
        # by the first column (a few hundred data() calls into Python, thrown away at once)
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 10)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(COLUMN["name"], QHeaderView.ResizeMode.Stretch)
        header.setHighlightSections(False)
        widths = {
            "state": 124,
            "port": 64,
            "uptime": 80,
            "tokens": 80,
            "requests": 76,
            "cpu": 64,
            "ram": 88,
            "auto_restart": 92,
        }
        for key, width in widths.items():
            self.table.setColumnWidth(COLUMN[key], width)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._show_context_menu)
        self.table.doubleClicked.connect(self._on_double_click)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_changed)

        self.detail = QFrame()
        self.detail.setObjectName("errorDetail")
        self.detail.setFrameShape(QFrame.Shape.StyledPanel)
        self.detail_title = QLabel()
        self.detail_title.setTextFormat(Qt.TextFormat.RichText)
        self.detail_title.setWordWrap(True)
        self.detail_title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail_log = QPlainTextEdit()
        self.detail_log.setReadOnly(True)
        self.detail_log.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.detail_log.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.detail_log.setMaximumHeight(self.fontMetrics().height() * 8)
        self.detail_highlighter = LogHighlighter(self.detail_log.document())  # errors in red, as in the log
        detail_layout = QVBoxLayout(self.detail)
        detail_layout.setContentsMargins(8, 6, 8, 6)
        detail_layout.addWidget(self.detail_title)
        # a known cause's fix in one click (e.g. weight repacking off), or its configuration opened
        self.fix_button = QPushButton()
        self.fix_button.setObjectName("diagnosisFix")
        self.fix_button.clicked.connect(self._apply_fix)
        self.fix_button.hide()
        fix_row = QHBoxLayout()
        fix_row.addWidget(self.fix_button)
        fix_row.addStretch(1)
        detail_layout.addLayout(fix_row)
        detail_layout.addWidget(self.detail_log)
        self.detail.hide()

        # a running server's warnings (e.g. reachable from other machines without an API key)
        self.warning_label = QLabel()
        self.warning_label.setObjectName("instanceWarning")
        self.warning_label.setTextFormat(Qt.TextFormat.RichText)
        self.warning_label.setWordWrap(True)
        self.warning_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.warning_label.hide()
        self.placement_label = PlacementLabel()  # what --fit chose for the selected run

        # shown instead of the table while there is no model at all (a first run): made when needed
        self._empty_state: QScrollArea | None = None
        self._library_offered = False

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.detail)
        layout.addWidget(self.warning_label)
        layout.addWidget(self.placement_label)

        model.dataChanged.connect(self._on_data_changed)
        # a reset (the library re-read after an edit) must not lose the selection
        self._selected_before_reset = ""
        model.modelAboutToBeReset.connect(self._remember_selection)
        model.modelReset.connect(self._restore_selection)
        model.modelReset.connect(self._on_model_changed)
        model.rowsInserted.connect(self._on_model_changed)
        model.rowsRemoved.connect(self._on_model_changed)
        if model.rowCount():
            self.table.selectRow(0)
        self._on_model_changed()

    @property
    def empty_state(self) -> QScrollArea:
        """What shows instead of the table while there is no model (made when first needed)."""
        if self._empty_state is None:
            self._make_empty_state()
        assert self._empty_state is not None
        return self._empty_state

    @property
    def empty_label(self) -> QLabel:
        """The empty state's text."""
        self.empty_state  # noqa: B018 - made now if it was not yet
        return self._empty_label

    @property
    def library_button(self) -> QPushButton:
        """The empty state's "Go to the Library" button (shown while a library is offered)."""
        self.empty_state  # noqa: B018 - made now if it was not yet
        return self._library_button

    def _make_empty_state(self) -> None:
        label = QLabel(EMPTY_TEXT)
        label.setObjectName("instancesEmptyText")
        label.setTextFormat(Qt.TextFormat.RichText)
        label.setWordWrap(True)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        button = QPushButton("Go to the Library")
        button.setObjectName("goToLibrary")
        button.setToolTip("Open the Library tab to add models")
        button.clicked.connect(lambda: self.libraryRequested.emit())
        button.setVisible(self._library_offered)  # see set_library_offered
        page = QWidget()
        page_layout = QVBoxLayout(page)
        page_layout.addStretch(1)
        page_layout.addWidget(label)
        page_layout.addWidget(button, 0, Qt.AlignmentFlag.AlignHCenter)
        page_layout.addStretch(2)
        empty_state = QScrollArea()  # a short window scrolls the text rather than cutting it
        empty_state.setObjectName("instancesEmpty")
        empty_state.setFrameShape(QFrame.Shape.NoFrame)
        empty_state.setWidgetResizable(True)
        empty_state.setWidget(page)
        empty_state.hide()
        layout = cast(QVBoxLayout, self.layout())
        layout.insertWidget(layout.indexOf(self.table) + 1, empty_state, 1)  # in the table's place
        self._empty_label, self._library_button = label, button
        self._empty_state = empty_state

    def add_footer(self, widget: QWidget) -> None:
        """Put ``widget`` under the table (the library router's panel)."""
        layout = self.layout()
        assert layout is not None
        layout.addWidget(widget)

    # -- selection ----------------------------------------------------------------------------------

    def _remember_selection(self) -> None:
        self._selected_before_reset = self.current_name()

    def _restore_selection(self) -> None:
        if self._selected_before_reset and not self.current_name():
            self.select(self._selected_before_reset)
        if not self.current_name() and self.proxy.rowCount():
            # e.g. the first model was just added: it is ready to start without a click
            self.table.selectRow(0)

    def current_name(self) -> str:
        """The selected model's name ("" when none)."""
        index = self.table.currentIndex()
        return str(index.data(NameRole)) if index.isValid() else ""

    def select(self, name: str) -> bool:
        """Select the row of ``name``; returns whether it exists."""
        row = self.model.row_of(name)
        if row < 0:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if not index.isValid():
            return False
        self.table.setCurrentIndex(index)
        self.table.selectRow(index.row())
        return True

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._update_actions()
        self._update_detail()
        self.currentInstanceChanged.emit(str(current.data(NameRole)) if current.isValid() else "")

    def _on_data_changed(self, top_left: QModelIndex, bottom_right: QModelIndex, *_roles: Any) -> None:
        if top_left.column() <= COLUMN["state"] <= bottom_right.column():  # not the figures ticking
            self._on_model_changed()

    def _on_model_changed(self, *args: Any) -> None:
        self._update_actions()
        self._update_detail()
        counts = self.model.state_counts()
        parts = [count_text(self.model.rowCount(), "model")]
        parts += [f"{counts[s]} {s}" for s in ("running", "loading", "error") if counts.get(s)]
        self.summary_label.setText(" · ".join(parts))
        empty = self.model.rowCount() == 0
        if empty or self._empty_state is not None:
            self.empty_state.setVisible(empty)
        for widget in (self.table, self.filter_edit, self.summary_label):
            widget.setVisible(not empty)

    @property
    def showing_empty_state(self) -> bool:
        """True while the view explains how to add a model instead of showing an empty table."""
        return self._empty_state is not None and not self._empty_state.isHidden()

    def set_library_offered(self, offered: bool) -> None:
        """Show the empty state's "Go to the Library" button (there is a library to go to)."""
        self._library_offered = offered
        if self._empty_state is not None:
            self.library_button.setVisible(offered)

    def set_start_blocked(self, name: str | None, problem: str | None) -> None:
        """Start and Restart are not offered for ``name`` while its configuration has ``problem``.

        The parameter editor says so for the model it shows (one at a time: ``None`` lifts it).
        """
        self._start_blocked = {name: problem} if name and problem else {}
        self._update_actions()

    def start_problem(self, name: str) -> str | None:
        """Why ``name`` cannot start now (the editor found an error in it), or ``None``."""
        return self._start_blocked.get(name)

    def _update_actions(self) -> None:
        name = self.current_name()
        state = self.model.state_of(name) if name else ""
        has_manager = self.model.manager is not None
        problem = self.start_problem(name) if name else None
        self.start_action.setEnabled(
            has_manager and bool(name) and state in ("stopped", "error") and problem is None
        )
        # an instance in error with an automatic restart on its way can be stopped: that cancels it
        instance = self.model.instance(name) if name else None
        pending = instance is not None and instance.restart_pending
        # a remote server is attached and detached; one that does not answer is still attached
        remote = bool(name) and self.model.remote_url_of(name) is not None
        attached = remote and instance is not None and instance.active
        self.start_action.setText("&Attach" if remote else "&Start")
        self.stop_action.setText("De&tach" if remote else "S&top")
        if attached:
            self.start_action.setEnabled(False)
        self.stop_action.setEnabled(has_manager and (state in _ACTIVE or pending or attached))
        self.restart_action.setEnabled(
            has_manager and bool(name) and state in ("running", "loading", "error") and problem is None
        )
        tip = f"{name} cannot start: {problem}" if problem else ""
        for action, default in self._default_tips.items():
            action.setToolTip(tip or default)
            action.setStatusTip(tip)
        self.configure_action.setEnabled(bool(name))
        self.log_action.setEnabled(bool(name))
        running = state == "running" and bool(self._url_of(name))
        self.copy_url_action.setEnabled(running)
        self.open_web_ui_action.setEnabled(running)
        switch = self.model.manager
        configured = bool(name) and self.model.is_configured(name)
        self.auto_restart_action.setEnabled(configured and isinstance(switch, AutoRestartSwitch))
        self.auto_restart_action.setChecked(configured and self.model.auto_restart_of(name))
        if not has_manager:
            tip = "The instance manager has not started yet"
            for action in (self.start_action, self.stop_action, self.restart_action):
                action.setStatusTip(tip)

    def _update_detail(self) -> None:
        name = self.current_name()
        self._update_warning(name)
        self.placement_label.show_for(
            name, self.model.instance(name), self.model.state_of(name) if name else ""
        )
        if not name or self.model.state_of(name) != "error":
            self.detail.hide()
            return
        # The first line says what happened; a crash reason goes on with the log tail, which the
        # box below shows in full.
        reason = (self.model.reason_of(name) or "The server stopped with an error.").splitlines()[0]
        colour = status_color("error").name()
        self.detail_title.setText(
            f"<b style='color:{colour}'>{html.escape(name)} failed:</b> {html.escape(reason)}"
        )
        self._show_fix(name)
        tail = self.model.log_tail(name)
        empty = "(its log stays on its own machine)" if self.model.remote_url_of(name) else "(no log output)"
        self.detail_log.setPlainText("\n".join(tail) if tail else empty)
        self.detail_log.verticalScrollBar().setValue(self.detail_log.verticalScrollBar().maximum())
        self.detail.show()

    def _update_warning(self, name: str) -> None:
        warnings = self.model.warnings_of(name) if name else []
        if not warnings:
            self.warning_label.hide()
            return
        colour = status_color("loading").name()
        text = "<br>".join(f"⚠ {html.escape(w)}" for w in warnings)
        self.warning_label.setText(f"<b style='color:{colour}'>{html.escape(name)}:</b> {text}")
        self.warning_label.show()

    # -- actions ----------------------------------------------------------------------------------

    def _act(self, verb: str) -> None:
        name = self.current_name()
        manager = self.model.manager
        if not name or manager is None:  # the actions are disabled until the manager has started
            return
        operations = {"start": manager.start, "stop": manager.stop, "restart": manager.restart}
        if verb == "start" and self.before_start is not None and not self.before_start(name):
            return
        try:
            operations[verb](name)
        except Exception as exc:
            text = failure_text(verb, name, exc)
            self.refused.emit(verb, name, text, isinstance(exc, MissingBinaryError))
            self.message.emit(text)
        self._update_actions()

    def _show_fix(self, name: str) -> None:
        instance = self.model.instance(name)
        action = instance.diagnosis.action if instance is not None and instance.diagnosis else None
        text = fix_text(action)
        self.fix_button.setVisible(text is not None)
        if text is not None:
            self.fix_button.setText(text)

    def _apply_fix(self) -> None:
        name = self.current_name()
        instance = self.model.instance(name) if name else None
        action = instance.diagnosis.action if instance is not None and instance.diagnosis else None
        if not name or not action:
            return
        if "set" in action:
            self.fixRequested.emit(name, dict(action["set"]))
        elif action.get("open") == "configuration":
            self.configureRequested.emit(name)

    def _configure_current(self) -> None:
        name = self.current_name()
        if name:
            self.configureRequested.emit(name)

    def _on_double_click(self, index: QModelIndex) -> None:
        if index.isValid():
            self.configureRequested.emit(str(index.data(NameRole)))

    def _url_of(self, name: str) -> str:
        instance = self.model.instance(name) if name else None
        return instance.url if instance is not None else ""

    def _copy_url(self) -> None:
        url = self._url_of(self.current_name())
        if url:
            QGuiApplication.clipboard().setText(url)
            self.message.emit(f"Copied {url}")

    def _open_web_ui(self) -> None:
        url = self._url_of(self.current_name())
        if url:  # llama-server serves its own web UI at "/"
            self.web_ui.open(url)

    def _no_web_ui(self, url: str, text: str) -> None:
        name = next((n for n in self.model.names() if self._url_of(n) == url), url)
        self.refused.emit("open the web UI of", name, text, False)
        self.message.emit(text)

    def _set_auto_restart(self, enabled: bool) -> None:
        name = self.current_name()
        switch = self.model.manager
        if not name or not isinstance(switch, AutoRestartSwitch):
            return
        try:
            switch.set_autorestart(name, enabled)  # a running instance follows at once
        except Exception as exc:
            self.message.emit(f"Could not change auto-restart of {name}: {exc}")
        else:
            self.message.emit(f"Auto-restart after a crash {'on' if enabled else 'off'} for {name}")
        self.model.refresh()
        self._update_actions()

    def context_menu(self) -> QMenu:
        """The menu the table shows on right-click (for the selected row)."""
        menu = QMenu(self)
        menu.addAction(self.start_action)
        menu.addAction(self.stop_action)
        menu.addAction(self.restart_action)
        menu.addSeparator()
        menu.addAction(self.open_web_ui_action)
        menu.addAction(self.copy_url_action)
        menu.addSeparator()
        menu.addAction(self.configure_action)
        menu.addAction(self.log_action)
        menu.addAction(self.auto_restart_action)
        return menu

    def keyPressEvent(self, event: Any) -> None:
        if event.key() == Qt.Key.Key_Escape and self.filter_edit.text():
            self.filter_edit.clear()
            return
        super().keyPressEvent(event)

    def _show_context_menu(self, pos: QPoint) -> None:
        index = self.table.indexAt(pos)
        if index.isValid():
            self.table.selectRow(index.row())
        menu = self.context_menu()
        menu.popup(self.table.viewport().mapToGlobal(pos))
