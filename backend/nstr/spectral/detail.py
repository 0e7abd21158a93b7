"""Detail maps: how much surface detail there is at each octave of wavelength, and which way it runs.

The readout every model's mesh gets (``backend/docs/spectral-flow.md`` says what each map means and
how it was validated). It reads the surface itself, at every scale at once, the way an image
pyramid reads a picture:

1. **Smooth copies of the surface.** At octave edges ``lambda_l = finest * 2^l`` the surface is
   replaced by a Gaussian-weighted least-squares QUADRIC fit over a disc of ``sigma_l =
   lambda_l / 2.5`` (a local Savitzky-Golay filter). A quadric follows a sphere, a cylinder, a
   saddle exactly, so smooth shape never reads as detail; it passes a ripple of wavelength
   ``lambda`` with a residual that is 0.94 of its height at ``2 sigma``, 0.70 at ``2.5 sigma`` and
   0.21 at ``4 sigma`` (the continuous plane's transfer, computed): a sharp, octave-wide edge. The
   fits are robust (iteratively reweighted, started from the disc's core), so a probe near a crease
   follows its own side.
2. **Bands.** ``r_l`` is each point's height above the smooth copy at scale l; band b is
   ``h_b = r_{b+1} - r_b`` (detail between ``lambda_b`` and ``2 lambda_b``), with ``r_0 = 0`` (the
   surface itself). Its surface gradient comes from the quadrics and the point's normal, so no
   finite difference of noisy heights is taken.
3. **Local statistics.** Per band, the local (Gaussian, radius ``0.6 lambda_b``) VARIANCE of
   ``h_b`` is the band's energy (a slowly varying offset, e.g. a curvature bias, drops out), the
   variance of its gradient gives the wavelength by Rice's formula ``lambda = 2 pi sqrt(<h^2> /
   <|grad h|^2>)`` (exact for a ripple of any height: amplitude cannot leak into it, once every
   mean is per unit of the smooth copy's area, each point's area projected onto it), and the
   gradient's covariance (structure tensor) gives the direction and the anisotropy.

Everything runs on a point set with area weights (mesh vertices, or area-uniform samples of a
mesh whose vertices do not sample its surface, such as a CAD input), pooled into coarser cells
level by level, so each octave costs about a quarter of the finer one. The heavy algebra runs in
torch on the given device (the local means as sparse matrix products); neighbour queries use scipy's
k-d tree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from nstr.geometry.mesh import corner_sums
from nstr.geometry.quad_splits import both_splits

SIGMA_PER_WAVELENGTH = 1.0 / 2.5   # quadric-fit scale per octave edge (half-power wavelength = 2.5 sigma)
FIT_RADIUS = 2.5                   # fit discs reach this many sigma
STAT_RADIUS = 0.6                  # local statistics: Gaussian radius in wavelengths of the band
LOCAL_RADIUS = 0.3                 # "no detail": each band's height over this narrower window (the band's local
#                                    energy is free of phase, so it needs no full wavelength): at STAT_RADIUS
#                                    the smooth sphere beside a 9-floor patch read detail up to 1.15 of the
#                                    patch's wavelengths away (5.5 % of the base; 4.3 % at 0.3)
FIT_NEIGHBOURS = 48
STAT_NEIGHBOURS = 32
# the statistics of band b reuse the neighbour lists of the fits at level b + 1 (_Window): those
# reach 2 lambda_b (FIT_RADIUS sigma_{b+1}), farther than the statistics' 2.5 STAT_RADIUS lambda_b
assert FIT_RADIUS * SIGMA_PER_WAVELENGTH * 2 >= 2.5 * STAT_RADIUS and STAT_NEIGHBOURS <= FIT_NEIGHBOURS
BLEND_NEIGHBOURS = 6
RESIDUAL_NEIGHBOURS = 10
ORIENTATION_GATE = 0.3             # neighbours whose normal turns > 73 degrees away: another side (a box edge, a wall)
FIT_GATE = 0.5                     # the quadric fits take only neighbours within 60 degrees of the probe's normal: at
#                                    73 a fitted box's rounded rim bent the coarse fits up to 0.25 units inside its top
#                                    (quick composite), by 0.1-0.5 floors that moved with where the cells fell on the
#                                    rim; the faint end of the 20x ramp there read CV 0.016-0.061 over five placements
#                                    of the same fit, 0.010-0.012 at 60 (0.4-0.7 all alike)
ROBUST_SCALE = 0.15                # fits down-weight points farther off than this many sigma (creases)
ROBUST_ITERATIONS = 2
CREASE_NEIGHBOURS = 16             # a crease turns the normal between a probe's few nearest neighbours ...
CREASE_LEVELS = (2, 4)             # ... at every smoothing scale of these levels (a ripple finer turns back)
CREASE_ANGLE = math.radians(15.0)  # a crease turns the surface by at least this much
CREASE_LINE_ANGLE = CREASE_ANGLE / 2  # ... and a vertex is ON it where its faces turn this far from its own normal:
#                                       the edge's own rows, not the whole band the crease levels' cells flag
NEAR_BANDS = 1                     # the wavelength: Rice over the dominant band and this many neighbours each side ...
NEAR_SHARE = 0.25                 # ... that hold at least this share of its energy (a split ripple, not another one)


# --- bands -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BandLayout:
    """Octave bands of wavelength: band b holds ``[finest * 2^b, finest * 2^(b+1))``, input units."""

    finest: float
    count: int

    @property
    def edges(self) -> np.ndarray:
        return self.finest * 2.0 ** np.arange(self.count + 1)

    @property
    def coarsest(self) -> float:
        return float(self.edges[-1])

    def describe(self) -> list[dict[str, float]]:
        e = self.edges
        return [{"band": b, "shortest": float(e[b]), "longest": float(e[b + 1])} for b in range(self.count)]


COARSEST_DETAIL = 1.0 / 3.0   # the default detail range's longest wavelength, over the object's largest extent


def default_bands(voxel: float, object_size: float) -> BandLayout:
    """From the finest wavelength the result can hold (2 voxels of its extraction grid) to about a
    third of the object (its largest extent)."""
    finest = 2.0 * voxel
    top = object_size * COARSEST_DETAIL
    count = max(1, int(round(math.log2(max(top / finest, 2.0)))))
    return BandLayout(finest, count)


def check_detail_range(detail_range: tuple[float, ...] | list[float], voxel: float | None = None,
                       unit: str = "input units") -> tuple[float, float]:
    """The user's (shortest, longest) wavelength, or a one-line ConfigError naming the valid range.
    ``voxel``: the extraction grid's spacing, once known (the finest band is 2 voxels: anything finer
    cannot be held by the result, so a range reaching below it would read noise)."""
    from nstr.errors import ConfigError

    values = [float(x) for x in detail_range]
    if len(values) != 2 or not all(math.isfinite(x) for x in values):
        raise ConfigError(f"task.detail_range must be two finite wavelengths [shortest, longest], not {list(detail_range)}",
                          "Give e.g. task.detail_range=[0.01,0.2] (in the input's units), or leave it empty "
                          "for octaves from 2 voxels to a third of the object")
    lo, hi = values
    if lo <= 0 or hi <= lo:
        raise ConfigError(f"task.detail_range [{lo:g}, {hi:g}] is {'empty' if hi == lo else 'inverted' if hi < lo else 'not positive'}",
                          "Give the shortest wavelength first, both > 0 and the longest larger, e.g. "
                          f"[{abs(min(lo, hi)) or 0.01:g}, {2 * (abs(max(lo, hi)) or 0.01):g}]")
    if voxel is not None and lo < 2.0 * voxel * (1 - 1e-9):
        raise ConfigError(f"task.detail_range starts at {lo:g} {unit}, finer than this result's grid can hold "
                          f"(2 voxels = {2 * voxel:.3g})",
                          f"Use a shortest wavelength of at least {2 * voxel:.3g}, or a higher task.resolution")
    return lo, hi


def layout_for_range(detail_range: tuple[float, ...] | list[float], voxel: float) -> BandLayout:
    """Octave bands covering the user's range (checked: :func:`check_detail_range`)."""
    lo, hi = check_detail_range(detail_range, voxel)
    return BandLayout(lo, max(1, int(math.ceil(math.log2(hi / lo) - 1e-9))))


