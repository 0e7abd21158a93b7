"""Marching cubes on a field: dense below 512^3, coarse-to-fine and slab by slab above.

The grid has ``resolution`` points per axis spanning the unit box [-1, 1]^3 (the mesh sits
inside [-0.9, 0.9]^3, so the surface closes). The field is evaluated in chunks.

Coarse to fine (resolution >= ``sparse_from``): the fine grid is cut into blocks of ``block``
cells; the field is evaluated at block corners only, and a block is refined when a corner is
within ``lipschitz`` x the block diagonal of the surface (|f| small) or its corners disagree
in sign. Blocks left coarse take the sign of their corners. Marching cubes then runs one
z-slab of blocks at a time, so peak memory is one slab, not the whole grid (1024^3 float32
would be 4 GB), and the slabs' shared vertices are welded.

Both backends give faces counter-clockwise seen from outside (normals point out) for a
field that is negative inside.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from nstr.errors import ConfigError

SdfFn = Callable[[np.ndarray], np.ndarray]  # (N, 3) float32 unit-box points -> (N,) values
MC_BACKENDS = ("skimage", "mcubes")


@dataclass
class Extraction:
    vertices: np.ndarray  # (V, 3) float64, unit box
    faces: np.ndarray  # (F, 3) int64, outward
    seconds_eval: float = 0.0
    seconds_mc: float = 0.0
    evaluated_points: int = 0
    mode: str = "dense"
    info: dict[str, float] = field(default_factory=dict)


def grid_axis(resolution: int) -> np.ndarray:
    return np.linspace(-1.0, 1.0, resolution, dtype=np.float64)


def marching_cubes(volume: np.ndarray, backend: str = "skimage") -> tuple[np.ndarray, np.ndarray]:
    """(vertices in index coordinates, outward faces) of the zero level set, or empty arrays."""
    if backend not in MC_BACKENDS:
        raise ConfigError(f"unknown marching-cubes backend '{backend}'", "Choose skimage or mcubes")
    if not (volume.min() < 0 < volume.max()):
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    if backend == "skimage":
        from skimage.measure import marching_cubes as mc

        verts, faces, _, _ = mc(volume, level=0.0, allow_degenerate=False)
        return verts.astype(np.float64), faces.astype(np.int64)
    import mcubes

    verts, faces = mcubes.marching_cubes(volume, 0.0)
    return np.asarray(verts, np.float64), np.asarray(faces, np.int64)[:, ::-1].copy()  # mcubes winds inward


def evaluate_grid(sdf: SdfFn, resolution: int, chunk: int = 262_144) -> np.ndarray:
    """Dense (R, R, R) float32 grid of field values, indexed [x, y, z]."""
    ax = grid_axis(resolution).astype(np.float32)
    out = np.empty(resolution ** 3, np.float32)
    plane = np.stack(np.meshgrid(ax, ax, indexing="ij"), -1).reshape(-1, 2)
    per_slice = resolution * resolution
    for k, z in enumerate(ax):  # one z-slice at a time keeps the coordinate arrays small
        pts = np.concatenate([plane, np.full((per_slice, 1), z, np.float32)], 1)
        for s in range(0, per_slice, chunk):
            e = min(s + chunk, per_slice)
            out[k * per_slice + s:k * per_slice + e] = sdf(pts[s:e])
    return out.reshape(resolution, resolution, resolution).transpose(1, 2, 0).copy()  # [z, x, y] -> [x, y, z]


def extract_surface(sdf: SdfFn, resolution: int, *, mc: str = "skimage", sparse_from: int = 512,
                    block: int = 8, lipschitz: float = 1.5, chunk: int = 262_144) -> Extraction:
    """Zero level set of ``sdf`` at ``resolution``^3 in unit-box coordinates."""
    if resolution < 8:
        raise ConfigError(f"resolution {resolution} is too small", "Use a resolution of at least 8 (e.g. 128, 256)")
    if mc not in MC_BACKENDS:
        raise ConfigError(f"unknown marching-cubes backend '{mc}'", "Choose skimage or mcubes")
    if resolution < sparse_from:
        t0 = time.perf_counter()
        vol = evaluate_grid(sdf, resolution, chunk)
        t1 = time.perf_counter()
        v, f = marching_cubes(vol, mc)
        t2 = time.perf_counter()
        return Extraction(vertices=_index_to_unit(v, resolution), faces=f, seconds_eval=t1 - t0,
                          seconds_mc=t2 - t1, evaluated_points=resolution ** 3, mode="dense")
    return _extract_sparse(sdf, resolution, mc=mc, block=block, lipschitz=lipschitz, chunk=chunk)


def _index_to_unit(v: np.ndarray, resolution: int) -> np.ndarray:
    return v * (2.0 / (resolution - 1)) - 1.0


def _extract_sparse(sdf: SdfFn, resolution: int, *, mc: str, block: int, lipschitz: float,
                    chunk: int) -> Extraction:
    t0 = time.perf_counter()
    cells = resolution - 1
    nb = -(-cells // block)  # blocks per axis
    h = 2.0 / cells
    # corner lattice: fine indices 0, block, 2 block, ... clipped to the last point
    corner_idx = np.minimum(np.arange(nb + 1) * block, cells)
    cax = (corner_idx * h - 1.0).astype(np.float32)
    cg = np.stack(np.meshgrid(cax, cax, cax, indexing="ij"), -1).reshape(-1, 3)
    cval = np.concatenate([sdf(cg[s:s + chunk]) for s in range(0, len(cg), chunk)]).reshape(nb + 1, nb + 1, nb + 1)
    corners = np.stack([cval[i:i + nb, j:j + nb, k:k + nb] for i in (0, 1) for j in (0, 1) for k in (0, 1)], -1)
    threshold = lipschitz * np.sqrt(3.0) * block * h
    active = (np.abs(corners).min(-1) < threshold) | ((corners.min(-1) < 0) & (corners.max(-1) > 0))
    block_sign = np.where(corners.mean(-1) < 0, -1.0, 1.0).astype(np.float32)
    n_active = int(active.sum())
    # fine offsets inside one block: (block+1)^3 points
    off = np.arange(block + 1)
    offs = np.stack(np.meshgrid(off, off, off, indexing="ij"), -1).reshape(-1, 3)
    t_eval = time.perf_counter() - t0
    evaluated = len(cg)
    t_mc = 0.0
    verts_all, faces_all, n_verts = [], [], 0
    for bz in range(nb):  # slab of blocks along z
        t1 = time.perf_counter()
        z0 = bz * block
        z1 = min(z0 + block, cells)
        depth = z1 - z0 + 1
        slab = np.repeat(np.repeat(block_sign[:, :, bz], block, 0), block, 1)[:cells + 1, :cells + 1]
        if slab.shape[0] < cells + 1:  # the last block can be shorter: pad by edge values
            slab = np.pad(slab, ((0, cells + 1 - slab.shape[0]), (0, cells + 1 - slab.shape[1])), mode="edge")
        vol = np.repeat(slab[:, :, None], depth, axis=2)
        act = np.argwhere(active[:, :, bz])
        if len(act):
            base = np.concatenate([act * block, np.full((len(act), 1), z0)], 1)  # (A, 3) fine index of block origin
            idx = (base[:, None, :] + offs[None, :, :]).reshape(-1, 3)
            idx = np.minimum(idx, cells)
            pts = (idx * h - 1.0).astype(np.float32)
            vals = np.concatenate([sdf(pts[s:s + chunk]) for s in range(0, len(pts), chunk)]).astype(np.float32)
            vol[idx[:, 0], idx[:, 1], idx[:, 2] - z0] = vals
            evaluated += len(pts)
        t2 = time.perf_counter()
        t_eval += t2 - t1
        if len(act):
            v, f = marching_cubes(vol, mc)
            if len(f):
                v[:, 2] += z0
                verts_all.append(v)
                faces_all.append(f + n_verts)
                n_verts += len(v)
        t_mc += time.perf_counter() - t2
    t3 = time.perf_counter()
    if not verts_all:
        return Extraction(np.zeros((0, 3)), np.zeros((0, 3), np.int64), t_eval, t_mc, evaluated, "sparse",
                          {"active_blocks": n_active, "blocks": nb ** 3})
    v, f = weld(np.concatenate(verts_all), np.concatenate(faces_all))
    t_mc += time.perf_counter() - t3
    return Extraction(vertices=_index_to_unit(v, resolution), faces=f, seconds_eval=t_eval, seconds_mc=t_mc,
                      evaluated_points=evaluated, mode="sparse",
                      info={"active_blocks": n_active, "blocks": nb ** 3, "block": block})


def weld(vertices: np.ndarray, faces: np.ndarray, tol: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices closer than ``tol`` (grid units): the copies that two slabs make of the same
    edge crossing. Faces that collapse are dropped."""
    q = np.round(vertices / tol).astype(np.int64)
    _, first, inverse = np.unique(q, axis=0, return_index=True, return_inverse=True)
    new_faces = inverse.reshape(-1)[faces]
    ok = (new_faces[:, 0] != new_faces[:, 1]) & (new_faces[:, 1] != new_faces[:, 2]) & (new_faces[:, 0] != new_faces[:, 2])
    return vertices[first], new_faces[ok]
