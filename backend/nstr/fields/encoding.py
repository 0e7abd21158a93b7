"""Multiresolution grid encoding (instant-ngp style) in pure PyTorch, with an analytic Jacobian.

One module serves the hash-grid baseline and NSTR's grid spectrum field S(x).
Levels whose dense lattice has at most ``table_size`` vertices are stored
densely; finer levels are hashed (the spatial hash of Teschner et al., as in
instant-ngp). Interpolation is multilinear over the 2^d cell corners, written as
gathers (faster than ``grid_sample`` on the CPU, and it gives the derivative
d(features)/dx in closed form: the PDE loss needs that Jacobian exactly).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

_PRIMES = (1, 2654435761, 805459861)


class MultiresGrid(nn.Module):
    """``[-1, 1]^d -> R^(levels * features)``."""

    def __init__(self, in_dim: int, levels: int, features: int, base_res: int, max_res: int, table_size: int,
                 init_scale: float = 1e-4) -> None:
        super().__init__()
        if not 1 <= in_dim <= 3:
            raise ValueError("MultiresGrid supports 1 to 3 input dimensions")
        self.in_dim, self.levels, self.features = in_dim, levels, features
        max_res = max(max_res, base_res)
        growth = math.exp((math.log(max_res) - math.log(base_res)) / max(levels - 1, 1))
        resolutions, sizes, hashed = [], [], []
        for level in range(levels):
            res = int(math.floor(base_res * growth**level + 1e-6))
            dense = (res + 1) ** in_dim
            resolutions.append(res)
            sizes.append(min(dense, table_size))
            hashed.append(dense > table_size)
        self.resolutions, self.sizes, self.hashed = resolutions, sizes, hashed
        offsets = [0]
        for s in sizes:
            offsets.append(offsets[-1] + s)
        self.offsets = offsets
        self.table = nn.Parameter(torch.empty(offsets[-1], features))
        nn.init.uniform_(self.table, -init_scale, init_scale)
        corners = torch.tensor([[(c >> j) & 1 for j in range(in_dim)] for c in range(2**in_dim)])
        self.register_buffer("corners", corners, persistent=False)  # (C, d) in {0, 1}

    @property
    def out_dim(self) -> int:
        return self.levels * self.features

    def _index(self, level: int, cell: Tensor) -> Tensor:
        """Table rows of integer lattice points ``cell`` (..., d) at ``level``."""
        res, size = self.resolutions[level], self.sizes[level]
        if self.hashed[level]:
            idx = cell[..., 0] * _PRIMES[0]
            for j in range(1, self.in_dim):
                idx = torch.bitwise_xor(idx, cell[..., j] * _PRIMES[j])
            idx = torch.remainder(idx, size)
        else:
            idx = cell[..., 0]
            stride = res + 1
            for j in range(1, self.in_dim):
                idx = idx + cell[..., j] * stride
                stride *= res + 1
        return idx + self.offsets[level]

    def forward(self, x: Tensor, with_jacobian: bool = False) -> tuple[Tensor, Tensor | None]:
        """Features (N, L*F) and, if asked, their Jacobian (N, L*F, d)."""
        x = x.to(self.table.dtype)  # interpolate in the table's precision (fp32 even under autocast)
        u = ((x + 1.0) * 0.5).clamp(0.0, 1.0)
        corners = self.corners.to(torch.bool)
        feats, jacs = [], []
        for level, res in enumerate(self.resolutions):
            pos = u * res
            cell = pos.floor().clamp(max=res - 1)
            t = pos - cell  # (N, d) in [0, 1]
            lattice = cell.long().unsqueeze(1) + self.corners.unsqueeze(0)  # (N, C, d)
            values = self.table[self._index(level, lattice)]  # (N, C, F)
            parts = torch.where(corners.unsqueeze(0), t.unsqueeze(1), 1.0 - t.unsqueeze(1))  # (N, C, d)
            weights = parts.prod(-1)  # (N, C)
            feats.append(torch.einsum("nc,ncf->nf", weights, values))
            if with_jacobian:
                sign = corners.to(x.dtype) * 2.0 - 1.0  # d(part_j)/d(t_j): +1 or -1
                dweights = []
                for k in range(self.in_dim):
                    others = [j for j in range(self.in_dim) if j != k]
                    rest = parts[..., others].prod(-1) if others else torch.ones_like(weights)
                    dweights.append(rest * sign[:, k])
                # dt/dx = res / 2 (u = (x + 1) / 2); zero where x was clamped outside the box
                inside = ((x > -1.0) & (x < 1.0)).to(x.dtype) * (0.5 * res)  # (N, d)
                dw = torch.stack(dweights, -1) * inside.unsqueeze(1)  # (N, C, d)
                jacs.append(torch.einsum("ncd,ncf->nfd", dw, values))
        out = torch.cat(feats, -1)
        return out, (torch.cat(jacs, 1) if with_jacobian else None)
