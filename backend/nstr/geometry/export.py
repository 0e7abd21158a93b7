"""Writing mesh results: .npz (architecture.md's table), PLY and GLB.

* npz: every array plus ``meta_json`` (UTF-8 JSON as uint8), np.savez_compressed; read back
  with ``allow_pickle=False`` and no trimesh, so the server and Blender can use it.
* PLY (binary): vertex colours = the local-frequency colours (what most viewers show) and
  every raw attribute as an extra float vertex property (drift as drift_x/y/z).
* GLB: COLOR_0 = local-frequency colours; raw values and the other colour sets as custom
  attributes (_LOCAL_FREQUENCY, _BANDWIDTH, _DRIFT, _DRIFT_MAGNITUDE, _TRANSPORT_RESIDUAL,
  _COLOR_BANDWIDTH, ...), as glTF allows for application-specific data.
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

OUTPUT_SUFFIXES = (".ply", ".glb", ".npz")
RAW_SCALARS = ("local_frequency", "bandwidth", "drift_magnitude", "transport_residual")
PRIMARY_COLOR = "color_local_frequency"


def encode_meta(meta: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(json.dumps(meta, default=_jsonable).encode("utf-8"), dtype=np.uint8).copy()


def decode_meta(blob: np.ndarray) -> dict[str, Any]:
    return json.loads(np.asarray(blob, np.uint8).tobytes().decode("utf-8"))


def write_mesh(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write by suffix: .ply, .glb or .npz."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise InputError(f"cannot write '{path.name}': unknown output format '{suffix or '(none)'}'",
                         "Use a .ply, .glb or .npz output file")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{suffix}")
    try:
        {".ply": write_ply, ".glb": write_glb, ".npz": write_npz}[suffix](tmp, arrays)
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


def write_ply(path: Path, arrays: dict[str, np.ndarray]) -> None:
    v = np.asarray(arrays["vertices"], np.float32)
    f = np.asarray(arrays["faces"], np.int32)
    fields: list[tuple[str, str]] = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    columns: dict[str, np.ndarray] = {"x": v[:, 0], "y": v[:, 1], "z": v[:, 2]}
    if PRIMARY_COLOR in arrays:
        rgba = _rgba8(arrays[PRIMARY_COLOR])
        for i, c in enumerate(("red", "green", "blue", "alpha")):
            fields.append((c, "u1"))
            columns[c] = rgba[:, i]
    for name in RAW_SCALARS:
        if name in arrays:
            fields.append((name, "<f4"))
            columns[name] = np.asarray(arrays[name], np.float32)
    if "drift" in arrays:
        for i, axis in enumerate("xyz"):
            fields.append((f"drift_{axis}", "<f4"))
            columns[f"drift_{axis}"] = np.asarray(arrays["drift"], np.float32)[:, i]
    vert = np.empty(len(v), dtype=fields)
    for name, _ in fields:
        vert[name] = columns[name]
    face = np.empty(len(f), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    face["n"] = 3
    face["i"] = f
    ply_type = {"<f4": "float", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0", "comment NSTR spectral-flow attributes; colours = local frequency",
              f"element vertex {len(v)}"]
    header += [f"property {ply_type[t]} {n}" for n, t in fields]
    header += [f"element face {len(f)}", "property list uchar int vertex_indices", "end_header"]
    with open(path, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(vert.tobytes())
        fh.write(face.tobytes())


def write_glb(path: Path, arrays: dict[str, np.ndarray]) -> None:
    import trimesh

    mesh = trimesh.Trimesh(vertices=np.asarray(arrays["vertices"], np.float64),
                           faces=np.asarray(arrays["faces"], np.int64), process=False)
    if PRIMARY_COLOR in arrays:
        mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=_rgba8(arrays[PRIMARY_COLOR]))
    for name in (*RAW_SCALARS, "drift"):
        if name in arrays:
            mesh.vertex_attributes["_" + name.upper()] = np.asarray(arrays[name], np.float32)
    for name, values in arrays.items():
        if name.startswith("color_") and name != PRIMARY_COLOR:
            mesh.vertex_attributes["_" + name.upper()] = np.asarray(values, np.float32)
    data = mesh.export(file_type="glb")
    Path(path).write_bytes(data)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
