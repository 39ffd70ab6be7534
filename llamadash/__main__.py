"""``llamadash`` and ``python -m llamadash``: a command runs the CLI, no command opens the window."""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: The window's options that take a value (``app.run_gui``), and Qt's (they start with one dash).
_VALUE_OPTIONS = frozenset(
    {
        "--data-dir",
        "-platform",
        "-platformpluginpath",
        "-platformtheme",
        "-plugin",
        "-qmljsdebugger",
        "-style",
        "-stylesheet",
        "-display",
        "-geometry",
        "-title",
        "-session",
        "-qwindowgeometry",
        "-qwindowicon",
        "-qwindowtitle",
    }
)


def wants_cli(argv: Sequence[str]) -> bool:
    """True when the arguments hold a command (any word that is not an option or an option's value)
    or ask for help or the version.

    A mistyped command (``llamadash bogus``) goes to the CLI too, which says which commands it knows,
    instead of opening the window; the window's own options (``--data-dir DIR``, ``--minimized``, Qt's
    ``-platform NAME``) do not count.
    """
    expects_value = False
    for arg in argv:
        if expects_value:
            expects_value = False
            continue
        if arg in ("-h", "--help", "--version"):
            return True
        if arg in _VALUE_OPTIONS:
            expects_value = True
            continue
        if not arg.startswith("-"):
            return True
    return False


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
