"""Tests of cellcutter_nb.core.loss: Eq. 1 on the canvas vs a naive pairwise reference.

The JAX checks run in a subprocess with ``KERAS_BACKEND=jax`` (Keras reads the backend
at import); the in-process checks use whatever backend Keras runs here (TensorFlow).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from cellcutter_nb.config import LossWeights, get_preset  # noqa: E402
from cellcutter_nb.core.loss import boundary_term, canvas_indices, cutter_loss  # noqa: E402

K = 8
CANVAS = (40, 36)
PARAMS = [dict(lam=3.32, log_base=10.0, beta=15.0), dict(lam=1.0, log_base=math.e, beta=20.0)]


def weights(lam=3.32, log_base=10.0, beta=15.0):
    """The loss weights of a preset with this λ, log base and β (defaults: the paper's)."""
    return get_preset("paper").replace(lam=lam, log_base=log_base, beta=beta).loss_weights()


def naive_loss(logits, offsets, valid, mask, lam, log_base, beta, eps=1e-7):
    """Eq. 1 written literally: zero-padded full canvases and an explicit N×N sum (float64)."""
    logits = np.asarray(logits, np.float64)
    keep = np.asarray(valid) > 0
    n = int(keep.sum())
    ys = np.zeros((n, *mask.shape))
    for slot, (lg, o) in enumerate(zip(logits[keep], offsets[keep], strict=True)):
        ys[slot, o[0]:o[0] + K, o[1]:o[1] + K] = 1 / (1 + np.exp(-lg))
    logs = np.log(np.maximum(1 - ys, eps)) / np.log(log_base)  # log_b(1 - y^j), 0 off-patch
    pair = np.einsum("ihw,jhw->ij", ys, logs)  # (N, N): Σ_p y^i log_b(1 - y^j)
    area = -ys.sum()
    overlap = -lam * (pair.sum() - np.trace(pair))
    mask_term = beta * (ys * (1 - mask)).sum()
    n = max(n, 1)
    return np.array([area + overlap + mask_term, area, overlap, mask_term]) / n


def make_case(seed, n_valid, n_pad):
    """Random logits/offsets/mask; padding patches get random (garbage) logits and offsets."""
    rng = np.random.default_rng(seed)
    p = n_valid + n_pad
    logits = rng.normal(0.0, 2.5, (p, K, K, 1)).astype(np.float32)
    offsets = np.column_stack([rng.integers(0, CANVAS[0] - K + 1, p),
                               rng.integers(0, CANVAS[1] - K + 1, p)]).astype(np.int32)
    valid = np.zeros(p, np.float32)
    valid[rng.permutation(p)[:n_valid]] = 1.0
    mask = (rng.random(CANVAS) > 0.4).astype(np.float32)
    return logits, offsets, valid, mask


CASES = [(0, 1, 0), (1, 5, 3), (2, 12, 8), (3, 20, 0), (4, 17, 3)]


def _terms(t):
    """Eq. 1's total and three terms (the boundary term is 0 for these weights)."""
    assert float(t.boundary) == 0.0
    return np.array([float(x) for x in t[:4]])


def test_canvas_loss_equals_naive_pairwise_loss():
    worst = rel = 0.0
    for seed, n_valid, n_pad in CASES:
        logits, offsets, valid, mask = make_case(seed, n_valid, n_pad)
        for par in PARAMS:
            got = _terms(cutter_loss(logits, offsets, valid, mask, weights(**par)))
            ref = naive_loss(logits[..., 0], offsets, valid, mask, **par)
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
            worst = max(worst, float(np.abs(got - ref).max()))
            rel = max(rel, float((np.abs(got - ref) / np.maximum(np.abs(ref), 1)).max()))
    print(f"max |canvas - naive| ({keras.backend.backend()}): {worst:.2e} abs, {rel:.2e} rel")


def test_padding_patches_do_not_change_the_loss():
    logits, offsets, valid, mask = make_case(5, 6, 0)
    base = _terms(cutter_loss(logits, offsets, valid, mask, weights()))
    rng = np.random.default_rng(9)
    junk = rng.normal(0, 5, (4, K, K, 1)).astype(np.float32)
    padded = cutter_loss(np.concatenate([logits, junk]),
                         np.concatenate([offsets, rng.integers(0, 20, (4, 2))]).astype(np.int32),
                         np.concatenate([valid, np.zeros(4, np.float32)]), mask, weights())
    np.testing.assert_allclose(_terms(padded), base, rtol=1e-6, atol=1e-6)


def test_mask_term_vanishes_inside_mask_and_penalises_outside():
    logits, offsets, valid, _ = make_case(6, 7, 2)
    inside = cutter_loss(logits, offsets, valid, np.ones(CANVAS, np.float32),
                         weights(beta=15.0))
    assert float(inside.mask) == 0.0
    outside = cutter_loss(logits, offsets, valid, np.zeros(CANVAS, np.float32),
                          weights(beta=15.0))
    assert float(outside.mask) == pytest.approx(-15.0 * float(outside.area), rel=1e-6)
    assert float(outside.total) > float(inside.total)


def test_log_base_is_absorbed_into_lambda():
    logits, offsets, valid, mask = make_case(7, 9, 1)
    paper = _terms(cutter_loss(logits, offsets, valid, mask, weights(lam=3.32, log_base=10.0)))
    natural = _terms(cutter_loss(logits, offsets, valid, mask,
                                 weights(lam=3.32 / math.log(10), log_base=math.e)))
    np.testing.assert_allclose(paper, natural, rtol=1e-6)
    # balanced λ: at y = 0.5 everywhere, two fully overlapping patches cancel area and overlap
    t = cutter_loss(np.zeros((2, K, K)), [[0, 0], [0, 0]], [1, 1], np.ones(CANVAS),
                    weights(lam=1 / math.log10(2), log_base=10.0))
    assert float(t.area) == pytest.approx(-K * K * 0.5)
    assert float(t.total) == pytest.approx(0.0, abs=1e-4)


def test_preset_supplies_the_weights_and_indices_are_flat():
    logits, offsets, valid, mask = make_case(8, 4, 0)
    a = _terms(cutter_loss(logits, offsets, valid, mask,
                           get_preset("original_code").loss_weights()))
    b = _terms(cutter_loss(logits, offsets, valid, mask, LossWeights(lam_natural=1.0, beta=20.0)))
    np.testing.assert_array_equal(a, b)
    idx = keras.ops.convert_to_numpy(canvas_indices(offsets, K, CANVAS[1]))
    assert idx[0, 0, 0] == offsets[0, 0] * CANVAS[1] + offsets[0, 1]
    assert idx[0, K - 1, K - 1] == (offsets[0, 0] + K - 1) * CANVAS[1] + offsets[0, 1] + K - 1


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="logits must have shape"):
        cutter_loss(np.zeros((2, 4, 5)), [[0, 0]] * 2, [1, 1], np.ones((9, 9)), weights())
    with pytest.raises(ValueError, match="one \\(Hc, Wc\\) canvas"):
        cutter_loss(np.zeros((2, 4, 4)), [[0, 0]] * 2, [1, 1], np.ones((1, 9, 9)), weights())


