"""The segmentation UNet of the paper (Fig. S1), as the authors' released code builds it,
seeded and sized by a profile (:func:`build_model`), and loaded back safely
(:func:`load_model`).

Per level: two 3×3 convolutions with ReLU (``he_normal`` initialisation, 'same'
padding) followed by BatchNormalization (:class:`~cellcutter_nb.core.batchnorm.BatchNorm`:
Keras' layer, with a cheaper training pass in bfloat16). The encoder has ``depth`` 2×2 max-poolings;
filters are ``width · min(2**level, 8)`` — 32-64-128-256-256 at width 32, depth 4.
The decoder mirrors the encoder: nearest-neighbour 2× upsampling, concatenation with
the skip connection of the same level, two convolutions + BN with that level's
filters. A final 1×1 convolution gives one *logit* channel (apply a sigmoid for the
probability y of Eq. 1). Keras 3 functional API only, so the model runs under the
TensorFlow and the JAX backends.

(The released ``UNet4`` class overwrites two of its own blocks by a naming slip; we
build the network it was evidently meant to be, which has ≈4.9 M parameters for two
input channels — 4,901,601 exactly.)

BatchNorm note: inference must run with ``training=False`` (moving statistics). After
short training the moving averages can lag behind the weights and predictions may
look worse than the training loss suggests; this is a property of BatchNorm, not a bug.

Two options of the ``fast`` preset (departures from the paper, measured in
``benchmarks/RESULTS.md``): ``norm="group"`` puts GroupNormalization (8 groups) where
the paper has BatchNorm — a training batch is one area, whose patches are strongly
correlated and whose statistics change from area to area, and with BatchNorm the
outputs swung between areas and collapsed for thousands of patches; GroupNorm does not
depend on the batch, so training and inference agree. ``prior=(a, t)`` adds a fixed
*position prior* ``a · (disk - t)`` to the logits (:class:`PositionPrior`; ``disk`` is
the position channel, the Gaussian at the marker) and starts the last convolution at
zero, so an untrained network already claims a disk around its marker and training
starts from a partition of the mask instead of from "everything" or "nothing".

Examples
--------
>>> from cellcutter_nb.core.model import build_unet
>>> m = build_unet(2, width=4, depth=2, patch_size=16)
>>> m.output_shape
(None, 16, 16, 1)
"""

from __future__ import annotations

import contextlib
import math
import os
import zipfile
from pathlib import Path

from ..backend import dtype_policy, keras  # quiet Keras import; never at package import
from ..config import Preset, Profile
from .batchnorm import BatchNorm  # Keras' BatchNormalization, cheaper in bfloat16
from .patches import PatchSet
from .step import CutterModel  # registers the class, so checkpoints deserialise

layers = keras.layers

__all__ = ["NORMS", "PositionPrior", "build_model", "build_unet", "level_filters", "load_model",
           "seed_everything"]

#: Cap on the growth of the filter count: the deepest levels keep 8·width filters.
MAX_WIDTH_FACTOR = 8


def level_filters(width: int, depth: int) -> list[int]:
    """Filters of encoder levels 0..depth: ``width · min(2**level, 8)``.

    Examples
    --------
    >>> level_filters(32, 4)
    [32, 64, 128, 256, 256]
    >>> level_filters(8, 2)
    [8, 16, 32]
    """
    return [width * min(2**level, MAX_WIDTH_FACTOR) for level in range(depth + 1)]


def _init(seed: int | None, index: int) -> keras.initializers.Initializer:
    """He-normal initialiser with its own seed per layer (None: Keras' global seed)."""
    return keras.initializers.HeNormal(seed=None if seed is None else seed * 1000 + index)


#: Normalisation layers of a UNet level: the paper's BatchNorm or GroupNorm (``fast``).
NORMS = ("batch", "group")
#: Groups of GroupNormalization (fewer when a level has fewer filters).
NORM_GROUPS = 8


