"""Fitting a field to samples on a regular grid: what the image and audio tasks share.

A signal is a set of coordinates in ``[-1, 1]^d`` (pixel or sample centres) with target values.
The objective is mean squared error on random batches; evaluation predicts every sample in
chunks and scores it with the task's metric. Unlike the rest of ``nstr.signals`` this module
needs torch, so it is imported only by the tasks.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from nstr.config import FieldConfig, RunConfig
from nstr.device import resolve_device, seed_everything
from nstr.fields import Field, build_field
from nstr.tasks.skeleton import ProgressFn, TaskRun
from nstr.train import Objective, Progress

Scorer = Callable[[np.ndarray], dict[str, float]]


def grid_coordinates(shape: tuple[int, ...]) -> np.ndarray:
    """Sample centres of a regular grid as ``(N, d)`` float32, aspect-preserving: the longest axis spans
    [-1, 1], so one unit is ``max(shape) / 2`` samples along every axis. For images ``shape = (H, W)``
    and the columns are ``(x, y)`` = (column, row) with y growing downwards; rows are in C order."""
    longest = max(shape)
    axes = [((np.arange(n, dtype=np.float64) + 0.5) * 2.0 - n) / longest for n in shape]
    mesh = np.meshgrid(*axes, indexing="ij")
    coords = np.stack([m.reshape(-1) for m in mesh[::-1]], -1)  # (row, col) -> (x=col, y=row)
    return coords.astype(np.float32)


def samples_per_unit(shape: tuple[int, ...]) -> float:
    """How many samples one unit of field coordinates spans (see :func:`grid_coordinates`)."""
    return max(shape) / 2.0


def with_band_limit(cfg: FieldConfig, shape: tuple[int, ...]) -> FieldConfig:
    """Fill the resolution-dependent keys the config left as None.

    * ``max_freq``: Nyquist, ``max(shape) / 4`` cycles per unit (``max(shape)`` samples over 2 units).
    * ``grid_max_res``: one grid cell per sample along the longest axis, so the finest level of the
      spectrum field (NSTR) or the hash grid (baseline) can follow the signal sample by sample.
    """
    changes: dict[str, Any] = {}
    if cfg.max_freq is None:
        changes["max_freq"] = max(shape) / 4.0
    if cfg.grid_max_res is None:
        changes["grid_max_res"] = max(int(max(shape)), cfg.grid_base_res)
    return dataclasses.replace(cfg, **changes)


class SampleRegression(Objective):
    """MSE between the field and targets at fixed sample coordinates, on random batches."""

    def __init__(self, coords: np.ndarray, targets: np.ndarray, device: torch.device, batch_size: int,
                 scorer: Scorer, chunk: int = 65536) -> None:
        self.coords = torch.as_tensor(coords, dtype=torch.float32, device=device)
        self.targets = torch.as_tensor(targets, dtype=torch.float32, device=device)
        self.batch_size, self.scorer, self.chunk = batch_size, scorer, chunk
        self.eval_seconds = 0.0  # time spent evaluating, so benchmarks can report training time alone

    def sample(self, step: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        n = self.coords.shape[0]
        if self.batch_size >= n:  # the whole signal, shuffled so the PDE share of the batch moves around
            idx = torch.randperm(n, generator=gen, device=self.coords.device)
        else:
            idx = torch.randint(0, n, (self.batch_size,), generator=gen, device=self.coords.device)
        return self.coords[idx], self.targets[idx]

    def loss(self, field: Field, batch: tuple[Tensor, Tensor], pde_fraction: float) -> tuple[Tensor, dict[str, Tensor]]:
        x, target = batch
        y, terms = field.training_terms(x, pde_fraction)
        return (y.float() - target).pow(2).mean(), terms

    def evaluate(self, field: Field) -> dict[str, float]:
        t0 = time.perf_counter()
        out = self.scorer(predict(field, self.coords, self.chunk))
        self.eval_seconds += time.perf_counter() - t0
        return out


def predict(field: Field, coords: np.ndarray | Tensor, chunk: int = 65536) -> np.ndarray:
    """The field at ``coords`` as float32 numpy, in chunks, without a graph."""
    device = next(field.parameters()).device
    x = torch.as_tensor(coords, dtype=torch.float32)
    was_training = field.training
    field.eval()
    try:
        with torch.no_grad():
            parts = [field(x[i:i + chunk].to(device)).float().cpu() for i in range(0, x.shape[0], chunk)]
    finally:
        field.train(was_training)
    return torch.cat(parts, 0).numpy()


@dataclass
class SignalFit:
    """A trained field and what the tasks report about it."""

    field: Field
    prediction: np.ndarray  # (N, m) at every sample, in the targets' units
    final: Progress
    device: torch.device
    train_seconds: float  # wall-clock minus evaluation time
    eval_seconds: float
    run: TaskRun          # its stages' timings

    def summary(self, task: str, cfg: RunConfig, metrics: dict[str, float]) -> dict[str, Any]:
        """The report's common part (:meth:`TaskRun.report`) and the training speed."""
        report = self.run.report(task, cfg, self.field, self.final, self.device, metrics)
        report["steps_per_second"] = round(max(self.final.step, 1) / max(self.train_seconds, 1e-9), 3)
        return report


def fit_samples(coords: np.ndarray, targets: np.ndarray, cfg: RunConfig, scorer: Scorer, *,
                checkpoint: Any = None, on_progress: Callable[[Progress], None] | None = None,
                should_stop: Callable[[], bool] | None = None, chunk: int = 65536,
                progress: ProgressFn | None = None, shape: tuple[int, ...] | None = None) -> SignalFit:
    """Build the configured field, train it on (coords, targets), predict every sample.

    ``on_progress`` gets each :class:`Progress`; ``progress`` the same as job events (phase "fitting").
    ``shape``: the regular grid the samples lie on (rows in C order), so a field may start from the
    signal's spectrum (:meth:`Field.init_from_signal`)."""
    device = resolve_device(cfg.train.device)
    seed_everything(cfg.train.seed)
    field = build_field(cfg.field, in_dim=coords.shape[1], out_dim=targets.shape[1])
    if shape is not None:
        field.init_from_signal(np.asarray(targets).reshape(*shape, targets.shape[1]))
    objective = SampleRegression(coords, targets, device, cfg.train.batch_size, scorer, chunk)
    run = TaskRun(progress, should_stop, on_progress)
    final = run.fit(field, objective, cfg.train, device=device, checkpoint=checkpoint)
    wall = run.timings["fitting"]
    with run.stage("predicting", emit=False):
        prediction = predict(field, objective.coords, chunk)
    return SignalFit(field=field, prediction=prediction, final=final, device=device,
                     train_seconds=max(wall - objective.eval_seconds, 1e-9), eval_seconds=objective.eval_seconds,
                     run=run)


def transport_check(field: Field, coords: np.ndarray, spacing: float, n: int = 2048) -> dict[str, Any]:
    """NSTR only: the PDE residual and whether F_theta predicts S one sample away at held-out points
    (random positions between the samples: the review's objection 2)."""
    from nstr.spectral import transport_prediction_gain

    lo, hi = coords.min(0), coords.max(0)
    gen = np.random.default_rng(1234)
    x = torch.as_tensor(gen.uniform(lo, hi, size=(n, coords.shape[1])), dtype=torch.float32)
    out = transport_prediction_gain(field, x, step=spacing)
    return {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in out.items()}
