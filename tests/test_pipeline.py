"""The one-call API: markers and mask found from the images, then training."""

from __future__ import annotations

import numpy as np
import pytest

from cellcutter_nb import config
from cellcutter_nb.app.pipeline import find_markers, foreground_mask, segment
from cellcutter_nb.data.field import Field
from cellcutter_nb.data.synth import make_field

TINY = config.get_profile("smoke").replace(max_epochs=1, steps_per_epoch=1, unet_width=4,
                                           unet_depth=2)


@pytest.fixture(scope="module")
def field():
    return make_field(seed=2, shape=160)


def test_segment_returns_labels_model_history(field):
    labels, model, history = segment(field, ("fl",), "paper", TINY, progress=False)
    assert labels.shape == field.shape and labels.dtype == np.uint32
    assert labels.max() <= len(history.attrs["markers"])
    assert history.attrs["mask"].shape == field.shape
    assert model.output_shape[-1] == 1 and len(history) == 1


def test_markers_and_mask_come_from_the_images(field):
    found = find_markers(field)
    assert abs(len(found) - len(field.markers)) <= 2  # found, not copied from the truth
    assert not np.array_equal(found, field.markers)
    m = foreground_mask(field, None, config.get_preset("paper"))
    assert ((m & field.mask).sum() / (m | field.mask).sum()) > 0.8


def test_clear_errors_without_nucleus_or_mask_source(field):
    bf_only = Field({"bf": field["bf"]})
    with pytest.raises(ValueError, match="nuc"):
        find_markers(bf_only)
    with pytest.raises(ValueError, match="scribbles"):
        foreground_mask(bf_only, None, config.get_preset("paper"))
    with pytest.raises(ValueError, match="'auto'"):
        segment(field, ("fl",), "paper", TINY, mask="otsu")
