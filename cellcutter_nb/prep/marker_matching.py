"""Pairing found markers with true ones: TP / FN / FP within the paper's 15 µm.

The paper scores its synthetic-nucleus markers by pairing them one-to-one with the
markers of the real nucleus image within 15 µm and reporting the false negative rate
(missed cells) and the false positive rate (extra markers). :func:`match_markers`
does that pairing exactly (maximum number of pairs, then least total distance) and
:class:`MatchResult` gives the counts and both conventions of the rates.
:mod:`cellcutter_nb.prep.markers` re-exports both.

Examples
--------
>>> from cellcutter_nb.prep.marker_matching import match_markers
>>> r = match_markers([[0, 0], [0, 40]], [[0, 3], [90, 90]], pixel_size=1.0)
>>> r.tp, r.fn, r.fp, r.recall
(1, 1, 1, 0.5)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..config import PAIRING_DISTANCE_UM, PIXEL_SIZE_UM


@dataclass(frozen=True)
class MatchResult:
    """One-to-one pairing of found markers with true markers.

    Attributes
    ----------
    n_true, n_found : int
        Numbers of true and found markers.
    pairs : ndarray of int, shape (TP, 2)
        ``(found index, true index)`` of each pair.
    distances_um : ndarray, shape (TP,)
        Pair distances in µm.
    max_distance_um : float
        Pairing radius used.

    Notes
    -----
    Rates and their denominators (NaN when the denominator is 0):

    * ``recall = tp / n_true`` and ``fn_rate = fn / n_true = 1 - recall``
      (missed cells, the paper's false negative rate);
    * ``precision = tp / n_found`` and ``fp_rate = fp / n_found = 1 - precision``
      (extra markers among those found, the paper's false positive rate);
    * ``fp_per_true = fp / n_true`` is also given for the other common convention.
    """

    n_true: int
    n_found: int
    pairs: np.ndarray
    distances_um: np.ndarray
    max_distance_um: float

    @property
    def tp(self) -> int:
        """Found markers paired with a true marker."""
        return len(self.pairs)

    @property
    def fn(self) -> int:
        """True markers left unpaired (missed cells)."""
        return self.n_true - self.tp

    @property
    def fp(self) -> int:
        """Found markers left unpaired (extra markers)."""
        return self.n_found - self.tp

    @staticmethod
    def _ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    @property
    def recall(self) -> float:
        """tp / n_true."""
        return self._ratio(self.tp, self.n_true)

    @property
    def precision(self) -> float:
        """tp / n_found."""
        return self._ratio(self.tp, self.n_found)

    @property
    def fn_rate(self) -> float:
        """fn / n_true."""
        return self._ratio(self.fn, self.n_true)

    @property
    def fp_rate(self) -> float:
        """fp / n_found."""
        return self._ratio(self.fp, self.n_found)

    @property
    def fp_per_true(self) -> float:
        """fp / n_true."""
        return self._ratio(self.fp, self.n_true)

    def missed(self) -> np.ndarray:
        """Indices of the true markers left unpaired (the false negatives), ascending.

        Examples
        --------
        >>> match_markers([[0, 0]], [[0, 1], [40, 40]], pixel_size=1.0).missed().tolist()
        [1]
        """
        return np.setdiff1d(np.arange(self.n_true), self.pairs[:, 1])

    def extra(self) -> np.ndarray:
        """Indices of the found markers left unpaired (the false positives), ascending.

        Examples
        --------
        >>> match_markers([[0, 0], [9, 9]], [[0, 1]], pixel_size=1.0).extra().tolist()
        [1]
        """
        return np.setdiff1d(np.arange(self.n_found), self.pairs[:, 0])

    def as_dict(self) -> dict[str, float]:
        """Counts and rates as a flat dict."""
        keys = ("n_true", "n_found", "tp", "fn", "fp", "recall", "precision", "fn_rate",
                "fp_rate", "fp_per_true")
        out = {k: getattr(self, k) for k in keys}
        out["mean_distance_um"] = (float(self.distances_um.mean()) if self.tp
                                   else float("nan"))
        return out

    def as_frame(self, name: str = "markers") -> pd.DataFrame:
        """One-row DataFrame of :meth:`as_dict`, indexed by ``name``."""
        return pd.DataFrame([self.as_dict()], index=pd.Index([name], name="detector"))


def _as_points(p: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(p, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 2))
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.isfinite(arr).all():
        raise ValueError(f"{name} must be a finite (N, 2) array of (row, col), got "
                         f"shape {arr.shape}.")
    return arr


def match_markers(found: np.ndarray, true: np.ndarray, *,
                  max_distance_um: float = PAIRING_DISTANCE_UM,
                  pixel_size: float = PIXEL_SIZE_UM) -> MatchResult:
    """Pair found with true markers one-to-one and count TP, FN and FP.

    Pairs are allowed only within ``max_distance_um`` (the paper's 15 µm). Among all
    one-to-one pairings the one with the most pairs is chosen, and among those the
    one with the smallest total distance (``linear_sum_assignment`` with a prohibitive
    cost on pairs beyond the radius). The problem is split into the connected
    components of the "within radius" graph (``cKDTree``), each solved exactly, so
    large fields stay fast with the same optimum as one dense assignment.

    Parameters
    ----------
    found, true : array_like, shape (N, 2) / (M, 2)
        (row, col) in pixels; either may be empty.
    max_distance_um : float
        Pairing radius in µm.
    pixel_size : float
        µm per pixel.

    Returns
    -------
    MatchResult
        Counts, rates (see :class:`MatchResult` for the denominators) and pairs.

    Examples
    --------
    >>> r = match_markers([[0, 0], [0, 30]], [[0, 1], [0, 2], [50, 50]], pixel_size=1.0)
    >>> r.tp, r.fn, r.fp
    (1, 2, 1)
    """
    f = _as_points(found, "found")
    t = _as_points(true, "true")
    if not (max_distance_um > 0 and pixel_size > 0):
        raise ValueError("max_distance_um and pixel_size must be > 0.")
    radius = max_distance_um / pixel_size
    empty = MatchResult(len(t), len(f), np.zeros((0, 2), int), np.zeros(0), max_distance_um)
    if len(f) == 0 or len(t) == 0:
        return empty
    fi, ti = _pairs_within(f, t, radius)
    if len(fi) == 0:
        return empty
    dist = np.hypot(*(f[fi] - t[ti]).T)
    nf = len(f)
    graph = coo_matrix((np.ones(len(fi)), (fi, nf + ti)), shape=(nf + len(t),) * 2)
    _, comp = connected_components(graph, directed=False)
    edge_comp = comp[fi]
    order = np.argsort(edge_comp, kind="stable")
    bounds = np.flatnonzero(np.diff(edge_comp[order])) + 1
    big = 1.0 + radius * (min(len(f), len(t)) + 1)
    out_f, out_t = [], []
    for idx in np.split(order, bounds):  # one small assignment per cluster of markers
        uf, f_loc = np.unique(fi[idx], return_inverse=True)
        ut, t_loc = np.unique(ti[idx], return_inverse=True)
        if len(uf) == 1 and len(ut) == 1:
            out_f.append(uf)
            out_t.append(ut)
            continue
        cost = np.full((len(uf), len(ut)), big)
        cost[f_loc, t_loc] = dist[idx]
        r, c = linear_sum_assignment(cost)
        ok = cost[r, c] < big
        out_f.append(uf[r[ok]])
        out_t.append(ut[c[ok]])
    pf, pt = np.concatenate(out_f), np.concatenate(out_t)
    order = np.argsort(pf)
    pairs = np.column_stack([pf[order], pt[order]]).astype(int)
    d_um = np.hypot(*(f[pairs[:, 0]] - t[pairs[:, 1]]).T) * pixel_size
    return MatchResult(len(t), len(f), pairs, d_um, max_distance_um)


def _pairs_within(a: np.ndarray, b: np.ndarray, radius: float) -> tuple[np.ndarray, ...]:
    """Index pairs (i, j) with ||a_i - b_j|| <= radius, zero distances included."""
    hits = cKDTree(b).query_ball_point(a, radius)
    counts = np.fromiter((len(h) for h in hits), dtype=np.int64, count=len(a))
    ai = np.repeat(np.arange(len(a)), counts)
    bj = np.concatenate([np.asarray(h, dtype=np.int64) for h in hits]) if counts.sum() \
        else np.zeros(0, np.int64)
    return ai, bj
