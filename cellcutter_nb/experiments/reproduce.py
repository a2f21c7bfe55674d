"""Rerun the notebooks headlessly with papermill and record what produced the results.

``python -m cellcutter_nb reproduce --profile quick`` (what ``make reproduce`` runs)
executes ``notebooks/NN_*.ipynb`` in order, writes executed copies to
``results/<profile>/notebooks/``, figures to ``figures/`` (``results/smoke/figures/``
for the smoke profile, so CI never overwrites the committed figures), tables to
``results/<profile>/tables/``, and a ``REPORT.md`` with wall times, versions,
device and commit, the paper's numbers beside ours and its conclusions marked held or
not held (:mod:`cellcutter_nb.experiments.report`). A failing notebook stops the run with
a non-zero exit that names the notebook and the failing cell; its executed copy is kept.
A rerun skips notebooks whose inputs are unchanged (:func:`input_hash`) and trained
models come from the cache of :mod:`cellcutter_nb.experiments.model_cache`, so an
interrupted run resumes. The command line itself is :func:`cellcutter_nb.app.cli.main`.

Examples
--------
>>> from cellcutter_nb.experiments.reproduce import discover
>>> [p.name for p in discover()][:1]
['01_data.ipynb']
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import get_profile
from .report import sections

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the files are still replaced whole
    fcntl = None

if TYPE_CHECKING:
    from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
PACKAGES = ("numpy", "scipy", "scikit-image", "scikit-learn", "pandas", "keras",
            "tensorflow-cpu", "tensorflow", "jax", "PyMaxflow", "centrosome", "papermill")


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names it, the cell and where the copy is."""


@dataclass
class RunPaths:
    """Where one profile's outputs go."""

    results: Path
    notebooks: Path
    tables: Path
    figures: Path

    @classmethod
    def for_profile(cls, profile: str, root: Path = ROOT) -> RunPaths:
        results = root / "results" / profile
        figures = results / "figures" if profile == "smoke" else root / "figures"
        return cls(results, results / "notebooks", results / "tables", figures)

    def make(self) -> None:
        for p in (self.results, self.notebooks, self.tables, self.figures):
            p.mkdir(parents=True, exist_ok=True)


def discover(folder: Path = NOTEBOOKS) -> list[Path]:
    """Numbered notebooks (``NN_name.ipynb``) in reading order."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def select(notebooks: list[Path], only: list[str] | None) -> list[Path]:
    """Notebooks whose number or name starts with one of ``only`` (all when empty).

    Raises
    ------
    ValueError
        When a selector matches no notebook; the message lists them.
    """
    if not only:
        return notebooks
    chosen = []
    for key in only:
        hits = [p for p in notebooks if p.stem.startswith(key) or p.stem == key]
        if not hits:
            names = ", ".join(p.stem for p in notebooks)
            raise ValueError(f"--only {key!r} matches no notebook; choose from: {names}.")
        chosen += [h for h in hits if h not in chosen]
    return sorted(chosen)


#: The kernels' matplotlib backend: inline, so that every figure of an executed notebook is
#: embedded as a PNG; it renders with Agg and needs no display (headless CI).
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def kernel_env() -> dict[str, str]:
    """Environment for the notebook kernels: quiet TensorFlow, the inline backend.

    ``MPLBACKEND`` is always the inline backend (a shell's ``MPLBACKEND=Agg`` would
    leave the executed notebooks without figures); the other variables keep a value the
    caller's environment gives them.

    Examples
    --------
    >>> kernel_env()["MPLBACKEND"]
    'module://matplotlib_inline.backend_inline'
    """
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0", "CELLCUTTER_NB_QUIET": "1"}
    return {**{k: os.environ.get(k, v) for k, v in env.items()}, "MPLBACKEND": INLINE_BACKEND}


@contextlib.contextmanager
def _environ(changes: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the kernels started inside, restore them after."""
    before = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def kernel_config() -> Config:
    """The kernel manager's settings: IPC transport on POSIX.

    Kernel and runner talk over Unix sockets in Jupyter's runtime folder instead of
    unencrypted TCP ports on localhost, which is what ipykernel's warning "Kernel is
    running over TCP without encryption" (printed once per notebook) asks for.
    """
    from traitlets.config import Config  # a dependency of papermill (the notebook extra)

    return Config({"KernelManager": {"transport": "ipc" if os.name == "posix" else "tcp"}})


