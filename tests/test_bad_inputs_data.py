"""Issue 15, Python side: every bad image, mask, marker list or number ends as one clear
error or a correct result (with a warning where the set-up is only implausible)."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import tifffile

from cellcutter_nb import config
from cellcutter_nb.app.pipeline import find_markers, segment
from cellcutter_nb.data import examples, synth, tiffio
from cellcutter_nb.data.checks import (
    InputWarning,
    PixelSizeWarning,
    check_marker_density,
    check_mask,
    check_mask_coverage,
    check_pixel_size,
    check_seconds,
    check_seed,
)
from cellcutter_nb.data.field import Field
from cellcutter_nb.prep.markers import nuclei_from_image

TINY = config.get_profile("smoke").replace(max_epochs=1, steps_per_epoch=1, unet_width=4,
                                           unet_depth=2)
RNG = np.random.default_rng(0)
IMG = RNG.random((40, 40))


@pytest.fixture(scope="module")
def syn():
    return synth.make_field(seed=0, shape=160)


def _no_warning(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)
        return fn()


# --- masks ----------------------------------------------------------------------------------
def test_mask_0_255_is_read_as_foreground_with_a_warning():
    m = np.zeros((4, 4), np.uint8)
    m[1:3, 1:3] = 255
    with pytest.warns(InputWarning, match="values 0/255.*255 = foreground"):
        out = check_mask(m, (4, 4))
    assert out.dtype == bool and out.sum() == 4 and out[1, 1]


@pytest.mark.parametrize(("mask", "match"), [
    (np.array([[0, 1], [2, 1]]), "values 0, 1, 2; a mask holds only 0/1"),
    (np.array([[0.0, 0.5], [0.5, 0.0]]), "values 0, 0.5; a mask holds only 0/1"),
    (np.array([[0.0, np.nan], [1.0, 1.0]]), "values 0, 1, nan"),
    (np.array([["a", "b"], ["a", "b"]]), "dtype <U1; give a bool array"),
    (np.ma.masked_array(np.ones((2, 2)), mask=[[1, 0], [0, 0]]), "masked array with 1 masked"),
    (np.ones((2, 3), bool), r"shape \(2, 3\), the images \(2, 2\)"),
])
def test_masks_other_than_0_1_are_refused(mask, match):
    with pytest.raises(ValueError, match=match):
        check_mask(mask, (2, 2))


@pytest.mark.parametrize("mask", [np.array([[0, 1], [1, 1]]), np.array([[0.0, 1.0], [1, 1]]),
                                  np.array([[False, True], [True, True]])])
def test_masks_0_1_and_bool_pass_unchanged(mask):
    out = _no_warning(lambda: check_mask(mask, (2, 2)))
    assert out.tolist() == [[False, True], [True, True]]


@pytest.mark.slow
def test_segment_with_a_0_255_mask_penalises_outside_pixels(syn):
    """The mask term of Eq. 1 stays a penalty (it was −5,450,161 with M = 255)."""
    with pytest.warns(InputWarning, match="0/255"):
        _, _, hist = segment(syn, ("fl", "nuc"), "paper", TINY, markers=syn.markers,
                             mask=syn.mask.astype(np.uint8) * 255, progress=False)
    assert float(hist["mask"].iloc[-1]) >= 0


def test_tiny_mask_missing_the_markers_is_refused_and_one_holding_them_warned():
    mask = np.zeros((100, 100), bool)
    mask[:2, :2] = True
    with pytest.raises(ValueError, match=r"covers 0.04 % .* 2 of 2 markers lie outside it.*"
                                         r"mask=None"):
        check_mask_coverage(mask, np.array([[50.0, 50.0], [70.0, 70.0]]))
    with pytest.warns(InputWarning, match="covers 0.04 % .* 0 of 1 markers lie outside"):
        check_mask_coverage(mask, np.array([[1.0, 1.0]]))
    _no_warning(lambda: check_mask_coverage(np.ones((100, 100), bool), np.array([[1.0, 1]])))


# --- numbers --------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "match"), [
    (True, "pixel_size=True is not a number"),
    ("0.65", "pixel_size='0.65' is not a number"),
    (None, "pixel_size=None is not a number"),
    (0.01, "pixel_size=0.01 µm/px is outside the plausible range 0.05–5"),
    (50, "pixel_size=50 µm/px is outside"),
    (float("nan"), "pixel_size=nan µm/px is outside"),
    (-0.5, "pixel_size=-0.5 µm/px is outside"),
])
def test_implausible_pixel_sizes_are_refused(value, match):
    with pytest.raises(ValueError, match=match):
        check_pixel_size(value)
    with pytest.raises(ValueError, match="pixel_size"):
        Field({"fl": IMG}, pixel_size=value)


def test_pixel_size_edges_and_numpy_numbers_pass():
    assert [check_pixel_size(v) for v in (0.05, 5, np.float32(0.5))] == [0.05, 5.0, 0.5]
    assert tiffio.load_field(fl=IMG, pixel_size=0.05).pixel_size == 0.05


@pytest.mark.parametrize(("check", "value", "match"), [
    (check_seed, -1, "seed=-1 is not a valid seed"),
    (check_seed, 1.5, "seed=1.5"),
    (check_seed, "0", "seed='0'"),
    (check_seed, True, "seed=True"),
    (check_seed, 2**32, "seed=4294967296"),
    (check_seconds, float("nan"), "max_seconds=nan is not a time cap"),
    (check_seconds, -1.0, "max_seconds=-1.0"),
    (check_seconds, 0, "max_seconds=0"),
    (check_seconds, float("inf"), "max_seconds=inf"),
    (check_seconds, "60", "max_seconds='60'"),
])
def test_seeds_and_time_caps_are_checked(check, value, match):
    with pytest.raises(ValueError, match=match):
        check(value)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"seed": "0"}, "seed='0'"), ({"seed": -1}, "seed=-1"),
    ({"max_seconds": float("nan")}, "max_seconds=nan"), ({"max_seconds": "60"}, "'60'"),
])
def test_segment_refuses_bad_seed_or_time_cap_before_any_work(syn, kwargs, match):
    with pytest.raises(ValueError, match=match):
        segment(syn, ("fl",), "paper", TINY, markers=[[1, 2]], mask=None, progress=False,
                **kwargs)


# --- markers --------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: Field({"fl": IMG}, markers=[1, 2, 3, 4]),
    lambda: tiffio.read_markers([1, 2, 3, 4]),
    lambda: tiffio.load_field(fl=IMG, markers=[1, 2, 3, 4]),
])
def test_flat_marker_list_is_refused(make):
    with pytest.raises(ValueError, match=r"\(N, 2\) array of \(row, col\), got shape \(4,\)"):
        make()


def test_ten_thousand_markers_on_160_px_are_refused_at_once(syn):
    grid = np.linspace(0, 159, 100)
    many = np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2)  # 10,000 distinct markers
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"10000 markers on a 160×160 image leave 2.6 px "
                                         r"\(1.6 µm²\) per cell.*one marker per cell"):
        segment(syn, ("fl",), "paper", TINY, markers=many, mask=None, progress=False)
    assert time.perf_counter() - t0 < 5


def test_far_too_few_markers_for_the_pixel_size_are_warned():
    with pytest.warns(PixelSizeWarning, match="Only 1 markers .* 640,000 µm² per cell at 5"):
        check_marker_density(1, (160, 160), 5.0)
    _no_warning(lambda: check_marker_density(200, (480, 480), 0.8))


def test_one_bright_pixel_in_nuc_gives_a_warning_not_a_silent_cell():
    nuc = np.zeros((160, 160))
    nuc[80, 80] = 60_000
    with pytest.warns(InputWarning, match="Only 1 nucleus found on the 160×160 nucleus image"):
        markers = find_markers(Field({"nuc": nuc}))
    assert len(markers) == 1


@pytest.fixture(scope="module")
def ht29_nuc():
    return examples.load_example("ht29")["nuc"]


@pytest.mark.parametrize(("pixel_size", "match"), [
    (0.2, r"The 2 nuclei kept cover 4 % .* 6–30 µm \(30–150 px at 0.2 µm/px\)"),
    (5.0, r"cover 24 % .* at 5 µm/px"),
])
def test_a_pixel_size_that_does_not_fit_the_nuclei_is_warned(ht29_nuc, pixel_size, match):
    with pytest.warns(PixelSizeWarning, match=match):
        nuclei_from_image(ht29_nuc, pixel_size=pixel_size)


def test_the_right_pixel_size_gives_no_warning_and_a_tiny_one_is_fast(ht29_nuc):
    assert _no_warning(lambda: nuclei_from_image(ht29_nuc, pixel_size=0.8)).max() == 313
    t0 = time.perf_counter()
    with pytest.warns(PixelSizeWarning, match="at 0.05 µm/px"):
        nuclei_from_image(ht29_nuc, pixel_size=0.05)
    assert time.perf_counter() - t0 < 5  # 18 s with a 159-px disk footprint
    with pytest.raises(ValueError, match="pixel_size=0.01 µm/px is outside"):
        nuclei_from_image(ht29_nuc, pixel_size=0.01)


# --- markers CSV ----------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("\ufeffrow,col\n1,2\n3,4\n", [[1, 2], [3, 4]]),            # Excel's UTF-8 with BOM
    ("index,row,col\n0,1,2\n1,3,4\n", [[1, 2], [3, 4]]),        # an index column is ignored
    (" ,X,Y\n1,2,1\n2,4,3\n", [[1, 2], [3, 4]]),                # Fiji's Results table
    ("row;col\n1;2\n3;4\n", [[1, 2], [3, 4]]),                  # European Excel
    ("row\tcol\n1\t2\n3\t4\n", [[1, 2], [3, 4]]),               # tab separated
    ("1,2\n3,4\n", [[1, 2], [3, 4]]),                           # no header: row, col
])
def test_markers_csv_variants_are_read_right(tmp_path, text, expected):
    path = tmp_path / "m.csv"
    path.write_text(text, encoding="utf-8")
    np.testing.assert_array_equal(tiffio.read_markers(path), expected)


@pytest.mark.parametrize(("text", "match"), [
    ("0,1,2\n1,3,4\n", "m.csv has 3 columns and no header line.*index,row,col"),
    ("row,col\n5,5\n7,abc\n", r"m.csv line 3: '7', 'abc' are not numbers"),
    ("row,col\n5,5\n7\n", r"m.csv line 3 has 1 value"),
    ("a,b\n1,2\n", r"header \['a', 'b'\] must name row,col or x,y"),
])
def test_markers_csv_that_cannot_be_read_right_is_refused(tmp_path, text, match):
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        tiffio.read_markers(path)


# --- images ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("image", "match"), [
    (IMG.astype(np.complex64), "holds complex numbers.*np.abs"),
    (IMG * 1e300, r"values up to 1e\+300, beyond float32's range.*rescale"),
    (np.ma.masked_array(IMG, mask=IMG > 0.5), "masked array with .* masked pixels.*filled"),
    (np.stack([IMG, IMG], -1), r"RGB\(A\) or multi-channel image of shape \(40, 40, 2\)"),
])
def test_images_whose_values_would_change_silently_are_refused(image, match):
    with pytest.raises(ValueError, match=match):
        Field({"fl": image})


@pytest.mark.parametrize("image", [IMG[..., None], IMG[None], np.ma.masked_array(IMG)])
def test_singleton_axes_and_unmasked_masked_arrays_are_plain_images(image):
    f = tiffio.load_field(fl=image)
    assert f.shape == (40, 40)
    np.testing.assert_array_equal(f["fl"], IMG.astype(np.float32))


def test_array_with_two_channels_last_is_not_called_a_stack():
    with pytest.raises(ValueError, match=r"'fl' is RGB/multi-colour with 2 colours "
                                         r"\(shape \(40, 40, 2\)\).*channel=k \(k = 0..1\)"):
        tiffio.load_field(fl=np.stack([IMG, IMG], -1))
    assert tiffio.load_field(fl=np.stack([IMG, 2 * IMG], -1), channel=1)["fl"][0, 0] == \
        np.float32(2 * IMG[0, 0])


@pytest.mark.parametrize(("content", "kind"), [
    (b"\x89PNG\r\n\x1a\n" + bytes(50), "a PNG image"),
    (b"\xff\xd8\xff\xe0" + bytes(50), "a JPEG image"),
    (b"row,col\n1,2\n", "a text file"),
    (b"", r"empty \(0 bytes\)"),
])
def test_files_that_are_not_tiff_name_file_channel_and_format(tmp_path, content, kind):
    path = tmp_path / "cells.tif"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"Cannot read 'nuc' \(cells.tif\): the file is {kind},"
                                         rf" not a TIFF. Save the image as TIFF"):
        tiffio.load_field(nuc=path)


def test_truncated_tiff_names_the_file(tmp_path):
    tifffile.imwrite(tmp_path / "ok.tif", RNG.integers(0, 9, (200, 200), dtype=np.uint16))
    data = (tmp_path / "ok.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match=r"Cannot read 'fl' \(cut.tif\): the TIFF is truncated "
                                         r"or corrupt.*copy the file again"):
        tiffio.load_field(fl=tmp_path / "cut.tif")


def test_three_same_shape_pages_written_one_by_one_are_a_stack(tmp_path):
    arr = RNG.integers(0, 99, (3, 8, 9), dtype=np.uint16)
    with tifffile.TiffWriter(tmp_path / "p.tif") as tw:
        for plane in arr:
            tw.write(plane)
    with pytest.raises(ValueError, match=r"multi-page stack of 3 planes.*page=k \(k = 0\.\.2\)"):
        tiffio.read_image(tmp_path / "p.tif")
    np.testing.assert_array_equal(tiffio.read_image(tmp_path / "p.tif", page=2), arr[2])


def test_one_page_for_all_images_skips_the_plain_ones(tmp_path):
    tifffile.imwrite(tmp_path / "s.tif", np.stack([IMG, 2 * IMG]).astype(np.float32))
    f = tiffio.load_field(fl=tmp_path / "s.tif", nuc=IMG, page=1)
    np.testing.assert_array_equal(f["fl"], (2 * IMG).astype(np.float32))
    np.testing.assert_array_equal(f["nuc"], IMG.astype(np.float32))
    with pytest.raises(ValueError, match=r"page=1 is out of range for 'nuc'"):
        tiffio.load_field(fl=tmp_path / "s.tif", nuc=IMG, page={"fl": 1, "nuc": 1})


def test_complex_tiff_is_refused_naming_the_file(tmp_path):
    tifffile.imwrite(tmp_path / "c.tif", IMG.astype(np.complex64))
    with pytest.raises(ValueError, match=r"'fl' holds complex numbers.*\(file: .*c.tif\)"):
        tiffio.load_field(fl=tmp_path / "c.tif")
