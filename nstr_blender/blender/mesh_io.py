"""Blender meshes <-> the job's arrays: read evaluated objects, build result meshes.

Fast buffer paths only (``foreach_get`` / ``foreach_set``), with the one version split
that matters: Blender 3.4 has no 'position' / '.corner_vert' attributes, 4.0+ derives
polygon sizes from loop starts.
"""

from __future__ import annotations

import bpy
import numpy as np

from ..core.meshdata import DERIVED_KEYS, RAW_KEYS, MeshResult, corner_arrays, mesh_arrays

SELECTION_LAYERS = (".select_vert", ".select_edge", ".select_poly")   # Blender 3.5+: all True on new geometry


def evaluated_arrays(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> dict[str, np.ndarray]:
    """The object as the viewport shows it (modifiers applied), triangulated, in world space."""
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        mesh.calc_loop_triangles()
        co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
        mesh.vertices.foreach_get("co", co)
        tris = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int32)
        mesh.loop_triangles.foreach_get("vertices", tris)
    finally:
        evaluated.to_mesh_clear()
    matrix = np.array([list(row) for row in evaluated.matrix_world], dtype=np.float64)
    return mesh_arrays(co, tris, matrix, obj.name)


def build_mesh(name: str, result: MeshResult) -> bpy.types.Mesh:
    """A new mesh datablock with the result's geometry, raw attributes and colours. Light in the .blend:
    raw arrays as FLOAT only where no other stored one gives them (DERIVED_KEYS), colours as bytes
    (what the viewport shows; 4 bytes a vertex instead of 16), no all-selected selection layers."""
    mesh = bpy.data.meshes.new(name)
    verts = np.ascontiguousarray(result.vertices, dtype=np.float32).reshape(-1)  # Blender stores float32
    corners, loop_start = corner_arrays(result.faces)
    n_faces = len(result.faces)
    mesh.vertices.add(len(result.vertices))
    mesh.loops.add(len(corners))
    mesh.polygons.add(n_faces)
    if "position" in mesh.attributes:                       # Blender 3.5+
        mesh.attributes["position"].data.foreach_set("vector", verts)
    else:                                                   # Blender 3.4
        mesh.vertices.foreach_set("co", verts)
    if ".corner_vert" in mesh.attributes:                   # Blender 3.6+
        mesh.attributes[".corner_vert"].data.foreach_set("value", corners)
    else:
        mesh.loops.foreach_set("vertex_index", corners)
    mesh.polygons.foreach_set("loop_start", loop_start)
    if bpy.app.version < (4, 0, 0):
        mesh.polygons.foreach_set("loop_total", np.full(n_faces, 3, dtype=np.int32))
    mesh.update(calc_edges=True)
    if hasattr(mesh, "shade_smooth"):                       # Blender 4.1+
        mesh.shade_smooth()
    else:
        mesh.polygons.foreach_set("use_smooth", np.ones(n_faces, dtype=bool))

    for name in SELECTION_LAYERS:
        if name in mesh.attributes:
            mesh.attributes.remove(mesh.attributes[name])
    for key, values in result.raw.items():
        if key in DERIVED_KEYS:
            continue
        kind = RAW_KEYS.get(key, "FLOAT")
        attr = mesh.attributes.new(key, kind, "POINT")
        attr.data.foreach_set("vector" if kind == "FLOAT_VECTOR" else "value", values.reshape(-1))
    for key, values in result.colors.items():
        attr = mesh.color_attributes.new(key, "BYTE_COLOR", "POINT")   # takes linear values, stores sRGB bytes
        attr.data.foreach_set("color", values.reshape(-1))
    return mesh


def set_active_color(mesh: bpy.types.Mesh, color_key: str) -> bool:
    """Make ``color_key`` the colour the viewport (Attribute mode) and renders use."""
    colors = mesh.color_attributes
    if color_key not in colors:
        return False
    colors.active_color = colors[color_key]
    if hasattr(colors, "active_color_name"):
        colors.active_color_name = color_key
    if hasattr(colors, "render_color_index"):
        names = [c.name for c in colors]
        colors.render_color_index = names.index(color_key)
    mesh.update()
    return True
