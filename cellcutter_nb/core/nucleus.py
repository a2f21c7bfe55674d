"""Synthetic nucleus images (Fig. 5): a UNet maps ``fl`` or ``bf`` to a nucleus image.

The paper's recipe (Methods, "Synthetic nucleus image"): the segmentation UNet's
architecture, trained with binary cross-entropy and Adam (lr 0.005) to map an
anti-pY (``fl``) or bright-field (``bf``) image to the thresholded nucleus image,
stopped when the loss reaches 0.15. This module is that second network:

* :func:`nucleus_target` — binary nuclei with the boundaries between touching nuclei
  removed, from nuclei segmented on ``nuc`` (no ground truth, as the paper thresholded).
* :func:`normalised_input` — the network input of one modality.
* :func:`train_nucleus_model` — random crops, dihedral augmentation, compiled Keras
  steps; stops at the loss rule or at the profile's maximum, recording which.
* :func:`predict_tiled` — whole-field probabilities from overlapping tiles, keeping only
  each tile's centre (no seams); :func:`tiling` chooses the tiles.

The experiment around it — three-fold cross-validation over the replicates, blob
thresholds fitted on the training fields, FN/FP rates within 15 µm, segmentation with
the synthetic markers — is :mod:`cellcutter_nb.experiments.predicted_markers`.

Departures, all measured in notebook 11: bright-field inputs are flat-field corrected
(:func:`normalised_input`); the profile caps training steps (``quick``: 200 steps of
8 × 64² crops, which ends before the loss reaches 0.15 — the table records it).

Examples
--------
>>> import numpy as np
>>> from cellcutter_nb.core.nucleus import nucleus_target
>>> lab = np.zeros((3, 6), int); lab[:, 1:3] = 1; lab[:, 3:5] = 2
>>> nucleus_target(lab).astype(int)[0].tolist()
[0, 1, 0, 0, 1, 0]
"""

from __future__ import annotations

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
from ..data.field import Field, check_image
from .evaluate import recalibrate_batchnorm
from .integrate import sigmoid
from .model import build_unet, seed_everything
from .patches import normalise_channels
from .step import default_jit

__all__ = ["MODALITIES", "NucleusTraining", "normalised_input", "nucleus_target",
           "predict_tiled", "random_crops", "tiling", "train_nucleus_model"]

#: Input modalities of the synthetic-nucleus UNet and their table names.
MODALITIES: dict[str, str] = {"fl": "FL", "bf": "BF"}
#: σ of the flat-field (vignetting) correction of bright-field inputs (µm).
FLAT_FIELD_SIGMA_UM = 32.0


def nucleus_target(nuclei: np.ndarray) -> np.ndarray:
    """Binary nucleus image with the pixels between touching nuclei removed.

    A pixel of a nucleus is dropped when one of its 8 neighbours belongs to another
    nucleus (``nuclei``: int labels, 0 = background), so touching nuclei become separate
    blobs (a 2-px gap) while an isolated nucleus keeps its full outline.

    Examples
    --------
    >>> lab = np.array([[1, 1, 2, 2, 0, 3]])
    >>> nucleus_target(lab).astype(int).tolist()
    [[1, 0, 0, 1, 0, 1]]
    """
    lab = np.asarray(nuclei)
    if lab.ndim != 2 or lab.dtype.kind not in "iu" or (lab.size and lab.min() < 0):
        raise ValueError(f"nuclei must be a 2-D non-negative integer label image, got "
                         f"{lab.dtype} {lab.shape}.")
    lab = lab.astype(np.int64)
    top = int(lab.max(initial=0)) + 1
    hi = ndi.maximum_filter(lab, size=3, mode="nearest")
    lo = ndi.minimum_filter(np.where(lab > 0, lab, top), size=3, mode="nearest")
    return (lab > 0) & (hi <= lab) & (lo >= lab)


