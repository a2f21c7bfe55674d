"""The method itself (layer 3): from patches to a label image.

* :mod:`~cellcutter_nb.core.patches` — one patch per marker, with its position disk;
* :mod:`~cellcutter_nb.core.batches` — what one training step sees (areas, padding, flips);
* :mod:`~cellcutter_nb.core.model` — the UNet of Fig. S1 (and the safe model loader);
* :mod:`~cellcutter_nb.core.loss` — Eq. 1 on the area canvas;
* :mod:`~cellcutter_nb.core.step` — the UNet wrapped with Eq. 1 as a Keras model;
* :mod:`~cellcutter_nb.core.evaluate` — scoring while training, BatchNorm recalibration;
* :mod:`~cellcutter_nb.core.train` — unsupervised training (Eq. 1);
* :mod:`~cellcutter_nb.core.supervised` — the supervised bound and the warm start;
* :mod:`~cellcutter_nb.core.integrate` — patches → whole-field label image;
* :mod:`~cellcutter_nb.core.nucleus` — the synthetic-nucleus UNet of Fig. 5.

Modules that need Keras import it at module level; the others stay NumPy-only.
"""
