"""Multiresolution grid encoding (instant-ngp style) in pure PyTorch, level-vectorised, with an analytic Jacobian.

One module serves the hash-grid baseline and NSTR's grid spectrum field S(x).
Levels whose dense lattice has at most ``table_size`` vertices are stored
densely; finer levels are hashed (the spatial hash of Teschner et al., as in
instant-ngp). Interpolation is multilinear over the 2^d cell corners.

All levels are handled at once, as nerfstudio's encoding does: the corner rows of
every level come from ONE gather into the concatenated table (so backward is ONE
scatter-add into one zeroed table gradient, not one per level), and the corner
indices and weights are built per axis and combined by broadcasting (an outer
product over the 2^d corners) instead of materialising a (N, L, 2^d, d) lattice. The
layout is corners outermost and features innermost, (2^d, L, N, F): the gathered rows
need no transpose, every lerp is one contiguous pass, and the backward's per-corner
gradients go to the scatter-add as they are.
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
        # Resolution grows with the level, so the dense levels are a prefix and the hashed ones the rest.
        self.n_dense = sum(1 for h in hashed if not h)
        res_t = torch.tensor(resolutions, dtype=torch.float32)
        self.register_buffer("_res", res_t.view(levels, 1), persistent=False)  # (L, 1)
        self.register_buffer("_res_max", (res_t - 1).view(levels, 1), persistent=False)
        self.register_buffer("_offsets", torch.tensor(offsets[:-1]).view(1, levels, 1), persistent=False)  # (1, L, 1)
        # Dense strides (res + 1)^j per axis and level; the hash's primes per axis.
        strides = torch.tensor([[(r + 1) ** j for r in resolutions[:self.n_dense]] for j in range(in_dim)],
                               dtype=torch.long)
        self.register_buffer("_strides", strides.unsqueeze(-1), persistent=False)  # (d, Ld, 1)
        self.register_buffer("_primes", torch.tensor(_PRIMES[:in_dim]).view(in_dim, 1, 1), persistent=False)
        pow2 = table_size & (table_size - 1) == 0
        self._hash_mask = table_size - 1 if pow2 else None  # x % 2^k == x & (2^k - 1) for x >= 0

    @property
    def out_dim(self) -> int:
        return self.levels * self.features

    def _corner_rows(self, cell: Tensor) -> Tensor:
        """Table rows (2^d, L, N) of the cell corners, for integer cells ``cell`` (d, L, N)."""
        ld = self.n_dense
        parts = []
        if ld > 0:  # dense: sum_j (cell_j + bit_j) * stride_j
            base = cell[:, :ld] * self._strides  # (d, Ld, N)
            parts.append(_combine(base, self._strides.expand_as(base), torch.add))
        if ld < self.levels:  # hashed: xor_j (cell_j + bit_j) * prime_j, mod table size
            base = cell[:, ld:] * self._primes
            idx = _combine(base, base + self._primes, torch.bitwise_xor, shifted=True)
            parts.append(idx.bitwise_and_(self._hash_mask) if self._hash_mask is not None
                         else torch.remainder(idx, self.table_size))
        rows = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
        return rows.add_(self._offsets)

    def forward(self, x: Tensor, with_jacobian: bool = False) -> tuple[Tensor, Tensor | None]:
        """Features (N, L*F) and, if asked, their Jacobian (N, L*F, d)."""
        x = x.to(self.table.dtype)  # interpolate in the table's precision (fp32 even under autocast)
        with torch.autocast(x.device.type, enabled=False):
            return self._forward(x, with_jacobian)

    def _forward(self, x: Tensor, with_jacobian: bool) -> tuple[Tensor, Tensor | None]:
        n, L, d, F = x.shape[0], self.levels, self.in_dim, self.features
        u = ((x + 1.0) * 0.5).clamp(0.0, 1.0).t()  # (d, N)
        pos = u.unsqueeze(1) * self._res  # (d, L, N)
        cell = torch.minimum(pos.detach().floor(), self._res_max)
        t = pos - cell  # (d, L, N) in [0, 1]
        rows = self._corner_rows(cell.long())  # (C, L, N)
        # t repeated over the features, (d, L, N, F): every lerp is then one same-shape contiguous pass
        # over the (C, L, N, F) corner values, broadcast only along the corners.
        tf = t.unsqueeze(-1).expand(d, L, n, F).contiguous()
        scale = None
        if with_jacobian:  # dt/dx = res / 2 (u = (x + 1) / 2); zero where x was clamped outside the box
            inside = ((x > -1.0) & (x < 1.0)).to(x.dtype).t().unsqueeze(1)  # (d, 1, N)
            scale = (inside * (0.5 * self._res)).unsqueeze(-1)  # (d, L, N, 1)
        if F == 2 and not t.requires_grad and torch.is_grad_enabled() and self.table.requires_grad:
            # The training step: gradients reach the table only, so backward is written by hand (one
            # splat down the lerp tree, one scatter-add) instead of autograd's many slice backwards.
            out = _TableInterp.apply(self.table, rows, tf, scale, n, L)
            return (out[0], out[1]) if with_jacobian else (out[0], None)
        # Anything else (inference, or gradients w.r.t. x for eikonal / normal losses): plain autograd ops.
        return _interpolate(self.table, rows, tf, scale, n, L)


def _gather(table: Tensor, rows: Tensor, n: int, L: int) -> Tensor:
    """The corner rows of every level in ONE gather: (C, L, N, F), features innermost."""
    C, F = rows.shape[0], table.shape[1]
    if F == 2:
        # Two fp32 features are one complex64: the gather and the scatter-add move 8-byte elements
        # (about 2x faster on the CPU than gathering rows of two floats).
        return torch.view_as_real(torch.view_as_complex(table).index_select(0, rows.view(-1))).view(C, L, n, 2)
    return table.index_select(0, rows.view(-1)).view(C, L, n, F)  # C explicit: N may be 0


def _interpolate(table: Tensor, rows: Tensor, tf: Tensor, scale: Tensor | None, n: int, L: int
                 ) -> tuple[Tensor, Tensor | None]:
    """Multilinear interpolation of the gathered corners: features (N, L*F) and, when ``scale``
    (dt/dx, (d, L, N, 1)) is given, the Jacobian (N, L*F, d).

    Corner c = sum_j bit_j 2^j; successive lerps along axis 0, 1, ... halve the corners, and the
    derivative along every axis (d/dt_j) comes from the same lerps."""
    F, d = table.shape[1], tf.shape[0]
    cur, dcur = _gather(table, rows, n, L), []
    for j in range(d):
        tj, lo, hi = tf[j], cur[0::2], cur[1::2]
        if scale is None:
            cur = torch.lerp(lo, hi, tj)
            continue
        diff = hi - lo
        dcur = [torch.lerp(g[0::2], g[1::2], tj) for g in dcur]
        dcur.append(diff)
        cur = torch.addcmul(lo, tj, diff)
    feats = cur[0].transpose(0, 1).reshape(n, L * F)
    if scale is None:
        return feats, None
    jac = torch.stack([g[0] * scale[k] for k, g in enumerate(dcur)], -1)  # (L, N, F, d)
    return feats, jac.transpose(0, 1).reshape(n, L * F, d)


class _TableInterp(torch.autograd.Function):
    """:func:`_interpolate` for two features, differentiable w.r.t. the table only (t is a constant)."""

    @staticmethod
    def forward(ctx, table: Tensor, rows: Tensor, tf: Tensor, scale: Tensor | None, n: int, L: int):  # type: ignore[override]
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(rows, tf, scale)
        ctx.shape = (table.shape[0], n, L)
        ctx.cdtype = torch.complex128 if table.dtype == torch.float64 else torch.complex64
        feats, jac = _interpolate(table, rows, tf, scale, n, L)
        return (feats,) if jac is None else (feats, jac)

    @staticmethod
    def backward(ctx, grad_feats: Tensor | None, grad_jac: Tensor | None = None):  # type: ignore[override]
        rows, tf, scale = ctx.saved_tensors
        size, n, L = ctx.shape
        d = tf.shape[0]
        if n == 0:  # an empty batch splats nothing (and view_as_complex refuses its empty strided views)
            return torch.zeros(size, 2, dtype=tf.dtype, device=tf.device), None, None, None, None, None
        # The transpose of _interpolate in closed form, built up axis by axis in the (corners so far,
        # L, N, F) layout: corner weight prod_j P_j[b_j] with P_j = (1 - t_j, t_j); the axis-k
        # derivative swaps P_k for (-1, +1). Each step writes both halves in place (no cat, no stack).
        g = None if grad_feats is None else grad_feats.view(n, L, 2).transpose(0, 1).unsqueeze(0)
        ext: list[Tensor | None] = [None] * d  # the Jacobian's gradients, each waiting for its own axis
        if grad_jac is not None:
            gj = grad_jac.view(n, L, 2, d)
            ext = [(gj[..., k].transpose(0, 1) * scale[k]).unsqueeze(0) for k in range(d)]
        for j in range(d):
            tj, e = tf[j], ext[j]
            k = 1 if g is None else g.shape[0]
            out = torch.empty((2 * k, L, n, 2), dtype=tf.dtype, device=tf.device)
            lo, hi = out[:k], out[k:]
            if g is None:  # hi = t g + e and lo = (1 - t) g - e = g - hi
                hi.copy_(e)
                torch.neg(e, out=lo)
            elif e is None:
                torch.mul(g, tj, out=hi)
                torch.sub(g, hi, out=lo)
            else:
                torch.addcmul(e, g, tj, out=hi)
                torch.sub(g, hi, out=lo)
            g = out
            ext = [None if i <= j or q is None else _split(q, tj) for i, q in enumerate(ext)]
        assert g is not None
        grad = torch.zeros(size, dtype=ctx.cdtype, device=tf.device)
        grad.index_add_(0, rows.view(-1), torch.view_as_complex(g).view(-1))  # (C, L, N) like rows
        return torch.view_as_real(grad), None, None, None, None, None


def _split(q: Tensor, tj: Tensor) -> Tensor:
    """(K, ...) -> (2K, ...): ``q`` times (1 - t) in the first half and times t in the second."""
    k = q.shape[0]
    out = torch.empty((2 * k,) + q.shape[1:], dtype=q.dtype, device=q.device)
    torch.mul(q, tj, out=out[k:])
    torch.sub(q, out[k:], out=out[:k])
    return out


def _combine(base: Tensor, plus_one: Tensor, op, shifted: bool = False) -> Tensor:
    """Per-axis integer terms (d, ...) -> their ``op``-combination at every corner (2^d, ...).

    ``base[j]`` is axis j's term at bit 0; at bit 1 it is ``plus_one[j]`` (``shifted``) or
    ``base + plus_one`` (dense strides: the caller passes the stride itself)."""
    d = base.shape[0]
    out = torch.stack([base[0], plus_one[0] if shifted else base[0] + plus_one[0]], 0)
    for j in range(1, d):
        pair = torch.stack([base[j], plus_one[j] if shifted else base[j] + plus_one[j]], 0)
        out = op(pair.unsqueeze(1), out.unsqueeze(0)).flatten(0, 1)  # corner = bit_j * 2^j + earlier bits
    return out


def linear_jacobian(weight: Tensor, jac: Tensor) -> Tensor:
    """The Jacobian (N, O, d) of ``Linear(feats)`` from the features' Jacobian (N, K, d), in fp32 even under
    autocast (where einsum would otherwise round it to bf16: a 4e-3 relative error in the PDE loss)."""
    with torch.autocast(jac.device.type, enabled=False):
        dtype = torch.promote_types(jac.dtype, torch.float32)
        return torch.einsum("ok,nkd->nod", weight.to(dtype), jac.to(dtype))
