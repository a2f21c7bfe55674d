"""Whole-field label image from per-patch probabilities (the paper's integration step).

"Each pixel was assigned to the cell with the highest probability output at that
location. Pixels showing segmentation probabilities less than 0.5 from all patches
were assigned as the background." Label ``k`` belongs to marker ``k - 1``.

The arg-max is vectorised (:class:`LabelCanvas`): entries below the threshold are
discarded, each chunk's best entry per pixel is found with one ``np.lexsort`` and
merged into the canvas. Patches are compared by their logits (equal in order to the
probabilities, but never saturated at 1.0); exact ties go to the patch whose centre is
nearer, then to the higher label, whatever the chunking. :func:`predict_field` streams
patches through the model in chunks and updates the canvas per chunk, so memory stays
bounded by the chunk size.

Two departures of the ``fast`` preset (:mod:`cellcutter_nb.presets`), applied by
:func:`finish_labels`: with a mask, every mask pixel goes to its most probable patch
(``integration="mask_argmax"``; the paper's threshold leaves mask pixels that every
patch gives below 0.5 as background), and every label is one connected piece
(:func:`one_piece`: stray pieces of a label, e.g. along the edge of its patch, go to the
labels they touch).

Examples
--------
>>> import numpy as np
>>> from cellcutter_nb.core.integrate import integrate
>>> probs = np.zeros((2, 2, 2), np.float32)
>>> probs[0] = [[0.9, 0.6], [0.4, 0.2]]
>>> probs[1] = [[0.8, 0.7], [0.3, 0.1]]   # placed one column to the right
>>> integrate(probs, np.array([[0, 0], [0, 1]]), (2, 3)).tolist()
[[1, 2, 2], [0, 0, 0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from skimage.measure import label as cc_label
from skimage.segmentation import watershed

from ..config import Preset
from ..data.field import Field
from .patches import cut_patches, normalise_channels, patch_markers

__all__ = ["LabelCanvas", "finish_labels", "integrate", "integration_canvas", "logit",
           "one_piece", "predict_field"]


class LabelCanvas:
    """Running per-pixel arg-max of patch outputs over a whole image.

    Patches are compared by their *logits*: the same order as the probabilities, but
    without the float32 saturation of the sigmoid (every logit above ~17 is a
    probability of exactly 1.0, and such ties used to go to the higher label, which drew
    straight stripes along patch edges). Exact ties go to the patch whose centre is
    nearer the pixel, then to the higher label, whatever the chunking.

    Parameters
    ----------
    shape : tuple of int
        (H, W) of the field.
    threshold : float or None
        Probabilities below it never claim a pixel (0.5 in the paper); ``None``: every
        pixel a patch covers goes to its best patch (see :func:`finish_labels`).

    Examples
    --------
    >>> c = LabelCanvas((3, 3))
    >>> c.add(np.full((1, 2, 2), 0.7), np.array([[0, 0]]), np.array([5]))
    >>> c.add(np.full((1, 2, 2), 0.8), np.array([[1, 1]]), np.array([9]))
    >>> c.labels.tolist()
    [[5, 5, 0], [5, 9, 9], [0, 9, 9]]
    """

    def __init__(self, shape: tuple[int, int], threshold: float | None = 0.5) -> None:
        if threshold is not None and not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1) or be None, got {threshold}.")
        self.shape = (int(shape[0]), int(shape[1]))
        self.min_logit = -np.inf if threshold is None else float(logit(threshold))
        n = self.shape[0] * self.shape[1]
        self._score = np.full(n, -np.inf)
        self._dist = np.full(n, np.iinfo(np.int64).max)
        self._label = np.zeros(n, np.uint32)

    def add(self, probs: np.ndarray, origins: np.ndarray, labels: np.ndarray) -> None:
        """Merge patches: ``probs`` (n, k, k[, 1]) at ``origins`` (n, 2) with ``labels`` (n,)."""
        self.add_logits(logit(_squeezed(probs, "probs")), origins, labels)

    def add_logits(self, logits: np.ndarray, origins: np.ndarray, labels: np.ndarray) -> None:
        """Merge patches given by their logits (n, k, k[, 1]) (see :meth:`add`)."""
        logits = _squeezed(logits, "logits").astype(np.float64)
        origins = np.asarray(origins, np.int64).reshape(-1, 2)
        labels = np.asarray(labels).reshape(-1)
        if not len(logits) == len(origins) == len(labels):
            raise ValueError(f"patches, origins and labels disagree in length: {len(logits)}, "
                             f"{len(origins)}, {len(labels)}.")
        if len(labels) and labels.min() < 1:
            raise ValueError("labels must be >= 1 (0 is the background).")
        k = logits.shape[1]
        h, w = self.shape
        rows = origins[:, 0, None] + np.arange(k)
        cols = origins[:, 1, None] + np.arange(k)
        keep = ((logits >= self.min_logit) & ((rows >= 0) & (rows < h))[:, :, None]
                & ((cols >= 0) & (cols < w))[:, None, :])
        n_idx, r_idx, c_idx = np.nonzero(keep)
        if len(n_idx) == 0:
            return
        pix = rows[n_idx, r_idx] * w + cols[n_idx, c_idx]
        score = logits[n_idx, r_idx, c_idx]
        dist = (r_idx - k // 2) ** 2 + (c_idx - k // 2) ** 2
        lab = labels.astype(np.uint32)[n_idx]
        # the best entry of this chunk per pixel: highest score, then nearest, then label
        order = np.lexsort((lab, -dist, score, pix))
        last = np.r_[pix[order][1:] != pix[order][:-1], True]
        best = order[last]
        pix, score, dist, lab = pix[best], score[best], dist[best], lab[best]
        old_s, old_d, old_l = self._score[pix], self._dist[pix], self._label[pix]
        wins = (score > old_s) | ((score == old_s) & (
            (dist < old_d) | ((dist == old_d) & (lab > old_l))))
        self._score[pix[wins]] = score[wins]
        self._dist[pix[wins]] = dist[wins]
        self._label[pix[wins]] = lab[wins]

    @property
    def labels(self) -> np.ndarray:
        """Label image (H, W), uint32, 0 = background."""
        return self._label.reshape(self.shape).copy()

    @property
    def max_prob(self) -> np.ndarray:
        """Highest probability per pixel (H, W), float32 (0 where no patch claimed it)."""
        score = self._score.reshape(self.shape)
        return np.where(np.isneginf(score), 0.0, sigmoid(score)).astype(np.float32)


def _squeezed(x: np.ndarray, name: str) -> np.ndarray:
    """(n, k, k) view of (n, k, k) or (n, k, k, 1) patch outputs."""
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or x.shape[1] != x.shape[2]:
        raise ValueError(f"{name} must have shape (n, k, k) or (n, k, k, 1), got {x.shape}.")
    return x


def logit(probs: np.ndarray | float) -> np.ndarray:
    """Log-odds of probabilities (±inf at exactly 1 and 0), in float64.

    Examples
    --------
    >>> logit(np.array([0.5, 1.0])).tolist()
    [0.0, inf]
    """
    p = np.asarray(probs, np.float64)
    with np.errstate(divide="ignore"):
        return np.log(p) - np.log1p(-p)


def integrate(probs: np.ndarray, origins: np.ndarray, image_shape: tuple[int, int],
              labels: np.ndarray | None = None, threshold: float = 0.5) -> np.ndarray:
    """Label image: every pixel goes to the patch with the highest probability there.

    Parameters
    ----------
    probs : ndarray, shape (N, k, k) or (N, k, k, 1)
        Per-patch probabilities (sigmoid of the logits).
    origins : ndarray, shape (N, 2), int
        Patch top-left corners in image coordinates (parts outside are ignored).
    image_shape : tuple of int
        (H, W) of the output.
    labels : ndarray, shape (N,), optional
        Label of each patch (default ``1..N``); with ``PatchSet.marker_indices`` + 1,
        label k belongs to marker k - 1.
    threshold : float
        Pixels where every patch is below it are background (0.5 in the paper).

    Returns
    -------
    ndarray (H, W), uint32

    Examples
    --------
    >>> integrate(np.full((1, 2, 2), 0.4), np.array([[0, 0]]), (2, 2)).max()
    np.uint32(0)
    """
    probs = np.asarray(probs)
    if labels is None:
        labels = np.arange(1, len(probs) + 1)
    canvas = LabelCanvas(image_shape, threshold)
    canvas.add(probs, origins, labels)
    return canvas.labels


def chunk_size(n_patches: int, batch_size: int, multiple: int = 64) -> int:
    """Static model-call shape: ``batch_size``, or fewer (a multiple of ``multiple``) when
    a field has fewer patches, so small fields are not padded to a large batch.

    Examples
    --------
    >>> chunk_size(5, 256), chunk_size(1000, 256), chunk_size(5, 2)
    (64, 256, 2)
    """
    return int(min(batch_size, max(1, -(-n_patches // multiple) * multiple)))


def chunk_logits(model: Any, patches: np.ndarray, size: int) -> np.ndarray:
    """Logits (n, k, k) of ``patches`` (n ≤ size), zero-padded to ``size`` rows so every
    call has the same shape (no retracing)."""
    n = len(patches)
    if n < size:
        patches = np.concatenate([patches, np.zeros((size - n, *patches.shape[1:]), np.float32)])
    return np.asarray(model.predict_on_batch(patches), np.float32)[:n, ..., 0]


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Probabilities of the network's logits (clipped, so no overflow warning)."""
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))


