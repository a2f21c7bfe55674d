"""Scoring a model while it trains, and what training returns.

Training never sees the ground truth; when a field has it, each epoch is scored here:
:func:`evaluate` integrates the patches' probabilities into a label image and gives the
per-cell mIOU (the paper's Fig. 2 trace) and the released code's patch-level binary
MeanIoU against :func:`patch_targets`. BatchNorm's moving statistics lag far behind the
weights after short training, so they are first re-estimated without labels
(:func:`recalibrate_batchnorm`). :class:`TrainResult` is what
:func:`~cellcutter_nb.core.train.train` and
:func:`~cellcutter_nb.core.supervised.train_supervised` return.

Examples
--------
>>> import numpy as np
>>> from cellcutter_nb.core.evaluate import patch_targets
>>> from cellcutter_nb.core.patches import PatchSet
>>> labels = np.zeros((8, 8), np.uint32); labels[2:6, 2:6] = 1
>>> ps = PatchSet(np.zeros((1, 4, 4, 2), np.float32), np.array([[2, 2]], np.int32),
...               np.zeros(1, np.int32), ("fl",), (8, 8))
>>> patch_targets(labels, ps)[0].sum()
np.float32(16.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..backend import keras
from ..config import Preset
from ..data.field import Field
from ..metrics import per_cell_iou, summarize
from .integrate import chunk_logits, chunk_size, finish_labels, integration_canvas, sigmoid
from .patches import PatchSet

__all__ = ["TrainResult", "evaluate", "patch_set_labels", "patch_targets", "predict_logits",
           "predict_patches", "recalibrate_batchnorm"]


@dataclass
class TrainResult:
    """What training returns: the UNet, its per-epoch history and how it stopped."""

    model: keras.Model
    history: pd.DataFrame
    stopped: str
    seconds: float
    patches_per_second: float


def patch_targets(labels: np.ndarray, ps: PatchSet) -> np.ndarray:
    """Binary target of every patch: the true cell under its marker (0 if on background)."""
    k = ps.patch_size
    h, w = labels.shape
    centre = np.clip(ps.centres, 0, [h - 1, w - 1])
    cell = labels[centre[:, 0], centre[:, 1]].astype(np.int64)
    pad = np.pad(labels, k)
    rows = (ps.origins[:, 0, None] + k + np.arange(k))[:, :, None]
    cols = (ps.origins[:, 1, None] + k + np.arange(k))[:, None, :]
    cut = pad[rows, cols]
    return ((cut == cell[:, None, None]) & (cell[:, None, None] > 0)).astype(np.float32)


def recalibrate_batchnorm(unet: keras.Model, patches: np.ndarray, batch_size: int = 256,
                          n_batches: int = 2, seed: int = 0) -> np.ndarray | None:
    """Set BatchNorm moving statistics to the average over a few batches of ``patches``.

    Keras' momentum 0.99 leaves the moving statistics hundreds of steps behind the
    weights, and inference (``training=False``) with stale statistics can score near
    zero after short training. This uses no labels: forward passes in training mode
    with momentum i/(i+1) give the running mean of the batch statistics. With no more
    than ``batch_size`` patches, one pass over all of them sets the statistics of the
    whole set; otherwise ``n_batches`` random batches of ``batch_size`` are averaged.

    Returns
    -------
    ndarray (N, k, k) or None
        After a single pass over all patches, their logits: the training-mode outputs of
        that pass, equal to inference with the new statistics (one forward pass saved
        for :func:`evaluate`). ``None`` otherwise, and for a network without BatchNorm.
    """
    layers = [layer for layer in unet.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers or len(patches) == 0:
        return None
    rng = np.random.default_rng(seed)
    n = len(patches)
    batches = [np.arange(n)] if n <= batch_size else [
        np.sort(rng.choice(n, size=batch_size, replace=False)) for _ in range(n_batches)]
    saved = [layer.momentum for layer in layers]
    try:
        for i, idx in enumerate(batches):
            for layer in layers:
                layer.momentum = i / (i + 1.0)
            out = unet(patches[idx], training=True)
    finally:
        for layer, m in zip(layers, saved, strict=True):
            layer.momentum = m
    return np.asarray(out, np.float32)[..., 0] if len(batches[0]) == n else None


def predict_logits(model: keras.Model, patches: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits (N, k, k) in fixed-size chunks (one compiled shape)."""
    size = chunk_size(len(patches), batch_size)
    out = np.empty(patches.shape[:3], np.float32)
    for start in range(0, len(patches), size):
        out[start:start + size] = chunk_logits(model, patches[start:start + size], size)
    return out


def predict_patches(model: keras.Model, patches: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Probabilities (N, k, k) of the patches (the sigmoid of :func:`predict_logits`)."""
    return sigmoid(predict_logits(model, patches, batch_size))


def patch_set_labels(logits: np.ndarray, ps: PatchSet, markers: np.ndarray, preset: Preset,
                     mask: np.ndarray | None = None) -> np.ndarray:
    """The label image of a patch set's logits, integrated as the preset says
    (:func:`~cellcutter_nb.core.integrate.finish_labels`)."""
    canvas = integration_canvas(ps.image_shape, preset, mask)
    canvas.add_logits(logits, ps.origins, ps.marker_indices + 1)
    return finish_labels(canvas, preset, mask, markers)


def evaluate(model: keras.Model, field: Field, ps: PatchSet, markers: np.ndarray,
             preset: Preset, mask: np.ndarray | None = None,
             logits: np.ndarray | None = None) -> dict:
    """Per-cell mIOU of the integrated segmentation and the patch-level binary MeanIoU
    (``logits``: the patches' logits if already computed, else predicted; ``preset`` and
    ``mask``: how the patches are integrated)."""
    if logits is None:
        logits = predict_logits(model, ps.patches)
    labels = patch_set_labels(logits, ps, markers, preset, mask)
    table = per_cell_iou(labels, field.labels, markers=markers)
    target = patch_targets(field.labels, ps) > 0.5
    pred = logits >= 0.0
    ious = [np.logical_and(pred == c, target == c).sum() / max(
        np.logical_or(pred == c, target == c).sum(), 1) for c in (True, False)]
    return {"miou": float(summarize(table)["miou"].iloc[0]),
            "patch_mean_iou": float(np.mean(ious))}
