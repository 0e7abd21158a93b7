"""The training loop: the PDE loss is learned, checkpoints resume the same curve, cancel stops cleanly."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from nstr.config import FieldConfig, TrainConfig, build_config, EmptyOptions
from nstr.errors import Cancelled, ConfigError
from nstr.fields import build_field
from nstr.spectral import spectral_flow, transport_prediction_gain
from nstr.tasks.skeleton import TaskRun
from nstr.train import Objective

torch.set_num_threads(1)


class _Image(Objective):
    """A 32x32 texture whose frequency drifts across the image."""

    def __init__(self) -> None:
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
        self.x = torch.stack([xx, yy], -1).view(-1, 2)
        self.y = (0.5 + 0.4 * torch.sin(6 * math.pi * xx * (1 + 0.5 * (yy + 1)))).view(-1, 1)

    def sample(self, step: int, gen: torch.Generator):
        idx = torch.randint(0, self.x.shape[0], (256,), generator=gen)
        return self.x[idx], self.y[idx]

    def loss(self, field, batch, pde_fraction):
        x, y = batch
        pred, terms = field.training_terms(x, pde_fraction)
        return (pred - y).pow(2).mean(), terms


def _drain(field, objective, cfg, *, device, checkpoint=None, should_stop=None):
    return TaskRun(should_stop=should_stop).fit(field, objective, cfg, device=device, checkpoint=checkpoint)


def _field(seed: int = 0):
    torch.manual_seed(seed)
    return build_field(FieldConfig(n_freqs=16, grid_levels=4, grid_max_res=32, grid_table_size=256, width=32,
                                   max_freq=8), 2, 1)


def test_pde_loss_falls_during_training() -> None:
    field = _field()
    cfg = TrainConfig(steps=300, log_every=25, lambda_pde=1.0, pde_fraction=0.5)
    history = _drain(field, _Image(), cfg, device=torch.device("cpu")).history
    first, last = history[0]["term_pde"], history[-1]["term_pde"]
    assert last < 0.5 * first, (first, last)
    flow = spectral_flow(field, torch.rand(500, 2) * 2 - 1)
    assert flow["transport_residual"].shape == (500,) and (flow["transport_residual"] >= 0).all()
    assert flow["drift"].shape == (500, 2)


def test_transport_field_predicts_held_out_spectra() -> None:
    field = _field()
    _drain(field, _Image(), TrainConfig(steps=300, log_every=50, lambda_pde=0.01), device=torch.device("cpu"))
    gain = transport_prediction_gain(field, torch.rand(2000, 2) * 1.6 - 0.8, step=0.02)
    assert gain["rmse_transport"] < gain["rmse_constant"], gain


def test_resume_from_checkpoint_continues_the_loss_curve(tmp_path: Path) -> None:
    cfg = TrainConfig(steps=60, log_every=10, lambda_pde=0.1)
    straight = _drain(_field(), _Image(), cfg, device=torch.device("cpu")).history

    ckpt = tmp_path / "run.ckpt"
    calls = {"n": 0}

    def stop_after_30() -> bool:
        calls["n"] += 1
        return calls["n"] > 30

    with pytest.raises(Cancelled):
        _drain(_field(), _Image(), cfg, device=torch.device("cpu"), checkpoint=ckpt,
               should_stop=stop_after_30)
    assert ckpt.exists()
    resumed = _drain(_field(seed=123), _Image(), cfg, device=torch.device("cpu"), checkpoint=ckpt).history
    assert [row["step"] for row in resumed] == [10, 20, 30, 40, 50, 60]
    for a, b in zip(straight, resumed):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-7), (a, b)


def test_checkpoint_from_another_model_is_a_clear_error(tmp_path: Path) -> None:
    ckpt = tmp_path / "run.ckpt"
    _drain(_field(), _Image(), TrainConfig(steps=5, log_every=5), device=torch.device("cpu"), checkpoint=ckpt)
    other = build_field(FieldConfig(model="siren", width=16), 2, 1)
    with pytest.raises(ConfigError, match="different model"):
        _drain(other, _Image(), TrainConfig(steps=10), device=torch.device("cpu"), checkpoint=ckpt)


def test_config_rejects_unknown_keys_and_bad_types() -> None:
    presets = {"default": {"train": {"steps": 10}}}
    cfg = build_config(EmptyOptions, presets, "default", {"K": 12, "field.width": "48", "steps": 7})
    assert (cfg.field.n_freqs, cfg.field.width, cfg.train.steps) == (12, 48, 7)
    with pytest.raises(ConfigError, match="unknown config key 'field.nonsense'"):
        build_config(EmptyOptions, presets, "default", {"field.nonsense": 1})
    with pytest.raises(ConfigError, match="must be an integer"):
        build_config(EmptyOptions, presets, "default", {"steps": "many"})
    with pytest.raises(ConfigError, match="unknown preset"):
        build_config(EmptyOptions, presets, "fast")
    with pytest.raises(ConfigError, match="unknown field.model"):
        build_config(EmptyOptions, presets, "default", {"model": "transformer"})


def test_fused_adam_takes_the_same_steps_as_unfused_adam() -> None:
    """The shipped optimizer is fused for speed; its updates must be Adam's, to fp32 rounding."""
    from nstr.train.loop import make_optimizer

    obj = _Image()
    fields = [_field(0), _field(0)]
    opts = [make_optimizer(fields[0], 1e-2),
            torch.optim.Adam(fields[1].param_groups(1e-2), betas=(0.9, 0.99), eps=fields[1].adam_eps, foreach=False)]
    assert opts[0].defaults["fused"] and not opts[1].defaults.get("fused")
    for step in range(20):
        for f, opt in zip(fields, opts):
            gen = torch.Generator().manual_seed(step)
            loss, terms = obj.loss(f, obj.sample(step, gen), 1.0)
            opt.zero_grad()
            (loss + 0.01 * terms["pde"]).backward()
            opt.step()
    moved = max(float((p - q).detach().abs().max()) for p, q in zip(_field(0).parameters(), fields[1].parameters()))
    gap = max(float((p - q).detach().abs().max()) for p, q in zip(fields[0].parameters(), fields[1].parameters()))
    assert moved > 1e-2  # the steps did move the parameters
    assert gap < 1e-4 * moved
