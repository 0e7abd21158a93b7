"""The region of interest: the world box the user puts around the object (``task.box``).

A capture's photos see far more than the object: the ground, the room, the sky. Without a box the
scene's box comes from the cameras (:func:`nstr.nerf.dataset.aabb_from_cameras`), which frames where
they look. With one, the field lives in the cube around the user's box, so the fit spends its
resolution there. A box that no training camera sees cannot be fitted and is refused with one line
before any training; a camera sees the box when a corner or the centre of the box lies in front of it
and inside its picture, or the camera is inside the box.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import product

import numpy as np

from nstr.errors import ConfigError, InputError
from nstr.nerf.dataset import NerfDataset, Views
from nstr.nerf.rays import project_points


def region_box(values: tuple[float, ...], name: str = "task.box") -> np.ndarray:
    """``values`` (x0, y0, z0, x1, y1, z1) as a (2, 3) box; ConfigError naming ``name`` unless min < max."""
    box = np.asarray(values, np.float64)
    if box.shape != (6,) or not np.all(np.isfinite(box)):
        raise ConfigError(f"{name} must be 6 numbers x0,y0,z0,x1,y1,z1 (the box's min and max corners), "
                          f"not {len(box)}", f"Give {name}=x0,y0,z0,x1,y1,z1 in world units, or leave it out")
    lo, hi = box[:3], box[3:]
    if np.any(hi <= lo):
        raise ConfigError(f"{name} has min {lo.tolist()} not below max {hi.tolist()} on every axis",
                          f"Give the min corner first: {name}=x0,y0,z0,x1,y1,z1 with x0 < x1, y0 < y1, z0 < z1")
    return np.stack([lo, hi])


def cameras_seeing(box: np.ndarray, views: Views) -> np.ndarray:
    """(N,) bool: which views' cameras see the box (module docstring)."""
    lo, hi = box
    points = np.array([*(np.where(corner, hi, lo) for corner in product((0, 1), repeat=3)), (lo + hi) / 2])
    intr = views.intrinsics
    seen = np.zeros(len(views), bool)
    for i, pose in enumerate(views.poses):
        eye = pose[:3, 3]
        if np.all(eye > lo) and np.all(eye < hi):
            seen[i] = True
            continue
        pixels, depth = project_points(points, pose, intr)
        inside = (depth > 0) & (pixels[:, 0] >= 0) & (pixels[:, 0] <= intr.width) \
            & (pixels[:, 1] >= 0) & (pixels[:, 1] <= intr.height)
        seen[i] = bool(inside.any())
    return seen


def with_region(dataset: NerfDataset, values: tuple[float, ...], name: str = "task.box") -> NerfDataset:
    """``dataset`` with the user's box as its scene box; InputError when no training camera sees it."""
    box = region_box(values, name)
    seen = cameras_seeing(box, dataset.train)
    if not seen.any():
        lo, hi = box
        raise InputError(f"{name} {lo.tolist()}..{hi.tolist()} is seen by none of the {len(seen)} training cameras",
                         "Move the box onto the object the photos show (the cameras' box is "
                         f"{np.round(dataset.aabb, 3).tolist()})")
    return replace(dataset, aabb=box.astype(np.float32), aabb_from=name)
