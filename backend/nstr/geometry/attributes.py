"""Spectral-flow attributes at every output vertex: raw values, colours and their ranges.

The NSTR field works in the unit box (unit = (input - center) / scale). Frequencies come
back from :func:`nstr.spectral.spectral_flow` in cycles per unit-box length and are divided
by ``scale`` to give cycles per unit of the INPUT's length; drift (a derivative of a
frequency) is divided by ``scale``^2. The transport residual ||J_S - F_theta|| stays in the
field's own units (per unit-box length), where the PDE loss measures it.

Drift is projected onto each vertex's tangent plane and shown as hue = its direction in a
per-vertex tangent frame (t1 = normalised n x z, or n x x near the poles; t2 = n x t1)
and brightness = magnitude.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SCALAR_ATTRIBUTES = ("local_frequency", "bandwidth", "transport_residual")


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (outward for outward-wound faces)."""
    tri = vertices[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n = np.zeros_like(vertices, dtype=np.float64)
    for k in range(3):
        np.add.at(n, faces[:, k], cross)
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return np.where(length > 0, n / np.maximum(length, 1e-300), np.array([0.0, 0.0, 1.0]))


def tangent_frame(normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(t1, t2) orthonormal tangents per vertex; t1 follows n x z (n x x where n is near +-z)."""
    ref = np.where(np.abs(normals[:, 2:3]) < 0.9, np.array([[0.0, 0.0, 1.0]]), np.array([[1.0, 0.0, 0.0]]))
    t1 = np.cross(normals, ref)
    t1 /= np.maximum(np.linalg.norm(t1, axis=1, keepdims=True), 1e-300)
    return t1, np.cross(normals, t1)


def spectral_attributes(field: Any, vertices_unit: np.ndarray, faces: np.ndarray, scale: float,
                        chunk: int = 32768) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays (architecture.md's table) and meta {ranges, colormaps, units} for an NSTR field."""
    from nstr.colormaps import ATTRIBUTE_COLORMAPS, direction_colors, scalar_colors
    from nstr.spectral import spectral_flow

    flow = spectral_flow(field, vertices_unit.astype(np.float32), chunk=chunk)
    normals = vertex_normals(vertices_unit, faces)
    drift = flow["drift"].astype(np.float64) / scale ** 2
    drift_t = drift - np.einsum("nd,nd->n", drift, normals)[:, None] * normals
    t1, t2 = tangent_frame(normals)
    angle = np.arctan2(np.einsum("nd,nd->n", drift_t, t2), np.einsum("nd,nd->n", drift_t, t1))
    magnitude = np.linalg.norm(drift_t, axis=1)
    raw = {"local_frequency": flow["local_frequency"] / scale, "bandwidth": flow["bandwidth"] / scale,
           "transport_residual": flow["transport_residual"]}
    arrays: dict[str, np.ndarray] = {}
    ranges: dict[str, list[float]] = {}
    for name in SCALAR_ATTRIBUTES:
        values = np.nan_to_num(np.asarray(raw[name], np.float64))
        colors, (lo, hi) = scalar_colors(values, ATTRIBUTE_COLORMAPS[name])
        arrays[name] = values.astype(np.float32)
        arrays[f"color_{name}"] = colors.astype(np.float32)
        ranges[name] = [lo, hi]
    colors, (lo, hi) = direction_colors(angle, magnitude)
    arrays["drift"] = np.nan_to_num(drift_t).astype(np.float32)
    arrays["drift_magnitude"] = np.nan_to_num(magnitude).astype(np.float32)
    arrays["color_drift"] = colors.astype(np.float32)
    ranges["drift"] = ranges["drift_magnitude"] = [lo, hi]
    meta = {"ranges": ranges,
            "colormaps": {**{n: ATTRIBUTE_COLORMAPS[n] for n in SCALAR_ATTRIBUTES}, "drift": ATTRIBUTE_COLORMAPS["drift"]},
            "units": {"local_frequency": "cycles per unit of input length", "bandwidth": "cycles per unit of input length",
                      "drift": "cycles per unit of input length, per unit of input length (tangent plane)",
                      "transport_residual": "|dS/dx - F| per unit of the field's [-1, 1] box",
                      "drift_hue": "angle in the tangent frame t1 = n x z (n x x near the poles), t2 = n x t1"}}
    return arrays, meta
