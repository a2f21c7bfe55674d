"""BatchNormalization for bfloat16 networks: one multiply-add each way.

Keras 3's :class:`keras.layers.BatchNormalization` computes a mixed-precision network's
normalisation in float32: the activations are cast up, the moments taken, the
normalisation applied and the result cast back, and its gradient is what automatic
differentiation makes of those steps — a dozen passes over every activation. On a CPU
with AVX-512 BF16 that made BatchNorm 21-24 % of a bfloat16 training step
(``benchmarks/step_profile.py``), the largest cost after the convolutions.

:class:`BatchNorm` is that layer with the same weights, configuration and inference,
whose *training* pass in a bfloat16/float16 network

* takes the batch moments in float32 (as Keras does, without their gradient),
* normalises in the compute dtype as ``x · s + t`` with per-channel ``s = γ/σ`` and
  ``t = β − μ s``,
* and differentiates by the closed form of BatchNorm's gradient
  (:func:`normalise`: two float32 reductions, then ``dx = g · s + x · b + c``),

so the numbers are BatchNorm's up to bfloat16 rounding. In a float32 network it *is*
Keras' layer (same code path, same numbers), so float32 runs are unchanged.

Examples
--------
>>> import numpy as np
>>> x = np.arange(8.0, dtype="float32").reshape(2, 2, 2, 1)
>>> out = BatchNorm(epsilon=0.0)(x, training=True)
>>> [round(float(v), 3) for v in np.asarray(out).ravel()[:3]]
[-1.528, -1.091, -0.655]
"""

from __future__ import annotations

from typing import Any

from ..backend import keras

ops = keras.ops

__all__ = ["BatchNorm", "normalise"]

#: Axes of the batch moments of an (N, H, W, C) activation.
_AXES = (0, 1, 2)


def normalise(x: Any, gamma: Any, beta: Any, mean: Any, variance: Any,
              epsilon: float) -> Any:
    """``γ (x − μ) / √(σ² + ε) + β`` in ``x``'s dtype, with BatchNorm's training gradient.

    ``mean`` and ``variance`` (float32, per channel) must be ``x``'s own batch moments
    over (N, H, W), taken without gradient: the gradient returned for ``x`` includes
    their dependence on ``x`` (the closed form of BatchNorm's backward pass), so that
    nothing but two reductions and one multiply-add runs over the activations.

    Parameters
    ----------
    x : tensor (N, H, W, C)
        Activations, any float dtype.
    gamma, beta : tensor (C,)
        Scale and offset, float32.
    mean, variance : tensor (C,)
        Batch moments of ``x``, float32, without gradient.
    epsilon : float
        Added to the variance.

    Returns
    -------
    tensor
        Normalised ``x``, in its dtype.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([1.0, 3.0], "float32").reshape(2, 1, 1, 1)
    >>> one, zero = np.ones(1, "float32"), np.zeros(1, "float32")
    >>> y = normalise(x, one, zero, np.array([2.0], "float32"), one, 0.0)
    >>> np.asarray(y).ravel().tolist()
    [-1.0, 1.0]
    """
    @ops.custom_gradient
    def forward(x, gamma, beta, mean, variance):
        inv = ops.rsqrt(variance + epsilon)
        scale = gamma * inv
        y = x * ops.cast(scale, x.dtype) + ops.cast(beta - mean * scale, x.dtype)

        def backward(*args: Any, upstream: Any = None) -> tuple:
            g = args[0] if upstream is None else upstream
            g32, x32 = ops.cast(g, "float32"), ops.cast(x, "float32")
            n = ops.cast(ops.size(x) // ops.shape(x)[-1], "float32")
            d_beta = ops.sum(g32, axis=_AXES)
            d_gamma = (ops.sum(g32 * x32, axis=_AXES) - mean * d_beta) * inv
            # dx = s (g − mean(g) − x̂ · mean(g x̂)) written as g · s + x · b + c
            b = -scale * inv * d_gamma / n
            c = -scale * d_beta / n - b * mean
            d_x = g * ops.cast(scale, g.dtype) + x * ops.cast(b, g.dtype) + ops.cast(c, g.dtype)
            # the moments come without gradient: their part is in d_x already
            return d_x, d_gamma, d_beta, ops.zeros_like(mean), ops.zeros_like(variance)

        return y, backward

    return forward(x, gamma, beta, mean, variance)


@keras.saving.register_keras_serializable(package="cellcutter_nb")
class BatchNorm(keras.layers.BatchNormalization):
    """:class:`keras.layers.BatchNormalization` whose training pass in a bfloat16/float16
    network normalises in the compute dtype with a closed-form gradient (module
    docstring); identical to it otherwise (float32 networks, inference, masks, renorm,
    a channel axis other than the last).

    Examples
    --------
    >>> from cellcutter_nb.backend import dtype_policy
    >>> with dtype_policy("mixed_bfloat16"):
    ...     layer = BatchNorm()
    >>> layer.compute_dtype, isinstance(layer, keras.layers.BatchNormalization)
    ('bfloat16', True)
    """

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        low_precision = self.compute_dtype in ("bfloat16", "float16")
        if not (training and self.trainable and low_precision and mask is None
                and not self.renorm and self.axis in (-1, len(inputs.shape) - 1)
                and len(inputs.shape) == 4 and self.scale and self.center):
            return super().call(inputs, training=training, mask=mask)
        x32 = ops.stop_gradient(ops.cast(inputs, "float32"))
        mean, variance = ops.moments(x32, axes=_AXES)
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(self.moving_variance * momentum
                                    + variance * (1.0 - momentum))
        return normalise(inputs, ops.cast(self.gamma, "float32"), ops.cast(self.beta, "float32"),
                         mean, variance, self.epsilon)
