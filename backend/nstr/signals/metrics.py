"""Accuracy metrics, named and defined as in the project's anchors (docs/anchors.md)."""

from __future__ import annotations

import numpy as np


def psnr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """PSNR in dB for signals in [0, 1]: ``-10 log10(MSE)``. The estimate is clipped to [0, 1] first,
    as it would be when saved."""
    ref = np.asarray(reference, dtype=np.float64)
    est = np.clip(np.asarray(estimate, dtype=np.float64), 0.0, 1.0)
    mse = float(np.mean((ref - est) ** 2))
    return float("inf") if mse == 0.0 else float(-10.0 * np.log10(mse))


def ssim(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004, skimage's implementation) of ``(H, W)`` or ``(H, W, C)`` images in [0, 1]."""
    from skimage.metrics import structural_similarity

    ref = np.asarray(reference, dtype=np.float64)
    est = np.clip(np.asarray(estimate, dtype=np.float64), 0.0, 1.0)
    if ref.ndim == 3 and ref.shape[2] == 1:
        ref, est = ref[..., 0], est[..., 0]
    side = min(ref.shape[:2])
    win = min(7, side if side % 2 == 1 else side - 1)
    channel_axis = 2 if ref.ndim == 3 else None
    return float(structural_similarity(ref, est, data_range=1.0, win_size=win, channel_axis=channel_axis))


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Audio SNR in dB: ``10 log10(sum x^2 / sum (x - x_hat)^2)``."""
    ref = np.asarray(reference, dtype=np.float64)
    err = float(np.sum((ref - np.asarray(estimate, dtype=np.float64)) ** 2))
    sig = float(np.sum(ref**2))
    if err == 0.0:
        return float("inf")
    return float(10.0 * np.log10(sig / err)) if sig > 0 else float("-inf")
