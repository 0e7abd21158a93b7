"""The "Fit NSTR" sidebar panel (3D View > Sidebar > NSTR). Drawing only: no network here,
it shows what the timer last learnt. Live work first (views being rendered, running and queued
jobs); the active result's box comes before the finished jobs, which fold away; one problem line at
most; text lines are wrapped to the sidebar's width."""

from __future__ import annotations

import bpy

from ..core.meshdata import DISPLAY_BY_NAME
from ..core.text import wrap
from .legend_overlay import legend_for
from .preferences import backend_settings, line_chars
from .results import result_meta, source_hidden, source_object
from .runtime import RUNTIME


def _gib(n: object) -> str:
    return f"{float(n) / 2**30:.1f}" if isinstance(n, (int, float)) else "?"


class NSTR_PT_fit(bpy.types.Panel):
    bl_idname = "NSTR_PT_fit"
    bl_label = "Fit NSTR"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "NSTR"

    def draw(self, context):
        layout = self.layout
        chars = line_chars(context)
        props = context.scene.nstr
        problem = RUNTIME.problem()
        job_messages = {r.message for r in RUNTIME.tracker}
        if problem and problem not in job_messages:              # shown once, above everything
            alert = layout.column()
            alert.alert = True
            for i, line in enumerate(wrap(problem, chars)):
                alert.label(text=line, icon="ERROR" if i == 0 else "BLANK1")
        self.draw_live(layout, chars)
        self.draw_backend(context, layout.box())
        col = layout.column(align=True)
        col.row(align=True).prop(props, "task", expand=True)
        col.row(align=True).prop(props, "preset", expand=True)
        row = layout.row()
        row.prop(props, "show_advanced", icon="TRIA_DOWN" if props.show_advanced else "TRIA_RIGHT", emboss=False)
        if props.show_advanced:
            adv = layout.box().column(align=True)
            for line in wrap(f"Values of the '{props.preset}' preset; change any to override it", chars):
                adv.label(text=line)
            adv.prop(props, "n_freqs")
            adv.prop(props, "steps")
            adv.prop(props, "resolution", text="Resolution (0: auto)" if props.resolution == 0
                     else "Resolution")
            if props.task == "sdf":
                adv.prop(props, "mc_backend", text="MC")
            adv.label(text="Overrides (KEY=VALUE ...)")
            adv.prop(props, "overrides", text="")
            adv.prop(props, "keep_versions")
        capture = props.task == "nerf" and props.nerf_source == "CAPTURE"
        if props.task == "nerf":
            nerf = layout.box().column(align=True)
            nerf.row(align=True).prop(props, "nerf_source", expand=True)
            nerf.operator("nstr.import_capture", text="Import Capture...", icon="FILE_FOLDER")
        if capture:
            self.draw_capture(props, nerf, chars)
        elif props.task == "nerf":
            for line in wrap("Views rendered from the selection, into the views folder:", chars):
                nerf.label(text=line)
            nerf.prop(props, "nerf_dir", text="")          # the path gets the whole line
            if props.nerf_dir.startswith("//") and not bpy.data.filepath:
                for line in wrap("File not saved: views go to the add-on's user folder (nerf_views)", chars):
                    nerf.label(text=line)
            if RUNTIME.views_dir:
                for line in wrap(f"Last views: {RUNTIME.views_dir}", chars):
                    nerf.label(text=line)
            nerf.prop(props, "nerf_train")
            nerf.prop(props, "nerf_test")
            nerf.prop(props, "nerf_resolution")
            nerf.prop(props, "nerf_engine")
            nerf.prop(props, "nerf_hemisphere")
        n_mesh = sum(1 for o in context.selected_objects if o.type == "MESH")
        big = layout.row()
        big.scale_y = 1.6
        big.enabled = RUNTIME.views is None
        big.operator("nstr.fit", text=f"Fit NSTR ({n_mesh} mesh{'es' if n_mesh != 1 else ''})"
                     if props.task == "sdf" else "Fit NeRF to Capture" if capture else "Render Views & Fit NeRF",
                     icon="MOD_REMESH")
        self.draw_result(context, layout, chars)           # before the history: reachable without scrolling
        self.draw_finished(layout, props, chars)

    def draw_capture(self, props, col, chars):
        """The imported capture to fit: which one, its photos, and the box the fit will use."""
        from .capture import capture_box

        col.prop(props, "nerf_capture", text="")
        root = props.nerf_capture
        if root is None:
            for line in wrap("Import a capture (COLMAP images/ + sparse/0/, or transforms.json) to fit its photos",
                             chars):
                col.label(text=line)
            return
        cams = [o for o in root.children if o.type == "CAMERA"]
        tests = sum(1 for o in cams if o.get("nstr_test_view"))
        col.label(text=f"{len(cams)} photos ({tests} held out for testing)", icon="OUTLINER_OB_CAMERA")
        box = capture_box(root)
        text = f"Region: {box.name} (move and scale it)" if box is not None else "No region box: import it again"
        for line in wrap(text, chars):
            col.label(text=line)

    def draw_live(self, layout, chars):
        """Views being rendered and running/queued jobs, each with its progress and Cancel."""
        views = RUNTIME.views
        live = [(i, r) for i, r in enumerate(RUNTIME.tracker.records) if r.active or r.state == "done"]
        if views is None and not live:
            return
        box = layout.box()
        if views is not None:
            row = box.row(align=True)
            text = f"Views {views.done}/{views.total}"        # short: the bar shares its line with Cancel
            if hasattr(row, "progress"):
                row.progress(factor=views.done / max(1, views.total), type="BAR", text=text)
            else:
                row.label(text=text, icon="RENDER_STILL")
            row.operator("nstr.cancel", text="", icon="X").index = -1
            for line in wrap(f"to {views.out_dir}", chars):
                box.label(text=line)
        for i, record in live:
            row = box.row(align=True)
            row.label(text=record.source, icon="SORTTIME")
            if record.active:
                row.operator("nstr.cancel", text="", icon="X").index = i
            line = box.row()
            text = record.progress_text()
            if record.state == "running" and hasattr(line, "progress"):      # Blender 4.0+
                line.progress(factor=record.progress, type="BAR", text=text)
            else:
                line.label(text=text)
        if len(live) > 1:
            box.operator("nstr.cancel", text="Cancel All", icon="X").index = -1

    def draw_backend(self, context, box):
        settings = backend_settings(context)
        session = RUNTIME.session
        row = box.row()
        if session is not None and session.connected:           # the server's own answer (health) decides
            h = session.health
            row.label(text=f"Connected: {h.get('device', '?')}", icon="CHECKMARK")
            name = h.get("device_name")
            if name and name != h.get("device"):
                box.label(text=str(name))
            if h.get("gpu_memory_total"):
                box.label(text=f"GPU memory free {_gib(h.get('gpu_memory_free'))} / "
                               f"{_gib(h.get('gpu_memory_total'))} GiB")
            running, queued = session.queue_counts()
            box.label(text=f"Running: {running}   Queued: {queued}")
        elif RUNTIME.is_starting:
            row.label(text="Backend: starting..." if settings.mode == "local" else "Backend: connecting...",
                      icon="SORTTIME")
        else:
            row.label(text="Backend: not connected", icon="UNLINKED")
            box.label(text="Local process" if settings.mode == "local" else settings.url)
        row = box.row(align=True)
        row.operator("nstr.backend_start", text="Start" if settings.mode == "local" else "Connect", icon="PLAY")
        row.operator("nstr.backend_stop", text="Stop", icon="PAUSE")
        if session is not None and session.on_gpu:            # the server reported a CUDA device
            box.operator("nstr.release_gpu", icon="MEMORY")

    def draw_finished(self, layout, props, chars):
        done = [(i, r) for i, r in enumerate(RUNTIME.tracker.records) if not (r.active or r.state == "done")]
        if not done:
            return
        failed = sum(1 for _, r in done if r.state in ("failed", "error"))
        row = layout.row(align=True)
        label = f"Finished jobs: {len(done)}" + (f" ({failed} failed)" if failed else "")
        row.prop(props, "show_finished", text=label, emboss=False,
                 icon="TRIA_DOWN" if props.show_finished else "TRIA_RIGHT")
        row.operator("nstr.clear_finished", text="", icon="TRASH")
        if not props.show_finished:
            return
        box = layout.box()
        for _i, record in reversed(done):                    # newest first
            icon = {"collected": "CHECKMARK", "cancelled": "X"}.get(record.state, "ERROR")
            box.label(text=f"{record.source}: {record.state}", icon=icon)
            if record.state in ("failed", "error") and record.message:
                for line in wrap(record.message, chars)[:3]:
                    sub = box.row()
                    sub.alert = True
                    sub.label(text=line)
            elif record.state == "collected":
                box.label(text=f"-> {record.result_name}")

    def draw_result(self, context, layout, chars):
        obj = context.active_object
        meta = result_meta(obj)
        if meta is None:
            return
        box = layout.box()
        box.label(text=f"Result: {obj.name}", icon="OBJECT_DATA")
        if not meta.get("available"):
            box.label(text="This result has no colour attributes", icon="INFO")
        else:
            box.prop(obj, "nstr_display")
            legend = legend_for(obj, context.scene)
            if legend is not None:
                col = box.column(align=True)
                if legend.ticks:
                    col.label(text="  ".join(label for _, label in legend.ticks))
                for line in legend.lines():
                    for part in wrap(line, chars):
                        col.label(text=part)
        source = source_object(obj)
        if source is not None:
            hidden = source_hidden(source)
            box.operator("nstr.toggle_source", text=f"{'Show' if hidden else 'Hide'} {source.name}",
                         icon="HIDE_ON" if hidden else "HIDE_OFF")
        if DISPLAY_BY_NAME.get(getattr(obj, "nstr_display", "")) is not None:
            box.operator("nstr.show_attribute_colors", icon="SHADING_SOLID")
        if meta.get("detail"):
            row = box.row(align=True)
            row.prop(context.scene.nstr, "detail_stretch")
            row.operator("nstr.recolor_detail", text="", icon="FILE_REFRESH")
            row = box.row(align=True)
            row.prop(context.scene.nstr, "show_strokes")
            row.prop(context.scene.nstr, "show_drift_arrows")
            box.label(text="Vertex groups: NSTR fine detail, detail height, crease, detail lost", icon="GROUP_VERTEX")
        box.prop(context.scene.nstr, "show_research")


CLASSES = (NSTR_PT_fit,)