class _LossModel(keras.Model):
    """Tiny model whose compute_loss is Eq. 1 for one fixed area batch (backend-neutral)."""

    def __init__(self, offsets, valid, mask):
        super().__init__(name="loss_model")
        self.conv = keras.layers.Conv2D(1, 3, padding="same")
        self.batch = (offsets, valid, mask)

    def call(self, x):
        return self.conv(x)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return cutter_loss(y_pred, *self.batch, weights()).total


def test_compiled_train_step_gives_finite_gradients():
    logits, offsets, valid, mask = make_case(10, 6, 2)
    x = np.random.default_rng(1).normal(size=(len(valid), K, K, 2)).astype(np.float32)
    model = _LossModel(offsets, valid, mask)
    model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=True)
    model(x)
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, None)
    after = model.get_weights()
    assert np.isfinite(loss)
    assert all(np.isfinite(w).all() for w in after)
    assert any(not np.allclose(a, b) for a, b in zip(after, before, strict=True))


JAX_SCRIPT = textwrap.dedent("""
    import json, math, sys
    import numpy as np
    import jax, keras
    assert keras.backend.backend() == "jax"
    from cellcutter_nb.config import LossWeights
    from cellcutter_nb.core.loss import cutter_loss
    data = np.load(sys.argv[1])
    out = {}
    for name in sorted({k.split("_")[0] for k in data.files}):
        lg, of, va, ma = (data[f"{name}_{s}"] for s in ("logits", "offsets", "valid", "mask"))
        lam, log_base, beta = (float(v) for v in data[f"{name}_par"])
        w = LossWeights(lam / math.log(log_base), beta)
        eager = [float(t) for t in cutter_loss(lg, of, va, ma, w)[:4]]
        jitted = jax.jit(lambda a, b, c, d: cutter_loss(a, b, c, d, w))(lg, of, va, ma)
        f = lambda a: cutter_loss(a, of, va, ma, w).total
        g = np.asarray(jax.jit(jax.grad(f))(lg))
        g_extreme = np.asarray(jax.grad(f)(lg * 60.0))  # saturated sigmoids
        out[name] = dict(eager=eager, jit=[float(t) for t in jitted[:4]],
                         grad_finite=bool(np.isfinite(g).all()),
                         grad_extreme_finite=bool(np.isfinite(g_extreme).all()),
                         grad_pad_zero=bool(np.all(g[va == 0] == 0)))
    # a compiled Keras train step with Eq. 1 under JAX
    lg, of, va, ma = (data[f"c0_{s}"] for s in ("logits", "offsets", "valid", "mask"))
    class M(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(1, 3, padding="same")
        def call(self, x):
            return self.conv(x)
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            return cutter_loss(y_pred, of, va, ma, LossWeights(3.32 / math.log(10), 15.0)).total
    m = M()
    m.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=True)
    x = np.random.default_rng(1).normal(size=(len(va),) + lg.shape[1:3] + (2,)).astype("float32")
    out["train_loss"] = float(m.train_on_batch(x, None))
    print("RESULT" + json.dumps(out))
""")


