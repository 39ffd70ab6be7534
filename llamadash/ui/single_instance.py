"""One running dashboard per data directory: a second launch brings the first window forward.

The first llamadash listens on a local socket (a named pipe on Windows) whose name is derived from
its data directory. A later launch for the same directory connects, sends ``show`` and exits 0, so
two apps never fight over one database. A name left behind by a killed process is removed and
taken over (no one answers on it).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

__all__ = ["SingleInstance", "server_name"]

_TIMEOUT_MS = 1000


def server_name(data_dir: Path) -> str:
    """The socket name of the data directory ``data_dir`` (per user, short enough for any OS)."""
    resolved = os.path.normcase(str(Path(data_dir).expanduser().resolve()))
    digest = hashlib.sha256(resolved.encode("utf-8")).hexdigest()[:16]
    user = os.environ.get("USER") or os.environ.get("USERNAME") or "user"
    return f"llamadash-{user}-{digest}"


class SingleInstance(QObject):
    """The guard of one data directory.

    Args:
        data_dir: The data directory.
        parent: The Qt parent.
    """

    showRequested = Signal()
    """Another launch for the same data directory asked this one to show its window."""

    def __init__(self, data_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = server_name(data_dir)
        self.server: QLocalServer | None = None

    def notify_running(self) -> bool:
        """Ask a running llamadash to come forward; true when one answered (then exit)."""
        socket = QLocalSocket()
        socket.connectToServer(self.name)
        if not socket.waitForConnected(_TIMEOUT_MS):
            return False
        socket.write(b"show\n")
        socket.waitForBytesWritten(_TIMEOUT_MS)
        socket.disconnectFromServer()
        return True

    def listen(self) -> bool:
        """Become the running llamadash of this data directory; false when the name cannot be taken."""
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.name):
            # A killed llamadash leaves its socket file behind (POSIX): no one answered, so take it.
            QLocalServer.removeServer(self.name)
            if not server.listen(self.name):
                return False
        server.newConnection.connect(self._on_connection)
        self.server = server
        return True

    def _on_connection(self) -> None:
        assert self.server is not None
        while self.server.hasPendingConnections():
            socket = self.server.nextPendingConnection()
            socket.readyRead.connect(lambda s=socket: self._on_ready_read(s))
            socket.disconnected.connect(socket.deleteLater)
            if socket.bytesAvailable():
                self._on_ready_read(socket)

    def _on_ready_read(self, socket: QLocalSocket) -> None:
        if bytes(socket.readAll().data()).startswith(b"show"):
            self.showRequested.emit()

    def close(self) -> None:
        """Stop listening (on quit)."""
        if self.server is not None:
            self.server.close()
            self.server.deleteLater()  # with its sockets, by Qt, not by Python's garbage collector
            self.server = None
