"""The :class:`Field`: one imaged field of view, its channels and (optional) ground truth.

A synthetic field from :func:`cellcutter_nb.data.synth.make_field` and a real one read
by :mod:`cellcutter_nb.data.tiffio` are the same object, so every later step takes one path.

Examples
--------
>>> import numpy as np
>>> from cellcutter_nb.data.field import Field
>>> f = Field({"fl": np.ones((8, 8)), "nuc": np.zeros((8, 8))})
>>> f.shape, f.channel_names, f.has_ground_truth
((8, 8), ('fl', 'nuc'), False)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..channels import CHANNELS, check
from ..config import PIXEL_SIZE_UM
from .checks import check_pixel_size


def check_image(image: Any, name: str, where: str = "") -> np.ndarray:
    """Return ``image`` as a finite 2-D float32 array or raise a clear ``ValueError``.

    A singleton axis, ``(H, W, 1)`` or ``(1, H, W)``, is dropped.

    Parameters
    ----------
    image : array_like
        One channel.
    name : str
        Channel name used in error messages.
    where : str
        Where the image came from (a file name), added to error messages.

    Examples
    --------
    >>> check_image(np.ones((2, 3, 1), np.uint8), "fl").shape
    (2, 3)
    """
    try:
        return _checked_image(image, f"Channel {name!r}")
    except ValueError as err:
        if not where:
            raise
        raise ValueError(f"{err} (file: {where})") from None


def _checked_image(image: Any, label: str) -> np.ndarray:
    """The checks of :func:`check_image`; messages start with ``label``."""
    if np.ma.isMaskedArray(image) and np.ma.getmaskarray(image).any():
        raise ValueError(f"{label} is a masked array with {int(np.ma.getmaskarray(image).sum())}"
                         f" masked pixels, whose values would be used as they are; fill them "
                         f"(image.filled(value)) or crop them away first.")
    arr = np.asarray(image)
    if arr.dtype.kind == "c":
        raise ValueError(f"{label} holds complex numbers ({arr.dtype}); give a real image, "
                         f"e.g. its magnitude np.abs(image) or its real part.")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.number)):
        raise ValueError(f"{label} has dtype {arr.dtype}; give a numeric image.")
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr.reshape(arr.shape[1:] if arr.shape[0] == 1 else arr.shape[:2])
    if arr.ndim == 3 and arr.shape[-1] in (2, 3, 4):
        raise ValueError(
            f"{label} looks like an RGB(A) or multi-channel image of shape {arr.shape} "
            f"({arr.shape[-1]} channels in the last axis); pick one, e.g. image[..., 0], or "
            f"convert to grey first.")
    if arr.ndim != 2:
        raise ValueError(
            f"{label} must be 2-D (H, W), got shape {arr.shape}; for a stack "
            f"or multi-page file pick one plane, e.g. image[0].")
    if arr.size == 0:
        raise ValueError(f"{label} is empty (shape {arr.shape}).")
    return _finite_float32(arr, label)


def _finite_float32(arr: np.ndarray, label: str) -> np.ndarray:
    """``arr`` as float32, refusing NaN/inf and values beyond float32's range."""
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        n_bad = int((~np.isfinite(arr)).sum())
        raise ValueError(
            f"{label} has {n_bad} NaN/inf pixels; fill or crop them first "
            f"(e.g. np.nan_to_num) so that no value is silently changed here.")
    big = float(np.abs(arr).max()) if arr.dtype.kind == "f" else 0.0
    if big > float(np.finfo(np.float32).max):
        raise ValueError(f"{label} has values up to {big:.3g}, beyond float32's range "
                         f"(±3.4e38) in which images are kept; rescale it first (e.g. "
                         f"divide by its maximum).")
    return arr.astype(np.float32, copy=False)


