"""Ground-truth signed distance to a triangle mesh, robust to open meshes.

* Sign: libigl's fast winding number (Barill et al. 2018). |w| > 1/2 is inside, so
  open meshes (Suzanne's eyes), several parts and flipped orientation all work.
* Unsigned distance: exact point-triangle distance through libigl's AABB tree,
  built once per mesh.
* Speed: the exact AABB query is slow for points far from the surface, and training
  only needs exact values inside the loss's truncation band. A KD-tree over a cover of
  the surface (vertices plus subdivided long triangles, every surface point within
  ``cover`` of a cover point) bounds the distance from below and above; points whose
  lower bound is outside the band keep the upper bound (error <= ``cover``) and skip
  the AABB query. Pass ``band=None`` for exact distances everywhere.
"""

from __future__ import annotations

import numpy as np

CHUNK = 262_144  # points per libigl call: bounds memory, keeps progress responsive


class MeshSDF:
    """Signed distance to one mesh (negative inside). Build once, query many times."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, cover: float | None = None) -> None:
        import igl

        self.vertices = np.ascontiguousarray(vertices, dtype=np.float64)
        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        self._tree = igl.AABB()
        self._tree.init(self.vertices, self.faces)
        size = float(np.ptp(self.vertices, axis=0).max())
        self.cover = float(cover) if cover is not None else 0.01 * size
        self._kd = None

    # --- unsigned distance -------------------------------------------------
    def closest(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact (distance, face index, closest point) for every point."""
        q = np.ascontiguousarray(points, dtype=np.float64)
        d2 = np.empty(len(q))
        idx = np.empty(len(q), dtype=np.int64)
        cp = np.empty((len(q), 3))
        for s in range(0, len(q), CHUNK):
            d2[s:s + CHUNK], idx[s:s + CHUNK], cp[s:s + CHUNK] = self._tree.squared_distance(
                self.vertices, self.faces, q[s:s + CHUNK])
        return np.sqrt(np.maximum(d2, 0.0)), idx, cp

    def unsigned_distance(self, points: np.ndarray, band: float | None = None) -> np.ndarray:
        """Exact where the distance may be below ``band`` (all points if band is None); elsewhere an
        upper bound within ``self.cover`` of the truth, which is still >= band - cover."""
        q = np.ascontiguousarray(points, dtype=np.float64)
        if band is None or len(q) == 0:
            return self.closest(q)[0]
        upper = self._cover_tree().query(q, workers=-1)[0]
        need = upper - self.cover < band
        out = upper
        if need.any():
            out = upper.copy()
            out[need] = self.closest(q[need])[0]
        return out

    def _cover_tree(self):  # noqa: ANN202 - scipy type
        """KD-tree over points such that every surface point lies within ``cover`` of one of them."""
        if self._kd is None:
            from scipy.spatial import cKDTree

            self._kd = cKDTree(surface_cover(self.vertices, self.faces, self.cover))
        return self._kd

    # --- sign ---------------------------------------------------------------
    def winding_number(self, points: np.ndarray) -> np.ndarray:
        import igl

        q = np.ascontiguousarray(points, dtype=np.float64)
        out = np.empty(len(q))
        for s in range(0, len(q), CHUNK):
            out[s:s + CHUNK] = igl.fast_winding_number(self.vertices, self.faces, q[s:s + CHUNK])
        return out

    def inside(self, points: np.ndarray) -> np.ndarray:
        """Occupancy by the generalised winding number; orientation-agnostic (|w| > 1/2)."""
        return np.abs(self.winding_number(points)) > 0.5

    def signed_distance(self, points: np.ndarray, band: float | None = None) -> np.ndarray:
        d = self.unsigned_distance(points, band=band)
        return np.where(self.inside(points), -d, d)


def surface_cover(vertices: np.ndarray, faces: np.ndarray, cover: float) -> np.ndarray:
    """Vertices plus a barycentric grid on every triangle longer than ``cover``.

    A triangle with longest edge L split n = ceil(L / cover) times along each edge has
    sub-triangles with edges <= cover, so every point of it is within ``cover`` of a grid point.
    """
    tri = vertices[faces]
    longest = np.max(np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2), axis=1)
    n = np.ceil(longest / cover).astype(np.int64)
    pts = [vertices]
    for level in np.unique(n[n > 1]):
        i, j = np.meshgrid(np.arange(level + 1), np.arange(level + 1), indexing="ij")
        keep = (i + j) <= level
        bary = np.stack([i[keep], j[keep], level - i[keep] - j[keep]], axis=1) / level  # (P, 3)
        t = tri[n == level]
        pts.append(np.einsum("pk,tkd->tpd", bary, t).reshape(-1, 3))
    return np.concatenate(pts)
