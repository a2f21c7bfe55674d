"""One house style for every figure, and saving to ``figures/`` as PNG (200 dpi) + PDF.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> from cellcutter_nb.app import figures
>>> fig, ax = figures.subplots(1, 1)
>>> paths = figures.savefig(fig, "example", outdir=None)
>>> paths
[]
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.ticker import EngFormatter, MaxNLocator
from skimage.segmentation import find_boundaries

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
    """``plt.subplots`` in the house style, ``size`` inches per panel.

    The figure is made by pyplot *outside* any ``rc_context``: a kernel's first pyplot
    figure loads the inline backend, which switches matplotlib to interactive mode, and
    leaving an ``rc_context`` would switch it back, so that no later figure of the
    kernel is shown. Only the axes are made inside :data:`STYLE`.

    Examples
    --------
    >>> fig, axes = subplots(1, 2)
    >>> axes.shape, axes[0, 1].spines["top"].get_visible()
    ((1, 2), False)
    """
    fig = plt.figure(figsize=(size * ncols, size * nrows), dpi=STYLE["figure.dpi"],
                     layout="constrained")
    with plt.rc_context(STYLE):
        axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
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


def boundaries(ax, labels: np.ndarray, colour: str, alpha: float = 1.0) -> None:
    """Draw the inner boundaries of a label image (or a boolean mask) in one colour, over
    whatever ``ax`` already shows.

    Examples
    --------
    >>> fig, ax = subplots(1, 1)
    >>> boundaries(ax, np.eye(4, dtype=int), COLOURS["truth"])
    >>> len(ax.images)
    1
    """
    edge = find_boundaries(np.asarray(labels, dtype=np.int64), mode="inner")
    ax.imshow(np.ma.masked_where(~edge, edge), cmap=_single(colour), interpolation="nearest",
              alpha=min(1.0, alpha))


def outlines(ax, image: np.ndarray, labels: np.ndarray, colour: str = COLOURS["pred"],
             title: str = "", extra: np.ndarray | None = None,
             extra_colour: str = COLOURS["truth"]) -> None:
    """``image`` with the outlines of ``labels`` (and optionally a second label image)."""
    show_image(ax, image, title=title)
    for lab, col in ((extra, extra_colour), (labels, colour)):
        if lab is not None:
            edge = find_boundaries(lab, mode="inner")
            ax.imshow(np.ma.masked_where(~edge, edge), cmap=_single(col), vmin=0, vmax=1,
                      interpolation="nearest")


def _single(colour: str) -> ListedColormap:
    return ListedColormap([colour])


def training_traces(history, references: dict[str, float] | None = None,
                    label: str = "unsupervised", axes=None, title: str = ""):
    """Fig. 2 style: loss (left) and per-cell mIOU (right) against patches seen.

    ``references`` draws horizontal lines (e.g. position-only, CellProfiler); ``title``
    (e.g. :func:`cellcutter_nb.progress.training_label`) goes above both panels.
    Returns the figure.

    Examples
    --------
    >>> import pandas as pd
    >>> h = pd.DataFrame({"patches_seen": [40, 60], "loss": [2.0, 1.5], "miou": [0.1, 0.2]})
    >>> fig = training_traces(h, title="60 patches seen")
    >>> fig.axes[0].xaxis.get_major_formatter()(50, 0)  # patches, not 0.05 thousand
    '50'
    >>> fig.get_suptitle()
    '60 patches seen'
    """
    if axes is None:
        fig, axes = subplots(1, 2, size=3.4)
        axes = axes[0]
    fig = axes[0].figure
    x = history["patches_seen"]
    axes[0].plot(x, history["loss"], marker=".", label=label)
    axes[0].set_ylabel("loss (Eq. 1, per patch)")
    if "miou" in history:
        ok = history["miou"].notna()
        axes[1].plot(x[ok], history["miou"][ok], marker=".", label=label)
    for i, (name, value) in enumerate((references or {}).items()):
        axes[1].axhline(value, ls="--", lw=1, color=f"C{i + 1}", label=name)
    axes[1].set_ylabel("per-cell mIOU")
    axes[1].set_ylim(0, 1)
    axes[1].legend(fontsize=7)
    for ax in axes[:2]:
        patches_axis(ax)
    if title:
        fig.suptitle(title, fontsize=8)
    return fig


def patches_axis(ax) -> None:
    """x axis in patches seen: whole numbers, 1k / 10k / 1M above a thousand.

    Examples
    --------
    >>> fig, ax = subplots(1, 1)
    >>> ax.plot([0, 2_000_000], [0, 1]); patches_axis(ax)  # doctest: +ELLIPSIS
    [...]
    >>> ax.xaxis.get_major_formatter()(150_000, 0)
    '150k'
    """
    ax.set_xlabel("patches seen")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))


def patch_gallery(patches: np.ndarray, probs: np.ndarray, targets: np.ndarray | None = None,
                  n: int = 8, channel: int = 0, seed: int = 0):
    """Fig. 3 style: input patches (top) and network outputs (bottom), truth outlined."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(patches), size=min(n, len(patches)), replace=False))
    fig, axes = subplots(2, len(pick), size=1.6)
    for j, i in enumerate(pick):
        show_image(axes[0, j], patches[i, ..., channel])
        axes[1, j].imshow(probs[i], vmin=0, vmax=1, cmap="magma")
        axes[1, j].set_xticks([])
        axes[1, j].set_yticks([])
        if targets is not None:
            edge = find_boundaries(targets[i] > 0.5, mode="inner")
            for ax in axes[:, j]:
                ax.imshow(np.ma.masked_where(~edge, edge), cmap=_single(COLOURS["truth"]),
                          vmin=0, vmax=1)
    axes[0, 0].set_ylabel("input")
    axes[1, 0].set_ylabel("output")
    return fig


