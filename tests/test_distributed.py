"""The experiment grid as a Dask task graph (``cellcutter_nb.experiments.distributed``) and
``python -m cellcutter_nb grid``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import numpy as np
import pandas as pd
import pytest

from cellcutter_nb import config
from cellcutter_nb.app import cli, cli_grid
from cellcutter_nb.experiments import distributed, model_cache, paper
from cellcutter_nb.experiments.notebook import setup
from cellcutter_nb.experiments.reproduce import NOTEBOOKS

PROFILE = config.get_profile("smoke")
PRESET = config.get_preset("fast")
COMBOS = [("fl",), ("fl", "nuc")]
#: Scores that measure the machine, not the model.
TIMINGS = ("seconds", "patches_per_second")


@pytest.fixture(scope="module")
def client():
    """A local cluster of two worker processes, one thread each (as ``"local"`` makes)."""
    with distributed.connect("local", workers=2) as c:
        yield c


def _same_run(a: model_cache.Run, b: model_cache.Run) -> None:
    assert (a.key, a.channels, a.with_mask, a.index) == (b.key, b.channels, b.with_mask, b.index)
    assert {k: v for k, v in a.scores.items() if k not in TIMINGS} == \
        {k: v for k, v in b.scores.items() if k not in TIMINGS}
    np.testing.assert_array_equal(a.labels, b.labels)
    cols = [c for c in a.history.columns if c != "seconds"]
    pd.testing.assert_frame_equal(a.history[cols], b.history[cols], check_exact=True)
    pd.testing.assert_frame_equal(a.cells, b.cells, check_exact=True)


#: The serial grid in a fresh process with TensorFlow on one thread, into the cache argv[1].
SERIAL = f"""
import sys
from cellcutter_nb import config
from cellcutter_nb.experiments import paper
paper.grid(config.get_profile("smoke"), config.get_preset("fast"), 0, combinations={COMBOS!r},
           masks=(True,), replicates=[0], cache_dir=sys.argv[1], progress=False)
