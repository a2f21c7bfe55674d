"""Real images in and out of a :class:`~cellcutter_nb.data.field.Field`.

:func:`load_field` (user TIFFs or arrays, any dtype, to float32), :func:`normalize` /
:func:`normalize_field` (whole-image z-score or percentile stretch), :func:`save_field` /
:func:`load_saved_field` (bit-exact folder of TIFF + CSV + JSON). The bundled example is
:func:`cellcutter_nb.data.examples.load_example`, the paper's A431 release
:func:`cellcutter_nb.data.a431.load_a431`.

Examples
--------
>>> import numpy as np
>>> from cellcutter_nb.data import tiffio
>>> f = tiffio.load_field(fl=np.ones((4, 6), np.uint16), nuc=np.zeros((4, 6)))
>>> f.shape, f.channel_names, f.meta["pixel_size_assumed"]
((4, 6), ('fl', 'nuc'), True)
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ..config import PIXEL_SIZE_UM
from .field import Field, check_image
from .planes import read_plane

PathLike = str | os.PathLike
Source = PathLike | np.ndarray
Select = int | Mapping[str, int] | None
FORMAT_NAME, FORMAT_VERSION, META_FILE = "cellcutter_nb.field", 1, "field.json"
_GT_ARRAYS = ("labels", "nuclei", "mask")


def read_image(source: Source, *, page: int | None = None, channel: int | None = None,
               name: str = "image", style: str = "python",
               where_present: bool = False) -> np.ndarray:
    """Read one channel (TIFF path or array, any numeric dtype) as finite 2-D float32.

    ``page`` picks a plane of a multi-page/stacked file (all Z/C/T planes in file order),
    ``channel`` a colour of an RGB(A) image; ``name`` and the file appear in error messages,
    which spell the options as Python (``page=k``) or, with ``style="cli"``, as the command
    line does (``--page k``). With ``where_present`` an image without pages / colours
    ignores ``page`` / ``channel``.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file that is
    not a readable TIFF, a stack or RGB image without ``page``/``channel``, non-numeric or
    complex data, NaN/inf or values beyond float32.

    Examples
    --------
    >>> import numpy as np
    >>> read_image(np.zeros((4, 5, 3), np.uint8), channel=0).shape
    (4, 5)
    """
    path = Path(source).expanduser() if isinstance(source, (str, os.PathLike)) else None
    if style == "cli":
        what = f"--{name} {path}" if path else f"--{name}"
    else:
        what = repr(name) + (f" ({path.name})" if path else "")
    if np.ma.isMaskedArray(source):  # before read_plane turns it into a plain array
        check_image(source, name)
    return check_image(read_plane(source, page, channel, what, style, where_present), name,
                       str(path) if path else "")


def read_markers(source: PathLike | np.ndarray) -> np.ndarray:
    """Markers (N, 2) of (row, col) from an array or a CSV file.

    The CSV's first line names the columns ``row,col`` or ``x,y`` (other columns, such as
    an index, are ignored; any case; Excel's UTF-8 byte-order mark and ``;`` or tab
    separators are understood). Without a header line the file must have exactly two
    columns, row and col.

    Raises
    ------
    ValueError
        An array that is not (N, 2); a CSV without row,col / x,y columns, with more than
        two columns and no header, or with a value that is not a number (line named).

    Examples
    --------
    >>> read_markers([[1, 2], [3, 4]]).tolist()
    [[1.0, 2.0], [3.0, 4.0]]
    """
    if not isinstance(source, (str, os.PathLike)):
        m = np.asarray(source, dtype=np.float64)
        if m.size == 0:
            return np.zeros((0, 2))
        if m.ndim != 2 or m.shape[1] != 2:
            raise ValueError(f"markers must be an (N, 2) array of (row, col), got shape "
                             f"{m.shape}; e.g. [[12.5, 40.0], [30.0, 8.5]].")
        return m
    name = Path(source).name
    with open(source, newline="", encoding="utf-8-sig") as fh:
        text = fh.read()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    first = lines[0] if lines else ""
    sep = next((d for d in (";", "\t") if d in first and "," not in first), ",")
    rows = [(i + 1, r) for i, r in enumerate(csv.reader(text.splitlines(), delimiter=sep))
            if any(c.strip() for c in r)]
    cols = [0, 1]
    if rows and not re.fullmatch(r"\s*[-+0-9.eE]+\s*", rows[0][1][0]):
        head = [c.strip().lower() for c in rows.pop(0)[1]]
        want = ("y", "x") if "x" in head else ("row", "col")
        if not set(want) <= set(head):
            raise ValueError(f"{name}: header {head} must name row,col or x,y columns.")
        cols = [head.index(k) for k in want]
    elif rows and len(rows[0][1]) != 2:
        raise ValueError(f"{name} has {len(rows[0][1])} columns and no header line, so which "
                         f"are row and col is unknown; add a first line naming them, e.g. "
                         f"index,row,col (or ...,x,y).")
    return np.array([_coords(r, cols, n, name) for n, r in rows],
                    dtype=np.float64).reshape(-1, 2)


def _coords(row: list[str], cols: list[int], line: int, name: str) -> list[float]:
    """The two coordinates of one CSV row; line ``line`` of ``name`` in errors."""
    if len(row) <= max(cols):
        raise ValueError(f"{name} line {line} has {len(row)} value(s); every line needs the "
                         f"row and col of one marker.")
    try:
        return [float(row[cols[0]]), float(row[cols[1]])]
    except ValueError:
        raise ValueError(f"{name} line {line}: {row[cols[0]]!r}, {row[cols[1]]!r} are not "
                         f"numbers.") from None


def _pick(sel: Select, key: str) -> int | None:
    return sel.get(key) if isinstance(sel, Mapping) else sel


def _shared(page: Select, channel: Select) -> bool:
    """One ``page`` / ``channel`` for all images: those without pages / colours ignore it."""
    return not isinstance(page, Mapping) and not isinstance(channel, Mapping)


def load_field(fl: Source | None = None, bf: Source | None = None, nuc: Source | None = None,
               *, pixel_size: float | None = None, markers: Any = None, labels: Any = None,
               name: str | None = None, meta: dict[str, Any] | None = None,
               page: Select = None, channel: Select = None, style: str = "python") -> Field:
    """Build a :class:`Field` from TIFF paths or arrays of any dtype (stored as float32).

    Parameters
    ----------
    fl, bf, nuc : path or array_like, optional
        Whole-cell fluorescence, bright-field, nucleus channels (at least one).
    pixel_size : float, optional
        µm/px; ``None``: the nominal 0.8 with ``meta["pixel_size_assumed"] = True``.
    markers, labels : optional
        (N, 2) (row, col) array or CSV path (:func:`read_markers`); label image or TIFF.
    page, channel : int or dict of str to int, optional
        Plane / colour of stacked or RGB inputs, for all channels (a plain 2-D image
        ignores it) or per channel, e.g. ``page={"fl": 0, "nuc": 1}`` for two planes of
        one file.
    style : {"python", "cli"}
        How error messages spell the options (``page=k`` or ``--page k``).

    ``name`` defaults to the first file's stem; source paths are added to ``meta``.
    Raises ``ValueError`` for stacks/RGB without ``page``/``channel``, mismatched
    shapes and NaN/inf (naming the channel).

    Examples
    --------
    >>> import numpy as np
    >>> f = load_field(fl=np.arange(12, dtype=np.uint16).reshape(3, 4))
    >>> f["fl"].dtype, f.meta["pixel_size_assumed"]
    (dtype('float32'), True)
    """
    given = {k: v for k, v in (("fl", fl), ("bf", bf), ("nuc", nuc)) if v is not None}
    chans = {k: read_image(v, page=_pick(page, k), channel=_pick(channel, k), name=k,
                           style=style, where_present=_shared(page, channel))
             for k, v in given.items()}
    files = {k: str(v) for k, v in given.items() if isinstance(v, (str, os.PathLike))}
    meta = {**(meta or {}), **({"files": files} if files else {})}
    if pixel_size is None:
        pixel_size, meta["pixel_size_assumed"] = PIXEL_SIZE_UM, True
    if name is None:
        name = Path(next(iter(files.values()))).stem if files else ""
    lab = None if labels is None else read_plane(labels, what="labels")
    mk = None if markers is None else read_markers(markers)
    return Field(chans, pixel_size, labels=lab, markers=mk, name=name, meta=meta)


def normalize(image: Any, method: str = "zscore", *, low: float = 1.0, high: float = 99.8,
              clip: bool = False, name: str = "image") -> np.ndarray:
    """Normalise one channel over the whole image to float32.

    ``"zscore"``: ``(x - mean) / std``, as the authors' code does per channel.
    ``"percentile"``: the ``low`` / ``high`` percentiles map to 0 / 1 (``clip`` to [0, 1]).

    Raises ``ValueError`` for an unknown method or a constant image (zero variance).

    Examples
    --------
    >>> import numpy as np
    >>> z = normalize(np.arange(16.).reshape(4, 4))
    >>> round(float(z.mean()), 6), round(float(z.std()), 6)
    (0.0, 1.0)
    """
    x = check_image(image, name).astype(np.float64)
    if method == "zscore":
        mean, std = x.mean(), x.std()
        if not std > 0:
            raise ValueError(f"Cannot normalise {name!r}: the image has zero variance "
                             f"(constant value {mean:g}).")
        return ((x - mean) / std).astype(np.float32)
    if method == "percentile":
        if not 0 <= low < high <= 100:
            raise ValueError(f"Need 0 <= low < high <= 100, got low={low}, high={high}.")
        lo, hi = np.percentile(x, [low, high])
        if not hi > lo:
            raise ValueError(f"Cannot normalise {name!r}: its {low}th and {high}th percentiles "
                             f"are equal ({lo:g}), (nearly) zero variance. Use "
                             f"method='zscore' or a wider percentile range.")
        y = (x - lo) / (hi - lo)
        return (np.clip(y, 0, 1) if clip else y).astype(np.float32)
    raise ValueError(f"Unknown normalisation method {method!r}; use 'zscore' or 'percentile'.")


def normalize_field(field: Field, method: str = "zscore", *,
                    channels: Sequence[str] | None = None, **kwargs: Any) -> Field:
    """Return a new :class:`Field` with (some) channels normalised; ``field`` is unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> f = Field({"fl": np.arange(16.).reshape(4, 4)})
    >>> g = normalize_field(f, "percentile", low=0, high=100)
    >>> float(g["fl"].max()), float(f["fl"].max()), g.meta["normalization"]["method"]
    (1.0, 15.0, 'percentile')
    """
    names = list(field.channel_names if channels is None else channels)
    missing = sorted(set(names) - set(field.channel_names))
    if missing:
        raise ValueError(f"The field has no channel(s) {missing}; it has "
                         f"{list(field.channel_names)}.")
    chans = {k: normalize(v, method, name=k, **kwargs) if k in names else v.copy()
             for k, v in field.channels.items()}
    meta = {**field.meta, "normalization": {"method": method, "channels": names, **kwargs}}
    cp = {a: None if getattr(field, a) is None else getattr(field, a).copy()
          for a in (*_GT_ARRAYS, "markers")}
    return Field(chans, field.pixel_size, name=field.name, meta=meta, **cp)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    raise TypeError(f"meta value of type {type(obj).__name__} is not JSON-serialisable")


def save_field(field: Field, folder: PathLike, *, overwrite: bool = False) -> Path:
    """Save a Field to ``folder``: ``<channel>.tif``, ``labels/nuclei/mask.tif`` when present,
    ``markers.csv`` and ``field.json`` (pixel size, name, meta, format version).

    Everything is written to a temporary sibling folder, ``field.json`` last, which is
    renamed into place when complete: an interrupted save leaves nothing that loads.
    Arrays round-trip bit-exactly; ``meta`` goes through JSON.

    Raises ``FileExistsError`` if ``folder`` is non-empty and ``overwrite`` is False;
    a non-empty folder that is not a saved Field is never replaced.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> f = Field({"fl": np.ones((4, 4))}, markers=[[1, 2]], name="demo")
    >>> out = save_field(f, Path(tempfile.mkdtemp()) / "demo")
    >>> load_saved_field(out).markers.tolist()
    [[1.0, 2.0]]
    """
    target = Path(folder)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        if not (target / META_FILE).is_file():
            raise FileExistsError(f"{target} exists and is not an empty folder or a saved "
                                  f"Field; choose a new or empty folder.")
        if not overwrite:
            raise FileExistsError(f"{target} already holds a saved Field; pass "
                                  f"overwrite=True to replace it.")
    arrays = {**field.channels, **{a: getattr(field, a) for a in _GT_ARRAYS
                                   if getattr(field, a) is not None}}
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "name": field.name,
            "pixel_size": field.pixel_size, "shape": list(field.shape),
            "channels": list(field.channel_names), "arrays": sorted(arrays),
            "markers": field.markers is not None, "meta": field.meta}
    try:
        text = json.dumps(meta, indent=2, default=_json_default)
    except TypeError as err:  # before anything is written
        raise ValueError(f"Cannot save field.meta: {err}.") from err
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old = tmp.with_name(tmp.name + ".old")
    try:
        for key, arr in arrays.items():
            tifffile.imwrite(tmp / f"{key}.tif", arr.astype(np.uint8) if key == "mask" else arr,
                             compression="zlib")
        if field.markers is not None:
            np.savetxt(tmp / "markers.csv", field.markers, fmt="%.17g", delimiter=",",
                       header="row,col", comments="")
        (tmp / META_FILE).write_text(text)
        if target.exists():
            target.rename(old)
        tmp.rename(target)
    except BaseException:
        if old.exists() and not target.exists():
            old.rename(target)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return target


def load_saved_field(folder: PathLike) -> Field:
    """Load a Field written by :func:`save_field`.

    Raises ``ValueError`` without ``field.json`` (not a saved Field, or an interrupted
    save), for an unknown format version or a missing listed file.

    Examples
    --------
    >>> load_saved_field("no/such/folder")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ValueError: no/such/folder is not a saved Field folder ...
    """
    folder = Path(folder)
    if not (folder / META_FILE).is_file():
        raise ValueError(f"{folder} is not a saved Field folder: {META_FILE} is missing. Use "
                         f"save_field() to write one, or load_field() to read plain TIFFs.")
    meta = json.loads((folder / META_FILE).read_text())
    if meta.get("format") != FORMAT_NAME or meta.get("version", 0) > FORMAT_VERSION:
        raise ValueError(f"{folder / META_FILE}: format {meta.get('format')!r} version "
                         f"{meta.get('version')!r} is not readable here (reads "
                         f"{FORMAT_NAME!r} up to version {FORMAT_VERSION}).")
    need = [f"{k}.tif" for k in meta["arrays"]] + ["markers.csv"] * bool(meta["markers"])
    missing = [f for f in need if not (folder / f).is_file()]
    if missing:
        raise ValueError(f"{folder} is incomplete: missing {missing}.")
    arrays = {k: tifffile.imread(folder / f"{k}.tif") for k in meta["arrays"]}
    gt = {k: arrays[k].astype(bool) if k == "mask" else arrays[k]
          for k in _GT_ARRAYS if k in arrays}
    markers = read_markers(folder / "markers.csv") if meta["markers"] else None
    return Field({k: arrays[k] for k in meta["channels"]}, meta["pixel_size"], markers=markers,
                 name=meta["name"], meta=meta["meta"], **gt)
