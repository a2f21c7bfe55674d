"""Segmentation accuracy: per-cell IoU, mIOU, agreement between label images, AP/F1.

Everything is computed from one sparse contingency table of the two label images
(pixel counts of every (label in A, label in B) pair, built with
``scipy.sparse.coo_matrix``, which sums duplicates), so no loop runs over pixels or
cells. All results are pandas DataFrames.

* :func:`per_cell_iou` — IoU of every ground-truth cell with its predicted cell,
  matched through the markers (predicted label k belongs to marker k - 1; the marker
  lies in one GT cell), and by best overlap for GT cells that no marker reaches.
  The paper's mIOU ± std is :func:`summarize` of that table.
* :func:`agreement` — each label of A matched to its best-overlap label of B (the
  paper's cross-modality agreement, e.g. FL vs BF).
* :func:`matching` — one-to-one matching at IoU thresholds 0.5…0.9 with precision,
  recall, F1 and average precision AP = TP / (TP + FP + FN) (StarDist's "accuracy").

Examples
--------
>>> import numpy as np
>>> from cellcutter_nb import metrics
>>> gt = np.array([[1, 1, 2, 2]])
>>> pred = np.array([[1, 1, 1, 2]])
>>> metrics.per_cell_iou(pred, gt)["iou"].round(4).tolist()
[0.6667, 0.5]
>>> metrics.summarize(metrics.per_cell_iou(pred, gt))[["miou", "n"]].round(4).values.tolist()
[[0.5833, 2.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse

__all__ = ["centre_pixels", "foreground_iou", "contingency", "iou_pairs", "per_cell_iou",
           "summarize", "score", "score_table", "agreement", "matching", "DEFAULT_THRESHOLDS"]

#: IoU thresholds of :func:`matching`: 0.5, 0.55, …, 0.9.
DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(np.round(np.arange(0.5, 0.901, 0.05), 2))


def centre_pixels(markers: np.ndarray) -> np.ndarray:
    """The pixel each marker stands on, ``floor(marker + 0.5)`` as int32 (round half up).

    :func:`per_cell_iou` scores marker k - 1 against the ground-truth cell under this
    pixel, and :mod:`cellcutter_nb.core.patches` centres marker k - 1's patch on it.

    Examples
    --------
    >>> centre_pixels(np.array([[1.5, 2.49], [0.0, 3.7]])).tolist()
    [[2, 2], [0, 4]]
    """
    return np.floor(np.asarray(markers, np.float64) + 0.5).astype(np.int32)


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"Label images differ in shape: {a.shape} vs {b.shape}; compare "
                         f"images of the same field.")
    for name, x in (("first", a), ("second", b)):
        if x.dtype.kind not in "iu" or (x.size and x.min() < 0):
            raise ValueError(f"The {name} label image must hold non-negative integers "
                             f"(0 = background), got dtype {x.dtype}.")
    return a.astype(np.int64).ravel(), b.astype(np.int64).ravel()


def foreground_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two binary masks (1.0 when both are empty).

    Examples
    --------
    >>> foreground_iou(np.array([1, 1, 0]), np.array([0, 1, 1]))
    0.3333333333333333
    """
    a, b = np.asarray(pred, bool), np.asarray(truth, bool)
    if a.shape != b.shape:
        raise ValueError(f"Masks differ in shape: {a.shape} vs {b.shape}.")
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def contingency(a: np.ndarray, b: np.ndarray) -> sparse.csr_matrix:
    """Sparse table ``C[i, j]`` = number of pixels with label i in ``a`` and j in ``b``.

    Examples
    --------
    >>> contingency(np.array([[0, 1, 1]]), np.array([[2, 2, 0]])).toarray().tolist()
    [[0, 0, 1], [1, 0, 1]]
    """
    a, b = _check_pair(a, b)
    shape = (int(a.max(initial=0)) + 1, int(b.max(initial=0)) + 1)
    return sparse.coo_matrix((np.ones(a.size, np.int64), (a, b)), shape=shape).tocsr()


