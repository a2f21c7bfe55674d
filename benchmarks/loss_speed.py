"""Eq. 1 on the canvas (``cellcutter_nb.core.loss``) vs naive all-pairs implementations.

Three implementations of the same loss value, all in ``keras.ops`` (TensorFlow eager on
CPU by default; ``KERAS_BACKEND=jax`` works too), forward pass only:

* ``canvas`` — :func:`cellcutter_nb.core.loss.cutter_loss`: scatter-add log(1 - y) of every
  patch into one canvas, gather it back; O(N·k² + canvas) time and memory.
* ``pairwise`` — every ordered patch pair (i, j), i ≠ j: patch j's log(1 - y) is read
  through the window where patch i lies (an N × N × k × k gather, in chunks of rows so
  memory stays bounded); O(N²·k²) time. The "all patch pairs" formulation.
* ``dense`` — the literal reference of ``tests/test_loss.py``: every patch on its own
  zero canvas, then an N × N matrix of Σ_p y^i log(1 - y^j) by one matrix product;
  O(N·canvas) memory, O(N²·canvas) time. Skipped where it would need more than
  ``--max-gb``.

Patches are 64×64 with random logits, placed at random at the density of the paper's
fields (~375 patches per 640×640 area), on a square canvas of side
``64 + 640·sqrt(N / 375)``. Each (implementation, N) runs in its own subprocess, which
times ``--repeats`` calls (fewer once they took ``--budget`` seconds) after one warm-up
call on a small input (median reported) and
reads its peak resident memory (``VmHWM`` from /proc, reset just before the loss calls,
so the figure is the loss's own peak above the process's resident set). The values of
the three are checked against each other first.

Run: ``python benchmarks/loss_speed.py`` (~5 min on 2 CPU cores; ``--sizes 100 400``
for a quicker look).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
K = 64
DENSITY = 375 / 640**2  # patches per px² in the paper-sized synthetic fields
PARAMS = {"lam": 3.32, "log_base": 10.0, "beta": 15.0}
EPS = 1e-7


def make_inputs(n: int, seed: int = 0) -> tuple:
    """Random logits (n, k, k), offsets on a canvas of the paper's density, valid, mask."""
    side = K + math.ceil(math.sqrt(n / DENSITY))
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, (n, K, K)).astype(np.float32)
    offsets = rng.integers(0, side - K + 1, (n, 2)).astype(np.int32)
    valid = np.ones(n, np.float32)
    mask = (rng.random((side, side)) > 0.3).astype(np.float32)
    return logits, offsets, valid, mask


def _terms(ops, logits, valid, mask_vals):
    """Shared pieces: y, log(1 - y) (clipped, like the canvas code), n, area, mask term."""
    v = ops.reshape(ops.convert_to_tensor(valid), (-1, 1, 1))
    logits = ops.convert_to_tensor(logits)
    y = ops.sigmoid(logits) * v
    log1m = -ops.minimum(ops.softplus(logits), -math.log(EPS)) * v
    n = ops.maximum(ops.sum(v), 1.0)
    area = -ops.sum(y) / n
    mask_term = PARAMS["beta"] * ops.sum(y * (1.0 - mask_vals)) / n
    return y, log1m, n, area, mask_term


