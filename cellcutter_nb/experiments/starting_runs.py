"""The shipped starting models in the paper's experiments (not in the paper).

A starting model (:mod:`cellcutter_nb.core.starting`) was trained without annotation on
synthetic fields that no report scores. Two views put it beside the paper's per-image
training:

* :func:`starting_model_rows` — Table 1's with-mask runs fine-tuned from it for the
  profile's budget (row :data:`STARTING_MODEL_ROW`), for the input combinations that
  have a shipped model;
* :func:`starting_model_unseen` — the model alone, without fine-tuning, on every
  replicate (notebook 07's extra row).

Both refuse a replicate whose synthetic field the model was trained on
(:meth:`cellcutter_nb.core.starting.ModelCard.check_unseen`).

Examples
--------
>>> STARTING_MODEL_ROW
'CNN w/ mask, from starting model'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..channels import check_combinations, combo_name
from ..config import Preset, Profile, get_preset, get_profile
from ..core.integrate import predict_field
from ..metrics import per_cell_iou, score
from ..progress import progress_bar
from .model_cache import field_seed, fit, replicate

__all__ = ["STARTING_MODEL_ROW", "starting_model_rows", "starting_model_unseen"]

#: Table 1's row of runs fine-tuned from the shipped starting models (with the mask).
STARTING_MODEL_ROW = "CNN w/ mask, from starting model"


def starting_model_rows(prof: Profile, pre: Preset, seed: int,
                         combos: list[tuple[str, ...]], cache_dir: str | Path | None | bool,
                         progress: bool | None) -> list[dict]:
    """:data:`STARTING_MODEL_ROW` of :func:`cellcutter_nb.experiments.paper.table1`: the
    with-mask run of each replicate and each of ``combos`` that has a shipped starting
    model of the profile's network size trained with the same preset, fine-tuned from it
    (the rows compare like networks: the quick profile's width 16 / depth 4 has shipped
    models, smoke and full have none; the replicate's other runs are unaffected)."""
    from ..core.starting import available  # Keras on demand

    shipped = {tuple(card.channels) for card in available() if card.preset == pre.name
               and (card.width, card.depth) == (prof.unet_width, prof.unet_depth)}
    jobs = [(i, c) for i in range(prof.n_replicates) for c in combos if c in shipped]
    rows = []
    for i, c in progress_bar(jobs, "fine-tuned models", progress):
        run = fit(prof, pre, i, c, seed=seed, cache_dir=cache_dir, start="pretrained")
        rows.append(dict(run.scores, method=STARTING_MODEL_ROW, combination=combo_name(c),
                         replicate=i))
    return rows


def starting_model_unseen(profile: str | Profile = "quick", preset: str | Preset = "fast",
                          seed: int = 0, *, channels: Sequence[str] = ("fl", "nuc"),
                          cache_dir: str | Path | None | bool = True,
                          progress: bool | None = None) -> pd.DataFrame:
    """The shipped starting model (:mod:`cellcutter_nb.core.starting`), without any
    fine-tuning, on every replicate: an unseen image for it too (it trained on synthetic
    fields of other seeds).

    Returns
    -------
    DataFrame
        The columns of :func:`cellcutter_nb.experiments.paper.unseen_image`,
        ``trained_on`` = ``"starting model"``; ``agreement`` and ``miou_own`` against
        each replicate's own model of ``channels``.

    Raises
    ------
    ValueError
        No starting model for ``channels`` or for the preset's patch geometry, or a
        replicate it was trained on.
    """
    from ..core.starting import load_starting_model  # Keras on demand

    prof, pre = get_profile(profile), get_preset(preset)
    channels = check_combinations([channels])[0]
    unet, card = load_starting_model(channels, pre)
    rows = []
    for b in progress_bar(range(prof.n_replicates), "replicates", progress):
        card.check_unseen(field_seed(seed, b))
        own = fit(prof, pre, b, channels, seed=seed, cache_dir=cache_dir)
        target = replicate(prof, pre, b, seed)
        labels = predict_field(unet, target.field, channels, pre, markers=own.markers,
                               mask=target.mask_for(channels))
        rows.append({"combination": combo_name(channels), "trained_on": "starting model",
                     "applied_to": b,
                     "agreement": float(per_cell_iou(labels, own.labels)["iou"].mean()),
                     "miou_unseen": score(labels, target.field.labels, own.markers)[0]["miou"],
                     "miou_own": own.scores["miou"]})
    return pd.DataFrame(rows)


