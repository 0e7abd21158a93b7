"""Fourier-feature MLP baseline (Tancik et al. 2020): fixed Gaussian B, ReLU MLP.

``ffn_sigma`` follows the paper's convention for inputs in [0, 1]; our inputs
are in [-1, 1] and are mapped back before the encoding. B is a fixed random
buffer (reproducible from the seed), so it is not counted as parameters.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nstr.config import FieldConfig
from nstr.fields.base import Field
from nstr.fields.mlp import MLP


class FourierFeatureField(Field):
    default_lr = 1e-3

    def __init__(self, cfg: FieldConfig, in_dim: int, out_dim: int) -> None:
        super().__init__(in_dim, out_dim)
        self.register_buffer("B", torch.randn(cfg.ffn_features, in_dim) * cfg.ffn_sigma)
        self.mlp = MLP(2 * cfg.ffn_features, out_dim, cfg.width, cfg.depth, cfg.activation)

    def forward(self, x: Tensor) -> Tensor:
        proj = 2 * math.pi * ((x + 1.0) * 0.5) @ self.B.t()
        return self.mlp(torch.cat([torch.sin(proj), torch.cos(proj)], -1))
