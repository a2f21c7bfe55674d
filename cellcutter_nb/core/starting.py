"""Shipped starting models: UNets trained once, without annotation, on synthetic fields.

Per-image Eq. 1 training (the paper's method) starts from random weights, so a short
run on a laptop ends in its early phase. A starting model was trained with the same
unsupervised objective (the ``fast`` preset: Eq. 1 + the boundary term, no label, no
ground truth) for a long time on synthetic fields that no report scores; a user's run
then only adapts it to their image (``segment(..., start="pretrained")``). The paper
itself shows that a model trained on one image segments another (its "unseen image"
experiment).

Each model lives in ``cellcutter_nb/models/`` as ``<name>.npz`` (float16 weights, in
the order of ``get_weights``) beside ``<name>.json``, its model card: channels, patch
size, architecture, the recipe, the training fields' seeds, patches seen, its scores
on held-out seeds and the command that regenerates it
(:mod:`cellcutter_nb.experiments.pretrain`).

Examples
--------
>>> from cellcutter_nb.core.starting import find_card
>>> find_card(("bf",))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: No starting model for channels ('bf',); shipped: ...
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import keras
from ..config import Preset
from .model import build_unet

__all__ = ["MODELS_DIR", "ModelCard", "available", "find_card", "load_card_model",
           "load_starting_model", "save_starting_model", "weights_digest"]

#: Folder of the shipped starting models (inside the package).
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


@dataclass(frozen=True)
class ModelCard:
    """What a starting model is and how it was made.

    Parameters
    ----------
    name : str
        File stem (``fl_nuc``, ``fl``, ...).
    channels : list of str
        Image channels, in the order the network reads them (the position disk follows).
    patch_size, width, depth : int
        Patch side and UNet size.
    norm : str
        Normalisation layers (``"group"``).
    prior : list of float
        ``[a, t]`` of the position prior, or ``[]``.
    position_sigma : float
        σ of the position disk the model was trained with (px).
    preset : str
        The recipe (a preset name).
    training : dict
        Field seeds and size, patches seen, seconds, machine, command.
    scores : dict
        Held-out seeds' mIOU of the model alone and of the position-only partition.
    """

    name: str
    channels: list[str]
    patch_size: int
    width: int
    depth: int
    norm: str
    prior: list[float]
    position_sigma: float
    preset: str
    training: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)

    @property
    def patches_seen(self) -> int:
        """Patches the model saw in training (``training["patches_seen"]``)."""
        return int(self.training.get("patches_seen", 0))

    def check(self, channels: Sequence[str], preset: Preset) -> None:
        """Refuse channels or patch geometry the model was not trained with.

        Raises
        ------
        ValueError
            Other channels (or order), another patch size or position σ.
        """
        if list(channels) != list(self.channels):
            raise ValueError(f"The starting model {self.name!r} reads channels "
                             f"{self.channels}, not {list(channels)}; use those channels or "
                             f"start from scratch (start='scratch', --start scratch).")
        if (preset.patch_size, preset.position_sigma) != (self.patch_size,
                                                          self.position_sigma):
            raise ValueError(f"The starting model {self.name!r} takes {self.patch_size}-px "
                             f"patches with a position disk of σ {self.position_sigma:g} px; "
                             f"preset {preset.name!r} cuts {preset.patch_size}-px patches "
                             f"with σ {preset.position_sigma:g}. Use a preset with those "
                             f"values or start from scratch.")


    def check_unseen(self, field_seed: int) -> None:
        """Refuse to score the model on a synthetic field it was trained on.

        Raises
        ------
        ValueError
            ``field_seed`` is one of the card's training field seeds.

        Examples
        --------
        >>> card = ModelCard("m", ["fl"], 64, 16, 4, "group", [], 15.0, "fast",
        ...                  training={"field_seeds": [1000, 1001]})
        >>> card.check_unseen(0)
        >>> card.check_unseen(1001)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: The starting model 'm' was trained on synthetic field seed 1001; ...
        """
        if int(field_seed) in {int(s) for s in self.training.get("field_seeds", [])}:
            raise ValueError(f"The starting model {self.name!r} was trained on synthetic "
                             f"field seed {field_seed}; scoring it there would not be an "
                             f"unseen image. Use another experiment seed (fields "
                             f"1000·seed + replicate) or start from scratch.")


def weights_digest(card: ModelCard, folder: Path = MODELS_DIR) -> str:
    """First 16 hex digits of the SHA-256 of a starting model's weight file (a cache key
    part: retraining the shipped model makes runs fine-tuned from it stale)."""
    return hashlib.sha256((folder / f"{card.name}.npz").read_bytes()).hexdigest()[:16]


def available(folder: Path = MODELS_DIR) -> list[ModelCard]:
    """The model cards of the shipped starting models, by name."""
    return [ModelCard(**json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))
            if p.with_suffix(".npz").is_file()]


def find_card(channels: Sequence[str], folder: Path = MODELS_DIR) -> ModelCard:
    """The card of the starting model for exactly these channels.

    Raises
    ------
    ValueError
        No shipped model reads these channels (the message lists those that exist).
    """
    cards = available(folder)
    for card in cards:
        if list(card.channels) == list(channels):
            return card
    shipped = ", ".join("+".join(c.channels) for c in cards) or "none"
    raise ValueError(f"No starting model for channels {tuple(channels)}; shipped: {shipped}. "
                     f"Start from scratch (start='scratch', --start scratch) or train one "
                     f"with python -m cellcutter_nb.experiments.pretrain.")


def load_starting_model(channels: Sequence[str], preset: Preset,
                        folder: Path = MODELS_DIR) -> tuple[keras.Model, ModelCard]:
    """The starting model for ``channels`` (float32 weights) and its card, checked
    against the preset's patch geometry (:meth:`ModelCard.check`)."""
    card = find_card(channels, folder)
    card.check(channels, preset)
    return load_card_model(card, folder), card


def load_card_model(card: ModelCard, folder: Path = MODELS_DIR) -> keras.Model:
    """The UNet of a model card, its float16 weights read back as float32."""
    unet = build_unet(len(card.channels) + 1, card.width, card.depth, card.patch_size,
                      norm=card.norm, prior=tuple(card.prior) or None)
    with np.load(folder / f"{card.name}.npz") as data:
        weights = [data[f"w{i}"].astype(np.float32) for i in range(len(data.files))]
    unet.set_weights(weights)
    return unet


def save_starting_model(unet: keras.Model, card: ModelCard, folder: Path = MODELS_DIR) -> Path:
    """Write ``<name>.npz`` (float16 weights, compressed) and ``<name>.json`` (the card)."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = {f"w{i}": w.astype(np.float16) for i, w in enumerate(unet.get_weights())}
    np.savez_compressed(folder / f"{card.name}.npz", **weights)
    (folder / f"{card.name}.json").write_text(json.dumps(asdict(card), indent=2) + "\n")
    return folder / f"{card.name}.npz"
