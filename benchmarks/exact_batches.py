"""Padded against exact batches in ``train()``: speed, and that the numbers stay.

One replicate of a profile (:func:`cellcutter_nb.experiments.model_cache.replicate`:
markers found on nuc, graph-cut mask) is trained with the profile's preset (``fast``
for quick: GroupNorm) twice per round — ``Profile.exact_batches=False`` (every batch
padded to ``pad_multiple`` with copies of real patches, as before the setting existed)
and the default (exact batches: a GroupNorm network in a step without XLA) — the two
in turn so that the load of a shared machine hits both alike. Printed per run: wall
and CPU seconds of ``train()``, its training patches/s and the last epoch's loss; then
medians. With GroupNorm the padding enters neither the loss nor the normalisation, so
the losses may differ only by rounding.

Run: ``python benchmarks/exact_batches.py`` (quick profile, 3 rounds: ~5 min on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replicate", type=int, default=0)
    args = parser.parse_args(argv)
    from cellcutter_nb import config
    from cellcutter_nb.core.train import train
    from cellcutter_nb.experiments import model_cache

    profile = config.get_profile(args.profile)
    preset = config.get_preset(profile.preset)
    rep = model_cache.replicate(profile, preset, args.replicate)
    runs: dict[str, list[dict]] = {"padded": [], "default": []}
    for _ in range(args.rounds):
        for name, prof in (("padded", profile.replace(exact_batches=False)),
                           ("default", profile)):
            t0, c0 = time.perf_counter(), time.process_time()
            r = train(rep.field, ("fl", "nuc"), preset, prof, mask=rep.fl_mask,
                      markers=rep.markers, seed=0, progress=False)
            runs[name].append({"wall_s": time.perf_counter() - t0,
                               "cpu_s": time.process_time() - c0,
                               "patches_per_s": r.patches_per_second,
                               "loss": float(r.history["loss"].iloc[-1])})
            print(name, {k: round(v, 5 if k == "loss" else 1)
                         for k, v in runs[name][-1].items()},
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    out = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
           for name, rs in runs.items()}
    for name, med in out.items():
        print(f"{name}: median wall {med['wall_s']:.1f} s, CPU {med['cpu_s']:.1f} s, "
              f"{med['patches_per_s']:.1f} patches/s")
    return out


if __name__ == "__main__":
    main()
