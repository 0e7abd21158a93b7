"""Camera pose refinement (``task.pose_refine=on``): each training photo's pose, corrected with the fit.

A capture's poses come from COLMAP or a phone's tracking and are off by a fraction of a degree and a
fraction of a percent of the scene; a field that must explain every photo from a wrong viewpoint blurs
the surface to fit them all. Here each training photo ``i`` gets a small rotation ``r_i`` (axis-angle,
radians) about its own camera centre and a shift ``t_i`` of that centre, learnt with the field, and
its rays are cast from the corrected camera:

    origin' = origin + t_i * scale        direction' = exp([r_i]x) direction

(``scale``: half the scene box, so the shift's learning rate does not depend on the scene's units).
Moving every camera alike is the same as moving the scene the other way, which the photos cannot tell
apart, so the corrections are taken relative to their mean over the photos (as the exposures are taken
relative to their geometric mean): the field keeps the capture's frame. Held-out views keep their
given poses, and so does the mesh's frame.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn


def rotation_matrices(axis_angle: Tensor) -> Tensor:
    """(N, 3, 3) rotations of the axis-angle vectors (N, 3) (Rodrigues; smooth through zero)."""
    theta2 = (axis_angle * axis_angle).sum(-1, keepdim=True)[..., None]            # (N, 1, 1)
    theta = theta2.clamp_min(1e-12).sqrt()
    # sin(t) / t and (1 - cos(t)) / t^2, by their series where t is tiny (the start of every fit)
    small = theta2 < 1e-8
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).view(-1, 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(K)
    return eye + a * K + b * (K @ K)


class PoseRefinement(nn.Module):
    """Per training photo a rotation about its camera centre and a shift of it (module docstring)."""

    def __init__(self, photos: int, scale: float, lr: float) -> None:
        super().__init__()
        self.lr = float(lr)   # its own rate (radians per step for the rotations): the field's is far larger
        self.rotation = nn.Parameter(torch.zeros(photos, 3))
        self.shift = nn.Parameter(torch.zeros(photos, 3))
        self.scale = float(scale)

    def corrections(self) -> tuple[Tensor, Tensor]:
        """(photos, 3) axis-angle rotations (radians) and shifts (world units), mean zero over the photos."""
        rotation = self.rotation - self.rotation.mean(0, keepdim=True)
        shift = (self.shift - self.shift.mean(0, keepdim=True)) * self.scale
        return rotation, shift

    def forward(self, origins: Tensor, dirs: Tensor, photo: Tensor) -> tuple[Tensor, Tensor]:
        """World rays (R, 3) of training photos ``photo`` (R,) cast from the corrected cameras."""
        rotation, shift = self.corrections()
        R = rotation_matrices(rotation)[photo]
        return origins + shift[photo], torch.einsum("nij,nj->ni", R, dirs)

    def corrected_poses(self, poses: Tensor) -> Tensor:
        """The training photos' camera-to-world matrices (photos, 4, 4) with the corrections applied."""
        rotation, shift = self.corrections()
        out = poses.clone().to(rotation.dtype)
        out[:, :3, :3] = rotation_matrices(rotation) @ out[:, :3, :3]
        out[:, :3, 3] = out[:, :3, 3] + shift
        return out

    def group_lr(self, lr: float) -> float:
        """Its own rate, not the model's (``nstr.nerf.capture_modules``)."""
        return self.lr

    def describe(self) -> dict[str, Any]:
        rotation, shift = (t.detach() for t in self.corrections())
        degrees = rotation.norm(dim=-1) * (180.0 / math.pi)
        moved = shift.norm(dim=-1)
        return {"photos": int(rotation.shape[0]),
                "rotation_deg": [round(float(d), 4) for d in degrees],
                "shift": [round(float(m), 6) for m in moved],
                "rotation_deg_median": round(float(degrees.median()), 4),
                "shift_median": round(float(moved.median()), 6)}
