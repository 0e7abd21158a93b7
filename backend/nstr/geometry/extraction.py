"""Marching cubes on a field: dense for small grids, coarse-to-fine and slab by slab for fine ones.

The grid has ``resolution`` points per axis spanning the unit box [-1, 1]^3 (the mesh sits
inside [-0.9, 0.9]^3, so the surface closes). The field is evaluated in chunks on its own device
(``device``: the function takes and returns torch tensors there), into one device buffer that is
copied to the host once (or not at all for the torch backend), so a GPU never waits on a host copy
per chunk. Plain numpy functions (analytic shapes, NeRF densities) work too (``device=None``).

Coarse to fine (resolution >= ``sparse_from``): the fine grid is cut into blocks of ``block``
cells; the field is evaluated at block corners only, and a block is refined when a corner is
within ``lipschitz`` x the block diagonal of the surface (|f| small) or its corners disagree
in sign. Blocks left coarse take the sign of their corners. The refined blocks' fine points are
evaluated in one pass; marching cubes then runs one z-slab of blocks at a time, so peak memory
is one slab, not the whole grid (1024^3 float32 would be 4 GB), and the slabs' shared vertices
are welded. The cost grows with the surface's area, ~R^2, not with the volume, R^3.

Marching cubes backends (``mc``): ``skimage`` (scikit-image, Lewiner's tables), ``mcubes`` (PyMCubes),
``torch`` (:mod:`nstr.geometry.marching_cubes_torch`, on the volume's device, so a CUDA field's grid
never leaves the GPU) and ``auto``: torch when the field runs on CUDA, else skimage (the CPU fallback).
All give faces counter-clockwise seen from outside (normals point out) for a field that is negative
inside; skimage and torch place the same vertices (one per edge crossing, linearly interpolated).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from nstr.errors import ConfigError

SdfFn = Callable[[Any], Any]  # (N, 3) float32 unit-box points -> (N,) values: numpy, or torch on ``device``
MC_BACKENDS = ("auto", "skimage", "mcubes", "torch")


@dataclass
class Extraction:
    vertices: np.ndarray  # (V, 3) float64, unit box
    faces: np.ndarray  # (F, 3) int64, outward
    seconds_eval: float = 0.0
    seconds_mc: float = 0.0
    evaluated_points: int = 0
    mode: str = "dense"
    info: dict[str, float] = field(default_factory=dict)
    mc: str = ""  # the marching-cubes backend that ran (``auto`` resolved)


def grid_axis(resolution: int) -> np.ndarray:
    return np.linspace(-1.0, 1.0, resolution, dtype=np.float64)


def resolve_mc(backend: str, device: Any = None) -> str:
    """The backend that runs: ``auto`` is torch for a field on CUDA, else skimage; an unknown name is a ConfigError."""
    if backend not in MC_BACKENDS:
        raise ConfigError(f"unknown marching-cubes backend '{backend}'", f"Choose one of: {', '.join(MC_BACKENDS)}")
    if backend != "auto":
        return backend
    kind = getattr(device, "type", None) or str(device).partition(":")[0]  # torch.device, "cuda:0", None
    return "torch" if kind == "cuda" else "skimage"


def marching_cubes(volume: Any, backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(vertices in index coordinates, outward faces) of the zero level set, or empty arrays.
    ``volume``: a numpy array, or a torch tensor (torch runs on its device; ``auto`` picks by it)."""
    backend = resolve_mc(backend, getattr(volume, "device", None))
    if backend == "torch":
        from nstr.geometry.marching_cubes_torch import marching_cubes_torch

        return marching_cubes_torch(volume)
    if not isinstance(volume, np.ndarray):
        volume = volume.cpu().numpy()
    if not (volume.min() < 0 < volume.max()):
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    if backend == "skimage":
        from skimage.measure import marching_cubes as mc

        verts, faces, _, _ = mc(volume, level=0.0, allow_degenerate=False)
        return verts.astype(np.float64), faces.astype(np.int64)
    import mcubes

    verts, faces = mcubes.marching_cubes(volume, 0.0)
    return np.asarray(verts, np.float64), np.asarray(faces, np.int64)[:, ::-1].copy()  # mcubes winds inward


