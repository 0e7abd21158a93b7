"""Topology of a triangle mesh: the ONE definition of watertight, components, genus and boundary loops.

Every report (input mesh, SDF result, NeRF result), ``nstr eval``, the benchmarks and the tests use
these functions, so the words mean the same thing everywhere:

* **edge**: an unordered pair of vertex indices used by at least one face.
* **watertight**: every edge is used by exactly two faces, once in each direction (closed AND
  consistently oriented). Vertex pinches (two pieces touching at one vertex) are allowed.
* **component**: faces connected through shared edges; pieces that touch only at a vertex (Suzanne's
  eyes, two cubes corner to corner) are separate components.
* **boundary loop**: a connected chain of boundary edges (edges used by one face).
* **genus** of a component: from its Euler characteristic chi = V - E + F and its boundary loops b,
  g = (2 - chi - b) / 2, defined where the component is an oriented 2-manifold at its edges (no edge
  used by three or more faces, no edge used twice in one direction); a sphere 0, a torus 1, a plate with
  n through-holes n. The mesh's genus is the sum over its components, None when any is undefined.

Edges are found with one sort of int64 keys (no Python loops), so a server can describe every upload.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EdgeTable:
    """The distinct undirected edges of a face array and who uses them.

    Slot ``k * F + i`` is the edge from corner k to corner k+1 of face i.
    """

    n_faces: int
    slot_edge: np.ndarray  # (3F,) index of each slot's edge in ``keys``
    keys: np.ndarray  # (E,) sorted undirected keys lo * n + hi
    n_vertices: int  # the key base n (max index + 1)
    uses: np.ndarray  # (E,) faces using each edge
    forward: np.ndarray  # (E,) of those uses, how many run lo -> hi

    @property
    def boundary(self) -> np.ndarray:
        return self.uses == 1

    @property
    def nonmanifold(self) -> np.ndarray:
        return self.uses > 2

    @property
    def misoriented(self) -> np.ndarray:
        """Two-face edges that both faces traverse in the same direction (a flipped face, or a
        non-orientable surface)."""
        return (self.uses == 2) & (self.forward != 1)

    def edge_face(self) -> np.ndarray:
        """(E,) one face that uses each edge."""
        face = np.empty(len(self.keys), np.int64)
        face[self.slot_edge] = np.arange(len(self.slot_edge)) % max(self.n_faces, 1)
        return face

    def endpoints(self, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) vertex indices of the given edges."""
        k = self.keys[edges]
        return k // self.n_vertices, k % self.n_vertices


def edge_table(faces: np.ndarray) -> EdgeTable:
    """Count and orient every undirected edge with one sort."""
    f = np.asarray(faces, np.int64).reshape(-1, 3)
    n = int(f.max()) + 1 if len(f) else 1
    a = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    b = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    keys, slot_edge, uses = np.unique(lo * n + hi, return_inverse=True, return_counts=True)
    slot_edge = slot_edge.reshape(-1)
    forward = np.bincount(slot_edge, weights=(a < b), minlength=len(keys)).astype(np.int64)
    return EdgeTable(len(f), slot_edge, keys, n, uses, forward)


def _as_table(faces_or_table: np.ndarray | EdgeTable) -> EdgeTable:
    return faces_or_table if isinstance(faces_or_table, EdgeTable) else edge_table(faces_or_table)


def two_face_edges(faces: np.ndarray) -> np.ndarray:
    """(E2, 2) for every edge used by exactly two faces, the slots of its two uses (slot ``k * F + i``:
    face i, from its corner k to corner k + 1, as in :class:`EdgeTable`), in one sort of the slots' keys
    (the edge table's unique-with-inverse and a second sort took twice as long)."""
    f = np.asarray(faces, np.int64).reshape(-1, 3)
    n = int(f.max()) + 1 if len(f) else 1
    a, b = f.T.reshape(-1), f[:, [1, 2, 0]].T.reshape(-1)
    keys = np.minimum(a, b) * n + np.maximum(a, b)
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    same = k[1:] == k[:-1]
    # a pair of equal keys with no third one beside it
    first = same & np.r_[True, ~same[:-1]] & np.r_[~same[1:], True]
    i = np.flatnonzero(first)
    return np.stack([order[i], order[i + 1]], 1)


def is_watertight(faces: np.ndarray | EdgeTable) -> bool:
    """Every edge used by exactly two faces in opposite directions (and at least one face)."""
    t = _as_table(faces)
    return t.n_faces > 0 and bool(((t.uses == 2) & (t.forward == 1)).all())


