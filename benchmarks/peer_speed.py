"""CPU training throughput: ours against the authors' released code, on one field.

The released code (github jiyuuchc/cellcutter, MIT; a copy in the folder given as
``PEER``, default ``/work/shared/peer``) is run *unchanged*, as an external program,
through its runner ``PEER/run_released.py`` (the upstream ``Dataset`` →
``UNet4(bn=True)`` → ``train_self_supervised``). Nothing of it is imported here; for
``--width`` other than its default 32 the runner is started by :func:`released_main`,
which only passes ``n_channels=width`` to the released ``UNet4`` (an argument of that
class).

Both sides train on the same synthetic field (``make_field(seed, shape=size)``, fl + nuc,
true markers and mask) with a UNet of the same width, 640-px areas and 64-px patches, as
the ``original_code`` preset describes the released code (λ = 1, ln, β = 20, Adam at
1e-3, 4 flips, border patches dropped).

What "patches/s" counts: real patches that enter the loss (padding excluded), per
second of steady training. The first step (the released code's first calls, our
tracing; for ``train`` also ``train()``'s set-up) is excluded and reported as
``first_step_s``, and so is our first step with another batch size (Keras traces the
compiled step a second time, with the batch size left open; ``compile_steps``);
``patches_per_s_all`` counts every step. ``patches_per_cpu_s`` (patches over the
process's CPU time, all steps) is the figure a shared machine's load disturbs least.

The two sides choose their areas differently, which is why they train on batches of
different sizes:

* released code: every step a random 640² window lying wholly inside the image, and
  all the (border-free) patches whose top-left corner falls in it: ~360 at 1024²
  (951 markers, 830 patches);
* ``train()``: the field *tiled* into 640-px areas from a random offset per epoch, one
  area per step: at 1024² a tiling has 4-9 areas, most of them cut by the image edge,
  so a step holds ~115 patches on average, padded to ``Profile.pad_multiple``.

Per-patch cost depends on the batch (padding; fixed costs per step), so the
like-for-like engine comparison is the ``window`` variant of ours: our training step
(:func:`~cellcutter_nb.core.step.train_step`, with the profile's padding, BatchNorm
fill and flips, one compiled step) on the released code's windows, drawn by its rule
and with its random draws (same seed: the same windows, which equal
``patches_per_step`` columns confirm). The ``train`` variant is
:func:`~cellcutter_nb.core.train.train` itself (stopped after ``--steps + 1`` steps).
Options of a variant (``--ours window+exact+bf16``): ``exact`` (no padding:
``Profile.exact_batches=True``), ``bf16`` (``Profile.precision="mixed_bfloat16"``),
``inter1`` (one TensorFlow inter-op thread). Ours always trains the ``original_code``
preset on the ``full`` profile with the field's size, ``--width`` and ``--area``.

Rounds run the sides in turn (released, then each variant of ours, then released
again...), each in its own process, so that the load of a shared machine hits all
alike; medians over rounds are printed with the ratios to the released code, and
every run is written to ``benchmarks/results/peer_speed_w{width}_{tag}.csv``.

Run: ``python benchmarks/peer_speed.py [PEER] --width 32 --ours window window+exact+bf16
train --tag after`` (3 rounds of 7 steps: ~20 min on 2 idle cores at width 32, an hour
or more when they are shared; ~3× less at ``--width 16``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = ("fl", "nuc")
#: Tokens of an ``ours`` variant (``--ours``): what is trained, then settings.
ENGINES = ("window", "train")
OPTIONS = {"exact": "Profile.exact_batches=True", "bf16": "Profile.precision='mixed_bfloat16'",
           "inter1": "one TensorFlow inter-op thread"}


def make_input(seed: int, size: int, path: Path) -> int:
    """Write the synthetic field's fl, nuc, mask and markers to ``path`` (.npz);
    returns the number of markers."""
    from cellcutter_nb.data import synth

    f = synth.make_field(seed=seed, shape=size)
    np.savez(path, fl=f["fl"], nuc=f["nuc"], mask=f.mask, markers=f.markers)
    return len(f.markers)


def released_main(peer: str, width: int, argv: list[str]) -> None:
    """Run ``PEER/run_released.py`` with ``argv``; at a width other than 32 its
    ``UNet4`` is built with ``n_channels=width`` (nothing else is changed)."""
    sys.path.insert(0, os.path.abspath(peer))
    if width != 32:
        import cellcutter

        unet4 = cellcutter.UNet4
        cellcutter.UNet4 = lambda **kwargs: unet4(n_channels=width, **kwargs)
    spec = importlib.util.spec_from_file_location("run_released",
                                                  Path(peer) / "run_released.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(argv)


def run_released(args: argparse.Namespace, npz: Path, round_: int) -> dict:
    """One run of the released code; its JSON line, in this benchmark's columns."""
    argv = [str(npz), str(npz.with_name(f"released_{round_}.npz")), "--repo",
            os.path.abspath(args.peer), "--channels", ",".join(CHANNELS), "--epochs", "1",
            "--steps-per-epoch", str(args.steps + 1), "--area", str(args.area),
            "--seed", str(args.seed)]
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import peer_speed; "
            f"peer_speed.released_main({args.peer!r}, {args.width}, {argv!r})")
    out = _run([sys.executable, "-c", code], {})
    return {"patches_per_s": out["patches_per_s_steady"],
            "patches_per_s_all": out["patches_per_s"],
            "patches_per_step": out["patches_per_step_mean"],
            "slots_per_step": out["patches_per_step_mean"],
            "first_step_s": out["first_step_s"], "compile_steps": 1,
            "step_s_median": out["s_per_step_steady_median"],
            "cpu_s_per_step": out["cpu_s_per_step"], "patches_used": out["n_patches_used"]}


