"""Cached training runs: one synthetic replicate, one channel set, with or without the mask.

Every experiment of the paper (:mod:`cellcutter_nb.experiments.paper`) is a different
view of the same few dozen trained models — Table 1's grid of 6 input combinations × {with,
without mask} × replicates also gives Fig. 2's traces, the cross-modality agreement,
the unseen-image test and the mask edge effect. :func:`fit` trains one of them once
and caches it on disk under a key made of everything that shapes it (profile,
preset, replicate, seed, channels, mask, markers, package cache version), so a second
notebook, a rerun or an interrupted ``reproduce`` reuses it instead of retraining.

A replicate is a synthetic field (:func:`cellcutter_nb.data.synth.make_field`, seed
``1000 * seed + index``) playing one of the paper's three sample replicates, with its
markers found on ``nuc`` (as the paper did), the graph-cut mask of ``fl`` and the
scribble-classifier mask of ``bf`` (:func:`replicate`).

Examples
--------
>>> from cellcutter_nb import config
>>> from cellcutter_nb.experiments.model_cache import fit
>>> prof = config.get_profile("smoke").replace(field_size=128, max_epochs=1,
...                                            steps_per_epoch=1)
>>> run = fit(prof, config.get_preset("paper"), 0, ("fl", "nuc"), cache_dir=None)
>>> run.channels, run.labels.shape, 0 <= run.scores["miou"] <= 1
(('fl', 'nuc'), (128, 128), True)
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Preset, Profile, config_hash
from ..core.integrate import predict_field
from ..data import synth
from ..data.field import Field
from ..metrics import score
from ..prep.markers import markers_from_labels, nuclei_from_image
from ..prep.mask import graph_cut, pixel_classifier_mask
from ..prep.scribbles import synthetic_scribbles

#: Bump when a change to training or scoring makes cached runs stale.
CACHE_VERSION = 1
#: Where a run's training starts: random weights, or the shipped starting model.
START_CHOICES = ("scratch", "pretrained")
#: The Profile fields that shape one segmentation run. The replicate count and the
#: synthetic-nucleus settings do not, so changing them keeps the cached runs.
RUN_PROFILE_FIELDS = ("field_size", "max_epochs", "steps_per_epoch", "unet_width",
                      "unet_depth", "max_patches_per_area", "train_area", "pad_multiple")
#: Profile fields that shape a run when set (not None); unset, they leave the key as it
#: was before they existed.
RUN_PROFILE_FIELDS_IF_SET = ("exact_batches", "precision")


def default_cache_dir(profile: Profile) -> Path:
    """``results/<profile>/cache`` of the source checkout (the runner's layout), else
    ``~/.cache/cellcutter_nb/<profile>`` for an installed package; ``CELLCUTTER_NB_CACHE``
    overrides the root."""
    name = profile.name
    if os.environ.get("CELLCUTTER_NB_CACHE"):
        return Path(os.environ["CELLCUTTER_NB_CACHE"]) / name
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").exists():
        return root / "results" / name / "cache"
    return Path.home() / ".cache" / "cellcutter_nb" / name


def field_seed(seed: int, index: int) -> int:
    """Synthetic seed of replicate ``index`` for the experiment seed ``seed``."""
    return 1000 * int(seed) + int(index)


@dataclass(frozen=True)
class Replicate:
    """One synthetic replicate and what the method derives from it without labels.

    Attributes
    ----------
    field : Field
        Images and ground truth (used only to score).
    nuclei : ndarray of int
        Nuclei segmented on ``nuc`` (CellProfiler's recipe).
    markers : ndarray (N, 2)
        Their centroids: the markers of every run.
    fl_mask, bf_mask : ndarray of bool
        Graph cut of ``fl``; scribbles → pixel classifier → cut of ``bf``.
    """

    field: Field
    nuclei: np.ndarray
    markers: np.ndarray
    fl_mask: np.ndarray
    bf_mask: np.ndarray

    def mask_for(self, channels: Sequence[str]) -> np.ndarray:
        """The mask a user with these images would make: from ``fl`` when the network
        sees it, else from ``bf`` scribbles (as the paper did with Ilastik)."""
        return self.fl_mask if "fl" in channels else self.bf_mask


def replicate(profile: Profile, preset: Preset, index: int, seed: int = 0) -> Replicate:
    """Field ``index`` of a profile with its markers and masks (memoised in-process).

    Only the field size, the number of replicates and the preset's graph-cut settings
    shape a replicate, so presets that differ in λ, β or the learning rate share one.

    Examples
    --------
    >>> from cellcutter_nb import config
    >>> r = replicate(config.get_profile("smoke").replace(field_size=128),
    ...               config.get_preset("paper"), 0)
    >>> r.field.shape, r.markers.shape[1], bool(r.fl_mask.any() and r.bf_mask.any())
    ((128, 128), 2, True)
    """
    if not 0 <= int(index) < profile.n_replicates:
        raise ValueError(f"replicate index {index} is outside the profile's "
                         f"{profile.n_replicates} replicates (0..{profile.n_replicates - 1}).")
    return _replicate(profile.field_size, preset.graph_cut_neighbourhood,
                      preset.graph_cut_pairwise, int(index), int(seed))


@functools.lru_cache(maxsize=6)
def _replicate(size: int, neighbourhood: int, pairwise: str, index: int,
               seed: int) -> Replicate:
    field = synth.make_field(seed=field_seed(seed, index), shape=size)
    nuclei = nuclei_from_image(field["nuc"], pixel_size=field.pixel_size)
    fl_mask = graph_cut(field["fl"], neighbourhood=neighbourhood, pairwise=pairwise)
    bf_mask = pixel_classifier_mask(field["bf"], synthetic_scribbles(field, seed=seed))
    return Replicate(field, nuclei, markers_from_labels(nuclei), fl_mask, bf_mask)


@dataclass
class Run:
    """One trained model of a replicate, as cached on disk.

    Attributes
    ----------
    key : str
        Cache key (16 hex digits).
    channels : tuple of str
    with_mask : bool
    index : int
        Replicate index.
    labels : ndarray (H, W) uint32
        Integrated segmentation of the replicate (label k = marker k - 1).
    history : DataFrame
        Per-epoch training history (loss terms, mIOU, patches seen).
    cells : DataFrame
        Per ground-truth cell IoU (:func:`cellcutter_nb.metrics.per_cell_iou`).
    scores : dict
        ``miou``, ``std``, ``ap50``, ``f1``, ``n_cells``, ``stopped``, ``seconds``,
        ``patches_per_second``, ``patches_seen``.
    markers : ndarray (N, 2)
    folder : Path or None
        Where the model (``model.keras``) is stored; ``None`` when not cached.
    """

    key: str
    channels: tuple[str, ...]
    with_mask: bool
    index: int
    labels: np.ndarray
    history: pd.DataFrame
    cells: pd.DataFrame
    scores: dict
    markers: np.ndarray
    folder: Path | None = None
    _model: object = dc_field(default=None, repr=False)

    def model(self):
        """The trained UNet (loaded from the cache in Keras safe mode when needed)."""
        if self._model is None:
            if self.folder is None:
                raise ValueError("This run kept no model; fit it again with a cache_dir.")
            from ..core.model import load_model  # Keras on demand: only when a model is used

            self._model = load_model(self.folder / "model.keras")
        return self._model


def run_key(profile: Profile, preset: Preset, index: int, channels: Sequence[str],
            with_mask: bool, seed: int, markers: np.ndarray | None = None,
            start: str | None = None) -> str:
    """Cache key of a run: the profile's :data:`RUN_PROFILE_FIELDS`, the whole preset, the
    replicate, seed, channels and mask; markers other than the replicate's own enter by
    content, a starting network (``start``, e.g. ``"fl_nuc:<weights digest>"``) by name
    and weights (runs from scratch keep the keys they had before starting models)."""
    extra = {"version": CACHE_VERSION, "replicate": int(index), "seed": int(seed),
             "channels": list(channels), "mask": bool(with_mask)}
    if start is not None:
        extra["start"] = start
    extra.update({k: v for k, v in profile.subset(RUN_PROFILE_FIELDS_IF_SET).items()
                  if v is not None})
    if markers is not None:
        extra["markers"] = hashlib.sha256(
            np.ascontiguousarray(markers, np.float64).tobytes()).hexdigest()[:16]
    return config_hash(profile.subset(RUN_PROFILE_FIELDS), preset, extra)


def run_folder(cache_dir: str | Path, key: str) -> Path:
    """The folder of run ``key`` (:func:`run_key`) in the cache at ``cache_dir``.

    Examples
    --------
    >>> run_folder("cache", "abc").as_posix()
    'cache/runs/abc'
    """
    return Path(cache_dir) / "runs" / key


def is_cached(cache_dir: str | Path, key: str) -> bool:
    """Does the cache at ``cache_dir`` hold run ``key`` (entries appear whole:
    :func:`atomic_folder`)?

    Examples
    --------
    >>> is_cached("/nonexistent", "abc")
    False
    """
    return (run_folder(cache_dir, key) / "meta.json").exists()


def _starting_card(start: str, channels: tuple[str, ...], preset: Preset,
                   field: int) -> tuple[object, str | None]:
    """A run's starting point: ``(None, None)`` from scratch; for ``"pretrained"`` the
    card of the shipped starting model of ``channels`` (refused on a field it was trained
    on) and its cache-key tag ``"<name>:<weights digest>"``."""
    if start not in START_CHOICES:
        raise ValueError(f"start={start!r}; choose one of {START_CHOICES}.")
    if start == "scratch":
        return None, None
    from ..core import starting  # Keras on demand: only when a model is fine-tuned

    card = starting.find_card(channels)
    card.check(channels, preset)
    card.check_unseen(field)
    return card, f"{card.name}:{starting.weights_digest(card)}"


def fit(profile: Profile, preset: Preset, index: int,
        channels: Sequence[str], *, with_mask: bool = True, seed: int = 0,
        markers: np.ndarray | None = None, cache_dir: str | Path | None | bool = True,
        refresh: bool = False, start: str = "scratch") -> Run:
    """Train (or load from the cache) the model of one replicate and channel set.

    Parameters
    ----------
    profile, preset : Profile, Preset
        Run size and method constants (:mod:`cellcutter_nb.config`).
    index : int
        Replicate index (0 .. ``profile.n_replicates - 1``).
    channels : sequence of str
        Channels the network sees.
    with_mask : bool
        Train with the mask M (β of the preset) or without (β = 0), as Table 1's rows.
    seed : int
        Seeds the replicate fields and the training.
    markers : ndarray (N, 2), optional
        Train and segment with these markers (e.g. synthetic-nucleus blobs) instead of
        the replicate's nuclei; they enter the cache key by content.
    cache_dir : path, True, None or False
        ``True``: :func:`default_cache_dir`; a path: there; ``None``/``False``: no disk
        cache (the model stays in memory).
    refresh : bool
        Retrain even when the cache holds this run.
    start : {"scratch", "pretrained"}
        Train from random weights (the paper) or fine-tune the shipped starting model of
        ``channels`` (:mod:`cellcutter_nb.core.starting`; refused on its training fields).

    Returns
    -------
    Run
    """
    from ..core.starting import load_card_model  # Keras on demand: only when training
    from ..core.train import train  # Keras on demand: only when a model is trained

    channels = tuple(channels)
    rep = replicate(profile, preset, int(index), int(seed))
    card, start_tag = _starting_card(start, channels, preset, field_seed(seed, index))
    key = run_key(profile, preset, index, channels, with_mask, seed, markers, start_tag)
    own = rep.markers if markers is None else np.asarray(markers, np.float64)
    root = default_cache_dir(profile) if cache_dir is True else cache_dir or None
    folder = run_folder(root, key) if root else None
    if folder is not None and is_cached(root, key) and not refresh:
        try:
            return _load(folder, own, rep.field.shape)
        except _Unreadable as err:
            print(f"cache entry {folder} is unreadable ({err}); training it again", flush=True)
            refresh = True
    mask = rep.mask_for(channels) if with_mask else None
    unet = None if card is None else load_card_model(card)
    result = train(rep.field, channels, preset, profile, mask=mask, markers=own, seed=seed,
                   unet=unet, prior_patches=0 if card is None else card.patches_seen)
    labels = predict_field(result.model, rep.field, channels, preset, markers=own, mask=mask)
    scores, cells = score(labels, rep.field.labels, own)
    scores.update(stopped=result.stopped, seconds=float(result.seconds),
                  patches_per_second=float(result.patches_per_second),
                  patches_seen=int(result.history["patches_seen"].iloc[-1]))
    run = Run(key, channels, bool(with_mask), int(index), labels, result.history, cells,
              scores, own, folder, result.model)
    if folder is not None:
        _save(run, result.model, replace=refresh)
    return run


@contextlib.contextmanager
def atomic_folder(folder: Path, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``folder`` to write into; on success it becomes
    ``folder`` in one rename, on error it is removed (a cache entry is never half-written).

    A cache key names one result, so when another writer completed ``folder`` meanwhile
    its entry is kept and this one discarded; ``replace=True`` (a retrain on purpose, or of
    a broken entry) first moves the old entry away.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "entry"
    >>> with atomic_folder(target) as tmp:
    ...     _ = (tmp / "a.txt").write_text("x")
    >>> sorted(p.name for p in target.iterdir())
    ['a.txt']
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        yield tmp
        if replace:
            _discard(folder)
        try:
            os.rename(tmp, folder)
        except OSError as err:  # another writer's complete entry is there: keep it
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not folder.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _discard(folder: Path) -> None:
    """Move ``folder`` out of the way in one rename, then delete it (absent: nothing)."""
    trash = Path(tempfile.mkdtemp(prefix=f".{folder.name}-old-", dir=folder.parent))
    try:
        os.replace(folder, trash)
    except FileNotFoundError:
        pass
    shutil.rmtree(trash, ignore_errors=True)


def _save(run: Run, model, replace: bool = False) -> None:
    """Write the run's model, labels, tables and scores to its cache folder."""
    assert run.folder is not None
    with atomic_folder(run.folder, replace) as tmp:
        model.save(tmp / "model.keras")
        np.save(tmp / "labels.npy", run.labels)
        run.history.to_csv(tmp / "history.csv", index=False)
        run.cells.to_csv(tmp / "cells.csv", index=False)
        (tmp / "meta.json").write_text(json.dumps(
            {"key": run.key, "channels": list(run.channels), "with_mask": run.with_mask,
             "index": run.index, "scores": run.scores}, indent=1))


class _Unreadable(Exception):
    """A cache entry that cannot be read back (truncated, corrupt, incomplete)."""


def _load(folder: Path, markers: np.ndarray, shape: tuple[int, int]) -> Run:
    """The cached run in ``folder``; :class:`_Unreadable` names what is wrong with it."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        run = Run(meta["key"], tuple(meta["channels"]), bool(meta["with_mask"]),
                  int(meta["index"]), np.load(folder / "labels.npy"),
                  pd.read_csv(folder / "history.csv"), pd.read_csv(folder / "cells.csv"),
                  meta["scores"], markers, folder)
    except (OSError, ValueError, KeyError, TypeError, EOFError) as err:
        raise _Unreadable(f"{type(err).__name__}: {str(err)[:120]}") from None
    if run.labels.shape != tuple(shape):
        raise _Unreadable(f"labels.npy has shape {run.labels.shape}, the field {shape}")
    seen = run.history["patches_seen"].iloc[-1] if "patches_seen" in run.history else None
    if seen != run.scores.get("patches_seen") or len(run.cells) != run.scores.get("n_cells"):
        raise _Unreadable("history.csv or cells.csv is cut short")
    if not zipfile.is_zipfile(folder / "model.keras"):
        raise _Unreadable("model.keras is truncated or missing")
    return run