def face_components(faces: np.ndarray | EdgeTable) -> np.ndarray:
    """(F,) component label of each face, faces joined through shared edges (labels 0..C-1)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    t = _as_table(faces)
    if t.n_faces == 0:
        return np.zeros(0, np.int64)
    # a bipartite graph faces + edges: slot s joins face s % F to its edge
    slot_face = np.arange(len(t.slot_edge)) % t.n_faces
    n = t.n_faces + len(t.keys)
    graph = coo_matrix((np.ones(len(slot_face), np.int8), (slot_face, t.n_faces + t.slot_edge)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    _, face_label = np.unique(labels[:t.n_faces], return_inverse=True)  # 0..C-1 over faces only
    return face_label.reshape(-1).astype(np.int64)


def euler_characteristic(faces: np.ndarray, table: EdgeTable | None = None) -> int:
    """V - E + F over the vertices the faces use (``table``: the faces' edge table, if already built)."""
    f = np.asarray(faces, np.int64)
    used = int(np.count_nonzero(np.bincount(f.reshape(-1)))) if f.size else 0
    return int(used - len((table if table is not None else edge_table(f)).keys) + len(f))


def _boundary_loop_labels(t: EdgeTable) -> tuple[np.ndarray, np.ndarray]:
    """(boundary edge indices, loop label of each): boundary edges joined through shared vertices."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = np.flatnonzero(t.boundary)
    if len(edges) == 0:
        return edges, np.zeros(0, np.int64)
    lo, hi = t.endpoints(edges)
    verts, inverse = np.unique(np.concatenate([lo, hi]), return_inverse=True)
    inverse = inverse.reshape(-1)
    m = len(edges)
    graph = coo_matrix((np.ones(m, np.int8), (inverse[:m], inverse[m:])), shape=(len(verts), len(verts)))
    _, vlabel = connected_components(graph, directed=False)
    return edges, vlabel[inverse[:m]]


def boundary_loops(faces: np.ndarray | EdgeTable) -> int:
    """How many closed chains of boundary edges (an open box: 1; a tube: 2; a closed mesh: 0)."""
    _, labels = _boundary_loop_labels(_as_table(faces))
    return int(len(np.unique(labels)))


@dataclass(frozen=True)
class Component:
    faces: int
    watertight: bool
    boundary_loops: int
    genus: int | None  # None where the component is not an oriented 2-manifold at its edges
    area: float | None = None  # in the mesh's units, when vertices were given

    def to_dict(self) -> dict[str, object]:
        d = {"faces": self.faces, "watertight": self.watertight, "boundary_loops": self.boundary_loops,
             "genus": self.genus}
        if self.area is not None:
            d["area"] = float(f"{self.area:.6g}")
        return d


def components(faces: np.ndarray, vertices: np.ndarray | None = None,
               table: EdgeTable | None = None, labels: np.ndarray | None = None) -> list[Component]:
    """Each edge-connected component (in label order) with its own watertightness, boundary loops
    and genus; its area when ``vertices`` are given."""
    f = np.asarray(faces, np.int64)
    t = table if table is not None else edge_table(f)
    lab = labels if labels is not None else face_components(t)
    n_c = int(lab.max()) + 1 if len(lab) else 0
    if n_c == 0:
        return []
    n_faces = np.bincount(lab, minlength=n_c)
    edge_comp = lab[t.edge_face()]
    n_edges = np.bincount(edge_comp, minlength=n_c)
    # a vertex counts once per component that uses it (a pinch vertex is in both pieces)
    corner_comp = np.repeat(lab, 3)
    pairs = np.unique(f.reshape(-1) * n_c + corner_comp)
    n_verts = np.bincount(pairs % n_c, minlength=n_c)
    bad = np.bincount(edge_comp, weights=t.nonmanifold | t.misoriented, minlength=n_c) > 0
    open_edges = np.bincount(edge_comp, weights=t.boundary, minlength=n_c)
    b_edges, b_labels = _boundary_loop_labels(t)
    loops = np.zeros(n_c, np.int64)
    if len(b_edges):
        first = np.unique(b_labels, return_index=True)[1]
        loops = np.bincount(edge_comp[b_edges[first]], minlength=n_c)
    chi = n_verts - n_edges + n_faces
    area = None
    if vertices is not None:
        v = np.asarray(vertices, np.float64)
        cross = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        area = np.bincount(lab, weights=0.5 * np.linalg.norm(cross, axis=1), minlength=n_c)
    out = []
    for c in range(n_c):
        g2 = 2 - int(chi[c]) - int(loops[c])
        genus = None if bad[c] or g2 % 2 else g2 // 2
        out.append(Component(faces=int(n_faces[c]), watertight=not bad[c] and open_edges[c] == 0,
                             boundary_loops=int(loops[c]), genus=genus,
                             area=None if area is None else float(area[c])))
    return out


def genus(faces: np.ndarray) -> int | None:
    """Total genus: the sum of the components' genera, None when any is undefined."""
    parts = components(faces)
    if not parts or any(p.genus is None for p in parts):
        return None
    return int(sum(p.genus for p in parts))


def topology(faces: np.ndarray, vertices: np.ndarray | None = None, list_parts: int = 12) -> dict[str, object]:
    """Everything reports show, in one dict: watertight, components, genus, boundary loops, edge
    counts, Euler characteristic, and the ``list_parts`` largest components (by faces) one by one."""
    f = np.asarray(faces, np.int64)
    if len(f) == 0:
        return {"watertight": False, "components": 0, "genus": None, "boundary_loops": 0, "boundary_edges": 0,
                "nonmanifold_edges": 0, "misoriented_edges": 0, "euler": 0, "parts": []}
    t = edge_table(f)
    labels = face_components(t)
    parts = components(f, vertices, t, labels)
    order = sorted(range(len(parts)), key=lambda i: -parts[i].faces)
    total = None if any(p.genus is None for p in parts) else int(sum(p.genus for p in parts))
    return {"watertight": is_watertight(t), "components": len(parts), "genus": total,
            "boundary_loops": int(sum(p.boundary_loops for p in parts)),
            "boundary_edges": int(t.boundary.sum()), "nonmanifold_edges": int(t.nonmanifold.sum()),
            "misoriented_edges": int(t.misoriented.sum()),
            "euler": int(len(np.unique(f)) - len(t.keys) + len(f)),
            "parts": [parts[i].to_dict() for i in order[:list_parts]]}


def select_faces(vertices: np.ndarray, faces: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sub-mesh of the faces where ``keep`` is True, unused vertices removed and faces re-indexed."""
    f = np.asarray(faces)[keep]
    used = np.unique(f)
    remap = np.full(len(vertices), -1, np.int64)
    remap[used] = np.arange(len(used))
    return np.asarray(vertices)[used], remap[f].astype(np.asarray(faces).dtype)
