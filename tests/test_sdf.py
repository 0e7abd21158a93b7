"""The SDF task end to end on tiny configs: fit, extraction in the input's frame, attributes,
the job interface the server calls, and the CLI as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from nstr.errors import Cancelled, ConfigError, InputError
from nstr.geometry.export import read_npz
from nstr.geometry.mesh import mesh_from_arrays
from nstr.tasks import JOB_TASKS
from nstr.geometry.metrics import METHOD
from nstr.geometry.topology import topology
from nstr.tasks.sdf import fit_sdf, run_job, sdf_config, validate_job

CENTER, RADIUS = np.array([10.0, -5.0, 3.0]), 2.0
TINY = {"steps": 300, "batch_size": 2048, "task.samples": 20000, "task.resolution": 40, "task.metric_points": 20000,
        "field.n_freqs": 16, "field.grid_levels": 4, "field.grid_table_size": 2**12, "field.width": 32,
        "device": "cpu"}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSTR_CACHE", str(tmp_path_factory.getbasetemp() / "nstr-cache"))


@pytest.fixture(scope="module")
def ball() -> trimesh.Trimesh:
    """A sphere far from the origin and not unit-sized: catches frame and scale mistakes."""
    return trimesh.creation.icosphere(subdivisions=3, radius=RADIUS).apply_translation(CENTER)


@pytest.fixture(scope="module")
def ball_fit(ball: trimesh.Trimesh, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    import torch

    torch.set_num_threads(1)
    mesh, report = mesh_from_arrays(ball.vertices, ball.faces)
    events: list[dict] = []
    result = fit_sdf(mesh, sdf_config("quick", TINY), mesh_report=report, progress=events.append,
                     cache_dir=tmp_path_factory.mktemp("cache"))
    return result, events


@pytest.mark.slow
def test_fitted_sphere_is_in_the_input_frame_and_close_to_analytic(ball_fit) -> None:  # noqa: ANN001
    result, _ = ball_fit
    v, f = result.arrays["vertices"], result.arrays["faces"]
    r = np.linalg.norm(v - CENTER, axis=1)
    err = np.abs(r - RADIUS)
    print("radius error mean %.4f p99 %.4f max %.4f" % (err.mean(), np.percentile(err, 99), err.max()))
    assert err.mean() < 0.02 * RADIUS and np.percentile(err, 99) < 0.06 * RADIUS and err.max() < 0.2 * RADIUS
    out = trimesh.Trimesh(v, f, process=False)
    assert out.volume > 0  # outward faces
    m = result.report["metrics"]
    assert m["iou"] > 0.9 and m["fscore_1pct"] > 0.5 and np.isfinite(m["chamfer_l1"])
    # how it was scored, and the input's and the result's topology, counted by nstr.geometry.topology
    assert m["method"] == METHOD and m["points"] == 20000 and m["self_score"]["fscore_1pct"] == 1.0
    topo = m["topology"]
    assert {k: topo["input"][k] for k in ("components", "genus", "watertight")} == \
        {"components": 1, "genus": 0, "watertight": True}
    keys = ("components", "genus", "watertight", "boundary_loops")
    assert {k: topo["output"][k] for k in keys} == {k: topology(f)[k] for k in keys} == \
        {"components": 1, "genus": 0, "watertight": True, "boundary_loops": 0}
    assert topo["floaters"]["components_before"] == 1 + topo["floaters"]["dropped"]
    assert set(result.report["timings"]) >= {"sample", "fit", "extract", "attributes", "score"}
    from nstr.tasks.skeleton import REPORT_KEYS   # one report builder for every task (issue 30)

    assert set(REPORT_KEYS) <= set(result.report)
    assert result.report["precision"]["autocast"] == "off"  # the CPU never autocasts; the policy is on record
    assert result.report["samples"]["ground_truth"] == "libigl"  # task.ground_truth=auto on the CPU
    assert result.report["extraction"]["mc"] == "skimage"  # task.mc=auto on the CPU, resolved in the report


def test_attributes_have_the_right_shapes_ranges_and_are_finite(ball_fit) -> None:  # noqa: ANN001
    result, _ = ball_fit
    a = result.arrays
    n = len(a["vertices"])
    assert a["vertices"].dtype == np.float32 and a["faces"].dtype == np.int32
    for name in ("local_frequency", "bandwidth", "drift_magnitude", "transport_residual"):
        assert a[name].shape == (n,) and np.isfinite(a[name]).all() and (a[name] >= 0).all(), name
    assert a["drift"].shape == (n, 3) and np.isfinite(a["drift"]).all()
    np.testing.assert_allclose(np.linalg.norm(a["drift"], axis=1), a["drift_magnitude"], rtol=1e-4, atol=1e-8)
    from nstr.geometry.attributes import vertex_normals

    normals = vertex_normals(a["vertices"].astype(np.float64), a["faces"])  # area-weighted
    along_normal = np.abs(np.einsum("nd,nd->n", a["drift"], normals))
    assert (along_normal <= 1e-3 * a["drift_magnitude"] + 1e-9).all()  # drift lies in the tangent plane
    other = trimesh.Trimesh(a["vertices"], a["faces"], process=False).vertex_normals  # trimesh's own weighting
    assert (np.abs(np.einsum("nd,nd->n", a["drift"], other)) <= 0.25 * a["drift_magnitude"] + 1e-9).mean() > 0.95
    for name in ("local_frequency", "bandwidth", "drift", "transport_residual"):
        c = a[f"color_{name}"]
        assert c.shape == (n, 4) and c.dtype == np.float32 and c.min() >= 0 and c.max() <= 1
    meta = json.loads(a["meta_json"].tobytes())
    for name in ("local_frequency", "bandwidth", "drift", "transport_residual"):
        lo, hi = meta["ranges"][name]
        assert np.isfinite(lo) and np.isfinite(hi) and hi > lo
    # a sphere has no detail: most of it reads "no detail" or "coarser than the bands", with no frequency
    # (0, where the old window readout made one up), and the fit lost none of the input's (none to lose)
    states = meta["detail"]["states"]
    plain = np.isin(a["detail_state"], [states["none"], states["coarser"]])
    assert plain.mean() > 0.8 and (a["local_frequency"][plain] == 0).all()
    assert a["detail_lost"].shape == (n,) and np.mean(a["detail_lost"] < meta["detail"]["lost_flag"]) > 0.95


def test_progress_reports_every_phase_in_order(ball_fit) -> None:  # noqa: ANN001
    _, events = ball_fit
    phases = [e["phase"] for e in events]
    order = ["sampling", "fitting", "extracting", "attributes"]
    assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p] == order
    assert all(set(e) == {"phase", "step", "total", "loss", "eta_s", "metrics"} for e in events)


@pytest.mark.slow
def test_job_interface_runs_baseline_and_cancels(ball: trimesh.Trimesh, tmp_path: Path) -> None:
    assert JOB_TASKS["sdf"] == "nstr.tasks.sdf"
    arrays = {"vertices": ball.vertices.astype(np.float32), "faces": ball.faces.astype(np.int32)}
    nstr_keys = ("field.n_freqs", "field.grid_")      # siren reads neither: they would be refused (issue 30)
    config = {"preset": "quick", **{k: v for k, v in TINY.items() if not k.startswith(nstr_keys)}, "model": "siren",
              "field.width": 32}
    validate_job(config, arrays)
    result, report = run_job(config, arrays, workdir=tmp_path, progress=lambda e: None, should_stop=lambda: False)
    assert report["model"] == "siren" and "local_frequency" in result  # baselines: the measured readout ...
    assert "spectral_frequency" not in result and "transport_residual" not in result  # ... and no NSTR internals
    # in the input's frame: inside the sphere's box padded as the unit box is (scale = RADIUS / 0.9)
    assert np.all(np.abs(result["vertices"] - CENTER) <= RADIUS / 0.9 + 1e-4)
    assert np.abs(result["vertices"].mean(0) - CENTER).max() < 0.5 * RADIUS
    with pytest.raises(Cancelled):
        run_job(config, arrays, workdir=tmp_path, progress=lambda e: None, should_stop=lambda: True)


@pytest.mark.parametrize("config, arrays, error", [
    ({"preset": "quick", "task.mc": "vtk"}, None, ConfigError),
    ({"preset": "fast"}, None, ConfigError),
    ({"preset": "quick", "task.bogus": 1}, None, ConfigError),
    ({"preset": "quick", "task.smooth_steps": 3}, None, ConfigError),  # odd: would end on a shrinking step
    ({"preset": "quick", "task.keep_all_components": "maybe"}, None, ConfigError),
    ({"preset": "quick"}, {"vertices": np.zeros((3, 3), np.float32)}, InputError),
    ({"preset": "quick"}, {"vertices": np.zeros((0, 3), np.float32), "faces": np.zeros((0, 3), np.int32)}, InputError),
    ({"preset": "quick"}, {"vertices": np.eye(3, dtype=np.float32), "faces": np.array([[0, 1, 5]], np.int32)},
     InputError),
])
def test_validate_job_rejects_bad_config_and_arrays(ball: trimesh.Trimesh, config: dict, arrays: dict | None,
                                                    error: type) -> None:
    if arrays is None:
        arrays = {"vertices": ball.vertices.astype(np.float32), "faces": ball.faces.astype(np.int32)}
    with pytest.raises(error) as err:
        validate_job(config, arrays)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_cli_fits_a_mesh_file_and_writes_npz_and_report(ball: trimesh.Trimesh, tmp_path: Path) -> None:
    src = tmp_path / "ball.stl"
    ball.export(src)
    out, rep = tmp_path / "out.npz", tmp_path / "report.json"
    args = [sys.executable, "-m", "nstr", "fit", "sdf", str(src), "-o", str(out), "--preset", "quick", "--steps", "150",
            "--resolution", "32", "--mc", "mcubes", "--report", str(rep), "--quiet", "--device", "cpu",
            "--set", "task.samples=20000", "--set", "task.metric_points=10000", "--set", "batch_size=2048", "--set", "K=16",
            "--set", "field.grid_levels=4", "--set", "field.grid_table_size=4096"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NSTR_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(rep.read_text())
    assert set(report["metrics"]) >= {"chamfer_l1", "normal_consistency", "fscore_1pct", "iou"}
    assert set(report["timings"]) >= {"sample", "fit", "extract", "attributes", "score"}
    assert report["extraction"]["mc"] == "mcubes" and report["extraction"]["resolution"] == 32
    arrays, meta = read_npz(out)
    assert arrays["vertices"].shape[1] == 3 and "ranges" in meta and "local_frequency" in arrays
    assert np.abs(np.linalg.norm(arrays["vertices"] - CENTER, axis=1) - RADIUS).mean() < 0.2 * RADIUS
    # user data is never lost: writing over the input is refused before any work starts
    ply = tmp_path / "ball.ply"
    ball.export(ply)
    before = ply.read_bytes()
    for output in (ply, tmp_path / "x.obj"):
        bad = subprocess.run([sys.executable, "-m", "nstr", "fit", "sdf", str(ply), "-o", str(output)],
                             capture_output=True, text=True, timeout=120, env=env)
        assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    assert ply.read_bytes() == before


def test_detail_maps_of_a_smooth_sphere_read_no_detail_and_no_crease(ball_fit) -> None:  # noqa: ANN001
    """Known answer: a sphere has no detail at any band and no crease; the arrays have the contract's shapes."""
    result, _ = ball_fit
    a = result.arrays
    n = len(a["vertices"])
    meta = json.loads(a["meta_json"].tobytes())["detail"]
    bands = len(meta["bands"])
    assert a["detail_bands"].shape == (n, bands) and bands >= 1
    for name in ("detail_amplitude", "detail_anisotropy", "crease_strength"):
        assert a[name].shape == (n,) and np.isfinite(a[name]).all(), name
    assert a["detail_direction"].shape == (n, 3) and a["color_detail"].shape == (n, 4)
    from nstr.spectral.detail import STATES

    state = a["detail_state"]
    print("states", {k: float((state == v).mean()) for k, v in STATES.items()}, "floor", meta["floor"])
    assert (state == STATES["none"]).mean() >= 0.95
    assert (state == STATES["crease"]).mean() <= 0.02   # a tiny 40^3 fit: a few lumpy vertices
    assert np.isnan(a["detail_wavelength"][state != STATES["detail"]]).all()
