"""Train a starting model once: Eq. 1 (``fast``) on synthetic fields no report scores.

The recipe is the per-image one (:func:`cellcutter_nb.core.train.train`, preset
``fast``) run for long on several synthetic fields in turn — markers found on their
nucleus channel and masks made by graph cut, as a user would; their ground truth is
removed before training, so nothing but the images reaches the loss. The fields' seeds
(:data:`TRAIN_SEEDS`) and the held-out seeds it is scored on (:data:`HELD_OUT_SEEDS`) are
disjoint from every field the notebooks and reports score (seeds 0-99). The weights
and a model card go to ``cellcutter_nb/models/`` (:mod:`cellcutter_nb.core.starting`).

Regenerate a shipped model with one command (about an hour on 2 CPU cores)::

    python -m cellcutter_nb.experiments.pretrain --channels fl,nuc

Examples
--------
>>> from cellcutter_nb.experiments.pretrain import card_name
>>> card_name(("fl", "nuc")), card_name(("bf", "nuc"))
('fl_nuc', 'bf_nuc')
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import channels as chan
from ..config import Profile, get_preset, get_profile
from ..core.integrate import predict_field
from ..core.model import build_unet
from ..core.starting import MODELS_DIR, ModelCard, save_starting_model
from ..core.train import train
from ..data.field import Field
from ..data.synth import make_field
from ..metrics import score
from ..prep.baseline import nearest_marker_partition
from ..prep.markers import markers_from_labels, nuclei_from_image
from ..prep.mask import graph_cut, pixel_classifier_mask
from ..prep.scribbles import synthetic_scribbles
from ..progress import progress_bar

__all__ = ["HELD_OUT_SEEDS", "TRAIN_SEEDS", "card_name", "train_starting_model"]

#: Synthetic fields the starting models train on (never scored by a report).
TRAIN_SEEDS: tuple[int, ...] = (1000, 1001, 1002, 1003)
#: Synthetic fields the model card's scores come from (never trained on).
HELD_OUT_SEEDS: tuple[int, ...] = (1100, 1101)


def card_name(channels: Sequence[str]) -> str:
    """File stem of the starting model of a channel set."""
    return "_".join(channels)


def _prepared(seed: int, size: int, channels: Sequence[str]) -> tuple[Field, Field, object]:
    """A field's images without ground truth, the field itself (for scoring) and its
    markers and mask as a user would make them."""
    truth = make_field(seed, shape=size)
    markers = markers_from_labels(nuclei_from_image(truth["nuc"], pixel_size=truth.pixel_size))
    if "fl" in channels:
        mask = graph_cut(truth["fl"])
    else:
        mask = pixel_classifier_mask(truth["bf"], synthetic_scribbles(truth, seed=seed))
    images = Field(dict(truth.channels), truth.pixel_size, name=truth.name)
    return images, truth, (markers, mask)


def held_out_scores(unet, channels: Sequence[str], preset, size: int) -> dict:
    """mIOU of the model alone (no fine-tuning) and of position only, per held-out seed."""
    out = {}
    for seed in HELD_OUT_SEEDS:
        _, truth, (markers, mask) = _prepared(seed, size, channels)
        labels = predict_field(unet, truth, channels, preset, markers=markers, mask=mask)
        out[f"seed_{seed}"] = {
            "miou": round(score(labels, truth.labels, markers)[0]["miou"], 4),
            "position_only": round(score(nearest_marker_partition(markers, mask),
                                         truth.labels, markers)[0]["miou"], 4)}
    return out


def train_starting_model(channels: Sequence[str] = ("fl", "nuc"), *, patches: int = 60_000,
                         chunk: int = 5_000, size: int = 640, profile: str | Profile = "quick",
                         preset: str = "fast", seed: int = 0, folder: Path = MODELS_DIR,
                         progress: bool | None = None) -> ModelCard:
    """Train, score and save the starting model of ``channels``.

    Parameters
    ----------
    channels : sequence of str
        Image channels (a Table 1 combination).
    patches : int
        Training volume, in patches seen.
    chunk : int
        Patches per visit of one field before the next (the fields are visited in turn).
    size : int
        Side of the synthetic fields (px).
    profile : str or Profile
        UNet width and depth, areas per step (the CPU profiles' ``quick`` by default).
    preset : str
        The recipe.
    seed, folder, progress
        Seed of the weights and batches; output folder; progress bar.

    Returns
    -------
    ModelCard
    """
    channels = chan.check(channels, cell_channel=True)
    prof, pre = get_profile(profile), get_preset(preset)
    fields = [_prepared(s, size, channels) for s in TRAIN_SEEDS]
    resume_file = folder / f".{card_name(channels)}.resume.npz"
    unet, seen = _resume(resume_file, channels, prof, pre)
    t0 = time.perf_counter()
    bar = progress_bar(desc="patches", progress=progress, total=patches)
    bar.update(seen)
    while seen < patches:
        images, _, (markers, mask) = fields[(seen // chunk) % len(fields)]
        result = train(images, channels, pre, prof.replace(max_epochs=10_000), mask=mask,
                       markers=markers, seed=seed + seen, unet=unet, tol=0.0,
                       max_patches=min(chunk, patches - seen), progress=False)
        unet = result.model
        done = int(result.history["patches_seen"].iloc[-1])
        seen += done
        bar.update(done)
        _save_resume(resume_file, unet, seen)
    bar.close()
    card = ModelCard(
        name=card_name(channels), channels=list(channels), patch_size=pre.patch_size,
        width=prof.unet_width, depth=prof.unet_depth, norm=pre.normalisation,
        prior=list(pre.prior or ()), position_sigma=pre.position_sigma, preset=pre.name,
        training={"field_seeds": list(TRAIN_SEEDS), "field_size": size, "patches_seen": seen,
                  "chunk": chunk, "seconds": round(time.perf_counter() - t0, 1),
                  "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
                  "command": "python -m cellcutter_nb.experiments.pretrain --channels "
                             f"{','.join(channels)} --patches {patches}"},
        scores=held_out_scores(unet, channels, pre, size))
    save_starting_model(unet, card, folder)
    resume_file.unlink(missing_ok=True)
    return card


def _save_resume(path: Path, unet, seen: int) -> None:
    """Float32 weights and patches seen after a chunk, so a killed run resumes there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part.npz")
    np.savez(partial, seen=seen, **{f"w{i}": w for i, w in enumerate(unet.get_weights())})
    partial.replace(path)


def _resume(path: Path, channels: Sequence[str], prof: Profile, pre) -> tuple[object, int]:
    """The UNet and patches seen saved by an interrupted run, or ``(None, 0)``."""
    if not path.is_file():
        return None, 0
    with np.load(path) as data:
        seen = int(data["seen"])
        weights = [data[f"w{i}"] for i in range(len(data.files) - 1)]
    unet = build_unet(len(channels) + 1, prof.unet_width, prof.unet_depth, pre.patch_size,
                      norm=pre.normalisation, prior=pre.prior)
    unet.set_weights(weights)
    return unet, seen


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m cellcutter_nb.experiments.pretrain --channels fl,nuc``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--channels", default="fl,nuc")
    parser.add_argument("--patches", type=int, default=60_000)
    parser.add_argument("--chunk", type=int, default=5_000)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--out", default=str(MODELS_DIR))
    args = parser.parse_args(argv)
    card = train_starting_model(chan.parse(args.channels), patches=args.patches,
                                chunk=args.chunk, size=args.size, folder=Path(args.out),
                                progress=True)
    print(card)


if __name__ == "__main__":
    main()
