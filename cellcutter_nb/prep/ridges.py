"""Where a cell boundary is cheap: ridge strength of the whole-cell channels.

The ``fast`` preset adds a boundary term to Eq. 1 (:mod:`cellcutter_nb.core.loss`): each
patch's output pays for every change between neighbouring pixels, less where the image
shows a junction. Junctions are thin ridges: bright in anti-pY / membrane / F-actin
fluorescence (``fl``), dark lines in bright-field (``bf``). Their strength is read off
the eigenvalues of the Hessian of the z-scored channel at σ ≈ 1 px (a ridge is strongly
curved across itself and flat along itself): ``-λ_min`` for bright ridges, ``λ_max`` for
dark ones, never negative. Each channel's strength is divided by its 90th percentile
inside the mask, so that one scale κ suits every image; the cost of a boundary at a
pixel is ``exp(-κ · mean strength)`` — about 1 inside a cell, about 0.1 on a junction
(κ = 2, measured on the synthetic benchmark).

Nothing here uses labels: it is a filter of the image, like the graph-cut mask.

Examples
--------
>>> import numpy as np
>>> img = np.zeros((32, 32)); img[:, 16] = 1.0          # one bright vertical line
>>> cost = boundary_cost(img[None], ("bright",), kappa=2.0)
>>> bool(cost[10, 16] < 0.2 < 0.9 < cost[10, 5])
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage.feature import hessian_matrix, hessian_matrix_eigvals

__all__ = ["POLARITY", "boundary_cost", "ridge_strength"]

#: Junction polarity of each whole-cell channel: bright ridges in fluorescence of
#: junctions/membranes/cortical actin, dark lines in bright-field. ``nuc`` shows no
#: cell boundary and is never used.
POLARITY: dict[str, str] = {"fl": "bright", "bf": "dark"}
#: Percentile (inside the mask) that scales each channel's ridge strength to ~1.
SCALE_PERCENTILE = 90.0


def ridge_strength(image: np.ndarray, polarity: str, sigma: float = 1.0,
                   where: np.ndarray | None = None) -> np.ndarray:
    """Ridge strength of one channel, scaled so its 90th percentile in ``where`` is 1.

    Parameters
    ----------
    image : ndarray (H, W)
        The channel (any scale; it is z-scored first).
    polarity : {"bright", "dark"}
        Bright ridges (``-λ_min`` of the Hessian) or dark ones (``λ_max``).
    sigma : float
        Scale of the Hessian (px).
    where : ndarray (H, W) of bool, optional
        Pixels the scale is measured on (the mask); default all.

    Returns
    -------
    ndarray (H, W), float32, >= 0

    Examples
    --------
    >>> img = np.zeros((16, 16)); img[:, 8] = 1.0
    >>> s = ridge_strength(img, "bright")
    >>> bool(s[4, 8] > s[4, 2]), bool(ridge_strength(img, "dark")[4, 8] == 0)
    (True, True)
    """
    if polarity not in ("bright", "dark"):
        raise ValueError(f"polarity={polarity!r}; choose 'bright' or 'dark'.")
    img = np.asarray(image, np.float64)
    img = (img - img.mean()) / (img.std() or 1.0)
    h_rr, h_rc, h_cc = hessian_matrix(img, sigma=sigma, order="rc",
                                      use_gaussian_derivatives=False)
    high, low = hessian_matrix_eigvals([h_rr, h_rc, h_cc])
    strength = np.maximum(-low if polarity == "bright" else high, 0.0)
    sample = strength if where is None else strength[np.asarray(where, bool)]
    scale = np.percentile(sample, SCALE_PERCENTILE) if sample.size else 0.0
    return (strength / scale if scale > 0 else strength).astype(np.float32)


def boundary_cost(images: np.ndarray | Sequence[np.ndarray], polarities: Sequence[str],
                  kappa: float, sigma: float = 1.0,
                  where: np.ndarray | None = None) -> np.ndarray:
    """Cost of a cell boundary at each pixel: ``exp(-κ · mean ridge strength)``.

    Parameters
    ----------
    images : sequence of ndarray (H, W)
        The whole-cell channels (``fl`` and/or ``bf``; not ``nuc``).
    polarities : sequence of {"bright", "dark"}
        One per image (:data:`POLARITY`).
    kappa : float
        κ ≥ 0: how much cheaper a junction is (0: every pixel costs 1).
    sigma : float
        Scale of the ridge filter (px).
    where : ndarray (H, W) of bool, optional
        The mask the strengths are scaled on.

    Returns
    -------
    ndarray (H, W), float32, in (0, 1]
    """
    if len(images) == 0 or len(images) != len(polarities):
        raise ValueError(f"Need one polarity per image and at least one image, got "
                         f"{len(images)} images and {len(polarities)} polarities.")
    if kappa < 0:
        raise ValueError(f"kappa must be >= 0, got {kappa}.")
    strength = np.mean([ridge_strength(img, pol, sigma, where)
                        for img, pol in zip(images, polarities, strict=True)], axis=0)
    return np.exp(-kappa * strength).astype(np.float32)
