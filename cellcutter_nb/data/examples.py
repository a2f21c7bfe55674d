"""Real example data bundled with the repository (``data/``), loaded as a Field.

``ht29``: one field of HT29 cells from CellProfiler's example set (CC0; see
``data/ht29/SOURCE.md``), ``fl`` = cell body, ``nuc`` = DNA, no ground truth.

Examples
--------
>>> from cellcutter_nb.data.examples import load_example
>>> f = load_example("ht29")
>>> f.shape, f.channel_names, f.meta["pixel_size_assumed"]
((512, 512), ('fl', 'nuc'), True)
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from ..config import PIXEL_SIZE_UM
from .field import Field
from .tiffio import read_image

__all__ = ["data_dir", "load_example"]

_EXAMPLES = {"ht29": {
    "files": {"fl": "ht29/ht29_cellbody.tif", "nuc": "ht29/ht29_dna.tif"},
    "meta": {"source": "CellProfiler ExampleHuman, HT29 cells, image "
                       "AS_09125_050116030001_D03f00 (Moffat et al., Cell 2006); see "
                       "data/ht29/SOURCE.md", "licence": "CC0",
             "channels": {"fl": "cell body (phalloidin / F-actin)", "nuc": "DNA (Hoechst)"},
             "pixel_size_assumed": True}}}


def data_dir() -> Path:
    """The repository's ``data/`` folder (``$CELLCUTTER_NB_DATA`` overrides).

    Examples
    --------
    >>> data_dir().name
    'data'
    """
    path = Path(os.environ.get("CELLCUTTER_NB_DATA",
                               Path(__file__).resolve().parents[2] / "data"))
    if not path.is_dir():
        raise FileNotFoundError(f"Data folder {path} not found: the examples ship with the "
                                f"repository checkout (data/), not with the installed "
                                f"package. Clone the repository or set CELLCUTTER_NB_DATA.")
    return path


def load_example(name: str = "ht29") -> Field:
    """Load a bundled real field from ``data/``; ``"ht29"``: fl = cell body, nuc = DNA.

    The pixel size is not recorded in the files; cells are 20-25 px across (the
    paper's scale), so the nominal 0.8 µm/px is used and ``meta["pixel_size_assumed"]``
    is True.

    Examples
    --------
    >>> load_example("ht29").channel_names
    ('fl', 'nuc')
    """
    if name not in _EXAMPLES:
        raise ValueError(f"Unknown example {name!r}; available: {sorted(_EXAMPLES)}.")
    spec, root = _EXAMPLES[name], data_dir()
    chans = {k: read_image(root / v, name=k) for k, v in spec["files"].items()}
    return Field(chans, PIXEL_SIZE_UM, name=name, meta=copy.deepcopy(spec["meta"]))
