"""The interface every model shares, so tasks, the trainer and the benchmarks never branch on the model."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class Field(nn.Module):
    """A neural field ``R^d -> R^m`` on inputs in ``[-1, 1]^d``."""

    is_spectral: bool = False
    default_lr: float = 1e-3
    adam_eps: float = 1e-8  # grid models use 1e-15, as instant-ngp does

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def training_terms(self, x: Tensor, pde_fraction: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        """The output plus extra loss terms (unweighted). Baselines have none."""
        return self(x), {}

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    @property
    def n_params(self) -> int:
        """Trainable parameters: what a parameter budget counts (fixed random matrices are not counted)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def describe(self) -> dict[str, Any]:
        return {"model": type(self).__name__, "params": self.n_params, "in_dim": self.in_dim,
                "out_dim": self.out_dim}
