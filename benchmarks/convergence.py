"""Does unsupervised training learn the true junctions? mIOU against training volume.

Trains several configurations on one synthetic field with markers found on the
nucleus channel and a graph-cut mask of fl (no ground truth is used for training),
and writes each run's per-epoch history (loss terms, per-cell mIOU, patches seen)
to ``<out>/<run>.csv`` beside the references: the position-only partition (nearest
marker inside the mask), the CellProfiler-style propagation baseline and a
supervised upper bound (BCE against the true cells, same UNet and patches).

Meant for a GPU (``KERAS_BACKEND=jax``, see ``benchmarks/gpu.sh``) at the paper's
scale; on CPU use a small field: ``python benchmarks/convergence.py --size 640
--width 16 --seconds 600``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cellcutter_nb import config, metrics
from cellcutter_nb.backend import backend_name, device_description
from cellcutter_nb.core.supervised import train_supervised
from cellcutter_nb.core.train import train
from cellcutter_nb.data import synth
from cellcutter_nb.prep import markers as mk
from cellcutter_nb.prep import mask as mm
from cellcutter_nb.prep.baseline import nearest_marker_partition

RUNS = {
    "paper": {},
    "paper_lr0.001": {"learning_rate": 0.001},
    "paper_warm": {"warm_start_epochs": 3},
    "original_code": {"preset": "original_code"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=config.PAPER_FIELD_SIZE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=90.0, help="cap per run")
    parser.add_argument("--supervised-epochs", type=int, default=6)
    parser.add_argument("--runs", nargs="+", default=list(RUNS))
    parser.add_argument("--channels", default="fl,nuc")
    parser.add_argument("--out", default=os.environ.get("OUT", "results/convergence"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    channels = tuple(args.channels.split(","))
    t0 = time.perf_counter()
    field = synth.make_field(args.seed, shape=args.size)
    found = mk.markers_from_labels(mk.nuclei_from_image(field["nuc"], pixel_size=field.pixel_size))
    fg = mm.graph_cut(field["fl"])
    summary = {"backend": backend_name(), "device": device_description(), "size": args.size,
               "cells": field.n_cells, "markers": len(found),
               "mask_iou": metrics.foreground_iou(fg, field.mask),
               "prep_s": time.perf_counter() - t0}
    pos = nearest_marker_partition(found, fg)
    summary["position_only_miou"] = float(metrics.summarize(
        metrics.per_cell_iou(pos, field.labels, markers=found))["miou"].iloc[0])
    print(json.dumps(summary), flush=True)
    profile = config.get_profile("full").replace(
        field_size=args.size, unet_width=args.width, max_epochs=args.epochs,
        steps_per_epoch=args.steps)
    for name in args.runs:
        opts = dict(RUNS[name])
        preset = config.get_preset(opts.pop("preset", "paper"))
        if "learning_rate" in opts:
            preset = preset.replace(learning_rate=opts.pop("learning_rate"))
        log = out / f"{name}.csv"
        log.unlink(missing_ok=True)

        def report(row: dict, n: str = name, log: Path = log) -> None:
            print(n, json.dumps({k: round(v, 4) for k, v in row.items()}), flush=True)
            pd.DataFrame([row]).to_csv(log, mode="a", header=not log.exists(), index=False)

        r = train(field, channels, preset, profile, mask=fg, markers=found, seed=args.seed,
                  tol=0.0, max_seconds=args.seconds, evaluate_every=2, progress=False,
                  on_epoch=report, **opts)
        best = r.history["miou"].max()
        print(json.dumps({"run": name, "stopped": r.stopped, "epochs": len(r.history),
                          "seconds": round(r.seconds, 1),
                          "patches_per_s": round(r.patches_per_second, 1),
                          "final_miou": round(float(r.history["miou"].dropna().iloc[-1]), 4),
                          "best_miou": round(float(best), 4)}), flush=True)
    if args.supervised_epochs:
        s = train_supervised(field, channels, "paper", profile, markers=found, seed=args.seed,
                             epochs=args.supervised_epochs)
        s.history.to_csv(out / "supervised.csv", index=False)
        print(json.dumps({"run": "supervised", "seconds": round(s.seconds, 1),
                          "miou": [round(v, 4) for v in s.history["miou"]]}), flush=True)
    pd.DataFrame([summary]).to_csv(out / "summary.csv", index=False)
    print(f"total {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