def iou_pairs(a: np.ndarray, b: np.ndarray) -> pd.DataFrame:
    """Every overlapping pair of non-zero labels with its intersection, areas and IoU.

    Returns
    -------
    DataFrame
        Columns ``a_label, b_label, intersection, a_area, b_area, iou``.

    Examples
    --------
    >>> iou_pairs(np.array([[1, 1, 0]]), np.array([[0, 3, 3]]))[["a_label", "b_label", "iou"]]
       a_label  b_label       iou
    0        1        3  0.333333
    """
    c = contingency(a, b)
    area_a = np.asarray(c.sum(axis=1)).ravel()
    area_b = np.asarray(c.sum(axis=0)).ravel()
    coo = c.tocoo()
    keep = (coo.row > 0) & (coo.col > 0) & (coo.data > 0)
    i, j, inter = coo.row[keep], coo.col[keep], coo.data[keep]
    union = area_a[i] + area_b[j] - inter
    return pd.DataFrame({"a_label": i.astype(np.int64), "b_label": j.astype(np.int64),
                         "intersection": inter, "a_area": area_a[i], "b_area": area_b[j],
                         "iou": inter / union})


def _labels(x: np.ndarray) -> np.ndarray:
    u = np.unique(np.asarray(x))
    return u[u > 0].astype(np.int64)


