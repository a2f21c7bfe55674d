"""Time every non-training stage of the pipeline at the paper's field size (1750×1750).

Stages, each timed ``--repeats`` times on the field ``make_field(seed=0)`` (median
printed): synthetic field generation (:func:`cellcutter_nb.data.synth.make_field`, a new
seed per repeat), nucleus segmentation for the markers
(:func:`~cellcutter_nb.prep.markers.nuclei_from_image`), blob detection on the nucleus image
(:func:`~cellcutter_nb.prep.markers.detect_blobs`, DoG and DoH), the graph-cut mask of fl
(:func:`~cellcutter_nb.prep.mask.graph_cut`, the ``paper`` and the ``original_code``
settings), the bright-field pixel-classifier mask, the CellProfiler baseline,
integration of per-patch probabilities (:func:`~cellcutter_nb.core.integrate.integrate`)
and whole-field prediction (:func:`~cellcutter_nb.core.integrate.predict_field`) once with
a constant stand-in for the network (patch cutting + integration alone) and once with
an untrained UNet of the paper's width 32 (Keras backend of the environment).

Run: ``python benchmarks/pipeline_speed.py [--repeats 3] [--size 1750] [--skip unet]``
(~4 min on 2 CPU cores). Prints one line per stage, then a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

from cellcutter_nb import config, metrics
from cellcutter_nb.core import integrate
from cellcutter_nb.data import synth
from cellcutter_nb.prep import markers as mk
from cellcutter_nb.prep import mask as mm
from cellcutter_nb.prep.scribbles import synthetic_scribbles


class ConstantModel:
    """Stands in for the UNet in ``predict_field``: logits +1 inside a centred disk."""

    def __init__(self, k: int = config.PATCH_SIZE, radius: float = 14.0) -> None:
        yy, xx = np.mgrid[:k, :k] - k // 2
        self.logits = np.where(yy**2 + xx**2 < radius**2, 1.0, -1.0).astype(np.float32)

    def predict_on_batch(self, patches: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.logits[None, :, :, None], (*patches.shape[:3], 1))


def timed(fn: Callable[[int], object], repeats: int) -> tuple[float, list[float], object]:
    """Median wall time of ``fn(repeat)`` over ``repeats`` calls, the times, the last result."""
    times, out = [], None
    for r in range(repeats):
        t0 = time.perf_counter()
        out = fn(r)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=config.PAPER_FIELD_SIZE)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip", nargs="*", default=[],
                        help="stage names to skip (e.g. unet cellprofiler)")
    args = parser.parse_args()
    field = synth.make_field(seed=0, shape=args.size)
    nuc, fl = field["nuc"], field["fl"]
    paper, code = config.get_preset("paper"), config.get_preset("original_code")
    rows: list[tuple[str, float, list[float], str]] = []

    def stage(name: str, fn: Callable[[int], object], note: Callable[[object], str]) -> object:
        if name in args.skip:
            return None
        med, times, out = timed(fn, args.repeats)
        rows.append((name, med, times, note(out)))
        print(f"{name}: median {med:.3f} s ({', '.join(f'{t:.3f}' for t in times)}); "
              f"{rows[-1][3]}; load {os.getloadavg()[0]:.2f}", flush=True)
        return out

    stage("make_field", lambda r: synth.make_field(seed=r, shape=args.size),
          lambda f: f"{f.n_cells} cells")
    nuclei = stage("nuclei_from_image",
                   lambda r: mk.nuclei_from_image(nuc, pixel_size=field.pixel_size),
                   lambda lab: f"{int(lab.max())} nuclei")
    found = field.markers if nuclei is None else mk.markers_from_labels(nuclei)
    for method in ("dog", "doh"):
        stage(f"detect_blobs_{method}", lambda r, m=method: mk.detect_blobs(nuc, m),
              lambda b: f"{len(b)} blobs")
    stage("graph_cut_paper", lambda r: mm.graph_cut(
        fl, neighbourhood=paper.graph_cut_neighbourhood, pairwise=paper.graph_cut_pairwise),
        lambda m: f"IoU {metrics.foreground_iou(m, field.mask):.3f}")
    stage("graph_cut_original_code", lambda r: mm.graph_cut(
        fl, neighbourhood=code.graph_cut_neighbourhood, pairwise=code.graph_cut_pairwise),
        lambda m: f"IoU {metrics.foreground_iou(m, field.mask):.3f}")
    stage("pixel_classifier_mask_bf", lambda r: mm.pixel_classifier_mask(
        field["bf"], synthetic_scribbles(field, seed=0)),
        lambda m: f"IoU {metrics.foreground_iou(m, field.mask):.3f}")
    if "cellprofiler" not in args.skip:
        from cellcutter_nb.prep.baseline import cellprofiler_baseline

        stage("cellprofiler", lambda r: cellprofiler_baseline(field, nuclei),
              lambda b: f"best {b.best}")

    # integration of realistic probabilities: each patch's true cell at 0.9, rest 0.1
    from cellcutter_nb.core.evaluate import patch_targets
    from cellcutter_nb.core.patches import extract_patches

    ps = extract_patches(field, ("fl", "nuc"), paper, markers=found)
    probs = (0.1 + 0.8 * patch_targets(field.labels, ps)).astype(np.float32)
    stage("integrate", lambda r: integrate.integrate(probs, ps.origins, field.shape,
                                                     ps.marker_indices + 1),
          lambda lab: f"{len(ps)} patches, {int((lab > 0).mean() * 100)}% labelled")
    stage("predict_field_constant_model", lambda r: integrate.predict_field(
        ConstantModel(), field, ("fl", "nuc"), paper, markers=found),
        lambda lab: f"{len(found)} patches, model = constant logits")
    if "unet" not in args.skip:
        from cellcutter_nb.backend import backend_name
        from cellcutter_nb.core.model import build_unet

        unet = build_unet(3, width=32, depth=4, patch_size=paper.patch_size, seed=0)
        stage("predict_field_unet32", lambda r: integrate.predict_field(
            unet, field, ("fl", "nuc"), paper, markers=found),
            lambda lab: f"{len(found)} patches, UNet width 32, {backend_name()}")

    print(f"\n{args.size}×{args.size}, median of {args.repeats}; 1-min load average at the "
          f"end: {os.getloadavg()[0]:.2f}")
    print("| stage | median (s) | runs (s) | note |\n|---|---|---|---|")
    for name, med, times, note in rows:
        print(f"| {name} | {med:.3f} | {', '.join(f'{t:.2f}' for t in times)} | {note} |")


if __name__ == "__main__":
    main()