def run_notebook(path: Path, out: Path, parameters: dict, cwd: Path = ROOT) -> float:
    """Execute one notebook with papermill; returns wall seconds.

    The kernel runs with :func:`kernel_env` (the inline matplotlib backend: the executed
    copy embeds every figure) and :func:`kernel_config`.

    Raises
    ------
    NotebookFailed
        Naming the notebook, the failing cell and the kept executed copy.
    """
    import papermill as pm

    t0 = time.perf_counter()
    try:
        with _environ(kernel_env()):
            pm.execute_notebook(str(path), str(out), parameters=parameters, cwd=str(cwd),
                                kernel_name="python3", progress_bar=False, log_output=False,
                                config=kernel_config())
    except pm.PapermillExecutionError as err:
        raise NotebookFailed(
            f"{path.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}); "
            f"executed copy kept at {out}") from None
    return time.perf_counter() - t0


def git_commit(root: Path = ROOT) -> str:
    """Current commit (with ``+dirty`` when the tree has changes other than the runner's
    own outputs, ``figures/`` and ``results/``), or ``unknown``."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                             capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":(exclude)figures", ":(exclude)results"],
                               cwd=root, text=True, capture_output=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions() -> dict[str, str]:
    """Installed versions of the packages that shape the results."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def write_report(paths: RunPaths, profile: str, seed: int, timings: dict[str, float],
                 started: str, skipped: tuple[str, ...] = ()) -> Path:
    """Write ``REPORT.md`` and the figure manifest.

    The report holds the paper's numbers beside ours and its conclusions marked held or
    not held (:mod:`cellcutter_nb.experiments.report`, from the tables that exist), the profile's
    settings, seed, device and backend, package versions, git commit and the wall time
    per notebook (notebooks in ``skipped`` were not rerun: their inputs were unchanged).
    """
    from ..backend import DETERMINISTIC, backend_name, device_description  # Keras on demand

    prof = get_profile(profile)
    commit = git_commit()
    device = f"{device_description()} (Keras backend {backend_name()})"
    lines = [f"# Reproduction report — profile `{profile}`", "",
             f"- started: {started}", f"- git commit: {commit}", f"- seed: {seed}",
             f"- device: {device}",
             f"- machine: {platform.platform()}, {os.cpu_count()} CPU cores",
             f"- repeatability: {repeatability(DETERMINISTIC, backend_name())}",
             f"- profile settings: `{json.dumps(prof.__dict__)}`", ""]
    lines += sections(paths.tables)
    lines += ["## Wall time per notebook", "", "| notebook | seconds | |", "|---|---:|---|"]
    lines += [f"| {name} | {sec:.1f} | {'inputs unchanged, not rerun' if name in skipped else ''} |"
              for name, sec in timings.items()]
    lines += [f"| **total** | {sum(timings.values()):.1f} | |"]
    lines += ["", "## Package versions", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in versions().items()]
    tables = sorted(paths.tables.glob("*.csv"))
    if tables:
        lines += ["", "## Tables", ""] + [f"- `tables/{t.name}`" for t in tables]
    report = paths.results / "REPORT.md"
    write_atomic(report, "\n".join(lines) + "\n")
    manifest = paths.figures / "MANIFEST.md"
    figs = sorted(p.name for p in paths.figures.glob("*.png"))
    write_atomic(manifest, "\n".join(
        ["# Figures", "", f"Produced by `make reproduce PROFILE={profile}` on {started}, "
         f"commit {commit}, {platform.platform()} (CPU count {os.cpu_count()}), "
         f"device {device}.", ""]
        + [f"- {f}" for f in figs]) + "\n")
    return report


def repeatability(deterministic: bool, backend: str) -> str:
    """How exactly a rerun repeats this one (see :mod:`cellcutter_nb.backend`).

    Examples
    --------
    >>> repeatability(True, "tensorflow")
    'bit for bit (TensorFlow on one thread, CELLCUTTER_NB_DETERMINISTIC=1)'
    """
    if backend != "tensorflow":
        return f"seeded; not checked bit for bit under {backend}"
    if deterministic:
        return "bit for bit (TensorFlow on one thread, CELLCUTTER_NB_DETERMINISTIC=1)"
    return ("seeded, but multi-threaded CPU kernels make reruns differ in the last digits, "
            "which training amplifies (CELLCUTTER_NB_DETERMINISTIC=1: one thread, bit for "
            "bit)")