def per_cell_iou(pred: np.ndarray, gt: np.ndarray, markers: np.ndarray | None = None,
                 cells: Sequence[int] | None = None) -> pd.DataFrame:
    """IoU of every ground-truth cell with its predicted cell.

    Parameters
    ----------
    pred : ndarray (H, W) of int
        Predicted labels; label k belongs to marker k - 1.
    gt : ndarray (H, W) of int
        Ground-truth labels, 0 = background.
    markers : ndarray (N, 2), optional
        Markers (row, col) of the prediction. GT cell g is matched to predicted label k
        when marker k - 1 lies in g (``gt[round(marker)] == g``; an empty prediction
        then scores 0). Without markers, labels correspond by number: GT g is matched
        to predicted label g when that label is present.
    cells : sequence of int, optional
        GT labels to evaluate (e.g. the paper's 130 sampled cells); default all.

    Returns
    -------
    DataFrame indexed by ``gt_label``
        Columns ``pred_label`` (0 if none), ``iou``, ``match`` (``"marker"``: through
        a marker / label number; ``"overlap"``: best-IoU predicted cell, for GT cells
        no marker reaches; ``"none"``: nothing overlaps), ``gt_area``, ``pred_area``.
        If several markers lie in one GT cell the best of their IoUs is kept.

    Examples
    --------
    >>> gt = np.array([[1, 1, 2, 2, 3]])
    >>> pred = np.array([[2, 2, 2, 1, 0]])      # labels follow markers, not GT numbers
    >>> t = per_cell_iou(pred, gt, markers=np.array([[0.0, 3.0], [0.0, 0.0]]))
    >>> t.index.tolist(), t["pred_label"].tolist(), t["match"].tolist()
    ([1, 2, 3], [2, 1, 0], ['marker', 'marker', 'none'])
    >>> t["iou"].round(4).tolist()
    [0.6667, 0.5, 0.0]
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    pairs = iou_pairs(pred, gt)
    gt_cells = _labels(gt) if cells is None else np.unique(np.asarray(cells, np.int64))
    gt_area = np.bincount(gt.ravel().astype(np.int64), minlength=int(gt.max(initial=0)) + 1)
    if gt_cells.size and (gt_cells.min() < 1 or gt_cells.max() >= gt_area.size
                          or (gt_area[gt_cells] == 0).any()):
        raise ValueError("cells must list labels present in the ground truth.")

    if markers is None:
        cand_pred = _labels(pred)
        cand_gt = cand_pred
    else:
        m = np.asarray(markers, np.float64).reshape(-1, 2)
        c = np.clip(centre_pixels(m), 0, np.array(gt.shape) - 1)
        cand_gt = gt[c[:, 0], c[:, 1]].astype(np.int64)
        cand_pred = np.arange(1, len(m) + 1, dtype=np.int64)
    cand = pd.DataFrame({"a_label": cand_pred, "b_label": cand_gt})
    cand = cand[cand.b_label.isin(gt_cells)]
    cand = cand.merge(pairs[["a_label", "b_label", "iou"]], how="left",
                      on=["a_label", "b_label"]).fillna({"iou": 0.0})
    cand["match"] = "marker"
    cand = cand.sort_values(["iou", "a_label"], ascending=[False, True], kind="stable")
    by_marker = cand.drop_duplicates("b_label")

    rest = pairs[pairs.b_label.isin(gt_cells) & ~pairs.b_label.isin(by_marker.b_label)]
    rest = rest.sort_values(["iou", "a_label"], ascending=[False, True], kind="stable")
    by_overlap = rest.drop_duplicates("b_label")[["a_label", "b_label", "iou"]].assign(
        match="overlap")
    done = pd.concat([by_marker, by_overlap], ignore_index=True)
    table = pd.DataFrame(index=pd.Index(gt_cells, name="gt_label"))
    table["pred_label"] = done.set_index("b_label")["a_label"].reindex(gt_cells).fillna(0)
    table["pred_label"] = table["pred_label"].astype(np.int64)
    table["iou"] = done.set_index("b_label")["iou"].reindex(gt_cells).fillna(0.0).to_numpy()
    table["match"] = done.set_index("b_label")["match"].reindex(gt_cells).fillna(
        "none").to_numpy()
    table["gt_area"] = gt_area[gt_cells]
    pl = table["pred_label"].to_numpy()
    pred_area = np.bincount(pred.ravel().astype(np.int64), minlength=int(pl.max(initial=0)) + 1)
    table["pred_area"] = np.where(pl > 0, pred_area[pl], 0)
    return table


def summarize(table: pd.DataFrame, column: str = "iou") -> pd.DataFrame:
    """mIOU ± std of a per-cell table (one row: ``miou``, ``std``, ``n``).

    ``std`` is the sample standard deviation over cells (ddof = 1; 0 for one cell).

    Examples
    --------
    >>> summarize(pd.DataFrame({"iou": [0.5, 1.0]})).round(4).values.tolist()
    [[0.75, 0.3536, 2.0]]
    """
    if column not in table:
        raise ValueError(f"The table has no column {column!r}; columns: {list(table.columns)}.")
    x = table[column].to_numpy(np.float64)
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    return pd.DataFrame({"miou": [float(x.mean()) if x.size else np.nan], "std": [std],
                         "n": [x.size]})


def score(labels: np.ndarray, gt: np.ndarray,
          markers: np.ndarray) -> tuple[dict[str, float], pd.DataFrame]:
    """Per-cell IoU through the markers, its mean ± std, and AP / F1 at IoU 0.5.

    Parameters
    ----------
    labels : ndarray (H, W) of int
        Predicted labels; label k belongs to marker k - 1.
    gt : ndarray (H, W) of int
        Ground-truth labels.
    markers : ndarray (N, 2)
        The prediction's markers (see :func:`per_cell_iou`).

    Returns
    -------
    scores : dict
        ``miou``, ``std`` (over cells, ddof 1), ``ap50``, ``f1``, ``n_cells``.
    cells : DataFrame
        :func:`per_cell_iou` with ``gt_label`` as a column.

    Examples
    --------
    >>> gt = np.array([[1, 1, 2, 2]])
    >>> s, cells = score(np.array([[1, 1, 1, 2]]), gt, np.array([[0.0, 0.0], [0.0, 3.0]]))
    >>> round(s["miou"], 4), s["ap50"], s["n_cells"], cells["gt_label"].tolist()
    (0.5833, 1.0, 2, [1, 2])
    """
    cells = per_cell_iou(labels, gt, markers=markers).reset_index()
    m = matching(labels, gt, thresholds=[0.5]).iloc[0]
    iou = cells["iou"].to_numpy(np.float64)
    return ({"miou": float(iou.mean()), "std": float(iou.std(ddof=1)) if iou.size > 1 else 0.0,
             "ap50": float(m["ap"]), "f1": float(m["f1"]), "n_cells": int(iou.size)}, cells)


def score_table(gt: np.ndarray,
                segmentations: dict[str, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """Several segmentations of one field scored side by side (:func:`score`).

    Parameters
    ----------
    gt : ndarray (H, W) of int
        Ground-truth labels.
    segmentations : dict of str to (labels, markers)
        Name → label image and the markers its labels belong to.

    Returns
    -------
    DataFrame indexed by name
        ``mIOU``, ``std`` (over cells), ``AP@0.5``, ``F1@0.5``.

    Examples
    --------
    >>> gt = np.array([[1, 1, 2, 2]])
    >>> m = np.array([[0.0, 0.0], [0.0, 3.0]])
    >>> t = score_table(gt, {"perfect": (gt, m), "shifted": (np.array([[1, 1, 1, 2]]), m)})
    >>> t["mIOU"].round(4).tolist()
    [1.0, 0.5833]
    """
    rows = {}
    for name, (labels, markers) in segmentations.items():
        s = score(labels, gt, markers)[0]
        rows[name] = {"mIOU": s["miou"], "std": s["std"], "AP@0.5": s["ap50"], "F1@0.5": s["f1"]}
    return pd.DataFrame(rows).T


def agreement(a: np.ndarray, b: np.ndarray) -> pd.DataFrame:
    """Each label of ``a`` matched to its best-overlap (highest IoU) label of ``b``.

    Returns
    -------
    DataFrame indexed by ``a_label``
        Columns ``b_label`` (0 if nothing overlaps) and ``iou``; :func:`summarize`
        gives the agreement mIOU.

    Examples
    --------
    >>> t = agreement(np.array([[1, 1, 2, 0]]), np.array([[5, 5, 5, 6]]))
    >>> t.index.tolist(), t["b_label"].tolist(), t["iou"].round(4).tolist()
    ([1, 2], [5, 5], [0.6667, 0.3333])
    """
    pairs = iou_pairs(a, b).sort_values(["iou", "b_label"], ascending=[False, True],
                                        kind="stable")
    best = pairs.drop_duplicates("a_label").set_index("a_label")
    labels = _labels(a)
    out = pd.DataFrame(index=pd.Index(labels, name="a_label"))
    out["b_label"] = best["b_label"].reindex(labels).fillna(0).astype(np.int64).to_numpy()
    out["iou"] = best["iou"].reindex(labels).fillna(0.0).to_numpy()
    return out


def matching(pred: np.ndarray, gt: np.ndarray,
             thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> pd.DataFrame:
    """Instance matching at IoU thresholds: TP/FP/FN, precision, recall, F1 and AP.

    A predicted and a GT cell match at threshold t when IoU ≥ t and each is the other's
    best partner; for t ≥ 0.5 this is the unique one-to-one matching (an IoU above 0.5
    cannot be shared), so no assignment solver is needed.

    Parameters
    ----------
    pred, gt : ndarray (H, W) of int
        Label images.
    thresholds : sequence of float
        IoU thresholds, each in [0.5, 1].

    Returns
    -------
    DataFrame indexed by ``threshold``
        Columns ``tp, fp, fn, n_pred, n_gt, precision, recall, f1, ap,
        mean_matched_iou`` (ratios are 0 when their denominator is 0).

    Examples
    --------
    >>> gt = np.array([[1, 1, 2, 2, 0, 3]])
    >>> pred = np.array([[1, 1, 2, 0, 4, 0]])
    >>> m = matching(pred, gt, [0.5, 0.9])
    >>> m[["tp", "fp", "fn"]].values.tolist(), m["ap"].round(4).tolist()
    ([[2, 1, 1], [1, 2, 2]], [0.5, 0.2])
    """
    thr = np.asarray(thresholds, np.float64).ravel()
    if thr.size == 0 or thr.min() < 0.5 or thr.max() > 1.0:
        raise ValueError(f"thresholds must lie in [0.5, 1] (unique matching needs IoU >= "
                         f"0.5), got {thr.tolist()}.")
    pairs = iou_pairs(pred, gt)
    n_pred, n_gt = _labels(pred).size, _labels(gt).size
    order = pairs.sort_values(["iou", "a_label", "b_label"], ascending=[False, True, True],
                              kind="stable")
    best_for_pred = order.drop_duplicates("a_label").index
    best_for_gt = order.drop_duplicates("b_label").index
    ious = pairs.loc[best_for_pred.intersection(best_for_gt), "iou"].to_numpy()
    hit = ious[None, :] >= thr[:, None] - 1e-12  # (T, matches)
    tp = hit.sum(axis=1)
    fp, fn = n_pred - tp, n_gt - tp

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    matched_sum = (hit * ious[None, :]).sum(axis=1)
    return pd.DataFrame({
        "tp": tp, "fp": fp, "fn": fn,
        "n_pred": np.full(thr.size, n_pred), "n_gt": np.full(thr.size, n_gt),
        "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn), "ap": ratio(tp, tp + fp + fn),
        "mean_matched_iou": ratio(matched_sum, tp),
    }, index=pd.Index(thr, name="threshold"))
