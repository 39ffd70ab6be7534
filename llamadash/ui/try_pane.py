"""The Try pane: send one prompt to a running model and watch the answer stream, with its speed.

A check that a model works and how fast, not a chat: one system prompt, one prompt, a max tokens
limit, **Send** (Ctrl+Enter) and **Stop**. The answer streams into a read-only box; when it is
complete one line gives the prompt and generated tokens and the generation speed the server
measured. Nothing is kept: each Send replaces the last answer, and no history is stored.

The model is one of the manager's running models (:meth:`TryPane.choose` selects one, e.g. from the
Instances table). With none running the pane is disabled and says "Start a model to try it". The
request itself is a :class:`~llamadash.services.chat_client.ChatRequest`.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from llamadash.core.chat_stream import ChatResult, result_text
from llamadash.core.states import InstanceState
from llamadash.services.chat_client import ChatRequest
from llamadash.services.protocols import Manager

__all__ = ["NO_MODEL_HINT", "TryPane"]

#: Shown while no model runs.
NO_MODEL_HINT = "Start a model to try it"
DEFAULT_MAX_TOKENS = 256


class TryPane(QWidget):
    """The Try pane; see the module docstring.

    Args:
        manager: The instance manager (or ``None`` until :meth:`set_manager`).
        parent: The Qt parent.
    """

    answerFinished = Signal(object)
    """An answer is complete: its :class:`~llamadash.core.chat_stream.ChatResult`."""
    answerFailed = Signal(str)
    """A request failed: the message shown."""

    def __init__(self, manager: Manager | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.manager: Manager | None = None
        self.request: ChatRequest | None = None
        self.request_options: dict[str, Any] = {}
        """More fields sent with each request (tests send ``ignore_eos``)."""

        self.model_box = QComboBox()
        self.model_box.setObjectName("tryModel")
        self.model_box.setMinimumContentsLength(8)
        self.model_box.setMaximumWidth(360)  # wide enough for long model names, not the whole row
        self.model_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(1, 8192)
        self.max_tokens.setValue(DEFAULT_MAX_TOKENS)
        self.max_tokens.setToolTip("The most tokens the model generates for this answer")
        self.send_button = QPushButton("Send")
        self.send_button.setToolTip("Send the prompt (Ctrl+Enter)")
        self.send_button.setDefault(True)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop the answer")
        self.system_prompt = QLineEdit()
        self.system_prompt.setPlaceholderText("Optional, e.g. You are a concise assistant.")
        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText("Write a prompt, then Send (Ctrl+Enter)")
        self.prompt.setTabChangesFocus(True)
        self.prompt.setMaximumHeight(72)
        self.answer = QPlainTextEdit()
        self.answer.setObjectName("tryAnswer")
        self.answer.setReadOnly(True)
        self.answer.setPlaceholderText("The answer streams here.")
        self.hint = QLabel(NO_MODEL_HINT)
        self.hint.setObjectName("tryHint")
        self.hint.setStyleSheet("font-weight: bold;")
        self.hint.setWordWrap(True)
        self.status = QLabel("")
        self.status.setObjectName("tryStatus")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setWordWrap(True)  # a long error message must not widen the window
        self.status.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)

        model_row = QHBoxLayout()
        model_row.addWidget(self.model_box, 1)
        model_row.addSpacing(8)
        model_row.addWidget(QLabel("Max tokens"))
        model_row.addWidget(self.max_tokens)
        model_row.addStretch(1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        form = QFormLayout()
        form.addRow(self.hint)
        form.addRow("Model", model_row)
        form.addRow("System prompt", self.system_prompt)
        form.addRow("Prompt", self.prompt)
        form.addRow("", buttons)
        answer_box = QVBoxLayout()
        answer_box.addWidget(self.answer, 1)
        answer_box.addWidget(self.status)
        form.addRow("Answer", answer_box)
        layout = QVBoxLayout(self)
        layout.addLayout(form, 1)

        self.send_button.clicked.connect(self.send)
        self.stop_button.clicked.connect(self.stop)
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(self.send)
        self.prompt.textChanged.connect(self._update)
        self.model_box.currentIndexChanged.connect(self._update)
        if manager is not None:
            self.set_manager(manager)
        self._update()

    # -- the models ---------------------------------------------------------------------------------

    def set_manager(self, manager: Manager) -> None:
        """Offer the running models of ``manager`` from now on."""
        if manager is self.manager:
            return
        if self.manager is not None:
            self.manager.stateChanged.disconnect(self._on_state)
            self.manager.instanceRemoved.disconnect(self._refresh_models)
        self.manager = manager
        manager.stateChanged.connect(self._on_state)
        manager.instanceRemoved.connect(self._refresh_models)
        self._refresh_models()

    def running_models(self) -> list[str]:
        """The names of the running models, in the manager's order."""
        if self.manager is None:
            return []
        return [inst.name for inst in self.manager.instances() if inst.state is InstanceState.RUNNING]

    def choose(self, name: str) -> bool:
        """Try ``name`` (a running model); False when it does not run or an answer is on its way."""
        index = self.model_box.findText(name) if not self.busy else -1
        if index >= 0:
            self.model_box.setCurrentIndex(index)
        return index >= 0

    @property
    def model(self) -> str:
        """The chosen model ("" when none runs)."""
        return self.model_box.currentText()

    def _on_state(self, _name: str, _state: str, _reason: str) -> None:
        self._refresh_models()

    def _refresh_models(self, *_args: object) -> None:
        names = self.running_models()
        current = self.model_box.currentText()
        if names != [self.model_box.itemText(i) for i in range(self.model_box.count())]:
            self.model_box.blockSignals(True)
            self.model_box.clear()
            self.model_box.addItems(names)
            self.model_box.setCurrentIndex(max(0, names.index(current)) if current in names else 0)
            self.model_box.blockSignals(False)
        self._update()

    # -- sending ------------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """An answer is on its way."""
        return self.request is not None and self.request.running

    def send(self) -> bool:
        """Send the prompt to the chosen model; False when nothing was sent (no model, no prompt, busy)."""
        inst = self.manager.instance(self.model) if self.manager is not None and self.model else None
        prompt = self.prompt.toPlainText()
        if inst is None or inst.state is not InstanceState.RUNNING or not prompt.strip() or self.busy:
            return False
        self._drop_request()
        request = ChatRequest(
            inst.url if inst.port is not None else "",
            prompt,
            system_prompt=self.system_prompt.text(),
            max_tokens=self.max_tokens.value(),
            api_key=inst.api_key,
            extra=self.request_options,
            parent=self,
        )
        request.delta.connect(self._on_delta)
        request.finished.connect(self._on_finished)
        request.failed.connect(self._on_failed)
        self.request = request
        self.answer.clear()
        self._show_status(f"Asking {inst.name}…")
        request.send()
        self._update()
        return True

    def stop(self) -> None:
        """Stop the answer on its way (what arrived stays shown)."""
        if not self.busy:
            return
        assert self.request is not None
        self.request.cancel()
        self._show_status(f"Stopped · {self.request.deltas} pieces received")
        self._update()

    def _drop_request(self) -> None:
        if self.request is not None:
            self.request.cancel()
            self.request.deleteLater()
            self.request = None

    def _on_delta(self, text: str) -> None:
        cursor = self.answer.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        cursor.insertText(text)
        self.answer.setTextCursor(cursor)
        self.answer.ensureCursorVisible()

    def _on_finished(self, result: ChatResult) -> None:
        self._show_status(result_text(result))
        self._update()
        self.answerFinished.emit(result)

    def _on_failed(self, message: str) -> None:
        self._show_status(f"Failed: {message}", error=True)
        self._update()
        self.answerFailed.emit(message)

    def _show_status(self, text: str, *, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setToolTip(text)
        self.status.setStyleSheet("color: #c62828;" if error else "")

    def _update(self) -> None:
        has_model = bool(self.model)
        busy = self.busy
        for widget in (self.model_box, self.system_prompt, self.max_tokens):
            widget.setEnabled(has_model and not busy)
        self.prompt.setEnabled(has_model)
        self.send_button.setEnabled(has_model and not busy and bool(self.prompt.toPlainText().strip()))
        self.stop_button.setEnabled(busy)
        self.hint.setVisible(not has_model)
        if not has_model and not busy:
            self.hint.setText(NO_MODEL_HINT)