def input_hash(notebook: Path, parameters: dict, root: Path = ROOT) -> str:
    """Hash of what a notebook's outputs depend on: the notebook, its parameters and the
    package's source; a rerun skips the notebook when it is unchanged."""
    h = hashlib.sha256(notebook.read_bytes())
    h.update(json.dumps(parameters, sort_keys=True).encode())
    package = Path(__file__).resolve().parents[1]
    for src in sorted(package.rglob("*.py")):
        h.update(src.relative_to(package).as_posix().encode() + src.read_bytes())
    return h.hexdigest()[:16]


def reproduce(profile: str = "quick", only: list[str] | None = None, seed: int = 0,
              root: Path = ROOT, force: bool = False) -> Path:
    """Run the selected notebooks for ``profile`` and write the report.

    A notebook whose inputs (:func:`input_hash`) are unchanged since its last successful
    run, with its executed copy still there, is not rerun (``force=True`` reruns it);
    trained models are cached separately (:mod:`cellcutter_nb.experiments.model_cache`), so a
    rerun after an interruption resumes where it stopped.

    Returns
    -------
    Path
        The ``REPORT.md`` written.
    """
    get_profile(profile)  # validates the name
    notebooks = select(discover(root / "notebooks"), only)
    paths = RunPaths.for_profile(profile, root)
    paths.make()
    started = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    # wall times of earlier runs of this profile are kept, so `--only` updates the report;
    # both files are read and written under the profile's lock (two runs at once merge)
    log, state_file = paths.results / "timings.json", paths.results / "state.json"
    skipped = []
    for nb in notebooks:
        params = {"profile": profile, "seed": seed, "figures_dir": str(paths.figures),
                  "tables_dir": str(paths.tables)}
        key, out = input_hash(nb, params), paths.notebooks / nb.name
        with locked(paths.results):
            state, timings = read_json(state_file), read_json(log)
        if not force and state.get(nb.stem) == key and out.exists() and nb.stem in timings:
            print(f"[{profile}] {nb.name}: inputs unchanged, not rerun", flush=True)
            skipped.append(nb.stem)
            continue
        print(f"[{profile}] {nb.name} ...", flush=True)
        update_json(state_file, lambda d, nb=nb: d.pop(nb.stem, None))
        seconds = run_notebook(nb, out, params, cwd=root)
        print(f"[{profile}] {nb.name} done in {seconds:.1f} s", flush=True)
        update_json(log, lambda d, nb=nb, t=seconds: d.update({nb.stem: t}))
        update_json(state_file, lambda d, nb=nb, k=key: d.update({nb.stem: k}))
    with locked(paths.results):
        timings = read_json(log)
    return write_report(paths, profile, seed, dict(sorted(timings.items())), started,
                        tuple(skipped))


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold ``folder/.lock`` exclusively (``fcntl.flock``; a no-op where there is none):
    the runner's state files of one profile are read and written under it.

    Examples
    --------
    >>> import tempfile
    >>> with locked(Path(tempfile.mkdtemp())):
    ...     pass
    """
    with open(folder / ".lock", "a") as fh:
        if fcntl is not None:
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh, fcntl.LOCK_UN)


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; ``{}`` when the file is missing or unreadable (then the
    notebooks it described simply run again).

    Examples
    --------
    >>> read_json(Path("no/such/state.json"))
    {}
    """
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary sibling, then rename it over ``path`` (readers see the
    old or the new file, never half of one)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def update_json(path: Path, change: Callable[[dict], object]) -> dict:
    """Read, ``change`` in place and write back a JSON object, under the folder's lock.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "state.json"
    >>> update_json(p, lambda d: d.update(a=1))
    {'a': 1}
    """
    with locked(path.parent):
        data = read_json(path)
        change(data)
        write_atomic(path, json.dumps(dict(sorted(data.items())), indent=1))
    return data
