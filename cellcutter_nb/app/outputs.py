"""What ``segment`` writes: label TIFF, outline overlay PNG, per-cell table.

:func:`output_paths` checks and names the files before any work; :func:`cell_table`,
:func:`write_overlay` and :func:`temp_name` are what
:func:`cellcutter_nb.app.cli.segment_files` writes them with (the safe model loader is
:func:`cellcutter_nb.core.model.load_model`).

Examples
--------
>>> import numpy as np
>>> from cellcutter_nb.data.field import Field
>>> f = Field({"fl": np.arange(16.0).reshape(4, 4)})
>>> lab = np.array([[1, 1, 0, 0]] * 2 + [[0, 0, 2, 2]] * 2)
>>> cell_table(lab, f)["area_px"].tolist()
[4, 4]
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..data.field import Field
from .figures import STYLE, outlines

_LABEL_SUFFIXES = (".tif", ".tiff")


# --- outputs ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SegmentOutputs:
    """The files ``segment`` writes (and how the run went)."""

    labels: Path
    overlay: Path
    cells: Path
    model: Path | None = None
    n_markers: int = 0
    n_cells: int = 0
    seconds: float = float("nan")
    stopped: str = ""


def output_paths(out: str | os.PathLike, save_model: str | os.PathLike | None = None, *,
                 overwrite: bool = False) -> SegmentOutputs:
    """Validate ``--out`` (and ``--save-model``) and name the files, before any work.

    Raises
    ------
    ValueError
        Folder missing or not writable, wrong suffix, or a file already there and
        ``overwrite`` is False.
    """
    labels = Path(out).expanduser()
    if labels.suffix.lower() not in _LABEL_SUFFIXES:
        raise ValueError(f"--out {out} must end in .tif or .tiff (the label image).")
    stem = labels.with_suffix("")
    paths = [labels, stem.with_name(stem.name + "_overlay.png"),
             stem.with_name(stem.name + "_cells.csv")]
    model = None
    if save_model is not None:
        model = Path(save_model).expanduser()
        if model.suffix != ".keras":
            raise ValueError(f"--save-model {save_model} must end in .keras.")
        paths.append(model)
    for p in paths:
        folder = p.parent
        if not folder.is_dir():
            raise ValueError(f"Output folder {folder} does not exist; create it first "
                             f"(mkdir -p {folder}) or choose another path for {p.name}.")
        if not os.access(folder, os.W_OK):
            raise ValueError(f"Output folder {folder} is not writable.")
        if p.exists() and (p.is_dir() or not overwrite):
            raise ValueError(f"{p} already exists; choose another --out / --save-model or "
                             f"pass --overwrite.")
    return SegmentOutputs(paths[0], paths[1], paths[2], model)


def cell_table(labels: np.ndarray, field: Field, markers: np.ndarray | None = None) -> pd.DataFrame:
    """One row per label present: area, centroid, marker and mean intensity per channel.

    Parameters
    ----------
    labels : ndarray (H, W) of int
        0 = background; label k belongs to marker k - 1.
    field : Field
        Its channels give the mean intensities (raw units), its pixel size the µm².
    markers : ndarray (N, 2), optional
        Adds ``marker_row`` / ``marker_col`` of each cell's marker.

    Returns
    -------
    pandas.DataFrame
        Columns ``label, area_px, area_um2, centroid_row, centroid_col[, marker_row,
        marker_col], mean_<channel>...``, sorted by label.

    Examples
    --------
    >>> lab = np.zeros((4, 4), np.uint32); lab[:2, :2] = 2
    >>> f = Field({"fl": np.arange(16.0).reshape(4, 4)}, pixel_size=0.5)
    >>> cell_table(lab, f).iloc[0].tolist()
    [2.0, 4.0, 1.0, 0.5, 0.5, 2.5]
    """
    lab = np.asarray(labels).ravel().astype(np.int64)
    count = np.bincount(lab)
    present = np.flatnonzero(count)
    present = present[present > 0]
    area = count[present]
    rows, cols = np.indices(field.shape).reshape(2, -1)
    table = {"label": present, "area_px": area,
             "area_um2": area * field.pixel_size ** 2,
             "centroid_row": np.bincount(lab, weights=rows)[present] / area,
             "centroid_col": np.bincount(lab, weights=cols)[present] / area}
    if markers is not None and len(markers) >= present.max(initial=0):
        table["marker_row"] = markers[present - 1, 0]
        table["marker_col"] = markers[present - 1, 1]
    for name, image in field.channels.items():
        sums = np.bincount(lab, weights=image.ravel().astype(np.float64))
        table[f"mean_{name}"] = sums[present] / area
    return pd.DataFrame(table)


def write_overlay(path: Path, image: np.ndarray, labels: np.ndarray, title: str) -> None:
    """Outlines of ``labels`` on ``image`` as a PNG of about the image's own pixel size.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "overlay.png"
    >>> write_overlay(path, np.zeros((8, 8)), np.eye(8, dtype=int), "1 cell")
    >>> path.read_bytes()[:4]
    b'\\x89PNG'
    """
    h, w = image.shape
    dpi = 100 * max(1, int(np.ceil(600 / max(h, w))))  # small images are enlarged
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(w / 100, h / 100), dpi=dpi)
        ax = fig.add_axes((0, 0, 1, 1))
        outlines(ax, image, labels)
        ax.set_axis_off()
        ax.text(0.01, 0.99, title, transform=ax.transAxes, color="w", fontsize=7,
                va="top", ha="left")
        fig.savefig(path, dpi=dpi, format="png")


def temp_name(final: Path) -> Path:
    """A hidden name next to ``final``, same suffix (Keras insists on .keras); the writers
    create the file, so it gets the usual permissions (``mkstemp`` would give 0600).

    Examples
    --------
    >>> name = temp_name(Path("out/labels.tif"))
    >>> name.parent.as_posix(), name.name.startswith(".labels."), name.suffix
    ('out', True, '.tif')
    """
    return final.with_name(f".{final.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}"
                           f".part{final.suffix}")
