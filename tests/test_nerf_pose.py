"""Camera pose refinement (``task.pose_refine``, issue 31) against known answers: Rodrigues' rotations and the
gauge the corrections are taken in. The fit that turns known camera turns back (a Blender-rendered cube, read
together with its photos' known exposures) is in ``test_nerf_appearance.py``."""

from __future__ import annotations

import math

import numpy as np
import torch


def test_rotations_match_scipys_and_are_smooth_through_zero() -> None:
    from scipy.spatial.transform import Rotation

    from nstr.nerf.pose_refine import rotation_matrices

    rng = np.random.default_rng(0)
    vecs = np.concatenate([rng.normal(size=(6, 3)) * 0.7, np.zeros((1, 3)), [[1e-7, 0, 0]]])
    got = rotation_matrices(torch.tensor(vecs)).numpy()
    assert np.allclose(got, Rotation.from_rotvec(vecs).as_matrix(), atol=1e-12)
    # the gradient at zero (every fit starts there) is the cross-product generator, not NaN
    zero = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    rotation_matrices(zero)[0, 0, 1].backward()
    assert torch.allclose(zero.grad, torch.tensor([[0.0, 0.0, -1.0]], dtype=torch.float64))


def test_moving_every_camera_alike_is_no_correction() -> None:
    """The photos cannot tell every camera moved alike from the scene moved the other way: the corrections
    are relative to their mean, so the capture's frame stays (a rotation of 0.3 rad added to all is nothing)."""
    from nstr.nerf.pose_refine import PoseRefinement

    refine = PoseRefinement(4, scale=2.0, lr=1e-3)
    with torch.no_grad():
        refine.rotation += torch.tensor([0.3, -0.1, 0.2])
        refine.shift += torch.tensor([0.5, 0.0, 0.0])
    o, d = torch.randn(8, 3), torch.nn.functional.normalize(torch.randn(8, 3), dim=-1)
    o2, d2 = refine(o, d, torch.arange(8) % 4)
    assert torch.allclose(o2, o) and torch.allclose(d2, d, atol=1e-6)
    with torch.no_grad():   # one photo's own correction: its rays turn about its camera centre
        refine.rotation[1] += torch.tensor([0.0, 0.0, math.pi / 2]) * 4 / 3   # mean-free: pi/2 for photo 1
        refine.shift[1] += torch.tensor([0.0, 0.0, 1.0]) * 4 / 3              # 1 x scale 2 = 2 units
    o3, d3 = refine(torch.zeros(1, 3), torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([1]))
    assert torch.allclose(d3, torch.tensor([[0.0, 1.0, 0.0]]), atol=1e-6)
    assert torch.allclose(o3, torch.tensor([[0.0, 0.0, 2.0]]), atol=1e-6)
