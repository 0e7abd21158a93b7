"""The NSTR field and the baselines: exact Jacobians, parameter budgets, overfitting a tiny signal."""

from __future__ import annotations

import math

import pytest
import torch

from nstr.config import FieldConfig, TrainConfig
from nstr.errors import ConfigError
from nstr.fields import build_field
from nstr.tasks.skeleton import TaskRun
from nstr.train import Objective

torch.set_num_threads(1)


def _finite_difference_jacobian(field, x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    cols = []
    for k in range(x.shape[1]):
        e = torch.zeros(x.shape[1], dtype=x.dtype)
        e[k] = eps
        plus = field.spectral_state(x + e).S
        minus = field.spectral_state(x - e).S
        cols.append((plus - minus) / (2 * eps))
    return torch.stack(cols, -1)


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("spectrum", ["grid", "mlp"])
@pytest.mark.parametrize("phase_mod", [False, True])
def test_spectrum_jacobian_matches_finite_differences(dim: int, spectrum: str, phase_mod: bool) -> None:
    torch.manual_seed(dim)
    cfg = FieldConfig(n_freqs=6, spectrum=spectrum, phase_mod=phase_mod, grid_levels=3, grid_base_res=4,
                      grid_max_res=16, grid_table_size=50, spectrum_width=16)
    field = build_field(cfg, dim, 2).double()
    if spectrum == "grid":
        with torch.no_grad():
            field.grid.table.normal_()  # a non-trivial S(x); the init is nearly constant
    x = torch.rand(64, dim, dtype=torch.float64) * 1.8 - 0.9
    with torch.no_grad():
        st = field.spectral_state(x)
        fd = _finite_difference_jacobian(field, x)
    assert st.J.shape == (64, 6, dim)
    assert torch.allclose(st.J, fd, atol=1e-6 * max(1.0, float(fd.abs().max())))
    if phase_mod:  # local frequency of each basis = w_i + dP_i/dx, and P does vary
        assert not torch.allclose(st.freqs, field.omega.expand(64, -1, -1))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["nstr", "siren", "ffn", "hashgrid"])
@pytest.mark.parametrize("budget", [5_000, 50_000])
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_parameter_budget_is_met_within_5_percent(model: str, budget: int, dim: int) -> None:
    field = build_field(FieldConfig(model=model, params=budget), dim, 3)
    assert abs(field.n_params - budget) <= 0.05 * budget
    assert field.n_params == sum(p.numel() for p in field.parameters() if p.requires_grad)


def test_impossible_budget_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="cannot size model"):
        build_field(FieldConfig(model="nstr", params=100), 3, 3)


class _Signal1D(Objective):
    """A 1-D signal with two tones and an edge, full batch."""

    def __init__(self) -> None:
        self.x = torch.linspace(-1, 1, 128).unsqueeze(1)
        t = self.x[:, 0]
        y = 0.5 + 0.25 * torch.sin(9 * math.pi * t) + 0.15 * torch.sin(23 * math.pi * t) + 0.1 * (t > 0.3)
        self.y = y.unsqueeze(1)

    def sample(self, step: int, gen: torch.Generator):
        perm = torch.randperm(128, generator=gen)
        return self.x[perm], self.y[perm]

    def loss(self, field, batch, pde_fraction):
        x, y = batch
        pred, terms = field.training_terms(x, pde_fraction)
        return (pred - y).pow(2).mean(), terms

    def evaluate(self, field):
        mse = (field(self.x) - self.y).pow(2).mean().item()
        return {"psnr": -10 * math.log10(max(mse, 1e-12))}


@pytest.mark.parametrize("model,lr,steps", [("nstr", 1e-2, 400), ("siren", 1e-3, 400), ("ffn", 3e-3, 400),
                                             ("hashgrid", 1e-2, 400)])
@pytest.mark.slow
def test_each_model_overfits_a_tiny_signal(model: str, lr: float, steps: int) -> None:
    torch.manual_seed(0)
    cfg = FieldConfig(model=model, params=4000, max_freq=16, grid_max_res=128, ffn_sigma=8.0, width=32)
    field = build_field(cfg, 1, 1)
    final = TaskRun().fit(field, _Signal1D(), TrainConfig(steps=steps, lr=lr, log_every=100, lambda_pde=0.01),
                          device=torch.device("cpu"))
    assert final.metrics["psnr"] > 35.0, final.metrics


def test_coarse_to_fine_band_switches_off_exactly_the_finest_scales() -> None:
    """set_band(f): NSTR keeps the bases of the lowest f*K frequencies and zeroes the rest (one fades in
    between); the hash grid does the same with its levels; set_band(1) gives back the full model."""
    torch.manual_seed(0)
    x = torch.rand(256, 3) * 2 - 1
    nstr = build_field(FieldConfig(model="nstr", n_freqs=16, max_freq=8.0, grid_levels=4, grid_max_res=32,
                                   grid_table_size=2**10, width=16, depth=1), in_dim=3, out_dim=1)
    full = nstr(x).detach()
    sp, _ = nstr._spectrum(x, with_jacobian=False)
    rank = torch.argsort(torch.argsort(nstr.omega.detach().norm(dim=1)))
    nstr.set_band(0.25)  # 4 of 16 on
    h = nstr._bases(x, sp)
    assert torch.equal(h[:, rank >= 4], torch.zeros_like(h[:, rank >= 4]))
    assert torch.allclose(h[:, rank < 4], (sp[:, :16] * torch.sin(x @ nstr.omega.t() + nstr.phase))[:, rank < 4])
    assert not torch.allclose(nstr(x), full)
    nstr.set_band(1.0)
    assert torch.equal(nstr(x).detach(), full)

    grid = build_field(FieldConfig(model="hashgrid", grid_levels=4, grid_features=2, grid_max_res=32,
                                   grid_table_size=2**10, width=16, depth=1), in_dim=3, out_dim=1)
    full = grid(x).detach()
    feats, _ = grid.grid(x)
    grid.set_band(0.5)  # levels 0 and 1 on, 2 and 3 off
    keep = torch.tensor([1.0] * 4 + [0.0] * 4)
    assert torch.allclose(grid(x), grid.mlp(feats * keep))
    grid.set_band(0.625)  # level 2 half faded in: w = (1 - cos(pi / 2)) / 2
    assert torch.allclose(grid(x), grid.mlp(feats * torch.tensor([1.0] * 4 + [0.5] * 2 + [0.0] * 2)))
    grid.set_band(1.0)
    assert torch.equal(grid(x).detach(), full)
