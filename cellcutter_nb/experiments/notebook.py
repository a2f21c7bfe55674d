"""A notebook's set-up in one call, and its tables written one way.

Every numbered notebook starts with a papermill ``parameters`` cell (``profile``,
``seed``, ``figures_dir``, ``tables_dir``, ...); its next cell is one call of
:func:`setup`, which checks the parameters (:func:`check_parameters`), resolves the
profile and the preset once and prints what will run. Tables go to ``tables_dir`` with
:func:`save_table`. How much more (or less) than one Table 1 model a notebook trains per
profile is here too (:func:`tutorial_budget`, :func:`own_images_budget`,
:func:`segmented_folds`), so a notebook holds no per-profile numbers.

Examples
--------
>>> from cellcutter_nb.experiments.notebook import setup
>>> prof, preset, cache = setup("smoke", 0, learning_rate=0.001)
profile smoke, preset fast: 2 replicates of 320² px, UNet width 8, 2 epochs × 2 areas
>>> preset.learning_rate, cache
(0.001, True)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from numbers import Integral, Real
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ..channels import CHANNELS, check
from ..config import PROFILES, Preset, Profile, get_preset, get_profile
from ..data import examples
from ..data.checks import PIXEL_SIZE_RANGE
from ..progress import training_label
from .reproduce import ROOT

__all__ = ["Setup", "check_parameters", "own_images_budget", "own_images_paths", "result_label",
           "save_table", "segmented_folds", "setup", "tutorial_budget", "tutorial_note"]


class Setup(NamedTuple):
    """What a notebook runs with: ``prof, preset, cache = setup(...)``."""

    profile: Profile
    preset: Preset
    cache: str | Path | bool


def setup(profile: Any = "smoke", seed: Any = 0, *, learning_rate: Any = None,
          channels: Any = None, figures_dir: Any = None, tables_dir: Any = None,
          cache_dir: Any = None, pixel_size: Any = None,
          paths: Mapping[str, Any] | None = None, quiet: bool = False) -> Setup:
    """Check a notebook's papermill parameters and resolve what it runs with.

    Parameters
    ----------
    profile, seed, learning_rate, channels, figures_dir, tables_dir, cache_dir, pixel_size, paths
        The notebook's parameters (see :func:`check_parameters`).
    quiet : bool
        Do not print the one-line description of the profile.

    Returns
    -------
    Setup
        ``profile`` (a :class:`~cellcutter_nb.config.Profile`), ``preset`` (the profile's:
        ``fast`` for smoke and quick, ``paper`` for full; with ``learning_rate`` when
        given) and ``cache`` (``cache_dir``, or ``True``: the
        default model cache of :mod:`cellcutter_nb.experiments.model_cache`).

    Raises
    ------
    ValueError
        A parameter of the wrong type or value (naming it).

    Examples
    --------
    >>> setup("smoke", "x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: papermill parameter seed='x' (str) is invalid: expected a non-negative ...
    """
    check_parameters(profile, seed, channels=channels, learning_rate=learning_rate,
                     figures_dir=figures_dir, tables_dir=tables_dir, cache_dir=cache_dir,
                     pixel_size=pixel_size, paths=paths)
    prof = get_profile(profile)
    preset = get_preset(prof.preset)
    if learning_rate is not None:
        preset = preset.replace(learning_rate=float(learning_rate))
    if not quiet:
        print(f"profile {prof.name}, preset {preset.name}: {prof.n_replicates} replicates of "
              f"{prof.field_size}² px, "
              f"UNet width {prof.unet_width}, {prof.max_epochs} epochs × "
              f"{prof.steps_per_epoch} areas")
    return Setup(prof, preset, cache_dir or True)


def check_parameters(profile: Any = "smoke", seed: Any = 0, *, channels: Any = None,
                     learning_rate: Any = None, figures_dir: Any = None,
                     tables_dir: Any = None, cache_dir: Any = None, pixel_size: Any = None,
                     paths: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check the types and values of the notebooks' papermill parameters.

    Papermill injects parameters as Python literals, so ``-p profile 3`` arrives as the
    integer 3 and ``-p seed x`` as the string ``"x"``; without a check they fail later
    with an obscure message (or not at all). Notebooks call this right after their
    parameters cell.

    Parameters
    ----------
    profile : str
        One of the profile names (``smoke``, ``quick``, ``full``).
    seed : int
        Non-negative integer (a NumPy integer is accepted; ``bool`` is not).
    channels : sequence of str, optional
        Non-empty, distinct names from ``("fl", "bf", "nuc")``.
    learning_rate, pixel_size : float, optional
        Positive finite numbers; a pixel size (µm/px) within 0.05–5.
    figures_dir, tables_dir, cache_dir : str or path, optional
        Output folders (``None`` allowed: do not write, or the default cache).
    paths : dict of str to (str or path or None), optional
        More file or folder parameters by name (e.g. notebook 12's ``fl_path``).

    Returns
    -------
    dict
        The checked values (``seed`` as ``int``, ``channels`` as a list), only those given.

    Raises
    ------
    ValueError
        Naming the parameter, the value received and what is expected.

    Examples
    --------
    >>> check_parameters("quick", 2, channels=("fl", "nuc"))
    {'profile': 'quick', 'seed': 2, 'channels': ['fl', 'nuc']}
    """
    lo_px, hi_px = PIXEL_SIZE_RANGE

    def bad(name: str, value: Any, expected: str) -> ValueError:
        return ValueError(f"papermill parameter {name}={value!r} ({type(value).__name__}) is "
                          f"invalid: expected {expected}, e.g. papermill ... -p {name} "
                          f"<value>.")

    if not isinstance(profile, str) or profile not in PROFILES:
        raise bad("profile", profile, f"one of the strings {sorted(PROFILES)}")
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise bad("seed", seed, "a non-negative integer")
    out: dict[str, Any] = {"profile": profile, "seed": int(seed)}
    if channels is not None:
        names = [channels] if isinstance(channels, str) else channels
        try:
            if not isinstance(names, (list, tuple)) or not all(isinstance(c, str)
                                                               for c in names):
                raise ValueError("not a list of strings")
            out["channels"] = list(check(names))
        except ValueError:
            raise bad("channels", channels, f"a list of distinct names from {list(CHANNELS)}"
                      ) from None
    for name, value in (("learning_rate", learning_rate), ("pixel_size", pixel_size)):
        if value is not None:
            if (isinstance(value, bool) or not isinstance(value, Real)
                    or not np.isfinite(value) or value <= 0):
                raise bad(name, value, "a positive number")
            out[name] = float(value)
    if pixel_size is not None and not lo_px <= pixel_size <= hi_px:
        raise bad("pixel_size", pixel_size, f"µm per pixel between {lo_px:g} and {hi_px:g}")
    folders = {"figures_dir": figures_dir, "tables_dir": tables_dir, "cache_dir": cache_dir}
    for name, value in {**folders, **(paths or {})}.items():
        if value is not None:
            if not isinstance(value, (str, os.PathLike)) or not str(value):
                raise bad(name, value, "a path (string) or None")
            out[name] = value
    return out


def save_table(table: pd.DataFrame, name: str, tables_dir: str | Path | None, *,
               index: bool = False) -> Path | None:
    """Write ``<tables_dir>/<name>.csv`` (atomically); ``tables_dir=None`` skips.

    Parameters
    ----------
    table : DataFrame
        The table.
    name : str
        File stem, e.g. ``"05_table1"``.
    tables_dir : path or None
        The folder (created when missing); ``None``: nothing is written.
    index : bool
        Also write the index (tables whose rows are named, e.g. by method).

    Examples
    --------
    >>> import tempfile
    >>> path = save_table(pd.DataFrame({"a": [1]}), "t", tempfile.mkdtemp())
    >>> path.read_text()
    'a\\n1\\n'
    >>> save_table(pd.DataFrame(), "t", None) is None
    True
    """
    if tables_dir is None:
        return None
    if not name or "/" in name or "\\" in name:
        raise ValueError(f"Table name {name!r} must be a plain file stem like '05_table1'.")
    out = Path(tables_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.csv"
    tmp = path.with_suffix(".csv.tmp")
    table.to_csv(tmp, index=index)
    tmp.replace(path)
    return path


#: Notebook 03, the tutorial: epochs of the unsupervised model (``None``: the profile's)
#: and of the supervised bound. On quick it trains longer than one Table 1 model.
TUTORIAL_EPOCHS: dict[str, tuple[int | None, int]] = {
    "smoke": (None, 1), "quick": (10, 8), "full": (None, 6)}
#: Notebook 12, your own images: training wall-time cap (s) per profile.
OWN_IMAGES_SECONDS: dict[str, float] = {"smoke": 10, "quick": 75, "full": 1800}


def own_images_paths(fl_path: Any, nuc_path: Any, figures_dir: Any,
                     output_dir: Any) -> tuple[Path, Path, Any]:
    """Notebook 12's images and figure folder: your two TIFFs, or the bundled HT29 pair.

    Markers come from the nucleus image, so ``fl_path`` and ``nuc_path`` go together: one
    without the other would pair your image with the example's. With your own images the
    figures go to ``figures_dir`` when it names a folder other than the repository's
    committed ``figures/``, else to ``output_dir`` (``None``: not saved).

    Returns
    -------
    fl_file, nuc_file : Path
    figures_dir : path or None

    Raises
    ------
    ValueError
        Only one of ``fl_path`` / ``nuc_path`` given (naming the papermill parameter).

    Examples
    --------
    >>> fl, nuc, figs = own_images_paths(None, None, "figures", None)
    >>> fl.name, nuc.name, figs
    ('ht29_cellbody.tif', 'ht29_dna.tif', 'figures')
    >>> own_images_paths("cells.tif", "dapi.tif", None, "out")[2]
    'out'
    >>> own_images_paths("cells.tif", None, "figures", "out")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: papermill parameter fl_path is set but nuc_path is not: ...
    """
    if (fl_path is None) != (nuc_path is None):
        given, missing = ("fl_path", "nuc_path") if nuc_path is None else ("nuc_path", "fl_path")
        raise ValueError(
            f"papermill parameter {given} is set but {missing} is not: the markers are found "
            f"on the nucleus image, so both must be your images (-p fl_path cells.tif -p "
            f"nuc_path dapi.tif). With markers of your own (a CSV of row,col) use "
            f"`python -m cellcutter_nb segment --fl cells.tif --markers markers.csv`.")
    if fl_path is None:
        example = examples.data_dir() / "ht29"
        return example / "ht29_cellbody.tif", example / "ht29_dna.tif", figures_dir
    committed = (ROOT / "figures").resolve()
    if figures_dir is None or Path(figures_dir).resolve() == committed:
        figures_dir = output_dir
    return Path(fl_path), Path(nuc_path), figures_dir


def tutorial_budget(profile: Profile) -> tuple[Profile, int]:
    """Notebook 03's training: the profile with the tutorial's epochs, and the epochs of
    its supervised bound (:data:`TUTORIAL_EPOCHS`).

    Examples
    --------
    >>> prof, sup = tutorial_budget(get_profile("quick"))
    >>> prof.max_epochs, sup
    (10, 8)
    """
    epochs, supervised = TUTORIAL_EPOCHS[profile.name]
    return profile.replace(max_epochs=epochs or profile.max_epochs), supervised


def own_images_budget(profile: Profile) -> tuple[Profile, float]:
    """Notebook 12's training: the profile (smoke: one step, enough to exercise every
    line in CI) and its wall-time cap in seconds (:data:`OWN_IMAGES_SECONDS`).

    Examples
    --------
    >>> prof, seconds = own_images_budget(get_profile("smoke"))
    >>> prof.max_epochs * prof.steps_per_epoch, seconds
    (1, 10)
    """
    if profile.name == "smoke":
        profile = profile.replace(max_epochs=1, steps_per_epoch=1)
    return profile, OWN_IMAGES_SECONDS[profile.name]


def segmented_folds(profile: Profile) -> bool | list[int]:
    """Notebook 11: the folds whose segmentation models are trained — one on smoke (CI),
    every fold otherwise (the ``segment`` argument of
    :func:`~cellcutter_nb.experiments.predicted_markers.synthetic_marker_experiment`).

    Examples
    --------
    >>> segmented_folds(get_profile("smoke")), segmented_folds(get_profile("quick"))
    ([0], True)
    """
    return [0] if profile.name == "smoke" else True


def result_label(profile: Profile, preset: Preset, patches_seen: int) -> str:
    """How much a shown result trained, for figure titles and notebook text: the profile
    (smoke: a pipeline check, not a result), patches seen, and *under-trained* below the
    preset's converged volume (:func:`~cellcutter_nb.progress.training_label`).

    Examples
    --------
    >>> result_label(get_profile("smoke"), get_preset("paper"), 63)
    'smoke profile (a pipeline check), under-trained: 63 patches seen (< 100,000)'
    """
    kind = " (a pipeline check)" if profile.name == "smoke" else ""
    return f"{profile.name} profile{kind}, {training_label(patches_seen, preset)}"


def tutorial_note(label: str, unsupervised: float, supervised: float) -> str:
    """Notebook 03's reading of its table: how much the model trained (``label``,
    :func:`result_label`) and whether the supervised model is an upper bound at all.

    Examples
    --------
    >>> print(tutorial_note("smoke profile", 0.172, 0.162))  # doctest: +NORMALIZE_WHITESPACE
    unsupervised model: smoke profile
    supervised model: mIOU 0.162 < 0.172 of the unsupervised one: trained too briefly to
    be an upper bound
    """
    lines = [f"unsupervised model: {label}"]
    if supervised < unsupervised:
        lines.append(f"supervised model: mIOU {supervised:.3f} < {unsupervised:.3f} of the "
                     f"unsupervised one: trained too briefly to be an upper bound")
    else:
        lines.append(f"supervised model: mIOU {supervised:.3f}, the upper bound (same network "
                     f"and patches, trained against the truth)")
    return "\n".join(lines)
