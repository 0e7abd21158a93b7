"""A finished job becomes a new object "<name>_NSTR" in the "NSTR" collection.

The result takes its source's transform (the mesh is stored in the source's local coordinates),
and the source is hidden in the viewport and in renders (one panel toggle shows it again), so the
two never z-fight and a saved file renders clean. The original's data is never changed. The new
object carries the raw and colour attributes, a material that shows the chosen attribute, the
active colour for Solid mode, and the result's meta (ranges, units, descriptions) as a custom
property.

A re-fit of a source replaces its result: the new mesh goes into the existing "<name>_NSTR" (and
"<name>_NSTR_simplified") object, which keeps its name, transform, visibility, collections and
material, and the old mesh datablock is freed; one result per source, as the panel and fit.py both
expect. Versions (".001") are kept only when asked (the scene's *Keep versions*, fit.py
``--keep-versions``).
"""

from __future__ import annotations

import json

import bpy

import numpy as np

from ..core.meshdata import DISPLAY_BY_NAME, MeshResult
from .mesh_io import build_mesh, set_active_color

COLLECTION = "NSTR"
META_PROP = "nstr_meta"          # JSON: ranges, colormaps, units, metrics, timings
SOURCE_PROP = "nstr_source"
NODE_NAME = "NSTR Attribute"


def result_collection(scene: bpy.types.Scene) -> bpy.types.Collection:
    coll = bpy.data.collections.get(COLLECTION)
    if coll is None:
        coll = bpy.data.collections.new(COLLECTION)
    if coll.name not in scene.collection.children and scene.collection.children.get(coll.name) is None:
        scene.collection.children.link(coll)
    return coll


def make_material(name: str, color_key: str) -> bpy.types.Material:
    """A material whose colour is a colour attribute (Color Attribute node -> Principled base colour)."""
    mat = bpy.data.materials.new(name)
    if hasattr(mat, "use_nodes") and not mat.use_nodes:
        mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = next((n for n in nodes if n.type == "BSDF_PRINCIPLED"), None)
    if bsdf is None:
        bsdf = nodes.new("ShaderNodeBsdfPrincipled")
        out = next((n for n in nodes if n.type == "OUTPUT_MATERIAL"), None) or nodes.new("ShaderNodeOutputMaterial")
        links.new(bsdf.outputs[0], out.inputs["Surface"])
    node = nodes.new("ShaderNodeVertexColor")
    node.name = node.label = NODE_NAME
    node.layer_name = color_key
    node.location = (bsdf.location.x - 300, bsdf.location.y)
    links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
    if "Roughness" in bsdf.inputs:
        bsdf.inputs["Roughness"].default_value = 1.0
    for specular in ("Specular", "Specular IOR Level"):    # no highlight washes a colour out (3.x / 4.0+)
        if specular in bsdf.inputs:
            bsdf.inputs[specular].default_value = 0.0
    return mat


def show_attribute(obj: bpy.types.Object, name: str) -> bool:
    """Point the object's material and active colour at display attribute ``name``."""
    attr = DISPLAY_BY_NAME.get(name)
    if attr is None or obj.type != "MESH" or not set_active_color(obj.data, attr.color_key):
        return False
    for slot in obj.material_slots:
        mat = slot.material
        if mat is not None and mat.node_tree is not None and NODE_NAME in mat.node_tree.nodes:
            mat.node_tree.nodes[NODE_NAME].layer_name = attr.color_key
    return True


def create_result_object(scene: bpy.types.Scene, source: str, result: MeshResult, job_id: str = "",
                         display: str = "", replace: bool = True, in_source_frame: bool = False) -> bpy.types.Object:
    """Make the result object; returns it. ``display`` picks the shown attribute (else the first).
    ``in_source_frame``: the mesh is already in the source's coordinates (a capture's frame: the capture's
    empty), so it only takes the source's transform; otherwise it is in world space, as sent.
    With a simplified mesh (the job set task.simplify_faces or task.simplify_error) it becomes
    "<name>_NSTR_simplified", shown, and the dense result stays beside it, hidden (never lost).
    ``replace``: a source's earlier result objects take the new meshes (see the module docstring)."""
    old_dense, old_simple = previous_results(source) if replace else (None, None)
    dense = _create_one(scene, source, f"{source}_NSTR", result, job_id, display, old_dense, in_source_frame)
    if result.lod is None:
        if old_simple is not None:            # no simplified mesh this time: the dense one takes its place
            shown = not old_simple.hide_get()
            remove_result(old_simple)
            set_source_hidden(dense, not shown)
        return dense
    simple = _create_one(scene, source, f"{source}_NSTR_simplified", result.lod, job_id, display, old_simple,
                         in_source_frame)
    simple["nstr_dense"] = dense.name
    if old_simple is None:
        set_source_hidden(dense, True)
    return simple


