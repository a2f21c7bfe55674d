"""Scribbles: a few strokes per class that train the bright-field pixel classifier.

The paper painted 5-6 scribbles per class (cell, background) on each bright-field image
for ImageJ's Weka Segmentation; :func:`cellcutter_nb.prep.mask.pixel_classifier_mask`
learns from them. On a synthetic field :func:`synthetic_scribbles` draws such strokes
from the ground truth, deterministically, so that the experiments need no hand.

Examples
--------
>>> from cellcutter_nb.data.synth import make_field
>>> from cellcutter_nb.prep.scribbles import synthetic_scribbles
>>> s = synthetic_scribbles(make_field(seed=0, shape=128), n_per_class=3)
>>> sorted(np.unique(s).tolist())
[0, 1, 2]
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import line
from skimage.segmentation import find_boundaries

from ..data.field import Field


def synthetic_scribbles(field: Field, n_per_class: int = 6, seed: int = 0, *,
                        length_um: float = 12.0, margin_um: float = 2.5,
                        width: int = 3) -> np.ndarray:
    """Short straight strokes drawn from the ground truth: a stand-in for a user's.

    ``n_per_class`` strokes of ``length_um`` inside distinct cells (each stroke at
    least ``margin_um`` from its cell's edge) and as many in the background (at least
    ``margin_um`` from any cell), at seeded random positions and angles, ``width`` px
    wide. Deterministic for a given field and seed.

    Returns
    -------
    ndarray of uint8 (H, W)
        1 = cell, 2 = background, 0 = unlabelled.

    Raises
    ------
    ValueError
        No ground truth, or no room for a stroke of the requested size.

    Examples
    --------
    >>> lab = np.zeros((96, 96), np.uint32); lab[10:50, 10:50] = 1; lab[50:90, 50:90] = 2
    >>> f = Field({"bf": np.zeros((96, 96))}, pixel_size=1.0, labels=lab)
    >>> s = synthetic_scribbles(f, n_per_class=2, length_um=10)
    >>> sorted(np.unique(s).tolist()), bool(((s == 1) <= (lab > 0)).all())
    ([0, 1, 2], True)
    """
    if field.labels is None:
        raise ValueError("synthetic_scribbles needs a field with ground-truth labels; for "
                         "real images paint scribbles yourself (napari Labels layer: 1 = "
                         "cell, 2 = background).")
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}.")
    labels = field.labels.astype(np.int64)
    half = 0.5 * length_um / field.pixel_size
    need = half + margin_um / field.pixel_size + width // 2
    frame = np.zeros(labels.shape, bool)
    frame[1:-1, 1:-1] = True  # strokes also keep their distance from the image edge
    inside = ndi.distance_transform_edt((labels > 0) & ~find_boundaries(labels, mode="inner")
                                        & frame)
    outside = ndi.distance_transform_edt((labels == 0) & frame)
    rng = np.random.default_rng(seed)
    out = np.zeros(labels.shape, np.uint8)
    for value, dist in ((1, inside), (2, outside)):
        cand = np.flatnonzero(dist.ravel() >= need)
        if len(cand) == 0:
            kind = "cell" if value == 1 else "background"
            raise ValueError(f"No {kind} region is wide enough for a {length_um} µm stroke "
                             f"with {margin_um} µm margin; lower length_um or margin_um.")
        if value == 1:  # one stroke per cell: pick distinct cells first
            cells = np.unique(labels.ravel()[cand])
            chosen = rng.choice(cells, size=min(n_per_class, len(cells)), replace=False)
            key = np.where(dist >= need, rng.random(labels.shape), -1.0)
            pos = np.asarray(ndi.maximum_position(key, labels, chosen))  # random spot
        else:
            pos = np.column_stack(np.unravel_index(
                rng.choice(cand, size=min(n_per_class, len(cand)), replace=False),
                labels.shape))
        angles = rng.uniform(0, np.pi, len(pos))
        for (r, c), a in zip(pos, angles, strict=True):  # a handful of strokes
            dr, dc = half * np.sin(a), half * np.cos(a)
            rr, cc = line(int(round(r - dr)), int(round(c - dc)),
                          int(round(r + dr)), int(round(c + dc)))
            out[rr, cc] = value
    if width > 1:
        grown = ndi.grey_dilation(out, size=(width, width))
        out = np.where(out == 0, grown, out).astype(np.uint8)
    return out
