"""Training with labels: the supervised upper bound and the released code's warm start.

:func:`train_supervised` trains the same UNet on the same patches as
:func:`cellcutter_nb.core.train.train`, but with binary cross-entropy against each
marker's true cell — beyond the paper, it says how close the unsupervised objective
gets to full supervision. :func:`warm_start` is the authors' released-code
initialisation: a few epochs of BCE towards a 5-px disk at every marker.

Examples
--------
>>> from cellcutter_nb.data import synth
>>> from cellcutter_nb import config
>>> from cellcutter_nb.core.supervised import train_supervised
>>> field = synth.make_field(seed=0, shape=128)
>>> prof = config.get_profile("smoke").replace(unet_width=4)
>>> r = train_supervised(field, ("fl",), "paper", prof, epochs=1, batch_size=8)
>>> bool(r.history["miou"].between(0, 1).all())
True
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..backend import keras
from ..config import Preset, Profile, get_preset, get_profile
from ..data.field import Field, check_markers
from .batches import dihedral, n_transforms
from .evaluate import TrainResult, evaluate, patch_targets, recalibrate_batchnorm
from .model import build_model, seed_everything
from .patches import PatchSet, extract_patches

__all__ = ["fit_bce", "train_supervised", "warm_start"]


def warm_start(unet: keras.Model, ps: PatchSet, preset: Preset, epochs: int, seed: int,
               radius: float = 5.0, batch_size: int = 64) -> None:
    """The released code's warm start: BCE towards each marker dilated by ``radius`` px."""
    k = ps.patch_size
    yy, xx = np.mgrid[:k, :k] - k // 2
    disk = (yy ** 2 + xx ** 2 <= radius ** 2).astype(np.float32)
    targets = np.broadcast_to(disk, (len(ps), k, k))
    fit_bce(unet, ps.patches, targets, epochs, preset, seed, min(batch_size, len(ps)))


def fit_bce(unet: keras.Model, patches: np.ndarray, targets: np.ndarray, epochs: int,
            preset: Preset, seed: int, batch_size: int = 64) -> list[float]:
    """Binary cross-entropy training on (patch, target) pairs, each batch flipped or
    transposed like a training area (:func:`~cellcutter_nb.core.batches.dihedral`; the
    preset's 8 or 4 transforms); returns the loss of every step."""
    unet.compile(optimizer=keras.optimizers.Adam(preset.learning_rate),
                 loss=keras.losses.BinaryCrossentropy(from_logits=True))
    rng = np.random.default_rng([seed, 7])
    n_t = n_transforms(preset)
    losses = []
    for _ in range(int(epochs)):
        order = rng.permutation(len(patches))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            t = int(rng.integers(n_t))
            x, y = dihedral(patches[idx], t), dihedral(targets[idx][..., None], t)
            losses.append(float(unet.train_on_batch(np.ascontiguousarray(x),
                                                    np.ascontiguousarray(y))))
    if not losses:
        raise ValueError(f"batch_size={batch_size} exceeds the {len(patches)} patches.")
    return losses


def train_supervised(field: Field, channels: Sequence[str] = ("fl", "nuc"),
                     preset: str | Preset = "paper", profile: str | Profile = "quick", *,
                     markers: np.ndarray | None = None, seed: int = 0, epochs: int = 10,
                     batch_size: int = 64) -> TrainResult:
    """Upper bound (beyond the paper): the same UNet and patches, trained with BCE.

    Parameters
    ----------
    field : Field
        Needs ground-truth ``labels``: the target of each patch is the true cell under
        its marker (:func:`cellcutter_nb.core.evaluate.patch_targets`).
    channels, preset, profile, markers, seed
        As for :func:`cellcutter_nb.core.train.train`.
    epochs : int
        Passes over all patches; scored after each.
    batch_size : int
        Patches per step.

    Returns
    -------
    TrainResult
        History with ``loss`` (BCE), ``patches_seen``, ``miou``, ``patch_mean_iou``.
    """
    if not field.has_ground_truth:
        raise ValueError("Supervised training needs ground-truth labels (field.labels).")
    preset, profile = get_preset(preset), get_profile(profile)
    markers = check_markers(field.markers if markers is None else markers, field.shape)
    seed_everything(seed)
    ps = extract_patches(field, channels, preset, markers=markers)
    unet = build_model(ps, profile, seed, preset)
    targets = patch_targets(field.labels, ps)
    rows, t0, train_time = [], time.perf_counter(), 0.0
    for epoch in range(int(epochs)):
        ts = time.perf_counter()
        losses = fit_bce(unet, ps.patches, targets, 1, preset, seed + epoch,
                         min(batch_size, len(ps)))
        train_time += time.perf_counter() - ts
        logits = recalibrate_batchnorm(unet, ps.patches, seed=seed + epoch)
        rows.append({"epoch": epoch, "loss": float(np.mean(losses)),
                     "patches_seen": (epoch + 1) * len(ps), "seconds": time.perf_counter() - t0,
                     **evaluate(unet, field, ps, markers, preset, None, logits)})
    return TrainResult(unet, pd.DataFrame(rows), "epochs", time.perf_counter() - t0,
                       len(ps) * epochs / train_time if train_time else float("nan"))
