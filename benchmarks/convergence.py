"""Convergence study: mIOU against patches seen, per preset and per departure of ``fast``.

For every seed, one synthetic field is made (``make_field(seed, shape=--size)``); markers
are found on its nucleus channel and the mask is the graph cut of fl, as a user would
make them. Every variant trains on that field without any ground truth; the truth only
scores the integrated segmentation after every epoch (``--epoch-patches`` patches). Beside
the curves, each field's references: the position-only partition (each mask pixel to its
nearest marker), CellProfiler propagation given the same mask, and a supervised bound
(the same UNet and patches trained with binary cross-entropy against the true cells).

Tune on seeds >= 100, report on seeds 0-2 (the fields the notebooks score).

Variants (``--variants``): ``paper``, ``original_code``, ``fast``; ``paper_lr0.001``
(the paper with the released code's learning rate, the base of the ablation); the
departures of ``fast`` each alone on that base (``+group_norm``, ``+prior``,
``+boundary``, ``+integration``) and each removed from ``fast`` (``fast-group_norm``, ...).

Outputs under ``--out``: ``<variant>_s<seed>.csv`` (history), ``references.csv``,
``summary.csv`` (mIOU at each ``--report`` volume, patches and seconds to each target)
and ``curves.png``.

Example (2 CPU cores, about an hour): ``python benchmarks/convergence.py --seeds 0 1 2
--variants fast paper original_code --patches 30000 --budget paper=10000
original_code=10000 --report 5000 10000 20000 30000 --out benchmarks/results/quick640``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cellcutter_nb import config, metrics
from cellcutter_nb.config import Preset
from cellcutter_nb.core.supervised import train_supervised
from cellcutter_nb.core.train import train
from cellcutter_nb.data import synth
from cellcutter_nb.prep import markers as mk
from cellcutter_nb.prep import mask as mm
from cellcutter_nb.prep.baseline import nearest_marker_partition, secondary_objects

#: What each departure of ``fast`` changes, as Preset fields (values of ``fast``).
DEPARTURES = {
    "group_norm": ("normalisation",),
    "prior": ("position_prior", "position_prior_level"),
    "boundary": ("boundary_weight", "boundary_kappa"),
    "integration": ("integration", "one_piece"),
}


def variant(name: str) -> Preset:
    """The preset of a variant name (see the module notes).

    Examples
    --------
    >>> variant("+prior").position_prior, variant("fast-prior").position_prior
    (8.0, 0.0)
    """
    fast, paper = config.get_preset("fast"), config.get_preset("paper")
    base = paper.replace(name="paper_lr0.001", learning_rate=fast.learning_rate)
    if name in config.PRESETS:
        return config.get_preset(name)
    if name == base.name:
        return base
    for dep, fields in DEPARTURES.items():
        if name == f"+{dep}":
            return base.replace(name=name, **{f: getattr(fast, f) for f in fields})
        if name == f"fast-{dep}":
            return fast.replace(name=name, **{f: getattr(paper, f) for f in fields})
    raise ValueError(f"Unknown variant {name!r}.")


def references(field, markers, nuclei, fg, profile, channels, seed) -> dict:
    """Position only, CellProfiler given the same mask, and the supervised bound."""
    def miou(labels):
        return float(metrics.summarize(metrics.per_cell_iou(
            labels, field.labels, markers=markers))["miou"].iloc[0])

    sup = train_supervised(field, channels, "paper", profile, markers=markers, seed=seed,
                           epochs=8)
    return {"position_only": miou(nearest_marker_partition(markers, fg)),
            "cellprofiler_same_mask": miou(secondary_objects(field["fl"], nuclei,
                                                             "propagation", foreground=fg)),
            "supervised": float(sup.history["miou"].max()),
            "supervised_patches": int(sup.history["patches_seen"].iloc[-1])}


def run_variant(name, field, markers, fg, profile, channels, seed, n_patches, out) -> None:
    """Train one variant until it has seen ``n_patches`` patches and write its history."""
    def show(row: dict) -> None:
        print(name, seed, json.dumps({k: round(v, 4) for k, v in row.items()}), flush=True)

    result = train(field, channels, variant(name), profile.replace(max_epochs=10_000),
                   mask=fg, markers=markers, seed=seed, tol=0.0, progress=False,
                   max_patches=n_patches, on_epoch=show)
    result.history.to_csv(out / f"{name}_s{seed}.csv", index=False)


def summarise(out: Path, report: list[int], targets: dict[str, float]) -> pd.DataFrame:
    """mIOU at each reported volume (linear in patches between epochs) and the first
    patches/seconds at which each target is reached, per variant and seed."""
    refs = pd.read_csv(out / "references.csv").set_index("seed")
    rows = []
    for path in sorted(out.glob("*_s*.csv")):
        name, seed = path.stem.rsplit("_s", 1)
        h = pd.read_csv(path).dropna(subset=["miou"])
        row = {"variant": name, "seed": int(seed)}
        for n in report:
            row[f"miou@{n // 1000}k"] = (float(np.interp(n, h["patches_seen"], h["miou"]))
                                         if h["patches_seen"].max() >= n else np.nan)
        for tname, offset in targets.items():
            goal = refs.loc[int(seed), tname.split("+")[0]] + offset
            hit = h[h["miou"] >= goal]
            row[f"patches_to_{tname}"] = int(hit["patches_seen"].iloc[0]) if len(hit) else np.nan
            row[f"seconds_to_{tname}"] = float(hit["seconds"].iloc[0]) if len(hit) else np.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(out / "summary.csv", index=False)
    return table


def plot(out: Path) -> None:
    """Curves of every variant (mean over seeds) with the references of every field."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    refs = pd.read_csv(out / "references.csv")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in sorted({p.stem.rsplit("_s", 1)[0] for p in out.glob("*_s*.csv")}):
        runs = [pd.read_csv(p).dropna(subset=["miou"]) for p in out.glob(f"{name}_s*.csv")]
        grid = np.linspace(0, min(r["patches_seen"].max() for r in runs), 60)[1:]
        mean = np.mean([np.interp(grid, r["patches_seen"], r["miou"]) for r in runs], axis=0)
        ax.plot(grid / 1000, mean, label=f"{name} (n={len(runs)})")
    for col, style in (("position_only", ":"), ("cellprofiler_same_mask", "--"),
                       ("supervised", "-.")):
        ax.axhline(refs[col].mean(), color="k", ls=style, lw=1, label=f"{col} (mean)")
    ax.set(xlabel="patches seen (thousands)", ylabel="per-cell mIOU", ylim=(0, 1))
    ax.legend(fontsize=7, loc="lower right")
    fig.savefig(out / "curves.png", dpi=120, bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--steps", type=int, default=100, help="steps per epoch")
    parser.add_argument("--patches", type=int, default=20000)
    parser.add_argument("--budget", nargs="*", default=[], metavar="VARIANT=N",
                        help="patches for one variant instead of --patches (e.g. paper=10000)")
    parser.add_argument("--variants", nargs="+", default=["paper", "original_code", "fast"])
    parser.add_argument("--channels", default="fl,nuc")
    parser.add_argument("--report", type=int, nargs="+", default=[5000, 20000, 60000])
    parser.add_argument("--out", default="benchmarks/results/convergence")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budgets = {name: int(n) for name, n in (b.split("=") for b in args.budget)}
    channels = tuple(args.channels.split(","))
    profile = config.get_profile(args.profile).replace(
        field_size=args.size, unet_width=args.width, steps_per_epoch=args.steps)
    refs = out / "references.csv"  # kept: a second invocation adds variants or seeds
    ref_rows = pd.read_csv(refs).to_dict("records") if refs.is_file() else []
    for seed in args.seeds:
        t0 = time.perf_counter()
        field = synth.make_field(seed, shape=args.size)
        nuclei = mk.nuclei_from_image(field["nuc"], pixel_size=field.pixel_size)
        markers, fg = mk.markers_from_labels(nuclei), mm.graph_cut(field["fl"])
        if seed not in {int(r["seed"]) for r in ref_rows}:
            ref_rows.append({"seed": seed, "cells": field.n_cells, "markers": len(markers),
                             **references(field, markers, nuclei, fg, profile, channels, seed),
                             "prep_s": time.perf_counter() - t0})
            print(json.dumps(ref_rows[-1]), flush=True)
            pd.DataFrame(ref_rows).to_csv(refs, index=False)
        for name in args.variants:
            run_variant(name, field, markers, fg, profile, channels, seed,
                        budgets.get(name, args.patches), out)
    summarise(out, args.report, {"position_only+0.05": 0.05, "cellprofiler_same_mask": 0.0})
    plot(out)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