def _unet_multiple(model: Any) -> int:
    """2**(number of poolings): tile sizes and offsets must be multiples of it."""
    return 2 ** sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers)


def _as_input(image: np.ndarray, name: str = "image") -> np.ndarray:
    """(H, W) or (H, W, C) float32 network input."""
    arr = np.asarray(image, np.float32)
    if arr.ndim == 2:
        arr = check_image(arr, name)[..., None]
    if arr.ndim != 3 or not np.isfinite(arr).all():
        raise ValueError(f"{name} must be a finite (H, W) or (H, W, C) array, got "
                         f"shape {arr.shape}.")
    return arr


def normalised_input(field: Field, modality: str) -> np.ndarray:
    """The network input (H, W, 1): ``fl`` z-scored over the image (as the segmentation's
    patches); ``bf`` first divided by its own Gaussian blur (σ = 32 µm), a flat-field
    correction of the lamp's vignetting, which otherwise dominates a bright-field image
    and stalled training (subtracted instead when the image is not positive)."""
    if modality not in MODALITIES:
        raise ValueError(f"modality={modality!r}; choose one of {list(MODALITIES)}.")
    if modality == "fl":
        return normalise_channels(field, [modality])
    x = field[modality].astype(np.float64)
    blur = ndi.gaussian_filter(x, FLAT_FIELD_SIGMA_UM / field.pixel_size)
    x = x / blur if blur.min() > 0 and x.min() >= 0 else x - blur
    return ((x - x.mean()) / (x.std() or 1.0)).astype(np.float32)[..., None]


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


