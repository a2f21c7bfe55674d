"""Rendering of the synthetic field's three channels from its geometry.

Each channel is a simple image-formation model, not a drawing:

* **fl** (anti-pY immunofluorescence): per-cell brightness (log-normal) × (cytoplasm
  with punctate texture + membrane signal that is strongest at cell–cell junctions),
  dimmer over the nucleus, faint lamellipodia, autofluorescent background; then
  optical blur, uneven illumination, Poisson shot noise and Gaussian read noise.
* **bf** (bright-field): cells are nearly transparent phase objects. Their optical
  thickness gives thin dark/bright halos at edges (the Laplacian of the blurred
  thickness, as a slightly defocused bright-field image shows), granules of both
  signs give texture, nuclei are faintly outlined, and the mean grey level of cells
  is calibrated to that of the background (as in a well-focused bright-field image).
* **nuc** (DAPI): bright dome-shaped nuclei of varied intensity with chromatin texture.

SNR of a channel = mean signal of the cells above background / noise σ at that signal.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .synth_geometry import Geometry, cell_boundaries, smooth_noise
from .synth_params import SynthParams

#: Camera offset added to every channel (ADU), like a real sCMOS/CCD.
CAMERA_OFFSET = 100.0
#: Read noise of the simulated camera (photo-electrons, σ).
READ_NOISE = 3.0


def _camera(expected: np.ndarray, snr: float, signal: float, background: float,
            rng: np.random.Generator) -> np.ndarray:
    """Shot + read noise, the photon scale chosen so that the cells have the given SNR.

    With ``signal`` S (mean noise-free cell signal above background) and
    ``background`` B in input units, the scale s solves
    s·S / sqrt(s·(S + B) + read²) = snr.
    """
    a = signal ** 2
    b = snr ** 2 * (signal + background)
    c = snr ** 2 * READ_NOISE ** 2
    scale = (b + np.sqrt(b * b + 4 * a * c)) / (2 * a)
    photons = rng.poisson(np.clip(expected, 0, None) * scale).astype(np.float32)
    electrons = photons + rng.normal(0.0, READ_NOISE, expected.shape).astype(np.float32)
    # like a 16-bit camera: bright channels are read out with more electrons per ADU
    gain = max(1.0, float(np.percentile(expected, 99.9) * scale) / 40000.0)
    return electrons / gain + CAMERA_OFFSET


def render_fl(g: Geometry, rng: np.random.Generator, p: SynthParams) -> np.ndarray:
    """Anti-pY-like immunofluorescence (see module docstring)."""
    shape = g.labels.shape
    n = int(g.labels.max())
    cell_px = p.cell_diameter_um / p.pixel_size
    bright = np.r_[0.0, rng.lognormal(-0.5 * p.cell_brightness_cv ** 2,
                                      p.cell_brightness_cv, n)]
    body = g.body > 0
    lamella = (g.labels > 0) & ~body
    texture = 1.0 + 0.18 * smooth_noise(rng, shape, cell_px / 8)
    spots = (rng.random(shape) < 0.02) * rng.exponential(1.0, shape)
    spots = ndi.gaussian_filter(spots.astype(np.float32), 0.7) * (2 * np.pi * 0.7 ** 2)
    cyto = body * np.clip(texture, 0.3, None) * (0.75 + 0.9 * spots)
    junction, periphery = cell_boundaries(g.body)
    membrane = (p.junction_gain * junction + p.periphery_gain * periphery) * (0.8 + 0.5 * spots)
    nucleus_dim = 1.0 - 0.45 * (g.nuclei > 0) * (1.0 - 0.4 * g.rho)
    signal = bright[g.labels] * ((cyto + membrane) * nucleus_dim + 0.2 * lamella * texture)
    background = 0.12
    clean = ndi.gaussian_filter(signal + background, p.psf_sigma_um / p.pixel_size)
    clean *= _illumination(rng, shape, p.illumination)
    bg = float(np.median(clean[g.labels == 0])) if (g.labels == 0).any() else background
    level = float(clean[body].mean()) - bg if body.any() else 1.0
    return _camera(clean, p.fl_snr, max(level, 1e-3), bg, rng)


def _illumination(rng: np.random.Generator, shape, drop: float) -> np.ndarray:
    """Smooth vignetting plus a tilt, from 1 down to 1 - drop."""
    rr, cc = np.indices(shape, dtype=np.float32)
    cy, cx = rng.uniform(0.2, 0.8, 2) * np.array(shape)
    r2 = ((rr - cy) / shape[0]) ** 2 + ((cc - cx) / shape[1]) ** 2
    theta = rng.uniform(0, 2 * np.pi)
    tilt = (np.cos(theta) * rr / shape[0] + np.sin(theta) * cc / shape[1])
    field = r2 + 0.5 * tilt
    field = (field - field.min()) / (np.ptp(field) + 1e-12)
    return (1.0 - drop * field).astype(np.float32)


def render_bf(g: Geometry, rng: np.random.Generator, p: SynthParams) -> np.ndarray:
    """Bright-field: halos from optical thickness, granular texture, equal mean grey."""
    shape = g.labels.shape
    cell_px = p.cell_diameter_um / p.pixel_size
    body = g.body > 0
    cells = g.labels > 0
    inner = ndi.distance_transform_edt(body)
    thick = body * (1.0 - np.exp(-inner / (0.12 * cell_px)))
    thick = thick + 0.3 * (g.nuclei > 0) * np.sqrt(np.clip(1 - g.rho ** 2, 0, 1))
    thick = thick + 0.12 * (cells & ~body)
    halo = -ndi.gaussian_laplace(thick.astype(np.float32), 1.4)
    granule_sign = np.where(rng.random(shape) < 0.65, -1.0, 1.0)
    granules = (rng.random(shape) < 0.05) * granule_sign * rng.exponential(1.0, shape)
    granules = ndi.gaussian_filter(granules.astype(np.float32), 0.8) * 5.0
    band = smooth_noise(rng, shape, 1.2) - 0.6 * smooth_noise(rng, shape, 3.0)
    texture = body * (granules + 0.5 * band) + (cells & ~body) * 0.3 * band
    outline = ndi.gaussian_filter(np.logical_or(*cell_boundaries(g.nuclei)).astype(np.float32), 0.8)
    junction = ndi.gaussian_filter(cell_boundaries(g.body)[0].astype(np.float32), 0.7)
    debris = ndi.gaussian_filter(((rng.random(shape) < 2e-4) & ~cells).astype(np.float32),
                                 1.5) * -25.0
    rim = ndi.gaussian_laplace(body.astype(np.float32), 1.2)  # bright outside, dark inside
    contrast = 6.0 * halo + 4.0 * rim + 0.4 * texture - 0.8 * outline - 1.0 * junction + debris
    if cells.any() and (~cells).any():  # calibrate: cells have the background's mean grey
        contrast = contrast - cells * (contrast[cells].mean() - contrast[~cells].mean())
        contrast -= contrast[~cells].mean()
    clean = 1000.0 * (1.0 + 0.02 * contrast)
    clean = ndi.gaussian_filter(clean, p.psf_sigma_um / p.pixel_size)
    clean *= _illumination(rng, shape, 0.3 * p.illumination)
    level = float(np.std(clean[cells])) if cells.any() else 1.0
    return _camera(clean, p.bf_snr, level, float(clean.mean()), rng)


def render_nuc(g: Geometry, rng: np.random.Generator, p: SynthParams) -> np.ndarray:
    """DAPI-like nuclei: dome profile, varied intensity, chromatin texture."""
    shape = g.labels.shape
    n = int(g.nuclei.max())
    bright = np.r_[0.0, rng.lognormal(0.0, 0.3, n)]
    mitotic = rng.random(n + 1) < 0.03
    bright[mitotic] *= 2.0
    dome = np.sqrt(np.clip(1.0 - g.rho ** 2, 0, 1)) * (g.nuclei > 0)
    chromatin = 1.0 + 0.25 * smooth_noise(rng, shape, 1.5)
    nucleoli = ndi.gaussian_filter((rng.random(shape) < 0.004).astype(np.float32), 1.2) * 20
    signal = bright[g.nuclei] * (0.35 + 0.65 * dome) * np.clip(chromatin - nucleoli, 0.2, None)
    signal = signal + 0.015 * (g.labels > 0) + 0.03
    clean = ndi.gaussian_filter(signal, p.psf_sigma_um / p.pixel_size)
    clean *= _illumination(rng, shape, 0.5 * p.illumination)
    bg = float(np.median(clean[g.nuclei == 0]))
    level = float(clean[g.nuclei > 0].mean()) - bg if n else 1.0
    return _camera(clean, p.nuc_snr, max(level, 1e-3), bg, rng)


def render_channels(g: Geometry, rng: np.random.Generator, p: SynthParams) -> dict:
    """All three channels as float32 images."""
    return {"fl": render_fl(g, rng, p).astype(np.float32),
            "bf": render_bf(g, rng, p).astype(np.float32),
            "nuc": render_nuc(g, rng, p).astype(np.float32)}
