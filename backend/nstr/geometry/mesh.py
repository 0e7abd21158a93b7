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
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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

    from nstr.signals._paths import check_readable_file

    path = Path(path)
    check_readable_file(path, "a mesh")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(f"'{path.name}' has an unsupported mesh format '{suffix or '(none)'}'",
                         "Use one of: " + ", ".join(s[1:].upper() for s in SUPPORTED_SUFFIXES))
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


CHECK_CHUNK = 1 << 20  # rows per pass of the cheap checks: memory stays flat whatever the mesh's size


def check_mesh_arrays(vertices: Any, faces: Any, source: str = "arrays") -> None:
    """The checks every later stage relies on (shapes, numbers, finite, indices in range), in
    chunks and without copies, so that a server can refuse a bad upload at submit while holding
    it memory-mapped; the costlier repairs and descriptions wait for :func:`validate_mesh`."""
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
    integral = np.issubdtype(f.dtype, np.integer)
    if not integral and not np.issubdtype(f.dtype, np.floating):
        raise InputError(f"face indices must be integers, not {f.dtype}", "Send int32 or int64 faces")
    for s in range(0, len(v), CHECK_CHUNK):
        bad = ~np.isfinite(v[s:s + CHECK_CHUNK]).all(axis=1)
        if bad.any():
            n_bad = int(sum((~np.isfinite(v[t:t + CHECK_CHUNK]).all(axis=1)).sum()
                            for t in range(s, len(v), CHECK_CHUNK)))
            raise InputError(f"{n_bad} vertices have NaN or infinite coordinates (first: vertex {s + int(np.argmax(bad))})",
                             "Fix or delete those vertices (Blender: Mesh > Clean Up)")
    lo, hi = None, None
    for s in range(0, len(f), CHECK_CHUNK):
        part = f[s:s + CHECK_CHUNK]
        if not integral and not (np.all(np.isfinite(part)) and np.all(part == np.round(part))):
            raise InputError(f"face indices must be integers, not {f.dtype}", "Send int32 or int64 faces")
        plo, phi = part.min(), part.max()
        lo, hi = (plo, phi) if lo is None else (min(lo, plo), max(hi, phi))
    if lo < 0 or hi >= len(v):
        worst = int(lo) if lo < 0 else int(hi)
        raise InputError(f"face index {worst} is out of range for {len(v)} vertices",
                         "Face indices must be between 0 and V-1 (0-based)")


def validate_mesh(vertices: Any, faces: Any, source: str = "arrays", n_parts: int = 1) -> tuple[Mesh, MeshReport]:
    """Check everything later stages rely on; describe what is imperfect but usable."""
    check_mesh_arrays(vertices, faces, source)
    v = np.asarray(vertices).astype(np.float64)
    f = np.asarray(faces).astype(np.int64)
    # triangle soups (STL, some OBJ/GLB exports) repeat coincident vertices: weld exact copies so
    # open edges, components and watertightness describe the surface, not the file layout
    n_before = len(v)
    welded, inverse = np.unique(v, axis=0, return_inverse=True)
    if len(welded) < n_before:
        v, f = welded, inverse.reshape(-1)[f]
    extent = np.ptp(v[np.unique(f)], axis=0)
    size = float(extent.max())
    if size <= 0:
        raise InputError("the mesh is degenerate: all its faces collapse to one point",
                         "Give a mesh with some size")
    # zero-area faces carry no surface; drop them but say so
    area2 = np.empty(len(f))
    for s0 in range(0, len(f), 1 << 18):  # in blocks: the server validates every upload, memory stays flat
        blk = f[s0:s0 + (1 << 18)]
        a = v[blk[:, 0]]
        area2[s0:s0 + len(blk)] = np.linalg.norm(np.cross(v[blk[:, 1]] - a, v[blk[:, 2]] - a), axis=1)
    keep = area2 > 1e-14 * size * size
    n_degenerate = int((~keep).sum())
    if not keep.any():
        raise InputError(f"the mesh is degenerate: all {len(f)} faces have zero area",
                         "Give a mesh whose faces enclose some area")
    f = f[keep]
    used = np.unique(f)
    extent = np.ptp(v[used], axis=0)
    if extent.min() <= 1e-6 * extent.max():
        axis = "xyz"[int(np.argmin(extent))]
        raise InputError(f"the mesh has zero volume: it is flat along {axis}",
                         "An SDF needs a solid; give the surface thickness (Blender: Solidify modifier)")
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
