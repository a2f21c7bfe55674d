"""``python -m cellcutter_nb segment``: files in, labels + overlay + per-cell CSV out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from cellcutter_nb.app import cli, files
from cellcutter_nb.app.outputs import cell_table
from cellcutter_nb.data.field import Field
from cellcutter_nb.data.synth import make_field

TINY = ("--profile", "smoke", "--width", "4", "--depth", "2", "--epochs", "1", "--steps", "1",
        "--max-seconds", "20", "--quiet")


@pytest.fixture(scope="module")
def synthetic():
    return make_field(seed=0, shape=160)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic):
    """One tiny training run through the CLI, with the model saved."""
    folder = tmp_path_factory.mktemp("cli")
    for name in ("fl", "nuc"):
        img = np.clip(np.round(synthetic[name]), 0, 65535).astype(np.uint16)
        tifffile.imwrite(folder / f"{name}.tif", img)
    argv = ["segment", "--fl", folder / "fl.tif", "--nuc", folder / "nuc.tif",
            "--pixel-size", "0.5", *TINY, "--save-model", folder / "model.keras",
            "--out", folder / "labels.tif"]
    rc = cli.main([str(a) for a in argv])
    return folder, rc


def test_segment_writes_labels_overlay_and_table(trained, capsys):
    folder, rc = trained
    assert rc == 0
    labels = tifffile.imread(folder / "labels.tif")
    assert labels.dtype == np.uint32 and labels.shape == (160, 160)
    present = np.unique(labels[labels > 0])
    assert len(present) >= 3
    table = pd.read_csv(folder / "labels_cells.csv")
    assert len(table) == len(present) and table["label"].tolist() == present.tolist()
    assert {"area_px", "area_um2", "centroid_row", "centroid_col", "marker_row",
            "mean_fl", "mean_nuc"} <= set(table.columns)
    np.testing.assert_allclose(table["area_um2"], table["area_px"] * 0.25, rtol=1e-5)
    assert (folder / "labels_overlay.png").read_bytes()[:4] == b"\x89PNG"
    assert (folder / "model.keras").stat().st_size > 0
    assert not list(folder.glob(".*part*"))  # no temporary file left behind


def test_saved_model_reused_without_training(trained, capsys):
    folder, _ = trained
    capsys.readouterr()
    rc = cli.main([str(a) for a in (
        "segment", "--fl", folder / "fl.tif", "--nuc", folder / "nuc.tif",
        "--pixel-size", "0.5", "--model", folder / "model.keras",
        "--out", folder / "again.tif")])
    out = capsys.readouterr().out
    assert rc == 0 and "wall time" in out and "model trained before (--model)" in out
    np.testing.assert_array_equal(tifffile.imread(folder / "again.tif"),
                                  tifffile.imread(folder / "labels.tif"))
    # the model records fl + nuc: one channel is refused before anything is written
    rc = cli.main([str(a) for a in (
        "segment", "--fl", folder / "fl.tif", "--nuc", folder / "nuc.tif", "--channels", "fl",
        "--model", folder / "model.keras", "--out", folder / "one.tif")])
    assert rc == 2 and "trained on fl,nuc but this run gives fl;" in capsys.readouterr().err
    assert not (folder / "one.tif").exists()


def test_failure_while_writing_leaves_nothing(tmp_path, synthetic, monkeypatch):

    for name in ("fl", "nuc"):
        tifffile.imwrite(tmp_path / f"{name}.tif", synthetic[name].astype(np.uint16))

    def fake_segment(field, channels, preset, profile, **kwargs):  # no training needed
        history = pd.DataFrame({"loss": [1.0], "patches_seen": [10]})
        history.attrs.update(stopped="max_epochs", seconds=0.0)
        return synthetic.labels, None, history

    def broken_overlay(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(files, "segment", fake_segment)
    monkeypatch.setattr(files, "write_overlay", broken_overlay)
    with pytest.raises(OSError, match="disk full"):
        files.segment_files(fl=tmp_path / "fl.tif", nuc=tmp_path / "nuc.tif",
                          out=tmp_path / "labels.tif", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fl.tif", "nuc.tif"]


def test_last_line_says_under_trained_and_counts_fragments(tmp_path, synthetic, monkeypatch,
                                                           capsys):
    for name in ("fl", "nuc"):
        tifffile.imwrite(tmp_path / f"{name}.tif", synthetic[name].astype(np.uint16))
    labels = synthetic.labels.copy()
    cell = labels == labels.max()
    cut = cell & (np.arange(labels.shape[1]) == np.nonzero(cell)[1].min() + 1)
    labels[cut] = 0  # a one-pixel-wide cut: the cell's leftmost column is a second piece

    def fake_segment(field, channels, preset, profile, **kwargs):  # no training needed
        history = pd.DataFrame({"loss": [1.0], "patches_seen": [1454]})
        history.attrs.update(stopped="max_epochs", seconds=0.0)
        return labels, None, history

    monkeypatch.setattr(files, "segment", fake_segment)
    monkeypatch.setattr(files, "_write", lambda *args: len(np.unique(labels)) - 1)
    rc = cli.main(["segment", "--fl", str(tmp_path / "fl.tif"), "--nuc",
                   str(tmp_path / "nuc.tif"), "--quiet", "--out", str(tmp_path / "l.tif")])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    n = len(np.unique(labels)) - 1
    assert rc == 0 and "cells from" not in last
    assert f"{n} labels for " in last and f"{n - 1} of them one connected piece" in last
    assert "under-trained: 1,454 patches seen (< 20,000)" in last  # fast, the CLI's preset


def test_cell_table_matches_regionprops():
    from skimage.measure import regionprops_table

    rng = np.random.default_rng(1)
    labels = np.zeros((40, 50), np.uint32)
    labels[2:10, 3:20], labels[15:30, 10:14], labels[31:39, 40:49] = 1, 4, 2
    image = rng.random((40, 50))
    f = Field({"fl": image}, pixel_size=0.8)
    table = cell_table(labels, f)
    ref = regionprops_table(labels.astype(int), image,
                            properties=("label", "area", "centroid", "intensity_mean"))
    np.testing.assert_array_equal(table["label"], ref["label"])
    np.testing.assert_allclose(table["area_px"], ref["area"])
    np.testing.assert_allclose(table["area_um2"], ref["area"] * 0.64)
    np.testing.assert_allclose(table[["centroid_row", "centroid_col"]],
                               np.column_stack([ref["centroid-0"], ref["centroid-1"]]))
    np.testing.assert_allclose(table["mean_fl"], ref["intensity_mean"])


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["segment", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert all(o in text for o in ("--fl", "--nuc", "--markers", "--model", "--save-model",
                                   "--out", "--max-seconds", "--scribbles"))
