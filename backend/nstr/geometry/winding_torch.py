"""Ground truth in torch, on the device: exact generalized winding numbers and signed distances.

The CPU path (``nstr.geometry.ground_truth``) uses libigl (fast winding numbers, an AABB tree). On a GPU
the same quantities are computed here by brute force, every point against every triangle in tiles:
O(points x triangles), which a GPU runs at ~1e11 point-triangle pairs per second and which needs no
tree. Results match libigl's exact ``winding_number`` and ``signed_distance`` (tests/test_winding_torch.py).

* winding number: the sum of the triangles' signed solid angles (Van Oosterom & Strackee) over 4 pi;
* unsigned distance: to the plane inside the triangle, else to the nearest edge;
* signed distance: negative where the winding number is above 1/2 (robust on open or messy meshes).

It runs on the CPU too (slowly), which is how it is tested here. The SDF task picks it through
:func:`ground_truth_for` when its device is CUDA (``task.ground_truth``: auto | libigl | torch).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from nstr.geometry.ground_truth import MeshSDF


def _tiles(n_points: int, n_faces: int, pairs: int) -> tuple[int, int]:
    fc = max(1, min(n_faces, pairs // 1024))
    return max(1, pairs // fc), fc


class TorchMeshSDF:
    """A triangle mesh on ``device``: ``winding_number``, ``inside``, ``unsigned_distance``, ``signed_distance``."""

    def __init__(self, vertices: np.ndarray | Tensor, faces: np.ndarray | Tensor, device: torch.device | str = "cpu",
                 pairs_per_tile: int = 2**20) -> None:
        v = torch.as_tensor(np.asarray(vertices, np.float64) if not isinstance(vertices, Tensor) else vertices,
                            dtype=torch.float32, device=device)
        f = torch.as_tensor(np.asarray(faces, np.int64) if not isinstance(faces, Tensor) else faces,
                            dtype=torch.long, device=device)
        self.device = v.device
        self.tri = v[f]  # (F, 3 corners, 3)
        self.pairs = pairs_per_tile

    def _points(self, points: np.ndarray | Tensor) -> Tensor:
        return torch.as_tensor(points, dtype=torch.float32, device=self.device).reshape(-1, 3)

    def winding_number(self, points: np.ndarray | Tensor) -> Tensor:
        p = self._points(points)
        pc, fc = _tiles(len(p), len(self.tri), self.pairs)
        out = torch.zeros(len(p), dtype=torch.float64, device=self.device)
        for s in range(0, len(p), pc):
            q = p[s:s + pc, None, None, :]  # (P, 1, 1, 3)
            acc = torch.zeros(q.shape[0], dtype=torch.float64, device=self.device)
            for t in range(0, len(self.tri), fc):
                abc = self.tri[None, t:t + fc] - q  # (P, Fc, 3, 3)
                a, b, c = abc[..., 0, :], abc[..., 1, :], abc[..., 2, :]
                la, lb, lc = a.norm(dim=-1), b.norm(dim=-1), c.norm(dim=-1)
                det = (a * torch.cross(b, c, dim=-1)).sum(-1)
                den = la * lb * lc + (a * b).sum(-1) * lc + (b * c).sum(-1) * la + (c * a).sum(-1) * lb
                acc += (2.0 * torch.atan2(det, den)).sum(1).double()
            out[s:s + pc] = acc / (4.0 * math.pi)
        return out.float()

    def inside(self, points: np.ndarray | Tensor) -> Tensor:
        return self.winding_number(points) > 0.5

    def unsigned_distance(self, points: np.ndarray | Tensor) -> Tensor:
        p = self._points(points)
        pc, fc = _tiles(len(p), len(self.tri), self.pairs)
        a, b, c = self.tri[:, 0], self.tri[:, 1], self.tri[:, 2]
        n = torch.cross(b - a, c - a, dim=-1)
        nn_ = n.norm(dim=-1, keepdim=True)
        unit = n / nn_.clamp_min(1e-30)
        edges = [(a, b), (b, c), (c, a)]
        out = torch.empty(len(p), device=self.device)
        for s in range(0, len(p), pc):
            q = p[s:s + pc, None, :]  # (P, 1, 3)
            best = torch.full((q.shape[0],), float("inf"), device=self.device)
            for t in range(0, len(self.tri), fc):
                sl = slice(t, t + fc)
                d2 = None
                for e0, e1 in edges:  # distance to the three edges (segments)
                    e = (e1 - e0)[sl]
                    w = q - e0[sl]
                    tt = ((w * e).sum(-1) / (e * e).sum(-1).clamp_min(1e-30)).clamp(0, 1)
                    de = (w - tt.unsqueeze(-1) * e).pow(2).sum(-1)
                    d2 = de if d2 is None else torch.minimum(d2, de)
                # inside the triangle's prism: the distance to its plane
                w = q - a[sl]
                h = (w * unit[sl]).sum(-1)
                proj = q - h.unsqueeze(-1) * unit[sl]
                inside = torch.ones_like(h, dtype=torch.bool)
                for e0, e1 in edges:
                    inside &= (torch.cross((e1[sl] - e0[sl]).expand_as(proj), proj - e0[sl], dim=-1) * n[sl]).sum(-1) >= 0
                inside &= nn_[sl, 0] > 1e-20
                d2 = torch.where(inside, h * h, d2)
                best = torch.minimum(best, d2.min(1).values)
            out[s:s + pc] = best.sqrt()
        return out

    def signed_distance(self, points: np.ndarray | Tensor) -> Tensor:
        p = self._points(points)
        d = self.unsigned_distance(p)
        return torch.where(self.inside(p), -d, d)


def ground_truth_for(vertices: np.ndarray, faces: np.ndarray, closed: bool, device: torch.device | str,
                     engine: str = "auto", sign_from: tuple[np.ndarray, np.ndarray] | None = None) -> MeshSDF:
    """The SDF task's ground truth: libigl on the CPU; on CUDA (``engine="auto"``) or when asked
    (``engine="torch"``), :class:`DeviceMeshSDF`. Either way the same numbers (tests/test_winding_torch.py).
    ``sign_from``: see :class:`MeshSDF`."""
    if engine == "torch" or (engine == "auto" and torch.device(device).type == "cuda"):
        return DeviceMeshSDF(vertices, faces, closed=closed, device=device, sign_from=sign_from)
    return MeshSDF(vertices, faces, closed=closed, sign_from=sign_from)


class DeviceMeshSDF(MeshSDF):
    """:class:`MeshSDF` with its bulk queries (the winding numbers and the training samples' signed
    distances) answered on ``device`` by :class:`TorchMeshSDF`; libigl's tree still serves the few
    closest-point probes of the feature size."""

    backend = "torch"

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, closed: bool = False,
                 device: torch.device | str = "cuda", sign_from: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        super().__init__(vertices, faces, closed=closed, sign_from=sign_from)
        self.engine = TorchMeshSDF(self.vertices, self.faces, device=device)
        self.sign_engine = self.engine if sign_from is None else TorchMeshSDF(*self._sign_mesh, device=device)

    def winding_number(self, points: np.ndarray) -> np.ndarray:
        return self.sign_engine.winding_number(points).double().cpu().numpy()

    def sign_rule(self) -> str:
        return "winding number (on the device)"

    def signed_distance(self, points: np.ndarray, band: float | None = None) -> np.ndarray:
        p = self.engine._points(points)
        d = torch.where(self.sign_engine.inside(p), -1.0, 1.0) * self.engine.unsigned_distance(p)
        d = d.double().cpu().numpy()
        return np.clip(d, -band, band) if band is not None else d
