"""Operators: start/stop the backend, Fit NSTR, render NeRF views, cancel, release GPU, display."""

from __future__ import annotations

import time
from pathlib import Path

import bpy
from bpy.props import BoolProperty, IntProperty, StringProperty

from ..core.errors import AddonError, SelectionError
from ..core.session import CALL_TIMEOUT_S, describe
from ..core.settings import user_dir
from . import mesh_io, results
from .preferences import backend_settings
from .runtime import RUNTIME, ensure_timer


def _fail(op: bpy.types.Operator, err: BaseException) -> set[str]:
    text = describe(err)
    RUNTIME.message = text           # shown once in the panel, until the state changes
    op.report({"ERROR"}, text)
    return {"CANCELLED"}


def split_selection(objects) -> tuple[list, list[str]]:
    """(mesh objects, names of the others). Raises SelectionError when nothing can be fitted, its fix
    in the caller's words (the panel's, or fit.py's flags: ``RUNTIME.wording``)."""
    objects = list(objects)
    wording = RUNTIME.wording
    if not objects:
        raise SelectionError("nothing is selected", wording.select)
    meshes = [o for o in objects if o.type == "MESH"]
    others = [o.name for o in objects if o.type != "MESH"]
    if not meshes:
        kinds = ", ".join(f"'{o.name}' ({o.type.lower()})" for o in objects[:3])
        raise SelectionError(f"no mesh in the selection: {kinds}", wording.select_meshes)
    return meshes, others


def ensure_backend(context: bpy.types.Context) -> None:
    """Make sure jobs can be sent: launch the local backend or connect to the URL, in the background
    (the timer reports a failure in the panel). Bad settings raise AddonError here, at once."""
    RUNTIME.start_backend(backend_settings(context))


def nerf_views_dir(props) -> Path:
    """Where this fit's views go: the panel's folder, or, for a file that was never saved (a "//"
    path has no folder to be relative to), a new folder in the add-on's user folder."""
    text = props.nerf_dir.strip() or "//nstr_nerf_views"
    if text.startswith("//") and not bpy.data.filepath:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return user_dir() / "nerf_views" / f"{bpy.path.clean_name(bpy.context.scene.name)}-{stamp}"
    return Path(bpy.path.abspath(text))


class NSTR_OT_backend_start(bpy.types.Operator):
    """Launch the local backend process or connect to the server URL (see the add-on preferences)"""
    bl_idname = "nstr.backend_start"
    bl_label = "Start Backend"

    def execute(self, context):
        try:
            ensure_backend(context)
        except AddonError as err:
            return _fail(self, err)
        return {"FINISHED"}


class NSTR_OT_backend_stop(bpy.types.Operator):
    """Stop the local backend process (a server URL, or another Blender's local server, is only
    disconnected)"""
    bl_idname = "nstr.backend_stop"
    bl_label = "Stop Backend"

    def execute(self, context):
        active = RUNTIME.tracker.active()
        RUNTIME.stop_backend()
        for record in active:
            record.mark_error("the backend was stopped")
        return {"FINISHED"}


class NSTR_OT_fit(bpy.types.Operator):
    """Fit an NSTR field to every selected mesh (modifiers applied, world space); results appear
    as new objects in the "NSTR" collection"""
    bl_idname = "nstr.fit"
    bl_label = "Fit NSTR"

    def execute(self, context):
        try:
            settings = context.scene.nstr.task_settings()      # malformed overrides: one line, no traceback
        except AddonError as err:
            return _fail(self, err)
        if settings.task == "nerf":
            if context.scene.nstr.nerf_source == "CAPTURE":
                return bpy.ops.nstr.fit_capture()
            return bpy.ops.nstr.render_nerf_views()
        try:
            meshes, others = split_selection(context.selected_objects)
            config = settings.job_config()
            depsgraph = context.evaluated_depsgraph_get()
            inputs = [(obj.name, mesh_io.evaluated_arrays(obj, depsgraph)) for obj in meshes]
            ensure_backend(context)
        except AddonError as err:
            return _fail(self, err)
        for name, arrays in inputs:
            RUNTIME.tracker.add(name, "sdf", config, arrays)     # the timer sends them
        names = ", ".join(n for n, _ in inputs)
        if others:
            self.report({"WARNING"}, f"Skipped {len(others)} non-mesh object(s): {', '.join(others[:5])}")
        self.report({"INFO"}, f"Fitting {len(inputs)} object(s): {names}")
        return {"FINISHED"}


