"""The legend in the 3D viewport: a colour bar with tick labels, units and a plain-words line for
the active result's shown attribute, drawn with gpu + blf (a POST_PIXEL draw handler)."""

from __future__ import annotations

from typing import Any

import blf
import bpy
import gpu
import numpy as np
from gpu_extras.batch import batch_for_shader

from ..core.legend import Legend, build_detail_legend, build_legend, build_lost_legend
from ..core.meshdata import DISPLAY_BY_NAME
from .detail_colors import SCALE_PROP, current_scale
from .results import result_meta

_HANDLE: list[Any] = []
_CACHE: dict[tuple, Legend] = {}


def _shader(kind: str):
    """Built-in 2D shaders: '2D_*' names in Blender 3.x, plain names from 4.0."""
    name = ("2D_" + kind) if bpy.app.version < (4, 0, 0) else kind
    return gpu.shader.from_builtin(name)


def legend_for(obj: Any, scene: Any) -> Legend | None:
    """The legend of the object's shown attribute (cached until the object or the unit scale change)."""
    meta = result_meta(obj)
    if meta is None or obj.type != "MESH":
        return None
    name = getattr(obj, "nstr_display", "")
    if name not in meta.get("available", []):
        return None
    mesh = obj.data
    scale = float(scene.unit_settings.scale_length or 1.0)
    key = (obj.name, name, mesh.name, len(mesh.vertices), scale, str(scene.get(SCALE_PROP, "")))
    if key in _CACHE:
        return _CACHE[key]
    if len(_CACHE) > 32:
        _CACHE.clear()
    if name == "detail":             # the scene's one scale, not this mesh's range
        detail_scale = current_scale(scene)
        if detail_scale is not None:
            _CACHE[key] = legend = build_detail_legend(detail_scale, unit_scale=scale)
            return legend
    if name == "detail_lost" and float((meta.get("detail") or {}).get("lost_flag", 0)) > 0:
        _CACHE[key] = legend = build_lost_legend(float(meta["detail"]["lost_flag"]), unit_scale=scale)
        return legend
    attr = DISPLAY_BY_NAME[name]
    values = colors = None
    n = len(mesh.vertices)
    raw = mesh.attributes.get(attr.raw_key or "")
    col = mesh.attributes.get(attr.color_key)
    if raw is not None and raw.data_type == "FLOAT" and col is not None and n:
        values = np.empty(n, np.float32)
        raw.data.foreach_get("value", values)
        colors = np.empty(n * 4, np.float32)
        col.data.foreach_get("color", colors)
        colors = colors.reshape(n, 4)
    if len(_CACHE) > 32:
        _CACHE.clear()
    _CACHE[key] = legend = build_legend(meta, name, values, colors, scale)
    return legend


def draw() -> None:
    context = bpy.context
    obj = context.active_object
    if obj is None or context.region is None:
        return
    legend = legend_for(obj, context.scene)
    if legend is None:
        return
    ui = context.preferences.system.ui_scale
    pad, size = int(10 * ui), max(9, int(11 * ui))
    bar_w, bar_h = int(220 * ui), int(12 * ui)
    font = 0
    if bpy.app.version < (4, 0, 0):
        blf.size(font, size, 72)
    else:
        blf.size(font, size)
    lines = legend.lines()
    x, y = pad + int(10 * ui), pad + int(10 * ui)
    line_h = int(size * 1.5)
    gpu.state.blend_set("ALPHA")
    for text in reversed(lines):                       # text lines at the bottom, bar above them
        blf.color(font, 0.9, 0.9, 0.9, 1.0)
        blf.position(font, x, y, 0)
        blf.draw(font, text)
        y += line_h
    if legend.swatches:                                # the greys: a square and a label each, one row
        sx, side = x, size
        square = _shader("UNIFORM_COLOR")
        for label, rgba in legend.swatches:
            square.bind()
            square.uniform_float("color", rgba)
            batch_for_shader(square, "TRIS", {"pos": [(sx, y), (sx + side, y), (sx + side, y + side), (sx, y + side)]},
                             indices=[(0, 1, 2), (0, 2, 3)]).draw(square)
            blf.color(font, 0.9, 0.9, 0.9, 1.0)
            blf.position(font, sx + side + 4 * ui, y, 0)
            blf.draw(font, label)
            sx += side + int(16 * ui) + blf.dimensions(font, label)[0]
        y += line_h
    if legend.stops:
        for p, label in legend.ticks:
            w, _h = blf.dimensions(font, label)
            blf.color(font, 1.0, 1.0, 1.0, 1.0)
            blf.position(font, x + p * bar_w - w / 2, y, 0)
            blf.draw(font, label)
        y += line_h
        coords, colors, indices = [], [], []
        for i, (p, rgba) in enumerate(legend.stops):
            coords += [(x + p * bar_w, y), (x + p * bar_w, y + bar_h)]
            colors += [rgba, rgba]
            if i:
                a = 2 * (i - 1)
                indices += [(a, a + 1, a + 2), (a + 1, a + 3, a + 2)]
        shader = _shader("SMOOTH_COLOR")
        batch_for_shader(shader, "TRIS", {"pos": coords, "color": colors}, indices=indices).draw(shader)
        ticks = []
        for p, _label in legend.ticks:
            ticks += [(x + p * bar_w, y - 4 * ui), (x + p * bar_w, y)]
        if ticks:
            line = _shader("UNIFORM_COLOR")
            line.bind()
            line.uniform_float("color", (1.0, 1.0, 1.0, 1.0))
            batch_for_shader(line, "LINES", {"pos": ticks}).draw(line)
        y += bar_h + int(4 * ui)
    blf.color(font, 1.0, 1.0, 1.0, 1.0)
    blf.position(font, x, y, 0)
    blf.draw(font, f"{obj.name}: {legend.title}")
    gpu.state.blend_set("NONE")


def register() -> None:
    if not _HANDLE and not bpy.app.background:
        _HANDLE.append(bpy.types.SpaceView3D.draw_handler_add(draw, (), "WINDOW", "POST_PIXEL"))


def unregister() -> None:
    while _HANDLE:
        bpy.types.SpaceView3D.draw_handler_remove(_HANDLE.pop(), "WINDOW")
    _CACHE.clear()
