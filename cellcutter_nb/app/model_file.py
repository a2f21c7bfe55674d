"""A saved UNet that knows what it was trained on: channels, preset and patch size.

:func:`save_model` writes the ``.keras`` file and adds ``cellcutter_nb.json`` to its
archive (Keras ignores it), so ``segment --model`` can refuse a model used with other
images (:func:`check_model_info`): a network trained on ``fl`` + ``nuc`` cannot read
bright-field. Models saved by plain ``model.save`` have no such record; only their
channel count and patch size can be checked (:func:`cellcutter_nb.app.cli`).

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "none.keras"
>>> model_info(path) is None
True
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import Preset

__all__ = ["INFO_NAME", "check_model_info", "model_info", "save_model"]

#: Name of the record inside the ``.keras`` archive.
INFO_NAME = "cellcutter_nb.json"
_FORMAT = "cellcutter_nb.model"


def save_model(net: Any, path: str | os.PathLike, channels: Sequence[str],
               preset: Preset) -> Path:
    """Save ``net`` as ``.keras`` with the channels, preset and patch size it was trained on.

    Parameters
    ----------
    net : keras.Model
        The UNet.
    path : path
        A ``.keras`` file (Keras insists on the suffix).
    channels : sequence of str
        The image channels the network sees, in order.
    preset : Preset
        The preset it was trained with.

    Returns
    -------
    Path
    """
    path = Path(path)
    net.save(path)
    info = {"format": _FORMAT, "version": 1, "channels": list(channels),
            "preset": preset.name, "patch_size": int(net.input_shape[1] or preset.patch_size)}
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(INFO_NAME, json.dumps(info))
    return path


def model_info(path: str | os.PathLike) -> dict[str, Any] | None:
    """The record :func:`save_model` added to a ``.keras`` file, or ``None`` without one.

    Examples
    --------
    >>> model_info("no/such.keras") is None
    True
    """
    try:
        with zipfile.ZipFile(path) as archive:
            if INFO_NAME not in archive.namelist():
                return None
            info = json.loads(archive.read(INFO_NAME))
    except (OSError, zipfile.BadZipFile, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("format") == _FORMAT else None


def check_model_info(info: dict[str, Any], path: str | os.PathLike,
                     channels: Sequence[str], preset: Preset) -> None:
    """Refuse a model used with other channels or another preset than it was trained with.

    Examples
    --------
    >>> from cellcutter_nb.config import get_preset
    >>> info = {"channels": ["fl", "nuc"], "preset": "paper", "patch_size": 64}
    >>> check_model_info(info, "m.keras", ("bf", "nuc"), get_preset("paper"))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: m.keras was trained on fl,nuc but this run gives bf,nuc; give the images ...
    """
    name = Path(path).name
    trained = list(info.get("channels", []))
    if trained != list(channels):
        opts = ", ".join(f"--{c}" for c in trained)
        raise ValueError(f"{name} was trained on {','.join(trained)} but this run gives "
                         f"{','.join(channels)}; give the images it was trained on ({opts}; "
                         f"--channels {','.join(trained)} if you give more), or drop --model "
                         f"to train a new one.")
    if info.get("preset") != preset.name:
        raise ValueError(f"{name} was trained with preset {info.get('preset')!r}, not "
                         f"{preset.name!r}; pass --preset {info.get('preset')}.")
