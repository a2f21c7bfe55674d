"""The shipped starting model against training from scratch, on fields it never saw.

Two measurements, each with the position-only partition and CellProfiler (given the same
mask) beside it:

* ``default``: ``segment()`` at the CLI's default budget (the ``quick`` profile, no time
  cap) from scratch and from the starting model, on tuning fields (``--tune-seeds``,
  default 100 101): this chose ``start="auto"`` → pretrained.
* ``finetune``: the starting model fine-tuned for ``--seconds`` on each reported field
  (``--seeds``, default 0 1 2), mIOU after every epoch of ``--steps`` steps; the mIOU it
  starts from is epoch -1.

Markers are found on nuc and the mask is the graph cut of fl, as a user would make them;
ground truth only scores. Outputs under ``--out``: ``default.csv``, ``finetune.csv``.

Example (2 CPU cores, ~20 min): ``python benchmarks/starting_model.py --seconds 300``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from cellcutter_nb import config, metrics
from cellcutter_nb.app.pipeline import segment
from cellcutter_nb.core.integrate import predict_field
from cellcutter_nb.core.starting import load_starting_model
from cellcutter_nb.core.train import train
from cellcutter_nb.data import synth
from cellcutter_nb.data.field import Field
from cellcutter_nb.prep import markers as mk
from cellcutter_nb.prep import mask as mm
from cellcutter_nb.prep.baseline import nearest_marker_partition, secondary_objects

CHANNELS = ("fl", "nuc")


def prepared(seed: int, size: int):
    """The field, its markers and mask as a user makes them, and the references."""
    field = synth.make_field(seed, shape=size)
    nuclei = mk.nuclei_from_image(field["nuc"], pixel_size=field.pixel_size)
    markers, fg = mk.markers_from_labels(nuclei), mm.graph_cut(field["fl"])
    refs = {"position_only": miou(nearest_marker_partition(markers, fg), field, markers),
            "cellprofiler_same_mask": miou(secondary_objects(
                field["fl"], nuclei, "propagation", foreground=fg), field, markers)}
    return field, markers, fg, refs


def miou(labels: np.ndarray, field: Field, markers: np.ndarray) -> float:
    return float(metrics.score(labels, field.labels, markers)[0]["miou"])


def default_budget(seeds, size: int) -> pd.DataFrame:
    """segment() from scratch and from the starting model at the quick profile's budget."""
    rows = []
    for seed in seeds:
        field, markers, fg, refs = prepared(seed, size)
        images = Field(dict(field.channels), field.pixel_size, name=field.name)
        for start in ("scratch", "pretrained"):
            labels, _, history = segment(images, CHANNELS, "fast", "quick", markers=markers,
                                         mask=fg, seed=0, start=start, progress=False)
            rows.append({"seed": seed, "start": start, "miou": miou(labels, field, markers),
                         "patches": int(history["patches_seen"].iloc[-1]),
                         "seconds": float(history.attrs["seconds"]), **refs})
            print(json.dumps(rows[-1]), flush=True)
    return pd.DataFrame(rows)


def finetune(seeds, size: int, seconds: float, steps: int,
             learning_rate: float | None = None) -> pd.DataFrame:
    """mIOU against fine-tuning time from the starting model (epoch -1: before)."""
    preset = config.get_preset("fast")
    if learning_rate is not None:
        preset = preset.replace(finetune_learning_rate=learning_rate)
    profile = config.get_profile("quick").replace(max_epochs=10_000, steps_per_epoch=steps)
    rows = []
    for seed in seeds:
        field, markers, fg, refs = prepared(seed, size)
        unet, card = load_starting_model(CHANNELS, preset)
        before = predict_field(unet, field, CHANNELS, preset, markers=markers, mask=fg)
        rows.append({"seed": seed, "epoch": -1, "patches_seen": 0, "seconds": 0.0,
                     "miou": miou(before, field, markers), **refs})
        print(json.dumps(rows[-1]), flush=True)

        def show(row: dict, seed=seed, refs=refs) -> None:
            rows.append({"seed": seed, **{k: row[k] for k in
                                          ("epoch", "patches_seen", "seconds", "miou")},
                         **refs})
            print(json.dumps(rows[-1]), flush=True)

        train(field, CHANNELS, preset, profile, mask=fg, markers=markers, seed=0, unet=unet,
              prior_patches=card.patches_seen, tol=0.0, max_seconds=seconds,
              progress=False, on_epoch=show)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tune-seeds", type=int, nargs="*", default=[100, 101])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--steps", type=int, default=40, help="steps per scored epoch")
    parser.add_argument("--lr", type=float,
                        help="fine-tuning learning rate (default: fast's finetune_learning_rate)")
    parser.add_argument("--out", default="benchmarks/results/starting")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.tune_seeds:
        default_budget(args.tune_seeds, args.size).to_csv(out / "default.csv", index=False)
    if args.seeds:
        name = "finetune.csv" if args.lr is None else f"finetune_lr{args.lr:g}.csv"
        finetune(args.seeds, args.size, args.seconds, args.steps, args.lr).to_csv(
            out / name, index=False)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
