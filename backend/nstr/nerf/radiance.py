"""The radiance field: density from a field built by ``nstr.fields.build_field``, view-dependent colour
from a small head on that field's features plus a spherical-harmonics encoding of the view direction.

The field is built with ``out_dim = 1 + n_features``: output 0 is raw density, the rest are the
features the colour head reads (the layout instant-ngp uses). Any model (NSTR, hash grid, Fourier
features) fits the same slot, so the baselines differ only in the field and share everything else.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from nstr.config import FieldConfig
from nstr.fields import build_field
from nstr.nerf.capture_modules import capture_groups
from nstr.fields.base import Field
from nstr.fields.mlp import MLP
from nstr.nerf.occupancy import OccupancyGrid

SH_DIM = 16  # degree 4


class _TruncExp(torch.autograd.Function):
    """exp with its gradient clamped (instant-ngp): densities can grow large without exploding gradients."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return g * torch.exp(x.clamp(-15, 15))


def trunc_exp(x: Tensor) -> Tensor:
    return _TruncExp.apply(x)


def sh_encode(d: Tensor) -> Tensor:
    """Real spherical harmonics up to degree 4 (16 values) of unit directions (N, 3)."""
    x, y, z = d.unbind(-1)
    xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
    return torch.stack([
        torch.full_like(x, 0.28209479177387814),
        -0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x,
        1.0925484305920792 * xy, -1.0925484305920792 * yz, 0.94617469575755997 * zz - 0.31539156525251999,
        -1.0925484305920792 * xz, 0.54627421529603959 * (xx - yy),
        0.59004358992664352 * y * (-3.0 * xx + yy), 2.8906114426405538 * xy * z,
        0.45704579946446572 * y * (1.0 - 5.0 * zz), 0.3731763325901154 * z * (5.0 * zz - 3.0),
        0.45704579946446572 * x * (1.0 - 5.0 * zz), 1.4453057213202769 * z * (xx - yy),
        0.59004358992664352 * x * (-xx + 3.0 * yy),
    ], -1)


class RadianceField(Field):
    """Density + view-dependent colour on ``[-1, 1]^3``; carries its occupancy grid as buffers."""

    def __init__(self, cfg: FieldConfig, n_features: int = 15, head_width: int = 64, head_depth: int = 1,
                 grid_resolution: int = 64, render_step: float = 2 * 3**0.5 / 128,
                 density_bias: float = -1.0) -> None:
        super().__init__(3, 4)
        self.field = build_field(cfg, in_dim=3, out_dim=1 + n_features)
        self.config = self.field.config
        self.color_head = MLP(n_features + SH_DIM, 3, head_width, head_depth, activation="relu")
        self.grid = OccupancyGrid(grid_resolution, step_size=render_step)
        self.density_bias = density_bias
        self.is_spectral = self.field.is_spectral
        self.default_lr = self.field.default_lr
        self.adam_eps = self.field.adam_eps

    def density(self, x: Tensor) -> Tensor:
        """Density (N,) in 1 / field units at field-space points (N, 3)."""
        return trunc_exp(self.field(x)[:, 0] + self.density_bias)

    def _color(self, features: Tensor, dirs: Tensor) -> Tensor:
        return torch.sigmoid(self.color_head(torch.cat([features, sh_encode(dirs)], -1)))

    def forward(self, x: Tensor, dirs: Tensor | None = None) -> Tensor:  # type: ignore[override]
        """(N, 4) = density, r, g, b; ``dirs`` default to looking down -Z."""
        if dirs is None:
            dirs = torch.zeros_like(x)
            dirs[:, 2] = -1.0
        sigma, rgb, _ = self.query(x, dirs)
        return torch.cat([sigma[:, None], rgb], -1)

    def query(self, x: Tensor, dirs: Tensor, pde_fraction: float | None = None) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Density (N,), colour (N, 3) and the field's training terms (the PDE residual) when training."""
        if pde_fraction is None:
            out, terms = self.field(x), {}
        else:
            out, terms = self.field.training_terms(x, pde_fraction)
        sigma = trunc_exp(out[:, 0].float() + self.density_bias)
        return sigma, self._color(out[:, 1:].float(), dirs), terms

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        return (self.field.param_groups(lr) + [{"params": list(self.color_head.parameters()), "lr": lr}]
                + capture_groups(self, lr))

    @property
    def field_params(self) -> int:
        return self.field.n_params

    def describe(self) -> dict[str, Any]:
        return {**self.field.describe(), "params": self.n_params, "field_params": self.field.n_params,
                "head_params": sum(p.numel() for p in self.color_head.parameters())}
