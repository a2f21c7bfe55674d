"""Geometry of a synthetic field: colonies, cells, lamellipodia and nuclei (no rendering).

Colonies are a level set of a two-scale random field near the percolation threshold
plus small clumps; seeds are spread by Lloyd relaxation; cells are a multiplicatively
weighted Voronoi partition in smoothly warped coordinates (curved, wavy boundaries);
lamellipodia grow from colony edges; one off-centre elliptical nucleus sits wholly
inside each cell. Everything is built on a padded canvas and cropped, so cells cut by
the image edge look like real ones. See :func:`cellcutter_nb.data.synth.make_field`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from .synth_params import SynthParams


@dataclass
class Geometry:
    """Label images of one synthetic field before rendering (internal)."""

    labels: np.ndarray      # uint32 cells incl. lamellipodia
    body: np.ndarray        # uint32 cells without lamellipodia
    nuclei: np.ndarray      # uint32 nucleus k inside cell k
    rho: np.ndarray         # float32 normalised elliptical radius inside nuclei (0 centre, 1 rim)
    markers: np.ndarray     # (N, 2) nucleus centroids


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float,
                  coarse: int = 1) -> np.ndarray:
    """Unit-variance Gaussian random field with correlation length ``sigma`` px.

    Generated on a grid ``coarse`` times smaller and interpolated up, which keeps
    large correlation lengths cheap.
    """
    small = (shape[0] // coarse + 3, shape[1] // coarse + 3)
    field = ndi.gaussian_filter(rng.standard_normal(small), sigma / coarse, mode="wrap")
    if coarse > 1:
        field = ndi.zoom(field, coarse, order=1)[: shape[0], : shape[1]]
    else:
        field = field[: shape[0], : shape[1]]
    return ((field - field.mean()) / (field.std() + 1e-12)).astype(np.float32)


def cell_boundaries(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(junction, periphery): cell pixels 4-adjacent to another cell / to background.

    Examples
    --------
    >>> j, p = cell_boundaries(np.array([[1, 1, 2, 0]]))
    >>> j.astype(int).tolist(), p.astype(int).tolist()
    ([[0, 1, 1, 0]], [[0, 0, 1, 0]])
    """
    pad = np.pad(labels, 1, mode="edge")
    centre = pad[1:-1, 1:-1]
    junction = np.zeros(labels.shape, bool)
    periphery = np.zeros(labels.shape, bool)
    for dr, dc in ((0, 1), (2, 1), (1, 0), (1, 2)):
        other = pad[dr:dr + labels.shape[0], dc:dc + labels.shape[1]]
        junction |= (centre > 0) & (other > 0) & (other != centre)
        periphery |= (centre > 0) & (other == 0)
    return junction, periphery


def _colony_mask(rng, shape, p: SynthParams, cover: float) -> np.ndarray:
    """Colonies: a level set of a two-scale random field near the percolation threshold
    (large colonies of varied size) plus small clumps of a few cells in the gaps."""
    scale = p.colony_scale_um / p.pixel_size
    cell_px = p.cell_diameter_um / p.pixel_size
    g = smooth_noise(rng, shape, scale, coarse=8) + 0.35 * smooth_noise(
        rng, shape, scale / 4, coarse=4)
    colony = g > np.quantile(g, 1.0 - p.large_colony_share * cover)
    lab, n = ndi.label(colony)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    keep = sizes >= 2.5 * np.pi * (cell_px / 2) ** 2
    keep[0] = False
    colony = keep[lab]
    # small clumps of 2-12 cells, as discs with a wavy rim, away from the colonies
    n_cells = np.clip(np.round(rng.lognormal(np.log(4.0), 0.6, 4000)), 2, 12)
    radii = np.sqrt(n_cells) * cell_px / 2 * 1.05
    area_goal = (1.0 - p.large_colony_share) * cover * colony.size
    count = int(np.searchsorted(np.cumsum(np.pi * radii ** 2), area_goal)) + 1
    centres = _spaced_points(~colony, count, 2.0 * cell_px, radii[:count] * 2.2, rng)
    if len(centres):
        radii = radii[: len(centres)]
        rim = 1.0 + 0.15 * smooth_noise(rng, shape, cell_px / 3)
        near = ndi.distance_transform_edt(~_dots(shape, centres)) <= radii.max() * 1.3
        pts = np.argwhere(near)
        dist, idx = cKDTree(centres).query(pts, workers=-1)
        inside = dist <= radii[idx] * rim[near]
        colony[tuple(pts[inside].T)] = True
    return colony