# --- points ------------------------------------------------------------------------------------
@dataclass
class SurfacePoints:
    """An oriented point sample of a surface: positions, unit normals, the area each point stands for."""

    points: np.ndarray   # (N, 3) float64
    normals: np.ndarray  # (N, 3) float64, unit
    areas: np.ndarray    # (N,) float64

    def __len__(self) -> int:
        return len(self.points)

    @staticmethod
    def from_vertices(vertices: np.ndarray, faces: np.ndarray) -> "SurfacePoints":
        """Mesh vertices with their area-weighted normals and a third of their faces' area (marching
        cubes meshes sample their surface evenly, so their vertices are the point set)."""
        v = np.asarray(vertices, np.float64)
        f = np.asarray(faces, np.int64)
        cross = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        n = corner_sums(f, cross, len(v))
        a = corner_sums(f, 0.5 * np.linalg.norm(cross, axis=1) / 3.0, len(v))
        length = np.linalg.norm(n, axis=1, keepdims=True)
        n = np.where(length > 0, n / np.maximum(length, 1e-300), np.array([0.0, 0.0, 1.0]))
        return SurfacePoints(v, n, a)

    @staticmethod
    def sample(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int = 0) -> "SurfacePoints":
        """``count`` area-uniform random points with their face normals (for meshes whose vertices do
        not sample the surface: a CAD part's flat face may be two triangles)."""
        v = np.asarray(vertices, np.float64)
        f = np.asarray(faces, np.int64)
        cross = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        area = 0.5 * np.linalg.norm(cross, axis=1)
        total = float(area.sum())
        rng = np.random.default_rng(seed)
        face = rng.choice(len(f), size=count, p=area / max(total, 1e-300))
        r1, r2 = rng.random(count), rng.random(count)
        s = np.sqrt(r1)
        bary = np.stack([1 - s, s * (1 - r2), s * r2], 1)
        pts = np.einsum("nk,nkd->nd", bary, v[f[face]])
        nrm = cross[face] / np.maximum(2 * area[face], 1e-300)[:, None]
        return SurfacePoints(pts, nrm, np.full(count, total / count))


def _pool(pts: SurfacePoints, cell: float) -> tuple[SurfacePoints, np.ndarray]:
    """Area-weighted means of the points in each cubic cell of side ``cell``, kept apart by which way
    they face (the six signed axes), so the two sides of a thin wall or of a box edge never merge.
    Returns the pooled points and, for every input point, the index of its cell."""
    ijk = np.floor(pts.points / cell).astype(np.int64)
    ijk -= ijk.min(0)
    span = ijk.max(0) + 1
    axis = np.abs(pts.normals).argmax(1)
    side = axis * 2 + (pts.normals[np.arange(len(pts)), axis] > 0)
    key = ((ijk[:, 0] * span[1] + ijk[:, 1]) * span[2] + ijk[:, 2]) * 6 + side
    _, inverse = np.unique(key, return_inverse=True)
    inverse = inverse.reshape(-1)
    m = int(inverse.max()) + 1 if len(inverse) else 0
    a = np.bincount(inverse, weights=pts.areas, minlength=m)
    p = np.stack([np.bincount(inverse, weights=pts.areas * pts.points[:, k], minlength=m) for k in range(3)], 1)
    n = np.stack([np.bincount(inverse, weights=pts.areas * pts.normals[:, k], minlength=m) for k in range(3)], 1)
    p /= np.maximum(a, 1e-300)[:, None]
    length = np.linalg.norm(n, axis=1, keepdims=True)
    n = np.where(length > 1e-12, n / np.maximum(length, 1e-300), np.array([0.0, 0.0, 1.0]))
    return SurfacePoints(p, n, a), inverse


