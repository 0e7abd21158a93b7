"""The PyTorch marching cubes (nstr.geometry.marching_cubes_torch) against scikit-image and known answers.

Known answers: scikit-image's vertices (every edge crossing, linearly interpolated), its area and
enclosed volume; a closed surface is watertight and consistently wound, with Euler characteristic 2 for
a sphere and 0 for a torus; the volume of a ball is 4/3 pi r^3 (positive: faces wound outward).
Everything here runs on the CPU in well under a second per test; the last test repeats the parity on
CUDA when there is one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes as skimage_mc

from nstr.errors import ConfigError
from nstr.geometry.extraction import MC_BACKENDS, extract_surface, marching_cubes, resolve_mc
from nstr.geometry.marching_cubes_torch import TRI_TABLE, marching_cubes_torch
from nstr.geometry.topology import euler_characteristic, is_watertight


def _grid(n: int) -> np.ndarray:
    return np.stack(np.meshgrid(*(np.arange(n, dtype=np.float64),) * 3, indexing="ij"), -1)


def sphere(n: int = 32, r: float = 11.3) -> np.ndarray:
    return (np.linalg.norm(_grid(n) - (n - 1) / 2, axis=-1) - r).astype(np.float32)


def torus(n: int = 36, big: float = 10.0, small: float = 4.2) -> np.ndarray:
    p = _grid(n) - (n - 1) / 2 + 0.21  # off the grid's symmetry: no value lands on a grid point
    ring = np.hypot(p[..., 0], p[..., 1]) - big
    return (np.hypot(ring, p[..., 2]) - small).astype(np.float32)


def noise(seed: int, n: int = 40, sigma: float = 2.0) -> np.ndarray:
    """Low-pass filtered white noise, unit variance, closed by a positive border: many blobs and handles."""
    f = gaussian_filter(np.random.default_rng(seed).standard_normal((n, n, n)), sigma, mode="wrap")
    return np.pad((f / f.std()).astype(np.float32), 1, constant_values=1.0)


def ambiguous_faces(vol: np.ndarray) -> int:
    """Cell faces whose corners alternate in sign around the face (the ambiguous ones)."""
    inside, count = vol <= 0, 0
    for axis in range(3):
        a = np.moveaxis(inside, axis, 0)
        p00, p01, p10, p11 = a[:, :-1, :-1], a[:, :-1, 1:], a[:, 1:, :-1], a[:, 1:, 1:]
        count += int(((p00 == p11) & (p01 == p10) & (p00 != p01)).sum())
    return count


def max_vertex_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Largest distance from a vertex of either set to the nearest vertex of the other."""
    return float(max(cKDTree(b).query(a)[0].max(), cKDTree(a).query(b)[0].max()))


def check_contract(v: np.ndarray, f: np.ndarray) -> None:
    assert v.dtype == np.float64 and v.shape[1:] == (3,) and f.dtype == np.int64 and f.shape[1:] == (3,)
    assert len(np.unique(v, axis=0)) == len(v)  # welded: one vertex per crossing
    assert np.all((f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2]))  # no degenerate faces
    assert np.array_equal(np.unique(f), np.arange(len(v)))  # every vertex used


def test_the_table_triangulates_exactly_the_crossed_edges() -> None:
    corners = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7))
    assert len(TRI_TABLE) == 256 and all(len(row) % 3 == 0 and len(row) <= 15 for row in TRI_TABLE)
    for case, row in enumerate(TRI_TABLE):
        crossed = {e for e, (a, b) in enumerate(corners) if (case >> a & 1) != (case >> b & 1)}
        assert set(row) == crossed, case


@pytest.mark.parametrize("name, vol, euler", [("sphere", sphere(), 2), ("torus", torus(), 0)])
def test_closed_shapes_match_skimage_and_are_watertight(name: str, vol: np.ndarray, euler: int) -> None:
    v, f = marching_cubes_torch(torch.as_tensor(vol))
    check_contract(v, f)
    sv, sf, _, _ = skimage_mc(vol, 0.0, allow_degenerate=False)
    assert len(v) == len(sv) and max_vertex_gap(v, sv) < 1e-5
    mine, ref = trimesh.Trimesh(v, f, process=False), trimesh.Trimesh(sv, sf, process=False)
    # the same polygons; a few quads near the torus' saddles split on the other diagonal (volume ~1e-4)
    assert mine.area == pytest.approx(ref.area, rel=1e-4)
    assert mine.volume > 0 and mine.volume == pytest.approx(ref.volume, rel=1e-3)  # outward, as skimage
    assert is_watertight(f) and euler_characteristic(f) == euler  # closed and consistently wound
    if name == "sphere":
        assert mine.volume == pytest.approx(4 / 3 * np.pi * 11.3 ** 3, rel=0.01)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_smooth_noise_with_ambiguous_cells_matches_skimage(seed: int) -> None:
    vol = noise(seed)
    assert ambiguous_faces(vol) > 40
    v, f = marching_cubes_torch(torch.as_tensor(vol))
    check_contract(v, f)
    # skimage's classic table: the same crossings; Lewiner's adds a few cell-centre vertices in
    # ambiguous cells (off every grid edge): the rest are the same crossings
    lv, _, _, _ = skimage_mc(vol, 0.0, allow_degenerate=False, method="lorensen")
    assert len(v) == len(lv) and max_vertex_gap(v, lv) < 1e-5
    sv, sf, _, _ = skimage_mc(vol, 0.0, allow_degenerate=False)
    on_edge = (np.abs(sv - np.round(sv)) < 1e-6).sum(1) >= 2
    assert len(v) == on_edge.sum() and max_vertex_gap(v, sv[on_edge]) < 1e-5
    mine, ref = trimesh.Trimesh(v, f, process=False), trimesh.Trimesh(sv, sf, process=False)
    assert mine.area == pytest.approx(ref.area, rel=1e-3)  # the tables split some cells differently
    assert mine.volume > 0 and mine.volume == pytest.approx(ref.volume, rel=1e-3)
    assert is_watertight(f)  # closed and consistently wound


