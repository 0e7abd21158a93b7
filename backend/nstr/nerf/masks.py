"""What the views' alpha says before a fit: a mask and a known background, or why there is none.

Blender renders with a transparent film, so every pixel carries coverage (alpha). With alpha the fit
composites its renders over a random background (the colour of empty space is then unlearnable, so
the field has to leave it empty) and adds a mask loss on the rendered opacity.

Without alpha (every pixel opaque: a JPEG, or a render without a transparent film) the background is
in the pictures. The fit then still works: the background is the median colour of the views' borders
(``task.background=color``) or a map learnt per ray direction that starts as that colour
(``learned``, ``nstr.nerf.background``; ``auto`` picks by ``border_spread``), composited behind the field, and there is no mask loss; the
report says so.

Pixels without data (``Views.valid``: the margins a pincushion lens leaves when a photo is undistorted)
are not read here: they are neither transparent nor opaque, and a photo's border is its outermost pixels
that hold data.

Views that cannot give a surface are refused, each with one line: every view all background, or a
view that is opaque from corner to corner while the others are not, taken by a camera inside the
object's box (a camera inside the object sees its inside faces everywhere).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nstr.errors import InputError
from nstr.nerf.dataset import NerfDataset

OPAQUE = 0.999  # alpha at or above this is "no transparency"
EMPTY = 1.0 / 255  # alpha at or below this is background


@dataclass
class MaskInfo:
    has_alpha: bool
    background: tuple[float, float, float] | None  # the pictures' background when there is no alpha
    notes: list[str]
    border_spread: float | None = None  # no alpha: how far the border strays from that colour (border_spread)


def _border(images: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """(N, 3) RGB of the outermost ring of pixels that hold data (``valid``; None: all) in every view."""
    has = np.ones(images.shape[:3], bool) if valid is None else valid
    inner = np.pad(has, ((0, 0), (1, 1), (1, 1)))   # outside the picture: no data
    surrounded = inner[:, :-2, 1:-1] & inner[:, 2:, 1:-1] & inner[:, 1:-1, :-2] & inner[:, 1:-1, 2:]
    return images[has & ~surrounded][:, :3]


def border_color(images: np.ndarray, valid: np.ndarray | None = None) -> tuple[float, float, float]:
    """Median RGB of the outermost ring of pixels that hold data (``valid``; None: all) in every view: the
    background of an object shot."""
    r, g, b = np.median(_border(images, valid), 0).tolist()
    return float(r), float(g), float(b)


def border_spread(images: np.ndarray, valid: np.ndarray | None = None) -> float:
    """The border's median absolute deviation from its median colour (mean over channels): 0 before one
    colour (a backdrop), about 0.12 before a sky that changes with direction (nstr.nerf.truth_scenes)."""
    ring = _border(images, valid)
    return float(np.median(np.abs(ring - np.median(ring, 0)), 0).mean())


def inspect_masks(dataset: NerfDataset) -> MaskInfo:
    """Read the training views' alpha; raise InputError for views that cannot give a surface."""
    alpha = dataset.train.images[..., 3]
    has = dataset.train.pixels_with_data()
    per_view_max = np.where(has, alpha, 0.0).reshape(len(alpha), -1).max(1)
    per_view_min = np.where(has, alpha, 1.0).reshape(len(alpha), -1).min(1)
    if np.all(per_view_max <= EMPTY):
        raise InputError(f"all {len(alpha)} training views are empty background (alpha 0 everywhere)",
                         "Aim the cameras at the object (or select it before rendering the views)")
    opaque_views = per_view_min >= OPAQUE
    if np.all(opaque_views):
        bg = border_color(dataset.train.images, dataset.train.valid)
        spread = border_spread(dataset.train.images, dataset.train.valid)
        return MaskInfo(False, bg, [
            "the views have no alpha (every pixel opaque): no mask loss; the background is the views' border "
            f"colour ({bg[0]:.2f}, {bg[1]:.2f}, {bg[2]:.2f}), or where the border is not one colour a colour per "
            "direction learnt from it (task.background). Render with a transparent film for a cleaner surface"], spread)
    notes = []
    lo, hi = dataset.aabb[0], dataset.aabb[1]
    for i in np.nonzero(opaque_views)[0]:
        eye = dataset.train.poses[i, :3, 3]
        inside = bool(np.all(eye > lo) and np.all(eye < hi))
        where = dataset.train.files[i] if i < len(dataset.train.files) else f"train view {i}"
        if inside:
            raise InputError(f"camera of {where} is inside the object (its view is opaque everywhere and the "
                             f"camera is inside the object's box)",
                             "Move that camera out of the object, or leave the view out")
        notes.append(f"{where} is opaque everywhere (the object fills the frame)")
    empty = int(np.sum(per_view_max <= EMPTY))
    if empty:
        notes.append(f"{empty} of {len(alpha)} training views show only background; they still tell the fit "
                     "where the object is not")
    return MaskInfo(True, None, notes)
