"""Statistics that say how realistic (and how hard) a field is.

Used by the tests of the synthetic benchmark and shown as a table in notebook 01.
Every statistic is computed from the rendered images and the ground truth only,
so the same function also describes a real field that has ground truth.

Examples
--------
>>> from cellcutter_nb.data.synth import make_field
>>> from cellcutter_nb.data.realism import realism_stats
>>> s = realism_stats(make_field(seed=0, shape=256))
>>> 0.3 < s["confluence"] < 0.95
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.filters import threshold_otsu
from skimage.measure import regionprops_table

from ..metrics import foreground_iou as iou
from .field import Field
from .synth import GENERATOR, geometry_of
from .synth_geometry import cell_boundaries


def _per_label(values: np.ndarray, labels: np.ndarray, where: np.ndarray, n: int) -> np.ndarray:
    """Mean of ``values`` over ``where`` pixels of each label 1..n (NaN if none)."""
    lab = labels[where]
    sums = np.bincount(lab, values[where], minlength=n + 1)[1:]
    counts = np.bincount(lab, minlength=n + 1)[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def realism_stats(field: Field, body: np.ndarray | None = None) -> dict[str, float]:
    """Measure the realism statistics of a field with ground truth.

    Intensities are background-subtracted (median of the true background) before
    ratios are taken, as a biologist would. Keys (all floats):

    ``confluence``, ``n_cells``, ``cells_per_mm2``, ``diameter_p05_um``,
    ``diameter_median_um``, ``diameter_p95_um``, ``frac_diameter_18_30``,
    ``n_clumps``, ``largest_clump_cells``, ``isolated_cell_frac``, ``gap_pixel_frac``,
    ``median_solidity``, ``nearest_marker_mismatch``, ``nucleus_length_min_um``,
    ``nucleus_length_max_um``, ``nucleus_inside_frac``, ``nucleus_offset_um``,
    ``nuclei_nearly_touching_frac``, ``junction_cyto_ratio``, ``periphery_cyto_ratio``,
    ``nucleus_cyto_ratio``, ``lamella_cyto_ratio``, ``lamella_area_frac``,
    ``cell_brightness_cv``, ``fl_snr``, ``illumination_ratio``, ``bf_mean_diff_bg_sd``,
    ``bf_otsu_iou``, ``bf_texture_iou``, ``fl_otsu_iou``.

    Parameters
    ----------
    field : Field
        A field with ground-truth ``labels`` and ``nuclei``.
    body : ndarray, optional
        Cell labels without the lamellipodia; the periphery is measured at the edge
        of the cell bodies. For a synthetic field it is regenerated from its seed;
        otherwise the labels are used and the lamella statistics are NaN.
    """
    if not field.has_ground_truth or field.nuclei is None:
        raise ValueError("realism_stats needs a field with ground-truth labels and nuclei.")
    if body is None and field.meta.get("generator") == GENERATOR:
        body = geometry_of(field).body
    t = _Truth.of(field, body)
    s: dict[str, float] = {}
    inner = _cells(t, s)
    _clumps(t, field.markers, s)
    _nuclei(t, field.markers, inner, s)
    _fluorescence(field, t, s)
    _bright_field(field, t, s)
    if "nuc" in field.channels:  # nucleus stain
        nu = field["nuc"].astype(np.float64)
        per_nuc = _per_label(nu - np.median(nu[~t.fg]), t.nuc, t.inner_nuc, t.n)
        s["nuc_intensity_cv"] = float(np.nanstd(per_nuc) / np.nanmean(per_nuc))
    return s


@dataclass
class _Truth:
    """The ground truth of a field as the statistics read it (int64 labels, masks)."""

    lab: np.ndarray        # cells
    nuc: np.ndarray        # nuclei
    body_lab: np.ndarray   # cells without lamellipodia (the cells when unknown)
    has_body: bool
    n: int
    fg: np.ndarray
    px: float
    junction: np.ndarray   # cell pixels next to another cell
    periphery: np.ndarray  # cell pixels next to the background
    lamella: np.ndarray    # cell pixels outside the bodies
    inner_nuc: np.ndarray  # nuclei eroded by 2 px

    @classmethod
    def of(cls, field: Field, body: np.ndarray | None) -> _Truth:
        lab = field.labels.astype(np.int64)
        body_lab = (field.labels if body is None else body).astype(np.int64)
        nuc = field.nuclei.astype(np.int64)
        fg = lab > 0
        return cls(lab, nuc, body_lab, body is not None, int(lab.max()), fg, field.pixel_size,
                   *cell_boundaries(lab), fg & (body_lab == 0),
                   ndi.binary_erosion(nuc > 0, iterations=2))


def _cells(t: _Truth, s: dict[str, float]) -> np.ndarray:
    """Cover, count, size and shape (on cells that do not touch the image edge); returns
    the labels of those inner cells."""
    lab, px, n = t.lab, t.px, t.n
    s.update(confluence=float(t.fg.mean()), n_cells=float(n),
             cells_per_mm2=n / (lab.size * (px / 1000) ** 2))
    edge = np.unique(np.r_[lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    props = pd.DataFrame(regionprops_table(lab, properties=("label", "area", "solidity")))
    inner = props[~props["label"].isin(edge)]
    diam = 2 * np.sqrt(inner["area"].to_numpy() / np.pi) * px
    s["diameter_p05_um"], s["diameter_median_um"], s["diameter_p95_um"] = (
        np.percentile(diam, [5, 50, 95]) if len(diam) else (np.nan,) * 3)
    s["frac_diameter_18_30"] = float(np.mean((diam >= 18) & (diam <= 30))) if len(diam) else 0.0
    s["median_solidity"] = float(inner["solidity"].median()) if len(inner) else np.nan
    return inner["label"].to_numpy()


def _clumps(t: _Truth, markers: np.ndarray, s: dict[str, float]) -> None:
    """Clumps (connected components of the foreground), gaps inside them, and how often
    the nearest marker is another cell's."""
    lab, fg, n = t.lab, t.fg, t.n
    clumps, n_clumps = ndi.label(fg)
    cell_clump = np.zeros(n + 1, np.int64)
    cell_clump[lab[fg]] = clumps[fg]
    per_clump = np.bincount(cell_clump[1:], minlength=n_clumps + 1)[1:]
    s["n_clumps"] = float(n_clumps)
    s["largest_clump_cells"] = float(per_clump.max()) if n_clumps else 0.0
    s["isolated_cell_frac"] = float((per_clump == 1).sum() / max(n, 1))
    s["n_mid_clumps"] = float(((per_clump >= 2) & (per_clump <= 20)).sum())
    # background pixels wedged between two different cells = gaps inside clumps
    none = n + 1  # sentinel above every label
    lo = ndi.minimum_filter(np.where(fg, lab, none), size=3)
    hi = ndi.maximum_filter(lab, size=3)
    gap = ~fg & (hi > 0) & (lo < none) & (lo != hi)
    s["gap_pixel_frac"] = float(gap.sum() / max(t.junction.sum(), 1))
    # share of cell pixels whose nearest marker is another cell's (the position-only
    # partition, cellcutter_nb.prep.baseline.nearest_marker_partition, gets them wrong)
    nearest = cKDTree(markers).query(np.argwhere(fg), workers=-1)[1] + 1
    s["nearest_marker_mismatch"] = float(np.mean(nearest != lab[fg]))


