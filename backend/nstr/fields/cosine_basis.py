"""A strictly band-limited smooth basis on ``[-1, 1]^d``: tensor products of ``cos(pi k (x + 1) / 2)``.

Term ``k`` oscillates at ``k / 4`` cycles per unit, so ``n`` terms per axis hold no frequency above
``(n - 1) / 4`` cycles per unit along any axis. Sampled at the midpoints of ``M`` equal cells the terms
are exactly the DCT-II basis, which gives the band limit a known-answer test (the DCT of a sampled
function is zero above index ``n - 1``). Unlike a Fourier series the even extension has no wrap-around
constraint (the value at ``x = -1`` is free of the value at ``x = 1``), and unlike a linearly
interpolated grid it has no spectral images above its cut-off: a banded NSTR envelope built on it
can modulate its carrier but never carry detail of its own.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def terms_for_bandwidth(bandwidth: float) -> int:
    """The most terms per axis whose highest frequency, ``(n - 1) / 4`` cycles per unit, is <= ``bandwidth``."""
    return int(math.floor(4.0 * max(bandwidth, 0.0) + 1e-9)) + 1


def cutoff(n_terms: int) -> float:
    """The highest frequency (cycles per unit) that ``n_terms`` terms per axis hold."""
    return (n_terms - 1) / 4.0


def axis_terms(x: Tensor, n_terms: int, with_derivative: bool) -> tuple[Tensor, Tensor | None]:
    """Values ``(N, d, n)`` of the first ``n_terms`` terms along each axis of ``x`` (N, d), and their
    d/dx (same shape) when asked."""
    k = torch.arange(n_terms, device=x.device, dtype=x.dtype)
    arg = (0.5 * math.pi) * (x.unsqueeze(-1) + 1.0) * k
    values = torch.cos(arg)
    if not with_derivative:
        return values, None
    return values, -(0.5 * math.pi) * k * torch.sin(arg)


_CHUNK_3D = 1024  # points per 3-D contraction: the (N, G, n, n) intermediate stays in cache (16 carriers of
#                  18 terms per axis: 21 MB). One step of 10k points, 84k parameters: 0.26-0.28 s against 0.55 s
#                  unchunked, 0.31-0.52 s at 2048 (one run, 2 threads)


def expand(coeffs: Tensor, values: Tensor, derivs: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Evaluate ``sum_k coeffs[..., k] prod_a phi_{k_a}(x_a)`` for a group of functions at N points.

    ``coeffs`` is ``(G, n)`` (1-D), ``(G, n, n)`` (2-D) or ``(G, n, n, n)`` (3-D), indexed x first; ``values``/``derivs`` come from
    :func:`axis_terms` sliced to ``n``. Returns ``(N, G)`` and, with ``derivs``, the gradient ``(N, G, d)``.
    """
    d = values.shape[1]
    if d == 1:
        out = values[:, 0] @ coeffs.t()
        grad = None if derivs is None else (derivs[:, 0] @ coeffs.t()).unsqueeze(-1)
        return out, grad
    if d == 2:
        along_x = torch.einsum("nk,gkl->ngl", values[:, 0], coeffs)  # coeffs[g, kx, ky]
        out = (along_x * values[:, 1].unsqueeze(1)).sum(-1)
        if derivs is None:
            return out, None
        gx = (torch.einsum("nk,gkl->ngl", derivs[:, 0], coeffs) * values[:, 1].unsqueeze(1)).sum(-1)
        gy = (along_x * derivs[:, 1].unsqueeze(1)).sum(-1)
        return out, torch.stack([gx, gy], -1)
    if d == 3 and values.shape[0] > _CHUNK_3D:  # the (N, G, n, n) intermediate, a few MB at a time (_CHUNK_3D)
        parts = [expand(coeffs, values[s:s + _CHUNK_3D], None if derivs is None else derivs[s:s + _CHUNK_3D])
                 for s in range(0, values.shape[0], _CHUNK_3D)]
        return (torch.cat([p[0] for p in parts]),
                None if derivs is None else torch.cat([p[1] for p in parts]))  # type: ignore[misc]
    if d == 3:  # contracted one axis at a time: (N, G, n, n), then (N, G, n), then (N, G)
        vx, vy, vz = values[:, 0], values[:, 1], values[:, 2]
        along_x = torch.einsum("nk,gklm->nglm", vx, coeffs)
        along_xy = torch.einsum("nglm,nl->ngm", along_x, vy)
        out = torch.einsum("ngm,nm->ng", along_xy, vz)
        if derivs is None:
            return out, None
        dx, dy, dz = derivs[:, 0], derivs[:, 1], derivs[:, 2]
        gx = torch.einsum("ngm,nm->ng", torch.einsum("nglm,nl->ngm", torch.einsum("nk,gklm->nglm", dx, coeffs), vy), vz)
        gy = torch.einsum("ngm,nm->ng", torch.einsum("nglm,nl->ngm", along_x, dy), vz)
        gz = torch.einsum("ngm,nm->ng", along_xy, dz)
        return out, torch.stack([gx, gy, gz], -1)
    raise ValueError("the cosine basis is implemented for 1-D, 2-D and 3-D inputs")


