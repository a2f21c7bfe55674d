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
import io as _io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from numbers import Integral, Real
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
from . import figures

_PAPER = get_preset("paper")
#: (min, max, step) of the explorer's sliders; :func:`check_params` enforces the same.
RANGES: dict[str, tuple[float, float, float]] = {
    "lam": (0.25, 10.0, 0.01), "beta": (0.0, 50.0, 0.5), "position_sigma": (2.0, 40.0, 0.5),
    "size": (128, 512, 32), "field_seed": (0, 999, 1), "seed": (0, 999, 1),
    "max_seconds": (2.0, 600.0, 1.0)}
#: Default training wall-time budget per profile (s): seconds for smoke, ≤ 30 s for quick.
DEFAULT_SECONDS: dict[str, float] = {"smoke": 15.0, "quick": 20.0, "full": 300.0}


@dataclass(frozen=True)
class ExploreParams:
    """Settings of one exploration (defaults: the ``paper`` preset, FL + Nuc, smoke).

    Parameters
    ----------
    lam, beta, position_sigma : float
        λ (overlap weight), β (outside-mask weight), σ of the position disk (px).
    channels : tuple of str or str
        Channels the network sees: names (``("fl", "nuc")``), ``"fl,nuc"`` or a
        Table 1 row name (``"FL+Nuc"``).
    use_mask : bool
        Train with the mask (Table 1's first row) or without it (β unused).
    size, field_seed : int
        Side (px) and seed of the synthetic area.
    profile : str
        ``smoke``, ``quick`` or ``full``: UNet size and epochs.
    seed : int
        Seeds training.
    max_seconds : float, optional
        Training wall-time budget; default :data:`DEFAULT_SECONDS` of the profile.
    """

    lam: float = _PAPER.lam
    beta: float = _PAPER.beta
    position_sigma: float = _PAPER.position_sigma
    channels: tuple[str, ...] | str = ("fl", "nuc")
    use_mask: bool = True
    size: int = 192
    field_seed: int = 0
    profile: str = "smoke"
    seed: int = 0
    max_seconds: float | None = None

    @property
    def budget(self) -> float:
        """Training wall-time budget in seconds."""
        return DEFAULT_SECONDS[self.profile] if self.max_seconds is None else self.max_seconds


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


def _number(name: str, value: Any, integer: bool = False) -> float:
    lo, hi, _ = RANGES[name]
    kind = Integral if integer else Real
    if isinstance(value, bool) or not isinstance(value, kind) or not lo <= value <= hi:
        what = "an integer" if integer else "a number"
        raise ValueError(f"{name}={value!r} is invalid: expected {what} in [{lo:g}, {hi:g}].")
    return int(value) if integer else float(value)


def check_params(params: ExploreParams | Mapping[str, Any] | None = None,
                 **changes: Any) -> ExploreParams:
    """Validate and normalise settings (a dict, :class:`ExploreParams` or keywords).

    Raises
    ------
    ValueError
        Naming the setting, the value and the allowed range (see :data:`RANGES`).

    Examples
    --------
    >>> check_params(profile="quick", size=256).budget
    20.0
    >>> check_params(lam=0)
    Traceback (most recent call last):
    ...
    ValueError: lam=0 is invalid: expected a number in [0.25, 10].
    """
    given = {**(params if isinstance(params, Mapping) else {}), **changes}
    unknown = sorted(set(given) - set(ExploreParams.__dataclass_fields__))
    if unknown:
        raise ValueError(f"Unknown setting(s) {unknown}; choose from "
                         f"{list(ExploreParams.__dataclass_fields__)}.")
    p = dataclasses.replace(params if isinstance(params, ExploreParams) else ExploreParams(),
                            **given)
    if p.profile not in PROFILES:
        raise ValueError(f"profile={p.profile!r} is invalid: choose one of {sorted(PROFILES)}.")
    if p.max_seconds is not None:
        _number("max_seconds", p.max_seconds)
    return dataclasses.replace(
        p, lam=_number("lam", p.lam), beta=_number("beta", p.beta),
        position_sigma=_number("position_sigma", p.position_sigma),
        channels=chan.check(p.channels, cell_channel=True, canonical=True),
        use_mask=bool(p.use_mask),
        size=_number("size", p.size, True), field_seed=_number("field_seed", p.field_seed, True),
        seed=_number("seed", p.seed, True),
        max_seconds=None if p.max_seconds is None else float(p.max_seconds))


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
    preset = _PAPER.replace(lam=p.lam, beta=p.beta, position_sigma=p.position_sigma)
    field = make_area(p.field_seed, p.size)
    markers = field.markers
    fg = area_mask(field, p.channels, p.seed)
    images = Field(dict(field.channels), field.pixel_size, name=field.name, meta=field.meta)
    result = train(images, p.channels, preset, step_profile(p.profile),  # no truth: no scoring
                   mask=fg if p.use_mask else None, markers=markers, seed=p.seed,
                   progress=progress, max_seconds=p.budget, on_epoch=on_epoch)
    labels = predict_field(result.model, field, p.channels, preset, markers=markers)
    position_only = nearest_marker_partition(markers, fg)
    net = per_cell_iou(labels, field.labels, markers=markers)
    pos = per_cell_iou(position_only, field.labels, markers=markers)
    table = pd.DataFrame({"unsupervised": net["iou"], "position only": pos["iou"],
                          "gt_area": net["gt_area"]})
    summary = summarize_ious(table)
    fig = explore_figure(field, labels, position_only, table, p)
    return ExploreResult(labels, table, fig, summary, position_only, result.history, p,
                         field, result.seconds, result.stopped)


