"""The paper's constants, the two method presets and the three run profiles.

Every number that comes from Din & Yu (2021) or from the authors' released code
lives here, so notebooks and modules never carry scattered literals.

* :class:`Preset` — *how* the method is run: ``paper`` (what the text says) or
  ``original_code`` (what github.com/jiyuuchc/cellcutter does; see DESIGN.md).
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
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: Pixel size of the paper's images: 1.4 mm imaged as 1750 px (µm per pixel).
PIXEL_SIZE_UM: float = 0.8
#: Side of the square patch cut around every marker (px).
PATCH_SIZE: int = 64
#: Side of the square area whose patches form one training batch (px).
AREA_SIZE: int = 640
#: Standard deviation of the Gaussian disk of the position channel (px).
POSITION_SIGMA_PX: float = 15.0
#: Maximum distance for pairing a found marker with a true nucleus (µm).
PAIRING_DISTANCE_UM: float = 15.0
#: Side of the paper's stitched fields (px).
PAPER_FIELD_SIZE: int = 1750
#: Loss value at which the paper stopped training the synthetic-nucleus UNet.
NUCLEUS_STOP_LOSS: float = 0.15
#: Adam learning rate of the synthetic-nucleus UNet (the paper's Methods).
NUCLEUS_LEARNING_RATE: float = 0.005
#: Patches an unsupervised network must see before its result is more than early training
#: (:attr:`Preset.converged_patches`; below it results are labelled *under-trained*).
#: Measured with the ``paper`` preset on the 1750² benchmark (benchmarks/RESULTS.md, one
#: H100): it passes the position-only partition only after ~100 k patches and reaches
#: ~0.80 mIOU at ~400 k. The one number to change when a faster recipe lands.
CONVERGED_PATCHES: int = 100_000


@dataclass(frozen=True)
class LossWeights:
    """The weights of Eq. 1's terms, in the form the loss uses them.

    Made by :meth:`Preset.loss_weights`; :func:`cellcutter_nb.core.loss.cutter_loss` reads
    nothing else, so a new term of the loss is one more field here (default 0: off) and
    one more line in the preset method.

    Parameters
    ----------
    lam_natural : float
        λ of the overlap term for the natural logarithm (:attr:`Preset.lam_natural`).
    beta : float
        β of the penalty on segmented pixels outside the mask M (0: no mask term).
    """

    lam_natural: float
    beta: float


@dataclass(frozen=True)
class Preset:
    """How the method is run: the paper's text or the authors' released code.

    Parameters
    ----------
    name : str
        ``"paper"`` or ``"original_code"``.
    lam : float
        λ, weight of the overlap term of Eq. 1.
    log_base : float
        Base of the logarithm in the overlap term (10 for the paper's λ = 3.32,
        *e* for the released code's λ = 1). λ_e = λ_10 / ln 10.
    beta : float
        β, weight of the penalty on segmented pixels outside the mask M.
    learning_rate : float
        Adam learning rate.
    augment : str
        ``"dihedral"`` (all 8 flips/transposes, as the text says) or ``"flips"``
        (the released code never draws the transpose).
    blob_method : str
        Blob detector for synthetic nucleus images: ``"dog"`` or ``"doh"``.
    graph_cut_pairwise : str
        ``"constant"`` κ (Eq. 2) or the code's ``"contrast"``-sensitive weight.
    graph_cut_neighbourhood : int
        4 or 8 neighbours in the graph cut.
    drop_border_patches : bool
        Drop markers whose patch crosses the image edge (released code) instead
        of zero-padding them.
    patch_size, area_size, position_sigma : int, int, float
        Patch side, batch-area side and σ of the position disk (px).
    """

    name: str
    lam: float
    log_base: float
    beta: float
    learning_rate: float
    augment: str
    blob_method: str
    graph_cut_pairwise: str
    graph_cut_neighbourhood: int
    drop_border_patches: bool
    patch_size: int = PATCH_SIZE
    area_size: int = AREA_SIZE
    position_sigma: float = POSITION_SIGMA_PX

    @property
    def lam_natural(self) -> float:
        """λ expressed for the natural logarithm (λ_e = λ / ln base)."""
        return self.lam / math.log(self.log_base)

    @property
    def converged_patches(self) -> int:
        """Patches seen below which a result of this recipe is under-trained
        (:data:`CONVERGED_PATCHES`, the same for both presets so far)."""
        return CONVERGED_PATCHES

    def loss_weights(self, with_mask: bool = True) -> LossWeights:
        """The weights Eq. 1 is computed with: λ for the natural log, and β (0 without
        the mask, as in Table 1's second row).

        Examples
        --------
        >>> get_preset("paper").loss_weights(with_mask=False)
        LossWeights(lam_natural=1.4418576799187959, beta=0.0)
        """
        return LossWeights(self.lam_natural, self.beta if with_mask else 0.0)

    def replace(self, **changes: Any) -> Preset:
        """Return a copy with some fields changed (validated like the original)."""
        return _validated(dataclasses.replace(self, **changes))


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
        multiple (quick: 240-px areas hold ~25 patches on average).
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
    nucleus_max_steps: int = 200
    nucleus_crop: int = 128
    nucleus_batch: int = 8

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


PRESETS: dict[str, Preset] = {
    "paper": Preset(
        name="paper",
        lam=3.32,
        log_base=10.0,
        beta=15.0,
        learning_rate=0.005,
        augment="dihedral",
        blob_method="dog",
        graph_cut_pairwise="constant",
        graph_cut_neighbourhood=4,
        drop_border_patches=False,
    ),
    "original_code": Preset(
        name="original_code",
        lam=1.0,
        log_base=math.e,
        beta=20.0,  # the code applies 20·λ to the inverted mask, with λ = 1
        learning_rate=0.001,
        augment="flips",
        blob_method="doh",
        graph_cut_pairwise="contrast",
        graph_cut_neighbourhood=8,
        drop_border_patches=True,
    ),
}

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
        nucleus_crop=64,
        nucleus_batch=8,
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

_CHOICES = {
    "augment": ("dihedral", "flips"),
    "blob_method": ("dog", "doh"),
    "graph_cut_pairwise": ("constant", "contrast"),
    "graph_cut_neighbourhood": (4, 8),
}


def _validated(obj: Any) -> Any:
    """Check a preset or profile for values the method cannot use."""
    for key, allowed in _CHOICES.items():
        if hasattr(obj, key) and getattr(obj, key) not in allowed:
            raise ValueError(f"{key}={getattr(obj, key)!r} is not one of {allowed}.")
    if isinstance(obj, Preset):
        if obj.lam <= 0 or obj.beta < 0 or obj.learning_rate <= 0:
            raise ValueError("lam and learning_rate must be > 0 and beta >= 0.")
        if obj.log_base <= 1:
            raise ValueError(f"log_base must be > 1, got {obj.log_base}.")
        if obj.patch_size % 2 or obj.patch_size < 8:
            raise ValueError(f"patch_size must be an even number >= 8, got {obj.patch_size}.")
    if isinstance(obj, Profile):
        for key in ("field_size", "n_replicates", "max_epochs", "steps_per_epoch",
                    "unet_width", "unet_depth", "max_patches_per_area", "pad_multiple",
                    "nucleus_max_steps",
                    "nucleus_crop", "nucleus_batch"):
            if getattr(obj, key) < 1:
                raise ValueError(f"Profile.{key} must be >= 1, got {getattr(obj, key)}.")
        if obj.train_area is not None and obj.train_area < PATCH_SIZE:
            raise ValueError(f"Profile.train_area must be None or >= {PATCH_SIZE} px, got "
                             f"{obj.train_area}.")
    return obj


def get_preset(preset: str | Preset) -> Preset:
    """Return a :class:`Preset` by name (a Preset passes through).

    Raises
    ------
    ValueError
        If the name is unknown; the message lists the valid names.
    """
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {sorted(PRESETS)}.")
    return PRESETS[preset]


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


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"__type__": type(obj).__name__, **{
            f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
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
