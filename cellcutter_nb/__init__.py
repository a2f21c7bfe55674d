"""cellcutter_nb — unsupervised single-cell segmentation (Din & Yu, Sci Rep 2021), notebook-first.

The package is a house of layers; a module imports only from its own layer and the ones
below (``tests/test_architecture.py`` checks it):

* :mod:`cellcutter_nb.app` — ``segment()``, the command line, output files, widgets, figures;
* :mod:`cellcutter_nb.experiments` — the paper's experiments on cached models, the report,
  notebook set-up and the papermill runner;
* :mod:`cellcutter_nb.core` — patches, batches, UNet, Eq. 1, training, integration;
* :mod:`cellcutter_nb.prep` — markers, masks, the CellProfiler and position-only references;
* :mod:`cellcutter_nb.data` — the Field, TIFF input/output, A431, the synthetic benchmark;
* ground floor — :mod:`~cellcutter_nb.config` (constants, presets, profiles),
  :mod:`~cellcutter_nb.channels`, :mod:`~cellcutter_nb.metrics`,
  :mod:`~cellcutter_nb.backend`, :mod:`~cellcutter_nb.progress`.

Importing the package never imports TensorFlow: modules that need Keras import it
themselves, so the package also works with ``KERAS_BACKEND=jax`` and no TensorFlow.

Examples
--------
>>> import cellcutter_nb as cc
>>> cc.config.get_preset("paper").lam
3.32
"""

from . import config
from .data.field import Field

__version__ = "0.1.0"
__all__ = ["Field", "config", "__version__"]
