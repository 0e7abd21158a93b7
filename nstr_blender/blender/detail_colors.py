"""The scene's detail colours and vertex groups (bpy glue of core/detail_scale.py).

Every result with detail maps is recoloured whenever a result arrives (or the user asks), so all of
them share one physical scale; the scale is kept on the scene (``nstr_detail_scale``) for the legend.
Runs on the main thread only (a timer tick or an operator), as everything that touches bpy.
"""

from __future__ import annotations

import json

import bpy
import numpy as np

from ..core.detail_scale import (DetailScale, ResultDetail, detail_colors, group_weights, lost_colors,
                                 result_detail, scene_scale, weight_levels)
from ..core.meshdata import srgb_to_linear
from .results import result_meta

SCALE_PROP = "nstr_detail_scale"


def read_point_attribute(mesh: bpy.types.Mesh, name: str, width: int = 1) -> np.ndarray | None:
    """A per-vertex FLOAT (width 1) or FLOAT_VECTOR (width 3) attribute as an array; None when absent."""
    attr = mesh.attributes.get(name)
    kind = "FLOAT_VECTOR" if width == 3 else "FLOAT"
    if attr is None or attr.data_type != kind or attr.domain != "POINT":
        return None
    out = np.empty(len(mesh.vertices) * width, np.float32)
    attr.data.foreach_get("vector" if width == 3 else "value", out)
    return out.reshape(-1, 3) if width == 3 else out


def _write_color(mesh: bpy.types.Mesh, key: str, srgb: np.ndarray) -> None:
    attr = mesh.color_attributes.get(key)
    if attr is None:
        attr = mesh.color_attributes.new(key, "FLOAT_COLOR", "POINT")
    attr.data.foreach_set("color", srgb_to_linear(srgb).reshape(-1))
    mesh.update()


def object_detail(obj: bpy.types.Object) -> tuple[ResultDetail, dict] | None:
    """The detail maps stored on a result object, and its meta["detail"]; None for other objects.
    The result mesh is in its source's local frame under the source's matrix, and the backend measured
    in world units, so lengths are scene units as they are."""
    meta = result_meta(obj)
    if meta is None or obj.type != "MESH" or not isinstance(meta.get("detail"), dict):
        return None
    mesh = obj.data
    raw = {k: read_point_attribute(mesh, k) for k in ("detail_wavelength", "detail_amplitude", "detail_state")}
    if any(v is None for v in raw.values()):
        return None
    d = result_detail(raw, meta["detail"])
    return (d, meta["detail"]) if d is not None else None


def scene_results(scene: bpy.types.Scene) -> list[bpy.types.Object]:
    return [o for o in scene.objects if o.type == "MESH" and result_meta(o) is not None]


def current_scale(scene: bpy.types.Scene) -> DetailScale | None:
    raw = scene.get(SCALE_PROP)
    try:
        return DetailScale.from_dict(json.loads(raw)) if raw else None
    except (TypeError, ValueError, KeyError):
        return None


def recolor_scene(scene: bpy.types.Scene, stretch_to: bpy.types.Object | None = None) -> DetailScale | None:
    """Colour every result's ``color_detail`` (and ``color_detail_lost``) on one scale and refresh its
    vertex groups; ``stretch_to``: range the hue over that object's own wavelengths (the opt-in)."""
    found = [(o, od) for o in scene_results(scene) if (od := object_detail(o)) is not None]
    if not found:
        return None
    stretch = next((od[0] for o, od in found if o == stretch_to), None)
    scale = scene_scale([od[0] for _o, od in found], stretch=stretch)
    if scale is None:
        return None
    scene[SCALE_PROP] = json.dumps(scale.to_dict())
    for obj, (d, meta_detail) in found:
        mesh = obj.data
        _write_color(mesh, "color_detail", detail_colors(d, scale))
        lost = read_point_attribute(mesh, "detail_lost")
        flag = float(meta_detail.get("lost_flag", 0.0))
        if lost is not None and flag > 0:
            _write_color(mesh, "color_detail_lost", lost_colors(lost, flag))
        write_groups(obj, group_weights(d, scale, read_point_attribute(mesh, "crease_strength"), lost, flag))
    return scale


def write_groups(obj: bpy.types.Object, weights: dict[str, np.ndarray]) -> None:
    """(Re)make the object's NSTR vertex groups with these weights (0..1 per vertex)."""
    for name, w in weights.items():
        group = obj.vertex_groups.get(name)
        if group is not None:
            obj.vertex_groups.remove(group)
        group = obj.vertex_groups.new(name=name)
        for weight, idx in weight_levels(w):
            group.add(idx.tolist(), weight, "REPLACE")
