"""A strictly band-limited smooth basis on ``[-1, 1]^d``: tensor products of ``cos(pi k (x + 1) / 2)``.

Term ``k`` oscillates at ``k / 4`` cycles per unit, so ``n`` terms per axis hold no frequency above
``(n - 1) / 4`` cycles per unit along any axis. Sampled at the midpoints of ``M`` equal cells the terms
are exactly the DCT-II basis, which gives the band limit a known-answer test (the DCT of a sampled
function is zero above index ``n - 1``). Unlike a Fourier series the even extension has no wrap-around
constraint (the value at ``x = -1`` is free of the value at ``x = 1``), and unlike a linearly
interpolated grid it has no spectral images above its cut-off: a banded NSTR envelope built on it
can modulate its carrier but never carry detail of its own. (In 3-D the field reads its envelopes from a
lattice that samples the series at twice its Nyquist rate, :func:`build_lattice`: a bounded, measured
leak, at most 0.56 % of a random envelope's energy.)
"""

from __future__ import annotations

import math
import warnings

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


def lattice_size(n_terms: int, oversample: int) -> int:
    """Lattice points per axis over [-1, 1] that sample ``n_terms`` terms at ``oversample`` times their
    Nyquist rate: the highest term's frequency times the spacing is ``1 / (2 oversample)``."""
    return max(2, oversample * (n_terms - 1) + 1)


def build_lattice(blocks: list[Tensor], oversample: int) -> Tensor:
    """3-D coefficient blocks (``(G_j, n_j, n_j, n_j)``, x first) summed on one lattice over [-1, 1]^3 of
    :func:`lattice_size` points per axis for the largest ``n_j``: ``(L^3, sum G_j)``, x-major rows, the
    blocks' columns side by side. Three matrix products per block, whatever the batch;
    :func:`read_lattice` reads it at points.

    WHY: the exact sum costs ``n^3`` multiply-adds per envelope and point, as many as the envelope has
    coefficients, so a banded SDF step at 84k parameters took 11-13x a classic NSTR step. From the lattice
    a point costs eight reads per envelope. The lattice samples each series above its Nyquist rate, so the
    trilinear read is the series with each axis's cosines replaced by their piecewise-linear interpolants:
    a fixed smoothing of the top frequencies, and images far above the band (``docs/nstr-banded.md`` has
    the measured figures). One lattice for all blocks: one read (one sparse product) per batch."""
    size = lattice_size(max(b.shape[-1] for b in blocks), oversample)
    t = torch.linspace(-1.0, 1.0, size, dtype=torch.float64, device=blocks[0].device)
    columns = []
    for coeffs in blocks:
        g, n = coeffs.shape[0], coeffs.shape[-1]
        table = axis_terms(t[:, None], n, False)[0][:, 0].to(coeffs.dtype)                # (L, n)
        # z, then y, then x, each one matrix product whose output is already in the next one's layout
        along_z = torch.matmul(table, coeffs.permute(1, 2, 3, 0).reshape(n * n, n, g))    # (n n, L, G): k l c g
        along_y = torch.matmul(table, along_z.reshape(n, n, size * g))                    # (n, L, L G): k b c g
        columns.append((table @ along_y.reshape(n, size * size * g)).reshape(size**3, g))  # rows a b c
    return torch.cat(columns, 1)


_CORNERS = ((0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1), (1, 0, 0), (1, 0, 1), (1, 1, 0), (1, 1, 1))


