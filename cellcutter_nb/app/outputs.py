"""What ``segment`` writes: label TIFF, outline overlay PNG, per-cell table.

:func:`output_paths` checks and names the files before any work (never an input, a folder
one can write to, no existing file without ``overwrite``); :func:`cell_table`,
:func:`write_overlay` and :func:`temp_name` are what
:func:`cellcutter_nb.app.cli.segment_files` writes them with, and :func:`commit` moves the
complete files into place, all or none (:func:`remove_stale_temps` clears what a killed run
left). The safe model loader is :func:`cellcutter_nb.core.model.load_model`.

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

import glob
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..config import Preset
from ..data.field import Field
from ..progress import training_label, under_trained
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
    n_one_piece: int = 0
    patches_seen: int | None = None  # None: a model trained before (--model)
    start_patches: int = 0  # patches the starting model saw before (--start pretrained)

    def summary(self, preset: str | Preset) -> str:
        """What the run made, without success wording for a fragmented or under-trained
        result: labels, how many are one connected piece, patches seen (``preset``
        decides *under-trained*, :func:`~cellcutter_nb.progress.training_label`).

        Examples
        --------
        >>> res = SegmentOutputs(Path("l.tif"), Path("o.png"), Path("c.csv"), n_markers=313,
        ...                      n_cells=313, n_one_piece=41, patches_seen=1454)
        >>> print(res.summary("paper"))  # doctest: +NORMALIZE_WHITESPACE
        313 labels for 313 markers, 41 of them one connected piece; under-trained:
        1,454 patches seen (< 100,000); train longer (--max-seconds, a GPU) before trusting them
        >>> from dataclasses import replace
        >>> print(replace(res, start_patches=60_000).summary("fast"))
        ... # doctest: +NORMALIZE_WHITESPACE
        313 labels for 313 markers, 41 of them one connected piece; 61,454 patches seen
        (60,000 by the starting model)
        """
        text = (f"{self.n_cells} labels for {self.n_markers} markers, {self.n_one_piece} of "
                f"them one connected piece; ")
        if self.patches_seen is None:
            return text + "model trained before (--model)"
        seen = self.patches_seen + self.start_patches
        text += training_label(seen, preset)
        if self.start_patches:
            text += f" ({self.start_patches:,} by the starting model)"
        if under_trained(seen, preset):
            text += "; train longer (--max-seconds, a GPU) before trusting them"
        return text


def output_paths(out: str | os.PathLike, save_model: str | os.PathLike | None = None, *,
                 overwrite: bool = False,
                 inputs: Mapping[str, str | os.PathLike | None] | None = None) -> SegmentOutputs:
    """Validate ``--out`` (and ``--save-model``) and name the files, before any work.

    Parameters
    ----------
    out, save_model : path
        The label TIFF (its overlay and cell table go next to it) and the model file.
    overwrite : bool
        Replace existing outputs (never an input).
    inputs : dict of option to path, optional
        The files the run reads (``{"--fl": "fl.tif", ...}``): no output may be one of them.

    Raises
    ------
    ValueError
        Wrong suffix, folder missing or not writable (tried by creating a file there), an
        output that is one of the ``inputs``, or a file already there and ``overwrite``
        is False.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> output_paths(folder / "fl.tif", inputs={"--fl": folder / "fl.tif"})
    Traceback (most recent call last):
    ...
    ValueError: --out would overwrite the input --fl fl.tif; choose another --out.
    """
    labels = Path(out).expanduser()
    if labels.suffix.lower() not in _LABEL_SUFFIXES:
        raise ValueError(f"--out {out} must end in .tif or .tiff (the label image).")
    stem = labels.with_suffix("")
    named = {"--out": labels, "--out's overlay": stem.with_name(stem.name + "_overlay.png"),
             "--out's cell table": stem.with_name(stem.name + "_cells.csv")}
    if save_model is not None:
        named["--save-model"] = Path(save_model).expanduser()
        if named["--save-model"].suffix != ".keras":
            raise ValueError(f"--save-model {save_model} must end in .keras.")
    _check_not_inputs(named, inputs or {})
    for p in named.values():
        _check_writable(p.parent, p)
        if p.exists() and (p.is_dir() or not overwrite):
            raise ValueError(f"{p} already exists; choose another --out / --save-model or "
                             f"pass --overwrite.")
    paths = list(named.values())
    return SegmentOutputs(paths[0], paths[1], paths[2], paths[3] if save_model else None)


def _check_not_inputs(outputs: Mapping[str, Path],
                      inputs: Mapping[str, str | os.PathLike | None]) -> None:
    """Refuse an output that is (or links to) one of the inputs, even with --overwrite."""
    for option, given in inputs.items():
        if given is None:
            continue
        src = Path(given).expanduser()
        for what, p in outputs.items():
            if p.resolve() == src.resolve() or (p.exists() and src.exists()
                                                and os.path.samefile(p, src)):
                first = what.split("'")[0]
                raise ValueError(f"{what} would overwrite the input {option} {src.name}; "
                                 f"choose another {first}.")


def _check_writable(folder: Path, path: Path) -> None:
    """Create and remove a file in ``folder``: the only sure test that outputs can go there."""
    if not folder.is_dir():
        raise ValueError(f"Output folder {folder} does not exist; create it first "
                         f"(mkdir -p {folder}) or choose another path for {path.name}.")
    probe = temp_name(path)
    try:
        with open(probe, "xb"):
            pass
        probe.unlink()
    except OSError as err:
        raise ValueError(f"Cannot write {path} ({err.strerror or err}); choose a folder you "
                         f"can write to.") from None


def remove_stale_temps(paths: Sequence[Path]) -> list[Path]:
    """Remove the temporary files (:func:`temp_name`) of ``paths`` left by processes that no
    longer run (killed while writing); those of a running process are kept.

    Examples
    --------
    >>> import tempfile
    >>> final = Path(tempfile.mkdtemp()) / "labels.tif"
    >>> mine = temp_name(final); _ = mine.write_bytes(b"x")
    >>> remove_stale_temps([final]), mine.exists()
    ([], True)
    """
    removed = []
    for final in paths:
        pattern = re.compile(rf"\.{re.escape(final.stem)}\.(\d+)-[0-9a-f]{{8}}\.part"
                             rf"{re.escape(final.suffix)}")
        for p in final.parent.glob(f".{glob.escape(final.stem)}.*.part{final.suffix}"):
            match = pattern.fullmatch(p.name)
            if match and not _running(int(match.group(1))):
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def _running(pid: int) -> bool:
    """Whether a process ``pid`` exists (one we may not signal counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def commit(temps: Sequence[Path], finals: Sequence[Path], overwrite: bool) -> None:
    """Move complete temporary files to their final names, all or none.

    Without ``overwrite`` each final name is created exclusively (a hard link, so a file
    that appeared meanwhile — a second run to the same ``--out`` — is never replaced); on a
    conflict the files this call placed are removed again and ``FileExistsError`` names it.

    Examples
    --------
    >>> import tempfile
    >>> final = Path(tempfile.mkdtemp()) / "labels.tif"
    >>> tmp = temp_name(final); _ = tmp.write_text("mine")
    >>> _ = final.write_text("another run's")
    >>> commit([tmp], [final], overwrite=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileExistsError: .../labels.tif appeared while this run worked (another run to the same ...
    >>> final.read_text()
    "another run's"
    """
    if overwrite:
        for tmp, final in zip(temps, finals, strict=True):
            os.replace(tmp, final)
        return
    placed: list[Path] = []
    for tmp, final in zip(temps, finals, strict=True):
        try:
            _link_exclusive(tmp, final)
        except FileExistsError:
            for p in placed:
                p.unlink(missing_ok=True)
            raise FileExistsError(f"{final} appeared while this run worked (another run to "
                                  f"the same --out?); it was left as it is and nothing was "
                                  f"written. Choose another --out or pass --overwrite.") from None
        placed.append(final)


def _link_exclusive(tmp: Path, final: Path) -> None:
    """``final`` made from ``tmp`` only if it does not exist yet."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (FAT, some network drives): reserve, then replace
        fd = os.open(final, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.close(fd)
        os.replace(tmp, final)
        return
    tmp.unlink()


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
