"""The per-level multiresolution grid: the reference that the level-vectorised
:class:`~nstr.fields.encoding.MultiresGrid` is tested against (values, gradients, Jacobian) and
benchmarked against (``scripts/bench_speed.py``).

This is the forward pass the project shipped first, kept as it was: one gather and one einsum per
level in a Python loop, and in backward one zeroed full-table gradient per level. It shares the
table layout (levels, resolutions, hashing) with :class:`MultiresGrid`, so the same ``state_dict``
loads into both. Do not use it in models; it is slow by construction.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nstr.fields.encoding import _PRIMES, MultiresGrid


class MultiresGridReference(MultiresGrid):
    """``[-1, 1]^d -> R^(levels * features)``, level by level."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - MultiresGrid's own signature
        super().__init__(*args, **kwargs)
        d = self.in_dim
        corners = torch.tensor([[(c >> j) & 1 for j in range(d)] for c in range(2**d)], device=self.table.device)
        self.register_buffer("corners", corners, persistent=False)  # (C, d) in {0, 1}

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
