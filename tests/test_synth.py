"""Realism of the synthetic benchmark, each requirement on the default parameters."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from cellcutter_nb.data.realism import realism_stats
from cellcutter_nb.data.synth import SynthParams, geometry_of, make_field
from cellcutter_nb.prep.baseline import nearest_marker_partition


# --- geometry -----------------------------------------------------------------------------
def test_confluence_and_cell_count(default_field, default_stats):
    assert default_field.shape == (1750, 1750)
    assert 0.62 <= default_stats["confluence"] <= 0.78
    assert default_stats["n_cells"] >= 2000


def test_cell_diameters(default_stats):
    assert 21 <= default_stats["diameter_median_um"] <= 27
    assert default_stats["frac_diameter_18_30"] >= 0.8


def test_clumps_of_varied_size_and_isolated_cells(default_stats):
    assert default_stats["largest_clump_cells"] >= 100
    assert default_stats["n_mid_clumps"] >= 10  # clumps of 2-20 cells
    assert 0.01 <= default_stats["isolated_cell_frac"] <= 0.10


def test_cells_in_clumps_touch(default_stats):
    # background pixels wedged between two different cells are rare
    assert default_stats["gap_pixel_frac"] < 0.02


def test_shapes_irregular_not_voronoi(default_field, default_stats):
    assert default_stats["median_solidity"] < 0.93
    # the partition by distance to the markers is far from the truth
    assert default_stats["nearest_marker_mismatch"] >= 0.08


def test_one_nucleus_per_cell_inside_and_off_centre(default_field, default_stats):
    lab, nuc = default_field.labels, default_field.nuclei
    assert nuc.max() == lab.max() == len(default_field.markers)
    assert default_stats["nucleus_inside_frac"] == 1.0
    # every cell has exactly its own nucleus
    assert np.array_equal(np.unique(nuc[nuc > 0]), np.arange(1, lab.max() + 1))
    assert default_stats["nucleus_offset_um"] >= 1.5
    px = default_field.pixel_size
    assert 8.0 - px <= default_stats["nucleus_length_min_um"]
    assert default_stats["nucleus_length_max_um"] <= 14.0 + px
    assert default_stats["nuclei_nearly_touching_frac"] >= 0.03


def test_markers_are_nucleus_centroids(default_field):
    m = np.round(default_field.markers).astype(int)
    inside = default_field.nuclei[m[:, 0], m[:, 1]]
    # an elliptical nucleus contains its centroid
    assert np.mean(inside == np.arange(1, len(m) + 1)) > 0.99


def test_lamellipodia_thin_dim_and_part_of_the_cell(default_field, default_stats):
    g = geometry_of(default_field)
    assert np.array_equal(g.labels, default_field.labels)
    lamella = (g.labels > 0) & (g.body == 0)
    assert 0.01 <= default_stats["lamella_area_frac"] <= 0.10
    width = ndi.distance_transform_edt(g.body == 0)[lamella]
    assert width.max() <= 6.0 / default_field.pixel_size + 1
    assert default_stats["lamella_cyto_ratio"] < 0.6  # faint in fl
    assert default_stats["lamella_bf_texture_ratio"] < 0.6  # faint in bf
    nuc = default_field["nuc"]
    assert nuc[lamella].mean() < np.median(nuc[default_field.nuclei > 0])


# --- fluorescence ---------------------------------------------------------------------------
def test_fl_junctions_brighter_than_cytoplasm(default_stats):
    assert 1.5 <= default_stats["junction_cyto_ratio"] <= 4.0
    assert default_stats["periphery_cyto_ratio"] > 1.2
    assert default_stats["nucleus_cyto_ratio"] < 0.85


def test_fl_cell_to_cell_variation_and_texture(default_stats):
    assert default_stats["cell_brightness_cv"] >= 0.25
    assert default_stats["fl_punctate_kurtosis"] > 1.0  # heavy-tailed: puncta
    assert default_stats["illumination_ratio"] >= 1.15


def test_fl_blur_and_noise_follow_parameters():
    sharp = realism_stats(make_field(4, shape=256, psf_sigma_um=0.05))
    blurred = realism_stats(make_field(4, shape=256))
    assert blurred["junction_cyto_ratio"] < sharp["junction_cyto_ratio"]
    low = realism_stats(make_field(4, shape=256, fl_snr=3))["fl_snr"]
    high = realism_stats(make_field(4, shape=256, fl_snr=12))["fl_snr"]
    assert low < high


def test_fl_noise_is_poisson_like():
    f = make_field(5, shape=256, fl_snr=4)
    fl = f["fl"] - f.meta["camera_offset"]
    smooth = ndi.uniform_filter(fl, 5)
    resid = fl - smooth
    bright = smooth > np.percentile(smooth, 90)
    dark = smooth < np.percentile(smooth, 10)
    assert resid[bright].var() > 2 * resid[dark].var()  # variance grows with the signal


# --- bright-field and nucleus ---------------------------------------------------------------
def test_bf_same_mean_grey_but_separable_by_texture(default_stats):
    assert default_stats["bf_mean_diff_bg_sd"] < 0.5
    assert default_stats["bf_otsu_iou"] < 0.6
    assert default_stats["bf_texture_iou"] >= 0.7
    assert default_stats["bf_edge_halo_bg_sd"] > 0.5  # dark rim inside, bright halo outside
    assert default_stats["bf_nucleus_outline_bg_sd"] < -0.1


def test_nuc_bright_varied(default_field, default_stats):
    nuc = default_field["nuc"] - default_field.meta["camera_offset"]
    assert nuc[default_field.nuclei > 0].mean() > 5 * np.median(nuc[default_field.nuclei == 0])
    assert default_stats["nuc_intensity_cv"] >= 0.2


# --- determinism, parameters, errors --------------------------------------------------------
def test_deterministic_per_seed():
    a, b, c = make_field(7, shape=200), make_field(7, shape=200), make_field(8, shape=200)
    for name in ("fl", "bf", "nuc"):
        assert np.array_equal(a[name], b[name])
        assert not np.array_equal(a[name], c[name])
    assert np.array_equal(a.labels, b.labels)
    assert a.meta["cache_key"] == b.meta["cache_key"] != c.meta["cache_key"]


def test_field_contents_and_dtypes():
    f = make_field(1, shape=(200, 300))
    assert f.shape == (200, 300)
    assert all(v.dtype == np.float32 for v in f.channels.values())
    assert f.labels.dtype == np.uint32 and f.nuclei.dtype == np.uint32
    assert np.array_equal(f.mask, f.labels > 0)
    assert f.pixel_size == SynthParams().pixel_size


def test_position_only_partition_is_a_voronoi_of_markers():
    f = make_field(2, shape=200)
    part = nearest_marker_partition(f.markers, f.mask)
    assert np.array_equal(part > 0, f.mask)
    r, c = np.round(f.markers[0]).astype(int)
    assert part[r, c] == 1


@pytest.mark.parametrize("bad", [{"confluence": 1.5}, {"nucleus_length_um": (14, 8)},
                                 {"fl_snr": 0}])
def test_bad_parameters_raise(bad):
    with pytest.raises(ValueError):
        make_field(0, shape=128, **bad)


def test_bad_shape_raises():
    with pytest.raises(ValueError, match="64"):
        make_field(0, shape=(32, 32))
