"""Every bad input ends in one clear ValueError that names the problem (issue #7, part 4)."""

from __future__ import annotations

import re
import zipfile

import numpy as np
import pytest
import tifffile

from cellcutter_nb import config
from cellcutter_nb.app import cli, files
from cellcutter_nb.core.model import load_model
from cellcutter_nb.core.patches import extract_patches
from cellcutter_nb.data import tiffio
from cellcutter_nb.data.field import Field, check_markers
from cellcutter_nb.experiments.notebook import check_parameters
from cellcutter_nb.prep.markers import nuclei_from_image
from cellcutter_nb.prep.mask import graph_cut, pixel_classifier_mask

TINY = config.get_profile("smoke").replace(max_epochs=1, steps_per_epoch=1, unet_width=4,
                                           unet_depth=2)


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    return Field({"fl": rng.random((48, 48)), "nuc": rng.random((48, 48))},
                 markers=[[10.0, 10.0], [30.0, 30.0]])


# --- images ---------------------------------------------------------------------------------
def test_mismatched_channel_shapes():
    with pytest.raises(ValueError, match="share one shape"):
        Field({"fl": np.ones((8, 8)), "nuc": np.ones((8, 9))})


@pytest.mark.parametrize(("image", "match"), [
    (np.ones((2, 8, 8)), "must be 2-D"),
    (np.ones((8, 8, 3)), "RGB"),
    (np.ones(8), "must be 2-D"),
])
def test_not_a_2d_grey_image(image, match):
    with pytest.raises(ValueError, match=match):
        Field({"fl": image})


