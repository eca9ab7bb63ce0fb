"""PyInstaller entry point: the `edged` console script, frozen."""

import sys

from edged.cli import main

if __name__ == "__main__":
    sys.exit(main())
