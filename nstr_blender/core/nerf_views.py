"""Camera poses around an object and the ``transforms.json`` files of a NeRF dataset.

Plain Python (no bpy, no numpy) so that the same code places Blender's cameras, runs in tests
and in the headless script. Conventions are Blender's and the NeRF synthetic scenes': world +Z
is up; a camera looks down its local -Z with +Y up; ``transform_matrix`` is camera-to-world.
"""

from __future__ import annotations

import json
import math
import os
from typing import Sequence

Vec3 = tuple[float, float, float]
Matrix4 = list[list[float]]

# Blender's default camera (50 mm lens on a 36 mm sensor), also the NeRF synthetic scenes' field of view.
DEFAULT_CAMERA_ANGLE_X = 2.0 * math.atan(18.0 / 50.0)
GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))


def view_directions(n: int, hemisphere: bool = True, offset: float = 0.0) -> list[Vec3]:
    """``n`` unit vectors spread evenly (Fibonacci lattice) on the sphere or the upper (+Z) hemisphere.

    ``offset`` (0..1) shifts the lattice in height and azimuth, so a second call with another offset
    gives held-out directions in between the first set's (train and test views).
    """
    out: list[Vec3] = []
    for i in range(n):
        f = (i + 0.5 + offset) / n  # in (0, 1]
        f = min(f, 1.0 - 0.5 / n)
        # hemisphere: z in (0.08, 1); cameras just above the horizon still see the object's sides
        z = 1.0 - f * 0.92 if hemisphere else 1.0 - 2.0 * f
        r = math.sqrt(max(0.0, 1.0 - z * z))
        phi = GOLDEN_ANGLE * i + 2.0 * math.pi * offset * 0.5
        out.append((r * math.cos(phi), r * math.sin(phi), z))
    return out


def _normalise(v: Sequence[float]) -> Vec3:
    n = math.sqrt(sum(c * c for c in v))
    if n == 0.0:
        raise ValueError("zero-length vector")
    return (v[0] / n, v[1] / n, v[2] / n)


def _cross(a: Sequence[float], b: Sequence[float]) -> Vec3:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def look_at(eye: Sequence[float], target: Sequence[float], up: Sequence[float] = (0.0, 0.0, 1.0)) -> Matrix4:
    """Camera-to-world matrix of a camera at ``eye`` looking at ``target`` (-Z forward, +Y up)."""
    forward = _normalise([t - e for t, e in zip(target, eye)])
    if abs(sum(f * u for f, u in zip(forward, up))) > 0.999:  # looking straight up or down
        up = (0.0, 1.0, 0.0)
    right = _normalise(_cross(forward, up))
    cam_up = _cross(right, forward)
    back = (-forward[0], -forward[1], -forward[2])
    return [[right[i], cam_up[i], back[i], float(eye[i])] for i in range(3)] + [[0.0, 0.0, 0.0, 1.0]]


def framing_distance(radius: float, camera_angle_x: float = DEFAULT_CAMERA_ANGLE_X, margin: float = 1.0) -> float:
    """Camera distance at which a sphere of ``radius`` fills a square view with a small margin."""
    return margin * radius / math.sin(0.5 * camera_angle_x)


def orbit_poses(center: Sequence[float], radius: float, n: int, hemisphere: bool = True, offset: float = 0.0,
                camera_angle_x: float = DEFAULT_CAMERA_ANGLE_X) -> list[Matrix4]:
    """Camera-to-world matrices of ``n`` cameras around a bounding sphere, all looking at its centre."""
    dist = framing_distance(radius, camera_angle_x)
    return [look_at([c + dist * d for c, d in zip(center, direction)], center)
            for direction in view_directions(n, hemisphere, offset)]


def transforms_dict(frames: Sequence[tuple[str, Matrix4]], camera_angle_x: float,
                    aabb: tuple[Vec3, Vec3] | None = None) -> dict:
    """A ``transforms_*.json`` document: NeRF synthetic keys, plus ``aabb`` (world box of the object)."""
    doc: dict = {"camera_angle_x": camera_angle_x,
                 "frames": [{"file_path": path, "transform_matrix": [list(map(float, row)) for row in m]}
                            for path, m in frames]}
    if aabb is not None:
        doc["aabb"] = [list(map(float, aabb[0])), list(map(float, aabb[1]))]
    return doc


def write_transforms(path: str, doc: dict) -> None:
    """Write atomically, so an interrupted render never leaves a half-written dataset file."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


def bounding_sphere(corners: Sequence[Sequence[float]]) -> tuple[Vec3, float, tuple[Vec3, Vec3]]:
    """Centre and radius of the sphere around a box's corners, and the box itself (min, max)."""
    if not corners:
        raise ValueError("no points")
    lo = tuple(min(c[i] for c in corners) for i in range(3))
    hi = tuple(max(c[i] for c in corners) for i in range(3))
    center = tuple(0.5 * (a + b) for a, b in zip(lo, hi))
    radius = max(1e-6, 0.5 * math.sqrt(sum((b - a) ** 2 for a, b in zip(lo, hi))))
    return center, radius, (lo, hi)  # type: ignore[return-value]
