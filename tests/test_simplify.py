"""Detail-adaptive simplification (nstr.geometry.simplify) on meshes whose right answer is known: a rippled
patch on a flat slab keeps its vertices where the ripples are, the error bound and the face budget hold, the
attributes transfer from the right dense vertices, a box keeps its corners, bad input gets one line; and
once through the SDF task on a tiny fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from nstr.errors import ConfigError
from nstr.geometry.ground_truth import MeshSDF
from nstr.geometry.mesh import Mesh, mesh_from_arrays
from nstr.geometry.metrics import mesh_metrics
from nstr.geometry.sampling import surface_points
from nstr.geometry.simplify import FACE_BUDGET_MIN, simplify
from nstr.validation.detail_cases import SLAB_TOP, CompositeCase, Patch

# one patch of egg-box bumps (sin x sin y, wavelength 0.1 = 6 grid steps, height 0.01) on a 2 x 2 slab sampled every
# 1/60. Bumps, not a one-direction ripple: a ripple is straight along its crests, and QSlim holds it exactly with
# long triangles along them (measured: 84 of 1225 core vertices kept at 3000 faces, error 1e-4, before the refit), so vertex
# density would not show where the detail is
RIPPLES = Patch("bumps", "egg", (0.45, 0.45), 0.45, wavelength=0.1, amplitude=0.01)
CASE = CompositeCase("simplify", (RIPPLES,), resolution=121)


@pytest.fixture(scope="module")
def slab() -> tuple[np.ndarray, np.ndarray]:
    return CASE.mesh()


def _regions(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices on the ripples' core (0.15..0.75 squared: 0.36 area) and on the flat top far from the patch and
    the rims (-0.85..-0.05 squared: 0.64 area)."""
    top = v[:, 2] > SLAB_TOP - 0.05
    x, y = v[:, 0], v[:, 1]
    ripples = top & (np.abs(x - 0.45) < 0.3) & (np.abs(y - 0.45) < 0.3)
    flat = top & (np.abs(x + 0.45) < 0.4) & (np.abs(y + 0.45) < 0.4)
    return ripples, flat


def test_ripples_keep_their_vertices_and_the_flat_base_loses_them(slab) -> None:  # noqa: ANN001
    v, f = slab
    lod = simplify(v, f, face_budget=3000)
    ripples, flat = _regions(lod.vertices)
    dense_ripples, dense_flat = _regions(v)
    ratio = (ripples.sum() / 0.36) / max(flat.sum() / 0.64, 1.0)
    # measured: 720 of the core's 1225 vertices kept, 1 of the flat square's 2401 (density ratio 1280)
    assert ratio > 200
    assert ripples.sum() > 0.4 * dense_ripples.sum()   # the patch keeps over 40% of its vertices ...
    assert flat.sum() < 0.005 * dense_flat.sum()       # ... the flat base under 0.5%
    assert len(lod.faces) <= 3000


@pytest.mark.slow
def test_the_detail_maps_agree_with_where_the_vertices_went(slab) -> None:  # noqa: ANN001
    """The vertices the readout calls detail survive far more often than those it calls no detail."""
    from nstr.spectral.detail import STATES, detail_arrays

    v, f = slab
    maps, _ = detail_arrays(v, f, voxel=2 / 120)
    lod = simplify(v, f, face_budget=3000)
    kept = np.zeros(len(v), bool)
    kept[lod.source] = True
    state = maps["detail_state"]
    detail, none = kept[state == STATES["detail"]].mean(), kept[state == STATES["none"]].mean()
    # measured: 53% of the detail vertices kept, 0.28% of the no-detail ones (190x)
    assert detail > 50 * none


