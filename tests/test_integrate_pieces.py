"""Integration that cannot shatter a label: saturated ties, stray pieces, the mask arg-max."""

from __future__ import annotations

import numpy as np
from skimage.measure import label as cc_label

from cellcutter_nb import config
from cellcutter_nb.core.integrate import LabelCanvas, one_piece, predict_field
from cellcutter_nb.data.field import Field


def pieces_per_label(labels: np.ndarray) -> dict[int, int]:
    """Number of 4-connected pieces of every label."""
    return {int(k): int(cc_label(labels == k, connectivity=1).max())
            for k in np.unique(labels) if k}


class EdgeModel:
    """Stand-in for an under-trained UNet: saturated everywhere (logit 40), and higher
    still (60) on the patch's last column, where zero padding made it over-confident."""

    def predict_on_batch(self, x):
        out = np.full(x.shape[:3] + (1,), 40.0, np.float32)
        out[:, :, -1] = 60.0
        return out


def _two_cells() -> Field:
    return Field({"fl": np.ones((16, 40)), "nuc": np.ones((16, 40))},
                 markers=np.array([[8.0, 8.0], [8.0, 20.0]]))


def test_saturated_patches_no_longer_tie_to_the_higher_label():
    # Two patches with probability exactly 1.0 (float32) over their whole overlap: the
    # old canvas gave every tied pixel to the higher label; now the nearer centre wins.
    canvas = LabelCanvas((1, 12))
    ones = np.ones((2, 8, 8), np.float32)
    canvas.add(ones, np.array([[-4, 0], [-4, 4]]), np.array([1, 2]))  # centres at col 4, 8
    assert canvas.labels[0].tolist() == [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]


def test_logits_break_what_saturated_probabilities_tie():
    canvas = LabelCanvas((1, 4))
    canvas.add_logits(np.array([[[30.0] * 4] * 4]), np.array([[-2, 0]]), np.array([1]))
    canvas.add_logits(np.array([[[31.0] * 4] * 4]), np.array([[-2, 0]]), np.array([2]))
    assert canvas.labels.tolist() == [[2, 2, 2, 2]]  # both are 1.0 as float32 probabilities


def test_an_edge_stripe_shatters_a_label_unless_labels_are_one_piece():
    field = _two_cells()  # patches cols 0-15 and 12-27 (k = 16)
    paper = config.get_preset("paper").replace(patch_size=16)
    fast = config.get_preset("fast").replace(patch_size=16)
    shattered = predict_field(EdgeModel(), field, ["fl"], paper)
    # patch 1's over-confident last column (15) cuts cell 2's col 14 off its body
    assert shattered[8, 12:17].tolist() == [1, 1, 2, 1, 2]
    assert pieces_per_label(shattered) == {1: 2, 2: 2}  # and col 15 is cut off cell 1
    whole = predict_field(EdgeModel(), field, ["fl"], fast)
    assert pieces_per_label(whole) == {1: 1, 2: 1}
    assert whole[8, 12:17].tolist() == [1, 1, 1, 2, 2]  # each stray to the body it touches


def test_one_piece_keeps_the_piece_at_the_marker_and_regrows_the_rest():
    lab = np.zeros((8, 12), np.uint32)
    lab[1:7, 1:5] = 1
    lab[1:7, 5:10] = 2
    lab[2:4, 7] = 1          # a stray piece of cell 1 inside cell 2
    lab[:, 11] = 2           # a stripe of cell 2 that touches nothing
    out = one_piece(lab, np.array([[3.0, 2.0], [3.0, 7.0]]))
    assert pieces_per_label(out) == {1: 1, 2: 1}
    assert out[2, 7] == 2 and out[:, 11].max() == 0 and (out > 0).sum() == (lab > 0).sum() - 8
    # a label whose marker sits on another label keeps its piece nearest the marker
    assert one_piece(lab, np.array([[3.0, 2.0], [2.0, 7.0]]))[4, 8] == 2


def test_mask_argmax_fills_the_mask_and_nothing_else():
    field = _two_cells()
    mask = np.zeros(field.shape, bool)
    mask[4:12, 2:26] = True

    class Dim:  # every patch below 0.5 everywhere: the paper's threshold keeps nothing
        def predict_on_batch(self, x):
            return -2.0 - 4.0 * (1.0 - x[..., -1:])

    fast = config.get_preset("fast").replace(patch_size=16, position_sigma=4.0)
    paper = config.get_preset("paper").replace(patch_size=16, position_sigma=4.0)
    assert predict_field(Dim(), field, ["fl"], paper, mask=mask).max() == 0
    lab = predict_field(Dim(), field, ["fl"], fast, mask=mask)
    assert ((lab > 0) == mask).all() and pieces_per_label(lab) == {1: 1, 2: 1}
    assert predict_field(Dim(), field, ["fl"], fast).max() == 0  # no mask: the threshold