def test_white_noise_is_crack_free() -> None:
    """Thousands of ambiguous faces: the two cells of each face must split it the same way."""
    vol = np.pad(np.random.default_rng(7).standard_normal((16, 16, 16)).astype(np.float32), 1, constant_values=1.0)
    assert ambiguous_faces(vol) > 1000
    v, f = marching_cubes_torch(torch.as_tensor(vol))
    check_contract(v, f)
    assert is_watertight(f)  # closed and consistently wound
    lv, _, _, _ = skimage_mc(vol, 0.0, allow_degenerate=False, method="lorensen")
    assert len(v) == len(lv) and max_vertex_gap(v, lv) < 1e-5


def test_values_exactly_zero_give_one_vertex_and_skimage_s_crossings() -> None:
    """Integer values: many grid points are exactly on the surface; skimage counts them inside (<= 0)."""
    f0 = gaussian_filter(np.random.default_rng(3).standard_normal((24, 24, 24)), 1.5)
    vol = np.pad(np.round(f0 / f0.std() * 3).astype(np.float32), 1, constant_values=1.0)
    assert (vol == 0).sum() > 1000
    v, f = marching_cubes_torch(torch.as_tensor(vol))
    check_contract(v, f)
    sv, sf, _, _ = skimage_mc(vol, 0.0, allow_degenerate=False)
    # skimage keeps a copy per edge of a crossing on a grid point, and the vertices of the faces it
    # dropped as degenerate (a zero point amid positive ones collapses to nothing): compare those used
    su = np.unique(sv[np.unique(sf)], axis=0)
    assert len(v) == len(su) and max_vertex_gap(v, su) < 1e-5


def test_slabs_give_the_same_mesh_as_one_pass() -> None:
    vol = torch.as_tensor(torus())
    v1, f1 = marching_cubes_torch(vol)
    v2, f2 = marching_cubes_torch(vol, slab_cells=35 * 35 * 3)  # 12 slabs of 3 cells
    assert np.array_equal(v1, v2) and np.array_equal(_face_set(f1), _face_set(f2))  # faces come slab by slab


def _face_set(f: np.ndarray) -> np.ndarray:
    """Faces in a canonical order, each rotated to start at its smallest index (keeps the winding)."""
    f = np.take_along_axis(f, (np.argmin(f, 1)[:, None] + np.arange(3)) % 3, 1)
    return f[np.lexsort(f.T[::-1])]


def test_no_sign_change_gives_empty_arrays() -> None:
    for vol in (np.ones((8, 8, 8), np.float32), -np.ones((8, 8, 8), np.float32)):
        v, f = marching_cubes_torch(torch.as_tensor(vol))
        assert v.shape == (0, 3) and f.shape == (0, 3) and f.dtype == np.int64
        for backend in MC_BACKENDS:
            v, f = marching_cubes(vol, backend)
            assert v.shape == (0, 3) and f.shape == (0, 3)


def test_auto_is_skimage_on_the_cpu_and_torch_on_cuda() -> None:
    assert resolve_mc("auto") == resolve_mc("auto", "cpu") == resolve_mc("auto", torch.device("cpu")) == "skimage"
    assert resolve_mc("auto", "cuda:0") == resolve_mc("auto", torch.device("cuda", 0)) == "torch"
    assert resolve_mc("mcubes", "cuda") == "mcubes"

    def ball(p: np.ndarray) -> np.ndarray:
        return (np.linalg.norm(p, axis=1) - 0.5).astype(np.float32)

    ext = extract_surface(ball, 24, sparse_from=1000)
    assert ext.mc == "skimage" and len(ext.faces) > 100
    ext = extract_surface(lambda x: x.norm(dim=1) - 0.5, 24, sparse_from=1000, device="cpu")
    assert ext.mc == "skimage"
    ext_t = extract_surface(lambda x: x.norm(dim=1) - 0.5, 24, sparse_from=1000, device="cpu", mc="torch")
    assert ext_t.mc == "torch" and max_vertex_gap(ext.vertices, ext_t.vertices) < 1e-5


def test_unknown_backend_is_a_config_error_naming_the_choices() -> None:
    from nstr.tasks.sdf import sdf_config

    for call in (lambda: marching_cubes(sphere(), "vtk"), lambda: extract_surface(lambda p: p[:, 0], 16, mc="vtk"),
                 lambda: sdf_config("quick", {"task.mc": "vtk"})):
        with pytest.raises(ConfigError) as err:
            call()
        assert "'vtk'" in str(err.value) and all(name in str(err.value) for name in MC_BACKENDS)
    assert sdf_config("quick").task.mc == "auto" and sdf_config("quick", {"task.mc": "torch"}).task.mc == "torch"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_the_cpu() -> None:
    for vol in (sphere(), torus(), noise(0)):
        vc, fc = marching_cubes_torch(torch.as_tensor(vol))
        vg, fg = marching_cubes_torch(torch.as_tensor(vol, device="cuda"))
        assert np.array_equal(fc, fg) and np.abs(vc - vg).max() < 1e-9
    ext = extract_surface(lambda x: x.norm(dim=1) - 0.5, 64, sparse_from=32, block=4, device="cuda")
    assert ext.mc == "torch" and is_watertight(ext.faces)
