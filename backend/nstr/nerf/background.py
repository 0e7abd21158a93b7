"""A learnt background (``task.background=learned``, or ``auto`` where it fits): the colour of everything outside the box, per direction.

Views without alpha (photos) show the world behind the object, and a real world is not one colour. With a
single background colour (the views' border median, ``nstr.nerf.masks``) the foreground field has to paint
the rest of the world into the box: floaters in front of the cameras, fog on the mesh. Here the world is an
environment map, a colour per ray direction learnt with the fit, as far-away surroundings are (NeRF++'s
outer field without its parallax):

    pixel = foreground colour + (1 - foreground opacity) * env(direction)

The map is a pyramid of latitude-longitude grids (``rows`` x ``2 rows`` and coarser, the sphere's poles on
world +z / -z, Blender's up axis) of colour logits, sampled bilinearly (wrapping around in longitude),
summed and passed through a sigmoid: a few thousand numbers and a few ``grid_sample`` calls per batch of
rays, cheap enough to run for every ray. It starts as the border colour everywhere, so it begins where the
constant background is.

It is a submodule of the radiance model (``model.environment``): trained with it (``nstr.nerf.capture_modules``),
saved and restored with its checkpoint, used by held-out views and renders. Views with alpha do not use it:
they keep the masked training (random backgrounds and the mask loss). With ``task.appearance=exposure`` a
photo's gain scales its whole picture, the map's part included (a photo's exposure affects all its pixels).
The mesh's baked colours read the field alone (``nstr.nerf.mesh``: along each vertex's inward normal,
normalised by opacity), so no background enters them; what they gain is a field that no longer paints the
world in front of the object.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

BACKGROUNDS = ("auto", "color", "learned")  # task.background
# task.background=auto learns the map when the views' border strays further than this from its median colour
# (nstr.nerf.masks.border_spread, a median absolute deviation): one colour is the right background before a
# backdrop, and a map there cost 1.9 dB on held-out views (tests/test_nerf_background.py); the sky scores 0.12
UNIFORM_BORDER = 0.03
# the map's learning rate over the field's: 5 was tried (one 16-row grid, the sky cube, 300 steps): held-out
# PSNR 18.7 -> 17.5 dB, the object's opacity 0.96 -> 0.88 (the map ate into the object's edges)
LR_SCALE = 1.0


class EnvironmentMap(nn.Module):
    """Colour (R, 3) in [0, 1] as a function of the ray's world direction only (module docstring).

    The logits are a pyramid: lat-long grids of ``rows``, ``rows / 2``, ... down to 2 rows, summed. A
    coarse level gathers the gradient of many rays, so it learns fast and fills directions the training
    cameras barely saw; the finer levels add the detail. Measured on the sky cube (tests/test_nerf_background.py,
    density field, 300 steps), the map alone against the held-out views' world pixels: one grid of 16 rows
    17.4 dB, of 8 rows 21.6 dB; the pyramid from 16 rows 27.9 dB, from 8 rows 30.7 dB. A finer map is not
    better: an inward-facing capture never sees the world in the directions towards the object, so a fine
    map can take the object's colours there (``task.background_rows``, tasks/nerf.py).
    """

    def __init__(self, rows: int, init_color: tuple[float, float, float] = (0.5, 0.5, 0.5)) -> None:
        super().__init__()
        c = torch.tensor(init_color, dtype=torch.float32).clamp(0.02, 0.98)
        logit = torch.log(c / (1.0 - c))
        sizes = [rows]
        while sizes[-1] // 2 >= 2:
            sizes.append(sizes[-1] // 2)
        self.levels = nn.ParameterList(
            nn.Parameter(torch.zeros(1, 3, r, 2 * r) + (logit[None, :, None, None] if r == sizes[-1] else 0.0))
            for r in sizes)

    @property
    def rows(self) -> int:
        return int(self.levels[0].shape[2])

    def forward(self, dirs: Tensor) -> Tensor:
        """``dirs`` (R, 3) unit world directions -> colour (R, 3)."""
        d = torch.nn.functional.normalize(dirs.float(), dim=-1)
        lat = torch.asin(d[:, 2].clamp(-1.0, 1.0))            # +pi/2 straight up
        lon = torch.atan2(d[:, 1], d[:, 0])                   # (-pi, pi]
        y = -lat / (0.5 * math.pi)                            # top row is up
        logits = torch.zeros(3, d.shape[0], device=d.device)
        for grid in self.levels:
            cols = grid.shape[3]
            wrapped = torch.cat([grid[..., -1:], grid, grid[..., :1]], 3)  # longitude wraps around
            xy = torch.stack([(lon / math.pi) * cols / (cols + 2), y], -1)[None, None]  # (1, 1, R, 2)
            logits = logits + torch.nn.functional.grid_sample(wrapped, xy, mode="bilinear", padding_mode="border",
                                                              align_corners=False)[0, :, 0]
        return torch.sigmoid(logits.t())

    def image(self) -> Tensor:
        """The map as a (rows, 2 rows, 3) lat-long picture (top row up), at its pixel centres."""
        rows = self.rows
        lat = (0.5 - (torch.arange(rows) + 0.5) / rows) * math.pi
        lon = ((torch.arange(2 * rows) + 0.5) / (2 * rows) * 2 - 1) * math.pi
        la, lo = torch.meshgrid(lat, lon, indexing="ij")
        d = torch.stack([la.cos() * lo.cos(), la.cos() * lo.sin(), la.sin()], -1).reshape(-1, 3)
        return self(d.to(self.levels[0].device)).reshape(rows, 2 * rows, 3)

    def group_lr(self, lr: float) -> float:
        """Its learning rate: the model's times ``LR_SCALE`` (``nstr.nerf.capture_modules``)."""
        return lr * LR_SCALE

    def describe(self) -> dict[str, Any]:
        with torch.no_grad():
            rgb = self.image()
        return {"kind": "environment map", "rows": self.rows, "cols": 2 * self.rows, "levels": len(self.levels),
                "mean_color": [round(float(v), 4) for v in rgb.mean((0, 1))],
                "spread": round(float(rgb.std((0, 1)).mean()), 4)}  # 0: one colour everywhere


def wants_map(option: str, has_alpha: bool, spread: float | None) -> bool:
    """Whether ``task.background`` (``option``) puts a learnt map behind views: never with alpha; with
    ``auto`` when the border is not one colour (``UNIFORM_BORDER``)."""
    if has_alpha:
        return False
    return option == "learned" or (option == "auto" and spread is not None and spread > UNIFORM_BORDER)
