"""Triangle-mesh input: files through trimesh, raw arrays from Blender, and validation.

Everything that can go wrong with a user's mesh is caught here and turned into an
:class:`~nstr.errors.InputError` with one line naming the problem and the fix, so later
stages can assume finite float64 vertices, int64 faces in range, and some volume.
Meshes that are merely imperfect (open edges, several parts, flipped normals) are
accepted and described in a :class:`MeshReport` instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from nstr.chunked import row_chunks
from nstr.errors import InputError

SUPPORTED_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")
HUGE_FACE_COUNT = 5_000_000  # beyond this we warn: ground truth and metrics get slow


@dataclass(frozen=True)
class Mesh:
    """A validated triangle mesh: vertices (V, 3) float64, faces (F, 3) int64."""

    vertices: np.ndarray
    faces: np.ndarray

    def content_hash(self) -> str:
        """Stable key for caches: the same geometry gives the same key, whatever file it came from."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.vertices, dtype="<f8").tobytes())
        h.update(np.ascontiguousarray(self.faces, dtype="<i8").tobytes())
        return h.hexdigest()[:24]


@dataclass
class MeshReport:
    """What was found in the input: shown to the user instead of failing on imperfect meshes."""

    source: str
    n_vertices: int
    n_faces: int
    n_parts: int  # geometries in the file/scene that were concatenated
    n_components: int  # pieces of faces connected through shared edges (nstr.geometry.topology)
    open_edges: int  # edges used by exactly one face
    nonmanifold_edges: int  # edges used by three or more faces
    watertight: bool  # every edge used by two faces in opposite directions (nstr.geometry.topology)
    winding_consistent: bool  # no edge used by 3+ faces or twice in one direction (open meshes may be)
    degenerate_faces_removed: int
    unreferenced_vertices: int
    bounds: list[list[float]]
    warnings: list[str] = field(default_factory=list)
    merged_vertices: int = 0  # exact duplicates welded (triangle soups such as STL)
    misoriented_edges: int = 0  # two-face edges both faces run in the same direction (a flipped face)
    genus: int | None = None  # summed over components; None where one is not an oriented manifold
    boundary_loops: int = 0  # closed chains of open edges (holes in the surface)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def closedness(self) -> str:
        """'watertight', or 'not watertight (why)'."""
        why = [f"{n} {what}" for n, what in ((self.open_edges, "open edges"),
                                              (self.nonmanifold_edges, "edges used by 3+ faces"),
                                              (self.misoriented_edges, "edges wound the same way by both faces")) if n]
        return "watertight" if self.watertight else f"not watertight ({', '.join(why)})"

    def summary(self) -> str:
        closed = self.closedness()
        return (f"{self.n_vertices} vertices, {self.n_faces} faces, {self.n_components} component(s), {closed}"
                + (f", {self.degenerate_faces_removed} degenerate faces removed" if self.degenerate_faces_removed else ""))


