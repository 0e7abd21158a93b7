"""An occupancy grid over the field's cube, refreshed during training, to skip empty space.

As in instant-ngp / nerfacc: each cell keeps an exponential moving maximum of the density seen at a
random point inside it; a cell is occupied while that density could make a ray segment of one
render step at least ``opacity_threshold`` opaque (``1 - exp(-sigma * step) >= threshold``), or is
above the grid's mean density (so a dim scene never empties entirely). Cells start occupied, so
nothing is skipped before the field has had a chance to say where the object is.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn


class OccupancyGrid(nn.Module):
    """``resolution^3`` cells over ``[-1, 1]^3``; buffers, so checkpoints carry it."""

    def __init__(self, resolution: int = 64, decay: float = 0.95, opacity_threshold: float = 0.01,
                 step_size: float = 2 * math.sqrt(3) / 128) -> None:
        super().__init__()
        self.resolution = resolution
        self.decay = decay
        self.density_threshold = -math.log(1.0 - opacity_threshold) / step_size
        self.register_buffer("density", torch.full((resolution,) * 3, -1.0))  # -1: never seen
        self.register_buffer("occupied", torch.ones((resolution,) * 3, dtype=torch.bool))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def cell_index(self, x: Tensor) -> Tensor:
        """Flat cell index of field-space points (N, 3); points outside are clamped to the border."""
        r = self.resolution
        ijk = ((x + 1.0) * (0.5 * r)).long().clamp(0, r - 1)
        return (ijk[:, 0] * r + ijk[:, 1]) * r + ijk[:, 2]

    def is_occupied(self, x: Tensor) -> Tensor:
        inside = (x.abs() <= 1.0).all(-1)
        return self.occupied.reshape(-1)[self.cell_index(x)] & inside

    @torch.no_grad()
    def update(self, density_fn: Callable[[Tensor], Tensor], gen: torch.Generator, fraction: float = 1.0) -> None:
        """Query one jittered point in every cell (or a random ``fraction`` of the cells) and refresh."""
        r = self.resolution
        flat = self.density.reshape(-1)
        n = flat.numel()
        dev = flat.device
        if fraction >= 1.0:
            cells = torch.arange(n, device=dev)
        else:
            cells = torch.randint(0, n, (max(1, int(n * fraction)),), generator=gen, device=dev)
        ijk = torch.stack([cells // (r * r), (cells // r) % r, cells % r], -1).float()
        jitter = torch.rand(cells.shape[0], 3, generator=gen, device=dev)
        x = (ijk + jitter) / r * 2.0 - 1.0
        sigma = torch.cat([density_fn(chunk) for chunk in x.split(65536)]).float()
        old = flat[cells]
        flat[cells] = torch.where(old < 0, sigma, torch.maximum(old * self.decay, sigma))
        seen = flat >= 0
        mean = (flat * seen).sum() / seen.sum().clamp_min(1)  # a tensor: no host sync
        self.occupied.copy_((self.density >= torch.clamp(mean, max=self.density_threshold)) | (self.density < 0))
        self.updates += 1

    @property
    def occupied_fraction(self) -> float:
        return float(self.occupied.float().mean())
