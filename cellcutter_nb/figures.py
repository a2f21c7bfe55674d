"""One house style for every figure, and saving to ``figures/`` as PNG (200 dpi) + PDF.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> from cellcutter_nb import figures
>>> fig, ax = figures.subplots(1, 1)
>>> paths = figures.savefig(fig, "example", outdir=None)
>>> paths
[]
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

#: Colours used across notebooks: per modality and for overlays.
COLOURS = {"fl": "#d62728", "bf": "#7f7f7f", "nuc": "#1f77b4", "truth": "#ffd700",
           "pred": "#00e5ff", "fn": "#ffffff", "fp": "#1f5fff"}

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.interpolation": "nearest",
    "image.cmap": "gray",
    "legend.frameon": False,
}


def subplots(nrows: int = 1, ncols: int = 1, size: float = 3.2, **kwargs):
    """``plt.subplots`` in the house style, ``size`` inches per panel."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows),
                                 squeeze=False, constrained_layout=True, **kwargs)
    return fig, (axes[0, 0] if nrows == ncols == 1 else axes)


def show_image(ax, image: np.ndarray, title: str = "", percentiles=(0.5, 99.5),
               cmap: str = "gray", scalebar_um: float | None = None,
               pixel_size: float | None = None) -> None:
    """Display one channel with a robust contrast stretch, no ticks, optional scale bar."""
    lo, hi = np.percentile(image, percentiles)
    ax.imshow(image, cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    if scalebar_um and pixel_size:
        length = scalebar_um / pixel_size
        h, w = image.shape
        y = h * 0.94
        ax.plot([w * 0.95 - length, w * 0.95], [y, y], color="w", lw=3)
        ax.text(w * 0.95 - length / 2, y - h * 0.02, f"{scalebar_um:g} µm", color="w",
                ha="center", va="bottom", fontsize=8)


def savefig(fig, name: str, outdir: str | Path | None = "figures") -> list[Path]:
    """Save ``fig`` as ``<outdir>/<name>.png`` (200 dpi) and ``.pdf``; ``outdir=None`` skips.

    Returns
    -------
    list of Path
        The files written.
    """
    if outdir is None:
        return []
    if not name or "/" in name or "\\" in name:
        raise ValueError(f"Figure name {name!r} must be a plain file stem like 'fig2_traces'.")
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    with plt.rc_context(STYLE):
        for p in paths:
            fig.savefig(p, dpi=200, bbox_inches="tight")
    return paths
