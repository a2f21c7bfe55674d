"""Progress bars, and how far a training run got: one switch for the whole package.

Long work (the models of an experiment) shows a tqdm bar; training shows a
:class:`TrainingBar` by step (ETA, patches seen, loss) that ends in one summary line
(:func:`training_label`: patches seen, and *under-trained* below the preset's
converged volume). Bars are on by default and off when ``CELLCUTTER_NB_QUIET=1``, which
the runner sets so that executed notebooks keep no bar residue (the notebooks print what
they trained themselves); every function that draws a bar also takes
``progress=True/False`` to decide per call.

Examples
--------
>>> from cellcutter_nb.progress import progress_bar, training_label
>>> sum(progress_bar(range(3), "items", progress=False))
3
>>> training_label(1454, "paper")
'under-trained: 1,454 patches seen (< 100,000)'
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import IO, Any

from .config import Preset, get_preset


def quiet() -> bool:
    """True when ``CELLCUTTER_NB_QUIET`` is ``1``/``true`` (the runner sets it)."""
    return os.environ.get("CELLCUTTER_NB_QUIET", "") in ("1", "true")


def stream() -> IO[str]:
    """Where bars write: stdout in a running Jupyter kernel (stderr would be shown as a
    warning), else stderr (a shell's stdout stays for results).

    Examples
    --------
    >>> stream() is sys.stderr  # no kernel runs this doctest
    True
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return sys.stdout if getattr(shell, "kernel", None) is not None else sys.stderr


def progress_bar(items: Iterable | None = None, desc: str = "", progress: bool | None = None,
                 total: int | None = None) -> Any:
    """A text tqdm bar over ``items`` (or of ``total`` steps, advanced with ``update``),
    left as one line when done (a widget bar would keep its first frame in a saved
    notebook, see :class:`TrainingBar`).

    Parameters
    ----------
    items : iterable, optional
        What to iterate over.
    desc : str
        Label of the bar.
    progress : bool or None
        True: show; False: hide; None: show unless ``CELLCUTTER_NB_QUIET`` is ``1``/``true``.
    total : int, optional
        Length of the bar when ``items`` is not given (or has no ``len``).
    """
    from tqdm.std import tqdm

    if progress is None:
        progress = not quiet()
    return tqdm(items, total=total, desc=desc, disable=not progress, file=stream())


def under_trained(patches_seen: int, preset: str | Preset) -> bool:
    """Below the preset's converged volume (:attr:`~cellcutter_nb.config.Preset.converged_patches`).

    Examples
    --------
    >>> under_trained(99_999, "paper"), under_trained(100_000, "paper")
    (True, False)
    """
    return patches_seen < get_preset(preset).converged_patches


def training_label(patches_seen: int, preset: str | Preset) -> str:
    """Patches seen, and ``under-trained`` below the preset's converged volume: for
    figure titles, notebook text and the command line's last line.

    Examples
    --------
    >>> training_label(400_000, "paper")
    '400,000 patches seen'
    """
    text = f"{int(patches_seen):,} patches seen"
    if under_trained(patches_seen, preset):
        text = f"under-trained: {text} (< {get_preset(preset).converged_patches:,})"
    return text


class TrainingBar:
    """Progress of one training run by step, ending in one summary line.

    A text tqdm bar counts steps (one area each) with rate, ETA, patches seen and the
    loss; :meth:`close` replaces it with :meth:`summary` (steps, patches, seconds, why
    it stopped, :func:`training_label`), which stays in a terminal and in a saved
    notebook. A text bar rather than a widget: a saved widget keeps the text of its
    first frame (``0%| 0/48``).

    Parameters
    ----------
    total_steps : int
        Most steps the run may take.
    preset : str or Preset
        Whose converged volume decides *under-trained*.
    progress : bool or None
        As for :func:`progress_bar`.
    desc : str
        Label of the bar and the summary.
    file : file, optional
        Where to write; default :func:`stream`.
    prior_patches : int
        Patches the network saw before this run (a starting model): added to the volume
        that decides *under-trained*, and named in the summary.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> bar = TrainingBar(4, "paper", progress=True, file=out)
    >>> for _ in range(2):
    ...     bar.step(25)
    >>> bar.epoch({"loss": 0.5, "seconds": 3.0})
    >>> bar.close("max_epochs")
    >>> print(out.getvalue().splitlines()[-1])  # doctest: +NORMALIZE_WHITESPACE
    training: 2/4 steps, 3 s (stopped: max_epochs), loss 0.5;
    under-trained: 50 patches seen (< 100,000)
    """

    def __init__(self, total_steps: int, preset: str | Preset, progress: bool | None = None,
                 desc: str = "training", file: IO[str] | None = None,
                 prior_patches: int = 0) -> None:
        from tqdm.std import tqdm  # text, not a widget (see above)

        self.preset, self.desc, self.total = get_preset(preset), desc, int(total_steps)
        self.file = file or stream()
        self.show = not quiet() if progress is None else bool(progress)
        self.steps, self.patches, self.prior = 0, 0, int(prior_patches)
        self.last: dict = {}
        self.bar = tqdm(total=self.total, desc=desc, unit="step", file=self.file,
                        disable=not self.show, leave=False, dynamic_ncols=True)

    def resume(self, steps: int, patches: int) -> None:
        """Start from a checkpoint's step and patch counts."""
        self.steps, self.patches = steps, patches
        self.bar.update(steps)

    def step(self, n_patches: int) -> None:
        """One training step on ``n_patches`` real patches."""
        self.steps += 1
        self.patches += int(n_patches)
        self.bar.set_postfix_str(self._postfix(), refresh=False)
        self.bar.update(1)

    def epoch(self, row: dict) -> None:
        """An epoch's history row: its loss (and mIOU, when the field has ground truth)."""
        self.last = row
        self.bar.set_postfix_str(self._postfix())

    def _postfix(self) -> str:
        text = f"{self.patches:,} patches"
        if "loss" in self.last:
            text += f", loss {self.last['loss']:.3g}"
        if "miou" in self.last:
            text += f", mIOU {self.last['miou']:.3f}"
        return text

    def summary(self, stopped: str) -> str:
        """One line: steps, seconds, why it stopped, loss (mIOU) and patches seen."""
        text = (f"{self.desc}: {self.steps}/{self.total} steps, "
                f"{self.last.get('seconds', 0):.0f} s (stopped: {stopped})")
        if "loss" in self.last:
            text += f", loss {self.last['loss']:.3g}"
        if "miou" in self.last:
            text += f", mIOU {self.last['miou']:.3f}"
        text = f"{text}; {training_label(self.patches + self.prior, self.preset)}"
        return text + (f" ({self.prior:,} by the starting model)" if self.prior else "")

    def close(self, stopped: str) -> None:
        """Remove the bar and write :meth:`summary` in its place."""
        self.bar.close()
        if self.show:
            print(self.summary(stopped), file=self.file, flush=True)
