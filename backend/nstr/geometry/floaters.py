"""Floaters: components of an extracted mesh that the object does not have, and how they are dropped.

Marching cubes of a fitted field finds every zero crossing, including specks where the field dips
below zero away from the surface (inside holes, in empty corners, inside the solid). Components are
edge-connected (:mod:`nstr.geometry.topology`), so they are the same pieces every report counts.

* With the input mesh (SDF jobs), :func:`keep_supported`: each input component claims the output
  component that covers it. Area-uniform samples on each input component (at least ``MIN_SAMPLES``
  per component, so Suzanne's eyes count as much as her head) find their closest output triangle:
  each input component keeps the output component closest to most of its samples. Another output
  component is kept only when it covers what those do not: it is within tau (1% of the input's box,
  the F@1% threshold) of samples that are farther than tau from every kept component, at least
  ``MIN_RESTORED`` of them and ``MIN_CLAIM`` of some input component's samples (a thin part the fit
  broke off). A speck in a hole, or along a seam the kept surface already covers, restores nothing,
  so it goes; an inner void of the input claims the void the fit made, so that stays.
* Without one (NeRF jobs), :func:`keep_large`: components under ``min_share`` of the largest one's area.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nstr.geometry.mesh import Mesh
from nstr.geometry.sampling import surface_samples
from nstr.geometry.topology import components, face_components, select_faces

SUPPORT_SAMPLES = 20_000  # samples on the input surface, shared out over its components by area
MIN_SAMPLES = 200  # ... but at least this many on every input component
MIN_CLAIM = 0.005  # a further component must restore coverage of this share of an input component's samples
MIN_RESTORED = 10  # ... and of at least this many samples
LISTED = 12  # input components listed in the report, largest first


def _result(vertices: np.ndarray, faces: np.ndarray, labels: np.ndarray, keep_labels: np.ndarray,
            rule: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    n_out = int(labels.max()) + 1 if len(labels) else 0
    keep = np.isin(labels, keep_labels)
    dropped_faces = np.bincount(labels[~keep], minlength=n_out)
    info = {"rule": rule, "components_before": n_out, "dropped": int(n_out - len(keep_labels)),
            "dropped_faces": int((~keep).sum()),
            "largest_dropped_faces": int(dropped_faces.max()) if n_out and (~keep).any() else 0}
    if keep.all():
        return vertices, faces, info
    v, f = select_faces(vertices, faces, keep)
    return v, f, info


def keep_supported(vertices: np.ndarray, faces: np.ndarray, ref_vertices: np.ndarray, ref_faces: np.ndarray,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The output components that the input's components claim (see the module docstring); both
    meshes in the same coordinates. Returns vertices, faces (re-indexed) and what was dropped."""
    from nstr.geometry.ground_truth import MeshSDF

    rule = ("kept: the output component nearest to most of each input component's surface samples, and any "
            f"other that alone comes within 1% of the box of >= {MIN_CLAIM:.1%} of an input component's samples")
    labels = face_components(faces)
    n_out = int(labels.max()) + 1 if len(labels) else 0
    if n_out == 0:
        return _result(vertices, faces, labels, np.arange(n_out), rule)
    rv, rf = np.asarray(ref_vertices, np.float64), np.asarray(ref_faces, np.int64)
    ref_labels = face_components(rf)
    n_in = int(ref_labels.max()) + 1
    parts = components(rf, rv, labels=ref_labels)
    comp_area = np.array([c.area for c in parts])
    want = np.maximum(MIN_SAMPLES, np.round(SUPPORT_SAMPLES * comp_area / comp_area.sum()))
    # density per unit area: that component's sample count over its area
    weight = want[ref_labels] / np.maximum(comp_area[ref_labels], 1e-300)
    points, _, face = surface_samples(Mesh(rv, rf), int(want.sum()), np.random.default_rng(seed), weight)
    dist, nearest, _ = MeshSDF(np.asarray(vertices, np.float64), np.asarray(faces, np.int64)).closest(points)
    owner, piece = ref_labels[face], labels[nearest]  # per sample: its input component, its nearest output one
    votes = np.zeros((n_in, n_out))
    np.add.at(votes, (owner, piece), 1.0)
    kept = np.zeros(n_out, bool)
    kept[votes.argmax(1)] = True
    # distance to the kept components; samples whose nearest piece is not kept ask the kept ones alone
    tau = 0.01 * float(np.ptp(rv[np.unique(rf)], axis=0).max())
    to_kept = dist.copy()
    other = ~kept[piece]
    if other.any():
        kv, kf = select_faces(np.asarray(vertices, np.float64), np.asarray(faces, np.int64), kept[labels])
        to_kept[other] = MeshSDF(kv, kf).closest(points[other])[0]
    restored = np.zeros((n_in, n_out))
    gain = other & (to_kept > tau) & (dist <= tau)
    np.add.at(restored, (owner[gain], piece[gain]), 1.0)
    need = np.maximum(MIN_RESTORED, MIN_CLAIM * votes.sum(1, keepdims=True))
    kept |= (restored >= need).any(0)
    v, f, info = _result(vertices, faces, labels, np.flatnonzero(kept), rule)
    # each input component (the largest LISTED): how much of it the kept result covers within tau, and
    # the size of the output piece nearest to most of it (Suzanne's eyes at the quick preset: the head's)
    covered = np.where(kept[piece], dist, to_kept) <= tau
    out_faces = np.bincount(labels, minlength=n_out)
    share = np.bincount(owner, weights=covered, minlength=n_in) / np.maximum(votes.sum(1), 1.0)
    info["inputs"] = [{"faces": parts[c].faces, "covered_1pct": round(float(share[c]), 4),
                       "output_faces": int(out_faces[votes[c].argmax()])}
                      for c in sorted(range(n_in), key=lambda c: -parts[c].faces)[:LISTED]]
    return v, f, info


def keep_large(vertices: np.ndarray, faces: np.ndarray, min_share: float
               ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Components with at least ``min_share`` of the largest one's area (no input mesh to ask)."""
    rule = f"kept: components with >= {min_share:g} of the largest one's area"
    labels = face_components(faces)
    if len(labels) == 0:
        return _result(vertices, faces, labels, np.zeros(0, np.int64), rule)
    area = np.array([c.area for c in components(faces, vertices, labels=labels)])
    return _result(vertices, faces, labels, np.flatnonzero(area >= min_share * area.max()), rule)


def drop_floaters(vertices: np.ndarray, faces: np.ndarray, *, keep_all: bool = False,
                  reference: tuple[np.ndarray, np.ndarray] | None = None, min_share: float = 0.01, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The one entry point: every component kept (``keep_all``, the tasks' ``task.keep_all_components``),
    else those the ``reference`` mesh (vertices, faces; same coordinates) claims, else those with
    ``min_share`` of the largest one's area. Returns vertices, faces (re-indexed) and what was dropped."""
    if keep_all:
        labels = face_components(faces)
        return _result(vertices, faces, labels, np.unique(labels), "kept: every component "
                                        "(task.keep_all_components)")
    if reference is not None:
        return keep_supported(vertices, faces, *reference, seed=seed)
    return keep_large(vertices, faces, min_share)
