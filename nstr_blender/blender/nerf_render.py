"""Render a NeRF dataset (``transforms_{train,test}.json`` + RGBA PNGs) of objects in the open scene.

Plain bpy, no UI: the operator hands a :class:`ViewJob` to the timer, which renders one view per
call; :func:`render_nerf_dataset` renders them all at once (benchmarks). Works in Blender 3.4 and in the
bpy 5.0 module. The scene is left as it was found: the temporary camera is removed and every
render setting and visibility flag touched here is restored, even when a render fails.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterable

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ..core import nerf_views

# Object types that show up in renders; the ones not asked for are hidden while rendering.
_RENDERABLE = {"MESH", "CURVE", "CURVES", "SURFACE", "META", "FONT", "VOLUME", "POINTCLOUD", "GPENCIL",
               "GREASEPENCIL"}


def _engine_id(engine: str) -> str:
    """Blender's engine id for 'CYCLES', 'BLENDER_WORKBENCH' or any spelling of EEVEE (3.x/4.x/5.x)."""
    name = engine.upper()
    if name in ("CYCLES", "BLENDER_WORKBENCH", "WORKBENCH"):
        return "BLENDER_WORKBENCH" if "WORKBENCH" in name else "CYCLES"
    if "EEVEE" in name:
        items = bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items.keys()
        for candidate in ("BLENDER_EEVEE_NEXT", "BLENDER_EEVEE"):
            if candidate in items:
                return candidate
        return "BLENDER_EEVEE"
    raise ValueError(f"unknown render engine '{engine}': use CYCLES, BLENDER_WORKBENCH or EEVEE")


def _world_corners(objects: Iterable[Any]) -> list[tuple[float, float, float]]:
    corners = []
    for obj in objects:
        for c in obj.bound_box:
            w = obj.matrix_world @ Vector(c)
            corners.append((w.x, w.y, w.z))
    return corners


class _Saved:
    """Remember attributes of Blender data blocks and put them back."""

    def __init__(self) -> None:
        self._items: list[tuple[Any, str, Any]] = []

    def set(self, owner: Any, attr: str, value: Any) -> None:
        self._items.append((owner, attr, getattr(owner, attr)))
        setattr(owner, attr, value)

    def restore(self) -> None:
        for owner, attr, value in reversed(self._items):
            try:
                setattr(owner, attr, value)
            except (ReferenceError, AttributeError, TypeError):  # the data block went away
                pass


