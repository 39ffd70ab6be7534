"""The Library's Performance menu: Check fit, Benchmark, Find the fastest settings.

One object per window (made by :class:`~llamadash.ui.library_controller.LibraryController`): it
knows the selected model, the llama-server binary (the tools are beside it), the data folder (the
fit cache) and the editor, through which the tuner's winner is applied as one undo step.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QToolButton, QWidget

from llamadash.core.llama_server import LlamaServerNotFound, LocatedBinary, find_llama_server

if TYPE_CHECKING:  # the dialogs (and llamadash.core.perf) are imported when one is first opened
    from llamadash.ui.perf_dialogs import BenchDialog, FitDialog, TunerDialog

__all__ = ["PerfActions"]

#: The undo step's text in the editor ("Undo apply the fastest settings").
APPLY_STEP = "apply the fastest settings"


class PerfActions(QObject):
    """The three actions and their dialogs, for the Library's selected model."""

    def __init__(self, controller: Any) -> None:
        super().__init__(controller)
        self._controller = controller
        self.check_fit_action = QAction("Check fit\u2026", self)
        self.check_fit_action.setStatusTip("Ask llama-fit-params whether the model fits in memory")
        self.check_fit_action.triggered.connect(lambda: self.open_fit())
        self.bench_action = QAction("Benchmark\u2026", self)
        self.bench_action.setStatusTip("Measure prompt and generation speed with llama-bench")
        self.bench_action.triggered.connect(lambda: self.open_bench())
        self.tune_action = QAction("Find the fastest settings\u2026", self)
        self.tune_action.setStatusTip("Try several settings with llama-bench and apply the fastest")
        self.tune_action.triggered.connect(lambda: self.open_tuner())
        self.button = QToolButton()
        self.button.setObjectName("performanceButton")
        self.button.setText("Performance")
        self.button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.button)
        for action in (self.check_fit_action, self.bench_action, self.tune_action):
            menu.addAction(action)
        self.button.setMenu(menu)
        self.dialog: QWidget | None = None  # the last one opened (tests, screenshots)

    def editor_button(self, editor: Any) -> QToolButton:
        """The same three actions for the model open in ``editor`` (its changes are saved at once)."""
        button = QToolButton()
        button.setObjectName("editorPerformanceButton")
        button.setText("Performance")
        button.setToolTip("Check fit, benchmark, or find the fastest settings of this model")
        button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(button)

        def edited() -> dict[str, Any] | None:
            model_id = editor.model_id
            return self._controller._store.get_model(model_id) if model_id is not None else None

        menu.addAction("Check fit\u2026", lambda: self.open_fit(edited()))
        menu.addAction("Benchmark\u2026", lambda: self.open_bench(edited()))
        menu.addAction("Find the fastest settings\u2026", lambda: self.open_tuner(edited()))
        button.setMenu(menu)
        return button

    # -- what the dialogs need ------------------------------------------------------------------
    def _selected(self) -> dict[str, Any] | None:
        model = self._controller.library.selected_model()
        if model is None:
            return None
        return self._controller._store.get_model(model["id"]) or model

    def _located(self) -> LocatedBinary | None:
        try:
            return find_llama_server(self._controller._window.settings.llama_server_path or None)
        except LlamaServerNotFound:
            return None

    def _binary(self) -> str | None:
        located = self._located()
        return str(located.path) if located is not None else None

    def _build(self) -> str | None:
        located = self._located()
        if located is None or not located.label:
            return None
        return located.label.rsplit(" ", 1)[-1]

    @property
    def _parent(self) -> QWidget | None:
        window = self._controller._window
        return window if isinstance(window, QWidget) else None

    # -- the dialogs ----------------------------------------------------------------------------
    def open_fit(self, model: dict[str, Any] | None = None) -> FitDialog | None:
        """Check the fit of ``model`` (default: the Library's selection)."""
        model = model or self._selected()
        if model is None:
            return None
        from llamadash.ui.perf_dialogs import FitDialog

        cache = Path(self._controller._data_dir) / "cache"
        dialog = FitDialog(model, self._binary(), cache, self._parent)
        self._show(dialog)
        return dialog

    def open_bench(self, model: dict[str, Any] | None = None) -> BenchDialog | None:
        model = model or self._selected()
        if model is None:
            return None
        from llamadash.ui.perf_dialogs import BenchDialog

        dialog = BenchDialog(
            model,
            self._binary(),
            self._parent,
            build_label=self._build(),
            running=self._controller._is_running,
        )
        self._show(dialog)
        return dialog

    def open_tuner(self, model: dict[str, Any] | None = None) -> TunerDialog | None:
        model = model or self._selected()
        if model is None:
            return None
        from llamadash.ui.perf_dialogs import TunerDialog

        name = str(model["name"])
        dialog = TunerDialog(
            model,
            self._binary(),
            lambda changes: self.apply(name, changes),
            self._parent,
            build_label=self._build(),
            running=self._controller._is_running,
        )
        self._show(dialog)
        return dialog

    def _show(self, dialog: QWidget) -> None:
        self.dialog = dialog
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        dialog.show()

    # -- applying -------------------------------------------------------------------------------
    def apply(self, name: str, changes: dict[str, Any]) -> str | None:
        """Write ``changes`` into ``name``'s configuration through the editor: one undo step.

        Returns why it was refused, or ``None``.
        """
        controller = self._controller
        controller.configure(name)  # the editor shows the model (and its undo history)
        editor = controller.editor
        if editor is None or editor.model_name != name:
            return f"the configuration of {name} could not be opened"
        stack = editor.param_model.undo_stack
        stack.beginMacro(APPLY_STEP)
        try:
            refused = [key for key, value in changes.items() if not editor.param_model.set_value(key, value)]
        finally:
            stack.endMacro()
        current = editor.param_model.config()
        wrong = [key for key in refused if current.get(key) != changes[key]]
        return f"not accepted: {', '.join(wrong)}" if wrong else None
