"""The references beside the network: CellProfiler's secondary objects and position only.

Table 1's CellProfiler row: CellProfiler's own secondary-object algorithms on fl.

The paper segmented the anti-pY image with CellProfiler's IdentifySecondaryObjects,
seeded by the nuclei, and reported the best of its methods (mIOU 0.69 ± 0.034).
This module runs the same algorithms without CellProfiler itself:

* ``"propagation"`` — ``centrosome.propagate.propagate`` (CellProfiler's own
  implementation): each pixel goes to the nucleus with the shortest path, steps
  costing sqrt(ΔI² + λ²) (λ = ``regularization``, CellProfiler's default 0.05),
  limited to the thresholded foreground;
* ``"watershed_image"`` — watershed of the inverted image from the nuclei inside
  foreground ∪ nuclei ("Watershed - Image");
* ``"watershed_gradient"`` — the same on the Sobel gradient ("Watershed - Gradient");
* ``"distance_n"`` — nuclei expanded by a fixed distance, the image unused
  ("Distance - N", CellProfiler's default 10 px = 8 µm at 0.8 µm/px).

All outputs keep the nucleus numbering: label k grows from nucleus k (marker k-1).
Holes inside each object are filled as CellProfiler does.

:func:`nearest_marker_partition` is the *position-only* reference: each mask pixel to its
nearest marker, no image used (DESIGN.md: always show it beside unsupervised results).

Examples
--------
>>> from cellcutter_nb.data.synth import make_field
>>> from cellcutter_nb.prep import baseline
>>> res = baseline.cellprofiler_baseline(make_field(seed=0, shape=160))
>>> sorted(res.labels) == sorted(baseline.METHODS) and res.best in res.labels
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from centrosome.cpmorphology import fill_labeled_holes
from centrosome.propagate import propagate
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.filters import threshold_li, threshold_otsu
from skimage.segmentation import expand_labels, relabel_sequential, watershed

from ..data.field import Field, check_image
from ..metrics import per_cell_iou, summarize
from .markers import markers_from_labels, nuclei_from_image
from .mask import graph_cut

__all__ = ["METHODS", "BaselineResult", "cellprofiler_baseline", "nearest_marker_partition",
           "secondary_objects"]

#: IdentifySecondaryObjects methods implemented here.
METHODS: tuple[str, ...] = ("propagation", "watershed_image", "watershed_gradient",
                            "distance_n")


@dataclass
class BaselineResult:
    """Label images of each method, their scores and the best one.

    Attributes
    ----------
    labels : dict of str to ndarray
        Method name → int32 label image (label k ↔ nucleus k).
    nuclei : ndarray
        Seed nucleus labels, renumbered 1..N.
    markers : ndarray, shape (N, 2)
        Nucleus centroids; marker k-1 belongs to label k.
    foreground : ndarray of bool
        Thresholded foreground used by the image-based methods.
    scores : DataFrame or None
        One row per method: ``miou``, ``std``, ``n`` (ground-truth cells) from
        :func:`cellcutter_nb.metrics.per_cell_iou` through the markers, and
        ``n_cells`` predicted; None without ground truth.
    best : str or None
        Method with the highest mIOU (None without ground truth).
    """

    labels: dict[str, np.ndarray]
    nuclei: np.ndarray
    markers: np.ndarray
    foreground: np.ndarray
    scores: pd.DataFrame | None = None
    best: str | None = None
    meta: dict = field(default_factory=dict)


def _unit(image: np.ndarray) -> np.ndarray:
    """Min–max rescale to [0, 1] (CellProfiler works on [0, 1] intensities)."""
    img = check_image(image, "image").astype(np.float64)
    span = np.ptp(img)
    if span == 0:
        raise ValueError("The cell image is constant; pass the whole-cell (fl) channel.")
    return (img - img.min()) / span


def _foreground(img: np.ndarray, foreground: str | np.ndarray) -> np.ndarray:
    if isinstance(foreground, np.ndarray):
        if foreground.shape != img.shape:
            raise ValueError(f"foreground mask has shape {foreground.shape}, image "
                             f"{img.shape}; give a mask of the same size.")
        return foreground.astype(bool)
    if foreground == "graph_cut":
        return graph_cut(img)
    methods = {"li": threshold_li, "otsu": threshold_otsu}
    if foreground not in methods:
        raise ValueError(f"foreground={foreground!r}; choose 'li' (CellProfiler's "
                         f"default), 'otsu', 'graph_cut' or pass a boolean mask.")
    smooth = ndi.gaussian_filter(img, 1.0)  # CellProfiler's threshold smoothing, σ = 1
    return smooth >= methods[foreground](img)


def secondary_objects(image: np.ndarray, nuclei: np.ndarray, method: str = "propagation",
                      *, foreground: str | np.ndarray = "li", regularization: float = 0.05,
                      distance_px: float = 10.0, fill_holes: bool = True) -> np.ndarray:
    """One IdentifySecondaryObjects method: grow nuclei into cells.

    Parameters
    ----------
    image : ndarray (H, W)
        Whole-cell image (rescaled to [0, 1] by its min and max).
    nuclei : ndarray of int (H, W)
        Seed labels 1..N.
    method : str
        One of :data:`METHODS`.
    foreground : {"li", "otsu", "graph_cut"} or ndarray of bool
        Foreground limit of the image-based methods: a global threshold of the image
        smoothed with σ = 1 px (CellProfiler: minimum cross-entropy), the
        :func:`cellcutter_nb.prep.mask.graph_cut` mask, or a given mask.
    regularization : float
        λ of propagation (CellProfiler's default 0.05; larger → closer to Voronoi).
    distance_px : float
        Expansion of ``"distance_n"`` in px.
    fill_holes : bool
        Fill holes inside objects (CellProfiler's default).

    Returns
    -------
    ndarray of int32 (H, W)

    Examples
    --------
    >>> img = np.zeros((20, 40)); img[5:15, 5:35] = 1
    >>> nuc = np.zeros((20, 40), int); nuc[9:11, 10:12] = 1; nuc[9:11, 28:30] = 2
    >>> lab = secondary_objects(img, nuc, "distance_n", distance_px=3)
    >>> int((lab == 1).sum()), int(lab.max())
    (44, 2)
    """
    img = _unit(image)
    seeds = np.asarray(nuclei)
    if seeds.shape != img.shape or seeds.dtype.kind not in "iu":
        raise ValueError(f"nuclei must be an integer label image of shape {img.shape}, got "
                         f"{seeds.dtype} {seeds.shape}.")
    if seeds.max(initial=0) == 0:
        raise ValueError("No nucleus in `nuclei`; segment nuclei first "
                         "(cellcutter_nb.prep.markers.nuclei_from_image).")
    seeds = seeds.astype(np.int32)
    if method == "distance_n":
        out = expand_labels(seeds, distance_px)
    elif method in METHODS:
        fg = _foreground(img, foreground)
        if method == "propagation":
            out, _ = propagate(img, seeds, fg, float(regularization))
        else:
            flood = 1.0 - img if method == "watershed_image" else np.hypot(
                ndi.sobel(img, 0), ndi.sobel(img, 1))
            out = watershed(flood, seeds, mask=fg | (seeds > 0), connectivity=2)
    else:
        raise ValueError(f"method={method!r}; choose one of {METHODS}.")
    if fill_holes:  # as CellProfiler 4: fill background holes, never swallow an object
        out = fill_labeled_holes(out, mask=out == 0)
    return np.asarray(out, dtype=np.int32)


def cellprofiler_baseline(field: Field, nuclei_labels: np.ndarray | None = None, *,
                          channel: str = "fl", methods: tuple[str, ...] = METHODS,
                          foreground: str | np.ndarray = "li", regularization: float = 0.05,
                          distance_um: float = 8.0) -> BaselineResult:
    """CellProfiler's secondary-object segmentations of a field, scored when possible.

    Parameters
    ----------
    field : Field
        Needs ``channel``; ``nuc`` too unless ``nuclei_labels`` is given.
    nuclei_labels : ndarray of int, optional
        Seeds (renumbered 1..N if they have gaps); default
        :func:`cellcutter_nb.prep.markers.nuclei_from_image` on ``nuc``.
    channel : str
        Whole-cell channel (the paper: ``"fl"``).
    methods : tuple of str
        Subset of :data:`METHODS`.
    foreground, regularization : see :func:`secondary_objects`.
    distance_um : float
        Expansion of ``"distance_n"`` in µm (default 8 µm = CellProfiler's 10 px at
        0.8 µm/px).

    Returns
    -------
    BaselineResult
        With ``scores``/``best`` by mIOU when the field has ground truth (the paper
        reported the best method).

    Raises
    ------
    ValueError
        Missing channel, no nucleus channel and no seeds, no nucleus found, bad method.
    """
    if channel not in field.channels:
        raise ValueError(f"The field has no {channel!r} channel (it has "
                         f"{list(field.channels)}); pass channel=... .")
    if nuclei_labels is None:
        if "nuc" not in field.channels:
            raise ValueError("No nucleus channel: pass nuclei_labels (e.g. from "
                             "cellcutter_nb.prep.markers.nuclei_from_image).")
        nuclei_labels = nuclei_from_image(field["nuc"], pixel_size=field.pixel_size)
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        raise ValueError(f"Unknown method(s) {unknown}; choose from {METHODS}.")
    seeds = np.asarray(nuclei_labels)
    if seeds.shape != field.shape or seeds.dtype.kind not in "iu" or seeds.max(initial=0) < 1:
        raise ValueError(f"nuclei_labels must be a non-empty integer label image of shape "
                         f"{field.shape}; segment nuclei first "
                         f"(cellcutter_nb.prep.markers.nuclei_from_image).")
    seeds = relabel_sequential(seeds.astype(np.int32))[0]
    centres = markers_from_labels(seeds)
    img = field[channel]
    fg = _foreground(_unit(img), foreground)
    labels = {m: secondary_objects(img, seeds, m, foreground=fg,
                                   regularization=regularization,
                                   distance_px=distance_um / field.pixel_size)
              for m in methods}
    result = BaselineResult(labels, seeds, centres, fg,
                            meta={"channel": channel, "regularization": regularization,
                                  "distance_um": distance_um})
    if field.labels is not None:
        tables = [summarize(per_cell_iou(lab, field.labels, markers=centres)).assign(
            method=m, n_cells=int(len(np.unique(lab)) - 1)) for m, lab in labels.items()]
        result.scores = pd.concat(tables).set_index("method")
        result.best = str(result.scores["miou"].idxmax())
    return result


def nearest_marker_partition(markers: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The position-only partition: each foreground pixel goes to its nearest marker.

    Eq. 1 is minimised by any overlap-free partition of the mask, and this one uses no
    image at all: the reference every unsupervised result is shown beside. Label k
    belongs to marker k - 1.

    Examples
    --------
    >>> mask = np.ones((1, 5), bool); mask[0, 2] = False
    >>> nearest_marker_partition(np.array([[0.0, 0.0], [0.0, 4.0]]), mask).tolist()
    [[1, 1, 0, 2, 2]]
    """
    out = np.zeros(mask.shape, np.uint32)
    if len(markers) == 0:
        return out
    pts = np.argwhere(mask)
    out[mask] = cKDTree(markers).query(pts, workers=-1)[1] + 1
    return out
