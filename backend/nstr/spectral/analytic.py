"""Banded NSTR's own frequency readout on a sample grid: the instantaneous frequency of its carriers'
analytic signal (:meth:`nstr.fields.nstr_banded.BandedNSTRField.analytic_moments`), windowed.

Both moments are averaged over a small Gaussian window before their ratio is taken: for one component
the ratio is its frequency at every point (the window changes nothing), and where components beat (a
chord, a texture's crossing waves) the averaged ratio is their power-weighted mean frequency, where the
pointwise one swings with the beat. Measured on fits at the frame's band limit (scripts/bench_banded.py,
300 steps; the power-weighted carrier centroid in brackets): the chirp rho 1.000, slope 1.000 (0.998,
0.979); the tone that jumps from 500 to 2000 Hz read at 1.003 of its contrast (0.484); the drifting
texture rho 0.995, slope 1.03 (0.932, 0.851); a grating whose frequency jumps 3.1x at 0.957 of its
contrast (0.706).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

WINDOW_PIXELS = 2.0       # images: the Gaussian window's sigma, in pixels
WINDOW_SECONDS = 0.0015   # audio: in seconds (24 samples at 16 kHz; a chord's beat needs the average)


def own_frequency(field: Any, x: np.ndarray, shape: tuple[int, ...], sigma: float, centroid: np.ndarray) -> np.ndarray:
    """An NSTR field's own frequency readout on the grid ``x`` (cycles per unit, ``shape``): banded NSTR's
    windowed analytic frequency (:func:`analytic_frequency`), or for classic NSTR ``centroid``, the
    S-weighted centroid :func:`nstr.spectral.spectral_flow` already gave."""
    if hasattr(field, "analytic_moments"):
        return analytic_frequency(field, x, shape, sigma)
    return np.asarray(centroid).reshape(shape)


def analytic_frequency(field: Any, x: np.ndarray | torch.Tensor, shape: tuple[int, ...], sigma: float,
                       chunk: int = 32768) -> np.ndarray:
    """Cycles per unit of the field's input at every grid point ``x`` (N, d) (row-major over ``shape``),
    the moments averaged over a Gaussian of ``sigma`` grid steps."""
    from scipy.ndimage import gaussian_filter

    device = next(field.parameters()).device
    x = torch.as_tensor(x, dtype=torch.float32)
    nums, dens = [], []
    was_training = field.training
    field.eval()
    try:
        with torch.no_grad():
            for s in range(0, x.shape[0], chunk):
                num, den = field.analytic_moments(x[s:s + chunk].to(device))
                nums.append(num.double().cpu().numpy())
                dens.append(den.double().cpu().numpy())
    finally:
        field.train(was_training)
    num, den = np.concatenate(nums), np.concatenate(dens)
    if sigma > 0:
        num = np.stack([gaussian_filter(num[:, k].reshape(shape), sigma, mode="nearest").ravel()
                        for k in range(num.shape[1])], 1)
        den = gaussian_filter(den.reshape(shape), sigma, mode="nearest").ravel()
    return (np.linalg.norm(num, axis=1) / np.maximum(den, 1e-300) / (2 * math.pi)).reshape(shape)
