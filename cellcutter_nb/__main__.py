"""``python -m cellcutter_nb``: the command line (:func:`cellcutter_nb.app.cli.main`)."""

from __future__ import annotations

import sys

from .app.cli import main

if __name__ == "__main__":
    sys.exit(main())