def _neighbours(tree: Any, queries: np.ndarray, k: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """(index (Q, k), distance (Q, k)) of the k nearest within ``radius``; missing slots: index 0, distance inf."""
    k = max(1, min(k, tree.n))
    dist, idx = tree.query(queries, k=k, distance_upper_bound=radius, workers=-1)
    dist, idx = np.asarray(dist).reshape(len(queries), k), np.asarray(idx).reshape(len(queries), k)
    missing = idx >= tree.n
    return np.where(missing, 0, idx), np.where(missing, np.inf, dist)


def _frames(normals: Any) -> tuple[Any, Any]:
    """Orthonormal tangents (t1, t2) for unit normals (torch, (P, 3))."""
    import torch

    ref = torch.where(normals[:, 2:3].abs() < 0.9, torch.tensor([0.0, 0.0, 1.0], dtype=normals.dtype,
                      device=normals.device), torch.tensor([1.0, 0.0, 0.0], dtype=normals.dtype, device=normals.device))
    t1 = torch.linalg.cross(normals, ref.expand_as(normals), dim=-1)
    t1 = t1 / t1.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    return t1, torch.linalg.cross(normals, t1, dim=-1)


# --- one scale: the smooth copy ----------------------------------------------------------------
@dataclass
class SmoothCopy:
    """The surface smoothed at one scale: a local quadric height ``z = c . (1, u, v, u^2, uv, v^2)``
    over each probe's frame (centre, normal, t1, t2)."""

    centre: Any   # (P, 3) torch
    normal: Any
    t1: Any
    t2: Any
    coef: Any     # (P, 6)
    near: Any     # (P, k) each probe's nearest probes (itself first), where a point of its cell looks
    turning: Any  # (P,) the largest angle between the fitted normals of a probe's nearest probes (radians)
    fitted: Any   # (P, 3) the fitted surface's normal at each probe
    neighbours: tuple[Any, Any] = (None, None)  # (P, FIT_NEIGHBOURS) index and distance (inf beyond the fit's reach)
    moved: Any = None  # (P, 6) with ``moved``: the same fits of the probes' offsets (a quadric of values)


def _robust_quadric(X: Any, z: Any, w: Any, D: Any, sigma: float, extra: Any = None) -> tuple[Any, Any]:
    """Weighted least-squares quadric coefficients (P, 6) of heights ``z`` (P, k) over the design ``X``
    (P, k, 6), started from the core of the disc (a probe near a crease sees mostly its own side
    there), then reweighted: points far off the fit (the other side of a crease) stop counting.
    Second: the same fit, with the final weights, of the values ``extra`` (P, k) (else None)."""
    import torch

    ridge = 1e-6 * torch.eye(6, dtype=X.dtype, device=X.device)
    robust = torch.exp(-1.5 * (D / sigma) ** 2)          # with w: a Gaussian of sigma / 2
    XT = X.transpose(1, 2)
    for it in range(ROBUST_ITERATIONS + 1):
        wr = w * robust
        XTw = XT * wr[:, None, :]
        lhs = torch.bmm(XTw, X) + ridge * wr.sum(1)[:, None, None].clamp_min(1e-30)
        last = it == ROBUST_ITERATIONS
        rhs = torch.stack([z, extra], -1) if last and extra is not None else z[..., None]
        both = torch.linalg.solve(lhs, torch.bmm(XTw, rhs))
        coef = both[..., 0]
        if not last:
            res = z - torch.bmm(X, coef[..., None])[..., 0]
            robust = torch.exp(-0.5 * (res / (ROBUST_SCALE * sigma)) ** 2)
    return coef, (both[..., 1] if extra is not None else None)


def _smooth_copy(level: SurfacePoints, sigma: float, device: Any, with_turning: bool = False,
                 moved: Any = None, chunk: int = 4096) -> SmoothCopy:
    """Quadric fits at every point of ``level`` (the probes) over its neighbours within FIT_RADIUS sigma.

    ``moved`` (P,) torch: per probe, how far a second surface lies along its normal; these offsets are
    fitted with the final weights of the surface's own fits (``SmoothCopy.moved``). The fits run over
    chunks of ``chunk`` probes, so that each chunk's (chunk, 48, 6) designs stay in cache: on the quick
    Suzanne's finest level (75k probes) the whole arrays at once took 1.4x the time."""
    import torch
    from scipy.spatial import cKDTree

    tree = cKDTree(level.points)
    idx, dist = _neighbours(tree, level.points, FIT_NEIGHBOURS, FIT_RADIUS * sigma)
    dt = torch.float32
    P = torch.as_tensor(level.points, dtype=torch.float64, device=device)
    N = torch.as_tensor(level.normals, dtype=dt, device=device)
    A = torch.as_tensor(level.areas, dtype=dt, device=device)
    I = torch.as_tensor(idx, device=device)
    D = torch.as_tensor(dist, dtype=dt, device=device)
    count = len(P)
    normal, t1, t2, fitted = (torch.empty((count, 3), dtype=dt, device=device) for _ in range(4))
    coef = torch.empty((count, 6), dtype=dt, device=device)
    moved_coef = torch.empty((count, 6), dtype=dt, device=device) if moved is not None else None
    s = sigma  # scale u, v for conditioning
    unscale = torch.tensor([1.0, 1 / s, 1 / s, 1 / s**2, 1 / s**2, 1 / s**2], dtype=dt, device=device)
    for at in range(0, count, chunk):
        rows = slice(at, at + chunk)
        Ic, Dc = I[rows], D[rows]
        NI = N[Ic]
        w = torch.exp(-0.5 * (Dc / sigma) ** 2) * A[Ic]                       # inf distance -> 0
        w = w * (torch.bmm(NI, N[rows, :, None])[..., 0] > FIT_GATE)
        n = torch.bmm(w[:, None, :], NI)[:, 0]
        n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-30)
        n = torch.where(n.norm(dim=-1, keepdim=True) > 0.5, n, N[rows])
        a1, a2 = _frames(n)
        d = (P[Ic] - P[rows, None, :]).to(dt)
        uvz = torch.bmm(d, torch.stack([a1 / s, a2 / s, n], -1))        # (C, k, 3): u / s, v / s, z
        u, v, z = uvz[..., 0], uvz[..., 1], uvz[..., 2]
        X = torch.stack([torch.ones_like(u), u, v, u * u, u * v, v * v], -1)
        c, mc = _robust_quadric(X, z, w, Dc, sigma, moved[Ic] if moved is not None else None)
        c = c * unscale
        coef[rows], normal[rows], t1[rows], t2[rows] = c, n, a1, a2
        if moved is not None:
            moved_coef[rows] = mc * unscale
        # the fitted surface's own normal at the probe (the frame's normal is only a weighted mean)
        f = n - c[:, 1:2] * a1 - c[:, 2:3] * a2
        fitted[rows] = f / f.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    turning = None
    if with_turning:
        # the largest angle between a neighbour's fitted normal and the normal this probe's own quadric
        # predicts there: bending that a smooth surface explains (a sphere, a cylinder) does not count
        turning = torch.empty(count, dtype=dt, device=device)
        for at in range(0, count, chunk):
            rows = slice(at, at + chunk)
            J = I[rows, :CREASE_NEIGHBOURS]
            c, n, a1, a2 = coef[rows], normal[rows], t1[rows], t2[rows]
            dn = (P[J] - P[rows, None, :]).to(dt)
            uu, vv = (dn * a1[:, None]).sum(-1), (dn * a2[:, None]).sum(-1)
            qu = c[:, None, 1] + 2 * c[:, None, 3] * uu + c[:, None, 4] * vv
            qv = c[:, None, 2] + c[:, None, 4] * uu + 2 * c[:, None, 5] * vv
            pred = n[:, None, :] - qu[..., None] * a1[:, None, :] - qv[..., None] * a2[:, None, :]
            pred = pred / pred.norm(dim=-1, keepdim=True).clamp_min(1e-30)
            cos = (fitted[J] * pred).sum(-1)
            cos = torch.where(D[rows, :CREASE_NEIGHBOURS].isfinite(), cos, torch.ones_like(cos))
            turning[rows] = torch.arccos(cos.amin(1).clamp(-1, 1))
    return SmoothCopy(P, normal, t1, t2, coef, I[:, :RESIDUAL_NEIGHBOURS], turning, fitted, (I, D), moved_coef)


def _residual(copy: SmoothCopy, pts: Any, nrm: Any, member: Any, spacing: float,
              chunk: int = 8192) -> tuple[Any, Any, Any]:
    """Height of each point above the smooth copy, and the copy's normal there: the probes' quadrics
    blended with Gaussian weights (0.6 of the probes' ``spacing``) that fade out well inside the
    neighbourhood, so the height has no seams where the set of nearest probes changes. A point looks
    among the probes nearest to its own cell's (``member``: point -> probe). Third: with
    ``copy.moved``, the smooth copy of the offsets at each point, blended the same way (else None).
    The positions' differences are taken in float64, then rounded: float32 positions made the readout
    of a mesh and of its 10x copy differ by 1.3e-3 (their median wavelength; 4e-4 in float64). The
    results are float64. Chunks of 8192 points keep each chunk's gathers in cache (32768: 1.4x slower)."""
    import torch

    dt, out_dt = copy.coef.dtype, torch.float64
    out = torch.empty(len(pts), dtype=out_dt, device=pts.device)
    normal = torch.empty((len(pts), 3), dtype=out_dt, device=pts.device)
    moved = torch.empty_like(out) if copy.moved is not None else None
    # one gather per chunk of what a probe holds: its frame's rows (t1, t2, n) and quadric (and the offsets'
    # quadric); the centres apart, in float64
    table = torch.cat([copy.t1, copy.t2, copy.normal, copy.coef]
                      + ([copy.moved] if copy.moved is not None else []), 1)
    inv = -0.5 / (0.6 * spacing) ** 2
    nrm = nrm.to(dt)
    for s in range(0, len(pts), chunk):
        I = copy.near[member[s:s + chunk]]
        C, k = I.shape
        G = table[I]                                                        # (C, k, 15 or 21)
        coef, n = G[..., 9:15], G[..., 6:9]
        d = (pts[s:s + chunk, None, :] - copy.centre[I]).to(dt)          # exact differences, then rounded
        uvz = torch.bmm(G[..., 0:9].reshape(C * k, 3, 3), d.reshape(C * k, 3, 1)).reshape(C, k, 3)  # (u, v, z)
        u, v, z = uvz.unbind(-1)
        q = coef[..., 0] + u * (coef[..., 1] + coef[..., 3] * u + coef[..., 4] * v) + v * (coef[..., 2] + coef[..., 5] * v)
        facing = torch.bmm(n, nrm[s:s + chunk, :, None])[..., 0] > ORIENTATION_GATE
        w = torch.exp(uvz.square().sum(-1) * inv) * facing                 # the frame is orthonormal
        w[:, 0] += 1e-30                                   # no probe faces the same way: its own cell's
        total = w.sum(1)
        out[s:s + chunk] = ((w * (z - q)).sum(1) / total).to(out_dt)
        if moved is not None:
            c = G[..., 15:21]
            qm = c[..., 0] + u * (c[..., 1] + c[..., 3] * u + c[..., 4] * v) + v * (c[..., 2] + c[..., 5] * v)
            moved[s:s + chunk] = ((w * qm).sum(1) / total).to(out_dt)
        blend = (w[..., None] * n).sum(1)                                   # (a bmm rounds differently)
        normal[s:s + chunk] = (blend / blend.norm(dim=-1, keepdim=True).clamp_min(1e-30)).to(out_dt)
    return out, normal, moved


