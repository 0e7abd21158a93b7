"""Read triangle meshes from files without Blender's importers (OFF, OBJ, STL, PLY).

Blender has no OFF importer, and its OBJ/STL/PLY operators differ between 3.4 and
5.0 (and need add-ons enabled in 3.4). The headless script reads files itself, the
same way in every version. Polygons are fan-triangulated.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from .errors import AddonError

FORMATS = (".off", ".obj", ".stl", ".ply")


class MeshFileError(AddonError):
    """A mesh file that cannot be read."""


def read_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3) float32, faces (F, 3) int32) from an OFF/OBJ/STL/PLY file."""
    path = Path(path)
    if not path.is_file():
        raise MeshFileError(f"mesh file '{path}' does not exist", "Check the path given to --input")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise MeshFileError(f"'{path.name}' is not a supported mesh format",
                            f"Use one of: {', '.join(FORMATS)}")
    try:
        reader = {".off": _read_off, ".obj": _read_obj, ".stl": _read_stl, ".ply": _read_ply}[suffix]
        verts, faces = reader(path)
    except MeshFileError:
        raise
    except (ValueError, IndexError, struct.error, UnicodeDecodeError) as err:
        raise MeshFileError(f"'{path.name}' is not a valid {suffix[1:].upper()} file ({err})",
                            "Re-export it from a 3D tool") from None
    verts = np.asarray(verts, dtype=np.float32).reshape(-1, 3)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(verts) == 0 or len(faces) == 0:
        raise MeshFileError(f"'{path.name}' has no triangles", "Use a mesh with faces")
    if faces.min() < 0 or faces.max() >= len(verts):
        raise MeshFileError(f"'{path.name}' has faces that index missing vertices", "Re-export it")
    return verts, faces.astype(np.int32)


def _fan(polygon: list[int]) -> list[tuple[int, int, int]]:
    return [(polygon[0], polygon[i], polygon[i + 1]) for i in range(1, len(polygon) - 1)]


def _read_off(path: Path) -> tuple[np.ndarray, list]:
    tokens_lines = [ln.split("#")[0].split() for ln in path.read_text(errors="strict").splitlines()]
    lines = [t for t in tokens_lines if t]
    header = lines[0]
    if not header[0].upper().endswith("OFF"):
        raise ValueError("no OFF header")
    rest = header[1:] if len(header) > 1 else None
    counts = rest if rest else lines[1]
    start = 1 if rest else 2
    nv, nf = int(counts[0]), int(counts[1])
    verts = np.array([[float(x) for x in lines[start + i][:3]] for i in range(nv)], dtype=np.float64)
    faces: list = []
    for i in range(nf):
        row = [int(x) for x in lines[start + nv + i]]
        faces += _fan(row[1:1 + row[0]])
    return verts, faces


def _read_obj(path: Path) -> tuple[np.ndarray, list]:
    verts, faces = [], []
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            verts.append([float(x) for x in parts[1:4]])
        elif parts[0] == "f":
            idx = [int(p.split("/")[0]) for p in parts[1:]]
            idx = [i - 1 if i > 0 else len(verts) + i for i in idx]
            faces += _fan(idx)
    return np.array(verts, dtype=np.float64), faces


def _read_stl(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = path.read_bytes()
    if len(data) >= 84:
        (n,) = struct.unpack_from("<I", data, 80)
        if 84 + 50 * n == len(data):
            rec = np.frombuffer(data, dtype=np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")]),
                                count=n, offset=84)
            tri = rec["v"].reshape(-1, 3)
            return _weld(tri)
    words = data.decode("ascii").split()
    tri = [[float(words[i + 1]), float(words[i + 2]), float(words[i + 3])]
           for i, w in enumerate(words) if w == "vertex"]
    return _weld(np.array(tri, dtype=np.float64))


def _weld(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """STL stores each triangle's corners separately; merge equal positions."""
    unique, inverse = np.unique(np.asarray(corners, dtype=np.float64), axis=0, return_inverse=True)
    return unique, inverse.reshape(-1, 3)


_PLY_TYPES = {"char": "i1", "uchar": "u1", "int8": "i1", "uint8": "u1", "short": "i2", "ushort": "u2",
              "int16": "i2", "uint16": "u2", "int": "i4", "uint": "u4", "int32": "i4", "uint32": "u4",
              "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}


def _read_ply(path: Path) -> tuple[np.ndarray, list]:
    data = path.read_bytes()
    end = data.index(b"end_header") + len(b"end_header")
    end = data.index(b"\n", end) + 1
    header = data[:end].decode("ascii").splitlines()
    fmt = next(ln.split()[1] for ln in header if ln.startswith("format"))
    elements: list[tuple[str, int, list[tuple]]] = []
    for ln in header:
        p = ln.split()
        if p and p[0] == "element":
            elements.append((p[1], int(p[2]), []))
        elif p and p[0] == "property":
            elements[-1][2].append(tuple(p[1:]))
    verts, faces = None, []
    if fmt == "ascii":
        rows = [r.split() for r in data[end:].decode("ascii").splitlines() if r.strip()]
        pos = 0
        for name, count, props in elements:
            names = [q[-1] for q in props]
            for r in rows[pos:pos + count]:
                if name == "vertex":
                    verts = [] if verts is None else verts
                    verts.append([float(r[names.index(a)]) for a in "xyz"])
                elif name == "face":
                    faces += _fan([int(x) for x in r[1:1 + int(r[0])]])
            pos += count
        if verts is None:
            raise ValueError("no vertex element")
        return np.array(verts, dtype=np.float64), faces
    if fmt not in ("binary_little_endian", "binary_big_endian"):
        raise ValueError(f"PLY format {fmt}")
    order = "<" if fmt == "binary_little_endian" else ">"
    offset = end
    for name, count, props in elements:
        if all(q[0] != "list" for q in props):
            dt = np.dtype([(q[1], order + _PLY_TYPES[q[0]]) for q in props])
            arr = np.frombuffer(data, dtype=dt, count=count, offset=offset)
            offset += dt.itemsize * count
            if name == "vertex":
                verts = np.stack([arr["x"], arr["y"], arr["z"]], axis=1).astype(np.float64)
            continue
        # an element with a list property (faces): read row by row
        for _ in range(count):
            row_faces = None
            for q in props:
                if q[0] == "list":
                    ct, it = order + _PLY_TYPES[q[1]], order + _PLY_TYPES[q[2]]
                    (n,) = np.frombuffer(data, dtype=ct, count=1, offset=offset)
                    offset += np.dtype(ct).itemsize
                    vals = np.frombuffer(data, dtype=it, count=int(n), offset=offset)
                    offset += np.dtype(it).itemsize * int(n)
                    if name == "face" and q[-1] in ("vertex_indices", "vertex_index"):
                        row_faces = [int(v) for v in vals]
                else:
                    offset += np.dtype(_PLY_TYPES[q[0]]).itemsize
            if row_faces:
                faces += _fan(row_faces)
    if verts is None:
        raise ValueError("no vertex element")
    return verts, faces
