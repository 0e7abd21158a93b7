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


def expand(coeffs: Tensor, values: Tensor, derivs: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Evaluate ``sum_k coeffs[..., k] prod_a phi_{k_a}(x_a)`` for a group of functions at N points.

    ``coeffs`` is ``(G, n)`` (1-D) or ``(G, n, n)`` (2-D); ``values``/``derivs`` come from
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
    raise ValueError("the cosine basis is implemented for 1-D and 2-D inputs")