@pytest.mark.slow
def test_error_target_holds_on_the_surfaces_and_uses_fewer_faces(slab) -> None:  # noqa: ANN001
    v, f = slab
    target = 0.002   # a fifth of the ripples' height
    lod = simplify(v, f, max_error=target)
    assert lod.max_error <= target and len(lod.faces) < len(f) / 5
    # measured independently: random points on each surface against the other, exact distances
    rng = np.random.default_rng(0)
    dense, coarse = Mesh(v, f), Mesh(lod.vertices, lod.faces)
    p_coarse, _ = surface_points(coarse, 20000, rng)
    p_dense, _ = surface_points(dense, 20000, rng)
    d1 = np.abs(MeshSDF(v, f).closest(p_coarse)[0])
    d2 = np.abs(MeshSDF(lod.vertices, lod.faces).closest(p_dense)[0])
    assert max(d1.max(), d2.max()) <= 1.2 * target   # between the probes: within a fifth more
    scores = mesh_metrics(coarse, dense, n_points=20000, iou=False, self_score=False)
    assert scores["chamfer_l1"] < target / 2 / 2.0   # mean distances in the unit box (slab: 2 units wide)
    assert scores["normal_consistency"] > 0.99


def test_budget_is_met_and_attributes_transfer_from_nearby_vertices(slab) -> None:  # noqa: ANN001
    v, f = slab
    lod = simplify(v, f, face_budget=1000)
    assert 900 <= len(lod.faces) <= 1000
    assert lod.source.shape == (len(lod.vertices),) and lod.source.max() < len(v)
    gap = np.linalg.norm(lod.vertices - v[lod.source], axis=1)
    spacing = 2.0 / 120 * math.sqrt(2) / 2    # the farthest a surface point lies from its nearest grid vertex
    assert gap.max() <= lod.max_error + spacing
    # an attribute that is a known function of position (height above the slab top) transfers within that
    height = v[:, 2] - SLAB_TOP
    assert np.abs(height[lod.source] - (lod.vertices[:, 2] - SLAB_TOP)).max() <= lod.max_error + spacing


def test_the_topology_survives_where_the_fast_collapses_break_it() -> None:
    """A gyroid shell in a ball: 4 pieces with tunnels (Euler characteristic -18). The fast first stage
    (fast_simplification) alone, asked for PRESIMPLIFY x a twentieth of its faces, fuses the pieces into one
    (-24): the result must come from QSlim on the dense mesh, which keeps all four and every tunnel."""
    import fast_simplification
    from skimage.measure import marching_cubes

    from nstr.geometry.simplify import FAST_AGGRESSIVENESS, PRESIMPLIFY, _shape

    s = np.linspace(-1.0, 1.0, 64)
    x, y, z = (c * 2.0 * math.pi for c in np.meshgrid(s, s, s, indexing="ij"))
    gyroid = np.sin(x) * np.cos(y) + np.sin(y) * np.cos(z) + np.sin(z) * np.cos(x)
    d = np.maximum(gyroid - 0.3, np.sqrt(sum(c * c for c in np.meshgrid(s, s, s, indexing="ij"))) - 0.9)
    v, f, _, _ = marching_cubes(d, 0.0, spacing=(s[1] - s[0],) * 3)
    v, f = v.astype(np.float64) - 1.0, f.astype(np.int64)
    budget = len(f) // 20
    fast = fast_simplification.simplify(v, f.astype(np.int32), target_count=PRESIMPLIFY * budget,
                                        agg=FAST_AGGRESSIVENESS)[1]
    assert _shape(fast) != _shape(f)                     # the case is what it says
    lod = simplify(v, f, face_budget=budget)
    assert _shape(lod.faces) == _shape(f) == (-18, True, 4, True)
    assert len(lod.faces) <= budget


def test_a_box_keeps_its_corners_and_edges() -> None:
    box = trimesh.creation.box(extents=(2.0, 1.0, 0.5))
    v, f = trimesh.remesh.subdivide_to_size(box.vertices, box.faces, max_edge=0.05)
    v, f = _welded(v, f)
    lod = simplify(v, f, face_budget=FACE_BUDGET_MIN)
    corners = np.array(box.vertices)
    nearest = np.linalg.norm(lod.vertices[None] - corners[:, None], axis=2).min(1)
    assert nearest.max() < 1e-6                        # all 8 corners, exactly
    assert lod.max_error < 1e-6                        # a box is planes: no error at all


