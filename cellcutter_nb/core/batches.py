"""The batches one training step sees: one area, its padding trimmed and filled, one transform.

A training step of :func:`cellcutter_nb.core.train.train` takes the patches of one area of
the field (paper: 640×640 px). Here they are

* grouped by area (:func:`area_batches`), each with the crop of the mask M its patches
  cover;
* padded only to the next multiple of ``Profile.pad_multiple`` patches (a few static
  shapes, one compile each, instead of the profile's maximum for every area), or not
  at all where static shapes are not needed and padding changes nothing
  (:func:`padding_multiple`, ``Profile.exact_batches``);
* given real patches in the padding slots, which Eq. 1 ignores but BatchNorm's batch
  statistics do not (:func:`fill_padding`);
* transformed by one of the 8 flips/transposes of the square canvas — patches, their
  offsets and the mask canvas together (:func:`transform_batch`), which leaves Eq. 1
  unchanged and so equals the paper's inverse transform of the network output.

Geometry (coordinates (row, col) in pixels; patches as in :mod:`cellcutter_nb.core.patches`,
centre pixel ``c``, side k)

* areas tile the image from a random offset ``s`` in ``[0, A)`` per epoch: area ``n``
  along an axis covers ``[n·A - s, (n+1)·A - s)``; a patch belongs to the area holding
  its centre pixel. The mask canvas of an area with origin ``a`` covers image pixels
  ``[a - k//2, a - k//2 + A + k)`` on each axis (the area grown by k/2 on every side,
  enough for all its patches), zero outside the image; a patch's offset on the canvas
  is ``c - a`` in ``[0, A)``.

Examples
--------
>>> import numpy as np
>>> from cellcutter_nb import config
>>> from cellcutter_nb.data import synth
>>> from cellcutter_nb.core.patches import extract_patches
>>> field = synth.make_field(seed=0, shape=128)
>>> preset, prof = config.get_preset("paper"), config.get_profile("smoke")
>>> ps = extract_patches(field, ("fl",), preset)
>>> batch = epoch_batches(ps, field.mask, preset, prof, np.random.default_rng(0))[0]
>>> len(batch.valid) % prof.pad_multiple, batch.n_valid <= len(batch.valid)
(0, True)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..config import Preset, Profile
from .patches import PatchSet

__all__ = ["AreaBatch", "area_batches", "dihedral", "epoch_batches", "fill_padding",
           "n_transforms", "padding_multiple", "transform_batch", "trim_padding"]


@dataclass
class AreaBatch:
    """One training batch: the patches of one area, padded to a fixed count.

    Attributes
    ----------
    patches : ndarray, shape (P, k, k, C), float32
        Patches; padding entries are all zero.
    valid : ndarray, shape (P,), float32
        1 for real patches, 0 for padding.
    offsets : ndarray, shape (P, 2), int32
        Patch origin relative to the mask canvas, in ``[0, area_size)``; 0 for padding.
    mask : ndarray, shape (area_size + k, area_size + k), float32
        Crop of the foreground mask M covering every patch of the area (see the
        module notes for the geometry), zero outside the image.
    marker_indices : ndarray, shape (P,), int32
        Marker row of each patch, -1 for padding.
    canvas_origin : tuple of int
        Image coordinates of canvas pixel (0, 0).
    boundary_cost : ndarray, shape (P, k, k), float32, optional
        The patches' boundary costs (``PatchSet.boundary_cost``), transformed with them;
        zero for padding.
    """

    patches: np.ndarray
    valid: np.ndarray
    offsets: np.ndarray
    mask: np.ndarray
    marker_indices: np.ndarray
    canvas_origin: tuple[int, int]
    boundary_cost: np.ndarray | None = None

    def targets(self) -> dict[str, np.ndarray]:
        """The ``y`` of a training step: the batch geometry (and boundary costs) Eq. 1
        needs beside the patches.

        Examples
        --------
        >>> b = AreaBatch(np.zeros((1, 4, 4, 2)), np.ones(1), np.zeros((1, 2), int),
        ...               np.ones((8, 8)), np.zeros(1, int), (0, 0))
        >>> sorted(b.targets())
        ['mask', 'offsets', 'valid']
        """
        y = {"offsets": self.offsets, "valid": self.valid, "mask": self.mask}
        if self.boundary_cost is not None:
            y["boundary_cost"] = self.boundary_cost
        return y

    @property
    def n_valid(self) -> int:
        """Number of real (non-padding) patches."""
        return int(self.valid.sum())


def area_batches(patch_set: PatchSet, mask: np.ndarray | None, area_size: int,
                 max_patches: int, rng: np.random.Generator | int | None = None,
                 shuffle: bool = True) -> list[AreaBatch]:
    """Group patches by area into fixed-shape batches (one epoch's worth).

    Parameters
    ----------
    patch_set : PatchSet
        Patches of one field.
    mask : ndarray (H, W) of bool or float, optional
        Foreground mask M of Eq. 1; ``None`` means all ones inside the image.
    area_size : int
        Area side A (``preset.area_size``, 640 in the paper).
    max_patches : int
        Padded patch count P of every batch (``profile.max_patches_per_area``).
    rng : numpy Generator, int or None
        Draws the tiling offset (and the batch order when ``shuffle``); ``None``
        gives offset 0 and the areas in row-major order. Along a side no longer than
        ``area_size`` the offset is always 0, so a small field is one batch.
    shuffle : bool
        Shuffle the order of the batches (only when ``rng`` is given).

    Returns
    -------
    list of AreaBatch
        One per area holding at least one patch; mask canvases are
        ``(A + k, A + k)``.

    Raises
    ------
    ValueError
        An area holds more than ``max_patches`` patches, or the mask has the wrong
        shape.

    Examples
    --------
    >>> from cellcutter_nb.config import get_preset
    >>> from cellcutter_nb.data.field import Field
    >>> from cellcutter_nb.core.patches import extract_patches
    >>> f = Field({"fl": np.ones((50, 50))}, markers=[[5.0, 5.0], [8.0, 30.0], [40.0, 9.0]])
    >>> ps = extract_patches(f, ["fl"], get_preset("paper").replace(patch_size=8))
    >>> bs = area_batches(ps, None, area_size=25, max_patches=3)
    >>> [b.marker_indices.tolist() for b in bs]
    [[0, -1, -1], [1, -1, -1], [2, -1, -1]]
    >>> bs[1].offsets[0].tolist(), bs[1].canvas_origin
    ([8, 5], (-4, 21))
    """
    k = patch_set.patch_size
    h, w = patch_set.image_shape
    area_size, max_patches = int(area_size), int(max_patches)
    if area_size < 1 or max_patches < 1:
        raise ValueError(f"area_size and max_patches must be >= 1, got {area_size} and "
                         f"{max_patches}.")
    if mask is None:
        mask = np.ones((h, w), np.float32)
    mask = np.asarray(mask, np.float32)
    if mask.shape != (h, w):
        raise ValueError(f"mask has shape {mask.shape} but the patches come from a {(h, w)} "
                         f"image; pass the mask of the same field.")
    if rng is not None and not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    # random tiling offsets, except along a side that one area already covers: a field
    # no larger than an area is always one whole batch (no cell loses its neighbours)
    fits = np.array([h, w]) <= area_size
    shift = (np.zeros(2, np.int64) if rng is None else
             np.where(fits, 0, rng.integers(0, area_size, size=2)))
    area_id = (patch_set.centres + shift) // area_size  # (N, 2) area index per patch
    keys, inverse = np.unique(area_id, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse, minlength=len(keys))
    if len(counts) and counts.max() > max_patches:
        worst = int(np.argmax(counts))
        raise ValueError(
            f"The area at image position {(keys[worst] * area_size - shift).tolist()} holds "
            f"{counts[worst]} patches but max_patches_per_area is {max_patches}; raise "
            f"Profile.max_patches_per_area (profile.replace(max_patches_per_area=...)) or "
            f"lower Preset.area_size.")
    order = np.arange(len(keys))
    if rng is not None and shuffle:
        order = rng.permutation(len(keys))
    side = area_size + k
    batches = []
    for a in order:
        idx = np.flatnonzero(inverse == a)
        area_origin = keys[a] * area_size - shift
        canvas_origin = area_origin - k // 2
        pad = max_patches - len(idx)
        batches.append(AreaBatch(
            patches=_pad(patch_set.patches[idx], pad, 0.0, np.float32),
            valid=_pad(np.ones(len(idx)), pad, 0.0, np.float32),
            offsets=_pad(patch_set.centres[idx] - area_origin, pad, 0, np.int32),
            mask=_crop(mask, canvas_origin, side),
            marker_indices=_pad(patch_set.marker_indices[idx], pad, -1, np.int32),
            canvas_origin=(int(canvas_origin[0]), int(canvas_origin[1])),
            boundary_cost=None if patch_set.boundary_cost is None else
            _pad(patch_set.boundary_cost[idx], pad, 0.0, np.float32)))
    return batches


def _pad(x: np.ndarray, n: int, value: float, dtype: type) -> np.ndarray:
    """Append ``n`` entries filled with ``value`` along the first axis."""
    x = np.asarray(x, dtype)
    return np.concatenate([x, np.full((n, *x.shape[1:]), value, dtype)])


def _crop(image: np.ndarray, origin: np.ndarray, side: int) -> np.ndarray:
    """``side``×``side`` crop of ``image`` starting at ``origin``, zero outside it."""
    out = np.zeros((side, side), np.float32)
    h, w = image.shape
    r0, c0 = int(origin[0]), int(origin[1])
    rs, re = max(r0, 0), min(r0 + side, h)
    cs, ce = max(c0, 0), min(c0 + side, w)
    if rs < re and cs < ce:
        out[rs - r0:re - r0, cs - c0:ce - c0] = image[rs:re, cs:ce]
    return out


def n_transforms(preset: Preset) -> int:
    """8 flips/transposes (paper) or 4 flips (released code)."""
    return 8 if preset.augment == "dihedral" else 4


def dihedral(stack: np.ndarray, t: int, *, inverse: bool = False) -> np.ndarray:
    """Dihedral transform ``t`` of a stack of images (N, H, W, ...): bit 0 flips the rows,
    bit 1 the columns, bit 2 transposes (a view, not a copy); ``inverse``: the transform
    that undoes ``t`` (for bit 2: transpose first, then flip).

    Examples
    --------
    >>> x = np.arange(4).reshape(1, 2, 2)
    >>> dihedral(x, 1)[0].tolist(), dihedral(x, 4)[0].tolist()
    ([[2, 3], [0, 1]], [[0, 2], [1, 3]])
    >>> np.array_equal(dihedral(dihedral(x, 5), 5, inverse=True), x)
    True
    """
    if not 0 <= t < 8:
        raise ValueError(f"transform index must be in 0..7, got {t}.")
    if inverse and t & 4:
        stack = stack.swapaxes(1, 2)
    if t & 1:
        stack = stack[:, ::-1]
    if t & 2:
        stack = stack[:, :, ::-1]
    if not inverse and t & 4:
        stack = stack.swapaxes(1, 2)
    return stack


def transform_batch(batch: AreaBatch, t: int) -> AreaBatch:
    """Apply dihedral transform ``t`` (bit 0 flip rows, bit 1 flip cols, bit 2 transpose).

    Patches (:func:`dihedral`), their offsets on the square canvas and the mask canvas
    are transformed together, so Eq. 1 of the transformed batch equals Eq. 1 of the
    original batch with the inverse transform applied to the network outputs.
    """
    patches = dihedral(batch.patches, t)
    side, k = batch.mask.shape[0], batch.patches.shape[1]
    offsets, mask = batch.offsets.copy(), batch.mask
    if t & 1:
        mask = mask[::-1]
        offsets[:, 0] = side - k - offsets[:, 0]
    if t & 2:
        mask = mask[:, ::-1]
        offsets[:, 1] = side - k - offsets[:, 1]
    if t & 4:
        mask = mask.T
        offsets = offsets[:, ::-1]
    cost = batch.boundary_cost
    if cost is not None:
        cost = np.ascontiguousarray(dihedral(cost, t))
    return replace(batch, patches=np.ascontiguousarray(patches),
                   offsets=np.ascontiguousarray(offsets, dtype=np.int32),
                   mask=np.ascontiguousarray(mask), boundary_cost=cost)


def trim_padding(batch: AreaBatch, multiple: int) -> AreaBatch:
    """Drop padding beyond the next multiple of ``multiple`` patches (valid ones come first).

    With ``multiple=64`` an area that holds 90 patches is run as 128, not as the
    profile's maximum of 640: with random tiling offsets most areas are partial, and
    padding costs as much compute as real patches.
    """
    keep = int(min(len(batch.valid), max(multiple, -(-batch.n_valid // multiple) * multiple)))
    cost = None if batch.boundary_cost is None else batch.boundary_cost[:keep]
    return replace(batch, patches=batch.patches[:keep], valid=batch.valid[:keep],
                   offsets=batch.offsets[:keep], marker_indices=batch.marker_indices[:keep],
                   boundary_cost=cost)


def padding_multiple(profile: Profile, preset: Preset, static_shapes: bool = True) -> int:
    """The multiple of patches a batch is padded to: ``profile.pad_multiple``, or 1 for
    exact batches (``Profile.exact_batches``; by default where the step takes any batch
    size and the network has no BatchNorm, whose batch statistics count the padding).

    Parameters
    ----------
    profile, preset : Profile, Preset
        ``pad_multiple`` and ``exact_batches``; the network's ``normalisation``.
    static_shapes : bool
        The step needs static shapes (compiled with XLA/jit).

    Examples
    --------
    >>> from cellcutter_nb import config
    >>> quick, fast = config.get_profile("quick"), config.get_preset("fast")
    >>> padding_multiple(quick, fast, static_shapes=False), padding_multiple(quick, fast)
    (1, 32)
    >>> padding_multiple(quick, config.get_preset("paper"), static_shapes=False)
    32
    >>> padding_multiple(quick.replace(exact_batches=True), config.get_preset("paper"))
    1
    """
    exact = profile.exact_batches
    if exact is None:
        exact = preset.normalisation == "group" and not static_shapes
    return 1 if exact else profile.pad_multiple


def epoch_batches(ps: PatchSet, mask, preset: Preset, profile: Profile, rng,
                  static_shapes: bool = True) -> list:
    """``steps_per_epoch`` random areas (fresh tiling offsets as needed), padded to
    :func:`padding_multiple` (``static_shapes``: the step is compiled with XLA/jit).

    The areas are grouped on a stand-in for ``ps`` with no pixels (zero channels) whose
    ``marker_indices`` are patch rows; the pixels of the kept areas are gathered
    afterwards, only up to the trimmed length. Same batches and the same ``rng`` draws
    as grouping ``ps`` itself, without copying every area's patches padded to
    ``max_patches_per_area`` (40-160 ms per step at 1750² px, 2 CPU cores).
    """
    rows = PatchSet(ps.patches[..., :0], ps.origins, np.arange(len(ps), dtype=np.int32),
                    ps.channels, ps.image_shape)
    mask = None if mask is None else np.asarray(mask, np.float32)  # converted once
    out: list[AreaBatch] = []
    while len(out) < profile.steps_per_epoch:
        out += area_batches(rows, mask, profile.train_area or preset.area_size,
                            profile.max_patches_per_area, rng)
    multiple = padding_multiple(profile, preset, static_shapes)
    return [_gather_pixels(trim_padding(b, multiple), ps) for b in out[: profile.steps_per_epoch]]


def _gather_pixels(batch: AreaBatch, ps: PatchSet) -> AreaBatch:
    """Fill a batch grouped by :func:`epoch_batches` with the patches of ``ps`` (zero
    padding) and turn its patch rows back into marker indices (-1 for padding)."""
    n, total = batch.n_valid, len(batch.valid)
    row = batch.marker_indices[:n]
    patches = np.zeros((total, *ps.patches.shape[1:]), np.float32)
    patches[:n] = ps.patches[row]
    markers = np.full(total, -1, np.int32)
    markers[:n] = ps.marker_indices[row]
    cost = None
    if ps.boundary_cost is not None:
        cost = np.zeros((total, *ps.boundary_cost.shape[1:]), np.float32)
        cost[:n] = ps.boundary_cost[row]
    return replace(batch, patches=patches, marker_indices=markers, boundary_cost=cost)


def fill_padding(batch: AreaBatch) -> AreaBatch:
    """Fill the padding slots with copies of the batch's real patches (still ``valid = 0``).

    Padding never enters Eq. 1, but it does enter BatchNorm's batch statistics in
    training mode: all-zero padding patches would dominate them in sparse areas and
    make training-mode and inference-mode outputs disagree.
    """
    n, total = batch.n_valid, len(batch.valid)
    if n == 0 or n == total:
        return batch
    patches = batch.patches.copy()
    patches[n:] = patches[np.arange(total - n) % n]
    return replace(batch, patches=patches)
