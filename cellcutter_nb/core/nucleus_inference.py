"""Whole-field synthetic nucleus images from a trained nucleus UNet (Fig. 5).

* :func:`predict_tiled` — probabilities from overlapping tiles, keeping only each tile's
  centre (no seams); :func:`tiling` chooses the tiles.
* :func:`synthetic_nucleus_image` — the average of the predictions over some of the 8
  flips/transposes of the (binned) input
  (:func:`cellcutter_nb.core.batches.dihedral`), interpolated back to the field's pixels
  (:func:`upsample`).

Training is :mod:`cellcutter_nb.core.nucleus`.

Examples
--------
>>> import numpy as np
>>> from cellcutter_nb.core.model import build_unet
>>> m = build_unet(1, width=2, depth=2, patch_size=None, seed=0)
>>> synthetic_nucleus_image(m, np.zeros((32, 32), "float32"), (32, 32), transforms=8).shape
(32, 32)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..backend import keras
from ..data.field import check_image
from .batches import dihedral
from .integrate import sigmoid

__all__ = ["as_input", "predict_tiled", "synthetic_nucleus_image", "tiling", "upsample"]


def _unet_multiple(model: Any) -> int:
    """2**(number of poolings): tile sizes and offsets must be multiples of it."""
    return 2 ** sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers)


def as_input(image: np.ndarray, name: str = "image") -> np.ndarray:
    """(H, W) or (H, W, C) finite float32 network input, as (H, W, C).

    Examples
    --------
    >>> as_input(np.zeros((4, 5))).shape
    (4, 5, 1)
    """
    arr = np.asarray(image, np.float32)
    if arr.ndim == 2:
        arr = check_image(arr, name)[..., None]
    if arr.ndim != 3 or not np.isfinite(arr).all():
        raise ValueError(f"{name} must be a finite (H, W) or (H, W, C) array, got "
                         f"shape {arr.shape}.")
    return arr


def predict_tiled(model: Any, image: np.ndarray, *, tile: int = 256, overlap: int = 32,
                  batch_size: int = 4) -> np.ndarray:
    """Whole-field probabilities from overlapping tiles, without seams.

    The image is mirrored by ``overlap`` px on every side (as the training crops saw the
    field borders) and cut into ``tile``² tiles every ``tile - 2·overlap`` px; of each
    tile only the centre ``(tile - 2·overlap)``² is kept, so every output pixel comes
    from exactly one tile and sees at least ``overlap`` px of context on every side.
    ``tile`` and ``overlap`` must be multiples of ``2**depth`` so that tiles share the
    whole image's pooling grid: inside the image, the result matches inference on the
    whole image.

    Parameters
    ----------
    model : keras.Model
        A UNet with free spatial size giving logits (B, H, W, 1).
    image : ndarray (H, W) or (H, W, C)
        Normalised input.
    tile, overlap : int
        Tile side and context margin (px).
    batch_size : int
        Most tiles per model call (the last call is zero-padded, so one compiled shape;
        never more than there are tiles).

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
    x = as_input(image)
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
    batch_size = min(batch_size, len(corners))
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


def upsample(image: np.ndarray, factor: int, shape: Sequence[int]) -> np.ndarray:
    """Bilinear interpolation of a binned image back to ``shape`` (H, W) pixels.

    Pixel k of the binned image is the mean of pixels ``k·factor … (k+1)·factor - 1``
    (:func:`cellcutter_nb.core.nucleus.downsample`), so its value lands on their centre.

    Examples
    --------
    >>> upsample(np.array([[0.0, 1.0]]), 2, (2, 3)).tolist()
    [[0.0, 0.25, 0.75], [0.0, 0.25, 0.75]]
    """
    h, w = (int(s) for s in shape)
    img = np.asarray(image, np.float32)
    if factor < 1 or img.shape[0] * factor < h or img.shape[1] * factor < w:
        raise ValueError(f"A {img.shape} image binned by {factor} cannot cover {h}×{w} px.")
    if factor == 1:
        return img[:h, :w].copy()
    return ndi.zoom(img, factor, order=1, mode="nearest", grid_mode=True)[:h, :w]


def synthetic_nucleus_image(model: Any, image: np.ndarray, shape: Sequence[int], *,
                            factor: int = 1, transforms: int = 1) -> np.ndarray:
    """A synthetic nucleus image: predictions averaged over dihedral transforms.

    ``image`` is the network input (binned by ``factor``); the probabilities of the
    first ``transforms`` of the 8 flips/transposes
    (:func:`~cellcutter_nb.core.batches.dihedral`; 1: the image as it is) are
    transformed back, averaged and interpolated to ``shape``, the field's pixels
    (:func:`upsample`).

    Examples
    --------
    >>> from cellcutter_nb.core.model import build_unet
    >>> m = build_unet(1, width=2, depth=2, patch_size=None, seed=0)
    >>> synthetic_nucleus_image(m, np.zeros((25, 35), "float32"), (50, 70), factor=2,
    ...                         transforms=2).shape
    (50, 70)
    """
    if not 1 <= int(transforms) <= 8:
        raise ValueError(f"transforms must be 1-8, got {transforms}.")
    x = as_input(image)
    tiles = tiling(x.shape[:2], _unet_multiple(model))
    mean = np.zeros(x.shape[:2], np.float32)
    for k in range(int(transforms)):
        prob = predict_tiled(model, np.ascontiguousarray(dihedral(x[None], k)[0]), **tiles)
        mean += dihedral(prob[None], k, inverse=True)[0] / int(transforms)
    return upsample(mean, factor, shape)