def _welded(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mesh = trimesh.Trimesh(v, f, process=True)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


@pytest.mark.parametrize("kwargs, words", [
    ({"face_budget": 50}, "at least 100"),
    ({"face_budget": -1}, "at least 100"),
    ({"face_budget": 10**9}, "above the dense mesh's"),
    ({"max_error": -0.1}, "finite distance >= 0"),
    ({"max_error": float("nan")}, "finite distance >= 0"),
    ({"max_error": float("inf")}, "finite distance >= 0"),
    ({"face_budget": 500, "max_error": 0.01}, "both set"),
    ({}, "neither"),
])
def test_bad_input_gets_one_line_with_the_range(kwargs: dict, words: str) -> None:
    box = trimesh.creation.box()
    v, f = trimesh.remesh.subdivide_to_size(box.vertices, box.faces, max_edge=0.2)
    v, f = _welded(v, f)
    with pytest.raises(ConfigError) as err:
        simplify(v, f, **kwargs)
    message = str(err.value)
    assert words in message and "\n" not in message
    if "face_budget" in kwargs and not kwargs.get("max_error"):
        assert "100" in message and (str(len(f)) in message or "at least" in message)


@pytest.mark.slow
def test_sdf_task_adds_the_simplified_mesh_and_keeps_the_dense_one(tmp_path) -> None:  # noqa: ANN001
    import torch

    from nstr.tasks.sdf import fit_sdf, sdf_config

    torch.set_num_threads(1)
    ball = trimesh.creation.icosphere(subdivisions=3, radius=2.0).apply_translation([10.0, -5.0, 3.0])
    mesh, report = mesh_from_arrays(ball.vertices, ball.faces)
    tiny = {"steps": 150, "batch_size": 2048, "task.samples": 20000, "task.resolution": 40,
            "task.metric_points": 5000, "field.n_freqs": 16, "field.grid_levels": 4, "field.grid_table_size": 2**12,
            "field.width": 32, "device": "cpu", "task.attributes": False}
    with pytest.raises(ConfigError, match="at least 100"):
        sdf_config("quick", {**tiny, "task.simplify_faces": 10})
    with pytest.raises(ConfigError, match="both set"):
        sdf_config("quick", {**tiny, "task.simplify_faces": 500, "task.simplify_error": 0.01})
    res = fit_sdf(mesh, sdf_config("quick", {**tiny, "task.simplify_faces": 400}), mesh_report=report,
                  cache_dir=tmp_path)
    a, s = res.arrays, res.report["simplified"]
    assert a["lod_vertices"].dtype == np.float32 and a["lod_faces"].dtype == np.int32
    assert a["lod_source"].dtype == np.int32 and a["lod_source"].shape == (len(a["lod_vertices"]),)
    assert len(a["lod_faces"]) <= 400 and s["faces"] == len(a["lod_faces"]) and s["vertices"] == len(a["lod_vertices"])
    assert len(a["faces"]) == res.report["extraction"]["faces"] > 5 * 400   # the dense mesh, unchanged
    # the lod lies within its reported error of the dense mesh (measured again here), that error is a small share of
    # the radius (400 faces on a tiny, lumpy fit: measured 0.115), and it is as close to the sphere as the dense
    # mesh plus that error
    lod_v = a["lod_vertices"].astype(np.float64)
    off = np.abs(MeshSDF(a["vertices"].astype(np.float64), a["faces"]).closest(lod_v)[0])
    assert off.max() <= s["max_error"] * 1.001 + 1e-6 and 0 < s["max_error"] < 0.1 * 2.0
    r_dense = np.linalg.norm(a["vertices"] - [10.0, -5.0, 3.0], axis=1)
    r = np.linalg.norm(lod_v - [10.0, -5.0, 3.0], axis=1)
    assert np.abs(r - 2.0).max() <= np.abs(r_dense - 2.0).max() + s["max_error"]
    assert s["metrics"]["chamfer_l1"] < 0.01 and "simplify" in res.report["timings"]
    # a budget above the dense count is refused once it is known, with the count, and the dense result kept
    res = fit_sdf(mesh, sdf_config("quick", {**tiny, "task.simplify_faces": 10**7}), mesh_report=report,
                  cache_dir=tmp_path)
    assert "lod_faces" not in res.arrays and len(res.arrays["faces"]) > 0
    assert str(len(res.arrays["faces"])) in res.report["simplified"]["refused"]