def read_lattice(lattice: Tensor, x: Tensor) -> Tensor:
    """Rows ``(N, C)`` of a :func:`build_lattice` lattice ``(L^3, C)`` mixed trilinearly at ``x`` (N, 3),
    clamped to [-1, 1]. Differentiable in the lattice, and in ``x`` to any order.

    WHY a sparse matrix: as a gather, a multiply by the weights and a sum, one 10k-point batch of 129
    columns took 50-120 ms forward and back on 2 CPU threads; as a CSR matrix of eight weights per row,
    18 ms. Where ``x`` itself needs a gradient (a double backward) the gather is used."""
    size = round(lattice.shape[0] ** (1 / 3))
    u = (x.clamp(-1.0, 1.0) + 1.0) * (0.5 * (size - 1))
    corner = u.detach().floor().clamp(max=size - 2)
    frac = u - corner
    corner = corner.long()
    offsets = torch.tensor(_CORNERS, device=x.device)                                  # (8, 3)
    ijk = corner[:, None, :] + offsets[None]                                          # (N, 8, 3)
    rows = (ijk[..., 0] * size + ijk[..., 1]) * size + ijk[..., 2]
    w = torch.where(offsets[None].bool(), frac[:, None, :], 1.0 - frac[:, None, :]).prod(-1)   # (N, 8)
    n = x.shape[0]
    if not w.requires_grad:
        crow = torch.arange(0, 8 * n + 1, 8, device=x.device)
        with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta": the product is what we use
            warnings.simplefilter("ignore", UserWarning)
            weights = torch.sparse_csr_tensor(crow, rows.reshape(-1), w.reshape(-1).to(lattice.dtype),
                                              size=(n, lattice.shape[0]))
        return weights @ lattice
    picked = lattice.index_select(0, rows.reshape(-1)).view(n, 8, lattice.shape[1])
    return (picked * w[..., None]).sum(1)


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

    def expand_2d(self, blocks: list[Tensor], j: Tensor, with_gradient: bool, dtype: torch.dtype
                  ) -> tuple[Tensor, Tensor | None]:
        """2-D :func:`expand` of several blocks (``(G, n, n)``, x first) at grid points ``j`` (from
        :meth:`indices`), their columns side by side: each block on the WHOLE grid as ``Tx C Ty^T`` (two
        matrix products), then the batch's pixels picked. WHY: per point a block costs ``n^2`` multiply-adds;
        on the grid ``n`` per pixel and axis, so where the batch is a good share of the image (a 64 x 64
        image, batches of 4,096) it is several times cheaper, and one call per block replaces a per-point
        contraction."""
        (tx, dx), (ty, dy) = self.tables
        pick = j[:, 0] * self.sizes[1] + j[:, 1]
        outs, grads = [], []
        for c in blocks:
            n = c.shape[-1]
            vx, vy = tx[:, 0, :n].to(dtype), ty[:, 0, :n].to(dtype)
            along_x = torch.matmul(vx, c)                                   # (G, Mx, n)
            outs.append((along_x @ vy.t()).flatten(1).index_select(1, pick).t())
            if with_gradient:
                gx = (torch.matmul(dx[:, 0, :n].to(dtype), c) @ vy.t()).flatten(1).index_select(1, pick).t()
                gy = (along_x @ dy[:, 0, :n].to(dtype).t()).flatten(1).index_select(1, pick).t()
                grads.append(torch.stack([gx, gy], -1))
        return torch.cat(outs, 1), (torch.cat(grads, 1) if with_gradient else None)

    def axis_terms(self, j: Tensor, n_terms: int, with_derivative: bool, dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
        """:func:`axis_terms` at grid points ``j`` (from :meth:`indices`), read from the tables."""
        values = torch.stack([t[0][j[:, a], 0, :n_terms] for a, t in enumerate(self.tables)], 1).to(dtype)
        if not with_derivative:
            return values, None
        return values, torch.stack([t[1][j[:, a], 0, :n_terms] for a, t in enumerate(self.tables)], 1).to(dtype)


def dct_expand(coeffs: Tensor, j: Tensor, size: int, with_gradient: bool) -> tuple[Tensor, Tensor | None]:
    """1-D :func:`expand` at the grid samples ``j`` (N,) of a ``size``-sample clip that spans [-1, 1]: the
    series on the whole grid is a DCT-III (one real inverse FFT of length ``2 size``), then the rows are
    picked. ``coeffs`` (G, n) with n <= 2 size. Returns (N, G) and, with ``with_gradient``, (N, G, 1).

    The series is ``Re sum_k y_k e^{i pi k (2j + 1) / 2M}`` with ``y_k = c_k e^{i pi k / 2M}``, the real part
    of an inverse DFT of length 2M: for ``n <= M`` a real inverse FFT of the half spectrum gives it directly
    (its DC term counted once, hence ``y_0`` doubled), half the work of the complex one (WHY: on the speech
    clip the complex FFTs were 44 % of a banded step at the frame's cap)."""
    n = coeffs.shape[-1]
    k = torch.arange(n, device=coeffs.device, dtype=coeffs.dtype)
    twist = torch.polar(torch.ones_like(k), (0.5 * math.pi / size) * k)  # e^{i pi k / 2M}
    if n > size:  # terms at or past the half spectrum: the complex inverse FFT
        series = (torch.fft.ifft(coeffs * twist, n=2 * size) * (2 * size)).real
        dseries = None if not with_gradient else (torch.fft.ifft(coeffs * k * twist, n=2 * size) * (2 * size)).imag
    else:
        dc = torch.ones_like(k)
        dc[0] = 2.0
        series = torch.fft.irfft(coeffs * (twist * dc), n=2 * size) * size
        # Im(sum_k k y_k e^{...}) = Re(sum_k (-i k y_k) e^{...}); its k = 0 term is zero
        dseries = None if not with_gradient else torch.fft.irfft(coeffs * (k * twist * -1j), n=2 * size) * size
    out = series.index_select(1, j).t()   # the batch's columns of the (G, 2M) rows, without a transposed copy
    if dseries is None:
        return out, None
    return out, (-(0.5 * math.pi) * dseries.index_select(1, j).t()).unsqueeze(-1)
