"""GPU benchmark driver (run by ``benchmarks/gpu.sh``): float32 vs mixed precision, then
Table 1 at full scale, all inside one wall-time budget.

1. Replicate 0 of the ``full`` profile (1750×1750 synthetic field, nuclei markers,
   graph-cut mask; :func:`cellcutter_nb.experiments.model_cache.replicate`) is prepared once.
2. One FL+Nuc model of width 32 is trained on it with the ``paper`` preset, first in
   float32, then under a mixed dtype policy (``mixed_bfloat16`` by default; Eq. 1 stays
   float32: :func:`cellcutter_nb.core.loss.cutter_loss` casts the logits to float32 before
   the sigmoid), each until its loss is stable (train's default rule: < 0.5 % change
   over 5 epochs) or ``--precision-s`` seconds. Printed: time and patches to the stable
   loss (or the cap), steady-state patches/s (epochs without scoring, after the first
   two), and the whole-field mIOU reached (Table 1's scoring).
3. The costs the grid will pay are measured: per-epoch scoring, the CellProfiler
   references of a replicate, compile time, and train()'s numpy input pipeline per
   step (it runs in series with the steps; its share of a GPU step is printed).
4. The Table 1 grid (6 input combinations × with/without mask × 3 replicates = 36
   models) runs through :func:`cellcutter_nb.experiments.paper.table1` with the ``full``
   profile shortened by ``replace(max_epochs=..., steps_per_epoch=...)`` so that it
   fits the time left (with fewer replicates only if 3 cannot fit with a compiled
   step); the arithmetic is printed before it starts. JAX's persistent compilation
   cache lets the 36 models share compiled train steps.

Outputs (CSV) go to ``--out`` (``$OUT`` if set, else ``benchmarks/results/gpu``):
``precision.csv``, ``precision_history.csv``, ``table1.csv``, ``table1_summary.csv``,
``budget.json``. ``GPU_SH_SMOKE=1`` shrinks everything (192-px fields, width 8, one
replicate, two combinations, a 180-s budget) to check the script end to end on a CPU.

Run: ``bash benchmarks/gpu.sh`` (which installs what is missing and sets
``KERAS_BACKEND=jax``), or directly ``KERAS_BACKEND=jax python benchmarks/gpu_grid.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

T0 = float(os.environ.get("GPU_SH_T0", time.time()))  # gpu.sh start: the budget counts it
SMOKE = os.environ.get("GPU_SH_SMOKE", "") not in ("", "0")


def elapsed() -> float:
    return time.time() - T0


def log(msg: str) -> None:
    print(f"[{elapsed():6.1f} s] {msg}", flush=True)


def enable_compilation_cache(path: str) -> None:
    """JAX's persistent compilation cache: the 36 grid models share a handful of train
    steps (3 input widths × with/without mask × padded shapes), compiled once each."""
    import jax

    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def steady_rate(rows: list[dict], first: int = 2) -> float:
    """Median patches/s of the epochs that follow an epoch without scoring (an epoch's
    ``seconds`` are stamped before its scoring), skipping the first (compiling) ones."""
    rates = []
    for prev, row in zip(rows, rows[1:], strict=False):
        if row["epoch"] >= first and "miou" not in prev:
            dt = row["seconds"] - prev["seconds"]
            if dt > 0:
                rates.append((row["patches_seen"] - prev["patches_seen"]) / dt)
    return statistics.median(rates) if rates else float("nan")


def precision_run(rep, profile, preset, policy: str, cap_s: float, seed: int) -> tuple:
    """Train FL+Nuc under ``policy`` until stable or ``cap_s``; score the whole field."""
    from cellcutter_nb.backend import dtype_policy
    from cellcutter_nb.core.integrate import predict_field
    from cellcutter_nb.core.train import train
    from cellcutter_nb.metrics import score

    channels = ("fl", "nuc")
    rows: list[dict] = []

    def on_epoch(row: dict) -> None:
        rows.append(dict(row))
        log(f"{policy} epoch {row['epoch']}: loss {row['loss']:.4g}, "
            f"{row['patches_seen']} patches, mIOU {row.get('miou', float('nan')):.3f}")

    with dtype_policy(policy):
        t0 = time.perf_counter()
        result = train(rep.field, channels, preset, profile, mask=rep.mask_for(channels),
                       markers=rep.markers, seed=seed, max_seconds=cap_s,
                       evaluate_every=5, progress=False, on_epoch=on_epoch)
        train_s = time.perf_counter() - t0
        labels = predict_field(result.model, rep.field, channels, preset, markers=rep.markers)
    scores, _ = score(labels, rep.field.labels, rep.markers)
    hist = pd.DataFrame(rows).assign(policy=policy)
    summary = {"policy": policy, "stopped": result.stopped, "seconds": round(train_s, 1),
               "stable_after_s": round(train_s, 1) if result.stopped == "stable" else None,
               "epochs": len(rows), "patches_seen": int(rows[-1]["patches_seen"]),
               "patches_per_s_steady": round(steady_rate(rows), 1),
               "patches_per_s_with_compile": round(result.patches_per_second, 1),
               "first_epoch_s": round(rows[0]["seconds"], 1),
               "final_loss": round(rows[-1]["loss"], 4), "miou": round(scores["miou"], 4),
               "ap50": round(scores["ap50"], 4)}
    log("precision " + json.dumps(summary))
    return summary, hist


def grid_profile(base, left_s: float, rate: float, patches_per_step: float, t_model_s: float,
                 t_epoch_s: float, n_models: int, t_fixed_s: float) -> tuple:
    """Most steps per model (epochs × steps, steps ≤ ``base.steps_per_epoch``) that fit.

    ``left_s - t_fixed_s`` is shared by ``n_models`` models, each costing ``t_model_s``
    plus, per epoch, ``t_epoch_s`` (``fit`` scores every epoch) and steps × patches per
    step / rate. Runs of at most ``step.EAGER_MAX_STEPS`` steps would run eagerly, so
    longer ones are preferred.
    """
    from cellcutter_nb.core import step

    eager_max = step.EAGER_MAX_STEPS
    per_model = (left_s - t_fixed_s) / n_models - t_model_s
    options = []
    for steps in range(1, base.steps_per_epoch + 1):
        epoch_s = t_epoch_s + steps * patches_per_step / rate
        epochs = int(per_model // epoch_s) if per_model > 0 else 0
        if epochs >= 1:
            options.append((epochs * steps > eager_max, epochs * steps, -epochs, steps))
    if options:
        _, total, neg_epochs, steps = max(options)
        epochs = -neg_epochs
    else:  # nothing fits: the smallest compiled run, over budget (said below)
        epochs, steps = 1, min(eager_max + 1, base.steps_per_epoch) if not SMOKE else 1
    text = (("OVER BUDGET: " if not options else "")
            + f"{left_s:.0f} s left - {t_fixed_s:.0f} s replicate prep and references = "
            f"{left_s - t_fixed_s:.0f} s for {n_models} models = "
            f"{(left_s - t_fixed_s) / n_models:.1f} s each = {t_model_s:.1f} s fixed "
            f"(patches, compile, final prediction and scoring) + epochs × ({t_epoch_s:.1f} s "
            f"scoring + steps × {patches_per_step:.0f} patches / {rate:.0f} patches/s) -> "
            f"{epochs} epochs × {steps} steps ≈ {epochs * steps * patches_per_step:,.0f} "
            f"patches per model (the paper: ~1,000 steps × ~400 patches)")
    return base.replace(max_epochs=epochs, steps_per_epoch=steps), text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT") or "benchmarks/results/gpu")
    parser.add_argument("--budget-s", type=float,
                        default=float(os.environ.get("GPU_SH_BUDGET_S",
                                                     180 if SMOKE else 540)),
                        help="wall time for all of gpu.sh, counted from GPU_SH_T0")
    parser.add_argument("--precision-s", type=float, default=45.0,
                        help="cap of each precision run (s)")
    parser.add_argument("--policy", default="mixed_bfloat16",
                        choices=["mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--margin-s", type=float, default=60.0,
                        help="kept free at the end (writing, slack)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-grid", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("CELLCUTTER_NB_QUIET", "1")

    from cellcutter_nb import config
    from cellcutter_nb.backend import backend_name, device_description
    from cellcutter_nb.experiments import model_cache, paper

    if backend_name() != "jax":
        raise SystemExit(f"KERAS_BACKEND must be jax (got {backend_name()}).")
    enable_compilation_cache(os.environ.get("GPU_SH_JAX_CACHE", "/tmp/cellcutter_nb_jax_cache"))
    preset = config.get_preset("paper")
    full = config.get_profile("full")
    combos = model_cache.COMBINATIONS
    if SMOKE:
        full = full.replace(field_size=192, unet_width=8, n_replicates=1, steps_per_epoch=2)
        combos = model_cache.COMBINATIONS[:2]
        args.precision_s = min(args.precision_s, 20.0)
    budget = {"device": device_description(), "backend": backend_name(), "smoke": SMOKE,
              "budget_s": args.budget_s, "profile": full.name, "field_size": full.field_size,
              "unet_width": full.unet_width}
    log(f"device {budget['device']}, backend jax, budget {args.budget_s:.0f} s, "
        f"field {full.field_size}², width {full.unet_width}, out {out}")

    # 1. replicate 0 (shared with the grid: model_cache.replicate is memoised)
    t = time.perf_counter()
    rep = model_cache.replicate(full, preset, 0, args.seed)
    t_prep = time.perf_counter() - t
    log(f"replicate 0: {rep.field.n_cells} cells, {len(rep.markers)} markers, "
        f"prep {t_prep:.1f} s")

    # 2. float32 vs mixed precision
    long_profile = full.replace(max_epochs=1000)
    summaries, hists = [], []
    for policy in ("float32", args.policy):
        s, h = precision_run(rep, long_profile, preset, policy, args.precision_s, args.seed)
        summaries.append(s)
        hists.append(h)
    pd.DataFrame(summaries).to_csv(out / "precision.csv", index=False)
    pd.concat(hists, ignore_index=True).to_csv(out / "precision_history.csv", index=False)
    print(pd.DataFrame(summaries).to_string(index=False), flush=True)

    # 3. Table 1 at full scale, sized to the time left
    from cellcutter_nb.core.evaluate import evaluate, recalibrate_batchnorm
    from cellcutter_nb.core.model import build_unet
    from cellcutter_nb.core.patches import extract_patches
    from cellcutter_nb.core.step import EAGER_MAX_STEPS

    f32 = summaries[0]
    rate = f32["patches_per_s_steady"]
    if not np.isfinite(rate):
        rate = f32["patches_per_s_with_compile"]
    patches_per_step = f32["patches_seen"] / max(f32["epochs"] * full.steps_per_epoch, 1)
    # the scoring fit() does after every epoch, timed on an untrained network
    t = time.perf_counter()
    ps = extract_patches(rep.field, ("fl", "nuc"), preset, markers=rep.markers)
    t_extract = time.perf_counter() - t
    probe = build_unet(ps.patches.shape[-1], width=full.unet_width, depth=full.unet_depth,
                       patch_size=ps.patch_size, seed=0)
    evaluate(probe, rep.field, ps, rep.markers)  # compiles the prediction shape
    t = time.perf_counter()
    recalibrate_batchnorm(probe, ps.patches)
    evaluate(probe, rep.field, ps, rep.markers)
    t_eval = time.perf_counter() - t
    t = time.perf_counter()
    paper.references(full, preset, 0, args.seed)  # CellProfiler etc., per replicate
    t_refs = time.perf_counter() - t
    # train()'s numpy input pipeline, run in series with the steps: its share of a step
    from throughput import input_pipeline  # benchmarks/throughput.py (script folder)

    pipe, _ = input_pipeline(ps, rep.mask_for(("fl", "nuc")), preset, full, args.seed, 3)
    pipe_ms, step_ms = 1000 * statistics.median(pipe), 1000 * patches_per_step / rate
    log(f"input pipeline {pipe_ms:.1f} ms/step vs {step_ms:.1f} ms per training step "
        f"({100 * pipe_ms / (pipe_ms + step_ms):.0f} % of the time if not overlapped)")
    # compile: the first epoch of the float32 run minus its steps and its scoring; in the
    # grid, the first model of each kind (input channels × with/without mask) compiles,
    # later ones trace and load from JAX's persistent cache (~1/4 of it, measured on CPU)
    t_compile = max(f32["first_epoch_s"] - full.steps_per_epoch * patches_per_step / rate
                    - t_eval, 0.0)
    kinds = len({(len(c), m) for c in combos for m in (True, False)})
    left = args.budget_s - elapsed() - args.margin_s
    for reps in range(full.n_replicates, 0, -1):  # fewer replicates only if 3 cannot fit
        n_models = len(combos) * 2 * reps
        t_model = (t_extract + t_eval
                   + t_compile * (kinds + 0.25 * max(n_models - kinds, 0)) / n_models)
        t_fixed = (reps - 1) * t_prep + reps * t_refs
        profile, text = grid_profile(full.replace(n_replicates=reps), left, rate,
                                     patches_per_step, t_model, t_eval, n_models, t_fixed)
        fits = (not text.startswith("OVER")
                and profile.max_epochs * profile.steps_per_epoch > EAGER_MAX_STEPS)
        if fits or reps == 1 or SMOKE:
            break
        log(f"grid with {reps} replicates does not fit: {text}")
    text = f"{profile.n_replicates} replicate(s): {text}"
    budget.update(rate=rate, patches_per_step=patches_per_step, t_prep=t_prep,
                  pipeline_ms_per_step=pipe_ms, step_ms=step_ms,
                  t_eval=t_eval, t_refs=t_refs, t_compile=t_compile, t_model=t_model,
                  left_s=left, n_models=n_models, grid_epochs=profile.max_epochs,
                  grid_steps=profile.steps_per_epoch, arithmetic=text)
    log("grid budget: " + text)
    (out / "budget.json").write_text(json.dumps(budget, indent=1, default=str))
    if args.skip_grid:
        return
    t = time.perf_counter()
    table = paper.table1(profile, preset, args.seed, combinations=combos,
                               cache_dir=None, progress=False)  # models stay in memory
    budget["grid_s"] = time.perf_counter() - t
    table.to_csv(out / "table1.csv", index=False)
    summary = paper.summary(table)
    summary.to_csv(out / "table1_summary.csv", index=False)
    cnn = table[table["method"].str.startswith("CNN")]
    budget["grid_patches_per_s"] = float(cnn["patches_per_second"].median())
    (out / "budget.json").write_text(json.dumps(budget, indent=1, default=str))
    print(summary.round(4).to_string(index=False), flush=True)
    log(f"grid {budget['grid_s']:.0f} s for {len(cnn)} models (predicted "
        f"{left:.0f} s); median training patches/s {budget['grid_patches_per_s']:.0f}; "
        f"total {elapsed():.0f} s of {args.budget_s:.0f}")


if __name__ == "__main__":
    main()
