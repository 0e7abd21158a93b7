"""Banded NSTR (issue 28, ``field.variant=banded``): quadrature carriers under band-limited envelopes.

    f(x) = base(x) + sum_i u_i Re( c_i(x) exp(i w_i . x) )   [+ bound * tanh(MLP(carriers))]

* ``w_i``: a constant-Q frame of carriers, octaves x directions (:mod:`nstr.fields.carrier_frame`),
  each learnable inside its own cell, or (1-D, 2-D) started at the signal's strongest FFT peak in its cell.
* 3-D (SDF jobs): directions spread over a hemisphere, the carriers inside the detail range only (the base
  holds what is coarser: ``nstr.tasks.sdf.detail_min_freq``), envelopes of ``n^3`` terms, whose values are read
  from one lattice (``band_lattice``; the readout sums the exact series); the base starts as the
  least-squares fit to the SDF task's samples (:meth:`BandedNSTRField.init_from_samples`; built without
  samples, as the distance to a sphere: :func:`sphere_start`), each block learns at lr / sqrt(n^3) and the envelopes at
  ``ENVELOPE_LR_3D`` of that (:meth:`BandedNSTRField.param_groups`); SDF jobs fit the whole distance
  (``nstr.tasks.sdf.WHOLE_DISTANCE_BAND``). ``docs/nstr-banded.md`` has what its readout does and does
  not show there.
* ``c_i(x) = a_i(x) + i b_i(x)``: the complex envelope (a cos and a sin weight: the phase is free, so
  the carrier can also shift its frequency, ``w_i + grad arg c_i``). It lives on the band-limited
  cosine basis (:mod:`nstr.fields.cosine_basis`) with at most ``q |w_i|`` cycles per unit: it can
  modulate its carrier but never carry detail. Carrier i's output therefore lies in the band
  ``|w_i| (1 +- q)``, and the bands tile the spectrum: which carrier holds which frequency is fixed,
  so the readout is identifiable.
* ``base(x)``: a coarse field on the same basis for everything below the lowest band.
* ``u_i``: the carrier's colour (m > 1 outputs only; the envelope is shared by the channels).
* The synthesis is LINEAR in the modulated carriers. An optional bounded nonlinear residual
  (``band_residual_width > 0``) follows; its share of the output's energy is logged as
  ``residual_share``.

The readout comes from one forward pass. Its frequency (``spectral_frequency`` of audio and images) is
the instantaneous frequency of the carriers' analytic signal ``z = sum_i u_i c_i exp(i w_i . x)``
(:meth:`BandedNSTRField.analytic_moments`, windowed by :mod:`nstr.spectral.analytic`), which does not
depend on how the fit shares a tone among carriers. ``spectral_state`` (for
:func:`nstr.spectral.spectral_flow`: the transport terms) keeps the power ``P_i(x) = |c_i(x)|^2 |u_i|^2``
of each carrier and its instantaneous frequency ``w_i + grad arg c_i`` (see :func:`carrier_readout` for
the band powers and the strongest carrier's direction). The transport network (issue 28, design 6) is optional (``band_transport``): ``F_theta(x, S)``
is trained to predict the exact ``dS/dx`` by the PDE term (``train.lambda_pde``), which also shapes S
(``joint``) or not (``detached``: F learns the flow of the fitted S); with ``off`` ``F`` is zero, so the transport diagnostics read "nothing predicted" (gain 1.0) by construction.
"""

from __future__ import annotations

import dataclasses
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from nstr.config import FieldConfig
from nstr.errors import ConfigError
from nstr.fields.base import Field
from nstr.fields.carrier_frame import CarrierFrame, allocate_terms, build_frame, peak_offsets
from nstr.fields.cosine_basis import SampleGrid, axis_terms, build_lattice, cutoff, dct_expand, expand, read_lattice
from nstr.fields.mlp import MLP
from nstr.fields.nstr import SpectralState

