"""What a task gives the trainer: how to draw a batch and how to score the field on it."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from nstr.fields.base import Field


class Objective:
    """Subclass per task. ``sample`` must draw all randomness from ``gen`` so that runs resume exactly."""

    #: weights of the field's extra terms; the trainer fills "pde" from TrainConfig.lambda_pde
    def sample(self, step: int, gen: torch.Generator) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, field: Field, batch: Any, pde_fraction: float) -> tuple[Tensor, dict[str, Tensor]]:
        """The task loss and extra terms (the field's, from ``field.training_terms``, plus any logs)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def evaluate(self, field: Field) -> dict[str, float]:
        """Metrics on held-out data (optional); called under ``torch.no_grad`` with the field in eval mode."""
        return {}
