"""Detail-adaptive simplification of an extracted mesh: a face budget or a maximum surface error.

Method: Garland & Heckbert's quadric error metric (edge collapses, each merged vertex placed where its
summed quadric is least) in two stages (:func:`_collapse`: fast threshold sweeps, then libigl's QSlim and
its exact priority queue), then one least-squares refit of the vertex positions to the dense vertices
(:func:`refit`). The refit took Chamfer against the input, relative to
the dense result's, from 1.242x to 1.005x on the bunny, 1.018x to 0.997x on Suzanne, 1.007x to 0.986x
on the composite, and 0.998x to 1.027x on the rotor (faces / 6; normal consistency 0.0001-0.0006 lower;
0.6 s on Suzanne). Why this, and why the detail maps do not
re-weight it (figures: ``scripts/bench_sdf.py simplify``, quick preset, faces / 6, 2-core CPU):

* The quadric error of collapsing a patch of detail of height ``a`` and wavelength ``lambda`` into
  triangles of size ``h`` grows like ``a (h / lambda)^2``: the vertex density QEM keeps is the one the
  detail maps describe (dense where the detail is fine or tall, sparse where it is coarse or flat), and
  a crease is two planes whose quadric forbids rounding it. Share of the dense vertices kept where the
  maps read the finest / the coarsest third of wavelengths / a crease: Suzanne 15.3% / 10.1% / 27.7%,
  the composite of patches 26.6% / 11.9% / 19.7%. On egg-box bumps beside a flat base
  (tests/test_simplify.py, 58k faces to 3000) the bumps keep 720 of 1225 vertices and the flat base 1 of
  2401; the vertices the maps call detail are kept 190x as often as those they call no detail. (A
  one-direction ripple is straight along its crests: QEM holds it with long triangles along them rather
  than with many vertices.)
* Re-weighting from the maps moves vertices away from where the geometric error is least, and the goals
  are geometric (Chamfer within 1.1x, normal consistency within 0.005 of the dense result). Tried: the
  vertices the maps call "no detail" (below the accuracy floor) smoothed before QSlim, so no budget goes
  to the fit's noise. On the composite their kept share fell from 14.6% to 9.1% and the detail's rose
  from 17.1% to 17.6%, but Chamfer against the input went 0.000247 -> 0.000250 and normal consistency
  0.9874 -> 0.9871: left out. libigl 2.6.3's Python binding takes no per-vertex weights or cost
  callbacks either, and an edge-collapse loop in numpy would cost more than the whole time budget.
* It runs in C++: on the quick Suzanne's 249k faces, 1.4-2.0 s in all (2.1-2.5 s with the fast stage to 3x
  the budget) where QSlim alone took 4.0-4.2 s (the error measurement and the refit are about 0.7 s of it).

The simplified mesh's attributes come from the dense mesh: ``source[i]`` is the dense vertex nearest to
simplified vertex ``i``, so any per-vertex array transfers as ``attr[source]``. (QSlim's own birth
vertex can lie several voxels away from where the merged vertex ends up.)

The surface error is measured, never estimated: exact point-to-triangle distances (libigl's AABB tree)
from every dense vertex to the simplified surface and from every simplified vertex and face centroid to
the dense one; ``max_error`` is the largest. For an error target the face count is searched: the error
of a second-order approximation falls like 1 / faces, which gives the next guess, within a bracket.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from nstr.errors import ConfigError, InputError

FACE_BUDGET_MIN = 100          # fewer faces than this is no longer the object
SEARCH_RUNS = 6                # simplification runs an error target may take
FIRST_REDUCTION = 8            # an error target's first try: the dense face count / this
REFIT_STIFFNESS = 0.01         # the refit's pull back to QSlim's placement, per dense vertex tied


@dataclass
class Simplified:
    """The simplified mesh and how far it is from the dense one (lengths in the input's units)."""

    vertices: np.ndarray   # (M, 3) float64
    faces: np.ndarray      # (G, 3) int64
    source: np.ndarray     # (M,) int64: the dense vertex each vertex takes its attributes from
    max_error: float       # largest distance between the two surfaces (at vertices and face centroids)
    mean_error: float      # mean distance of the dense vertices to the simplified surface
    runs: int              # simplification runs (1 for a face budget)
    seconds: float

    def report(self) -> dict:
        return {"vertices": int(len(self.vertices)), "faces": int(len(self.faces)),
                "max_error": self.max_error, "mean_error": self.mean_error, "runs": self.runs,
                "seconds": round(self.seconds, 3)}


def check_simplify_options(face_budget: int, max_error: float, *, prefix: str = "task.") -> None:
    """The checks that need no mesh: a budget of at least FACE_BUDGET_MIN, a finite error >= 0, not both."""
    if face_budget and max_error:
        raise ConfigError(f"{prefix}simplify_faces and {prefix}simplify_error are both set",
                          "Set one of them: a face budget, or a maximum surface error")
    if face_budget < 0 or 0 < face_budget < FACE_BUDGET_MIN:
        raise ConfigError(f"{prefix}simplify_faces must be 0 (off) or at least {FACE_BUDGET_MIN}, not {face_budget}",
                          f"Use a budget of {FACE_BUDGET_MIN} faces or more, up to the dense mesh's face count")
    if not math.isfinite(max_error) or max_error < 0:
        raise ConfigError(f"{prefix}simplify_error must be a finite distance >= 0 in input units, not {max_error}",
                          "Use 0 (off) or a positive distance, e.g. a tenth of a voxel of the extraction grid")


def simplify(vertices: np.ndarray, faces: np.ndarray, *, face_budget: int = 0, max_error: float = 0.0,
             prefix: str = "task.") -> Simplified:
    """Simplify to at most ``face_budget`` faces, or to the fewest faces (within SEARCH_RUNS tries) whose
    surface stays within ``max_error`` of the dense one. Raises ConfigError for a bad budget or error
    (``prefix`` names the options in the message), InputError for a mesh QSlim cannot take."""
    check_simplify_options(face_budget, max_error, prefix=prefix)
    if not face_budget and not max_error:
        raise ConfigError(f"neither {prefix}simplify_faces nor {prefix}simplify_error is set",
                          "Set a face budget or a maximum surface error")
    t0 = time.perf_counter()
    v = np.asfortranarray(vertices, np.float64)
    f = np.asfortranarray(faces, np.int32)
    if face_budget > len(f):
        raise ConfigError(f"{prefix}simplify_faces {face_budget} is above the dense mesh's {len(f)} faces",
                          f"Use a budget between {FACE_BUDGET_MIN} and {len(f)}")
    shape = _shape(f)
    if not shape[3]:
        raise InputError("the mesh has edges shared by more than two faces, which edge collapses cannot take",
                         "Simplify a manifold mesh (marching cubes gives one), or repair it first")
    if face_budget:
        lod_v, lod_f = _collapse(v, f, face_budget, shape)
        runs = 1
        err_max, err_mean = surface_error(v, f, lod_v, lod_f)
    else:
        lod_v, lod_f, err_max, err_mean, runs = _search_error(v, f, max_error, shape)
    from scipy.spatial import cKDTree

    source = cKDTree(v).query(lod_v, workers=-1)[1].astype(np.int64)
    return Simplified(lod_v, lod_f, source, err_max, err_mean, runs, time.perf_counter() - t0)


PRESIMPLIFY = 2             # fast collapses down to this many times the budget, QSlim's exact queue the rest (3 at stop
#                             42: 2 took QSlim on the quick Suzanne from 1.23 s to 0.67 s, the rotor's whole simplification from
#                             3.9 s to 3.1 s, at the same or a smaller surface error on Suzanne, bunny, rotor and composite; at
#                             1.5 Suzanne's fast stage changed her topology, so QSlim ran from the dense mesh: 4.1 s)
FAST_AGGRESSIVENESS = 3.0   # fast_simplification's ``agg`` (7, its default, doubled the error on Suzanne)


def _shape(faces: np.ndarray) -> tuple[int, bool, int, bool]:
    """What edge collapses must not change: (Euler characteristic, closed, components, edge-manifold)."""
    from nstr.geometry.topology import edge_table, euler_characteristic, face_components, is_watertight

    f = np.asarray(faces, np.int64)
    table = edge_table(f)
    return (euler_characteristic(f, table), is_watertight(table), int(face_components(table).max()) + 1,
            not table.nonmanifold.any())


def _collapse(v: np.ndarray, f: np.ndarray, budget: int, shape: tuple[int, bool, int, bool]
              ) -> tuple[np.ndarray, np.ndarray]:
    """Edge collapses to ``budget`` faces, then the vertices refitted to the dense ones (:func:`refit`).

    Two stages: Fast Quadric Mesh Simplification (``fast_simplification``, the same quadric error
    metric, collapsing in threshold sweeps) down to PRESIMPLIFY x the budget, the near-free collapses
    of flat and smooth areas; then libigl's QSlim, whose exact priority queue makes the choices that
    matter and stops where a further collapse would change the topology. On the rippled slab of
    ``tests/test_simplify.py`` (58k faces to 3000; fast stage to 3x) 0.10 s instead of 0.56 s for QSlim alone, the same
    error and the same 720 ripple vertices kept; on an 80k-face Suzanne to a sixth 0.46 s instead of
    1.09 s, error 0.00151 / 0.000077 (QSlim alone 0.00151 / 0.000080). The fast stage alone reached
    neither the budget nor the adaptivity (it kept 42x as many flat vertices). It has no link
    condition, so where its result's :func:`_shape` differs from the dense mesh's ``shape`` (or it
    left unused vertices) QSlim starts from the dense mesh."""
    import fast_simplification
    import igl

    start_v, start_f = v, f
    if PRESIMPLIFY * budget < len(f):
        mid_v, mid_f = fast_simplification.simplify(np.ascontiguousarray(v), np.ascontiguousarray(f, np.int32),
                                                    target_count=int(PRESIMPLIFY * budget), agg=FAST_AGGRESSIVENESS)
        if len(mid_f) and len(np.unique(mid_f)) == len(mid_v) and _shape(mid_f) == shape:
            start_v, start_f = np.asfortranarray(mid_v, np.float64), np.asfortranarray(mid_f, np.int32)
    out = igl.qslim(start_v, start_f, int(budget))
    lod_v, lod_f = out[-4], out[-3]   # (U, G, J, I); older bindings put a success flag first
    lod_v, lod_f = np.ascontiguousarray(lod_v, np.float64), np.ascontiguousarray(lod_f, np.int64)
    return refit(v, lod_v, lod_f), lod_f


def refit(v: np.ndarray, lod_v: np.ndarray, lod_f: np.ndarray, stiffness: float = REFIT_STIFFNESS) -> np.ndarray:
    """The simplified vertices moved so that the simplified surface passes through the dense vertices in
    the least-squares sense, its faces fixed (one pass of Hoppe et al. 1993's mesh optimisation): each dense
    vertex is tied to its closest point on the simplified surface (barycentric weights b), and the positions x
    minimise sum |v - b x|^2 + stiffness (dense vertices per simplified vertex) |x - x0|^2, a sparse solve.
    QSlim's placements, each optimal for its own collapse, leave a bias over the whole surface that this
    removes."""
    import igl
    import scipy.sparse as sp
    from scipy.sparse.linalg import factorized

    lod_f32 = np.asfortranarray(lod_f, np.int32)
    _, face, closest = igl.point_mesh_squared_distance(np.asfortranarray(v, np.float64), np.asfortranarray(lod_v),
                                                       lod_f32)
    corners = lod_f[np.asarray(face)]
    tri = lod_v[corners]
    e0, e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], np.asarray(closest) - tri[:, 0]
    d00, d01, d11 = (e0 * e0).sum(1), (e0 * e1).sum(1), (e1 * e1).sum(1)
    d20, d21 = (e2 * e0).sum(1), (e2 * e1).sum(1)
    det = d00 * d11 - d01 * d01
    sliver = det <= 1e-9 * d00 * d11   # a face with no area has no stable barycentrics: its points are left
    det = np.where(sliver, 1.0, det)   # untied (the faces around it hold the surface there)
    b1, b2 = (d11 * d20 - d01 * d21) / det, (d00 * d21 - d01 * d20) / det
    weights = np.stack([1 - b1 - b2, b1, b2], 1) * ~sliver[:, None]
    tie = sp.csr_matrix((weights.ravel(), (np.repeat(np.arange(len(v)), 3), corners.ravel())),
                        shape=(len(v), len(lod_v)))
    lam = stiffness * len(v) / max(len(lod_v), 1)
    solve = factorized((tie.T @ tie + lam * sp.identity(len(lod_v))).tocsc())
    rhs = tie.T @ np.asarray(v, np.float64) + lam * lod_v
    return np.stack([solve(rhs[:, k]) for k in range(3)], 1)


