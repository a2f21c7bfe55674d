"""One 2-D plane out of a TIFF file or an array, with errors that name the file and channel.

:func:`read_plane` reads a TIFF path (or takes an array) and picks one plane of a
multi-page stack (``page``) or one colour of an RGB image (``channel``). A file that is
not a TIFF (PNG, JPEG, text, empty) or a truncated one ends in a ``ValueError`` that names
it and says what is expected. Messages speak Python (``page=k``) or, with
``style="cli"``, the command line (``--page k``). :mod:`cellcutter_nb.data.tiffio` builds
fields from these planes.

Examples
--------
>>> import numpy as np
>>> from cellcutter_nb.data.planes import read_plane
>>> read_plane(np.zeros((6, 5, 2)), channel=1).shape
(6, 5)
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

__all__ = ["check_index", "file_kind", "read_plane"]

Source = str | os.PathLike | np.ndarray
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_OTHER_FORMATS = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image",
                  b"GIF8": "a GIF image", b"BM": "a BMP image", b"%PDF": "a PDF document",
                  b"PK\x03\x04": "a ZIP archive", b"\x89HDF": "an HDF5 file",
                  b"\x93NUMPY": "a NumPy .npy file"}
_READ_ERRORS = (tifffile.TiffFileError, ValueError, EOFError, struct.error, IndexError,
                KeyError, TypeError)


def _option(param: str, value: Any, style: str) -> str:
    return f"--{param} {value}" if style == "cli" else f"{param}={value}"


def check_index(i: int, n: int, param: str, what: str, style: str = "python") -> int:
    """``i`` if it indexes ``n`` items (negative from the end), else a ``ValueError``
    naming the parameter ``param`` and ``what`` it indexes.

    Examples
    --------
    >>> check_index(-1, 3, "page", "stack.tif")
    -1
    >>> check_index(7, 5, "page", "--fl x.tif", style="cli")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --page 7 is out of range for --fl x.tif: it has 5 (0..4).
    """
    if not -n <= i < n:
        raise ValueError(f"{_option(param, i, style)} is out of range for {what}: it has {n} "
                         f"(0..{n - 1}).")
    return i


def file_kind(path: Path) -> str | None:
    """``None`` for a TIFF file, else what the file is (from its first bytes).

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x.tif"
    >>> _ = p.write_bytes(b"\\x89PNG\\r\\n")
    >>> file_kind(p)
    'a PNG image'
    """
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head[:4] in _TIFF_MAGIC:
        return None
    if not head:
        return "empty (0 bytes)"
    for magic, kind in _OTHER_FORMATS.items():
        if head.startswith(magic):
            return kind
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return f"not a TIFF (it starts with {head[:4]!r})"


def _select_plane(arr: np.ndarray, colour: bool, page: int | None, channel: int | None,
                  what: str, style: str, where_present: bool = False) -> np.ndarray:
    """One 2-D plane of ``(planes..., Y, X[, colour])``: ``page`` indexes the flattened
    leading axes (TIFF pages, ImageJ Z/C/T planes), ``channel`` the colour axis
    (``where_present``: ignored by an image without pages / colours)."""
    shape0, n_col = arr.shape, arr.shape[-1] if colour else 0
    planes = arr.reshape(-1, *arr.shape[arr.ndim - (3 if colour else 2):])
    if where_present:
        page = None if len(planes) == 1 else page
        channel = channel if colour else None
    if channel is not None:
        if not colour:
            raise ValueError(f"{what} has no colour axis (shape {shape0}); drop "
                             f"{_option('channel', channel, style)} (use "
                             f"{_option('page', 'k', style)} to pick a plane of a stack).")
        planes = planes[..., check_index(channel, n_col, "channel", what, style)]
        n_col = 0
    if page is not None:
        planes = planes[[check_index(page, len(planes), "page", what, style)]]
    multi = [m for m in ((f"a multi-page stack of {len(planes)} planes", "page", len(planes),
                          "a plane"),
                         (f"RGB/multi-colour with {n_col} colours", "channel", n_col,
                          "a colour")) if m[2] > 1]
    if multi:
        pick = " and ".join(f"{_option(p, 'k', style)} (k = 0..{n - 1}) to pick {w}"
                            for _, p, n, w in multi)
        if style == "cli":
            how = (f"; --{multi[0][1]} fl=k,nuc=j picks per image, e.g. two planes of one "
                   f"file.")
        else:
            how = (", e.g. load_field(fl=path, " + ", ".join(f"{m[1]}=0" for m in multi)
                   + f"); a dict such as {multi[0][1]}={{'fl': 0, 'nuc': 1}} selects per "
                   f"channel.")
        raise ValueError(f"{what} is {' and '.join(m[0] for m in multi)} (shape {shape0}), "
                         f"not one 2-D plane. Pass {pick}{how}")
    return planes[0].reshape(planes.shape[1:3])


def _array_plane(arr: np.ndarray, page: int | None, channel: int | None, what: str,
                 style: str, where_present: bool) -> np.ndarray:
    """An in-memory array: a singleton axis is dropped; ``(H, W, C)`` with C = 3 or 4 (or 2
    when H > 4) is read as colours, other 3-D arrays as stacks of pages."""
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]) and page is None \
            and channel is None:
        arr = arr.reshape(arr.shape[1:] if arr.shape[0] == 1 else arr.shape[:2])
    colour = arr.ndim == 3 and (arr.shape[-1] in (3, 4)
                                or (arr.shape[-1] == 2 and arr.shape[0] > 4))
    if arr.ndim < 2 or arr.size == 0:  # check_image reports these
        return arr
    return _select_plane(arr, colour, page, channel, what, style, where_present)


def _tiff_arrays(path: Path) -> list[tuple[np.ndarray, str]]:
    """The pixels of a TIFF file with their axes: one array when all its series share a
    shape (several series are stacked as pages), else one per page."""
    with tifffile.TiffFile(path) as tif:
        series = tif.series
        if len(series) > 1 and len({(s.shape, s.axes) for s in series}) == 1:
            return [(np.stack([s.asarray() for s in series]), "I" + series[0].axes)]
        if len(series) > 1:
            return [(pg.asarray(), pg.axes) for pg in tif.pages]
        return [(series[0].asarray(), series[0].axes)]


def read_plane(source: Source, page: int | None = None, channel: int | None = None,
               what: str = "image", style: str = "python",
               where_present: bool = False) -> np.ndarray:
    """Read a TIFF path or an array and select one 2-D plane, keeping the dtype (label
    images stay integers); ``what`` names the image in error messages, ``style``
    (``"python"`` or ``"cli"``) how the options are spelled there. With
    ``where_present``, ``page`` / ``channel`` are ignored by an image that has no pages /
    colours (one ``page`` for several images, some of them plain 2-D).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a TIFF (what it is instead), truncated or corrupt, a stack or RGB image without
        ``page`` / ``channel``, or an index out of range.

    Examples
    --------
    >>> read_plane(np.arange(12, dtype=np.uint16).reshape(3, 2, 2), page=1).tolist()
    [[4, 5], [6, 7]]
    """
    if not isinstance(source, (str, os.PathLike)):
        return _array_plane(np.asarray(source), page, channel, what, style, where_present)
    path = Path(source).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"No such image file for {what}: {path}")
    kind = file_kind(path)
    if kind is not None:
        raise ValueError(f"Cannot read {what}: the file is {kind}, not a TIFF. Save the image"
                         f" as TIFF (Fiji: File > Save As > Tiff; Python: tifffile.imwrite) "
                         f"and give that file.")
    try:
        arrays = _tiff_arrays(path)
    except _READ_ERRORS as err:
        raise ValueError(f"Cannot read {what}: the TIFF is truncated or corrupt "
                         f"({type(err).__name__}: {err}); copy the file again or re-save "
                         f"it.") from None
    arr, axes = arrays[0]
    if len(arrays) > 1:  # pages of different shapes: page= picks the page itself
        if page is None:
            raise ValueError(f"{what} holds {len(arrays)} images of different shapes; pick "
                             f"one with {_option('page', 'k', style)} (k = 0.."
                             f"{len(arrays) - 1}).")
        arr, axes = arrays[check_index(page, len(arrays), "page", what, style)]
        page = None
    if "S" in axes:  # colour samples last
        arr = np.moveaxis(arr, axes.index("S"), -1)
    return _select_plane(arr, "S" in axes, page, channel, what, style, where_present)
