"""Scene-level task settings and the per-object "attribute to show"."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, PointerProperty, StringProperty

from ..core.meshdata import DISPLAY_ATTRIBUTES
from ..core.settings import TaskSettings, parse_overrides
from . import results


def _display_changed(obj: bpy.types.Object, _context: bpy.types.Context) -> None:
    results.show_attribute(obj, obj.nstr_display)


class NSTR_SceneSettings(bpy.types.PropertyGroup):
    task: EnumProperty(name="Task", default="sdf",
                       items=[("sdf", "SDF", "Fit the signed distance of each selected mesh"),
                              ("nerf", "NeRF", "Render views of the selection and fit a radiance field")])
    preset: EnumProperty(name="Preset", default="quick",
                         items=[("quick", "Quick", "Seconds on a GPU, minutes on a CPU"),
                                ("default", "Default", "Good quality on a GPU"),
                                ("high", "High", "Best quality; slow")])
    show_advanced: BoolProperty(name="Advanced", default=False)
    n_freqs: IntProperty(name="K (frequencies)", min=0, max=4096, default=0,
                         description="Number of global frequencies. 0: the preset's")
    steps: IntProperty(name="Steps", min=0, max=1_000_000, default=0,
                       description="Training steps. 0: the preset's")
    resolution: IntProperty(name="Resolution", min=0, max=2048, default=0,
                            description="Marching-cubes grid resolution. 0: the preset's")
    mc_backend: EnumProperty(name="Marching cubes", default="preset",
                             items=[("preset", "Preset", "The preset's choice"),
                                    ("skimage", "scikit-image", "scikit-image's marching cubes"),
                                    ("mcubes", "PyMCubes", "PyMCubes' marching cubes")])
    overrides: StringProperty(name="Overrides", default="",
                              description="More backend settings as KEY=VALUE, e.g. train.batch_size=4096 "
                                          "field.width=32")
    # NeRF: views rendered from the selection
    nerf_dir: StringProperty(name="Views folder", subtype="DIR_PATH", default="//nstr_nerf_views",
                             description="Where the rendered training views go (transforms.json + PNGs)")
    nerf_train: IntProperty(name="Train views", min=1, max=1000, default=50)
    nerf_test: IntProperty(name="Test views", min=0, max=1000, default=10)
    nerf_resolution: IntProperty(name="Image size", min=16, max=4096, default=200)
    nerf_engine: EnumProperty(name="Engine", default="CYCLES",
                              items=[("CYCLES", "Cycles", ""), ("BLENDER_EEVEE", "EEVEE", ""),
                                     ("BLENDER_WORKBENCH", "Workbench", "")])
    nerf_hemisphere: BoolProperty(name="Upper hemisphere", default=True)

    def task_settings(self) -> TaskSettings:
        return TaskSettings(task=self.task, preset=self.preset, n_freqs=self.n_freqs, steps=self.steps,
                            resolution=self.resolution, mc_backend=self.mc_backend,
                            extra=parse_overrides(self.overrides))


CLASSES = (NSTR_SceneSettings,)


def register_properties() -> None:
    bpy.types.Scene.nstr = PointerProperty(type=NSTR_SceneSettings)
    bpy.types.Object.nstr_display = EnumProperty(
        name="Show", description="Which spectral-flow attribute the result shows",
        items=[(a.name, a.label, a.description) for a in DISPLAY_ATTRIBUTES],
        default="local_frequency", update=_display_changed)


def unregister_properties() -> None:
    del bpy.types.Object.nstr_display
    del bpy.types.Scene.nstr
