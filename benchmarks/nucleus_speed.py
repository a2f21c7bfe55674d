"""Where a synthetic-nucleus UNet (Fig. 5) spends its time, and how good its markers are.

Runs the nucleus part of notebook 11 as the notebook does
(:func:`cellcutter_nb.experiments.predicted_markers.synthetic_marker_experiment` with
``segment=False`` and no cache: every model is trained) and, per model (one modality,
one fold), reports the headline rates and the seconds spent in each stage.

Stages, exclusive of the stages nested in them (wall and process CPU seconds; the
machine may be shared, so wall time varies with its load, CPU time less):

* ``fields`` — the replicate fields with their nuclei and masks (first model only;
  shared with Table 1 in the notebooks);
* ``input`` — the network inputs and targets;
* ``crops`` — random training crops;
* ``train steps`` — model build, compile and the optimizer steps (``compile s`` is the
  first step's excess over the median step, ``steps/s`` the rate of the others);
* ``bn recalibration``;
* ``inference`` — synthetic nucleus images of the three fields (tiles, averaged
  flips, interpolation);
* ``calibration`` — fitting the blob threshold on the training fields, excluding
  ``synthetic markers`` (smoothing and blob detection of synthetic images);
* ``other`` — the rest of the model's wall time (reference blobs, FN/FP matching).

Headline rates (notebook 11's): DoG markers with the threshold fitted on the training
folds against the DoG blobs of the experimental nucleus image; FN = missed / true,
FP = extra / found.

Seeds: ``--seed 0`` scores the quick profile's own replicates (``make_field`` seeds
0-2, what notebook 11 reports): run it once, to confirm. Tune on experiment seeds >= 5
(fields 5000 and up; 1000-1002 belong to another study).

Usage
-----
``nice python benchmarks/nucleus_speed.py --seeds 5 6 --tag current`` (~5 min per seed
on 2 CPU cores); a variant: ``--profile-kw '{"nucleus_tta": 1}'`` (Profile fields).
Writes ``benchmarks/results/nucleus_<tag>_seed<seed>.csv`` (one row per model) and
prints per-model rows and per-modality means.

Examples
--------
>>> from benchmarks.nucleus_speed import Stages
>>> st = Stages()
>>> f = st.wrap(lambda: sum(range(1000)), "sum")
>>> f(), sorted(st.take())
(499500, ['sum cpu s', 'sum s'])
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cellcutter_nb import config
from cellcutter_nb.backend import device_description, keras
from cellcutter_nb.core import nucleus
from cellcutter_nb.experiments import predicted_markers as pm

#: (module, function name, stage) timed by :class:`Stages`; names the code under test
#: lacks are skipped, so the script also times the code before issue 13 item 5
#: (``predict_tiled``; blobs by ``detect_blobs``, which then includes the references).
TIMED = ((pm, "replicate", "fields"), (pm, "normalised_input", "input"),
         (pm, "nucleus_target", "input"), (nucleus, "random_crops", "crops"),
         (pm, "train_nucleus_model", "train steps"),
         (nucleus, "recalibrate_batchnorm", "bn recalibration"),
         (pm, "synthetic_nucleus_image", "inference"), (pm, "predict_tiled", "inference"),
         (pm, "calibrate_threshold", "calibration"),
         (pm, "synthetic_markers", "synthetic markers"))


class Stages:
    """Exclusive wall and CPU seconds per stage (time in nested timed calls excluded),
    and the wall/CPU seconds of every training step."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.steps: list[tuple[float, float]] = []
        self._stack: list[list[float]] = []

    def wrap(self, fn: Callable, stage: str) -> Callable:
        """``fn`` timed into ``stage``."""
        def timed(*args: Any, **kwargs: Any) -> Any:
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

    def step(self, fn: Callable) -> Callable:
        """A ``train_on_batch`` method recording each call's wall and CPU seconds."""
        def timed(model: Any, *args: Any, **kwargs: Any) -> Any:
            w0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(model, *args, **kwargs)
            finally:
                self.steps.append((time.perf_counter() - w0, time.process_time() - c0))
        return timed

    def take(self) -> dict[str, float]:
        """Seconds per stage since the last call, and step statistics; then reset."""
        out = {f"{k} s": v for k, v in self.wall.items()}
        out.update({f"{k} cpu s": v for k, v in self.cpu.items()})
        if len(self.steps) > 1:
            wall = np.array([s[0] for s in self.steps])
            out["compile s"] = float(wall[0] - np.median(wall[1:]))
            out["steps/s"] = float(1.0 / np.median(wall[1:]))
            out["step cpu ms"] = float(1e3 * np.median([s[1] for s in self.steps[1:]]))
        self.wall.clear()
        self.cpu.clear()
        self.steps.clear()
        return out


