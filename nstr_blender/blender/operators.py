"""Operators: start/stop the backend, Fit NSTR, render NeRF views, cancel, release GPU, display."""

from __future__ import annotations

import bpy
from bpy.props import IntProperty

from ..core.errors import AddonError, SelectionError
from ..core.session import describe
from . import mesh_io, results
from .preferences import backend_settings
from .runtime import RUNTIME, ensure_timer


def _fail(op: bpy.types.Operator, err: BaseException) -> set[str]:
    text = describe(err)
    RUNTIME.message = text
    op.report({"ERROR"}, text)
    return {"CANCELLED"}


def split_selection(objects) -> tuple[list, list[str]]:
    """(mesh objects, names of the others). Raises SelectionError when nothing can be fitted."""
    objects = list(objects)
    if not objects:
        raise SelectionError("nothing is selected", "Select one or more mesh objects, then press Fit NSTR")
    meshes = [o for o in objects if o.type == "MESH"]
    others = [o.name for o in objects if o.type != "MESH"]
    if not meshes:
        kinds = ", ".join(f"'{o.name}' ({o.type.lower()})" for o in objects[:3])
        raise SelectionError(f"no mesh in the selection: {kinds}",
                             "Select mesh objects (convert curves/text with Object > Convert > Mesh)")
    return meshes, others


def ensure_backend(context: bpy.types.Context) -> None:
    """Make sure jobs can be sent: start a local backend in the background, or check the URL now
    (so an unreachable server is reported by the operator itself)."""
    settings = backend_settings(context)
    session = RUNTIME.configure(settings)
    if session.client is not None or RUNTIME.is_starting:
        return
    if settings.mode == "local":
        RUNTIME.start_backend(settings, block=False)
    else:
        RUNTIME.start_backend(settings, block=True, timeout=10.0)


def submit_now() -> None:
    """Send pending jobs right away when the backend is ready (the timer does it otherwise)."""
    session = RUNTIME.session
    if session is not None and session.client is not None and not RUNTIME.is_starting:
        session.submit_pending(RUNTIME.tracker)
    ensure_timer()


class NSTR_OT_backend_start(bpy.types.Operator):
    """Launch the local backend process or connect to the server URL (see the add-on preferences)"""
    bl_idname = "nstr.backend_start"
    bl_label = "Start Backend"

    def execute(self, context):
        try:
            settings = backend_settings(context)
            RUNTIME.start_backend(settings, block=settings.mode == "url", timeout=10.0 if settings.mode == "url"
                                  else 120.0)
        except AddonError as err:
            return _fail(self, err)
        ensure_timer()
        return {"FINISHED"}


class NSTR_OT_backend_stop(bpy.types.Operator):
    """Stop the local backend process (a server URL is only disconnected)"""
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
        settings = context.scene.nstr.task_settings()
        if settings.task == "nerf":
            return bpy.ops.nstr.render_nerf_views()
        try:
            meshes, others = split_selection(context.selected_objects)
            config = settings.job_config()
            depsgraph = context.evaluated_depsgraph_get()
            inputs = [(obj.name, mesh_io.evaluated_arrays(obj, depsgraph)) for obj in meshes]
            ensure_backend(context)
        except AddonError as err:
            return _fail(self, err)
        added = [RUNTIME.tracker.add(name, "sdf", config, arrays) for name, arrays in inputs]
        try:
            submit_now()
        except AddonError as err:
            for record in added:
                if record.state == "pending":
                    record.mark_error(str(err))
            return _fail(self, err)
        names = ", ".join(n for n, _ in inputs)
        if others:
            self.report({"WARNING"}, f"Skipped {len(others)} non-mesh object(s): {', '.join(others[:5])}")
        self.report({"INFO"}, f"Fitting {len(inputs)} object(s): {names}")
        return {"FINISHED"}