def _face_turn(normals: Any, F: Any, face_normals: Any) -> Any:
    """Per vertex, the largest angle between its normal and the normals of its faces (radians): the faces
    turn at a vertex on an edge (a box's edge vertex: 45 degrees), not beside it (0 on the flat faces)."""
    import torch

    cos = torch.ones(len(normals), dtype=normals.dtype, device=normals.device)
    for k in range(3):
        cos.scatter_reduce_(0, F[:, k], (normals[F[:, k]] * face_normals.to(normals.dtype)).sum(-1), "amin")
    return torch.arccos(cos.clamp(-1, 1))


def _face_gradient_moments(values: Any, V: Any, F: Any, base_normal: Any, real2: Any,
                           face_weight: Any) -> Any:
    """Per vertex, the area-weighted mean over its faces of the gradient g of the piecewise-linear
    ``values`` (N,) and of g g^T: (N, 9) = g (3) and the 6 entries xx yy zz xy xz yz. Each face is
    projected on the plane of its smooth ``base_normal`` first, so g is the derivative along the
    smooth surface (the heights are measured across it), not along the detail's own slopes; and
    the moments are taken per face, before any averaging, so no gradient is smoothed away. ``V``: the
    vertices in float32 (relative to a point near them); ``real2``: each face's doubled area;
    ``face_weight``: each face's share (:func:`nstr.geometry.quad_splits.both_splits`). In float32,
    returned as float64."""
    import torch

    values, base_normal = values.float(), base_normal.float()
    nb = base_normal[F].sum(1)
    nb = nb / nb.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    p = V[F]
    p = p - (p * nb[:, None]).sum(-1, keepdim=True) * nb[:, None]        # onto the base plane
    p0, p1, p2 = p[:, 0], p[:, 1], p[:, 2]
    n = torch.linalg.cross(p1 - p0, p2 - p0, dim=-1)
    area2 = n.norm(dim=-1)
    usable = area2 > 0.2 * real2                                          # not seen edge-on from the base
    area2 = area2.clamp_min(1e-30)
    nu = n / area2[:, None]
    s = values[F]
    g = (s[:, 0:1] * torch.linalg.cross(nu, p2 - p1, dim=-1) + s[:, 1:2] * torch.linalg.cross(nu, p0 - p2, dim=-1)
         + s[:, 2:3] * torch.linalg.cross(nu, p1 - p0, dim=-1)) / area2[:, None]
    gg = torch.stack([g[:, 0] * g[:, 0], g[:, 1] * g[:, 1], g[:, 2] * g[:, 2],
                      g[:, 0] * g[:, 1], g[:, 0] * g[:, 2], g[:, 1] * g[:, 2]], 1)
    weight = real2 / 6.0 * usable * face_weight                           # a third of the face's area each
    face_values = torch.cat([g, gg, torch.ones_like(g[:, :1])], 1) * weight[:, None]
    out = torch.zeros((len(V), 10), dtype=V.dtype, device=V.device)
    for k in range(3):
        out.index_add_(0, F[:, k], face_values)
    return (out[:, :9] / out[:, 9:].clamp_min(1e-30)).double()


# --- local statistics --------------------------------------------------------------------------
class _Window:
    """One band's local means (:meth:`means`): Gaussian-weighted means of per-point values via the cells,
    pooled to cell means, smoothed over neighbouring cells that face the same way, read back at each
    point from its nearest cells. What does not depend on the radius (the cells' neighbours, which face
    the same way, each point's nearest cells and their distances) is found once per band: the band's
    statistics and its narrow "no detail" window share it. Both weighted sums are sparse matrix
    products (CSR, a fixed count of neighbours per row): 10x faster than gathering every neighbour's
    values (a 60k-cell level with 32 neighbours and 21 columns: 10 ms against 100 ms)."""

    def __init__(self, pts_np: np.ndarray, normals: Any, areas: Any, member: np.ndarray, cells: SurfacePoints,
                 neighbours: tuple[Any, Any]) -> None:
        """``neighbours``: the cells' own nearest cells, (index, distance) sorted by distance, at least
        STAT_NEIGHBOURS of them to 2.5 of the largest radius used (the fit's at that level: its reach is
        farther, so no second search is needed)."""
        import torch

        dev, dt = areas.device, torch.float32
        self.areas = areas.float()
        self.member = torch.as_tensor(member, device=dev)
        self.count = len(cells)
        I, D = neighbours[0][:, :STAT_NEIGHBOURS], neighbours[1][:, :STAT_NEIGHBOURS].to(dt)
        CN = torch.as_tensor(cells.normals, dtype=dt, device=dev)
        facing = (CN[I] @ CN[:, :, None])[..., 0] > ORIENTATION_GATE
        # back to the points: the cells nearest to its own (the first of its distance-sorted list) that face
        # the same way
        J = I[:, :BLEND_NEIGHBOURS][self.member]
        DJ = (torch.as_tensor(pts_np, dtype=dt, device=dev)[:, None, :]
              - torch.as_tensor(cells.points, dtype=dt, device=dev)[J]).norm(dim=-1)
        facing_j = (CN[J] @ normals[:, :, None].to(dt))[..., 0] > ORIENTATION_GATE
        # each row's columns in increasing order, as a CSR matrix keeps them
        order = I.argsort(1)
        self.I, self.D, self.facing = I.gather(1, order), D.gather(1, order), facing.gather(1, order)
        order = J.argsort(1)
        self.J, self.DJ, self.facing_j = J.gather(1, order), DJ.gather(1, order), facing_j.gather(1, order)

    @staticmethod
    def _rows(index: Any, weights: Any, columns: int) -> Any:
        """The CSR matrix whose row r has ``weights[r]`` at columns ``index[r]``."""
        import warnings

        import torch

        rows, per_row = index.shape
        with warnings.catch_warnings():   # "sparse CSR support is in beta": the product is all we use
            warnings.simplefilter("ignore")
            return torch.sparse_csr_tensor(torch.arange(0, rows * per_row + 1, per_row, device=index.device),
                                           index.reshape(-1), weights.reshape(-1), size=(rows, columns))

    def means(self, values: Any, radius: float) -> Any:
        """Gaussian-weighted (``radius``) local means of ``values`` (N, C)."""
        import torch

        out_dtype = values.dtype
        values = values.float()
        dev, dt = values.device, values.dtype
        cell_area = torch.zeros(self.count, dtype=dt, device=dev).index_add_(0, self.member, self.areas)
        cell_sum = torch.zeros((self.count, values.shape[1]), dtype=dt, device=dev).index_add_(
            0, self.member, values * self.areas[:, None])
        D = torch.where(self.D < 2.5 * radius, self.D, torch.full_like(self.D, math.inf))
        w = torch.exp(-0.5 * (D / radius) ** 2) * self.facing
        both = self._rows(self.I, w, self.count) @ torch.cat([cell_sum, cell_area[:, None]], 1)   # sums, area
        cell_mean = both[:, :-1] / both[:, -1:].clamp_min(1e-30)
        w = torch.exp(-0.5 * (self.DJ / radius) ** 2) * self.facing_j
        w[:, 0] += 1e-30
        w = w / w.sum(1, keepdim=True)
        return (self._rows(self.J, w, self.count) @ cell_mean).to(out_dtype)