def _nuclei(t: _Truth, markers: np.ndarray, inner: np.ndarray, s: dict[str, float]) -> None:
    """Nucleus sizes, their place in the cell, and nuclei nearly touching."""
    lab, nuc, n, px = t.lab, t.nuc, t.n, t.px
    nprops = pd.DataFrame(regionprops_table(nuc, properties=(
        "label", "major_axis_length", "centroid")))
    full = nprops[~nprops["label"].isin(np.unique(np.r_[nuc[0], nuc[-1], nuc[:, 0], nuc[:, -1]]))]
    s["nucleus_length_min_um"] = float(full["major_axis_length"].min() * px)
    s["nucleus_length_max_um"] = float(full["major_axis_length"].max() * px)
    s["nucleus_inside_frac"] = float(np.mean(lab[nuc > 0] == nuc[nuc > 0]))
    cell_c = np.array(ndi.center_of_mass(t.fg, lab, np.arange(1, n + 1)))
    off = np.hypot(*(cell_c - markers).T) * px
    s["nucleus_offset_um"] = float(np.median(off[inner - 1]))
    reach = 2 * int(round(3.0 / px)) + 1  # another nucleus within 3 µm
    near_hi = ndi.maximum_filter(nuc, size=reach)
    near_lo = ndi.minimum_filter(np.where(nuc > 0, nuc, n + 1), size=reach)
    touching = (nuc > 0) & (((near_hi != nuc) & (near_hi > 0)) | (near_lo != nuc))
    s["nuclei_nearly_touching_frac"] = float(np.unique(nuc[touching]).size / max(n, 1))


