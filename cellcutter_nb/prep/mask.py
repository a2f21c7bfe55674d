"""Binary cell-area masks M of Eq. 1: graph cut (fluorescence), scribbles → forest → cut (bf).

The paper (Methods, "Binary mask") segments fluorescence images with a graph cut
minimising Eq. 2, and bright-field images with a two-class random forest (ImageJ's
Weka Segmentation, trained on 5–6 scribbles per class with Gaussian, variance and
Laplacian features) whose probability map is then graph-cut.

* :func:`graph_cut` — Eq. 2 with PyMaxflow: constant κ (paper) or the released code's
  contrast-sensitive weight, 4- or 8-neighbours.
* :func:`pixel_features` — the Weka-like feature stack.
* :func:`pixel_classifier_mask` — scribbles → random forest → :func:`graph_cut`.

A stand-in for a user's scribbles on a synthetic field is
:func:`cellcutter_nb.prep.scribbles.synthetic_scribbles`; the IoU of two masks is
:func:`cellcutter_nb.metrics.foreground_iou`.

Examples
--------
>>> import numpy as np
>>> from cellcutter_nb.metrics import foreground_iou
>>> from cellcutter_nb.prep import mask
>>> rng = np.random.default_rng(0)
>>> truth = np.zeros((64, 64), bool); truth[16:48, 16:48] = True
>>> img = truth + rng.normal(0, 0.4, truth.shape)
>>> m = mask.graph_cut(img, kappa=1.0)
>>> foreground_iou(m, truth) > 0.9
True
"""

from __future__ import annotations

import os
from typing import Any

import maxflow
import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_li, threshold_otsu
from sklearn.ensemble import RandomForestClassifier

from ..data.field import check_image

__all__ = ["graph_cut", "otsu_mask", "pixel_classifier_mask", "pixel_features", "rescale"]

#: Default constant cut penalty κ of Eq. 2 (unary costs are in nats). See graph_cut.
DEFAULT_KAPPA: float = 2.0
_EPS = 1e-3
_THRESHOLDS = {"li": threshold_li, "otsu": threshold_otsu}


def rescale(image: np.ndarray, percentiles: tuple[float, float] | None = (1.0, 99.0),
            name: str = "image") -> np.ndarray:
    """Map an image to [0, 1] by two robust percentiles (clipped), as float64.

    ``percentiles=None`` takes the image as already in [0, 1] (e.g. a probability map)
    and only clips it.

    Examples
    --------
    >>> rescale(np.arange(5.0)[None], (0, 100)).tolist()
    [[0.0, 0.25, 0.5, 0.75, 1.0]]
    """
    img = check_image(image, name).astype(np.float64)
    if percentiles is None:
        return np.clip(img, 0.0, 1.0)
    lo, hi = np.percentile(img, percentiles)
    if hi <= lo:
        lo, hi = float(img.min()), float(img.max())
    if hi <= lo:
        raise ValueError(f"{name} is constant (all pixels = {lo:g}); a mask needs contrast "
                         f"between cells and background. Check that the right channel is "
                         f"passed.")
    return np.clip((img - lo) / (hi - lo), 0.0, 1.0)


def otsu_mask(image: np.ndarray, smooth_sigma: float = 0.0) -> np.ndarray:
    """Plain Otsu threshold (bright = foreground), after an optional Gaussian smoothing.

    Examples
    --------
    >>> otsu_mask(np.array([[0, 0], [1, 1.0]])).tolist()
    [[False, False], [True, True]]
    """
    img = rescale(image, (0, 100))
    if smooth_sigma > 0:
        img = ndi.gaussian_filter(img, smooth_sigma)
    return img > threshold_otsu(img)


def _normalise(img: np.ndarray, normalisation: str, threshold: str | float,
               percentiles: tuple[float, float]) -> tuple[np.ndarray, float]:
    """Map the image to x in [0, 1]; return x and the covered fraction above threshold."""
    if normalisation == "none":
        x = np.clip(img, 0.0, 1.0)
        base = x
    else:
        base = img
    if isinstance(threshold, str):
        if threshold not in _THRESHOLDS:
            raise ValueError(f"threshold={threshold!r}; choose one of {sorted(_THRESHOLDS)} "
                             f"or give an intensity.")
        t = float(_THRESHOLDS[threshold](base))
    else:
        t = float(threshold)
    cover = float(np.clip(np.mean(base > t), 0.01, 0.99))
    if normalisation == "none":
        return x, cover
    lo, hi = np.percentile(img, percentiles)
    if normalisation == "calibrated" and t > lo:
        hi = lo + (t - lo) / (1.0 - cover)  # the threshold lands on x = 1 - cover
    if hi <= lo:
        lo, hi = float(img.min()), float(img.max())
    return np.clip((img - lo) / (hi - lo), 0.0, 1.0), cover


