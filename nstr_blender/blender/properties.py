"""Scene-level task settings and the per-object "attribute to show"."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, PointerProperty, StringProperty

from ..core.contract import NERF_MIN_VIEWS, PRESETS, SETTINGS, preset_value
from ..core.meshdata import DISPLAY_ATTRIBUTES
from ..core.settings import MC_CHOICES, TaskSettings, parse_overrides
from . import results

PRESET_WORDS = {"quick": ("Quick", "Seconds on a GPU, minutes on a CPU"),
                "default": ("Default", "Good quality on a GPU"), "high": ("High", "Best quality; slow")}
MC_WORDS = {"preset": ("Preset", "The preset's choice"),
            "auto": ("Auto", "PyTorch's marching cubes on a CUDA backend, scikit-image's otherwise"),
            "skimage": ("scikit-image", "scikit-image's marching cubes"),
            "mcubes": ("PyMCubes", "PyMCubes' marching cubes"),
            "torch": ("PyTorch", "Marching cubes in PyTorch, on the backend's device (GPU when it has one)")}


PRESET_ITEMS = [(p, *PRESET_WORDS.get(p, (p.title(), ""))) for p in PRESETS]
MC_ITEMS = [(m, *MC_WORDS.get(m, (m, ""))) for m in MC_CHOICES]
FIRST = {name: preset_value("sdf", PRESETS[0], name) for name in SETTINGS}   # a new scene: sdf, first preset


def _display_changed(obj: bpy.types.Object, _context: bpy.types.Context) -> None:
    results.show_attribute(obj, obj.nstr_display)


# Fixed numbers per attribute: the file stores the number, so it keeps its meaning when the list of
# offered items (only the attributes this result has) changes. Strings kept alive (Blender needs it).
_ALL_ITEMS = [(a.name, a.label, a.description, a.number) for a in DISPLAY_ATTRIBUTES]
_BY_COLOR = {a.color_key: a.name for a in DISPLAY_ATTRIBUTES}


_RESEARCH = {a.name for a in DISPLAY_ATTRIBUTES if a.research}


def _display_items(obj, context):
    # never read obj.nstr_display here: reading the enum calls this function again (endless recursion)
    meta = results.result_meta(obj) if obj is not None else None
    available = set(meta.get("available", [])) if meta else set()
    scene = getattr(context, "scene", None) if context is not None else None
    research = bool(getattr(getattr(scene, "nstr", None), "show_research", False))
    items = [it for it in _ALL_ITEMS if it[0] in available and (research or it[0] not in _RESEARCH)]
    return items or _ALL_ITEMS[:1]


def _research_changed(props, context) -> None:
    """Research readouts hidden again: a result that shows one goes back to the detail size (or its first)."""
    if props.show_research:
        return
    for obj in context.scene.objects:
        meta = results.result_meta(obj)
        if meta is None:
            continue
        # what it shows is its active colour (reading obj.nstr_display, no longer listed, gives '')
        active = obj.data.color_attributes.active_color if obj.type == "MESH" else None
        shown = _BY_COLOR.get(active.name if active is not None else "", "")
        if shown in _RESEARCH:
            first = next((a for a in meta.get("available", []) if a not in _RESEARCH), None)
            if first is not None:
                obj.nstr_display = first


def _scale_changed(props, context) -> None:
    from .detail_colors import recolor_scene

    recolor_scene(context.scene, context.active_object if props.detail_stretch else None)


def _is_capture(_props, obj) -> bool:
    from .capture import DIR_PROP

    return DIR_PROP in obj


def fill_preset_values(props, _context=None) -> None:
    """Show the chosen preset's own values in the Advanced fields (sending them changes nothing:
    TaskSettings drops values equal to the preset's)."""
    for name in SETTINGS:
        value = preset_value(props.task, props.preset, name)
        if value is None:
            value = "preset" if name == "mc_backend" else 0
        if getattr(props, name) != value:
            setattr(props, name, value)


