"""The SDF radiance field (NeuS): a signed distance from a field built by ``nstr.fields.build_field``,
opacity from that distance through a learned sharpness ``s``, colour from position, normal, view
direction and the SDF network's features.

The field is built with ``out_dim = 1 + n_features``: output 0 is the SDF residual, the rest are the
features the colour head reads. Any model (NSTR, hash grid, SIREN, Fourier features) fits the slot.

Sphere init. The SDF is ``residual_scale * field(x)[0] + |x| - init_radius``, with the scale set once
at construction so that the model's initial output bends the sphere by at most 2% RMS (1 for the hash
grid, whose output starts near 0; measured: a fixed 0.1 left the 64 px cube pillow-shaped after 600
steps): at the start every model is (nearly) a sphere's SDF, whatever its own initialisation, so the first renders are a closed
surface the views can carve, not fog. (NeuS's geometric init does the same for one MLP; the additive
prior works for grids and sinusoids too.)

Sharpness. ``s = max(exp(10 v), floor)``: ``v`` is learned (NeuS's variance), ``floor`` grows
geometrically over the first part of training (``set_sharpness_floor``): coarse to fine, the surface
starts soft (gradients reach far from it while the shape is wrong) and is made sharp on a schedule.
Learned alone, ``s`` rises too slowly for a CPU budget (measured on the 64 px cube: s = 56 after 400
steps, the surface then sits 1.5% of the box outside the true one).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nstr.config import FieldConfig
from nstr.fields import build_field
from nstr.nerf.capture_modules import capture_groups
from nstr.fields.base import Field
from nstr.fields.mlp import MLP
from nstr.nerf.radiance import SH_DIM, sh_encode
from nstr.nerf.sdf_grid import SdfGrid


COLOR_FIELDS = ("shared", "separate")
SHADINGS = ("free", "lit")
LIGHT_SH = 9  # degree-2 spherical harmonics: a diffuse irradiance is within 1% of its degree-2 projection
# The colour features' own grid ("separate"): 6 levels from 8 to 128 cells, 2^11 entries each (~24k
# parameters), small next to the geometry field so that the geometry comparison stays about the SDF.
COLOR_GRID = FieldConfig(model="hashgrid", grid_levels=6, grid_features=2, grid_base_res=8, grid_max_res=128,
                         grid_table_size=2**11, width=32, depth=1)


class SDFRadianceField(Field):
    """SDF + view-dependent colour on ``[-1, 1]^3``; carries its cached SDF grid as buffers."""

    geometry = "sdf"

    def __init__(self, cfg: FieldConfig, n_features: int = 15, head_width: int = 64, head_depth: int = 2,
                 grid_resolution: int = 32, init_radius: float = 0.6, init_sharpness: float = 20.0,
                 max_init_deviation: float = 0.02, color_field: str = "shared", shading: str = "free") -> None:
        super().__init__(3, 4)
        if color_field not in COLOR_FIELDS:
            raise ValueError(f"color_field must be one of {COLOR_FIELDS}, not {color_field!r}")
        if shading not in SHADINGS:
            raise ValueError(f"shading must be one of {SHADINGS}, not {shading!r}")
        separate = color_field == "separate"
        self.field = build_field(cfg, in_dim=3, out_dim=1 if separate else 1 + n_features)
        # "separate": the colour head's features come from their own small hash grid, so the colour loss
        # reaches the geometry only through normals and opacity; a texture cannot be explained by bumps
        self.color_net = build_field(COLOR_GRID, in_dim=3, out_dim=n_features) if separate else None
        self.config = self.field.config
        # "free": colour = head(x, n, SH(view), features), the NeuS head. "lit": colour = albedo(x, SH(view),
        # features) x irradiance(n), the irradiance one global degree-2 SH lighting shared by every point:
        # the normal can then only shade, never encode a texture (with "free" a checker texture came back as
        # grooves in the geometry, the normals spelling out the colour)
        self.shading = shading
        normal_in = 3 if shading == "free" else 0
        self.color_head = MLP(3 + normal_in + SH_DIM + n_features, 3, head_width, head_depth, activation="relu")
        self.light = nn.Linear(LIGHT_SH, 3) if shading == "lit" else None
        if self.light is not None:  # start as a uniform irradiance of 1: softplus(0.5413) = 1
            nn.init.zeros_(self.light.weight)
            nn.init.constant_(self.light.bias, math.log(math.e - 1.0))
        # NeuS's variance: s = exp(10 v); the factor lets s move over decades at the field's learning rate
        self.variance = nn.Parameter(torch.tensor(math.log(init_sharpness) / 10.0))
        self.register_buffer("sharpness_floor", torch.tensor(float(init_sharpness)))
        self.grid = SdfGrid(grid_resolution)
        self.init_radius = init_radius
        self.residual_scale = 1.0
        self.residual_scale = self._initial_scale(max_init_deviation)
        self.is_spectral = self.field.is_spectral
        self.default_lr = self.field.default_lr
        self.adam_eps = self.field.adam_eps

    @torch.no_grad()
    def _initial_scale(self, max_deviation: float) -> float:
        """1, or less where the model's own initial output would bend the sphere by more than
        ``max_deviation`` (RMS over the cube): SIREN and NSTR start with O(0.1-1) outputs, the hash
        grid with ~0. A smaller scale slows the SDF's learning, so it is never below what is needed."""
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(4096, 3, generator=gen) * 2 - 1
        rms = float(self.field(x)[:, 0].float().pow(2).mean().sqrt())
        return min(1.0, max_deviation / max(rms, 1e-12))

    # -------------------------------------------------------------------------------- geometry

    def _raw(self, x: Tensor, pde_fraction: float | None) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        if pde_fraction is None:
            out, terms = self.field(x), {}
        else:
            out, terms = self.field.training_terms(x, pde_fraction)
        out = out.float()
        sdf = self.residual_scale * out[:, 0] + x.norm(dim=-1) - self.init_radius
        feat = out[:, 1:] if self.color_net is None else self.color_net(x.detach()).float()
        return sdf, feat, terms

    def sdf(self, x: Tensor) -> Tensor:
        """Signed distance (N,) in field units at field-space points (N, 3); negative inside."""
        return self._raw(x, None)[0]

    def sdf_and_gradient(self, x: Tensor, create_graph: bool = False, pde_fraction: float | None = None
                         ) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """SDF (N,), its gradient (N, 3), features (N, F) and the field's training terms.

        ``create_graph`` keeps the gradient differentiable (training: the eikonal term and the normals
        the colour head reads); works under ``torch.no_grad`` too (rendering needs normals).
        """
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            sdf, feat, terms = self._raw(xg, pde_fraction)
            (grad,) = torch.autograd.grad(sdf, xg, torch.ones_like(sdf), create_graph=create_graph)
        if not create_graph:
            sdf, feat, grad = sdf.detach(), feat.detach(), grad.detach()
        return sdf, grad, feat, terms

    @property
    def sharpness(self) -> Tensor:
        """``s`` (a 0-d tensor): the inverse width of the logistic that turns distance into opacity."""
        return torch.maximum(torch.exp(10.0 * self.variance), self.sharpness_floor)

    def set_sharpness_floor(self, value: float) -> None:
        self.sharpness_floor.fill_(value)  # host float -> device buffer: no sync

    def set_band(self, fraction: float) -> None:
        """Coarse to fine for the SDF network (``Field.set_band``); the colour network keeps every scale."""
        self.field.set_band(fraction)

    # -------------------------------------------------------------------------------- colour

    def color(self, x: Tensor, normals: Tensor, dirs: Tensor, features: Tensor) -> Tensor:
        """Outgoing radiance (N, 3) at surface points seen along ``dirs``."""
        n = F.normalize(normals, dim=-1)
        if self.light is None:
            return torch.sigmoid(self.color_head(torch.cat([x, n, sh_encode(dirs), features], -1)))
        albedo = torch.sigmoid(self.color_head(torch.cat([x, sh_encode(dirs), features], -1)))
        return albedo * F.softplus(self.light(sh_encode(n)[:, :LIGHT_SH]))

    def albedo(self, x: Tensor, normals: Tensor, features: Tensor) -> Tensor:
        """The colour baked onto the mesh (N, 3): "lit", the albedo without the light; "free", the colour
        seen head-on (looking along the inward normal)."""
        n = F.normalize(normals, dim=-1)
        if self.light is None:
            return self.color(x, n, -n, features)
        return torch.sigmoid(self.color_head(torch.cat([x, sh_encode(-n), features], -1)))

    def forward(self, x: Tensor, dirs: Tensor | None = None) -> Tensor:  # type: ignore[override]
        """(N, 4) = sdf, r, g, b; without ``dirs``, the albedo (``albedo``)."""
        sdf, grad, feat, _ = self.sdf_and_gradient(x)
        rgb = self.albedo(x, grad, feat) if dirs is None else self.color(x, grad, dirs, feat)
        return torch.cat([sdf[:, None], rgb], -1)

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        head = list(self.color_head.parameters()) + ([] if self.light is None else list(self.light.parameters()))
        groups = self.field.param_groups(lr) + [{"params": head, "lr": lr}, {"params": [self.variance], "lr": lr}]
        if self.color_net is not None:  # at its own learning rate, scaled as the field's is
            groups += self.color_net.param_groups(lr * self.color_net.default_lr / self.field.default_lr)
        return groups + capture_groups(self, lr)

    @property
    def field_params(self) -> int:
        return self.field.n_params

    def describe(self) -> dict[str, Any]:
        return {**self.field.describe(), "geometry": "sdf", "params": self.n_params,
                "field_params": self.field.n_params,
                "head_params": sum(p.numel() for p in self.color_head.parameters()),
                "color_field": "shared" if self.color_net is None else "separate", "shading": self.shading,
                "color_field_params": 0 if self.color_net is None else self.color_net.n_params}