class NSTR_OT_render_nerf_views(bpy.types.Operator):
    """Render training views of the selection (transforms.json + images) and fit a NeRF to them"""
    bl_idname = "nstr.render_nerf_views"
    bl_label = "Render Views & Fit NeRF"

    def execute(self, context):
        try:
            from . import nerf_render  # provided by the NeRF part of the project
        except ImportError as err:
            return _fail(self, AddonError(f"NeRF view rendering is not available in this build ({err})",
                                          "Use the SDF task, or update the add-on"))
        props = context.scene.nstr
        settings = props.task_settings()
        objects = list(context.selected_objects)
        try:
            if not objects:
                raise SelectionError("nothing is selected", "Select the objects to render, then press Fit NSTR")
            if backend_settings(context).mode != "local":
                raise AddonError("NeRF jobs read the rendered views from disk",
                                 "Use a local backend (preferences), or a server that shares this folder")
            config = settings.job_config()
            out_dir = bpy.path.abspath(props.nerf_dir)
            dataset = nerf_render.render_nerf_dataset(context, objects, out_dir, props.nerf_train, props.nerf_test,
                                                      props.nerf_resolution, props.nerf_engine,
                                                      props.nerf_hemisphere)
            ensure_backend(context)
        except AddonError as err:
            return _fail(self, err)
        except ValueError as err:     # render_nerf_dataset's own one-line input errors
            return _fail(self, AddonError(f"cannot render the views: {err}"))
        except Exception as err:  # noqa: BLE001 - rendering problems reach the user as one line
            return _fail(self, AddonError(f"rendering the views failed: {describe(err)}", "See the console"))
        source = objects[0].name if len(objects) == 1 else "NeRF"
        record = RUNTIME.tracker.add(source, "nerf", {**config, "dataset_dir": str(dataset)}, {})
        try:
            submit_now()
        except AddonError as err:
            record.mark_error(str(err))
            return _fail(self, err)
        self.report({"INFO"}, f"Rendered views to {dataset}; fitting a NeRF")
        return {"FINISHED"}


class NSTR_OT_cancel(bpy.types.Operator):
    """Cancel a running or queued job (-1: all of them)"""
    bl_idname = "nstr.cancel"
    bl_label = "Cancel"
    index: IntProperty(default=-1)

    def execute(self, context):
        records = RUNTIME.tracker.records
        chosen = [r for r in records if r.active] if self.index < 0 else \
            ([records[self.index]] if 0 <= self.index < len(records) else [])
        try:
            for record in chosen:
                if RUNTIME.session is None:
                    record.state, record.message, record.arrays = "cancelled", "cancelled", None
                else:
                    RUNTIME.session.cancel(record)
        except AddonError as err:
            return _fail(self, err)
        self.report({"INFO"}, f"Cancelled {len(chosen)} job(s)")
        return {"FINISHED"}


class NSTR_OT_release_gpu(bpy.types.Operator):
    """Free the backend's cached GPU memory (models and buffers of finished jobs)"""
    bl_idname = "nstr.release_gpu"
    bl_label = "Release GPU"

    def execute(self, context):
        if RUNTIME.session is None or RUNTIME.session.client is None:
            return _fail(self, AddonError("the backend is not started", "Press Start in the NSTR panel"))
        try:
            RUNTIME.session.release_gpu()
        except AddonError as err:
            return _fail(self, err)
        self.report({"INFO"}, "Released the backend's GPU memory")
        return {"FINISHED"}


class NSTR_OT_clear_finished(bpy.types.Operator):
    """Remove finished, failed and cancelled jobs from the list"""
    bl_idname = "nstr.clear_finished"
    bl_label = "Clear Finished"

    def execute(self, context):
        RUNTIME.tracker.clear_finished()
        RUNTIME.message = ""
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
                        count += 1
        obj = context.active_object
        if obj is not None and results.result_meta(obj) is not None:
            results.show_attribute(obj, obj.nstr_display)
        if count == 0:
            self.report({"WARNING"}, "No 3D view to switch")
        return {"FINISHED"}


CLASSES = (NSTR_OT_backend_start, NSTR_OT_backend_stop, NSTR_OT_fit, NSTR_OT_render_nerf_views, NSTR_OT_cancel,
           NSTR_OT_release_gpu, NSTR_OT_clear_finished, NSTR_OT_show_attribute_colors)
