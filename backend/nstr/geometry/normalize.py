"""The unit box the fields work in, and the way back to the user's coordinates.

Fields take x in [-1, 1]^3. The mesh's bounding box is centred and scaled uniformly
(largest side) into [-(1 - padding), 1 - padding]^3 so the surface never touches the
box walls (marching cubes then closes the surface). The transform is kept so results
go back in the input's own frame and units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UnitBoxTransform:
    """unit = (input - center) / scale; input = unit * scale + center (uniform scale, no rotation)."""

    center: tuple[float, float, float]
    scale: float

    def to_unit(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, np.float64) - np.asarray(self.center)) / self.scale

    def to_input(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, np.float64) * self.scale + np.asarray(self.center)

    def to_dict(self) -> dict[str, object]:
        return {"center": list(self.center), "scale": self.scale,
                "meaning": "unit = (input - center) / scale"}


def fit_unit_box(vertices: np.ndarray, padding: float = 0.1) -> UnitBoxTransform:
    """The transform that puts the vertices' bounding box inside [-(1-padding), 1-padding]^3."""
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    center = (lo + hi) / 2
    half = float((hi - lo).max()) / 2
    scale = half / (1.0 - padding)
    return UnitBoxTransform(center=tuple(float(c) for c in center), scale=scale)
