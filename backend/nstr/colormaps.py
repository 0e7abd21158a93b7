"""Colours for spectral-flow attributes: perceptual maps for scalars, a hue wheel for drift.

Colours are sRGB-encoded RGBA floats in [0, 1] (what PLY/GLB store and what a
legend shows); Blender's FLOAT_COLOR wants linear values: use :func:`srgb_to_linear`.
Value ranges are robust percentiles, recorded so that a legend can be drawn.
"""

from __future__ import annotations

import numpy as np

# Perceptually uniform maps (matplotlib's), one per attribute so they are not confused.
ATTRIBUTE_COLORMAPS: dict[str, str] = {
    "local_frequency": "viridis",
    "bandwidth": "cividis",
    "spectral_frequency": "plasma",
    "transport_residual": "inferno",
    "drift": "hue-direction",  # hue = direction, brightness = magnitude
}


def robust_range(values: np.ndarray, lo_pct: float = 1.0, hi_pct: float = 99.0) -> tuple[float, float]:
    """The 1st..99th percentile of the finite values: outliers do not wash the map out."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, [lo_pct, hi_pct])
    if hi - lo < 1e-12 * max(1.0, abs(hi)):
        hi = lo + max(1e-6, abs(lo) * 1e-3)
    return float(lo), float(hi)


def scalar_colors(values: np.ndarray, cmap: str = "viridis", vmin: float | None = None,
                  vmax: float | None = None) -> tuple[np.ndarray, tuple[float, float]]:
    """(N, 4) float32 sRGB colours and the (vmin, vmax) used."""
    import matplotlib

    if vmin is None or vmax is None:
        lo, hi = robust_range(values)
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
    t = (np.asarray(values, dtype=np.float64) - vmin) / max(vmax - vmin, 1e-12)
    t = np.nan_to_num(np.clip(t, 0.0, 1.0), nan=0.0)
    rgba = matplotlib.colormaps[cmap](t).astype(np.float32)
    return rgba, (float(vmin), float(vmax))


def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    import matplotlib.colors

    return matplotlib.colors.hsv_to_rgb(np.stack([h % 1.0, s, v], -1))


def direction_colors(angle: np.ndarray, magnitude: np.ndarray,
                     max_magnitude: float | None = None) -> tuple[np.ndarray, tuple[float, float]]:
    """Hue = direction (angle in radians), brightness = magnitude / max_magnitude. (N, 4) sRGB + range."""
    mag = np.nan_to_num(np.asarray(magnitude, dtype=np.float64))
    if max_magnitude is None:
        max_magnitude = robust_range(mag, 0.0, 99.0)[1]
    value = np.clip(mag / max(max_magnitude, 1e-12), 0.0, 1.0)
    hue = (np.nan_to_num(np.asarray(angle, dtype=np.float64)) / (2 * np.pi)) % 1.0
    rgb = hsv_to_rgb(hue, np.ones_like(hue), value)
    rgba = np.concatenate([rgb, np.ones(rgb.shape[:-1] + (1,))], -1).astype(np.float32)
    return rgba, (0.0, float(max_magnitude))


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded [0, 1] -> linear (alpha untouched if present)."""
    c = np.asarray(c, dtype=np.float32)
    rgb = c[..., :3]
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return np.concatenate([lin, c[..., 3:]], -1).astype(np.float32) if c.shape[-1] == 4 else lin.astype(np.float32)
