"""Geometry path without training: loading, validation, ground truth, sampling, marching cubes,
export and metrics, against analytic shapes and real meshes (Suzanne from the real bpy)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from nstr.errors import InputError
from nstr.geometry.export import read_npz, write_mesh
from nstr.geometry.extraction import extract_surface
from nstr.geometry.ground_truth import MeshSDF
from nstr.geometry.mesh import Mesh, load_mesh, mesh_from_arrays
from nstr.geometry.metrics import CONVENTION_POINTS, FSCORE_TAU, METHOD, mesh_metrics
from nstr.geometry.normalize import fit_unit_box
from nstr.geometry.sampling import SamplingSpec, sample_sdf

NSTR = [sys.executable, "-m", "nstr"]


def box_sdf(p: np.ndarray, half: np.ndarray) -> np.ndarray:
    q = np.abs(p) - half
    return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0)


@pytest.fixture(scope="module")
def sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=4, radius=0.5)


@pytest.fixture(scope="module")
def box() -> trimesh.Trimesh:
    return trimesh.creation.box(extents=(1.0, 0.6, 0.8))


@pytest.fixture(scope="module")
def suzanne(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray]:
    from nstr.geometry.suzanne import suzanne_arrays

    return suzanne_arrays(tmp_path_factory.mktemp("cache"))


# --- ground truth ---------------------------------------------------------------------------
@pytest.mark.parametrize("closed", [True, False], ids=["pseudonormal-sign", "winding-sign"])
def test_box_ground_truth_is_exact(box: trimesh.Trimesh, closed: bool) -> None:
    gt = MeshSDF(box.vertices, box.faces, closed=closed)
    rng = np.random.default_rng(0)
    q = np.concatenate([rng.uniform(-1, 1, (4000, 3)),
                        box.sample(4000, seed=1) + rng.normal(0, 0.01, (4000, 3))])
    truth = box_sdf(q, np.array([0.5, 0.3, 0.4]))
    np.testing.assert_allclose(gt.signed_distance(q), truth, atol=1e-9)
    banded = gt.signed_distance(q, band=0.1)
    inside_band = np.abs(truth) < 0.1
    np.testing.assert_allclose(banded[inside_band], truth[inside_band], atol=1e-9)
    np.testing.assert_allclose(banded[~inside_band], 0.1 * np.sign(truth[~inside_band]), atol=1e-9)


def test_sphere_ground_truth_close_to_analytic(sphere: trimesh.Trimesh) -> None:
    gt = MeshSDF(sphere.vertices, sphere.faces, closed=True)
    q = np.random.default_rng(2).uniform(-0.9, 0.9, (20000, 3))
    truth = np.linalg.norm(q, axis=1) - 0.5
    # an icosphere (level 4) lies within ~1.2e-3 of the true sphere
    assert np.abs(gt.signed_distance(q) - truth).max() < 2e-3
    clear = np.abs(truth) > 2e-3  # closer than the faceting, the mesh and the sphere may disagree
    assert np.all(np.sign(gt.signed_distance(q[clear], band=0.05)) == np.sign(truth[clear]))


def test_open_box_sign_from_winding_number(box: trimesh.Trimesh) -> None:
    """A box with its top removed still has an inside: the winding number stays > 1/2 there."""
    top = box.triangles_center[:, 2] > 0.39
    gt = MeshSDF(box.vertices, box.faces[~top], closed=False)
    rng = np.random.default_rng(3)
    q = rng.uniform(-1, 1, (5000, 3))
    q = q[q[:, 2] < 0.2]  # away from the hole
    truth = box_sdf(q, np.array([0.5, 0.3, 0.4]))
    clear = np.abs(truth) > 0.02
    assert np.all(np.sign(gt.signed_distance(q[clear], band=0.1)) == np.sign(truth[clear]))


def test_suzanne_is_open_with_three_parts_and_gets_an_inside(suzanne: tuple[np.ndarray, np.ndarray]) -> None:
    from nstr.geometry.floaters import drop_floaters

    mesh, report = mesh_from_arrays(*suzanne)
    assert report.n_components == 3 and report.open_edges > 0 and not report.watertight
    assert any("not watertight" in w for w in report.warnings)
    # her eyes are 3% of her area each: as the input claims them, a result keeps all three parts (a
    # speck in front of her face does not stay)
    speck = trimesh.creation.icosphere(1, 0.02).apply_translation([0.0, -1.5, 0.0])
    out_v = np.r_[mesh.vertices * 1.001, speck.vertices]
    out_f = np.r_[mesh.faces, np.asarray(speck.faces) + len(mesh.vertices)]
    _, kept, info = drop_floaters(out_v, out_f, reference=(mesh.vertices, mesh.faces))
    assert info["dropped"] == 1 and len(kept) == len(mesh.faces)
    gt = MeshSDF(mesh.vertices, mesh.faces)
    center_of_head = np.array([[0.0, 0.0, 0.0]])
    assert gt.inside(center_of_head)[0] and not gt.inside(np.array([[0.0, 0.0, 3.0]]))[0]


# --- loading and bad input ------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".obj", ".ply", ".stl", ".off", ".glb"])
def test_formats_load_to_the_same_box(box: trimesh.Trimesh, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"box{suffix}"
    box.apply_translation([0, 0, 0]).export(path)
    mesh, report = load_mesh(path)
    np.testing.assert_allclose(np.sort(mesh.vertices.min(0)), np.sort(box.bounds[0]), atol=1e-6)
    assert report.watertight and report.n_faces == 12


def test_scene_with_two_transformed_parts_is_concatenated_in_world_space(tmp_path: Path) -> None:
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.creation.box(extents=(1, 1, 1)), node_name="a",
                       transform=trimesh.transformations.translation_matrix([5, 0, 0]))
    scene.add_geometry(trimesh.creation.icosphere(1, 0.5), node_name="b")
    path = tmp_path / "scene.glb"
    scene.export(path)
    mesh, report = load_mesh(path)
    assert report.n_parts == 2 and report.n_components == 2
    assert mesh.vertices[:, 0].max() == pytest.approx(5.5, abs=1e-5)


BAD_ARRAYS = {
    "empty": (np.zeros((0, 3)), np.zeros((0, 3), int), "empty"),
    "point cloud": (np.random.rand(10, 3), np.zeros((0, 3), int), "point cloud"),
    "nan": (np.array([[0, 0, 0], [1, 0, 0], [0, np.nan, 0], [0, 0, 1.0]]), np.array([[0, 1, 2], [0, 1, 3]]), "NaN"),
    "inf": (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, np.inf]]), np.array([[0, 1, 2], [0, 1, 3]]), "infinite"),
    "index out of range": (np.eye(3), np.array([[0, 1, 7]]), "out of range"),
    "negative index": (np.eye(3), np.array([[0, -1, 2]]), "out of range"),
    "zero area": (np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2.0]]), np.array([[0, 1, 2]]), "zero area"),
    "flat": (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0.0]]), np.array([[0, 1, 2], [1, 3, 2]]), "zero volume"),
    "quads": (np.eye(4)[:, :3], np.array([[0, 1, 2, 3]]), "triangles"),
    # flat in a plane that no axis is normal to: the principal spreads, not the bounding box, tell
    "flat, tilted": (np.array([[0, 0, 0], [1, 0.2, 0.3], [0.1, 1, 0.5], [1.1, 1.2, 0.8]]),
                     np.array([[0, 1, 2], [1, 3, 2]]), "flat in a tilted plane"),
    # the only vertex off the plane belongs to a face without area: no volume either
    "flat, plus a needle": (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 5.0]]),
                            np.array([[0, 1, 2], [1, 3, 2], [0, 0, 4]]), "zero volume"),
    "a coordinate of 1e308": (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1e308]]),
                              np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]]), "beyond +-1e+12"),
}


@pytest.mark.parametrize("name", list(BAD_ARRAYS))
def test_bad_arrays_get_one_line_input_errors(name: str) -> None:
    v, f, words = BAD_ARRAYS[name]
    with pytest.raises(InputError) as err:
        mesh_from_arrays(v, f)
    message = str(err.value)
    assert words in message and "\n" not in message and err.value.fix


def _write_bad(tmp_path: Path) -> dict[str, Path]:
    out = {"missing": tmp_path / "nope.obj"}
    (tmp_path / "garbage.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nthis is not a ply file\n")
    out["unreadable"] = tmp_path / "garbage.ply"
    (tmp_path / "points.ply").write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\n"
                                         "property float y\nproperty float z\nend_header\n0 0 0\n1 0 0\n0 1 0\n")
    out["point cloud"] = tmp_path / "points.ply"
    (tmp_path / "nan.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 nan 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\n")
    out["nan"] = tmp_path / "nan.obj"
    (tmp_path / "range.off").write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 9\n")
    out["index out of range"] = tmp_path / "range.off"
    (tmp_path / "flat.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3\nf 2 4 3\n")
    out["flat"] = tmp_path / "flat.obj"
    (tmp_path / "empty.stl").write_bytes(b"")
    out["empty file"] = tmp_path / "empty.stl"
    (tmp_path / "mesh.xyz").write_text("0 0 0\n")
    out["unsupported"] = tmp_path / "mesh.xyz"
    return out


@pytest.mark.parametrize("chunk", [2, 1 << 16], ids=["2-face chunks", "one chunk"])
def test_faces_without_area_are_dropped_and_a_needle_does_not_make_volume(chunk: int,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """check_mesh_arrays counts only the vertices of faces with an area: a tetrahedron with an extra
    zero-area face passes (and validate_mesh drops that face), and a flat square whose only vertex off
    its plane is in a zero-area face is refused, whichever chunk that face falls in."""
    import nstr.geometry.mesh as mesh_module

    monkeypatch.setattr(mesh_module, "CHECK_CHUNK", chunk)
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.0], [3, 3, 3]])
    tet = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    for faces in (np.vstack([tet, [[4, 4, 0]]]), np.vstack([[[4, 4, 0]], tet])):
        mesh, report = mesh_from_arrays(v, faces)
        assert len(mesh.faces) == 4 and report.degenerate_faces_removed == 1
    square = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 5.0]])
    for faces in ([[0, 1, 2], [1, 3, 2], [1, 2, 3], [0, 0, 4]], [[0, 0, 4], [0, 1, 2], [1, 3, 2]]):
        with pytest.raises(InputError, match="zero volume"):
            mesh_from_arrays(square, np.array(faces))


def test_bad_files_get_one_line_input_errors(tmp_path: Path) -> None:
    for name, path in _write_bad(tmp_path).items():
        with pytest.raises(InputError) as err:
            load_mesh(path)
        assert "\n" not in str(err.value), name


@pytest.mark.slow
def test_bad_files_through_the_cli_exit_nonzero_with_one_line(tmp_path: Path) -> None:
    for name, path in _write_bad(tmp_path).items():
        proc = subprocess.run([*NSTR, "fit", "sdf", str(path), "-o", str(tmp_path / "out.ply"), "--preset", "quick"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0, name
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("nstr: error:"), (name, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert not (tmp_path / "out.ply").exists()


def test_eval_cli_scores_a_mesh_against_itself(sphere: trimesh.Trimesh, tmp_path: Path) -> None:
    a = tmp_path / "a.obj"
    sphere.export(a)
    proc = subprocess.run([*NSTR, "eval", str(a), str(a), "--points", "50000"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    m = json.loads(proc.stdout.strip().splitlines()[-1])
    # exact distances to the same surface: F-score 1, Chamfer 0, IoU 1; a sphere: one piece, genus 0
    assert m["fscore_1pct"] == 1.0 and m["iou"] == 1.0 and m["chamfer_l1"] < 1e-12 and m["method"] == METHOD
    assert (m["components_mesh"], m["genus_mesh"], m["components_reference"], m["genus_reference"]) == (1, 0, 1, 0)


# --- normalisation, sampling, cache ---------------------------------------------------------
def test_unit_box_round_trip_and_fit() -> None:
    v = np.random.default_rng(0).uniform([10, -3, 100], [14, 5, 101], (100, 3))
    t = fit_unit_box(v, padding=0.1)
    u = t.to_unit(v)
    assert np.abs(u).max() == pytest.approx(0.9)
    np.testing.assert_allclose(t.to_input(u), v, atol=1e-9)


@pytest.mark.parametrize("closed", [True, False], ids=["closed", "open-path"])
@pytest.mark.parametrize("inside_out", [False, True], ids=["outward-wound", "inside-out"])
def test_samples_have_outward_normals_two_noise_scales_and_are_cached(sphere: trimesh.Trimesh, tmp_path: Path,
                                                                      closed: bool, inside_out: bool) -> None:
    faces = np.asarray(sphere.faces)[:, ::-1] if inside_out else np.asarray(sphere.faces)
    mesh = Mesh(np.asarray(sphere.vertices), faces)
    spec = SamplingSpec(n_samples=20000, near_scales=(0.005, 0.05))
    s1 = sample_sdf(mesh, spec, MeshSDF(mesh.vertices, mesh.faces, closed=closed), cache_dir=tmp_path)
    assert not s1.from_cache and len(s1.points) == 20000
    surf = s1.points[:s1.n_surface]
    assert np.all(np.einsum("nd,nd->n", surf, s1.normals[:s1.n_surface]) > 0)  # outward on a sphere
    truth = np.linalg.norm(s1.points, axis=1) - 0.5
    near = np.abs(truth) < 0.09
    assert np.abs(s1.sdf[near] - truth[near]).max() < 2e-3
    off = s1.points[s1.n_surface:s1.n_surface + 10000]  # the near samples, both scales
    spread = np.abs(np.linalg.norm(off, axis=1) - 0.5)
    assert np.median(spread[:5000]) < 0.01 < np.median(spread[5000:])
    s2 = sample_sdf(mesh, spec, cache_dir=tmp_path)
    assert s2.from_cache and np.array_equal(s1.sdf, s2.sdf)
    assert len(list((tmp_path / "sdf_samples").glob("*.npz"))) == 1


# --- extraction, export, metrics ------------------------------------------------------------
@pytest.mark.parametrize("mc", ["skimage", "mcubes", "torch", "auto"])
@pytest.mark.parametrize("sparse_from", [10_000, 8], ids=["dense", "coarse-to-fine"])
def test_marching_cubes_recovers_an_off_centre_ellipsoid_facing_out(mc: str, sparse_from: int) -> None:
    c, r = np.array([0.2, -0.1, 0.05]), np.array([0.5, 0.3, 0.4])

    def ellipsoid(p: np.ndarray) -> np.ndarray:
        return ((np.linalg.norm((p - c) / r, axis=1) - 1.0) * r.min()).astype(np.float32)

    res = 64
    ext = extract_surface(ellipsoid, res, mc=mc, sparse_from=sparse_from, block=4)
    assert ext.mc == ("skimage" if mc == "auto" else mc)  # auto: skimage for a field on the CPU
    m = trimesh.Trimesh(ext.vertices, ext.faces, process=False)
    assert m.is_watertight
    assert m.volume == pytest.approx(4 / 3 * np.pi * r.prod(), rel=0.02)  # positive: faces wound outward
    assert np.abs(np.linalg.norm((ext.vertices - c) / r, axis=1) - 1).max() < 0.02
    if sparse_from == 8:
        assert ext.mode == "sparse" and ext.info["active_blocks"] < 0.5 * ext.info["blocks"]


def test_exports_round_trip(sphere: trimesh.Trimesh, tmp_path: Path) -> None:
    from nstr.geometry.export import encode_meta

    v = np.asarray(sphere.vertices, np.float32)
    n = len(v)
    arrays = {"vertices": v, "faces": np.asarray(sphere.faces, np.int32),
              "local_frequency": np.linspace(0, 1, n, dtype=np.float32),
              "bandwidth": np.ones(n, np.float32), "drift": np.zeros((n, 3), np.float32),
              "drift_magnitude": np.zeros(n, np.float32), "transport_residual": np.zeros(n, np.float32),
              "color_local_frequency": np.tile(np.array([[1.0, 0.5, 0.0, 1.0]], np.float32), (n, 1)),
              "color_bandwidth": np.ones((n, 4), np.float32),
              "meta_json": encode_meta({"ranges": {"local_frequency": [0.0, 1.0]}})}
    for suffix in (".ply", ".glb", ".npz"):
        write_mesh(tmp_path / f"out{suffix}", arrays)
    ply = trimesh.load(tmp_path / "out.ply", process=False)
    assert len(ply.vertices) == n and tuple(ply.visual.vertex_colors[0]) == (255, 128, 0, 255)
    # with detail maps, viewers show the detail size, and the maps travel as vertex properties
    detail = {**arrays, "color_detail": np.tile(np.array([[0.0, 0.2, 1.0, 1.0]], np.float32), (n, 1)),
              "detail_wavelength": np.full(n, 0.25, np.float32), "detail_state": np.full(n, 2, np.uint8),
              "detail_direction": np.tile(np.array([[0.0, 1.0, 0.0]], np.float32), (n, 1))}
    write_mesh(tmp_path / "detail.ply", detail)
    write_mesh(tmp_path / "detail.glb", detail)
    raw = trimesh.load(tmp_path / "detail.ply", process=False)
    assert tuple(raw.visual.vertex_colors[0]) == (0, 51, 255, 255)
    columns = raw.metadata["_ply_raw"]["vertex"]["data"]
    assert columns["detail_wavelength"][0] == pytest.approx(0.25) and columns["detail_state"][0] == 2
    assert columns["detail_direction_y"][0] == 1.0
    assert "_DETAIL_WAVELENGTH" in trimesh.load(tmp_path / "detail.glb", force="mesh", process=False).vertex_attributes
    write_mesh(tmp_path / "albedo.ply", detail, primary="color_bandwidth")      # a NeRF's baked albedo, say
    assert tuple(trimesh.load(tmp_path / "albedo.ply", process=False).visual.vertex_colors[0]) == (255, 255, 255, 255)
    assert "property float local_frequency" in (tmp_path / "out.ply").read_bytes()[:2000].decode("ascii", "replace")
    np.testing.assert_allclose(ply.metadata["_ply_raw"]["vertex"]["data"]["local_frequency"], arrays["local_frequency"])
    glb = trimesh.load(tmp_path / "out.glb", force="mesh", process=False)
    assert len(glb.vertices) == n
    assert "_LOCAL_FREQUENCY" in glb.vertex_attributes and "_COLOR_BANDWIDTH" in glb.vertex_attributes
    back, meta = read_npz(tmp_path / "out.npz")
    assert meta["ranges"]["local_frequency"] == [0.0, 1.0] and back["faces"].dtype == np.int32
    with pytest.raises(InputError):
        write_mesh(tmp_path / "out.xyz", arrays)


def test_scores_of_a_shifted_sphere_equal_their_analytic_values() -> None:
    """Known answer: a point of sphere A (radius r) at cos(angle) u to the shift lies |D - r| from sphere
    B (A moved by s), D = sqrt(r^2 + s^2 - 2 r s u), and u is uniform on [-1, 1] for area-uniform points;
    the closest point's normal meets A's at cos = (r - s u) / D. Both directions alike. (A fine sphere:
    its facets' own normal scatter, ~1e-4, stays under the shift's 1.2e-3.)"""
    fine = trimesh.creation.icosphere(subdivisions=5, radius=0.5)
    ref = Mesh(np.asarray(fine.vertices), np.asarray(fine.faces))
    size = float(np.ptp(ref.vertices, axis=0).max())  # the reference's unit box
    s_mm = 0.03
    m = mesh_metrics(Mesh(ref.vertices + [s_mm, 0, 0], ref.faces), ref)
    r, s = 0.5 / size, s_mm / size
    u = (np.arange(200_000) + 0.5) / 200_000 * 2 - 1
    big_d = np.sqrt(r * r + s * s - 2 * r * s * u)
    d = np.abs(big_d - r)
    assert m["method"] == METHOD and m["points"] == CONVENTION_POINTS
    assert m["chamfer_l1"] == pytest.approx(d.mean(), rel=0.01)
    assert m["fscore_1pct"] == pytest.approx((d < FSCORE_TAU).mean(), abs=0.01)  # 1/3
    assert m["normal_consistency"] == pytest.approx(np.abs((r - s * u) / big_d).mean(), abs=3e-4)
    assert m["self_score"]["fscore_1pct"] == 1.0 and m["self_score"]["chamfer_l1"] < 1e-12
    assert m["iou"] < 0.9


def test_a_perfect_cube_scores_exactly_one_at_any_sample_count() -> None:
    """The same unit cube, tessellated two ways. The old nearest-neighbour scores had a floor here
    (F@1% 1 - exp(-n / 6 pi tau^2): 0.93 at 50k points, 0.995 at 100k); exact distances to the other
    mesh's triangles have none, so the count only sets the noise (a 50k / 100k / 1k run reads 1)."""
    box = trimesh.creation.box((1.0, 1.0, 1.0))
    fine = box.subdivide().subdivide()
    a = Mesh(np.asarray(box.vertices), np.asarray(box.faces))
    b = Mesh(np.asarray(fine.vertices), np.asarray(fine.faces))
    for n in (1_000, 50_000, CONVENTION_POINTS):
        m = mesh_metrics(b, a, n_points=n, iou=False)
        assert m["fscore_1pct"] == 1.0 and m["chamfer_l1"] < 1e-12 and m["normal_consistency"] > 1 - 1e-9, (n, m)


