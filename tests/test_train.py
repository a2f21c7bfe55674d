"""Unsupervised training: augmentation geometry, determinism, checkpoints, stop rule."""

from __future__ import annotations

import numpy as np
import pytest

from cellcutter_nb import config
from cellcutter_nb.core.batches import area_batches, transform_batch
from cellcutter_nb.core.evaluate import patch_targets, recalibrate_batchnorm
from cellcutter_nb.core.loss import cutter_loss
from cellcutter_nb.core.model import build_unet
from cellcutter_nb.core.patches import extract_patches
from cellcutter_nb.core.supervised import train_supervised
from cellcutter_nb.core.train import _stable, train
from cellcutter_nb.data.field import Field
from cellcutter_nb.data.synth import make_field

PAPER = config.get_preset("paper")
TINY = config.get_profile("smoke").replace(max_epochs=2, steps_per_epoch=1, unet_width=4,
                                           unet_depth=2, max_patches_per_area=64)


@pytest.fixture(scope="module")
def small_field():
    return make_field(seed=3, shape=160)


def _batch(field):
    ps = extract_patches(field, ("fl",), PAPER)
    return area_batches(ps, field.mask, 640, 64, rng=1)[0]


@pytest.mark.parametrize("t", range(8))
def test_transform_is_equivalent_to_inverting_outputs(small_field, t):
    b = _batch(small_field)
    # a pointwise "network" commutes with flips/transposes: output = first channel
    ref = cutter_loss(b.patches[..., 0] * 3, b.offsets, b.valid, b.mask, PAPER.loss_weights())
    tb = transform_batch(b, t)
    got = cutter_loss(tb.patches[..., 0] * 3, tb.offsets, tb.valid, tb.mask,
                      PAPER.loss_weights())
    for r, g in zip(ref, got, strict=True):
        assert float(g) == pytest.approx(float(r), rel=1e-5, abs=1e-3)
    if t:
        assert not np.array_equal(tb.patches, b.patches)


def test_transform_index_checked(small_field):
    with pytest.raises(ValueError, match="0..7"):
        transform_batch(_batch(small_field), 8)


def test_patch_targets_pick_the_markers_cell():
    labels = np.zeros((100, 100), np.uint32)
    labels[10:30, 10:30] = 1
    labels[30:50, 10:30] = 2
    f = Field({"fl": np.ones((100, 100))}, labels=labels, markers=[[20.0, 20.0], [40.0, 20.0]])
    ps = extract_patches(f, ("fl",), PAPER)
    t = patch_targets(labels, ps)
    assert t.shape == (2, 64, 64)
    assert t[0].sum() == 400 and t[1].sum() == 400
    # marker 0 sits at patch centre (32, 32); its cell spans rows 10..29 → patch rows 22..41
    assert t[0, 22:42, 22:42].all() and not t[0, 42:].any()


@pytest.mark.slow
def test_training_is_repeatable_and_records_fig2_traces(small_field):
    a = train(small_field, ("fl", "nuc"), "paper", TINY, mask=small_field.mask, progress=False)
    b = train(small_field, ("fl", "nuc"), "paper", TINY, mask=small_field.mask, progress=False)
    assert a.history["loss"].tolist() == b.history["loss"].tolist()
    for col in ("loss", "area", "overlap", "mask", "patches_seen", "miou", "patch_mean_iou"):
        assert col in a.history
    h = a.history
    assert np.allclose(h["loss"], h["area"] + h["overlap"] + h["mask"], rtol=1e-4)
    assert h["miou"].between(0, 1).all() and a.stopped in ("stable", "max_epochs")
    assert a.patches_per_second > 0


def test_batches_are_exact_where_padding_changes_nothing(small_field):
    # fast (GroupNorm) in a step without XLA: each area's patches alone; paper (BatchNorm,
    # whose statistics count the filled padding): padded unless exact_batches=True
    def slots(preset, profile):
        seen = []
        train(small_field, ("fl",), preset, profile, mask=small_field.mask, progress=False,
              recalibrate_bn=False, on_step=seen.append)
        return [(len(b.valid), b.n_valid) for b in seen]

    one = TINY.replace(max_epochs=1)
    assert all(n == v for n, v in slots("fast", one))
    assert all(n % one.pad_multiple == 0 for n, _ in slots("paper", one))
    assert all(n == v for n, v in slots("paper", one.replace(exact_batches=True)))


def test_precision_builds_the_network_under_its_policy(small_field):
    r = train(small_field, ("fl",), "paper", TINY.replace(max_epochs=1, precision="mixed_bfloat16"),
              mask=small_field.mask, progress=False)
    assert r.model.dtype_policy.name == "mixed_bfloat16"
    assert np.isfinite(r.history["loss"]).all()
    assert train(small_field, ("fl",), "paper", TINY.replace(max_epochs=1), progress=False
                 ).model.dtype_policy.name == "float32"  # the global policy is left as it was


