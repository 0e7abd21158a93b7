"""scripts/fit.py in Debian's Blender 3.4 binary, end to end: a real mesh file, a real backend
process, a saved .blend that is reloaded and checked, and rendered pictures."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLENDER = shutil.which("blender")
pytestmark = pytest.mark.skipif(BLENDER is None, reason="Debian's blender is not installed (scripts/setup.sh)")

TINY = ["--preset", "quick", "--steps", "20", "--K", "8", "--resolution", "24", "--device", "cpu", "--size", "160",
        *[a for kv in ("train.batch_size=512", "task.samples=10000", "task.metrics=false", "field.grid_levels=4",
                       "field.grid_table_size=4096") for a in ("--set", kv)]]

CHECK = r'''
import bpy, json, sys
res = [o for o in bpy.data.objects if o.name.endswith("_NSTR")]
out = {"version": bpy.app.version_string, "objects": sorted(o.name for o in bpy.data.objects),
       "collection": [o.name for o in bpy.data.collections["NSTR"].objects] if "NSTR" in bpy.data.collections else []}
if res:
    me = res[0].data
    out["vertices"] = len(me.vertices)
    out["attributes"] = {a.name: a.data_type for a in me.attributes if not a.name.startswith(".")}
    out["meta"] = json.loads(res[0]["nstr_meta"])
    out["material"] = res[0].active_material.node_tree.nodes["NSTR Attribute"].layer_name
src = bpy.data.objects.get(res[0]["nstr_source"]) if res else None
out["source_faces"] = len(src.data.polygons) if src else None
if src is not None:
    out["source_hidden"] = [src.hide_get(), src.hide_render]
    out["same_transform"] = [list(r) for r in src.matrix_world] == [list(r) for r in res[0].matrix_world]
    out["active_color"] = res[0].data.color_attributes.active_color.name
    out["solid"] = sorted({sp.shading.color_type for scr in bpy.data.screens for a in scr.areas
                           for sp in a.spaces if sp.type == "VIEW_3D"} | {bpy.context.scene.display.shading.color_type})
print("CHECK " + json.dumps(out))
'''


def blender(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([BLENDER, "-b", "--factory-startup", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


@pytest.mark.slow
def test_fit_py_fits_a_mesh_file_saves_renders_and_reloads(tmp_path, data_dir):
    out_blend = tmp_path / "rotor_fit.blend"
    proc = blender("-P", "scripts/fit.py", "--", "--input", str(data_dir / "meshes" / "rotor.off"),
                   "--output", str(out_blend), *TINY)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    log = proc.stdout
    assert "fit.py: backend ready" in log and "fit.py: saved" in log
    phases = next(ln for ln in log.splitlines() if "phases (job log)" in ln)   # from the job's log, not a poll
    assert phases.endswith("sampling, fitting, extracting, attributes") or ", fitting, extracting" in phases, phases
    assert out_blend.is_file()
    pictures = sorted(p.name for p in tmp_path.glob("rotor_fit*.png"))
    assert "rotor_fit.png" in pictures and "rotor_fit_drift.png" in pictures and len(pictures) >= 4

    check = tmp_path / "check.py"
    check.write_text(CHECK)
    proc = blender(str(out_blend), "-P", str(check), timeout=120)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("CHECK "))
    info = json.loads(line[len("CHECK "):])
    assert info["version"].startswith("3.4")
    assert info["collection"] == ["rotor_NSTR"]
    assert info["vertices"] > 100 and info["source_faces"] > 1000     # the input mesh is kept, untouched
    assert info["attributes"]["local_frequency"] == "FLOAT"
    assert info["attributes"]["drift"] == "FLOAT_VECTOR"
    assert info["attributes"]["color_local_frequency"] == "BYTE_COLOR"
    assert info["material"] == "color_detail"                      # the detail size is shown first
    assert set(info["meta"]["ranges"]) >= {"local_frequency"}
    # the saved file renders clean: the source is hidden in viewport and render, the transforms equal
    assert info["source_hidden"] == [True, True] and info["same_transform"]
    assert info["active_color"] == "color_detail" and info["solid"] == ["VERTEX"]

    # headless after a fit (the source is hidden now): the README's command on the saved scene fits
    # the hidden source again and replaces its result, in <scene>_nstr.blend next to the scene
    before = out_blend.read_bytes()
    proc = blender(str(out_blend), "-P", "scripts/fit.py", "--", "--objects", "rotor", "--no-render", *TINY)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    refit = tmp_path / "rotor_fit_nstr.blend"
    assert refit.is_file() and out_blend.read_bytes() == before          # the opened scene is not overwritten
    proc = blender(str(refit), "-P", str(check), timeout=120)
    again = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("CHECK "))[len("CHECK "):])
    assert again["collection"] == ["rotor_NSTR"] and not [o for o in again["objects"] if ".0" in o], again["objects"]
    assert again["source_hidden"] == [True, True] and again["same_transform"]


@pytest.mark.slow
def test_fit_py_nerf_task_renders_views_fits_and_bakes_albedo(tmp_path, data_dir):
    out_blend = tmp_path / "suzanne_nerf.blend"
    proc = blender("-P", "scripts/fit.py", "--", "--task", "nerf", "--input", str(data_dir / "meshes" / "rotor.off"),
                   "--nerf-views", "8", "--nerf-size", "32",
                   "--steps", "10", "--resolution", "32", "--device", "cpu", "--size", "96", "--output", str(out_blend),
                   *[a for kv in ("train.batch_size=256", "task.render_steps=32", "task.n_importance=0",
                                  "task.grid_resolution=16", "task.eval_views=1") for a in ("--set", kv)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    views = tmp_path / "suzanne_nerf_views"
    assert len(list((views / "train").glob("*.png"))) == 8 and (views / "transforms_train.json").is_file()
    assert (tmp_path / "suzanne_nerf_albedo.png").is_file()
    check = tmp_path / "check.py"
    check.write_text(CHECK)
    proc = blender(str(out_blend), "-P", str(check), timeout=120)
    info = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("CHECK "))[len("CHECK "):])
    assert info["collection"] == ["rotor_NSTR"] and info["vertices"] > 0      # one <name>_NSTR mesh
    assert info["attributes"]["color_albedo"] == "BYTE_COLOR"
    assert info["source_hidden"] == [True, True]


def test_fit_py_fails_with_one_line_and_a_nonzero_exit(tmp_path):
    proc = blender("-P", "scripts/fit.py", "--", "--input", str(tmp_path / "missing.off"), timeout=120)
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("fit.py: error:")]
    assert errors == [f"fit.py: error: mesh file '{tmp_path / 'missing.off'}' does not exist. "
                      "Check the path given to --input"]
    assert "Traceback" not in proc.stderr


def test_fit_py_refuses_too_few_nerf_views_before_rendering(tmp_path, data_dir):
    """The panel's field clamps to the fewest views a NeRF takes; a script asking for fewer hears it."""
    proc = blender("-P", "scripts/fit.py", "--", "--task", "nerf", "--input", str(data_dir / "meshes" / "rotor.off"),
                   "--nerf-views", "4", "--output", str(tmp_path / "few.blend"), timeout=120)
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("fit.py: error:")]
    assert errors == ["fit.py: error: --nerf-views 4 is below the 8 training views a NeRF needs. "
                      "Pass --nerf-views 8 or more"]
    assert not (tmp_path / "few_views").exists() and not (tmp_path / "few.blend").exists()
