"""Loader for the paper's A431 images (Mendeley Data 89s3ymz5wn, ``A431.zip``).

The release accompanies the group's LACSS work and cannot be downloaded by this
package: download and unzip it by hand (see ``data/README.md``), then
``cellcutter_nb.data.a431.load_a431(path, split="test", index=0)``. The layout was read
from the group's code (``train.json`` records with ``image_file`` / ``locations``,
``test/img_XXXX.tif`` with ``masks_XXXX.tif``); the loader is tested on a small fake
folder, never on the real archive.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import PIXEL_SIZE_UM
from .field import Field
from .planes import check_index, read_plane
from .tiffio import PathLike, read_image

_A431_LAYOUT = ("Expected the unzipped A431 release (Mendeley Data 89s3ymz5wn, A431.zip):\n"
                "  <root>/train.json  list of {'image_file': name, 'locations': [[row, col], "
                "...]} (optional 'mask_file')\n  <root>/train/<image_file>\n"
                "  <root>/test/img_0001.tif with manual masks <root>/test/masks_0001.tif")
_KEYS = {"image file": ("image_file", "image", "file_name", "filename", "file", "path"),
         "centroid list": ("locations", "centroids", "points", "markers", "coordinates")}


def _a431_root(root: PathLike) -> Path:
    root = Path(root).expanduser()
    ok = [p for p in (root, *(sorted(root.glob("*")) if root.is_dir() else []))
          if (p / "train.json").is_file() or (p / "test").is_dir()]
    if not ok:
        raise ValueError(f"{root} does not look like the A431 data set.\n{_A431_LAYOUT}")
    return ok[0]


def _a431_records(root: Path) -> list[Any]:
    if not (root / "train.json").is_file():
        raise ValueError(f"{root / 'train.json'} is missing.\n{_A431_LAYOUT}")
    data = json.loads((root / "train.json").read_text())
    if isinstance(data, Mapping):  # {"annotations": [...]} or {file name: points}
        lists = [data[k] for k in ("annotations", "images", "data", "records") if k in data]
        data = lists[0] if lists else [{"image_file": k, "locations": v} for k, v in data.items()]
    if not isinstance(data, list) or not all(isinstance(r, Mapping) for r in data):
        raise ValueError(f"Cannot read {root / 'train.json'}.\n{_A431_LAYOUT}")
    return data


def _get(rec: Mapping[str, Any], what: str) -> Any:
    key = next((k for k in _KEYS[what] if k in rec), None)
    if key is None:
        raise ValueError(f"train.json record with keys {sorted(rec)} has no {what} (looked "
                         f"for {_KEYS[what]}).\n{_A431_LAYOUT}")
    return rec[key]


def _points(pts: Any, xy: bool) -> np.ndarray:
    """(row, col) from [[r, c], ...] (or [x, y] if ``xy``) or [{'x':, 'y':}, ...]."""
    if len(pts) and isinstance(pts[0], Mapping):
        key = ("y", "x") if "x" in pts[0] else ("row", "col")
        return np.array([[float(p[key[0]]), float(p[key[1]])] for p in pts]).reshape(-1, 2)
    arr = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    return arr[:, ::-1].copy() if xy else arr


def list_a431(root: PathLike, split: str = "test") -> list[str]:
    """Image file names of one A431 split, in the order ``index`` of :func:`load_a431` uses.

    Examples
    --------
    >>> list_a431("/path/to/A431", "test")[:2]  # doctest: +SKIP
    ['img_0001.tif', 'img_0002.tif']
    """
    root = _a431_root(root)
    if split == "train":
        return [str(_get(r, "image file")) for r in _a431_records(root)]
    if split != "test":
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    files = [p.name for p in (root / "test").glob("img_*.tif*")]
    return sorted(files, key=lambda s: (int(re.sub(r"\D", "", s) or 0), s))


def load_a431(root: PathLike, split: str = "test", index: int = 0, *,
              channels: Sequence[str | None] = ("fl",), xy: bool = False,
              pixel_size: float | None = None) -> Field:
    """Load one image of the paper's A431 release as a :class:`Field`.

    The layout follows the group's LACSS code (``train.json``: list of records with
    ``image_file``, ``locations`` as (row, col), optional ``mask_file``; ``test/img_XXXX.tif``
    with ``masks_XXXX.tif``). Unchecked against the real archive, so ``centroids`` /
    ``points`` keys and ``{"x", "y"}`` points are accepted too; a folder that does not
    match raises a ``ValueError`` describing the expected layout.

    Parameters
    ----------
    root : path
        The unzipped ``A431.zip`` (or the folder holding it).
    split : {"test", "train"}
        ``test``: ``labels`` (renumbered 1..N) and ``mask`` from the manual mask;
        ``train``: ``markers`` from ``train.json`` (``mask`` from ``mask_file`` if listed).
    index : int
        Position in :func:`list_a431` (0-based; test files are numbered from 0001).
    channels : sequence of str or None
        Name of each plane (single plane: ``fl``); e.g. ``("fl", "nuc")`` for a
        (2, H, W) image, ``None`` skips a plane. ``xy=True`` reads centroids as (x, y).
    pixel_size : float, optional
        µm/px; default the paper's 0.8 with ``meta["pixel_size_assumed"] = True``.

    Examples
    --------
    >>> load_a431("/path/to/A431", "test", 0).has_ground_truth  # doctest: +SKIP
    True
    """
    root = _a431_root(root)
    names = list_a431(root, split)
    index = check_index(index, len(names), "index", f"the A431 {split} split ({root})")
    meta: dict[str, Any] = {"source": "A431 (Din & Yu 2021; Mendeley Data 89s3ymz5wn)",
                            "split": split, "index": index, "file": names[index]}
    gt: dict[str, Any] = {}
    if split == "test":
        path = root / "test" / names[index]
        mpath = path.with_name(re.sub(r"^img_", "masks_", path.name))
        if not mpath.is_file():
            raise ValueError(f"Missing manual mask {mpath.name} for {path.name}.\n{_A431_LAYOUT}")
        raw = read_plane(mpath, what=mpath.name)
        vals, inv = np.unique(raw, return_inverse=True)
        lab = inv.reshape(raw.shape) + (vals[0] != 0)
        if len(vals) <= 2:  # a binary mask: cells only separable by connectivity
            from skimage.measure import label
            lab, meta["labels_from_binary_mask"] = label(lab > 0, connectivity=1), True
        gt = {"labels": lab.astype(np.uint32), "mask": lab > 0}
    else:
        rec = _a431_records(root)[index]
        path = next((p for p in (root / "train" / names[index], root / names[index])
                     if p.is_file()), root / "train" / names[index])
        if not path.is_file():
            raise ValueError(f"{names[index]!r} from train.json is not in {root / 'train'}.\n"
                             f"{_A431_LAYOUT}")
        gt["markers"] = _points(_get(rec, "centroid list"), xy)
        if "mask_file" in rec:
            gt["mask"] = read_plane(path.with_name(rec["mask_file"]), what="mask_file") > 0
    if pixel_size is None:
        pixel_size, meta["pixel_size_assumed"] = PIXEL_SIZE_UM, True
    try:
        chans = {n: read_image(path, page=i if len(channels) > 1 else None, name=n)
                 for i, n in enumerate(channels) if n is not None}
    except ValueError as err:
        raise ValueError(f"{err}\nFor load_a431 name each plane instead, e.g. "
                         f"channels=('fl', 'nuc') (None skips a plane).") from err
    return Field(chans, pixel_size, name=f"a431_{split}_{path.stem}", meta=meta, **gt)
