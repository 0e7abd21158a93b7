"""Options no other test touched (issue 30, item 7), each against what it promises, with a known answer:
``field.learn_freqs``, ``field.literal_scalar``, ``train.checkpoint_every``, ``task.gradient`` (SDF) and
``task.color_field`` (NeRF). Each is set through the same config path a user's ``--set`` takes."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nstr.config import FieldConfig, TrainConfig
from nstr.fields import build_field
from nstr.tasks.skeleton import TaskRun
from nstr.train import Objective
from nstr.train.loop import read_checkpoint

torch.set_num_threads(1)
TINY = dict(model="nstr", n_freqs=8, grid_levels=2, grid_max_res=16, grid_table_size=64, width=16, max_freq=4)


class _Wave(Objective):
    """y = sin(3 pi x0) on [-1, 1]^2; ``fail_at``: the sampler raises there (a crash, not a cancel)."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at

    def sample(self, step: int, gen: torch.Generator):
        if self.fail_at is not None and step == self.fail_at:
            raise RuntimeError("simulated crash")
        x = torch.rand(64, 2, generator=gen) * 2 - 1
        return x, torch.sin(3 * math.pi * x[:, :1])

    def loss(self, field, batch, pde_fraction):  # noqa: ANN001, ANN201
        x, y = batch
        pred, terms = field.training_terms(x, pde_fraction)
        return (pred - y).pow(2).mean(), terms


def _fit(field, steps: int, objective: Objective | None = None, **train) -> None:  # noqa: ANN001
    TaskRun().fit(field, objective or _Wave(), TrainConfig(steps=steps, log_every=steps, **train),
                  device=torch.device("cpu"))


@pytest.mark.parametrize("learn", [False, True])
def test_learn_freqs_false_keeps_the_global_frequencies_and_phases_exactly(learn: bool) -> None:
    torch.manual_seed(0)
    field = build_field(FieldConfig(**TINY, learn_freqs=learn), 2, 1)
    omega, phase = field.omega.detach().clone(), field.phase.detach().clone()
    _fit(field, 20)
    moved = float((field.omega.detach() - omega).abs().max() + (field.phase.detach() - phase).abs().max())
    assert (moved > 1e-6) if learn else (moved == 0.0)


@pytest.mark.parametrize("literal", [False, True])
def test_literal_scalar_decodes_only_the_sum_of_the_bases(literal: bool) -> None:
    """The paper's literal form f = g(sum_i h_i): the output's derivative is the same for every h_i.
    The default (g reads each h_i) gives each basis its own."""
    torch.manual_seed(0)
    field = build_field(FieldConfig(**TINY, literal_scalar=literal), 2, 1)
    x = torch.rand(32, 2) * 2 - 1
    spectrum, _ = field._spectrum(x, with_jacobian=False)
    h = field._bases(x, spectrum).detach().requires_grad_(True)
    (dh,) = torch.autograd.grad(field._decode(h).sum(), h)
    spread = float((dh - dh[:, :1]).abs().max() / dh.abs().max())
    assert (spread < 1e-6) if literal else (spread > 0.1)
    assert field.decoder.layers[0].in_features == (1 if literal else TINY["n_freqs"])


@pytest.mark.parametrize("every", [0, 20])
def test_checkpoint_every_keeps_the_last_multiple_when_the_run_crashes(tmp_path: Path, every: int) -> None:
    """A crash (not a cancel: nothing is saved on the way out) at step 45 of 60. With checkpoint_every
    20 the checkpoint holds step 40 and resumes from it; with 0 (only at the end) there is none."""
    ckpt = tmp_path / "run.ckpt"
    torch.manual_seed(0)
    field = build_field(FieldConfig(**TINY), 2, 1)
    with pytest.raises(RuntimeError, match="simulated crash"):
        TaskRun().fit(field, _Wave(fail_at=45), TrainConfig(steps=60, log_every=10, checkpoint_every=every),
                      device=torch.device("cpu"), checkpoint=ckpt)
    if every == 0:
        assert not ckpt.exists()
        return
    assert read_checkpoint(ckpt)["step"] == 40
    resumed = TaskRun().fit(build_field(FieldConfig(**TINY), 2, 1), _Wave(),
                            TrainConfig(steps=60, log_every=10, checkpoint_every=every),
                            device=torch.device("cpu"), checkpoint=ckpt)
    assert [row["step"] for row in resumed.history] == [10, 20, 30, 40, 50, 60]


class _Sphere(torch.nn.Module):
    """The exact SDF of a sphere of radius 0.5: its gradient is x / |x|."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.norm(dim=-1, keepdim=True) - 0.5


@pytest.mark.parametrize("method", ["fd", "autograd"])
def test_sdf_gradient_option_takes_the_gradient_it_names(method: str) -> None:
    """task.gradient=autograd differentiates exactly: x / |x| on a sphere, to float precision. fd, the
    tetrahedral difference sum_i k_i f(x + e k_i) / 4e over the cube's alternate corners k_i, is exact
    to first order but for one term: its Taylor expansion leaves e (H_yz, H_xz, H_xy), the Hessian's
    off-diagonal (k_x k_y = k_z on those corners). On a sphere of radius r, H = (I - n n^T) / r: so fd
    reads n - e (n_y n_z, n_x n_z, n_x n_y) / r, up to O(e^2)."""
    from nstr.tasks.sdf import _objective, sdf_config

    opts = sdf_config("quick", {"task.gradient": method}).task
    assert opts.gradient == method
    rng = np.random.default_rng(0)
    n = rng.normal(size=(200, 3))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    pts = (0.5 * n).astype(np.float32)
    samples = SimpleNamespace(points=pts, sdf=np.zeros(200, np.float32), normals=n.astype(np.float32), n_surface=200)
    objective = _objective(samples, opts, "cpu", 64, (pts, np.zeros(200, bool)))
    g = objective.gradient(_Sphere(), torch.as_tensor(pts)).detach().double().numpy()
    expected = n.copy()
    if method == "fd":
        expected -= opts.fd_step * np.stack([n[:, 1] * n[:, 2], n[:, 0] * n[:, 2], n[:, 0] * n[:, 1]], 1) / 0.5
        assert np.abs(g - n).max() > 10 * np.abs(g - expected).max()    # the first-order term is really there
    assert np.abs(g - expected).max() < (1e-6 if method == "autograd" else 5 * (opts.fd_step / 0.5) ** 2)


@pytest.mark.parametrize("color_field", ["shared", "separate"])
def test_nerf_color_field_separate_keeps_colour_features_off_the_geometry_network(color_field: str) -> None:
    """task.color_field=separate: the colour features come from their own grid, so the colour loss
    reaches the geometry network only through normals and opacity (its features have no gradient
    into it); shared: the geometry network's extra outputs are the features."""
    from nstr.tasks.nerf import build_radiance_field, nerf_config

    cfg = nerf_config("quick", {"task.geometry": "sdf", "task.color_field": color_field, "field.model": "hashgrid",
                                "field.grid_levels": 2, "field.grid_table_size": 256, "field.width": 16})
    torch.manual_seed(0)
    model = build_radiance_field(cfg)
    _, _, features, _ = model.sdf_and_gradient(torch.rand(64, 3) * 2 - 1, create_graph=True)
    features.sum().backward()
    reached = sum(float(p.grad.abs().sum()) for p in model.field.parameters() if p.grad is not None)
    assert (reached == 0.0) if color_field == "separate" else (reached > 0.0)
    assert model.describe()["color_field"] == color_field
