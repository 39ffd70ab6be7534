"""The Qt binding we depend on must survive a dashboard's lifetime of signal emits."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_many_signal_emits_keep_the_interpreter_alive():
    # PySide6 6.12.0's emit() drops a reference to True on each call; on CPython 3.11 the
    # interpreter aborts ("bool_dealloc") after about a thousand emits: one hour of 1 Hz sampling
    # with a few signals per sample. pyproject.toml excludes that release.
    code = textwrap.dedent(
        """
        import sys
        from PySide6.QtCore import QCoreApplication, QObject, Signal

        class Emitter(QObject):
            bare = Signal()
            value = Signal(object)

        app = QCoreApplication([])
        emitter = Emitter()
        emitter.bare.connect(lambda: None)
        emitter.value.connect(lambda v: None)
        before = sys.getrefcount(True)
        for i in range(5000):
            emitter.bare.emit()
            emitter.value.emit(i)
        print(before - sys.getrefcount(True))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert abs(int(result.stdout.strip())) < 100
