"""Tests of cellcutter_nb.core.patches: geometry, normalisation, border handling, area batches."""

from __future__ import annotations

import numpy as np
import pytest

from cellcutter_nb import config
from cellcutter_nb.core.batches import area_batches
from cellcutter_nb.core.patches import (
    cut_patches,
    extract_patches,
    normalise_channels,
    patch_inside,
    position_disks,
)
from cellcutter_nb.data.field import Field
from cellcutter_nb.metrics import centre_pixels

K = 16


def _preset(name: str = "paper", **kw) -> config.Preset:
    return config.get_preset(name).replace(patch_size=K, position_sigma=3.0, **kw)


def _field(shape=(60, 80), n=12, seed=0) -> Field:
    rng = np.random.default_rng(seed)
    fl = rng.normal(5.0, 2.0, shape)
    nuc = rng.random(shape) * 100
    markers = np.column_stack([rng.uniform(0, shape[0] - 1, n), rng.uniform(0, shape[1] - 1, n)])
    mask = rng.random(shape) > 0.3
    return Field({"fl": fl, "nuc": nuc}, markers=markers, mask=mask)


def test_normalise_is_zscore_per_channel():
    f = _field()
    z = normalise_channels(f, ["nuc", "fl"])
    assert z.shape == (*f.shape, 2) and z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=(0, 1)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 1)), 1, atol=1e-5)
    ref = (f["nuc"] - f["nuc"].mean()) / f["nuc"].std()
    np.testing.assert_allclose(z[..., 0], ref, atol=1e-5)  # order follows the request


def test_constant_channel_becomes_zero():
    f = Field({"bf": np.full((10, 10), 7.0)})
    assert np.all(normalise_channels(f, ["bf"]) == 0)


def test_centre_rounds_half_up():
    m = np.array([[2.5, 3.49], [0.5, 7.51]])
    assert centre_pixels(m).tolist() == [[3, 3], [1, 8]]


