"""A photo capture in Blender, bpy-free: the server's camera list checked, pinhole intrinsics as a Blender
camera, and the region-of-interest box as an object and back.

The capture is read by the backend (``POST /v1/capture``, :mod:`nstr.nerf.capture_cameras`); the add-on
never parses COLMAP or transforms files. Its camera-to-world matrices are in the NeRF convention (looking
down -z, +y up), which is Blender's camera convention, in the capture's own world frame: the import puts
them under one empty (the capture's frame in the scene), so moving that empty moves the whole capture, and
the fit's box and its mesh are in the same frame.

**Pinhole -> Blender camera.** Blender's view plane (``BKE_camera_params_compute_viewplane``) with the
sensor fitted horizontally maps a point (X, Y, -d) in camera space to the pixel (from the image's
top-left corner, rows down)

    u = f_mm * W / sensor_w * X / d + W * (1/2 - shift_x)
    v = f_mm * W / (sensor_w * ycor) * (-Y) / d + H / 2 + shift_y * W / ycor,    ycor = aspect_y / aspect_x

and the pinhole model maps it to u = fx X / d + cx, v = fy (-Y) / d + cy. They agree for
f_mm = fx * sensor_w / W, ycor = fx / fy (non-square pixels: the render's pixel aspect, which Blender
keeps at 1 or more on each axis), shift_x = 1/2 - cx / W and shift_y = (cy - H/2) * ycor / W.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

from .errors import AddonError

SENSOR_WIDTH_MM = 36.0          # any width works (the lens follows it); a full-frame sensor reads naturally
COLLECTION_PREFIX = "NSTR capture: "
BOX_PREFIX = "NSTR region: "
# the unit cube the box object is made of: its object transform is the box (location = centre, scale = half size)
UNIT_CORNERS = tuple((x, y, z) for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0))


@dataclass(frozen=True)
class BlenderCamera:
    """A Blender camera (and the render settings it needs) that sees what a pinhole camera sees."""

    lens: float                  # mm
    sensor_width: float          # mm, fitted horizontally
    shift_x: float
    shift_y: float
    width: int                   # render resolution = the photo's
    height: int
    pixel_aspect_x: float        # >= 1 (Blender's range); one of the two is 1
    pixel_aspect_y: float


def blender_camera(fx: float, fy: float, cx: float, cy: float, width: int, height: int,
                   sensor_width: float = SENSOR_WIDTH_MM) -> BlenderCamera:
    """The Blender camera of a pinhole (pixels, principal point from the top-left corner; module docstring)."""
    if not all(math.isfinite(v) for v in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0 or width <= 0 or height <= 0:
        raise AddonError(f"the camera fx={fx}, fy={fy}, {width}x{height} is not a pinhole camera",
                         "Check the capture's camera model")
    ycor = fx / fy
    aspect_x, aspect_y = (1.0, ycor) if ycor >= 1.0 else (1.0 / ycor, 1.0)
    return BlenderCamera(lens=fx * sensor_width / width, sensor_width=sensor_width, shift_x=0.5 - cx / width,
                         shift_y=(cy - 0.5 * height) * ycor / width, width=int(width), height=int(height),
                         pixel_aspect_x=aspect_x, pixel_aspect_y=aspect_y)


def blender_pixel(cam: BlenderCamera, point: Sequence[float]) -> tuple[float, float]:
    """Where Blender's camera model puts ``point`` (camera space: +x right, +y up, looking down -z), in pixels
    from the top-left corner: its view plane, written out (module docstring), for tests and checks."""
    x, y, z = (float(c) for c in point)
    d = -z
    ycor = cam.pixel_aspect_y / cam.pixel_aspect_x
    scale = cam.lens * cam.width / cam.sensor_width
    u = scale * x / d + cam.width * (0.5 - cam.shift_x)
    v = scale / ycor * (-y) / d + 0.5 * cam.height + cam.shift_y * cam.width / ycor
    return u, v


# ----------------------------------------------------------------------------------------- the server's answer


@dataclass(frozen=True)
class CaptureCamera:
    name: str                    # the photo's name in the capture
    file: str                    # the photo, relative to the capture folder
    matrix: tuple[tuple[float, ...], ...]   # 4x4 camera-to-world, rows, in the capture's frame
    camera: BlenderCamera        # its pinhole (fx, fy, cx, cy, width x height) as a Blender camera
    test: bool                   # held out by the fit as a test view


@dataclass(frozen=True)
class Capture:
    folder: str                  # the server's resolved path: what a fit sends as dataset_dir
    kind: str                    # colmap | transforms
    model: str                   # the file the cameras came from
    cameras: tuple[CaptureCamera, ...]
    box: tuple[tuple[float, float, float], tuple[float, float, float]]
    box_from: str                # cameras | file

    @property
    def name(self) -> str:
        return os.path.basename(self.folder.rstrip("/\\")) or self.folder


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AddonError(f"the backend's capture answer has {what} = {value!r}, not a number",
                         "Update the backend to the add-on's version")
    return float(value)


def parse_capture(answer: Any) -> Capture:
    """The server's ``POST /capture`` answer, checked; a malformed one is one AddonError (a version mismatch)."""
    try:
        cams = []
        for k, c in enumerate(answer["cameras"]):
            matrix = tuple(tuple(_number(v, f"cameras[{k}].matrix") for v in row) for row in c["matrix"])
            if len(matrix) != 4 or any(len(row) != 4 for row in matrix):
                raise AddonError(f"the backend's capture answer has a camera matrix that is not 4x4 (cameras[{k}])",
                                 "Update the backend to the add-on's version")
            pinhole = blender_camera(*(_number(c[key], f"cameras[{k}].{key}") for key in ("fx", "fy", "cx", "cy")),
                                     int(_number(c["width"], "width")), int(_number(c["height"], "height")))
            cams.append(CaptureCamera(str(c["name"]), str(c["file"]), matrix, pinhole, bool(c["test"])))
        lo, hi = (tuple(_number(v, "box") for v in corner) for corner in answer["box"])
        if len(lo) != 3 or len(hi) != 3:
            raise AddonError("the backend's capture answer has a box that is not two 3-D corners",
                             "Update the backend to the add-on's version")
        return Capture(str(answer["dataset_dir"]), str(answer["kind"]), str(answer["model"]), tuple(cams),
                       (lo, hi), str(answer.get("box_from", "cameras")))  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError) as err:
        raise AddonError(f"the backend's capture answer lacks {err}", "Update the backend to the add-on's version") \
            from None