class ViewRenderer:
    """Render a NeRF dataset one view at a time, so the UI stays live (progress, cancel).

    Construction sets the scene up (a temporary camera, render settings, visibility); each
    :meth:`render_next` renders one view; :meth:`close` puts everything back, also after a failure
    or a cancel. Writes ``train/r_*.png``, ``test/r_*.png`` (RGBA, transparent film) and
    ``transforms_train.json`` / ``transforms_test.json`` with ``camera_angle_x`` and the objects'
    world ``aabb`` (each file once its split is complete).
    """

    def __init__(self, context: Any, objects: Iterable[Any], out_dir: str, n_train: int, n_test: int,
                 resolution: int, engine: str = "CYCLES", hemisphere: bool = True, samples: int = 32) -> None:
        objects = [o for o in objects if o.type in _RENDERABLE]
        if not objects:
            raise ValueError("no renderable objects to render: select mesh objects")
        if n_train < 1 or n_test < 0 or resolution < 8:
            raise ValueError("need at least 1 training view, 0 or more test views and a resolution of 8 or more")
        self.scene = scene = context.scene
        self.out_dir = out_dir
        center, radius, self.box = nerf_views.bounding_sphere(_world_corners(objects))
        self.angle = angle = nerf_views.DEFAULT_CAMERA_ANGLE_X
        self.plan: list[tuple[str, int, list]] = []       # (split, index, pose) in render order
        self.splits = [(split, n) for split, n in (("train", n_train), ("test", n_test)) if n > 0]
        for split, n, offset in (("train", n_train, 0.0), ("test", n_test, 0.5)):
            for i, pose in enumerate(nerf_views.orbit_poses(center, radius, n, hemisphere, offset, angle)):
                self.plan.append((split, i, pose))
        self.frames: dict[str, list] = {split: [] for split, _ in self.splits}
        self.done = 0
        self.closed = False
        os.makedirs(out_dir, exist_ok=True)
        for split, _ in self.splits:
            os.makedirs(os.path.join(out_dir, split), exist_ok=True)

        self.saved = saved = _Saved()
        self.cam_data = cam_data = bpy.data.cameras.new("NSTR NeRF camera")
        self.cam_obj = cam_obj = bpy.data.objects.new("NSTR NeRF camera", cam_data)
        scene.collection.objects.link(cam_obj)
        try:
            cam_data.sensor_fit = "HORIZONTAL"
            cam_data.angle = angle
            cam_data.clip_start = max(1e-4, 0.01 * radius)
            cam_data.clip_end = 100.0 * radius + nerf_views.framing_distance(radius, angle)
            r = scene.render
            saved.set(scene, "camera", cam_obj)
            saved.set(r, "engine", _engine_id(engine))
            saved.set(r, "resolution_x", resolution)
            saved.set(r, "resolution_y", resolution)
            saved.set(r, "resolution_percentage", 100)
            saved.set(r, "pixel_aspect_x", 1.0)
            saved.set(r, "pixel_aspect_y", 1.0)
            saved.set(r, "film_transparent", True)
            saved.set(r, "use_border", False)
            saved.set(r, "filepath", r.filepath)
            saved.set(r.image_settings, "file_format", "PNG")
            saved.set(r.image_settings, "color_mode", "RGBA")
            saved.set(r.image_settings, "color_depth", "8")
            saved.set(scene.view_settings, "view_transform", "Standard")  # plain sRGB, as NeRF datasets are
            saved.set(scene.view_settings, "look", "None")
            if r.engine == "CYCLES":
                saved.set(scene.cycles, "samples", samples)
                saved.set(scene.cycles, "use_denoising", False)  # Debian's Cycles has no OpenImageDenoise
                saved.set(scene.cycles, "device", "CPU")
                if hasattr(scene.cycles, "use_adaptive_sampling"):
                    saved.set(scene.cycles, "use_adaptive_sampling", False)
            wanted = {o.name for o in objects}
            for obj in scene.objects:
                if obj.type in _RENDERABLE and obj.name not in wanted:
                    saved.set(obj, "hide_render", True)
                elif obj.name in wanted:
                    saved.set(obj, "hide_render", False)
        except BaseException:
            self.close()
            raise

    @property
    def total(self) -> int:
        return len(self.plan)

    def render_next(self) -> bool:
        """Render the next view; True when every view is written."""
        if self.done >= self.total:
            return True
        split, i, pose = self.plan[self.done]
        self.cam_obj.matrix_world = Matrix(pose)
        rel = f"{split}/r_{i:03d}.png"
        self.scene.render.filepath = os.path.join(self.out_dir, rel)
        bpy.ops.render.render(write_still=True)
        self.frames[split].append(("./" + rel, pose))
        self.done += 1
        if self.done == self.total or self.plan[self.done][0] != split:     # the split is complete
            doc = nerf_views.transforms_dict(self.frames[split], self.angle, aabb=self.box)
            nerf_views.write_transforms(os.path.join(self.out_dir, f"transforms_{split}.json"), doc)
        return self.done >= self.total

    def arrays(self) -> dict:
        """The rendered dataset in the ``nerf`` job's array form (no shared folder needed):
        uint8 RGBA views, camera-to-world poses, pinhole intrinsics in pixels."""
        out: dict = {}
        for split, _n in self.splits:
            images, poses = [], []
            for rel, pose in self.frames[split]:
                path = os.path.join(self.out_dir, rel[2:])
                image = bpy.data.images.load(path, check_existing=False)
                try:
                    w, h = image.size
                    pixels = np.empty(w * h * 4, dtype=np.float32)
                    image.pixels.foreach_get(pixels)        # the PNG's own values, rows going up
                finally:
                    bpy.data.images.remove(image)
                images.append(np.round(pixels.reshape(h, w, 4)[::-1] * 255.0).astype(np.uint8))
                poses.append(np.asarray(pose, dtype=np.float32))
            out[f"{split}_images"] = np.ascontiguousarray(np.stack(images))
            out[f"{split}_poses"] = np.stack(poses)
        h, w = out["train_images"].shape[1:3]
        fx = 0.5 * w / math.tan(0.5 * self.angle)
        out["intrinsics"] = np.array([fx, fx, 0.5 * w, 0.5 * h], dtype=np.float64)
        # the object's world box: the field is fitted inside it (a box guessed from the cameras is loose)
        out["aabb"] = np.asarray(self.box, dtype=np.float32).reshape(2, 3)
        return out

    def close(self) -> None:
        """Put the scene back as it was (safe to call twice)."""
        if self.closed:
            return
        self.closed = True
        self.saved.restore()
        try:
            bpy.data.objects.remove(self.cam_obj, do_unlink=True)
            bpy.data.cameras.remove(self.cam_data)
        except (ReferenceError, RuntimeError):
            pass


