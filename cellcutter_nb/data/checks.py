"""Checks of what a user hands in: numbers, masks and set-ups that cannot be right.

Every entry point (:class:`~cellcutter_nb.data.field.Field`,
:func:`~cellcutter_nb.app.pipeline.segment`, :func:`~cellcutter_nb.core.train.train`, the
command line, the notebooks' parameters) runs its inputs through these, so a wrong value
ends in one ``ValueError`` that names it and says how to fix it, and a set-up that is
possible but implausible gives an :class:`InputWarning` instead of a silent result.
``name`` is how the value is called in the caller's terms (``pixel_size`` in Python,
``--pixel-size`` on the command line).

Examples
--------
>>> import numpy as np
>>> from cellcutter_nb.data.checks import check_mask, check_pixel_size
>>> check_pixel_size(0.65)
0.65
>>> check_mask(np.array([[0, 1], [1, 1]]), (2, 2)).tolist()
[[False, True], [True, True]]
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np

__all__ = ["MAX_UM2_PER_MARKER", "MIN_PX_PER_MARKER", "MIN_UM2_PER_MARKER", "PIXEL_SIZE_RANGE",
           "InputWarning", "PixelSizeWarning", "check_mask", "check_mask_coverage",
           "check_marker_density", "check_pixel_size", "check_seconds", "check_seed"]

#: Plausible pixel sizes (µm/px): a 100× oil objective on a small-pixel camera to a 2×
#: objective on a large-pixel one.
PIXEL_SIZE_RANGE: tuple[float, float] = (0.05, 5.0)
#: Below this image area per marker (µm²) cells would be smaller than any mammalian cell.
MIN_UM2_PER_MARKER = 20.0
#: Below this image area per marker (px) a marker has no room for a cell of its own.
MIN_PX_PER_MARKER = 16.0
#: Above this image area per marker (µm²) each cell would be > 160 µm wide.
MAX_UM2_PER_MARKER = 20_000.0
#: A mask covering less than this fraction of the image is implausible.
MIN_MASK_FRACTION = 0.01


class InputWarning(UserWarning):
    """An input that is possible but probably wrong (the message says what to check)."""


class PixelSizeWarning(InputWarning):
    """Sizes in the image do not fit its pixel size (the command line names
    ``--pixel-size`` after the message)."""


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def check_pixel_size(value: Any, name: str = "pixel_size") -> float:
    """``value`` as a float if it is a plausible pixel size in µm/px, else ``ValueError``.

    Examples
    --------
    >>> check_pixel_size(True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: pixel_size=True is not a number of µm per pixel; ...
    """
    lo, hi = PIXEL_SIZE_RANGE
    if not _is_real(value):
        raise ValueError(f"{name}={value!r} is not a number of µm per pixel; give one such "
                         f"as 0.65 (read it from the microscope's metadata).")
    if not (np.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"{name}={value:g} µm/px is outside the plausible range {lo:g}–{hi:g}"
                         f" µm/px; give the size of one pixel in µm (e.g. 0.65 for a 10× "
                         f"objective; Fiji: Image > Properties).")
    return float(value)


def check_seed(value: Any, name: str = "seed") -> int:
    """``value`` as an int if it is a whole number in 0 .. 2**32 - 1, else ``ValueError``.

    Examples
    --------
    >>> check_seed(np.int64(3))
    3
    """
    if isinstance(value, bool) or not isinstance(value, Integral) or not 0 <= value < 2**32:
        raise ValueError(f"{name}={value!r} is not a valid seed; give a whole number from 0 "
                         f"to 4294967295.")
    return int(value)


def check_seconds(value: Any, name: str = "max_seconds") -> float | None:
    """``None`` (no time cap) or a positive finite number of seconds, else ``ValueError``.

    Examples
    --------
    >>> check_seconds(60), check_seconds(None)
    (60.0, None)
    """
    if value is None:
        return None
    if not _is_real(value) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value!r} is not a time cap; give a positive number of "
                         f"seconds, or leave it out to train without a cap.")
    return float(value)


def check_mask(mask: Any, shape: tuple[int, int], name: str = "mask") -> np.ndarray:
    """A foreground mask as a bool array: bool or 0/1 values; 0/255 (as Fiji saves masks) is
    read as 255 = foreground with an :class:`InputWarning`; anything else is refused.

    Raises
    ------
    ValueError
        Wrong shape, masked pixels, NaN, or values other than 0/1 (0/255).

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     m = check_mask(np.array([[0, 255]], np.uint8), (1, 2))
    >>> m.tolist(), "0/255" in str(w[0].message)
    ([[False, True]], True)
    """
    if np.ma.isMaskedArray(mask) and np.ma.getmaskarray(mask).any():
        raise ValueError(f"{name} is a masked array with {int(np.ma.getmaskarray(mask).sum())}"
                         f" masked pixels; fill them first (e.g. {name}.filled(0)).")
    arr = np.asarray(mask)
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} has shape {arr.shape}, the images {tuple(shape)}; give a "
                         f"mask of the same size as the images.")
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} has dtype {arr.dtype}; give a bool array (True = cell).")
    values = np.unique(arr)
    if set(values.tolist()) <= {0, 1}:
        return arr == 1
    if set(values.tolist()) <= {0, 255}:
        warnings.warn(f"{name} has values 0/255 (as Fiji saves masks): read as 255 = "
                      f"foreground, 0 = background.", InputWarning, stacklevel=2)
        return arr == 255
    shown = ", ".join(f"{v:g}" for v in values[:5]) + (", ..." if len(values) > 5 else "")
    raise ValueError(f"{name} has values {shown}; a mask holds only 0/1 (or 0/255, or "
                     f"True/False). For a label image use labels > 0.")


def check_mask_coverage(mask: np.ndarray, markers: np.ndarray, name: str = "mask",
                        fix: str = "train without a mask (mask=None)") -> None:
    """Refuse a mask that misses most markers while covering < 1 % of the image; warn when
    it covers < 1 % but holds the markers.

    Examples
    --------
    >>> m = np.zeros((100, 100), bool); m[0, 0] = True
    >>> check_mask_coverage(m, np.array([[50.0, 50.0]]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: The mask covers 0.01 % of the image (1 px) and 1 of 1 markers lie outside it...
    """
    frac = float(mask.mean())
    if frac >= MIN_MASK_FRACTION or len(markers) == 0:
        return
    r, c = np.clip(np.round(markers).astype(int), 0, np.array(mask.shape) - 1).T
    outside = int((~mask[r, c]).sum())
    what = (f"The {name} covers {100 * frac:.2g} % of the image ({int(mask.sum())} px) and "
            f"{outside} of {len(markers)} markers lie outside it")
    if outside > len(markers) / 2:
        raise ValueError(f"{what}: the mask step failed (is the fluorescence image the "
                         f"whole-cell stain?). Check the image, or {fix}.")
    warnings.warn(f"{what}; cells will be cut to that small area. Check the mask.",
                  InputWarning, stacklevel=2)


def check_marker_density(n_markers: int, shape: tuple[int, int], pixel_size: float,
                         what: str = "markers") -> None:
    """Refuse more markers than the image has room for; warn when each marker would own
    more than :data:`MAX_UM2_PER_MARKER` µm² (a wrong pixel size, or markers missing).

    Examples
    --------
    >>> check_marker_density(10_000, (160, 160), 0.8)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: 10000 markers on a 160×160 image leave 2.6 px (1.6 µm²) per cell...
    """
    if n_markers == 0:
        return
    px = shape[0] * shape[1] / n_markers
    um2 = px * pixel_size ** 2
    if px < MIN_PX_PER_MARKER or um2 < MIN_UM2_PER_MARKER:
        raise ValueError(
            f"{n_markers} {what} on a {shape[0]}×{shape[1]} image leave {px:.2g} px "
            f"({um2:.2g} µm²) per cell at {pixel_size:g} µm/px, smaller than any cell (at least"
            f" {MIN_UM2_PER_MARKER:g} µm² and {MIN_PX_PER_MARKER:g} px); give one marker per "
            f"cell (row, col), and check the pixel size.")
    if um2 > MAX_UM2_PER_MARKER:
        warnings.warn(
            f"Only {n_markers} {what} on a {shape[0]}×{shape[1]} image: {um2:,.0f} µm² per "
            f"cell at {pixel_size:g} µm/px, more than {MAX_UM2_PER_MARKER:,.0f} µm² (a cell 160"
            f" µm wide). Check the pixel size and that every cell has a marker.",
            PixelSizeWarning, stacklevel=2)