def pairwise_loss(logits, offsets, valid, mask, chunk_elems: int = 50_000_000):
    """All ordered pairs: Σ_{i≠j} Σ_p y^i_p log(1 - y^j_p) through an N×N×k×k gather."""
    from cellcutter_nb.backend import keras
    from cellcutter_nb.core.loss import canvas_indices

    ops = keras.ops
    n_p, k = logits.shape[0], logits.shape[1]
    idx = canvas_indices(offsets, k, mask.shape[1])
    mask_vals = ops.take(ops.reshape(ops.convert_to_tensor(mask), (-1,)), idx)
    y, log1m, n, area, mask_term = _terms(ops, logits, valid, mask_vals)
    # log(1 - y^j) padded by k on every side: a shift d in [-k, k]² stays inside
    side = 3 * k
    padded = ops.reshape(ops.pad(log1m, ((0, 0), (k, k), (k, k))), (-1,))
    grid = ops.arange(k, dtype="int32")
    off = ops.convert_to_tensor(offsets, "int32")
    base_j = ops.arange(n_p, dtype="int32") * side * side  # (N,)
    rows_per_chunk = max(1, chunk_elems // (n_p * k * k))
    pair_sum = 0.0
    for start in range(0, n_p, rows_per_chunk):
        stop = min(start + rows_per_chunk, n_p)
        d = ops.clip(ops.expand_dims(off[start:stop], 1) - ops.expand_dims(off, 0), -k, k)
        r = d[..., 0:1] + k + grid  # (C, N, k): row of patch j under row r of patch i
        c = d[..., 1:2] + k + grid
        flat = (ops.reshape(base_j, (1, -1, 1, 1)) + ops.expand_dims(r, 3) * side
                + ops.expand_dims(c, 2))  # (C, N, k, k)
        pair = ops.sum(ops.expand_dims(y[start:stop], 1) * ops.take(padded, flat), axis=(2, 3))
        eye = ops.cast(ops.equal(ops.expand_dims(ops.arange(start, stop), 1),
                                 ops.expand_dims(ops.arange(n_p), 0)), pair.dtype)
        pair_sum = pair_sum + ops.sum(pair * (1.0 - eye))
    overlap = -PARAMS["lam"] / math.log(PARAMS["log_base"]) * pair_sum / n
    return [area + overlap + mask_term, area, overlap, mask_term]


def dense_loss(logits, offsets, valid, mask):
    """``tests/test_loss.py``'s reference in keras.ops: N zero canvases, an N×N product."""
    from cellcutter_nb.backend import keras
    from cellcutter_nb.core.loss import canvas_indices

    ops = keras.ops
    n_p, k = logits.shape[0], logits.shape[1]
    hw = mask.shape[0] * mask.shape[1]
    idx = canvas_indices(offsets, k, mask.shape[1])
    mask_flat = ops.reshape(ops.convert_to_tensor(mask), (-1,))
    y, log1m, n, area, _ = _terms(ops, logits, valid, ops.take(mask_flat, idx))
    seg = ops.reshape(idx + ops.reshape(ops.arange(n_p, dtype="int32") * hw, (-1, 1, 1)), (-1,))
    ys = ops.reshape(ops.segment_sum(ops.reshape(y, (-1,)), seg, num_segments=n_p * hw),
                     (n_p, hw))
    logs = ops.reshape(ops.segment_sum(ops.reshape(log1m, (-1,)), seg, num_segments=n_p * hw),
                       (n_p, hw))
    pair = ops.matmul(ys, ops.transpose(logs))  # (N, N)
    overlap = (-PARAMS["lam"] / math.log(PARAMS["log_base"])
               * (ops.sum(pair) - ops.trace(pair)) / n)
    mask_term = PARAMS["beta"] * ops.sum(ys * (1.0 - mask_flat)) / n
    return [area + overlap + mask_term, area, overlap, mask_term]


def canvas_loss(logits, offsets, valid, mask):
    from cellcutter_nb.config import LossWeights
    from cellcutter_nb.core.loss import cutter_loss

    weights = LossWeights(PARAMS["lam"] / math.log(PARAMS["log_base"]), PARAMS["beta"])
    return list(cutter_loss(logits, offsets, valid, mask, weights, eps=EPS))


IMPLS = {"canvas": canvas_loss, "pairwise": pairwise_loss, "dense": dense_loss}


def dense_bytes(n: int) -> int:
    """Rough peak of ``dense``: three N×canvas float32 arrays (two canvases + a product)."""
    side = K + math.ceil(math.sqrt(n / DENSITY))
    return 3 * 4 * n * side * side


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def worker(impl: str, n: int, repeats: int, budget_s: float) -> dict:
    """Time one implementation at one N in this process."""
    from cellcutter_nb.backend import backend_name, keras

    fn = IMPLS[impl]
    small = make_inputs(8, seed=1)
    [float(t) for t in fn(*small)]  # warm-up: op kernels, first-call overheads
    inputs = make_inputs(n)
    tensors = [keras.ops.convert_to_tensor(a) for a in inputs]
    try:  # reset the peak-RSS counter (Linux >= 4.0) so VmHWM is this call's peak
        Path("/proc/self/clear_refs").write_text("5")
        base, how = _rss_kb("VmRSS"), "VmHWM"
    except OSError:
        import resource

        base, how = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"
    times, values = [], []
    while len(times) < repeats and (not times or sum(times) < budget_s):
        t0 = time.perf_counter()
        values = [float(t) for t in fn(*tensors)]  # float(): waits for the result
        times.append(time.perf_counter() - t0)
    if how == "VmHWM":
        peak = _rss_kb("VmHWM")
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"impl": impl, "n": n, "backend": backend_name(), "seconds": statistics.median(times),
            "times": times, "peak_mb": (peak - base) / 1024, "memory": how, "values": values,
            "canvas_side": int(inputs[3].shape[0]), "load": os.getloadavg()[0]}


