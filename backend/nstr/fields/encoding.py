"""Multiresolution grid encoding (instant-ngp style) in pure PyTorch, level-vectorised, with an analytic Jacobian.

One module serves the hash-grid baseline and NSTR's grid spectrum field S(x).
Levels whose dense lattice has at most ``table_size`` vertices are stored
densely; finer levels are hashed (the spatial hash of Teschner et al., as in
instant-ngp). Interpolation is multilinear over the 2^d cell corners.

All levels are handled at once, as nerfstudio's encoding does: the corner rows of
every level come from ONE gather into the concatenated table (so backward is ONE
scatter-add into one zeroed table gradient, not one per level), and the corner
indices and weights are built per axis and combined by broadcasting (an outer
product over the 2^d corners) instead of materialising a (N, L, 2^d, d) lattice.
The Jacobian d(features)/dx comes in closed form from the same gathered rows: the
PDE loss needs it exactly. Everything here runs in the table's precision (fp32),
also under autocast, so the Jacobian is never rounded to bf16.

``nstr.fields.encoding_reference`` keeps the first, per-level implementation; the tests
hold this one to it (values, gradients, Jacobian) and ``scripts/bench_speed.py`` times both.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

_PRIMES = (1, 2654435761, 805459861)


class MultiresGrid(nn.Module):
    """``[-1, 1]^d -> R^(levels * features)``."""

    def __init__(self, in_dim: int, levels: int, features: int, base_res: int, max_res: int, table_size: int,
                 init_scale: float = 1e-4) -> None:
        super().__init__()
        if not 1 <= in_dim <= 3:
            raise ValueError("MultiresGrid supports 1 to 3 input dimensions")
        self.in_dim, self.levels, self.features = in_dim, levels, features
        max_res = max(max_res, base_res)
        growth = math.exp((math.log(max_res) - math.log(base_res)) / max(levels - 1, 1))
        resolutions, sizes, hashed = [], [], []
        for level in range(levels):
            res = int(math.floor(base_res * growth**level + 1e-6))
            dense = (res + 1) ** in_dim
            resolutions.append(res)
            sizes.append(min(dense, table_size))
            hashed.append(dense > table_size)
        self.resolutions, self.sizes, self.hashed = resolutions, sizes, hashed
        offsets = [0]
        for s in sizes:
            offsets.append(offsets[-1] + s)
        self.offsets = offsets
        self.table_size = table_size
        self.table = nn.Parameter(torch.empty(offsets[-1], features))
        nn.init.uniform_(self.table, -init_scale, init_scale)
        corners = torch.tensor([[(c >> j) & 1 for j in range(in_dim)] for c in range(2**in_dim)])
        self.register_buffer("corners", corners, persistent=False)  # (C, d) in {0, 1}
        # Resolution grows with the level, so the dense levels are a prefix and the hashed ones the rest.
        self.n_dense = sum(1 for h in hashed if not h)
        res_t = torch.tensor(resolutions, dtype=torch.float32)
        self.register_buffer("_res", res_t.view(1, levels, 1), persistent=False)  # (1, L, 1)
        self.register_buffer("_res_max", (res_t - 1).view(1, levels, 1), persistent=False)
        self.register_buffer("_offsets", torch.tensor(offsets[:-1]).view(1, levels), persistent=False)  # (1, L)
        # Dense strides (res + 1)^j per level and axis; the hash's primes per axis.
        strides = torch.tensor([[(r + 1) ** j for j in range(in_dim)] for r in resolutions], dtype=torch.long)
        self.register_buffer("_strides", strides[:self.n_dense].unsqueeze(0), persistent=False)  # (1, Ld, d)
        self.register_buffer("_primes", torch.tensor(_PRIMES[:in_dim]), persistent=False)  # (d,)
        pow2 = table_size & (table_size - 1) == 0
        self._hash_mask = table_size - 1 if pow2 else None  # x % 2^k == x & (2^k - 1) for x >= 0

    @property
    def out_dim(self) -> int:
        return self.levels * self.features

    def _corner_rows(self, cell: Tensor) -> Tensor:
        """Table rows (N, L, 2^d) of the cell corners, for integer cells ``cell`` (N, L, d)."""
        ld = self.n_dense
        parts = []
        if ld > 0:  # dense: sum_j (cell_j + bit_j) * stride_j
            base = cell[:, :ld] * self._strides  # (N, Ld, d)
            parts.append(_combine(base, self._strides.expand_as(base), torch.add))
        if ld < self.levels:  # hashed: xor_j (cell_j + bit_j) * prime_j, mod table size
            c = cell[:, ld:]
            base = c * self._primes
            idx = _combine(base, base + self._primes, torch.bitwise_xor, shifted=True)
            parts.append(idx.bitwise_and_(self._hash_mask) if self._hash_mask is not None
                         else torch.remainder(idx, self.table_size))
        rows = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
        return rows.add_(self._offsets.unsqueeze(-1))

    def forward(self, x: Tensor, with_jacobian: bool = False) -> tuple[Tensor, Tensor | None]:
        """Features (N, L*F) and, if asked, their Jacobian (N, L*F, d)."""
        x = x.to(self.table.dtype)  # interpolate in the table's precision (fp32 even under autocast)
        with torch.autocast(x.device.type, enabled=False):
            return self._forward(x, with_jacobian)

    def _forward(self, x: Tensor, with_jacobian: bool) -> tuple[Tensor, Tensor | None]:
        n, L = x.shape[0], self.levels
        u = ((x + 1.0) * 0.5).clamp(0.0, 1.0)
        pos = u.unsqueeze(1) * self._res  # (N, L, d)
        cell = torch.minimum(pos.detach().floor(), self._res_max)
        t = pos - cell  # (N, L, d) in [0, 1]
        rows = self._corner_rows(cell.long()).view(-1)  # (N * L * C,)
        # dt/dx = res / 2 (u = (x + 1) / 2); zero where x was clamped outside the box
        scale = ((x > -1.0) & (x < 1.0)).to(x.dtype).unsqueeze(1) * (0.5 * self._res) if with_jacobian else None
        if self.features == 2 and not t.requires_grad and torch.is_grad_enabled() and self.table.requires_grad:
            # The training step: gradients reach the table only, so backward is written by hand (one
            # splat down the lerp tree, one scatter-add) instead of autograd's many slice backwards.
            out = _TableInterp.apply(self.table, rows, t.detach(), scale, n, L)
            return (out[0], out[1]) if with_jacobian else (out[0], None)
        # Anything else (inference, or gradients w.r.t. x for eikonal / normal losses): plain autograd ops.
        return _interpolate(self.table, rows, t, scale, n, L)


def _interpolate(table: Tensor, rows: Tensor, t: Tensor, scale: Tensor | None, n: int, L: int
                 ) -> tuple[Tensor, Tensor | None]:
    """Gather the corner rows (ONE gather for every level) and interpolate; features (N, L*F) and, when
    ``scale`` (dt/dx, (N, L, d)) is given, the Jacobian (N, L*F, d)."""
    F, d = table.shape[1], t.shape[-1]
    with_jacobian = scale is not None
    if F == 2:
        # Two fp32 features are one complex64: the gather and the scatter-add move 8-byte elements
        # (about 2x faster on the CPU than gathering rows of two floats).
        values = torch.view_as_real(torch.view_as_complex(table).index_select(0, rows)).view(n, L, 2 ** d, 2)
    else:
        values = table.index_select(0, rows).view(n, L, 2 ** d, F)  # (N, L, C, F); C explicit: N may be 0
    # Points innermost, (C, F, L, N): every lerp below then runs over long contiguous rows, with t
    # broadcast along the outer axes (with the points outermost, the inner loops were 2 to 16 long).
    values = values.permute(2, 3, 1, 0)
    ts = [t[..., j].t() for j in range(d)]  # (L, N)
    feats, dfeats = _multilinear(values, ts, with_jacobian)  # (F, L, N), d x (F, L, N)
    feats = feats.permute(2, 1, 0).reshape(n, L * F)
    if scale is None:
        return feats, None
    jac = torch.stack(dfeats, -1).permute(2, 1, 0, 3) * scale.unsqueeze(2)  # (N, L, F, d)
    return feats, jac.reshape(n, L * F, d)


class _TableInterp(torch.autograd.Function):
    """:func:`_interpolate` for two features, differentiable w.r.t. the table only (t is a constant)."""

    @staticmethod
    def forward(ctx, table: Tensor, rows: Tensor, t: Tensor, scale: Tensor | None, n: int, L: int):  # type: ignore[override]
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(rows, t, scale)
        ctx.shape = (table.shape[0], n, L)
        ctx.cdtype = torch.complex128 if table.dtype == torch.float64 else torch.complex64
        feats, jac = _interpolate(table, rows, t, scale, n, L)
        return (feats,) if jac is None else (feats, jac)

    @staticmethod
    def backward(ctx, grad_feats: Tensor | None, grad_jac: Tensor | None = None):  # type: ignore[override]
        rows, t, scale = ctx.saved_tensors
        size, n, L = ctx.shape
        d = t.shape[-1]
        if n == 0:  # an empty batch splats nothing (and view_as_complex refuses its empty strided views)
            return torch.zeros(size, 2, dtype=t.dtype, device=t.device), None, None, None, None, None
        zero = torch.zeros(1, 2, L, n, dtype=t.dtype, device=t.device)
        # gradients in the points-innermost layout of _interpolate: (corners so far, F, L, N)
        g = zero if grad_feats is None else grad_feats.view(n, L, 2).permute(2, 1, 0).unsqueeze(0)
        gd = [zero] * d
        if grad_jac is not None:
            gj = (grad_jac.view(n, L, 2, d) * scale.unsqueeze(2)).permute(3, 2, 1, 0)  # (d, F, L, N)
            gd = [gj[k].unsqueeze(0) for k in range(d)]
        # The transpose of _multilinear in closed form, built up axis by axis by broadcasting (no slicing):
        # corner weight prod_j P_j[b_j] with P_j = (1 - t_j, t_j); the axis-k derivative swaps P_k for (-1, +1).
        sign = torch.tensor([-1.0, 1.0], dtype=t.dtype, device=t.device).view(2, 1, 1, 1, 1)
        ext = list(gd)  # the Jacobian's gradients, each waiting for its own axis
        for j in range(d):
            tj = t[..., j].t()  # (L, N)
            pj = torch.stack([1.0 - tj, tj]).view(2, 1, 1, L, n)
            g = (pj * g.unsqueeze(0) + sign * ext[j].unsqueeze(0)).flatten(0, 1)
            ext = [q if k <= j else (pj * q.unsqueeze(0)).flatten(0, 1) for k, q in enumerate(ext)]
        g = torch.view_as_complex(g.permute(3, 2, 0, 1).contiguous())  # (N, L, C) like rows
        grad = torch.zeros(size, dtype=ctx.cdtype, device=t.device).index_add_(0, rows, g.reshape(-1))
        return torch.view_as_real(grad), None, None, None, None, None


def _multilinear(values: Tensor, ts: list[Tensor], with_jacobian: bool) -> tuple[Tensor, list[Tensor]]:
    """Multilinear interpolation of corner values (2^d, ...), corner c = sum_j bit_j 2^j, by successive
    lerps along axis 0, 1, ...; with the derivative along every axis (d/dt_j) from the same lerps."""
    cur, dcur = values, []
    for t in ts:
        lo, hi = cur[0::2], cur[1::2]
        diff = hi - lo
        if with_jacobian:
            dcur = [dl + t * (dh - dl) for dl, dh in ((g[0::2], g[1::2]) for g in dcur)]
            dcur.append(diff)
        cur = lo + t * diff
    return cur[0], [g[0] for g in dcur]


def _combine(base: Tensor, plus_one: Tensor, op, shifted: bool = False) -> Tensor:
    """Per-axis integer terms -> their ``op``-combination at every corner (..., 2^d).

    ``base[..., j]`` is axis j's term at bit 0; at bit 1 it is ``plus_one[..., j]`` (``shifted``) or
    ``base + plus_one`` (dense strides: the caller passes the stride itself)."""
    d = base.shape[-1]
    lo = [base[..., j] for j in range(d)]
    hi = [plus_one[..., j] if shifted else base[..., j] + plus_one[..., j] for j in range(d)]
    out = torch.stack([lo[0], hi[0]], -1)
    for j in range(1, d):
        pair = torch.stack([lo[j], hi[j]], -1)
        out = op(pair.unsqueeze(-1), out.unsqueeze(-2)).flatten(-2)
    return out


def linear_jacobian(weight: Tensor, jac: Tensor) -> Tensor:
    """The Jacobian (N, O, d) of ``Linear(feats)`` from the features' Jacobian (N, K, d), in fp32 even under
    autocast (where einsum would otherwise round it to bf16: a 4e-3 relative error in the PDE loss)."""
    with torch.autocast(jac.device.type, enabled=False):
        dtype = torch.promote_types(jac.dtype, torch.float32)
        return torch.einsum("ok,nkd->nod", weight.to(dtype), jac.to(dtype))
