"""``llamadash`` and ``python -m llamadash``: a command runs the CLI, no command opens the window."""

from __future__ import annotations

import sys
from collections.abc import Sequence

COMMANDS = {"db", "models", "llama-server", "metrics", "run", "status"}


def wants_cli(argv: Sequence[str]) -> bool:
    """True when the arguments name a CLI command or ask for help/version."""
    return any(arg in COMMANDS or arg in ("-h", "--help", "--version") for arg in argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if wants_cli(args):
        from llamadash.cli import run

        return run(args)
    from llamadash.app import run_gui

    return run_gui(args)


if __name__ == "__main__":
    sys.exit(main())
