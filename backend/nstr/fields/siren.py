"""SIREN baseline (Sitzmann et al. 2020): sine activations with omega_0 and their special init."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from nstr.config import FieldConfig
from nstr.fields.base import Field


class SineLayer(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, omega0: float, first: bool) -> None:
        super().__init__()
        self.omega0 = omega0
        self.linear = nn.Linear(in_dim, out_dim)
        bound = 1.0 / in_dim if first else math.sqrt(6.0 / in_dim) / omega0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.omega0 * self.linear(x))


class SirenField(Field):
    default_lr = 1e-4

    def __init__(self, cfg: FieldConfig, in_dim: int, out_dim: int) -> None:
        super().__init__(in_dim, out_dim)
        dims = [in_dim] + [cfg.width] * max(cfg.depth, 1)
        self.layers = nn.Sequential(*(SineLayer(a, b, cfg.omega0, i == 0)
                                      for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))))
        self.out = nn.Linear(cfg.width, out_dim)
        bound = math.sqrt(6.0 / cfg.width) / cfg.omega0
        with torch.no_grad():
            self.out.weight.uniform_(-bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.layers(x))