"""


@pytest.mark.slow
def test_grid_on_two_workers_equals_the_serial_grid(client, tmp_path, monkeypatch):
    env = dict(os.environ, CELLCUTTER_NB_DETERMINISTIC="1", CELLCUTTER_NB_QUIET="1")
    serial_run = subprocess.Popen([sys.executable, "-c", SERIAL, str(tmp_path / "serial")],
                                  env=env, stderr=subprocess.PIPE, text=True)
    kw = dict(combinations=COMBOS, masks=(True,), replicates=[0], progress=False)
    dask = paper.grid(PROFILE, PRESET, 0, cache_dir=tmp_path / "dask", client=client, **kw)
    assert serial_run.wait(timeout=600) == 0, serial_run.stderr.read()[-2000:]
    _no_training(monkeypatch)
    serial = paper.grid(PROFILE, PRESET, 0, cache_dir=tmp_path / "serial", **kw)  # loads
    assert [(r.index, r.channels) for r in dask] == [(0, c) for c in COMBOS]  # job order
    for a, b in zip(serial, dask, strict=True):
        _same_run(a, b)  # bit for bit
        assert b.folder == (tmp_path / "dask" / "runs" / b.key).resolve()
        assert b._model is None  # the Keras model stays on the worker, and loads here:
    assert all(np.array_equal(x, y) for x, y in zip(a.model().get_weights(),
                                                      b.model().get_weights(), strict=True))
    assert sorted(p.name for p in (tmp_path / "dask" / "runs").iterdir()) == \
        sorted(r.key for r in dask)  # every model in the cache, whole


def _no_training(monkeypatch) -> None:
    """From here on, ``fit`` can only load from the cache."""
    import cellcutter_nb.core.train as train_module

    monkeypatch.setattr(train_module, "train", lambda *a, **k: pytest.fail("retrained"))


@pytest.mark.slow
def test_two_workers_fitting_the_same_key_leave_one_good_entry(client, tmp_path, monkeypatch):
    from distributed import get_task_stream

    job = (0, ("fl",), True)
    with get_task_stream(client) as stream:
        runs = distributed.fit_jobs(PROFILE, PRESET, [job, job], cache_dir=tmp_path,
                                    client=client, progress=False)
    tasks = [t for t in stream.data if t["key"].startswith("fit-")]
    assert len({t["worker"] for t in tasks}) == 2  # trained on both workers...
    (s0, e0), (s1, e1) = ([s["start"], s["stop"]] for t in tasks for s in t["startstops"]
                          if s["action"] == "compute")
    assert max(s0, s1) < min(e0, e1)  # ...at the same time
    _same_run(*runs)
    entries = list((tmp_path / "runs").iterdir())
    assert [p.name for p in entries] == [runs[0].key]  # one entry, no temporary folder left
    _no_training(monkeypatch)
    _same_run(model_cache.fit(PROFILE, PRESET, *job[:2], cache_dir=tmp_path), runs[0])


@pytest.mark.parametrize(("deterministic", "name", "message"), [
    (False, "tensorflow", "without CELLCUTTER_NB_DETERMINISTIC=1"),
    (True, "jax", "start the workers with KERAS_BACKEND=tensorflow")])
def test_a_worker_that_loaded_keras_otherwise_is_refused(monkeypatch, deterministic, name,
                                                         message):
    import cellcutter_nb

    loaded = types.SimpleNamespace(DETERMINISTIC=deterministic, backend_name=lambda: name)
    monkeypatch.setitem(sys.modules, "cellcutter_nb.backend", loaded)
    monkeypatch.setattr(cellcutter_nb, "backend", loaded, raising=False)
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")  # the caller's
    with pytest.raises(RuntimeError, match=message):
        distributed._prepare_worker(distributed.worker_environ())


def test_without_dask_the_error_names_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    with pytest.raises(ImportError, match=r'pip install "cellcutter_nb\[dask\]"'):
        paper.grid(PROFILE, PRESET, combinations=COMBOS, cache_dir=tmp_path, client="local")
    assert cli.main(["grid", "--profile", "smoke", "--cache-dir", str(tmp_path)]) == 1
    assert 'pip install "cellcutter_nb[dask]"' in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--workers", "0"], ["--workers", "two"],
                                  ["--workers", "2", "--scheduler", "tcp://a:1"]])
def test_bad_grid_options_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["grid", "--profile", "smoke", *argv])
    assert stop.value.code == 2
    assert "--workers" in capsys.readouterr().err


def test_connect_refuses_workers_for_a_cluster_of_its_own():
    with pytest.raises(ValueError, match="workers"), \
            distributed.connect("tcp://127.0.0.1:1", workers=2):
        pass


@pytest.mark.slow
def test_unreachable_scheduler_is_a_clear_error(tmp_path, capsys):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        rc = cli.main(["grid", "--profile", "smoke", "--scheduler", "tcp://127.0.0.1:1",
                       "--cache-dir", str(tmp_path)])
    assert rc == 1
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in capsys.readouterr().err


@pytest.mark.slow
def test_grid_command_trains_what_the_notebooks_load(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cli_grid.paper, "grid", lambda *a, **k: calls.append(
        (a, dict(k, client=len(k["client"].nthreads())))))
    assert cli.main(["grid", "--profile", "smoke", "--workers", "1", "--quiet",
                     "--cache-dir", str(tmp_path)]) == 0
    (args, kwargs), = calls
    prof, preset, _ = setup("smoke", 0, learning_rate=0.001, quiet=True)  # notebook 05's call
    assert args == (prof, preset, 0)
    assert kwargs["cache_dir"] == tmp_path and kwargs["client"] == 1  # one worker
    assert "24 models of profile smoke" in capsys.readouterr().out


def test_grid_command_uses_the_notebooks_learning_rate():
    for name in ("04_training_traces", "05_table1_ablation", "09_paper_vs_code"):
        nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
        params = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
        assert f"learning_rate = {cli_grid.NOTEBOOK_LEARNING_RATE}" in "".join(params["source"])


def test_jax_workers_share_a_gpu_by_allocating_on_demand(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    assert distributed.worker_environ()["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "true")  # the caller's choice stays
    assert distributed.worker_environ()["XLA_PYTHON_CLIENT_PREALLOCATE"] == "true"
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert "XLA_PYTHON_CLIENT_PREALLOCATE" not in distributed.worker_environ()