def train_nucleus_model(images: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                        profile: str | Profile = "quick", *, seed: int = 0,
                        learning_rate: float = config.NUCLEUS_LEARNING_RATE,
                        stop_loss: float = config.NUCLEUS_STOP_LOSS,
                        max_steps: int | None = None,
                        crop: int | None = None, batch: int | None = None,
                        check_every: int = 10) -> NucleusTraining:
    """Train the UNet to map images to binary nucleus targets (cross-entropy, Adam).

    Every step draws ``batch`` random crops (any field, any of the 8 flips/transposes).
    Every ``check_every`` steps the mean batch loss of those steps is compared with
    ``stop_loss``: at or below it training stops (``stopped="loss"``, the paper's rule),
    else it goes on to ``max_steps`` (``"max_steps"``). BatchNorm statistics are then
    re-estimated from training crops (no labels), as after the segmentation training.

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
    xs = [_as_input(x, f"images[{i}]") for i, x in enumerate(images)]
    ys = [np.clip(np.asarray(y, np.float32), 0, 1) for y in targets]
    if not xs or len(xs) != len(ys):
        raise ValueError(f"Need as many targets as images (at least one), got {len(xs)} "
                         f"images and {len(ys)} targets.")
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if x.shape[:2] != y.shape:
            raise ValueError(f"images[{i}] has shape {x.shape[:2]}, targets[{i}] {y.shape}.")
        if min(y.shape) < crop:
            raise ValueError(f"Field {i} ({y.shape}) is smaller than the {crop}-px crop; "
                             f"pass a smaller crop.")
    if len({x.shape[-1] for x in xs}) > 1:
        raise ValueError("All images need the same number of channels.")
    if min(max_steps, batch, check_every) < 1 or crop % 2 ** prof.unet_depth:
        raise ValueError(f"Need max_steps, batch, check_every >= 1 and crop a multiple of "
                         f"{2 ** prof.unet_depth}; got {max_steps}, {batch}, {check_every}, "
                         f"{crop}.")
    if not (learning_rate > 0 and stop_loss >= 0):
        raise ValueError("learning_rate must be > 0 and stop_loss >= 0.")
    seed_everything(seed)
    model = build_unet(xs[0].shape[-1], width=prof.unet_width, depth=prof.unet_depth,
                       patch_size=None, name="nucleus_unet", seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  jit_compile=default_jit())
    rng = np.random.default_rng([seed, 7])
    rows: list[dict] = []
    stopped, t0 = "max_steps", time.perf_counter()
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
                stopped = "loss"
                break
    crops = random_crops(xs, ys, crop, 4 * batch, np.random.default_rng([seed, 8]))[0]
    recalibrate_batchnorm(model, crops, batch_size=batch, n_batches=4, seed=seed)
    return NucleusTraining(model, pd.DataFrame(rows), stopped, time.perf_counter() - t0)


def predict_tiled(model: Any, image: np.ndarray, *, tile: int = 256, overlap: int = 32,
                  batch_size: int = 4) -> np.ndarray:
    """Whole-field probabilities from overlapping tiles, without seams.

    The image is mirrored by ``overlap`` px on every side (the network never saw zero
    padding in training) and cut into ``tile``² tiles every ``tile - 2·overlap`` px; of
    each tile only the centre ``(tile - 2·overlap)``² is kept, so every output pixel
    comes from exactly one tile and sees at least ``overlap`` px of context on every
    side. ``tile`` and ``overlap`` must be multiples of ``2**depth`` so that tiles share
    the whole image's pooling grid: inside the image, the result matches inference on
    the whole image.

    Parameters
    ----------
    model : keras.Model
        A UNet with free spatial size giving logits (B, H, W, 1).
    image : ndarray (H, W) or (H, W, C)
        Normalised input.
    tile, overlap : int
        Tile side and context margin (px).
    batch_size : int
        Tiles per model call (the last call is zero-padded: one compiled shape).

    Returns
    -------
    ndarray of float32 (H, W)
        Sigmoid probabilities.

    Examples
    --------
    >>> from cellcutter_nb.core.model import build_unet
    >>> m = build_unet(1, width=2, depth=2, patch_size=None, seed=0)
    >>> predict_tiled(m, np.zeros((50, 70), "float32"), tile=32, overlap=8).shape
    (50, 70)
    """
    x = _as_input(image)
    mult = _unet_multiple(model)
    if tile % mult or overlap % mult or overlap < 0 or tile <= 2 * overlap:
        raise ValueError(f"tile={tile} and overlap={overlap} must be multiples of {mult} "
                         f"(2**depth) with tile > 2·overlap.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    h, w = x.shape[:2]
    step = tile - 2 * overlap
    nr, nc = -(-h // step), -(-w // step)
    padded = np.pad(x, ((overlap, nr * step - h + overlap), (overlap, nc * step - w + overlap),
                        (0, 0)), mode="symmetric")
    corners = [(i * step, j * step) for i in range(nr) for j in range(nc)]
    out = np.empty((nr * step, nc * step), np.float32)
    for start in range(0, len(corners), batch_size):
        part = corners[start:start + batch_size]
        tiles = np.zeros((batch_size, tile, tile, x.shape[-1]), np.float32)
        for k, (r, c) in enumerate(part):
            tiles[k] = padded[r:r + tile, c:c + tile]
        logits = np.asarray(model.predict_on_batch(tiles), np.float32)[..., 0]
        for k, (r, c) in enumerate(part):
            out[r:r + step, c:c + step] = logits[k, overlap:overlap + step,
                                                 overlap:overlap + step]
    return sigmoid(out[:h, :w]).astype(np.float32)


def tiling(shape: Sequence[int], multiple: int, overlap: int = 32,
           max_tile: int = 512) -> dict[str, int]:
    """``tile`` and ``overlap`` for :func:`predict_tiled` that waste little padding.

    Examples
    --------
    >>> tiling((480, 480), 16)
    {'tile': 304, 'overlap': 32}
    """
    def up(a: int, b: int) -> int:  # a rounded up to a multiple of b
        return -(-a // b) * b

    overlap = up(overlap, multiple)
    n_tiles = -(-max(shape) // (max_tile - 2 * overlap))  # per axis
    return {"tile": up(-(-max(shape) // n_tiles), multiple) + 2 * overlap, "overlap": overlap}


