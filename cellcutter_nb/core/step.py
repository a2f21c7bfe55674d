"""The training step: the UNet wrapped with Eq. 1 as its loss, compiled with Adam.

:class:`CutterModel` runs Keras' backend-neutral ``train_on_batch`` on one area batch
(:class:`~cellcutter_nb.core.batches.AreaBatch`): ``x`` are its patches, ``y`` the dict
``{"offsets", "valid", "mask"}`` of its geometry, and the loss is
:func:`~cellcutter_nb.core.loss.cutter_loss` with the preset's
:class:`~cellcutter_nb.config.LossWeights`. :func:`compile_step` builds and compiles it as
:func:`cellcutter_nb.core.train.train` uses it.

Examples
--------
>>> from cellcutter_nb import config
>>> from cellcutter_nb.core.model import build_unet
>>> from cellcutter_nb.core.step import compile_step
>>> step = compile_step(build_unet(2, 4, 2, 16, seed=0), config.get_preset("paper"),
...                     with_mask=False, eager=True)
>>> step.cutter_weights.beta, step.optimizer.learning_rate.numpy().round(4)
(0.0, np.float32(0.005))
"""

from __future__ import annotations

from typing import Any

from ..backend import backend_name, keras
from ..config import LossWeights, Preset
from .batches import AreaBatch, fill_padding, transform_batch
from .loss import cutter_loss

__all__ = ["CutterModel", "EAGER_MAX_STEPS", "TERMS", "compile_step", "default_jit",
           "train_step"]

#: The loss terms tracked per step (and written to the training history).
TERMS = ("area", "overlap", "mask", "boundary")
#: Runs of at most this many steps execute eagerly: tracing the compiled train step
#: costs 2-4 s on 2 CPU cores, more than a few eager steps of a small model.
EAGER_MAX_STEPS = 8


def default_jit() -> bool:
    """Compile the train step with XLA/jit? Yes under JAX; no under TensorFlow on CPU,
    where the oneDNN kernels ran the UNet step 1.7× faster than XLA (measured here)."""
    return backend_name() != "tensorflow"


@keras.saving.register_keras_serializable(package="cellcutter_nb")
class CutterModel(keras.Model):
    """The UNet wrapped with Eq. 1 as its loss (backend-neutral ``train_on_batch``).

    Parameters
    ----------
    unet : keras.Model
        Patches (B, k, k, C + 1) → logits (B, k, k, 1).
    cutter_weights : LossWeights
        λ and β of Eq. 1 (:meth:`cellcutter_nb.config.Preset.loss_weights`).

    ``y`` of a step is :meth:`~cellcutter_nb.core.batches.AreaBatch.targets` of an area
    batch (``offsets``, ``valid``, ``mask`` and, with a boundary term, ``boundary_cost``);
    the terms of the loss are tracked as metrics ``area``, ``overlap``, ``mask`` and
    ``boundary``.
    """

    def __init__(self, unet: keras.Model, cutter_weights: LossWeights, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.unet = unet
        self.cutter_weights = cutter_weights
        self.trackers = {k: keras.metrics.Mean(name=k) for k in TERMS}

    def call(self, x: Any, training: bool = False) -> Any:
        return self.unet(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        terms = cutter_loss(y_pred, y["offsets"], y["valid"], y["mask"], self.cutter_weights,
                            y.get("boundary_cost"))
        for name in TERMS:
            self.trackers[name].update_state(getattr(terms, name))
        return terms.total

    @property
    def metrics(self) -> list:
        return [*super().metrics, *self.trackers.values()]

    def get_config(self) -> dict:
        return {"unet": keras.saving.serialize_keras_object(self.unet),
                "lam_natural": self.cutter_weights.lam_natural,
                "beta": self.cutter_weights.beta, "boundary": self.cutter_weights.boundary,
                "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> CutterModel:
        unet = keras.saving.deserialize_keras_object(config.pop("unet"))
        weights = LossWeights(config.pop("lam_natural"), config.pop("beta"),
                              config.pop("boundary", 0.0))
        return cls(unet, weights, **config)


def compile_step(unet: keras.Model, preset: Preset, *, with_mask: bool, eager: bool,
                 jit_compile: bool | None = None) -> CutterModel:
    """:class:`CutterModel` of ``unet`` compiled with Adam at the preset's learning rate.

    Parameters
    ----------
    unet : keras.Model
        The network to train.
    preset : Preset
        λ, β (:meth:`~cellcutter_nb.config.Preset.loss_weights`) and the learning rate.
    with_mask : bool
        False: β = 0 (training without the mask M).
    eager : bool
        Run the step eagerly (short runs: see :data:`EAGER_MAX_STEPS`).
    jit_compile : bool, optional
        XLA/jit for a compiled step; default :func:`default_jit`.
    """
    model = CutterModel(unet, preset.loss_weights(with_mask))
    model.compile(optimizer=keras.optimizers.Adam(preset.learning_rate), run_eagerly=eager,
                  jit_compile=False if eager else
                  (default_jit() if jit_compile is None else jit_compile))
    return model


def train_step(model: CutterModel, batch: AreaBatch, transform: int) -> dict[str, Any]:
    """One optimizer step on one area batch, as :func:`cellcutter_nb.core.train.train`
    takes it: padding slots filled with real patches (:func:`fill_padding`), the whole
    batch geometry transformed by dihedral ``transform`` (:func:`transform_batch`), then
    ``train_on_batch``.

    Returns
    -------
    dict
        The step's logs: ``loss`` and the running means of :data:`TERMS`.

    Examples
    --------
    >>> import numpy as np
    >>> from cellcutter_nb import config
    >>> from cellcutter_nb.core.model import build_unet
    >>> step = compile_step(build_unet(2, 4, 2, 16, seed=0), config.get_preset("paper"),
    ...                     with_mask=True, eager=True)
    >>> batch = AreaBatch(np.ones((2, 16, 16, 2), np.float32), np.array([1.0, 0.0]),
    ...                   np.zeros((2, 2), np.int32), np.ones((32, 32), np.float32),
    ...                   np.array([0, -1]), (0, 0))
    >>> sorted(train_step(step, batch, transform=5))
    ['area', 'boundary', 'loss', 'mask', 'overlap']
    """
    b = transform_batch(fill_padding(batch), transform)
    return model.train_on_batch(b.patches, b.targets(), return_dict=True)