class NSTR_SceneSettings(bpy.types.PropertyGroup):
    task: EnumProperty(name="Task", default="sdf", update=fill_preset_values,
                       items=[("sdf", "SDF", "Fit the signed distance of each selected mesh"),
                              ("nerf", "NeRF", "Render views of the selection and fit a radiance field")])
    preset: EnumProperty(name="Preset", default=PRESETS[0], update=fill_preset_values,
                         items=PRESET_ITEMS)
    show_advanced: BoolProperty(name="Advanced", default=False)
    show_finished: BoolProperty(name="Finished jobs", default=False,
                                description="Show the finished, failed and cancelled jobs")
    show_research: BoolProperty(name="Research attributes", default=False, update=_research_changed,
                                description="Also list NSTR's own readouts (its internal spectrum and transport "
                                            "residual): for studying the method, not for reading a surface")
    show_strokes: BoolProperty(name="Direction strokes", default=True,
                               description="Short white strokes along the detail's crests in the viewport "
                                           "(opaque: one direction; faint: little preferred direction)")
    show_drift_arrows: BoolProperty(name="Drift arrows", default=False,
                                    description="Yellow arrows toward finer detail, where the detail's size changes")
    detail_stretch: BoolProperty(name="Stretch to active", default=False, update=_scale_changed,
                                 description="Range the detail colours over the active result's own wavelengths "
                                             "instead of one scale for the whole scene (the same size then no "
                                             "longer has the same colour on every object)")
    keep_versions: BoolProperty(name="Keep versions", default=False,
                                description="A re-fit adds a new result (<name>_NSTR.001) beside the old one "
                                            "instead of replacing the old one's mesh")
    n_freqs: IntProperty(name="K (frequencies)", min=0, max=4096, default=FIRST["n_freqs"],
                         description="Number of global frequencies (set to the preset's when the preset changes)")
    steps: IntProperty(name="Steps", min=0, max=1_000_000, default=FIRST["steps"],
                       description="Training steps (set to the preset's when the preset changes)")
    resolution: IntProperty(name="Resolution", min=0, max=2048, default=FIRST["resolution"],
                            description="Marching-cubes grid resolution; 0 picks it from the mesh's finest feature "
                                        "(set to the preset's when the preset changes)")
    mc_backend: EnumProperty(name="Marching cubes", default=FIRST["mc_backend"] or "preset",
                             items=MC_ITEMS)
    overrides: StringProperty(name="Overrides", default="",
                              description="More backend settings as KEY=VALUE, e.g. train.batch_size=4096 "
                                          "field.width=32")
    # NeRF: views rendered from the selection
    nerf_dir: StringProperty(name="Views folder", subtype="DIR_PATH", default="//nstr_nerf_views",
                             description="Where the rendered training views go (transforms.json + PNGs). "
                                         "A file that was never saved: the add-on's user folder")
    nerf_train: IntProperty(name="Train views", min=NERF_MIN_VIEWS, max=1000, default=50,
                            description=f"Views to render and train on (at least {NERF_MIN_VIEWS}: fewer give a NeRF "
                                        "too little parallax)")
    nerf_test: IntProperty(name="Test views", min=0, max=1000, default=10)
    nerf_resolution: IntProperty(name="Image size", min=16, max=4096, default=200)
    nerf_engine: EnumProperty(name="Engine", default="CYCLES",
                              items=[("CYCLES", "Cycles", ""), ("BLENDER_EEVEE", "EEVEE", ""),
                                     ("BLENDER_WORKBENCH", "Workbench", "")])
    nerf_hemisphere: BoolProperty(name="Upper hemisphere", default=True)
    # NeRF: or the photos of an imported capture (Import capture...)
    nerf_source: EnumProperty(name="Source", default="OBJECTS",
                              items=[("OBJECTS", "Scene objects", "Render views of the selected objects and fit them"),
                                     ("CAPTURE", "Capture", "Fit the photos of a capture brought in with "
                                                            "Import capture, inside its region box")])
    nerf_capture: PointerProperty(name="Capture", type=bpy.types.Object, poll=_is_capture,
                                  description="The imported capture to fit (its empty, 'NSTR capture: <folder>')")

    def task_settings(self) -> TaskSettings:
        return TaskSettings(task=self.task, preset=self.preset, n_freqs=self.n_freqs, steps=self.steps,
                            resolution=self.resolution, mc_backend=self.mc_backend,
                            extra=parse_overrides(self.overrides))


CLASSES = (NSTR_SceneSettings,)


def register_properties() -> None:
    bpy.types.Scene.nstr = PointerProperty(type=NSTR_SceneSettings)
    bpy.types.Object.nstr_display = EnumProperty(
        name="Show", description="Which spectral-flow attribute the result shows",
        items=_display_items, update=_display_changed)


def unregister_properties() -> None:
    del bpy.types.Object.nstr_display
    del bpy.types.Scene.nstr
