"""The "Fit NSTR" sidebar panel (3D View > Sidebar > NSTR). Drawing only: no network here,
it shows what the timer last learnt."""

from __future__ import annotations

import bpy

from ..core.meshdata import DISPLAY_BY_NAME, legend_lines
from .preferences import backend_settings
from .results import SCALAR_OF, legend_node, result_meta
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
        chars = _chars(context)
        props = context.scene.nstr
        self.draw_backend(context, layout.box())
        col = layout.column(align=True)
        col.row(align=True).prop(props, "task", expand=True)
        col.row(align=True).prop(props, "preset", expand=True)
        row = layout.row()
        row.prop(props, "show_advanced", icon="TRIA_DOWN" if props.show_advanced else "TRIA_RIGHT", emboss=False)
        if props.show_advanced:
            adv = layout.box().column(align=True)
            adv.prop(props, "n_freqs")
            adv.prop(props, "steps")
            adv.prop(props, "resolution")
            adv.prop(props, "mc_backend", text="MC")
            adv.label(text="Overrides (KEY=VALUE ...)")
            adv.prop(props, "overrides", text="")
        if props.task == "nerf":
            nerf = layout.box().column(align=True)
            nerf.label(text="Views rendered from the selection")
            nerf.prop(props, "nerf_dir")
            nerf.prop(props, "nerf_train")
            nerf.prop(props, "nerf_test")
            nerf.prop(props, "nerf_resolution")
            nerf.prop(props, "nerf_engine")
            nerf.prop(props, "nerf_hemisphere")
        n_mesh = sum(1 for o in context.selected_objects if o.type == "MESH")
        big = layout.row()
        big.scale_y = 1.6
        big.operator("nstr.fit", text=f"Fit NSTR ({n_mesh} mesh{'es' if n_mesh != 1 else ''})"
                     if props.task == "sdf" else "Render Views & Fit NeRF", icon="MOD_REMESH")
        if RUNTIME.message:
            alert = layout.column()
            alert.alert = True
            for i, line in enumerate(_wrap(RUNTIME.message, chars)):
                alert.label(text=line, icon="ERROR" if i == 0 else "BLANK1")
        self.draw_jobs(layout, chars)
        self.draw_result(context, layout)

    def draw_backend(self, context, box):
        settings = backend_settings(context)
        session = RUNTIME.session
        row = box.row()
        if RUNTIME.is_starting:
            row.label(text="Backend: starting...", icon="SORTTIME")
        elif session is not None and session.connected:
            h = session.health
            row.label(text=f"Connected: {h.get('device', '?')}", icon="CHECKMARK")
            name = h.get("device_name")
            if name and name != h.get("device"):
                box.label(text=str(name))
            if h.get("gpu_memory_total"):
                box.label(text=f"GPU memory free {_gib(h.get('gpu_memory_free'))} / "
                               f"{_gib(h.get('gpu_memory_total'))} GiB")
            box.label(text=f"Queue: {h.get('queue_length', 0)}")
        else:
            row.label(text="Backend: not connected", icon="UNLINKED")
            box.label(text="Local process" if settings.mode == "local" else settings.url)
        row = box.row(align=True)
        row.operator("nstr.backend_start", text="Start" if settings.mode == "local" else "Connect", icon="PLAY")
        row.operator("nstr.backend_stop", text="Stop", icon="PAUSE")

    def draw_jobs(self, layout, chars):
        records = RUNTIME.tracker.records
        if not records:
            return
        box = layout.box()
        box.label(text="Jobs")
        for i, record in enumerate(records):
            row = box.row(align=True)
            icon = {"collected": "CHECKMARK", "failed": "ERROR", "error": "ERROR",
                    "cancelled": "X"}.get(record.state, "SORTTIME")
            row.label(text=record.source, icon=icon)
            if record.active:
                op = row.operator("nstr.cancel", text="", icon="X")
                op.index = i
            text = record.progress_text()
            line = box.row()
            if record.state == "running" and hasattr(line, "progress"):      # Blender 4.0+
                line.progress(factor=record.progress, type="BAR", text=text)
            elif record.state not in ("failed", "error"):
                line.label(text=text)
            if record.state in ("failed", "error") and record.message:
                for line in _wrap(record.message, chars):
                    sub = box.row()
                    sub.alert = True
                    sub.label(text=line)
        row = box.row(align=True)
        row.operator("nstr.cancel", text="Cancel All", icon="X").index = -1
        row.operator("nstr.clear_finished", text="Clear", icon="TRASH")
        box.operator("nstr.release_gpu", icon="MEMORY")

    def draw_result(self, context, layout):
        obj = context.active_object
        meta = result_meta(obj)
        if meta is None:
            return
        box = layout.box()
        box.label(text=f"Result: {obj.name}", icon="OBJECT_DATA")
        box.prop(obj, "nstr_display")
        name = obj.nstr_display
        if name not in meta.get("available", []):
            box.label(text=f"{DISPLAY_BY_NAME[name].label} is not in this result", icon="INFO")
        else:
            legend = box.column(align=True)
            ramp = legend_node(obj)
            if ramp is not None and name in SCALAR_OF:
                legend.template_color_ramp(ramp, "color_ramp", expand=False)
            for line in legend_lines(meta, name):
                for part in _wrap(line, _chars(context)):
                    legend.label(text=part)
        box.operator("nstr.show_attribute_colors", icon="SHADING_SOLID")


def _chars(context) -> int:
    """About how many characters fit on one line of this sidebar (for wrapping messages)."""
    width = context.region.width if context.region is not None else 300
    scale = context.preferences.system.ui_scale if context.preferences else 1.0
    return max(16, int(width / (7.0 * scale)) - 5)


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        lines.append(line)
    return lines


CLASSES = (NSTR_PT_fit,)
