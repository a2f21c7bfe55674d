"""``python -m cellcutter_nb``: command-line entry point (see :mod:`cellcutter_nb.runner`)."""

from __future__ import annotations

import sys

from .runner import main

if __name__ == "__main__":
    sys.exit(main())
