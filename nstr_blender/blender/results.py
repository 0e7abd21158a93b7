"""A finished job becomes a new object "<name>_NSTR" in the "NSTR" collection.

The original object is never touched. The new object carries the raw and colour
attributes, a material that shows the chosen attribute, and the result's meta
(ranges for the legend, metrics) as a custom property.
"""

from __future__ import annotations

import json

import bpy

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
        bsdf.inputs["Roughness"].default_value = 0.6
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
                         display: str = "") -> bpy.types.Object:
    """Make the result object; returns it. ``display`` picks the shown attribute (else the first)."""
    name = f"{source}_NSTR"
    mesh = build_mesh(name, result)
    obj = bpy.data.objects.new(name, mesh)
    result_collection(scene).objects.link(obj)
    available = result.available
    shown = display if display in available else (available[0] if available else "")
    if shown:
        mesh.materials.append(make_material(name, DISPLAY_BY_NAME[shown].color_key))
        show_attribute(obj, shown)
    keep = {k: result.meta[k] for k in ("ranges", "colormaps", "units", "metrics", "timings") if k in result.meta}
    keep["available"] = available
    obj[META_PROP] = json.dumps(keep, default=str)
    obj[SOURCE_PROP] = source
    if job_id:
        obj["nstr_job"] = job_id
    if shown and hasattr(obj, "nstr_display"):
        obj.nstr_display = shown
    return obj


def result_meta(obj: bpy.types.Object | None) -> dict | None:
    """The stored meta of a result object, or None for any other object."""
    if obj is None or META_PROP not in obj:
        return None
    try:
        meta = json.loads(obj[META_PROP])
    except (TypeError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None
