"""Tests of cellcutter_nb.prep.baseline: CellProfiler's secondary-object methods."""

from __future__ import annotations

import numpy as np
import pytest

from cellcutter_nb.data.field import Field
from cellcutter_nb.data.synth import make_field
from cellcutter_nb.prep import baseline
from cellcutter_nb.prep.markers import nuclei_from_image


@pytest.fixture(scope="module")
def field():
    return make_field(seed=0, shape=(640, 640))


@pytest.fixture(scope="module")
def result(field):
    return baseline.cellprofiler_baseline(field)


def test_all_methods_scored_and_best_named(field, result):
    assert set(result.labels) == set(baseline.METHODS)
    scores = result.scores
    assert list(scores.index) == list(baseline.METHODS)
    assert scores["miou"].between(0, 1).all() and (scores["n"] == field.n_cells).all()
    assert result.best == scores["miou"].idxmax()
    # the image-guided propagation beats a blind expansion of the nuclei by a margin
    assert scores.loc["propagation", "miou"] > scores.loc["distance_n", "miou"] + 0.03
    assert scores["miou"].max() > 0.6


def test_label_k_grows_from_nucleus_k(result):
    nuc = result.nuclei
    assert len(result.markers) == nuc.max()
    for name, lab in result.labels.items():
        assert lab.dtype == np.int32 and lab.max() <= nuc.max()
        inside = nuc > 0
        if name != "watershed_image":  # CellProfiler's watershed may lose tiny seeds
            assert np.array_equal(lab[inside], nuc[inside]), name
        # every cell is one connected object containing its own nucleus pixels
        assert np.isin(np.unique(lab[inside]), np.arange(1, nuc.max() + 1)).all()


def test_image_methods_stay_in_foreground(field, result):
    for name in ("propagation", "watershed_image", "watershed_gradient"):
        raw = baseline.secondary_objects(field["fl"], result.nuclei, name,
                                         foreground=result.foreground, fill_holes=False)
        assert not ((raw > 0) & ~result.foreground & (result.nuclei == 0)).any(), name
        filled = result.labels[name]  # hole filling only adds pixels, never relabels
        assert np.array_equal(filled[raw > 0], raw[raw > 0]), name
        assert (filled > 0).sum() >= (raw > 0).sum()


def test_secondary_objects_hand_made():
    # two cells: bright bodies separated by a dark gap; nuclei in each
    img = np.zeros((30, 60))
    img[5:25, 5:28] = 1.0
    img[5:25, 32:55] = 1.0
    nuc = np.zeros((30, 60), np.int32)
    nuc[14:16, 14:16] = 1
    nuc[14:16, 44:46] = 2
    for method in ("propagation", "watershed_image", "watershed_gradient"):
        lab = baseline.secondary_objects(img, nuc, method, foreground=img > 0.5)
        assert (lab[5:25, 5:28] == 1).all() and (lab[5:25, 32:55] == 2).all(), method
        assert (lab[img == 0] == 0).all(), method
    far = baseline.secondary_objects(img, nuc, "distance_n", distance_px=100)
    assert (far > 0).all() and (far[:, :29] == 1).all() and (far[:, 31:] == 2).all()


def test_propagation_regularization_changes_result(field, result):
    voronoi_like = baseline.secondary_objects(field["fl"], result.nuclei, "propagation",
                                              foreground=result.foreground,
                                              regularization=100.0)
    assert not np.array_equal(voronoi_like, result.labels["propagation"])


def test_no_ground_truth_no_scores(field):
    f = Field({"fl": field["fl"][:160, :160], "nuc": field["nuc"][:160, :160]})
    res = baseline.cellprofiler_baseline(f, methods=("distance_n",))
    assert res.scores is None and res.best is None
    assert set(res.labels) == {"distance_n"}


def test_given_nuclei_with_gaps_are_renumbered(field):
    f = Field({"fl": field["fl"][:200, :200]}, labels=field.labels[:200, :200])
    nuc = nuclei_from_image(field["nuc"][:200, :200]) * 3  # labels 3, 6, 9, ...
    res = baseline.cellprofiler_baseline(f, nuclei_labels=nuc, methods=("distance_n",))
    assert res.nuclei.max() == len(np.unique(nuc)) - 1
    assert res.scores.loc["distance_n", "miou"] > 0.3


def test_errors(field):
    f = Field({"fl": field["fl"][:64, :64]})
    with pytest.raises(ValueError, match="nuclei_labels"):
        baseline.cellprofiler_baseline(f)
    with pytest.raises(ValueError, match="segment nuclei first"):
        baseline.cellprofiler_baseline(f, nuclei_labels=np.zeros((64, 64), int))
    with pytest.raises(ValueError, match="no 'bf' channel"):
        baseline.cellprofiler_baseline(f, channel="bf")
    nuc = np.zeros((64, 64), int)
    nuc[30:34, 30:34] = 1
    with pytest.raises(ValueError, match="Unknown method"):
        baseline.cellprofiler_baseline(f, nuclei_labels=nuc, methods=("magic",))
    with pytest.raises(ValueError, match="foreground"):
        baseline.secondary_objects(f["fl"], nuc, "propagation", foreground="yen")
    with pytest.raises(ValueError, match="constant"):
        baseline.secondary_objects(np.ones((64, 64)), nuc)
    with pytest.raises(ValueError, match="No nucleus"):
        baseline.secondary_objects(f["fl"], np.zeros((64, 64), int))
