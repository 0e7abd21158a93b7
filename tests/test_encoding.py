"""The level-vectorised grid against the per-level reference: values, gradients and the Jacobian to 1e-6
(relative to the largest entry, fp32), on dense and hashed levels, inside and outside the box; and the
Jacobian stays fp32 under autocast."""

from __future__ import annotations

import pytest
import torch

from nstr.config import FieldConfig
from nstr.fields import build_field
from nstr.fields.encoding import MultiresGrid
from nstr.fields.encoding_reference import MultiresGridReference

torch.set_num_threads(1)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).detach())


def _pair(d: int, features: int, table: int) -> tuple[MultiresGrid, MultiresGridReference]:
    torch.manual_seed(d * 10 + features)
    grid = MultiresGrid(d, 6, features, 4, 64, table, init_scale=1.0)
    ref = MultiresGridReference(d, 6, features, 4, 64, table, init_scale=1.0)
    ref.load_state_dict(grid.state_dict())
    return grid, ref


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("features,table", [(2, 256), (2, 1000), (3, 512)])
@pytest.mark.parametrize("x_grad", [False, True])  # table-only backward (training) / through x (eikonal)
def test_values_gradients_and_jacobian_match_the_reference(d: int, features: int, table: int, x_grad: bool) -> None:
    grid, ref = _pair(d, features, table)
    assert 0 < grid.n_dense < grid.levels or d == 1  # dense and hashed levels both exercised
    x = torch.rand(400, d, generator=torch.Generator().manual_seed(1)) * 2.2 - 1.1  # some outside the box
    xa, xb = x.clone().requires_grad_(x_grad), x.clone().requires_grad_(x_grad)
    fa, ja = grid(xa, with_jacobian=True)
    fb, jb = ref(xb, with_jacobian=True)
    assert _rel(fa, fb) < 1e-6 and _rel(ja, jb) < 1e-6
    wf, wj = torch.randn_like(fa), torch.randn_like(ja)
    ((fa * wf).sum() + (ja * wj).sum()).backward()
    ((fb * wf).sum() + (jb * wj).sum()).backward()
    assert _rel(grid.table.grad, ref.table.grad) < 1e-6
    if x_grad:
        assert _rel(xa.grad, xb.grad) < 1e-6
    # features alone (no Jacobian): the same values and table gradient
    grid.table.grad = ref.table.grad = None
    fa, none = grid(x)
    assert none is None
    (fa * wf).sum().backward()
    (ref(x)[0] * wf).sum().backward()
    assert _rel(grid.table.grad, ref.table.grad) < 1e-6


def test_jacobian_matches_finite_differences() -> None:
    grid, _ = _pair(3, 2, 512)
    x = torch.rand(50, 3, dtype=torch.float64) * 1.6 - 0.8
    grid.double()
    _, jac = grid(x, with_jacobian=True)
    eps = 1e-6
    for k in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[k] = eps
        fd = (grid(x + e)[0] - grid(x - e)[0]) / (2 * eps)
        assert torch.allclose(jac[..., k], fd, rtol=1e-5, atol=1e-6)


def test_nstr_jacobian_stays_fp32_under_autocast() -> None:
    torch.manual_seed(0)
    field = build_field(FieldConfig(n_freqs=16, grid_levels=4, grid_max_res=32, grid_table_size=512, width=32,
                                    max_freq=8), 3, 1)
    x = torch.rand(300, 3) * 2 - 1
    _, exact = field._spectrum(x, with_jacobian=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the same autocast machinery as bf16 on CUDA
        sp, jac = field._spectrum(x, with_jacobian=True)
        _, terms = field.training_terms(x)
    assert sp.dtype == torch.bfloat16  # the head itself does run in bf16 ...
    assert jac.dtype == torch.float32 and _rel(jac, exact) < 1e-6  # ... its Jacobian does not
    assert terms["pde"].dtype == torch.float32


@pytest.mark.parametrize("features", [1, 2])
def test_an_empty_batch_gives_empty_features_gradients_and_jacobian(features: int) -> None:
    """A render step can pack zero samples (the density NeRF when its occupancy grid empties); the grid
    then returns (0, L*F) features and (0, L*F, d) Jacobians, and backward still runs (it crashed)."""
    grid, _ = _pair(3, features, 2**10)
    x = torch.zeros(0, 3)
    feats, jac = grid(x, with_jacobian=True)
    assert feats.shape == (0, 6 * features) and jac.shape == (0, 6 * features, 3)
    (feats.sum() + jac.sum()).backward()  # the training path (hand-written backward for two features)
    assert grid.table.grad is not None and float(grid.table.grad.abs().sum()) == 0.0
    hashgrid = build_field(FieldConfig(model="hashgrid", grid_levels=4, grid_table_size=2**10), in_dim=3, out_dim=4)
    assert hashgrid(torch.zeros(0, 3)).shape == (0, 4)
