"""Patches around markers: one k×k patch per cell, with its position channel.

Every marker gets one k×k patch (k = ``preset.patch_size``, 64 in the paper) cut from
the chosen channels, each channel z-scored over the whole image (as the authors' code
normalises), plus a *position channel*: a Gaussian disk (σ = ``preset.position_sigma``)
centred on the marker. Training groups the patches by areas of the field, one area per
batch (:mod:`cellcutter_nb.core.batches`).

Geometry (all coordinates are (row, col) in pixels)
---------------------------------------------------
* centre pixel ``c = floor(marker + 0.5)`` (round half up,
  :func:`cellcutter_nb.metrics.centre_pixels`); patch origin (top-left)
  ``o = c - k//2``; the centre pixel sits at patch index ``(k//2, k//2)``, i.e. at
  (32, 32) of a 64-px patch, just below-right of the geometric patch centre (31.5).
* the position disk is centred at the marker's sub-pixel position, patch coordinates
  ``marker - o`` (within ±0.5 px of ``(k//2, k//2)``), value ``exp(-r² / 2σ²)``
  (peak 1), so it is (almost) the same image in every patch.
* pixels of a patch outside the image are zero in every channel *after* normalisation
  (zero = the channel mean); ``drop_border_patches=True`` (the released code) drops
  such markers instead, which leaves edge cells unsegmented.

Examples
--------
>>> import numpy as np
>>> from cellcutter_nb.data.field import Field
>>> from cellcutter_nb import config
>>> rng = np.random.default_rng(0)
>>> f = Field({"fl": rng.random((96, 96))}, markers=[[10.2, 40.0], [70.0, 50.6]])
>>> preset = config.get_preset("paper").replace(patch_size=16, area_size=64)
>>> ps = extract_patches(f, ("fl",), preset)
>>> ps.patches.shape, ps.origins.tolist()
((2, 16, 16, 2), [[2, 32], [62, 43]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import channels as chan
from ..config import Preset
from ..data.field import Field, check_markers
from ..metrics import centre_pixels
from ..prep.ridges import POLARITY, boundary_cost

__all__ = ["PatchSet", "normalise_channels", "position_disks", "patch_inside", "cut_patches",
           "patch_boundary_costs",
           "patch_markers", "extract_patches"]


@dataclass
class PatchSet:
    """All patches of one field, one per (kept) marker.

    Attributes
    ----------
    patches : ndarray, shape (N, k, k, C + 1), float32
        Normalised image channels in the order of ``channels``, then the position disk.
    origins : ndarray, shape (N, 2), int32
        Patch top-left corners in image coordinates (may be negative near the border).
    marker_indices : ndarray, shape (N,), int32
        Row of each patch's marker in the marker array (label ``k`` ↔ marker ``k-1``).
    channels : tuple of str
        Image channels used (the position channel is always appended last).
    image_shape : tuple of int
        (H, W) of the field.
    boundary_cost : ndarray, shape (N, k, k), float32, optional
        Cost of a cell boundary at each patch pixel (:func:`patch_boundary_costs`), for
        presets with a boundary term; None otherwise.
    """

    patches: np.ndarray
    origins: np.ndarray
    marker_indices: np.ndarray
    channels: tuple[str, ...]
    image_shape: tuple[int, int]
    boundary_cost: np.ndarray | None = None

    @property
    def patch_size(self) -> int:
        """Side k of the patches."""
        return int(self.patches.shape[1])

    @property
    def centres(self) -> np.ndarray:
        """Centre pixels ``origins + k//2``, shape (N, 2), int32."""
        return (self.origins + self.patch_size // 2).astype(np.int32)

    def __len__(self) -> int:
        return int(self.patches.shape[0])


def normalise_channels(field: Field, channels: Sequence[str]) -> np.ndarray:
    """Stack the chosen channels, each z-scored over the whole image.

    Parameters
    ----------
    field : Field
        The field.
    channels : sequence of str
        Non-empty subset of ``("fl", "bf", "nuc")``, in the order wanted.

    Returns
    -------
    ndarray, shape (H, W, C), float32
        ``(x - mean) / std`` per channel (a constant channel becomes all zeros).

    Examples
    --------
    >>> import numpy as np
    >>> f = Field({"fl": np.arange(16.0).reshape(4, 4)})
    >>> z = normalise_channels(f, ["fl"])
    >>> z.shape, bool(abs(z.mean()) < 1e-6), bool(abs(z.std() - 1) < 1e-6)
    ((4, 4, 1), True, True)
    """
    channels = chan.check(channels, field.channel_names)
    out = np.empty((*field.shape, len(channels)), np.float32)
    for i, name in enumerate(channels):
        img = field[name].astype(np.float64)
        std = img.std()
        out[..., i] = (img - img.mean()) / (std if std > 0 else 1.0)
    return out


def position_disks(markers: np.ndarray, patch_size: int, sigma: float) -> np.ndarray:
    """Gaussian disks ``exp(-r² / 2σ²)`` centred on each marker's sub-pixel position.

    The disk of marker ``m`` is centred at ``m - origin`` with ``origin =
    floor(m + 0.5) - k//2``; ``sigma`` is σ in px (15 in the paper). Returns an
    (N, k, k) float32 array.

    Examples
    --------
    >>> d = position_disks(np.array([[5.0, 5.0]]), 8, 2.0)
    >>> d.shape, float(d[0, 4, 4]), bool(d[0, 4, 6] < d[0, 4, 5] < 1)
    ((1, 8, 8), 1.0, True)
    """
    m = np.asarray(markers, np.float64).reshape(-1, 2)
    rel = m - (centre_pixels(m) - patch_size // 2)  # (N, 2), within ±0.5 of k//2
    grid = np.arange(patch_size, dtype=np.float64)
    g0 = np.exp(-((grid[None, :] - rel[:, :1]) ** 2) / (2 * sigma**2))
    g1 = np.exp(-((grid[None, :] - rel[:, 1:]) ** 2) / (2 * sigma**2))
    return (g0[:, :, None] * g1[:, None, :]).astype(np.float32)


def patch_inside(markers: np.ndarray, shape: tuple[int, int], patch_size: int) -> np.ndarray:
    """True for markers whose k×k patch lies entirely inside an image of ``shape``.

    Examples
    --------
    >>> patch_inside(np.array([[3.0, 10.0], [4.0, 10.0], [16.4, 10.0]]), (20, 20), 8).tolist()
    [False, True, True]
    """
    o = centre_pixels(markers).reshape(-1, 2) - patch_size // 2
    return (o >= 0).all(axis=1) & (o + patch_size <= np.asarray(shape)).all(axis=1)


def cut_patches(image: np.ndarray, markers: np.ndarray, patch_size: int,
                sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Cut k×k patches of a normalised (H, W, C) stack and append the position disk.

    ``image`` is the (H, W, C) output of :func:`normalise_channels`, ``markers`` an
    (N, 2) array inside it, ``patch_size`` the even side k and ``sigma`` σ of the disk.

    Returns
    -------
    patches : ndarray, shape (N, k, k, C + 1), float32
        Zero where a patch leaves the image.
    origins : ndarray, shape (N, 2), int32
        Top-left corners in image coordinates.

    Examples
    --------
    >>> img = np.ones((10, 10, 1), np.float32)
    >>> p, o = cut_patches(img, np.array([[0.0, 9.0]]), 4, 2.0)
    >>> o.tolist(), p[0, :, :, 0].astype(int).tolist()
    ([[-2, 7]], [[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0], [1, 1, 1, 0]])
    """
    k = int(patch_size)
    half = k // 2
    markers = np.asarray(markers, np.float64).reshape(-1, 2)
    origins = centre_pixels(markers) - half
    padded = np.pad(image, ((half, half), (half, half), (0, 0)))
    rows = origins[:, 0, None] + half + np.arange(k)  # (N, k) indices into padded
    cols = origins[:, 1, None] + half + np.arange(k)
    data = padded[rows[:, :, None], cols[:, None, :]]  # (N, k, k, C)
    disks = position_disks(markers, k, sigma)[..., None]
    return np.concatenate([data, disks], axis=-1).astype(np.float32), origins


def patch_markers(field: Field, preset: Preset, markers: np.ndarray | None = None,
                  drop_border: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The checked markers and the indices of those that get a patch.

    Parameters
    ----------
    field : Field
        The field (its markers unless ``markers`` is given).
    preset : Preset
        Supplies ``patch_size`` and ``drop_border_patches``.
    markers : ndarray, shape (N, 2), optional
        Markers (row, col); default ``field.markers``.
    drop_border : bool, optional
        Override ``preset.drop_border_patches``: drop markers whose patch leaves the
        image (released code) instead of zero-padding them.

    Returns
    -------
    markers : ndarray, shape (N, 2)
        All markers, checked.
    index : ndarray, shape (M,), int32
        Rows of ``markers`` that get a patch (all of them unless border patches drop).

    Raises
    ------
    ValueError
        No markers.

    Examples
    --------
    >>> from cellcutter_nb import config
    >>> f = Field({"fl": np.ones((40, 40))}, markers=[[2.0, 20.0], [20.0, 20.0]])
    >>> p = config.get_preset("original_code").replace(patch_size=16)
    >>> patch_markers(f, p)[1].tolist(), patch_markers(f, p, drop_border=False)[1].tolist()
    ([1], [0, 1])
    """
    if markers is None:
        if field.markers is None:
            raise ValueError("The field has no markers; pass markers=... (N, 2) or compute "
                             "them with cellcutter_nb.prep.markers first.")
        markers = field.markers
    markers = check_markers(markers, field.shape)
    drop = preset.drop_border_patches if drop_border is None else bool(drop_border)
    index = np.arange(len(markers), dtype=np.int32)
    if drop:
        index = index[patch_inside(markers, field.shape, preset.patch_size)]
    return markers, index


def extract_patches(field: Field, channels: Sequence[str], preset: Preset,
                    markers: np.ndarray | None = None,
                    drop_border: bool | None = None,
                    mask: np.ndarray | None = None) -> PatchSet:
    """Patches of the chosen channels (+ position disk) around every marker.

    Parameters
    ----------
    field : Field
        The field; its channels are z-scored over the whole image.
    channels : sequence of str
        Image channels to use, e.g. ``("fl",)`` or ``("fl", "nuc")``.
    preset : Preset
        Supplies ``patch_size``, ``position_sigma`` and ``drop_border_patches``.
    markers, drop_border
        Which markers get a patch (:func:`patch_markers`).
    mask : ndarray (H, W) of bool, optional
        The foreground mask: the boundary costs of a preset with a boundary term
        (:func:`patch_boundary_costs`) are scaled on it.

    Returns
    -------
    PatchSet
        ``marker_indices`` says which markers were kept; ``boundary_cost`` is set when
        the preset has a boundary term.

    Raises
    ------
    ValueError
        No markers, unknown channels.

    Examples
    --------
    >>> from cellcutter_nb import config
    >>> f = Field({"fl": np.ones((40, 40))}, markers=[[2.0, 20.0], [20.0, 20.0]])
    >>> p = config.get_preset("original_code").replace(patch_size=16)
    >>> extract_patches(f, ["fl"], p).marker_indices.tolist()
    [1]
    """
    channels = chan.check(channels, field.channel_names)
    markers, index = patch_markers(field, preset, markers, drop_border)
    image = normalise_channels(field, channels)
    patches, origins = cut_patches(image, markers[index], preset.patch_size,
                                   preset.position_sigma)
    cost = (patch_boundary_costs(field, channels, preset, origins, mask)
            if preset.boundary_weight > 0 else None)
    return PatchSet(patches, origins.astype(np.int32), index, channels, field.shape, cost)


def patch_boundary_costs(field: Field, channels: Sequence[str], preset: Preset,
                         origins: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The boundary cost (:func:`cellcutter_nb.prep.ridges.boundary_cost`) of the
    whole-cell channels among ``channels``, cut at each patch (1 outside the image).

    Raises
    ------
    ValueError
        ``channels`` holds no whole-cell channel (``fl`` or ``bf``).

    Examples
    --------
    >>> from cellcutter_nb import config
    >>> img = np.zeros((24, 24)); img[:, 12] = 1.0
    >>> f = Field({"fl": img}, markers=[[12.0, 6.0]])
    >>> ps = extract_patches(f, ["fl"], config.get_preset("fast").replace(patch_size=16))
    >>> cost = ps.boundary_cost[0]
    >>> bool(cost[8, 14] < 0.2 < 0.9 < cost[8, 8]), float(cost[0, 0])
    (True, 1.0)
    """
    whole = [c for c in channels if c in POLARITY]
    if not whole:
        raise ValueError(f"The {preset.name} preset's boundary term needs a whole-cell "
                         f"channel (fl or bf) among the channels, got {list(channels)}.")
    cost = boundary_cost([field[c] for c in whole], [POLARITY[c] for c in whole],
                         preset.boundary_kappa, where=mask)
    k = preset.patch_size
    half = k // 2
    padded = np.pad(cost, half, constant_values=1.0)
    rows = np.asarray(origins)[:, 0, None] + half + np.arange(k)
    cols = np.asarray(origins)[:, 1, None] + half + np.arange(k)
    return padded[rows[:, :, None], cols[:, None, :]].astype(np.float32)
