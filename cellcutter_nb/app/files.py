"""``segment`` as a Python function: image files in; labels, overlay and cell table out.

:func:`segment_files` is what ``python -m cellcutter_nb segment``
(:mod:`cellcutter_nb.app.cli`) runs, and what notebook 12 calls: the checks before
training (:mod:`cellcutter_nb.app.cli_checks`), training (:func:`_train`) or a loaded
network, then the outputs written under temporary names and moved into place together
(:func:`_write`, :func:`cellcutter_nb.app.outputs.commit`).

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> segment_files(out=Path(tempfile.mkdtemp()) / "labels.tif", fl="no/such.tif",
...               markers="m.csv")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
FileNotFoundError: No such image file for --fl no/such.tif: no/such.tif
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Preset, Profile
from ..core.integrate import predict_field
from ..data import tiffio
from ..data.field import Field
from .cli_checks import (
    check_checkpoint,
    check_model,
    check_numbers,
    check_sources,
    make_mask,
    read_markers,
    read_scribbles,
    resolved,
    used_channels,
)
from .interrupt import SignalStop
from .model_file import save_model
from .outputs import (
    SegmentOutputs,
    cell_table,
    commit,
    output_paths,
    remove_stale_temps,
    temp_name,
    write_overlay,
)
from .pipeline import one_piece, patches_before, segment

__all__ = ["segment_files"]


def segment_files(*, out: str | os.PathLike, fl: Any = None, bf: Any = None, nuc: Any = None,
                  markers: str | os.PathLike | None = None,
                  scribbles: str | os.PathLike | None = None,
                  channels: str | Sequence[str] | None = None,
                  preset: str | Preset = "fast", profile: str | Profile = "quick",
                  pixel_size: float | None = None, use_mask: bool = True,
                  model: str | os.PathLike | None = None,
                  save_model: str | os.PathLike | None = None, seed: int = 0,
                  max_seconds: float | None = None, overwrite: bool = False,
                  page: int | dict[str, int] | None = None,
                  channel: int | dict[str, int] | None = None,
                  checkpoint: str | os.PathLike | None = None, start: str = "auto",
                  signals: SignalStop | None = None, progress: bool = True,
                  log: Callable[[str], None] | None = None,
                  **profile_overrides: int) -> SegmentOutputs:
    """Segment image files and write labels, overlay and per-cell CSV (see module doc).

    Parameters
    ----------
    out : path
        Label TIFF to write; the overlay and table go next to it. No output may be one of
        the inputs, even with ``overwrite``.
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
        µm/px (default 0.8, the paper's; 0.05–5 accepted).
    use_mask : bool
        False trains without the mask (β = 0).
    model : path, optional
        A trained ``.keras`` UNet: no training, inference only. One saved with
        ``save_model`` must be used with the channels and preset it was trained with.
    save_model : path, optional
        Save the trained UNet here (``.keras``, with its channels, preset and patch size).
    seed : int
        Seeds training.
    max_seconds : float, optional
        Stop training after about this much wall time.
    overwrite : bool
        Replace existing output files; without it they are created exclusively.
    page, channel : int or dict of str to int, optional
        Plane of multi-page stacks, colour of RGB images (for all images, or per image).
    checkpoint : path, optional
        Folder where training saves its progress every epoch and resumes from.
    start : {"auto", "pretrained", "scratch"}
        Fine-tune the shipped starting model or train a new network
        (:func:`~cellcutter_nb.app.pipeline.segment`).
    signals : SignalStop, optional
        The command's SIGINT/SIGTERM handler: a signal during training stops it after the
        current step and the outputs are written (``stopped = "interrupted"``).
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
    FileExistsError
        An output appeared during the run (without ``overwrite``); nothing was written.
    """
    say = log or (lambda msg: None)
    t0 = time.perf_counter()
    # 1. everything that can be checked, before any training
    check_numbers(seed, max_seconds, pixel_size, profile_overrides)
    check_sources(fl, bf, nuc, markers)
    outs = _outputs(out, save_model, overwrite, say, {
        "--fl": fl, "--bf": bf, "--nuc": nuc, "--markers": markers, "--scribbles": scribbles,
        "--model": model})
    if model is not None and (save_model is not None or checkpoint is not None):
        raise ValueError("--model only runs a trained network; drop --save-model and "
                         "--checkpoint (or --model to train a new one).")
    ckpt_note = check_checkpoint(checkpoint)
    preset, prof = resolved(preset, profile, profile_overrides)
    field = tiffio.load_field(fl, bf, nuc, pixel_size=pixel_size, page=page, channel=channel,
                              style="cli")
    used = used_channels(channels, field)
    net = None if model is None else _loaded(model, used, preset, say)
    scr = read_scribbles(scribbles, field.shape)
    mk = read_markers(markers, field)
    say(f"{field.shape[0]}x{field.shape[1]} px, channels {','.join(used)}, {len(mk)} markers")
    # 2. mask and training, or the loaded network; inference
    mask = make_mask(field, scr, preset, use_mask, mk)
    if mask is not None:
        say(f"mask covers {mask.mean():.0%} of the image")
    if net is None:
        if ckpt_note:
            say(ckpt_note)
        labels, net, stopped, seen, start_seen = _train(
            field, used, preset, prof, mk, mask, signals, say, seed=seed,
            max_seconds=max_seconds, progress=progress, checkpoint_dir=checkpoint, start=start)
    else:
        labels = predict_field(net, field, used, preset, markers=mk, mask=mask)
        stopped, seen, start_seen = "loaded", None, 0
    # 3. write under temporary names, then move all into place
    n_cells = _write(outs, np.asarray(labels, np.uint32), field, used, mk, net, preset,
                     overwrite, signals)
    return SegmentOutputs(outs.labels, outs.overlay, outs.cells, outs.model, len(mk),
                          n_cells, time.perf_counter() - t0, stopped, one_piece(labels), seen,
                          start_seen)


def _outputs(out: str | os.PathLike, save_model: str | os.PathLike | None, overwrite: bool,
             say: Callable[[str], None], given: dict[str, Any]) -> SegmentOutputs:
    """The outputs named and checked (none of them one of the ``given`` input files), and
    the temporary files a killed run left next to them removed."""
    outs = output_paths(out, save_model, overwrite=overwrite, inputs={
        k: v for k, v in given.items() if isinstance(v, (str, os.PathLike))})
    finals = [p for p in (outs.labels, outs.overlay, outs.cells, outs.model) if p is not None]
    for stale in remove_stale_temps(finals):
        say(f"removed {stale.name}, left by an interrupted run")
    return outs


def _loaded(model: str | os.PathLike, used: Sequence[str], preset: Preset,
            say: Callable[[str], None]) -> Any:
    """The ``--model`` network, checked against this run's channels and preset."""
    from ..core.model import load_model  # Keras on demand: not for bad input or --help

    net = load_model(model)
    note = check_model(net, model, used, preset)
    if note:
        say(note)
    return net


def _train(field: Field, used: tuple[str, ...], preset: Preset, prof: Profile,
           mk: np.ndarray, mask: np.ndarray | None, signals: SignalStop | None,
           say: Callable[[str], None],
           **train_kwargs: Any) -> tuple[np.ndarray, Any, str, int, int]:
    """Train and integrate; a signal during training (``signals`` soft) ends it like the
    time cap does. Returns labels, network, why it stopped, the patches it saw and those
    the starting model saw before (0 from scratch)."""
    phase = signals.soft() if signals is not None else contextlib.nullcontext()
    with phase:
        labels, net, history = segment(
            field, used, preset, prof, markers=mk, mask=mask,
            should_stop=signals.requested if signals is not None else None, **train_kwargs)
    stopped = str(history.attrs.get("stopped", ""))
    card = history.attrs.get("start")
    if card is not None:
        say(f"started from the starting model {card.name} "
            f"({card.patches_seen:,} patches on synthetic fields)")
    say(f"trained {len(history)} epoch(s) in {history.attrs.get('seconds', 0):.1f} s "
        f"(stopped: {stopped})")
    return (labels, net, stopped, int(history["patches_seen"].iloc[-1]),
            patches_before(card))


def _write(outs: SegmentOutputs, labels: np.ndarray, field: Field, used: Sequence[str],
           markers: np.ndarray, net: Any, preset: Preset, overwrite: bool,
           signals: SignalStop | None) -> int:
    """Write labels, overlay, table (and the model) under temporary names, then move them
    all into place (:func:`~cellcutter_nb.app.outputs.commit`); nothing is left behind on
    error or interruption. Returns the number of cells."""
    import tifffile

    table = cell_table(labels, field, markers)
    finals = [outs.labels, outs.overlay, outs.cells] + ([outs.model] if outs.model else [])
    temps: list[Path] = []
    try:
        for final in finals:
            temps.append(temp_name(final))
        tifffile.imwrite(temps[0], labels, compression="zlib")
        write_overlay(temps[1], field[used[0]], labels,
                      f"{len(table)} labels, outlines on {used[0]}")
        table.to_csv(temps[2], index=False, float_format="%.6g")
        if outs.model:
            save_model(net, temps[3], used, preset)
        with signals.shielded() if signals is not None else contextlib.nullcontext():
            commit(temps, finals, overwrite)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    return len(table)
