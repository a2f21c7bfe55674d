"""Tests of cellcutter_nb.core.integrate: scatter-max label image and whole-field prediction."""

from __future__ import annotations

import numpy as np
import pytest

from cellcutter_nb import config
from cellcutter_nb.core.integrate import LabelCanvas, integrate, predict_field
from cellcutter_nb.core.patches import extract_patches
from cellcutter_nb.data.field import Field


def naive_integrate(probs, origins, shape, labels, threshold=0.5):
    """Loop reference: per pixel, the label of the highest probability; ties go to the
    patch whose centre is nearer, then to the higher label."""
    best = {}
    out = np.zeros(shape, np.uint32)
    k = probs.shape[1]
    for p, o, lab in zip(probs, origins, labels, strict=True):
        for r in range(k):
            for c in range(k):
                rr, cc = o[0] + r, o[1] + c
                if not (0 <= rr < shape[0] and 0 <= cc < shape[1]) or p[r, c] < threshold:
                    continue
                key = (p[r, c], -((r - k // 2) ** 2 + (c - k // 2) ** 2), lab)
                if (rr, cc) not in best or key > best[rr, cc]:
                    best[rr, cc], out[rr, cc] = key, lab
    return out


def _random(seed, n=30, k=10, shape=(37, 41)):
    rng = np.random.default_rng(seed)
    probs = rng.random((n, k, k)).astype(np.float32)
    origins = np.column_stack([rng.integers(-k + 2, shape[0] - 2, n),
                               rng.integers(-k + 2, shape[1] - 2, n)])
    labels = rng.permutation(np.arange(1, n + 1) * 3)
    return probs, origins, labels, shape


@pytest.mark.parametrize("seed", [0, 1])
def test_integrate_equals_pixel_loop(seed):
    probs, origins, labels, shape = _random(seed)
    got = integrate(probs, origins, shape, labels)
    assert got.dtype == np.uint32 and got.shape == shape
    np.testing.assert_array_equal(got, naive_integrate(probs, origins, shape, labels))
    assert 0 < (got == 0).sum() < got.size  # some background, some cells


def test_chunked_canvas_equals_one_shot_including_ties():
    probs, origins, labels, shape = _random(2)
    probs = np.round(probs * 4) / 4  # many exact ties
    one = integrate(probs, origins, shape, labels)
    np.testing.assert_array_equal(one, naive_integrate(probs, origins, shape, labels))
    for order in (np.arange(len(probs)), np.arange(len(probs))[::-1]):
        canvas = LabelCanvas(shape)
        for chunk in np.array_split(order, 7):
            canvas.add(probs[chunk], origins[chunk], labels[chunk])
        np.testing.assert_array_equal(canvas.labels, one)
    assert canvas.max_prob.max() == 1.0 and canvas.max_prob[one == 0].max() == 0


def test_threshold_and_background():
    probs = np.array([[[0.49, 0.5], [0.51, 0.2]]], np.float32)
    got = integrate(probs, np.array([[0, 0]]), (2, 2), labels=np.array([7]))
    assert got.tolist() == [[0, 7], [7, 0]]
    assert integrate(probs, np.array([[0, 0]]), (2, 2), threshold=0.9).max() == 0
    with pytest.raises(ValueError, match="threshold"):
        integrate(probs, np.array([[0, 0]]), (2, 2), threshold=1.0)
    with pytest.raises(ValueError, match="labels must be >= 1"):
        integrate(probs, np.array([[0, 0]]), (2, 2), labels=np.array([0]))


class DiskModel:
    """Stand-in model: logits = 20·(position disk - 0.5), i.e. a disk around each marker."""

    def __init__(self):
        self.calls = []

    def predict_on_batch(self, x):
        self.calls.append(x.shape[0])
        return 20.0 * (x[..., -1:] - 0.5)


def _field():
    rng = np.random.default_rng(0)
    markers = np.array([[10.0, 10.0], [10.0, 30.0], [30.0, 12.3], [1.0, 38.0], [28.6, 29.4]])
    return Field({"fl": rng.random((40, 42)), "nuc": rng.random((40, 42))}, markers=markers)


def test_predict_field_labels_follow_markers_and_chunking_is_invisible():
    f = _field()
    p = config.get_preset("paper").replace(patch_size=16, position_sigma=4.0)
    m1, m2 = DiskModel(), DiskModel()
    lab1 = predict_field(m1, f, ["fl", "nuc"], p, batch_size=2)
    lab2, prob = predict_field(m2, f, ["fl", "nuc"], p, batch_size=64, return_max_prob=True)
    np.testing.assert_array_equal(lab1, lab2)
    assert m1.calls == [2, 2, 2] and m2.calls == [64]  # every chunk padded to one shape
    c = np.floor(f.markers + 0.5).astype(int)
    assert lab1[c[:, 0], c[:, 1]].tolist() == [1, 2, 3, 4, 5]
    assert prob.max() <= 1.0 and prob[lab1 > 0].min() >= 0.5
    # the same as integrating the extracted patches by hand
    ps = extract_patches(f, ["fl", "nuc"], p)
    logits = DiskModel().predict_on_batch(ps.patches)[..., 0]
    ref = integrate(1 / (1 + np.exp(-logits)), ps.origins, f.shape, ps.marker_indices + 1)
    np.testing.assert_array_equal(lab1, ref)


def test_predict_field_drops_border_markers_with_original_code_preset():
    f = _field()
    p = config.get_preset("original_code").replace(patch_size=16, position_sigma=4.0)
    lab = predict_field(DiskModel(), f, ["fl"], p, batch_size=8)
    assert sorted(set(np.unique(lab)) - {0}) == [1, 2, 3, 5]  # marker 4 (row 1) dropped
    with pytest.raises(ValueError, match="batch_size"):
        predict_field(DiskModel(), f, ["fl"], p, batch_size=0)
