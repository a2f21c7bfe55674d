"""Issue 15, the ``segment`` command: options named in messages, inputs never overwritten,
outputs written whole or not at all, clean interruption. Training is replaced by the
position-only partition (``fake_training``) unless a test needs the network."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tifffile

from cellcutter_nb.app import cli, files
from cellcutter_nb.app.interrupt import Interrupted
from cellcutter_nb.app.model_file import model_info, save_model
from cellcutter_nb.config import get_preset
from cellcutter_nb.data import examples, synth
from cellcutter_nb.prep.baseline import nearest_marker_partition

INPUTS = ["fl.tif", "nuc.tif"]


@pytest.fixture(scope="module")
def syn():
    return synth.make_field(seed=0, shape=160)


@pytest.fixture
def images(tmp_path, syn):
    for name in ("fl", "nuc"):
        tifffile.imwrite(tmp_path / f"{name}.tif",
                         np.clip(np.round(syn[name]), 0, 65535).astype(np.uint16))
    return tmp_path


@pytest.fixture
def fake_training(monkeypatch):
    """``segment`` → the position-only partition; records what it was given."""
    calls = []

    def fake(field, channels, preset, profile, *, markers, mask, **kwargs):
        calls.append({"field": field, "markers": markers, **kwargs})
        labels = nearest_marker_partition(markers, np.ones(field.shape, bool)
                                          if mask is None else mask)
        history = pd.DataFrame({"epoch": [0], "loss": [1.0], "patches_seen": [10]})
        history.attrs.update(stopped="max_epochs", seconds=0.0)
        return labels, None, history

    monkeypatch.setattr(files, "segment", fake)
    return calls


def _cli(capsys, *argv):
    rc = cli.main(["segment", "--quiet", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _base(folder):
    return ("--fl", folder / "fl.tif", "--nuc", folder / "nuc.tif")


def _only(folder, *names):
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


# --- inputs are never outputs ---------------------------------------------------------------
@pytest.mark.parametrize(("extra", "out", "match"), [
    ((), "fl.tif", "--out would overwrite the input --fl fl.tif; choose another --out"),
    (("--markers", "l_cells.csv"), "l.tif",
     "--out's cell table would overwrite the input --markers l_cells.csv"),
    (("--markers", "l_overlay.png"), "l.tif", "--out's overlay would overwrite the input"),
    (("--scribbles", "l.tif"), "l.tif", "--out would overwrite the input --scribbles l.tif"),
])
def test_an_output_that_is_an_input_is_refused_even_with_overwrite(
        images, capsys, fake_training, extra, out, match):
    (images / "l_cells.csv").write_text("row,col\n40,40\n80,80\n")
    (images / "l_overlay.png").write_text("row,col\n40,40\n80,80\n")
    tifffile.imwrite(images / "l.tif", np.ones((160, 160), np.uint8))
    before = {p.name: p.read_bytes() for p in images.iterdir()}
    extra = tuple(images / e if "." in e else e for e in extra)
    rc, _, err = _cli(capsys, *_base(images), *extra, "--out", images / out, "--overwrite")
    assert rc == 2 and match in err and not fake_training
    assert {p.name: p.read_bytes() for p in images.iterdir()} == before


@pytest.mark.parametrize("link", [os.symlink, os.link])
def test_an_output_linked_to_an_input_is_refused(images, capsys, fake_training, link):
    link(images / "nuc.tif", images / "link.tif")
    rc, _, err = _cli(capsys, *_base(images), "--out", images / "link.tif", "--overwrite")
    assert rc == 2 and "would overwrite the input --nuc nuc.tif" in err
    _only(images, *INPUTS, "link.tif")


def test_unwritable_output_folder_fails_before_training_naming_the_path(
        images, capsys, fake_training):
    rc, _, err = _cli(capsys, *_base(images), "--out", "/proc/x.tif")
    assert rc == 2 and err.startswith("error: Cannot write /proc/x.tif") and ".part" not in err
    assert not fake_training


# --- outputs are created whole, exclusively -------------------------------------------------
@pytest.mark.parametrize("appears", ["l.tif", "l_cells.csv"])
def test_a_second_run_to_the_same_out_does_not_replace_the_first(
        images, capsys, fake_training, monkeypatch, appears):
    real = files.segment

    def racing(*args, **kwargs):  # another run writes its output while this one trains
        (images / appears).write_text("the first run's file")
        return real(*args, **kwargs)

    monkeypatch.setattr(files, "segment", racing)
    rc, _, err = _cli(capsys, *_base(images), "--out", images / "l.tif")
    assert rc == 2 and f"{images / appears} appeared while this run worked" in err
    assert (images / appears).read_text() == "the first run's file"
    _only(images, *INPUTS, appears)


def test_overwrite_replaces_outputs(images, capsys, fake_training):
    (images / "l.tif").write_text("old")
    rc, out, _ = _cli(capsys, *_base(images), "--out", images / "l.tif", "--overwrite")
    assert rc == 0 and "wrote" in out and tifffile.imread(images / "l.tif").max() > 0


def test_stale_temporary_files_of_dead_processes_are_removed(images, capsys, fake_training):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = images / f".l.{dead.pid}-0123abcd.part.tif"
    live = images / f".l.{os.getpid()}-89abcdef.part.tif"
    for p in (stale, live):
        p.write_bytes(b"half")
    rc = cli.main(["segment", *map(str, _base(images)), "--out", str(images / "l.tif")])
    out = capsys.readouterr().out
    assert rc == 0 and f"removed {stale.name}, left by an interrupted run" in out
    assert not stale.exists() and live.exists()


# --- options named as options ---------------------------------------------------------------
@pytest.mark.parametrize(("extra", "match"), [
    (("--max-seconds", "nan"), "--max-seconds nan is not a time cap"),
    (("--max-seconds", "-5"), "--max-seconds -5.0 is not a time cap"),
    (("--max-seconds", "inf"), "--max-seconds inf is not a time cap"),
    (("--seed", "-1"), "--seed=-1 is not a valid seed"),
    (("--epochs", "0"), "--epochs 0 is not allowed; give a whole number >= 1"),
    (("--steps", "-2"), "--steps -2 is not allowed"),
    (("--width", "0"), "--width 0 is not allowed"),
    (("--depth", "-1"), "--depth -1 is not allowed; give a whole number >= 0"),
    (("--pixel-size", "0.01"), "--pixel-size=0.01 µm/px is outside the plausible range"),
    (("--pixel-size", "nan"), "--pixel-size=nan µm/px is outside"),
    (("--pixel-size", "1e9"), "--pixel-size=1e+09 µm/px is outside"),
    (("--page", "fl=x"), "--page fl=x: give a whole number"),
    (("--channel", "gfp=0"), "--channel gfp=0: give a whole number"),
    (("--checkpoint", "fl.tif"), "is a file; give a folder"),
    (("--checkpoint", "no/such/ck"), "its parent folder"),
])
def test_bad_numbers_and_options_are_refused_by_their_option(
        images, capsys, fake_training, extra, match):
    extra = tuple(str(images / e) if e in ("fl.tif", "no/such/ck") else e for e in extra)
    rc, _, err = _cli(capsys, *_base(images), *extra, "--out", images / "l.tif")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and match in err, err
    assert not fake_training
    _only(images, *INPUTS)


def test_no_nucleus_image_and_no_markers_names_both_options(images, capsys, fake_training):
    rc, _, err = _cli(capsys, "--fl", images / "fl.tif", "--out", images / "l.tif")
    assert rc == 2 and "give --nuc" in err and "--markers CSV" in err and "markers=" not in err


def test_not_a_tiff_names_option_file_and_format(images, capsys, fake_training):
    (images / "x.tif").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    rc, _, err = _cli(capsys, "--fl", images / "x.tif", "--nuc", images / "nuc.tif",
                      "--out", images / "l.tif")
    assert rc == 2 and f"Cannot read --fl {images / 'x.tif'}: the file is a PNG image" in err


@pytest.fixture
def stack(images, syn):
    planes = np.stack([syn["fl"] * k for k in (1, 2, 3, 4, 5)]).astype(np.float32)
    tifffile.imwrite(images / "stack.tif", planes)
    rgb = np.stack([syn["fl"] / 8 * k for k in (1, 2, 3)], -1).astype(np.uint8)
    tifffile.imwrite(images / "rgb.tif", rgb, photometric="rgb")
    return planes, rgb


@pytest.mark.parametrize(("image", "extra", "match"), [
    ("stack.tif", (), "is a multi-page stack of 5 planes (shape (5, 160, 160)), not one 2-D "
                      "plane. Pass --page k (k = 0..4)"),
    ("stack.tif", ("--page", "7"), "--page 7 is out of range for --fl"),
    ("rgb.tif", (), "RGB/multi-colour with 3 colours (shape (160, 160, 3)), not one 2-D plane. "
                    "Pass --channel k (k = 0..2)"),
    ("rgb.tif", ("--channel", "3"), "--channel 3 is out of range for --fl"),
])
def test_stacks_and_rgb_tell_the_option_to_use(images, capsys, fake_training, stack, image,
                                               extra, match):
    rc, _, err = _cli(capsys, "--fl", images / image, "--nuc", images / "nuc.tif", *extra,
                      "--out", images / "l.tif")
    assert rc == 2 and match in err and "load_field" not in err, err


@pytest.mark.parametrize(("image", "extra", "index"), [
    ("stack.tif", ("--page", "1"), 1), ("stack.tif", ("--page", "fl=3"), 3),
    ("rgb.tif", ("--channel", "2"), 2),
])
def test_page_and_channel_pick_the_plane(images, capsys, fake_training, stack, image, extra,
                                         index):
    rc, _, err = _cli(capsys, "--fl", images / image, "--nuc", images / "nuc.tif", *extra,
                      "--out", images / "l.tif")
    assert rc == 0, err
    want = stack[0][index] if image == "stack.tif" else stack[1][..., index]
    np.testing.assert_array_equal(fake_training[0]["field"]["fl"], want.astype(np.float32))


def test_markers_csv_from_excel_and_without_header(images, capsys, fake_training, syn):
    body = "".join(f"{r:.2f},{c:.2f}\n" for r, c in syn.markers)
    (images / "m.csv").write_text("\ufeffrow,col\n" + body, encoding="utf-8")
    rc, _, err = _cli(capsys, *_base(images), "--markers", images / "m.csv",
                      "--out", images / "l.tif")
    assert rc == 0, err
    np.testing.assert_allclose(fake_training[0]["markers"], syn.markers, atol=0.01)
    (images / "i.csv").write_text("".join(f"{i},{line}" for i, line in
                                          enumerate(body.splitlines(True))))
    rc, _, err = _cli(capsys, *_base(images), "--markers", images / "i.csv",
                      "--out", images / "k.tif")
    assert rc == 2 and "--markers i.csv" in err and "3 columns and no header line" in err


def test_ten_thousand_markers_are_refused_before_training(images, capsys, fake_training):
    grid = np.linspace(0, 159, 100)
    pd.DataFrame(np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2),
                 columns=["row", "col"]).to_csv(images / "m.csv", index=False)
    rc, _, err = _cli(capsys, *_base(images), "--markers", images / "m.csv",
                      "--out", images / "l.tif")
    assert rc == 2 and "10000 markers on a 160×160 image" in err and not fake_training


def test_wrong_pixel_size_on_ht29_is_a_warning_naming_the_option(tmp_path, capsys,
                                                                 fake_training):
    ht29 = examples.data_dir() / "ht29"
    rc, out, err = _cli(capsys, "--fl", ht29 / "ht29_cellbody.tif", "--nuc",
                        ht29 / "ht29_dna.tif", "--pixel-size", "0.2",
                        "--out", tmp_path / "l.tif")
    assert rc == 0 and "2 labels for 2 markers" in out
    assert "warning: The 2 nuclei kept cover 4 %" in err
    assert "Give it with --pixel-size (µm per pixel)." in err


def test_one_bright_pixel_in_fl_refuses_the_mask(images, capsys, fake_training):
    one = np.zeros((160, 160), np.uint16)
    one[80, 80] = 1000
    tifffile.imwrite(images / "fl.tif", one)
    rc, _, err = _cli(capsys, *_base(images), "--out", images / "l.tif")
    assert rc == 2 and "foreground mask covers" in err and "markers lie outside it" in err
    assert "--no-mask" in err and not fake_training


def test_one_bright_pixel_in_nuc_warns(images, capsys, fake_training):
    one = np.zeros((160, 160), np.uint16)
    one[80, 80] = 60_000
    tifffile.imwrite(images / "nuc.tif", one)
    rc, out, err = _cli(capsys, *_base(images), "--out", images / "l.tif")
    assert rc == 0 and "warning: Only 1 nucleus found" in err and "1 labels for 1 markers" in out


def test_checkpoint_folder_reaches_training(images, capsys, fake_training):
    rc, _, _ = _cli(capsys, *_base(images), "--checkpoint", images / "ck",
                    "--out", images / "l.tif")
    assert rc == 0 and fake_training[0]["checkpoint_dir"] == str(images / "ck")
    rc, _, err = _cli(capsys, *_base(images), "--checkpoint", images / "ck", "--model",
                      images / "m.keras", "--out", images / "k.tif")
    assert rc == 2 and "drop --save-model and --checkpoint" in err


# --- saved models know their channels -------------------------------------------------------
@pytest.fixture(scope="module")
def fl_nuc_model(tmp_path_factory):
    from cellcutter_nb.core.model import build_unet

    folder = tmp_path_factory.mktemp("model")
    net = build_unet(3, width=2, depth=1, patch_size=64, seed=0)
    plain = folder / "plain.keras"
    net.save(plain)
    return save_model(net, folder / "m.keras", ("fl", "nuc"), get_preset("paper")), plain


def test_saved_model_records_channels_preset_and_patch_size(fl_nuc_model):
    assert model_info(fl_nuc_model[0]) == {"format": "cellcutter_nb.model", "version": 1,
                                           "channels": ["fl", "nuc"], "preset": "paper",
                                           "patch_size": 64}
    assert model_info(fl_nuc_model[1]) is None


@pytest.mark.parametrize(("extra", "match"), [
    (("--bf", "fl.tif", "--nuc", "nuc.tif", "--no-mask"),
     "m.keras was trained on fl,nuc but this run gives bf,nuc; give the images it was "
     "trained on (--fl, --nuc;"),
    (("--fl", "fl.tif", "--nuc", "nuc.tif", "--preset", "original_code"),
     "m.keras was trained with preset 'paper', not 'original_code'; pass --preset paper"),
])
def test_a_model_used_with_other_images_or_preset_is_refused(images, capsys, fl_nuc_model,
                                                             extra, match):
    extra = tuple(images / e if e.endswith(".tif") else e for e in extra)
    rc, _, err = _cli(capsys, *extra, "--model", fl_nuc_model[0], "--out", images / "l.tif")
    assert rc == 2 and match in err, err
    _only(images, *INPUTS)


def test_a_model_without_record_runs_with_a_note(images, capsys, fl_nuc_model):
    rc = cli.main(["segment", *map(str, _base(images)), "--model", str(fl_nuc_model[1]),
                   "--out", str(images / "l.tif")])
    out = capsys.readouterr().out
    assert rc == 0 and "note: plain.keras records no channel names" in out


# --- interruption ---------------------------------------------------------------------------
@pytest.mark.parametrize(("where", "signum"), [("load", signal.SIGINT),
                                               ("write", signal.SIGTERM)])
def test_a_signal_outside_training_writes_nothing_and_says_so(
        images, capsys, fake_training, monkeypatch, where, signum):
    def interrupted(*args, **kwargs):
        raise Interrupted(signum)

    target = "write_overlay" if where == "write" else "read_markers"
    monkeypatch.setattr(files, target, interrupted)
    rc, _, err = _cli(capsys, *_base(images), "--out", images / "l.tif")
    assert rc == 128 + signum
    assert err.strip() == (f"interrupted by {signal.Signals(signum).name} before the outputs "
                           f"were complete; nothing was written.")
    _only(images, *INPUTS)


@pytest.fixture
def sigint_handled():
    """SIGINT as an interactive shell has it (a background ``pytest &`` starts with it
    ignored, and the CLI rightly leaves an ignored SIGINT alone)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize("signals", [1, 2])
def test_a_signal_during_training_stops_it_and_writes_the_outputs(
        images, capsys, fake_training, monkeypatch, signals, sigint_handled):
    real = files.segment

    def interrupted_training(*args, should_stop, **kwargs):
        for _ in range(signals):  # Ctrl-C once: stop after the step; twice: abort
            # to this thread: os.kill may hand it to one of TensorFlow's threads, and then
            # the flag can be read before that thread has set it (seen on a loaded machine)
            signal.raise_signal(signal.SIGINT)
        assert should_stop()
        labels, net, history = real(*args, **kwargs)
        history.attrs["stopped"] = "interrupted"
        return labels, net, history

    monkeypatch.setattr(files, "segment", interrupted_training)
    rc, out, err = _cli(capsys, *_base(images), "--out", images / "l.tif")
    assert rc == 130 and "Traceback" not in err
    if signals == 1:
        assert "training interrupted: the outputs are those of the network as it was" in err
        _only(images, *INPUTS, "l.tif", "l_overlay.png", "l_cells.csv")
    else:
        assert "nothing was written" in err
        _only(images, *INPUTS)
