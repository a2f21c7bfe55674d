"""Does mixed precision keep the accuracy? float32 vs a mixed dtype policy, paired.

Each replicate of a profile (synthetic fields, nuclei markers, graph-cut mask:
:func:`cellcutter_nb.experiments.model_cache.replicate`) trains the same seeded model twice — in
``float32`` and with ``Profile.precision`` = ``--policy`` (``mixed_bfloat16`` by default) —
with the profile's schedule, and is scored on the whole field as Table 1 scores it.
Nothing is cached. Printed per run: training seconds, patches/s, mIOU and the loss of
every epoch; then the paired mIOU difference (mixed − float32), mean ± standard error
over replicates, the largest epoch-loss difference (relative to the float32 run's mean
absolute loss), and the speed-up.
Eq. 1 itself is always float32 (:func:`cellcutter_nb.core.loss.cutter_loss` casts the
logits).

Run: ``python benchmarks/mixed_precision.py`` (quick profile, FL+Nuc with the mask:
~4 min on 2 idle CPU cores) or e.g. ``--profile full --channels fl --replicates 1``
on a GPU (``KERAS_BACKEND=jax``). ``--out results.csv`` also writes the runs as CSV.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time


def run(profile: str, preset: str, index: int, channels: tuple[str, ...], policy: str,
        seed: int) -> dict:
    """Train and score one replicate with ``Profile.precision = policy``."""
    from cellcutter_nb.config import get_preset, get_profile
    from cellcutter_nb.experiments import model_cache

    t0 = time.perf_counter()
    r = model_cache.fit(get_profile(profile).replace(precision=policy), get_preset(preset),
                        index, channels, with_mask=True, seed=seed, cache_dir=False)
    wall = time.perf_counter() - t0
    return {"replicate": index, "policy": policy, "wall_s": round(wall, 1),
            "train_s": round(r.scores["seconds"], 1),
            "patches_per_s": round(r.scores["patches_per_second"], 1),
            "miou": round(r.scores["miou"], 4), "ap50": round(r.scores["ap50"], 4),
            "losses": [round(x, 4) for x in r.history["loss"]]}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--channels", nargs="+", default=["fl", "nuc"])
    parser.add_argument("--policy", default="mixed_bfloat16",
                        choices=["mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--replicates", type=int, default=None,
                        help="how many of the profile's replicates (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="optional CSV of the runs")
    args = parser.parse_args(argv)

    from cellcutter_nb.backend import backend_name
    from cellcutter_nb.config import get_profile

    n = args.replicates or get_profile(args.profile).n_replicates
    channels = tuple(args.channels)
    rows = []
    for i in range(n):  # float32 and mixed back to back, so machine load hits both alike
        for policy in ("float32", args.policy):
            rows.append(run(args.profile, args.preset, i, channels, policy, args.seed))
            print(rows[-1], flush=True)
    diff = [m["miou"] - f["miou"] for f, m in zip(rows[::2], rows[1::2], strict=True)]
    speed = [f["train_s"] / m["train_s"] for f, m in zip(rows[::2], rows[1::2], strict=True)]
    loss_gap = max(  # largest epoch-loss difference over the float32 run's mean |loss|
        max(abs(a - b) for a, b in zip(f["losses"], m["losses"], strict=True))
        / max(statistics.mean(abs(a) for a in f["losses"]), 1e-12)
        for f, m in zip(rows[::2], rows[1::2], strict=True))
    se = statistics.stdev(diff) / math.sqrt(len(diff)) if len(diff) > 1 else float("nan")
    print(f"backend {backend_name()}, profile {args.profile}, {'+'.join(channels)}, "
          f"{n} replicate(s): mIOU {args.policy} − float32 = "
          f"{statistics.mean(diff):+.4f} ± {se:.4f} (SE); epoch losses differ by up to "
          f"{100 * loss_gap:.0f} % of the mean |loss|; training "
          f"{statistics.mean(speed):.2f}× faster")
    if args.out:
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.out, index=False)
    return rows


if __name__ == "__main__":
    main()
