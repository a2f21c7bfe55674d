"""Unsupervised training with Eq. 1: the compiled step, history, checkpoints.

One training step takes one area (:class:`~cellcutter_nb.core.batches.AreaBatch`),
transforms it by one of the 8 flips/transposes (4 flips only for the
``original_code`` preset) and minimises Eq. 1 (:mod:`cellcutter_nb.core.loss`) with Adam.
The transform is applied to the *whole batch geometry* — patches, their places on
the canvas and the mask canvas — which is exactly equivalent to the paper's
"reverse operation on the network output before the loss" (Eq. 1 is unchanged by
a symmetry of the canvas) and needs no inverse inside the compiled step.

:func:`train` records per epoch the loss and its three terms and, when the field
has ground truth, the per-cell mIOU of the integrated segmentation and the released
code's patch-level binary MeanIoU — the traces of the paper's Fig. 2. It
checkpoints every epoch (``.keras``, loaded in safe mode) and resumes from the last
checkpoint. The supervised upper bound and the released code's warm start live in
:mod:`cellcutter_nb.core.supervised`.

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

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..backend import backend_name, keras
from ..config import Preset, Profile, config_hash, get_preset, get_profile
from ..data.field import Field, check_markers
from ..metrics import per_cell_iou, summarize
from ..progress import progress_bar
from .batches import epoch_batches, fill_padding, n_transforms, transform_batch
from .integrate import chunk_probabilities, chunk_size, integrate, sigmoid
from .loss import cutter_loss
from .model import build_unet
from .patches import PatchSet, extract_patches

ops = keras.ops

#: File name of the per-epoch checkpoint inside ``checkpoint_dir``.
CHECKPOINT_NAME = "checkpoint.keras"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend (layers also get their own seeds).

    With seeded initialisers (:func:`cellcutter_nb.core.model.build_unet`), a per-epoch
    RNG for areas and augmentation, and padding filled with real patches, a CPU run
    repeats bit for bit (checked across processes). TensorFlow's
    ``enable_op_determinism`` is not used: it made Keras drop XLA and did not make
    the runs here any more repeatable.
    """
    keras.utils.set_random_seed(int(seed))


#: Runs of at most this many steps execute eagerly: tracing the compiled train step
#: costs 2-4 s on 2 CPU cores, more than a few eager steps of a small model.
EAGER_MAX_STEPS = 8


def default_jit() -> bool:
    """Compile the train step with XLA/jit? Yes under JAX; no under TensorFlow on CPU,
    where the oneDNN kernels ran the UNet step 1.7× faster than XLA (measured here)."""
    return backend_name() != "tensorflow"


