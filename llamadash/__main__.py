"""``llamadash`` and ``python -m llamadash``: a command runs the CLI, no command opens the window."""

from __future__ import annotations

import sys
from collections.abc import Sequence

COMMANDS = {"db", "models", "llama-server", "metrics", "run", "status"}


def wants_cli(argv: Sequence[str]) -> bool:
    """True when the arguments name a CLI command or ask for help/version."""
    return any(arg in COMMANDS or arg in ("-h", "--help", "--version") for arg in argv)


#: A Windows named mutex held while the window runs: the installer (installer.iss, AppMutex) waits for
#: llamadash to be closed before it replaces files.
RUNNING_MUTEX = "io.github.llamadash.llamadash.running"
_mutex_handle: int | None = None


def _hold_running_mutex() -> None:
    """On Windows, create :data:`RUNNING_MUTEX` for the life of the process (released at exit)."""
    global _mutex_handle
    if sys.platform != "win32" or _mutex_handle is not None:
        return
    import ctypes

    try:
        _mutex_handle = ctypes.windll.kernel32.CreateMutexW(None, False, RUNNING_MUTEX)
    except (AttributeError, OSError):  # the installer's CloseApplications still closes llamadash
        _mutex_handle = None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI, the smoke test (``--smoke-test``, handled before anything else) or the window."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--smoke-test" in args:
        from llamadash.smoke import run_smoke_test

        return run_smoke_test([a for a in args if a != "--smoke-test"])
    if wants_cli(args):
        from llamadash.cli import run

        return run(args)
    _hold_running_mutex()
    from llamadash.app import run_gui

    return run_gui(args)


if __name__ == "__main__":
    sys.exit(main())
