"""``python -m cellcutter_nb``: command-line entry point (see :mod:`cellcutter_nb.experiments.reproduce`)."""

from __future__ import annotations

import sys

from .experiments.reproduce import main

if __name__ == "__main__":
    sys.exit(main())