@pytest.mark.slow
def test_a_many_hole_mesh_scores_one_against_itself() -> None:
    """The sampling floor hit meshes with a large area most (a 133-hole block read F@1% 0.909 against
    itself); a 15-hole plate, re-tessellated holes and all, reads 1 and 0 by the exact method."""
    from nstr.geometry.plate import holes_plate

    v, f = holes_plate(rows=3, cols=5, thickness=20.0)
    mesh = Mesh(v, f)
    m = mesh_metrics(mesh, mesh, n_points=20_000)
    assert m["fscore_1pct"] == 1.0 and m["chamfer_l1"] < 1e-12 and m["normal_consistency"] > 1 - 1e-9
    assert m["iou"] == 1.0 and m["method"] == METHOD


def _radial_normal_error(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Mean angle (rad) between a sphere mesh's face normals and the true (radial) normals."""
    tri = vertices[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    c = tri.mean(1)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    return float(np.arccos(np.clip((n * c).sum(1), -1, 1)).mean())


def test_taubin_smoothing_restores_a_noisy_spheres_normals_without_shrinking_it(sphere: trimesh.Trimesh) -> None:
    """Known answer: a sphere's normals are radial and its radius is 0.5. Voxel-scale noise (a third of an
    edge) scatters the normals; six Taubin steps bring them back most of the way and keep the radius, where
    the same six steps as plain Laplacian ones (mu = -lam) shrink it."""
    from nstr.geometry.smoothing import taubin_smooth

    v0, f = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    edge = float(np.linalg.norm(v0[f[:, 0]] - v0[f[:, 1]], axis=1).mean())
    noisy = v0 + np.random.default_rng(0).normal(0.0, edge / 3, v0.shape)
    smooth = taubin_smooth(noisy, f, 6)
    laplace = taubin_smooth(noisy, f, 6, mu=-0.5)
    clean, before, after = (_radial_normal_error(x, f) for x in (v0, noisy, smooth))
    assert after < clean + 0.4 * (before - clean), (clean, before, after)
    radius = lambda x: float(np.linalg.norm(x, axis=1).mean())  # noqa: E731
    assert abs(radius(smooth) - radius(noisy)) < 0.002 * 0.5
    assert radius(laplace) < radius(noisy) - 0.004 * 0.5  # what Taubin's inflating step prevents
    assert taubin_smooth(noisy, f, 0) is noisy and smooth is not noisy  # 0 steps: the mesh as extracted


def _diagonal_waves(v: np.ndarray, k: float) -> tuple[float, float]:
    """The heights of the waves along (1, 1) and (1, -1) on the slab's top, least squares."""
    top = (v[:, 2] > 0.05) & (np.maximum(abs(v[:, 0]), abs(v[:, 1])) < 0.25)
    x, y, z = v[top, 0], v[top, 1], v[top, 2]
    design = np.stack([np.ones_like(x), np.cos(k * (x + y)), np.sin(k * (x + y)), np.cos(k * (x - y)),
                       np.sin(k * (x - y))], 1)
    c = np.linalg.lstsq(design, z, rcond=None)[0]
    return float(np.hypot(c[1], c[2])), float(np.hypot(c[3], c[4]))


def test_taubin_smoothing_damps_both_diagonal_waves_of_a_marching_cubes_grid_alike() -> None:
    """The uniform Laplacian's neighbours on marching cubes' grid are the four axis ones and ONE diagonal
    pair, so it damped the wave along that diagonal more: six steps left the egg crate's two waves at 0.59
    and 0.94 of their height (0.00235 and 0.00377 of 0.004), and a quick fit read one direction on it
    (anisotropy 0.54). Over both splits of each square the two waves keep the same height."""
    from nstr.geometry.smoothing import taubin_smooth

    from nstr.validation.detail_cases import marching_cubes_egg_crate

    v, f, k = marching_cubes_egg_crate()
    assert _diagonal_waves(v, k) == pytest.approx((0.004, 0.004), rel=0.02)     # as extracted: 0.0040 both
    along, across = _diagonal_waves(taubin_smooth(v, f, 6), k)
    assert along == pytest.approx(across, rel=0.03)                             # measured 0.00317 both
    assert 0.7 * 0.004 < along < 0.9 * 0.004                                    # still a low-pass at 4 voxels


def test_both_splits_count_each_faces_area_once_and_add_the_other_diagonal() -> None:
    """A grid of squares split along one diagonal: every square gets its other split too, at half weight,
    so the weighted area is the grid's area, and the new edges are the other diagonals."""
    from nstr.geometry.quad_splits import both_splits
    from nstr.geometry.topology import edge_table

    n = 9
    s = np.linspace(0.0, 1.0, n)
    x, y = np.meshgrid(s, s, indexing="ij")
    v = np.stack([x, y, np.zeros_like(x)], -1).reshape(-1, 3)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    f = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    faces, weight = both_splits(v, f)
    assert len(faces) == 2 * len(f) and weight.sum() == len(f)
    area = 0.5 * np.linalg.norm(np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]]), axis=1)
    assert (weight * area).sum() == pytest.approx(1.0)
    normal_z = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])[:, 2]
    assert np.all(np.sign(normal_z) == np.sign(normal_z[0]))                    # the flips keep the winding
    lo, hi = edge_table(faces).endpoints(np.arange(len(edge_table(faces).keys)))
    diagonals = {tuple(sorted(np.round(v[j, :2] - v[i, :2], 6))) for i, j in zip(lo, hi)
                 if abs(v[j, 0] - v[i, 0]) > 0 and abs(v[j, 1] - v[i, 1]) > 0}
    step = round(1.0 / (n - 1), 6)
    assert diagonals == {(step, step), (-step, step)}


