"""Volume rendering in pure PyTorch: stratified marching through occupied cells, proportional
(importance) samples from a no-grad pass, and compositing of packed samples.

Samples are *packed*: one flat list over all rays (sorted by ray, then depth) with the ray each
belongs to, as nerfacc does, so no compute is spent on padding or on empty space. The no-grad pass
also drops samples behind opaque surfaces (transmittance below ``min_transmittance``): what
instant-ngp calls early ray termination.

Packing needs the number of kept samples on the host (one ``nonzero`` and one ``bincount`` per step:
two host syncs). ``padded=True`` keeps the (rays, samples) layout instead: skipped samples stay in
place with zero length (so they add nothing) and are queried clamped into the cube; every tensor's
size is known in advance, so a CUDA step never waits for the host. It spends compute on the skipped samples,
which a GPU has to spare and a CPU does not: the renderer pads on CUDA and packs on the CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from nstr.nerf.occupancy import OccupancyGrid
from nstr.nerf.rays import intersect_cube

DIAGONAL = 2.0 * math.sqrt(3.0)  # of the field's cube [-1, 1]^3


@dataclass
class Samples:
    """Packed samples: ``ray`` (M,) sorted, ``t`` midpoints and ``dt`` lengths (field units)."""

    ray: Tensor
    t: Tensor
    dt: Tensor
    n_rays: int
    per_ray: int = 0  # padded layout: this many samples per ray, in ray order (0: packed)

    def kept(self) -> Tensor | int:
        """How many samples carry weight: an int when packed, a tensor (no host sync) when padded."""
        return (self.dt > 0).sum() if self.per_ray else int(self.ray.numel())

    def points(self, origins: Tensor, dirs: Tensor) -> Tensor:
        p = origins[self.ray] + self.t[:, None] * dirs[self.ray]
        return p.clamp(-1.0, 1.0) if self.per_ray else p  # skipped samples may lie outside the cube


def _transmittance_padded(sigma: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
    """Weights and transmittance in front of each sample, (R, n) padded layout."""
    tau = sigma * dt
    excl = torch.cumsum(tau, -1) - tau
    trans = torch.exp(-excl)
    return trans * (1 - torch.exp(-tau)), trans


def sample_rays(origins: Tensor, dirs: Tensor, *, step: float, grid: OccupancyGrid | None,
                density_fn: Callable[[Tensor], Tensor] | None, n_importance: int, gen: torch.Generator | None,
                min_transmittance: float = 1e-3, padded: bool = False) -> Samples:
    """Samples along rays in field coordinates (origins, unit dirs: (R, 3)).

    ``gen`` None renders deterministically (bin centres); otherwise positions are jittered within bins
    (stratified). With ``density_fn`` a no-grad pass weights the bins; then ``n_importance`` extra samples
    per ray are drawn in proportion to those weights (inverse CDF), and samples hidden behind
    opaque surfaces are dropped. ``padded``: the (rays, samples) layout, without host syncs (module doc).
    """
    R, dev = origins.shape[0], origins.device
    near, far = intersect_cube(origins, dirs)
    n = max(1, math.ceil(DIAGONAL / step))
    k = torch.arange(n, device=dev, dtype=torch.float32)
    u = torch.rand(R, n, generator=gen, device=dev) if gen is not None else torch.full((R, n), 0.5, device=dev)
    t = near[:, None] + (k + u) * step
    valid = t < far[:, None]
    if grid is not None:
        pts = origins[:, None] + t[..., None] * dirs[:, None]
        valid &= grid.is_occupied(pts.reshape(-1, 3)).reshape(R, n)
    dt = torch.full_like(t, step)
    pack = _pad if padded else _pack
    if density_fn is None:
        return pack(t, dt, valid)

    with torch.no_grad():
        pts = origins[:, None] + t[..., None] * dirs[:, None]
        if padded:  # every point, skipped ones clamped into the cube and their density masked
            sigma = density_fn(pts.reshape(-1, 3).clamp(-1.0, 1.0)).float().reshape(valid.shape)
            sigma = torch.where(valid, sigma, 0.0)
        else:
            sigma = torch.zeros_like(t)
            sigma[valid] = density_fn(pts[valid]).float()  # (an empty selection is fine: no host check)
        weights, trans = _transmittance_padded(sigma, dt * valid)
        valid &= trans > min_transmittance
        if n_importance <= 0:
            return pack(t, dt, valid)
        w = weights * valid
        total = w.sum(-1, keepdim=True)
        has = total[:, 0] > 1e-4
        pdf = w / total.clamp_min(1e-12)
        cdf = torch.cumsum(pdf, -1)
        cdf = torch.cat([torch.zeros(R, 1, device=dev), cdf], -1)  # (R, n + 1) at bin edges
        if gen is not None:
            v = (torch.arange(n_importance, device=dev) + torch.rand(R, n_importance, generator=gen, device=dev))
        else:
            v = torch.arange(n_importance, device=dev).float() + 0.5
            v = v.expand(R, -1)
        v = (v / n_importance).contiguous()
        idx = torch.searchsorted(cdf.contiguous(), v, right=True).clamp(1, n) - 1  # bin of each sample
        c0 = torch.gather(cdf, 1, idx)
        c1 = torch.gather(cdf, 1, idx + 1)
        frac = ((v - c0) / (c1 - c0).clamp_min(1e-12)).clamp(0, 1)
        t_fine = torch.gather(t, 1, idx) - 0.5 * step + frac * step
        fine_valid = has[:, None] & torch.gather(valid, 1, idx)
        all_t = torch.cat([t, t_fine], 1)
        all_valid = torch.cat([valid, fine_valid], 1)
        all_t = torch.where(all_valid, all_t, torch.full_like(all_t, float("inf")))
        all_t, order = torch.sort(all_t, 1)
        all_valid = torch.gather(all_valid, 1, order)
        # each sample covers half the gap to its neighbours, at most half a coarse step on each side
        prev = torch.cat([torch.full((R, 1), -float("inf"), device=dev), all_t[:, :-1]], 1)
        nxt = torch.cat([all_t[:, 1:], torch.full((R, 1), float("inf"), device=dev)], 1)
        half = 0.5 * step
        lo = torch.minimum((all_t - prev) * 0.5, torch.full_like(all_t, half))
        hi = torch.minimum((nxt - all_t) * 0.5, torch.full_like(all_t, half))
        all_dt = torch.where(all_valid, lo + hi, torch.zeros_like(all_t))
        all_t = torch.where(all_valid, all_t, torch.zeros_like(all_t))
        return pack(all_t, all_dt, all_valid)


def _pack(t: Tensor, dt: Tensor, valid: Tensor) -> Samples:
    rows, _ = valid.nonzero(as_tuple=True)
    return Samples(ray=rows, t=t[valid], dt=dt[valid], n_rays=t.shape[0])


def _pad(t: Tensor, dt: Tensor, valid: Tensor) -> Samples:
    """Every sample kept in place; skipped ones get zero length, so they weigh nothing."""
    R, n = t.shape
    rows = torch.arange(R, device=t.device).repeat_interleave(n)
    return Samples(ray=rows, t=t.reshape(-1), dt=torch.where(valid, dt, 0.0).reshape(-1), n_rays=R, per_ray=n)


def composite(sigma: Tensor, rgb: Tensor, samples: Samples, background: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Colour (R, 3), opacity (R,) and expected depth (R,) of packed samples over ``background`` (R, 3).

    Transmittance uses one cumulative sum over the packed list in float64, minus each ray's start,
    so there is no per-ray loop and no padding.
    """
    R = samples.n_rays
    if samples.per_ray:  # padded: per-ray cumulative sums, every size known in advance
        tau = (sigma.float() * samples.dt).reshape(R, samples.per_ray)
        w, _ = _transmittance_padded(tau, torch.ones_like(tau))
        acc = w.sum(1)
        color = (w[..., None] * rgb.float().reshape(R, samples.per_ray, 3)).sum(1)
        depth = (w * samples.t.reshape(R, samples.per_ray)).sum(1)
        return color + (1.0 - acc)[:, None] * background, acc, depth
    tau = (sigma.float() * samples.dt).double()
    cs = torch.cumsum(tau, 0)
    excl = cs - tau
    counts = torch.bincount(samples.ray, minlength=R)
    starts = torch.cumsum(counts, 0) - counts
    offset = excl[starts.clamp(max=max(tau.shape[0] - 1, 0))] if tau.numel() else excl
    trans = torch.exp(-(excl - offset[samples.ray])).float() if tau.numel() else tau.float()
    alpha = 1.0 - torch.exp(-tau.float())
    w = trans * alpha
    color = torch.zeros(R, 3, device=sigma.device, dtype=torch.float32).index_add(0, samples.ray, w[:, None] * rgb.float())
    acc = torch.zeros(R, device=sigma.device, dtype=torch.float32).index_add(0, samples.ray, w)
    depth = torch.zeros(R, device=sigma.device, dtype=torch.float32).index_add(0, samples.ray, w * samples.t)
    return color + (1.0 - acc)[:, None] * background, acc, depth