def graph_cut(image: np.ndarray, alpha: float | None = None, kappa: float = DEFAULT_KAPPA,
              *, neighbourhood: int = 4, pairwise: str = "constant", sigma: float = 0.1,
              smooth_sigma: float = 1.0, normalisation: str = "calibrated",
              threshold: str | float = "li",
              percentiles: tuple[float, float] = (1.0, 99.0)) -> np.ndarray:
    """Foreground mask minimising Eq. 2 of the paper by max-flow / min-cut.

    E(y) = Σ_i S(y_i) + Σ_(i,j) w_ij [y_i ≠ y_j] with S = −log(α x_i) for foreground
    and −log((1 − α)(1 − x_i)) for background, x the normalised image (kept within
    [1e-3, 1 − 1e-3] so that no cost is infinite). Without the pairwise term a pixel is
    foreground iff x > 1 − α, so the result hinges on how x is normalised, which the
    paper leaves open:

    * ``"calibrated"`` (default): an automatic global ``threshold`` t of the smoothed
      image gives the covered fraction c (the α estimate, as in the paper); x maps the
      ``percentiles[0]`` level (background) to 0 and t to 1 − c, so that a pixel at
      the threshold has equal unary costs when α = c. A different α shifts the
      boundary the Eq. 2 way.
    * ``"percentile"``: x maps ``percentiles`` to 0 and 1 (clipped). On fluorescence
      with bright junctions the cytoplasm then lies below 1 − α and is lost.
    * ``"none"``: the image is already in [0, 1] (a probability map).

    Pairwise weight w_ij: ``"constant"`` κ (paper) or ``"contrast"``
    κ·exp(−(x_i − x_j)²/2σ²) (released code, where κ is called ``max_weight``, default
    5, σ = 0.1, 8 neighbours). Diagonal edges of the 8-neighbourhood are weighted
    1/√2 (the released code used 1).

    κ (in nats, like the unary costs) trades detail for smoothness and run time:
    κ ≈ 0.5–5 is useful; κ = 2 (default) removes the speckle of noisy fluorescence
    while keeping dim lamellipodia. Max-flow time grows with κ, steeply once κ
    dominates weak unary costs: on the 1750² px synthetic fl (calibrated x) 1.2 s at
    κ = 0.5, 1.4 s at 2 and 2.3 s at 10; an uncalibrated cut of the same size has
    taken 31 s at κ = 10. Stay below ~5.

    Parameters
    ----------
    image : ndarray (H, W)
        Bright cells on a dark background (fluorescence, or a cell probability map).
    alpha : float, optional
        Prior foreground fraction in (0, 1); default: the covered fraction c above
        the threshold (clipped to [0.01, 0.99]).
    kappa : float
        Cut penalty per neighbour pair (> 0).
    neighbourhood : {4, 8}
        Pixel neighbourhood C.
    pairwise : {"constant", "contrast"}
        Constant κ (Eq. 2) or contrast-sensitive weight.
    sigma : float
        Contrast scale of the ``"contrast"`` weight, in normalised units.
    smooth_sigma : float
        Gaussian σ (px) applied first; 0 disables it. A light smoothing (σ ≈ 1)
        averages shot noise so that x is a better per-pixel estimate.
    normalisation : {"calibrated", "percentile", "none"}
        How the image is mapped to x (see above).
    threshold : {"li", "otsu"} or float
        Automatic global threshold for α and the calibration: minimum cross-entropy
        (``threshold_li``, CellProfiler's default; robust to bright junctions) or
        Otsu (which on junction-stained fluorescence splits junctions from
        cytoplasm), or an intensity.
    percentiles : (float, float)
        Robust low/high levels of the image; the high one is used only by
        ``"percentile"``.

    Returns
    -------
    ndarray of bool (H, W)
        True = foreground (cells).

    Raises
    ------
    ValueError
        Constant/empty image, α outside (0, 1), κ ≤ 0 or an unknown option.

    Examples
    --------
    >>> img = np.zeros((32, 32)); img[8:24, 8:24] = 1
    >>> int(graph_cut(img, smooth_sigma=0).sum())
    256
    """
    if neighbourhood not in (4, 8):
        raise ValueError(f"neighbourhood must be 4 or 8, got {neighbourhood!r}.")
    if pairwise not in ("constant", "contrast"):
        raise ValueError(f"pairwise={pairwise!r}; choose 'constant' (paper) or 'contrast' "
                         f"(released code).")
    if normalisation not in ("calibrated", "percentile", "none"):
        raise ValueError(f"normalisation={normalisation!r}; choose 'calibrated', "
                         f"'percentile' or 'none'.")
    if not kappa > 0:
        raise ValueError(f"kappa must be > 0 (a larger value gives smoother masks), got "
                         f"{kappa}.")
    img = check_image(image, "image").astype(np.float64)
    if np.ptp(img) == 0:
        raise ValueError("image is constant; a mask needs contrast between cells and "
                         "background. Check that the right channel is passed.")
    if smooth_sigma > 0:
        img = ndi.gaussian_filter(img, smooth_sigma)
    x, cover = _normalise(img, normalisation, threshold, percentiles)
    alpha = cover if alpha is None else alpha
    if not 0 < alpha < 1:
        raise ValueError(f"alpha is the prior foreground fraction and must be in (0, 1), "
                         f"got {alpha}.")
    xc = np.clip(x, _EPS, 1 - _EPS)
    fg = -np.log(alpha * xc)
    bg = -np.log((1 - alpha) * (1 - xc))
    base = np.minimum(fg, bg)

    g = maxflow.GraphFloat()
    nodes = g.add_grid_nodes(x.shape)
    # A node on the sink side (segment True = foreground) pays its source capacity.
    g.add_grid_tedges(nodes, fg - base, bg - base)
    steps = [(0, 1), (1, 0)] + ([(1, 1), (1, -1)] if neighbourhood == 8 else [])
    for dr, dc in steps:  # one vectorised call per edge direction
        factor = 1.0 if dr == 0 or dc == 0 else 1 / np.sqrt(2)
        struct = np.zeros((3, 3))
        struct[1 + dr, 1 + dc] = 1.0
        if pairwise == "constant":
            weights: Any = kappa * factor
        else:
            shifted = np.roll(x, (-dr, -dc), axis=(0, 1))  # wrapped edges are not added
            weights = kappa * factor * np.exp(-((x - shifted) ** 2) / (2 * sigma ** 2))
        g.add_grid_edges(nodes, weights=weights, structure=struct, symmetric=True)
    g.maxflow()
    return g.get_grid_segments(nodes)


