"""Fig. 5 as one experiment: markers from predicted (synthetic) nucleus images.

The nucleus UNet (:mod:`cellcutter_nb.core.nucleus`) is trained by three-fold
cross-validation over the replicates (train on two fields, predict the third:
:func:`cv_folds`); markers are the blobs of its probability images, smoothed first
(:func:`synthetic_markers`), with the blob threshold fitted on the training fields only
(:func:`calibrate_threshold`). For each modality (``fl``, ``bf``)
and fold, the held-out field's synthetic nucleus image (models cached under
``<cache>/nucleus/<key>/``) gives blobs that are paired within 15 µm with the blobs of
the experimental nucleus image (FN/FP rates), and the segmentation model is trained
with those synthetic markers (:func:`cellcutter_nb.experiments.model_cache.fit`) beside
the same model with the real ones.

Examples
--------
>>> from cellcutter_nb import config
>>> from cellcutter_nb.experiments.predicted_markers import cv_folds
>>> [(f.test, f.train) for f in cv_folds(3)]
[(0, (1, 2)), (1, (0, 2)), (2, (0, 1))]
>>> from cellcutter_nb.experiments.predicted_markers import synthetic_marker_experiment
>>> prof = config.get_profile("smoke").replace(field_size=128, nucleus_max_steps=2)
>>> res = synthetic_marker_experiment(prof, cache_dir=None, modalities=("fl",),
...                                   segment=False)
>>> sorted(res.rates["reference"].unique()), len(res.folds)
(['ground truth', 'nuc DoG'], 2)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..config import (
    NUCLEUS_BLOB_SMOOTH_UM,
    NUCLEUS_MIRROR_UM,
    PIXEL_SIZE_UM,
    Preset,
    Profile,
    config_hash,
    get_preset,
    get_profile,
)
from ..core.nucleus import (
    FLAT_FIELD_SIGMA_UM,
    MODALITIES,
    normalised_input,
    nucleus_target,
    train_nucleus_model,
)
from ..core.nucleus_inference import synthetic_nucleus_image
from ..prep.markers import detect_blobs, match_markers
from .model_cache import atomic_folder, default_cache_dir, fit, replicate

__all__ = ["BLOB_THRESHOLDS", "Fold", "FoldResult", "SyntheticMarkerResult",
           "calibrate_threshold", "cv_folds", "nucleus_fold", "synthetic_marker_experiment",
           "synthetic_markers"]

#: Bump when a change to nucleus training makes cached models stale.
CACHE_VERSION = 2
#: The Profile fields that shape a nucleus UNet (its cache key); the segmentation
#: training settings do not.
NUCLEUS_PROFILE_FIELDS = ("field_size", "unet_width", "unet_depth", "nucleus_max_steps",
                          "nucleus_crop", "nucleus_batch", "nucleus_downsample", "nucleus_tta")
#: Candidate blob thresholds for synthetic nucleus images, fitted per fold on the
#: training fields (:func:`calibrate_threshold`); see
#: :func:`cellcutter_nb.prep.markers.detect_blobs`. Smoothing (DoG) lowers the blobs'
#: response, so the DoG candidates reach down to 0.03 (the fitted values were 0.03-0.1
#: on the tuning seeds).
BLOB_THRESHOLDS: dict[str, tuple[float, ...]] = {
    "dog": (0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25), "doh": (0.005, 0.01, 0.02)}


@dataclass(frozen=True)
class Fold:
    """One cross-validation fold: train on the fields ``train``, score on ``test``."""
    test: int
    train: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.train or self.test in self.train:
            raise ValueError(f"Fold(test={self.test}, train={self.train}): a fold needs "
                             f"training fields and never trains on the field it scores.")


def cv_folds(n_fields: int) -> list[Fold]:
    """Leave-one-field-out folds (the paper's three-fold scheme for three replicates).

    Raises
    ------
    ValueError
        Fewer than 2 fields (nothing left to train on).

    Examples
    --------
    >>> [(f.test, f.train) for f in cv_folds(2)]
    [(0, (1,)), (1, (0,))]
    """
    if int(n_fields) < 2:
        raise ValueError(f"Cross-validation needs at least 2 fields, got {n_fields}: one to "
                         f"score and at least one to train on.")
    return [Fold(i, tuple(j for j in range(int(n_fields)) if j != i))
            for i in range(int(n_fields))]


def synthetic_markers(image: np.ndarray, method: str = "dog", threshold: float | None = None,
                      *, pixel_size: float = PIXEL_SIZE_UM) -> np.ndarray:
    """Markers (N, 2) of a synthetic nucleus image: its blobs after Gaussian smoothing by
    :data:`cellcutter_nb.config.NUCLEUS_BLOB_SMOOTH_UM` (per detector).

    A probability image has flat-topped blobs; their rims give the DoG detector extra
    peaks, which smoothing removes. ``threshold`` None: the detector's default.

    Examples
    --------
    >>> yy, xx = np.mgrid[:64, :64]
    >>> disk = (((yy - 30) ** 2 + (xx - 20) ** 2) < 64).astype(float)
    >>> synthetic_markers(disk, "dog", 0.1).round().tolist()
    [[30.0, 20.0]]
    """
    if method not in NUCLEUS_BLOB_SMOOTH_UM:
        raise ValueError(f"method={method!r}; choose one of {list(NUCLEUS_BLOB_SMOOTH_UM)}.")
    sigma = NUCLEUS_BLOB_SMOOTH_UM[method] / pixel_size
    img = ndi.gaussian_filter(np.asarray(image, np.float64), sigma) if sigma else image
    return detect_blobs(img, method, pixel_size=pixel_size, threshold=threshold)


def calibrate_threshold(images: Sequence[np.ndarray], references: Sequence[np.ndarray],
                        method: str = "dog", *, pixel_size: float = PIXEL_SIZE_UM,
                        candidates: Sequence[float] | None = None) -> float:
    """Blob threshold with the lowest FN + FP rate on training fields.

    ``images`` are synthetic nucleus images of the *training* fields and ``references``
    their reference markers, so the test field never informs the threshold. A
    probability image has the same contrast for every nucleus, unlike a DAPI image,
    so the DAPI default of :func:`cellcutter_nb.prep.markers.detect_blobs` need not fit it.

    Examples
    --------
    A nucleus and, beside it, a fainter blob the reference does not have: the fitted
    threshold is the lowest one that drops the faint blob.

    >>> yy, xx = np.mgrid[:64, :64]
    >>> img = np.exp(-((yy - 30) ** 2 + (xx - 20) ** 2) / 50.0)
    >>> faint = 0.3 * np.exp(-((yy - 30) ** 2 + (xx - 48) ** 2) / 50.0)
    >>> calibrate_threshold([img + faint], [np.array([[30.0, 20.0]])])
    0.15
    """
    if len(images) != len(references) or not len(images):
        raise ValueError("Give one reference marker array per image (at least one).")
    if method not in BLOB_THRESHOLDS:
        raise ValueError(f"method={method!r}; choose one of {list(BLOB_THRESHOLDS)}.")
    best, best_err = None, np.inf
    for t in candidates or BLOB_THRESHOLDS[method]:
        err = 0.0
        for img, ref in zip(images, references, strict=True):
            r = match_markers(synthetic_markers(img, method, t, pixel_size=pixel_size),
                              ref, pixel_size=pixel_size)
            err += np.nan_to_num(r.fn_rate, nan=1.0) + np.nan_to_num(r.fp_rate, nan=1.0)
        if err < best_err - 1e-12:
            best, best_err = float(t), err
    return best


@dataclass
class FoldResult:
    """One fold of one modality: its synthetic nucleus image, markers and segmentations.

    ``probability`` is the synthetic nucleus image of the test field (never trained on);
    ``markers`` the synthetic markers per blob method with ``thresholds`` fitted on the
    training fields; ``true_markers`` the DoG blobs of the experimental nucleus image;
    ``stopped``/``steps``/``seconds``/``history`` describe the nucleus UNet's training;
    ``labels`` holds the segmentations with ``"synthetic"`` and ``"real"`` markers.
    """

    modality: str
    fold: Fold
    probability: np.ndarray
    markers: dict[str, np.ndarray]
    thresholds: dict[str, float]
    true_markers: np.ndarray
    stopped: str
    steps: int
    seconds: float
    history: pd.DataFrame
    labels: dict[str, np.ndarray] = dc_field(default_factory=dict)


@dataclass
class SyntheticMarkerResult:
    """Tables and per-fold images of :func:`synthetic_marker_experiment`."""
    rates: pd.DataFrame
    miou: pd.DataFrame
    folds: list[FoldResult]

    def fold(self, modality: str = "fl", index: int = 0) -> FoldResult:
        """The fold of ``modality`` that scores field ``index`` (for Fig. 5's panels)."""
        for f in self.folds:
            if f.modality == modality and f.fold.test == index:
                return f
        raise ValueError(f"No fold of {modality!r} scores field {index}.")


def nucleus_fold(profile: Profile, preset: Preset, modality: str, fold: Fold, seed: int = 0,
                 cache_dir: str | Path | None = None) -> tuple[np.ndarray, dict]:
    """Train (or load) one fold's nucleus UNet: test-field probabilities and a meta dict
    (``stopped``, ``steps``, ``seconds``, blob ``thresholds``, ``history``)."""
    key = config_hash(profile.subset(NUCLEUS_PROFILE_FIELDS),
                      {"version": CACHE_VERSION, "modality": modality,
                       "train": list(fold.train), "test": fold.test, "seed": int(seed),
                       "thresholds": BLOB_THRESHOLDS, "flat_field_um": FLAT_FIELD_SIGMA_UM,
                       "mirror_um": NUCLEUS_MIRROR_UM, "smooth_um": NUCLEUS_BLOB_SMOOTH_UM})
    folder = Path(cache_dir) / "nucleus" / key if cache_dir else None
    if folder is not None and (folder / "meta.json").exists():
        meta = json.loads((folder / "meta.json").read_text())
        return np.load(folder / "probability.npy"), dict(
            meta, history=pd.read_csv(folder / "history.csv"))
    reps = {i: replicate(profile, preset, i, seed) for i in (*fold.train, fold.test)}
    factor, px = profile.nucleus_downsample, reps[fold.test].field.pixel_size
    inputs = {i: normalised_input(r.field, modality, factor) for i, r in reps.items()}
    assert fold.test not in fold.train  # the scored field never enters training
    res = train_nucleus_model([inputs[i] for i in fold.train],
                              [nucleus_target(reps[i].nuclei, factor) for i in fold.train],
                              profile, seed=seed,
                              mirror=round(NUCLEUS_MIRROR_UM / (px * factor)))
    probs = {i: synthetic_nucleus_image(res.model, x, reps[i].field.shape, factor=factor,
                                        transforms=profile.nucleus_tta)
             for i, x in inputs.items()}
    refs = [detect_blobs(reps[i].field["nuc"], "dog", pixel_size=px) for i in fold.train]
    thresholds = {m: calibrate_threshold([probs[i] for i in fold.train], refs, m,
                                         pixel_size=px) for m in BLOB_THRESHOLDS}
    meta = {"key": key, "modality": modality, "train": list(fold.train), "test": fold.test,
            "stopped": res.stopped, "steps": len(res.history), "seconds": res.seconds,
            "thresholds": thresholds}
    if folder is not None:
        with atomic_folder(folder) as tmp:
            res.model.save(tmp / "model.keras")
            np.save(tmp / "probability.npy", probs[fold.test])
            res.history.to_csv(tmp / "history.csv", index=False)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    return probs[fold.test], dict(meta, history=res.history)


def synthetic_marker_experiment(profile: str | Profile = "quick",
                                preset: str | Preset = "paper", seed: int = 0, *,
                                cache_dir: str | Path | None | bool = True,
                                modalities: Sequence[str] = ("fl", "bf"),
                                segment: bool | Sequence[int] = True,
                                progress: Callable[[str], None] | None = None,
                                ) -> SyntheticMarkerResult:
    """Fig. 5: cross-validated synthetic nucleus images, their markers and segmentations.

    For each modality (``fl``, ``bf``) and fold, a nucleus UNet trained on the other
    fields predicts the test field; its DoG and DoH blobs (thresholds fitted on the
    training fields, and the detector's defaults) are paired within 15 µm with the DoG
    blobs of the experimental nucleus image (the paper's reference) and with the true
    nucleus centres. Then the segmentation model is trained on the test field with the
    synthetic markers of the preset's ``blob_method``
    (:func:`cellcutter_nb.experiments.model_cache.fit`), beside the same model with the
    real markers (the Table 1 run, shared by the cache).

    Parameters
    ----------
    profile, preset : str or object
        Run size; the preset's blob method and learning rate (the learning rate is the
        segmentation's: the nucleus UNet always uses lr 0.005).
    seed : int
        Seeds the replicate fields and all training.
    cache_dir : path, True, None or False
        Model cache (``True``: :func:`~cellcutter_nb.experiments.model_cache.default_cache_dir`).
    modalities : sequence of str
        Inputs of the nucleus UNet, from ``("fl", "bf")``.
    segment : bool or sequence of int
        Train the segmentation models for every fold, none, or the folds (scored field
        indices) listed.
    progress : callable, optional
        Called with a short message before each model.

    Returns
    -------
    SyntheticMarkerResult
        ``rates``: modality, fold (scored field), train, method, threshold, calibrated,
        reference (``"nuc DoG"``, ``"ground truth"``), fn_rate (missed / true), fp_rate
        (unpaired / found; 0 when nothing is found), n_true, n_found, tp, stopped,
        steps, seconds. ``miou``: modality, fold, markers (``"synthetic"``, ``"real"``),
        miou (ground-truth cells whose nucleus these markers pair with), miou_common
        (cells paired by both marker sets), miou_all (every cell a marker reaches),
        n_cells, n_markers; without markers nothing is segmented and all are 0.
    """
    prof, pre = get_profile(profile), get_preset(preset)  # resolved here, once
    root = default_cache_dir(prof) if cache_dir is True else cache_dir or None
    say = progress or (lambda _msg: None)
    if not modalities or set(modalities) - set(MODALITIES):
        raise ValueError(f"modalities={modalities!r}; choose from {list(MODALITIES)}.")
    rates, mious, folds = [], [], []
    for modality in modalities:
        name = MODALITIES[modality]
        for fold in cv_folds(prof.n_replicates):
            say(f"nucleus UNet {name}, fold {fold.test}")
            prob, meta = nucleus_fold(prof, pre, modality, fold, seed, root)
            rep = replicate(prof, pre, fold.test, seed)
            px = rep.field.pixel_size
            true = detect_blobs(rep.field["nuc"], "dog", pixel_size=px)
            refs = {"nuc DoG": true, "ground truth": rep.field.markers}
            found, base = {}, {"modality": name, "fold": fold.test,
                               "train": "+".join(map(str, fold.train))}
            for method in BLOB_THRESHOLDS:
                for calibrated in (True, False):
                    t = meta["thresholds"][method] if calibrated else None
                    pts = synthetic_markers(prob, method, t, pixel_size=px)
                    found.setdefault(method, pts)
                    rates += [dict(base, method=method, threshold=t, calibrated=calibrated,
                                   reference=ref, **_rates(pts, ref_pts, px),
                                   **{k: meta[k] for k in ("stopped", "steps", "seconds")})
                              for ref, ref_pts in refs.items() if ref_pts is not None]
            result = FoldResult(modality, fold, prob, found, dict(meta["thresholds"]), true,
                                meta["stopped"], int(meta["steps"]), float(meta["seconds"]),
                                meta["history"])
            folds.append(result)
            if segment is True or (segment is not False and fold.test in segment):
                say(f"segmentation {name}, fold {fold.test}")
                mious += _segment(prof, pre, result, rep, seed, root, base)
    return SyntheticMarkerResult(pd.DataFrame(rates), pd.DataFrame(mious), folds)


def _rates(found: np.ndarray, true: np.ndarray, pixel_size: float) -> dict:
    """FN / FP rates and counts of ``found`` against ``true`` markers (15 µm pairing)."""
    r = match_markers(found, true, pixel_size=pixel_size)
    return {"fn_rate": r.fn_rate if r.n_true else 0.0, "fp_rate": r.fp_rate if r.n_found
            else 0.0, "n_true": r.n_true, "n_found": r.n_found, "tp": r.tp}


def _segment(prof: Profile, pre: Preset, result: FoldResult, rep: Any, seed: int,
             root: Path | None, base: dict) -> list[dict]:
    """Segment the test field with synthetic and with real markers; mIOU rows."""
    used = {"synthetic": result.markers[pre.blob_method], "real": rep.markers}
    paired = {}
    for k, m in used.items():  # true marker k-1 <-> cell label k
        r = match_markers(m, rep.field.markers, pixel_size=rep.field.pixel_size)
        paired[k] = sorted(int(t) + 1 for t in r.pairs[:, 1])
    common = sorted(set(paired["synthetic"]) & set(paired["real"]))
    rows = []
    for k, m in used.items():
        row = dict(base, markers=k, miou=0.0, miou_common=0.0, miou_all=0.0,
                   n_cells=len(paired[k]), n_markers=len(m))
        if len(m):
            run = fit(prof, pre, result.fold.test, (result.modality,), with_mask=True,
                      seed=seed, markers=None if k == "real" else m, cache_dir=root or None)
            result.labels[k] = run.labels
            iou = run.cells.set_index("gt_label")["iou"]
            row.update(miou=float(iou.reindex(paired[k]).fillna(0.0).mean()) if paired[k]
                       else 0.0, miou_common=float(iou.reindex(common).fillna(0.0).mean())
                       if common else 0.0, miou_all=float(run.scores["miou"]))
        rows.append(row)
    return rows