def explore_figure(field: Field, labels: np.ndarray, position_only: np.ndarray,
                   table: pd.DataFrame, params: ExploreParams):
    """Outlines (cyan) over the truth (yellow) for both partitions and the IoU histograms."""
    import matplotlib.pyplot as plt

    image = field[params.channels[0]]
    fig, axes = figures.subplots(1, 3, size=3.2)
    for ax, lab, name in ((axes[0, 0], labels, "unsupervised"),
                          (axes[0, 1], position_only, "position only")):
        figures.outlines(ax, image, lab, extra=field.labels,
                         title=f"{name}: mIOU {table[name].mean():.3f}")
    ax = axes[0, 2]
    bins = np.linspace(0, 1, 21)
    for i, name in enumerate(("unsupervised", "position only")):
        ax.hist(table[name], bins=bins, histtype="step", lw=1.5, color=f"C{i}", label=name)
    ax.set_xlabel("per-cell IoU vs truth")
    ax.set_ylabel("cells")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{chan.combo_name(params.channels)}, λ={params.lam:g}, β={params.beta:g}"
                 f"{'' if params.use_mask else ' (no mask)'}, σ={params.position_sigma:g}; "
                 f"area {params.size}² seed {params.field_seed}, {params.profile}", fontsize=8)
    plt.close(fig)  # shown explicitly (show_figure), never twice
    return fig


def show_figure(fig) -> None:
    """Display a figure as a static PNG, whatever the matplotlib backend (Agg under papermill)."""
    from IPython.display import Image, display

    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    display(Image(data=buf.getvalue(), format="png"))


class Explorer:
    """ipywidgets controls wired to :func:`explore`; display it (or ``.widget``) in Jupyter.

    ``controls`` maps every setting of :class:`ExploreParams` (channels as ``fl``,
    ``bf``, ``nuc`` checkboxes) to its widget, with the ranges of :data:`RANGES`;
    ``button`` retrains, ``progress`` counts training steps, ``output`` shows the figure and
    tables of the last run (``result``). Builds without a browser or kernel.
    """

    def __init__(self, params: ExploreParams | Mapping[str, Any] | None = None) -> None:
        import ipywidgets as w

        p = check_params(params)
        style = {"description_width": "120px"}

        labels = {"lam": "λ (overlap)", "beta": "β (outside mask)", "position_sigma":
                  "σ position disk", "size": "area side (px)", "field_seed": "area seed",
                  "seed": "training seed", "max_seconds": "budget (s)"}
        kinds = {"size": w.IntSlider, "field_seed": w.BoundedIntText, "seed": w.BoundedIntText}
        values = {**dataclasses.asdict(p), "max_seconds": p.budget}
        self.controls: dict[str, Any] = {
            name: kinds.get(name, w.FloatSlider)(
                value=values[name], min=lo, max=hi, step=step, description=labels[name],
                style=style, continuous_update=False)
            for name, (lo, hi, step) in RANGES.items()}
        self.controls.update(
            {c: w.Checkbox(value=c in p.channels, description=c, indent=False) for c in CHANNELS},
            use_mask=w.Checkbox(value=p.use_mask, description="train with mask", indent=False),
            profile=w.Dropdown(options=sorted(PROFILES), value=p.profile, description="profile",
                               style=style))
        self.controls["profile"].observe(self._profile_changed, names="value")
        self.button = w.Button(description="train", button_style="primary", icon="play")
        self.button.on_click(lambda _: self.run())
        self.progress = w.IntProgress(value=0, min=0, max=1, description="steps")
        self.status = w.HTML(value="Set the controls and press <b>train</b>.")
        self.output = w.Output()
        self.result: ExploreResult | None = None
        c = self.controls
        self.widget = w.VBox([
            w.HBox([w.VBox([c["lam"], c["beta"], c["position_sigma"]]),
                    w.VBox([c["size"], c["field_seed"], c["seed"]])]),
            w.HBox([w.Label("channels:"), c["fl"], c["bf"], c["nuc"], c["use_mask"]]),
            w.HBox([c["profile"], c["max_seconds"]]),
            w.HBox([self.button, self.progress]), self.status, self.output])

    def _profile_changed(self, change: dict) -> None:
        self.controls["max_seconds"].value = DEFAULT_SECONDS[change["new"]]

    def params(self) -> ExploreParams:
        """The controls' current settings, checked (``ValueError`` if invalid)."""
        c = self.controls
        return check_params(ExploreParams(
            **{k: c[k].value for k in RANGES}, channels=tuple(n for n in CHANNELS if c[n].value),
            use_mask=c["use_mask"].value, profile=c["profile"].value))

    def run(self) -> ExploreResult | None:
        """Retrain with the current settings and show the result (errors in ``status``)."""
        from IPython.display import display

        try:
            p = self.params()
        except ValueError as err:
            self.status.value = f"<span style='color:#c00'>{err}</span>"
            return None
        self.progress.max, self.progress.value = step_profile(p.profile).max_epochs, 0
        self.status.value = f"training ({'+'.join(p.channels)}, ≤ {p.budget:.0f} s) ..."
        self.button.disabled = True

        def tick(row: dict) -> None:
            self.progress.value = int(row["epoch"]) + 1
            self.status.value = f"step {int(row['epoch']) + 1}: loss {row['loss']:.4g}"

        try:
            res = explore(p, progress=False, on_epoch=tick)
        except Exception as err:  # a widget callback would swallow it: show it
            self.status.value = f"<span style='color:#c00'>{type(err).__name__}: {err}</span>"
            return None
        finally:
            self.button.disabled = False
        self.result = res
        self.progress.value = self.progress.max
        self.status.value = (f"done in {res.seconds:.1f} s (stopped: {res.stopped}); "
                             f"{len(res.table)} cells")
        self.output.clear_output(wait=True)
        with self.output:
            show_figure(res.figure)
            display(res.summary)
        return res

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
