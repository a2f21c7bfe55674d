"""Issue 15, runs: two runners or cache writers at once, unreadable cache entries, notebook
12's parameters, and Ctrl-C / SIGTERM / --checkpoint on a real ``segment`` process."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from cellcutter_nb import config
from cellcutter_nb.app import cli
from cellcutter_nb.data import synth
from cellcutter_nb.experiments import model_cache, reproduce
from cellcutter_nb.experiments.notebook import check_parameters, own_images_paths

ROOT = Path(__file__).resolve().parents[1]


# --- the papermill runner's state files -----------------------------------------------------
def test_three_runners_at_once_keep_valid_state_files(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    for i in (1, 2, 3):
        (tmp_path / "notebooks" / f"0{i}_x.ipynb").write_text("{}")

    def fake_run(path, out, parameters, cwd=None):
        out.write_text("{}")
        return 0.001

    monkeypatch.setattr(reproduce, "run_notebook", fake_run)
    monkeypatch.setattr(reproduce, "write_report", lambda *a, **k: tmp_path / "REPORT.md")
    errors: list[str] = []

    def runner():
        for _ in range(25):
            try:
                reproduce.reproduce("smoke", None, 0, root=tmp_path, force=True)
            except Exception as err:  # noqa: BLE001 - the test collects every failure
                errors.append(repr(err))

    with contextlib.redirect_stdout(io.StringIO()):
        threads = [threading.Thread(target=runner) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []  # before: JSONDecodeError in most runs
    results = tmp_path / "results" / "smoke"
    assert sorted(json.loads((results / "state.json").read_text())) == ["01_x", "02_x", "03_x"]
    assert sorted(json.loads((results / "timings.json").read_text())) == ["01_x", "02_x",
                                                                          "03_x"]
    assert not list(results.glob(".*.tmp"))


def test_an_unreadable_state_file_means_rerun_not_crash(tmp_path):
    (tmp_path / "state.json").write_text('{"01_data": "abc"')  # cut short
    assert reproduce.read_json(tmp_path / "state.json") == {}
    assert reproduce.update_json(tmp_path / "state.json", lambda d: d.update(a=1)) == {"a": 1}


# --- the model cache ------------------------------------------------------------------------
def test_writers_of_one_cache_key_keep_one_good_entry(tmp_path):
    errors: list[str] = []

    def writer(i):
        for j in range(40):
            try:
                with model_cache.atomic_folder(tmp_path / f"k{j % 4}") as tmp:
                    (tmp / "meta.json").write_text(json.dumps({"writer": i}))
            except Exception as err:  # noqa: BLE001
                errors.append(repr(err))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []  # before: ENOTEMPTY / FileNotFoundError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k0", "k1", "k2", "k3"]
    assert all(json.loads((tmp_path / f"k{j}" / "meta.json").read_text())["writer"] in range(4)
               for j in range(4))


def test_replace_swaps_a_cache_entry_and_a_failed_write_leaves_the_old(tmp_path):
    with model_cache.atomic_folder(tmp_path / "k") as tmp:
        (tmp / "a").write_text("old")
    with pytest.raises(RuntimeError), model_cache.atomic_folder(tmp_path / "k", True) as tmp:
        raise RuntimeError("training failed")
    assert (tmp_path / "k" / "a").read_text() == "old"
    with model_cache.atomic_folder(tmp_path / "k", replace=True) as tmp:
        (tmp / "a").write_text("new")
    assert (tmp_path / "k" / "a").read_text() == "new" and len(list(tmp_path.iterdir())) == 1


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["labels.npy", "model.keras", "meta.json", "history.csv",
                                    "cells.csv"])
def test_an_unreadable_cache_entry_is_trained_again_with_a_notice(tmp_path, damage):
    prof = config.get_profile("smoke").replace(field_size=128, max_epochs=1, steps_per_epoch=1,
                                               unet_width=4, unet_depth=2)
    preset = config.get_preset("paper")
    run = model_cache.fit(prof, preset, 0, ("fl", "nuc"), cache_dir=tmp_path)
    path = run.folder / damage
    path.write_bytes(path.read_bytes()[:40])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        again = model_cache.fit(prof, preset, 0, ("fl", "nuc"), cache_dir=tmp_path)
    assert f"cache entry {run.folder} is unreadable" in out.getvalue()
    assert "training it again" in out.getvalue()
    assert again.labels.shape == (128, 128) and again.model().input_shape[1] == 64
    reloaded = model_cache.fit(prof, preset, 0, ("fl", "nuc"), cache_dir=tmp_path)
    np.testing.assert_array_equal(reloaded.labels, again.labels)


# --- notebook 12 ----------------------------------------------------------------------------
@pytest.mark.parametrize(("fl", "nuc", "match"), [
    ("cells.tif", None, "fl_path is set but nuc_path is not"),
    (None, "dapi.tif", "nuc_path is set but fl_path is not"),
])
def test_notebook_12_refuses_one_image_without_the_other(fl, nuc, match):
    with pytest.raises(ValueError, match=f"papermill parameter {match}.*-p nuc_path"):
        own_images_paths(fl, nuc, "figures", "out")


def test_notebook_12_never_writes_your_figures_into_the_repository(tmp_path):
    fl, nuc, figs = own_images_paths("a.tif", "b.tif", str(ROOT / "figures"), str(tmp_path))
    assert (fl, nuc, figs) == (Path("a.tif"), Path("b.tif"), str(tmp_path))
    assert own_images_paths(None, None, str(ROOT / "figures"), None)[2] == str(ROOT / "figures")


def test_notebook_pixel_size_parameter_must_be_plausible():
    with pytest.raises(ValueError, match="pixel_size=0.01 .* between 0.05 and 5"):
        check_parameters("smoke", 0, pixel_size=0.01)


@pytest.mark.slow
def test_notebook_12_with_only_fl_path_fails_in_its_set_up_cell(tmp_path):
    tifffile.imwrite(tmp_path / "cells.tif", np.ones((64, 64), np.uint16))
    with pytest.raises(reproduce.NotebookFailed, match="fl_path is set but nuc_path is not"):
        reproduce.run_notebook(ROOT / "notebooks" / "12_your_own_images.ipynb",
                               tmp_path / "o.ipynb",
                               {"profile": "smoke", "fl_path": str(tmp_path / "cells.tif"),
                                "output_dir": str(tmp_path / "out")})
    assert not (tmp_path / "out").exists()


# --- a real segment process -----------------------------------------------------------------
@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    field = synth.make_field(seed=0, shape=160)
    for name in ("fl", "nuc"):
        tifffile.imwrite(folder / f"{name}.tif",
                         np.clip(np.round(field[name]), 0, 65535).astype(np.uint16))
    return folder


TINY = ("--profile", "smoke", "--width", "4", "--depth", "2")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_training_writes_what_the_time_cap_would(inputs, signum):
    out = inputs / f"{signal.Signals(signum).name}.tif"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cellcutter_nb", "segment", "--fl", str(inputs / "fl.tif"),
         "--nuc", str(inputs / "nuc.tif"), *TINY, "--epochs", "1000", "--steps", "2",
         "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        env={**os.environ, "CELLCUTTER_NB_QUIET": "1"})
    for line in proc.stdout:  # training starts after the mask line (a signal from then on
        if line.startswith("mask covers"):  # stops it after its first step)
            break
    time.sleep(2)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum and "Traceback" not in stderr
    assert "training interrupted: the outputs are those of the network as it was" in stderr
    assert "stopped: interrupted" in stdout and f"wrote {out}" in stdout
    assert tifffile.imread(out).shape == (160, 160)
    assert not list(inputs.glob(".*part*"))


@pytest.mark.slow
def test_checkpoint_resumes_a_cli_run(inputs, capsys):
    ck = inputs / "ck"
    base = ["segment", "--quiet", "--fl", str(inputs / "fl.tif"), "--nuc",
            str(inputs / "nuc.tif"), *TINY, "--steps", "1", "--checkpoint", str(ck)]
    assert cli.main([*base, "--epochs", "1", "--out", str(inputs / "c1.tif")]) == 0
    assert json.loads((ck / "state.json").read_text())["epoch"] == 0
    assert cli.main([*base, "--epochs", "2", "--out", str(inputs / "c2.tif")]) == 0
    assert json.loads((ck / "state.json").read_text())["epoch"] == 1
    history = (ck / "history.csv").read_text().splitlines()
    assert len(history) == 3 and history[1].startswith("0,") and history[2].startswith("1,")
    assert sorted(p.name for p in ck.iterdir()) == ["checkpoint.keras", "history.csv",
                                                    "state.json"]