_EPS = 1e-12
# 3-D: the envelopes learn at this share of the rate the base and the carriers' shifts learn at (each over
# the square root of its terms, see BandedNSTRField.param_groups). WHY (stop 52; 84k parameters, 300 steps,
# the whole distance): at 1 the bunny read IoU 0.970, at 0.25 0.983, at 0.125 0.985 (classic NSTR 0.982);
# but at 0.0625 the rippled sphere broke (IoU 0.88, F@1% 0.62), so 0.25 keeps a 4x margin. Lowering the
# rate of everything instead (train.lr 1.25e-3) left the base unable to move from its start sphere in 300
# steps: the rippled sphere read IoU 0.50.
ENVELOPE_LR_3D = 0.25
_LSQ_CHUNK = 20_000
BASE_FIT_POINTS = 200_000  # samples the 3-D base's least-squares start reads (64 terms: a 200k x 64 system)


@dataclass
class CarrierState:
    """Each carrier's complex envelope and its gradient at N points (envelope units, before colour)."""

    re: Tensor  # (N, K)
    im: Tensor  # (N, K)
    grad_re: Tensor | None  # (N, K, d)
    grad_im: Tensor | None  # (N, K, d)


class BandedNSTRField(Field):
    is_spectral = True
    default_lr = 1e-2
    adam_eps = 1e-15
    use_sample_grid = True  # False: one cosine per term and point everywhere (the reference; for benchmarks)

    def __init__(self, cfg: FieldConfig, in_dim: int, out_dim: int, max_freq: float) -> None:
        super().__init__(in_dim, out_dim)
        if in_dim not in (1, 2, 3):
            raise ConfigError(f"field.variant=banded fits 1-D to 3-D fields, not {in_dim}-D ones",
                              "Use field.variant=classic")
        if in_dim == 3 and (cfg.band_carriers != "centre" or cfg.band_allocation != "uniform"):
            raise ConfigError("field.band_carriers=peaks and field.band_allocation=spectrum read a signal's FFT on "
                              "its sample grid; a 3-D field (an SDF) has none",
                              "Leave field.band_carriers=centre and field.band_allocation=uniform for 3-D jobs")
        frame = build_frame(in_dim, max_freq, cfg.lowest_freq(), cfg.band_per_octave, cfg.band_directions,
                            cfg.band_overlap, cfg.band_resolution)
        self.frame, self.K, self.freq_lr_scale = frame, frame.count, cfg.freq_lr_scale
        self.carrier_mode, self.allocation = cfg.band_carriers, cfg.band_allocation
        self._size_envelopes(frame.terms)
        self.base = nn.Parameter(torch.zeros(out_dim, *(frame.base_terms,) * in_dim))
        if in_dim == 3:
            with torch.no_grad():
                self.base.copy_(sphere_start(frame.base_terms).expand_as(self.base))
        self.colour = nn.Parameter(torch.ones(self.K, out_dim)) if out_dim > 1 else None
        learn = cfg.learn_freqs
        self.radius_shift = nn.Parameter(torch.zeros(self.K), requires_grad=learn)  # pre-tanh, inside the cell
        # 2-D: an angle; 3-D: a tilt along each of the cell direction's two tangents
        self.angle_shift = nn.Parameter(torch.zeros(self.K) if in_dim < 3 else torch.zeros(self.K, 2),
                                        requires_grad=learn and in_dim > 1)
        self.register_buffer("cell_radius", torch.tensor(frame.radii, dtype=torch.float32), persistent=False)
        self.register_buffer("cell_angle", torch.tensor(frame.angles, dtype=torch.float32), persistent=False)
        if in_dim == 3:
            centre = torch.tensor(frame.directions, dtype=torch.float32)
            ref = torch.where(centre[:, 2:3].abs() < 0.9, torch.tensor([0.0, 0.0, 1.0]), torch.tensor([1.0, 0.0, 0.0]))
            t1 = torch.linalg.cross(centre, ref, dim=-1)
            t1 = t1 / t1.norm(dim=-1, keepdim=True)
            self.register_buffer("cell_frame", torch.stack([centre, t1, torch.linalg.cross(centre, t1, dim=-1)], 1),
                                 persistent=False)
        self.residual = (MLP(self.K, out_dim, cfg.band_residual_width, 1, activation="silu")
                         if cfg.band_residual_width > 0 else None)
        self.residual_bound = cfg.band_residual_bound
        self.lattice = cfg.band_lattice if in_dim == 3 else 0
        self._scoped, self._memo = False, None  # the lattice kept: see one_evaluation
        self.grid: SampleGrid | None = None  # set by init_from_signal
        # design 6: F_theta(x, S) predicting dS/dx, trained by the PDE term (train.lambda_pde); off: F = 0
        self.transport = (MLP(in_dim + self.K, self.K * in_dim, cfg.transport_width, cfg.transport_depth,
                              activation="silu") if cfg.band_transport != "off" else None)
        self.transport_detached = cfg.band_transport == "detached"

    # --- carriers
    @property
    def omega(self) -> Tensor:
        """Carrier angular frequencies (K, d), each inside its cell."""
        half_log = 0.5 * math.log(self.frame.rho)
        radius = self.cell_radius * torch.exp(torch.tanh(self.radius_shift) * half_log)
        if self.in_dim == 1:
            return (2 * math.pi * radius).unsqueeze(1)
        if self.in_dim == 3:  # tilted from the cell's centre by up to its half-angle along each tangent
            tilt = torch.tan(torch.tanh(self.angle_shift) * self.frame.half_angle)       # (K, 2)
            f = self.cell_frame
            v = f[:, 0] + tilt[:, 0:1] * f[:, 1] + tilt[:, 1:2] * f[:, 2]
            return 2 * math.pi * radius.unsqueeze(1) * v / v.norm(dim=-1, keepdim=True)
        angle = self.cell_angle + torch.tanh(self.angle_shift) * self.frame.half_angle
        return 2 * math.pi * radius.unsqueeze(1) * torch.stack([torch.cos(angle), torch.sin(angle)], 1)

    def _size_envelopes(self, terms: tuple[int, ...]) -> None:
        """(Re)build the envelopes, all zero, with ``terms[i]`` terms per axis for carrier i; carriers of one
        size form a group (one batched basis expansion each)."""
        self.frame = dataclasses.replace(self.frame, terms=tuple(terms))
        self.groups: list[tuple[int, list[int]]] = []
        for n in sorted(set(terms)):
            self.groups.append((n, [i for i, t in enumerate(terms) if t == n]))
        self.envelopes = nn.ParameterList(  # re rows, then im rows
            nn.Parameter(torch.zeros(2 * len(idx), *(n,) * self.in_dim)) for n, idx in self.groups)
        self.order = torch.tensor([i for _, idx in self.groups for i in idx])  # group order -> carrier index

    def init_from_signal(self, values: np.ndarray) -> None:
        """Start from the signal's spectrum: ``band_allocation=spectrum`` re-spends the envelopes' parameters
        (the same total) where the signal's power is and puts each carrier in the middle of what it holds
        (:func:`allocate_terms`; it supersedes ``band_carriers``); else ``band_carriers=peaks`` moves each
        carrier to the strongest FFT bin in its cell."""
        if self.allocation == "spectrum":
            terms, d_log, d_ang = allocate_terms(self.frame, values, sum(2 * n**self.in_dim for n in self.frame.terms))
            self._size_envelopes(terms)
            self._move_carriers(d_log, d_ang)
        elif self.carrier_mode == "peaks":
            self._move_carriers(*peak_offsets(self.frame, values))
        # the training points are this grid's samples: evaluate the basis there without a cosine per term
        n_max = max(max(self.frame.terms), self.frame.base_terms)
        usable = self.use_sample_grid and not (self.in_dim == 1 and n_max > 2 * values.shape[0])  # DCT: n <= 2M
        self.grid = SampleGrid(values.shape[:-1], n_max) if usable else None

    def init_from_samples(self, points: Tensor, values: Tensor, max_points: int = BASE_FIT_POINTS) -> None:
        """3-D: the base starts as the least-squares fit of its ``n^3`` cosine terms to the samples (the
        envelopes are zero at the start, so the field starts as the best coarse distance it can hold).
        WHY: from the sphere start (radius 0.5) the base, which learns at lr / sqrt(n^3), could not reach a
        sphere of radius 0.8 with 6 directions and 16 cycles per unit in 300 steps (the rippled sphere:
        IoU 0.738; started by least squares 0.985). Up to ``max_points`` samples, evenly strided (the
        task's samples come in parts: on the surface, near it, uniform), solved in float64 on the CPU."""
        if self.in_dim != 3:
            return
        pick = torch.linspace(0, len(points) - 1, min(len(points), max_points), device=points.device).long()
        x = points[pick].detach().to("cpu", torch.float64)
        y = values[pick].detach().to("cpu", torch.float64).reshape(len(x), -1)
        n = self.base.shape[-1]
        gram = torch.zeros(n**3, n**3, dtype=torch.float64)
        rhs = torch.zeros(n**3, y.shape[1], dtype=torch.float64)
        for i in range(0, len(x), _LSQ_CHUNK):  # the normal equations a chunk at a time: a 13^3-term base's
            v, _ = axis_terms(x[i:i + _LSQ_CHUNK], n, False)   # whole design would be 200k x 2197 (3.5 GB)
            design = torch.einsum("ni,nj,nk->nijk", v[:, 0], v[:, 1], v[:, 2]).reshape(len(v), n**3)
            gram += design.t() @ design
            rhs += design.t() @ y[i:i + _LSQ_CHUNK]
        gram += 1e-9 * gram.diagonal().mean() * torch.eye(n**3, dtype=torch.float64)  # a tie-break, not a prior
        coef = torch.linalg.solve(gram, rhs)  # (n^3, C)
        if coef.shape[1] == 1:
            coef = coef.expand(-1, self.out_dim)
        with torch.no_grad():
            self.base.copy_(coef.t().reshape(self.base.shape).to(self.base))

    def _move_carriers(self, d_log: np.ndarray, d_ang: np.ndarray) -> None:
        """Put each carrier at (log-radius, angle) offsets from its cell centre."""
        half_log = 0.5 * math.log(self.frame.rho)
        with torch.no_grad():
            self.radius_shift.copy_(torch.atanh(torch.as_tensor(d_log / half_log, dtype=torch.float32).clamp(-0.99, 0.99)))
            if self.in_dim > 1:
                ratio = torch.as_tensor(d_ang / self.frame.half_angle, dtype=torch.float32).clamp(-0.99, 0.99)
                self.angle_shift.copy_(torch.atanh(ratio))

    # --- envelopes
    def _expansions(self, x: Tensor, blocks: list[Tensor], with_gradient: bool) -> tuple[Tensor, Tensor | None]:
        """Coefficient blocks (``(G_j, n_j, ...)``) evaluated at ``x``, their columns side by side:
        ``(N, sum G_j)`` and, with ``with_gradient``, ``(N, sum G_j, d)``. On the sample grid 1-D takes
        one DCT for all blocks and 2-D two matrix products per block on the whole grid; elsewhere one
        cosine per term (3-D values with ``band_lattice`` come from one lattice instead: :meth:`_values`)."""
        j = self.grid.indices(x) if self.grid is not None else None
        if j is not None and self.in_dim == 1:  # the rows zero-padded to one length, one transform
            n = max(b.shape[-1] for b in blocks)
            rows = torch.cat([nn.functional.pad(b, (0, n - b.shape[-1])) for b in blocks])
            return dct_expand(rows, j[:, 0], self.grid.sizes[0], with_gradient)
        if j is not None and self.in_dim == 2:
            return self.grid.expand_2d(blocks, j, with_gradient, x.dtype)
        n_max = max(b.shape[-1] for b in blocks)
        values, derivs = (self.grid.axis_terms(j, n_max, with_gradient, x.dtype) if j is not None
                          else axis_terms(x, n_max, with_gradient))
        parts = [expand(c, values[..., :c.shape[-1]], None if derivs is None else derivs[..., :c.shape[-1]])
                 for c in blocks]
        return (torch.cat([p[0] for p in parts], 1),
                torch.cat([p[1] for p in parts], 1) if with_gradient else None)  # type: ignore[misc]

    def _blocks(self) -> list[Tensor]:
        """The coefficient blocks in the order :meth:`_values` returns their columns: every group's real
        parts, then every group's imaginary parts, then the base."""
        sizes = [len(idx) for _, idx in self.groups]
        return ([e[:g] for e, g in zip(self.envelopes, sizes)] + [e[g:] for e, g in zip(self.envelopes, sizes)]
                + [self.base])

    def _values(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The envelopes' real and imaginary parts (N, K) in group order (carrier ``self.order[j]`` in
        column j: the synthesis sums them, so no column shuffle) and the base (N, m), from one evaluation.
        3-D with ``band_lattice``: one read of one lattice (see :meth:`one_evaluation`)."""
        if not self.lattice:
            columns, _ = self._expansions(x, self._blocks(), False)
        else:
            key = (torch.is_grad_enabled(), *((p.data_ptr(), p.dtype, p._version) for p in (*self.envelopes, self.base)))
            if self._memo is not None and self._memo[0] == key:
                lattice = self._memo[1]
            else:
                lattice = build_lattice(self._blocks(), self.lattice)
                if self._scoped or not key[0]:  # see one_evaluation; without a graph, until the parameters change
                    self._memo = (key, lattice)
            columns = read_lattice(lattice, x)
        return columns[:, :self.K], columns[:, self.K:2 * self.K], columns[:, 2 * self.K:]

    def carrier_state(self, x: Tensor, with_gradient: bool) -> CarrierState:
        """Every carrier's envelope (and its gradient), in carrier order."""
        inverse = torch.argsort(self.order.to(x.device))
        if not with_gradient:
            re, im, _ = self._values(x)
            return CarrierState(re[:, inverse], im[:, inverse], None, None)
        blocks = self._blocks()[:-1]
        out, grad = self._expansions(x, blocks, True)
        assert grad is not None
        K = self.K
        return CarrierState(out[:, :K][:, inverse], out[:, K:][:, inverse], grad[:, :K][:, inverse],
                            grad[:, K:][:, inverse])

    @contextmanager  # type: ignore[override]
    def one_evaluation(self) -> Iterator[None]:
        """Share the lattice between the forward passes of one loss (the SDF task's values and its
        finite-difference gradient), inside which the parameters cannot change. Outside it a lattice is
        kept only where no gradient is recorded (marching cubes reads the field in many chunks)."""
        self._scoped, self._memo = True, None
        try:
            yield
        finally:
            self._scoped, self._memo = False, None

    def _colour_norm2(self) -> Tensor:
        return torch.ones(self.K) if self.colour is None else self.colour.pow(2).sum(1)

    def _synthesis(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """The output and (with a residual) the residual's part of it."""
        re, im, base = self._values(x)  # the carriers in group order: their sum does not care
        order = self.order.to(x.device)
        omega, colour = self.omega[order], None if self.colour is None else self.colour[order]
        theta = x @ omega.t()
        carriers = re * torch.cos(theta) - im * torch.sin(theta)  # Re(c e^{i theta}), (N, K)
        linear = base + (carriers.sum(-1, keepdim=True) if colour is None else carriers @ colour)
        if self.residual is None:
            return linear, None
        r = self.residual_bound * torch.tanh(self.residual(carriers[:, torch.argsort(order)]))
        return linear + r, r

    def forward(self, x: Tensor) -> Tensor:
        return self._synthesis(x)[0]

    def training_terms(self, x: Tensor, pde_fraction: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        y, r = self._synthesis(x)
        terms: dict[str, Tensor] = {}
        if r is not None:
            terms["residual_share"] = r.detach().pow(2).sum() / (y.detach().pow(2).sum() + _EPS)
        if self.transport is not None:
            # the same absolute-units PDE term as classic NSTR, on the first pde_fraction of the batch
            xp = x[:max(1, int(math.ceil(x.shape[0] * pde_fraction)))]
            power, dpower, _ = self._power(xp)
            if self.transport_detached:  # F learns the flow of a fixed S; the flow never shapes S
                power, dpower = power.detach(), dpower.detach()
            sq = (dpower - self.transport_field(xp, power)).pow(2).sum(-1).mean()
            rel = sq.detach() / (dpower.detach().pow(2).sum(-1).mean() + _EPS)
            terms.update(pde=sq, pde_rms=sq.detach().sqrt(), pde_relative=rel)
        return y, terms

    def transport_field(self, x: Tensor, S: Tensor) -> Tensor:
        """F_theta(x, S) as (N, K, d); zero with ``band_transport=off``."""
        if self.transport is None:
            return torch.zeros(*S.shape, self.in_dim, dtype=S.dtype, device=S.device)
        return self.transport(torch.cat([x, S], -1)).view(-1, self.K, self.in_dim)

    # --- the readout
    def _power(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per carrier the power S = |c|^2 |u|^2 (N, K), its exact gradient dS/dx (N, K, d) and the phase
        gradient grad arg c (N, K, d)."""
        cs = self.carrier_state(x, with_gradient=True)
        assert cs.grad_re is not None and cs.grad_im is not None
        scale = self._colour_norm2().to(x.device)
        mag2 = cs.re.pow(2) + cs.im.pow(2)
        dpower = 2 * (cs.re.unsqueeze(-1) * cs.grad_re + cs.im.unsqueeze(-1) * cs.grad_im) * scale[:, None]
        dphase = (cs.re.unsqueeze(-1) * cs.grad_im - cs.im.unsqueeze(-1) * cs.grad_re) / (mag2.unsqueeze(-1) + _EPS)
        return mag2 * scale, dpower, dphase

    def spectral_state(self, x: Tensor) -> SpectralState:
        """S = carrier power, freqs = instantaneous frequency, J = dS/dx (exact), F = F_theta(x, S) (zero
        with ``band_transport=off``)."""
        power, dpower, dphase = self._power(x)
        freqs = self.omega.unsqueeze(0) + dphase
        return SpectralState(S=power, J=dpower, F=self.transport_field(x, power), freqs=freqs)

    def analytic_moments(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(Im(z' conj z) (N, d), |z|^2 (N,))`` of the carriers' sum ``z = sum_i u_i c_i exp(i w_i . x)``,
        summed over the colour channels: their ratio is z's instantaneous frequency (radians per unit).

        Each term is analytic (its envelope is narrower than its carrier), so z is the analytic signal of
        the carriers' output and its frequency does not depend on how the fit shares a tone among
        carriers: the power-weighted centroid of the carriers' own frequencies read a tone that jumps from
        500 to 2000 Hz at 0.48 of its contrast, where the fit at the band limit put 11 % of the 500 Hz
        tone's power in two carriers near 4 kHz whose outputs cancel. In 2-D the carriers cover a half-plane
        of directions; a carrier pointing away from the point's strongest one enters as its conjugate
        (the same real output), so z stays on one side. Where two components beat, the ratio of the
        moments averaged over a window is their power-weighted mean frequency
        (:func:`nstr.spectral.analytic.analytic_frequency`)."""
        cs = self.carrier_state(x, with_gradient=True)
        assert cs.grad_re is not None and cs.grad_im is not None
        theta = x @ self.omega.t()
        cos, sin = torch.cos(theta), torch.sin(theta)
        tr, ti = cs.re * cos - cs.im * sin, cs.re * sin + cs.im * cos          # c e^{i theta}
        w = self.omega
        dr = cs.grad_re * cos[..., None] - cs.grad_im * sin[..., None] - w[None] * ti[..., None]
        di = cs.grad_re * sin[..., None] + cs.grad_im * cos[..., None] + w[None] * tr[..., None]
        if self.in_dim > 1:
            strongest = w[(cs.re.pow(2) + cs.im.pow(2)).argmax(1)]            # (N, d)
            sign = torch.where(strongest @ w.t() < 0, -1.0, 1.0)
            ti, di = ti * sign, di * sign[..., None]
        colour = torch.ones(self.K, 1, device=x.device) if self.colour is None else self.colour
        zr, zi = tr @ colour, ti @ colour                                     # (N, m)
        dzr, dzi = torch.einsum("nkd,km->nmd", dr, colour), torch.einsum("nkd,km->nmd", di, colour)
        num = (zr[..., None] * dzi - zi[..., None] * dzr).sum(1)
        return num, (zr.pow(2) + zi.pow(2)).sum(1)

    def envelope_cutoffs(self) -> list[float]:
        """Per carrier, the highest frequency (cycles per unit, per axis) its envelope can hold."""
        return [cutoff(n) for n in self.frame.terms]

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """The carriers' shifts at ``freq_lr_scale`` x lr. In 3-D each envelope (and the base) at lr over the
        square root of its terms: the training points are scattered, and Adam moves every one of an
        envelope's ``n^3`` coefficients by about lr at once, so the envelope's value moved by up to lr x
        n^3 per step. At lr 1e-2 (and at 1e-4) the 3-D fits diverged (L1 on a sphere's distance: 0.47 ->
        1.8 in 20 steps); scaled, the same fit fell to 0.05 in 300 steps (lr / n^3: 0.23). The envelopes
        then learn at ``ENVELOPE_LR_3D`` of that, the base at all of it (the figures are beside the constant)."""
        shifts = [p for p in (self.radius_shift, self.angle_shift) if p.requires_grad]
        ids = {id(p) for p in shifts}
        groups: list[dict[str, Any]] = []
        if self.in_dim == 3:
            for (n, _), p in zip(self.groups, self.envelopes):
                groups.append({"params": [p], "lr": ENVELOPE_LR_3D * lr / math.sqrt(n**3)})
            groups.append({"params": [self.base], "lr": lr / math.sqrt(self.frame.base_terms**3)})
            ids |= {id(g["params"][0]) for g in groups}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        groups.insert(0, {"params": rest, "lr": lr})
        if shifts:
            groups.append({"params": shifts, "lr": lr * self.freq_lr_scale})
        return groups

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        f = self.frame
        out.update(K=self.K, variant="banded", carriers=self.carrier_mode, q=round(f.q, 4),
                   octave_radii=sorted(set(round(r, 3) for r in f.radii), reverse=True),
                   directions=f.direction_count, envelope_terms=sorted(set(f.terms), reverse=True),
                   envelope_terms_at_band_limit=sorted(set(f.cap_terms), reverse=True), base_terms=f.base_terms,
                   residual=self.residual is not None, allocation=self.allocation,
                   transport=self.transport is not None)
        return out


def sphere_start(terms: int, radius: float = 0.5, samples: int = 32) -> Tensor:
    """The base's coefficients (``terms`` per axis, x first) of the distance to a sphere, ``|x| - radius``,
    projected on the cosine basis: a 3-D banded field starts as a distance, as SAL-style geometric
    initialisation starts an MLP. WHY: from all-zero coefficients the gradient is zero, and the SDF task's
    normal alignment ``1 - cos(grad f, n)`` has a gradient that grows as ``1 / |grad f|``: it drove the
    fit (a chirp slab, 100 steps: L1 1.09 -> 1.45, signs 0.58 right; without that term 0.35 -> 0.04)."""
    import scipy.fft

    mid = (np.arange(samples) + 0.5) / samples * 2 - 1
    x, y, z = np.meshgrid(mid, mid, mid, indexing="ij")
    spec = scipy.fft.dctn(np.sqrt(x**2 + y**2 + z**2) - radius, type=2) / samples**3
    for axis in range(3):   # DCT-II gives M a_k per axis and 2M a_0
        spec[(slice(None),) * axis + (0,)] /= 2
    return torch.as_tensor(spec[:terms, :terms, :terms], dtype=torch.float32)


def carrier_readout(field: BandedNSTRField, x: Tensor, min_radius: float = 0.0) -> dict[str, Tensor]:
    """The readout in one forward pass: per point, the carriers' powers (N, K), the power-weighted
    instantaneous frequency ``frequency`` (cycles per unit) and its ``wavelength``, and the unit
    ``direction`` (N, d) of the strongest carrier's instantaneous frequency. ``min_radius`` keeps only the
    carriers whose cells lie at or above it (cycles per unit): an SDF's coarse octaves hold the shape's
    own residual, not its detail (docs/nstr-banded.md, stop 53)."""
    with torch.no_grad():
        st = field.spectral_state(x)
    keep = (field.cell_radius >= min_radius - 1e-6).to(st.S)
    radius = st.freqs.norm(dim=-1) / (2 * math.pi)
    power = st.S * keep
    total = power.sum(-1) + _EPS
    nu = (power * radius).sum(-1) / total
    top = power.argmax(-1)
    vec = st.freqs[torch.arange(x.shape[0]), top]
    return {"power": power, "frequency": nu, "wavelength": 1.0 / nu.clamp_min(_EPS),
            "direction": vec / vec.norm(dim=-1, keepdim=True).clamp_min(_EPS)}