# --- the readout -------------------------------------------------------------------------------
@dataclass
class MovedDetail:
    """A second surface read through the first one's fits (``surface_detail``'s ``moved``): its band
    heights and what the first surface holds of them. Lengths in the units of the points."""

    bands: np.ndarray       # (N, B) RMS height of the moved surface's detail in each band
    amplitude: np.ndarray   # (N,) its RMS height up to an octave above its own dominant band
    held: np.ndarray        # (N, B) the part of each band height that the first surface has IN PHASE
    spread: np.ndarray      # (N, B) the local standard deviation of the offset over each band's window


@dataclass
class DetailMaps:
    """Per point: the band heights and what they add up to. Lengths in the units of the points."""

    bands: np.ndarray          # (N, B) RMS height of the detail in each band
    beyond: np.ndarray         # (N,) RMS height of undulation coarser than the last band
    amplitude: np.ndarray      # (N,) RMS height over all bands
    dominant: np.ndarray       # (N,) index of the band with the most detail
    normals: np.ndarray        # (N, 3) the coarsest smooth copy's normals
    crease: np.ndarray         # (N,) how far the surface turns at a crease here (radians; 0 off creases): a band
    #                            about 4.6 voxels wide at the quick grid, kept out of the statistics
    layout: BandLayout
    # with faces only:
    crease_line: np.ndarray | None = None       # (N,) bool: the crease's own vertices (its faces turn there)
    local_bands: np.ndarray | None = None       # (N, B) each band's RMS height over LOCAL_RADIUS: where detail ends
    wavelength: np.ndarray | None = None        # (N,) the dominant band's own wavelength
    band_wavelength: np.ndarray | None = None   # (N, B) each band's wavelength
    direction: np.ndarray | None = None         # (N, 3) unit wave direction in the tangent plane (a line)
    anisotropy: np.ndarray | None = None        # (N,) 0: no preferred direction .. 1: one direction
    # with ``moved``: the moved surface's readout
    moved: MovedDetail | None = None


