"""The method presets: how the method is run, with every constant it takes.

* ``paper`` — what the text of Din & Yu (2021) says.
* ``original_code`` — what the authors' released code does (github.com/jiyuuchc/cellcutter;
  see DESIGN.md for each difference).
* ``fast`` — the paper's inputs and outputs (markers, mask, patches; no annotation and no
  ground truth anywhere in training) with a training recipe that converges in minutes
  on a laptop. Its departures from ``paper``, each measured in ``benchmarks/RESULTS.md``:

  1. GroupNorm instead of BatchNorm in the UNet (``normalisation``): one batch is one
     area of strongly correlated patches, and BatchNorm's per-area statistics made the
     outputs swing and collapse for thousands of patches.
  2. A fixed position prior on the logits and the last convolution started at zero
     (``position_prior``, ``position_prior_level``): training starts from a disk
     around each marker instead of from "everything" or "nothing".
  3. A boundary term added to Eq. 1 (``boundary_weight``, ``boundary_kappa``): a
     contrast-sensitive pairwise (CRF-style) penalty on each patch's output that is
     cheap on junctions (ridges of the whole-cell channels,
     :mod:`cellcutter_nb.prep.ridges`). Eq. 1 is indifferent to where two cells meet;
     this term, computed from the image alone, says where.
  4. Learning rate 0.001 (the released code's) instead of 0.005.
  5. Integration (``integration``, ``one_piece``): with a mask, every mask pixel goes
     to its most probable patch (the paper: pixels below 0.5 in every patch are
     background), and every label is one connected piece.
  6. Fine-tuning a shipped starting model (which the paper does not have) runs at
     ``finetune_learning_rate`` 0.0002: at 0.001 its mIOU dipped for an epoch or two.

Examples
--------
>>> from cellcutter_nb.presets import get_preset
>>> p = get_preset("paper")
>>> p.lam, p.log_base, p.beta, p.prior
(3.32, 10.0, 15.0, None)
>>> get_preset("fast").normalisation, get_preset("fast").prior
('group', (8.0, 0.5))
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

#: Side of the square patch cut around every marker (px).
PATCH_SIZE: int = 64
#: Side of the square area whose patches form one training batch (px).
AREA_SIZE: int = 640
#: Standard deviation of the Gaussian disk of the position channel (px).
POSITION_SIGMA_PX: float = 15.0

__all__ = ["AREA_SIZE", "PATCH_SIZE", "POSITION_SIGMA_PX", "PRESETS", "LossWeights", "Preset",
           "get_preset"]


@dataclass(frozen=True)
class LossWeights:
    """The weights of Eq. 1's terms, in the form the loss uses them.

    Made by :meth:`Preset.loss_weights`; :func:`cellcutter_nb.core.loss.cutter_loss` reads
    nothing else, so a new term of the loss is one more field here (default 0: off) and
    one more line in the preset method.

    Parameters
    ----------
    lam_natural : float
        λ of the overlap term for the natural logarithm (:attr:`Preset.lam_natural`).
    beta : float
        β of the penalty on segmented pixels outside the mask M (0: no mask term).
    boundary : float
        μ of the boundary term (:func:`cellcutter_nb.core.loss.boundary_term`; 0: off,
        as in the paper).
    """

    lam_natural: float
    beta: float
    boundary: float = 0.0


@dataclass(frozen=True)
class Preset:
    """How the method is run (see the module notes for the three presets).

    Parameters
    ----------
    name : str
        ``"paper"``, ``"original_code"`` or ``"fast"``.
    lam, log_base : float
        λ, weight of the overlap term of Eq. 1, for logarithms of base ``log_base``
        (10 for the paper's λ = 3.32, *e* for the released code's λ = 1).
    beta : float
        β, weight of the penalty on segmented pixels outside the mask M.
    learning_rate : float
        Adam learning rate.
    augment : str
        ``"dihedral"`` (all 8 flips/transposes, as the text says) or ``"flips"``
        (the released code never draws the transpose).
    blob_method : str
        Blob detector for synthetic nucleus images: ``"dog"`` or ``"doh"``.
    graph_cut_pairwise : str
        ``"constant"`` κ (Eq. 2) or the code's ``"contrast"``-sensitive weight.
    graph_cut_neighbourhood : int
        4 or 8 neighbours in the graph cut.
    drop_border_patches : bool
        Drop markers whose patch crosses the image edge (released code) instead
        of zero-padding them.
    patch_size, area_size, position_sigma : int, int, float
        Patch side, batch-area side and σ of the position disk (px).
    normalisation : str
        ``"batch"`` (paper) or ``"group"`` normalisation in the UNet.
    position_prior, position_prior_level : float
        a and t of the prior ``a · (disk - t)`` added to the logits (a = 0: none).
    boundary_weight, boundary_kappa : float
        μ of the boundary term (0: none) and κ of its cost ``exp(-κ · ridge strength)``.
    integration : str
        ``"threshold"`` (paper: background where every patch is below 0.5) or
        ``"mask_argmax"`` (every mask pixel to its most probable patch; the threshold
        when there is no mask).
    one_piece : bool
        Keep each label's connected piece nearest its marker; the other pieces go to the
        labels they touch (or the background).
    finetune_learning_rate : float or None
        Learning rate when training starts from a shipped starting model
        (:mod:`cellcutter_nb.core.starting`); ``None``: ``learning_rate``.
    converged_patches : int
        Patches a network must see before its result is more than early training (below
        it, results are labelled *under-trained*). Measured (benchmarks/RESULTS.md):
        ``paper`` passes the position-only partition only after ~100 k patches (1750²
        benchmark, one H100) and reaches ~0.80 mIOU at ~400 k; ``fast`` passes
        CellProfiler given the same mask at ~20 k (640² fields, 2 CPU cores).
    """

    name: str
    lam: float
    log_base: float
    beta: float
    learning_rate: float
    augment: str
    blob_method: str
    graph_cut_pairwise: str
    graph_cut_neighbourhood: int
    drop_border_patches: bool
    patch_size: int = PATCH_SIZE
    area_size: int = AREA_SIZE
    position_sigma: float = POSITION_SIGMA_PX
    normalisation: str = "batch"
    position_prior: float = 0.0
    position_prior_level: float = 0.5
    boundary_weight: float = 0.0
    boundary_kappa: float = 2.0
    integration: str = "threshold"
    one_piece: bool = False
    # only a run from a starting model uses it: not in cache keys (config_hash), so the
    # keys of runs from scratch stay those they had before it existed
    finetune_learning_rate: float | None = field(default=None, metadata={"cache_key": False})
    converged_patches: int = 100_000

    @property
    def lam_natural(self) -> float:
        """λ expressed for the natural logarithm (λ_e = λ / ln base)."""
        return self.lam / math.log(self.log_base)

    @property
    def prior(self) -> tuple[float, float] | None:
        """``(a, t)`` of the position prior, or None when the preset has none."""
        return (self.position_prior, self.position_prior_level) if self.position_prior else None

    def loss_weights(self, with_mask: bool = True) -> LossWeights:
        """The weights the loss is computed with: λ for the natural log, β (0 without
        the mask, as in Table 1's second row) and μ of the boundary term.

        Examples
        --------
        >>> get_preset("paper").loss_weights(with_mask=False)
        LossWeights(lam_natural=1.4418576799187959, beta=0.0, boundary=0.0)
        """
        return LossWeights(self.lam_natural, self.beta if with_mask else 0.0,
                           self.boundary_weight)

    def replace(self, **changes: Any) -> Preset:
        """Return a copy with some fields changed (validated like the original)."""
        return validated(dataclasses.replace(self, **changes))


_PAPER = dict(lam=3.32, log_base=10.0, beta=15.0, augment="dihedral", blob_method="dog",
              graph_cut_pairwise="constant", graph_cut_neighbourhood=4,
              drop_border_patches=False)

PRESETS: dict[str, Preset] = {
    "paper": Preset(name="paper", learning_rate=0.005, **_PAPER),
    "original_code": Preset(
        name="original_code",
        lam=1.0,
        log_base=math.e,
        beta=20.0,  # the code applies 20·λ to the inverted mask, with λ = 1
        learning_rate=0.001,
        augment="flips",
        blob_method="doh",
        graph_cut_pairwise="contrast",
        graph_cut_neighbourhood=8,
        drop_border_patches=True,
    ),
    # The paper's method and constants, trained so that it converges on a laptop; each
    # departure is listed in the module notes (numbers: benchmarks/RESULTS.md).
    "fast": Preset(name="fast", learning_rate=0.001, normalisation="group",
                   position_prior=8.0, position_prior_level=0.5, boundary_weight=3.0,
                   boundary_kappa=2.0, integration="mask_argmax", one_piece=True,
                   finetune_learning_rate=0.0002, converged_patches=20_000, **_PAPER),
}

_CHOICES = {
    "augment": ("dihedral", "flips"),
    "blob_method": ("dog", "doh"),
    "graph_cut_pairwise": ("constant", "contrast"),
    "graph_cut_neighbourhood": (4, 8),
    "normalisation": ("batch", "group"),
    "integration": ("threshold", "mask_argmax"),
}


def validated(obj: Any) -> Any:
    """Check the choices of a preset or profile (fields named in ``_CHOICES``) and, for a
    preset, the values the method cannot use; returns ``obj``."""
    for key, allowed in _CHOICES.items():
        if hasattr(obj, key) and getattr(obj, key) not in allowed:
            raise ValueError(f"{key}={getattr(obj, key)!r} is not one of {allowed}.")
    if isinstance(obj, Preset):
        if obj.lam <= 0 or obj.beta < 0 or obj.learning_rate <= 0:
            raise ValueError("lam and learning_rate must be > 0 and beta >= 0.")
        if obj.finetune_learning_rate is not None and obj.finetune_learning_rate <= 0:
            raise ValueError("finetune_learning_rate must be > 0 (or None).")
        if obj.log_base <= 1:
            raise ValueError(f"log_base must be > 1, got {obj.log_base}.")
        if obj.patch_size % 2 or obj.patch_size < 8:
            raise ValueError(f"patch_size must be an even number >= 8, got {obj.patch_size}.")
        if min(obj.position_prior, obj.boundary_weight, obj.boundary_kappa) < 0:
            raise ValueError("position_prior, boundary_weight and boundary_kappa must be "
                             ">= 0.")
    return obj


def get_preset(preset: str | Preset) -> Preset:
    """Return a :class:`Preset` by name (a Preset passes through).

    Raises
    ------
    ValueError
        If the name is unknown; the message lists the valid names.

    Examples
    --------
    >>> sorted(PRESETS)
    ['fast', 'original_code', 'paper']
    """
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {sorted(PRESETS)}.")
    return PRESETS[preset]
