"""Topology of a triangle mesh: connected components, watertightness, genus.

Watertight here means closed and consistently oriented: every undirected edge is used by exactly two
faces, once in each direction. The genus is per closed component from the Euler characteristic,
``g = (2 - (V - E + F)) / 2``, summed over components (a sphere 0, a torus 1).
"""

from __future__ import annotations

import numpy as np


def _edges(faces: np.ndarray) -> np.ndarray:
    f = np.asarray(faces, np.int64)
    return np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])


def face_components(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """Component label (F,) of each face, faces joined through shared vertices."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    e = _edges(faces)
    adj = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n_vertices, n_vertices))
    _, vlabel = connected_components(adj, directed=False)
    return vlabel[np.asarray(faces)[:, 0]]


def keep_large_components(vertices: np.ndarray, faces: np.ndarray, min_share: float = 0.01
                          ) -> tuple[np.ndarray, np.ndarray, int]:
    """Drop components with fewer than ``min_share`` of the largest one's faces (specks of fog);
    returns vertices, faces (re-indexed) and how many components were dropped."""
    if len(faces) == 0:
        return vertices, faces, 0
    label = face_components(faces, len(vertices))
    counts = np.bincount(label)
    keep_labels = np.nonzero(counts >= min_share * counts.max())[0]
    keep = np.isin(label, keep_labels)
    dropped = int(np.sum(counts > 0) - len(keep_labels))
    f = np.asarray(faces)[keep]
    used = np.unique(f)
    remap = np.full(len(vertices), -1, np.int64)
    remap[used] = np.arange(len(used))
    return np.asarray(vertices)[used], remap[f], dropped


def topology(vertices: np.ndarray, faces: np.ndarray) -> dict[str, object]:
    """components, watertight (closed + consistently oriented), boundary/non-manifold edge counts, genus."""
    f = np.asarray(faces, np.int64)
    if len(f) == 0:
        return {"components": 0, "watertight": False, "boundary_edges": 0, "nonmanifold_edges": 0, "genus": None}
    directed = _edges(f)
    und = np.sort(directed, 1)
    key = und[:, 0] * (int(und.max()) + 1) + und[:, 1]
    uniq, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    boundary = int(np.sum(counts == 1))
    nonmanifold = int(np.sum(counts > 2))
    # orientation: on a two-face edge the two faces must traverse it in opposite directions
    forward = (directed[:, 0] < directed[:, 1]).astype(np.int64)
    fwd_count = np.bincount(inverse, weights=forward, minlength=len(uniq))
    misoriented = int(np.sum((counts == 2) & (fwd_count != 1)))
    watertight = boundary == 0 and nonmanifold == 0 and misoriented == 0
    label = face_components(f, int(f.max()) + 1)
    comps = np.unique(label)
    genus = None
    if watertight:
        genus = 0
        edge_comp = label[np.tile(np.arange(len(f)), 3)]
        for c in comps:
            fc = f[label == c]
            V = len(np.unique(fc))
            E = len(np.unique(key[edge_comp == c]))
            chi = V - E + len(fc)
            genus += (2 - chi) // 2
    return {"components": int(len(comps)), "watertight": bool(watertight), "boundary_edges": boundary,
            "nonmanifold_edges": nonmanifold, "misoriented_edges": misoriented, "genus": genus}