# --- the compiled step ----------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="cellcutter_nb")
class CutterModel(keras.Model):
    """The UNet wrapped with Eq. 1 as its loss (backend-neutral ``train_on_batch``).

    ``y`` of a step is the dict ``{"offsets", "valid", "mask"}`` of an area batch.
    """

    def __init__(self, unet: keras.Model, lam: float, log_base: float, beta: float,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.unet = unet
        self.lam, self.log_base, self.beta = float(lam), float(log_base), float(beta)
        self.trackers = {k: keras.metrics.Mean(name=k) for k in ("area", "overlap", "mask")}

    def call(self, x: Any, training: bool = False) -> Any:
        return self.unet(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        terms = cutter_loss(y_pred, y["offsets"], y["valid"], y["mask"], lam=self.lam,
                            log_base=self.log_base, beta=self.beta)
        for name in ("area", "overlap", "mask"):
            self.trackers[name].update_state(getattr(terms, name))
        return terms.total

    @property
    def metrics(self) -> list:
        return [*super().metrics, *self.trackers.values()]

    def get_config(self) -> dict:
        return {"unet": keras.saving.serialize_keras_object(self.unet), "lam": self.lam,
                "log_base": self.log_base, "beta": self.beta, "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> CutterModel:
        unet = keras.saving.deserialize_keras_object(config.pop("unet"))
        return cls(unet, **config)


@dataclass
class TrainResult:
    """What :func:`train` returns: the UNet, its per-epoch history and how it stopped."""

    model: keras.Model
    history: pd.DataFrame
    stopped: str
    seconds: float
    patches_per_second: float


def patch_targets(labels: np.ndarray, ps: PatchSet) -> np.ndarray:
    """Binary target of every patch: the true cell under its marker (0 if on background)."""
    k = ps.patch_size
    h, w = labels.shape
    centre = np.clip(ps.centres, 0, [h - 1, w - 1])
    cell = labels[centre[:, 0], centre[:, 1]].astype(np.int64)
    pad = np.pad(labels, k)
    rows = (ps.origins[:, 0, None] + k + np.arange(k))[:, :, None]
    cols = (ps.origins[:, 1, None] + k + np.arange(k))[:, None, :]
    cut = pad[rows, cols]
    return ((cut == cell[:, None, None]) & (cell[:, None, None] > 0)).astype(np.float32)


def recalibrate_batchnorm(unet: keras.Model, patches: np.ndarray, batch_size: int = 256,
                          n_batches: int = 2, seed: int = 0) -> np.ndarray | None:
    """Set BatchNorm moving statistics to the average over a few batches of ``patches``.

    Keras' momentum 0.99 leaves the moving statistics hundreds of steps behind the
    weights, and inference (``training=False``) with stale statistics can score near
    zero after short training. This uses no labels: forward passes in training mode
    with momentum i/(i+1) give the running mean of the batch statistics. With no more
    than ``batch_size`` patches, one pass over all of them sets the statistics of the
    whole set; otherwise ``n_batches`` random batches of ``batch_size`` are averaged.

    Returns
    -------
    ndarray (N, k, k) or None
        After a single pass over all patches, their probabilities: the training-mode
        outputs of that pass, equal to inference with the new statistics (one forward
        pass saved for :func:`evaluate`). ``None`` otherwise.
    """
    layers = [layer for layer in unet.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers or len(patches) == 0:
        return None
    rng = np.random.default_rng(seed)
    n = len(patches)
    batches = [np.arange(n)] if n <= batch_size else [
        np.sort(rng.choice(n, size=batch_size, replace=False)) for _ in range(n_batches)]
    saved = [layer.momentum for layer in layers]
    try:
        for i, idx in enumerate(batches):
            for layer in layers:
                layer.momentum = i / (i + 1.0)
            out = unet(patches[idx], training=True)
    finally:
        for layer, m in zip(layers, saved, strict=True):
            layer.momentum = m
    return sigmoid(np.asarray(out, np.float32)[..., 0]) if len(batches[0]) == n else None


def predict_patches(model: keras.Model, patches: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Sigmoid probabilities (N, k, k) in fixed-size chunks (one compiled shape)."""
    size = chunk_size(len(patches), batch_size)
    out = np.empty(patches.shape[:3], np.float32)
    for start in range(0, len(patches), size):
        out[start:start + size] = chunk_probabilities(model, patches[start:start + size], size)
    return out


def evaluate(model: keras.Model, field: Field, ps: PatchSet, markers: np.ndarray,
             probs: np.ndarray | None = None) -> dict:
    """Per-cell mIOU of the integrated segmentation and the patch-level binary MeanIoU
    (``probs``: the patches' probabilities if already computed, else predicted)."""
    if probs is None:
        probs = predict_patches(model, ps.patches)
    labels = integrate(probs, ps.origins, field.shape, ps.marker_indices + 1)
    table = per_cell_iou(labels, field.labels, markers=markers)
    target = patch_targets(field.labels, ps) > 0.5
    pred = probs >= 0.5
    ious = [np.logical_and(pred == c, target == c).sum() / max(
        np.logical_or(pred == c, target == c).sum(), 1) for c in (True, False)]
    return {"miou": float(summarize(table)["miou"].iloc[0]),
            "patch_mean_iou": float(np.mean(ious))}


def _stable(losses: Sequence[float], window: int, tol: float) -> bool:
    """Loss stable: over the last ``window`` epochs it varied by < ``tol`` (relative)."""
    if len(losses) < window:
        return False
    last = np.asarray(losses[-window:])
    return float(np.ptp(last) / max(abs(last.mean()), 1e-12)) < tol


def build_model(ps: PatchSet, profile: Profile, seed: int) -> keras.Model:
    """A seeded UNet sized by ``profile`` for the channels and patch size of ``ps``."""
    return build_unet(ps.patches.shape[-1], width=profile.unet_width, depth=profile.unet_depth,
                      patch_size=ps.patch_size, seed=seed)


def train(field: Field, channels: Sequence[str] = ("fl", "nuc"),
          preset: str | Preset = "paper", profile: str | Profile = "quick", *,
          mask: np.ndarray | None = None, markers: np.ndarray | None = None, seed: int = 0,
          tol: float = 0.005, window: int = 5, warm_start_epochs: int = 0,
          recalibrate_bn: bool = True, evaluate_every: int = 1,
          checkpoint_dir: str | Path | None = None, progress: bool | None = None,
          unet: keras.Model | None = None, jit_compile: bool | None = None,
          max_seconds: float | None = None,
          on_epoch: Callable[[dict], None] | None = None) -> TrainResult:
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
        tqdm progress bar; default on, off when ``CELLCUTTER_NB_QUIET=1`` (the runner).
    unet : keras.Model, optional
        Start from this network (e.g. one trained on another image) instead of a new one.
    jit_compile : bool, optional
        Compile the train step with XLA/jit; default :func:`default_jit`. Runs of at
        most :data:`EAGER_MAX_STEPS` steps (the smoke profile) run eagerly instead.
    max_seconds : float, optional
        Also stop after this much wall time (checked after each epoch).
    on_epoch : callable, optional
        Called with each epoch's history row (e.g. to print or plot live).

    Returns
    -------
    TrainResult
        ``model`` (the UNet), ``history`` (one row per epoch: loss, area, overlap,
        mask, patches_seen, seconds, and miou / patch_mean_iou with ground truth),
        ``stopped`` (``"stable"``, ``"max_epochs"`` or ``"time"``), wall ``seconds``, and
        ``patches_per_second`` of the training steps.
    """
    preset, profile = get_preset(preset), get_profile(profile)
    markers = check_markers(field.markers if markers is None else markers, field.shape)
    if len(markers) == 0:
        raise ValueError("No markers: pass markers=... or detect them with "
                         "cellcutter_nb.prep.markers.nuclei_from_image first.")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != field.shape:
            raise ValueError(f"mask has shape {mask.shape}, the field {field.shape}.")
        if not mask.any():
            raise ValueError("The mask has no foreground pixel; check the mask step or "
                             "train without a mask (mask=None).")
    seed_everything(seed)
    ps = extract_patches(field, channels, preset, markers=markers)
    if unet is None:
        unet = build_model(ps, profile, seed)
    beta = preset.beta if mask is not None else 0.0
    model = CutterModel(unet, preset.lam, preset.log_base, beta)
    eager = profile.max_epochs * profile.steps_per_epoch <= EAGER_MAX_STEPS
    model.compile(optimizer=keras.optimizers.Adam(preset.learning_rate), run_eagerly=eager,
                  jit_compile=False if eager else
                  (default_jit() if jit_compile is None else jit_compile))
    key = config_hash(preset, profile.replace(max_epochs=1),  # more epochs: resume
                      {"channels": list(channels), "seed": seed, "mask": mask is not None,
                       "field": field.meta.get("cache_key", field.name),
                       "warm": warm_start_epochs})
    rows, start_epoch = [], 0
    ckpt = Path(checkpoint_dir) if checkpoint_dir else None
    if ckpt and (ckpt / "state.json").exists():
        state = json.loads((ckpt / "state.json").read_text())
        if state.get("key") == key:
            model = keras.models.load_model(ckpt / CHECKPOINT_NAME, safe_mode=True)
            unet = model.unet
            rows = pd.read_csv(ckpt / "history.csv").to_dict("records")
            start_epoch = int(state["epoch"]) + 1
    if start_epoch == 0 and warm_start_epochs:  # a fresh start, also after a stale checkpoint
        from .supervised import warm_start  # supervised builds on this module

        warm_start(unet, ps, preset, warm_start_epochs, seed)
    n_t = n_transforms(preset)
    t0, train_time, seen = time.perf_counter(), 0.0, int(rows[-1]["patches_seen"]) if rows else 0
    stopped = "max_epochs"
    bar = progress_bar(desc="epochs", progress=progress, total=profile.max_epochs)
    bar.update(start_epoch)
    for epoch in range(start_epoch, profile.max_epochs):
        ts = time.perf_counter()
        for tracker in model.metrics:
            tracker.reset_state()
        rng = np.random.default_rng([seed, epoch])  # per epoch, so a resumed run matches
        for batch in epoch_batches(ps, mask, preset, profile, rng):
            b = transform_batch(fill_padding(batch), int(rng.integers(n_t)))
            y = {"offsets": b.offsets, "valid": b.valid, "mask": b.mask}
            logs = model.train_on_batch(b.patches, y, return_dict=True)
            seen += b.n_valid
        train_time += time.perf_counter() - ts
        row = {"epoch": epoch, "loss": float(logs["loss"]),
               **{k: float(logs[k]) for k in ("area", "overlap", "mask")},
               "patches_seen": seen, "seconds": time.perf_counter() - t0}
        if field.has_ground_truth and (epoch % evaluate_every == 0
                                       or epoch == profile.max_epochs - 1):
            probs = (recalibrate_batchnorm(unet, ps.patches, seed=seed + epoch)
                     if recalibrate_bn else None)
            row.update(evaluate(unet, field, ps, markers, probs))
        rows.append(row)
        if on_epoch is not None:
            on_epoch(row)
        bar.update(1)
        bar.set_postfix(loss=f"{row['loss']:.3g}", miou=f"{row.get('miou', float('nan')):.3f}")
        if ckpt:
            ckpt.mkdir(parents=True, exist_ok=True)
            model.save(ckpt / CHECKPOINT_NAME)
            pd.DataFrame(rows).to_csv(ckpt / "history.csv", index=False)
            (ckpt / "state.json").write_text(json.dumps({"key": key, "epoch": epoch}))
        if _stable([r["loss"] for r in rows], window, tol):
            stopped = "stable"
            break
        if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
            stopped = "time"
            break
    bar.close()
    if recalibrate_bn and not (rows and "miou" in rows[-1]):  # else done for the last score
        recalibrate_batchnorm(unet, ps.patches, seed=seed)
    history = pd.DataFrame(rows)
    rate = (seen - (int(rows[start_epoch - 1]["patches_seen"]) if start_epoch else 0))
    return TrainResult(unet, history, stopped, time.perf_counter() - t0,
                       rate / train_time if train_time else float("nan"))
