"""Volume rendering of an SDF (NeuS): samples placed from the cached SDF grid, opacity from the SDF.

Sampling, in a fixed (rays, samples) layout so that nothing waits on the host:

1. coarse: ``n_coarse`` evenly spaced points across the cube on each ray, SDF read from
   :class:`~nstr.nerf.sdf_grid.SdfGrid` (trilinear, no network); NeuS's discrete opacity between
   neighbours with a sharpness the lattice can resolve (``min(s, 4 / cell)``) weights the intervals;
2. fine: ``n_fine`` points drawn in proportion to those weights (inverse CDF) plus ``n_uniform``
   stratified points across the cube (they see and remove floaters the grid has not caught yet).

Only these ``n_fine + n_uniform + 1`` section midpoints per ray go through the network, with the gradient the
normals and the eikonal term need.

Opacity (NeuS, eq. 13): the sorted points are section edges and the network is evaluated at each
section's midpoint; the SDF at the section's ends is estimated from the midpoint's SDF and its
directional derivative, and
``alpha = max((Phi_s(f_prev) - Phi_s(f_next)) / Phi_s(f_prev), 0)`` with ``Phi_s`` the logistic of
sharpness ``s``. Early in training the derivative is annealed towards ``-|cos|`` (``cos_anneal``) so
that rays see surfaces from behind too, as NeuS does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nstr.nerf.rays import intersect_cube
from nstr.nerf.sdf_field import SDFRadianceField


@dataclass
class SdfSampling:
    n_coarse: int = 128
    n_fine: int = 32
    n_uniform: int = 8


def _exclusive_cumprod(x: Tensor) -> Tensor:
    return torch.cumprod(torch.cat([torch.ones_like(x[:, :1]), x[:, :-1]], 1), 1)


@torch.no_grad()
def place_samples(model: SDFRadianceField, origins: Tensor, dirs: Tensor, cfg: SdfSampling,
                  gen: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """Sorted section edges (R, n_fine + n_uniform + 2) in field units (the cube's entry and exit included),
    and which rays cross the cube (R,). The network sees the sections' midpoints."""
    R, dev = origins.shape[0], origins.device
    near, far = intersect_cube(origins, dirs)
    hit = far > near + 1e-6
    far = torch.where(hit, far, near + 1e-3)
    span = far - near
    edges = near[:, None] + span[:, None] * torch.linspace(0.0, 1.0, cfg.n_coarse, device=dev)[None]  # (R, nc)
    pts = origins[:, None] + edges[..., None] * dirs[:, None]
    sdf = model.grid.lookup(pts.reshape(-1, 3)).reshape(R, cfg.n_coarse)
    s = torch.clamp(model.sharpness.detach(), max=4.0 / model.grid.cell)
    cdf = torch.sigmoid(sdf * s)
    alpha = ((cdf[:, :-1] - cdf[:, 1:] + 1e-5) / (cdf[:, :-1] + 1e-5)).clamp(0.0, 1.0)  # (R, nc - 1)
    w = alpha * _exclusive_cumprod(1.0 - alpha + 1e-7)
    pdf = w + 1e-4 * w.sum(1, keepdim=True).clamp_min(1e-3) / w.shape[1]  # a floor: no interval unreachable
    pdf = pdf / pdf.sum(1, keepdim=True)
    cum = torch.cat([torch.zeros(R, 1, device=dev), torch.cumsum(pdf, 1)], 1).clamp(max=1.0)  # (R, nc)
    if gen is not None:
        u = (torch.arange(cfg.n_fine, device=dev) + torch.rand(R, cfg.n_fine, generator=gen, device=dev)) / cfg.n_fine
    else:
        u = ((torch.arange(cfg.n_fine, device=dev).float() + 0.5) / cfg.n_fine).expand(R, -1)
    idx = torch.searchsorted(cum.contiguous(), u.contiguous(), right=True).clamp(1, cfg.n_coarse - 1)
    c0, c1 = torch.gather(cum, 1, idx - 1), torch.gather(cum, 1, idx)
    e0, e1 = torch.gather(edges, 1, idx - 1), torch.gather(edges, 1, idx)
    fine = e0 + (u - c0) / (c1 - c0).clamp_min(1e-12) * (e1 - e0)
    k = torch.arange(cfg.n_uniform, device=dev).float()
    jitter = torch.rand(R, cfg.n_uniform, generator=gen, device=dev) if gen is not None else torch.full(
        (R, cfg.n_uniform), 0.5, device=dev)
    uniform = near[:, None] + span[:, None] * (k + jitter) / max(cfg.n_uniform, 1)
    t, _ = torch.sort(torch.cat([near[:, None], fine, uniform, far[:, None]], 1), 1)
    return t, hit


def render_sdf(model: SDFRadianceField, origins: Tensor, dirs: Tensor, background: Tensor, cfg: SdfSampling,
               gen: torch.Generator | None, *, training: bool, cos_anneal: float = 1.0,
               pde_fraction: float | None = None) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor], int]:
    """Field-space rays -> colour (R, 3), opacity (R,), depth (R, field units), terms, sample count.

    ``terms`` holds the field's own terms (the PDE residual) and, when training, ``eikonal``: the mean
    of ``(|grad sdf| - 1)^2`` over the samples.
    """
    edges, hit = place_samples(model, origins, dirs, cfg, gen)
    t = 0.5 * (edges[:, 1:] + edges[:, :-1])  # sections [edge_i, edge_i+1] tile the ray exactly
    dist = (edges[:, 1:] - edges[:, :-1]).clamp_min(1e-6)
    R, n = t.shape
    pts = origins[:, None] + t[..., None] * dirs[:, None]
    flat_dirs = dirs[:, None].expand(R, n, 3).reshape(-1, 3)
    sdf, grad, feat, terms = model.sdf_and_gradient(pts.reshape(-1, 3), create_graph=training,
                                                    pde_fraction=pde_fraction if training else None)
    rgb = model.color(pts.reshape(-1, 3), grad, flat_dirs, feat).reshape(R, n, 3)
    sdf, grad = sdf.reshape(R, n), grad.reshape(R, n, 3)
    cos = (grad * dirs[:, None]).sum(-1)
    iter_cos = -(torch.relu(-cos * 0.5 + 0.5) * (1.0 - cos_anneal) + torch.relu(-cos) * cos_anneal)
    s = model.sharpness
    prev_cdf = torch.sigmoid((sdf - iter_cos * dist * 0.5) * s)
    next_cdf = torch.sigmoid((sdf + iter_cos * dist * 0.5) * s)
    alpha = ((prev_cdf - next_cdf + 1e-5) / (prev_cdf + 1e-5)).clamp(0.0, 1.0) * hit[:, None]
    w = alpha * _exclusive_cumprod(1.0 - alpha + 1e-7)
    acc = w.sum(1)
    color = (w[..., None] * rgb).sum(1) + (1.0 - acc)[:, None] * background
    depth = (w * t).sum(1)
    out_terms = dict(terms)
    if training:
        out_terms["eikonal"] = (grad.norm(dim=-1) - 1.0).pow(2).mean()
    return color, acc, depth, out_terms, R * n