def check_variant(spec: str) -> list[str]:
    """The tokens of an ``ours`` variant such as ``window+exact+bf16``.

    Examples
    --------
    >>> check_variant("train+bf16")
    ['train', 'bf16']
    """
    tokens = spec.split("+")
    if tokens[0] not in ENGINES or not set(tokens[1:]) <= set(OPTIONS):
        raise SystemExit(f"--ours {spec!r}: one of {ENGINES}, then any of {sorted(OPTIONS)} "
                         f"joined by '+'")
    return tokens


def run_ours(args: argparse.Namespace, npz: Path, spec: str) -> dict:
    """One run of ours (variant ``spec``) in a fresh process."""
    env = {"KERAS_BACKEND": "tensorflow", "CELLCUTTER_NB_QUIET": "1",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, __file__, "--worker", spec, "--npz", str(npz)]
    for key in ("width", "steps", "area", "seed"):
        cmd += [f"--{key}", str(getattr(args, key))]
    return _run(cmd, env)


def _run(cmd: list[str], env: dict) -> dict:
    """Run a command; its last stdout line is one JSON object."""
    proc = subprocess.run(cmd, env={**os.environ, **env}, stdout=subprocess.PIPE, text=True)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{cmd[:3]}... failed (exit {proc.returncode})")
    return json.loads(lines[-1])


class StepClock:
    """Timestamps of training steps: ``tick(batch)`` after each step."""

    def __init__(self) -> None:
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        self.ends: list[float] = []
        self.patches: list[int] = []
        self.slots: list[int] = []

    def tick(self, batch) -> None:
        self.ends.append(time.perf_counter())
        self.patches.append(batch.n_valid)
        self.slots.append(len(batch.valid))

    def summary(self) -> dict:
        """Steady patches/s as for the released code, and over all steps.

        Steady excludes the steps that trace the compiled step (``compile_steps``): the
        first, and the first with another batch size (Keras' ``reduce_retracing``
        traces a second time with the batch size left open, then never again).
        """
        dt = np.diff([self.t0, *self.ends])
        sizes = list(dict.fromkeys(self.slots))[:2]
        new = np.zeros(len(dt), bool)
        new[[self.slots.index(size) for size in sizes]] = True
        steady = ~new
        n = np.asarray(self.patches)
        rate = n[steady].sum() / dt[steady].sum() if steady.any() else np.nan
        return {"patches_per_s": round(float(rate), 2),
                "patches_per_s_all": round(float(n.sum() / dt.sum()), 2),
                "patches_per_step": float(n.mean()),
                "slots_per_step": float(np.mean(self.slots)),
                "first_step_s": round(float(dt[0]), 3), "compile_steps": int(new.sum()),
                "step_s_median": round(float(np.median(dt[steady])), 4),
                "cpu_s_per_step": round((time.process_time() - self.c0) / len(dt), 4)}