def pixel_features(image: np.ndarray, sigmas: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0),
                   flatfield_px: float | None = 50.0) -> np.ndarray:
    """Weka-like pixel features: image, Gaussian, local variance and LoG at each σ.

    Uneven illumination (bright-field vignetting) is first divided out: the image is
    divided by its Gaussian blur of σ = ``flatfield_px`` (subtracted instead if the
    image has non-positive values; ``None`` skips it), so that scribbles in one part
    of the field teach the forest about the whole field. The result is rescaled by
    its 1/99 percentiles. Local variance is G_σ(x²) − G_σ(x)²; the LoG is
    scale-normalised (σ²∇²G). Returns float32 ``(H, W, 1 + 3·len(sigmas))``.

    Examples
    --------
    >>> pixel_features(np.random.default_rng(0).random((16, 16)), (1.0, 2.0)).shape
    (16, 16, 7)
    """
    img = check_image(image, "image").astype(np.float64)
    if flatfield_px:
        background = ndi.gaussian_filter(img, flatfield_px)
        img = img / background if img.min() > 0 else img - background
    x = rescale(img, (1.0, 99.0))
    feats = [x]
    for s in sigmas:
        g = ndi.gaussian_filter(x, s)
        feats += [g, np.maximum(ndi.gaussian_filter(x * x, s) - g * g, 0.0),
                  ndi.gaussian_laplace(x, s) * s * s]
    return np.stack(feats, axis=-1).astype(np.float32)