def _dots(shape, points: np.ndarray) -> np.ndarray:
    """Boolean image with the (rounded) points set."""
    out = np.zeros(shape, bool)
    q = np.clip(np.round(points).astype(int), 0, np.array(shape) - 1)
    out[q[:, 0], q[:, 1]] = True
    return out


def _spaced_points(allowed: np.ndarray, n: int, margin: float, spacing, rng) -> np.ndarray:
    """Up to ``n`` points in ``allowed`` at least ``margin`` px inside it and ``spacing`` apart.

    ``spacing`` is a scalar or one value per point (the i-th accepted point keeps
    ``spacing[i]`` from earlier ones). Candidates are drawn at random and accepted
    greedily: a loop over at most 20·n candidates (each tested against all accepted
    points in one array operation), never over pixels or point pairs.
    """
    dist = ndi.distance_transform_edt(allowed)
    idx = np.flatnonzero(dist.ravel() > margin)
    if n == 0 or idx.size == 0:
        return np.zeros((0, 2))
    spacing = np.broadcast_to(np.asarray(spacing, float), (n,))
    cand = np.column_stack(np.unravel_index(
        rng.choice(idx, size=min(20 * n, idx.size), replace=False), allowed.shape))
    chosen = np.empty((n, 2), float)
    count = 0
    for c in cand:  # greedy acceptance is sequential; the distance test is one array op
        d2 = ((chosen[:count] - c) ** 2).sum(axis=1)
        if not (d2 < spacing[count] ** 2).any():
            chosen[count] = c
            count += 1
            if count == n:
                break
    return chosen[:count]


def _seeds_in(mask: np.ndarray, n: int, rng, iterations: int = 5) -> np.ndarray:
    """``n`` well-spread points in ``mask``: uniform draw, then Lloyd relaxation."""
    idx = np.flatnonzero(mask)
    pick = rng.choice(idx, size=min(n, idx.size), replace=False)
    seeds = np.column_stack(np.unravel_index(pick, mask.shape)).astype(float)
    seeds += rng.uniform(-0.5, 0.5, seeds.shape)
    step = 2  # relax on every other pixel: same result at a quarter of the cost
    sub = mask[::step, ::step]
    pts = np.argwhere(sub).astype(float) * step
    for _ in range(iterations):
        owner = cKDTree(seeds).query(pts, workers=-1)[1]
        counts = np.bincount(owner, minlength=len(seeds))
        ok = counts > 0
        for axis in range(2):
            seeds[ok, axis] = np.bincount(owner, pts[:, axis], len(seeds))[ok] / counts[ok]
    return seeds


def _assign(shape, seeds, radius, isolated, colony, rng, p: SynthParams) -> np.ndarray:
    """Label every pixel by the weighted-nearest seed in warped coordinates."""
    warp_px = p.warp_um / p.pixel_size
    cell_px = p.cell_diameter_um / p.pixel_size
    rr, cc = np.indices(shape, dtype=np.float32)
    for sigma, amp in ((cell_px / 5, warp_px), (cell_px / 14, warp_px / 3)):
        rr += amp * smooth_noise(rng, shape, sigma)
        cc += amp * smooth_noise(rng, shape, sigma)
    radial = 1.0 + 0.12 * smooth_noise(rng, shape, cell_px / 6)
    near_iso = np.zeros(shape, bool)
    if isolated.any():
        r_iso = int(np.ceil(radius[isolated].max() * 1.5))
        near_iso = ndi.distance_transform_edt(~_dots(shape, seeds[isolated])) <= r_iso
    cand = colony | near_iso
    pts = np.column_stack((rr[cand], cc[cand]))
    k = min(6, len(seeds))
    dist, idx = cKDTree(seeds).query(pts, k=k, workers=-1)
    dist, idx = dist.reshape(len(pts), k), idx.reshape(len(pts), k)
    score = dist / radius[idx]
    best = np.argmin(score, axis=1)
    owner = idx[np.arange(len(pts)), best]
    d_owner = score[np.arange(len(pts)), best]
    is_iso = isolated[owner]
    limit = np.where(is_iso, radial[cand], 1.7)
    keep = (d_owner <= limit) & (colony[cand] | is_iso)
    labels = np.zeros(shape, np.int64)
    labels[cand] = np.where(keep, owner + 1, 0)
    return _largest_piece(labels)


