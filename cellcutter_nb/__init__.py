"""cellcutter_nb — unsupervised single-cell segmentation (Din & Yu, Sci Rep 2021), notebook-first.

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
