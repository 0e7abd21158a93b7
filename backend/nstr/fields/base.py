"""The interface every model shares, so tasks, the trainer and the benchmarks never branch on the model."""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any, ContextManager

import torch
from torch import Tensor, nn


def band_window(n: int, fraction: float, device: Any = None) -> Tensor | None:
    """Weights (n,) of ``n`` scales ordered coarse to fine with only the coarsest ``fraction`` on, the
    next one fading in (Nerfies' cosine window, as BARF and Neuralangelo anneal theirs); None at 1."""
    if fraction >= 1.0:
        return None
    ramp = (fraction * n - torch.arange(n, device=device, dtype=torch.float32)).clamp(0.0, 1.0)
    return 0.5 * (1.0 - torch.cos(math.pi * ramp))


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

    def one_evaluation(self) -> ContextManager[None]:
        """A scope for the forward passes of one loss, inside which the parameters do not change: a model
        may share work between them there (banded NSTR's 3-D lattices). Most models have none to share."""
        return nullcontext()

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def set_band(self, fraction: float) -> None:
        """Coarse to fine: only the coarsest ``fraction`` of the model's scales is on (1: all of them).
        Models with ordered scales (NSTR's frequencies, a grid's levels) implement it; others ignore it."""

    def init_from_signal(self, values: Any) -> None:
        """Start from the signal itself, given on the tasks' regular grid as ``(*shape, C)`` numpy
        (banded NSTR's carriers at the FFT's peaks). Models that start blind ignore it."""

    def init_from_samples(self, points: Any, values: Any) -> None:
        """Start from scattered samples of the target: ``points`` (N, d) and ``values`` (N, C) tensors (the
        SDF task's points and their distances; banded NSTR solves its coarse base on them). Models that
        start blind ignore it."""

    @property
    def n_params(self) -> int:
        """Trainable parameters: what a parameter budget counts (fixed random matrices are not counted)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def describe(self) -> dict[str, Any]:
        return {"model": type(self).__name__, "params": self.n_params, "in_dim": self.in_dim,
                "out_dim": self.out_dim}
