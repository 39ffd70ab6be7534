"""Where llamadash keeps its user data (the database, logs).

User data never goes next to the install directory unless the user asked for a portable install.
The data directory is chosen in this order, first match wins:

1. an explicit override: the ``override`` argument (the CLI's ``--data-dir``), then the
   ``LLAMADASH_DATA_DIR`` environment variable (an empty value counts as unset);
2. portable mode: only in a frozen build (``sys.frozen`` is set, e.g. PyInstaller), when a ``data``
   folder already exists next to the executable, or a file or folder named ``portable`` exists next
   to the executable (then ``data`` is created there). A source checkout is never portable;
3. the per-user data directory of the platform:

   * Linux and other POSIX: ``$XDG_DATA_HOME/llamadash`` (only an absolute ``XDG_DATA_HOME`` counts,
     as the XDG spec says), else ``~/.local/share/llamadash``;
   * Windows: ``%APPDATA%\\llamadash``, else ``~\\AppData\\Roaming\\llamadash``;
   * macOS: ``~/Library/Application Support/llamadash``.

Directories this module creates are private to their owner on POSIX (mode ``0o700``); an existing
directory keeps its mode.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

APP_NAME = "llamadash"
#: The database file name (the seed's name).
DATABASE_FILENAME = "llama-dashboard.db"
#: Environment variable that overrides the data directory.
DATA_DIR_ENV = "LLAMADASH_DATA_DIR"
#: Name of the folder next to a frozen executable that holds a portable install's data.
PORTABLE_DATA_FOLDER = "data"
#: Name of the marker (file or folder) next to a frozen executable that turns portable mode on.
PORTABLE_MARKER = "portable"

_PRIVATE_DIR_MODE = 0o700


def user_data_dir(
    platform: str | None = None,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> Path:
    """The platform's per-user data directory for llamadash (not created).

    Args:
        platform: a ``sys.platform`` value; defaults to the running platform.
        environ: the environment to read; defaults to ``os.environ``.
        home: the home directory; defaults to ``Path.home()``.
    """
    platform = sys.platform if platform is None else platform
    environ = os.environ if environ is None else environ
    home = Path.home() if home is None else home
    if platform.startswith("win"):
        appdata = environ.get("APPDATA", "")
        base = Path(appdata) if appdata else home / "AppData" / "Roaming"
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        xdg = environ.get("XDG_DATA_HOME", "")
        base = Path(xdg) if xdg and os.path.isabs(xdg) else home / ".local" / "share"
    return base / APP_NAME


def portable_data_dir(
    frozen: bool | None = None,
    executable: str | os.PathLike[str] | None = None,
) -> Path | None:
    """The portable data directory, or ``None`` when not running as a portable install.

    Portable means: a frozen build whose executable has a ``data`` folder or a ``portable`` marker
    next to it (see the module docstring).

    Args:
        frozen: whether this is a frozen build; defaults to ``getattr(sys, "frozen", False)``.
        executable: the executable's path; defaults to ``sys.executable``.
    """
    frozen = bool(getattr(sys, "frozen", False)) if frozen is None else frozen
    if not frozen:
        return None
    exe_dir = Path(sys.executable if executable is None else executable).resolve().parent
    data = exe_dir / PORTABLE_DATA_FOLDER
    if data.is_dir() or (exe_dir / PORTABLE_MARKER).exists():
        return data
    return None


def _choose_data_dir(override: str | os.PathLike[str] | None) -> Path:
    if override is not None and str(override) != "":
        return Path(override).expanduser()
    from_env = os.environ.get(DATA_DIR_ENV, "")
    if from_env:
        return Path(from_env).expanduser()
    portable = portable_data_dir()
    if portable is not None:
        return portable
    return user_data_dir()


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents); a directory created here gets mode 0o700 on POSIX."""
    if path.is_dir():
        return path
    try:
        # exist_ok: another process (a second command started at the same moment) may make it first
        path.mkdir(parents=True, exist_ok=True, mode=_PRIVATE_DIR_MODE)
    except FileExistsError:  # raised despite exist_ok only when the path is not a directory
        raise NotADirectoryError(f"the data directory {path} exists but is not a directory") from None
    if os.name == "posix":
        os.chmod(path, _PRIVATE_DIR_MODE)  # mkdir's mode is filtered by the umask
    return path


def resolve_data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The data directory to use, created if missing (absolute path).

    Args:
        override: a directory given by the user (the CLI's ``--data-dir``); ``None`` or ``""``
            falls through to ``LLAMADASH_DATA_DIR``, portable mode and the per-user directory.

    Raises:
        NotADirectoryError: the chosen path exists and is a file.
        OSError: the directory cannot be created.
    """
    return make_private_dir(_choose_data_dir(override).absolute())


def default_database_path(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The database file in the data directory (``llama-dashboard.db``); the directory is created."""
    return resolve_data_dir(data_dir) / DATABASE_FILENAME


def logs_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The ``logs`` folder of the data directory, created if missing (0o700 on POSIX)."""
    return make_private_dir(resolve_data_dir(data_dir) / "logs")