def integration_canvas(shape: tuple[int, int], preset: Preset,
                       mask: np.ndarray | None = None, threshold: float = 0.5) -> LabelCanvas:
    """An empty :class:`LabelCanvas` for the preset's integration: every covered pixel
    competes (``"mask_argmax"`` with a mask) or only those above ``threshold``."""
    argmax = preset.integration == "mask_argmax" and mask is not None
    return LabelCanvas(shape, None if argmax else threshold)


def finish_labels(canvas: LabelCanvas, preset: Preset, mask: np.ndarray | None,
                  markers: np.ndarray) -> np.ndarray:
    """The label image of a filled canvas: background outside the mask (``"mask_argmax"``)
    and, with ``preset.one_piece``, one connected piece per label (:func:`one_piece`).

    Examples
    --------
    >>> from cellcutter_nb.config import get_preset
    >>> c = LabelCanvas((1, 4), threshold=None)     # 2×2 patches, their 2nd row off the image
    >>> c.add(np.array([[[0.9, 0.2], [0, 0]]]), np.array([[0, 0]]), np.array([1]))
    >>> c.add(np.array([[[0.3, 0.1], [0, 0]]]), np.array([[0, 1]]), np.array([2]))
    >>> mask = np.array([[1, 1, 0, 1]], bool)
    >>> finish_labels(c, get_preset("fast"), mask, np.array([[0.0, 0.0], [0.0, 1.0]])).tolist()
    [[1, 2, 0, 0]]
    """
    labels = canvas.labels
    if preset.integration == "mask_argmax" and mask is not None:
        labels[~np.asarray(mask, bool)] = 0
    return one_piece(labels, markers) if preset.one_piece else labels


