"""Training throughput (patches/s) of the UNet train step, and the per-step input pipeline.

Configurations are ``backend:width:jit[:policy]``. One subprocess per backend (Keras
reads ``KERAS_BACKEND`` at import) builds each configuration's model exactly as
:func:`cellcutter_nb.core.train.train` does (:class:`~cellcutter_nb.core.step.CutterModel`,
Adam, Eq. 1), prepares ``--steps`` area batches of a synthetic field (true markers and
mask, ``fill_padding`` + a dihedral transform, as a training epoch does) and times
``train_on_batch`` over them: one untimed pass of each model compiles every padded
shape, then ``--repeats`` rounds of one timed pass per model, interleaved so that the
load of a shared machine hits all alike; the median pass gives patches/s (real
patches, padding excluded). The same subprocess times the numpy input pipeline of a
training step (``epoch_batches`` + ``fill_padding`` + ``transform_batch``), which
:func:`~cellcutter_nb.core.train.train` runs in series with the steps.

Run: ``python benchmarks/throughput.py`` (all configurations, ~25 min on 2 CPU cores) or
e.g. ``python benchmarks/throughput.py --configs tensorflow:16:nojit jax:16:jit``;
``--pipeline-only 6 --steps 32`` times only the input pipeline (6 epochs of the full
profile's 32 steps). ``policy`` is a Keras dtype policy (``mixed_bfloat16``,
``mixed_float16``); default float32. Each configuration prints one JSON line; a
markdown table follows at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = [
    "tensorflow:32:nojit", "tensorflow:32:jit", "tensorflow:16:nojit", "tensorflow:16:jit",
    "tensorflow:32:nojit:mixed_bfloat16", "tensorflow:16:nojit:mixed_bfloat16",
    "jax:32:jit", "jax:16:jit", "jax:16:jit:mixed_bfloat16",
]


def input_pipeline(ps, mask, preset, profile, seed: int, epochs: int) -> tuple:
    """Seconds per step of train()'s numpy work per epoch (``epoch_batches`` +
    ``fill_padding`` + ``transform_batch``) for ``epochs`` epochs, and the first epoch's
    batches."""
    import numpy as np

    from cellcutter_nb.core.batches import (
        epoch_batches,
        fill_padding,
        n_transforms,
        transform_batch,
    )

    times, first = [], []
    for epoch in range(epochs):
        rng = np.random.default_rng([seed, epoch])
        t0 = time.perf_counter()
        raw = epoch_batches(ps, mask, preset, profile, rng)
        out = [transform_batch(fill_padding(b), int(rng.integers(n_transforms(preset))))
               for b in raw]
        times.append((time.perf_counter() - t0) / len(out))
        first = first or out
    return times, first


def pipeline_only(size: int, steps: int, epochs: int, seed: int) -> None:
    """Print the per-step input pipeline cost alone (no network, no Keras backend work)."""
    from cellcutter_nb import config
    from cellcutter_nb.core.patches import extract_patches
    from cellcutter_nb.data import synth

    preset = config.get_preset("paper")
    profile = config.get_profile("full").replace(field_size=size, steps_per_epoch=steps)
    field = synth.make_field(seed=seed, shape=size)
    ps = extract_patches(field, ("fl", "nuc"), preset)
    times, batches = input_pipeline(ps, field.mask, preset, profile, seed, epochs)
    print(f"input pipeline, {size}² field, {steps} steps per epoch, {epochs} epochs: median "
          f"{1000 * statistics.median(times):.1f} ms/step (epochs: "
          f"{', '.join(f'{1000 * t:.0f}' for t in times)}); "
          f"{sum(b.n_valid for b in batches) / len(batches):.0f} patches/step; "
          f"load {os.getloadavg()[0]:.2f}")


def worker(specs: list[str], size: int, steps: int, repeats: int, seed: int) -> list[dict]:
    """Time configurations of one backend (already selected) in this process, interleaved:
    a compile pass of each, then ``repeats`` rounds of one timed pass of each, so that a
    change in the machine's load hits every configuration alike."""
    from cellcutter_nb import config
    from cellcutter_nb.backend import backend_name, device_description, dtype_policy, keras
    from cellcutter_nb.core.model import build_model, seed_everything
    from cellcutter_nb.core.patches import extract_patches
    from cellcutter_nb.core.step import CutterModel
    from cellcutter_nb.data import synth

    preset = config.get_preset("paper")
    base = config.get_profile("full").replace(field_size=size, steps_per_epoch=steps)
    field = synth.make_field(seed=seed, shape=size)
    ps = extract_patches(field, ("fl", "nuc"), preset)
    pipe, batches = input_pipeline(ps, field.mask, preset, base, seed, max(repeats, 3))
    n_valid = sum(b.n_valid for b in batches)
    models, passes, losses = {}, {}, {}
    for spec in specs:
        backend, width, jit, *rest = spec.split(":")
        assert backend_name() == backend, (backend_name(), backend)
        seed_everything(seed)
        with dtype_policy(rest[0] if rest else "float32"):
            unet = build_model(ps, base.replace(unet_width=int(width)), seed, preset)
            model = CutterModel(unet, preset.loss_weights())
            model.compile(optimizer=keras.optimizers.Adam(preset.learning_rate),
                          jit_compile=jit == "jit")
        models[spec], passes[spec] = model, []
    for r in range(repeats + 1):  # round 0 compiles every shape
        for spec, model in models.items():
            t0 = time.perf_counter()
            for b in batches:
                logs = model.train_on_batch(
                    b.patches, {"offsets": b.offsets, "valid": b.valid, "mask": b.mask},
                    return_dict=True)
            losses[spec] = float(logs["loss"])  # converts to numpy: waits for the device
            passes[spec].append(time.perf_counter() - t0)
            print(f"  {spec} pass {r}: {passes[spec][-1]:.2f} s (load "
                  f"{os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)
    rows = []
    for spec, model in models.items():
        backend, width, jit, *rest = spec.split(":")
        timed = statistics.median(passes[spec][1:])
        rows.append({
            "config": spec, "backend": backend, "device": device_description(),
            "width": int(width), "jit": jit == "jit",
            "policy": rest[0] if rest else "float32", "params": model.unet.count_params(),
            "steps": len(batches), "patches_per_step": n_valid / len(batches),
            "slots_per_step": sum(len(b.valid) for b in batches) / len(batches),
            "compile_pass_s": passes[spec][0], "passes_s": passes[spec][1:], "pass_s": timed,
            "patches_per_s": n_valid / timed, "step_ms": 1000 * timed / len(batches),
            "pipeline_ms_per_step": 1000 * statistics.median(pipe),
            "loss": losses[spec], "repeats": repeats, "load": os.getloadavg()[0]})
    return rows


def table(rows: list[dict]) -> str:
    """Markdown table of the worker results."""
    head = ("| backend | width | jit | policy | patches/s | step (ms) | compile pass (s) "
            "| input pipeline (ms/step) | patches/step | load |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    return head + "\n".join(
        f"| {r['backend']} | {r['width']} | {'on' if r['jit'] else 'off'} | {r['policy']} "
        f"| {r['patches_per_s']:.1f} | {r['step_ms']:.0f} | {r['compile_pass_s']:.1f} "
        f"| {r['pipeline_ms_per_step']:.0f} | {r['patches_per_step']:.0f} "
        f"| {r['load']:.2f} |" for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS,
                        help="backend:width:jit|nojit[:policy]")
    parser.add_argument("--size", type=int, default=1750, help="field side (px)")
    parser.add_argument("--steps", type=int, default=4, help="area batches per pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pipeline-only", type=int, metavar="EPOCHS", default=0,
                        help="only time the numpy input pipeline over this many epochs "
                             "(--steps per epoch; 32 = the full profile)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pipeline_only:
        pipeline_only(args.size, args.steps, args.pipeline_only, args.seed)
        return
    if args.worker:
        for row in worker(args.worker.split(","), args.size, args.steps, args.repeats,
                          args.seed):
            print("RESULT" + json.dumps(row), flush=True)
        return
    rows = []
    backends = dict.fromkeys(spec.split(":")[0] for spec in args.configs)
    for backend in backends:  # one process per backend, its configurations interleaved
        specs = [spec for spec in args.configs if spec.split(":")[0] == backend]
        env = dict(os.environ, KERAS_BACKEND=backend, CELLCUTTER_NB_QUIET="1")
        if backend == "jax":
            env.setdefault("JAX_PLATFORMS", "cpu")
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        cmd = [sys.executable, __file__, "--worker", ",".join(specs), "--size",
               str(args.size), "--steps", str(args.steps), "--repeats", str(args.repeats),
               "--seed", str(args.seed)]
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
        lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
        if proc.returncode or not lines:
            print(f"{backend}: failed (exit {proc.returncode})", flush=True)
            continue
        for line in lines:
            rows.append(json.loads(line[len("RESULT"):]))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\nfield {args.size}x{args.size}, {args.steps} steps per pass, median of "
          f"{args.repeats} passes (configurations of a backend interleaved); load = 1-min "
          "load average at the end of each backend's run")
    print(table(rows))


if __name__ == "__main__":
    main()
