"""Parameters of the synthetic benchmark (:func:`cellcutter_nb.data.synth.make_field`).

Defaults mimic the paper's A431 data; lengths are in µm and converted with the pixel
size. The geometry (:mod:`~cellcutter_nb.data.synth_geometry`) and the rendering
(:mod:`~cellcutter_nb.data.synth_render`) both read them.

Examples
--------
>>> from cellcutter_nb.data.synth_params import SynthParams
>>> SynthParams().confluence, SynthParams(confluence=0.5).cell_diameter_um
(0.7, 24.0)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import PIXEL_SIZE_UM


@dataclass(frozen=True)
class SynthParams:
    """Parameters of the synthetic benchmark; defaults mimic the paper's A431 data.

    Lengths are in µm and converted with ``pixel_size``.

    Parameters
    ----------
    pixel_size : float
        µm per pixel (0.8: the paper's 1.4 mm imaged as 1750 px).
    confluence : float
        Target fraction of the field covered by cells.
    cell_diameter_um : float
        Mean equivalent cell diameter.
    cell_size_cv : float
        Relative spread of the cells' size weights.
    colony_scale_um : float
        Correlation length of the random field whose level set shapes colonies.
    large_colony_share : float
        Share of the colony area in large colonies; the rest is small clumps.
    isolated_fraction : float
        Isolated cells as a fraction of colony cells.
    warp_um : float
        Amplitude of the smooth displacement that bends cell boundaries.
    nucleus_length_um : tuple of float
        Range of the nucleus long axis.
    nucleus_aspect : tuple of float
        Range of long/short axis ratio.
    nucleus_offset : float
        Typical nucleus offset from the cell centroid, as a fraction of the cell radius.
    touching_nuclei_fraction : float
        Fraction of cells whose nucleus is pushed towards a neighbour's.
    lamellipodia_um : float
        Largest width of the dim protrusions at colony edges.
    fl_snr, bf_snr, nuc_snr : float
        Signal-to-noise ratios (see :mod:`cellcutter_nb.data.synth_render`).
    junction_gain : float
        Membrane brightness at cell-cell junctions relative to cytoplasm (before blur).
    periphery_gain : float
        Membrane brightness at the cell-background edge (before blur).
    cell_brightness_cv : float
        Log-normal spread of the per-cell fl brightness.
    psf_sigma_um : float
        σ of the Gaussian point-spread function.
    illumination : float
        Relative drop of illumination from the brightest to the darkest corner.
    """

    pixel_size: float = PIXEL_SIZE_UM
    confluence: float = 0.70
    cell_diameter_um: float = 24.0
    cell_size_cv: float = 0.08
    colony_scale_um: float = 70.0
    large_colony_share: float = 0.8
    isolated_fraction: float = 0.04
    warp_um: float = 2.4
    nucleus_length_um: tuple[float, float] = (8.0, 14.0)
    nucleus_aspect: tuple[float, float] = (1.1, 1.6)
    nucleus_offset: float = 0.25
    touching_nuclei_fraction: float = 0.12
    lamellipodia_um: float = 6.0
    fl_snr: float = 6.0
    bf_snr: float = 8.0
    nuc_snr: float = 15.0
    junction_gain: float = 2.2
    periphery_gain: float = 2.6
    cell_brightness_cv: float = 0.30
    psf_sigma_um: float = 1.0
    illumination: float = 0.30

    def __post_init__(self) -> None:
        if not 0.2 <= self.confluence <= 0.95:
            raise ValueError(f"confluence must be in [0.2, 0.95], got {self.confluence}.")
        for name in ("pixel_size", "cell_diameter_um", "colony_scale_um", "fl_snr",
                     "bf_snr", "nuc_snr", "psf_sigma_um"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SynthParams.{name} must be > 0, got {getattr(self, name)}.")
        lo, hi = self.nucleus_length_um
        if not 0 < lo <= hi < self.cell_diameter_um:
            raise ValueError("nucleus_length_um must be an increasing range below the cell "
                             f"diameter, got {self.nucleus_length_um}.")
