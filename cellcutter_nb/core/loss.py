"""Eq. 1 of the paper, computed on the area canvas with ``keras.ops`` (TF and JAX).

The loss of one area batch with N valid patches y^i (k×k, placed on the canvas, zero
outside their patch) and foreground mask M is

    L = [ -Σ_p Σ_i y^i_p - λ Σ_p Σ_{i≠j} y^i_p log_b(1 - y^j_p) + β Σ_p Σ_i y^i_p (1 - M_p) ] / N

(*area*, *overlap* and *mask* terms). The printed Eq. 1 has ``log y^j`` and ``-β``;
both contradict the paper's own explanation (y^i is "compared against the inverse of
the prediction from another patch, 1 - y^j"; the mask term "gives additional
penalties" outside M) and the authors' released code, so the explained form above is
implemented.

Logarithm base: the paper's "balanced" λ = 3.32 (Eq. 3) only works out for log base
10 (1 / log10 2 = 3.32); the released code uses the natural log with λ = 1. Both are
expressed as ``λ log_b(x) = λ_e ln(x)`` with ``λ_e = λ / ln b`` (3.32 / ln 10 = 1.44 ≈
1 / ln 2): the preset computes λ_e (:attr:`~cellcutter_nb.config.Preset.lam_natural`) and
hands it, with β, to the loss as one :class:`~cellcutter_nb.config.LossWeights`.

Computation: ``log(1 - y) = -softplus(logit)`` (numerically stable, clipped at
``log ε``) of every valid patch is scatter-added into the flat canvas with
``keras.ops.segment_sum``, gathered back at each patch's pixels with
``keras.ops.take``, and the patch's own contribution is subtracted. Time and memory
are O(N·k² + canvas); no N×N tensor is formed. Shapes are static (padding patches
carry ``valid = 0``), so the function works inside ``jax.jit`` / ``tf.function``.

Examples
--------
>>> import math
>>> import numpy as np
>>> from cellcutter_nb.config import LossWeights
>>> from cellcutter_nb.core.loss import cutter_loss
>>> logits = np.zeros((2, 4, 4, 1), np.float32)         # y = 0.5 everywhere
>>> offsets = np.array([[0, 0], [0, 2]], np.int32)     # overlap on 4×2 pixels
>>> weights = LossWeights(lam_natural=1 / math.log(2), beta=15.0)   # λ = 1 for log base 2
>>> terms = cutter_loss(logits, offsets, np.ones(2, np.float32), np.ones((8, 8), np.float32),
...                     weights)
>>> [round(float(t), 4) for t in terms]  # total, area, overlap, mask, boundary
[-4.0, -8.0, 4.0, 0.0, 0.0]
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from ..backend import keras  # quiet Keras import (TensorFlow logs); never at package import
from ..config import LossWeights

ops = keras.ops

__all__ = ["LossTerms", "boundary_term", "cutter_loss", "canvas_indices"]

#: Default clipping of 1 - y inside the logarithm (Keras' epsilon).
EPSILON = 1e-7


class LossTerms(NamedTuple):
    """Eq. 1 and its terms, each already divided by the number of valid patches
    (``boundary``: the ``fast`` preset's term, 0 when its weight is 0)."""

    total: Any
    area: Any
    overlap: Any
    mask: Any
    boundary: Any


def canvas_indices(offsets: Any, patch_size: int, canvas_width: int) -> Any:
    """Flat canvas index of every patch pixel.

    Parameters
    ----------
    offsets : tensor, shape (P, 2), int
        Patch origins (row, col) on the canvas.
    patch_size : int
        Patch side k.
    canvas_width : int
        Canvas width Wc.

    Returns
    -------
    tensor, shape (P, k, k), int32
        ``(offset_row + r) * Wc + offset_col + c``.

    Examples
    --------
    >>> import numpy as np
    >>> idx = canvas_indices(np.array([[1, 2]]), 2, 10)
    >>> ops.convert_to_numpy(idx).tolist()
    [[[12, 13], [22, 23]]]
    """
    offsets = ops.cast(ops.convert_to_tensor(offsets), "int32")
    grid = ops.arange(patch_size, dtype="int32")
    rows = ops.expand_dims(offsets[:, 0], 1) + grid  # (P, k)
    cols = ops.expand_dims(offsets[:, 1], 1) + grid
    return ops.expand_dims(rows, 2) * canvas_width + ops.expand_dims(cols, 1)


def cutter_loss(logits: Any, offsets: Any, valid: Any, mask: Any, weights: LossWeights,
                boundary_cost: Any = None, *, eps: float = EPSILON) -> LossTerms:
    """Eq. 1 (explained form) for one area batch, from logits.

    Parameters
    ----------
    logits : tensor, shape (P, k, k) or (P, k, k, 1)
        Network outputs before the sigmoid.
    offsets : tensor, shape (P, 2), int
        Patch origins on the mask canvas (``AreaBatch.offsets``); every patch must lie
        inside the canvas (``0 <= offset`` and ``offset + k <= canvas side``).
    valid : tensor, shape (P,)
        1 for real patches, 0 for padding; padding changes nothing.
    mask : tensor, shape (Hc, Wc)
        Foreground mask M on the canvas (1 inside, 0 outside / off the image).
    weights : LossWeights
        λ for the natural logarithm, β (0 disables the mask term) and μ of the boundary
        term (0: Eq. 1 alone), from :meth:`cellcutter_nb.config.Preset.loss_weights`.
    boundary_cost : tensor, shape (P, k, k), optional
        Cost of a boundary at each patch pixel (:func:`boundary_term`); needed when
        ``weights.boundary > 0``.
    eps : float
        ``1 - y`` is clipped at ``eps`` inside the logarithm.

    Returns
    -------
    LossTerms
        ``(total, area, overlap, mask, boundary)`` scalars, each divided by N = Σ valid
        (N = 1 if no patch is valid).

    Examples
    --------
    >>> import numpy as np
    >>> t = cutter_loss(np.full((1, 2, 2), 20.0), [[0, 0]], [1.0], np.zeros((2, 2)),
    ...                 LossWeights(lam_natural=1.0, beta=2.0))
    >>> round(float(t.area), 4), abs(round(float(t.overlap), 4)), round(float(t.mask), 4)
    (-4.0, 0.0, 8.0)
    """
    logits = ops.cast(ops.convert_to_tensor(logits), "float32")
    if len(logits.shape) == 4:
        logits = ops.squeeze(logits, axis=-1)
    if len(logits.shape) != 3 or logits.shape[1] != logits.shape[2]:
        raise ValueError(f"logits must have shape (P, k, k) or (P, k, k, 1), got "
                         f"{tuple(logits.shape)}.")
    mask = ops.cast(ops.convert_to_tensor(mask), "float32")
    if len(mask.shape) != 2:
        raise ValueError(f"mask must be one (Hc, Wc) canvas, got shape {tuple(mask.shape)}.")
    k = int(logits.shape[1])
    height, width = int(mask.shape[0]), int(mask.shape[1])
    v = ops.cast(ops.convert_to_tensor(valid), "float32")
    vv = ops.reshape(v, (-1, 1, 1))

    y = ops.sigmoid(logits) * vv
    # log(1 - y) = -softplus(logit), clipped at log(eps); zero for padding patches
    log1m = -ops.minimum(ops.softplus(logits), -math.log(eps)) * vv
    idx = canvas_indices(offsets, k, width)
    flat_idx = ops.reshape(idx, (-1,))
    canvas = ops.segment_sum(ops.reshape(log1m, (-1,)), flat_idx,
                             num_segments=height * width)
    others = ops.take(canvas, idx) - log1m  # Σ_{j≠i} log(1 - y^j) at patch i's pixels
    outside = 1.0 - ops.take(ops.reshape(mask, (-1,)), idx)

    n = ops.maximum(ops.sum(v), 1.0)
    area = -ops.sum(y) / n
    overlap = -weights.lam_natural * ops.sum(y * others) / n
    mask_term = weights.beta * ops.sum(y * outside) / n
    boundary = ops.zeros(())
    if weights.boundary > 0:
        if boundary_cost is None:
            raise ValueError("weights.boundary > 0 needs the patches' boundary_cost.")
        boundary = weights.boundary * boundary_term(y, boundary_cost) / n
    return LossTerms(area + overlap + mask_term + boundary, area, overlap, mask_term,
                     boundary)


def boundary_term(y: Any, cost: Any) -> Any:
    """Σ over patches and 4-neighbour pixel pairs of ``cost_pq · |y_p - y_q|``.

    A contrast-sensitive pairwise term (the CRF-style regulariser of weakly supervised
    segmentation): every change of a patch's output between two neighbouring pixels
    costs the mean of their boundary costs (:func:`cellcutter_nb.prep.ridges.boundary_cost`:
    about 1 inside a cell, about 0.1 on a junction). Eq. 1 is indifferent to where two
    cells meet; this term makes them meet on the junctions. Unchanged by the flips and
    transposes of training (both directions are summed).

    Parameters
    ----------
    y : tensor, shape (P, k, k)
        Probabilities (zero for padding patches).
    cost : tensor, shape (P, k, k)
        Boundary cost at each pixel of each patch.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.zeros((1, 4, 4), np.float32); y[0, :, :2] = 1.0   # a vertical edge
    >>> cost = np.ones((1, 4, 4), np.float32); cost[0, :, 2] = 0.1
    >>> round(float(boundary_term(y, cost)), 4)   # 4 pairs at (1 + 0.1) / 2
    2.2
    """
    y = ops.cast(ops.convert_to_tensor(y), "float32")
    cost = ops.cast(ops.convert_to_tensor(cost), "float32")
    down = 0.5 * (cost[:, 1:] + cost[:, :-1]) * ops.abs(y[:, 1:] - y[:, :-1])
    right = 0.5 * (cost[:, :, 1:] + cost[:, :, :-1]) * ops.abs(y[:, :, 1:] - y[:, :, :-1])
    return ops.sum(down) + ops.sum(right)
