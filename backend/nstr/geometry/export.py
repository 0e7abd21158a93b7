"""Writing mesh results: .npz (architecture.md's table), PLY and GLB.

* npz: every array plus ``meta_json`` (UTF-8 JSON as uint8), np.savez_compressed; read back
  with ``allow_pickle=False`` and no trimesh, so the server and Blender can use it.
* PLY (binary): vertex colours = the detail-size colours (``color_detail``: what the add-on shows
  first; results without detail maps: the local-frequency colours), and every raw attribute as an
  extra vertex property (vectors as NAME_x/y/z, ``detail_state`` as uchar).
* GLB: COLOR_0 = the same colours; raw values and the other colour sets as custom attributes
  (_DETAIL_WAVELENGTH, _DETAIL_AMPLITUDE, _DETAIL_STATE, _DETAIL_LOST, _LOCAL_FREQUENCY, _DRIFT,
  _COLOR_DETAIL_LOST, ...), as glTF allows for application-specific data.
Coordinates are written as given (the input's frame); no axis conversion is applied.
Files are written to a temporary name and renamed, so a failed write never leaves half a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from nstr.errors import InputError
from nstr.jsonable import jsonable

OUTPUT_SUFFIXES = (".ply", ".glb", ".npz")
RAW_SCALARS = ("detail_wavelength", "detail_amplitude", "detail_anisotropy", "crease_strength", "detail_lost",
               "local_frequency", "bandwidth", "drift_magnitude", "transport_residual")
RAW_VECTORS = ("detail_direction", "drift")
RAW_STATES = ("detail_state",)               # small integers (nstr.spectral.detail.STATES)
PRIMARY_COLORS = ("color_detail", "color_local_frequency")   # the first one present colours the vertices


def primary_color(arrays: dict[str, np.ndarray]) -> str | None:
    """The colour set viewers show: the detail size where the result has detail maps."""
    return next((name for name in PRIMARY_COLORS if name in arrays), None)


def encode_meta(meta: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(json.dumps(meta, default=jsonable).encode("utf-8"), dtype=np.uint8).copy()


def decode_meta(blob: np.ndarray) -> dict[str, Any]:
    return json.loads(np.asarray(blob, np.uint8).tobytes().decode("utf-8"))


def write_mesh(path: Path, arrays: dict[str, np.ndarray], primary: str | None = None) -> None:
    """Write by suffix: .ply, .glb or .npz. ``primary``: the colour set PLY/GLB viewers show
    (default :func:`primary_color`; a NeRF mesh passes its baked ``color_albedo``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise InputError(f"cannot write '{path.name}': unknown output format '{suffix or '(none)'}'",
                         "Use a .ply, .glb or .npz output file")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{suffix}")
    try:
        if suffix == ".npz":
            write_npz(tmp, arrays)
        else:
            {".ply": write_ply, ".glb": write_glb}[suffix](tmp, arrays, primary or primary_color(arrays))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = decode_meta(arrays.pop("meta_json")) if "meta_json" in arrays else {}
    return arrays, meta


def _rgba8(colors: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(colors) * 255.0), 0, 255).astype(np.uint8)


def write_ply(path: Path, arrays: dict[str, np.ndarray], primary: str | None) -> None:
    v = np.asarray(arrays["vertices"], np.float32)
    f = np.asarray(arrays["faces"], np.int32)
    fields: list[tuple[str, str]] = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    columns: dict[str, np.ndarray] = {"x": v[:, 0], "y": v[:, 1], "z": v[:, 2]}
    if primary is not None:
        rgba = _rgba8(arrays[primary])
        for i, c in enumerate(("red", "green", "blue", "alpha")):
            fields.append((c, "u1"))
            columns[c] = rgba[:, i]
    for name in RAW_SCALARS:
        if name in arrays:
            fields.append((name, "<f4"))
            columns[name] = np.asarray(arrays[name], np.float32)
    for name in RAW_STATES:
        if name in arrays:
            fields.append((name, "u1"))
            columns[name] = np.asarray(arrays[name], np.uint8)
    for name in RAW_VECTORS:
        if name in arrays:
            for i, axis in enumerate("xyz"):
                fields.append((f"{name}_{axis}", "<f4"))
                columns[f"{name}_{axis}"] = np.asarray(arrays[name], np.float32)[:, i]
    vert = np.empty(len(v), dtype=fields)
    for name, _ in fields:
        vert[name] = columns[name]
    face = np.empty(len(f), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    face["n"] = 3
    face["i"] = f
    ply_type = {"<f4": "float", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0",
              f"comment NSTR detail maps; colours = {(primary or 'none').removeprefix('color_').replace('_', ' ')}",
              f"element vertex {len(v)}"]
    header += [f"property {ply_type[t]} {n}" for n, t in fields]
    header += [f"element face {len(f)}", "property list uchar int vertex_indices", "end_header"]
    with open(path, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(vert.tobytes())
        fh.write(face.tobytes())


def write_glb(path: Path, arrays: dict[str, np.ndarray], primary: str | None) -> None:
    import trimesh

    mesh = trimesh.Trimesh(vertices=np.asarray(arrays["vertices"], np.float64),
                           faces=np.asarray(arrays["faces"], np.int64), process=False)
    if primary is not None:
        mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=_rgba8(arrays[primary]))
    for name in (*RAW_SCALARS, *RAW_STATES, *RAW_VECTORS):
        if name in arrays:
            mesh.vertex_attributes["_" + name.upper()] = np.asarray(arrays[name], np.float32)
    for name, values in arrays.items():
        if name.startswith("color_") and name != primary:
            mesh.vertex_attributes["_" + name.upper()] = np.asarray(values, np.float32)
    data = mesh.export(file_type="glb")
    Path(path).write_bytes(data)
