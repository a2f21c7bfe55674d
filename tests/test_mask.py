"""Tests of cellcutter_nb.prep.mask: graph cut (Eq. 2), scribbles → forest → cut, scribbles."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from cellcutter_nb.data.field import Field
from cellcutter_nb.data.synth import make_field
from cellcutter_nb.metrics import foreground_iou
from cellcutter_nb.prep import mask
from cellcutter_nb.prep.scribbles import synthetic_scribbles


@pytest.fixture(scope="module")
def field():
    return make_field(seed=0, shape=(640, 640))


@pytest.fixture(scope="module")
def scribbles(field):
    return synthetic_scribbles(field, n_per_class=6, seed=0)


# --- acceptance on the synthetic benchmark -------------------------------------------

def test_fl_graph_cut_iou(field):
    m = mask.graph_cut(field["fl"])
    iou = foreground_iou(m, field.mask)
    assert iou >= 0.85, iou
    # the plain Otsu threshold of the same image is clearly worse (bright junctions)
    assert iou > foreground_iou(mask.otsu_mask(field["fl"]), field.mask) + 0.1


def test_fl_graph_cut_released_code_variant(field):
    m = mask.graph_cut(field["fl"], kappa=4.0, neighbourhood=8, pairwise="contrast")
    assert foreground_iou(m, field.mask) >= 0.85


def test_bf_scribble_mask_iou_where_otsu_fails(field, scribbles):
    otsu = foreground_iou(mask.otsu_mask(field["bf"]), field.mask)
    assert otsu < 0.6, otsu
    m, prob = mask.pixel_classifier_mask(field["bf"], scribbles, return_probability=True)
    assert prob.shape == field.shape and 0 <= prob.min() and prob.max() <= 1
    iou = foreground_iou(m, field.mask)
    assert iou >= 0.80, iou


# --- graph cut behaviour on hand-made images -----------------------------------------

@pytest.fixture(scope="module")
def noisy_square():
    truth = np.zeros((64, 64), bool)
    truth[16:48, 16:48] = True
    img = truth + np.random.default_rng(0).normal(0, 0.6, truth.shape)
    return img, truth


def test_kappa_smooths(noisy_square):
    img, truth = noisy_square
    pieces = [ndi.label(mask.graph_cut(img, kappa=k, smooth_sigma=0))[1] for k in (0.05, 3.0)]
    assert pieces[0] > 5 and pieces[1] == 1
    assert foreground_iou(mask.graph_cut(img, kappa=3.0, smooth_sigma=0), truth) > 0.9


def test_alpha_shifts_boundary(noisy_square):
    img, _ = noisy_square
    areas = [mask.graph_cut(img, alpha=a, kappa=1.0).sum() for a in (0.1, 0.3, 0.6, 0.9)]
    assert all(a < b for a, b in zip(areas, areas[1:], strict=False)), areas


def test_constant_pairwise_is_exact_on_clean_image():
    img = np.zeros((32, 32))
    img[8:24, 8:24] = 1
    for nb in (4, 8):
        m = mask.graph_cut(img, neighbourhood=nb, smooth_sigma=0)
        assert m.sum() == 256 and m[8:24, 8:24].all()


def test_percentile_normalisation_loses_dim_cytoplasm(field):
    """The literal min–max/percentile reading of Eq. 2 drops cytoplasm (documented)."""
    lit = foreground_iou(mask.graph_cut(field["fl"], normalisation="percentile"),
                              field.mask)
    cal = foreground_iou(mask.graph_cut(field["fl"]), field.mask)
    assert lit < cal - 0.1


@pytest.mark.parametrize("kwargs, match", [
    ({"alpha": 1.5}, "alpha"), ({"alpha": 0.0}, "alpha"), ({"kappa": 0}, "kappa"),
    ({"neighbourhood": 6}, "neighbourhood"), ({"pairwise": "potts"}, "pairwise"),
    ({"normalisation": "zscore"}, "normalisation"), ({"threshold": "yen"}, "threshold")])
def test_graph_cut_bad_options(noisy_square, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mask.graph_cut(noisy_square[0], **kwargs)


@pytest.mark.parametrize("bad", [np.ones((16, 16)), np.zeros((0, 4)), np.ones((4, 4, 3))])
def test_graph_cut_bad_images(bad):
    with pytest.raises(ValueError, match="constant|empty|RGB"):
        mask.graph_cut(bad)


# --- scribbles -------------------------------------------------------------------------

def test_synthetic_scribbles_placement(field, scribbles):
    assert scribbles.dtype == np.uint8 and set(np.unique(scribbles)) == {0, 1, 2}
    labels = field.labels
    assert (labels[scribbles == 1] > 0).all()
    assert (labels[scribbles == 2] == 0).all()
    # strokes keep a margin (2.5 µm ≈ 3 px) from cell edges and from cells
    dist_out = ndi.distance_transform_edt(labels == 0)
    assert dist_out[scribbles == 2].min() >= 2.5 / field.pixel_size
    n_cell = ndi.label(scribbles == 1)[1]
    n_bg = ndi.label(scribbles == 2)[1]
    assert n_cell == 6 and 5 <= n_bg <= 6  # background strokes may cross
    assert len(np.unique(labels[scribbles == 1])) == 6  # one stroke per cell
    again = synthetic_scribbles(field, n_per_class=6, seed=0)
    other = synthetic_scribbles(field, n_per_class=6, seed=1)
    assert np.array_equal(again, scribbles) and not np.array_equal(other, scribbles)


def test_synthetic_scribbles_needs_ground_truth():
    f = Field({"bf": np.random.default_rng(0).random((32, 32))})
    with pytest.raises(ValueError, match="ground-truth"):
        synthetic_scribbles(f)
    lab = np.ones((32, 32), np.uint32)  # no background at all
    with pytest.raises(ValueError, match="background"):
        synthetic_scribbles(Field({"bf": np.zeros((32, 32))}, labels=lab))


def test_pixel_classifier_bad_scribbles():
    img = np.random.default_rng(0).random((32, 32))
    one = np.zeros((32, 32), int)
    one[5:8, 5:20] = 1
    with pytest.raises(ValueError, match="background"):
        mask.pixel_classifier_mask(img, one)
    with pytest.raises(ValueError, match="same size"):
        mask.pixel_classifier_mask(img, np.zeros((16, 16), int))
    with pytest.raises(ValueError, match="0 .unlabelled"):
        mask.pixel_classifier_mask(img, one * 3)
    with pytest.raises(ValueError, match="cell .1. and no background"):
        mask.pixel_classifier_mask(img, np.zeros((32, 32), int))


def test_pixel_features_shapes_and_chunking():
    rng = np.random.default_rng(0)
    truth = np.zeros((48, 48), bool)
    truth[:, :24] = True
    img = rng.normal(0, np.where(truth, 1.0, 0.1))
    s = np.zeros(truth.shape, np.uint8)
    s[10:14, 5:15] = 1
    s[30:34, 30:40] = 2
    feats = mask.pixel_features(img, (1.0, 3.0))
    assert feats.shape == (48, 48, 7) and feats.dtype == np.float32
    a = mask.pixel_classifier_mask(img, s, n_estimators=10, chunk_size=100)
    b = mask.pixel_classifier_mask(img, s, n_estimators=10)
    assert np.array_equal(a, b)  # chunked prediction = one-shot prediction
    assert foreground_iou(a, truth) > 0.9


def test_foreground_iou():
    assert foreground_iou(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0
    assert foreground_iou(np.eye(2), np.ones((2, 2))) == 0.5
    with pytest.raises(ValueError, match="shape"):
        foreground_iou(np.zeros((2, 2)), np.zeros((3, 2)))