def pixel_classifier_mask(image: np.ndarray, scribbles: np.ndarray, *,
                          sigmas: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0),
                          flatfield_px: float | None = 50.0, n_estimators: int = 50,
                          max_samples_per_class: int = 20000,
                          seed: int = 0, n_jobs: int | None = None,
                          chunk_size: int = 262144, kappa: float = DEFAULT_KAPPA,
                          return_probability: bool = False,
                          **cut_kwargs: Any) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Bright-field mask: scribbles → random forest on pixel features → graph cut.

    Parameters
    ----------
    image : ndarray (H, W)
        Bright-field (or any) image.
    scribbles : ndarray of int (H, W)
        1 = cell, 2 = background, 0 = unlabelled (a napari Labels layer).
    sigmas : tuple of float
        Feature scales in px (:func:`pixel_features`).
    flatfield_px : float or None
        σ (px) of the illumination estimate divided out first (:func:`pixel_features`).
    n_estimators : int
        Trees of the ``RandomForestClassifier``.
    max_samples_per_class : int
        Scribble pixels per class used for training (a seeded random subset).
    seed : int
        Seed of the subset and of the forest.
    n_jobs : int, optional
        Worker threads (default: at most 2).
    chunk_size : int
        Pixels predicted per call, to bound memory.
    kappa : float
        κ of the graph cut on the cell probability.
    return_probability : bool
        Also return the cell probability map.
    **cut_kwargs
        Passed to :func:`graph_cut` (``alpha``, ``neighbourhood``, ``pairwise``...).

    Returns
    -------
    ndarray of bool, or (mask, probability)

    Raises
    ------
    ValueError
        Scribble shape ≠ image shape, values other than 0/1/2, or a class without
        any scribbled pixel.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> truth = np.zeros((48, 48), bool); truth[:, :24] = True
    >>> img = rng.normal(0, np.where(truth, 1.0, 0.1))
    >>> s = np.zeros(truth.shape, int); s[10:14, 5:15] = 1; s[30:34, 30:40] = 2
    >>> m = pixel_classifier_mask(img, s, n_estimators=10)
    >>> from cellcutter_nb.metrics import foreground_iou
    >>> bool(foreground_iou(m, truth) > 0.9)
    True
    """
    img = check_image(image, "image")
    scr = np.asarray(scribbles)
    if scr.shape != img.shape:
        raise ValueError(f"scribbles have shape {scr.shape} but the image has {img.shape}; "
                         f"paint the scribbles on this image (same size).")
    if scr.dtype.kind not in "iub" or not np.isin(scr, (0, 1, 2)).all():
        raise ValueError("scribbles must be integers 0 (unlabelled), 1 (cell) and 2 "
                         "(background).")
    idx = {k: np.flatnonzero(scr.ravel() == k) for k in (1, 2)}
    missing = [name for k, name in ((1, "cell (1)"), (2, "background (2)")) if not len(idx[k])]
    if missing:
        raise ValueError(f"scribbles have no {' and no '.join(missing)} pixels; draw a few "
                         f"strokes of each class (1 = inside cells, 2 = background).")
    feats = pixel_features(img, sigmas, flatfield_px).reshape(-1, 1 + 3 * len(sigmas))
    rng = np.random.default_rng(seed)
    train = np.concatenate([rng.permutation(idx[k])[:max_samples_per_class] for k in (1, 2)])
    jobs = n_jobs if n_jobs is not None else min(2, os.cpu_count() or 1)
    rf = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=jobs,
                                min_samples_leaf=2, class_weight="balanced")
    rf.fit(feats[train], scr.ravel()[train])
    col = int(np.flatnonzero(rf.classes_ == 1)[0])
    prob = np.empty(len(feats), np.float32)
    for start in range(0, len(feats), chunk_size):  # chunks of pixels, bounded memory
        prob[start:start + chunk_size] = rf.predict_proba(feats[start:start + chunk_size])[:, col]
    prob = prob.reshape(img.shape)
    cut_kwargs.setdefault("smooth_sigma", 0.0)
    cut_kwargs.setdefault("alpha", 0.5)  # the forest's output is already a posterior
    mask = graph_cut(prob, kappa=kappa, normalisation="none", **cut_kwargs)
    return (mask, prob) if return_probability else mask
