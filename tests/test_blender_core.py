"""The add-on's bpy-free parts: conversion, settings, job tracking, mesh files, backend errors.

Plain Python (no bpy): these run anywhere in well under a second each, except the
"no torch" launch check, which starts a real Python that has no torch.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nstr_blender.core.background import Background
from nstr_blender.core.errors import AddonError, BackendProblem, ResultError, SelectionError
from nstr_blender.core.jobs import MAX_RESUBMITS, POLL_ACTIVE_S, POLL_QUEUED_S, POLL_RETRY_S, JobTracker
from nstr_blender.core.mesh_files import MeshFileError, read_mesh
from nstr_blender.core.meshdata import (corner_arrays, legend_lines, legend_stops, linear_to_srgb, mesh_arrays,
                                        parse_result, srgb_to_linear)
from nstr_blender.core.session import BackendSession
from nstr_blender.core.settings import BackendSettings, TaskSettings, default_python, parse_overrides

REPO = Path(__file__).resolve().parents[1]


def result_arrays(n: int = 4, with_attributes: bool = True) -> dict[str, np.ndarray]:
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)[:n]
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], dtype=np.int32)
    out = {"vertices": verts, "faces": faces}
    if with_attributes:
        out["local_frequency"] = np.linspace(1, 4, n).astype(np.float32)
        out["drift"] = np.ones((n, 3), np.float32)
        out["color_local_frequency"] = np.tile(np.array([0.5, 0.0, 1.0, 1.0], np.float32), (n, 1))
        meta = {"ranges": {"local_frequency": [1.0, 4.0]}, "colormaps": {"local_frequency": "viridis"},
                "units": {"local_frequency": "cycles/unit"}}
        out["meta_json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return out


# ---------------------------------------------------------------- colours and results
def test_srgb_to_linear_matches_the_standard_curve_and_keeps_alpha():
    rgba = np.array([[0.0, 0.5, 1.0, 0.25], [0.04, 0.2, 0.8, 1.0]], np.float32)
    lin = srgb_to_linear(rgba)
    assert lin[0, 1] == pytest.approx(0.21404, abs=1e-4)      # sRGB 0.5 -> 0.214 linear
    assert lin[0, 2] == pytest.approx(1.0) and lin[0, 0] == 0.0
    assert lin[1, 0] == pytest.approx(0.04 / 12.92)            # the linear toe
    assert lin[0, 3] == 0.25 and lin[1, 3] == 1.0              # alpha untouched
    np.testing.assert_allclose(linear_to_srgb(lin), rgba, atol=1e-5)


def test_parse_result_converts_colours_and_keeps_raw_attributes():
    res = parse_result(result_arrays())
    assert res.vertices.shape == (4, 3) and res.faces.dtype == np.int32
    assert set(res.raw) == {"local_frequency", "drift"}
    assert res.colors["color_local_frequency"][0, 0] == pytest.approx(0.21404, abs=1e-4)
    assert res.available == ["local_frequency"]
    assert res.value_range("local_frequency") == (1.0, 4.0)
    assert legend_lines(res.meta, "local_frequency") == ["1 to 4", "cycles/unit", "colour map: viridis"]


def test_a_simplified_mesh_takes_each_value_of_its_source_vertex():
    arrays = result_arrays()
    arrays.update(lod_vertices=arrays["vertices"][[3, 1, 0]] + 0.01, lod_faces=np.array([[0, 1, 2]], np.int32),
                  lod_source=np.array([3, 1, 0], np.int32))
    res = parse_result(arrays)
    assert res.lod is not None and res.lod.faces.tolist() == [[0, 1, 2]]
    np.testing.assert_array_equal(res.lod.raw["local_frequency"], res.raw["local_frequency"][[3, 1, 0]])
    np.testing.assert_array_equal(res.lod.colors["color_local_frequency"], res.colors["color_local_frequency"][[3, 1, 0]])
    assert res.lod.available == res.available and parse_result(result_arrays()).lod is None
    arrays["lod_source"] = np.array([3, 1, 9], np.int32)        # a source vertex that does not exist
    with pytest.raises(ResultError, match="simplified mesh"):
        parse_result(arrays)


def test_a_refused_simplification_is_said_in_one_line():
    from nstr_blender.core.meshdata import simplification_note

    refused = "task.simplify_faces 900000 is above the dense mesh's 263822 faces. Use a budget between 100 and 263822"
    assert simplification_note({"report": {"simplified": {"refused": refused}}}) == f"simplification: {refused}"
    assert simplification_note({"report": {"simplified": {"faces": 1000}}}) == ""
    assert simplification_note({}) == "" and simplification_note({"report": None}) == ""


def test_baseline_results_without_attributes_are_fine():
    res = parse_result(result_arrays(with_attributes=False))
    assert res.raw == {} and res.colors == {} and res.available == [] and res.meta == {}


@pytest.mark.parametrize("broken, words", [
    (lambda a: a.pop("faces"), "no faces"),
    (lambda a: a.update(vertices=np.zeros((4, 2), np.float32)), "shape"),
    (lambda a: a.update(faces=np.array([[0, 1, 9]], np.int32)), "do not exist"),
    (lambda a: a.update(local_frequency=np.zeros(3, np.float32)), "'local_frequency'"),
    (lambda a: a.update(color_local_frequency=np.zeros((4, 3), np.float32)), "'color_local_frequency'"),
    (lambda a: a.update(faces=np.zeros((0, 3), np.int32)), "empty surface"),
])
def test_broken_results_get_one_line_messages(broken, words):
    arrays = result_arrays()
    broken(arrays)
    with pytest.raises(ResultError) as err:
        parse_result(arrays)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_mesh_arrays_applies_the_world_matrix():
    co = np.array([0, 0, 0, 1, 0, 0, 0, 1, 0], np.float32)
    matrix = np.array([[2, 0, 0, 5], [0, 2, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1]], float)
    out = mesh_arrays(co, np.array([0, 1, 2]), matrix, "Tri")
    np.testing.assert_allclose(out["vertices"], [[5, 0, 0], [7, 0, 0], [5, 2, 0]])
    assert out["faces"].dtype == np.int32 and out["vertices"].dtype == np.float64
    with pytest.raises(SelectionError, match="'Dots' has no faces"):
        mesh_arrays(co, np.array([], int), matrix, "Dots")


def test_a_mesh_far_from_the_origin_keeps_its_coordinates_both_ways():
    """A unit triangle at x = 1e7 (an object placed far out in a large scene): float32 world
    coordinates would keep about 3 distinct x values there; the arrays and the parsed result keep them all."""
    co = np.array([0, 0, 0, 0.001, 0, 0, 0, 0.001, 0], np.float32)
    matrix = np.array([[1, 0, 0, 1e7], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    out = mesh_arrays(co, np.array([0, 1, 2]), matrix, "Far")
    np.testing.assert_allclose(out["vertices"][:, 0] - 1e7, [0, 0.001, 0], atol=1e-9)
    back = parse_result({"vertices": out["vertices"], "faces": out["faces"]})
    np.testing.assert_allclose(back.vertices[:, 0] - 1e7, [0, 0.001, 0], atol=1e-9)
    assert np.float32(1e7) + np.float32(0.001) == np.float32(1e7)  # what float32 would have done


def test_corner_arrays_lay_out_triangles_for_blender():
    corners, starts = corner_arrays(np.array([[0, 1, 2], [2, 1, 3]]))
    assert corners.tolist() == [0, 1, 2, 2, 1, 3] and starts.tolist() == [0, 3]


# ---------------------------------------------------------------- settings
def test_task_settings_send_only_what_the_user_changed():
    assert TaskSettings(preset="default").job_config() == {"preset": "default"}
    # K=32 is the quick preset's own value: not sent
    cfg = TaskSettings(preset="quick", n_freqs=32, steps=100, resolution=64, mc_backend="mcubes").job_config()
    assert cfg == {"preset": "quick", "train.steps": 100, "task.resolution": 64, "task.mc": "mcubes"}
    nerf = TaskSettings(task="nerf", resolution=96, extra={"train.batch_size": 256}).job_config()
    assert nerf == {"preset": "quick", "task.mesh_resolution": 96, "train.batch_size": 256}
    with pytest.raises(AddonError, match="the nerf task has no 'mc_backend' setting"):
        TaskSettings(task="nerf", mc_backend="mcubes").job_config()
    with pytest.raises(AddonError, match="unknown preset 'fast'. Choose one of: quick, default, high"):
        TaskSettings(preset="fast").job_config()


def test_overrides_text_becomes_typed_values():
    assert parse_overrides("train.batch_size=4096, field.width=32 task.mc=mcubes task.metrics=false") == {
        "train.batch_size": 4096, "field.width": 32, "task.mc": "mcubes", "task.metrics": False}
    with pytest.raises(AddonError, match="override 'steps' is not KEY=VALUE"):
        parse_overrides("steps")


def test_backend_settings_explain_what_to_fix():
    with pytest.raises(AddonError, match="does not exist. Set 'Backend Python'"):
        BackendSettings(python="/nowhere/python").check()
    with pytest.raises(AddonError, match="not an http"):
        BackendSettings(mode="url", url="127.0.0.1:8765").check()
    BackendSettings(mode="url", url="http://127.0.0.1:8765").check()


def test_default_python_is_the_projects_venv(monkeypatch):
    monkeypatch.delenv("NSTR_PYTHON", raising=False)
    assert default_python() == str(REPO / ".venv" / "bin" / "python")
    monkeypatch.setenv("NSTR_PYTHON", "/opt/py/bin/python")
    assert default_python() == "/opt/py/bin/python"


# ---------------------------------------------------------------- job tracking
def test_the_main_thread_is_told_quiet_only_once_every_worker_thread_has_ended():
    """bpy.ops (an undo step) waits for quiet(): a call still running, or finished but not taken,
    or taken while its thread still ends, keeps it False (Blender 3.4 crashed otherwise)."""
    import threading

    bg = Background()
    assert bg.quiet()
    release = threading.Event()
    bg.start("slow", lambda: release.wait(30) and 7)
    bg.start("fast", lambda: 1)
    assert not bg.quiet()                                  # "slow" runs
    bg._calls["fast"].thread.join(30)
    assert bg.take("fast").value == 1 and not bg.quiet()   # taken; "slow" still runs
    release.set()
    thread = bg._calls["slow"].thread
    thread.join(30)
    assert bg.quiet()                                      # ended, even though not taken yet
    assert bg.take("slow").value == 7 and bg.quiet()


def test_tracker_follows_a_job_and_picks_poll_intervals():
    tracker = JobTracker()
    assert tracker.next_interval() is None                       # nothing to do: the timer stops
    rec = tracker.add("Suzanne", "sdf", {"preset": "quick"}, {"vertices": 1})
    assert rec.progress_text() == "sending" and tracker.next_interval() == POLL_ACTIVE_S
    rec.job_id, rec.state = "j1", "queued"
    rec.apply_status({"state": "queued", "queue_position": 1})
    assert rec.progress_text() == "queued (#1)" and tracker.next_interval() == POLL_QUEUED_S
    rec.apply_status({"state": "running", "phase": "fitting", "step": 45, "total": 100, "eta_s": 75.0})
    assert rec.progress_text() == "fitting 45%  ETA 1 min 15 s"
    assert tracker.next_interval(backend_answered=False) == POLL_RETRY_S
    rec.apply_status({"state": "done", "phase": "attributes", "progress": 1.0})
    assert tracker.to_collect() == [rec] and tracker.needs_polling()
    rec.mark_collected("Suzanne_NSTR")
    assert rec.arrays is None and not tracker.needs_polling() and rec.progress_text() == "done -> Suzanne_NSTR"
    assert tracker.clear_finished() == 1 and len(tracker) == 0


def test_failed_jobs_keep_the_backends_message():
    tracker = JobTracker()
    rec = tracker.add("Cube", "sdf", {}, {})
    rec.apply_status({"state": "failed", "error": "mesh has no volume", "fix": "Close the holes"})
    assert rec.progress_text() == "failed: mesh has no volume. Close the holes" and not rec.active


def test_jobs_lost_with_a_dead_backend_are_sent_again_then_given_up():
    tracker = JobTracker()
    rec = tracker.add("Suzanne", "sdf", {}, {"vertices": 1})
    for attempt in range(MAX_RESUBMITS):
        rec.job_id, rec.state = f"j{attempt}", "running"
        assert tracker.lost_with_backend() == [rec]
        assert rec.state == "pending" and rec.job_id is None
    rec.job_id, rec.state = "jlast", "running"
    assert tracker.lost_with_backend() == [] and rec.state == "error" and "backend stopped" in rec.message


# ---------------------------------------------------------------- mesh files
def test_read_mesh_reads_the_shared_bunny(data_dir):
    verts, faces = read_mesh(data_dir / "meshes" / "bunny00.off")
    assert verts.shape == (37706, 3) and faces.shape == (75408, 3)


@pytest.mark.parametrize("ext", ["obj", "stl", "ply"])
def test_read_mesh_round_trips_other_formats(tmp_path, data_dir, ext):
    trimesh = pytest.importorskip("trimesh")
    verts, faces = read_mesh(data_dir / "meshes" / "rotor.off")
    path = tmp_path / f"rotor.{ext}"
    trimesh.Trimesh(verts, faces, process=False).export(path)
    v2, f2 = read_mesh(path)
    assert len(f2) == len(faces)
    np.testing.assert_allclose(v2.min(axis=0), verts.min(axis=0), atol=1e-5)
    np.testing.assert_allclose(v2.max(axis=0), verts.max(axis=0), atol=1e-5)
    # the same triangles: corner positions match as sets
    np.testing.assert_allclose(np.sort(v2[f2].reshape(-1, 9), axis=0), np.sort(verts[faces].reshape(-1, 9), axis=0),
                               atol=1e-5)


def test_read_mesh_errors_name_the_file_and_the_fix(tmp_path):
    bad = tmp_path / "broken.off"
    bad.write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n")
    with pytest.raises(MeshFileError, match="'broken.off' is not a valid OFF file"):
        read_mesh(bad)
    with pytest.raises(MeshFileError, match="not a supported mesh format. Use one of"):
        read_mesh(tmp_path.joinpath("x.fbx").write_text("") or tmp_path / "x.fbx")
    with pytest.raises(MeshFileError, match="does not exist"):
        read_mesh(tmp_path / "missing.obj")


# ---------------------------------------------------------------- imports and backend errors
def test_the_package_imports_without_bpy():
    code = ("import sys; sys.modules['bpy'] = None\n"
            "import nstr_blender, nstr_blender.core.session, nstr_blender.core.meshdata, nstr_blender.remote\n"
            "print(nstr_blender.bl_info['blender'], nstr_blender.remote.SOURCE)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(3,", "4,", "0)", "repository"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_says_so_with_the_fix():
    session = BackendSession(BackendSettings(mode="url", url=f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(BackendProblem) as err:
        session.start()
    assert str(err.value).startswith("Backend not reachable at http://127.0.0.1:")
    assert "Press Start in the NSTR panel" in str(err.value) and not session.connected


def test_a_python_without_torch_is_named(tmp_path):
    python = "/usr/bin/python3"
    if subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0:
        pytest.skip("the system Python has torch")
    session = BackendSession(BackendSettings(mode="local", python=python, log_dir=str(tmp_path)))
    with pytest.raises(BackendProblem, match=r"'/usr/bin/python3' has no torch .*Install it"):
        session.start(timeout=30)


def test_legend_stops_read_the_colour_bar_off_the_result():
    values = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    colors = np.stack([values / 4, np.zeros(5), 1 - values / 4, np.ones(5)], axis=1)
    stops = legend_stops(values, colors, 0.0, 4.0, n=5)
    assert [p for p, _ in stops] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [round(c[0], 3) for _, c in stops] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert legend_stops(values, colors, 1.0, 1.0) == []          # no range, no bar
