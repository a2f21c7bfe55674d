"""BatchNorm: Keras' layer in float32, the same normalisation and gradient in bfloat16."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cellcutter_nb.backend import dtype_policy, keras
from cellcutter_nb.core.batchnorm import BatchNorm, normalise

ops = keras.ops
tf = pytest.importorskip("tensorflow")


def _activations(seed=0, shape=(6, 8, 8, 4)):
    rng = np.random.default_rng(seed)
    x = np.abs(rng.normal(size=shape)) * rng.uniform(0.5, 3.0, shape[-1]) + 0.5
    return x.astype(np.float32), rng.normal(size=shape).astype(np.float32)


def _train_pass(layer, x, w):
    """Output, gradients (x, gamma, beta) of sum(y · w), and the moving statistics."""
    x = tf.convert_to_tensor(x, layer.compute_dtype)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * w)
    grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
    return ([np.asarray(tf.cast(t, tf.float32)) for t in (y, *grads)],
            [np.asarray(v) for v in (layer.moving_mean, layer.moving_variance)])


def test_float32_is_keras_batchnorm_exactly():
    x, w = _activations()
    ours, theirs = BatchNorm(), keras.layers.BatchNormalization()
    for a, b in zip(_train_pass(ours, x, w)[0] + _train_pass(ours, x, w)[1],
                    _train_pass(theirs, x, w)[0] + _train_pass(theirs, x, w)[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_closed_form_gradient_equals_automatic_differentiation():
    x, w = _activations(1)
    x, gamma, beta = (tf.constant(v) for v in (x, [1.5, 0.5, 2.0, 1.0], [0.1, 0.0, -1.0, 2.0]))
    mean, var = tf.nn.moments(x, axes=[0, 1, 2])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, gamma, beta])
        ours = tf.reduce_sum(normalise(x, gamma, beta, tf.stop_gradient(mean),
                                       tf.stop_gradient(var), 1e-3) * w)
        m, v = tf.nn.moments(x, axes=[0, 1, 2])  # with their gradient
        naive = tf.reduce_sum(((x - m) * tf.math.rsqrt(v + 1e-3) * gamma + beta) * w)
    np.testing.assert_allclose(float(ours), float(naive), rtol=1e-5)
    for a, b in zip(tape.gradient(ours, [x, gamma, beta]), tape.gradient(naive, [x, gamma, beta]),
                    strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)


def test_bfloat16_matches_keras_to_bfloat16_rounding():
    x, w = _activations(2)
    with dtype_policy("mixed_bfloat16"):
        ours, theirs = BatchNorm(), keras.layers.BatchNormalization()
    (y, dx, dg, db), moving = _train_pass(ours, x, w)
    (y_k, dx_k, dg_k, db_k), moving_k = _train_pass(theirs, x, w)
    for a, b in ((y, y_k), (dx, dx_k)):  # bfloat16 keeps 8 bits of mantissa
        assert np.abs(a - b).max() <= 2 ** -6 * np.abs(b).max()
    for a, b in ((dg, dg_k), (db, db_k), *zip(moving, moving_k, strict=True)):
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-2 * np.abs(b).max())
    assert y.dtype == np.float32 and ours(x, training=True).dtype == "bfloat16"


JAX_CHECK = """
import numpy as np, jax, jax.numpy as jnp
from cellcutter_nb.core.batchnorm import normalise
rng = np.random.default_rng(0)
x = jnp.asarray(rng.normal(size=(3, 4, 5, 2)) * 2 + 1, jnp.float32)
w = jnp.asarray(rng.normal(size=x.shape), jnp.float32)
def ours(x, g, b):
    m, v = (jax.lax.stop_gradient(f(x, (0, 1, 2))) for f in (jnp.mean, jnp.var))
    return jnp.sum(normalise(x, g, b, m, v, 1e-3) * w)
def naive(x, g, b):
    return jnp.sum(((x - x.mean((0, 1, 2))) / jnp.sqrt(x.var((0, 1, 2)) + 1e-3) * g + b) * w)
args = (x, jnp.asarray([1.5, 0.7]), jnp.asarray([0.1, -0.2]))
ref = jax.grad(naive, argnums=(0, 1, 2))(*args)
for fn in (jax.grad(ours, argnums=(0, 1, 2)), jax.jit(jax.grad(ours, argnums=(0, 1, 2)))):
    print(max(float(jnp.abs(a - b).max()) for a, b in zip(fn(*args), ref)))
"""


def test_the_gradient_also_holds_under_jax():
    pytest.importorskip("jax")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
               PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", JAX_CHECK], capture_output=True, text=True,
                          env=env, timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    errors = [float(v) for v in proc.stdout.split()]
    assert len(errors) == 2 and max(errors) < 1e-5  # eager and jit