# --- feature size, extraction resolution, topology ------------------------------------------------
def _unit_plate(**kw):  # noqa: ANN202
    """A holes plate (mm, off the origin) and its unit-box copy with ground truth."""
    from nstr.geometry.plate import holes_plate

    mesh, report = mesh_from_arrays(*holes_plate(**kw))
    t = fit_unit_box(mesh.vertices, 0.1)
    unit = Mesh(t.to_unit(mesh.vertices), mesh.faces)
    return mesh, report, t, unit, MeshSDF(unit.vertices, unit.faces, closed=True)


def test_plate_generator_is_closed_with_one_genus_per_hole() -> None:
    from nstr.geometry.topology import topology

    mesh, report, *_ = _unit_plate(rows=3, cols=5)
    assert report.watertight and report.winding_consistent and report.n_components == 1 and report.genus == 15
    t = topology(mesh.faces)
    assert (t["watertight"], t["euler"], t["components"], t["genus"], t["boundary_loops"]) == (True, 2 - 2 * 15, 1, 15, 0)
    assert trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).volume > 0  # outward


def test_chosen_resolution_grows_as_the_feature_size_shrinks() -> None:
    from nstr.geometry.feature_size import feature_size
    from nstr.tasks.sdf import SDFOptions, choose_resolution

    opts = SDFOptions(resolution_min=16, resolution_max=2048)
    chosen, widths = [], []
    for d in (6.0, 3.0, 1.5, 0.75):
        _, _, t, unit, gt = _unit_plate(rows=2, cols=6, cell=20.0, d_min=d, d_max=d, thickness=16.0)
        fs = feature_size(unit, gt)
        width = fs.quantile(opts.feature_quantile)
        assert width <= 1.1 * d / t.scale  # never wider than the holes
        if d <= 1.5:  # the holes are then the thinnest feature: their diameter, within 15%
            assert abs(width - d / t.scale) < 0.15 * d / t.scale
        widths.append(width)
        chosen.append(choose_resolution(opts, width)[0])
    print("widths", widths, "resolutions", chosen)
    assert all(a < b for a, b in zip(chosen, chosen[1:]))
    assert choose_resolution(SDFOptions(resolution=200), widths[-1])[0] == 200  # the user's override stays