@dataclass
class Field:
    """One field of view: named channels, pixel size and optional ground truth.

    Parameters
    ----------
    channels : dict of str to ndarray
        Any non-empty subset of ``fl`` (whole-cell fluorescence, anti-pY-like),
        ``bf`` (bright-field) and ``nuc`` (nucleus/DAPI); each 2-D, same shape,
        finite. Stored as float32 in the units given (not normalised).
    pixel_size : float
        Micrometres per pixel (default 0.8, the paper's); 0.05–5 is accepted
        (:func:`~cellcutter_nb.data.checks.check_pixel_size`).
    labels : ndarray of uint32, optional
        Ground-truth cell labels, 0 = background, cell k belongs to marker k-1.
    nuclei : ndarray of uint32, optional
        Ground-truth nucleus labels (nucleus k lies in cell k).
    mask : ndarray of bool, optional
        Ground-truth foreground (``labels > 0`` for synthetic fields).
    markers : ndarray, shape (N, 2), optional
        One (row, col) per cell, in pixels.
    name : str
        Free-form identifier.
    meta : dict
        JSON-serialisable extras (seed, generator parameters, source file...).
    """

    channels: dict[str, np.ndarray]
    pixel_size: float = PIXEL_SIZE_UM
    labels: np.ndarray | None = None
    nuclei: np.ndarray | None = None
    mask: np.ndarray | None = None
    markers: np.ndarray | None = None
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.channels, dict) or not self.channels:
            raise ValueError("A Field needs at least one channel, e.g. {'fl': image}.")
        check(list(self.channels))
        checked = {k: check_image(v, k) for k, v in self.channels.items()}
        shapes = {k: v.shape for k, v in checked.items()}
        if len(set(shapes.values())) > 1:
            raise ValueError(f"All channels must share one shape, got {shapes}; crop or "
                             f"register the images first.")
        self.channels = {k: checked[k] for k in CHANNELS if k in checked}
        self.pixel_size = check_pixel_size(self.pixel_size)
        for attr, dtype in (("labels", np.uint32), ("nuclei", np.uint32), ("mask", bool)):
            value = getattr(self, attr)
            if value is None:
                continue
            value = np.asarray(value)
            if value.shape != self.shape:
                raise ValueError(f"{attr} has shape {value.shape} but the channels have "
                                 f"{self.shape}.")
            if attr != "mask" and (value.dtype.kind not in "iu" or value.min(initial=0) < 0):
                raise ValueError(f"{attr} must be a non-negative integer label image.")
            setattr(self, attr, value.astype(dtype, copy=False))
        if self.markers is not None:
            self.markers = check_markers(self.markers, self.shape)

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of every channel."""
        return next(iter(self.channels.values())).shape

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Names of the channels present, in canonical order."""
        return tuple(self.channels)

    @property
    def has_ground_truth(self) -> bool:
        """True when cell labels are known."""
        return self.labels is not None

    @property
    def n_cells(self) -> int:
        """Number of ground-truth cells, or of markers when there is no ground truth."""
        if self.labels is not None:
            return int(self.labels.max())
        return 0 if self.markers is None else len(self.markers)

    def __getitem__(self, channel: str) -> np.ndarray:
        if channel not in self.channels:
            raise KeyError(f"This field has no channel {channel!r}; it has "
                           f"{list(self.channels)}.")
        return self.channels[channel]

    def crop(self, rows: slice, cols: slice) -> Field:
        """Return the sub-field ``[rows, cols]``; labels keep their numbers.

        Markers outside the crop are dropped together with nothing else: labels are
        not renumbered, so use :func:`cellcutter_nb.metrics` on the crop with care.
        """
        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[rows, cols].copy()

        r0 = rows.start or 0
        c0 = cols.start or 0
        chans = {k: v[rows, cols].copy() for k, v in self.channels.items()}
        h, w = next(iter(chans.values())).shape
        markers = None
        if self.markers is not None:
            m = self.markers - (r0, c0)
            keep = (m[:, 0] >= 0) & (m[:, 0] < h) & (m[:, 1] >= 0) & (m[:, 1] < w)
            markers = m[keep]
        return Field(chans, self.pixel_size, cut(self.labels), cut(self.nuclei),
                     cut(self.mask), markers, self.name, dict(self.meta))


def check_markers(markers: Any, shape: tuple[int, int]) -> np.ndarray:
    """Return markers as a float64 (N, 2) array of (row, col) inside ``shape``.

    Raises
    ------
    ValueError
        Wrong shape, non-finite values, markers outside the image or duplicates.
    """
    m = np.asarray(markers, dtype=np.float64)
    if m.size == 0:
        return np.zeros((0, 2))
    if m.ndim != 2 or m.shape[1] != 2:
        raise ValueError(f"markers must be an (N, 2) array of (row, col), got shape {m.shape}.")
    if not np.isfinite(m).all():
        raise ValueError("markers contain NaN/inf; drop those rows first.")
    outside = (m[:, 0] < 0) | (m[:, 0] > shape[0] - 1) | (m[:, 1] < 0) | (m[:, 1] > shape[1] - 1)
    if outside.any():
        raise ValueError(f"{int(outside.sum())} marker(s) lie outside the {shape} image "
                         f"(first: {m[outside][0].tolist()}); markers are (row, col) in px.")
    _, first = np.unique(np.round(m, 6), axis=0, return_index=True)
    if len(first) != len(m):
        raise ValueError(f"{len(m) - len(first)} duplicate marker(s); each cell needs one "
                         f"distinct marker.")
    return m
