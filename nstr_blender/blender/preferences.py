"""Add-on preferences: where the backend runs and where its logs go."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty

from ..core.settings import BackendSettings, default_log_dir, default_python

ADDON_ID = __package__.rpartition(".")[0]     # "nstr_blender", or "bl_ext.<repo>.nstr_blender"


class NSTR_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    backend_mode: EnumProperty(
        name="Backend",
        items=[("local", "Local process", "Launch the backend with a Python that has torch and nstr"),
               ("url", "Server URL", "Connect to a running 'nstr serve' (e.g. on a GPU machine)")],
        default="local")
    python: StringProperty(
        name="Backend Python", subtype="FILE_PATH",
        description="Python executable with torch and the nstr package. Empty: this project's .venv "
                    "(or $NSTR_PYTHON)")
    url: StringProperty(name="URL", default="http://127.0.0.1:8765",
                        description="Address of a running 'nstr serve'")
    token: StringProperty(name="Token", subtype="PASSWORD", description="The server's NSTR_TOKEN, if it has one")
    device: EnumProperty(name="Device", default="auto",
                         items=[("auto", "Auto", "CUDA when present, else the CPU"),
                                ("cuda", "CUDA", "NVIDIA GPU"), ("cpu", "CPU", "Slow; quick preset only")])
    log_dir: StringProperty(name="Log folder", subtype="DIR_PATH",
                            description="Where the launched backend writes server.log. Empty: a temp folder")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "backend_mode", expand=True)
        if self.backend_mode == "local":
            layout.prop(self, "python")
            if not self.python:
                found = default_python()
                layout.label(text=f"Using: {found}" if found else "No project .venv found: set a Python",
                             icon="INFO" if found else "ERROR")
            layout.prop(self, "device")
        else:
            layout.prop(self, "url")
            layout.prop(self, "token")
        layout.prop(self, "log_dir")
        if not self.log_dir:
            layout.label(text=f"Logs: {default_log_dir()}", icon="INFO")


def backend_settings(context: bpy.types.Context) -> BackendSettings:
    """The preferences as plain settings (defaults when the add-on was registered by a script)."""
    addon = context.preferences.addons.get(ADDON_ID) if context.preferences else None
    prefs = getattr(addon, "preferences", None)
    if prefs is None:
        return BackendSettings()
    return BackendSettings(mode=prefs.backend_mode, python=prefs.python, url=prefs.url, token=prefs.token,
                           log_dir=prefs.log_dir, device=prefs.device)


CLASSES = (NSTR_AddonPreferences,)
