"""PyInstaller entry point of ``llamadash`` (the window; a command runs the CLI, as ``llamadash`` does)."""

import sys

from llamadash.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
