"""``python -m learned_precond``: the same command line as ``learned-precond``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
