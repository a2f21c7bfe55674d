"""Tests of cellcutter_nb.core.model: the Fig. S1 UNet."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from cellcutter_nb.core.model import build_unet, level_filters  # noqa: E402


def _expected_params(n_in: int, width: int, depth: int) -> int:
    """Parameter count written out from the architecture description (independent of Keras)."""
    f = [width * min(2**i, 8) for i in range(depth + 1)]

    def block(c_in: int, c: int) -> int:  # 2 × (3×3 conv + bias), BN (γ, β, mean, var)
        return (9 * c_in * c + c) + (9 * c * c + c) + 4 * c

    total, c_in = 0, n_in
    for c in f:
        total += block(c_in, c)
        c_in = c
    for level in range(depth - 1, -1, -1):
        total += block(c_in + f[level], f[level])
        c_in = f[level]
    return total + c_in + 1  # 1×1 conv to one logit


def test_paper_network_has_4_9_million_parameters():
    m = build_unet(2, width=32, depth=4, patch_size=64)
    n = m.count_params()
    assert n == 4_901_601 == _expected_params(2, 32, 4)
    assert abs(n - 4.9e6) / 4.9e6 < 0.03
    assert level_filters(32, 4) == [32, 64, 128, 256, 256]
    convs = [ly for ly in m.layers if isinstance(ly, keras.layers.Conv2D)]
    assert [c.filters for c in convs[::2]][:5] == [32, 64, 128, 256, 256]
    assert sum(isinstance(ly, keras.layers.BatchNormalization) for ly in m.layers) == 9
    ups = [ly for ly in m.layers if isinstance(ly, keras.layers.UpSampling2D)]
    assert len(ups) == 4 and all(u.interpolation == "nearest" for u in ups)


@pytest.mark.parametrize("width,depth", [(4, 1), (8, 2), (4, 3)])
def test_width_and_depth_change_the_network(width, depth):
    m = build_unet(3, width=width, depth=depth, patch_size=16)
    assert m.count_params() == _expected_params(3, width, depth)
    assert sum(isinstance(ly, keras.layers.MaxPooling2D) for ly in m.layers) == depth
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype(np.float32)
    y = keras.ops.convert_to_numpy(m(x, training=False))
    assert y.shape == (2, 16, 16, 1) and np.isfinite(y).all()


def test_growth_is_capped_at_eight_times_width():
    assert level_filters(4, 6) == [4, 8, 16, 32, 32, 32, 32]


def test_free_spatial_size():
    m = build_unet(2, width=4, depth=2, patch_size=None)
    for side in (16, 24):
        y = m(np.zeros((1, side, side, 2), np.float32), training=False)
        assert tuple(y.shape) == (1, side, side, 1)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="multiple of 2\\*\\*depth"):
        build_unet(2, width=4, depth=4, patch_size=40)
    with pytest.raises(ValueError, match="n_channels"):
        build_unet(0)