def test_stack_file_needs_a_page(tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", np.ones((5, 8, 8), np.uint16))
    with pytest.raises(ValueError, match="multi-page stack.*page=k"):
        tiffio.load_field(fl=tmp_path / "stack.tif")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf(bad):
    img = np.ones((8, 8))
    img[2, 3] = bad
    with pytest.raises(ValueError, match="1 NaN/inf pixels"):
        Field({"fl": img})


def test_all_zero_image_for_markers_and_mask():
    zero = np.zeros((32, 32))
    with pytest.raises(ValueError, match="nuc is constant"):
        nuclei_from_image(zero)
    with pytest.raises(ValueError, match="image is constant"):
        graph_cut(zero)


# --- markers --------------------------------------------------------------------------------
def test_no_markers_train_and_segment(small):
    from cellcutter_nb.app.pipeline import segment
    from cellcutter_nb.core.train import train

    none = np.zeros((0, 2))
    with pytest.raises(ValueError, match="No markers"):
        train(small, ("fl",), "paper", TINY, markers=none, progress=False)
    with pytest.raises(ValueError, match="No markers"):
        segment(small, ("fl",), "paper", TINY, markers=none, mask=None, progress=False)


def test_markers_outside_the_image():
    with pytest.raises(ValueError, match="1 marker.* outside the \\(10, 10\\) image"):
        check_markers([[2, 2], [12.5, 3]], (10, 10))
    with pytest.raises(ValueError, match="outside"):
        Field({"fl": np.ones((10, 10))}, markers=[[-1, 3]])


def test_duplicate_markers():
    with pytest.raises(ValueError, match="1 duplicate marker"):
        check_markers([[2, 2], [5, 5], [2, 2]], (10, 10))


# --- masks ----------------------------------------------------------------------------------
def test_mask_without_foreground(small):
    from cellcutter_nb.core.train import train

    with pytest.raises(ValueError, match="no foreground pixel"):
        train(small, ("fl",), "paper", TINY, mask=np.zeros(small.shape, bool), progress=False)


def test_scribbles_with_one_class():
    img = np.random.default_rng(0).random((32, 32))
    scr = np.zeros((32, 32), np.uint8)
    scr[4:8, 4:20] = 1
    with pytest.raises(ValueError, match="no background \\(2\\) pixels"):
        pixel_classifier_mask(img, scr)


# --- names ----------------------------------------------------------------------------------
def test_unknown_channel_name(small):
    from cellcutter_nb.core.train import train

    with pytest.raises(ValueError, match="Unknown channel name.*'gfp'"):
        Field({"gfp": np.ones((8, 8))})
    with pytest.raises(ValueError, match="\\['gfp'\\] are not in this field"):
        extract_patches(small, ["fl", "gfp"], config.get_preset("paper"))
    with pytest.raises(ValueError, match="\\['bf'\\] are not in this field"):
        train(small, ("bf",), "paper", TINY, progress=False)


def test_unknown_preset_and_profile():
    with pytest.raises(ValueError, match="Unknown preset 'papr'.*original_code"):
        config.get_preset("papr")
    with pytest.raises(ValueError, match="Unknown profile 'huge'.*quick"):
        config.get_profile("huge")


# --- model files ----------------------------------------------------------------------------
def test_truncated_or_foreign_model_file(tmp_path):
    from cellcutter_nb.core.model import build_unet

    good = tmp_path / "good.keras"
    build_unet(2, width=2, depth=1, patch_size=8).save(good)
    assert load_model(good).input_shape == (None, 8, 8, 2)
    data = good.read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a valid Keras model.*truncated.*--save-model"):
        load_model(tmp_path / "cut.keras")
    with zipfile.ZipFile(tmp_path / "junk.keras", "w") as z:
        z.writestr("config.json", "{not json")
    with pytest.raises(ValueError, match="not a valid Keras model.*re-save"):
        load_model(tmp_path / "junk.keras")
    (tmp_path / "model.h5").write_bytes(data)
    with pytest.raises(ValueError, match="not a .keras model file"):
        load_model(tmp_path / "model.h5")


# --- papermill parameters -------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"profile": 3}, "profile=3 \\(int\\).*one of the strings"),
    ({"profile": "huge"}, "profile='huge'"),
    ({"seed": "x"}, "seed='x' \\(str\\).*non-negative integer"),
    ({"seed": True}, "seed=True"),
    ({"seed": -1}, "seed=-1"),
    ({"channels": ["fl", "gfp"]}, "channels=.*distinct names"),
    ({"learning_rate": "0.1"}, "learning_rate='0.1'"),
    ({"figures_dir": 5}, "figures_dir=5"),
])
def test_papermill_parameter_of_wrong_type(kwargs, match):
    params = {"profile": "smoke", "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        check_parameters(**params)
    assert check_parameters("smoke", np.int64(1), tables_dir=None) == {"profile": "smoke",
                                                                       "seed": 1}


# --- the segment command --------------------------------------------------------------------
@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("fl", "nuc"):
        tifffile.imwrite(tmp_path / f"{name}.tif",
                         (rng.random((64, 64)) * 1000).astype(np.uint16))
    return tmp_path


@pytest.fixture
def no_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("training started despite a bad input")

    monkeypatch.setattr(files, "segment", fail)


def _cli(capsys, *argv):
    rc = cli.main(["segment", "--quiet", *map(str, argv)])
    return rc, capsys.readouterr().err


def test_cli_missing_input_file(images, capsys, no_training):
    rc, err = _cli(capsys, "--fl", images / "nope.tif", "--nuc", images / "nuc.tif",
                   "--out", images / "labels.tif")
    assert rc == 2 and err.startswith("error: No such image file") and "nope.tif" in err
    assert "Traceback" not in err and not (images / "labels.tif").exists()


def test_cli_out_in_missing_folder(images, capsys, no_training):
    out = images / "no" / "such" / "labels.tif"
    rc, err = _cli(capsys, "--fl", images / "fl.tif", "--nuc", images / "nuc.tif",
                   "--out", out)
    assert rc == 2 and "does not exist" in err and "mkdir -p" in err
    assert not (images / "no").exists()
    assert sorted(p.name for p in images.iterdir()) == ["fl.tif", "nuc.tif"]


@pytest.mark.parametrize(("extra", "out", "match"), [
    (("--channels", "fl,gfp"), "labels.tif", "Unknown channel name.*'gfp'"),
    (("--channels", "fl,bf"), "labels.tif", "no such image was given.*--bf"),
    ((), "labels.png", "must end in .tif"),
    (("--markers", "missing.csv"), "labels.tif", "No such markers file"),
    (("--model", "missing.keras"), "labels.tif", "No such model file"),
    (("--save-model", "m.h5"), "labels.tif", "must end in .keras"),
    (("--depth", "7"), "labels.tif", "multiple of 128"),
])
def test_cli_bad_options_fail_before_training(images, capsys, no_training, extra, out, match):
    extra = tuple(str(images / e) if e.endswith((".csv", ".keras", ".h5")) else e
                  for e in extra)
    rc, err = _cli(capsys, "--fl", images / "fl.tif", "--nuc", images / "nuc.tif",
                   "--out", images / out, *extra)
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and re.search(match, err), err
    assert sorted(p.name for p in images.iterdir()) == ["fl.tif", "nuc.tif"]


def test_cli_bad_markers_and_constant_image(images, capsys, no_training):
    base = ("--fl", images / "fl.tif", "--nuc", images / "nuc.tif", "--out",
            images / "labels.tif")
    (images / "m.csv").write_text("row,col\n5,5\n5,5\n")
    rc, err = _cli(capsys, *base, "--markers", images / "m.csv")
    assert rc == 2 and "duplicate marker" in err
    (images / "m.csv").write_text("row,col\n")
    rc, err = _cli(capsys, *base, "--markers", images / "m.csv")
    assert rc == 2 and "No markers" in err
    (images / "m.csv").write_text("row,col\n5,500\n")
    rc, err = _cli(capsys, *base, "--markers", images / "m.csv")
    assert rc == 2 and "outside" in err
    tifffile.imwrite(images / "zero.tif", np.zeros((64, 64), np.uint16))
    rc, err = _cli(capsys, "--fl", images / "zero.tif", "--nuc", images / "nuc.tif",
                   "--out", images / "labels.tif")
    assert rc == 2 and "'fl' is constant" in err
    assert not (images / "labels.tif").exists()


def test_cli_existing_output_needs_overwrite(images, capsys, no_training):
    (images / "labels_cells.csv").write_text("keep me")
    rc, err = _cli(capsys, "--fl", images / "fl.tif", "--nuc", images / "nuc.tif",
                   "--out", images / "labels.tif")
    assert rc == 2 and "already exists" in err and "--overwrite" in err
    assert (images / "labels_cells.csv").read_text() == "keep me"


def test_cli_mask_sources(images, capsys, no_training):
    (images / "m.csv").write_text("row,col\n20,20\n40,40\n")
    rc, err = _cli(capsys, "--bf", images / "fl.tif", "--markers", images / "m.csv",
                   "--out", images / "labels.tif")
    assert rc == 2 and "Without --fl" in err and "--scribbles" in err and "--no-mask" in err
    scribbles = np.zeros((64, 64), np.uint8)
    scribbles[5:9, 5:30] = 1
    tifffile.imwrite(images / "s.tif", scribbles)
    rc, err = _cli(capsys, "--bf", images / "fl.tif", "--markers", images / "m.csv",
                   "--scribbles", images / "s.tif", "--out", images / "labels.tif")
    assert rc == 2 and "no background (2) pixels" in err
    assert not (images / "labels.tif").exists()
