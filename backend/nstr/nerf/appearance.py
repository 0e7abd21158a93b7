"""Per-photo appearance (``task.appearance=exposure``): each training photo's exposure and white balance.

Photos of a capture are taken with changing exposure and white balance; a field that must explain
every photo as it is paints those changes into the object (or, with a NeuS SDF, into its shape). Here
each training photo ``i`` gets a colour gain per channel, ``exp(l_i)``, learnt with the field and applied to
what the field renders for that photo's rays:

    photo_i = exp(l_i) * rendered        (with masks: to the object only; the background stays)

The gains are taken relative to their geometric mean over the photos, so the field's own colours are
those of the average photo; held-out views and the mesh's baked colours use it (no gain). Three numbers
per photo: not the lighting's direction or the weather (which a learnt embedding per photo, as NeRF-W's,
would take). An offset per channel as well (an affine colour change) was tried and dropped: on the
known-answer cube (tests/test_nerf_appearance.py, 300 steps) it read the exposures at a log-slope of 0.35
against 0.69 with the gains alone, and the held-out views 0.5 dB lower: with a few colours in view, an
offset mimics a gain.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class PhotoExposure(nn.Module):
    """Per training photo a colour gain per channel, geometric mean 1 over the photos (module docstring)."""

    def __init__(self, photos: int) -> None:
        super().__init__()
        self.log_gain = nn.Parameter(torch.zeros(photos, 3))

    def gains(self) -> Tensor:
        """(photos, 3), geometric mean 1 per channel."""
        return torch.exp(self.log_gain - self.log_gain.mean(0, keepdim=True))

    def forward(self, color: Tensor, photo: Tensor, opacity: Tensor | None = None,
                background: Tensor | None = None) -> Tensor:
        """``color`` (R, 3) rendered for rays of training photos ``photo`` (R,), as those photos would show
        it. With ``opacity`` and ``background`` (views with masks: a synthetic background behind the object)
        only the object's part is changed."""
        gain = self.gains()[photo]
        if background is None or opacity is None:
            return color * gain
        behind = (1.0 - opacity)[:, None] * background
        return (color - behind) * gain + behind

    def group_lr(self, lr: float) -> float:
        """Its learning rate: the model's (``nstr.nerf.capture_modules``)."""
        return lr

    def describe(self) -> dict[str, Any]:
        gain = self.gains().detach()
        return {"photos": int(gain.shape[0]),
                "exposure": [round(float(g), 4) for g in gain.mean(1)],  # per photo, the channels' mean gain
                "gain_range": [round(float(gain.min()), 4), round(float(gain.max()), 4)]}
