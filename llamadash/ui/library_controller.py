"""Puts the model library and the parameter editor into the main window and connects them.

The library is a tab next to the instances, and the editor a third tab (it needs the room of the
central area: ~170 rows with four columns); it opens on double-click (in either view), Ctrl+E or
"Configure…". The editor checks and previews for the configured llama-server build, saves every
edit at once, and offers "Restart to apply" while the model's server runs and the new configuration
can start. A restart of a running server is planned (:func:`~llamadash.core.launch.plan_launch`)
before anything is stopped: one that could not start again is refused with the reason, and the
working server is kept. When no llama-server can be found, the editor lists that as a warning (with
a way to the settings) and follows the settings when the binary is set there.

The library tab and the editor change the library through one core
:class:`~llamadash.core.library_service.Library`. Its ``is_running`` is the window's knowledge: an
active instance of the instance manager, or (before the manager is there, and for servers of another
llamadash) the process records, which the CLI asks too.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Slot

from llamadash.core.library_service import Library, running_by_process_records
from llamadash.core.launch import LaunchError, MissingBinaryError, plan_launch
from llamadash.core.llama_server import (
    LlamaServerNotFound,
    configured_capabilities,
    find_llama_server,
)
from llamadash.core.remote import is_remote
from llamadash.core.states import ACTIVE_STATES
from llamadash.services.protocols import Manager
from llamadash.ui.perf_actions import PerfActions
from llamadash.ui.instances_view import failure_text

if TYPE_CHECKING:  # imported when the Library tab is first shown, or a model first configured
    from llamadash.ui.library_view import LibraryView
    from llamadash.ui.param_editor import ParamEditor

_log = logging.getLogger(__name__)
#: What the editor lists when no llama-server is found anywhere llamadash looks.
NO_BINARY_PROBLEM = "no llama-server found: set it in File ▸ Settings ▸ llama-server binary"


class LibraryController(QObject):
    """Owns the library tab and the editor of one main window; the database module is the store."""

    def __init__(self, window: Any, store: Any, data_dir: Path) -> None:
        super().__init__(window)
        self._window = window
        self._store = store
        self._data_dir = data_dir
        self._manager: Manager | None = None
        self.service = Library(store, is_running=self._is_running)
        self._library: LibraryView | None = None
        self.editor: ParamEditor | None = None
        # made when the tab is first shown (or `library` is asked for): not while the window is built
        window.set_library_widget(self._make_library, "Library")
        window.configureRequested.connect(self.configure)
        window.instances_view.fixRequested.connect(self._apply_fix)
        self._binary_setting = window.settings.llama_server_path
        window.settingsChanged.connect(self._on_settings_changed)
        self.perf = PerfActions(self)  # Check fit, Benchmark, Find the fastest settings (its button
        # goes into the Library tab when that is made)

    @property
    def library(self) -> LibraryView:
        """The Library tab's view (made now if it was not yet)."""
        if self._library is None:
            self._window.library_widget  # noqa: B018 - the window's tab makes it (see _make_library)
        assert self._library is not None
        return self._library

    def _make_library(self) -> LibraryView:
        from llamadash.ui.library_view import LibraryView

        library = LibraryView(self._store, service=self.service)
        library.modelActivated.connect(self._on_library_activated)
        library.libraryChanged.connect(self._window.refresh_models)
        library.libraryChanged.connect(self._follow_edited_model)
        library.set_auto_restart_switch(self._manager)  # a running server follows the switch at once
        library.add_tool_button(self.perf.button)
        self._library = library
        return library

    def _refresh_library(self, select_id: int | None = None) -> None:
        if self._library is not None:  # one not made yet reads the library when it is
            self._library.refresh(select_id=select_id)

    # ------------------------------------------------------------------------------------------
    def set_manager(self, manager: Manager | None) -> None:
        """Follow the instance manager, so the editor knows when its model's server runs."""
        self._manager = manager
        if self._library is not None:
            self._library.set_auto_restart_switch(manager)  # a running server follows the switch at once
        if manager is not None:
            manager.stateChanged.connect(self._on_state_changed)

    def capabilities(self) -> tuple[Any | None, str | None]:
        """The configured llama-server's capabilities (cached per binary on disk), or ``(None, None)``."""
        return configured_capabilities(self._window.settings.llama_server_path, self._data_dir / "cache")

    def binary_problem(self) -> str | None:
        """Why the editor cannot check against a llama-server build, or ``None`` when it can.

        Only the finding is asked here (cheap); :meth:`capabilities` says whether the binary answered.
        """
        configured = self._window.settings.llama_server_path
        try:
            find_llama_server(configured or None)
        except LlamaServerNotFound as exc:
            if configured or os.environ.get("LLAMA_SERVER_BIN"):
                return f"{exc}: change it in File ▸ Settings ▸ llama-server binary"
            return NO_BINARY_PROBLEM
        return None

    def _build(self) -> tuple[Any | None, str | None, str | None]:
        """``(capabilities, binary, problem)`` for the editor."""
        problem = self.binary_problem()
        if problem is not None:
            return None, None, problem
        caps, binary = self.capabilities()
        if caps is None:
            problem = (
                "the llama-server found did not say which flags it takes: parameters are checked "
                "against llamadash's list only (see File ▸ Settings ▸ llama-server binary)"
            )
        return caps, binary, problem

    @Slot(str)
    def configure(self, name: str) -> None:
        """Load ``name`` into the editor and show it."""
        model = self._store.get_model_by_name(name)
        if model is None:
            return
        caps, binary, problem = self._build()
        if self.editor is None:
            from llamadash.ui.param_editor import ParamEditor

            self.editor = ParamEditor(
                model, save=self._save_edit, capabilities=caps, binary=binary, binary_problem=problem
            )
            self.editor.restartRequested.connect(self._on_restart_requested)
            self.editor.saved.connect(self._on_saved)
            self.editor.startStatusChanged.connect(self._on_start_status)
            self.editor.settingsRequested.connect(self._open_binary_settings)
            self.editor.add_tool_button(self.perf.editor_button(self.editor))
            self._window.set_editor_widget(self.editor)
        else:
            self.editor.set_capabilities(caps, binary, binary_problem=problem)
            self.editor.set_model(model)
        self.editor.set_running(self._is_active(name))
        self._on_start_status(
            self.editor.model_name, self.editor.start_allowed, self.editor.start_problem or ""
        )
        self._set_title(name)
        self._window.workspace.setCurrentWidget(self.editor)

    def _save_edit(self, model_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Save one edit of the editor. A change of custom flags is applied to the flags stored
        *now*, in one write transaction: a flag another process set meanwhile is not lost."""
        loaded: dict[str, Any] = {}
        if "custom_params" in changes and self.editor is not None:
            loaded = self.editor.param_model.config().get("custom_params") or {}  # before this edit
        return self.service.save_edit(model_id, changes, loaded)

    def _set_title(self, name: str | None) -> None:
        if self.editor is not None:
            workspace = self._window.workspace
            workspace.setTabText(
                workspace.indexOf(self.editor), f"Configuration — {name}" if name else "Configuration"
            )

    @Slot()
    def _follow_edited_model(self) -> None:
        """The library changed: the edited model may have been renamed or deleted."""
        if self.editor is None or not self.editor.has_model or self.editor.model_id is None:
            return
        model = self._store.get_model(self.editor.model_id)
        if model is None:
            self.editor.clear_model(f"{self.editor.model_name} was deleted from the library.")
            self._set_title(None)
        elif model["name"] != self.editor.model_name:
            self.editor.set_model_name(model["name"])
            self._set_title(model["name"])
            self._on_start_status(model["name"], self.editor.start_allowed, self.editor.start_problem or "")

    @Slot(object, bool, str)
    def _on_start_status(self, name: str | None, allowed: bool, problem: str) -> None:
        """The editor found (or no longer finds) an error that keeps its model from starting."""
        model = self._store.get_model_by_name(name) if name else None
        if model is not None and is_remote(model):
            allowed = True  # attached, never started: its llama-server settings are the other machine's
        self._window.instances_view.set_start_blocked(
            name, None if allowed else (problem or "invalid configuration")
        )

    @Slot(object)
    def _on_settings_changed(self, settings: Any) -> None:
        """The llama-server binary was set (or changed): check the open model against it."""
        if settings.llama_server_path == self._binary_setting:
            return
        self._binary_setting = settings.llama_server_path
        if self.editor is not None and self.editor.has_model:
            caps, binary, problem = self._build()
            self.editor.set_capabilities(caps, binary, binary_problem=problem)

    @Slot()
    def _open_binary_settings(self) -> None:
        self._window.show_settings().focus_binary()

    # ------------------------------------------------------------------------------------------
    def _is_active(self, name: str) -> bool:
        """Whether the instance manager has an active instance of ``name``."""
        instance = self._manager.instance(name) if self._manager is not None else None
        return instance is not None and instance.state in ACTIVE_STATES

    def _is_running(self, name: str) -> bool:
        """The library's ``is_running``: this window's manager, else the process records (a server
        of another llamadash, or one whose start the manager has not reported yet)."""
        return self._is_active(name) or running_by_process_records(name)

    def _editing(self) -> dict[str, Any] | None:
        if self.editor is None or self.editor.model_id is None:
            return None
        return self._store.get_model(self.editor.model_id)

    @Slot(object)
    def _on_library_activated(self, model: Any) -> None:
        if model:
            self._window.open_configuration(model["name"])

    @Slot(str, str, str)
    def _on_state_changed(self, name: str, state: str, _reason: str) -> None:
        self._refresh_library()  # the status column (the manager has written it to the database)
        model = self._editing()
        if model is not None and model["name"] == name and self.editor is not None:
            self.editor.set_running(state in ACTIVE_STATES)

    @Slot(int, dict)
    def _on_saved(self, _model_id: int, _changes: dict) -> None:
        self._window.refresh_models()
        self._refresh_library(select_id=self.editor.model_id if self.editor else None)

    @Slot(str, object)
    def _apply_fix(self, name: str, values: dict[str, Any]) -> None:
        """A crash diagnosis's one-click fix: set ``values`` on the model (as the editor would) and
        start it again; a refusal is shown, and nothing else changes."""
        try:
            self.service.set_parameters(name, values)
        except Exception as exc:
            self._window.show_refusal("start", name, f"Could not change {name}: {exc}", False)
            return
        self._window.refresh_models()
        self._refresh_library()
        edited = self._editing()
        if edited is not None and edited["name"] == name and self.editor is not None:
            self.editor.set_model(edited)  # the editor shows the value just set
        if self._manager is None:
            return
        try:
            self._manager.start(name)
        except Exception as exc:
            self._window.show_refusal(
                "start", name, failure_text("start", name, exc), isinstance(exc, MissingBinaryError)
            )

    @Slot(int)
    def _on_restart_requested(self, model_id: int) -> None:
        model = self._store.get_model(model_id)
        if model is None or self._manager is None:
            return
        name = model["name"]
        if self._is_active(name):
            # the manager stops first and starts after: a start that would be refused must not
            # cost the working server (the editor offers no restart then; this guards a stale offer)
            caps, binary, problem = self._build()
            try:
                plan_launch(model, caps, binary, name=name, binary_problem=problem or "")
            except LaunchError as exc:
                text = f"{failure_text('restart', name, exc)}\n\nThe running server was kept."
                self._window.show_refusal("restart", name, text, isinstance(exc, MissingBinaryError))
                return
        try:
            self._manager.restart(name)
        except Exception as exc:  # the whole reason, and a way to Settings for a missing binary
            self._window.show_refusal(
                "restart", name, failure_text("restart", name, exc), isinstance(exc, MissingBinaryError)
            )