def test_without_mask_the_mask_term_is_zero(small_field):
    r = train(small_field, ("fl",), "paper", TINY.replace(max_epochs=1), progress=False)
    assert (r.history["mask"] == 0).all()


@pytest.mark.slow
def test_checkpoint_resume(small_field, tmp_path):
    one = TINY.replace(max_epochs=1)
    first = train(small_field, ("fl",), "paper", one, mask=small_field.mask,
                  checkpoint_dir=tmp_path, progress=False)
    assert (tmp_path / "checkpoint.keras").exists()
    resumed = train(small_field, ("fl",), "paper", TINY, mask=small_field.mask,
                    checkpoint_dir=tmp_path, progress=False)
    assert resumed.history["epoch"].tolist() == [0, 1]
    assert resumed.history["loss"].iloc[0] == first.history["loss"].iloc[0]
    full = train(small_field, ("fl",), "paper", TINY, mask=small_field.mask, progress=False)
    assert resumed.history["loss"].iloc[1] == pytest.approx(full.history["loss"].iloc[1],
                                                            rel=1e-4)


def test_stop_rule():
    assert not _stable([10, 5, 4], window=5, tol=0.01)
    assert _stable([10, 5, 4, 4.001, 4.0, 4.002, 4.001, 4.0], window=5, tol=0.01)
    assert not _stable([4, 4.5, 4, 4.5, 4], window=5, tol=0.01)


def test_recalibrate_batchnorm_moves_statistics():
    unet = build_unet(2, width=4, depth=2, patch_size=16, seed=0)
    x = np.random.default_rng(0).normal(3.0, 2.0, (32, 16, 16, 2)).astype(np.float32)
    bn = next(layer for layer in unet.layers if "bn" in layer.name)
    before = np.asarray(bn.moving_mean).copy()
    recalibrate_batchnorm(unet, x, batch_size=16, n_batches=2)
    assert not np.allclose(np.asarray(bn.moving_mean), before)
    assert bn.momentum == pytest.approx(0.99)


def test_recalibrate_batchnorm_one_pass_matches_training_mode():
    # with no more patches than one batch, the moving statistics become those of the
    # whole set: inference on that set equals the training-mode forward pass
    unet = build_unet(2, width=4, depth=2, patch_size=16, seed=0)
    x = np.random.default_rng(1).normal(3.0, 2.0, (24, 16, 16, 2)).astype(np.float32)
    returned = recalibrate_batchnorm(unet, x, batch_size=32)
    logits = np.asarray(unet(x, training=False))[..., 0]
    np.testing.assert_allclose(returned, logits, atol=1e-4)  # the pass's logits
    np.testing.assert_allclose(np.asarray(unet(x, training=True))[..., 0], logits, atol=1e-4)
    # more patches than one batch: random batches, no logits returned
    assert recalibrate_batchnorm(unet, x, batch_size=16, n_batches=2) is None


@pytest.mark.slow
def test_supervised_upper_bound_runs(small_field):
    r = train_supervised(small_field, ("fl",), "paper", TINY, epochs=1, batch_size=8)
    assert r.history["miou"].between(0, 1).all() and len(r.history) == 1


def test_bad_inputs(small_field):
    with pytest.raises(ValueError, match="no foreground"):
        train(small_field, ("fl",), "paper", TINY, mask=np.zeros(small_field.shape, bool))
    with pytest.raises(ValueError, match="shape"):
        train(small_field, ("fl",), "paper", TINY, mask=np.ones((5, 5), bool))
    with pytest.raises(ValueError, match="No markers"):
        train(small_field, ("fl",), "paper", TINY, markers=np.zeros((0, 2)))


@pytest.mark.slow
def test_stale_checkpoint_folder_does_not_skip_the_warm_start(small_field, tmp_path,
                                                               monkeypatch):
    # a checkpoint of another run (different key) is ignored: training starts afresh, and
    # a fresh start includes the warm start
    import cellcutter_nb.core.train

    one = TINY.replace(max_epochs=1)
    train(small_field, ("fl",), "paper", one, checkpoint_dir=tmp_path, progress=False)
    calls = []
    monkeypatch.setattr(cellcutter_nb.core.train, "warm_start",
                        lambda *args, **kwargs: calls.append(args[3]))
    fresh = train(small_field, ("fl",), "paper", one, mask=small_field.mask,
                  warm_start_epochs=2, checkpoint_dir=tmp_path, progress=False)
    assert calls == [2]
    assert fresh.history["epoch"].tolist() == [0]
