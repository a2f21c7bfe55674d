"""Tests for cellcutter_nb.data: TIFF reading, normalising, saving and the real-data loaders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from cellcutter_nb.data import a431, examples, tiffio
from cellcutter_nb.data.field import Field

RNG = np.random.default_rng(0)


def _tif(path, arr, **kw):
    tifffile.imwrite(path, arr, **kw)
    return path


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_dtypes_read_as_float32(tmp_path, dtype):
    arr = (RNG.random((7, 9)) * 200).astype(dtype)
    out = tiffio.read_image(_tif(tmp_path / "a.tif", arr))
    assert out.dtype == np.float32 and out.shape == (7, 9)
    np.testing.assert_array_equal(out, arr.astype(np.float32))


def test_rgb_rejected_with_channel_hint_and_channel_selects(tmp_path):
    arr = RNG.integers(0, 255, (8, 9, 3), dtype=np.uint8)
    path = _tif(tmp_path / "rgb.tif", arr)
    with pytest.raises(ValueError, match=r"RGB.*channel=k \(k = 0\.\.2\)"):
        tiffio.read_image(path)
    np.testing.assert_array_equal(tiffio.read_image(path, channel=1), arr[..., 1])
    with pytest.raises(ValueError, match="channel=3 is out of range"):
        tiffio.read_image(path, channel=3)
    # the same rules for an in-memory array
    with pytest.raises(ValueError, match="channel="):
        tiffio.load_field(fl=arr)
    assert tiffio.load_field(fl=arr, channel=2)["fl"][0, 0] == arr[0, 0, 2]


def test_multipage_rejected_with_page_hint_and_page_selects(tmp_path):
    arr = RNG.integers(0, 4000, (3, 8, 9), dtype=np.uint16)
    path = _tif(tmp_path / "stack.tif", arr, photometric="minisblack")
    with pytest.raises(ValueError, match=r"multi-page.*page=k \(k = 0\.\.2\)"):
        tiffio.read_image(path, name="fl")
    np.testing.assert_array_equal(tiffio.read_image(path, page=2), arr[2])
    with pytest.raises(ValueError, match="no colour axis"):
        tiffio.read_image(path, page=0, channel=0)
    # ImageJ hyperstack Z=2, C=3: planes counted in file order
    hyper = RNG.random((2, 3, 6, 5)).astype(np.float32)
    hpath = _tif(tmp_path / "hyper.tif", hyper, imagej=True, metadata={"axes": "ZCYX"})
    np.testing.assert_array_equal(tiffio.read_image(hpath, page=4), hyper[1, 1])


def test_pages_of_different_shapes_need_page(tmp_path):
    path = tmp_path / "multi.tif"
    with tifffile.TiffWriter(path) as w:
        w.write(np.zeros((5, 5), np.uint8))
        w.write(np.full((6, 4), 7, np.uint8))
    with pytest.raises(ValueError, match="different shapes; pick one with page="):
        tiffio.read_image(path)
    assert tiffio.read_image(path, page=1).shape == (6, 4)


def test_load_field_page_per_channel_from_one_file(tmp_path):
    arr = RNG.integers(0, 255, (2, 8, 9), dtype=np.uint8)
    path = _tif(tmp_path / "two.tif", arr, photometric="minisblack")
    f = tiffio.load_field(fl=path, nuc=path, page={"fl": 1, "nuc": 0}, markers=[[1, 2]])
    np.testing.assert_array_equal(f["fl"], arr[1])
    np.testing.assert_array_equal(f["nuc"], arr[0])
    assert f.name == "two" and f.meta["files"]["fl"] == str(path)
    assert f.meta["pixel_size_assumed"] is True and f.pixel_size == 0.8
    assert "pixel_size_assumed" not in tiffio.load_field(fl=arr[0], pixel_size=0.65).meta


def test_load_field_shape_mismatch_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="share one shape"):
        tiffio.load_field(fl=np.zeros((8, 8)), nuc=np.zeros((8, 9)))
    with pytest.raises(FileNotFoundError, match="nope.tif"):
        tiffio.load_field(fl=tmp_path / "nope.tif")
    with pytest.raises(ValueError, match="at least one channel"):
        tiffio.load_field()


def test_nan_and_inf_named_by_channel(tmp_path):
    bad = np.ones((6, 6), np.float32)
    bad[2, 3] = np.nan
    path = _tif(tmp_path / "bad.tif", bad)
    with pytest.raises(ValueError, match="'nuc' has 1 NaN/inf"):
        tiffio.load_field(fl=np.ones((6, 6)), nuc=path)
    bad[2, 3] = np.inf
    with pytest.raises(ValueError, match="'bf'"):
        tiffio.load_field(bf=bad)


def test_markers_and_labels_inputs(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text("x,y\n3,1\n5.5,2\n")
    np.testing.assert_array_equal(tiffio.read_markers(csv), [[1, 3], [2, 5.5]])
    lab = np.zeros((6, 7), np.uint16)
    lab[1:3, 1:3] = 1
    f = tiffio.load_field(fl=np.ones((6, 7)), markers=csv, labels=_tif(tmp_path / "l.tif", lab))
    assert f.labels.dtype == np.uint32 and f.labels.sum() == 4 and f.n_cells == 1
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="row,col or x,y"):
        tiffio.read_markers(tmp_path / "bad.csv")


# --------------------------------------------------------------------------- normalising


def test_zscore():
    img = RNG.gamma(2.0, 50.0, (40, 50)).astype(np.uint16)
    z = tiffio.normalize(img)
    assert z.dtype == np.float32
    assert abs(float(z.mean())) < 1e-5 and abs(float(z.std()) - 1) < 1e-5


def test_percentile_stretch():
    img = np.arange(1000, dtype=np.float32).reshape(25, 40)
    y = tiffio.normalize(img, "percentile", low=1, high=99)
    lo, hi = np.percentile(img, [1, 99])
    assert y[img == 500][0] == pytest.approx((500 - lo) / (hi - lo), rel=1e-6)
    assert y.min() < 0 and y.max() > 1  # not clipped by default
    yc = tiffio.normalize(img, "percentile", clip=True)
    assert yc.min() == 0 and yc.max() == 1
    assert np.mean(yc == 1) == pytest.approx(0.003, abs=0.0015)  # top 0.2 % saturate


@pytest.mark.parametrize("method", ["zscore", "percentile"])
def test_constant_image_refused(method):
    with pytest.raises(ValueError, match="zero variance"):
        tiffio.normalize(np.full((5, 5), 3, np.uint8), method, name="fl")


def test_normalize_bad_arguments():
    with pytest.raises(ValueError, match="Unknown normalisation method"):
        tiffio.normalize(np.arange(4.).reshape(2, 2), "minmax")
    with pytest.raises(ValueError, match="low < high"):
        tiffio.normalize(np.arange(4.).reshape(2, 2), "percentile", low=50, high=10)


def test_normalize_field_returns_new_field():
    f = Field({"fl": RNG.random((8, 8)) * 9, "nuc": RNG.random((8, 8)) + 4},
              labels=np.eye(8, dtype=np.uint8), name="x", meta={"k": 1})
    before = f["nuc"].copy()
    g = tiffio.normalize_field(f, channels=["nuc"])
    np.testing.assert_array_equal(f["nuc"], before)  # input untouched
    np.testing.assert_array_equal(g["fl"], f["fl"])
    assert abs(float(g["nuc"].mean())) < 1e-5 and float(g["nuc"].std()) == pytest.approx(1, 1e-5)
    assert g.labels is not f.labels and (g.labels == f.labels).all()
    assert g.meta["normalization"]["channels"] == ["nuc"] and "normalization" not in f.meta
    with pytest.raises(ValueError, match="no channel"):
        tiffio.normalize_field(f, channels=["bf"])


# --------------------------------------------------------------------------- save / load


def _field(gt: bool) -> Field:
    fl = RNG.standard_normal((12, 10)).astype(np.float32)
    fl[0, :4] = [np.float32(1e-42), -0.0, np.finfo(np.float32).max, np.pi]  # edge values
    kw = {}
    if gt:
        labels = RNG.integers(0, 70000, (12, 10)).astype(np.uint32)
        kw = {"labels": labels, "nuclei": labels // 2, "mask": labels > 30000,
              "markers": RNG.random((5, 2)) * 9}
    return Field({"fl": fl, "nuc": RNG.random((12, 10))}, pixel_size=0.6493, name="f",
                 meta={"seed": 3, "nested": {"a": [1, 2.5]}, "np": np.int64(4)}, **kw)


@pytest.mark.parametrize("gt", [True, False])
def test_save_load_bit_exact(tmp_path, gt):
    f = _field(gt)
    out = tiffio.save_field(f, tmp_path / "saved")
    g = tiffio.load_saved_field(out)
    assert g.channel_names == f.channel_names and g.name == "f" and g.pixel_size == 0.6493
    for k in f.channel_names:
        assert g[k].dtype == np.float32 and g[k].tobytes() == f[k].tobytes()
    for a in ("labels", "nuclei", "mask", "markers"):
        ref, got = getattr(f, a), getattr(g, a)
        assert (got is None) == (ref is None)
        if ref is not None:
            assert got.dtype == ref.dtype and got.tobytes() == ref.tobytes()
    assert g.meta == {"seed": 3, "nested": {"a": [1, 2.5]}, "np": 4}
    saved = json.loads((out / "field.json").read_text())
    assert saved["version"] == tiffio.FORMAT_VERSION and saved["format"] == tiffio.FORMAT_NAME


def test_save_empty_markers(tmp_path):
    f = Field({"fl": np.ones((4, 4))}, markers=np.zeros((0, 2)))
    g = tiffio.load_saved_field(tiffio.save_field(f, tmp_path / "e"))
    assert g.markers.shape == (0, 2)


def test_refuse_overwrite(tmp_path):
    out = tiffio.save_field(_field(False), tmp_path / "s")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        tiffio.save_field(_field(True), out)
    assert tiffio.load_saved_field(out).labels is None  # untouched
    tiffio.save_field(_field(True), out, overwrite=True)
    assert tiffio.load_saved_field(out).labels is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no temp/backup left
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an empty folder or a saved Field"):
        tiffio.save_field(_field(False), other, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    assert tiffio.load_saved_field(tiffio.save_field(_field(False), tmp_path / "empty")).name == "f"


def test_failed_save_leaves_nothing_loadable(tmp_path, monkeypatch):
    calls = []

    def failing(path, *a, **k):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return tifffile.imwrite(path, *a, **k)

    monkeypatch.setattr(tiffio.tifffile, "imwrite", failing)
    with pytest.raises(OSError, match="disk full"):
        tiffio.save_field(_field(True), tmp_path / "s")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="JSON-serialisable"):
        tiffio.save_field(Field({"fl": np.ones((2, 2))}, meta={"x": object()}), tmp_path / "t")
    assert list(tmp_path.iterdir()) == []


def test_load_folder_without_metadata(tmp_path):
    (tmp_path / "half").mkdir()
    tifffile.imwrite(tmp_path / "half" / "fl.tif", np.ones((3, 3), np.float32))
    with pytest.raises(ValueError, match="field.json is missing"):
        tiffio.load_saved_field(tmp_path / "half")
    out = tiffio.save_field(_field(True), tmp_path / "s")
    (out / "labels.tif").unlink()
    with pytest.raises(ValueError, match=r"incomplete: missing \['labels.tif'\]"):
        tiffio.load_saved_field(out)


# --------------------------------------------------------------------------- A431 layout


def _fake_a431(root):
    (root / "test").mkdir(parents=True)
    (root / "train").mkdir()
    imgs = [RNG.integers(0, 4000, (20, 24), dtype=np.uint16) for _ in range(3)]
    mask = np.zeros((20, 24), np.uint16)
    mask[2:8, 2:9], mask[10:18, 5:15] = 7, 42  # non-consecutive label values
    for k in (1, 2, 10):  # numeric, not lexical, order
        _tif(root / "test" / f"img_{k:04d}.tif", imgs[0] + k)
        _tif(root / "test" / f"masks_{k:04d}.tif", mask)
    _tif(root / "test" / "masks_0010.tif", (mask > 0).astype(np.uint8) * 255)  # binary
    _tif(root / "train" / "a.tif", imgs[1])
    _tif(root / "train" / "b.tif", np.stack([imgs[2], imgs[1]]), photometric="minisblack")
    _tif(root / "train" / "a_mask.tif", (mask > 0).astype(np.uint8))
    records = [{"image_file": "a.tif", "mask_file": "a_mask.tif", "img_id": 0,
                "locations": [[3.5, 4.0], [12, 9]]},
               {"image_file": "b.tif", "locations": [{"x": 4, "y": 3}, {"x": 10, "y": 12}]}]
    (root / "train.json").write_text(json.dumps(records))
    return imgs, mask


def test_a431_test_split(tmp_path):
    imgs, mask = _fake_a431(tmp_path / "A431")
    assert a431.list_a431(tmp_path, "test") == ["img_0001.tif", "img_0002.tif", "img_0010.tif"]
    f = a431.load_a431(tmp_path, "test", 1)  # the folder above A431/ also works
    np.testing.assert_array_equal(f["fl"], (imgs[0] + 2).astype(np.float32))
    assert f.channel_names == ("fl",) and f.markers is None
    assert f.labels.max() == 2 and (f.labels[mask == 7] == 1).all()
    assert (f.labels[mask == 42] == 2).all()
    assert (f.mask == (mask > 0)).all() and f.meta["file"] == "img_0002.tif"
    g = a431.load_a431(tmp_path / "A431", "test", -1)  # binary mask -> connected components
    assert g.labels.max() == 2 and g.meta["labels_from_binary_mask"] is True
    with pytest.raises(ValueError, match="index=3 is out of range"):
        a431.load_a431(tmp_path, "test", 3)


def test_a431_train_split(tmp_path):
    imgs, mask = _fake_a431(tmp_path)
    assert a431.list_a431(tmp_path, "train") == ["a.tif", "b.tif"]
    f = a431.load_a431(tmp_path, "train", 0)
    np.testing.assert_array_equal(f.markers, [[3.5, 4.0], [12, 9]])
    assert f.labels is None and (f.mask == (mask > 0)).all()
    np.testing.assert_array_equal(f["fl"], imgs[1].astype(np.float32))
    with pytest.raises(ValueError, match=r"channels=\('fl', 'nuc'\)"):
        a431.load_a431(tmp_path, "train", 1)  # two planes, unnamed
    g = a431.load_a431(tmp_path, "train", 1, channels=("fl", "nuc"))
    np.testing.assert_array_equal(g.markers, [[3, 4], [12, 10]])  # {"x","y"} -> (row, col)
    np.testing.assert_array_equal(g["nuc"], imgs[1].astype(np.float32))
    h = a431.load_a431(tmp_path, "train", 1, channels=(None, "bf"))
    assert h.channel_names == ("bf",)


def test_a431_bad_layout(tmp_path):
    with pytest.raises(ValueError, match=r"(?s)does not look like the A431.*train\.json"):
        a431.load_a431(tmp_path)
    (tmp_path / "test").mkdir()
    _tif(tmp_path / "test" / "img_0001.tif", np.ones((4, 4), np.uint8))
    with pytest.raises(ValueError, match="Missing manual mask masks_0001.tif"):
        a431.load_a431(tmp_path, "test")
    with pytest.raises(ValueError, match="train.json is missing"):
        a431.load_a431(tmp_path, "train")
    (tmp_path / "train.json").write_text(json.dumps([{"name": "x.tif", "locations": []}]))
    with pytest.raises(ValueError, match="has no image file"):
        a431.load_a431(tmp_path, "train")
    with pytest.raises(ValueError, match="split must be"):
        a431.load_a431(tmp_path, "val")


# --------------------------------------------------------------------------- bundled data


def test_load_example_ht29():
    f = examples.load_example("ht29")
    assert f.shape == (512, 512) and f.channel_names == ("fl", "nuc")
    assert all(np.isfinite(f[k]).all() and f[k].dtype == np.float32 for k in f.channel_names)
    assert f.meta["pixel_size_assumed"] is True and f.meta["licence"] == "CC0"
    assert f.pixel_size == 0.8 and not np.array_equal(f["fl"], f["nuc"])
    assert 0 < f["nuc"].mean() < f["nuc"].max() <= 255


def test_load_example_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="available"):
        examples.load_example("hela")
    monkeypatch.setenv("CELLCUTTER_NB_DATA", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="repository checkout"):
        examples.load_example("ht29")