def _largest_piece(labels: np.ndarray) -> np.ndarray:
    """Keep each label's largest 4-connected piece; give fragments to the nearest cell."""
    from skimage.measure import label as cc_label

    comp = cc_label(labels, background=0, connectivity=1)
    n = comp.max()
    sizes = np.bincount(comp.ravel(), minlength=n + 1)
    owner = np.zeros(n + 1, np.int64)
    owner[comp.ravel()] = labels.ravel()
    order = np.lexsort((-sizes[1:], owner[1:])) + 1  # by owner, largest first
    first = np.ones(order.size, bool)
    first[1:] = owner[order][1:] != owner[order][:-1]
    main = np.zeros(n + 1, bool)
    main[order[first]] = True
    fragment = (comp > 0) & ~main[comp]
    if fragment.any():
        good = labels * ~fragment
        _, (ir, ic) = ndi.distance_transform_edt(good == 0, return_indices=True)
        labels = np.where(fragment, good[ir, ic], good)
    return labels


def _add_lamellipodia(body: np.ndarray, rng, p: SynthParams) -> np.ndarray:
    """Extend cells bordering the background by thin, patchy protrusions."""
    width = p.lamellipodia_um / p.pixel_size
    dist, (ir, ic) = ndi.distance_transform_edt(body == 0, return_indices=True)
    patch = smooth_noise(rng, body.shape, p.cell_diameter_um / p.pixel_size / 4)
    reach = width * np.clip((patch + 0.3) / 1.8, 0.0, 1.0)
    grow = (body == 0) & (dist <= reach) & (dist > 0)
    labels = body.copy()
    labels[grow] = body[ir[grow], ic[grow]]
    return _largest_piece(labels)


def _place_nuclei(labels: np.ndarray, rng, p: SynthParams):
    """One off-centre elliptical nucleus wholly inside each cell (loop over cells)."""
    n = int(labels.max())
    nuclei = np.zeros(labels.shape, np.uint32)
    rho = np.zeros(labels.shape, np.float32)
    slices = ndi.find_objects(labels)
    centroids = np.array(ndi.center_of_mass(np.ones_like(labels), labels, np.arange(1, n + 1)))
    tree = cKDTree(centroids)
    towards = np.full(n, -1)
    pushy = rng.random(n) < p.touching_nuclei_fraction
    _, nn = tree.query(centroids, k=2)
    towards[pushy] = nn[pushy, 1]
    towards[nn[pushy, 1]] = np.flatnonzero(pushy)  # the partner leans back
    lengths = rng.uniform(*p.nucleus_length_um, n) / p.pixel_size
    aspects = rng.uniform(*p.nucleus_aspect, n)
    angles = rng.uniform(0, np.pi, n)
    offsets = rng.uniform(0.5, 1.5, n) * p.nucleus_offset
    directions = rng.uniform(0, 2 * np.pi, n)
    min_len = p.nucleus_length_um[0] / p.pixel_size
    failed = []
    for k in range(1, n + 1):  # loop over cells, not pixels
        sl = slices[k - 1]
        if sl is None:
            continue
        sl = (slice(max(sl[0].start - 1, 0), sl[0].stop + 1),
              slice(max(sl[1].start - 1, 0), sl[1].stop + 1))
        cell = labels[sl] == k
        inner = ndi.distance_transform_edt(cell)
        rr, cc = np.indices(cell.shape, dtype=np.float32)
        cy, cx = centroids[k - 1] - (sl[0].start, sl[1].start)
        radius = np.sqrt(cell.sum() / np.pi)
        if towards[k - 1] >= 0:
            ty, tx = centroids[towards[k - 1]] - (sl[0].start, sl[1].start)
            direction, offset = np.arctan2(ty - cy, tx - cx), 0.6
        else:
            direction, offset = directions[k - 1], offsets[k - 1]
        a, asp, th = lengths[k - 1] / 2, aspects[k - 1], angles[k - 1]
        for _ in range(12):
            y0 = cy + offset * radius * np.sin(direction)
            x0 = cx + offset * radius * np.cos(direction)
            u = (rr - y0) * np.sin(th) + (cc - x0) * np.cos(th)
            v = (rr - y0) * np.cos(th) - (cc - x0) * np.sin(th)
            q = np.sqrt((u / a) ** 2 + (v / (a / asp)) ** 2)
            ell = q <= 1.0
            if ell.sum() > 4 and (inner[ell] >= 1.5).all():
                break
            offset *= 0.7
            if offset < 0.05:
                a = max(a * 0.93, min_len / 2)
                th += 0.4
        else:
            failed.append(k)
            continue
        nuclei[sl][ell] = k
        rho[sl][ell] = q[ell]
    return nuclei, rho, failed