def surface_detail(pts: SurfacePoints, layout: BandLayout, faces: np.ndarray | None = None,
                   device: Any = "cpu", moved: np.ndarray | None = None) -> DetailMaps:
    """The multi-scale readout (module docstring) at every point of ``pts``.

    With ``faces`` (``pts`` are then the mesh's vertices, :meth:`SurfacePoints.from_vertices`) the
    band heights get gradients, hence wavelengths and directions; without, only heights (enough for
    amplitudes, e.g. of an input mesh sampled by :meth:`SurfacePoints.sample`).

    ``moved`` (N, 3): a SECOND surface, index for index with ``pts`` (detail_lost: each result vertex
    moved onto the input), read through this surface's pyramid: its offset along each point's normal
    is pooled into the same cells and fitted by the same quadric fits, with their final weights, as
    one more right-hand side (a weighted least-squares fit is linear in its heights once its weights
    are fixed); its height at each scale is then this surface's plus the offset minus the offset's
    smooth copy. Reading it as a surface of its own, a second pyramid, took 4.8 s of the quick
    Suzanne's 12.9 s attribute stage. ``DetailMaps.moved`` has its band heights and, per band, how much
    of each this surface holds IN PHASE: the local covariance of the two band signals over the second
    one's RMS (the same ripple at 0.8 of the height holds 0.8; another pattern of the same height, a
    moire, about none)."""
    import torch

    dev = torch.device(device)
    dt = torch.float64
    B = layout.count
    edges = layout.finest * 2.0 ** np.arange(B + 2)      # one more edge: the band beyond the last
    P = torch.as_tensor(pts.points, dtype=dt, device=dev)
    origin = pts.points.mean(0) if len(pts) else np.zeros(3)
    P32 = torch.as_tensor(pts.points - origin, dtype=torch.float32, device=dev)   # the face gradients' positions
    N = torch.as_tensor(pts.normals, dtype=dt, device=dev)
    A = torch.as_tensor(pts.areas, dtype=dt, device=dev)
    F = torch.as_tensor(np.asarray(faces, np.int64), device=dev) if faces is not None else None
    offset = None                                      # how far the moved surface is, along the normal
    if moved is not None:
        offset = ((torch.as_tensor(np.asarray(moved, np.float64), dtype=dt, device=dev) - P) * N).sum(-1)
    # the pyramid: level l pools the previous level's SMOOTH copy (blur, then subsample: detail finer than
    # the cells cannot alias into the coarser fits) into cells of a quarter of lambda_l
    heights = [torch.zeros(len(pts), dtype=dt, device=dev)]
    moved_heights = [torch.zeros(len(pts), dtype=dt, device=dev)]
    normals = [N]
    members = []
    crease = torch.full((len(pts),), math.pi, dtype=dt, device=dev)
    smooth, smooth_offset = pts, offset
    for lvl in range(1, B + 2):
        cells, member = _pool(smooth, edges[lvl] / 4.0)
        member_t = torch.as_tensor(member, device=dev)
        cell_offset = None
        if offset is not None:    # the offsets of the moved surface's smooth copy, pooled as the points are
            cell_offset = torch.zeros(len(cells), dtype=dt, device=dev).index_add_(0, member_t, A * smooth_offset)
            cell_offset = (cell_offset / torch.as_tensor(cells.areas, dtype=dt, device=dev).clamp_min(1e-300)).float()
        crease_level = CREASE_LEVELS[0] <= lvl <= CREASE_LEVELS[1]
        copy = _smooth_copy(cells, edges[lvl] * SIGMA_PER_WAVELENGTH, dev, with_turning=crease_level,
                            moved=cell_offset)
        members.append((cells, member, copy.neighbours))
        r, n_l, smooth_offset = _residual(copy, P, normals[-1], member_t, edges[lvl] / 4.0)
        heights.append(r)
        normals.append(n_l)
        if offset is not None:    # the moved point's height above the moved smooth copy
            moved_heights.append(r + offset - smooth_offset)
        if crease_level:
            crease = torch.minimum(crease, copy.turning[member_t].to(dt))
        smooth = SurfacePoints((P - r[:, None] * n_l).cpu().numpy(), pts.normals, pts.areas)
    if B + 1 < CREASE_LEVELS[0]:
        crease.zero_()
    # creases stay out of the bands' statistics: a bevel is not a ripple. The whole band the crease levels
    # flag stays out; the vertices on the edge itself are DetailMaps.crease_line
    A_stats = A * (crease < CREASE_ANGLE)
    real2 = None                                 # each slope face's doubled area (the gradients' weights)
    line = None                                  # the vertices on the crease itself
    if F is not None:
        # the slopes' faces: the mesh's own first, then the other split of each square-like pair
        slope_faces, slope_weight = both_splits(pts.points, np.asarray(faces, np.int64))
        slope_faces = torch.as_tensor(slope_faces, device=dev)
        slope_weight = torch.as_tensor(slope_weight, dtype=torch.float32, device=dev)
        S = slope_faces
        cross = torch.linalg.cross(P32[S[:, 1]] - P32[S[:, 0]], P32[S[:, 2]] - P32[S[:, 0]], dim=-1)
        real2 = cross.norm(dim=-1)
        own = slice(0, len(F))
        line = (crease >= CREASE_ANGLE) & (_face_turn(N, F, cross[own] / real2[own, None].clamp_min(1e-30))
                                           >= CREASE_LINE_ANGLE)
    rms, totals, var_hs, var_gs, directions, anisotropies, local_rms = [], [], [], [], [], [], []
    moved_rms, moved_totals, helds, spreads = [], [], [], []
    for b in range(B + 1):
        h = heights[b + 1] - heights[b]
        # the height of the detail up to one octave above this band: a ripple near the band's top edge
        # passes only ~0.7 of its height through that edge (module docstring), and a quarter-object
        # ripple read 0.74 of its height when the sum stopped at the last band
        total = heights[min(b + 2, B + 1)]
        columns = [h[:, None], (h * h)[:, None], total[:, None], (total * total)[:, None]]
        n = normals[min(b + 2, B + 1)]      # a smooth copy that does not follow this band
        slopes = F is not None and b < B      # the band beyond the last gets a height only
        if slopes:
            gradients = _face_gradient_moments(h, P32, slope_faces, n, real2, slope_weight)   # g, g g^T
            columns.append(gradients)
        at = sum(c.shape[1] for c in columns)
        with_moved = offset is not None and b < B
        if with_moved:                          # mean[:, at:at + 7]
            hm = moved_heights[b + 1] - moved_heights[b]
            tm = moved_heights[min(b + 2, B + 1)]
            columns.append(torch.stack([hm, hm * hm, tm, tm * tm, h * hm, offset, offset * offset], 1))
        cells, member, neighbours = members[b]
        # each point stands for its area PROJECTED onto the smooth copy: a height field's statistics are per
        # unit of its base (dA cos = dx dy); by its own area a steep ripple's slopes weigh more than its crests
        projected = A_stats * (N * n).sum(-1).clamp_min(0)
        window = _Window(pts.points, N, projected, member, cells, neighbours)
        mean = window.means(torch.cat(columns, 1), STAT_RADIUS * edges[b])
        var_h = (mean[:, 1] - mean[:, 0] ** 2).clamp_min(0)
        rms.append(var_h.sqrt())
        totals.append((mean[:, 3] - mean[:, 2] ** 2).clamp_min(0))
        if with_moved:
            m = mean[:, at:at + 7]
            var_m = (m[:, 1] - m[:, 0] ** 2).clamp_min(0)
            moved_rms.append(var_m.sqrt())
            moved_totals.append((m[:, 3] - m[:, 2] ** 2).clamp_min(0))
            helds.append((m[:, 4] - m[:, 0] * mean[:, 0]) / var_m.sqrt().clamp_min(1e-300))
            spreads.append((m[:, 6] - m[:, 5] ** 2).clamp_min(0).sqrt())
        if slopes:
            mg, mgg = mean[:, 4:7], mean[:, 7:13]
            T = torch.stack([torch.stack([mgg[:, 0], mgg[:, 3], mgg[:, 4]], -1),
                             torch.stack([mgg[:, 3], mgg[:, 1], mgg[:, 5]], -1),
                             torch.stack([mgg[:, 4], mgg[:, 5], mgg[:, 2]], -1)], -2) - mg[:, :, None] * mg[:, None, :]
            # the structure tensor in the smooth copy's tangent plane, [[a, c], [c, d]] over (t1, t2): its
            # eigenvectors in closed form (a batched 3x3 eigh of the projected tensor took 0.23 s on Suzanne)
            t1, t2 = _frames(n)
            Tt1, Tt2 = (T @ t1[:, :, None])[..., 0], (T @ t2[:, :, None])[..., 0]
            a, c, d = (Tt1 * t1).sum(-1), (Tt1 * t2).sum(-1), (Tt2 * t2).sum(-1)
            var_g = (a + d).clamp_min(1e-300)       # the gradient's variance along the surface (the trace)
            root = (0.25 * (a - d) ** 2 + c * c).sqrt()
            mu1, mu2 = (0.5 * (a + d) + root).clamp_min(0), (0.5 * (a + d) - root).clamp_min(0)
            theta = 0.5 * torch.atan2(2 * c, a - d)   # the major axis: the way the waves run
            var_hs.append(var_h)
            var_gs.append(var_g)
            directions.append(theta.cos()[:, None] * t1 + theta.sin()[:, None] * t2)
            anisotropies.append((mu1 - mu2) / (mu1 + mu2).clamp_min(1e-300))
            # the band's local energy, h^2 + |g|^2 (lambda / 2 pi)^2: a ripple a sin(k x) gives a^2 at every
            # point, whatever its phase, so a window narrower than a wavelength reads its height
            energy = (h - mean[:, 0]) ** 2 + gradients[:, 3:6].sum(1) * (var_h / var_g)
            local = window.means(energy[:, None], LOCAL_RADIUS * edges[b])
            local_rms.append((0.5 * local[:, 0]).clamp_min(0).sqrt())
    band_rms = torch.stack(rms[:B], 1)
    dominant = band_rms.argmax(1)
    n = normals[B + 1]
    rows = torch.arange(len(pts), device=dev)
    # the RMS of the detail up to an octave above the dominant band, over the dominant band's window
    amplitude = torch.stack(totals[:B], 1)[rows, dominant].sqrt()
    out = DetailMaps(bands=band_rms.cpu().numpy(), beyond=rms[B].cpu().numpy(),
                     amplitude=amplitude.cpu().numpy(), dominant=dominant.cpu().numpy(),
                     normals=n.cpu().numpy(), crease=crease.cpu().numpy(), layout=layout,
                     crease_line=line.cpu().numpy() if line is not None else None)
    if offset is not None:
        moved_bands = torch.stack(moved_rms, 1)
        moved_dominant = moved_bands.argmax(1)
        out.moved = MovedDetail(bands=moved_bands.cpu().numpy(),
                                amplitude=torch.stack(moved_totals, 1)[rows, moved_dominant].sqrt().cpu().numpy(),
                                held=torch.stack(helds, 1).cpu().numpy(), spread=torch.stack(spreads, 1).cpu().numpy())
    if F is not None:
        vh, vg = torch.stack(var_hs[:B], 1), torch.stack(var_gs[:B], 1)
        wl = 2 * math.pi * (vh / vg).sqrt()
        # the wavelength by Rice's formula over the dominant band AND its neighbours: a ripple near a band
        # edge splits its energy between two bands, and each band's own estimate leans to its own range,
        # so the dominant band's alone steps where the dominance flips (a chirp read as a staircase)
        near = ((torch.arange(B, device=dev)[None, :] - dominant[:, None]).abs() <= NEAR_BANDS) \
            & (vh >= NEAR_SHARE * vh[rows, dominant][:, None])
        combined = 2 * math.pi * ((vh * near).sum(1) / (vg * near).sum(1).clamp_min(1e-300)).sqrt()
        out.local_bands = torch.stack(local_rms, 1).cpu().numpy()
        out.band_wavelength = wl.cpu().numpy()
        out.wavelength = combined.cpu().numpy()
        out.direction = torch.stack(directions, 1)[rows, dominant].cpu().numpy()
        out.anisotropy = torch.stack(anisotropies, 1)[rows, dominant].cpu().numpy()
    return out