@pytest.mark.slow
def test_jax_backend_matches_naive_and_has_finite_gradients(tmp_path: Path):
    pytest.importorskip("jax")
    arrays, refs = {}, {}
    for i, (seed, n_valid, n_pad) in enumerate(CASES):
        par = PARAMS[i % 2]
        logits, offsets, valid, mask = make_case(seed, n_valid, n_pad)
        name = f"c{i}"
        arrays.update({f"{name}_logits": logits, f"{name}_offsets": offsets,
                       f"{name}_valid": valid, f"{name}_mask": mask,
                       f"{name}_par": np.array([par["lam"], par["log_base"], par["beta"]])})
        refs[name] = naive_loss(logits[..., 0], offsets, valid, mask, **par)
    np.savez(tmp_path / "cases.npz", **arrays)
    script = tmp_path / "check_jax.py"
    script.write_text(JAX_SCRIPT)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "cases.npz")],
                          capture_output=True, text=True, env=env, timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    out = json.loads(line[len("RESULT"):])
    worst = rel = 0.0
    for name, ref in refs.items():
        for key in ("eager", "jit"):
            got = np.array(out[name][key])
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
            worst = max(worst, float(np.abs(got - ref).max()))
            rel = max(rel, float((np.abs(got - ref) / np.maximum(np.abs(ref), 1)).max()))
        assert out[name]["grad_finite"] and out[name]["grad_extreme_finite"]
        assert out[name]["grad_pad_zero"]
    assert np.isfinite(out["train_loss"])
    print(f"max |canvas - naive| (jax): {worst:.2e} abs, {rel:.2e} rel")


def naive_boundary(y, cost):
    """Loop reference of the boundary term: Σ 4-neighbour pairs of mean cost × |Δy|."""
    total = 0.0
    for p in range(y.shape[0]):
        for r in range(y.shape[1]):
            for c in range(y.shape[2]):
                for dr, dc in ((1, 0), (0, 1)):
                    rr, cc = r + dr, c + dc
                    if rr < y.shape[1] and cc < y.shape[2]:
                        total += 0.5 * (cost[p, r, c] + cost[p, rr, cc]) * abs(
                            y[p, r, c] - y[p, rr, cc])
    return total


def test_boundary_term_equals_pixel_loop_and_joins_the_total():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2, (3, 6, 6)).astype(np.float32)
    cost = rng.random((3, 6, 6)).astype(np.float32)
    valid = np.array([1.0, 1.0, 0.0], np.float32)
    y = (1 / (1 + np.exp(-logits))) * valid[:, None, None]
    np.testing.assert_allclose(float(boundary_term(y, cost)), naive_boundary(y, cost),
                               rtol=1e-5)
    offsets = np.array([[0, 0], [2, 3], [0, 0]], np.int32)
    mask = np.ones((10, 10), np.float32)
    plain = cutter_loss(logits, offsets, valid, mask, LossWeights(1.0, 2.0))
    with_term = cutter_loss(logits, offsets, valid, mask, LossWeights(1.0, 2.0, 0.5), cost)
    expected = 0.5 * naive_boundary(y, cost) / 2  # two valid patches
    np.testing.assert_allclose(float(with_term.boundary), expected, rtol=1e-5)
    np.testing.assert_allclose(float(with_term.total), float(plain.total) + expected, rtol=1e-5)
    with pytest.raises(ValueError, match="boundary_cost"):
        cutter_loss(logits, offsets, valid, mask, LossWeights(1.0, 2.0, 0.5))
