"""Cached runs, the experiment functions and the paper-vs-ours conclusions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cellcutter_nb import config
from cellcutter_nb.experiments import model_cache, paper, report

PAPER = config.get_preset("paper")
TINY = config.get_profile("smoke").replace(field_size=128, max_epochs=1, steps_per_epoch=1,
                                           n_replicates=2)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.mark.slow
def test_fit_caches_and_reloads_the_same_run(cache):
    a = model_cache.fit(TINY, PAPER, 0, ("fl", "nuc"), cache_dir=cache)
    assert (cache / "runs" / a.key / "model.keras").exists()
    b = model_cache.fit(TINY, PAPER, 0, ("fl", "nuc"), cache_dir=cache)
    assert b.key == a.key and b.scores == a.scores
    np.testing.assert_array_equal(a.labels, b.labels)
    pd.testing.assert_frame_equal(a.cells, b.cells, check_dtype=False)
    # the reloaded model gives the cached segmentation again
    from cellcutter_nb.core.integrate import predict_field

    rep = model_cache.replicate(TINY, PAPER, 0)
    again = predict_field(b.model(), rep.field, ("fl", "nuc"), PAPER, markers=b.markers)
    np.testing.assert_array_equal(again, a.labels)


def test_cache_key_separates_what_shapes_a_run():
    keys = {model_cache.run_key(TINY, config.get_preset("paper"), i, c, m, s)
            for i in (0, 1) for c in (("fl",), ("bf",)) for m in (True, False) for s in (0, 1)}
    assert len(keys) == 16
    p = config.get_preset("paper")
    base = model_cache.run_key(TINY, p, 0, ("fl",), True, 0)
    assert model_cache.run_key(TINY, p.replace(learning_rate=0.001), 0, ("fl",), True, 0) != base
    assert model_cache.run_key(TINY, p, 0, ("fl",), True, 0, markers=np.zeros((3, 2))) != base
    # what shapes the run changes the key; the nucleus settings and replicate count do not
    assert model_cache.run_key(TINY.replace(max_epochs=TINY.max_epochs + 1), p, 0, ("fl",), True,
                        0) != base
    assert model_cache.run_key(TINY.replace(train_area=96), p, 0, ("fl",), True, 0) != base
    same = TINY.replace(nucleus_max_steps=7, nucleus_crop=32, n_replicates=5, name="other")
    assert model_cache.run_key(same, p, 0, ("fl",), True, 0) == base


def test_replicates_differ_and_are_deterministic():
    a, b = model_cache.replicate(TINY, PAPER, 0), model_cache.replicate(TINY, PAPER, 1)
    assert not np.array_equal(a.field["fl"], b.field["fl"])
    model_cache._replicate.cache_clear()
    np.testing.assert_array_equal(model_cache.replicate(TINY, PAPER, 0).field["fl"],
                                  a.field["fl"])
    assert a.mask_for(("bf",)) is a.bf_mask and a.mask_for(("fl", "bf")) is a.fl_mask
    with pytest.raises(ValueError, match="outside the profile's 2 replicates"):
        model_cache.replicate(TINY, PAPER, 2)


@pytest.mark.slow
def test_table1_and_views_share_the_grid(cache):
    combos = [("fl",), ("bf",)]
    t = paper.table1(TINY, combinations=combos, cache_dir=cache)
    cnn = t[t["method"].str.startswith("CNN")]
    assert len(cnn) == 2 * 2 * 2  # combinations × masks × replicates
    assert set(t["method"]) == {"CNN w/ mask", "CNN w/o mask", "position only", "CellProfiler",
                                "CellProfiler (same mask)"}
    assert t[["miou", "ap50", "f1"]].apply(lambda c: c.between(0, 1).all()).all()
    traces = paper.training_traces(TINY, combinations=combos, cache_dir=cache)
    assert set(traces["combination"]) == {"FL", "BF"} and traces["miou"].between(0, 1).all()
    edge = paper.mask_edge_effect(TINY, combinations=combos, cache_dir=cache)
    np.testing.assert_allclose(edge["gain"], edge["iou_with"] - edge["iou_without"])
    assert set(edge["position"]) <= {"edge", "interior"}
    unseen = paper.unseen_image(TINY, combinations=combos, cache_dir=cache)
    pairs = sorted(zip(unseen["trained_on"], unseen["applied_to"], strict=True))
    assert pairs == [(0, 1), (0, 1), (1, 0), (1, 0)]
    assert unseen[["agreement", "miou_unseen", "miou_own"]].apply(
        lambda c: c.between(0, 1).all()).all()


def test_unseen_image_needs_two_replicates():
    with pytest.raises(ValueError, match="at least 2 replicates"):
        paper.unseen_image(TINY.replace(n_replicates=1), cache_dir=None)


def test_bad_combination_is_refused():
    with pytest.raises(ValueError, match="combinations must be"):
        paper.table1(TINY, combinations=[("dapi",)], cache_dir=None)


def test_edge_cells_finds_the_enclosed_cell():
    lab = np.zeros((9, 9), int)
    lab[1:8, 1:8] = np.repeat(np.repeat(np.arange(1, 10).reshape(3, 3), 3, 0), 3, 1)[1:8, 1:8]
    assert 5 not in paper.edge_cells(lab).tolist()
    assert set(paper.edge_cells(lab).tolist()) == {1, 2, 3, 4, 6, 7, 8, 9}


def _table(with_mask, without, cp=0.5, position=0.5):
    rows = []
    for r, (w, wo) in enumerate(zip(with_mask, without, strict=True)):
        for c in ("FL", "FL+Nuc", "BF", "BF+Nuc"):
            rows += [{"method": "CNN w/ mask", "combination": c, "replicate": r, "miou": w},
                     {"method": "CNN w/o mask", "combination": c, "replicate": r, "miou": wo}]
        rows += [{"method": m, "combination": "FL", "replicate": r, "miou": v}
                 for m, v in (("CellProfiler", cp), ("CellProfiler (same mask)", cp),
                              ("position only", position))]
    return pd.DataFrame(rows)


def test_conclusions_follow_the_data():
    held = report.table1_conclusions(_table([0.80, 0.82, 0.81], [0.70, 0.71, 0.72]))
    c = held.set_index("claim")
    assert c.loc["mask ≥ no mask", "verdict"] == "held (significant)"
    assert c.loc["mask ≥ no mask", "ours"] == pytest.approx(0.1, abs=1e-9)
    assert c.loc["CNN > CellProfiler", "verdict"] == "held (significant)"
    flipped = report.table1_conclusions(_table([0.70, 0.71, 0.72], [0.80, 0.82, 0.81],
                                               cp=0.9, position=0.9)).set_index("claim")
    assert flipped.loc["mask ≥ no mask", "verdict"] == "not held (significant)"
    assert flipped.loc["CNN > position only", "verdict"] == "not held (significant)"
    assert c.loc["mask ≥ no mask", "paper"] == pytest.approx(
        np.mean([0.779 - 0.773, 0.809 - 0.789, 0.710 - 0.717, 0.766 - 0.761]))


def test_report_sections_from_tables(tmp_path):
    _table([0.8, 0.81], [0.7, 0.7]).assign(std=0.1, ap50=0.5, f1=0.6, n_cells=10).to_csv(
        tmp_path / "05_table1.csv", index=False)
    text = "\n".join(report.sections(tmp_path))
    assert "(paper 0.779 ± 0.026)" in text and "mask ≥ no mask" in text
    assert report.sections(tmp_path / "none") == []
