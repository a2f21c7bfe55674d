"""Tests of cellcutter_nb.prep.markers: nucleus segmentation, blobs, centroids, matching."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from cellcutter_nb.data.synth import make_field
from cellcutter_nb.prep import markers


@pytest.fixture(scope="module")
def field():
    return make_field(seed=0, shape=(640, 640))


# --- acceptance on the synthetic benchmark -------------------------------------------

def test_nuclei_from_image_recall_precision(field):
    lab = markers.nuclei_from_image(field["nuc"], pixel_size=field.pixel_size)
    assert lab.dtype == np.int32 and lab.shape == field.shape
    assert np.array_equal(np.unique(lab), np.arange(lab.max() + 1))  # consecutive
    found = markers.markers_from_labels(lab)
    r = markers.match_markers(found, field.markers, pixel_size=field.pixel_size)
    assert r.recall >= 0.97, r.as_dict()
    assert r.precision >= 0.97, r.as_dict()
    assert np.median(r.distances_um) < 2.0  # centroids sit on the nuclei


def test_dog_recovers_nuclei(field):
    found = markers.detect_blobs(field["nuc"], "dog", pixel_size=field.pixel_size)
    r = markers.match_markers(found, field.markers, pixel_size=field.pixel_size)
    assert r.recall >= 0.97, r.as_dict()
    assert r.precision >= 0.9, r.as_dict()


def test_doh_runs_and_finds_bright_blobs(field):
    found = markers.detect_blobs(field["nuc"], "doh", pixel_size=field.pixel_size)
    r = markers.match_markers(found, field.markers, pixel_size=field.pixel_size)
    assert r.precision >= 0.9 and r.recall >= 0.8, r.as_dict()


# --- hand-made cases ------------------------------------------------------------------

def _two_discs(shape=(60, 90), centres=((30, 25), (30, 60)), radius=9):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    img = np.zeros(shape)
    for r, c in centres:
        img += ((yy - r) ** 2 + (xx - c) ** 2 <= radius ** 2)
    return img


def test_nuclei_split_touching_discs():
    yy, xx = np.mgrid[:60, :90]
    domes = [np.clip(1.2 - ((yy - 30) ** 2 + (xx - c) ** 2) / 100.0, 0, 1) for c in (30, 46)]
    img = np.maximum(*domes)  # two touching nuclei with an intensity saddle between
    assert ndi.label(ndi.gaussian_filter(img, 1) > 0.2)[1] == 1
    lab = markers.nuclei_from_image(img, diameter_um=(8, 30), pixel_size=1.0)
    assert lab.max() == 2
    cen = markers.markers_from_labels(lab)
    assert np.allclose(np.sort(cen[:, 1]), [30, 46], atol=2)
    none = markers.nuclei_from_image(img, diameter_um=(8, 30), pixel_size=1.0,
                                     declump="none")
    assert none.max() == 1
    shape = markers.nuclei_from_image(img, diameter_um=(8, 30), pixel_size=1.0,
                                      declump="shape")
    assert shape.max() == 2


def test_nuclei_size_limits_and_border():
    img = _two_discs(centres=((30, 25), (30, 84)), radius=9)  # second touches the edge
    lab = markers.nuclei_from_image(img, diameter_um=(8, 30), pixel_size=1.0)
    assert lab.max() == 2
    lab = markers.nuclei_from_image(img, diameter_um=(8, 30), pixel_size=1.0,
                                    exclude_border=True)
    assert lab.max() == 1
    with pytest.raises(ValueError, match="size range"):
        markers.nuclei_from_image(img, diameter_um=(30, 60), pixel_size=1.0)


@pytest.mark.parametrize("bad", [np.zeros((32, 32)), np.full((8, 8), 3.0), np.zeros((0, 5))])
def test_nuclei_bad_images(bad):
    with pytest.raises(ValueError, match="constant|empty"):
        markers.nuclei_from_image(bad)


def test_nuclei_specks_only_finds_nothing():
    specks = np.zeros((64, 64))
    specks[10, 10] = specks[40, 50] = specks[30, 20] = 1.0  # hot pixels, no nucleus
    with pytest.raises(ValueError, match="widen `diameter_um`"):
        markers.nuclei_from_image(specks, diameter_um=(6, 30), pixel_size=0.8)


def test_nuclei_bad_options():
    img = _two_discs()
    with pytest.raises(ValueError, match="threshold"):
        markers.nuclei_from_image(img, threshold="triangle")
    with pytest.raises(ValueError, match="declump"):
        markers.nuclei_from_image(img, declump="log")
    with pytest.raises(ValueError, match="min < max"):
        markers.nuclei_from_image(img, diameter_um=(10, 5))


def test_markers_from_labels_matches_center_of_mass():
    rng = np.random.default_rng(1)
    lab = rng.integers(0, 6, (40, 50))
    lab[lab == 3] = 0  # a gap in the numbering
    got = markers.markers_from_labels(lab)
    want = np.array(ndi.center_of_mass(np.ones_like(lab), lab, [1, 2, 4, 5]))
    assert got.shape == (4, 2)
    assert np.allclose(got, want)
    assert markers.markers_from_labels(np.zeros((4, 4), int)).shape == (0, 2)
    with pytest.raises(ValueError, match="integer"):
        markers.markers_from_labels(np.zeros((4, 4)))


def test_detect_blobs_positions_and_errors():
    yy, xx = np.mgrid[:80, :80]
    img = sum(np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * 4.0 ** 2))
              for r, c in [(20, 20), (20, 60), (60, 40)])
    for method in ("dog", "doh"):
        found = markers.detect_blobs(img, method, pixel_size=1.0, diameter_um=(6, 20))
        assert np.allclose(found, [[20, 20], [20, 60], [60, 40]], atol=1.5), method
    with pytest.raises(ValueError, match="dog"):
        markers.detect_blobs(img, "log")
    with pytest.raises(ValueError, match="constant"):
        markers.detect_blobs(np.ones((20, 20)))


def test_match_exact_cases():
    t = np.array([[0.0, 0.0], [0.0, 40.0], [0.0, 100.0]])
    r = markers.match_markers(t + [1.0, 0.0], t, pixel_size=1.0)
    assert (r.tp, r.fn, r.fp, r.recall, r.precision) == (3, 0, 0, 1.0, 1.0)
    assert np.allclose(r.distances_um, 1.0)
    # beyond the pairing distance: rejected; exactly at it: accepted
    r = markers.match_markers([[0.0, 15.0], [0.0, 140.0]], [[0.0, 0.0], [0.0, 120.0]],
                              max_distance_um=15, pixel_size=1.0)
    assert (r.tp, r.fn, r.fp) == (1, 1, 1)
    assert r.pairs.tolist() == [[0, 0]]
    # coincident points pair (zero distance)
    assert markers.match_markers([[5.0, 5.0]], [[5.0, 5.0]]).tp == 1
    # pixel size converts µm to px: 10 px apart = 8 µm at 0.8 µm/px
    assert markers.match_markers([[0, 10]], [[0, 0]], max_distance_um=7.9).tp == 0
    assert markers.match_markers([[0, 10]], [[0, 0]], max_distance_um=8.1).tp == 1


def test_match_ties_one_true_two_found():
    r = markers.match_markers([[0.0, -3.0], [0.0, 3.0]], [[0.0, 0.0]], pixel_size=1.0)
    assert (r.tp, r.fn, r.fp) == (1, 0, 1)
    assert r.recall == 1.0 and r.precision == 0.5 and r.fp_rate == 0.5
    assert r.fp_per_true == 1.0


def test_match_is_optimal_not_greedy():
    # greedy nearest-first pairs f0-t0 (4 px) and leaves f1 alone; optimum pairs both
    found = [[0.0, 0.0], [0.0, 8.5]]
    true = [[0.0, 4.0], [0.0, -5.0]]
    r = markers.match_markers(found, true, max_distance_um=6, pixel_size=1.0)
    assert r.tp == 2
    assert sorted(r.pairs.tolist()) == [[0, 1], [1, 0]]


def test_match_empty_inputs():
    t = np.array([[1.0, 1.0], [20.0, 20.0]])
    r = markers.match_markers(np.zeros((0, 2)), t)
    assert (r.tp, r.fn, r.fp, r.recall, r.fn_rate) == (0, 2, 0, 0.0, 1.0)
    assert np.isnan(r.precision) and np.isnan(r.fp_rate)
    r = markers.match_markers(t, [])
    assert (r.tp, r.fn, r.fp, r.precision, r.fp_rate) == (0, 0, 2, 0.0, 1.0)
    assert np.isnan(r.recall) and np.isnan(r.fn_rate)
    r = markers.match_markers([], [])
    assert (r.tp, r.fn, r.fp) == (0, 0, 0)
    frame = r.as_frame("empty")
    assert frame.index.tolist() == ["empty"] and frame.loc["empty", "tp"] == 0
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        markers.match_markers(np.zeros((3, 3)), t)


def test_match_large_equals_dense_assignment():
    rng = np.random.default_rng(3)
    true = rng.uniform(0, 400, (600, 2))
    found = np.vstack([true[:560] + rng.normal(0, 6, (560, 2)), rng.uniform(0, 400, (60, 2))])
    radius_px = 15 / 0.8
    r = markers.match_markers(found, true)
    d = cdist(found, true)
    big = 1e6
    cost = np.where(d <= radius_px, d, big)
    rows, cols = linear_sum_assignment(cost)
    ok = cost[rows, cols] < big
    assert r.tp == ok.sum()
    assert np.isclose(r.distances_um.sum(), d[rows[ok], cols[ok]].sum() * 0.8)
    assert len(np.unique(r.pairs[:, 0])) == r.tp == len(np.unique(r.pairs[:, 1]))
    table = r.as_frame()
    assert {"recall", "precision", "fn_rate", "fp_rate"} <= set(table.columns)
    assert np.isclose(table["recall"].iloc[0] + table["fn_rate"].iloc[0], 1.0)
