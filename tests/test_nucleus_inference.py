"""Synthetic nucleus images: flips averaged at inference, interpolation, smoothed blobs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from cellcutter_nb import config
from cellcutter_nb.core.batches import dihedral as dihedral_stack
from cellcutter_nb.core.nucleus import downsample
from cellcutter_nb.core.nucleus_inference import predict_tiled, synthetic_nucleus_image, upsample
from cellcutter_nb.experiments.predicted_markers import synthetic_markers
from cellcutter_nb.prep.markers import detect_blobs


def dihedral(image, k, *, inverse=False):
    """The shared stack transform on one image."""
    return dihedral_stack(image[None], k, inverse=inverse)[0]


@pytest.fixture(scope="module")
def tiny_unet():
    from cellcutter_nb.core.model import build_unet

    return build_unet(1, width=4, depth=2, patch_size=None, seed=5)


@pytest.mark.parametrize("k", range(8))
def test_dihedral_inverse_undoes_every_transform(k):
    x = np.arange(2 * 3 * 4).reshape(3, 4, 2)  # not square, with channels
    y = dihedral(x, k)
    assert y.shape == ((4, 3, 2) if k & 4 else (3, 4, 2))
    np.testing.assert_array_equal(dihedral(y, k, inverse=True), x)


def test_dihedral_gives_eight_distinct_transforms():
    x = np.arange(9).reshape(3, 3)
    assert len({dihedral(x, k).tobytes() for k in range(8)}) == 8
    with pytest.raises(ValueError, match="0..7"):
        dihedral(x, 8)


def test_averaging_all_flips_makes_the_prediction_flip_equivariant(tiny_unet):
    rng = np.random.default_rng(1)
    img = ndi.gaussian_filter(rng.normal(size=(64, 64)), 1.5).astype(np.float32)
    for transforms, equivariant in ((8, True), (1, False)):
        ref = synthetic_nucleus_image(tiny_unet, img, img.shape, transforms=transforms)
        errors = [np.abs(synthetic_nucleus_image(tiny_unet, dihedral(img, k), img.shape,
                                                 transforms=transforms)
                         - dihedral(ref, k)).max() for k in range(1, 8)]
        assert (max(errors) < 1e-4) == equivariant, (transforms, errors)


def test_binned_prediction_is_interpolated_to_the_field(tiny_unet):
    img = np.random.default_rng(2).normal(size=(60, 70)).astype(np.float32)
    binned = downsample(img, 2)
    out = synthetic_nucleus_image(tiny_unet, binned, img.shape, factor=2, transforms=2)
    assert out.shape == img.shape and 0 <= out.min() <= out.max() <= 1
    low = synthetic_nucleus_image(tiny_unet, binned, binned.shape, transforms=2)
    assert low.shape == (30, 35)  # the network's own resolution
    np.testing.assert_allclose(out, upsample(low, 2, img.shape), atol=1e-6)
    with pytest.raises(ValueError, match="transforms"):
        synthetic_nucleus_image(tiny_unet, binned, img.shape, factor=2, transforms=9)


def test_upsample_reproduces_linear_ramps_and_constants():
    ramp = np.add.outer(np.arange(40.0), 0.5 * np.arange(30.0))
    back = upsample(downsample(ramp, 2), 2, ramp.shape)
    np.testing.assert_allclose(back[1:-1, 1:-1], ramp[1:-1, 1:-1], atol=1e-4)
    np.testing.assert_allclose(upsample(np.full((3, 4), 0.7), 3, (8, 11)), 0.7, atol=1e-6)
    with pytest.raises(ValueError, match="cannot cover"):
        upsample(np.zeros((3, 4)), 2, (8, 8))


def test_tiles_are_batched_no_wider_than_their_number(tiny_unet, monkeypatch):
    seen = []
    real = tiny_unet.predict_on_batch

    def spy(x):
        seen.append(x.shape[0])
        return real(x)

    monkeypatch.setattr(tiny_unet, "predict_on_batch", spy)
    predict_tiled(tiny_unet, np.zeros((16, 12), np.float32), tile=32, overlap=8)
    assert seen == [1]  # one tile: one call of one tile, not a zero-padded batch of 4
    seen.clear()
    predict_tiled(tiny_unet, np.zeros((32, 30), np.float32), tile=32, overlap=8,
                  batch_size=3)
    assert seen == [3, 3]  # 4 tiles: batches of 3, the last one padded


def test_smoothing_merges_the_rim_peaks_of_a_flat_elongated_blob():
    yy, xx = np.mgrid[:80, :80]
    blob = ndi.gaussian_filter(((((yy - 40) / 5) ** 2 + ((xx - 40) / 12) ** 2) < 1)
                               .astype(float), 1.0)  # an 8 × 19 µm nucleus, p ≈ 1
    assert len(detect_blobs(blob, "dog", threshold=0.1)) > 1
    found = synthetic_markers(blob, "dog", 0.1)
    assert found.round().tolist() == [[40.0, 40.0]]
    assert config.NUCLEUS_BLOB_SMOOTH_UM["doh"] == 0.0  # DoH sees the image unsmoothed
    np.testing.assert_array_equal(synthetic_markers(blob, "doh", 0.01),
                                  detect_blobs(blob, "doh", threshold=0.01))
    with pytest.raises(ValueError, match="method"):
        synthetic_markers(blob, "log")


def test_profiles_reject_unusable_nucleus_settings():
    quick = config.get_profile("quick")
    with pytest.raises(ValueError, match="nucleus_tta"):
        quick.replace(nucleus_tta=9)
    with pytest.raises(ValueError, match="nucleus_downsample"):
        quick.replace(nucleus_downsample=0)
