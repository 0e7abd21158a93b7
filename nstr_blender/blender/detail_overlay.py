"""Strokes and arrows in the 3D viewport: which way the detail runs, and where it gets finer.

A POST_VIEW draw handler (gpu): for every visible result showing its detail, short white strokes
along the detail's crests (opacity = anisotropy; none on bumps without a direction) and, when asked,
yellow arrows toward finer detail (the drift). The geometry comes from core/detail_scale.py and is
cached per mesh, so a redraw only re-sends the batch.
"""

from __future__ import annotations

from typing import Any

import bpy
import gpu
import numpy as np
from gpu_extras.batch import batch_for_shader

from ..core.detail_scale import direction_strokes, drift_arrows
from .detail_colors import read_point_attribute
from .results import result_meta

_HANDLE: list[Any] = []
_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
ARROW_COLOR = (1.0, 0.85, 0.1, 0.9)


def _normals(mesh: Any) -> np.ndarray:
    n = np.empty(len(mesh.vertices) * 3, np.float32)
    if hasattr(mesh, "vertex_normals"):                 # Blender 4.1+
        mesh.vertex_normals.foreach_get("vector", n)
    else:
        mesh.vertices.foreach_get("normal", n)
    return n.reshape(-1, 3)


def geometry(obj: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(stroke segments (M, 2, 3), stroke opacities (M,), arrow segments (A, 2, 3)) in object space."""
    mesh = obj.data
    key = (obj.name, mesh.name, len(mesh.vertices))
    if key in _CACHE:
        return _CACHE[key]
    cols = {k: read_point_attribute(mesh, k, w) for k, w in (("detail_direction", 3), ("detail_anisotropy", 1),
                                               ("detail_wavelength", 1), ("detail_state", 1), ("drift", 3))}
    if any(cols[k] is None for k in ("detail_direction", "detail_anisotropy", "detail_wavelength", "detail_state")):
        return None
    v = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", v)
    v = v.reshape(-1, 3)
    normals = _normals(mesh)
    state = np.rint(cols["detail_state"]).astype(np.int64)
    strokes, alpha = direction_strokes(v, normals, cols["detail_direction"], cols["detail_anisotropy"],
                                       cols["detail_wavelength"], state)
    arrows = (drift_arrows(v, normals, cols["drift"], cols["detail_wavelength"], state).reshape(-1, 2, 3)
              if cols["drift"] is not None else np.zeros((0, 2, 3)))
    if len(_CACHE) > 16:
        _CACHE.clear()
    _CACHE[key] = out = (strokes, alpha, arrows)
    return out


def _shader(kind: str):
    name = ("3D_" + kind) if bpy.app.version < (4, 0, 0) else kind
    return gpu.shader.from_builtin(name)


def draw() -> None:
    context = bpy.context
    props = getattr(context.scene, "nstr", None)
    if props is None or not (props.show_strokes or props.show_drift_arrows):
        return
    gpu.state.blend_set("ALPHA")
    gpu.state.depth_test_set("LESS_EQUAL")
    for obj in context.visible_objects:
        if obj.type != "MESH" or result_meta(obj) is None or getattr(obj, "nstr_display", "") != "detail":
            continue
        geo = geometry(obj)
        if geo is None:
            continue
        strokes, alpha, arrows = geo
        m = np.array([list(r) for r in obj.matrix_world], np.float64)
        if props.show_strokes and len(strokes):
            pts = strokes.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]
            colors = np.repeat(np.stack([np.ones_like(alpha)] * 3 + [0.35 + 0.65 * alpha], 1), 2, axis=0)
            shader = _shader("SMOOTH_COLOR")
            batch_for_shader(shader, "LINES", {"pos": pts.astype(np.float32).tolist(),
                                               "color": colors.astype(np.float32).tolist()}).draw(shader)
        if props.show_drift_arrows and len(arrows):
            pts = arrows.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]
            shader = _shader("UNIFORM_COLOR")
            shader.bind()
            shader.uniform_float("color", ARROW_COLOR)
            batch_for_shader(shader, "LINES", {"pos": pts.astype(np.float32).tolist()}).draw(shader)
    gpu.state.depth_test_set("NONE")
    gpu.state.blend_set("NONE")


def register() -> None:
    if not _HANDLE and not bpy.app.background:
        _HANDLE.append(bpy.types.SpaceView3D.draw_handler_add(draw, (), "WINDOW", "POST_VIEW"))


def unregister() -> None:
    while _HANDLE:
        bpy.types.SpaceView3D.draw_handler_remove(_HANDLE.pop(), "WINDOW")
    _CACHE.clear()
