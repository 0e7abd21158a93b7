"""Taubin's shrink-free smoothing of an extracted mesh (Taubin 1995, "A signal processing approach to fair
surface design").

Marching cubes on a fitted field leaves two kinds of roughness at the voxel scale: the field's own ripples
and the triangulation's (slivers whose normals scatter around the surface's). A uniform-Laplacian step
v += lam (mean(neighbours) - v) damps both but shrinks the surface; Taubin alternates it with an inflating
step v -= mu (...) (mu slightly above lam), so the pair is a low-pass filter with no shrinkage of the
low frequencies. Measured on the quick preset (scripts/bench_sdf.py fidelity, NSTR, 100k metric points),
6 steps at lam 0.5 / mu 0.53 raise normal consistency against the input on every benchmark mesh (Suzanne
0.967 -> 0.971, the 133-hole plate 0.960 -> 0.964, rotor 0.988 -> 0.990, elephant 0.988 -> 0.989, bunny
0.996 -> 0.997) with IoU within 0.001 (plate and rotor up); odd step counts end on a shrinking step and cost
IoU (the bunny 0.990 -> 0.984 after one). Topology never changes: only vertices move.
"""

from __future__ import annotations

import numpy as np

TAUBIN_LAMBDA = 0.5
TAUBIN_MU = 0.53


def taubin_smooth(vertices: np.ndarray, faces: np.ndarray, steps: int,
                  lam: float = TAUBIN_LAMBDA, mu: float = TAUBIN_MU) -> np.ndarray:
    """``steps`` alternating shrink (lam) / inflate (mu) uniform-Laplacian steps: a new array of the same dtype
    (0 steps: ``vertices`` itself, the mesh as extracted)."""
    if steps <= 0 or len(faces) == 0:
        return vertices
    from nstr.spectral.measured import mesh_adjacency

    mean = mesh_adjacency(len(vertices), faces, self_loops=False)
    v = np.asarray(vertices, np.float64).copy()
    for k in range(steps):
        v += (lam if k % 2 == 0 else -mu) * (mean @ v - v)
    return v.astype(vertices.dtype, copy=False)