class NSTR_OT_render_nerf_views(bpy.types.Operator):
    """Render training views of the selection (transforms.json + images), one per timer tick, then fit
    a NeRF to them"""
    bl_idname = "nstr.render_nerf_views"
    bl_label = "Render Views & Fit NeRF"

    def execute(self, context):
        from . import nerf_render
        props = context.scene.nstr
        objects = list(context.selected_objects)
        try:
            if RUNTIME.views is not None:
                raise AddonError("NeRF views are already being rendered", "Wait for them, or press Cancel")
            settings = props.task_settings()
            meshes, _others = split_selection(objects)
            config = settings.job_config()
            out_dir = nerf_views_dir(props)
            ensure_backend(context)                 # starts while the views render
            source = meshes[0].name if len(meshes) == 1 else "NeRF"
            RUNTIME.views = nerf_render.ViewJob(source, config, context, meshes, str(out_dir), props.nerf_train,
                                                props.nerf_test, props.nerf_resolution, props.nerf_engine,
                                                props.nerf_hemisphere)
        except AddonError as err:
            return _fail(self, err)
        except (ValueError, OSError) as err:     # the renderer's own one-line input errors, an unwritable folder
            return _fail(self, AddonError(f"cannot render the views: {err}"))
        RUNTIME.views_dir = str(out_dir)
        ensure_timer()
        self.report({"INFO"}, f"Rendering {RUNTIME.views.total} views to {out_dir}")
        return {"FINISHED"}


