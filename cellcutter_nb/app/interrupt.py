"""Ctrl-C and SIGTERM in ``segment``: stop training cleanly, never leave half a result.

:class:`SignalStop` holds SIGINT and SIGTERM for one command. In its :meth:`~SignalStop.soft`
phase (training) the first signal only asks training to stop after the current step, as
the time cap would, and the outputs are written; a second one, or a signal in any other
phase, raises :class:`Interrupted`, so the temporary files are removed and nothing is
written. During :meth:`~SignalStop.shielded` (the final renames) signals wait until the
renames are done.

Examples
--------
>>> import os, signal
>>> with SignalStop() as stop, stop.soft():
...     os.kill(os.getpid(), signal.SIGTERM)
...     stop.requested()
True
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

__all__ = ["Interrupted", "SignalStop", "exit_status"]


class Interrupted(Exception):
    """A signal ended the command before its outputs were written."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


def exit_status(signum: int) -> int:
    """The shell's exit status for a command ended by ``signum`` (130 for SIGINT).

    Examples
    --------
    >>> exit_status(signal.SIGINT), exit_status(signal.SIGTERM)
    (130, 143)
    """
    return 128 + int(signum)


class SignalStop:
    """SIGINT / SIGTERM handlers for one command (see the module doc).

    SIGINT is left alone when it was ignored at start (``nohup``, a background job).
    Outside the main thread nothing is installed (signals only reach that thread).
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._mode = "hard"
        self._old: dict[int, Any] = {}

    def __enter__(self) -> SignalStop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old = signal.getsignal(sig)
                if sig == signal.SIGINT and old is signal.SIG_IGN:
                    continue
                self._old[sig] = old
                signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        if first:
            self.received = signum
        if self._mode == "hard" or (self._mode == "soft" and not first):
            raise Interrupted(signum)

    def requested(self) -> bool:
        """Whether a signal asked to stop (training polls this after every step)."""
        return self.received is not None

    @contextlib.contextmanager
    def _phase(self, mode: str) -> Iterator[None]:
        before, self._mode = self._mode, mode
        try:
            yield
        finally:
            self._mode = before

    def soft(self) -> contextlib.AbstractContextManager[None]:
        """Training: the first signal asks to stop, a second one interrupts."""
        return self._phase("soft")

    def shielded(self) -> contextlib.AbstractContextManager[None]:
        """The final renames: signals are only recorded."""
        return self._phase("shield")
