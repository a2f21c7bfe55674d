"""``python -m cellcutter_nb``: segment your own images, or reproduce the paper.

:func:`main` is the command line: ``reproduce`` reruns the notebooks
(:func:`cellcutter_nb.experiments.reproduce.reproduce`), ``segment`` is described here.

One call reads the images, finds the markers (nuclei on ``--nuc``, or a CSV), makes the
foreground mask (graph cut of ``--fl``, or bright-field scribbles → random forest),
trains the UNet without any annotation (or, with ``--model``, only runs a network
trained before) and writes three files next to ``--out``:

* ``<out>``: the label image, uint32 TIFF (0 = background, label k belongs to marker
  k - 1; napari, Fiji and ``skimage`` read it as is);
* ``<stem>_overlay.png``: cell outlines on the first channel;
* ``<stem>_cells.csv``: one row per cell — area (px, µm²), centroid, marker and mean
  intensity of every channel.

Everything that can be checked is checked before training (files, output folder,
channels, preset and profile, markers, mask, model), and the outputs are written
under temporary names and renamed only when all of them are complete, so a failed
or interrupted run leaves no half-written file. Bad inputs end with one line
``error: ...`` on stderr and exit status 2.

:func:`segment_files` is the same as a Python function (it raises instead of exiting);
the output writers are in :mod:`cellcutter_nb.app.outputs`, the safe model loader is
:func:`cellcutter_nb.core.model.load_model`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..channels import check
from ..config import PRESETS, PROFILES, Preset, Profile, get_preset, get_profile
from ..core.integrate import predict_field
from ..data import tiffio
from ..data.field import Field, check_markers
from ..experiments.reproduce import NotebookFailed, discover, reproduce
from ..prep.mask import pixel_classifier_mask
from .outputs import SegmentOutputs, cell_table, output_paths, temp_name, write_overlay
from .pipeline import find_markers, foreground_mask, segment

__all__ = ["add_segment_parser", "main", "run_segment", "segment_files"]

#: Exit status of ``segment`` for a bad input (argparse uses 2 for bad options too).
EXIT_BAD_INPUT = 2
_LABEL_SUFFIXES = (".tif", ".tiff")


def _channels(spec: str | Sequence[str] | None, field: Field) -> tuple[str, ...]:
    """``"fl,nuc"`` (or a sequence) → checked channel names; default: all given ones."""
    if spec is None:
        names = field.channel_names
    else:
        names = check(spec, field.channel_names,
                      hint=" (--channels fl,nuc; give each image with --fl/--bf/--nuc FILE)")
    for c in field.channel_names:
        if np.ptp(field[c]) == 0:
            raise ValueError(f"Channel {c!r} is constant (all pixels = {field[c].flat[0]:g}):"
                             f" nothing to segment; check the file.")
    return names


def _scribbles(path: str | os.PathLike | None, shape: tuple[int, int]) -> np.ndarray | None:
    if path is None:
        return None
    import tifffile

    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"No such scribbles file: {p}")
    scr = np.squeeze(tifffile.imread(p))
    if scr.shape != shape:
        raise ValueError(f"Scribbles {p.name} have shape {scr.shape}, the images {shape}; "
                         f"paint them on the same image (a napari Labels layer).")
    return scr


def _mask(field: Field, scribbles: np.ndarray | None, preset: Preset,
          use_mask: bool) -> np.ndarray | None:
    """Scribbles → random forest (on bf, else fl); else graph cut of fl; or no mask."""
    if not use_mask:
        return None
    if scribbles is None and "fl" not in field.channels:
        raise ValueError("Without --fl there is no graph-cut mask: give --scribbles (a TIFF "
                         "painted 1 = cell, 2 = background) or train without a mask "
                         "(--no-mask).")
    if scribbles is not None:
        image = field["bf"] if "bf" in field.channels else next(iter(field.channels.values()))
        mask = pixel_classifier_mask(image, scribbles)
    else:
        mask = foreground_mask(field, None, preset)
    if not mask.any():
        raise ValueError("The foreground mask is empty (no cell pixel); check the image or "
                         "the scribbles, or train without a mask (--no-mask).")
    return mask


def _check_model(model: Any, channels: Sequence[str], preset: Preset) -> None:
    _, k, _, c = model.input_shape
    if c != len(channels) + 1:
        raise ValueError(f"The model expects {c - 1} image channel(s) (+ position) but "
                         f"{len(channels)} are used ({','.join(channels)}); pass the "
                         f"--channels it was trained with.")
    if k is not None and k != preset.patch_size:
        raise ValueError(f"The model takes {k}-px patches but preset {preset.name!r} cuts "
                         f"{preset.patch_size}-px ones; use the preset it was trained with.")


def segment_files(*, out: str | os.PathLike, fl: Any = None, bf: Any = None, nuc: Any = None,
                  markers: str | os.PathLike | None = None,
                  scribbles: str | os.PathLike | None = None,
                  channels: str | Sequence[str] | None = None,
                  preset: str | Preset = "paper", profile: str | Profile = "quick",
                  pixel_size: float | None = None, use_mask: bool = True,
                  model: str | os.PathLike | None = None,
                  save_model: str | os.PathLike | None = None, seed: int = 0,
                  max_seconds: float | None = None, overwrite: bool = False,
                  progress: bool = True, log: Callable[[str], None] | None = None,
                  **profile_overrides: int) -> SegmentOutputs:
    """Segment image files and write labels, overlay and per-cell CSV (see module doc).

    Parameters
    ----------
    out : path
        Label TIFF to write; the overlay and table go next to it.
    fl, bf, nuc : path or array, optional
        Image files (TIFF) of the channels; at least one.
    markers : path, optional
        CSV of (row, col) or (x, y) markers; default: nuclei found on ``nuc``.
    scribbles : path, optional
        TIFF of scribbles (1 = cell, 2 = background) for the random-forest mask.
    channels : str or sequence, optional
        Channels the network sees (``"fl,nuc"``); default all given.
    preset, profile : str or object
        See :mod:`cellcutter_nb.config`. ``profile_overrides`` (e.g. ``unet_width=8``,
        ``max_epochs=3``) replace profile fields.
    pixel_size : float, optional
        µm/px (default 0.8, the paper's).
    use_mask : bool
        False trains without the mask (β = 0).
    model : path, optional
        A trained ``.keras`` UNet: no training, inference only.
    save_model : path, optional
        Save the trained UNet here (``.keras``).
    seed : int
        Seeds training.
    max_seconds : float, optional
        Stop training after about this much wall time.
    overwrite : bool
        Replace existing output files.
    progress : bool
        Training progress bar (tqdm, on stderr).
    log : callable, optional
        Called with progress messages (default: nothing).

    Returns
    -------
    SegmentOutputs

    Raises
    ------
    ValueError, FileNotFoundError
        Any bad input, before training starts.
    """
    from ..core.model import load_model  # Keras on demand: not for bad input or --help

    say = log or (lambda msg: None)
    t0 = time.perf_counter()
    # 1. everything that can be checked, before any training
    outs = output_paths(out, save_model, overwrite=overwrite)
    if model is not None and save_model is not None:
        raise ValueError("--model only runs a trained network; drop --save-model (or "
                         "--model to train a new one).")
    preset, prof = _resolved(preset, profile, profile_overrides)
    if fl is None and bf is None and nuc is None:
        raise ValueError("Give at least one image: --fl, --bf and/or --nuc.")
    field = tiffio.load_field(fl, bf, nuc, pixel_size=pixel_size)
    used = _channels(channels, field)
    net = None
    if model is not None:
        net = load_model(model)
        _check_model(net, used, preset)
    scr = _scribbles(scribbles, field.shape)
    mk = _markers(markers, field)
    say(f"{field.shape[0]}x{field.shape[1]} px, channels {','.join(used)}, "
        f"{len(mk)} markers")
    # 2. mask, training or loading, inference
    stopped = "loaded"
    if net is None:
        mask = _mask(field, scr, preset, use_mask)
        if mask is not None:
            say(f"mask covers {mask.mean():.0%} of the image")
        labels, net, history = segment(
            field, used, preset, prof, markers=mk, mask=mask, seed=seed, progress=progress,
            max_seconds=max_seconds)
        stopped = str(history.attrs.get("stopped", ""))
        say(f"trained {len(history)} epoch(s) in {history.attrs.get('seconds', 0):.1f} s "
            f"(stopped: {stopped})")
    else:
        labels = predict_field(net, field, used, preset, markers=mk)
    # 3. write under temporary names, then rename all
    n_cells = _write(outs, np.asarray(labels, np.uint32), field, used[0], mk, net)
    return SegmentOutputs(outs.labels, outs.overlay, outs.cells, outs.model, len(mk),
                          n_cells, time.perf_counter() - t0, stopped)


def _resolved(preset: str | Preset, profile: str | Profile,
              overrides: dict[str, int | None]) -> tuple[Preset, Profile]:
    """The preset and the profile with the command line's overrides, checked together."""
    preset, prof = get_preset(preset), get_profile(profile)
    changes = {k: int(v) for k, v in overrides.items() if v is not None}
    allowed = set(Profile.__dataclass_fields__) - {"name"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ValueError(f"Unknown profile field(s) {unknown}; choose from {sorted(allowed)}.")
    prof = prof.replace(**changes)
    if preset.patch_size % 2 ** prof.unet_depth:
        raise ValueError(f"UNet depth {prof.unet_depth} needs patches whose side is a "
                         f"multiple of {2 ** prof.unet_depth}; the preset cuts "
                         f"{preset.patch_size} px. Use a smaller --depth.")
    return preset, prof


def _markers(path: str | os.PathLike | None, field: Field) -> np.ndarray:
    """Markers from a CSV (checked against the field), else nuclei found on ``nuc``."""
    if path is None:
        mk = find_markers(field)
    else:
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"No such markers file: {path}")
        try:
            mk = tiffio.read_markers(path)
        except (ValueError, IndexError) as err:
            raise ValueError(f"Cannot read markers from {path.name}: {err}. Expected a CSV "
                             f"with columns row,col (or x,y), one marker per line.") from err
        mk = check_markers(mk, field.shape)
    if len(mk) == 0:
        raise ValueError("No markers: the markers file is empty; give one (row, col) per "
                         "cell, or drop --markers to find nuclei on --nuc.")
    return mk


def _write(outs: SegmentOutputs, labels: np.ndarray, field: Field, channel: str,
           markers: np.ndarray, net: Any) -> int:
    """Write labels, overlay, table (and the model) under temporary names, then rename them
    all; nothing is left behind on error. Returns the number of cells."""
    import tifffile

    table = cell_table(labels, field, markers)
    finals = [outs.labels, outs.overlay, outs.cells] + ([outs.model] if outs.model else [])
    temps: list[Path] = []
    try:
        for final in finals:
            temps.append(temp_name(final))
        tifffile.imwrite(temps[0], labels, compression="zlib")
        write_overlay(temps[1], field[channel], labels,
                      f"{len(table)} cells, outlines on {channel}")
        table.to_csv(temps[2], index=False, float_format="%.6g")
        if outs.model:
            net.save(temps[3])
        for tmp, final in zip(temps, finals, strict=True):
            os.replace(tmp, final)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    return len(table)


def add_segment_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``segment`` subcommand to ``python -m cellcutter_nb``'s parser."""
    p = subparsers.add_parser(
        "segment", help="segment your own images (no annotation needed)",
        description="Segment cells in your images without manual annotation (Din & Yu "
                    "2021): markers from the nucleus image, mask by graph cut, UNet trained "
                    "on the image itself. Writes OUT (uint32 label TIFF), "
                    "<stem>_overlay.png and <stem>_cells.csv.")
    p.add_argument("--fl", metavar="TIFF", help="whole-cell fluorescence image")
    p.add_argument("--bf", metavar="TIFF", help="bright-field image")
    p.add_argument("--nuc", metavar="TIFF", help="nucleus (DAPI/Hoechst) image")
    p.add_argument("--markers", metavar="CSV",
                   help="markers, columns row,col or x,y (default: nuclei found on --nuc)")
    p.add_argument("--scribbles", metavar="TIFF",
                   help="scribbles 1 = cell, 2 = background: random-forest mask (bright-field)")
    p.add_argument("--no-mask", action="store_true", help="train without the mask (beta = 0)")
    p.add_argument("--channels", metavar="LIST",
                   help="channels the network sees, e.g. fl,nuc (default: all given)")
    p.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    p.add_argument("--profile", default="quick", choices=sorted(PROFILES))
    p.add_argument("--width", type=int, help="override the profile's UNet width")
    p.add_argument("--depth", type=int, help="override the profile's UNet depth")
    p.add_argument("--epochs", type=int, help="override the profile's maximum epochs")
    p.add_argument("--steps", type=int, help="override the profile's steps per epoch")
    p.add_argument("--max-seconds", type=float, metavar="S", help="stop training after ~S s")
    p.add_argument("--pixel-size", type=float, metavar="UM", help="µm per pixel (default 0.8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", metavar="KERAS", help="trained UNet (.keras): inference only")
    p.add_argument("--save-model", metavar="KERAS", help="save the trained UNet (.keras)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    p.add_argument("--out", required=True, metavar="TIFF", help="label image to write")
    return p


def run_segment(args: argparse.Namespace) -> int:
    """Run ``segment`` from parsed arguments; returns the exit status (2 for bad input)."""
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, flush=True)

    try:
        res = segment_files(
            out=args.out, fl=args.fl, bf=args.bf, nuc=args.nuc, markers=args.markers,
            scribbles=args.scribbles, channels=args.channels, preset=args.preset,
            profile=args.profile, pixel_size=args.pixel_size, use_mask=not args.no_mask,
            model=args.model, save_model=args.save_model, seed=args.seed,
            max_seconds=args.max_seconds, overwrite=args.overwrite,
            progress=not args.quiet, log=log, unet_width=args.width,
            unet_depth=args.depth, max_epochs=args.epochs, steps_per_epoch=args.steps)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as err:  # unreadable input, disk full...: no output was left behind
        print(f"error: {err}", file=sys.stderr)
        return 1
    wrote = [res.labels, res.overlay, res.cells] + ([res.model] if res.model else [])
    if res.n_cells < 0.5 * res.n_markers:
        print(f"warning: only {res.n_cells} of {res.n_markers} markers got a cell; the "
              f"network is probably undertrained (stopped: {res.stopped}). Train longer "
              f"(--max-seconds, --epochs, --profile full) or check the mask and markers "
              f"in the overlay.", file=sys.stderr)
    print(f"{res.n_cells} cells from {res.n_markers} markers; wrote "
          + ", ".join(str(p) for p in wrote))
    print(f"wall time {time.perf_counter() - t0:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point of ``python -m cellcutter_nb`` (``reproduce``, ``segment``).

    Examples
    --------
    >>> main(["reproduce", "--list"])  # doctest: +ELLIPSIS
    01_data
    ...
    0
    """
    parser = argparse.ArgumentParser(prog="python -m cellcutter_nb",
                                     description="Reproduce Din & Yu (2021) with notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="run the notebooks with papermill")
    rep.add_argument("--profile", default="quick", choices=("smoke", "quick", "full"))
    rep.add_argument("--only", nargs="+", help="notebook numbers or names, e.g. 01 05")
    rep.add_argument("--seed", type=int, default=0)
    rep.add_argument("--list", action="store_true", help="list the notebooks and exit")
    rep.add_argument("--force", action="store_true",
                     help="rerun notebooks even when their inputs are unchanged")
    add_segment_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "segment":
        return run_segment(args)
    if args.list:
        for nb in discover():
            print(nb.stem)
        return 0
    try:
        report = reproduce(args.profile, args.only, args.seed, force=args.force)
    except (NotebookFailed, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"report: {report}")
    return 0
