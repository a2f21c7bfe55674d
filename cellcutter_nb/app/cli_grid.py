"""``python -m cellcutter_nb grid``: train a profile's Table 1 grid on a Dask cluster.

It trains the models the notebooks of ``make reproduce`` would train one after another —
6 input combinations × {with, without mask} × the profile's replicates, with the
notebooks' preset and learning rate — as tasks of a Dask graph
(:func:`cellcutter_nb.experiments.distributed.fit_jobs`), into the model cache the
notebooks read (``results/<profile>/cache``), so a following ``make reproduce`` loads
them. Models already in the cache are loaded, not retrained: an interrupted ``grid``
resumes.

``--workers N`` runs a local cluster of N processes (default: one per CPU core);
``--scheduler ADDRESS`` uses the workers of a running scheduler, which must see the cache
folder (a shared file system).

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> _ = add_grid_parser(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["grid", "--profile", "smoke", "--workers", "2"])
>>> args.profile, args.workers, args.scheduler
('smoke', 2, None)
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from pathlib import Path
from typing import Any

from ..experiments import paper
from ..experiments.distributed import connect
from ..experiments.model_cache import default_cache_dir, is_cached, run_key
from ..experiments.notebook import setup
from .interrupt import exit_status

#: The ``learning_rate`` parameter of notebooks 04-09 (their default under ``reproduce``):
#: part of the preset, so of every cache key.
NOTEBOOK_LEARNING_RATE = 0.001


def _workers(text: str) -> int:
    """``--workers``: a whole number >= 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return n


def add_grid_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``grid`` subcommand to ``python -m cellcutter_nb``'s parser."""
    p = subparsers.add_parser(
        "grid", help="train the Table 1 grid on a Dask cluster (fills the model cache)",
        description="Train (or load) every model of Table 1 for a profile as tasks of a "
                    "Dask graph, into the cache that 'reproduce' reads. Needs "
                    "pip install \"cellcutter_nb[dask]\".")
    p.add_argument("--profile", default="quick", choices=("smoke", "quick", "full"))
    p.add_argument("--seed", type=int, default=0)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_workers, metavar="N",
                       help="a local cluster of N worker processes (default: one per core)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (its workers "
                            "must see the cache folder)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="model cache (default: the one 'reproduce' reads, "
                        "results/<profile>/cache)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run_grid(args: argparse.Namespace) -> int:
    """Run ``grid`` from parsed arguments; returns the exit status: 0, 1 when Dask is
    missing or the scheduler cannot be reached, 130 on Ctrl-C (a failing model raises)."""
    prof, preset, _ = setup(args.profile, args.seed, learning_rate=NOTEBOOK_LEARNING_RATE,
                            quiet=True)
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir(prof)
    keys = [run_key(prof, preset, i, c, m, args.seed) for i, c, m in paper.grid_jobs(prof)]
    cached = sum(is_cached(cache, k) for k in keys)
    print(f"grid: {len(keys)} models of profile {prof.name} (preset {preset.name}, seed "
          f"{args.seed}), {cached} already in {cache}", flush=True)
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        try:
            client = stack.enter_context(connect(args.scheduler or "local", args.workers))
        except ImportError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        except OSError as err:  # distributed's error for an address without a scheduler
            print(f"error: cannot reach the Dask scheduler at {args.scheduler}: {err}",
                  file=sys.stderr)
            return 1
        print(f"grid: {len(client.nthreads())} Dask workers (dashboard "
              f"{client.dashboard_link})", flush=True)
        try:
            paper.grid(prof, preset, args.seed, cache_dir=cache, client=client,
                       progress=not args.quiet)
        except KeyboardInterrupt:
            print("interrupted; the models finished so far are in the cache (rerun to "
                  "resume).", file=sys.stderr)
            return exit_status(signal.SIGINT)
    print(f"grid: done in {time.perf_counter() - t0:.0f} s; 'python -m cellcutter_nb "
          f"reproduce --profile {prof.name}' now loads these models")
    return 0