# --- what a result carries ---------------------------------------------------------------------
STATES = {"detail": 0, "none": 1, "coarser": 2, "crease": 3}
STATE_WORDS = {
    "detail": "detail: its dominant wavelength is in one of the bands",
    "none": "no detail: the height of the dominant band and its neighbours is below the floor (the result's accuracy)",
    "coarser": "coarser than the largest band: only undulation longer than the bands",
    "crease": "a crease or sharp edge: kept out of the bands, so a bevel is not fine texture",
}
STATE_GREYS = {"none": 0.5, "coarser": 0.72, "crease": 0.28}   # sRGB grey levels, never a colour of the scale
FLOOR_VOXELS = 0.1             # "no detail": the dominant bands' RMS height below this fraction of a voxel
NEAR_CREASE_REACH = 0.45       # near a crease (within this many of the dominant band's longest wavelength) ...
NEAR_CREASE_FLOORS = 2.5       # ... detail must be this many floors tall: the coarser smooth copies bend over
#                                the crease there and read made-up detail (the 3x slab's flat top beside its
#                                rounded rims: 1.06 floors median, 2.29 at the 95th percentile; at 2 floors
#                                19 % of that top read detail, at 2.5 floors 0.9 %). Reach 0.45 and 0.5 read
#                                within 1 % on the composites; 0.75 took the 4-voxel patch from 94 % detail to 81 %
COARSER_FLOORS = 3.0           # "coarser": undulation beyond the bands at least this many floors tall (at 1
#                                floor a flat patch near a slab's corner flipped none <-> coarser when the mesh
#                                moved by 1e-4: the coarsest fit's bias there sits at about one floor)
DETAIL_COLORMAP = "turbo_r"    # fine (short wavelength) = red ... coarse = blue


def detail_colors(wavelength: np.ndarray, amplitude: np.ndarray, state: np.ndarray, wavelength_range: tuple[float, float],
                  floor: float, amplitude_top: float | None = None) -> np.ndarray:
    """sRGB RGBA: hue from log wavelength over ``wavelength_range`` (the same wavelength gets the same
    colour whatever the object), blended toward grey as the height falls to the ``floor``; states
    other than detail get their grey (STATE_GREYS)."""
    import matplotlib

    lo, hi = (math.log(max(x, 1e-30)) for x in wavelength_range)
    t = (np.log(np.where(np.isfinite(wavelength) & (wavelength > 0), wavelength, 1.0)) - lo) / max(hi - lo, 1e-12)
    rgba = matplotlib.colormaps[DETAIL_COLORMAP](np.clip(t, 0.0, 1.0)).astype(np.float64)
    top = amplitude_top if amplitude_top is not None else max(float(np.percentile(amplitude, 95)), 2 * floor)
    strength = np.clip(np.log(np.maximum(amplitude, 1e-30) / floor) / max(math.log(top / floor), 1e-6), 0.15, 1.0)
    grey = STATE_GREYS["none"]
    rgba[:, :3] = grey + strength[:, None] * (rgba[:, :3] - grey)
    for name, level in STATE_GREYS.items():
        rgba[state == STATES[name], :3] = level
    rgba[:, 3] = 1.0
    return rgba.astype(np.float32)


LOST_FLOOR_MULTIPLE = 1.0   # "detail lost" is flagged where the input's detail is taller by a floor: the
#                             height below which a surface reads "no detail" (saved quick fits of the
#                             composites: the two patches finer than the grid, held at 0.42 and 0.13 of
#                             their height, are flagged on 99 % and 96 %, the abrupt change, held at 0.78,
#                             on 4 %, every other patch and the bases on 0 %; at 1.25 floors the 2-voxel
#                             patch, whose lost height is 0.99 floors by its truth, 29 %)


EDGE_PASS = 0.7  # the least share of a ripple's height its bands hold (one at the last band's top edge)


def detail_lost(result: DetailMaps) -> np.ndarray:
    """How much taller the input's detail is than what the result holds of it, per result vertex (input units).

    ``result``: the result's maps read with the input as its MOVED surface (:func:`surface_detail`'s
    ``moved``: each result vertex moved onto the input), so the input is read with
    the result's own connectivity, bands, fits and floor (no resampling between meshes). Compared band
    by band: the input's band height minus the part of it the result holds IN PHASE
    (``MovedDetail.held``). A result that holds 0.8 of a ripple lost 0.2 of it; one that keeps a moire
    of a ripple finer than its grid (another pattern, about as tall) lost nearly all of it, where
    comparing the two RMS heights read it as kept (the composite's 1.6-voxel patch, held at 0.42 by the
    quick fit: flagged on 0 % with RMS heights at any flag above 1.5 floors). The total is the input's
    height times the share of its band heights the result lacks: shares of heights, not of energies
    (bands split a ripple's height linearly, 0.6 / 0.4 at an edge). Positive: the fit smoothed (or
    garbled) the input's detail there.

    A band's missing height is at most the offset's local spread over that band's window: two surfaces
    that are d apart cannot differ by more than d in any band's height (the bands are linear filters:
    | |B x| - |B y| | <= |B (x - y)|). Without that bound, two noisy band readings of surfaces that
    nearly coincide added up their differences: on the README demo's faceted Suzanne the map read
    8.1 mm lost (median over the flagged 27 %) where the result sat 0.38 mm from its input."""
    moved = result.moved
    if moved is None:
        raise ValueError("detail_lost needs the maps read with the input as their moved surface "
                         "(surface_detail(..., moved=input_on_result))")
    missing = np.minimum(np.clip(moved.bands - np.clip(moved.held, 0.0, None), 0.0, None), moved.spread)
    share = missing.sum(1) / np.maximum(moved.bands.sum(1), 1e-300)
    lost = np.minimum(moved.amplitude * share, missing.sum(1) / EDGE_PASS)
    # and in all: no taller than the surfaces are apart
    return np.minimum(lost, moved.spread.max(1)).astype(np.float32)


