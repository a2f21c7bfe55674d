"""``python -m cellcutter_nb``: segment your own images, or reproduce the paper.

:func:`main` is the command line: ``reproduce`` reruns the notebooks
(:func:`cellcutter_nb.experiments.reproduce.reproduce`), ``grid`` trains their Table 1
models on a Dask cluster beforehand (:mod:`cellcutter_nb.app.cli_grid`), ``segment`` is
described here.

One call reads the images, finds the markers (nuclei on ``--nuc``, or a CSV), makes the
foreground mask (graph cut of ``--fl``, or bright-field scribbles → random forest),
trains the UNet without any annotation (or, with ``--model``, only runs a network
trained before) and writes three files next to ``--out``:

* ``<out>``: the label image, uint32 TIFF (0 = background, label k belongs to marker
  k - 1; napari, Fiji and ``skimage`` read it as is);
* ``<stem>_overlay.png``: cell outlines on the first channel;
* ``<stem>_cells.csv``: one row per cell — area (px, µm²), centroid, marker and mean
  intensity of every channel.

Everything that can be checked is checked before training (files, output folder —
written to once —, that no output is an input, channels, preset and profile, numbers,
markers, mask, model), and the outputs are written under temporary names and moved into
place only when all of them are complete (without ``--overwrite`` never over a file
that appeared meanwhile), so a failed or interrupted run leaves no half-written file.
Bad inputs end with one line ``error: ...`` on stderr and exit status 2; implausible
ones (a pixel size that does not fit the nuclei, a mask of < 1 %, ...) with a
``warning: ...`` line. Ctrl-C or SIGTERM during training stops it after the current
step and writes what the time cap would (exit status 130 / 143); at any other time
nothing is written and one line says so. ``--checkpoint DIR`` lets a rerun resume.

:func:`segment_files` (:mod:`cellcutter_nb.app.files`) is the same as a Python
function (it raises instead of exiting); the checks before training are in
:mod:`cellcutter_nb.app.cli_checks`, the output writers in
:mod:`cellcutter_nb.app.outputs`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import warnings
from typing import Any

from ..config import PRESETS, PROFILES
from ..data.checks import InputWarning, PixelSizeWarning
from ..experiments.reproduce import NotebookFailed, discover, reproduce
from .cli_checks import selector
from .cli_grid import add_grid_parser, run_grid
from .files import segment_files
from .interrupt import Interrupted, SignalStop, exit_status
from .outputs import SegmentOutputs
from .pipeline import START_CHOICES

__all__ = ["add_segment_parser", "main", "run_segment", "segment_files"]

#: Exit status of ``segment`` for a bad input (argparse uses 2 for bad options too).
EXIT_BAD_INPUT = 2


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
    p.add_argument("--page", metavar="K",
                   help="plane K of multi-page stacks (or per image: fl=1,nuc=0)")
    p.add_argument("--channel", metavar="K",
                   help="colour K of RGB images (or per image: fl=0,nuc=2)")
    p.add_argument("--markers", metavar="CSV",
                   help="markers, columns row,col or x,y (default: nuclei found on --nuc)")
    p.add_argument("--scribbles", metavar="TIFF",
                   help="scribbles 1 = cell, 2 = background: random-forest mask (bright-field)")
    p.add_argument("--no-mask", action="store_true", help="train without the mask (beta = 0)")
    p.add_argument("--channels", metavar="LIST",
                   help="channels the network sees, e.g. fl,nuc (default: all given)")
    p.add_argument("--start", default="auto", choices=START_CHOICES,
                   help="pretrained: fine-tune the shipped starting model; scratch: a new "
                        "network; auto (default): pretrained when one fits the channels "
                        "and --preset (fast), else scratch")
    p.add_argument("--preset", default="fast", choices=sorted(PRESETS),
                   help="fast (default: converges in minutes), paper or original_code")
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
    p.add_argument("--checkpoint", metavar="DIR",
                   help="save training progress in DIR every epoch; rerun to resume")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing output files (never an input)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    p.add_argument("--out", required=True, metavar="TIFF", help="label image to write")
    return p


def run_segment(args: argparse.Namespace) -> int:
    """Run ``segment`` from parsed arguments; returns the exit status: 0, 2 for bad input,
    1 for a failure to read or write, 128 + the signal's number when SIGINT/SIGTERM ended
    it (outputs written if it came during training)."""
    t0 = time.perf_counter()
    with SignalStop() as signals, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InputWarning)
        res, failure, status = _run(args, signals)
    _warn(caught, args.pixel_size)
    if res is None:
        print(failure, file=sys.stderr)
        return status
    _report(res, time.perf_counter() - t0, args.preset)
    return exit_status(signals.received) if signals.received else 0


def _run(args: argparse.Namespace,
         signals: SignalStop) -> tuple[SegmentOutputs | None, str, int]:
    """:func:`segment_files` with the options; a failure becomes (None, message, status)."""
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
            page=selector(args.page, "--page"), channel=selector(args.channel, "--channel"),
            checkpoint=args.checkpoint, start=args.start, signals=signals,
            progress=not args.quiet, log=log,
            unet_width=args.width, unet_depth=args.depth, max_epochs=args.epochs,
            steps_per_epoch=args.steps)
    except Interrupted as sig:
        return None, f"{sig} before the outputs were complete; nothing was written.", \
            exit_status(sig.signum)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        return None, f"error: {err}", EXIT_BAD_INPUT
    except OSError as err:  # unreadable input, disk full...: no output was left behind
        return None, f"error: {err}", 1
    return res, "", 0


def _warn(caught: list[warnings.WarningMessage], pixel_size: float | None) -> None:
    """The input warnings of a run, one ``warning:`` line each on stderr."""
    for w in caught:
        if not issubclass(w.category, InputWarning):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
            continue
        hint = ""
        if issubclass(w.category, PixelSizeWarning):
            hint = (" Give it with --pixel-size (µm per pixel)" + (
                "; none was given, so 0.8 was assumed." if pixel_size is None else "."))
        print(f"warning: {w.message}{hint}", file=sys.stderr)


def _report(res: SegmentOutputs, seconds: float, preset: str) -> None:
    """What ``segment`` wrote and how it went (stdout; the last line says how much it
    trained, :meth:`SegmentOutputs.summary`), and a warning for a weak result."""
    wrote = [res.labels, res.overlay, res.cells] + ([res.model] if res.model else [])
    if res.n_cells < 0.5 * res.n_markers:
        print(f"warning: only {res.n_cells} of {res.n_markers} markers got a cell; the "
              f"network is probably undertrained (stopped: {res.stopped}). Train longer "
              f"(--max-seconds, --epochs, --profile full) or check the mask and markers "
              f"in the overlay.", file=sys.stderr)
    if res.stopped == "interrupted":
        print("training interrupted: the outputs are those of the network as it was (as "
              "at the time cap); rerun with --checkpoint DIR to resume.", file=sys.stderr)
    print("wrote " + ", ".join(str(p) for p in wrote))
    print(f"{res.summary(preset)}; wall time {seconds:.1f} s")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point of ``python -m cellcutter_nb`` (``reproduce``, ``segment``,
    ``grid``: :mod:`cellcutter_nb.app.cli_grid`).

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
    add_grid_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "segment":
        return run_segment(args)
    if args.command == "grid":
        return run_grid(args)
    try:
        return _reproduce(args)
    except KeyboardInterrupt:
        print("interrupted; the notebooks finished so far are kept (rerun to resume).",
              file=sys.stderr)
        return exit_status(signal.SIGINT)


def _reproduce(args: argparse.Namespace) -> int:
    """The ``reproduce`` subcommand."""
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