def _as_torch_fn(sdf: SdfFn, device: Any) -> tuple[Callable[[Any], Any], Any]:
    """A torch (N, 3) -> (N,) function on ``device`` (a numpy function runs on the CPU)."""
    import torch

    if device is not None:
        return sdf, torch.device(device)
    return (lambda x: torch.as_tensor(np.asarray(sdf(x.numpy()), np.float32))), torch.device("cpu")


def _evaluate(fn: Callable[[Any], Any], points_of: Callable[[int, int], Any], n: int, chunk: int,
              device: Any, host: bool = True) -> Any:
    """Values at ``n`` points made chunk by chunk on the device by ``points_of(start, stop)``: one host copy
    (numpy), or none (``host=False``: the torch tensor on the device)."""
    import torch

    out = torch.empty(n, dtype=torch.float32, device=device)
    with torch.no_grad():
        for s in range(0, n, chunk):
            e = min(s + chunk, n)
            out[s:e] = fn(points_of(s, e)).reshape(-1).to(torch.float32)
    if host:
        return out.cpu().numpy()
    if out.is_cuda:
        torch.cuda.synchronize(out.device)  # so the caller's timings split evaluation from marching cubes
    return out


def evaluate_grid(sdf: SdfFn, resolution: int, chunk: int = 262_144, device: Any = None, host: bool = True) -> Any:
    """Dense (R, R, R) float32 grid of field values, indexed [x, y, z]: numpy, or (``host=False``) a
    torch tensor left on the field's device."""
    import torch

    fn, dev = _as_torch_fn(sdf, device)
    ax = torch.as_tensor(grid_axis(resolution), dtype=torch.float32, device=dev)
    r = resolution

    def points(s: int, e: int) -> Any:
        i = torch.arange(s, e, device=dev)
        return torch.stack([ax[i // (r * r)], ax[(i // r) % r], ax[i % r]], 1)

    return _evaluate(fn, points, r ** 3, chunk, dev, host).reshape(r, r, r)


def extract_surface(sdf: SdfFn, resolution: int, *, mc: str = "auto", sparse_from: int = 512,
                    block: int = 8, lipschitz: float = 1.5, chunk: int = 262_144, device: Any = None) -> Extraction:
    """Zero level set of ``sdf`` at ``resolution``^3 in unit-box coordinates (``mc``: see the module's docstring)."""
    if resolution < 8:
        raise ConfigError(f"resolution {resolution} is too small", "Use a resolution of at least 8 (e.g. 128, 256)")
    mc = resolve_mc(mc, device)
    if resolution < sparse_from:
        t0 = time.perf_counter()
        vol = evaluate_grid(sdf, resolution, chunk, device, host=mc != "torch")  # torch: the grid stays on the device
        t1 = time.perf_counter()
        v, f = marching_cubes(vol, mc)
        t2 = time.perf_counter()
        return Extraction(vertices=_index_to_unit(v, resolution), faces=f, seconds_eval=t1 - t0,
                          seconds_mc=t2 - t1, evaluated_points=resolution ** 3, mode="dense", mc=mc)
    return _extract_sparse(sdf, resolution, mc=mc, block=block, lipschitz=lipschitz, chunk=chunk, device=device)


def _index_to_unit(v: np.ndarray, resolution: int) -> np.ndarray:
    return v * (2.0 / (resolution - 1)) - 1.0


def _extract_sparse(sdf: SdfFn, resolution: int, *, mc: str, block: int, lipschitz: float,
                    chunk: int, device: Any) -> Extraction:
    import torch

    fn, dev = _as_torch_fn(sdf, device)
    t0 = time.perf_counter()
    cells = resolution - 1
    nb = -(-cells // block)  # blocks per axis
    h = 2.0 / cells
    # corner lattice: fine indices 0, block, 2 block, ... clipped to the last point
    corner_idx = np.minimum(np.arange(nb + 1) * block, cells)
    cax = torch.as_tensor(corner_idx * h - 1.0, dtype=torch.float32, device=dev)
    m = nb + 1

    def corner_points(s: int, e: int) -> Any:
        i = torch.arange(s, e, device=dev)
        return torch.stack([cax[i // (m * m)], cax[(i // m) % m], cax[i % m]], 1)

    cval = _evaluate(fn, corner_points, m ** 3, chunk, dev).reshape(m, m, m)
    corners = np.stack([cval[i:i + nb, j:j + nb, k:k + nb] for i in (0, 1) for j in (0, 1) for k in (0, 1)], -1)
    threshold = lipschitz * np.sqrt(3.0) * block * h
    active = (np.abs(corners).min(-1) < threshold) | ((corners.min(-1) < 0) & (corners.max(-1) > 0))
    block_sign = np.where(corners.mean(-1) < 0, -1.0, 1.0).astype(np.float32)
    # refined blocks, ordered by z so each slab's blocks are one contiguous run
    act = np.argwhere(active)
    act = act[np.argsort(act[:, 2], kind="stable")]
    n_active = len(act)
    per = (block + 1) ** 3
    off = np.arange(block + 1)
    offs = np.stack(np.meshgrid(off, off, off, indexing="ij"), -1).reshape(-1, 3)
    act_t = torch.as_tensor(act * block, device=dev)
    offs_t = torch.as_tensor(offs, device=dev)

    def block_points(s: int, e: int) -> Any:
        i = torch.arange(s, e, device=dev)
        idx = torch.clamp(act_t[i // per] + offs_t[i % per], max=cells)
        return (idx.to(torch.float32) * h - 1.0)

    vals = _evaluate(fn, block_points, n_active * per, chunk, dev, host=False).reshape(
        n_active, block + 1, block + 1, block + 1)  # stays on the device: the slabs are assembled there
    t_eval = time.perf_counter() - t0
    evaluated = m ** 3 + n_active * per
    t_mc = 0.0
    verts_all, faces_all, n_verts = [], [], 0
    slab_start = np.searchsorted(act[:, 2], np.arange(nb + 1))
    sign_t = torch.as_tensor(block_sign, device=dev)
    to_block = torch.clamp(torch.arange(cells + 1, device=dev) // block, max=nb - 1)  # fine index -> its block
    off_t = torch.arange(block + 1, device=dev)
    act_xy = torch.as_tensor(act[:, :2] * block, device=dev)
    for bz in range(nb):  # slab of blocks along z
        a0, a1 = slab_start[bz], slab_start[bz + 1]
        if a0 == a1:
            continue
        t1 = time.perf_counter()
        z0 = bz * block
        z1 = min(z0 + block, cells)
        depth = z1 - z0 + 1
        # the slab: each block's sign, then the refined blocks' values written over it in one scatter
        # (points past the grid's edge were evaluated at the edge, so clamping rewrites the same values)
        vol = sign_t[to_block[:, None], to_block[None, :], bz][:, :, None].repeat(1, 1, depth)
        xi = torch.clamp(act_xy[a0:a1, 0, None] + off_t, max=cells)
        yi = torch.clamp(act_xy[a0:a1, 1, None] + off_t, max=cells)
        vol[xi[:, :, None], yi[:, None, :]] = vals[a0:a1, :, :, :depth]
        t2 = time.perf_counter()
        t_eval += t2 - t1
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
                          {"active_blocks": n_active, "blocks": nb ** 3}, mc)
    v, f = weld(np.concatenate(verts_all), np.concatenate(faces_all))
    t_mc += time.perf_counter() - t3
    return Extraction(vertices=_index_to_unit(v, resolution), faces=f, seconds_eval=t_eval, seconds_mc=t_mc,
                      evaluated_points=evaluated, mode="sparse",
                      info={"active_blocks": n_active, "blocks": nb ** 3, "block": block}, mc=mc)


def weld(vertices: np.ndarray, faces: np.ndarray, tol: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices closer than ``tol`` (grid units): the copies that two slabs make of the same
    edge crossing. Faces that collapse are dropped."""
    q = np.round(vertices / tol).astype(np.int64)
    _, first, inverse = np.unique(q, axis=0, return_index=True, return_inverse=True)
    new_faces = inverse.reshape(-1)[faces]
    ok = (new_faces[:, 0] != new_faces[:, 1]) & (new_faces[:, 1] != new_faces[:, 2]) & (new_faces[:, 0] != new_faces[:, 2])
    return vertices[first], new_faces[ok]