def _floor_multiple_near_creases(vertices: np.ndarray, maps: DetailMaps) -> np.ndarray:
    """Per vertex, how many floors its detail must reach to count: 1 away from creases, NEAR_CREASE_FLOORS
    within NEAR_CREASE_REACH of its dominant band's longest wavelength from one. A smooth copy at that
    scale fits over the crease as well, and a quadric cannot follow a flat face and its rounded edge
    at once: it leaves a bump on the flat side (the 3x slab composite's fitted top beside its rims:
    1.06 floors median, 2.29 at the 95th percentile)."""
    from scipy.spatial import cKDTree

    on_crease = maps.crease >= CREASE_ANGLE
    multiple = np.ones(len(vertices))
    if not on_crease.any():
        return multiple
    reach = NEAR_CREASE_REACH * maps.layout.edges[np.minimum(maps.dominant + 1, maps.layout.count)]
    # no search beyond the longest reach (inf there): the same answer, without walking the whole tree
    distance = cKDTree(vertices[on_crease]).query(vertices, workers=-1, distance_upper_bound=float(reach.max()))[0]
    near = distance < reach
    multiple[near] = NEAR_CREASE_FLOORS
    return multiple


def _held_beside_crease(vertices: np.ndarray, maps: DetailMaps, line: np.ndarray, beside: np.ndarray) -> np.ndarray:
    """For the vertices ``beside`` a crease (in the band its levels flag, off its line), the height of their
    detail in the bands whose smooth copies do not reach the line: a band counts where the line is
    farther than NEAR_CREASE_REACH of its longest wavelength. The coarser bands' fits bend over the
    crease there (a quadric cannot follow a flat face and its rounded edge at once) and read made-up
    detail; what the finer bands hold is the vertex's own. The same sum as the state's (a band and its
    neighbours, each over the narrow window), over the trusted bands only, at the best band. A box rounded
    over one voxel, as a fit rounds it: its flat rows 2-4 voxels in read crease on 51 %, judged so 0 %;
    the 3x slab composite's quick fit: its top 91.3 -> 99.1 % no detail, no patch's reading moved."""
    from scipy.spatial import cKDTree

    layout = maps.layout
    longest = layout.edges[1:]
    distance = cKDTree(vertices[line]).query(vertices[beside], workers=-1,
                                             distance_upper_bound=float(NEAR_CREASE_REACH * longest[-1]))[0]
    trusted = NEAR_CREASE_REACH * longest[None, :] <= distance[:, None]
    return _neighbour_sums(np.where(trusted, maps.local_bands[beside], 0.0)).max(1)


def _neighbour_sums(local_bands: np.ndarray) -> np.ndarray:
    """(N, B): for each band, its height plus its NEAR_BANDS neighbours' each side (bands beyond the
    layout add nothing): the sum the "no detail" state compares with the floor (``detail_arrays``)."""
    count = local_bands.shape[1]
    padded = np.pad(local_bands, ((0, 0), (NEAR_BANDS, NEAR_BANDS)))
    return sum(padded[:, k:k + count] for k in range(2 * NEAR_BANDS + 1))


def detail_arrays(vertices: np.ndarray, faces: np.ndarray, voxel: float, *, floor: float | None = None,
                  layout: BandLayout | None = None, device: Any = "cpu",
                  input_on_result: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The detail maps of a mesh (lengths in its own units) as result arrays and their meta.

    ``voxel``: the extraction grid's spacing (sets the finest band, 2 voxels, and the default floor,
    FLOOR_VOXELS of a voxel). Arrays (architecture.md): ``detail_bands`` (V, B), ``detail_wavelength``
    (NaN off detail), ``detail_amplitude``, ``detail_direction`` (V, 3), ``detail_anisotropy``,
    ``crease_strength`` (degrees), ``detail_state`` (STATES) and ``color_detail``; with
    ``input_on_result`` (each vertex moved onto the input surface) also ``detail_lost``."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    size = float(np.ptp(v, axis=0).max()) if len(v) else 1.0
    source = "user" if layout is not None else "default"
    layout = layout or default_bands(voxel, size)
    floor = FLOOR_VOXELS * voxel if floor is None else floor
    maps = surface_detail(SurfacePoints.from_vertices(v, f), layout, f, device=device, moved=input_on_result)
    # "no detail": the dominant band's height with its neighbours', each over the narrow window
    # (LOCAL_RADIUS), below the floor. Heights added, not their squares: a ripple near a band edge puts
    # 0.6 of its height in one band and 0.4 in the next, in phase, so their root sum of squares read 0.72
    # of it (the composite's 1.7-floor ripple read 1.1 floors, and 5 % of it "no detail"). Two patterns
    # of their own in neighbouring bands read up to 1.4x taller: that errs toward "detail". Not the
    # strongest band's alone, nor ``amplitude``: it reaches an octave beyond the last band, where a
    # smooth base's coarsest fits leave their bias (the exact flat patch read 26 % detail)
    near = _neighbour_sums(maps.local_bands)[np.arange(len(v)), maps.dominant]
    state = np.full(len(v), STATES["detail"], np.uint8)
    weak = near < floor * _floor_multiple_near_creases(v, maps)
    coarse = maps.beyond >= COARSER_FLOORS * floor
    state[weak & coarse] = STATES["coarser"]
    state[weak & ~coarse] = STATES["none"]
    # a crease is its own vertices; beside them, in the band its levels flag, a vertex is called crease
    # only where it would read detail (the coarse fits' bend over the edge, 1-3 floors), else what it
    # reads: a marching-cubes box's flat top 1.5-6 voxels from its edge read crease on 81 %, now none
    band = maps.crease >= CREASE_ANGLE
    line = maps.crease_line if maps.crease_line is not None else band
    beside = band & ~line & (state == STATES["detail"])
    if beside.any() and line.any():
        # no detail of its own: "none" (not "coarser": the undulation beyond the bands is read by the coarsest
        # fits, which reach the crease from everywhere beside it)
        held = _held_beside_crease(v, maps, line, beside)
        state[np.flatnonzero(beside)[held < floor * NEAR_CREASE_FLOORS]] = STATES["none"]
    state[line | (band & (state == STATES["detail"]))] = STATES["crease"]
    detail = state == STATES["detail"]
    wavelength = np.where(detail, maps.wavelength, np.nan)
    span = (float(layout.edges[0]), float(layout.edges[-1]))
    arrays = {
        "detail_bands": maps.bands.astype(np.float32),
        "detail_wavelength": wavelength.astype(np.float32),
        "detail_amplitude": maps.amplitude.astype(np.float32),
        "detail_direction": np.where(detail[:, None], maps.direction, 0.0).astype(np.float32),
        "detail_anisotropy": np.where(detail, maps.anisotropy, 0.0).astype(np.float32),
        "crease_strength": np.degrees(maps.crease).astype(np.float32),
        "detail_state": state,
        "color_detail": detail_colors(wavelength, maps.amplitude, state, span, floor),
    }
    if input_on_result is not None:
        arrays["detail_lost"] = detail_lost(maps)
    meta = {"bands": layout.describe(), "floor": floor, "states": STATES, "state_words": STATE_WORDS,
            "state_greys": STATE_GREYS, "wavelength_range": list(span), "colormap": DETAIL_COLORMAP,
            "crease_angle_degrees": math.degrees(CREASE_ANGLE), "lost_flag": LOST_FLOOR_MULTIPLE * floor,
            "source": source,
            "rule": "bands: the user's task.detail_range in octaves" if source == "user" else "bands: octaves from 2 voxels of the extraction grid to a third of the object's largest "
                    f"extent; floor: {FLOOR_VOXELS} voxel"}
    return arrays, meta

