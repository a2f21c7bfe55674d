"""The paper's constants, the method presets (:mod:`cellcutter_nb.presets`), the profiles.

Every number that comes from Din & Yu (2021) or from the authors' released code
lives here, so notebooks and modules never carry scattered literals.

* :class:`Preset` — *how* the method is run: ``paper`` (what the text says),
  ``original_code`` (what github.com/jiyuuchc/cellcutter does; see DESIGN.md) or ``fast``.
* :class:`Profile` — *how much* is run: ``smoke`` (CI, seconds), ``quick``
  (2 CPU cores, minutes) or ``full`` (paper scale, GPU).

Both are frozen dataclasses with a stable :func:`config_hash`, usable as a cache key.

Examples
--------
>>> from cellcutter_nb import config
>>> p = config.get_preset("paper")
>>> p.lam, p.log_base, p.beta
(3.32, 10.0, 15.0)
>>> config.get_profile("smoke").field_size
320
>>> len(config.config_hash(p))
16
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .presets import (  # the presets live beside; config is the one place to get them
    AREA_SIZE,
    PATCH_SIZE,
    POSITION_SIGMA_PX,
    PRESETS,
    LossWeights,
    Preset,
    get_preset,
)

__all__ = ["AREA_SIZE", "NUCLEUS_BLOB_SMOOTH_UM", "NUCLEUS_LEARNING_RATE", "NUCLEUS_MIRROR_UM",
           "NUCLEUS_STOP_LOSS", "PAIRING_DISTANCE_UM", "PAPER_FIELD_SIZE", "PATCH_SIZE",
           "PIXEL_SIZE_UM", "POSITION_SIGMA_PX", "PRECISIONS", "PRESETS", "PROFILES",
           "LossWeights", "Preset", "Profile", "config_hash", "get_preset", "get_profile"]

#: Pixel size of the paper's images: 1.4 mm imaged as 1750 px (µm per pixel).
PIXEL_SIZE_UM: float = 0.8
#: Maximum distance for pairing a found marker with a true nucleus (µm).
PAIRING_DISTANCE_UM: float = 15.0
#: Side of the paper's stitched fields (px).
PAPER_FIELD_SIZE: int = 1750
#: Loss value at which the paper stopped training the synthetic-nucleus UNet.
NUCLEUS_STOP_LOSS: float = 0.15
#: Adam learning rate of the synthetic-nucleus UNet (the paper's Methods).
NUCLEUS_LEARNING_RATE: float = 0.005
#: Values of :attr:`Profile.precision` (None: the global Keras dtype policy).
PRECISIONS = (None, "float32", "mixed_bfloat16", "mixed_float16")
#: Margin (µm) by which the synthetic-nucleus UNet's training fields are mirrored, so
#: its crops see field borders as tiled inference shows them (mirrored). Not in the
#: paper: without it the quick profile's bright-field UNet put 30 of its 113 false
#: positives on the field border (tuning seed 5; 8 with a 25.6 µm = 32 px margin).
NUCLEUS_MIRROR_UM: float = 25.6
#: σ (µm) of the Gaussian smoothing of a synthetic nucleus image before blob detection,
#: per detector. Not in the paper: a probability image has flat-topped blobs whose
#: rims give the DoG detector extra peaks; σ = 3.2 µm (about half the radius of an
#: 8-14 µm nucleus) cut the quick profile's FN + FP most among 1.6-4 µm (tuning seeds
#: 5 and 6, benchmarks/RESULTS.md). DoH (the released code's detector) lost nuclei with
#: it, so it stays unsmoothed.
NUCLEUS_BLOB_SMOOTH_UM: dict[str, float] = {"dog": 3.2, "doh": 0.0}


@dataclass(frozen=True)
class Profile:
    """How much is run: field size, replicates, training length, network width.

    Parameters
    ----------
    name : str
        ``"smoke"``, ``"quick"`` or ``"full"``.
    field_size : int
        Side of the synthetic fields (px).
    n_replicates : int
        Synthetic seeds playing the paper's sample replicates.
    max_epochs : int
        Upper bound on training epochs (training stops earlier at a stable loss).
    steps_per_epoch : int
        Areas (batches) per epoch.
    unet_width : int
        Filters of the first UNet level (32 in the paper's network).
    unet_depth : int
        Number of poolings (4 in the paper's network).
    max_patches_per_area : int
        Most patches one area may hold (an error names this setting if one holds more).
    pad_multiple : int
        Batches are padded to the next multiple of this many patches: a few static shapes
        (one compile each) instead of every area padded to ``max_patches_per_area``.
        Padding costs as much compute as real patches, so smaller areas want a smaller
        multiple (quick: 240-px areas hold ~25 patches on average). Not used for
        exact batches (``exact_batches``).
    exact_batches : bool or None
        Train on each area's patches alone, without padding. Only a step compiled with
        XLA/jit needs static shapes; TensorFlow's default CPU step takes any batch size
        (one trace, relaxed after the second size). The padding slots hold copies of
        real patches (:func:`~cellcutter_nb.core.batches.fill_padding`) that Eq. 1
        ignores but BatchNorm's batch statistics count, so with BatchNorm, exact batches
        change the numbers (towards the paper's and the released code's batch: the
        area's patches, each once). ``None`` (default): exact only where that changes
        nothing but rounding — GroupNorm networks (``fast``) in steps without XLA/jit;
        ``True``: always (also BatchNorm; under XLA/jit one compile per batch size);
        ``False``: always padded.
    precision : str or None
        Keras dtype policy of the networks :func:`~cellcutter_nb.core.train.train`
        builds: ``"mixed_bfloat16"`` runs the UNet in bfloat16 (Eq. 1 stays float32),
        1.5-1.7× faster on a CPU with AVX-512 BF16 (``benchmarks/RESULTS.md``, issue
        16), and changes the numbers; ``None`` (default): the global
        policy (float32 unless :func:`cellcutter_nb.backend.dtype_policy` says otherwise).
    train_area : int or None
        Side of the training areas (one area per step); ``None`` uses the preset's
        (640 px, the paper's). Smaller areas mean smaller batches and more optimizer
        steps for the same compute: on 2 CPU cores, 48 steps of 240-px areas reached
        mIOU 0.50 where 16 steps of one 640-px area (same cost) reached 0.21.
    nucleus_max_steps : int
        Most training steps of the synthetic-nucleus UNet (it stops earlier when its
        loss reaches :data:`NUCLEUS_STOP_LOSS`, the paper's rule).
    nucleus_crop : int
        Side of the random crops the synthetic-nucleus UNet trains on (a multiple of
        ``2**unet_depth``).
    nucleus_batch : int
        Crops per training step of the synthetic-nucleus UNet.
    nucleus_downsample : int
        The synthetic-nucleus UNet works on images binned by this factor (block means;
        its probabilities are interpolated back). 1 is the paper; 2 (quick) gave the
        same training loss in 200 steps as 800 steps at full resolution, and its crops
        see 4× the area, on 2 CPU cores (the paper: "the model can be of relatively
        low resolution").
    nucleus_tta : int
        Dihedral transforms (flips/transposes, 1-8) whose predictions are averaged for
        a synthetic nucleus image. 1 is the paper; 8 (quick) cut the FL markers'
        FN + FP from 7.1 to 3.6 % (tuning seed 5) for ~2 s per model.
    preset : str
        The preset the profile's experiments and tutorials train with: ``fast`` where
        the budget is minutes (smoke, quick), ``paper`` at the paper's scale (full).
    """

    name: str
    field_size: int
    n_replicates: int
    max_epochs: int
    steps_per_epoch: int
    unet_width: int
    unet_depth: int
    max_patches_per_area: int
    train_area: int | None = None
    pad_multiple: int = 64
    # in cache keys only when set, so that the keys of earlier runs stay as they were
    exact_batches: bool | None = dataclasses.field(default=None,
                                                   metadata={"cache_key": "if_set"})
    precision: str | None = dataclasses.field(default=None, metadata={"cache_key": "if_set"})
    nucleus_max_steps: int = 200
    nucleus_crop: int = 128
    nucleus_batch: int = 8
    nucleus_downsample: int = 1
    nucleus_tta: int = 1
    preset: str = "paper"

    def replace(self, **changes: Any) -> Profile:
        """Return a copy with some fields changed (validated like the original)."""
        return _validated(dataclasses.replace(self, **changes))

    def subset(self, fields: Sequence[str]) -> dict[str, Any]:
        """The values of some fields, e.g. those a cache key depends on.

        Examples
        --------
        >>> get_profile("smoke").subset(["field_size", "unet_width"])
        {'field_size': 320, 'unet_width': 8}
        """
        unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"Profile has no field(s) {unknown}.")
        return {name: getattr(self, name) for name in fields}


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        field_size=320,
        n_replicates=2,
        max_epochs=2,
        steps_per_epoch=2,
        unet_width=8,
        unet_depth=2,
        max_patches_per_area=640,
        train_area=160,
        pad_multiple=32,
        nucleus_max_steps=15,
        nucleus_crop=64,
        nucleus_batch=4,
        nucleus_downsample=2,
        nucleus_tta=2,
        preset="fast",
    ),
    "quick": Profile(
        name="quick",
        field_size=480,  # ~210 cells; 36 Table 1 models must fit 2 cores in ~20 min
        n_replicates=3,
        max_epochs=4,  # 48 steps of ~25 patches (~30 s a model): early training
        steps_per_epoch=12,
        unet_width=16,
        unet_depth=4,
        max_patches_per_area=640,
        train_area=240,  # ~25 patches per step on average, 88 at most (Profile.train_area)
        pad_multiple=32,  # 32 not 64: 4-7 s less per model (2 CPU cores)
        nucleus_max_steps=200,  # 30-40 s per nucleus UNet on 2 busy CPU cores
        nucleus_crop=64,  # at half resolution: 128² px of the field
        nucleus_batch=8,
        nucleus_downsample=2,  # departs from the paper (full resolution), see Profile
        nucleus_tta=8,  # departs from the paper (one prediction), see Profile
        preset="fast",
    ),
    "full": Profile(
        name="full",
        field_size=PAPER_FIELD_SIZE,
        n_replicates=3,
        max_epochs=50,
        steps_per_epoch=32,
        unet_width=32,
        unet_depth=4,
        max_patches_per_area=640,
        nucleus_max_steps=3000,
        nucleus_crop=256,
        nucleus_batch=8,
    ),
}

def _validated(profile: Profile) -> Profile:
    """Check a profile for values the method cannot use."""
    for key in ("field_size", "n_replicates", "max_epochs", "steps_per_epoch",
                "unet_width", "unet_depth", "max_patches_per_area", "pad_multiple",
                "nucleus_max_steps", "nucleus_crop", "nucleus_batch", "nucleus_downsample",
                "nucleus_tta"):
        if getattr(profile, key) < 1:
            raise ValueError(f"Profile.{key} must be >= 1, got {getattr(profile, key)}.")
    if profile.nucleus_tta > 8:
        raise ValueError(f"Profile.nucleus_tta must be 1-8 (dihedral transforms), got "
                         f"{profile.nucleus_tta}.")
    if profile.preset not in PRESETS:
        raise ValueError(f"Profile.preset={profile.preset!r}; choose one of {sorted(PRESETS)}.")
    if profile.precision not in PRECISIONS:
        raise ValueError(f"Profile.precision={profile.precision!r}; choose one of "
                         f"{PRECISIONS}.")
    if profile.train_area is not None and profile.train_area < PATCH_SIZE:
        raise ValueError(f"Profile.train_area must be None or >= {PATCH_SIZE} px, got "
                         f"{profile.train_area}.")
    return profile


def get_profile(profile: str | Profile) -> Profile:
    """Return a :class:`Profile` by name (a Profile passes through).

    Raises
    ------
    ValueError
        If the name is unknown; the message lists the valid names.
    """
    if isinstance(profile, Profile):
        return profile
    if profile not in PROFILES:
        raise ValueError(f"Unknown profile {profile!r}; choose one of {sorted(PROFILES)}.")
    return PROFILES[profile]


def _in_key(obj: Any, f: dataclasses.Field) -> bool:
    """Does field ``f`` of ``obj`` enter cache keys? ``metadata["cache_key"]``: absent or
    True (yes), False (never: Preset.finetune_learning_rate) or ``"if_set"`` (when not
    None: settings added later keep the keys of the runs that do not use them)."""
    rule = f.metadata.get("cache_key", True)
    return rule == "if_set" and getattr(obj, f.name) is not None or rule is True


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"__type__": type(obj).__name__, **{
            f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)
            if _in_key(obj, f)}}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in sorted(obj.items())}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return repr(obj)  # exact, platform independent
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if hasattr(obj, "item"):  # numpy scalars
        return _jsonable(obj.item())
    raise TypeError(f"Cannot hash a value of type {type(obj).__name__}.")


def config_hash(*objs: Any) -> str:
    """Stable 16-hex-digit hash of dataclasses, dicts and scalars, for cache keys.

    The hash depends only on field names and values (floats by exact repr), not on
    the Python process, so it is the same across runs and machines.

    Examples
    --------
    >>> config_hash(get_preset("paper")) == config_hash(get_preset("paper"))
    True
    >>> config_hash(get_preset("paper")) == config_hash(get_preset("original_code"))
    False
    """
    text = json.dumps([_jsonable(o) for o in objs], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