class NSTR_OT_import_capture(bpy.types.Operator):
    """Import a photo capture (a COLMAP model with images/, or a nerfstudio/instant-ngp transforms.json): one
    camera per photo, posed as the capture poses it, and a region box to move and scale before fitting. The
    backend reads the folder, so it must lie inside its data root (the add-on preferences' Captures folder)"""
    bl_idname = "nstr.import_capture"
    bl_label = "Import Capture"
    bl_options = {"REGISTER", "UNDO"}
    directory: StringProperty(name="Capture folder", subtype="DIR_PATH")
    filter_folder: BoolProperty(default=True, options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        folder = bpy.path.abspath(self.directory).rstrip("/\\") if self.directory.strip() else ""
        try:
            if not folder:
                raise AddonError("no capture folder was chosen",
                                 "Choose the folder that holds images/ and sparse/0/, or transforms.json")
            ensure_backend(context)
        except AddonError as err:
            return _fail(self, err)
        RUNTIME.import_capture(folder)
        ensure_timer()
        if RUNTIME.session is None or RUNTIME.session.client is None:   # the timer imports it once it answers
            self.report({"INFO"}, f"Starting the backend; {folder} is imported when it answers")
            return {"FINISHED"}
        outcome = RUNTIME.wait_capture(CALL_TIMEOUT_S)   # the server reads poses, not photos: quick
        if outcome is None:
            self.report({"INFO"}, f"Still reading {folder}; it is imported when the backend answers")
            return {"FINISHED"}
        ok, text = outcome
        if not ok:
            return _fail(self, AddonError(text))
        self.report({"INFO"}, text)
        return {"FINISHED"}


class NSTR_OT_fit_capture(bpy.types.Operator):
    """Fit a NeRF to the imported capture's photos (read by the backend from the capture folder), inside its
    region box as it now stands; the mesh appears in the capture's frame"""
    bl_idname = "nstr.fit_capture"
    bl_label = "Fit NeRF to Capture"

    def execute(self, context):
        from .capture import DIR_PROP, region_values

        props = context.scene.nstr
        root = props.nerf_capture
        try:
            settings = props.task_settings()
            if root is None or DIR_PROP not in root:
                raise AddonError("no capture is chosen to fit", "Import one with Import Capture, or pick it under Capture")
            config = settings.job_config()
            config["dataset_dir"] = str(root[DIR_PROP])          # the server's path: it reads the photos
            config["task.box"] = region_values(root)
            ensure_backend(context)
        except AddonError as err:
            return _fail(self, err)
        record = RUNTIME.tracker.add(root.name, "nerf", config, {})   # the timer sends it; no arrays: the folder
        record.in_source_frame = True                           # the mesh comes back in the capture's frame
        ensure_timer()
        self.report({"INFO"}, f"Fitting {root.name} inside its box {config['task.box']}")
        return {"FINISHED"}


class NSTR_OT_cancel(bpy.types.Operator):
    """Cancel a running or queued job (-1: all of them)"""
    bl_idname = "nstr.cancel"
    bl_label = "Cancel"
    index: IntProperty(default=-1)

    def execute(self, context):
        records = RUNTIME.tracker.records
        if RUNTIME.views is not None and self.index < 0:
            RUNTIME.views.cancel()                      # the timer closes it and restores the scene
        chosen = [r for r in records if r.active] if self.index < 0 else \
            ([records[self.index]] if 0 <= self.index < len(records) else [])
        for record in chosen:
            if RUNTIME.session is None:
                record.state, record.message, record.arrays = "cancelled", "cancelled", None
            else:
                RUNTIME.session.cancel_async(record)    # the timer applies the answer
        ensure_timer()
        self.report({"INFO"}, f"Cancelling {len(chosen)} job(s)")
        return {"FINISHED"}


class NSTR_OT_release_gpu(bpy.types.Operator):
    """Free the backend's cached GPU memory (models and buffers of finished jobs)"""
    bl_idname = "nstr.release_gpu"
    bl_label = "Release GPU"

    def execute(self, context):
        if RUNTIME.session is None or RUNTIME.session.client is None:
            return _fail(self, AddonError("the backend is not started", RUNTIME.wording.start))
        try:
            RUNTIME.session.release_gpu_async()
        except AddonError as err:
            return _fail(self, err)
        ensure_timer()
        self.report({"INFO"}, "Releasing the backend's GPU memory")
        return {"FINISHED"}


class NSTR_OT_clear_finished(bpy.types.Operator):
    """Remove finished, failed and cancelled jobs from the list"""
    bl_idname = "nstr.clear_finished"
    bl_label = "Clear Finished"

    def execute(self, context):
        RUNTIME.tracker.clear_finished()
        RUNTIME.message = ""
        if RUNTIME.session is not None:
            RUNTIME.session.last_error = ""
        return {"FINISHED"}


class NSTR_OT_toggle_source(bpy.types.Operator):
    """Show or hide the object this result was fitted to (in the viewport and in renders)"""
    bl_idname = "nstr.toggle_source"
    bl_label = "Show Source"

    def execute(self, context):
        obj = context.active_object
        source = results.source_object(obj)
        if source is None:
            return _fail(self, AddonError("the active object is not an NSTR result with its source in this file",
                                          "Select a <name>_NSTR object"))
        results.set_source_hidden(source, not results.source_hidden(source))
        return {"FINISHED"}


class NSTR_OT_show_attribute_colors(bpy.types.Operator):
    """Switch the 3D views to Solid shading with attribute colours, to see the result's colours"""
    bl_idname = "nstr.show_attribute_colors"
    bl_label = "Show Colours in Viewport"

    def execute(self, context):
        count = 0
        for window in context.window_manager.windows:
            for area in window.screen.areas:
                if area.type != "VIEW_3D":
                    continue
                for space in area.spaces:
                    if space.type == "VIEW_3D":
                        space.shading.type = "SOLID"
                        space.shading.color_type = "VERTEX"
                        space.shading.light = "FLAT"        # unlit: colours as the legend shows them
                        space.shading.show_cavity = True    # the shape from ridges and valleys
                        count += 1
        obj = context.active_object
        if obj is not None and results.result_meta(obj) is not None:
            results.show_attribute(obj, obj.nstr_display)
        if count == 0:
            self.report({"WARNING"}, "No 3D view to switch")
        return {"FINISHED"}


class NSTR_OT_recolor_detail(bpy.types.Operator):
    """Recolour every result's detail on one scale for the scene (after deleting or adding results), and
    refresh their NSTR vertex groups"""
    bl_idname = "nstr.recolor_detail"
    bl_label = "Recolour Detail (Scene Scale)"

    def execute(self, context):
        from .detail_colors import recolor_scene

        props = context.scene.nstr
        scale = recolor_scene(context.scene, context.active_object if props.detail_stretch else None)
        if scale is None:
            self.report({"WARNING"}, "No result in this scene has detail maps: fit a mesh first")
            return {"CANCELLED"}
        return {"FINISHED"}


CLASSES = (NSTR_OT_backend_start, NSTR_OT_backend_stop, NSTR_OT_fit, NSTR_OT_render_nerf_views, NSTR_OT_import_capture,
           NSTR_OT_fit_capture, NSTR_OT_cancel,
           NSTR_OT_release_gpu, NSTR_OT_clear_finished, NSTR_OT_toggle_source, NSTR_OT_show_attribute_colors,
           NSTR_OT_recolor_detail)