def _fluorescence(field: Field, t: _Truth, s: dict[str, float]) -> None:
    """fl: junctions, periphery, nuclei and lamellipodia against the cytoplasm (background
    subtracted), cell-to-cell variation, texture, noise and illumination."""
    fg = t.fg
    fl = field["fl"].astype(np.float64) - float(field.meta.get("camera_offset", 0.0))
    bg_level = float(np.median(fl[~fg])) if (~fg).any() else 0.0
    fl0 = fl - bg_level
    dist_edge = ndi.distance_transform_edt(~(t.junction | t.periphery) & fg)
    eroded = fg & ndi.binary_erosion(fg, iterations=1)
    cyto = (dist_edge >= 4) & ~ndi.binary_dilation(t.nuc > 0, iterations=2) & eroded
    cyto_mean = fl0[cyto].mean()
    s["junction_cyto_ratio"] = float(fl0[t.junction].mean() / cyto_mean)
    body_periphery = cell_boundaries(t.body_lab)[1]
    s["periphery_cyto_ratio"] = float(fl0[body_periphery].mean() / cyto_mean)
    s["lamella_area_frac"] = float(t.lamella.sum() / fg.sum()) if t.has_body else np.nan
    s["lamella_cyto_ratio"] = (float(fl0[t.lamella].mean() / cyto_mean)
                               if t.has_body and t.lamella.any() else np.nan)
    s["nucleus_cyto_ratio"] = float(fl0[t.inner_nuc].mean() / cyto_mean)
    s["cell_brightness_cv"] = float(np.nanstd(b := _per_label(fl0, t.lab, cyto, t.n)) /
                                    np.nanmean(b))
    band = ndi.gaussian_filter(fl, 0.7) - ndi.gaussian_filter(fl, 2.5)
    b = band[cyto] - band[cyto].mean()
    s["fl_punctate_kurtosis"] = float((b ** 4).mean() / (b ** 2).mean() ** 2 - 3.0)
    s["fl_snr"] = float(cyto_mean / fl[~fg].std()) if (~fg).any() else np.nan  # upper bound
    blocks = _block_means(fl, ~fg, 4)
    s["illumination_ratio"] = float(np.nanmax(blocks) / np.nanmin(blocks))
    s["fl_otsu_iou"] = iou(fl > threshold_otsu(fl), fg)


