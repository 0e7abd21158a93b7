"""Local feature size of a mesh: how thin its walls and how narrow its gaps are, per surface point.

From a surface point p with normal n, walk along +n and -n at geometric steps t. While the point
p + t n is still closest to p's own sheet, its distance to the mesh is t; once it passes the medial
axis between p's sheet and another one the distance drops below t. At that first step the other
sheet's distance is w - t for parallel sheets w apart, so the width is t + d (exact for parallel
walls and for a round hole's diameter). The crossing only counts when the closest face there is
roughly parallel to p's (|n . n'| > 0.7): near a convex or concave edge the other face is
perpendicular, which is a crease, not a thin wall or a gap, and marching cubes does not need a
finer grid for it. Both directions are probed, so the result needs no orientation (open meshes).

This drives the extraction resolution (a few voxels across the thinnest features) and the
near-surface noise scale in sampling (noise wider than the gap would land on the far wall).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nstr.geometry.ground_truth import MeshSDF
from nstr.geometry.mesh import Mesh


@dataclass
class FeatureSize:
    """Per probe point: points (N, 3), feature width (N,) (inf where none was found below t_max), in the
    mesh's own units; plus the summary the resolution choice uses."""

    points: np.ndarray
    width: np.ndarray
    median_edge: float

    def quantile(self, q: float) -> float:
        """Area-weighted q-quantile of the width (probe points are area-uniform); inf when no feature."""
        finite = np.isfinite(self.width)
        if finite.mean() <= q:
            return float("inf")
        return float(np.quantile(np.where(finite, self.width, np.inf), q))


def feature_size(mesh: Mesh, gt: MeshSDF, n_points: int = 4000, t_min: float = 5e-4, t_max: float = 0.5,
                 n_steps: int = 28, seed: int = 0) -> FeatureSize:
    """Probe ``n_points`` area-uniform surface points (``t_*`` in the mesh's units)."""
    from nstr.geometry.sampling import surface_points

    rng = np.random.default_rng(seed)
    p, n = surface_points(mesh, n_points, rng)
    tri = mesh.vertices[mesh.faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    fn /= np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-30)
    ts = np.geomspace(t_min, t_max, n_steps)
    width = np.full(n_points, np.inf)
    for side in (1.0, -1.0):
        q = (p[None, :, :] + side * ts[:, None, None] * n[None, :, :]).reshape(-1, 3)
        d, face, _ = gt.closest(q)
        d = d.reshape(n_steps, n_points)
        parallel = (np.abs(np.einsum("knd,nd->kn", fn[face].reshape(n_steps, n_points, 3), n)) > 0.7)
        crossed = d < 0.9 * ts[:, None]
        first = np.argmax(crossed, axis=0)  # first step past the medial axis (0 when none: masked below)
        found = crossed.any(axis=0)
        cols = np.arange(n_points)
        ok = found & parallel[first, cols]
        w = np.where(ok, ts[first] + d[first, cols], np.inf)
        width = np.minimum(width, w)
    e = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2)
    return FeatureSize(points=p, width=width, median_edge=float(np.median(e)))


def resolution_for(width: float, *, cells_per_feature: float = 3.0, minimum: int = 128, maximum: int = 512,
                   multiple: int = 8) -> int:
    """Grid points per axis over the unit box [-1, 1]^3 so that ``cells_per_feature`` voxels span a feature
    of ``width`` (unit-box units), within [minimum, maximum] and rounded up to ``multiple`` cells + 1."""
    if not np.isfinite(width) or width <= 0:
        return minimum
    cells = int(np.ceil(2.0 * cells_per_feature / width))
    cells = -(-cells // multiple) * multiple
    return int(min(max(cells + 1, minimum), maximum))


def face_widths(mesh: Mesh, fs: FeatureSize, k: int = 3) -> np.ndarray:
    """Per face: the smallest feature width among the ``k`` probes nearest its centroid (inf: none)."""
    from scipy.spatial import cKDTree

    centroids = mesh.vertices[mesh.faces].mean(1)
    _, idx = cKDTree(fs.points).query(centroids, k=min(k, len(fs.points)))
    return fs.width[np.asarray(idx).reshape(len(centroids), -1)].min(1)
