"""The batches one training step sees: one area, its padding trimmed and filled, one transform.

A training step of :func:`cellcutter_nb.train.train` takes the patches of one area
(:func:`cellcutter_nb.patches.area_batches`). Here they are

* padded only to the next multiple of ``Profile.pad_multiple`` patches (a few static
  shapes, one compile each, instead of the profile's maximum for every area);
* given real patches in the padding slots, which Eq. 1 ignores but BatchNorm's batch
  statistics do not (:func:`fill_padding`);
* transformed by one of the 8 flips/transposes of the square canvas — patches, their
  offsets and the mask canvas together (:func:`transform_batch`), which leaves Eq. 1
  unchanged and so equals the paper's inverse transform of the network output.

Examples
--------
>>> import numpy as np
>>> from cellcutter_nb import config, synth
>>> from cellcutter_nb.patches import extract_patches
>>> field = synth.make_field(seed=0, shape=128)
>>> preset, prof = config.get_preset("paper"), config.get_profile("smoke")
>>> ps = extract_patches(field, ("fl",), preset)
>>> batch = epoch_batches(ps, field.mask, preset, prof, np.random.default_rng(0))[0]
>>> len(batch.valid) % prof.pad_multiple, batch.n_valid <= len(batch.valid)
(0, True)
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .config import Preset, Profile
from .patches import AreaBatch, PatchSet, area_batches


def n_transforms(preset: Preset) -> int:
    """8 flips/transposes (paper) or 4 flips (released code)."""
    return 8 if preset.augment == "dihedral" else 4


def transform_batch(batch: AreaBatch, t: int) -> AreaBatch:
    """Apply dihedral transform ``t`` (bit 0 flip rows, bit 1 flip cols, bit 2 transpose).

    Patches, their offsets on the square canvas and the mask canvas are transformed
    together, so Eq. 1 of the transformed batch equals Eq. 1 of the original batch
    with the inverse transform applied to the network outputs.
    """
    if not 0 <= t < 8:
        raise ValueError(f"transform index must be in 0..7, got {t}.")
    side, k = batch.mask.shape[0], batch.patches.shape[1]
    patches, offsets, mask = batch.patches, batch.offsets.copy(), batch.mask
    if t & 1:
        patches, mask = patches[:, ::-1], mask[::-1]
        offsets[:, 0] = side - k - offsets[:, 0]
    if t & 2:
        patches, mask = patches[:, :, ::-1], mask[:, ::-1]
        offsets[:, 1] = side - k - offsets[:, 1]
    if t & 4:
        patches, mask = patches.transpose(0, 2, 1, 3), mask.T
        offsets = offsets[:, ::-1]
    return replace(batch, patches=np.ascontiguousarray(patches),
                   offsets=np.ascontiguousarray(offsets, dtype=np.int32),
                   mask=np.ascontiguousarray(mask))


def trim_padding(batch: AreaBatch, multiple: int) -> AreaBatch:
    """Drop padding beyond the next multiple of ``multiple`` patches (valid ones come first).

    With ``multiple=64`` an area that holds 90 patches is run as 128, not as the
    profile's maximum of 640: with random tiling offsets most areas are partial, and
    padding costs as much compute as real patches.
    """
    keep = int(min(len(batch.valid), max(multiple, -(-batch.n_valid // multiple) * multiple)))
    return replace(batch, patches=batch.patches[:keep], valid=batch.valid[:keep],
                   offsets=batch.offsets[:keep], marker_indices=batch.marker_indices[:keep])


def epoch_batches(ps: PatchSet, mask, preset: Preset, profile: Profile, rng) -> list:
    """``steps_per_epoch`` random areas (fresh tiling offsets as needed), padding trimmed.

    The areas are grouped on a stand-in for ``ps`` with no pixels (zero channels) whose
    ``marker_indices`` are patch rows; the pixels of the kept areas are gathered
    afterwards, only up to the trimmed length. Same batches and the same ``rng`` draws
    as grouping ``ps`` itself, without copying every area's patches padded to
    ``max_patches_per_area`` (40-160 ms per step at 1750² px, 2 CPU cores).
    """
    rows = PatchSet(ps.patches[..., :0], ps.origins, np.arange(len(ps), dtype=np.int32),
                    ps.channels, ps.image_shape)
    mask = None if mask is None else np.asarray(mask, np.float32)  # converted once
    out: list[AreaBatch] = []
    while len(out) < profile.steps_per_epoch:
        out += area_batches(rows, mask, profile.train_area or preset.area_size,
                            profile.max_patches_per_area, rng)
    return [_gather_pixels(trim_padding(b, profile.pad_multiple), ps)
            for b in out[: profile.steps_per_epoch]]


def _gather_pixels(batch: AreaBatch, ps: PatchSet) -> AreaBatch:
    """Fill a batch grouped by :func:`epoch_batches` with the patches of ``ps`` (zero
    padding) and turn its patch rows back into marker indices (-1 for padding)."""
    n, total = batch.n_valid, len(batch.valid)
    row = batch.marker_indices[:n]
    patches = np.zeros((total, *ps.patches.shape[1:]), np.float32)
    patches[:n] = ps.patches[row]
    markers = np.full(total, -1, np.int32)
    markers[:n] = ps.marker_indices[row]
    return replace(batch, patches=patches, marker_indices=markers)


def fill_padding(batch: AreaBatch) -> AreaBatch:
    """Fill the padding slots with copies of the batch's real patches (still ``valid = 0``).

    Padding never enters Eq. 1, but it does enter BatchNorm's batch statistics in
    training mode: all-zero padding patches would dominate them in sparse areas and
    make training-mode and inference-mode outputs disagree.
    """
    n, total = batch.n_valid, len(batch.valid)
    if n == 0 or n == total:
        return batch
    patches = batch.patches.copy()
    patches[n:] = patches[np.arange(total - n) % n]
    return replace(batch, patches=patches)
