"""A finished job becomes a new object "<name>_NSTR" in the "NSTR" collection.

The original object is never touched. The new object carries the raw and colour
attributes, a material that shows the chosen attribute, and the result's meta
(ranges for the legend, metrics) as a custom property.
"""

from __future__ import annotations

import json

import bpy

import numpy as np

from ..core.meshdata import DISPLAY_BY_NAME, MeshResult, legend_stops
from .mesh_io import build_mesh, set_active_color

COLLECTION = "NSTR"
META_PROP = "nstr_meta"          # JSON: ranges, colormaps, units, metrics, timings
SOURCE_PROP = "nstr_source"
NODE_NAME = "NSTR Attribute"
LEGEND_NODE = "NSTR Legend"       # a Color Ramp node that only holds the legend's colour bar
SCALAR_OF = {"local_frequency": "local_frequency", "bandwidth": "bandwidth",
             "transport_residual": "transport_residual"}   # drift (hue = direction) has no 1-D bar


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
    legend = nodes.new("ShaderNodeValToRGB")
    legend.name = legend.label = LEGEND_NODE
    legend.location = (node.location.x, node.location.y - 250)
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
    update_legend(obj, name)
    return True


def legend_node(obj: bpy.types.Object | None):
    """The Color Ramp holding the shown attribute's colour bar, or None."""
    mat = obj.active_material if obj is not None else None
    if mat is None or mat.node_tree is None:
        return None
    return mat.node_tree.nodes.get(LEGEND_NODE)


def update_legend(obj: bpy.types.Object, name: str) -> bool:
    """Fill the legend ramp from the mesh's own values and colours (what the viewport shows)."""
    node = legend_node(obj)
    raw_name = SCALAR_OF.get(name)
    mesh = obj.data
    attr = DISPLAY_BY_NAME[name]
    if node is None or raw_name is None or raw_name not in mesh.attributes or attr.color_key not in mesh.attributes:
        return False
    n = len(mesh.vertices)
    values = np.empty(n, dtype=np.float32)
    mesh.attributes[raw_name].data.foreach_get("value", values)
    colors = np.empty(n * 4, dtype=np.float32)
    mesh.attributes[attr.color_key].data.foreach_get("color", colors)
    meta = result_meta(obj) or {}
    lo, hi = meta.get("ranges", {}).get(raw_name, (float(values.min()), float(values.max())))
    stops = legend_stops(values, colors, float(lo), float(hi))
    if not stops:
        return False
    ramp = node.color_ramp
    while len(ramp.elements) > 1:
        ramp.elements.remove(ramp.elements[-1])
    ramp.elements[0].position, ramp.elements[0].color = stops[0]
    for position, color in stops[1:]:
        ramp.elements.new(position).color = color
    return True


def create_result_object(scene: bpy.types.Scene, source: str, result: MeshResult, job_id: str = "",
                         display: str = "") -> bpy.types.Object:
    """Make the result object; returns it. ``display`` picks the shown attribute (else the first)."""
    name = f"{source}_NSTR"
    mesh = build_mesh(name, result)
    obj = bpy.data.objects.new(name, mesh)
    result_collection(scene).objects.link(obj)
    available = result.available
    keep = {k: result.meta[k] for k in ("ranges", "colormaps", "units", "metrics", "timings") if k in result.meta}
    keep["available"] = available
    obj[META_PROP] = json.dumps(keep, default=str)
    obj[SOURCE_PROP] = source
    if job_id:
        obj["nstr_job"] = job_id
    shown = display if display in available else (available[0] if available else "")
    if shown:
        mesh.materials.append(make_material(name, DISPLAY_BY_NAME[shown].color_key))
        if hasattr(obj, "nstr_display"):
            obj.nstr_display = shown          # its update shows the attribute
        show_attribute(obj, shown)
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