def one_piece(labels: np.ndarray, markers: np.ndarray) -> np.ndarray:
    """Every label as one connected piece: the piece nearest its marker stays, the other
    pieces go to the labels they touch (grown inside the labelled pixels), or to the
    background when they touch none.

    Label k belongs to marker k - 1. Pieces are 4-connected; a piece that holds the
    marker is at distance 0.

    Examples
    --------
    >>> lab = np.array([[1, 1, 2, 2, 1, 0, 2]])
    >>> one_piece(lab, np.array([[0.0, 0.0], [0.0, 2.0]])).tolist()
    [[1, 1, 2, 2, 2, 0, 0]]
    """
    labels = np.asarray(labels)
    pieces = cc_label(labels, background=0, connectivity=1)
    n = int(pieces.max())
    if n == 0:
        return labels.copy()
    rows, cols = np.nonzero(pieces)
    owner = labels[rows, cols].astype(np.int64)
    piece = pieces[rows, cols]
    where = np.asarray(markers, np.float64).reshape(-1, 2)[owner - 1]
    dist = np.full(n + 1, np.inf)
    np.minimum.at(dist, piece, (rows - where[:, 0]) ** 2 + (cols - where[:, 1]) ** 2)
    piece_label = np.zeros(n + 1, np.int64)
    piece_label[piece] = owner
    order = np.lexsort((dist[1:], piece_label[1:])) + 1  # by label, nearest piece first
    first = np.r_[True, piece_label[order][1:] != piece_label[order][:-1]]
    keep = np.zeros(n + 1, bool)
    keep[order[first]] = True
    kept = np.where(keep[pieces], labels, 0)
    grown = watershed(np.zeros(labels.shape), kept, mask=labels > 0, connectivity=1)
    return grown.astype(labels.dtype)


