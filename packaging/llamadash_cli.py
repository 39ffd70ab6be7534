"""PyInstaller entry point of ``llamadash-cli.exe`` (Windows only: the console twin of ``llamadash.exe``).

``--smoke-test`` goes to the same place as in ``llamadash``, so that CI sees its report on a console.
"""

import sys

if __name__ == "__main__":
    if "--smoke-test" in sys.argv[1:]:
        from llamadash.__main__ import main
    else:
        from llamadash.cli import main
    sys.exit(main())