def run_worker(impl: str, n: int, repeats: int, budget_s: float) -> dict | None:
    env = dict(os.environ, CELLCUTTER_NB_QUIET="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, __file__, "--worker", f"{impl}:{n}",
                           "--repeats", str(repeats), "--budget", str(budget_s)],
                          env=env, stdout=subprocess.PIPE, text=True)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
    if proc.returncode or not lines:
        print(f"{impl} N={n}: failed (exit {proc.returncode})", flush=True)
        return None
    return json.loads(lines[-1][len("RESULT"):])


def check_agreement() -> float:
    """Largest relative difference between the three implementations on a small case."""
    inputs = make_inputs(60, seed=3)
    vals = np.array([[float(t) for t in IMPLS[i](*inputs)] for i in IMPLS])
    return float((np.abs(vals - vals[0]) / np.maximum(np.abs(vals[0]), 1.0)).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 400, 1500])
    parser.add_argument("--impls", nargs="+", default=list(IMPLS), choices=list(IMPLS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=60.0,
                        help="no further repeat once the calls took this long (s)")
    parser.add_argument("--max-gb", type=float, default=4.0,
                        help="skip the dense reference where it would need more")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        impl, n = args.worker.split(":")
        print("RESULT" + json.dumps(worker(impl, int(n), args.repeats, args.budget)), flush=True)
        return
    from cellcutter_nb.backend import backend_name

    print(f"backend {backend_name()}; max relative difference between implementations "
          f"(N=60): {check_agreement():.1e}", flush=True)
    rows = []
    for n in args.sizes:
        for impl in args.impls:
            if impl == "dense" and dense_bytes(n) > args.max_gb * 2**30:
                print(f"dense N={n}: skipped (needs ~{dense_bytes(n) / 2**30:.0f} GB)")
                rows.append({"impl": impl, "n": n, "skipped": dense_bytes(n) / 2**30})
                continue
            row = run_worker(impl, n, args.repeats, args.budget)
            if row:
                rows.append(row)
                print(json.dumps(row), flush=True)
    by = {(r["impl"], r["n"]): r for r in rows}
    print(f"\nEq. 1 forward, {backend_name()} on CPU, median of up to {args.repeats} calls "
          f"(fewer once they took {args.budget:.0f} s); peak = resident memory above the "
          "process before the calls")
    print("| N | canvas side | impl | time (s) | calls | peak (MB) | × canvas time | load |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['n']} | | {r['impl']} | skipped (~{r['skipped']:.0f} GB) | | | | |")
            continue
        base = by.get(("canvas", r["n"]))
        ratio = r["seconds"] / base["seconds"] if base else float("nan")
        print(f"| {r['n']} | {r['canvas_side']} | {r['impl']} | {r['seconds']:.4f} "
              f"| {len(r['times'])} | {r['peak_mb']:.0f} | {ratio:.1f} | {r['load']:.2f} |")


if __name__ == "__main__":
    main()
