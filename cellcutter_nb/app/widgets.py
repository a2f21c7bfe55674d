"""Explore λ, β, σ and the channels on one small synthetic area: retrain, re-infer, score.

:func:`explore` is the whole logic as a plain function — generate the area, make the
mask, train a small UNet without annotation (bounded by the profile and a wall-time
budget), integrate, and score every true cell against the ground truth beside the
**position-only** partition (each mask pixel to its nearest marker). It needs no
browser and is what notebook 10 calls headlessly. :class:`Explorer` only wires
ipywidgets controls (sliders, checkboxes, a *train* button, a progress bar) to it.

Markers are the area's true nucleus centroids, so the comparison isolates the
network; the mask is a graph cut of ``fl`` when ``fl`` is used, otherwise scribbles
→ random forest on ``bf`` (as in the paper's bright-field experiments).

Examples
--------
>>> from cellcutter_nb.app.widgets import ExploreParams, check_params
>>> p = check_params(ExploreParams(channels="FL+Nuc", lam=1.44))
>>> p.channels, p.lam, p.beta
(('fl', 'nuc'), 1.44, 15.0)
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from .. import channels as chan
from ..channels import CHANNELS
from ..config import PROFILES, Profile, get_preset, get_profile
from ..core.integrate import predict_field
from ..data.field import Field
from ..data.synth import make_field
from ..metrics import per_cell_iou
from ..prep.baseline import nearest_marker_partition
from ..prep.mask import graph_cut, pixel_classifier_mask
from ..prep.scribbles import synthetic_scribbles
from ..progress import training_label
from . import figures
from .explore_settings import DEFAULT_SECONDS, RANGES, ExploreParams, check_params
from .pipeline import patches_before, starting_point

__all__ = ["DEFAULT_SECONDS", "RANGES", "ExploreParams", "ExploreResult", "Explorer",
           "area_mask", "check_params", "explore", "make_area", "step_profile",
           "summarize_ious"]

_PAPER = get_preset("paper")


@dataclass
class ExploreResult:
    """What :func:`explore` returns (``labels, table, figure`` first)."""

    labels: np.ndarray
    table: pd.DataFrame
    figure: Any
    summary: pd.DataFrame
    position_only: np.ndarray
    history: pd.DataFrame
    params: ExploreParams
    field: Field
    seconds: float
    stopped: str


@lru_cache(maxsize=4)
def make_area(field_seed: int, size: int) -> Field:
    """The synthetic area (cached: moving a slider does not regenerate it)."""
    return make_field(seed=field_seed, shape=size)


def area_mask(field: Field, channels: Sequence[str], seed: int = 0) -> np.ndarray:
    """Graph cut of ``fl`` when it is used; else synthetic scribbles → forest on ``bf``."""
    if "fl" in channels:
        return graph_cut(field["fl"], neighbourhood=_PAPER.graph_cut_neighbourhood,
                         pairwise=_PAPER.graph_cut_pairwise)
    return pixel_classifier_mask(field["bf"], synthetic_scribbles(field, seed=seed), seed=seed)


def step_profile(profile: str) -> Profile:
    """The profile with one area per "epoch", so that the budget is checked every step.

    Examples
    --------
    >>> step_profile("smoke").steps_per_epoch
    1
    """
    prof = get_profile(profile)
    return prof.replace(max_epochs=prof.max_epochs * prof.steps_per_epoch, steps_per_epoch=1)


def summarize_ious(table: pd.DataFrame) -> pd.DataFrame:
    """mIOU, std and the fraction of cells with IoU ≥ 0.5, one row per method column.

    Examples
    --------
    >>> t = pd.DataFrame({"unsupervised": [0.2, 0.8], "position only": [0.5, 0.7]})
    >>> summarize_ious(t)["miou"].tolist()
    [0.5, 0.6]
    """
    rows = {c: {"miou": table[c].mean(), "std": table[c].std(ddof=1) if len(table) > 1 else 0.0,
                "frac_iou_ge_0.5": (table[c] >= 0.5).mean(), "n_cells": len(table)}
            for c in table.columns if c in ("unsupervised", "position only")}
    return pd.DataFrame(rows).T.rename_axis("method").astype({"n_cells": int}).round(4)


def explore(params: ExploreParams | Mapping[str, Any] | None = None, *,
            progress: bool | None = None, on_epoch: Callable[[dict], None] | None = None,
            **changes: Any) -> ExploreResult:
    """Train a small model on one synthetic area with these settings and score it.

    Parameters
    ----------
    params : ExploreParams or dict, optional
        Settings (defaults: :class:`ExploreParams`); keyword ``changes`` override them.
    progress : bool, optional
        tqdm bar of the training steps (default on, off under the runner).
    on_epoch : callable, optional
        Called with each step's history row (the widget's progress bar).

    Returns
    -------
    ExploreResult
        ``labels`` (area-shaped, label k ↔ marker k - 1), ``table`` (per true cell:
        ``unsupervised`` and ``position only`` IoU, ``gt_area``), ``figure`` (outlines
        of both against the truth and the IoU histograms), ``summary``, ...

    Raises
    ------
    ValueError
        Invalid settings (before anything is trained).
    """
    from ..core.train import train  # Keras on demand: not for checking the settings

    p = check_params(params, **changes)
    base = get_preset("fast") if p.start == "pretrained" else _PAPER  # the model's recipe
    preset = base.replace(lam=p.lam, beta=p.beta, position_sigma=p.position_sigma)
    unet, card = starting_point(p.start, p.channels, preset)
    prior = patches_before(card)
    field = make_area(p.field_seed, p.size)
    markers = field.markers
    fg = area_mask(field, p.channels, p.seed)
    images = Field(dict(field.channels), field.pixel_size, name=field.name, meta=field.meta)
    result = train(images, p.channels, preset, step_profile(p.profile),  # no truth: no scoring
                   mask=fg if p.use_mask else None, markers=markers, seed=p.seed,
                   progress=progress, max_seconds=p.budget, on_epoch=on_epoch, unet=unet,
                   prior_patches=prior)
    labels = predict_field(result.model, field, p.channels, preset, markers=markers,
                           mask=fg if p.use_mask else None)
    position_only = nearest_marker_partition(markers, fg)
    net = per_cell_iou(labels, field.labels, markers=markers)
    pos = per_cell_iou(position_only, field.labels, markers=markers)
    table = pd.DataFrame({"unsupervised": net["iou"], "position only": pos["iou"],
                          "gt_area": net["gt_area"]})
    summary = summarize_ious(table)
    title = (f"{chan.combo_name(p.channels)}, λ={p.lam:g}, β={p.beta:g}"
             f"{'' if p.use_mask else ' (no mask)'}, σ={p.position_sigma:g}; area {p.size}² "
             f"seed {p.field_seed}, {p.profile}; "
             f"{training_label(result.history['patches_seen'].iloc[-1] + prior, preset)}")
    fig = figures.partitions(field[p.channels[0]], field.labels, {
        "unsupervised": labels, "position only": position_only}, table, title)
    return ExploreResult(labels, table, fig, summary, position_only, result.history, p,
                         field, result.seconds, result.stopped)


class Explorer:
    """ipywidgets controls wired to :func:`explore`; display it (or ``.widget``) in Jupyter.

    ``controls`` maps every setting of :class:`ExploreParams` (channels as ``fl``,
    ``bf``, ``nuc`` checkboxes) to its widget, with the ranges of :data:`RANGES`;
    ``button`` retrains, ``progress`` and ``count`` follow the training steps, ``output``
    shows the figure and tables of the last run (``result``); an error clears them. The
    budget slider is disabled where it cannot bind (:data:`DEFAULT_SECONDS` is ``None``).
    Builds without a browser or kernel.
    """

    def __init__(self, params: ExploreParams | Mapping[str, Any] | None = None) -> None:
        import ipywidgets as w

        p = check_params(params)
        style = {"description_width": "120px"}
        labels = {"lam": "λ (overlap)", "beta": "β (outside mask)", "position_sigma":
                  "σ position disk", "size": "area side (px)", "field_seed": "area seed",
                  "seed": "training seed", "max_seconds": "budget (s)"}
        kinds = {"size": w.IntSlider, "field_seed": w.BoundedIntText, "seed": w.BoundedIntText}
        values = {**dataclasses.asdict(p), "max_seconds": p.budget or RANGES["max_seconds"][0]}
        self.controls: dict[str, Any] = {
            name: kinds.get(name, w.FloatSlider)(
                value=values[name], min=lo, max=hi, step=step, description=labels[name],
                style=style, continuous_update=False)
            for name, (lo, hi, step) in RANGES.items()}
        compact = w.Layout(width="auto", flex="0 0 auto")
        self.controls.update(
            {c: w.Checkbox(value=c in p.channels, description=c, indent=False, layout=compact)
             for c in CHANNELS},
            use_mask=w.Checkbox(value=p.use_mask, description="train with mask", indent=False,
                                layout=compact),
            profile=w.Dropdown(options=sorted(PROFILES), value=p.profile, description="profile",
                               style=style),
            start=w.Dropdown(options=["scratch", "pretrained"], value=p.start,
                             description="start", style=style))
        self.controls["profile"].observe(lambda ch: self._budget_for(ch["new"]), names="value")
        self._budget_for(p.profile, p.max_seconds)
        self.button = w.Button(description="train", button_style="primary", icon="play")
        self.button.on_click(lambda _: self.run())
        self.progress = w.IntProgress(value=0, min=0, max=1, description="steps")
        self.count = w.Label(value="")
        self.status = w.HTML(value="Set the controls and press <b>train</b>.")
        self.output = w.Output()
        self.result: ExploreResult | None = None
        c = self.controls
        self.widget = w.VBox([
            w.HBox([w.VBox([c["lam"], c["beta"], c["position_sigma"]]),
                    w.VBox([c["size"], c["field_seed"], c["seed"]])]),
            w.HBox([w.Label("channels:", layout=compact), c["fl"], c["bf"], c["nuc"],
                    c["use_mask"]], layout=w.Layout(grid_gap="12px", align_items="center")),
            w.HBox([c["profile"], c["max_seconds"], c["start"]]),
            w.HBox([self.button, self.progress, self.count]), self.status, self.output])

    def _budget_for(self, profile: str, seconds: float | None = None) -> None:
        """The budget slider follows the profile; disabled where no budget can bind."""
        slider, default = self.controls["max_seconds"], DEFAULT_SECONDS[profile]
        slider.disabled = default is None
        slider.readout = not slider.disabled  # no number that means nothing
        slider.tooltip = (f"{profile}: its {step_profile(profile).max_epochs} training steps "
                          f"end long before any budget" if default is None else
                          "training stops after this many seconds")
        if default is not None:
            slider.value = seconds or default

    def params(self) -> ExploreParams:
        """The controls' current settings, checked (``ValueError`` if invalid)."""
        c = self.controls
        budget = None if c["max_seconds"].disabled else c["max_seconds"].value
        return check_params(ExploreParams(
            **{k: c[k].value for k in RANGES if k != "max_seconds"}, max_seconds=budget,
            channels=tuple(n for n in CHANNELS if c[n].value), use_mask=c["use_mask"].value,
            profile=c["profile"].value, start=c["start"].value))

    def run(self) -> ExploreResult | None:
        """Retrain with the current settings and show the result; an error is shown in
        ``status`` and clears the last run's bar, count and figure."""
        from IPython.display import display

        try:
            p = self.params()
        except ValueError as err:
            return self._failed(str(err))
        total = step_profile(p.profile).max_epochs
        self.progress.max, self.progress.value = total, 0
        self.count.value = f"0/{total} steps"
        self.output.clear_output()
        budget = "" if p.budget is None else f", ≤ {p.budget:.0f} s"
        self.status.value = f"training ({'+'.join(p.channels)}{budget}) ..."
        self.button.disabled = True

        def tick(row: dict) -> None:
            self.progress.value = int(row["epoch"]) + 1
            self.count.value = (f"{self.progress.value}/{total} steps, "
                                f"{int(row['patches_seen']):,} patches")
            self.status.value = f"step {self.progress.value}: loss {row['loss']:.4g}"

        try:
            res = explore(p, progress=False, on_epoch=tick)
        except Exception as err:  # a widget callback would swallow it: show it
            return self._failed(f"{type(err).__name__}: {err}")
        finally:
            self.button.disabled = False
        self.result = res
        seen = int(res.history["patches_seen"].iloc[-1])
        self.status.value = (f"done: {len(res.history)} steps in {res.seconds:.1f} s (stopped: "
                             f"{res.stopped}), {training_label(seen, _PAPER)}; "
                             f"{len(res.table)} cells")
        with self.output:
            figures.show(res.figure)
            display(res.summary)
        return res

    def _failed(self, message: str) -> None:
        """Show ``message`` in red and clear what the last run left (bar, count, figure)."""
        self.result = None
        self.progress.value = 0
        self.count.value = ""
        self.output.clear_output()
        self.status.value = f"<span style='color:#c00'>{html.escape(message)}</span>"

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
