"""Training samples for an SDF fit: on the surface, near it at several noise scales, and
uniform in the box, with ground-truth signed distances and surface normals.

The mix follows instant-ngp / torch-ngp (half on or near the surface, some uniform), with
near-surface noise at two or more scales so the fit sees both the fine shell that decides
where the surface is and the wider band that shapes the distance field. Samples are cached
per mesh content + sampling settings, so re-fitting the same mesh skips ground truth.

Where the detail is: a share ``detail_fraction`` of the surface and near-surface points is drawn
with density area x (curvature + 1 / local feature width) instead of area alone, so creases,
hole rims and thin walls get more samples than flat faces (curvature from the dihedral angles
between neighbouring faces, width from :mod:`nstr.geometry.feature_size`). Near a thin feature
the near-surface noise std is capped at ``feature_noise`` x the local width: noise wider than a
wall lands on its far side and teaches the fit nothing about this side.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nstr.geometry.ground_truth import MeshSDF
from nstr.geometry.mesh import Mesh

CACHE_VERSION = 4  # 4: a watertight mesh's pseudonormal sign is checked (ground_truth.SIGN_PROBES)


@dataclass(frozen=True)
class SamplingSpec:
    """How many samples of each kind, in unit-box coordinates."""

    n_samples: int = 500_000
    surface_fraction: float = 0.25
    near_fraction: float = 0.5  # split evenly over near_scales
    near_scales: tuple[float, ...] = (0.005, 0.03)  # std of the Gaussian offsets, unit box ([-1, 1]^3)
    band: float = 0.1  # distances are exact below this; the loss truncates here
    seed: int = 0
    detail_fraction: float = 0.0  # share of surface/near points drawn by curvature + thinness, not area
    feature_noise: float = 0.0  # near-noise std <= this x local feature width (0: off)


@dataclass
class SampleSet:
    """points (N, 3) float32 in the unit box, sdf (N,) float32, normals (N, 3) float32 (outward;
    zero except for surface samples), and where each kind starts."""

    points: np.ndarray
    sdf: np.ndarray
    normals: np.ndarray
    n_surface: int
    seconds: float = 0.0
    from_cache: bool = False


def default_cache_dir() -> Path:
    return Path(os.environ.get("NSTR_CACHE") or Path.home() / ".cache" / "nstr")


def sample_sdf(mesh_unit: Mesh, spec: SamplingSpec, gt: MeshSDF | None = None,
               cache_dir: Path | None = None, face_width: np.ndarray | None = None) -> SampleSet:
    """Samples for a mesh already in the unit box; from the cache when the same mesh was sampled before."""
    start = time.perf_counter()
    path = None
    if cache_dir is not None:
        key = hashlib.sha256((mesh_unit.content_hash() + json.dumps(asdict(spec), sort_keys=True)
                              + f"v{CACHE_VERSION}").encode()).hexdigest()[:32]
        path = Path(cache_dir) / "sdf_samples" / f"{key}.npz"
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as z:
                    out = SampleSet(points=z["points"], sdf=z["sdf"], normals=z["normals"],
                                    n_surface=int(z["n_surface"]), from_cache=True)
                out.seconds = time.perf_counter() - start
                os.utime(path)  # least recently used goes first when the cache is trimmed
                return out
            except Exception:  # a torn or foreign file: resample and overwrite
                pass
    out = _sample(mesh_unit, spec, gt or MeshSDF(mesh_unit.vertices, mesh_unit.faces), face_width)
    out.seconds = time.perf_counter() - start
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, points=out.points, sdf=out.sdf, normals=out.normals, n_surface=out.n_surface)
        os.replace(tmp, path)  # atomic: concurrent fits never read half a file
        trim_cache(path.parent)
    return out


def trim_cache(folder: Path, max_bytes: int | None = None) -> list[Path]:
    """Keep the sample cache under ``$NSTR_CACHE_MAX_MB`` (default 2048 MiB): least recently used out first."""
    if max_bytes is None:
        try:
            max_bytes = int(float(os.environ.get("NSTR_CACHE_MAX_MB", "2048")) * 2**20)
        except ValueError:
            max_bytes = 2048 * 2**20
    entries = []
    for p in Path(folder).glob("*.npz"):
        try:
            st = p.stat()
        except OSError:
            continue
        entries.append((st.st_mtime, st.st_size, p))
    entries.sort()
    total = sum(size for _, size, _ in entries)
    removed = []
    for _mtime, size, p in entries[:-1]:  # never the newest (the one just written)
        if total <= max_bytes:
            break
        try:
            p.unlink()
        except OSError:
            continue
        total -= size
        removed.append(p)
    return removed


def surface_points(mesh: Mesh, n: int, rng: np.random.Generator,
                   weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted uniform points on the triangles (density area x ``weight`` per face when given)
    and their (unoriented) face normals."""
    pts, normals, _ = surface_samples(mesh, n, rng, weight)
    return pts, normals