def make_geometry(seed: int, shape: tuple[int, int], params: SynthParams) -> Geometry:
    """Cells, lamellipodia and nuclei of one field (no rendering).

    Geometry is built on a canvas padded by two cell diameters and cropped, so cells
    cut by the image edge look like real ones; a cut cell is kept only when at least
    half of its nucleus is in view (otherwise it is removed, leaving background).
    """
    rng = np.random.default_rng(seed)
    p = params
    cell_px = p.cell_diameter_um / p.pixel_size
    pad = int(2 * cell_px)
    big = (shape[0] + 2 * pad, shape[1] + 2 * pad)
    colony = _colony_mask(rng, big, p, cover=p.confluence)
    cell_area = np.pi * (cell_px / 2) ** 2
    seeds = _seeds_in(colony, int(round(colony.sum() / cell_area)), rng)
    n_iso = int(round(p.isolated_fraction * len(seeds)))
    iso = _spaced_points(~colony, n_iso, 1.2 * cell_px, 1.9 * cell_px, rng)
    all_seeds = np.vstack([seeds, iso])
    isolated = np.r_[np.zeros(len(seeds), bool), np.ones(len(iso), bool)]
    weight = np.exp(p.cell_size_cv * rng.standard_normal(len(all_seeds)))
    radius = weight * cell_px / 2
    body = _assign(big, all_seeds, radius, isolated, colony, rng, p)
    body = _renumber(body)
    nuclei, rho, failed = _place_nuclei(body, rng, p)
    if failed:  # cells too small to hold a nucleus become part of a neighbour
        drop = np.isin(body, failed)
        _, (ir, ic) = ndi.distance_transform_edt(drop, return_indices=True)
        body = np.where(drop, body[ir, ic], body)
    labels = _add_lamellipodia(body, rng, p)
    full_area = np.bincount(nuclei.ravel(), minlength=int(body.max()) + 1)
    crop = (slice(pad, pad + shape[0]), slice(pad, pad + shape[1]))
    body, labels, nuclei, rho = body[crop], labels[crop], nuclei[crop], rho[crop]
    visible = np.bincount(nuclei.ravel(), minlength=full_area.size)
    keep = visible >= 0.5 * np.maximum(full_area, 1)
    keep[0] = False
    lut = np.zeros(full_area.size, np.int64)
    lut[keep] = np.arange(1, int(keep.sum()) + 1)
    labels = _largest_piece(lut[labels])
    body = np.where(labels > 0, lut[body], 0)
    nuclei = lut[nuclei].astype(np.uint32)
    rho = np.where(nuclei > 0, rho, 0).astype(np.float32)
    n = int(keep.sum())
    markers = np.array(ndi.center_of_mass(np.ones(shape), nuclei, np.arange(1, n + 1)))
    return Geometry(labels.astype(np.uint32), body.astype(np.uint32), nuclei, rho,
                    markers.reshape(-1, 2))


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Relabel to 1..N, dropping unused numbers."""
    present = np.unique(labels)
    present = present[present > 0]
    lut = np.zeros(int(labels.max()) + 1, np.int64)
    lut[present] = np.arange(1, present.size + 1)
    return lut[labels]
