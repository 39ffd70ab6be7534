"""Quitting cleanly on SIGINT and SIGTERM: the Qt event loop ends, so ``aboutToQuit`` stops the servers."""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence

from PySide6.QtCore import QCoreApplication, QTimer

__all__ = ["quit_on_signals"]


def quit_on_signals(
    app: QCoreApplication,
    signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM),
    on_signal: Callable[[int], None] | None = None,
) -> Callable[[], None]:
    """Make SIGINT/SIGTERM quit the Qt event loop cleanly (so ``aboutToQuit`` stops the instances).

    Python runs signal handlers only between bytecodes, never while Qt's C++ event loop waits; a
    200 ms timer gives it the chance.

    Args:
        app: The application to quit.
        signals: The signals to handle.
        on_signal: Called with the signal number (on the main thread) before quitting.

    Returns:
        A function that restores the previous handlers and stops the timer.
    """
    previous = {}

    def handler(signum: int, _frame: object) -> None:
        if on_signal is not None:
            on_signal(signum)
        # Posted, not called: quit() before exec() is ignored, and a signal can arrive just before it.
        QTimer.singleShot(0, app.quit)

    for signum in signals:
        previous[signum] = signal.signal(signum, handler)
    timer = QTimer(app)
    timer.setInterval(200)
    timer.timeout.connect(lambda: None)
    timer.start()

    def restore() -> None:
        timer.stop()
        timer.deleteLater()
        for signum, old in previous.items():
            signal.signal(signum, old)

    return restore