def surface_samples(mesh: Mesh, n: int, rng: np.random.Generator,
                    weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`surface_points` plus the face each point lies on."""
    tri = mesh.vertices[mesh.faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = np.linalg.norm(cross, axis=1)
    p = area if weight is None else area * weight
    face = rng.choice(len(area), size=n, p=p / p.sum())
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    bary = np.stack([1 - s, s * (1 - r2), s * r2], axis=1)
    pts = np.einsum("nk,nkd->nd", bary, tri[face])
    return pts, cross[face] / area[face, None], face


def face_curvature(mesh: Mesh) -> np.ndarray:
    """Per face, the mean over its edge neighbours of the angle between their normals divided by the
    distance between their centroids (1 / length: a discrete curvature; creases are large)."""
    f = mesh.faces
    tri = mesh.vertices[f]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-30)
    c = tri.mean(1)
    e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    owner = np.tile(np.arange(len(f)), 3)
    order = np.lexsort((e[:, 1], e[:, 0]))
    e, owner = e[order], owner[order]
    same = np.all(e[1:] == e[:-1], axis=1)  # consecutive equal edges: a pair of neighbouring faces
    a, b = owner[:-1][same], owner[1:][same]
    angle = np.arccos(np.clip(np.abs(np.einsum("nd,nd->n", n[a], n[b])), 0.0, 1.0))  # unoriented
    k = angle / np.maximum(np.linalg.norm(c[a] - c[b], axis=1), 1e-12)
    total = np.bincount(a, k, len(f)) + np.bincount(b, k, len(f))
    count = np.bincount(a, minlength=len(f)) + np.bincount(b, minlength=len(f))
    return total / np.maximum(count, 1)


def detail_weight(mesh: Mesh, face_width: np.ndarray | None) -> np.ndarray:
    """Per-face sampling weight (times area) for the detail share: curvature + 1 / feature width, capped
    at the 99th percentile so a few degenerate slivers do not take all the samples."""
    w = face_curvature(mesh)
    if face_width is not None:
        w = w + np.where(np.isfinite(face_width), 1.0 / np.maximum(face_width, 1e-6), 0.0)
    w = np.minimum(w, np.percentile(w, 99))
    return w + 1e-3 * max(float(w.mean()), 1e-9)


def _sample(mesh: Mesh, spec: SamplingSpec, gt: MeshSDF, face_width: np.ndarray | None = None) -> SampleSet:
    rng = np.random.default_rng(spec.seed)
    n_surf = int(spec.n_samples * spec.surface_fraction)
    n_near = int(spec.n_samples * spec.near_fraction)
    n_unif = spec.n_samples - n_surf - n_near
    n_on = n_surf + n_near
    n_detail = int(round(n_on * spec.detail_fraction))
    surf, normals, face = surface_samples(mesh, n_on - n_detail, rng)
    if n_detail:
        ds, dn, df = surface_samples(mesh, n_detail, rng, detail_weight(mesh, face_width))
        mix = rng.permutation(n_on)  # detail points spread over the surface and every near scale
        surf, normals, face = (np.concatenate([surf, ds])[mix], np.concatenate([normals, dn])[mix],
                               np.concatenate([face, df])[mix])
    width = None
    if face_width is not None and spec.feature_noise > 0:
        width = spec.feature_noise * face_width[face]  # inf where no thin feature: no cap
    # outward normals: on a closed, consistently wound mesh the winding says it once for all faces;
    # otherwise probe the winding number just outside each sample (open meshes have no global side)
    if gt.closed:
        normals = normals[:n_surf] * gt.orientation_sign()
    else:
        flip = gt.inside(surf[:n_surf] + 1e-3 * normals[:n_surf])
        normals = normals[:n_surf] * np.where(flip, -1.0, 1.0)[:, None]
    near_parts = []
    for i, scale in enumerate(spec.near_scales):
        lo = n_surf + i * n_near // len(spec.near_scales)
        hi = n_surf + (i + 1) * n_near // len(spec.near_scales)
        std = scale if width is None else np.minimum(scale, width[lo:hi])[:, None]
        near_parts.append(surf[lo:hi] + rng.normal(0.0, 1.0, size=(hi - lo, 3)) * std)
    near = np.clip(np.concatenate(near_parts), -1.0, 1.0)
    unif = rng.uniform(-1.0, 1.0, size=(n_unif, 3))
    off = np.concatenate([near, unif])
    sdf_off = gt.signed_distance(off, band=spec.band)
    points = np.concatenate([surf[:n_surf], off]).astype(np.float32)
    sdf = np.concatenate([np.zeros(n_surf), sdf_off]).astype(np.float32)
    all_normals = np.zeros_like(points)
    all_normals[:n_surf] = normals
    return SampleSet(points=points, sdf=sdf, normals=all_normals, n_surface=n_surf)