def predict_field(model: Any, field: Field, channels: Sequence[str],
                  preset: Preset, batch_size: int = 256,
                  markers: np.ndarray | None = None, threshold: float = 0.5,
                  drop_border: bool | None = None, mask: np.ndarray | None = None,
                  return_max_prob: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Segment a whole field: patches of all markers → model → integrated labels.

    Patches are cut for the markers :func:`cellcutter_nb.core.patches.patch_markers`
    selects (as in :func:`~cellcutter_nb.core.patches.extract_patches`), run through
    ``model.predict_on_batch`` in chunks of ``batch_size`` (the last chunk is
    zero-padded, so one compiled shape is used) and merged into the label canvas
    chunk by chunk: memory is bounded by the chunk, not the number of markers.

    Inference runs with ``training=False``: BatchNorm uses its moving statistics,
    which can lag behind the weights after short training (predictions then look
    worse than the training loss suggests; train longer or recompute the
    statistics).

    Parameters
    ----------
    model : keras.Model
        Maps (B, k, k, C + 1) patches to (B, k, k, 1) logits (see
        :func:`cellcutter_nb.core.model.build_unet`).
    field : Field
        The field to segment.
    channels : sequence of str
        Image channels the model was trained on, same order.
    preset : Preset
        Patch size, position σ and border handling.
    batch_size : int
        Patches per model call.
    markers : ndarray (N, 2), optional
        Default ``field.markers``; label k belongs to marker k - 1.
    threshold : float
        Background threshold (0.5) when the preset's integration thresholds.
    drop_border : bool, optional
        Override ``preset.drop_border_patches`` (dropped markers get no label).
        ``markers`` and ``drop_border`` are those of
        :func:`~cellcutter_nb.core.patches.patch_markers`.
    mask : ndarray (H, W) of bool, optional
        The foreground mask, for the ``"mask_argmax"`` integration (:func:`finish_labels`).
    return_max_prob : bool
        Also return the per-pixel winning probability.

    Returns
    -------
    labels : ndarray (H, W), uint32
    max_prob : ndarray (H, W), float32, only if ``return_max_prob``

    Examples
    --------
    >>> from cellcutter_nb.config import get_preset
    >>> from cellcutter_nb.core.model import build_unet
    >>> f = Field({"fl": np.random.default_rng(0).random((40, 40))},
    ...           markers=[[10.0, 10.0], [30.0, 25.0]])
    >>> p = get_preset("paper").replace(patch_size=16)
    >>> lab = predict_field(build_unet(2, 4, 2, 16), f, ["fl"], p, batch_size=8)
    >>> lab.shape, lab.dtype.name, set(np.unique(lab)) <= {0, 1, 2}
    ((40, 40), 'uint32', True)
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    markers, index = patch_markers(field, preset, markers, drop_border)
    image = normalise_channels(field, channels)
    canvas = integration_canvas(field.shape, preset, mask, threshold)
    size = chunk_size(len(index), batch_size)
    for start in range(0, len(index), size):
        chunk = index[start:start + size]
        patches, origins = cut_patches(image, markers[chunk], preset.patch_size,
                                       preset.position_sigma)
        canvas.add_logits(chunk_logits(model, patches, size), origins, chunk + 1)
    labels = finish_labels(canvas, preset, mask, markers)
    return (labels, canvas.max_prob) if return_max_prob else labels
