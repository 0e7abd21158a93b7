"""Camera rays in the Blender / NeRF convention, and the scene box the field lives in.

A camera looks down its local -Z with +Y up and +X right; pixel (col, row) counts from the image's
top-left corner and its centre is at (col + 0.5, row + 0.5), as Blender renders it. The field sees
the scene through :class:`SceneBox`: world points are mapped to ``[-1, 1]^3`` by one uniform scale,
so densities and distances stay isotropic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from nstr.nerf.dataset import Intrinsics


def pixel_directions(intr: Intrinsics, cols: Tensor, rows: Tensor) -> Tensor:
    """Camera-space directions (N, 3), not normalised (z = -1), through pixel centres."""
    x = (cols.float() + 0.5 - intr.cx) / intr.fx
    y = -(rows.float() + 0.5 - intr.cy) / intr.fy
    return torch.stack([x, y, -torch.ones_like(x)], -1)


def rays_for_pixels(poses: Tensor, intr: Intrinsics, cams: Tensor, cols: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
    """World origins and unit directions (N, 3) of the rays through pixels of cameras ``cams``."""
    d_cam = pixel_directions(intr, cols, rows)
    rot = poses[cams, :3, :3]
    d = torch.einsum("nij,nj->ni", rot, d_cam)
    return poses[cams, :3, 3], d / d.norm(dim=-1, keepdim=True)


def image_rays(pose: Tensor, intr: Intrinsics) -> tuple[Tensor, Tensor]:
    """All rays of one view, row-major: (H*W, 3) origins and unit directions."""
    rows, cols = torch.meshgrid(torch.arange(intr.height, device=pose.device),
                                torch.arange(intr.width, device=pose.device), indexing="ij")
    cams = torch.zeros(rows.numel(), dtype=torch.long, device=pose.device)
    return rays_for_pixels(pose[None], intr, cams, cols.reshape(-1), rows.reshape(-1))


def project_points(points: np.ndarray, pose: np.ndarray, intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (N, 2) as (col, row) in continuous units (pixel centres at +0.5) and depth (N,)."""
    world_to_cam = np.linalg.inv(np.asarray(pose, np.float64))
    p = np.c_[np.asarray(points, np.float64), np.ones(len(points))] @ world_to_cam.T
    depth = -p[:, 2]
    col = intr.fx * p[:, 0] / depth + intr.cx
    row = -intr.fy * p[:, 1] / depth + intr.cy
    return np.stack([col, row], 1), depth


@dataclass
class SceneBox:
    """World box -> the field's cube ``[-1, 1]^3``: ``x_field = (x_world - center) / half``."""

    center: Tensor  # (3,)
    half: float

    @classmethod
    def from_aabb(cls, aabb: np.ndarray, device: torch.device | str = "cpu", padding: float = 1.1) -> "SceneBox":
        """The cube around ``aabb`` (2, 3), ``padding`` x its longest half side: a surface touching the
        object's box still closes inside the cube."""
        lo, hi = np.asarray(aabb, np.float64)
        half = float((hi - lo).max() / 2) * padding
        return cls(torch.tensor((lo + hi) / 2, dtype=torch.float32, device=device), half)

    def to_field(self, x: Tensor) -> Tensor:
        return (x - self.center) / self.half

    def to_world(self, x: Tensor) -> Tensor:
        return x * self.half + self.center


def intersect_cube(origins: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor]:
    """Entry and exit distances of rays (field coordinates) through ``[-1, 1]^3``; ``far <= near`` misses."""
    safe = torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0 = (-1.0 - origins) / safe
    t1 = (1.0 - origins) / safe
    near = torch.minimum(t0, t1).amax(-1).clamp_min(0.0)
    far = torch.maximum(t0, t1).amin(-1)
    return near, far
