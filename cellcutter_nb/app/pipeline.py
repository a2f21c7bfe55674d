"""The whole method in one call: markers → mask → unsupervised training → label image.

:func:`segment` is an entry point: it takes the preset and profile by name (or as
objects) and resolves them once; :func:`find_markers` and :func:`foreground_mask` are its
first two steps. :func:`compare_to_position_only` describes a segmentation without
ground truth (:func:`describe`, :func:`one_piece`) beside the position-only partition
(notebook 12).

Examples
--------
>>> from cellcutter_nb.data import synth
>>> from cellcutter_nb import config
>>> from cellcutter_nb.app.pipeline import segment
>>> field = synth.make_field(seed=0, shape=160)
>>> prof = config.get_profile("smoke").replace(max_epochs=1, steps_per_epoch=1)
>>> labels, model, history = segment(field, ("fl", "nuc"), "paper", prof, progress=False)
>>> bool(labels.shape == field.shape and labels.max() <= len(history.attrs["markers"]))
True
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from skimage import measure

from ..config import Preset, Profile, get_preset, get_profile
from ..core.integrate import predict_field
from ..data.checks import InputWarning, check_seconds, check_seed
from ..data.field import Field, check_markers
from ..metrics import agreement, summarize
from ..prep.markers import markers_from_labels, nuclei_from_image
from ..prep.mask import graph_cut, pixel_classifier_mask

#: Fewer nuclei than this on a nucleus image is suspicious (one bright pixel → 1 "cell").
MIN_NUCLEI = 3
#: Where training starts: the shipped starting model, or a new network.
START_CHOICES = ("auto", "pretrained", "scratch")


def find_markers(field: Field) -> np.ndarray:
    """Markers as the paper makes them: nuclei segmented on ``nuc``, their centroids.

    Raises
    ------
    ValueError
        If the field has no nucleus channel (pass markers yourself, e.g. from blob
        detection on a synthetic nucleus image).

    Warns
    -----
    InputWarning
        Fewer than :data:`MIN_NUCLEI` nuclei (or a pixel size that does not fit them).
    """
    if "nuc" not in field.channels:
        raise ValueError("The field has no 'nuc' channel to find markers on; pass "
                         "markers=(N, 2) array of (row, col) instead.")
    markers = markers_from_labels(nuclei_from_image(field["nuc"], pixel_size=field.pixel_size))
    if len(markers) < MIN_NUCLEI:
        warnings.warn(f"Only {len(markers)} {'nucleus' if len(markers) == 1 else 'nuclei'} "
                      f"found on the {field.shape[0]}×"
                      f"{field.shape[1]} nucleus image; is 'nuc' the nucleus (DAPI/Hoechst) "
                      f"image, with bright nuclei on a dark background?", InputWarning,
                      stacklevel=2)
    return markers


def foreground_mask(field: Field, scribbles: np.ndarray | None, preset: Preset) -> np.ndarray:
    """The mask M of Eq. 1: graph cut of ``fl`` or, for bright-field, scribbles → forest → cut.

    The graph cut follows the preset (``graph_cut_neighbourhood``, ``graph_cut_pairwise``).

    Raises
    ------
    ValueError
        Bright-field only and no scribbles: the grey level cannot separate cells there.
    """
    if "fl" in field.channels:
        return graph_cut(field["fl"], neighbourhood=preset.graph_cut_neighbourhood,
                         pairwise=preset.graph_cut_pairwise)
    if "bf" in field.channels and scribbles is not None:
        return pixel_classifier_mask(field["bf"], scribbles)
    raise ValueError("No fluorescence channel for a graph-cut mask: give bright-field "
                     "scribbles (1 = cell, 2 = background), a mask array, or mask=None to "
                     "train without a mask.")


def starting_point(start: str, channels: Sequence[str], preset: Preset) -> tuple[Any, Any]:
    """The network training starts from and its model card: ``(None, None)`` from scratch.

    Raises
    ------
    ValueError
        ``start`` unknown, or ``"pretrained"`` without a matching starting model.

    Examples
    --------
    >>> from cellcutter_nb.config import get_preset
    >>> starting_point("scratch", ("fl", "nuc"), get_preset("fast"))
    (None, None)
    """
    from ..core.starting import find_card, load_card_model  # Keras on demand

    if start not in START_CHOICES:
        raise ValueError(f"start={start!r}; choose one of {START_CHOICES}.")
    if start == "scratch":
        return None, None
    try:
        card = find_card(tuple(channels))
        card.check(tuple(channels), preset)
    except ValueError:
        if start == "auto":  # no shipped model fits: the paper's training from scratch
            return None, None
        raise
    if start == "auto" and card.preset != preset.name:  # the paper's presets stay the paper's
        return None, None
    return load_card_model(card), card


def patches_before(card: Any) -> int:
    """Patches the starting network of a run saw before it (the card of
    :func:`starting_point`), 0 from scratch.

    Examples
    --------
    >>> patches_before(None)
    0
    """
    return 0 if card is None else card.patches_seen


def segment(field: Field, channels: Sequence[str] = ("fl", "nuc"),
            preset: str | Preset = "fast", profile: str | Profile = "quick", *,
            markers: np.ndarray | None = None, mask: Any = "auto",
            scribbles: np.ndarray | None = None, seed: int = 0, start: str = "auto",
            progress: bool | None = None, **train_kwargs: Any):
    """Segment a field without any annotation, as in Din & Yu (2021).

    Parameters
    ----------
    field : Field
        The images (ground truth, if any, is used only to score training epochs).
    channels : sequence of str
        Channels the network sees (plus the position disk).
    preset, profile : str or object
        Method constants and run size (see :mod:`cellcutter_nb.config`).
    markers : ndarray (N, 2), optional
        One (row, col) per cell; default: nuclei found on ``nuc`` (:func:`find_markers`).
    mask : "auto", ndarray or None
        ``"auto"``: :func:`foreground_mask`; an array: used as is; ``None``: train
        without the mask (β = 0).
    scribbles : ndarray, optional
        Bright-field scribbles for the ``"auto"`` mask when there is no ``fl``.
    seed : int
        Seeds everything.
    start : {"auto", "pretrained", "scratch"}
        ``"pretrained"``: fine-tune the shipped starting model for these channels
        (:mod:`cellcutter_nb.core.starting`: trained once without annotation on synthetic
        fields; its network size replaces the profile's); ``"scratch"``: a new network
        (the paper's per-image training); ``"auto"``: pretrained when a starting model
        for these channels, this patch geometry and this preset's recipe is shipped
        (``fast``; the ``paper`` and ``original_code`` presets start from scratch), else
        scratch.
    progress : bool, optional
        Progress bar (default on, off under the runner).
    **train_kwargs
        Passed to :func:`cellcutter_nb.core.train.train` (``max_seconds``, ``tol``, ...).

    Returns
    -------
    labels : ndarray (H, W) uint32
        Label k belongs to marker k - 1; 0 is background.
    model : keras.Model
        The trained UNet.
    history : pandas.DataFrame
        One row per epoch; ``history.attrs`` holds ``markers``, ``mask``, ``stopped``,
        ``seconds``, ``patches_per_second`` and ``start`` (the starting model's card, or
        None from scratch).

    Raises
    ------
    ValueError
        ``start`` unknown, or no starting model for these channels / this patch geometry.
    """
    from ..core.train import train  # Keras on demand: not for the markers or mask

    preset, profile = get_preset(preset), get_profile(profile)  # resolved here, once
    seed = check_seed(seed)
    check_seconds(train_kwargs.get("max_seconds"))
    markers = find_markers(field) if markers is None else check_markers(markers, field.shape)
    if isinstance(mask, str):
        if mask != "auto":
            raise ValueError(f"mask must be 'auto', an array or None, got {mask!r}.")
        mask = foreground_mask(field, scribbles, preset)
    unet, card = starting_point(start, channels, preset)
    result = train(field, channels, preset, profile, mask=mask, markers=markers, seed=seed,
                   unet=unet, progress=progress, prior_patches=patches_before(card),
                   **train_kwargs)
    labels = predict_field(result.model, field, channels, preset, markers=markers, mask=mask)
    history = pd.DataFrame(result.history)
    history.attrs.update(markers=markers, mask=mask, stopped=result.stopped,
                         seconds=result.seconds, patches_per_second=result.patches_per_second,
                         start=card)
    return labels, result.model, history


def one_piece(labels: np.ndarray) -> int:
    """How many labels are one connected piece (8-connected): an under-trained network
    leaves a marker's label in fragments, which a count of labels alone hides.

    Examples
    --------
    >>> one_piece(np.array([[1, 1, 0, 2, 0, 2]]))
    1
    """
    lab = np.asarray(labels).astype(np.int64)
    pieces = measure.label(lab, background=0, connectivity=2)  # regions of one value
    owner = np.zeros(pieces.max() + 1, np.int64)
    owner[pieces.ravel()] = lab.ravel()
    return int((np.bincount(owner[1:]) == 1).sum())


def describe(labels: np.ndarray, n_markers: int, mask: np.ndarray) -> dict[str, float]:
    """A segmentation without ground truth: how many markers got a cell, how many cells
    are one connected piece, how big they are and how much of the mask they cover.

    Parameters
    ----------
    labels : ndarray (H, W) of int
        Label k belongs to marker k - 1.
    n_markers : int
        Number of markers the segmentation started from.
    mask : ndarray (H, W) of bool
        The foreground mask M.

    Returns
    -------
    dict
        ``cells`` (labels present), ``markers_with_cell`` (cells / markers),
        ``cells_one_piece`` (fraction of cells that are one connected piece,
        :func:`one_piece`), ``median_area_px`` and ``mask_covered`` (fraction of mask
        pixels labelled).

    Examples
    --------
    >>> lab = np.array([[1, 1, 0, 2]])
    >>> describe(lab, 3, np.array([[True, True, True, False]]))["markers_with_cell"]
    0.6666666666666666
    """
    area = np.bincount(np.asarray(labels).ravel().astype(np.int64))[1:]
    area = area[area > 0]
    mask = np.asarray(mask, bool)
    return {"cells": len(area), "markers_with_cell": len(area) / n_markers,
            "cells_one_piece": one_piece(labels) / len(area) if len(area) else 0.0,
            "median_area_px": float(np.median(area)) if len(area) else 0.0,
            "mask_covered": float(((np.asarray(labels) > 0) & mask).sum() / mask.sum())}


def compare_to_position_only(labels: np.ndarray, position_only: np.ndarray, n_markers: int,
                             mask: np.ndarray) -> pd.DataFrame:
    """A segmentation without ground truth beside the position-only partition.

    Parameters
    ----------
    labels : ndarray (H, W) of int
        The segmentation (label k belongs to marker k - 1).
    position_only : ndarray (H, W) of int
        :func:`cellcutter_nb.prep.baseline.nearest_marker_partition` of the same markers.
    n_markers : int
        Number of markers.
    mask : ndarray (H, W) of bool
        The foreground mask M.

    Returns
    -------
    DataFrame indexed by ``method`` (``unsupervised``, ``position only``)
        :func:`describe` of each, and ``miou_vs_position_only``
        (their agreement, :func:`cellcutter_nb.metrics.agreement`).

    Examples
    --------
    >>> lab = np.array([[1, 1, 2, 0]]); pos = np.array([[1, 2, 2, 0]])
    >>> t = compare_to_position_only(lab, pos, 2, np.array([[1, 1, 1, 0]], bool))
    >>> t["markers_with_cell"].tolist(), t["miou_vs_position_only"].round(3).tolist()
    ([1.0, 1.0], [0.5, 1.0])
    """
    agree = summarize(agreement(labels, position_only))["miou"].iloc[0]
    table = pd.DataFrame({
        "unsupervised": {**describe(labels, n_markers, mask), "miou_vs_position_only": agree},
        "position only": {**describe(position_only, n_markers, mask),
                          "miou_vs_position_only": 1.0}}).T
    table.index.name = "method"
    return table
