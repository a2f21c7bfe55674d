"""Unsupervised training with Eq. 1: epochs of area steps, scoring, checkpoints.

One training step takes one area (:class:`~cellcutter_nb.core.batches.AreaBatch`),
transforms it by one of the 8 flips/transposes (4 flips only for the
``original_code`` preset) and minimises Eq. 1 (:mod:`cellcutter_nb.core.loss`) with Adam
(:mod:`cellcutter_nb.core.step`). The transform is applied to the *whole batch
geometry* — patches, their places on the canvas and the mask canvas — which is exactly
equivalent to the paper's "reverse operation on the network output before the loss"
(Eq. 1 is unchanged by a symmetry of the canvas) and needs no inverse inside the
compiled step.

:func:`train` reads top-down as its steps: :func:`_start` (checks, patches, the
compiled step, resume from a checkpoint or the released code's warm start),
:func:`_epoch` (one epoch of steps), :func:`_score` (per-cell mIOU and the released
code's patch-level MeanIoU when the field has ground truth: the traces of the paper's
Fig. 2), :func:`_checkpoint` (``.keras`` + history, every epoch) and :func:`_finish`.
How a run stops, scores and saves is one :class:`TrainOptions`.

Examples
--------
>>> from cellcutter_nb.data import synth
>>> from cellcutter_nb import config
>>> from cellcutter_nb.core.train import train
>>> field = synth.make_field(seed=0, shape=128)
>>> prof = config.get_profile("smoke").replace(max_epochs=1, steps_per_epoch=1)
>>> result = train(field, ("fl",), "paper", prof, mask=field.mask, progress=False)
>>> list(result.history.columns[:4])
['epoch', 'loss', 'area', 'overlap']
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..backend import keras
from ..config import Preset, Profile, config_hash, get_preset, get_profile
from ..data.checks import (
    check_marker_density,
    check_mask,
    check_mask_coverage,
    check_seconds,
    check_seed,
)
from ..data.field import Field, check_markers
from ..progress import TrainingBar
from .batches import AreaBatch, epoch_batches, n_transforms
from .evaluate import TrainResult, evaluate, recalibrate_batchnorm
from .model import build_model, seed_everything
from .patches import PatchSet, extract_patches
from .step import EAGER_MAX_STEPS, TERMS, CutterModel, compile_step, train_step
from .supervised import warm_start

__all__ = ["CHECKPOINT_NAME", "TrainOptions", "train"]

#: File name of the per-epoch checkpoint inside ``checkpoint_dir``.
CHECKPOINT_NAME = "checkpoint.keras"
#: Part of the checkpoint key: bump when a checkpoint of an older version cannot resume.
CHECKPOINT_VERSION = 2


@dataclass(frozen=True)
class TrainOptions:
    """How a training run stops, scores and saves (the method itself is the preset's).

    Parameters
    ----------
    tol, window : float, int
        Stop when the epoch loss varied by less than ``tol`` (relative to its mean) over
        the last ``window`` epochs, or at ``profile.max_epochs``.
    warm_start_epochs : int
        Epochs of the released code's warm start (BCE towards 5-px marker disks) before
        Eq. 1; 0 disables it.
    recalibrate_bn : bool
        Re-estimate BatchNorm statistics before each evaluation and at the end.
    evaluate_every : int
        Score every n-th epoch (when the field has ground truth).
    checkpoint_dir : path, optional
        Save ``checkpoint.keras`` + ``history.csv`` + ``state.json`` after every epoch and
        resume from them when present with the same settings.
    progress : bool, optional
        Progress by step ending in a summary line (:class:`~cellcutter_nb.progress.TrainingBar`);
        default on, off when ``CELLCUTTER_NB_QUIET=1`` (the runner).
    jit_compile : bool, optional
        Compile the train step with XLA/jit; default
        :func:`~cellcutter_nb.core.step.default_jit`. Runs of at most
        :data:`~cellcutter_nb.core.step.EAGER_MAX_STEPS` steps run eagerly instead.
    max_seconds : float, optional
        Also stop after this much wall time (checked after each epoch).
    max_patches : int, optional
        Also stop once this many patches have been seen (checked after each epoch).
    on_epoch : callable, optional
        Called with each epoch's history row (e.g. to print or plot live).
    on_step : callable, optional
        Called after every step with its :class:`~cellcutter_nb.core.batches.AreaBatch`
        (e.g. to time steps: ``benchmarks/peer_speed.py``).
    should_stop : callable, optional
        Polled after every step; when it returns True the run ends there, as at the time
        cap, with ``stopped = "interrupted"`` (the command line's Ctrl-C / SIGTERM).
    prior_patches : int
        Patches the starting ``unet`` saw before this run (a shipped starting model's
        card): counted in the summary line's volume, not in ``patches_seen``; above 0
        the run fine-tunes, at the preset's ``finetune_learning_rate`` when it has one.

    Examples
    --------
    >>> TrainOptions(max_seconds=60).window
    5
    """

    tol: float = 0.005
    window: int = 5
    warm_start_epochs: int = 0
    recalibrate_bn: bool = True
    evaluate_every: int = 1
    checkpoint_dir: str | Path | None = None
    progress: bool | None = None
    jit_compile: bool | None = None
    max_seconds: float | None = None
    max_patches: int | None = None
    on_epoch: Callable[[dict], None] | None = None
    on_step: Callable[[AreaBatch], None] | None = None
    should_stop: Callable[[], bool] | None = None
    prior_patches: int = 0


def train(field: Field, channels: Sequence[str] = ("fl", "nuc"),
          preset: str | Preset = "paper", profile: str | Profile = "quick", *,
          mask: np.ndarray | None = None, markers: np.ndarray | None = None, seed: int = 0,
          unet: keras.Model | None = None, options: TrainOptions | None = None,
          **changes: Any) -> TrainResult:
    """Train a UNet on one field without labels (Eq. 1), as the paper does.

    Parameters
    ----------
    field : Field
        Image channels; ground truth (``labels``), if present, is used only to score
        each epoch, never to train.
    channels : sequence of str
        Image channels fed to the network (the position disk is added).
    preset : str or Preset
        ``"paper"`` or ``"original_code"`` (λ, log base, β, lr, augmentation, border).
    profile : str or Profile
        Epochs, steps per epoch (one area per step), UNet width and depth.
    mask : ndarray (H, W), optional
        Foreground mask M (e.g. from :func:`cellcutter_nb.prep.mask.graph_cut`). ``None``
        trains *without* the mask (β = 0), as in Table 1's second row.
    markers : ndarray (N, 2), optional
        One (row, col) per cell; default ``field.markers``.
    seed : int
        Seeds weights, area offsets, augmentation and batch order.
    unet : keras.Model, optional
        Start from this network (e.g. one trained on another image) instead of a new one.
    options, **changes : TrainOptions, optional
        Stop rule, scoring, checkpoints, progress (default :class:`TrainOptions`), with
        fields changed by keyword, e.g. ``max_seconds=60``.

    Returns
    -------
    TrainResult
        ``model`` (the UNet), ``history`` (per epoch: loss, area, overlap, mask,
        patches_seen, seconds; miou, patch_mean_iou with ground truth), ``stopped``
        (``"stable"``, ``"max_epochs"``, ``"time"``, ``"patches"`` or ``"interrupted"``),
        ``seconds``,
        ``patches_per_second``.
    """
    opts = dataclasses.replace(options or TrainOptions(), **changes)
    check_seconds(opts.max_seconds)
    preset, profile = _fine_tuning(get_preset(preset), opts), get_profile(profile)  # once
    run = _start(field, channels, preset, profile, mask, markers, seed, unet, opts)
    bar = TrainingBar(profile.max_epochs * profile.steps_per_epoch, preset, opts.progress,
                      prior_patches=opts.prior_patches)
    bar.resume(run.start_epoch * profile.steps_per_epoch, run.seen)
    for epoch in range(run.start_epoch, profile.max_epochs):
        row = _epoch(run, epoch, bar.step)
        _score(run, row, epoch)
        run.rows.append(row)
        if opts.on_epoch is not None:
            opts.on_epoch(row)
        bar.epoch(row)
        _checkpoint(run, epoch)
        run.stopped = _stop_reason(run) or run.stopped
        if run.stopped != "max_epochs":
            break
    bar.close(run.stopped)
    return _finish(run)


def _fine_tuning(preset: Preset, opts: TrainOptions) -> Preset:
    """The preset at its fine-tuning rate when the run starts from a starting model."""
    if opts.prior_patches and preset.finetune_learning_rate is not None:
        return preset.replace(learning_rate=preset.finetune_learning_rate)
    return preset


@dataclass
class _Run:
    """The state of one training run, shared by its steps."""

    field: Field
    ps: PatchSet
    mask: np.ndarray | None
    markers: np.ndarray
    preset: Preset
    profile: Profile
    seed: int
    opts: TrainOptions
    model: CutterModel
    key: str
    rows: list[dict] = dc_field(default_factory=list)
    start_epoch: int = 0
    seen: int = 0
    train_time: float = 0.0
    t0: float = 0.0
    stopped: str = "max_epochs"

    @property
    def unet(self) -> keras.Model:
        return self.model.unet


def _checked(field: Field, mask: np.ndarray | None,
             markers: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray]:
    """The mask and markers, checked against the field before anything is built."""
    markers = check_markers(field.markers if markers is None else markers, field.shape)
    if len(markers) == 0:
        raise ValueError("No markers: pass markers=... or detect them with "
                         "cellcutter_nb.prep.markers.nuclei_from_image first.")
    check_marker_density(len(markers), field.shape, field.pixel_size)
    if mask is not None:
        mask = check_mask(mask, field.shape)
        if not mask.any():
            raise ValueError("The mask has no foreground pixel; check the mask step or "
                             "train without a mask (mask=None).")
        check_mask_coverage(mask, markers)
    return mask, markers


def _start(field: Field, channels: Sequence[str], preset: Preset, profile: Profile,
           mask: np.ndarray | None, markers: np.ndarray | None, seed: int,
           unet: keras.Model | None, opts: TrainOptions) -> _Run:
    """Checks, patches and the compiled step; then resume from a checkpoint of the same
    run, or (a fresh start, also after another run's checkpoint) the warm start."""
    mask, markers = _checked(field, mask, markers)
    seed = check_seed(seed)
    seed_everything(seed)
    ps = extract_patches(field, channels, preset, markers=markers, mask=mask)
    model = compile_step(unet if unet is not None else build_model(ps, profile, seed, preset),
                         preset,
                         with_mask=mask is not None,
                         eager=profile.max_epochs * profile.steps_per_epoch <= EAGER_MAX_STEPS,
                         jit_compile=opts.jit_compile)
    key = config_hash(preset, profile.replace(max_epochs=1),  # more epochs: resume
                      {"channels": list(channels), "seed": seed, "mask": mask is not None,
                       "field": field.meta.get("cache_key", field.name),
                       "warm": opts.warm_start_epochs, "version": CHECKPOINT_VERSION})
    run = _Run(field, ps, mask, markers, preset, profile, seed, opts, model, key)
    _resume(run)
    if run.start_epoch == 0 and opts.warm_start_epochs:
        warm_start(run.unet, ps, preset, opts.warm_start_epochs, seed)
    run.seen = int(run.rows[-1]["patches_seen"]) if run.rows else 0
    run.t0 = time.perf_counter()
    return run


def _resume(run: _Run) -> None:
    """Load the model and history of the checkpoint folder when it holds this run."""
    ckpt = run.opts.checkpoint_dir
    if not ckpt or not (Path(ckpt) / "state.json").exists():
        return
    state = json.loads((Path(ckpt) / "state.json").read_text())
    if state.get("key") != run.key:  # another run's checkpoint: start afresh
        return
    run.model = keras.models.load_model(Path(ckpt) / CHECKPOINT_NAME, safe_mode=True)
    run.rows = pd.read_csv(Path(ckpt) / "history.csv").to_dict("records")
    run.start_epoch = int(state["epoch"]) + 1


def _epoch(run: _Run, epoch: int, on_step: Callable[[int], None]) -> dict:
    """One epoch of steps, one area each (``on_step`` gets each step's patch count);
    returns its history row."""
    ts = time.perf_counter()
    for tracker in run.model.metrics:
        tracker.reset_state()
    rng = np.random.default_rng([run.seed, epoch])  # per epoch, so a resumed run matches
    n_t = n_transforms(run.preset)
    for batch in epoch_batches(run.ps, run.mask, run.preset, run.profile, rng,
                               static_shapes=bool(run.model.jit_compile)):
        logs = train_step(run.model, batch, int(rng.integers(n_t)))
        run.seen += batch.n_valid
        on_step(batch.n_valid)
        if run.opts.on_step is not None:
            run.opts.on_step(batch)
        if run.opts.should_stop is not None and run.opts.should_stop():
            break
    run.train_time += time.perf_counter() - ts
    return {"epoch": epoch, "loss": float(logs["loss"]),
            **{k: float(logs[k]) for k in TERMS},
            "patches_seen": run.seen, "seconds": time.perf_counter() - run.t0}


def _score(run: _Run, row: dict, epoch: int) -> None:
    """Add the epoch's mIOU and patch MeanIoU to ``row`` (fields with ground truth, every
    ``evaluate_every`` epochs and the last)."""
    last = epoch == run.profile.max_epochs - 1
    if not run.field.has_ground_truth or not (epoch % run.opts.evaluate_every == 0 or last):
        return
    logits = (recalibrate_batchnorm(run.unet, run.ps.patches, seed=run.seed + epoch)
              if run.opts.recalibrate_bn else None)
    row.update(evaluate(run.unet, run.field, run.ps, run.markers, run.preset, run.mask, logits))


def _checkpoint(run: _Run, epoch: int) -> None:
    """Save the step model, the history and the run's key (when a folder is given)."""
    if not run.opts.checkpoint_dir:
        return
    ckpt = Path(run.opts.checkpoint_dir)
    ckpt.mkdir(parents=True, exist_ok=True)
    part = f".part-{os.getpid()}"  # each file replaced whole, state.json last
    run.model.save(ckpt / f"{part}.keras")
    pd.DataFrame(run.rows).to_csv(ckpt / f"{part}.csv", index=False)
    (ckpt / f"{part}.json").write_text(json.dumps({"key": run.key, "epoch": epoch}))
    for name, suffix in ((CHECKPOINT_NAME, ".keras"), ("history.csv", ".csv"),
                         ("state.json", ".json")):
        os.replace(ckpt / f"{part}{suffix}", ckpt / name)


def _stop_reason(run: _Run) -> str | None:
    """Why the run stops after this epoch (``"interrupted"``, ``"stable"``, ``"time"``,
    ``"patches"``), or None."""
    opts = run.opts
    if opts.should_stop is not None and opts.should_stop():
        return "interrupted"
    if _stable([r["loss"] for r in run.rows], opts.window, opts.tol):
        return "stable"
    if opts.max_seconds is not None and time.perf_counter() - run.t0 > opts.max_seconds:
        return "time"
    if opts.max_patches is not None and run.seen >= opts.max_patches:
        return "patches"
    return None


def _stable(losses: Sequence[float], window: int, tol: float) -> bool:
    """Loss stable: over the last ``window`` epochs it varied by < ``tol`` (relative)."""
    if len(losses) < window:
        return False
    last = np.asarray(losses[-window:])
    return float(np.ptp(last) / max(abs(last.mean()), 1e-12)) < tol


def _finish(run: _Run) -> TrainResult:
    """Final BatchNorm statistics (unless the last score set them) and the result."""
    rows = run.rows
    if run.opts.recalibrate_bn and not (rows and "miou" in rows[-1]):
        recalibrate_batchnorm(run.unet, run.ps.patches, seed=run.seed)
    before = int(rows[run.start_epoch - 1]["patches_seen"]) if run.start_epoch else 0
    return TrainResult(run.unet, pd.DataFrame(rows), run.stopped,
                       time.perf_counter() - run.t0,
                       (run.seen - before) / run.train_time if run.train_time else float("nan"))