# ----------------------------------------------------------------------------------------- the region box


def box_transform(lo: Sequence[float], hi: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(location, scale) of the unit-cube box object that spans ``lo``..``hi``."""
    return (tuple((a + b) / 2 for a, b in zip(lo, hi)), tuple((b - a) / 2 for a, b in zip(lo, hi)))


def box_bounds(matrix: Sequence[Sequence[float]], corners: Sequence[Sequence[float]] = UNIT_CORNERS
               ) -> tuple[list[float], list[float]]:
    """(min, max) corners of the axis-aligned box around ``corners`` moved by the 4x4 ``matrix`` (the box
    object in the capture's frame: moved, scaled, even rotated by the user)."""
    moved = [[sum(matrix[i][j] * c[j] for j in range(3)) + matrix[i][3] for i in range(3)] for c in corners]
    return [min(p[i] for p in moved) for i in range(3)], [max(p[i] for p in moved) for i in range(3)]


def task_box(lo: Sequence[float], hi: Sequence[float], name: str = "the region box") -> list[float]:
    """``task.box`` (x0, y0, z0, x1, y1, z1) from the box's corners; a box flat on an axis is one line."""
    if not all(math.isfinite(v) for v in (*lo, *hi)):
        raise AddonError(f"{name} has a corner that is not finite", "Reset its location and scale")
    flat = [axis for axis, a, b in zip("XYZ", lo, hi) if not b - a > 1e-9 * max(1.0, abs(a), abs(b))]
    if flat:
        raise AddonError(f"{name} has no size along {', '.join(flat)} (scale 0)",
                         "Scale it so that it encloses the object the photos show")
    return [float(v) for v in (*lo, *hi)]


def display_size(box: Sequence[Sequence[float]]) -> float:
    """A camera's drawn size: a tenth of the box's largest side, so a capture in metres or in millimetres reads."""
    lo, hi = box
    return max(1e-6, 0.1 * max(b - a for a, b in zip(lo, hi)))