def _block(x: keras.KerasTensor, filters: int, name: str, seed: int | None,
           index: int, norm: str) -> keras.KerasTensor:
    """Two 3×3 conv + ReLU, then BatchNorm (as in the released code) or GroupNorm."""
    for i, tag in enumerate(("a", "b")):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu",
                          kernel_initializer=_init(seed, 2 * index + i),
                          name=f"{name}_conv_{tag}")(x)
    if norm == "group":
        return layers.GroupNormalization(math.gcd(filters, NORM_GROUPS), name=f"{name}_gn")(x)
    return BatchNorm(name=f"{name}_bn")(x)


@keras.saving.register_keras_serializable(package="cellcutter_nb")
class PositionPrior(layers.Layer):
    """Adds ``strength · (disk - level)`` to the logits; ``disk`` is the last input channel.

    Parameters
    ----------
    strength : float
        a, logits per unit of the position disk (0 adds nothing).
    level : float
        t, the disk value where the prior is 0 (probability 0.5 before training).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros((1, 2, 2, 2), np.float32); x[..., -1] = [[1.0, 0.5], [0.5, 0.0]]
    >>> out = PositionPrior(8.0, 0.5)([x, np.zeros((1, 2, 2, 1), np.float32)])
    >>> np.asarray(out)[0, ..., 0].tolist()
    [[4.0, 0.0], [0.0, -4.0]]
    """

    def __init__(self, strength: float, level: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.strength, self.level = float(strength), float(level)

    def call(self, inputs):
        patches, logits = inputs
        return logits + self.strength * (patches[..., -1:] - self.level)

    def get_config(self) -> dict:
        return {**super().get_config(), "strength": self.strength, "level": self.level}


def build_unet(n_channels: int, width: int = 32, depth: int = 4,
               patch_size: int | None = 64, name: str = "unet",
               seed: int | None = None, norm: str = "batch",
               prior: tuple[float, float] | None = None) -> keras.Model:
    """Build the UNet of Fig. S1 (Keras 3 functional model).

    Parameters
    ----------
    n_channels : int
        Input channels (image channels + 1 position channel).
    width : int
        Filters of the first level (32 in the paper).
    depth : int
        Number of 2×2 poolings (4 in the paper).
    patch_size : int or None
        Input side k; must be divisible by ``2**depth``. ``None`` builds a model with
        free spatial size (any multiple of ``2**depth``), e.g. for whole images.
    name : str
        Model name.
    seed : int, optional
        Seeds every layer's initialiser, so the same seed gives the same weights in any
        process and after any number of earlier models (None: Keras' global seed).
    norm : {"batch", "group"}
        Normalisation after each level's convolutions (:data:`NORMS`).
    prior : (float, float), optional
        ``(a, t)`` of a :class:`PositionPrior` on the logits, with the last convolution
        starting at zero; ``None`` (the paper): no prior.

    Returns
    -------
    keras.Model
        Input ``(B, k, k, n_channels)`` float32, output ``(B, k, k, 1)`` logits.

    Raises
    ------
    ValueError
        Non-positive sizes or a patch size not divisible by ``2**depth``.

    Examples
    --------
    >>> m = build_unet(2, width=32, depth=4)
    >>> m.count_params()
    4901601
    """
    if n_channels < 1 or width < 1 or depth < 0:
        raise ValueError(f"Need n_channels >= 1, width >= 1 and depth >= 0, got "
                         f"{n_channels}, {width}, {depth}.")
    if norm not in NORMS:
        raise ValueError(f"norm={norm!r}; choose one of {NORMS}.")
    if patch_size is not None and (patch_size < 1 or patch_size % 2**depth):
        raise ValueError(f"patch_size={patch_size} must be a positive multiple of "
                         f"2**depth={2**depth}; change the patch size or the depth.")
    filters = level_filters(width, depth)
    inputs = keras.Input((patch_size, patch_size, n_channels), name="patches")
    x = inputs
    skips = []
    for level, f in enumerate(filters):
        if level:
            x = layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)
        x = _block(x, f, f"enc{level}", seed, level, norm)
        skips.append(x)
    for level in range(depth - 1, -1, -1):
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"dec{level}_up")(x)
        x = layers.Concatenate(name=f"dec{level}_concat")([x, skips[level]])
        x = _block(x, filters[level], f"dec{level}", seed, depth + 1 + level, norm)
    start = "zeros" if prior else _init(seed, 4 * depth + 4)
    logits = layers.Conv2D(1, 1, kernel_initializer=start, name="logits")(x)
    if prior:
        logits = PositionPrior(*prior, name="position_prior")([inputs, logits])
    return keras.Model(inputs, logits, name=name)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend (layers also get their own seeds).

    With seeded initialisers (:func:`build_unet`), a per-epoch RNG for areas and
    augmentation, and padding filled with real patches, a CPU run repeats bit for bit
    (checked across processes). TensorFlow's ``enable_op_determinism`` is not used: it
    made Keras drop XLA and did not make the runs here any more repeatable.
    """
    keras.utils.set_random_seed(int(seed))


def build_model(ps: PatchSet, profile: Profile, seed: int, preset: Preset) -> keras.Model:
    """A seeded UNet sized by ``profile`` for the channels and patch size of ``ps``, with
    the preset's normalisation and position prior, under the profile's ``precision``
    (a Keras dtype policy; ``None``: the global one).

    Examples
    --------
    >>> import numpy as np
    >>> from cellcutter_nb import config
    >>> ps = PatchSet(np.zeros((1, 16, 16, 3), np.float32), np.zeros((1, 2), np.int32),
    ...               np.zeros(1, np.int32), ("fl", "nuc"), (32, 32))
    >>> build_model(ps, config.get_profile("smoke"), 0, config.get_preset("paper")).input_shape
    (None, 16, 16, 3)
    """
    with (dtype_policy(profile.precision) if profile.precision else contextlib.nullcontext()):
        return build_unet(ps.patches.shape[-1], width=profile.unet_width,
                          depth=profile.unet_depth, patch_size=ps.patch_size, seed=seed,
                          norm=preset.normalisation, prior=preset.prior)


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a UNet saved by ``--save-model`` / ``model.save`` (``.keras``, safe mode).

    A training checkpoint (``checkpoint.keras`` of :func:`cellcutter_nb.core.train.train`)
    also works: its UNet is returned.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a ``.keras`` file, truncated or corrupt, or not a segmentation UNet
        (the message says how to get a valid one).

    Examples
    --------
    >>> load_model("no/such/model.keras")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    FileNotFoundError: No such model file: no/such/model.keras
    """
    path = Path(path).expanduser()
    fix = ("re-save the model with `python -m cellcutter_nb segment ... --save-model "
           "model.keras` (or `model.save('model.keras')`), or drop --model to train anew")
    if not path.is_file():
        raise FileNotFoundError(f"No such model file: {path}")
    if path.suffix != ".keras":
        raise ValueError(f"{path.name} is not a .keras model file; {fix}.")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a valid Keras model: the file is truncated or not "
                         f"a .keras archive (copy incomplete?); {fix}.")
    try:
        model = keras.models.load_model(path, safe_mode=True)
    except Exception as err:  # keras raises many types for a corrupt archive
        raise ValueError(f"{path} is not a valid Keras model ({type(err).__name__}: "
                         f"{str(err)[:200]}); {fix}.") from err
    if isinstance(model, CutterModel):
        model = model.unet
    shape_in, shape_out = tuple(model.input_shape), tuple(model.output_shape)
    if (not isinstance(model, keras.Model) or len(shape_in) != 4 or len(shape_out) != 4
            or shape_out[-1] != 1 or shape_in[1] != shape_in[2] or shape_in[-1] < 2):
        raise ValueError(f"{path} holds a model with input {shape_in} and output "
                         f"{shape_out}, not a segmentation UNet (B, k, k, C+1) → (B, k, k, 1);"
                         f" {fix}.")
    return model
