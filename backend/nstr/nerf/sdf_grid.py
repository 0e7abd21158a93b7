"""A cached SDF on a coarse lattice over the field's cube: the SDF path's occupancy grid.

Where a density NeRF keeps one bit per cell, this keeps the signed distance at the lattice nodes,
refreshed from the network every few steps without gradients. Two things read it:

* sampling: the coarse pass along each ray is trilinear lookups here, not network evaluations, so
  the network (with its double backward for the eikonal term) only sees the few samples per ray
  placed near the surface; all shapes are fixed, so there is no host sync;
* the occupancy view: a cell is near the surface while ``|sdf| < band`` at its nodes
  (``occupied_fraction``, reported like the density grid's).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SdfGrid(nn.Module):
    """``(resolution + 1)^3`` nodes over ``[-1, 1]^3``; buffers, so checkpoints carry it."""

    def __init__(self, resolution: int = 32) -> None:
        super().__init__()
        self.resolution = resolution
        axis = torch.linspace(-1.0, 1.0, resolution + 1)
        # the sphere prior the field starts from, until the first refresh
        gx, gy, gz = torch.meshgrid(axis, axis, axis, indexing="ij")
        self.register_buffer("values", (torch.stack([gx, gy, gz], -1).norm(dim=-1) - 0.6))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @property
    def cell(self) -> float:
        return 2.0 / self.resolution

    def nodes(self) -> Tensor:
        axis = torch.linspace(-1.0, 1.0, self.resolution + 1, device=self.values.device)
        gx, gy, gz = torch.meshgrid(axis, axis, axis, indexing="ij")
        return torch.stack([gx, gy, gz], -1).reshape(-1, 3)

    @torch.no_grad()
    def update(self, sdf_fn: Callable[[Tensor], Tensor], chunk: int = 65536) -> None:
        pts = self.nodes()
        vals = torch.cat([sdf_fn(c).float() for c in pts.split(chunk)])
        self.values.copy_(vals.reshape(self.values.shape))
        self.updates += 1

    def lookup(self, x: Tensor) -> Tensor:
        """Trilinear SDF (N,) at field-space points (N, 3); outside the cube the border is extended."""
        # grid_sample's (x, y, z) index (W, H, D); values are stored [ix, iy, iz] = (D, H, W)
        g = x.flip(-1).reshape(1, -1, 1, 1, 3)
        v = F.grid_sample(self.values[None, None], g, mode="bilinear", padding_mode="border", align_corners=True)
        return v.reshape(-1)

    def occupied_fraction(self, band_cells: float = 1.0) -> Tensor:
        """Share of nodes within ``band_cells`` cell diagonals of the surface (a tensor: no sync)."""
        band = band_cells * self.cell * math.sqrt(3.0)
        return (self.values.abs() < band).float().mean()
