"""Tests of cellcutter_nb.metrics on hand-made label images (values worked out by hand)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cellcutter_nb.metrics import (
    DEFAULT_THRESHOLDS,
    agreement,
    contingency,
    iou_pairs,
    matching,
    per_cell_iou,
    summarize,
)

# 4×6 ground truth: cell 1 (8 px), cell 2 (8 px), cell 3 (4 px), background 4 px
GT = np.array([[1, 1, 1, 1, 2, 2],
               [1, 1, 1, 1, 2, 2],
               [0, 0, 3, 3, 2, 2],
               [0, 0, 3, 3, 2, 2]])
# prediction: label 1 = 6 px inside cell 1; label 2 = cell 2 + 2 background... see below
PRED = np.array([[1, 1, 1, 2, 2, 2],
                 [1, 1, 1, 2, 2, 2],
                 [0, 0, 0, 0, 2, 2],
                 [4, 4, 0, 0, 2, 2]])


def test_contingency_counts_pixels():
    c = contingency(PRED, GT).toarray()
    assert c.shape == (5, 4)
    assert c[1].tolist() == [0, 6, 0, 0]
    assert c[2].tolist() == [0, 2, 8, 0]
    assert c[0].tolist() == [2, 0, 0, 4] and c[4].tolist() == [2, 0, 0, 0]
    assert c.sum() == GT.size


def test_iou_pairs_against_brute_force():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 6, (20, 30)), rng.integers(0, 5, (20, 30))
    t = iou_pairs(a, b).set_index(["a_label", "b_label"])["iou"]
    for i in range(1, 6):
        for j in range(1, 5):
            inter = np.sum((a == i) & (b == j))
            if inter:
                assert t[(i, j)] == pytest.approx(inter / np.sum((a == i) | (b == j)))
            else:
                assert (i, j) not in t.index


def test_per_cell_iou_by_label_number():
    t = per_cell_iou(PRED, GT)
    # cell 1: 6 / 8; cell 2: 8 / (10 + 8 - 8) = 0.8; cell 3: no pred label 3 and no overlap
    assert t.index.tolist() == [1, 2, 3]
    assert t["iou"].tolist() == pytest.approx([0.75, 0.8, 0.0])
    assert t["match"].tolist() == ["marker", "marker", "none"]
    assert t["gt_area"].tolist() == [8, 8, 4] and t["pred_area"].tolist() == [6, 10, 0]
    s = summarize(t)
    assert s["miou"].item() == pytest.approx(1.55 / 3)
    assert s["std"].item() == pytest.approx(np.std([0.75, 0.8, 0.0], ddof=1))
    assert s["n"].item() == 3


def test_per_cell_iou_through_markers_and_overlap_fallback():
    # markers: pred label 1 ↔ marker 0 in GT cell 2; pred label 2 ↔ marker 1 in GT cell 1
    pred = np.where(PRED == 1, 2, np.where(PRED == 2, 1, PRED))
    markers = np.array([[1.2, 4.6], [0.4, 0.6]])
    t = per_cell_iou(pred, GT, markers=markers)
    assert t["pred_label"].tolist() == [2, 1, 0]
    assert t["iou"].tolist() == pytest.approx([0.75, 0.8, 0.0])
    # GT cell 1 loses its marker: matched by best overlap (label 2, IoU 0.75) instead
    t2 = per_cell_iou(pred, GT, markers=markers[:1])
    assert t2.loc[1, "match"] == "overlap" and t2.loc[1, "iou"] == pytest.approx(0.75)
    # a marker whose prediction is empty scores 0 (not rescued by a neighbour's overlap)
    t3 = per_cell_iou(pred, GT, markers=np.vstack([markers, [[3.0, 2.0]]]))
    assert t3.loc[3, "match"] == "marker" and t3.loc[3, "pred_label"] == 3
    assert t3.loc[3, "iou"] == 0.0
    # two markers in one GT cell: the better of the two is kept
    t4 = per_cell_iou(pred, GT, markers=np.array([[1.2, 4.6], [0.4, 0.6], [3.0, 5.0]]))
    assert t4.loc[2, "pred_label"] == 1 and t4.loc[2, "iou"] == pytest.approx(0.8)


def test_per_cell_iou_subset_of_cells():
    t = per_cell_iou(PRED, GT, cells=[2])
    assert t.index.tolist() == [2] and t["iou"].item() == pytest.approx(0.8)
    with pytest.raises(ValueError, match="cells must list labels"):
        per_cell_iou(PRED, GT, cells=[7])


def test_agreement_is_best_overlap_and_asymmetric():
    ab = agreement(PRED, GT)
    # pred 1 → gt 1 (6/8); pred 2 → gt 2 (0.8); pred 4 overlaps only background
    assert ab["b_label"].tolist() == [1, 2, 0]
    assert ab["iou"].tolist() == pytest.approx([0.75, 0.8, 0.0])
    ba = agreement(GT, PRED)
    assert ba["b_label"].tolist() == [1, 2, 0] and ba["iou"].tolist() == pytest.approx(
        [0.75, 0.8, 0.0])
    assert summarize(ab)["miou"].item() == pytest.approx(1.55 / 3)


def test_matching_counts_and_scores():
    m = matching(PRED, GT, thresholds=[0.5, 0.75, 0.8, 0.9])
    # matched pairs: (1,1) IoU 0.75, (2,2) IoU 0.8; pred 3 preds, gt 3 cells
    assert m["tp"].tolist() == [2, 2, 1, 0]
    assert m["fp"].tolist() == [1, 1, 2, 3] and m["fn"].tolist() == [1, 1, 2, 3]
    assert m["precision"].tolist() == pytest.approx([2 / 3, 2 / 3, 1 / 3, 0])
    assert m["f1"].tolist() == pytest.approx([2 / 3, 2 / 3, 1 / 3, 0])
    assert m["ap"].tolist() == pytest.approx([0.5, 0.5, 0.2, 0])
    assert m["mean_matched_iou"].tolist() == pytest.approx([0.775, 0.775, 0.8, 0])


def test_matching_half_iou_tie_is_one_to_one():
    gt = np.array([[1, 2]])
    pred = np.array([[1, 1]])  # IoU 0.5 with both GT cells
    m = matching(pred, gt, [0.5])
    assert m["tp"].item() == 1 and m["fp"].item() == 0 and m["fn"].item() == 1


def test_matching_defaults_and_errors():
    m = matching(GT, GT)
    assert list(m.index) == list(DEFAULT_THRESHOLDS) and len(m) == 9
    assert (m["ap"] == 1).all() and (m["f1"] == 1).all()
    empty = matching(np.zeros_like(GT), GT, [0.5])
    assert empty[["tp", "fp", "fn", "precision", "recall"]].values.tolist() == [[0, 0, 3, 0, 0]]
    with pytest.raises(ValueError, match="0.5"):
        matching(PRED, GT, [0.3])
    with pytest.raises(ValueError, match="differ in shape"):
        matching(PRED[:2], GT)
    with pytest.raises(ValueError, match="non-negative integers"):
        agreement(PRED.astype(float), GT)
    assert isinstance(summarize(pd.DataFrame({"iou": [1.0]})), pd.DataFrame)
