"""Settings of the explorer (:mod:`cellcutter_nb.app.widgets`): what can be set, the
allowed ranges and the one check every entry point runs.

Examples
--------
>>> from cellcutter_nb.app.explore_settings import check_params
>>> check_params(start="pretrained", profile="quick").start
'pretrained'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

from .. import channels as chan
from ..config import PROFILES, get_preset

__all__ = ["DEFAULT_SECONDS", "RANGES", "ExploreParams", "check_params"]

_PAPER = get_preset("paper")
#: (min, max, step) of the explorer's sliders; :func:`check_params` enforces the same.
RANGES: dict[str, tuple[float, float, float]] = {
    "lam": (0.25, 10.0, 0.01), "beta": (0.0, 50.0, 0.5), "position_sigma": (2.0, 40.0, 0.5),
    "size": (128, 512, 32), "field_seed": (0, 999, 1), "seed": (0, 999, 1),
    "max_seconds": (2.0, 600.0, 1.0)}
#: Default training wall-time budget per profile (s), ≤ 30 s for quick. ``None``: no budget
#: can bind, the profile's few steps end training first (smoke: 4 steps, about a second).
DEFAULT_SECONDS: dict[str, float | None] = {"smoke": None, "quick": 20.0, "full": 300.0}


@dataclass(frozen=True)
class ExploreParams:
    """Settings of one exploration (defaults: the ``paper`` preset, FL + Nuc, smoke).

    Parameters
    ----------
    lam, beta, position_sigma : float
        λ (overlap weight), β (outside-mask weight), σ of the position disk (px).
    channels : tuple of str or str
        Channels the network sees: names (``("fl", "nuc")``), ``"fl,nuc"`` or a
        Table 1 row name (``"FL+Nuc"``).
    use_mask : bool
        Train with the mask (Table 1's first row) or without it (β unused).
    size, field_seed : int
        Side (px) and seed of the synthetic area.
    profile : str
        ``smoke``, ``quick`` or ``full``: UNet size and epochs.
    seed : int
        Seeds training.
    max_seconds : float, optional
        Training wall-time budget; default :data:`DEFAULT_SECONDS` of the profile.
    start : {"scratch", "pretrained"}
        Random weights and the ``paper`` preset, or the shipped starting model fine-tuned
        with its own recipe (``fast``, with these λ, β, σ).

    Examples
    --------
    >>> print(ExploreParams(profile="quick"))  # doctest: +NORMALIZE_WHITESPACE
    λ 3.32, β 15, σ 15 px; FL+Nuc with the mask; 192² px area (seed 0); quick profile,
    training seed 0, budget 20 s
    """

    lam: float = _PAPER.lam
    beta: float = _PAPER.beta
    position_sigma: float = _PAPER.position_sigma
    channels: tuple[str, ...] | str = ("fl", "nuc")
    use_mask: bool = True
    size: int = 192
    field_seed: int = 0
    profile: str = "smoke"
    seed: int = 0
    max_seconds: float | None = None
    start: str = "scratch"

    @property
    def budget(self) -> float | None:
        """Training wall-time budget in seconds (``None``: the profile's steps only)."""
        return DEFAULT_SECONDS[self.profile] if self.max_seconds is None else self.max_seconds

    def __str__(self) -> str:
        budget = "no budget (the profile's steps)" if self.budget is None else \
            f"budget {self.budget:g} s"
        return (f"λ {self.lam:g}, β {self.beta:g}, σ {self.position_sigma:g} px; "
                f"{'+'.join(chan.NAMES.get(c, c) for c in chan.parse(self.channels))} "
                f"{'with' if self.use_mask else 'without'} the mask; {self.size}² px area "
                f"(seed {self.field_seed}); {self.profile} profile, training seed "
                f"{self.seed}, {budget}"
                f"{'; from the starting model' if self.start == 'pretrained' else ''}")


def _number(name: str, value: Any, integer: bool = False) -> float:
    lo, hi, _ = RANGES[name]
    kind = Integral if integer else Real
    if isinstance(value, bool) or not isinstance(value, kind) or not lo <= value <= hi:
        what = "an integer" if integer else "a number"
        raise ValueError(f"{name}={value!r} is invalid: expected {what} in [{lo:g}, {hi:g}].")
    return int(value) if integer else float(value)


def check_params(params: ExploreParams | Mapping[str, Any] | None = None,
                 **changes: Any) -> ExploreParams:
    """Validate and normalise settings (a dict, :class:`ExploreParams` or keywords).

    Raises
    ------
    ValueError
        Naming the setting, the value and the allowed range (see :data:`RANGES`).

    Examples
    --------
    >>> check_params(profile="quick", size=256).budget
    20.0
    >>> check_params(lam=0)
    Traceback (most recent call last):
    ...
    ValueError: lam=0 is invalid: expected a number in [0.25, 10].
    """
    given = {**(params if isinstance(params, Mapping) else {}), **changes}
    unknown = sorted(set(given) - set(ExploreParams.__dataclass_fields__))
    if unknown:
        raise ValueError(f"Unknown setting(s) {unknown}; choose from "
                         f"{list(ExploreParams.__dataclass_fields__)}.")
    p = dataclasses.replace(params if isinstance(params, ExploreParams) else ExploreParams(),
                            **given)
    if p.profile not in PROFILES:
        raise ValueError(f"profile={p.profile!r} is invalid: choose one of {sorted(PROFILES)}.")
    if p.max_seconds is not None:
        _number("max_seconds", p.max_seconds)
    if p.start not in ("scratch", "pretrained"):
        raise ValueError(f"start={p.start!r} is invalid: choose 'scratch' or 'pretrained'.")
    return dataclasses.replace(
        p, lam=_number("lam", p.lam), beta=_number("beta", p.beta),
        position_sigma=_number("position_sigma", p.position_sigma),
        channels=chan.check(p.channels, cell_channel=True, canonical=True),
        use_mask=bool(p.use_mask),
        size=_number("size", p.size, True), field_seed=_number("field_seed", p.field_seed, True),
        seed=_number("seed", p.seed, True),
        max_seconds=None if p.max_seconds is None else float(p.max_seconds))
