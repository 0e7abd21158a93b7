"""Everything that touches bpy: preferences, properties, operators, panel, timer."""

from __future__ import annotations

import bpy

from . import operators, panel, preferences, properties
from .runtime import RUNTIME, stop_timer

_CLASSES = (*preferences.CLASSES, *properties.CLASSES, *operators.CLASSES, *panel.CLASSES)


def register() -> None:
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    properties.register_properties()


def unregister() -> None:
    stop_timer()
    RUNTIME.stop_backend()
    properties.unregister_properties()
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
