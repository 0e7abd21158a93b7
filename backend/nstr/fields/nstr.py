"""The NSTR field: ``f(x) = g_phi(h(x))``, ``h_i(x) = S_i(x) sin(w_i . x + b_i [+ P_i(x)])``.

* ``w_i, b_i``: K global frequencies and phases, initialised log-uniformly in
  radius (stratified, so every octave up to the band limit is covered) with
  random directions; learnable at a reduced learning rate, or frozen.
* ``S(x)``: the local spectrum field, pluggable: a multiresolution grid with a
  linear head (``spectrum="grid"``) or a small MLP (``spectrum="mlp"``). Both give
  the exact Jacobian ``dS/dx`` (analytic / forward-mode).
* ``g_phi``: a small MLP on the K modulated bases (its first linear layer is the
  paper's weighted sum), or, as an ablation, on their plain sum (``literal_scalar``).
* ``F_theta(x, S)``: the transport network predicting ``dS/dx``; the PDE loss is
  the mean over points and bases of ``||dS_i/dx - F_theta,i||^2``; its root (``pde_rms``)
  and its ratio to ``||dS/dx||^2`` (``pde_relative``) are logged as the residual.
* ``phase_mod``: the project's extension ``sin(w_i . x + b_i + P_i(x))`` answering the
  review's objection that amplitude modulation cannot move a carrier's frequency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from nstr.config import FieldConfig
from nstr.fields.base import Field, band_window
from nstr.fields.encoding import MultiresGrid, linear_jacobian
from nstr.fields.mlp import MLP


@dataclass
class SpectralState:
    """Everything the spectral-flow quantities are computed from, at N points."""

    S: Tensor  # (N, K) local spectrum
    J: Tensor  # (N, K, d) exact dS/dx
    F: Tensor  # (N, K, d) transport prediction F_theta(x, S)
    freqs: Tensor  # (N, K, d) local angular frequency of each basis


def init_frequencies(K: int, d: int, min_freq: float, max_freq: float,
                     generator: torch.Generator | None = None) -> Tensor:
    """K angular frequencies (K, d): radii stratified log-uniformly in cycles/unit, random directions."""
    u = torch.rand(K, generator=generator)
    lo, hi = math.log(min_freq), math.log(max(max_freq, min_freq * 1.001))
    radii = torch.exp(lo + (torch.arange(K) + u) / K * (hi - lo))
    if d == 1:
        dirs = torch.ones(K, 1)
    else:
        dirs = torch.randn(K, d, generator=generator)
        dirs = dirs / dirs.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return 2 * math.pi * radii.unsqueeze(1) * dirs


class NSTRField(Field):
    is_spectral = True
    default_lr = 1e-2
    adam_eps = 1e-15

    def __init__(self, cfg: FieldConfig, in_dim: int, out_dim: int, max_freq: float, grid_max_res: int) -> None:
        super().__init__(in_dim, out_dim)
        K, d = cfg.n_freqs, in_dim
        self.K, self.phase_mod, self.literal_scalar = K, cfg.phase_mod, cfg.literal_scalar
        self.freq_lr_scale = cfg.freq_lr_scale
        self.omega = nn.Parameter(init_frequencies(K, d, cfg.lowest_freq(), max_freq), requires_grad=cfg.learn_freqs)
        self.phase = nn.Parameter(torch.rand(K) * 2 * math.pi, requires_grad=cfg.learn_freqs)
        channels = 2 * K if cfg.phase_mod else K
        self.spectrum_kind = cfg.spectrum
        if cfg.spectrum == "grid":
            self.grid = MultiresGrid(d, cfg.grid_levels, cfg.grid_features, cfg.grid_base_res, grid_max_res,
                                     cfg.grid_table_size)
            self.head = nn.Linear(self.grid.out_dim, channels)
        else:
            self.spectrum_mlp = MLP(d, channels, cfg.spectrum_width, cfg.spectrum_depth, activation="silu")
            self.head = self.spectrum_mlp.layers[-1]
        # S starts at 1 (every basis present): at initialisation NSTR is a random-Fourier-feature network,
        # and the spectrum field then learns where each basis belongs.
        with torch.no_grad():
            self.head.bias[:K].fill_(1.0)
            if cfg.phase_mod:
                self.head.weight[K:].mul_(0.1)
                self.head.bias[K:].zero_()
        self._band: Tensor | None = None  # coarse-to-fine weights of the bases, by frequency (set_band)
        self.decoder = MLP(1 if cfg.literal_scalar else K, out_dim, cfg.width, cfg.depth, cfg.activation)
        self.transport = MLP(d + K, K * d, cfg.transport_width, cfg.transport_depth, activation="silu")

    # --- the local spectrum S(x) (and the phase field P(x) when phase_mod)
    def _spectrum(self, x: Tensor, with_jacobian: bool) -> tuple[Tensor, Tensor | None]:
        if self.spectrum_kind == "grid":
            feats, jac = self.grid(x, with_jacobian)
            out = self.head(feats)
            if not with_jacobian:
                return out, None
            return out, linear_jacobian(self.head.weight, jac)
        if with_jacobian:
            return self.spectrum_mlp.forward_with_jacobian(x)
        return self.spectrum_mlp(x), None

    def _bases(self, x: Tensor, sp: Tensor) -> Tensor:
        arg = x @ self.omega.t() + self.phase
        if self.phase_mod:
            arg = arg + sp[:, self.K:]
        h = sp[:, :self.K] * torch.sin(arg)
        return h if self._band is None else h * self._band

    def set_band(self, fraction: float) -> None:
        """Only the lowest ``fraction`` of the K frequencies (by radius) on; the rest fade in later."""
        w = band_window(self.K, fraction, self.omega.device)
        if w is not None:
            w = w[torch.argsort(torch.argsort(self.omega.detach().norm(dim=1)))]  # each basis by its rank
        self._band = w

    def _decode(self, h: Tensor) -> Tensor:
        return self.decoder(h.sum(-1, keepdim=True) if self.literal_scalar else h)

    def forward(self, x: Tensor) -> Tensor:
        sp, _ = self._spectrum(x, with_jacobian=False)
        return self._decode(self._bases(x, sp))

    def transport_field(self, x: Tensor, S: Tensor) -> Tensor:
        """F_theta(x, S) as (N, K, d)."""
        return self.transport(torch.cat([x, S], -1)).view(-1, self.K, self.in_dim)

    def training_terms(self, x: Tensor, pde_fraction: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        n_pde = max(1, int(math.ceil(x.shape[0] * pde_fraction)))
        sp_p, jac_p = self._spectrum(x[:n_pde], with_jacobian=True)
        if n_pde < x.shape[0]:
            sp_rest, _ = self._spectrum(x[n_pde:], with_jacobian=False)
            sp = torch.cat([sp_p, sp_rest], 0)
        else:
            sp = sp_p
        y = self._decode(self._bases(x, sp))
        J = jac_p[:, :self.K].float()
        Fp = self.transport_field(x[:n_pde], sp_p[:, :self.K]).float()
        # Mean over points and bases of ||dS_i/dx - F_i||^2, in absolute units (per unit of x).
        # A loss normalised by the current ||J||^2 was tried first: being scale-free, it kept pushing
        # S towards a constant (J -> 0) at any weight, so the absolute form with a small weight is used.
        sq = (J - Fp).pow(2).sum(-1).mean()
        rel = sq.detach() / (J.detach().pow(2).sum(-1).mean() + 1e-12)
        return y, {"pde": sq, "pde_rms": sq.detach().sqrt(), "pde_relative": rel}

    def spectral_state(self, x: Tensor) -> SpectralState:
        sp, jac = self._spectrum(x, with_jacobian=True)
        assert jac is not None
        S, J = sp[:, :self.K], jac[:, :self.K]
        freqs = self.omega.unsqueeze(0).expand(x.shape[0], -1, -1)
        if self.phase_mod:
            freqs = freqs + jac[:, self.K:]
        return SpectralState(S=S, J=J, F=self.transport_field(x, S), freqs=freqs)

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        bases = [p for p in (self.omega, self.phase) if p.requires_grad]
        base_ids = {id(p) for p in bases}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in base_ids]
        groups = [{"params": rest, "lr": lr}]
        if bases:
            groups.append({"params": bases, "lr": lr * self.freq_lr_scale})
        return groups

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        radii = self.omega.detach().norm(dim=1) / (2 * math.pi)
        out.update(K=self.K, spectrum=self.spectrum_kind, phase_mod=self.phase_mod,
                   freq_range_cycles=[float(radii.min()), float(radii.max())],
                   transport_params=sum(p.numel() for p in self.transport.parameters()))
        return out
