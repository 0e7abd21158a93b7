"""Everything that touches bpy: preferences, properties, operators, panel, timer."""

from __future__ import annotations

import bpy

from ..core.settings import set_user_dir
from . import detail_overlay, legend_overlay, operators, panel, preferences, properties
from .runtime import RUNTIME, stop_timer

_CLASSES = (*preferences.CLASSES, *properties.CLASSES, *operators.CLASSES, *panel.CLASSES)


def register() -> None:
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    properties.register_properties()
    set_user_dir(preferences.addon_user_dir())
    legend_overlay.register()
    detail_overlay.register()


def unregister() -> None:
    detail_overlay.unregister()
    legend_overlay.unregister()
    stop_timer()
    RUNTIME.stop_backend()
    properties.unregister_properties()
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
