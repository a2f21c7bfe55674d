"""Where a synthetic-nucleus UNet (Fig. 5) spends its time, and how good its markers are.

Runs the nucleus part of notebook 11 exactly as the notebook does
(:func:`cellcutter_nb.experiments.predicted_markers.synthetic_marker_experiment` with
``segment=False`` and no cache) and times each stage per fold, exclusive of the stages
nested in it: the replicate fields (markers, masks; shared with Table 1 in the
notebooks), the network input, crop sampling, the training steps (model build and
compile included; the first step's extra time is the compile), BatchNorm
recalibration, tiled prediction of the three fields, threshold calibration on the
training fields and blob detection. Wall and process CPU seconds are both reported (the
machine is shared, so wall time varies with its load).

``--seed 0`` scores the quick profile's own replicates (``make_field`` seeds 0-2, what
notebook 11 reports); tune with ``--seed 1`` (fields 1000-1002, training seed 1).

Run: ``nice python benchmarks/nucleus_speed.py --seed 1 --tag baseline``; a variant:
``--profile-kw '{"nucleus_max_steps": 400}'`` (Profile fields).
Writes ``benchmarks/results/nucleus_<tag>_seed<seed>.csv`` (one row per fold) and
prints the summary: mean FN / FP rates of the DoG markers with the threshold fitted
on the training folds against the DoG blobs of the experimental nucleus image
(notebook 11's headline), and seconds per model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd

from cellcutter_nb import config
from cellcutter_nb.backend import device_description
from cellcutter_nb.core import nucleus
from cellcutter_nb.experiments import predicted_markers as pm

#: (module, function name, stage) timed by :class:`Stages`.
TIMED = ((pm, "replicate", "fields"), (pm, "normalised_input", "input"),
         (nucleus, "random_crops", "crops"), (pm, "train_nucleus_model", "train steps"),
         (nucleus, "recalibrate_batchnorm", "bn recalibration"),
         (pm, "predict_tiled", "tiled prediction"), (pm, "calibrate_threshold", "calibration"),
         (pm, "detect_blobs", "blob detection"))


class Stages:
    """Exclusive wall and CPU seconds per stage (time in nested timed calls excluded)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self._stack: list[list[float]] = []

    def wrap(self, fn, stage):
        def timed(*args, **kwargs):
            self._stack.append([0.0, 0.0])
            w0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                w, c = time.perf_counter() - w0, time.process_time() - c0
                inner_w, inner_c = self._stack.pop()
                self.wall[stage] += w - inner_w
                self.cpu[stage] += c - inner_c
                if self._stack:
                    self._stack[-1][0] += w
                    self._stack[-1][1] += c
        return timed

    def take(self) -> dict[str, float]:
        """Seconds since the last call, per stage, then reset."""
        out = {f"{k} s": v for k, v in self.wall.items()}
        out.update({f"{k} cpu s": v for k, v in self.cpu.items()})
        self.wall.clear()
        self.cpu.clear()
        return out


def run(profile: config.Profile, seed: int, modalities: tuple[str, ...]) -> pd.DataFrame:
    """One row per fold: headline rates and the stage times of that fold."""
    stages = Stages()
    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in TIMED]
    per_fold: list[dict] = []
    try:
        for mod, name, stage in TIMED:
            setattr(mod, name, stages.wrap(getattr(mod, name), stage))
        res = pm.synthetic_marker_experiment(
            profile, "paper", seed, cache_dir=None, modalities=modalities, segment=False,
            progress=lambda _msg: per_fold.append(stages.take()))
        per_fold.append(stages.take())
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)
    r = res.rates
    head = r[(r["reference"] == "nuc DoG") & (r["method"] == "dog") & r["calibrated"]]
    rows = []
    for k, f in enumerate(res.folds):
        h = f.history
        rate = head[(head["modality"] == nucleus.MODALITIES[f.modality])
                    & (head["fold"] == f.fold.test)].iloc[0]
        times = per_fold[k + 1]  # stages up to the next model's start
        rows.append({"modality": rate["modality"], "fold": f.fold.test,
                     "fn_rate": rate["fn_rate"], "fp_rate": rate["fp_rate"],
                     "n_true": rate["n_true"], "n_found": rate["n_found"],
                     "threshold": f.thresholds["dog"], "stopped": f.stopped, "steps": f.steps,
                     "final_loss": h["check_loss"].dropna().iloc[-1] if
                     h["check_loss"].notna().any() else float("nan"),
                     "model s": sum(v for key, v in times.items()
                                    if key.endswith(" s") and "cpu" not in key
                                    and not key.startswith("fields")),
                     **times})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--seed", type=int, default=1, help="0: report fields; >= 1: tuning")
    parser.add_argument("--modalities", default="fl,bf")
    parser.add_argument("--profile-kw", default="{}", help="JSON of Profile overrides")
    parser.add_argument("--tag", default="current")
    parser.add_argument("--out", default=os.environ.get("OUT", "benchmarks/results"))
    args = parser.parse_args()
    prof = config.get_profile(args.profile).replace(**json.loads(args.profile_kw))
    table = run(prof, args.seed, tuple(args.modalities.split(",")))
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, " \
              f"{device_description()}"
    table.insert(0, "machine", machine)
    table.insert(0, "tag", args.tag)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"nucleus_{args.tag}_seed{args.seed}.csv", index=False)
    stage_cols = [c for c in table if c.endswith(" s")]
    with pd.option_context("display.width", 200, "display.max_columns", 40):
        print(f"{args.tag} (seed {args.seed}, {machine}, load {os.getloadavg()[0]:.1f})")
        print(table[["modality", "fold", "fn_rate", "fp_rate", "threshold", "steps",
                     "final_loss", "model s"]].round(3).to_string(index=False))
        print(table.groupby("modality", sort=False)[
            ["fn_rate", "fp_rate", *stage_cols]].mean().round(3).T.to_string())


if __name__ == "__main__":
    main()
