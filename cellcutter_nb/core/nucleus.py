"""Synthetic nucleus images (Fig. 5): a UNet maps ``fl`` or ``bf`` to a nucleus image.

The paper's recipe (Methods, "Synthetic nucleus image"): the segmentation UNet's
architecture, trained with binary cross-entropy and Adam (lr 0.005) to map an
anti-pY (``fl``) or bright-field (``bf``) image to the thresholded nucleus image,
stopped when the loss reaches 0.15. This module is that second network:

* :func:`nucleus_target` — binary nuclei with the boundaries between touching nuclei
  removed, from nuclei segmented on ``nuc`` (no ground truth, as the paper thresholded).
* :func:`normalised_input` — the network input of one modality.
* :func:`downsample` — both binned (block means) for a low-resolution network.
* :func:`train_nucleus_model` — random crops (of the fields with mirrored borders),
  dihedral augmentation, compiled Keras steps; stops at the loss rule or at the
  profile's maximum, recording which.

Whole-field inference (tiles, averaged flips, interpolation back to the field's pixels)
is :mod:`cellcutter_nb.core.nucleus_inference`.

The experiment around it — three-fold cross-validation over the replicates, blob
thresholds fitted on the training fields, FN/FP rates within 15 µm, segmentation with
the synthetic markers — is :mod:`cellcutter_nb.experiments.predicted_markers`.

Departures, measured in notebook 11 and ``benchmarks/RESULTS.md``: bright-field inputs
are flat-field corrected (:func:`normalised_input`); the profile caps training steps
(``quick``: 200 steps of 8 × 64² crops, which may end before the loss reaches 0.15 —
the table records it) and may bin the images (``Profile.nucleus_downsample``, quick: 2);
crops include the field borders mirrored by :data:`cellcutter_nb.config.NUCLEUS_MIRROR_UM`.

Examples
--------
>>> import numpy as np
>>> from cellcutter_nb.core.nucleus import nucleus_target
>>> lab = np.zeros((3, 6), int); lab[:, 1:3] = 1; lab[:, 3:5] = 2
>>> nucleus_target(lab).astype(int)[0].tolist()
[0, 1, 0, 0, 1, 0]
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .. import config
from ..backend import keras
from ..config import Profile, get_profile
from ..data.field import Field
from .evaluate import recalibrate_batchnorm
from .model import build_unet, seed_everything
from .nucleus_inference import as_input
from .patches import normalise_channels
from .step import default_jit

__all__ = ["MODALITIES", "NucleusTraining", "downsample", "normalised_input",
           "nucleus_target", "random_crops", "train_nucleus_model"]

#: Input modalities of the synthetic-nucleus UNet and their table names.
MODALITIES: dict[str, str] = {"fl": "FL", "bf": "BF"}
#: σ of the flat-field (vignetting) correction of bright-field inputs (µm).
FLAT_FIELD_SIGMA_UM = 32.0


def downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Bin the first two axes by ``factor``: means of ``factor``² blocks (edges repeated
    to fill the last blocks). 1 returns the image as float.

    Examples
    --------
    >>> downsample(np.arange(12.0).reshape(3, 4), 2).tolist()
    [[2.5, 4.5], [8.5, 10.5]]
    """
    x = np.asarray(image, np.float64 if np.asarray(image).dtype.kind in "biu" else None)
    if int(factor) < 1 or x.ndim < 2:
        raise ValueError(f"Need an image of 2 or more axes and factor >= 1, got shape "
                         f"{x.shape} and factor {factor}.")
    f = int(factor)
    if f == 1:
        return x
    h, w = (-(-n // f) for n in x.shape[:2])
    rest = ((0, 0),) * (x.ndim - 2)
    x = np.pad(x, ((0, h * f - x.shape[0]), (0, w * f - x.shape[1]), *rest), mode="edge")
    return x.reshape(h, f, w, f, *x.shape[2:]).mean(axis=(1, 3))


def nucleus_target(nuclei: np.ndarray, factor: int = 1) -> np.ndarray:
    """Binary nucleus image with the pixels between touching nuclei removed.

    A pixel of a nucleus is dropped when one of its 8 neighbours belongs to another
    nucleus (``nuclei``: int labels, 0 = background), so touching nuclei become separate
    blobs (a 2-px gap) while an isolated nucleus keeps its full outline. Binned by
    ``factor`` (:func:`downsample`), a pixel is nucleus when more than half its block is,
    so a gap between nuclei stays a gap.

    Examples
    --------
    >>> lab = np.array([[1, 1, 2, 2, 0, 3]])
    >>> nucleus_target(lab).astype(int).tolist()
    [[1, 0, 0, 1, 0, 1]]
    >>> nucleus_target(np.repeat(lab, 2, axis=0), factor=2).astype(int).tolist()
    [[0, 0, 0]]
    """
    lab = np.asarray(nuclei)
    if lab.ndim != 2 or lab.dtype.kind not in "iu" or (lab.size and lab.min() < 0):
        raise ValueError(f"nuclei must be a 2-D non-negative integer label image, got "
                         f"{lab.dtype} {lab.shape}.")
    lab = lab.astype(np.int64)
    top = int(lab.max(initial=0)) + 1
    hi = ndi.maximum_filter(lab, size=3, mode="nearest")
    lo = ndi.minimum_filter(np.where(lab > 0, lab, top), size=3, mode="nearest")
    target = (lab > 0) & (hi <= lab) & (lo >= lab)
    return target if factor == 1 else downsample(target, factor) > 0.5


def normalised_input(field: Field, modality: str, factor: int = 1) -> np.ndarray:
    """The network input (H, W, 1), binned by ``factor`` (:func:`downsample`): ``fl``
    z-scored over the image (as the segmentation's patches); ``bf`` first divided by
    its own Gaussian blur (σ = 32 µm), a flat-field correction of the lamp's
    vignetting, which otherwise dominates a bright-field image and stalled training
    (subtracted instead when the image is not positive)."""
    if modality not in MODALITIES:
        raise ValueError(f"modality={modality!r}; choose one of {list(MODALITIES)}.")
    if modality == "fl":
        return downsample(normalise_channels(field, [modality]), factor).astype(np.float32)
    x = field[modality].astype(np.float64)
    blur = ndi.gaussian_filter(x, FLAT_FIELD_SIGMA_UM / field.pixel_size)
    x = x / blur if blur.min() > 0 and x.min() >= 0 else x - blur
    x = ((x - x.mean()) / (x.std() or 1.0))[..., None]
    return downsample(x, factor).astype(np.float32)


def random_crops(images: Sequence[np.ndarray], targets: Sequence[np.ndarray], size: int,
                 n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random ``size``² crops (image chosen at random, one of 8 flips/transposes)."""
    xs, ys = [], []
    for _ in range(n):
        i = int(rng.integers(len(images)))
        h, w = targets[i].shape
        r, c = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
        x, y = images[i][r:r + size, c:c + size], targets[i][r:r + size, c:c + size]
        t = int(rng.integers(8))
        if t & 1:
            x, y = x[::-1], y[::-1]
        if t & 2:
            x, y = x[:, ::-1], y[:, ::-1]
        if t & 4:
            x, y = x.transpose(1, 0, 2), y.T
        xs.append(x)
        ys.append(y)
    return (np.ascontiguousarray(xs, np.float32),
            np.ascontiguousarray(ys, np.float32)[..., None])


@dataclass
class NucleusTraining:
    """What :func:`train_nucleus_model` returns: the UNet (logits, free spatial size);
    ``history`` (per step: ``step``, ``loss`` of that batch, ``check_loss`` = mean of the
    last ``check_every`` steps on check steps); ``stopped``: ``"loss"`` (the paper's
    rule) or ``"max_steps"``; wall ``seconds``."""

    model: Any
    history: pd.DataFrame
    stopped: str
    seconds: float


def _training_fields(images: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                     crop: int, mirror: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Checked inputs (H, W, C) and binary targets (H, W), mirrored by ``mirror`` px."""
    xs = [as_input(x, f"images[{i}]") for i, x in enumerate(images)]
    ys = [np.asarray(y) > 0 for y in targets]
    if not xs or len(xs) != len(ys):
        raise ValueError(f"Need as many targets as images (at least one), got {len(xs)} "
                         f"images and {len(ys)} targets.")
    if len({x.shape[-1] for x in xs}) > 1:
        raise ValueError("All images need the same number of channels.")
    if mirror < 0:
        raise ValueError(f"mirror must be >= 0 px, got {mirror}.")
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if x.shape[:2] != y.shape:
            raise ValueError(f"images[{i}] has shape {x.shape[:2]}, targets[{i}] {y.shape}.")
        if min(y.shape) + 2 * mirror < crop:
            raise ValueError(f"Field {i} ({y.shape}, mirrored by {mirror} px) is smaller "
                             f"than the {crop}-px crop; pass a smaller crop.")
    if mirror:
        xs = [np.pad(x, ((mirror, mirror), (mirror, mirror), (0, 0)), mode="symmetric")
              for x in xs]
        ys = [np.pad(y, mirror, mode="symmetric") for y in ys]
    return xs, ys


def train_nucleus_model(images: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                        profile: str | Profile = "quick", *, seed: int = 0,
                        learning_rate: float = config.NUCLEUS_LEARNING_RATE,
                        stop_loss: float = config.NUCLEUS_STOP_LOSS,
                        max_steps: int | None = None, crop: int | None = None,
                        batch: int | None = None, mirror: int = 0,
                        check_every: int = 10) -> NucleusTraining:
    """Train the UNet to map images to binary nucleus targets (cross-entropy, Adam).

    Every step draws ``batch`` random crops (any field, any of the 8 flips/transposes)
    of the fields mirrored by ``mirror`` px, as tiled inference mirrors them
    (:func:`cellcutter_nb.core.nucleus_inference.predict_tiled`). Every ``check_every``
    steps the mean batch loss of those steps is compared with ``stop_loss``: at or below
    it training stops (``stopped="loss"``, the paper's rule), else it goes on to
    ``max_steps`` (``"max_steps"``). BatchNorm statistics are then re-estimated from
    training crops (no labels), as after the segmentation training.

    Parameters
    ----------
    images : sequence of ndarray (H, W) or (H, W, C)
        Network inputs (e.g. :func:`normalised_input`), one per training field.
    targets : sequence of ndarray (H, W)
        Binary targets (:func:`nucleus_target`), same shapes.
    profile : str or Profile
        UNet width and depth; defaults for ``max_steps``, ``crop``, ``batch``.
    seed : int
        Seeds the weights, the crops and the augmentation.
    learning_rate, stop_loss : float
        Adam learning rate (paper 0.005) and the loss that stops training (paper 0.15).
    max_steps, crop, batch : int, optional
        Override the profile's ``nucleus_max_steps``, ``nucleus_crop``, ``nucleus_batch``.
    mirror : int
        Mirrored border (px) around every field that crops may include (0: none).
    check_every : int
        Steps per loss check.

    Returns
    -------
    NucleusTraining

    Examples
    --------
    >>> from cellcutter_nb import config
    >>> prof = config.get_profile("smoke")
    >>> img = np.random.default_rng(0).normal(size=(64, 64)).astype("float32")
    >>> res = train_nucleus_model([img], [img > 1], prof, max_steps=2, crop=32, batch=2,
    ...                           check_every=1, stop_loss=0.0)
    >>> res.stopped, len(res.history)
    ('max_steps', 2)
    """
    prof = get_profile(profile)
    max_steps = prof.nucleus_max_steps if max_steps is None else int(max_steps)
    crop = prof.nucleus_crop if crop is None else int(crop)
    batch = prof.nucleus_batch if batch is None else int(batch)
    if min(max_steps, batch, check_every) < 1 or crop % 2 ** prof.unet_depth:
        raise ValueError(f"Need max_steps, batch, check_every >= 1 and crop a multiple of "
                         f"{2 ** prof.unet_depth}; got {max_steps}, {batch}, {check_every}, "
                         f"{crop}.")
    if not (learning_rate > 0 and stop_loss >= 0):
        raise ValueError("learning_rate must be > 0 and stop_loss >= 0.")
    xs, ys = _training_fields(images, targets, crop, int(mirror))
    seed_everything(seed)
    shape = (xs[0].shape[-1], prof.unet_width, prof.unet_depth, int(seed))
    trainer = _trainer(*shape, float(learning_rate), default_jit())
    t0 = time.perf_counter()
    history, stopped = _fit(trainer, xs, ys, crop=crop, batch=batch, max_steps=max_steps,
                            stop_loss=stop_loss, check_every=check_every,
                            rng=np.random.default_rng([seed, 7]))
    model = _unet(*shape)  # the caller's own model: the trainer is reused
    model.set_weights(trainer.get_weights())
    crops = random_crops(xs, ys, crop, 4 * batch, np.random.default_rng([seed, 8]))[0]
    recalibrate_batchnorm(model, crops, batch_size=batch, n_batches=4, seed=seed)
    return NucleusTraining(model, history, stopped, time.perf_counter() - t0)


def _unet(n_channels: int, width: int, depth: int, seed: int) -> Any:
    """A seeded nucleus UNet with free spatial size."""
    return build_unet(n_channels, width=width, depth=depth, patch_size=None,
                      name="nucleus_unet", seed=seed)


@functools.lru_cache(maxsize=2)
def _compiled(n_channels: int, width: int, depth: int, seed: int, learning_rate: float,
              jit: bool) -> tuple[Any, list, list]:
    """A compiled UNet and its initial weights and optimizer state."""
    model = _unet(n_channels, width, depth, seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True), jit_compile=jit)
    model.optimizer.build(model.trainable_variables)
    return model, model.get_weights(), [v.numpy() for v in model.optimizer.variables]


def _trainer(n_channels: int, width: int, depth: int, seed: int, learning_rate: float,
             jit: bool) -> Any:
    """A compiled UNet in its initial state (weights, Adam's moments and step count).

    The same object serves every training of the same shape, seed and rate, so Keras
    traces its train step once per process: the trace cost ~6 s of CPU per new model
    (width 16, depth 4, 2 CPU cores), 15 % of a quick-profile nucleus model.
    """
    model, weights, state = _compiled(n_channels, width, depth, seed, learning_rate, jit)
    model.set_weights(weights)
    for var, value in zip(model.optimizer.variables, state, strict=True):
        var.assign(value)
    return model


def _fit(model: Any, xs: list[np.ndarray], ys: list[np.ndarray], *, crop: int, batch: int,
         max_steps: int, stop_loss: float, check_every: int,
         rng: np.random.Generator) -> tuple[pd.DataFrame, str]:
    """The training steps of :func:`train_nucleus_model`: history and why they stopped."""
    rows: list[dict] = []
    for step in range(max_steps):
        x, y = random_crops(xs, ys, crop, batch, rng)
        for m in model.metrics:
            m.reset_state()
        loss = float(model.train_on_batch(x, y, return_dict=True)["loss"])
        rows.append({"step": step, "loss": loss, "check_loss": np.nan})
        if (step + 1) % check_every == 0:
            mean = float(np.mean([r["loss"] for r in rows[-check_every:]]))
            rows[-1]["check_loss"] = mean
            if mean <= stop_loss:
                return pd.DataFrame(rows), "loss"
    return pd.DataFrame(rows), "max_steps"
