"""A CAD-like test part whose right answer is known: a flat plate with a grid of round through-holes.

Each grid cell's top face is the annulus between the cell's square and its hole, triangulated
as one quad strip (hole point k joined to the square's point at the same angle), so neighbouring
cells share their square edge points exactly and welding makes one closed, consistently wound
2-manifold. Its genus is the number of holes (Euler characteristic 2 - 2 * holes), which is what
the extraction tests and the benchmark check: a hole that marching cubes webs over lowers it.

Hole diameters ramp along the columns from ``d_min`` to ``d_max`` so one part has holes both
wider and narrower than a marching-cubes voxel. Units are the caller's (mm by default) and the
plate sits at ``origin``, not at 0, so a result that is not put back in the input frame shows.
"""

from __future__ import annotations

import numpy as np


def holes_plate(rows: int = 7, cols: int = 19, cell: float = 10.0, thickness: float = 6.0,
                d_min: float = 1.2, d_max: float = 6.0, segments: int = 32,
                origin: tuple[float, float, float] = (40.0, -15.0, 5.0)) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3) float64, faces (F, 3) int64, outward) of a ``rows`` x ``cols`` holes plate."""
    if segments % 8:
        raise ValueError("segments must be a multiple of 8 (the square's corners must be sample angles)")
    if not 0 < d_min <= d_max < cell:
        raise ValueError("hole diameters must satisfy 0 < d_min <= d_max < cell")
    theta = 2 * np.pi * np.arange(segments) / segments
    c, s = np.cos(theta), np.sin(theta)
    square = np.stack([c, s], 1) / np.maximum(np.abs(c), np.abs(s))[:, None] * (cell / 2)  # on the cell border
    circle = np.stack([c, s], 1)
    verts: list[np.ndarray] = []
    faces: list[np.ndarray] = []
    n = 0
    k = np.arange(segments)
    k1 = (k + 1) % segments
    z = (-thickness / 2, thickness / 2)
    for i in range(rows):
        for j in range(cols):
            d = d_min + (d_max - d_min) * (j / max(cols - 1, 1))
            center = np.array([(j + 0.5) * cell, (i + 0.5) * cell])
            ring_out = center + square
            ring_in = center + circle * (d / 2)
            # vertex blocks: 0 bottom square, 1 bottom hole, 2 top square, 3 top hole
            block = [np.c_[r, np.full(segments, h)] for h in z for r in (ring_out, ring_in)]
            verts.extend(block)
            bo, bi, to, ti = (n + b * segments for b in range(4))
            # top face (normal +z, counter-clockwise seen from above): outer k -> outer k+1 -> inner k+1
            faces.append(np.c_[to + k, to + k1, ti + k1])
            faces.append(np.c_[to + k, ti + k1, ti + k])
            # bottom face (normal -z): reversed
            faces.append(np.c_[bo + k, bi + k1, bo + k1])
            faces.append(np.c_[bo + k, bi + k, bi + k1])
            # hole wall (normal towards the hole's axis)
            faces.append(np.c_[bi + k, ti + k1, bi + k1])
            faces.append(np.c_[bi + k, ti + k, ti + k1])
            # outer walls where the cell lies on the plate's border (normal outward)
            on_border = np.zeros(segments, bool)
            mid = (ring_out + np.roll(ring_out, -1, 0)) / 2 - center
            if j == 0:
                on_border |= mid[:, 0] < -cell / 2 + 1e-9
            if j == cols - 1:
                on_border |= mid[:, 0] > cell / 2 - 1e-9
            if i == 0:
                on_border |= mid[:, 1] < -cell / 2 + 1e-9
            if i == rows - 1:
                on_border |= mid[:, 1] > cell / 2 - 1e-9
            kb, kb1 = k[on_border], k1[on_border]
            faces.append(np.c_[bo + kb, bo + kb1, to + kb1])
            faces.append(np.c_[bo + kb, to + kb1, to + kb])
            n += 4 * segments
    v = np.concatenate(verts)
    f = np.concatenate(faces)
    # weld the square-edge points that neighbouring cells share
    q = np.round(v / (cell * 1e-6)).astype(np.int64)
    _, first, inverse = np.unique(q, axis=0, return_index=True, return_inverse=True)
    v, f = v[first], inverse.reshape(-1)[f]
    return v + np.asarray(origin, np.float64), f.astype(np.int64)
