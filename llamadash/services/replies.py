"""Reading a ``QNetworkReply`` without Qt's warnings."""

from __future__ import annotations

from PySide6.QtNetwork import QNetworkReply

__all__ = ["reply_body"]


def reply_body(reply: QNetworkReply) -> bytes:
    """What ``reply`` brought; nothing when it is closed (aborted, or past its transfer timeout:
    Qt closes a timed-out reply before it finishes, and reading a closed one makes Qt warn
    ``QIODevice::read: device not open``)."""
    return bytes(reply.readAll().data()) if reply.isOpen() else b""
