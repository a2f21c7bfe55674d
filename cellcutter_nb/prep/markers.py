"""Markers: one (row, col) per cell, from a nucleus image, and their detection rates.

The paper computed markers as nucleus centroids with CellProfiler (experimental
DAPI images) and with a difference-of-Gaussians blob detector (synthetic nucleus
images); the authors' released code used a determinant-of-Hessian detector.

* :func:`nuclei_from_image` — CellProfiler's ``IdentifyPrimaryObjects`` with its
  default settings (smoothing, minimum cross-entropy threshold, intensity
  declumping, size limits), returning a nucleus label image.
* :func:`markers_from_labels` — label centroids, vectorised.
* :func:`detect_blobs` — DoG (paper) or DoH (released code) blob centres.
* :func:`match_markers` (from :mod:`cellcutter_nb.prep.marker_matching`) — optimal
  one-to-one pairing within 15 µm and the TP / FN / FP counts and rates of the paper's
  "synthetic markers" paragraph.

Examples
--------
>>> import numpy as np
>>> from cellcutter_nb.prep import markers
>>> yy, xx = np.mgrid[:64, :64]
>>> img = ((yy - 20) ** 2 + (xx - 20) ** 2 < 64) + ((yy - 44) ** 2 + (xx - 40) ** 2 < 64)
>>> lab = markers.nuclei_from_image(img.astype(float), diameter_um=(8, 20), pixel_size=0.8)
>>> markers.markers_from_labels(lab).round(1).tolist()
[[20.0, 20.0], [44.0, 40.0]]
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import blob_dog, blob_doh
from skimage.filters import threshold_li, threshold_otsu
from skimage.morphology import disk, remove_small_holes
from skimage.segmentation import relabel_sequential, watershed

from ..config import PIXEL_SIZE_UM
from ..data.checks import PixelSizeWarning, check_pixel_size
from ..data.field import check_image
from .marker_matching import MatchResult, match_markers

__all__ = ["MatchResult", "detect_blobs", "markers_from_labels", "match_markers",
           "nuclei_from_image"]

#: Declumping disks wider than this (px) are replaced by squares (tiny pixel sizes).
MAX_DISK_RADIUS = 20.0


def _check_varying(image: np.ndarray, name: str) -> np.ndarray:
    img = check_image(image, name).astype(np.float64)
    if np.ptp(img) == 0:
        raise ValueError(f"{name} is constant (all pixels = {img.flat[0]:g}); there is "
                         f"nothing to segment. Pass the nucleus (DAPI) channel.")
    return img


def nuclei_from_image(nuc: np.ndarray, *, diameter_um: tuple[float, float] = (6.0, 30.0),
                      pixel_size: float = PIXEL_SIZE_UM, threshold: str = "li",
                      threshold_sigma: float = 1.0, declump: str = "intensity",
                      exclude_border: bool = False) -> np.ndarray:
    """Segment nuclei like CellProfiler's IdentifyPrimaryObjects with default settings.

    Steps (CellProfiler 4 defaults, sizes converted from µm with ``pixel_size``):

    1. Global threshold of the image (minimum cross-entropy, ``skimage``'s
       ``threshold_li``; or Otsu) applied to the image smoothed with a Gaussian of
       σ = ``threshold_sigma`` px (CellProfiler: smoothing scale 1.3488 → σ = 1).
    2. Fill holes smaller than ``max_diameter²`` px; 8-connected components.
    3. Declump: local maxima of the image smoothed with σ = (2.35·d_min/3.5)/2.35
       px, suppressed within a disk of radius d_min/1.5 px; watershed of
       ``-image`` (``"intensity"``) or of the negative distance transform
       (``"shape"``) from those maxima inside each component. ``"none"`` skips it.
    4. Discard objects whose area is outside π d_min²/4 … π d_max²/4 and,
       optionally, objects touching the image border (CellProfiler's default; off
       here because the benchmark's ground truth keeps border cells).

    Parameters
    ----------
    nuc : ndarray (H, W)
        Nucleus (DAPI) image, any positive scale.
    diameter_um : (float, float)
        Typical nucleus diameter range in µm; set it to your nuclei. The default
        6–30 µm covers A431-like nuclei (8–14 µm long); CellProfiler's own default,
        10–40 px = 8–32 µm at 0.8 µm/px, drops the smallest nuclei and also sets a
        coarser declumping radius.
    pixel_size : float
        µm per pixel.
    threshold : {"li", "otsu"}
        Global threshold method (CellProfiler default: minimum cross-entropy, "li").
    threshold_sigma : float
        Gaussian σ (px) of the smoothing applied before thresholding.
    declump : {"intensity", "shape", "none"}
        How touching nuclei are split.
    exclude_border : bool
        Drop nuclei touching the image edge.

    Returns
    -------
    ndarray of int32 (H, W)
        Nucleus labels 1..N (0 = background), numbered consecutively.

    Raises
    ------
    ValueError
        Constant or non-2-D image, bad sizes or method names, or no nucleus found.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:48, :48]
    >>> img = ((yy - 24) ** 2 + (xx - 24) ** 2 < 81).astype(float)
    >>> int(nuclei_from_image(img, diameter_um=(8, 20)).max())
    1
    """
    img = _check_varying(nuc, "nuc")
    pixel_size = check_pixel_size(pixel_size)
    d_min, d_max = (float(d) / pixel_size for d in diameter_um)
    if not 0 < d_min < d_max:
        raise ValueError(f"diameter_um must be (min, max) with 0 < min < max, got "
                         f"{diameter_um}.")
    methods = {"li": threshold_li, "otsu": threshold_otsu}
    if threshold not in methods:
        raise ValueError(f"threshold={threshold!r}; choose one of {sorted(methods)}.")
    if declump not in ("intensity", "shape", "none"):
        raise ValueError(f"declump={declump!r}; choose 'intensity', 'shape' or 'none'.")

    smooth_t = ndi.gaussian_filter(img, threshold_sigma) if threshold_sigma > 0 else img
    binary = smooth_t >= methods[threshold](img)
    thresholded = int(binary.sum())
    binary = remove_small_holes(binary, max_size=int(d_max * d_max))
    labels, n = ndi.label(binary, structure=np.ones((3, 3), bool))
    if n == 0:
        raise ValueError("No nucleus found above the threshold; check that `nuc` is the "
                         "nucleus channel with bright nuclei on a dark background.")
    if declump != "none":
        if declump == "intensity":
            peak_image = ndi.gaussian_filter(img, max((2.35 * d_min / 3.5) / 2.35, 0.5))
            flood = -img
        else:
            peak_image = ndi.distance_transform_edt(binary)
            flood = -peak_image
        is_peak = (peak_image == _local_max(peak_image, max(1.0, d_min / 1.5 - 0.5))) & binary
        seeds, _ = ndi.label(is_peak, structure=np.ones((3, 3), bool))
        labels = watershed(flood, seeds, mask=binary, connectivity=2)
    if exclude_border:
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        labels[np.isin(labels, edge[edge > 0])] = 0
    areas = np.bincount(labels.ravel())
    keep = (areas >= np.pi * d_min ** 2 / 4) & (areas <= np.pi * d_max ** 2 / 4)
    keep[0] = False
    _warn_sizes(int(areas[keep].sum()), thresholded, int(keep.sum()), diameter_um, pixel_size)
    labels = np.where(keep[labels], labels, 0)
    labels = relabel_sequential(labels)[0].astype(np.int32)
    if labels.max() == 0:
        raise ValueError(f"All {n} thresholded objects fall outside the size range "
                         f"{diameter_um} µm at {pixel_size} µm/px; widen `diameter_um` or "
                         f"check `pixel_size`.")
    return labels


def _local_max(image: np.ndarray, radius: float) -> np.ndarray:
    """Maximum over a disk of ``radius`` px; beyond :data:`MAX_DISK_RADIUS` over the
    enclosing square (separable, so a tiny pixel size cannot take minutes or all memory)."""
    if radius > MAX_DISK_RADIUS:
        return ndi.maximum_filter(image, size=2 * int(radius) + 1)
    return ndi.maximum_filter(image, footprint=disk(radius))


def _warn_sizes(kept_area: int, thresholded_area: int, n_kept: int,
                diameter_um: tuple[float, float], pixel_size: float) -> None:
    """Warn when the nuclei kept cover less than half, or more than twice, the area above
    the threshold: most objects on ``nuc`` do not fit the size range (dropped, or gaps
    between them filled as holes), so the pixel size (or ``diameter_um``) is off."""
    if n_kept == 0 or 0.5 * thresholded_area <= kept_area <= 2 * thresholded_area:
        return
    lo, hi = (d / pixel_size for d in diameter_um)
    warnings.warn(
        f"The {n_kept} nuclei kept cover {100 * kept_area / thresholded_area:.0f} % of the "
        f"area above the threshold on nuc: the objects there do not fit nuclei of "
        f"{diameter_um[0]:g}–{diameter_um[1]:g} µm ({lo:.0f}–{hi:.0f} px at {pixel_size:g} "
        f"µm/px). Is the pixel size right? (Or set diameter_um to the size of your nuclei.)",
        PixelSizeWarning, stacklevel=3)


def markers_from_labels(labels: np.ndarray) -> np.ndarray:
    """Centroids (row, col) of the objects of a label image, in ascending label order.

    Vectorised with ``np.bincount``; labels absent from the image are skipped, so for
    consecutive labels 1..N row k-1 belongs to label k.

    Parameters
    ----------
    labels : ndarray of int (H, W)
        0 = background.

    Returns
    -------
    ndarray of float64, shape (N, 2)

    Examples
    --------
    >>> lab = np.zeros((5, 6), int); lab[1:3, 1:3] = 1; lab[4, 5] = 3
    >>> markers_from_labels(lab).tolist()
    [[1.5, 1.5], [4.0, 5.0]]
    """
    lab = np.asarray(labels)
    if lab.ndim != 2 or lab.dtype.kind not in "iu":
        raise ValueError(f"labels must be a 2-D integer label image, got {lab.dtype} "
                         f"{lab.shape}.")
    if lab.size and lab.min() < 0:
        raise ValueError("labels must be >= 0 (0 = background).")
    flat = lab.ravel().astype(np.int64)
    rows, cols = np.indices(lab.shape).reshape(2, -1)
    count = np.bincount(flat)
    present = np.flatnonzero(count)
    present = present[present > 0]
    r = np.bincount(flat, weights=rows)[present] / count[present]
    c = np.bincount(flat, weights=cols)[present] / count[present]
    return np.column_stack([r, c]).astype(np.float64)


def detect_blobs(image: np.ndarray, method: str = "dog", *,
                 diameter_um: tuple[float, float] = (6.0, 20.0),
                 pixel_size: float = PIXEL_SIZE_UM, threshold: float | None = None,
                 overlap: float = 0.5) -> np.ndarray:
    """Bright blob centres of a (synthetic) nucleus image by DoG or DoH.

    The image is first rescaled to [0, 1] by its 0.5 and 99.5 percentiles (clipped),
    so ``threshold`` is in units of that range. A blob of diameter d has its
    scale-space peak at σ = d / (2√2) (DoG) or σ = d / 2 (DoH); the nucleus diameter
    range in µm sets ``min_sigma``/``max_sigma``. DoH also responds to dark blobs
    (e.g. the gaps between nuclei): blobs whose Laplacian of Gaussian at their own
    scale is not negative are dropped (the released code kept blobs above the mean).

    Parameters
    ----------
    image : ndarray (H, W)
        Nucleus-like image: bright blobs on a dark background.
    method : {"dog", "doh"}
        Difference of Gaussians (paper) or determinant of Hessian (released code).
    diameter_um : (float, float)
        Nucleus diameter range (µm).
    pixel_size : float
        µm per pixel.
    threshold : float
        Detection threshold passed to ``skimage.feature.blob_dog`` / ``blob_doh``
        (DoH thresholds are typically ~10× smaller: use ~0.01).
    overlap : float
        Blobs overlapping more than this fraction are merged (kept: the larger).

    Returns
    -------
    ndarray of float64, shape (N, 2)
        (row, col) of each blob, sorted by row then column.

    Examples
    --------
    >>> yy, xx = np.mgrid[:64, :64]
    >>> img = np.exp(-((yy - 30) ** 2 + (xx - 20) ** 2) / 50.0)
    >>> detect_blobs(img, "dog").round().tolist()
    [[30.0, 20.0]]
    """
    img = _check_varying(image, "image")
    if method not in ("dog", "doh"):
        raise ValueError(f"method={method!r}; choose 'dog' (paper) or 'doh' (released code).")
    d_min, d_max = (float(d) / check_pixel_size(pixel_size) for d in diameter_um)
    if not 0 < d_min < d_max:
        raise ValueError(f"diameter_um must be (min, max) with 0 < min < max, got "
                         f"{diameter_um}.")
    lo, hi = np.percentile(img, [0.5, 99.5])
    hi = hi if hi > lo else img.max()
    x = np.clip((img - lo) / (hi - lo), 0, 1)
    # blob radius r ≈ √2·σ for DoG and ≈ σ for DoH (skimage's conventions)
    k = 2 * np.sqrt(2) if method == "dog" else 2.0
    s_min, s_max = d_min / k, d_max / k
    if threshold is None:
        threshold = 0.1 if method == "dog" else 0.005
    if method == "dog":
        blobs = blob_dog(x, min_sigma=s_min, max_sigma=s_max, threshold=threshold,
                         overlap=overlap)
    else:
        blobs = blob_doh(x, min_sigma=s_min, max_sigma=s_max, threshold=threshold,
                         overlap=overlap)
    if len(blobs) == 0:
        return np.zeros((0, 2))
    pos, sig = blobs[:, :2], blobs[:, 2]
    rr, cc = np.round(pos).astype(int).T
    bright = np.zeros(len(pos), bool)
    for s in np.unique(sig):  # bright blob ⇔ negative Laplacian at its own scale
        at = sig == s
        bright[at] = ndi.gaussian_laplace(x, s)[rr[at], cc[at]] < 0
    pos = pos[bright]
    return pos[np.lexsort((pos[:, 1], pos[:, 0]))].astype(np.float64)
