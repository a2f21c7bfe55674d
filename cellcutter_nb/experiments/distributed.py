"""The models of an experiment as tasks of a Dask graph (``dask.distributed``).

:func:`fit_jobs` trains (or loads) a list of runs of
:func:`~cellcutter_nb.experiments.model_cache.fit`, one task per model, on any
``distributed.Client`` — a ``LocalCluster`` sized to the machine by default, a scheduler
address, or a cluster you made (SLURM through ``dask-jobqueue``, one worker per GPU
through ``dask-cuda``). Each task writes its model to the shared cache
(:func:`~cellcutter_nb.experiments.model_cache.atomic_folder` keeps one good entry when
two workers train the same key) and sends back the
:class:`~cellcutter_nb.experiments.model_cache.Run` without its Keras model
(``run.model()`` loads it from the cache when asked); the runs come back in job order,
so the tables are the serial run's. :func:`cellcutter_nb.experiments.paper.grid` uses
it when given ``client=``; ``python -m cellcutter_nb grid`` fills a profile's cache.

Why processes with one thread each: :func:`~cellcutter_nb.core.model.seed_everything`
seeds the process-wide RNGs (Python, NumPy, Keras), so two fits in threads of one process
would draw from each other's streams and not repeat; a lock lets one fit at a time run in
a worker process, whatever its thread count. Every worker runs TensorFlow on one thread
(``CELLCUTTER_NB_DETERMINISTIC=1``, set before it first loads Keras, with the caller's
``KERAS_BACKEND``): one worker per core uses the cores without oversubscription, and
every model repeats bit for bit, so the numbers are those of a serial run with
``CELLCUTTER_NB_DETERMINISTIC=1`` (on the smoke profile the default two-thread serial run
gives the same labels and scores; its losses differ in the 7th digit). To give a
model more cores, run more worker processes rather than threads. A worker that loaded
Keras with other settings before fails with a message saying so.

``dask`` is imported only when a function here runs: ``pip install "cellcutter_nb[dask]"``.

Examples
--------
>>> from cellcutter_nb import config
>>> from cellcutter_nb.experiments.distributed import fit_jobs
>>> prof = config.get_profile("smoke").replace(field_size=128, max_epochs=1,
...                                            steps_per_epoch=1)
>>> jobs = [(1, ("fl", "nuc"), True)]  # (replicate, channels, with the mask)
>>> runs = fit_jobs(prof, config.get_preset("fast"), jobs, cache_dir=None, progress=False)
>>> [(r.index, r.channels) for r in runs], 0 <= runs[0].scores["miou"] <= 1
([(1, ('fl', 'nuc'))], True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import threading
import uuid
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Union

from ..channels import combo_name
from ..config import Preset, Profile
from ..progress import progress_bar
from .model_cache import Run, default_cache_dir, fit

if TYPE_CHECKING:
    from distributed import Client

#: One model of a grid: (replicate index, channels, with the mask).
Job = tuple[int, tuple[str, ...], bool]
#: Where the tasks run: a ``distributed.Client``, a scheduler address or ``"local"``.
Scheduler = Union["Client", str]
INSTALL_HINT = 'pip install "cellcutter_nb[dask]"'
#: Dask settings of the local cluster's workers: no statistical profiler (it samples the
#: training thread's stack every 10 ms) and glibc's own malloc trimming. Measured on 3 smoke
#: fits in one worker (2 busy cores, CPU seconds, two tries): 21 and 27 with Dask's
#: defaults, 17 and 20 without, 18 in a plain process.
LOCAL_WORKER_CONFIG = {"distributed.worker.profile.enabled": False,
                       "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}

#: One fit at a time in a worker process: fits seed the process-wide RNGs.
_FIT_LOCK = threading.Lock()


def _dask_distributed():
    """The ``distributed`` package, or an ImportError that says how to install it."""
    try:
        import distributed
    except ImportError as err:
        raise ImportError(f"Running models on a Dask cluster needs dask.distributed, which "
                          f"is not installed: {INSTALL_HINT}") from err
    return distributed


def default_workers() -> int:
    """Workers of the local cluster: the CPU cores this process may use (Dask's count,
    which heeds CPU affinity and cgroup quotas).

    Examples
    --------
    >>> default_workers() >= 1
    True
    """
    _dask_distributed()  # the message naming the extra when Dask is missing
    from dask.system import CPU_COUNT

    return max(1, int(CPU_COUNT))


def worker_environ() -> dict[str, str]:
    """The environment a worker sets before it first loads Keras.

    TensorFlow on one thread (``CELLCUTTER_NB_DETERMINISTIC=1``, module docstring), the
    caller's ``KERAS_BACKEND`` where set, and no training bars
    (``CELLCUTTER_NB_QUIET=1``): the caller shows one bar over the models. Under JAX,
    workers allocate accelerator memory as they need it
    (``XLA_PYTHON_CLIENT_PREALLOCATE=false``, unless the caller set it): by default the
    first JAX process on a GPU takes 75 % of its memory, so a second worker on the same
    device could not start; on demand, several workers train models side by side on one
    GPU (``grid --workers N``).

    Examples
    --------
    >>> worker_environ()["CELLCUTTER_NB_DETERMINISTIC"]
    '1'
    """
    env = {"CELLCUTTER_NB_DETERMINISTIC": "1", "CELLCUTTER_NB_QUIET": "1"}
    if "KERAS_BACKEND" in os.environ:
        env["KERAS_BACKEND"] = os.environ["KERAS_BACKEND"]
    if env.get("KERAS_BACKEND") == "jax":
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = os.environ.get(
            "XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    return env


@contextlib.contextmanager
def connect(client: Scheduler = "local", workers: int | None = None) -> Iterator[Client]:
    """A ``distributed.Client`` to run models on.

    Parameters
    ----------
    client : Client, str
        A client (used as is and left open), ``"local"`` (a ``LocalCluster`` of
        ``workers`` processes with one thread each, closed afterwards) or the address of
        a running scheduler (e.g. ``"tcp://10.0.0.5:8786"``; disconnected afterwards).
    workers : int, optional
        Worker processes of the local cluster (default :func:`default_workers`).

    Raises
    ------
    ImportError
        ``dask.distributed`` is not installed (the message says how to install it).
    ValueError
        ``workers`` below 1, or given with another client than ``"local"``.

    Examples
    --------
    >>> with connect("local", workers=1) as c:
    ...     len(c.nthreads())
    1
    """
    distributed = _dask_distributed()
    local = isinstance(client, str) and client == "local"
    if workers is not None and (not local or int(workers) < 1):
        raise ValueError(f"workers={workers!r}: give a number >= 1, and only with "
                         f"client='local' (a cluster of your own has its own size).")
    if not isinstance(client, str):
        yield client
    elif not local:
        with distributed.Client(client) as remote:
            yield remote
    else:
        n = default_workers() if workers is None else int(workers)
        import dask

        with _environ_kept(), dask.config.set(LOCAL_WORKER_CONFIG), distributed.LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                env=worker_environ()) as cluster, distributed.Client(cluster) as own:
            yield own


@contextlib.contextmanager
def _environ_kept() -> Iterator[None]:
    """Undo what starting workers writes into this process's environment (Dask's nanny
    sets ``OMP_NUM_THREADS=1``, ``PYTHONHASHSEED``... here before it spawns a worker)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        for name in set(os.environ) - set(saved):
            del os.environ[name]
        os.environ.update(saved)


