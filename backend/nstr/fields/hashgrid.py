"""Instant-NGP-style multiresolution hash grid + small MLP, pure PyTorch."""

from __future__ import annotations

import torch
from torch import Tensor

from nstr.config import FieldConfig
from nstr.fields.base import Field, band_window
from nstr.fields.encoding import MultiresGrid
from nstr.fields.mlp import MLP


class HashGridField(Field):
    default_lr = 1e-2
    adam_eps = 1e-15

    def __init__(self, cfg: FieldConfig, in_dim: int, out_dim: int, grid_max_res: int) -> None:
        super().__init__(in_dim, out_dim)
        self.grid = MultiresGrid(in_dim, cfg.grid_levels, cfg.grid_features, cfg.grid_base_res, grid_max_res,
                                 cfg.grid_table_size)
        self.mlp = MLP(self.grid.out_dim, out_dim, cfg.width, cfg.depth, cfg.activation)
        self._band: Tensor | None = None  # coarse-to-fine weights of the levels' features (set_band)

    def forward(self, x: Tensor) -> Tensor:
        feats, _ = self.grid(x)
        return self.mlp(feats if self._band is None else feats * self._band)

    def set_band(self, fraction: float) -> None:
        """Only the coarsest ``fraction`` of the levels on; the finer ones fade in later."""
        w = band_window(self.grid.levels, fraction, self.grid.table.device)
        self._band = None if w is None else torch.repeat_interleave(w, self.grid.features)