def test_patches_match_naive_crop_including_border():
    f = _field()
    ps = extract_patches(f, ("fl", "nuc"), _preset())
    assert ps.patches.shape == (12, K, K, 3) and ps.patches.dtype == np.float32
    z = normalise_channels(f, ("fl", "nuc"))
    for i, (o, m) in enumerate(zip(ps.origins, f.markers, strict=True)):
        assert tuple(o) == tuple(np.floor(m + 0.5).astype(int) - K // 2)
        ref = np.zeros((K, K, 2), np.float32)
        for r in range(K):
            for c in range(K):
                rr, cc = o[0] + r, o[1] + c
                if 0 <= rr < f.shape[0] and 0 <= cc < f.shape[1]:
                    ref[r, c] = z[rr, cc]
        np.testing.assert_array_equal(ps.patches[i, ..., :2], ref)
    # the centre pixel of every patch is the marker's rounded pixel
    c = centre_pixels(f.markers)
    np.testing.assert_array_equal(ps.patches[:, K // 2, K // 2, 0], z[c[:, 0], c[:, 1], 0])


def test_position_disk_centred_subpixel_and_identical_for_integer_markers():
    d = position_disks(np.array([[10.3, 20.0], [5.0, 5.0], [7.0, 9.0]]), 32, 3.0)
    grid = np.arange(32)
    w = d[0] / d[0].sum()
    assert abs((w.sum(axis=1) * grid).sum() - (16 + 0.3)) < 1e-4
    assert abs((w.sum(axis=0) * grid).sum() - 16.0) < 1e-4
    np.testing.assert_array_equal(d[1], d[2])
    assert d[1].max() == d[1][16, 16] == 1.0
    assert abs(d[1][16, 19] - np.exp(-9 / 18)) < 1e-6  # exp(-r²/2σ²) at r = 3 = σ


def test_border_patches_kept_by_default_dropped_by_original_code():
    f = Field({"fl": np.arange(40 * 40, dtype=float).reshape(40, 40)},
              markers=[[1.0, 20.0], [20.0, 20.0], [20.0, 38.6]])
    kept = extract_patches(f, ["fl"], _preset("paper"))
    assert kept.marker_indices.tolist() == [0, 1, 2]
    # rows above the image are zero (= channel mean after normalisation), others not
    assert np.all(kept.patches[0, :K // 2 - 1, :, 0] == 0)
    assert np.all(kept.patches[0, K // 2 - 1:, :, 0] != 0)
    assert np.all(kept.patches[2, :, K // 2 + 1:, 0] == 0)  # col 39 is the last inside
    dropped = extract_patches(f, ["fl"], _preset("original_code"))
    assert dropped.marker_indices.tolist() == [1]
    np.testing.assert_array_equal(dropped.patches[0], kept.patches[1])
    assert extract_patches(f, ["fl"], _preset("paper"), drop_border=True).marker_indices.tolist() \
        == [1]
    assert patch_inside(f.markers, f.shape, K).tolist() == [False, True, False]


def test_extract_errors_are_clear():
    f = Field({"fl": np.ones((20, 20))})
    with pytest.raises(ValueError, match="no markers"):
        extract_patches(f, ["fl"], _preset())
    with pytest.raises(ValueError, match="not in this field"):
        extract_patches(f, ["bf"], _preset(), markers=[[5.0, 5.0]])


def test_cut_patches_single_channel_shape():
    p, o = cut_patches(np.zeros((9, 9, 1), np.float32), np.array([[4.0, 4.0]]), 4, 1.0)
    assert p.shape == (1, 4, 4, 2) and o.tolist() == [[2, 2]]


def _check_batches(ps, mask, batches, area, max_p):
    seen = []
    for b in batches:
        assert b.patches.shape == (max_p, K, K, ps.patches.shape[-1])
        assert b.mask.shape == (area + K, area + K) and b.mask.dtype == np.float32
        n = b.n_valid
        assert np.all(b.valid[:n] == 1) and np.all(b.valid[n:] == 0)
        assert np.all(b.marker_indices[n:] == -1) and np.all(b.patches[n:] == 0)
        assert np.all(b.offsets >= 0) and np.all(b.offsets[:n] < area)
        idx = b.marker_indices[:n]
        pos = np.searchsorted(ps.marker_indices, idx)
        np.testing.assert_array_equal(b.patches[:n], ps.patches[pos])
        # canvas geometry: canvas origin + offset = patch origin in the image
        np.testing.assert_array_equal(np.array(b.canvas_origin) + b.offsets[:n], ps.origins[pos])
        # mask canvas is the image mask at the right place, zero outside the image
        rr, cc = np.meshgrid(np.arange(area + K), np.arange(area + K), indexing="ij")
        ir, ic = rr + b.canvas_origin[0], cc + b.canvas_origin[1]
        inside = (ir >= 0) & (ir < mask.shape[0]) & (ic >= 0) & (ic < mask.shape[1])
        np.testing.assert_array_equal(b.mask[~inside], 0)
        np.testing.assert_array_equal(b.mask[inside], mask[ir[inside], ic[inside]])
        seen.extend(idx.tolist())
    assert sorted(seen) == ps.marker_indices.tolist()  # every patch exactly once


@pytest.mark.parametrize("seed", [None, 1, 2])
def test_area_batches_cover_every_patch_once_with_correct_canvas(seed):
    f = _field(shape=(70, 90), n=25, seed=3)
    ps = extract_patches(f, ("fl",), _preset())
    batches = area_batches(ps, f.mask, area_size=32, max_patches=25, rng=seed)
    assert len(batches) >= 4
    _check_batches(ps, f.mask, batches, 32, 25)


def test_area_batches_reproducible_and_offset_random():
    f = _field(shape=(70, 90), n=25, seed=3)
    ps = extract_patches(f, ("fl",), _preset())
    a = area_batches(ps, f.mask, 32, 25, rng=np.random.default_rng(7))
    b = area_batches(ps, f.mask, 32, 25, rng=np.random.default_rng(7))
    assert [x.canvas_origin for x in a] == [x.canvas_origin for x in b]
    origins = {tuple(np.mod(x.canvas_origin, 32)) for s in range(6)
               for x in area_batches(ps, None, 32, 25, rng=s)}
    assert len(origins) > 1  # the tiling offset changes with the seed


def test_none_mask_is_ones_inside_image_only():
    f = Field({"fl": np.ones((20, 20))}, markers=[[2.0, 3.0]])
    b = area_batches(extract_patches(f, ["fl"], _preset()), None, 16, 2)[0]
    assert b.canvas_origin == (-K // 2, -K // 2)
    assert b.mask[K // 2:K // 2 + 20, K // 2:K // 2 + 20].min() == 1
    assert b.mask.sum() == 20 * 20  # canvas covers rows/cols -8..23; the image is 0..19


def test_too_many_patches_names_the_setting():
    f = _field(shape=(40, 40), n=10)
    ps = extract_patches(f, ("fl",), _preset())
    with pytest.raises(ValueError, match="max_patches_per_area"):
        area_batches(ps, None, area_size=64, max_patches=5)
    with pytest.raises(ValueError, match="mask has shape"):
        area_batches(ps, np.ones((3, 3)), area_size=64, max_patches=10)


def test_field_no_larger_than_an_area_is_one_batch_whatever_the_offset():
    f = Field({"fl": np.ones((100, 300))},
              markers=[[10.0, 10.0], [90.0, 290.0], [50.0, 150.0], [20.0, 250.0]])
    ps = extract_patches(f, ["fl"], config.get_preset("paper").replace(patch_size=8))
    for seed in range(5):  # the tall side (100 <= 128) is never split; the wide one can be
        batches = area_batches(ps, None, area_size=128, max_patches=4, rng=seed)
        assert sum(b.n_valid for b in batches) == 4
        assert all(b.canvas_origin[0] == -4 for b in batches)
    one = area_batches(ps, None, area_size=300, max_patches=4, rng=1)
    assert len(one) == 1 and one[0].n_valid == 4