def combination_traces(traces, references: dict[str, float] | None = None, title: str = ""):
    """Fig. 2: loss and mIOU against patches seen, one line per input combination.

    ``traces`` is :func:`cellcutter_nb.experiments.paper.training_traces` (columns
    ``combination``, ``patches_seen``, ``loss``, ``miou``); ``title`` goes above both
    panels. Returns the figure.
    """
    fig, axes = subplots(1, 2, size=3.6)
    for i, (name, h) in enumerate(traces.groupby("combination", sort=False)):
        x = h["patches_seen"]
        axes[0, 0].plot(x, h["loss"], color=f"C{i}", label=name)
        if "miou" in h:
            axes[0, 1].plot(x, h["miou"], color=f"C{i}", marker=".", label=name)
    for j, (name, value) in enumerate((references or {}).items()):
        axes[0, 1].axhline(value, ls=("--", ":", "-.")[j % 3], lw=1, color="k", label=name)
    axes[0, 0].set(ylabel="loss (Eq. 1, per patch)")
    axes[0, 1].set(ylabel="per-cell mIOU", ylim=(0, 1))
    axes[0, 1].legend(fontsize=7)
    for ax in axes[0]:
        patches_axis(ax)
    if title:
        fig.suptitle(title, fontsize=8)
    return fig


def ours_vs_paper(summary, paper: dict, title: str = "", ylabel: str = "per-cell mIOU"):
    """Grouped bars, ours (mean ± std over replicates) beside the paper's numbers.

    ``summary`` has columns ``method``, ``combination``, ``mean``, ``std``
    (:func:`cellcutter_nb.experiments.paper.summary`); ``paper`` maps (method, combination) to
    (mean, std). One bar group per combination, one colour per method; the paper's
    values are hatched. Returns the figure.
    """
    combos = list(dict.fromkeys(summary["combination"]))
    methods = list(dict.fromkeys(summary["method"]))
    fig, ax = subplots(1, 1, size=3.2)
    fig.set_size_inches(max(6.0, 1.2 * len(combos) * max(1, len(methods)) / 2), 3.4)
    width = 0.8 / (2 * len(methods))
    for m, method in enumerate(methods):
        rows = summary[summary["method"] == method].set_index("combination")
        for k, (label, values) in enumerate((
                ("ours", [rows["mean"].get(c, np.nan) for c in combos]),
                ("paper", [paper.get((method, c), (np.nan, None))[0] for c in combos]))):
            errs = ([rows["std"].get(c, np.nan) for c in combos] if k == 0 else
                    [paper.get((method, c), (None, np.nan))[1] or 0 for c in combos])
            pos = np.arange(len(combos)) + (2 * m + k - len(methods) + 0.5) * width
            ax.bar(pos, values, width, yerr=errs, color=f"C{m}", alpha=1.0 if k == 0 else 0.45,
                   hatch=None if k == 0 else "//", capsize=2,
                   label=f"{method} ({label})")
    ax.set_xticks(np.arange(len(combos)), combos)
    ax.set(ylabel=ylabel, ylim=(0, 1), title=title)
    ax.legend(fontsize=7, ncols=2, loc="lower center")
    return fig


def partitions(image: np.ndarray, truth: np.ndarray, segmentations: dict[str, np.ndarray],
               table, title: str = ""):
    """Each segmentation's outlines (cyan) over the truth (yellow), and per-cell IoU
    histograms (``table`` has one IoU column per segmentation, named alike).

    The figure is closed, so that the inline backend does not show it a second time:
    display it with :func:`show`. Returns the figure.

    Examples
    --------
    >>> import pandas as pd
    >>> lab = np.eye(4, dtype=int)
    >>> fig = partitions(np.ones((4, 4)), lab, {"a": lab, "b": lab},
    ...                  pd.DataFrame({"a": [1.0], "b": [0.5]}))
    >>> [ax.get_title() for ax in fig.axes[:2]]
    ['a: mIOU 1.000', 'b: mIOU 0.500']
    """
    fig, axes = subplots(1, len(segmentations) + 1, size=3.2)
    for ax, (name, lab) in zip(axes[0], segmentations.items(), strict=False):
        outlines(ax, image, lab, extra=truth, title=f"{name}: mIOU {table[name].mean():.3f}")
    ax = axes[0, -1]
    for i, name in enumerate(segmentations):
        ax.hist(table[name], bins=np.linspace(0, 1, 21), histtype="step", lw=1.5,
                color=f"C{i}", label=name)
    ax.set(xlabel="per-cell IoU vs truth", ylabel="cells", xlim=(0, 1))
    ax.legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=8)
    plt.close(fig)
    return fig


def show(fig) -> None:
    """Display a figure as a static PNG, whatever the matplotlib backend (e.g. in a widget's
    output, or a figure closed so that the inline backend does not show it twice)."""
    from IPython.display import Image, display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    display(Image(data=buf.getvalue(), format="png"))


def composite(nuc: np.ndarray, synthetic: np.ndarray) -> np.ndarray:
    """Fig. 5 (d, i): experimental nucleus image in red, synthetic in green (RGB float).

    Examples
    --------
    >>> composite(np.eye(3), np.ones((3, 3))).shape
    (3, 3, 3)
    """
    def stretch(a: np.ndarray) -> np.ndarray:
        lo, hi = np.percentile(a, [0.5, 99.5])
        return np.clip((a - lo) / (hi - lo if hi > lo else 1.0), 0, 1)

    rgb = np.zeros((*np.shape(nuc), 3))
    rgb[..., 0], rgb[..., 1] = stretch(np.asarray(nuc, float)), stretch(np.asarray(synthetic))
    return rgb
