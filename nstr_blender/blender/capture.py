"""A capture the backend listed (:class:`~..core.capture.Capture`) as Blender data: a collection
"NSTR capture: <folder>" holding one empty (the capture's frame), one camera per photo under it, posed
as the capture poses it, and a wire box (the region of interest) the user moves and scales before fitting.

Main thread only. Importing a capture again updates it in place: the cameras it made are found by photo
name and re-posed, missing ones added; the box, the empty and anything the user added are left where the
user put them; nothing the user made is renamed, moved or deleted.
"""

from __future__ import annotations

from collections import Counter

import bpy
from mathutils import Matrix

from ..core.capture import (BOX_PREFIX, COLLECTION_PREFIX, UNIT_CORNERS, Capture, box_bounds, box_transform,
                            display_size, task_box)
from ..core.errors import AddonError

DIR_PROP = "nstr_capture_dir"        # on the empty: the folder as the server resolved it (a fit's dataset_dir)
PHOTO_PROP = "nstr_capture_photo"    # on each camera: its photo's name in the capture
BOX_PROP = "nstr_capture_box"        # on the box object


def find_root(folder: str) -> bpy.types.Object | None:
    return next((o for o in bpy.data.objects if o.get(DIR_PROP) == folder), None)


def capture_box(root: bpy.types.Object) -> bpy.types.Object | None:
    return next((o for o in root.children if o.get(BOX_PROP)), None)


def _collection(scene: bpy.types.Scene, root: bpy.types.Object | None, name: str) -> bpy.types.Collection:
    if root is not None and root.users_collection:
        return root.users_collection[0]
    coll = bpy.data.collections.new(COLLECTION_PREFIX + name)      # a taken name gets Blender's ".001"
    scene.collection.children.link(coll)
    return coll


def _box_mesh(name: str) -> bpy.types.Mesh:
    mesh = bpy.data.meshes.new(name)
    index = {c: i for i, c in enumerate(UNIT_CORNERS)}
    faces = []
    for axis in range(3):
        for side in (-1.0, 1.0):
            quad = [c for c in UNIT_CORNERS if c[axis] == side]
            quad[2], quad[3] = quad[3], quad[2]                     # around the face, not across it
            faces.append([index[c] for c in quad])
    mesh.from_pydata([list(c) for c in UNIT_CORNERS], [], faces)
    mesh.update()
    return mesh


def build_capture(scene: bpy.types.Scene, capture: Capture) -> tuple[bpy.types.Object, int, int]:
    """Make (or update) the capture's objects; returns (the empty, cameras added, cameras updated)."""
    root = find_root(capture.folder)
    coll = _collection(scene, root, capture.name)
    if root is None:
        root = bpy.data.objects.new(COLLECTION_PREFIX + capture.name, None)
        root.empty_display_type = "ARROWS"
        root.empty_display_size = display_size(capture.box)
        root[DIR_PROP] = capture.folder
        coll.objects.link(root)
    root["nstr_capture_kind"], root["nstr_capture_model"] = capture.kind, capture.model
    mine = {o.get(PHOTO_PROP): o for o in root.children if o.type == "CAMERA" and o.get(PHOTO_PROP)}
    added = updated = 0
    for cam in capture.cameras:
        obj = mine.get(cam.name)
        if obj is None:
            stem = cam.name.rsplit(".", 1)[0]
            obj = bpy.data.objects.new(stem, bpy.data.cameras.new(stem))
            obj[PHOTO_PROP] = cam.name
            coll.objects.link(obj)
            obj.parent = root
            added += 1
        else:
            updated += 1
        place_camera(obj, cam, capture)
    box = capture_box(root)
    if box is None:                                          # kept where the user put it on a re-import
        box = bpy.data.objects.new(BOX_PREFIX + capture.name, _box_mesh(BOX_PREFIX + capture.name))
        box[BOX_PROP] = True
        box.display_type = "WIRE"
        box.hide_render = True
        coll.objects.link(box)
        box.parent = root
        box.matrix_parent_inverse = Matrix.Identity(4)
        location, scale = box_transform(*capture.box)
        box.location, box.scale = location, scale
    size = Counter((c.camera.width, c.camera.height) for c in capture.cameras).most_common(1)[0][0]
    first = next(c.camera for c in capture.cameras if (c.camera.width, c.camera.height) == size)
    render = scene.render                                    # the photos' size: the cameras frame them as they are
    render.resolution_x, render.resolution_y, render.resolution_percentage = first.width, first.height, 100
    render.pixel_aspect_x, render.pixel_aspect_y = first.pixel_aspect_x, first.pixel_aspect_y
    if scene.camera is None:
        scene.camera = next(o for o in root.children if o.type == "CAMERA")
    props = scene.nstr
    props.nerf_capture = root
    props.nerf_source = "CAPTURE"
    return root, added, updated


def place_camera(obj: bpy.types.Object, cam, capture: Capture) -> None:
    """Pose a camera in the capture's frame (under its empty) and give it the photo's lens."""
    b = cam.camera
    data = obj.data
    data.type = "PERSP"
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = b.sensor_width
    data.lens = b.lens
    data.shift_x, data.shift_y = b.shift_x, b.shift_y
    data.display_size = display_size(capture.box)
    data["nstr_resolution"] = [b.width, b.height]            # what render resolution and pixel aspect it needs
    data["nstr_pixel_aspect"] = [b.pixel_aspect_x, b.pixel_aspect_y]
    obj["nstr_capture_file"] = cam.file
    obj["nstr_test_view"] = cam.test
    obj.matrix_parent_inverse = Matrix.Identity(4)
    obj.matrix_basis = Matrix([list(row) for row in cam.matrix])


def region_values(root: bpy.types.Object) -> list[float]:
    """``task.box`` from the capture's box object as the user left it, in the capture's frame (the empty's)."""
    box = capture_box(root)
    if box is None:
        raise AddonError(f"the capture '{root.name}' has no region box", "Import the capture again to make one")
    if box.parent == root:              # its own transforms: never a world matrix not yet re-evaluated
        matrix = box.matrix_parent_inverse @ box.matrix_basis
    else:
        matrix = root.matrix_world.inverted_safe() @ box.matrix_world
    bounds = box_bounds([list(row) for row in matrix], [tuple(c) for c in box.bound_box])
    return task_box(*bounds, name=f"the region box '{box.name}'")
