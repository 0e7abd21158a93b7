"""Blender's Suzanne (head and two eyes, not watertight) as arrays, from the real bpy module.

Building it needs ``bpy`` (Blender as a Python module), which is slow to import, so the
result is cached as an .npz next to the sample cache; later calls only read that file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nstr.errors import InputError


def suzanne_arrays(cache_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3) float64, triangles (F, 3) int64) of bpy.ops.mesh.primitive_monkey_add, triangulated."""
    from nstr.geometry.sampling import default_cache_dir

    path = Path(cache_dir or default_cache_dir()) / "suzanne.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return z["vertices"], z["faces"]
    vertices, faces = _build_with_bpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, vertices=vertices, faces=faces)
    os.replace(tmp, path)
    return vertices, faces


def _build_with_bpy() -> tuple[np.ndarray, np.ndarray]:
    try:
        import bpy
    except ImportError:
        raise InputError("Suzanne needs the bpy module (Blender as a Python module)",
                         "pip install bpy==5.0.1, or pass a mesh file instead") from None
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.mesh.primitive_monkey_add(size=2.0, location=(0.0, 0.0, 0.0))
    mesh = bpy.context.active_object.data
    mesh.calc_loop_triangles()
    v = np.empty(len(mesh.vertices) * 3)
    mesh.vertices.foreach_get("co", v)
    t = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int64)
    mesh.loop_triangles.foreach_get("vertices", t)
    return v.reshape(-1, 3), t.reshape(-1, 3)
