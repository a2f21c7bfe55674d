"""Synthetic nucleus images (Fig. 5): target, training stop rule, tiled inference, folds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from cellcutter_nb import config
from cellcutter_nb.core import nucleus
from cellcutter_nb.core.nucleus import downsample, nucleus_target, train_nucleus_model
from cellcutter_nb.core.nucleus_inference import predict_tiled
from cellcutter_nb.experiments import predicted_markers
from cellcutter_nb.experiments.predicted_markers import Fold, calibrate_threshold, cv_folds

SMOKE = config.get_profile("smoke")


@pytest.fixture(scope="module")
def tiny_unet():
    from cellcutter_nb.core.model import build_unet

    return build_unet(1, width=4, depth=2, patch_size=None, seed=3)


def _smooth_noise(shape, seed=0):
    img = ndi.gaussian_filter(np.random.default_rng(seed).normal(size=shape), 2.0)
    return ((img - img.mean()) / img.std()).astype(np.float32)


# --- target --------------------------------------------------------------------------------
def test_target_keeps_touching_nuclei_apart_and_isolated_ones_whole():
    lab = np.zeros((20, 30), int)
    lab[5:15, 3:10], lab[5:15, 10:17] = 1, 2  # touching along a vertical line
    lab[5:15, 21:28] = 3  # isolated
    target = nucleus_target(lab)
    assert ndi.label(target)[1] == 3
    assert target[lab == 3].all()  # an isolated nucleus keeps its outline
    assert not target[:, 9:11].any() and target[lab == 1].sum() == 60  # one column lost


def test_binned_target_keeps_touching_nuclei_apart():
    lab = np.zeros((40, 60), int)
    lab[10:30, 6:20], lab[10:30, 20:34] = 1, 2  # touching along a vertical line
    lab[10:30, 42:56] = 3
    for offset in (0, 1):  # the gap on a block boundary and inside a block
        shifted = np.roll(lab, offset, axis=1)
        target = nucleus_target(shifted, factor=2)
        assert target.shape == (20, 30) and target.dtype == bool
        assert ndi.label(target)[1] == 3
        # a binned nucleus covers its full-resolution area to within a block's rim
        assert abs(4 * target.sum() - nucleus_target(shifted).sum()) < 0.1 * (lab > 0).sum()


def test_downsample_means_blocks_and_fills_ragged_edges():
    img = np.arange(20.0).reshape(4, 5)
    out = downsample(img, 2)
    assert out.shape == (2, 3)
    assert out[0, 0] == img[:2, :2].mean() and out[1, 1] == img[2:, 2:4].mean()
    assert out[0, 2] == img[:2, 4].mean()  # the last column repeated to fill its block
    stack = np.stack([img, -img], axis=-1)  # channels are binned alike
    np.testing.assert_array_equal(downsample(stack, 2)[..., 1], -out)
    np.testing.assert_array_equal(downsample(img, 1), img)
    with pytest.raises(ValueError, match="factor >= 1"):
        downsample(img, 0)


def test_target_rejects_non_label_images():
    with pytest.raises(ValueError, match="integer label image"):
        nucleus_target(np.ones((4, 4)))
    with pytest.raises(ValueError, match="integer label image"):
        nucleus_target(-np.ones((4, 4), int))


# --- tiled inference -------------------------------------------------------------------------
def test_tiled_inference_equals_whole_image_away_from_borders_without_seams(tiny_unet):
    img = _smooth_noise((128, 128))
    logits = np.asarray(tiny_unet.predict_on_batch(img[None, ..., None]))[0, ..., 0]
    whole = 1 / (1 + np.exp(-logits))
    tiled = predict_tiled(tiny_unet, img, tile=96, overlap=32, batch_size=3)  # tiles every 32 px
    assert tiled.shape == img.shape and whole.std() > 1e-3
    inner = (slice(32, -32),) * 2  # farther than the overlap from the image border
    np.testing.assert_allclose(tiled[inner], whole[inner], atol=1e-5)
    # no seam anywhere (image borders included): the steps across tile boundaries are
    # no larger than the steps between any other neighbouring pixels
    bounds = [31, 63, 95]  # diff index b-1 holds the step from pixel b-1 to pixel b
    for axis in (0, 1):
        steps = np.abs(np.diff(tiled, axis=axis))
        at = np.take(steps, bounds, axis=axis)
        elsewhere = np.delete(steps, bounds, axis=axis)
        assert at.max() <= elsewhere.max()


def test_tiled_inference_handles_odd_shapes_and_rejects_misaligned_tiles(tiny_unet):
    img = _smooth_noise((37, 53))
    out = predict_tiled(tiny_unet, img, tile=32, overlap=8)
    assert out.shape == (37, 53) and np.isfinite(out).all() and 0 <= out.min() <= out.max() <= 1
    with pytest.raises(ValueError, match="multiples of 4"):
        predict_tiled(tiny_unet, img, tile=30, overlap=8)
    with pytest.raises(ValueError, match="tile > 2"):
        predict_tiled(tiny_unet, img, tile=16, overlap=8)
    with pytest.raises(ValueError, match="NaN"):
        predict_tiled(tiny_unet, np.full((8, 8), np.nan), tile=16, overlap=4)


# --- training and the stop rule ----------------------------------------------------------------
@pytest.mark.slow
def test_stop_rule_loss_reached_and_impossible():
    img = _smooth_noise((64, 64))
    easy = np.zeros((64, 64), bool)  # all background: the loss falls fast
    res = train_nucleus_model([img], [easy], SMOKE, max_steps=60, crop=32, batch=2,
                              check_every=2, stop_loss=0.3)
    assert res.stopped == "loss" and len(res.history) < 60
    assert res.history["check_loss"].dropna().iloc[-1] <= 0.3
    res = train_nucleus_model([img], [img > 1], SMOKE, max_steps=4, crop=32, batch=2,
                              check_every=2, stop_loss=0.0)
    assert res.stopped == "max_steps" and len(res.history) == 4
    assert (res.history["check_loss"].dropna() > 0).all()


def test_mirrored_training_fields_allow_fields_smaller_than_the_crop():
    img = _smooth_noise((24, 24))
    with pytest.raises(ValueError, match="smaller than the 32-px crop"):
        train_nucleus_model([img], [img > 1], SMOKE, max_steps=1, crop=32, batch=2)
    res = train_nucleus_model([img], [img > 1], SMOKE, max_steps=1, crop=32, batch=2,
                              mirror=4)
    assert len(res.history) == 1 and np.isfinite(res.history["loss"]).all()
    with pytest.raises(ValueError, match="mirror"):
        train_nucleus_model([img], [img > 1], SMOKE, crop=16, mirror=-1)


def test_reused_trainer_starts_afresh_and_never_changes_returned_models():
    img = _smooth_noise((64, 64))
    kw = dict(max_steps=3, crop=32, batch=2, check_every=1, stop_loss=0.0, seed=4)
    first = train_nucleus_model([img], [img > 0.5], SMOKE, **kw)
    kept = [w.copy() for w in first.model.get_weights()]
    other = train_nucleus_model([img], [img < -0.5], SMOKE, **kw)  # same trainer
    again = train_nucleus_model([img], [img > 0.5], SMOKE, **kw)
    assert other.model is not first.model and again.model is not first.model
    for w, k in zip(first.model.get_weights(), kept, strict=True):
        np.testing.assert_array_equal(w, k)  # later trainings leave it alone
    # weights, Adam's moments and step count were reset: the same run repeats
    np.testing.assert_allclose(again.history["loss"], first.history["loss"], rtol=1e-4)
    assert not np.allclose(other.history["loss"], first.history["loss"], rtol=1e-2)
    for w, k in zip(again.model.get_weights(), kept, strict=True):
        np.testing.assert_allclose(w, k, rtol=1e-3, atol=1e-5)


def test_training_rejects_bad_inputs():
    img = _smooth_noise((64, 64))
    with pytest.raises(ValueError, match="as many targets"):
        train_nucleus_model([img], [], SMOKE)
    with pytest.raises(ValueError, match="shape"):
        train_nucleus_model([img], [np.zeros((60, 64))], SMOKE, crop=32)
    with pytest.raises(ValueError, match="smaller than the 128-px crop"):
        train_nucleus_model([img], [img > 0], SMOKE, crop=128)
    with pytest.raises(ValueError, match="multiple of 4"):
        train_nucleus_model([img], [img > 0], SMOKE, crop=30)
    with pytest.raises(ValueError, match="learning_rate"):
        train_nucleus_model([img], [img > 0], SMOKE, crop=32, learning_rate=0)
    with pytest.raises(ValueError, match="modality"):
        nucleus.normalised_input(None, "nuc")
    with pytest.raises(ValueError, match="one reference"):
        calibrate_threshold([img], [])


# --- cross-validation ----------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3, 5])
def test_folds_never_train_on_the_scored_field(n):
    folds = cv_folds(n)
    assert sorted(f.test for f in folds) == list(range(n))  # every field scored once
    for f in folds:
        assert f.test not in f.train and set(f.train) | {f.test} == set(range(n))


def test_fold_and_folds_reject_leaks():
    with pytest.raises(ValueError, match="never trains on the field it scores"):
        Fold(0, (0, 1))
    with pytest.raises(ValueError, match="never trains"):
        Fold(0, ())
    with pytest.raises(ValueError, match="at least 2 fields"):
        cv_folds(1)


@pytest.mark.slow
def test_nucleus_fold_trains_only_on_other_fields_and_caches(monkeypatch, tmp_path):
    from cellcutter_nb.experiments.model_cache import replicate

    prof = SMOKE.replace(field_size=160, n_replicates=3, nucleus_max_steps=2, nucleus_crop=32)
    pre = config.get_preset("paper")
    inputs = [nucleus.normalised_input(replicate(prof, pre, i).field, "fl",
                                       prof.nucleus_downsample) for i in range(3)]
    seen = []
    real_train = nucleus.train_nucleus_model

    def spy(images, targets, *args, **kwargs):
        seen.extend(images)
        return real_train(images, targets, *args, **kwargs)

    monkeypatch.setattr(predicted_markers, "train_nucleus_model", spy)
    fold = cv_folds(3)[1]
    prob, meta = predicted_markers.nucleus_fold(prof, pre, "fl", fold, cache_dir=tmp_path)
    assert len(seen) == 2 and not any(np.array_equal(x, inputs[1]) for x in seen)
    assert all(any(np.array_equal(x, inputs[i]) for x in seen) for i in fold.train)
    assert prob.shape == (160, 160) and meta["stopped"] == "max_steps" and meta["test"] == 1
    assert set(meta["thresholds"]) == {"dog", "doh"}

    def fail(*args, **kwargs):
        raise AssertionError("a cached fold must not train again")

    monkeypatch.setattr(predicted_markers, "train_nucleus_model", fail)
    again, meta2 = predicted_markers.nucleus_fold(prof, pre, "fl", fold, cache_dir=tmp_path)
    np.testing.assert_array_equal(again, prob)
    assert meta2["thresholds"] == meta["thresholds"] and len(meta2["history"]) == 2


@pytest.mark.slow
def test_experiment_tables_in_range():
    prof = SMOKE.replace(field_size=128, n_replicates=2, nucleus_max_steps=3, nucleus_crop=32,
                         max_epochs=1, steps_per_epoch=1)
    res = predicted_markers.synthetic_marker_experiment(prof, "paper", cache_dir=None, segment=[0],
                                              modalities=("fl",))
    r = res.rates
    assert set(r["modality"]) == {"FL"} and set(r["method"]) == {"dog", "doh"}
    assert set(r["fold"]) == {0, 1} and (r["train"] == (1 - r["fold"]).astype(str)).all()
    assert r[["fn_rate", "fp_rate"]].apply(lambda c: c.between(0, 1).all()).all()
    m = res.miou
    assert set(m["fold"]) == {0} and set(m["markers"]) == {"synthetic", "real"}
    assert m[["miou", "miou_common", "miou_all"]].apply(lambda c: c.between(0, 1).all()).all()
    f = res.fold("fl", 0)
    assert f.probability.shape == (128, 128) and f.fold.train == (1,)
    with pytest.raises(ValueError, match="No fold"):
        res.fold("bf", 0)
    with pytest.raises(ValueError, match="modalities"):
        predicted_markers.synthetic_marker_experiment(prof, modalities=("nuc",))
