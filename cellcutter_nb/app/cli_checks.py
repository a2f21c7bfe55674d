"""What ``segment`` checks before it trains, with messages that name its options.

:func:`check_numbers` (seed, time cap, pixel size, network size), :func:`selector`
(``--page`` / ``--channel``), :func:`check_checkpoint`, :func:`check_sources` (images and
markers given), :func:`used_channels`, :func:`read_scribbles`, :func:`read_markers`,
:func:`make_mask`, :func:`check_model` and :func:`resolved` (preset and profile with the
overrides) are the steps of :func:`cellcutter_nb.app.cli.segment_files` up to training;
each raises ``ValueError`` (or ``FileNotFoundError``) in the command line's terms.

Examples
--------
>>> from cellcutter_nb.app.cli_checks import selector
>>> selector("2", "--page"), selector("fl=1,nuc=0", "--page")
(2, {'fl': 1, 'nuc': 0})
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ..channels import CHANNELS, check
from ..config import Preset, Profile, get_preset, get_profile
from ..data import tiffio
from ..data.checks import (
    check_marker_density,
    check_mask_coverage,
    check_pixel_size,
    check_seconds,
    check_seed,
)
from ..data.field import Field, check_markers
from ..prep.mask import pixel_classifier_mask
from .model_file import check_model_info, model_info
from .pipeline import find_markers, foreground_mask

__all__ = ["check_checkpoint", "check_model", "check_numbers", "check_sources", "make_mask",
           "read_markers", "read_scribbles", "resolved", "selector", "used_channels"]

#: Profile fields the command line overrides, and their options.
OVERRIDES = {"unet_width": "--width", "unet_depth": "--depth", "max_epochs": "--epochs",
             "steps_per_epoch": "--steps"}


def check_numbers(seed: Any, max_seconds: Any, pixel_size: Any,
                  overrides: dict[str, Any]) -> None:
    """Seed, time cap, pixel size and the profile overrides, named by their options.

    Examples
    --------
    >>> check_numbers(0, float("nan"), None, {})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --max-seconds nan is not a time cap; give a positive number of seconds, ...
    """
    check_seed(seed, "--seed")
    try:
        check_seconds(max_seconds)
    except ValueError:
        raise ValueError(f"--max-seconds {max_seconds} is not a time cap; give a positive "
                         f"number of seconds, or leave it out to train without a cap.") from None
    if pixel_size is not None:
        check_pixel_size(pixel_size, "--pixel-size")
    for field, value in overrides.items():
        option = OVERRIDES.get(field, field)
        low = 0 if field == "unet_depth" else 1
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < low):
            raise ValueError(f"{option} {value} is not allowed; give a whole number >= {low}.")


def selector(text: str | None, option: str) -> int | dict[str, int] | None:
    """``--page`` / ``--channel``: ``"2"`` (every image) or ``"fl=1,nuc=0"`` (per image).

    Examples
    --------
    >>> selector("fl=x", "--page")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --page fl=x: give a whole number (e.g. --page 1) or one per image ...
    """
    if text is None:
        return None
    fix = (f"{option} {text}: give a whole number (e.g. {option} 1) or one per image (e.g. "
           f"{option} fl=1,nuc=0).")
    try:
        if "=" not in text:
            return int(text)
        pairs = [item.split("=") for item in text.split(",")]
        out = {k.strip(): int(v) for k, v in pairs}
    except ValueError:
        raise ValueError(fix) from None
    if not set(out) <= set(CHANNELS):
        raise ValueError(fix)
    return out


def check_checkpoint(folder: str | os.PathLike | None) -> str | None:
    """A ``--checkpoint`` folder: created when missing; says what it holds.

    Raises
    ------
    ValueError
        The path is a file, or its parent folder does not exist.

    Examples
    --------
    >>> import tempfile
    >>> check_checkpoint(Path(tempfile.mkdtemp()) / "ck")  # doctest: +ELLIPSIS
    'checkpoint .../ck: saved after every epoch'
    """
    if folder is None:
        return None
    path = Path(folder).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"--checkpoint {folder} is a file; give a folder (created when "
                         f"missing) where training saves its progress.")
    if not path.parent.is_dir():
        raise ValueError(f"--checkpoint {folder}: its parent folder {path.parent} does not "
                         f"exist; create it first (mkdir -p {path.parent}).")
    state = path / "state.json"
    try:
        epoch = json.loads(state.read_text())["epoch"] if state.exists() else None
    except (ValueError, KeyError, OSError):
        epoch = None
    if epoch is None:
        return f"checkpoint {path}: saved after every epoch"
    return (f"checkpoint {path}: holds epochs 0..{epoch}; training resumes after them if "
            f"the images and settings are the same (else it starts afresh)")


def check_sources(fl: Any, bf: Any, nuc: Any, markers: Any) -> None:
    """At least one image, and a way to get markers.

    Examples
    --------
    >>> check_sources("cells.tif", None, None, None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: No markers: give --nuc (the nucleus image; one marker is found per nucleus) ...
    """
    if fl is None and bf is None and nuc is None:
        raise ValueError("Give at least one image: --fl, --bf and/or --nuc.")
    if nuc is None and markers is None:
        raise ValueError("No markers: give --nuc (the nucleus image; one marker is found per "
                         "nucleus) or --markers CSV (one row,col per cell).")


def used_channels(spec: str | Sequence[str] | None, field: Field) -> tuple[str, ...]:
    """``"fl,nuc"`` (or a sequence) → checked channel names; default: all given ones."""
    if spec is None:
        names = field.channel_names
    else:
        names = check(spec, field.channel_names,
                      hint=" (--channels fl,nuc; give each image with --fl/--bf/--nuc FILE)")
    for c in field.channel_names:
        if np.ptp(field[c]) == 0:
            raise ValueError(f"Channel {c!r} is constant (all pixels = {field[c].flat[0]:g}):"
                             f" nothing to segment; check the file.")
    return names


def read_scribbles(path: str | os.PathLike | None, shape: tuple[int, int]) -> np.ndarray | None:
    """The ``--scribbles`` TIFF (1 = cell, 2 = background), checked against the images."""
    if path is None:
        return None
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"No such scribbles file: {p}")
    scr = np.squeeze(tifffile.imread(p))
    if scr.shape != shape:
        raise ValueError(f"Scribbles {p.name} have shape {scr.shape}, the images {shape}; "
                         f"paint them on the same image (a napari Labels layer).")
    return scr


def make_mask(field: Field, scribbles: np.ndarray | None, preset: Preset, use_mask: bool,
              markers: np.ndarray) -> np.ndarray | None:
    """Scribbles → random forest (on bf, else fl); else graph cut of fl; or no mask."""
    if not use_mask:
        return None
    if scribbles is None and "fl" not in field.channels:
        raise ValueError("Without --fl there is no graph-cut mask: give --scribbles (a TIFF "
                         "painted 1 = cell, 2 = background) or train without a mask "
                         "(--no-mask).")
    if scribbles is not None:
        image = field["bf"] if "bf" in field.channels else next(iter(field.channels.values()))
        mask = pixel_classifier_mask(image, scribbles)
    else:
        mask = foreground_mask(field, None, preset)
    if not mask.any():
        raise ValueError("The foreground mask is empty (no cell pixel); check the image or "
                         "the scribbles, or train without a mask (--no-mask).")
    check_mask_coverage(mask, markers, "foreground mask", "train without a mask (--no-mask)")
    return mask


def check_model(model: Any, path: str | os.PathLike, channels: Sequence[str],
                preset: Preset) -> str | None:
    """A ``--model`` against this run: its recorded channels and preset, its input size.
    Returns a note when the file records nothing (saved by plain ``model.save``)."""
    info = model_info(path)
    if info is not None:
        check_model_info(info, path, channels, preset)
    _, k, _, c = model.input_shape
    if c != len(channels) + 1:
        raise ValueError(f"The model expects {c - 1} image channel(s) (+ position) but "
                         f"{len(channels)} are used ({','.join(channels)}); pass the "
                         f"--channels it was trained with.")
    if k is not None and k != preset.patch_size:
        raise ValueError(f"The model takes {k}-px patches but preset {preset.name!r} cuts "
                         f"{preset.patch_size}-px ones; use the preset it was trained with.")
    if info is None:
        return (f"note: {Path(path).name} records no channel names (saved without "
                f"--save-model); make sure --channels {','.join(channels)} are the images it "
                f"was trained on")
    return None


def resolved(preset: str | Preset, profile: str | Profile,
             overrides: dict[str, int | None]) -> tuple[Preset, Profile]:
    """The preset and the profile with the command line's overrides, checked together."""
    preset, prof = get_preset(preset), get_profile(profile)
    changes = {k: int(v) for k, v in overrides.items() if v is not None}
    allowed = set(Profile.__dataclass_fields__) - {"name"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ValueError(f"Unknown profile field(s) {unknown}; choose from {sorted(allowed)}.")
    prof = prof.replace(**changes)
    if preset.patch_size % 2 ** prof.unet_depth:
        raise ValueError(f"UNet depth {prof.unet_depth} needs patches whose side is a "
                         f"multiple of {2 ** prof.unet_depth}; the preset cuts "
                         f"{preset.patch_size} px. Use a smaller --depth.")
    return preset, prof


def read_markers(path: str | os.PathLike | None, field: Field) -> np.ndarray:
    """Markers from a CSV (checked against the field), else nuclei found on ``nuc``; too
    many for the image are refused before any patch is cut."""
    if path is None:
        mk = find_markers(field)
    else:
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"No such markers file: {path}")
        try:
            mk = tiffio.read_markers(path)
        except (ValueError, IndexError, UnicodeDecodeError) as err:
            raise ValueError(f"Cannot read markers from --markers {path.name}: {err}. "
                             f"Expected a CSV with columns row,col (or x,y), one marker per "
                             f"line.") from err
        mk = check_markers(mk, field.shape)
    if len(mk) == 0:
        raise ValueError("No markers: the markers file is empty; give one (row, col) per "
                         "cell, or drop --markers to find nuclei on --nuc.")
    check_marker_density(len(mk), field.shape, field.pixel_size,
                         "markers" if path is not None else "nuclei on --nuc")
    return mk