def fit_jobs(profile: Profile, preset: Preset, jobs: Sequence[Job], *, seed: int = 0,
             cache_dir: str | Path | None | bool = True, client: Scheduler = "local",
             progress: bool | None = None) -> list[Run]:
    """Train (or load) the runs of ``jobs`` as tasks on a Dask cluster, one per model.

    Parameters
    ----------
    profile, preset : Profile, Preset
        As for :func:`~cellcutter_nb.experiments.model_cache.fit`.
    jobs : sequence of (int, tuple of str, bool)
        Replicate index, channels and with-mask of each model.
    seed : int
        The experiment seed.
    cache_dir : path, True, None or False
        As for ``fit``; resolved here to an absolute path, which every worker must see
        (a shared file system on a multi-machine cluster). ``None``/``False``: nothing is
        cached and the runs come back without a model.
    client : Client or str
        See :func:`connect`; ``"local"`` (default) starts a cluster sized to the machine
        (at most one worker per job) for this call.
    progress : bool, optional
        A bar over the models as they finish (None: unless ``CELLCUTTER_NB_QUIET``).

    Returns
    -------
    list of Run
        In the order of ``jobs``, without the in-memory model (``run.model()`` loads it
        from the cache).

    Raises
    ------
    Exception
        The first failure in job order, raised once every task has ended (what did
        finish is in the cache, so a rerun resumes).
    """
    root = default_cache_dir(profile) if cache_dir is True else cache_dir or None
    root = Path(root).expanduser().resolve() if root else None
    jobs = [(int(i), tuple(c), bool(m)) for i, c, m in jobs]
    local = isinstance(client, str) and client == "local"
    if not jobs:
        return []
    with connect(client, min(default_workers(), len(jobs)) if local else None) as dask_client:
        environ = worker_environ()
        tag = uuid.uuid4().hex[:8]
        futures = [dask_client.submit(_fit_task, profile, preset, job, seed, root, environ,
                                      key=f"fit-{combo_name(job[1])}-{job[0]}-"
                                          f"{'mask' if job[2] else 'nomask'}-{n}-{tag}")
                   for n, job in enumerate(jobs)]
        distributed = _dask_distributed()
        with progress_bar(desc="models", progress=progress, total=len(jobs)) as bar:
            for _ in distributed.as_completed(futures):
                bar.update()
        return dask_client.gather(futures)


def _fit_task(profile: Profile, preset: Preset, job: Job, seed: int, cache_dir: Path | None,
              environ: dict[str, str]) -> Run:
    """One model on a worker: :func:`fit`, returned without its Keras model."""
    _prepare_worker(environ)
    index, channels, with_mask = job
    with _FIT_LOCK, warnings.catch_warnings():
        # scikit-learn's forest runs on one core in a worker, which is what one wants here
        warnings.filterwarnings("ignore", "Inside a Dask worker", UserWarning)
        run = fit(profile, preset, index, channels, with_mask=with_mask, seed=seed,
                  cache_dir=cache_dir)
    return dataclasses.replace(run, _model=None)


def _prepare_worker(environ: dict[str, str]) -> None:
    """Set ``environ`` before this process first loads Keras; check the settings after.

    Raises
    ------
    RuntimeError
        Keras was loaded here before with another backend or thread setting.
    """
    if "cellcutter_nb.backend" not in sys.modules:
        os.environ.update(environ)
    from .. import backend  # Keras on demand: the settings above must come first

    if not backend.DETERMINISTIC:
        raise RuntimeError("This Dask worker loaded Keras before its first model without "
                           "CELLCUTTER_NB_DETERMINISTIC=1 (TensorFlow on one thread), so its "
                           "models would not repeat: start the workers with it set.")
    name = environ.get("KERAS_BACKEND")
    if name is not None and backend.backend_name() != name:
        raise RuntimeError(f"This Dask worker runs Keras on {backend.backend_name()!r}, the "
                           f"caller on {name!r}: start the workers with KERAS_BACKEND={name}.")
