"""Add-on preferences: where the backend runs (a one-click local venv, a Python of your own, or a
server URL + token), and the add-on's user folder (logs, the backend venv, NeRF views)."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty

from ..core.backend_setup import TORCH_BUILDS, Setup, offered_build
from ..core.backend_status import offer_lines, using_lines
from ..core.gpu_probe import Gpu, nvidia_gpus
from ..core.text import wrap
from ..core.settings import BackendSettings, backend_choice, default_log_dir, managed_ready, user_dir

ADDON_ID = __package__.rpartition(".")[0]     # "nstr_blender", or "bl_ext.<repo>.nstr_blender"
SETUP: list[Setup] = []                       # the running or last "Set up backend"
_GPUS: list[list[Gpu]] = []                   # nvidia-smi's answer, asked once per session (not per redraw)


def gpus() -> list[Gpu]:
    if not _GPUS:
        _GPUS.append(nvidia_gpus())
    return _GPUS[0]


def line_chars(context: bpy.types.Context) -> int:
    """About how many characters fit on one line of this region (Blender's labels do not wrap)."""
    width = context.region.width if context.region is not None else 300
    scale = context.preferences.system.ui_scale if context.preferences else 1.0
    return max(16, int(width / (7.0 * scale)) - 5)


def chosen_build(prefs: "NSTR_AddonPreferences") -> str:
    """The torch build to install: the preference, or (Offered) CUDA when nvidia-smi lists a GPU."""
    return offered_build(bool(gpus())) if prefs.torch_build == "offered" else prefs.torch_build


def addon_user_dir() -> Path:
    """Blender 4.2+: the extension's own user folder; a legacy add-on (3.4): <config>/nstr_blender."""
    if ADDON_ID.startswith("bl_ext.") and hasattr(bpy.utils, "extension_path_user"):
        return Path(bpy.utils.extension_path_user(ADDON_ID, create=True))
    return Path(bpy.utils.user_resource("CONFIG", path="nstr_blender", create=True))


class NSTR_OT_setup_backend(bpy.types.Operator):
    """Create a Python environment with torch and the NSTR backend in the add-on's user folder (the
    sizes, measured, are shown above the button; a failed set-up resumes when pressed again)"""
    bl_idname = "nstr.setup_backend"
    bl_label = "Set up backend"

    def execute(self, context):
        if not getattr(bpy.app, "online_access", True):
            self.report({"ERROR"}, "Setting up the backend downloads torch, but online access is disabled. "
                                   "Allow it in Preferences > System > Network > Allow Online Access")
            return {"CANCELLED"}
        if SETUP and SETUP[-1].state.running:
            self.report({"WARNING"}, "The backend set-up is already running")
            return {"CANCELLED"}
        prefs = context.preferences.addons[ADDON_ID].preferences
        setup = Setup(user_dir(), build=chosen_build(prefs))
        SETUP[:] = [setup]
        setup.start()
        bpy.app.timers.register(_redraw_while_setting_up, first_interval=0.5)
        self.report({"INFO"}, f"Setting up the backend ({setup.build.size_text()}) in {setup.venv}")
        return {"FINISHED"}


def _redraw_while_setting_up() -> float | None:
    for window in bpy.context.window_manager.windows if bpy.context.window_manager else []:
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()
    return 0.5 if SETUP and SETUP[-1].state.running else None


class NSTR_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    backend_mode: EnumProperty(
        name="Backend",
        items=[("local", "Local process", "Launch the backend on this machine (set it up with one click)"),
               ("url", "Server URL", "Connect to a running 'nstr serve' (e.g. on a GPU machine)")],
        default="local")
    python: StringProperty(
        name="Backend Python", subtype="FILE_PATH",
        description="Python executable with torch and the nstr package. Empty: the one 'Set up backend' "
                    "made, else this project's .venv (or $NSTR_PYTHON)")
    url: StringProperty(name="URL", default="http://127.0.0.1:8765",
                        description="Address of a running 'nstr serve'")
    token: StringProperty(name="Token", subtype="PASSWORD", description="The server's NSTR_TOKEN, if it has one")
    device: EnumProperty(name="Device", default="auto",
                         items=[("auto", "Auto", "CUDA when present, else the CPU"),
                                ("cuda", "CUDA", "NVIDIA GPU"), ("cpu", "CPU", "Slow; quick preset only")])
    torch_build: EnumProperty(
        name="Torch build", default="offered",
        items=[("offered", "Offered", "CUDA when nvidia-smi lists an NVIDIA GPU, else CPU"),
               ("cpu", "CPU", TORCH_BUILDS["cpu"].size_text()),
               ("cuda", "CUDA", TORCH_BUILDS["cuda"].size_text())])
    data_root: StringProperty(name="Captures folder", subtype="DIR_PATH",
                              description="The folder under which the local backend may read photo captures "
                                          "(Import capture). Empty: your home folder")
    log_dir: StringProperty(name="Log folder", subtype="DIR_PATH",
                            description="Where the launched backend writes server.log. Empty: the add-on's "
                                        "user folder")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "backend_mode", expand=True)
        if self.backend_mode == "local":
            box = layout.box()
            chars = line_chars(context)
            setup = SETUP[-1] if SETUP else None
            if not (setup and setup.state.running):
                for line in offer_lines(gpus()):
                    for part in wrap(line, chars):
                        box.label(text=part)
                box.prop(self, "torch_build")
            row = box.row()
            row.enabled = not (setup and setup.state.running)
            row.operator("nstr.setup_backend", icon="CONSOLE")
            if setup is not None and setup.state.running:
                st = setup.state
                for i, part in enumerate(wrap(f"Step {st.step}/{st.total}: {st.label}", chars)):
                    box.label(text=part, icon="SORTTIME" if i == 0 else "BLANK1")
                if st.line:
                    for part in wrap(st.line, chars)[:3]:        # wrapped, never cut off on the left
                        box.label(text=part)
            elif setup is not None and setup.state.error:
                col = box.column()
                col.alert = True
                for i, part in enumerate(wrap(setup.state.error, chars)):
                    col.label(text=part, icon="ERROR" if i == 0 else "BLANK1")
            elif managed_ready():
                box.label(text="Set-up finished", icon="CHECKMARK")
            layout.prop(self, "python")
            choice = backend_choice(self.python)
            for i, line in enumerate(using_lines(choice, self.device, gpus())):
                for j, part in enumerate(wrap(line, chars)):
                    layout.label(text=part, icon=("INFO" if choice.python else "ERROR") if i == j == 0 else "BLANK1")
            layout.prop(self, "device")
            layout.prop(self, "data_root")
        else:
            layout.prop(self, "url")
            layout.prop(self, "token")
            if not getattr(bpy.app, "online_access", True):
                layout.label(text="Online access is off: only 127.0.0.1 / localhost servers can be used "
                                  "(Preferences > System > Network)", icon="INFO")
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
                           log_dir=prefs.log_dir, device=prefs.device, data_root=prefs.data_root)


CLASSES = (NSTR_OT_setup_backend, NSTR_AddonPreferences)
