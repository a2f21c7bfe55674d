"""``python -m cellcutter_nb``: the command line (:func:`cellcutter_nb.app.cli.main`).

Ctrl-C while the command line loads ends it with one line, not a traceback (the commands
handle it themselves once they run).
"""

from __future__ import annotations

import sys

try:
    from .app.cli import main
except KeyboardInterrupt:  # nothing has started: nothing to clean up
    print("interrupted while starting; nothing was written.", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(main())