class SampleGrid:
    """The regular grid a signal was sampled on (:func:`nstr.signals.fitting.grid_coordinates`), so points
    on it can take the basis from a table or a DCT instead of one cosine per term and point (WHY: at the
    fixed training coordinates that cosine was ~70 % of a banded NSTR step on audio)."""

    def __init__(self, shape: tuple[int, ...], n_terms: int) -> None:
        self.sizes = tuple(shape[::-1])  # field axis order: x = columns first
        self.longest = max(shape)
        self.axes = [((torch.arange(m, dtype=torch.float64) + 0.5) * 2.0 - m) / self.longest for m in self.sizes]
        self.n_terms = n_terms
        self._tables: list[tuple[Tensor, Tensor | None]] | None = None

    @property
    def tables(self) -> list[tuple[Tensor, Tensor | None]]:
        """Per axis, the terms and their d/dx at its samples ((M, 1, n) each), built on first use."""
        if self._tables is None:
            self._tables = [axis_terms(a[:, None], self.n_terms, True) for a in self.axes]
        return self._tables

    def indices(self, x: Tensor) -> Tensor | None:
        """Per point and axis, the index of the grid sample at ``x`` (N, d); None unless every point is one."""
        if x.shape[1] != len(self.sizes) or x.shape[0] == 0:
            return None
        sizes = torch.tensor(self.sizes, device=x.device)
        j = torch.round((x.double() * self.longest + sizes) / 2.0 - 0.5).long()
        if bool(((j < 0) | (j >= sizes)).any()):
            return None
        for a, axis in enumerate(self.axes):
            if bool(((axis.to(x.device)[j[:, a]] - x[:, a].double()).abs() > 1e-5).any()):
                return None
        return j

    def axis_terms(self, j: Tensor, n_terms: int, with_derivative: bool, dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
        """:func:`axis_terms` at grid points ``j`` (from :meth:`indices`), read from the tables."""
        values = torch.stack([t[0][j[:, a], 0, :n_terms] for a, t in enumerate(self.tables)], 1).to(dtype)
        if not with_derivative:
            return values, None
        return values, torch.stack([t[1][j[:, a], 0, :n_terms] for a, t in enumerate(self.tables)], 1).to(dtype)


def dct_expand(coeffs: Tensor, j: Tensor, size: int, with_gradient: bool) -> tuple[Tensor, Tensor | None]:
    """1-D :func:`expand` at the grid samples ``j`` (N,) of a ``size``-sample clip that spans [-1, 1]: the
    series on the whole grid is a DCT-III (one FFT of length ``2 size``), then the rows are picked.
    ``coeffs`` (G, n) with n <= 2 size. Returns (N, G) and, with ``with_gradient``, (N, G, 1)."""
    n = coeffs.shape[-1]
    k = torch.arange(n, device=coeffs.device, dtype=coeffs.dtype)
    twist = torch.polar(torch.ones_like(k), (0.5 * math.pi / size) * k)  # e^{i pi k / 2M}
    series = torch.fft.ifft(coeffs * twist, n=2 * size) * (2 * size)  # sum_k c_k e^{i pi k (2j + 1) / 2M}
    out = series.real[:, :size].t()[j]
    if not with_gradient:
        return out, None
    dseries = torch.fft.ifft(coeffs * k * twist, n=2 * size) * (2 * size)
    return out, (-(0.5 * math.pi) * dseries.imag[:, :size].t()[j]).unsqueeze(-1)
