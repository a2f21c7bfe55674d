"""Progress bars: one switch for the whole package.

Long work (training epochs, the models of an experiment) shows a tqdm bar. It is on by
default and off when ``CELLCUTTER_NB_QUIET=1``, which the runner sets so that executed
notebooks stay free of bar residue; every function that draws a bar also takes
``progress=True/False`` to decide per call.

Examples
--------
>>> from cellcutter_nb.progress import progress_bar
>>> sum(progress_bar(range(3), "items", progress=False))
3
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any


def progress_bar(items: Iterable | None = None, desc: str = "", progress: bool | None = None,
                 total: int | None = None) -> Any:
    """A tqdm bar over ``items`` (or of ``total`` steps, advanced with ``update``).

    Parameters
    ----------
    items : iterable, optional
        What to iterate over.
    desc : str
        Label of the bar.
    progress : bool or None
        True: show; False: hide; None: show unless ``CELLCUTTER_NB_QUIET`` is ``1``/``true``.
    total : int, optional
        Length of the bar when ``items`` is not given (or has no ``len``).
    """
    from tqdm.auto import tqdm

    if progress is None:
        progress = os.environ.get("CELLCUTTER_NB_QUIET", "") not in ("1", "true")
    return tqdm(items, total=total, desc=desc, disable=not progress, leave=False)