class ViewJob(ViewRenderer):
    """A :class:`ViewRenderer` the timer drives, with what to submit once the views are written."""

    def __init__(self, source: str, config: dict, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source = source
        self.config = dict(config)
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def render_next(self) -> bool:
        return True if self.cancelled else super().render_next()


def render_nerf_dataset(context: Any, objects: Iterable[Any], out_dir: str, n_train: int, n_test: int,
                        resolution: int, engine: str = "CYCLES", hemisphere: bool = True,
                        samples: int = 32) -> str:
    """Render every view at once (benchmarks and scripts that want to wait); returns ``out_dir``."""
    renderer = ViewRenderer(context, objects, out_dir, n_train, n_test, resolution, engine, hemisphere, samples)
    try:
        while not renderer.render_next():
            pass
    finally:
        renderer.close()
    return out_dir


def add_demo_object(context: Any, kind: str = "suzanne") -> Any:
    """A textured object to render for tests, benchmarks and demos: Suzanne (smooth) or a cube, with a
    procedural checker in two colours, lit by a sun. Returns the object."""
    scene = context.scene
    if kind == "suzanne":
        bpy.ops.mesh.primitive_monkey_add(size=1.6)
        obj = context.active_object
        mod = obj.modifiers.new("subdiv", "SUBSURF")
        mod.levels = mod.render_levels = 1
        for poly in obj.data.polygons:
            poly.use_smooth = True
    elif kind == "cube":
        bpy.ops.mesh.primitive_cube_add(size=1.2)
        obj = context.active_object
    else:
        raise ValueError(f"unknown demo object '{kind}': use suzanne or cube")
    mat = bpy.data.materials.new("NSTR demo checker")
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    checker = nodes.new("ShaderNodeTexChecker")
    checker.inputs["Scale"].default_value = 2.5
    checker.inputs["Color1"].default_value = (0.85, 0.25, 0.05, 1.0)
    checker.inputs["Color2"].default_value = (0.1, 0.35, 0.8, 1.0)
    coords = nodes.new("ShaderNodeTexCoord")
    links.new(coords.outputs["Object"], checker.inputs["Vector"])
    links.new(checker.outputs["Color"], bsdf.inputs["Base Color"])
    obj.data.materials.append(mat)
    sun_data = bpy.data.lights.new("NSTR demo sun", "SUN")
    sun_data.energy = 3.0
    sun = bpy.data.objects.new("NSTR demo sun", sun_data)
    sun.rotation_euler = (0.6, 0.2, 0.8)
    scene.collection.objects.link(sun)
    if scene.world is None:
        scene.world = bpy.data.worlds.new("World")
    scene.world.use_nodes = True
    bg = next((n for n in scene.world.node_tree.nodes if n.type == "BACKGROUND"), None)
    if bg is not None:
        bg.inputs["Color"].default_value = (0.4, 0.4, 0.4, 1.0)
    return obj
