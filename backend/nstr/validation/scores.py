"""How a readout is scored against a known answer."""

from __future__ import annotations

import numpy as np


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks are not needed: the values are continuous)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def calibration_slope(measured: np.ndarray, truth: np.ndarray) -> float:
    """Least-squares slope of measured against truth (1 = calibrated)."""
    t = np.asarray(truth, np.float64).ravel()
    m = np.asarray(measured, np.float64).ravel()
    tc = t - t.mean()
    return float((tc * (m - m.mean())).sum() / max((tc * tc).sum(), 1e-300))


def relative_error(measured: np.ndarray, truth: np.ndarray) -> float:
    """Median |measured / truth - 1|."""
    return float(np.median(np.abs(np.asarray(measured, np.float64) / np.asarray(truth, np.float64) - 1.0)))


def cv(values: np.ndarray) -> float:
    """Coefficient of variation std / |mean|."""
    v = np.asarray(values, np.float64)
    return float(v.std() / max(abs(v.mean()), 1e-300))


def weighted_cosine(vectors: np.ndarray, truth: np.ndarray) -> float:
    """Magnitude-weighted mean cosine between two vector fields: sum |v| cos / sum |v|."""
    v, t = np.asarray(vectors, np.float64), np.asarray(truth, np.float64)
    nv, nt = np.linalg.norm(v, axis=1), np.linalg.norm(t, axis=1)
    ok = (nv > 0) & (nt > 0)
    if not ok.any():
        return float("nan")
    cos = np.einsum("nd,nd->n", v[ok], t[ok]) / (nv[ok] * nt[ok])
    return float((nv[ok] * cos).sum() / nv[ok].sum())