def previous_results(source: str) -> tuple[bpy.types.Object | None, bpy.types.Object | None]:
    """The source's current (dense, simplified) result objects, None where it has none; of several
    versions, the one with the plain name, else the newest name."""
    mine = sorted((o for o in bpy.data.objects if o.get(SOURCE_PROP) == source and o.type == "MESH"),
                  key=lambda o: o.name)
    dense = [o for o in mine if "nstr_dense" not in o]
    simple = [o for o in mine if "nstr_dense" in o]

    def pick(objects: list, plain: str) -> bpy.types.Object | None:
        return next((o for o in objects if o.name == plain), objects[-1] if objects else None)

    return pick(dense, f"{source}_NSTR"), pick(simple, f"{source}_NSTR_simplified")


def remove_result(obj: bpy.types.Object) -> None:
    """Delete a result object and free its mesh."""
    mesh = obj.data
    bpy.data.objects.remove(obj)
    if mesh is not None and mesh.users == 0:
        bpy.data.meshes.remove(mesh)


def _create_one(scene: bpy.types.Scene, source: str, name: str, result: MeshResult, job_id: str,
                display: str, reuse: bpy.types.Object | None = None,
                in_source_frame: bool = False) -> bpy.types.Object:
    src = bpy.data.objects.get(source)
    frame = src if src is not None else reuse
    matrix = frame.matrix_world.copy() if frame is not None else None
    if matrix is not None and not in_source_frame:  # world -> the source's local coordinates
        inverse = np.array([list(row) for row in matrix.inverted_safe()], dtype=np.float64)
        result.vertices = result.vertices @ inverse[:3, :3].T + inverse[:3, 3]  # float64; build_mesh casts
    mesh = build_mesh(name, result)
    if reuse is None:
        obj = bpy.data.objects.new(name, mesh)
        result_collection(scene).objects.link(obj)
        if matrix is not None:
            obj.matrix_world = matrix
    else:                                          # a re-fit: same object, new mesh, the old one freed
        obj, old = reuse, reuse.data
        for mat in old.materials:
            mesh.materials.append(mat)
        obj.data = mesh
        if old.users == 0:
            bpy.data.meshes.remove(old)
        mesh.name = obj.name
        if "nstr_job" in obj:
            del obj["nstr_job"]
    available = result.available
    keep = {k: result.meta[k] for k in ("ranges", "colormaps", "units", "descriptions", "metrics", "timings",
                                        "detail", "research") if k in result.meta}
    keep["available"] = available
    obj[META_PROP] = json.dumps(keep, default=str)
    obj[SOURCE_PROP] = source
    if job_id:
        obj["nstr_job"] = job_id
    shown = display if display in available else (available[0] if available else "")
    if shown:
        if not mesh.materials:
            mesh.materials.append(make_material(name, DISPLAY_BY_NAME[shown].color_key))
        if hasattr(obj, "nstr_display"):
            obj.nstr_display = shown          # its update shows the attribute
        show_attribute(obj, shown)
    if src is not None and src != obj:
        set_source_hidden(src, True)
    from .detail_colors import recolor_scene

    recolor_scene(scene)       # every result's detail colours on one scale, this one's included
    show_colors_in_solid_mode()
    return obj


def source_object(obj: bpy.types.Object | None) -> bpy.types.Object | None:
    """The object a result was fitted to, when it is still in this file."""
    if obj is None or SOURCE_PROP not in obj:
        return None
    return bpy.data.objects.get(str(obj[SOURCE_PROP]))


def source_hidden(src: bpy.types.Object) -> bool:
    return bool(src.hide_render)


def set_source_hidden(src: bpy.types.Object, hidden: bool) -> None:
    """Hide (or show) the source in the viewport and in renders; both are saved with the file."""
    src.hide_render = hidden
    try:
        src.hide_set(hidden)                    # the eye icon (per view layer, saved)
    except RuntimeError:                        # not in the active view layer
        src.hide_viewport = hidden


def show_colors_in_solid_mode() -> None:
    """Solid mode shows the active colour attribute in every 3D view of the file (saved with it), so
    a result's colours show at once and again after reopening, unlit (flat: a highlight would wash a
    colour toward white, and the legend's colours would not match). Material/Rendered modes use the
    result's material, which reads the same attribute without highlights."""
    for screen in bpy.data.screens:
        for area in screen.areas:
            for space in area.spaces:
                if space.type == "VIEW_3D":
                    space.shading.color_type = "VERTEX"
                    space.shading.light = "FLAT"
                    space.shading.show_cavity = True    # the shape from ridges and valleys, not highlights
    for scene in bpy.data.scenes:              # Workbench renders and the file's own shading settings
        scene.display.shading.color_type = "VERTEX"


def result_meta(obj: bpy.types.Object | None) -> dict | None:
    """The stored meta of a result object, or None for any other object."""
    if obj is None or META_PROP not in obj:
        return None
    try:
        meta = json.loads(obj[META_PROP])
    except (TypeError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None