def run(profile: config.Profile, seed: int, modalities: tuple[str, ...]) -> pd.DataFrame:
    """One row per model: headline rates, training summary and the stage times."""
    stages = Stages()
    timed = [(mod, name, stage) for mod, name, stage in TIMED if hasattr(mod, name)]
    if not any(name == "synthetic_markers" for _, name, _ in timed):
        timed.append((pm, "detect_blobs", "synthetic markers"))
    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in timed]
    saved_step = keras.Model.train_on_batch
    marks: list[tuple[float, float, dict]] = []

    def mark(_msg: str) -> None:
        marks.append((time.perf_counter(), time.process_time(), stages.take()))

    try:
        for mod, name, stage in timed:
            setattr(mod, name, stages.wrap(getattr(mod, name), stage))
        keras.Model.train_on_batch = stages.step(saved_step)
        res = pm.synthetic_marker_experiment(profile, "paper", seed, cache_dir=None,
                                             modalities=modalities, segment=False,
                                             progress=mark)
        mark("end")
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)
        keras.Model.train_on_batch = saved_step
    return pd.DataFrame([_row(res, f, marks[k], marks[k + 1])
                         for k, f in enumerate(res.folds)])


def _row(res: pm.SyntheticMarkerResult, fold: pm.FoldResult, start: tuple,
         end: tuple) -> dict:
    """The table row of one model; ``start``/``end``: the marks around it."""
    r = res.rates
    rate = r[(r["reference"] == "nuc DoG") & (r["method"] == "dog") & r["calibrated"]
             & (r["modality"] == nucleus.MODALITIES[fold.modality])
             & (r["fold"] == fold.fold.test)].iloc[0]
    times = end[2]
    wall, cpu = end[0] - start[0], end[1] - start[1]
    staged = [k for k in times if k.endswith(" s") and "cpu" not in k and k != "compile s"]
    h = fold.history["check_loss"].dropna()
    return {"modality": rate["modality"], "fold": fold.fold.test,
            "fn_rate": rate["fn_rate"], "fp_rate": rate["fp_rate"],
            "n_true": rate["n_true"], "n_found": rate["n_found"],
            "threshold": fold.thresholds["dog"], "stopped": fold.stopped,
            "steps": fold.steps, "final_loss": h.iloc[-1] if len(h) else float("nan"),
            "model s": wall - times.get("fields s", 0.0),
            "model cpu s": cpu - times.get("fields cpu s", 0.0),
            "other s": wall - sum(times[k] for k in staged), **times}


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--seeds", type=int, nargs="+", default=[5, 6],
                        help="experiment seeds; 0: the reported fields (confirm once)")
    parser.add_argument("--modalities", default="fl,bf")
    parser.add_argument("--profile-kw", default="{}", help="JSON of Profile overrides")
    parser.add_argument("--tag", default="current")
    parser.add_argument("--out", default=os.environ.get("OUT", "benchmarks/results"))
    args = parser.parse_args()
    prof = config.get_profile(args.profile).replace(**json.loads(args.profile_kw))
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
               f"{device_description()}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        table = run(prof, seed, tuple(args.modalities.split(",")))
        table.insert(0, "load", os.getloadavg()[0])
        table.insert(0, "machine", machine)
        table.insert(0, "seed", seed)
        table.insert(0, "tag", args.tag)
        table.to_csv(out / f"nucleus_{args.tag}_seed{seed}.csv", index=False)
        stage_cols = [c for c in table if c.endswith(" s") and not c.startswith("model")]
        with pd.option_context("display.width", 200, "display.max_columns", 40):
            print(f"{args.tag} (seed {seed}, {machine}, load {os.getloadavg()[0]:.1f})")
            print(table[["modality", "fold", "fn_rate", "fp_rate", "threshold", "steps",
                         "final_loss", "model s", "model cpu s"]].round(3).to_string(index=False))
            print(table.groupby("modality", sort=False)[
                ["fn_rate", "fp_rate", "model s", "model cpu s", *stage_cols, "steps/s",
                 "step cpu ms"]].mean().round(3).T.to_string())


if __name__ == "__main__":
    main()
