"""The torch ground truth (used on CUDA) against libigl on small real meshes: winding numbers and signed
distances at points inside, outside and near the surface."""

from __future__ import annotations

import igl
import numpy as np
import torch
import trimesh

from nstr.geometry.suzanne import suzanne_arrays
from nstr.geometry.winding_torch import TorchMeshSDF

torch.set_num_threads(1)


def _points(v: np.ndarray, n: int = 600) -> np.ndarray:
    rng = np.random.default_rng(0)
    lo, hi = v.min(0) - 0.2, v.max(0) + 0.2
    near = v[rng.integers(0, len(v), n // 2)] + rng.normal(0, 0.02, (n // 2, 3))
    return np.concatenate([rng.uniform(lo, hi, (n - n // 2, 3)), near])


def test_closed_mesh_matches_libigl() -> None:
    mesh = trimesh.creation.torus(0.6, 0.25, major_sections=24, minor_sections=12)
    v, f = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)
    q = _points(v)
    gt = TorchMeshSDF(v, f, pairs_per_tile=2**16)  # small tiles: exercise the tiling
    w_ref = igl.winding_number(v, f, q)
    assert np.abs(gt.winding_number(q).numpy() - w_ref).max() < 1e-4
    s_ref = igl.signed_distance(q, v, f)[0]
    assert np.abs(gt.signed_distance(q).numpy() - s_ref).max() < 1e-5
    assert set(np.round(w_ref).astype(int)) == {0, 1}  # both inside and outside points were tested


def test_open_mesh_winding_number_matches_libigl() -> None:
    v, f = suzanne_arrays()  # Suzanne is open (eye sockets) and self-intersecting: fractional winding numbers
    v, f = np.asarray(v, np.float64), np.asarray(f, np.int64)
    q = _points(v, 400)
    w = TorchMeshSDF(v, f).winding_number(q).numpy()
    assert np.abs(w - igl.winding_number(v, f, q)).max() < 1e-4
    d_ref = np.sqrt(igl.point_mesh_squared_distance(q, v, f)[0])  # igl.signed_distance's magnitude is not
    # the distance on an open mesh (it differs by up to 0.06 here), so the exact point-mesh distance is the reference
    assert np.abs(TorchMeshSDF(v, f).unsigned_distance(q).numpy() - d_ref).max() < 1e-5


def test_sdf_task_samples_from_the_device_ground_truth_match_libigl() -> None:
    """The SDF task's training samples with task.ground_truth=torch (what CUDA gets by default) equal
    the libigl ones: same points (same seed), same truncated signed distances and inside/outside."""
    from nstr.geometry.mesh import Mesh
    from nstr.geometry.normalize import fit_unit_box
    from nstr.geometry.sampling import SamplingSpec, sample_sdf
    from nstr.geometry.winding_torch import DeviceMeshSDF, ground_truth_for

    v, f = suzanne_arrays()
    unit = Mesh(fit_unit_box(np.asarray(v, np.float64), 0.1).to_unit(np.asarray(v, np.float64)), np.asarray(f))
    spec = SamplingSpec(n_samples=3000, seed=3)
    ref_gt = ground_truth_for(unit.vertices, unit.faces, False, "cpu")  # auto on the CPU: libigl
    dev_gt = ground_truth_for(unit.vertices, unit.faces, False, "cpu", engine="torch")
    assert not isinstance(ref_gt, DeviceMeshSDF) and isinstance(dev_gt, DeviceMeshSDF)
    ref, dev = sample_sdf(unit, spec, ref_gt), sample_sdf(unit, spec, dev_gt)
    np.testing.assert_array_equal(ref.points, dev.points)
    off = slice(ref.n_surface, None)
    assert np.abs(ref.sdf[off] - dev.sdf[off]).max() < 1e-5
    assert (np.sign(ref.sdf[off]) == np.sign(dev.sdf[off])).mean() > 0.999  # Suzanne is open: signs by winding
    assert np.abs(ref.sdf[off]).max() > 0.09  # the band (0.1) was reached: far points were tested too