def _bright_field(field: Field, t: _Truth, s: dict[str, float]) -> None:
    """bf: how far cells and background differ in grey level and texture, edge halos,
    nucleus outlines and the texture of lamellipodia."""
    fg, body_lab = t.fg, t.body_lab
    bf = field["bf"].astype(np.float64)
    flat = bf / ndi.gaussian_filter(bf, 50.0 / t.px)  # flat-field: divide out illumination
    s["bf_mean_diff_bg_sd"] = float(abs(flat[fg].mean() - flat[~fg].mean()) / flat[~fg].std())
    threshold = threshold_otsu(bf)
    s["bf_otsu_iou"] = max(iou(bf > threshold, fg), iou(bf <= threshold, fg))
    local_var = ndi.uniform_filter(bf ** 2, 7) - ndi.uniform_filter(bf, 7) ** 2
    lv = np.log(np.clip(local_var, 1e-6, None))
    s["bf_texture_iou"] = iou(lv > threshold_otsu(lv), fg)
    d_out = ndi.distance_transform_edt(body_lab == 0)
    d_in = ndi.distance_transform_edt(body_lab > 0)
    ring_out = ~fg & (d_out >= 2) & (d_out <= 3)
    ring_in = (d_in >= 1) & (d_in <= 3)
    flat_sd = flat[~fg].std()
    s["bf_edge_halo_bg_sd"] = float((flat[ring_out].mean() - flat[ring_in].mean()) / flat_sd)
    nuc_rim = np.logical_or(*cell_boundaries(t.nuc))
    s["bf_nucleus_outline_bg_sd"] = float((flat[nuc_rim].mean() - flat[t.inner_nuc].mean())
                                          / flat_sd)
    far = t.lamella & (d_out >= 3) if t.has_body else t.lamella
    if far.any():  # texture of lamellipodia away from the bright body edge
        var3 = ndi.uniform_filter(bf ** 2, 3) - ndi.uniform_filter(bf, 3) ** 2
        bg_var = var3[~fg].mean()
        s["lamella_bf_texture_ratio"] = float((var3[far].mean() - bg_var)
                                              / (var3[body_lab > 0].mean() - bg_var))
    else:
        s["lamella_bf_texture_ratio"] = np.nan


def _block_means(image: np.ndarray, where: np.ndarray, k: int) -> np.ndarray:
    """Mean of ``image`` over ``where`` in a k×k grid of blocks."""
    h, w = image.shape
    rows = np.minimum(np.arange(h) * k // h, k - 1)
    cols = np.minimum(np.arange(w) * k // w, k - 1)
    block = (rows[:, None] * k + cols[None, :])[where]
    sums = np.bincount(block, image[where], minlength=k * k)
    counts = np.bincount(block, minlength=k * k)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    means[counts < 50] = np.nan
    return means


#: What a realistic (A431-like, and hard) field shows, per statistic of
#: :func:`realism_stats`: the third column of notebook 01's table.
TARGETS: dict[str, str] = {
    "confluence": "~0.70", "cells_per_mm2": "", "diameter_median_um": "18-30",
    "frac_diameter_18_30": ">= 0.8", "n_mid_clumps": "clumps of 2-20 cells",
    "isolated_cell_frac": "some", "gap_pixel_frac": "~0 (cells touch)",
    "median_solidity": "< 0.93 (irregular)", "nearest_marker_mismatch": ">= 0.08",
    "nucleus_length_min_um": ">= 8", "nucleus_length_max_um": "<= 14",
    "nucleus_inside_frac": "1", "nucleus_offset_um": "off-centre",
    "nuclei_nearly_touching_frac": "> 0", "junction_cyto_ratio": "1.5-4",
    "periphery_cyto_ratio": "> 1", "nucleus_cyto_ratio": "< 1 (dimmer)",
    "cell_brightness_cv": ">= 0.25", "lamella_cyto_ratio": "faint (< 0.6)",
    "bf_mean_diff_bg_sd": "< 0.5", "bf_otsu_iou": "< 0.6", "bf_texture_iou": "separable",
}


def stats_table(stats: dict[str, float],
                targets: dict[str, str] | None = TARGETS) -> pd.DataFrame:
    """The statistics as a table for display: ``statistic``, ``value`` and ``target``.

    Parameters
    ----------
    stats : dict of str to float
        :func:`realism_stats` of a field.
    targets : dict of str to str, optional
        What each statistic should show (default :data:`TARGETS`; ``None``: no column).

    Examples
    --------
    >>> stats_table({"confluence": 0.71, "fl_snr": 5.0}).values.tolist()
    [['confluence', 0.71, '~0.70'], ['fl_snr', 5.0, '']]
    """
    df = pd.DataFrame({"statistic": list(stats), "value": list(stats.values())})
    if targets:
        df["target"] = df["statistic"].map(targets).fillna("")
    return df
