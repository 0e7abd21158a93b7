"""NSTR for Blender: fit Neural Spectral Transport Representation fields to meshes and get
the result back with spectral-flow attributes as colours.

Importing this package does not need bpy; only register() does (it imports the
``blender`` subpackage). The bpy-free parts live in ``core`` (conversion, settings,
jobs, backend session) and ``remote`` (the vendored stdlib client).
"""

from __future__ import annotations

bl_info = {
    "name": "NSTR for Blender",
    "author": "NSTR project",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "3D View > Sidebar > NSTR",
    "description": "Fit NSTR fields to meshes on a local or remote PyTorch backend; "
                   "results come back with spectral-flow attributes as colours",
    "category": "Mesh",
    "support": "COMMUNITY",
}

__version__ = "0.1.0"


def register() -> None:
    from . import blender
    blender.register()


def unregister() -> None:
    from . import blender
    blender.unregister()