@pytest.mark.slow
def test_plate_with_holes_smaller_than_the_old_voxel_keeps_its_holes() -> None:
    """Exact plate SDF (slab minus cylinders) at the resolution chosen from the mesh: every hole
    survives (genus = holes by Euler characteristic); at the old fixed 128^3 most are webbed over."""
    from nstr.geometry.feature_size import feature_size
    from nstr.geometry.topology import genus
    from nstr.tasks.sdf import SDFOptions, choose_resolution

    rows, cols, cell, thick, d = 2, 12, 10.0, 4.0, 0.8
    _, _, t, unit, gt = _unit_plate(rows=rows, cols=cols, cell=cell, thickness=thick, d_min=d, d_max=d)
    assert d / t.scale < 2.0 / 127  # narrower than one voxel of the old default grid
    centers = np.array([[(j + 0.5) * cell, (i + 0.5) * cell] for i in range(rows) for j in range(cols)])
    lo = t.to_unit(np.array([[0.0, 0.0, -thick / 2]]) + np.array([40.0, -15.0, 5.0]))[0]
    hi = t.to_unit(np.array([[cols * cell, rows * cell, thick / 2]]) + np.array([40.0, -15.0, 5.0]))[0]
    cu = t.to_unit(np.c_[centers, np.zeros(len(centers))] + np.array([40.0, -15.0, 5.0]))[:, :2]
    r = d / 2 / t.scale

    def plate_sdf(p: np.ndarray) -> np.ndarray:
        slab = box_sdf(p - (lo + hi) / 2, (hi - lo) / 2)
        dist = np.sqrt(((p[:, None, :2] - cu[None]) ** 2).sum(-1)).min(1)
        return np.maximum(slab, r - dist).astype(np.float32)

    res, info = choose_resolution(SDFOptions(), feature_size(unit, gt).quantile(SDFOptions().feature_quantile))
    ext = extract_surface(plate_sdf, res, sparse_from=160, block=4, lipschitz=1.0)
    print("chosen", res, info, "evaluated", ext.evaluated_points, "of", res ** 3)
    assert ext.mode == "sparse" and ext.evaluated_points < 0.2 * res ** 3
    assert genus(ext.faces) == rows * cols
    old = extract_surface(plate_sdf, 128, sparse_from=10_000)
    assert (genus(old.faces) or 0) < rows * cols  # some holes webbed over (16 of 24 kept when written)
