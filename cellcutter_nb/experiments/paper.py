"""One function per experiment of Din & Yu (2021), each returning DataFrames.

All of them are views of the cached runs of :mod:`cellcutter_nb.experiments.model_cache`:
the first call trains, later calls (another notebook, a rerun of ``reproduce``) load from
the cache. Each takes the profile and preset by name or as objects and resolves them
once; below, objects are passed.

================================  ==========================================================
:func:`training_traces`           Fig. 2 — loss and mIOU per epoch, six input combinations
:func:`table1`                    Table 1 — combinations × {with, without mask} × replicates,
                                  plus CellProfiler and the position-only reference
:func:`cross_modality`            agreement of the FL- and BF-trained segmentations
:func:`unseen_image`              a model trained on replicate A segments replicate B
:func:`mask_edge_effect`          Fig. S6 — per-cell IoU at clump edges vs interiors
:func:`presets`                   the ``paper`` vs the ``original_code`` preset
================================  ==========================================================

The paper's own figures are in :data:`PUBLISHED`; :func:`summary` puts a long table into
"mean ± std" form.

Examples
--------
>>> from cellcutter_nb import config
>>> from cellcutter_nb.experiments import paper
>>> prof = config.get_profile("smoke").replace(field_size=128, max_epochs=1,
...                                            steps_per_epoch=1, n_replicates=1)
>>> t = paper.table1(prof, combinations=[("fl",)], cache_dir=None)
>>> sorted(t["method"].unique())
['CNN w/ mask', 'CNN w/o mask', 'CellProfiler', 'CellProfiler (same mask)', 'position only']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..channels import COMBINATIONS, check_combinations, combo_name
from ..config import Preset, Profile, get_preset, get_profile
from ..core.integrate import predict_field
from ..metrics import per_cell_iou, score
from ..prep.baseline import cellprofiler_baseline, nearest_marker_partition
from ..progress import progress_bar
from .distributed import Scheduler, fit_jobs
from .model_cache import Run, fit, replicate
from .starting_runs import starting_model_rows

#: The paper's figures (mean, std), keyed as our tables are.
PUBLISHED: dict[str, dict] = {
    "table1": {
        ("CNN w/ mask", "FL"): (0.779, 0.026), ("CNN w/ mask", "FL+Nuc"): (0.809, 0.012),
        ("CNN w/ mask", "BF"): (0.710, 0.017), ("CNN w/ mask", "BF+Nuc"): (0.766, 0.040),
        ("CNN w/ mask", "FL+BF"): (0.765, 0.043), ("CNN w/ mask", "FL+BF+Nuc"): (0.821, 0.025),
        ("CNN w/o mask", "FL"): (0.773, 0.017), ("CNN w/o mask", "FL+Nuc"): (0.789, 0.027),
        ("CNN w/o mask", "BF"): (0.717, 0.032), ("CNN w/o mask", "BF+Nuc"): (0.761, 0.036),
        ("CNN w/o mask", "FL+BF"): (0.764, 0.017),
        ("CNN w/o mask", "FL+BF+Nuc"): (0.781, 0.033),
        ("CellProfiler", "FL"): (0.69, 0.034),
    },
    "cross_modality": {"FL vs BF": (0.74, 0.017), "FL+Nuc vs BF+Nuc": (0.809, 0.051)},
    "unseen_image": {"FL": (0.752, None), "BF": (0.772, None)},
    "synthetic_markers": {
        ("FL", "fn_rate"): (0.018, 0.003), ("FL", "fp_rate"): (0.022, 0.003),
        ("BF", "fn_rate"): (0.021, 0.002), ("BF", "fp_rate"): (0.024, 0.003),
        ("FL", "miou"): (0.814, 0.025), ("BF", "miou"): (0.755, 0.033)},
}


def _resolve(profile: str | Profile, preset: str | Preset) -> tuple[Profile, Preset]:
    """The profile and preset of an experiment: names are resolved here, at its entry."""
    return get_profile(profile), get_preset(preset)


def grid(profile: str | Profile = "quick", preset: str | Preset = "paper", seed: int = 0, *,
         combinations: Iterable[Sequence[str]] = COMBINATIONS,
         masks: Sequence[bool] = (True, False), replicates: Sequence[int] | None = None,
         cache_dir: str | Path | None | bool = True,
         progress: bool | None = None, client: Scheduler | None = None) -> list[Run]:
    """Train (or load) every run of the Table 1 grid; the other experiments reuse them.

    ``client=None`` trains one model after another in this process; a
    ``distributed.Client``, a scheduler address or ``"local"`` (a cluster sized to this
    machine) trains them as tasks of a Dask graph with the same results
    (:func:`~cellcutter_nb.experiments.distributed.fit_jobs`; the runs come back without
    their Keras model, which ``run.model()`` loads from the cache).
    """
    return _grid(*_resolve(profile, preset), seed, check_combinations(combinations), masks,
                 replicates, cache_dir, progress, client)


def grid_jobs(profile: Profile, combinations: Iterable[Sequence[str]] = COMBINATIONS,
              masks: Sequence[bool] = (True, False),
              replicates: Sequence[int] | None = None) -> list[tuple[int, tuple[str, ...], bool]]:
    """The runs of the Table 1 grid, ``(replicate, channels, with_mask)``, in the order
    :func:`grid` trains them (replicates default to the profile's).

    Examples
    --------
    >>> from cellcutter_nb import config
    >>> jobs = grid_jobs(config.get_profile("smoke"))
    >>> len(jobs), jobs[0]
    (24, (0, ('fl',), True))
    """
    reps = range(profile.n_replicates) if replicates is None else replicates
    combos = check_combinations(combinations)
    return [(int(i), c, bool(m)) for i in reps for m in masks for c in combos]


def _grid(prof: Profile, pre: Preset, seed: int, combos: list[tuple[str, ...]],
          masks: Sequence[bool], replicates: Sequence[int] | None,
          cache_dir: str | Path | None | bool, progress: bool | None,
          client: Scheduler | None = None) -> list[Run]:
    jobs = grid_jobs(prof, combos, masks, replicates)
    if client is not None:
        return fit_jobs(prof, pre, jobs, seed=seed, cache_dir=cache_dir, client=client,
                        progress=progress)
    return [fit(prof, pre, i, c, with_mask=m, seed=seed, cache_dir=cache_dir)
            for i, c, m in progress_bar(jobs, "models", progress)]


def training_traces(profile: str | Profile = "quick", preset: str | Preset = "paper",
                    seed: int = 0, *, index: int = 0,
                    combinations: Iterable[Sequence[str]] = COMBINATIONS,
                    cache_dir: str | Path | None | bool = True,
                    progress: bool | None = None) -> pd.DataFrame:
    """Fig. 2: per-epoch loss terms and mIOU of the with-mask models of one replicate.

    Returns
    -------
    DataFrame
        One row per (``combination``, ``epoch``): ``loss``, ``area``, ``overlap``,
        ``mask``, ``patches_seen``, ``seconds``, ``miou``, ``patch_mean_iou``.
    """
    runs = _grid(*_resolve(profile, preset), seed, check_combinations(combinations), (True,),
                 [index], cache_dir, progress)
    return pd.concat([r.history.assign(combination=combo_name(r.channels)) for r in runs],
                     ignore_index=True)


def references(profile: str | Profile, preset: str | Preset, index: int,
               seed: int = 0) -> list[dict]:
    """Position-only partition and CellProfiler (own threshold, and given the fl mask)."""
    return _references(*_resolve(profile, preset), index, seed)


def _references(prof: Profile, pre: Preset, index: int, seed: int) -> list[dict]:
    rep = replicate(prof, pre, index, seed)
    truth = rep.field.labels
    rows = [dict(score(nearest_marker_partition(rep.markers, rep.fl_mask), truth,
                       rep.markers)[0], method="position only")]
    for method, fg in (("CellProfiler", "li"), ("CellProfiler (same mask)", rep.fl_mask)):
        cp = cellprofiler_baseline(rep.field, rep.nuclei, foreground=fg)
        rows.append(dict(score(cp.labels[cp.best], truth, cp.markers)[0], method=method,
                         cp_method=cp.best))
    return [dict(r, combination="FL", replicate=index) for r in rows]


def table1(profile: str | Profile = "quick", preset: str | Preset = "paper", seed: int = 0, *,
           combinations: Iterable[Sequence[str]] = COMBINATIONS,
           starting_models: bool = False, cache_dir: str | Path | None | bool = True,
           progress: bool | None = None) -> pd.DataFrame:
    """Table 1: per-cell mIOU (and AP/F1 at IoU 0.5) of every run, one row per replicate.

    Parameters
    ----------
    starting_models : bool
        Add the rows of :func:`cellcutter_nb.experiments.starting_runs.starting_model_rows`:
        the with-mask runs of every combination that has a shipped starting model of the
        profile's network size and preset, fine-tuned from it for the profile's budget
        instead of trained from random weights (not in the paper; the model saw no image
        of the replicates).

    Returns
    -------
    DataFrame
        Columns ``method`` (``CNN w/ mask``, ``CNN w/o mask``, ``CellProfiler``,
        ``CellProfiler (same mask)``, ``position only``), ``combination``, ``replicate``,
        ``miou``, ``std`` (over cells), ``ap50``, ``f1``, ``n_cells``; CNN rows also
        ``patches_seen``, ``seconds``, ``stopped``. :func:`summary` gives mean ± std
        over replicates.
    """
    prof, pre = _resolve(profile, preset)
    combos = check_combinations(combinations)
    rows = []
    for run in _grid(prof, pre, seed, combos, (True, False), None, cache_dir, progress):
        rows.append(dict(run.scores, method="CNN w/ mask" if run.with_mask else "CNN w/o mask",
                         combination=combo_name(run.channels), replicate=run.index))
    if starting_models:
        rows += starting_model_rows(prof, pre, seed, combos, cache_dir, progress)
    for i in range(prof.n_replicates):
        rows += _references(prof, pre, i, seed)
    cols = ["method", "combination", "replicate", "miou", "std", "ap50", "f1", "n_cells"]
    out = pd.DataFrame(rows)
    return out[cols + [c for c in out.columns if c not in cols]]


def summary(table: pd.DataFrame, value: str = "miou",
            by: Sequence[str] = ("method", "combination")) -> pd.DataFrame:
    """Mean, std (over replicates, ddof 1) and count of ``value`` per group.

    Examples
    --------
    >>> t = pd.DataFrame({"method": ["a", "a"], "combination": ["FL", "FL"],
    ...                   "miou": [0.5, 0.7]})
    >>> summary(t).round(4).values.tolist()
    [['a', 'FL', 0.6, 0.1414, 2]]
    """
    if value not in table:
        raise ValueError(f"The table has no column {value!r}; columns: {list(table.columns)}.")
    g = table.groupby(list(by), sort=False)[value]
    return g.agg(mean="mean", std="std", n="count").reset_index()


def cross_modality(profile: str | Profile = "quick", preset: str | Preset = "paper",
                   seed: int = 0, *, cache_dir: str | Path | None | bool = True,
                   progress: bool | None = None) -> pd.DataFrame:
    """Agreement between the FL-trained and the BF-trained segmentations of a field.

    Both use the same markers, so label k of one and of the other belong to the same
    cell: the agreement is the mean over cells of their IoU (the paper's "mIOU between
    two segmentation results"), computed for FL vs BF and FL+Nuc vs BF+Nuc (with mask).

    Returns
    -------
    DataFrame
        ``pair``, ``replicate``, ``miou`` (agreement), ``std`` (over cells), ``n_cells``.
    """
    prof, pre = _resolve(profile, preset)
    pairs = {"FL vs BF": (("fl",), ("bf",)), "FL+Nuc vs BF+Nuc": (("fl", "nuc"), ("bf", "nuc"))}
    rows = []
    for i in progress_bar(range(prof.n_replicates), "replicates", progress):
        for name, (a, b) in pairs.items():
            ra, rb = (fit(prof, pre, i, c, seed=seed, cache_dir=cache_dir) for c in (a, b))
            iou = per_cell_iou(rb.labels, ra.labels)["iou"].to_numpy()  # labels match by number
            rows.append({"pair": name, "replicate": i, "miou": float(iou.mean()),
                         "std": float(iou.std(ddof=1)), "n_cells": int(iou.size)})
    return pd.DataFrame(rows)


def unseen_image(profile: str | Profile = "quick", preset: str | Preset = "paper",
                 seed: int = 0, *, combinations: Iterable[Sequence[str]] = (("fl",), ("bf",)),
                 cache_dir: str | Path | None | bool = True,
                 progress: bool | None = None) -> pd.DataFrame:
    """A model trained on replicate A segments replicate B, which it never saw.

    Each replicate's model is applied to the next replicate (A → A + 1, cyclically).

    Returns
    -------
    DataFrame
        ``combination``, ``trained_on``, ``applied_to``, ``agreement`` (mIOU between the
        unseen-image segmentation and B's own model's, the paper's 0.752 / 0.772),
        ``miou_unseen`` and ``miou_own`` (each against B's ground truth).
    """
    prof, pre = _resolve(profile, preset)
    if prof.n_replicates < 2:
        raise ValueError("unseen_image needs at least 2 replicates (profile.n_replicates).")
    rows = []
    for c in progress_bar(check_combinations(combinations), "combinations", progress):
        for a in range(prof.n_replicates):
            b = (a + 1) % prof.n_replicates
            ra, rb = (fit(prof, pre, i, c, seed=seed, cache_dir=cache_dir) for i in (a, b))
            target = replicate(prof, pre, b, seed)
            labels = predict_field(ra.model(), target.field, c, pre, markers=rb.markers,
                                   mask=target.mask_for(c))
            agree = per_cell_iou(labels, rb.labels)["iou"].mean()
            rows.append({"combination": combo_name(c), "trained_on": a, "applied_to": b,
                         "agreement": float(agree),
                         "miou_unseen": score(labels, target.field.labels,
                                              rb.markers)[0]["miou"],
                         "miou_own": rb.scores["miou"]})
    return pd.DataFrame(rows)


def edge_cells(labels: np.ndarray) -> np.ndarray:
    """Ground-truth cells that touch the background (clump edge), as label numbers.

    Examples
    --------
    >>> lab = np.zeros((5, 7), int); lab[1:4, 1:3] = 1; lab[1:4, 3:5] = 2; lab[1:4, 5:7] = 3
    >>> edge_cells(lab).tolist()
    [1, 2, 3]
    """
    background = ndi.binary_dilation(labels == 0, structure=ndi.generate_binary_structure(2, 1))
    touching = np.unique(labels[background & (labels > 0)])
    return touching[touching > 0]


def mask_edge_effect(profile: str | Profile = "quick", preset: str | Preset = "paper",
                     seed: int = 0, *, combinations: Iterable[Sequence[str]] = COMBINATIONS,
                     cache_dir: str | Path | None | bool = True,
                     progress: bool | None = None) -> pd.DataFrame:
    """Fig. S6: per-cell IoU with and without the mask, by where the cell sits.

    A cell is at a clump ``edge`` when it touches the background in the ground truth,
    ``interior`` otherwise.

    Returns
    -------
    DataFrame
        One row per (replicate, combination, cell): ``position``, ``iou_with``,
        ``iou_without``, ``gain`` (with − without).
    """
    prof, pre = _resolve(profile, preset)
    frames = []
    for i in progress_bar(range(prof.n_replicates), "replicates", progress):
        edge = set(edge_cells(replicate(prof, pre, i, seed).field.labels).tolist())
        for c in check_combinations(combinations):
            w, wo = (fit(prof, pre, i, c, with_mask=m, seed=seed, cache_dir=cache_dir)
                     for m in (True, False))
            cells = w.cells[["gt_label", "iou"]].rename(columns={"iou": "iou_with"})
            cells["iou_without"] = wo.cells["iou"].to_numpy()
            cells["position"] = np.where(cells["gt_label"].isin(edge), "edge", "interior")
            frames.append(cells.assign(replicate=i, combination=combo_name(c)))
    out = pd.concat(frames, ignore_index=True)
    out["gain"] = out["iou_with"] - out["iou_without"]
    return out


def presets(profile: str | Profile = "quick", seed: int = 0, *,
            channels: Sequence[str] = ("fl", "nuc"),
            variants: dict[str, str | Preset] | None = None,
            cache_dir: str | Path | None | bool = True,
            progress: bool | None = None) -> pd.DataFrame:
    """The same model (FL+Nuc, with mask) under the paper's text, the released code and the
    ``fast`` recipe.

    Parameters
    ----------
    variants : dict, optional
        Name → preset; default ``paper``, ``original_code`` and ``fast`` as defined in
        :mod:`cellcutter_nb.presets`.

    Returns
    -------
    DataFrame
        ``preset``, ``replicate``, ``miou``, ``std``, ``ap50``, ``f1``, ``n_cells``,
        ``patches_seen``, ``seconds``.
    """
    prof = get_profile(profile)  # resolved here, once, like each variant's preset
    variants = {name: get_preset(p) for name, p in (
        variants or {name: name for name in ("paper", "original_code", "fast")}).items()}
    jobs = [(n, p, i) for n, p in variants.items() for i in range(prof.n_replicates)]
    rows = []
    for name, pre, i in progress_bar(jobs, "presets", progress):
        run = fit(prof, pre, i, channels, seed=seed, cache_dir=cache_dir)
        rows.append(dict(run.scores, preset=name, replicate=i))
    out = pd.DataFrame(rows)
    return out[["preset", "replicate"] + [c for c in out.columns if c not in
                                          ("preset", "replicate")]]


def side_by_side(summary_table: pd.DataFrame, paper: dict, digits: int = 3) -> pd.DataFrame:
    """Ours (mean ± std) beside the paper's (mean ± std), one cell per (method, combination).

    Examples
    --------
    >>> s = pd.DataFrame({"method": ["CNN w/ mask"], "combination": ["FL"], "mean": [0.5],
    ...                   "std": [0.1], "n": [3]})
    >>> side_by_side(s, PUBLISHED["table1"]).loc["CNN w/ mask", "FL"]
    '0.500 ± 0.100 (paper 0.779 ± 0.026)'
    """
    def cell(row) -> str:
        text = f"{row['mean']:.{digits}f} ± {row['std']:.{digits}f}"
        ref = paper.get((row["method"], row["combination"]))
        if ref is not None:
            text += f" (paper {ref[0]:.{digits}f}" + (f" ± {ref[1]:.{digits}f})" if ref[1]
                                                      else ")")
        return text

    out = summary_table.assign(text=summary_table.apply(cell, axis=1))
    return out.pivot(index="method", columns="combination", values="text").reindex(
        index=list(dict.fromkeys(summary_table["method"])),
        columns=list(dict.fromkeys(summary_table["combination"]))).fillna("")