def load_mesh(path: str | Path) -> tuple[Mesh, MeshReport]:
    """Read OBJ / PLY / STL / OFF / GLB / glTF; scenes with several parts are concatenated in world space."""
    import trimesh

    from nstr.paths import check_readable_file

    path = Path(path)
    check_readable_file(path, "a mesh")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(f"'{path.name}' has an unsupported mesh format '{suffix or '(none)'}'",
                         "Use one of: " + ", ".join(s[1:].upper() for s in SUPPORTED_SUFFIXES))
    if suffix == ".obj":
        check_obj_face_indices(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = trimesh.load(str(path), process=False, force=None)
    except Exception as err:  # trimesh raises many types for broken files
        raise InputError(f"could not read '{path.name}' as {suffix[1:].upper()} ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:120] if str(err) else 'no details'})",
                         "Check that the file is a valid mesh; re-export it from your modeller") from None
    vertices, faces, n_parts = _arrays_from_trimesh(loaded, path.name)
    return validate_mesh(vertices, faces, source=str(path), n_parts=n_parts)


def check_obj_face_indices(path: Path) -> None:
    """OBJ counts vertices from 1 (or from the end with -1): trimesh reads a face index 0 as a repeated
    vertex (a "zero area" face) and one past the end as a crash, so both are named here as what they are."""
    data = path.read_bytes()
    n_vertices = len(re.findall(rb"^v[ \t]", data, re.M))
    face_lines = b"\n".join(re.findall(rb"^f[ \t]+([^\r\n]*)", data, re.M))
    refs = np.array([int(r) for r in re.findall(rb"(?:^|[ \t\n])([-+]?\d+)", face_lines)], np.int64)
    bad = (refs == 0) | (refs > n_vertices) | (refs < -n_vertices)
    if bad.any():
        raise InputError(f"invalid face index {int(refs[np.argmax(bad)])} in '{path.name}': OBJ counts vertices from 1, "
                         f"and this file has {n_vertices} (indices 1 to {n_vertices}, or -{n_vertices} to -1)",
                         "Fix the face lines, or re-export the mesh from your modeller")


def _arrays_from_trimesh(loaded: Any, name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Flatten a trimesh object (mesh, scene, point cloud...) into vertex and face arrays."""
    import trimesh

    if isinstance(loaded, trimesh.Scene):
        meshes = []
        for node in loaded.graph.nodes_geometry:
            transform, geom_name = loaded.graph[node]
            geom = loaded.geometry[geom_name]
            if isinstance(geom, trimesh.Trimesh) and len(geom.faces):
                meshes.append((np.asarray(geom.vertices, float) @ transform[:3, :3].T + transform[:3, 3],
                               np.asarray(geom.faces)))
        if not meshes:
            kinds = sorted({type(g).__name__ for g in loaded.geometry.values()}) or ["nothing"]
            raise InputError(f"'{name}' contains no triangle faces (found: {', '.join(kinds)})",
                             "Export a mesh with faces, not a point cloud or curves")
        offsets = np.cumsum([0] + [len(v) for v, _ in meshes[:-1]])
        vertices = np.concatenate([v for v, _ in meshes])
        faces = np.concatenate([f + o for (_, f), o in zip(meshes, offsets)])
        return vertices, faces, len(meshes)
    if isinstance(loaded, trimesh.Trimesh):
        return np.asarray(loaded.vertices), np.asarray(loaded.faces), 1
    if isinstance(loaded, trimesh.PointCloud):
        raise InputError(f"'{name}' is a point cloud with no faces",
                         "Give a triangle mesh; reconstruct a surface from the points first")
    raise InputError(f"'{name}' contains no triangle faces (found {type(loaded).__name__})",
                     "Export a mesh with faces, not curves or a point cloud")


def mesh_from_arrays(vertices: Any, faces: Any, source: str = "arrays") -> tuple[Mesh, MeshReport]:
    """Raw arrays, as Blender sends them: vertices (V, 3) float, faces (F, 3) int (triangulated)."""
    return validate_mesh(vertices, faces, source=source)


CHECK_CHUNK = 1 << 16  # rows per pass of the input check: memory stays flat whatever the mesh's size
MAX_COORDINATE = 1e12  # beyond this a coordinate is a unit or export error (and its square nears float64's range)
DEGENERATE_AREA = 1e-14  # a face whose doubled area is below this times the mesh's size squared has none
FLAT_RATIO = 1e-6  # a mesh thinner than this share of its size, in every direction, encloses no volume


def check_mesh_arrays(vertices: Any, faces: Any, source: str = "arrays") -> None:
    """The one input check on a mesh, shared by the CLI's loader and the server's submit, so both refuse
    the same meshes with the same one-line messages: shapes and types, finite and sane coordinates,
    valid indices, some face with an area, and some volume. It runs in chunks and copies nothing
    whole, so a server can check a large upload memory-mapped (:mod:`nstr.chunked`); welding and the
    topology report wait for :func:`validate_mesh`."""
    v = np.asarray(vertices)
    f = np.asarray(faces)
    if v.size == 0:
        raise InputError(f"the mesh from {source} is empty (no vertices)", "Give a mesh with vertices and faces")
    if v.ndim != 2 or v.shape[1] != 3:
        raise InputError(f"vertices must have shape (V, 3), not {tuple(v.shape)}", "Send one x, y, z row per vertex")
    if not np.issubdtype(v.dtype, np.number) or np.issubdtype(v.dtype, np.complexfloating):
        raise InputError(f"vertices must be numbers, not {v.dtype}", "Send float32 or float64 vertices")
    if f.size == 0:
        raise InputError(f"the mesh from {source} is a point cloud with no faces ({len(v)} vertices)",
                         "Give a triangle mesh; reconstruct a surface from the points first")
    if f.ndim != 2 or f.shape[1] != 3:
        raise InputError(f"faces must have shape (F, 3) triangles, not {tuple(f.shape)}",
                         "Triangulate the mesh first (Blender: Triangulate modifier)")
    if not np.issubdtype(f.dtype, np.integer) and not np.issubdtype(f.dtype, np.floating):
        raise InputError(f"face indices must be integers, not {f.dtype}", "Send int32 or int64 faces")
    _check_coordinates(v)
    used = _check_indices(f, len(v))
    lo, hi = _bounds(v, used)
    size = float(np.max(hi - lo))
    if size <= 0:
        raise InputError("the mesh is degenerate: all its faces collapse to one point", "Give a mesh with some size")
    kept_used: np.ndarray | None = None  # the vertices of faces with an area; None while that is all of used
    n_kept = 0
    for s, blk in row_chunks(f, CHECK_CHUNK):
        keep = face_area2(v, blk) > DEGENERATE_AREA * size * size
        n_kept += int(keep.sum())
        if kept_used is None and not keep.all():  # the first face without area: count the others' vertices
            kept_used = np.zeros(len(v), bool)
            for _, earlier in row_chunks(f[:s], CHECK_CHUNK):
                kept_used[earlier.astype(np.intp).reshape(-1)] = True
        if kept_used is not None:
            kept_used[blk[keep].astype(np.intp).reshape(-1)] = True
    if not n_kept:
        raise InputError(f"the mesh is degenerate: all {len(f)} faces have zero area",
                         "Give a mesh whose faces enclose some area")
    _check_volume(v, used if kept_used is None else kept_used, centre=(lo + hi) / 2)


def _check_coordinates(v: np.ndarray) -> None:
    n_bad = n_huge = 0
    first_bad = first_huge = -1
    for s, part in row_chunks(v, CHECK_CHUNK):
        with np.errstate(invalid="ignore"):
            if np.abs(part).max(initial=0) <= MAX_COORDINATE:  # the usual chunk: one reduction, no row scan
                continue
            reach = np.abs(part).max(axis=1)  # NaN where a coordinate is NaN
        bad = ~np.isfinite(reach)
        huge = reach > MAX_COORDINATE  # False for NaN
        if bad.any():
            first_bad = first_bad if n_bad else s + int(np.argmax(bad))
            n_bad += int(bad.sum())
        if huge.any():
            first_huge = first_huge if n_huge else s + int(np.argmax(huge & ~bad))
            n_huge += int((huge & ~bad).sum())
    if n_bad:
        raise InputError(f"{n_bad} vertices have NaN or infinite coordinates (first: vertex {first_bad})",
                         "Fix or delete those vertices (Blender: Mesh > Clean Up)")
    if n_huge:
        worst = float(np.abs(np.asarray(v[first_huge], np.float64)).max())
        raise InputError(f"{n_huge} vertices have coordinates beyond +-{MAX_COORDINATE:.0e} (first: vertex {first_huge}, "
                         f"at {worst:.3g})", "Check the export's unit scale, and move the mesh near the origin")


def _check_indices(f: np.ndarray, n_vertices: int) -> np.ndarray:
    """Integral, in range; returns which vertices the faces use."""
    integral = np.issubdtype(f.dtype, np.integer)
    used = np.zeros(n_vertices, bool)
    for _, part in row_chunks(f, CHECK_CHUNK):
        if not integral and not (np.all(np.isfinite(part)) and np.all(part == np.round(part))):
            raise InputError(f"face indices must be integers, not {f.dtype}", "Send int32 or int64 faces")
        lo, hi = part.min(), part.max()
        if lo < 0 or hi >= n_vertices:
            raise InputError(f"invalid face index {int(lo) if lo < 0 else int(hi)}: out of range for {n_vertices} "
                             f"vertices (indices run from 0 to {n_vertices - 1})",
                             "Fix the faces' vertex indices (0-based), or re-export the mesh")
        used[part.astype(np.int64).reshape(-1)] = True
    return used


def _bounds(v: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box (float64 corners) of the vertices in ``mask``, in chunks."""
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for s, part in _masked_chunks(v, mask):
        if len(part):
            lo, hi = np.minimum(lo, part.min(axis=0)), np.maximum(hi, part.max(axis=0))
    return lo, hi


def _masked_chunks(v: np.ndarray, mask: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """The rows of ``v`` in ``mask``, chunk by chunk (no selection when the mask holds every row)."""
    every = bool(mask.all())
    for s, part in row_chunks(v, CHECK_CHUNK):
        yield s, part if every else part[mask[s:s + len(part)]]


def corner_sums(faces: np.ndarray, face_values: np.ndarray, n_vertices: int) -> np.ndarray:
    """Per vertex, the sum of ``face_values`` ((F,) or (F, C)) over the faces that use it: each face's
    value goes to its three corners (by ``bincount``: ``np.add.at`` is 10x slower)."""
    corner = np.asarray(faces, np.int64).reshape(-1)
    values = np.asarray(face_values, np.float64)
    if values.ndim == 1:
        return np.bincount(corner, weights=np.repeat(values, 3), minlength=n_vertices)
    return np.stack([np.bincount(corner, weights=np.repeat(values[:, c], 3), minlength=n_vertices)
                     for c in range(values.shape[1])], 1)


def face_area2(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Twice each face's area (float64): one chunk of faces at a time."""
    idx = f.astype(np.intp, copy=False)
    p0, p1, p2 = (np.take(v, idx[:, k], axis=0).astype(np.float64).T.copy() for k in range(3))  # (3, n) each
    b, c = p1 - p0, p2 - p0
    x, y, z = b[1] * c[2] - b[2] * c[1], b[2] * c[0] - b[0] * c[2], b[0] * c[1] - b[1] * c[0]
    return np.sqrt(x * x + y * y + z * z)


def _check_volume(v: np.ndarray, mask: np.ndarray, centre: np.ndarray) -> None:
    """Refuse a mesh whose vertices (those of faces with an area) all lie in one plane, whatever its tilt:
    the smallest principal spread against the largest, from one chunked pass of moments about ``centre``
    (the box's centre: a mesh far from the origin keeps its precision)."""
    n, total, outer = 0, np.zeros(3), np.zeros((3, 3))
    for _, part in _masked_chunks(v, mask):
        sel = part.astype(np.float64) - centre
        n += len(sel)
        total += sel.sum(axis=0)
        outer += sel.T @ sel
    mean = total / n
    spread, axes = np.linalg.eigh(outer / n - np.outer(mean, mean))
    spread = np.sqrt(np.maximum(spread, 0.0))
    if spread[0] <= FLAT_RATIO * spread[2]:
        normal = axes[:, 0]
        axis = int(np.argmax(np.abs(normal)))
        where = ("along " + "xyz"[axis]) if abs(normal[axis]) > 1 - 1e-9 else \
            "in a tilted plane (normal " + ", ".join(f"{c:.2f}" for c in normal) + ")"
        raise InputError(f"the mesh has zero volume: it is flat {where}",
                         "An SDF needs a solid; give the surface thickness (Blender: Solidify modifier)")


def validate_mesh(vertices: Any, faces: Any, source: str = "arrays", n_parts: int = 1) -> tuple[Mesh, MeshReport]:
    """Check everything later stages rely on (:func:`check_mesh_arrays`), drop the faces without area,
    and describe what is imperfect but usable."""
    check_mesh_arrays(vertices, faces, source)
    v = np.asarray(vertices).astype(np.float64)
    f = np.asarray(faces).astype(np.int64)
    # triangle soups (STL, some OBJ/GLB exports) repeat coincident vertices: weld exact copies so
    # open edges, components and watertightness describe the surface, not the file layout
    n_before = len(v)
    welded, inverse = np.unique(v, axis=0, return_inverse=True)
    if len(welded) < n_before:
        v, f = welded, inverse.reshape(-1)[f]
    size = float(np.ptp(v[np.unique(f)], axis=0).max())
    # zero-area faces carry no surface; drop them but say so
    area2 = np.concatenate([face_area2(v, blk) for _, blk in row_chunks(f, 1 << 18)])
    keep = area2 > DEGENERATE_AREA * size * size
    n_degenerate = int((~keep).sum())
    f = f[keep]
    report = describe(v, f, source=source, n_parts=n_parts, n_degenerate=n_degenerate)
    report.merged_vertices = n_before - len(v)
    return Mesh(vertices=v, faces=f), report


def describe(v: np.ndarray, f: np.ndarray, *, source: str, n_parts: int, n_degenerate: int) -> MeshReport:
    """Topology facts (open edges, components, orientation, genus) by :mod:`nstr.geometry.topology`,
    the same definitions every report uses."""
    from nstr.geometry.topology import components, edge_table, face_components, is_watertight

    table = edge_table(f)
    parts = components(f, table=table, labels=face_components(table))
    open_edges, nonmanifold = int(table.boundary.sum()), int(table.nonmanifold.sum())
    misoriented = int(table.misoriented.sum())
    genus = None if any(p.genus is None for p in parts) else int(sum(p.genus for p in parts))
    watertight = is_watertight(table)
    used = np.unique(f)
    notes = []
    if len(f) > HUGE_FACE_COUNT:
        notes.append(f"huge mesh ({len(f)} faces): ground truth and metrics will be slow; sample counts are unchanged")
    report = MeshReport(source=source, n_vertices=len(v), n_faces=len(f), n_parts=n_parts, n_components=len(parts),
                        open_edges=open_edges, nonmanifold_edges=nonmanifold, misoriented_edges=misoriented,
                        watertight=watertight, winding_consistent=nonmanifold == 0 and misoriented == 0,
                        genus=genus, boundary_loops=int(sum(p.boundary_loops for p in parts)),
                        degenerate_faces_removed=n_degenerate, unreferenced_vertices=int(len(v) - len(used)),
                        bounds=[v[used].min(0).tolist(), v[used].max(0).tolist()], warnings=notes)
    if not watertight:
        notes.append(f"{report.closedness()}: inside/outside comes from the winding number")
    return report
