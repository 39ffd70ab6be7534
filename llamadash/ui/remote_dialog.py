"""Library ▸ Add ▸ Remote server…: a llama-server another machine runs, watched by its URL.

:class:`RemoteServerDialog` asks for a name, the server's base URL and its API key (optional, typed
into a password field: it is kept in the entry's ``api_key`` column, masked wherever models are
shown). OK stays disabled until the name is given and the URL reads
(:func:`llamadash.core.remote.check_remote_url`).
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from llamadash.core.remote import RemoteUrlError, check_remote_url

__all__ = ["RemoteServerDialog"]


class RemoteServerDialog(QDialog):
    """Asks for a remote server's name, URL and key; see the module docstring."""

    def __init__(
        self, parent: QWidget | None = None, *, name: str = "", url: str = "", has_key: bool = False
    ) -> None:
        super().__init__(parent)
        editing = bool(name)
        self.setWindowTitle(f"Remote server {name}" if editing else "Add a remote llama-server")
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("e.g. gpu-box")
        self.url_edit = QLineEdit()
        self.url_edit.setPlaceholderText("http://gpu-box:8080")
        self.key_edit = QLineEdit()
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setPlaceholderText("(none: the server was started without --api-key)")
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Name:", self.name_edit)
        form.addRow("URL:", self.url_edit)
        form.addRow("API key:", self.key_edit)
        note = QLabel(
            "llamadash watches the server (health, tokens/s, slots, requests) and never starts or "
            "stops it: <b>Attach</b> and <b>Detach</b> instead. Use <code>https://</code> for a server "
            "outside your own network: the key travels with every request."
        )
        note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.status_label)
        layout.addWidget(self.buttons)
        self.name_edit.textChanged.connect(self._check)
        self.url_edit.textChanged.connect(self._check)
        if editing:  # changing an entry: its name is changed with Rename, its key kept unless typed
            self.name_edit.setText(name)
            self.name_edit.setReadOnly(True)
            self.url_edit.setText(url)
            if has_key:
                self.key_edit.setPlaceholderText("(unchanged: type a new key to replace it)")
        self._check()
        self.resize(520, self.sizeHint().height())

    def url(self) -> str | None:
        """The checked URL, or ``None`` while it does not read."""
        try:
            return check_remote_url(self.url_edit.text())
        except RemoteUrlError:
            return None

    def api_key(self) -> str | None:
        """The key typed (``None``: none)."""
        return self.key_edit.text().strip() or None

    def _check(self) -> None:
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        problem = ""
        if self.url_edit.text().strip():
            try:
                check_remote_url(self.url_edit.text())
            except RemoteUrlError as exc:
                problem = str(exc)
        self.status_label.setText(problem)
        ok.setEnabled(
            not problem and bool(self.url_edit.text().strip()) and bool(self.name_edit.text().strip())
        )
