"""Test signals with a known spectral flow, and the real scikit-image pictures, sized for a run.

The chirp and the drifting texture are the review's objection 1: their local frequency
moves continuously, which fixed carriers under amplitude modulation cannot follow cheaply.
"""

from __future__ import annotations

import numpy as np

from nstr.errors import InputError
from nstr.signals.audio_io import Audio

SKIMAGE_IMAGES = ("camera", "astronaut", "brick", "grass", "coffee", "chelsea", "moon", "text", "rocket")


def chirp(n_samples: int = 4096, rate: int = 16000, f0_hz: float = 200.0, f1_hz: float = 4000.0,
          amplitude: float = 0.8) -> Audio:
    """A linear chirp whose frequency sweeps ``f0_hz -> f1_hz`` over the clip."""
    t = np.arange(n_samples, dtype=np.float64) / rate
    duration = n_samples / rate
    phase = 2 * np.pi * (f0_hz * t + 0.5 * (f1_hz - f0_hz) / duration * t**2)
    return Audio((amplitude * np.sin(phase)).astype(np.float32), rate, 32, "float")


def chirp_frequency_hz(n_samples: int, rate: int, f0_hz: float = 200.0, f1_hz: float = 4000.0) -> np.ndarray:
    """The chirp's true instantaneous frequency at every sample (ground truth for the pictures)."""
    return np.linspace(f0_hz, f1_hz, n_samples, endpoint=False)


def drifting_texture(size: int = 64, f0: float = 0.03, f1: float = 0.25, fy: float = 0.02) -> np.ndarray:
    """A grey ``(size, size, 1)`` grating in [0.1, 0.9]. Its local frequency vector, in cycles per pixel,
    is ``(f0 + (f1 - f0) x / size, fy)``: the frequency drifts linearly from left to right and the
    wave fronts bend as they tighten."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    phase = 2 * np.pi * (f0 * x + 0.5 * (f1 - f0) / size * x**2 + fy * y)
    return (0.5 + 0.4 * np.sin(phase)).astype(np.float32)[..., None]


def drifting_texture_frequency(size: int = 64, f0: float = 0.03, f1: float = 0.25, fy: float = 0.02) -> np.ndarray:
    """The texture's true local frequency magnitude (cycles per pixel) at every pixel."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    return np.hypot(f0 + (f1 - f0) * x / size, fy).astype(np.float32)


def skimage_image(name: str, size: int = 64, crop: int | None = 256) -> np.ndarray:
    """A real picture from scikit-image's bundled data as ``(size, size, C)`` float32 in [0, 1]:
    the centre ``crop`` x ``crop`` square (None: the largest square), resized to ``size``."""
    import skimage.data
    from skimage.transform import resize

    if name not in SKIMAGE_IMAGES:
        raise InputError(f"unknown scikit-image picture '{name}'", "Choose one of: " + ", ".join(SKIMAGE_IMAGES))
    raw = np.asarray(getattr(skimage.data, name)())
    image = raw.astype(np.float32) / (255.0 if raw.dtype == np.uint8 else max(float(raw.max()), 1.0))
    if image.ndim == 2:
        image = image[..., None]
    image = image[..., :3]
    h, w = image.shape[:2]
    side = min(h, w) if crop is None else min(crop, h, w)
    top, left = (h - side) // 2, (w - side) // 2
    image = image[top:top + side, left:left + side]
    if side != size:
        image = resize(image, (size, size, image.shape[2]), anti_aliasing=side > size, order=1)
    return np.clip(image, 0.0, 1.0).astype(np.float32)