def window_batch(ps, mask: np.ndarray, corner: np.ndarray, area: int, pad_multiple: int,
                 limit: int | None = None):
    """The released code's area as one of our batches: the patches whose top-left corner
    lies in ``[corner, corner + area)`` (both axes; the first ``limit`` of them when
    given), the mask canvas ``[corner, corner + area + k)``, padded to ``pad_multiple``
    as ``train()`` pads (``trim_padding``; see
    :func:`~cellcutter_nb.core.batches.padding_multiple`)."""
    from cellcutter_nb.core.batches import AreaBatch, trim_padding

    k = ps.patch_size
    inside = ((ps.origins >= corner) & (ps.origins < corner + area)).all(axis=1)
    idx = np.flatnonzero(inside)[:limit]
    n, pad = len(idx), len(ps) - len(idx)
    canvas = mask[corner[0]:corner[0] + area + k, corner[1]:corner[1] + area + k]
    full = AreaBatch(
        patches=np.concatenate([ps.patches[idx], np.zeros((pad, *ps.patches.shape[1:]),
                                                          np.float32)]),
        valid=np.r_[np.ones(n), np.zeros(pad)].astype(np.float32),
        offsets=np.r_[ps.centres[idx] - corner - k // 2, np.zeros((pad, 2))].astype(np.int32),
        mask=np.ascontiguousarray(canvas, np.float32),
        marker_indices=np.r_[ps.marker_indices[idx], -np.ones(pad)].astype(np.int32),
        canvas_origin=(int(corner[0]), int(corner[1])))
    return trim_padding(full, pad_multiple)


def worker(args: argparse.Namespace) -> dict:
    """Train ours in this process, as variant ``args.worker`` says (:func:`check_variant`)."""
    engine, *options = check_variant(args.worker)
    import tensorflow as tf

    if "inter1" in options:  # before TensorFlow runs anything
        tf.config.threading.set_inter_op_parallelism_threads(1)
    from cellcutter_nb import config
    from cellcutter_nb.data.field import Field

    z = np.load(args.npz)
    field = Field({c: z[c] for c in CHANNELS}, mask=z["mask"], markers=z["markers"])
    preset = config.get_preset("original_code")
    profile = config.get_profile("full").replace(
        field_size=field.shape[0], unet_width=args.width, train_area=args.area,
        exact_batches=True if "exact" in options else None,
        precision="mixed_bfloat16" if "bf16" in options else None)
    clock = StepClock()
    n_used = (_train_windows if engine == "window" else _train_fit)(field, preset, profile,
                                                                     args, clock)
    return {**clock.summary(), "patches_used": n_used}


def _train_windows(field, preset, profile, args, clock: StepClock) -> int:
    """Our training step on the released code's windows, drawn as its runner draws them
    (per step: a dataset index, the window corner, the flip) from ``default_rng(seed)``."""
    from cellcutter_nb.core.batches import padding_multiple
    from cellcutter_nb.core.model import build_model, seed_everything
    from cellcutter_nb.core.patches import extract_patches
    from cellcutter_nb.core.step import compile_step, train_step

    ps = extract_patches(field, CHANNELS, preset)
    seed_everything(args.seed)
    model = compile_step(build_model(ps, profile, args.seed, preset), preset,
                         with_mask=True, eager=False)
    mask = field.mask.astype(np.float32)
    k = preset.patch_size
    rng = np.random.default_rng(args.seed)
    clock.__init__()
    for _ in range(args.steps + 1):
        rng.integers(1)  # the released loop picks one of its datasets (here: one)
        corner = rng.integers(np.asarray(field.shape) - args.area - k)
        batch = window_batch(ps, mask, corner, args.area,
                             padding_multiple(profile, preset, static_shapes=False))
        train_step(model, batch, int(rng.integers(4)))
        clock.tick(batch)
    return len(ps)


def _train_fit(field, preset, profile, args, clock: StepClock) -> int:
    """``train()`` as is, stopped after ``steps + 1`` steps. Its profile has enough
    epochs for a compiled step (short runs are eager); no scoring, no recalibration."""
    from cellcutter_nb.core.patches import extract_patches
    from cellcutter_nb.core.step import EAGER_MAX_STEPS
    from cellcutter_nb.core.train import train

    n = args.steps + 1
    profile = profile.replace(steps_per_epoch=n, max_epochs=EAGER_MAX_STEPS + 1)
    clock.__init__()  # the first step also holds train()'s set-up (patches, model)
    train(field, CHANNELS, preset, profile, mask=field.mask, seed=args.seed,
          progress=False, recalibrate_bn=False, on_step=clock.tick,
          should_stop=lambda: len(clock.ends) >= n)
    return len(extract_patches(field, CHANNELS, preset))


def summarise(rows: list[dict]) -> str:
    """Markdown table: per side the medians over rounds and the ratio to the released
    code's median patches/s."""
    def med(rs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rs)

    for r in rows:
        r["patches_per_cpu_s"] = r["patches_per_step"] / r["cpu_s_per_step"]
    ref = med([r for r in rows if r["side"] == "released"], "patches_per_s")
    ref_cpu = med([r for r in rows if r["side"] == "released"], "patches_per_cpu_s")
    out = ["| side | patches/s (median) | runs | × released | all steps | patches/step | "
           "slots/step | first step (s) | patches/CPU-s | × released | load |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for side in dict.fromkeys(r["side"] for r in rows):
        rs = [r for r in rows if r["side"] == side]
        runs = ", ".join(f"{r['patches_per_s']:.1f}" for r in rs)
        loads = [r["load_before"] for r in rs] + [r["load_after"] for r in rs]
        out.append(f"| {side} | {med(rs, 'patches_per_s'):.2f} | {runs} | "
                   f"{med(rs, 'patches_per_s') / ref:.2f} | "
                   f"{med(rs, 'patches_per_s_all'):.1f} | {med(rs, 'patches_per_step'):.0f} "
                   f"| {med(rs, 'slots_per_step'):.0f} | {med(rs, 'first_step_s'):.1f} | "
                   f"{med(rs, 'patches_per_cpu_s'):.1f} | "
                   f"{med(rs, 'patches_per_cpu_s') / ref_cpu:.2f} | "
                   f"{min(loads):.1f}–{max(loads):.1f} |")
    return "\n".join(out)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peer", nargs="?", default="/work/shared/peer",
                        help="folder holding run_released.py and cellcutter/")
    parser.add_argument("--width", type=int, default=32, help="UNet width (both sides)")
    parser.add_argument("--size", type=int, default=1024, help="field side (px)")
    parser.add_argument("--seed", type=int, default=0, help="field, weights and areas")
    parser.add_argument("--area", type=int, default=640, help="area side (px)")
    parser.add_argument("--steps", type=int, default=6, help="timed steps (+1 untimed)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side")
    parser.add_argument("--ours", nargs="+", default=["window", "train"],
                        help=f"variants of ours: {'|'.join(ENGINES)} then options joined by "
                             f"'+': {', '.join(f'{k} ({v})' for k, v in OPTIONS.items())}")
    parser.add_argument("--tag", default="run", help="CSV name: peer_speed_w{width}_{tag}")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--npz", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse(argv)
    if args.worker:
        print(json.dumps(worker(args)), flush=True)
        return []
    for spec in args.ours:
        check_variant(spec)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "field.npz"
        n_markers = make_input(args.seed, args.size, npz)
        for round_ in range(args.rounds):
            for side in ["released", *args.ours]:
                load = os.getloadavg()[0]
                out = (run_released(args, npz, round_) if side == "released"
                       else run_ours(args, npz, side))
                rows.append({"round": round_, "side": side, "width": args.width,
                             "size": args.size, "markers": n_markers, "steps": args.steps,
                             **out, "load_before": round(load, 2),
                             "load_after": round(os.getloadavg()[0], 2)})
                print(json.dumps(rows[-1]), flush=True)
    import pandas as pd

    path = ROOT / "benchmarks" / "results" / f"peer_speed_w{args.width}_{args.tag}.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    print(f"\n{args.size}² field, width {args.width}, {args.steps} timed steps per run, "
          f"{args.rounds} rounds (sides in turn); {path.relative_to(ROOT)}")
    print(summarise(rows))
    return rows


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