def surface_error(v: np.ndarray, f: np.ndarray, lod_v: np.ndarray, lod_f: np.ndarray) -> tuple[float, float]:
    """(largest distance between the surfaces, mean distance of the dense vertices to the simplified
    surface): exact point-to-triangle distances both ways, at vertices and face centroids."""
    import igl

    lod_v = np.asfortranarray(lod_v, np.float64)
    lod_f32 = np.asfortranarray(lod_f, np.int32)
    d_dense = np.asarray(igl.point_mesh_squared_distance(v, lod_v, lod_f32)[0])
    probes = np.concatenate([lod_v, lod_v[lod_f].mean(1)])
    d_lod = np.asarray(igl.point_mesh_squared_distance(probes, v, np.asfortranarray(f, np.int32))[0])
    return float(math.sqrt(max(d_dense.max(), d_lod.max()))), float(np.sqrt(d_dense).mean())


def _search_error(v: np.ndarray, f: np.ndarray, target: float, shape: tuple[int, bool, int, bool]
                  ) -> tuple[np.ndarray, np.ndarray, float, float, int]:
    """The fewest faces found whose error is within ``target``: guesses from error ~ 1 / faces inside a
    bracket [fails, meets]; the dense mesh itself meets any target, so it is the bracket's top."""
    n = len(f)
    best = (v, np.asarray(f, np.int64), 0.0, 0.0)
    lo, hi = FACE_BUDGET_MIN - 1, n              # lo: a count known to fail (or the floor); hi: known to meet
    guess = max(FACE_BUDGET_MIN, n // FIRST_REDUCTION)
    runs = 0
    while runs < SEARCH_RUNS and hi - lo > max(2, hi // 50):
        lod_v, lod_f = _collapse(v, f, guess, shape)
        runs += 1
        err_max, err_mean = surface_error(v, f, lod_v, lod_f)
        faces_now = len(lod_f)
        if err_max <= target:
            hi = min(hi, faces_now)
            if faces_now <= len(best[1]):
                best = (lod_v, lod_f, err_max, err_mean)
        else:
            lo = max(lo, faces_now)
        model = faces_now * err_max / target * (1.15 if err_max > target else 1.0)  # error ~ 1 / faces
        geometric = math.sqrt(max(lo, 1) * hi)
        guess = int(model) if lo < model < hi else int(geometric)
        guess = min(max(guess, lo + 1, FACE_BUDGET_MIN), hi - 1)
    return (*best, runs)
