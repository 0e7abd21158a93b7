"""The add-on in Blender 5.0 (the bpy 5.0.1 module), installed from its extension zip, against
a real backend process over a real socket.

Each scenario runs in its own Python process (bpy state leaks between scenarios):
the script builds and installs the zip with ``extensions.package_install_files``
(BLENDER_USER_RESOURCES in a temp folder), enables it and drives the operators.
Timers do not fire on their own in module mode, so the scripts call the function
the timer calls (``poll_timer``) from their own loop.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV_PY = REPO / ".venv" / "bin" / "python"

pytest.importorskip("bpy")

# A fit that takes seconds on this 2-core CPU (quality is not the point here).
TINY = {"preset": "quick", "steps": 20, "n_freqs": 8, "resolution": 24,
        "overrides": "train.batch_size=512 task.samples=10000 task.metrics=false field.grid_levels=4 "
                     "field.grid_table_size=4096"}

PRELUDE = r'''
import json, os, sys, time
sys.path.insert(0, os.environ["NSTR_REPO"] + "/scripts")
import bpy, numpy as np
import build_extension
zip_path = build_extension.build(__import__("pathlib").Path(os.environ["NSTR_TMP"]) / "dist")
bpy.ops.wm.read_factory_settings(use_empty=True)
assert bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                                enable_on_install=True) == {"FINISHED"}
ADDON = "bl_ext.user_default.nstr_blender"
from importlib import import_module
runtime = import_module(ADDON + ".blender.runtime")
RUNTIME, poll = runtime.RUNTIME, runtime.poll_timer
prefs = bpy.context.preferences.addons[ADDON].preferences
prefs.device = "cpu"
OUT = {"remote_source": import_module(ADDON + ".remote").SOURCE}

def suzanne(name="Suzanne", location=(1.0, 2.0, 0.5), scale=0.5, subsurf=True):
    bpy.ops.mesh.primitive_monkey_add(size=2.0, location=location)
    obj = bpy.context.active_object
    obj.name = name
    obj.scale = (scale, scale, scale)
    if subsurf:
        obj.modifiers.new("Subdivision", "SUBSURF").levels = 1
    return obj

def configure(props, tiny):
    for key, value in tiny.items():
        setattr(props, key, value)

def drive(until, timeout=240.0):
    """Call the timer's function like Blender would, until until() or timeout."""
    t0 = time.monotonic()
    while not until():
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"timeout; message={RUNTIME.message!r} jobs={[r.progress_text() for r in RUNTIME.tracker]}")
        poll()
        time.sleep(0.2)
    return time.monotonic() - t0

def finish():
    RUNTIME.stop_backend()
    print("RESULT " + json.dumps(OUT, default=str))
'''


def run_scenario(body: str, tmp_path: Path, timeout: float = 420.0, env_extra: dict | None = None) -> dict:
    script = tmp_path / "scenario.py"
    script.write_text(PRELUDE + f"\nTINY = {TINY!r}\n" + textwrap.dedent(body) + "\nfinish()\n")
    env = dict(os.environ, NSTR_REPO=str(REPO), NSTR_TMP=str(tmp_path),
               BLENDER_USER_RESOURCES=str(tmp_path / "blender"), XDG_DATA_HOME=str(tmp_path / "data"),
               NSTR_LOG_DIR=str(tmp_path / "logs"), OMP_NUM_THREADS="2")
    env["NSTR_PYTHON"] = str(VENV_PY)         # an installed zip knows no checkout: the backend Python is named
    env.update(env_extra or {})
    proc = subprocess.run([str(VENV_PY), str(script)], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=tmp_path)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"scenario failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def test_extension_zip_installs_enables_and_says_not_set_up(tmp_path):
    out = run_scenario('''
        OUT["operators"] = [hasattr(bpy.ops.nstr, n) for n in ("fit", "cancel", "release_gpu", "backend_start")]
        OUT["panel"] = hasattr(bpy.types, "NSTR_PT_fit")
        settings = import_module(ADDON + ".blender.preferences").backend_settings(bpy.context)
        OUT["python"] = settings.resolved_python()
        status = import_module(ADDON + ".core.backend_status")
        choice = import_module(ADDON + ".core.settings").backend_choice(prefs.python)
        OUT["using"] = status.using_lines(choice, prefs.device, [])
        OUT["validator"] = build_extension.validate(zip_path)
    ''', tmp_path, env_extra={"NSTR_PYTHON": ""})
    assert out["operators"] == [True] * 4 and out["panel"]
    assert out["remote_source"] == "vendored"          # the installed add-on uses its own copy of the client
    assert out["python"] == ""                         # not the build checkout's .venv: nothing is set up
    assert out["using"] == ["Backend: not set up. Press 'Set up backend', or set 'Backend Python'"]
    assert "Success" in out["validator"]


@pytest.mark.slow
def test_fit_on_suzanne_makes_a_coloured_result_and_leaves_the_original_alone(tmp_path):
    out = run_scenario('''
        src = suzanne()
        cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
        bpy.context.scene.collection.objects.link(cam)
        for o in bpy.context.view_layer.objects:
            o.select_set(True)                               # a non-mesh in the selection is skipped
        bpy.context.view_layer.objects.active = src
        before = np.empty(len(src.data.vertices) * 3, np.float32)
        src.data.vertices.foreach_get("co", before)
        deps = bpy.context.evaluated_depsgraph_get()
        ev = src.evaluated_get(deps)
        world = np.array([ev.matrix_world @ v.co for v in ev.data.vertices])
        OUT["eval_bbox"] = [world.min(0).tolist(), world.max(0).tolist()]
        configure(bpy.context.scene.nstr, TINY)
        OUT["fit_op"] = list(bpy.ops.nstr.fit())
        rec = RUNTIME.tracker.records[0]
        OUT["sent_faces"] = int(len(rec.arrays["faces"]))
        OUT["eval_tris"] = sum(len(p.vertices) - 2 for p in ev.data.polygons)
        OUT["jobs"] = len(RUNTIME.tracker.records)
        drive(lambda: rec.state in ("collected", "failed", "error", "cancelled"))
        OUT["downloads_after_collect"] = RUNTIME.session.bg.any_busy("result:")   # the result came once
        OUT["job_log"] = RUNTIME.session.client.log(rec.job_id)
        OUT["state"], OUT["message"] = rec.state, rec.message
        res = bpy.data.objects.get("Suzanne_NSTR")
        OUT["result"] = res is not None
        if res is not None:
            me = res.data
            OUT["collection"] = [c.name for c in res.users_collection]
            OUT["attributes"] = {a.name: [a.data_type, a.domain] for a in me.attributes if not a.name.startswith(".")}
            v = np.empty(len(me.vertices) * 3, np.float32)
            me.vertices.foreach_get("co", v)
            m = np.array([list(r) for r in res.matrix_world])
            w = v.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]
            OUT["result_bbox"] = [w.min(0).tolist(), w.max(0).tolist()]
            OUT["same_transform"] = bool(np.allclose(m, np.array([list(r) for r in src.matrix_world])))
            OUT["source_hidden"] = [src.hide_get(), src.hide_render]
            OUT["offered"] = [i[0] for i in import_module(ADDON + ".blender.properties")._display_items(res, None)]
            OUT["solid_vertex"] = sorted({sp.shading.color_type for scr in bpy.data.screens for a in scr.areas
                                          for sp in a.spaces if sp.type == "VIEW_3D"})
            mat = res.active_material
            OUT["material_node"] = mat.node_tree.nodes["NSTR Attribute"].layer_name if mat else None
            OUT["active_color"] = me.color_attributes.active_color.name if me.color_attributes.active_color else None
            OUT["meta_ranges"] = json.loads(res["nstr_meta"]).get("ranges", {})
            cols = me.color_attributes.get("color_local_frequency")
            if cols is not None:
                c = np.empty(len(me.vertices) * 4, np.float32)
                cols.data.foreach_get("color", c)
                OUT["color_range"] = [float(c.min()), float(c.max())]
            OUT["groups"] = sorted(g.name for g in res.vertex_groups)
            OUT["light"] = sorted({sp.shading.light for scr in bpy.data.screens for a in scr.areas
                                   for sp in a.spaces if sp.type == "VIEW_3D"})
            overlay = import_module(ADDON + ".blender.legend_overlay")
            leg = overlay.legend_for(res, bpy.context.scene)
            OUT["detail_legend"] = {"title": leg.title, "swatches": [s[0] for s in leg.swatches], "unit": leg.unit}
            bpy.context.scene.nstr.show_research = True        # research readouts listed only on request
            OUT["offered_research"] = [i[0] for i in import_module(ADDON + ".blender.properties")._display_items(
                res, bpy.context)]
            res.nstr_display = "transport_residual"
            OUT["switched_node"] = mat.node_tree.nodes["NSTR Attribute"].layer_name if mat else None
            bpy.context.scene.nstr.show_research = False        # hidden again: the result leaves the research readout
            OUT["after_research_off"] = res.nstr_display
            bpy.context.scene.nstr.show_research = True
            res.nstr_display = "local_frequency"
            leg = overlay.legend_for(res, bpy.context.scene)
            OUT["legend"] = {"ticks": leg.ticks, "unit": leg.unit, "words": leg.words, "stops": len(leg.stops)}
            bpy.context.scene.unit_settings.scale_length = 0.01            # 1 unit = 1 cm
            leg_cm = overlay.legend_for(res, bpy.context.scene)
            OUT["legend_cm_last_tick"] = leg_cm.ticks[-1][1] if leg_cm.ticks else None
            bpy.context.scene.unit_settings.scale_length = 1.0
            saved = os.path.join(os.environ["NSTR_TMP"], "saved.blend")
            src_matrix = [list(r) for r in src.matrix_world]
            bpy.ops.wm.save_as_mainfile(filepath=saved)
            bpy.ops.wm.open_mainfile(filepath=saved)
            r2, s2 = bpy.data.objects["Suzanne_NSTR"], bpy.data.objects["Suzanne"]
            OUT["reloaded"] = {"source_hidden": [s2.hide_get(), s2.hide_render],
                               "same_transform": bool(np.allclose([list(r) for r in r2.matrix_world], src_matrix)),
                               "active_color": r2.data.color_attributes.active_color.name,
                               "solid": sorted({sp.shading.color_type for scr in bpy.data.screens for a in scr.areas
                                                for sp in a.spaces if sp.type == "VIEW_3D"})}
            src = s2
        after = np.empty(len(src.data.vertices) * 3, np.float32)
        src.data.vertices.foreach_get("co", after)
        OUT["original_same"] = bool(np.array_equal(before, after)) and len(src.modifiers) == 1 \
            and tuple(src.location) == (1.0, 2.0, 0.5) and src.name == "Suzanne"
        OUT["original_collections"] = [c.name for c in src.users_collection]
    ''', tmp_path)
    assert out["fit_op"] == ["FINISHED"] and out["jobs"] == 1       # the camera was skipped
    assert out["sent_faces"] == out["eval_tris"] > 968              # modifiers applied (Suzanne has 968 tris)
    assert out["state"] == "collected", out["message"]
    assert out["downloads_after_collect"] is False     # the tick that built the result started no second download
    assert out["result"] and out["collection"] == ["NSTR"]
    attrs = out["attributes"]
    assert attrs["local_frequency"] == ["FLOAT", "POINT"]
    assert attrs["drift"] == ["FLOAT_VECTOR", "POINT"]
    for key in ("color_local_frequency", "color_bandwidth", "color_drift", "color_transport_residual"):
        assert attrs[key] == ["BYTE_COLOR", "POINT"]             # what the viewport shows, 4 bytes a vertex
    for key in ("detail_wavelength", "detail_amplitude", "detail_state", "crease_strength", "detail_lost"):
        assert attrs[key] == ["FLOAT", "POINT"], key
    assert attrs["detail_direction"] == ["FLOAT_VECTOR", "POINT"] and attrs["color_detail"] == ["BYTE_COLOR", "POINT"]
    # the light file: no per-band layers (no view reads them; the backend's result keeps them), no |drift| copy
    assert not [k for k in attrs if k.startswith("detail_band")] and "drift_magnitude" not in attrs
    # the detail size is what a result shows first, unlit, with its legend and vertex groups to drive modifiers
    assert out["material_node"] == out["active_color"] == "color_detail"
    assert out["light"] == ["FLAT"]
    assert out["groups"] == ["NSTR crease", "NSTR detail height", "NSTR detail lost", "NSTR fine detail"]
    assert out["detail_legend"]["title"] == "Detail size" and out["detail_legend"]["swatches"] == [
        "no detail", "coarser", "crease"] and out["detail_legend"]["unit"].startswith("wavelength ")
    assert "transport_residual" not in out["offered"] and "transport_residual" in out["offered_research"]
    assert out["switched_node"] == "color_transport_residual"
    assert out["after_research_off"] == "detail"
    assert 0.0 <= out["color_range"][0] < out["color_range"][1] <= 1.0
    assert "local_frequency" in out["meta_ranges"]
    # the result is where the evaluated original is in world space (not in normalised coordinates)
    (elo, ehi), (rlo, rhi) = out["eval_bbox"], out["result_bbox"]
    size = max(h - lo for h, lo in zip(ehi, elo))      # ~1.4 here; the backend's unit box would be 2
    for i in range(3):
        centre = (elo[i] + ehi[i]) / 2
        assert abs((rlo[i] + rhi[i]) / 2 - centre) < 0.25 * size
        # inside the backend's padded fitting box around the object (a 20-step fit is blobby)
        assert centre - 0.6 * size <= rlo[i] < rhi[i] <= centre + 0.6 * size
        assert rhi[i] - rlo[i] > 0.4 * (ehi[i] - elo[i])
    assert out["original_same"] and "NSTR" not in out["original_collections"]
    # the phases, from the job's own log (not from what a poll happened to see)
    assert "started" in out["job_log"] and "fitting step" in out["job_log"] and "done" in out["job_log"]
    # the result takes the source's transform; the source is hidden in viewport and render
    assert out["same_transform"] and out["source_hidden"] == [True, True]
    assert "albedo" not in out["offered"] and "local_frequency" in out["offered"]       # only what is present
    assert out["offered"][0] == "detail"
    assert out["solid_vertex"] == ["VERTEX"]
    assert out["reloaded"] == {"source_hidden": [True, True], "same_transform": True,
                               "active_color": "color_local_frequency", "solid": ["VERTEX"]}  # shown last
    # a legend with round ticks in cycles per metre; at 1 unit = 1 cm the same numbers are 100x
    leg = out["legend"]
    assert leg["stops"] == 16 and len(leg["ticks"]) >= 2 and leg["unit"].startswith("cycles per metre (wavelength")
    assert leg["words"].startswith("How fine the surface detail is")
    lo, hi = out["meta_ranges"]["local_frequency"]
    assert 100 * lo <= float(out["legend_cm_last_tick"]) <= 100 * hi


@pytest.mark.slow
def test_two_results_share_one_detail_scale(tmp_path):
    """The same ripple (wavelength 0.15 m) measured by the backend on two sheets whose own octave bands
    differ (one twice the size of the other) gets the same colour once both are in the scene; the
    backend's per-result colours did not agree. Real detail maps (nstr.spectral.detail), real bpy."""
    out = run_scenario('''
        import math
        from nstr.spectral.detail import detail_arrays
        meshdata = import_module(ADDON + ".core.meshdata")
        results = import_module(ADDON + ".blender.results")

        def sheet(size, n):
            s = np.linspace(-size, size, n)
            x, y = np.meshgrid(s, s, indexing="ij")
            v = np.stack([x, y, 0.012 * np.sin(2 * math.pi * x / 0.15)], -1).reshape(-1, 3)
            idx = np.arange(n * n).reshape(n, n)
            a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
            f = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
            arrays, meta = detail_arrays(v, f, voxel=2 * size / (n - 1))
            arrays.update(vertices=v, faces=f.astype(np.int32))
            centre = (np.abs(v[:, 0]) < 0.4 * size) & (np.abs(v[:, 1]) < 0.4 * size)
            return meshdata.parse_result(arrays, {"detail": meta}), centre

        made = []
        for name, size, n in (("Small", 1.0, 81), ("Large", 2.0, 121)):
            res, centre = sheet(size, n)
            backend = meshdata.linear_to_srgb(res.colors["color_detail"])[centre, :3]
            made.append((results.create_result_object(bpy.context.scene, name, res), centre, backend))
        objs = []
        for obj, centre, backend in made:        # read once both are in: the first was recoloured too
            c = np.empty(len(obj.data.vertices) * 4, np.float32)
            obj.data.color_attributes["color_detail"].data.foreach_get("color", c)
            scene_col = meshdata.linear_to_srgb(c.reshape(-1, 4))[centre, :3]
            objs.append({"backend": np.median(backend, 0).tolist(), "scene": np.median(scene_col, 0).tolist(),
                         "groups": sorted(g.name for g in obj.vertex_groups)})
        OUT["objs"] = objs
        OUT["scale"] = json.loads(bpy.context.scene["nstr_detail_scale"])
    ''', tmp_path)
    small, large = out["objs"]
    assert max(abs(a - b) for a, b in zip(small["scene"], large["scene"])) < 0.03       # one scale, one colour
    assert max(abs(a - b) for a, b in zip(small["backend"], large["backend"])) > 0.05   # each on its own: not
    assert max(small["scene"]) - min(small["scene"]) > 0.3                               # a colour, not grey
    assert out["scale"]["shortest"] < 0.15 < out["scale"]["longest"] and not out["scale"]["stretched"]
    assert "NSTR fine detail" in small["groups"]


@pytest.mark.slow
def test_a_simplified_result_comes_beside_the_hidden_dense_one(tmp_path):
    """task.simplify_faces from the panel's Overrides: the backend's QSlim mesh becomes the shown
    '<name>_NSTR_simplified' with every attribute, and the dense result stays in the file, hidden."""
    out = run_scenario('''
        src = suzanne(subsurf=False)
        tiny = dict(TINY, overrides=TINY["overrides"] + " task.simplify_faces=1000")
        configure(bpy.context.scene.nstr, tiny)
        bpy.ops.nstr.fit()
        rec = RUNTIME.tracker.records[0]
        drive(lambda: rec.state in ("collected", "failed", "error", "cancelled"))
        OUT["state"], OUT["message"] = rec.state, rec.message
        simple, dense = bpy.data.objects.get("Suzanne_NSTR_simplified"), bpy.data.objects.get("Suzanne_NSTR")
        OUT["objects"] = [simple is not None, dense is not None]
        if simple is not None and dense is not None:
            OUT["faces"] = [len(simple.data.polygons), len(dense.data.polygons)]
            OUT["hidden"] = [simple.hide_get(), dense.hide_get(), dense.hide_render]
            OUT["attrs"] = sorted(a.name for a in simple.data.attributes if a.name.startswith(("detail_", "color_detail")))
            OUT["dense_attrs"] = sorted(a.name for a in dense.data.attributes if a.name.startswith(("detail_", "color_detail")))
            OUT["groups"] = sorted(g.name for g in simple.vertex_groups)
            OUT["pointer"] = simple.get("nstr_dense")

        def refit(overrides):                          # the panel's re-fit of the same source
            configure(bpy.context.scene.nstr, dict(TINY, overrides=overrides))
            src.hide_set(False)
            for o in bpy.context.view_layer.objects:
                o.select_set(o == src)
            bpy.ops.nstr.fit()
            rec = RUNTIME.tracker.records[-1]
            drive(lambda: rec.state in ("collected", "failed", "error", "cancelled"))
            objs = {o.name: [o.hide_get(), o.data.name] for o in bpy.data.objects if o.get("nstr_source") == "Suzanne"}
            return {"state": rec.state, "objects": objs, "meshes": sorted(m.name for m in bpy.data.meshes)}

        OUT["again"] = refit(tiny["overrides"])        # both replaced, visibility kept
        OUT["plain"] = refit(TINY["overrides"])        # no simplified mesh now: the dense one is shown alone
        OUT["too_many"] = refit(TINY["overrides"] + " task.simplify_faces=99999999")  # above the dense count
        OUT["too_many_message"] = RUNTIME.message
    ''', tmp_path)
    assert out["state"] == "collected", out["message"]
    assert out["objects"] == [True, True]
    # (at 300 QSlim stops at 518 on this blobby 24^3 Suzanne: every further collapse changes her topology;
    # the report says so, tests/test_simplify.py holds the budget on meshes that allow it)
    assert out["faces"][0] <= 1000 < out["faces"][1], out["faces"]
    assert out["hidden"] == [False, True, True] and out["pointer"] == "Suzanne_NSTR"
    assert out["attrs"] == out["dense_attrs"] and "detail_wavelength" in out["attrs"]
    assert "NSTR fine detail" in out["groups"]
    assert out["again"]["state"] == "collected" and out["again"]["objects"] == {
        "Suzanne_NSTR": [True, "Suzanne_NSTR"], "Suzanne_NSTR_simplified": [False, "Suzanne_NSTR_simplified"]}
    assert out["again"]["meshes"] == ["Suzanne", "Suzanne_NSTR", "Suzanne_NSTR_simplified"]   # old meshes freed
    assert out["plain"]["state"] == "collected"
    assert out["plain"]["objects"] == {"Suzanne_NSTR": [False, "Suzanne_NSTR"]}
    assert out["plain"]["meshes"] == ["Suzanne", "Suzanne_NSTR"]
    # a budget above the dense count: the fit is kept (dense) and the panel says why there is no simplified mesh
    assert out["too_many"]["state"] == "collected" and out["too_many"]["objects"] == {"Suzanne_NSTR": [False, "Suzanne_NSTR"]}
    assert out["too_many_message"].startswith("Suzanne: simplification: ") and "above the dense mesh" in out["too_many_message"]


@pytest.mark.slow
def test_cancel_mid_job_and_a_job_finished_while_blender_was_busy(tmp_path):
    out = run_scenario('''
        src = suzanne(subsurf=False)
        props = bpy.context.scene.nstr
        configure(props, dict(TINY, steps=100000))
        bpy.ops.nstr.fit()
        rec = RUNTIME.tracker.records[0]
        drive(lambda: rec.state == "running" and rec.step > 0)
        OUT["running_text"] = rec.progress_text()
        OUT["cancel_op"] = list(bpy.ops.nstr.cancel(index=0))
        drive(lambda: rec.state in ("cancelled", "failed", "collected", "error"), timeout=120)
        OUT["cancel_state"], OUT["cancel_message"] = rec.state, rec.message
        OUT["no_result"] = "Suzanne_NSTR" not in bpy.data.objects
        # Blender busy: no timer runs while the backend finishes a second job.
        configure(props, TINY)
        bpy.ops.nstr.fit()
        rec2 = RUNTIME.tracker.records[1]
        drive(lambda: rec2.job_id is not None)               # the timer sent it
        client = RUNTIME.session.client
        t0 = time.monotonic()
        while client.status(rec2.job_id)["state"] not in ("done", "failed") and time.monotonic() - t0 < 240:
            time.sleep(0.5)
        OUT["backend_state_while_busy"] = client.status(rec2.job_id)["state"]
        OUT["state_before_poll"] = rec2.state
        drive(lambda: rec2.state in ("collected", "error", "failed"), timeout=60)
        OUT["state_after_polls"] = rec2.state
        OUT["collected_object"] = rec2.result_name
    ''', tmp_path)
    assert out["running_text"].split()[0] in ("sampling", "fitting", "running")
    assert out["cancel_op"] == ["FINISHED"] and out["cancel_state"] == "cancelled" and out["no_result"]
    assert out["backend_state_while_busy"] == "done" and out["state_before_poll"] == "queued"
    assert out["state_after_polls"] == "collected" and out["collected_object"] == "Suzanne_NSTR"


@pytest.mark.slow
def test_clear_errors_for_bad_selections_and_unreachable_or_broken_backends(tmp_path):
    out = run_scenario('''
        import socket
        def op_error(fn):
            try:
                fn()
            except RuntimeError as err:
                return str(err).strip().splitlines()[-1]
            return None
        def idle():
            drive(lambda: not RUNTIME.busy, timeout=120)
        OUT["empty"] = op_error(lambda: bpy.ops.nstr.fit())
        cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
        bpy.context.scene.collection.objects.link(cam)
        cam.select_set(True)
        OUT["non_mesh"] = op_error(lambda: bpy.ops.nstr.fit())
        cam.select_set(False)
        src = suzanne(subsurf=False)
        props = bpy.context.scene.nstr
        props.overrides = "train.batch_size"                 # malformed: one line, no traceback
        OUT["bad_override"] = op_error(lambda: bpy.ops.nstr.fit())
        props.overrides = ""
        # Blender 4.2+ rule: with online access off, a non-loopback URL is never contacted
        prefs.backend_mode = "url"
        prefs.url = "http://192.0.2.7:8765"
        OUT["online_access"] = bpy.app.online_access
        OUT["offline"] = op_error(lambda: bpy.ops.nstr.fit())
        OUT["offline_threads"] = [t.name for t in __import__("threading").enumerate() if t.name.startswith("nstr-")]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
        prefs.url = f"http://127.0.0.1:{port}"
        OUT["port"] = port
        OUT["unreachable_op"] = list(bpy.ops.nstr.fit())     # connects in the background
        idle()
        OUT["problem"] = RUNTIME.problem()
        OUT["job_states"] = [(r.state, r.message) for r in RUNTIME.tracker.records]
        prefs.backend_mode = "local"
        prefs.python = "/usr/bin/python3"                   # a real Python without torch
        configure(props, TINY)
        OUT["no_torch_op"] = list(bpy.ops.nstr.fit())       # starts in the background; the timer reports
        OUT["problem_while_starting"] = RUNTIME.problem()   # the old problem is gone once the state changed
        idle()
        OUT["no_torch"] = RUNTIME.problem()
        OUT["job_message"] = RUNTIME.tracker.records[-1].message
    ''', tmp_path)
    assert out["empty"] == "Error: nothing is selected. Select one or more mesh objects, then press Fit NSTR"
    assert out["non_mesh"].startswith("Error: no mesh in the selection: 'Cam' (camera)")
    assert out["bad_override"] == "Error: override 'train.batch_size' is not KEY=VALUE. Write e.g. train.batch_size=4096"
    assert out["online_access"] is False
    assert out["offline"] == ("Error: online access is disabled in Blender, so the add-on may not contact 192.0.2.7. "
                              "Allow it in Preferences > System > Network > Allow Online Access, or use a local "
                              "backend (127.0.0.1)")
    assert out["offline_threads"] == []
    assert out["unreachable_op"] == ["FINISHED"]
    assert out["problem"].startswith(f"Backend not reachable at http://127.0.0.1:{out['port']}")
    # the reason is shown once (the panel's problem line); the job only says it was not sent
    assert out["job_states"] == [["error", "not sent: the backend did not start (see the message above)"]]
    assert out["no_torch_op"] == ["FINISHED"] and out["problem_while_starting"] == ""
    assert "'/usr/bin/python3' has no torch" in out["no_torch"] and "Install it" in out["no_torch"]
    assert out["job_message"].startswith("not sent")


@pytest.mark.slow
def test_job_errors_are_one_line_and_a_dead_backend_is_restarted(tmp_path):
    out = run_scenario('''
        import signal
        src = suzanne(subsurf=False)
        props = bpy.context.scene.nstr
        configure(props, dict(TINY, overrides=TINY["overrides"] + " task.bogus=1"))
        bpy.ops.nstr.fit()                                   # a job the backend rejects
        bad = RUNTIME.tracker.records[0]
        drive(lambda: bad.state in ("error", "failed", "collected"), timeout=120)
        OUT["bad_state"], OUT["bad_message"] = bad.state, bad.message
        configure(props, TINY)
        bpy.ops.nstr.fit()
        rec = RUNTIME.tracker.records[1]
        drive(lambda: rec.state in ("queued", "running"))
        first_pid = RUNTIME.session.local.process.pid
        os.kill(first_pid, signal.SIGKILL)
        RUNTIME.session.local.process.wait()
        drive(lambda: rec.state in ("collected", "failed", "error"))
        OUT["state"], OUT["message"] = rec.state, rec.message
        OUT["restarts"] = RUNTIME.session.restarts
        OUT["resubmits"] = rec.resubmits
        OUT["new_pid"] = RUNTIME.session.local.process.pid != first_pid
    ''', tmp_path)
    assert out["bad_state"] in ("error", "failed")
    assert "task.bogus" in out["bad_message"] and "Valid keys" in out["bad_message"]
    assert "\n" not in out["bad_message"]
    assert out["state"] == "collected", out["message"]
    assert out["restarts"] == 1 and out["resubmits"] == 1 and out["new_pid"]


def _tiny_flags() -> list[str]:
    """TINY as scripts/fit.py flags."""
    flags = ["--preset", TINY["preset"], "--steps", str(TINY["steps"]), "--K", str(TINY["n_freqs"]),
             "--resolution", str(TINY["resolution"]), "--device", "cpu", "--no-render"]
    return flags + [a for kv in TINY["overrides"].split() for a in ("--set", kv)]


READ_RESULTS = r'''
import bpy, json, sys
bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
src = bpy.data.objects["Suzanne"]
print("READ " + json.dumps({
    "results": sorted(o.name for o in bpy.data.objects if o.get("nstr_source") == "Suzanne"),
    "meshes": sorted(m.name for m in bpy.data.meshes),
    "matrix": [list(r) for r in bpy.data.objects["Suzanne_NSTR"].matrix_world],
    "source_hidden": [src.hide_get(), src.hide_render]}))
'''


@pytest.mark.slow
def test_a_refit_replaces_the_result_in_the_panel_and_from_fit_py_after_a_panel_fit(tmp_path):
    """Headless = panel: a re-fit puts its mesh into the source's result object (name, transform,
    visibility kept, the old mesh freed); fit.py --objects fits the source a panel fit hid, replaces
    the result in a copy next to the scene, and its errors name its flags."""
    out = run_scenario('''
        src = suzanne(subsurf=False)
        props = bpy.context.scene.nstr
        configure(props, TINY)

        def fit(what=None):
            for o in bpy.context.view_layer.objects:
                o.select_set(False)
            src.hide_set(False)                     # the panel's "Show Suzanne": select it again
            src.select_set(True)
            bpy.ops.nstr.fit()
            rec = RUNTIME.tracker.records[-1]
            drive(lambda: rec.state in ("collected", "failed", "error", "cancelled"))
            assert rec.state == "collected", rec.message
            return rec

        first = fit()
        res = bpy.data.objects["Suzanne_NSTR"]
        res.location = (4.0, -1.0, 2.0)            # the artist moved the result aside
        bpy.context.view_layer.update()            # matrix_world follows location on evaluation
        OUT["old_mesh"] = res.data.name
        moved = OUT["moved"] = [list(r) for r in res.matrix_world]
        second = fit()
        res = bpy.data.objects["Suzanne_NSTR"]
        OUT["results"] = sorted(o.name for o in bpy.data.objects if o.get("nstr_source") == "Suzanne")
        OUT["meshes"] = sorted(m.name for m in bpy.data.meshes)
        OUT["same_matrix"] = bool(np.allclose([list(r) for r in res.matrix_world], moved))
        OUT["jobs"] = [first.job_id != second.job_id, res["nstr_job"] == second.job_id]
        v = np.empty(len(res.data.vertices) * 3, np.float32)
        res.data.vertices.foreach_get("co", v)
        v = v.reshape(-1, 3)
        OUT["local_centre"] = ((v.min(0) + v.max(0)) / 2).tolist()   # Suzanne's own frame: near 0
        OUT["materials"] = sorted(m.name for m in bpy.data.materials)
        OUT["groups"] = sorted(g.name for g in res.vertex_groups)
        cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
        bpy.context.scene.collection.objects.link(cam)
        OUT["source_hidden"] = [src.hide_get(), src.hide_render]
        saved = os.path.join(os.environ["NSTR_TMP"], "scene.blend")
        bpy.ops.wm.save_as_mainfile(filepath=saved)
        props.keep_versions = True                  # the explicit option keeps the old one
        fit()
        OUT["versions"] = sorted(o.name for o in bpy.data.objects if o.get("nstr_source") == "Suzanne")
    ''', tmp_path)
    assert out["results"] == ["Suzanne_NSTR"], out["results"]
    assert out["meshes"] == ["Suzanne", "Suzanne_NSTR"]          # the old result mesh is freed, not orphaned
    assert out["same_matrix"] and out["jobs"] == [True, True]
    assert max(abs(c) for c in out["local_centre"]) < 0.3        # the mesh in the source's frame (Suzanne: 2 wide)
    assert out["materials"] == ["Suzanne_NSTR"]                  # the material is kept, not stacked
    assert "NSTR fine detail" in out["groups"]
    assert out["source_hidden"] == [True, True]
    assert out["versions"] == ["Suzanne_NSTR", "Suzanne_NSTR.001"]

    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "cli_blender"), XDG_DATA_HOME=str(tmp_path / "data"),
               OMP_NUM_THREADS="2")
    scene = tmp_path / "scene.blend"
    before = scene.read_bytes()
    proc = subprocess.run([str(VENV_PY), str(REPO / "scripts" / "fit.py"), "--scene", str(scene),
                           "--objects", "Suzanne", *_tiny_flags()],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"fit.py: writing to {tmp_path}" in proc.stdout
    output = tmp_path / "scene_nstr.blend"                         # next to the scene; the scene untouched
    assert output.is_file() and scene.read_bytes() == before
    reader = tmp_path / "read_results.py"
    reader.write_text(READ_RESULTS)
    read = subprocess.run([str(VENV_PY), str(reader), str(output)], capture_output=True, text=True, timeout=120,
                          env=env)
    info = json.loads(next(ln for ln in read.stdout.splitlines() if ln.startswith("READ "))[len("READ "):])
    assert info["results"] == ["Suzanne_NSTR"] and info["meshes"] == ["Suzanne", "Suzanne_NSTR"]
    assert [row[3] for row in out["moved"][:3]] == [4.0, -1.0, 2.0]
    assert all(abs(a - b) < 1e-5 for ra, rb in zip(info["matrix"], out["moved"]) for a, b in zip(ra, rb)), info

    assert info["source_hidden"] == [True, True]

    proc = subprocess.run([str(VENV_PY), str(REPO / "scripts" / "fit.py"), "--scene", str(scene),
                           "--objects", "Cam", *_tiny_flags()],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("fit.py: error:")]
    assert proc.returncode == 1 and errors == [
        "fit.py: error: no mesh in the selection: 'Cam' (camera). Name mesh objects with --objects "
        "(convert curves/text to meshes in the scene first)"], proc.stderr[-2000:]


@pytest.mark.slow
def test_two_blenders_share_one_local_backend(tmp_path):
    """A second Blender (same user folder, same jobs folder) connects to the first one's server
    instead of failing on the jobs-folder lock, fits through it, and is told when the first stops it."""
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    shared = {"BLENDER_USER_RESOURCES": str(tmp_path / "blender"), "XDG_DATA_HOME": str(tmp_path / "data")}
    first_body = '''
        bpy.ops.nstr.backend_start()
        drive(lambda: RUNTIME.session.connected, timeout=180)
        OUT["url"], OUT["pid"] = RUNTIME.session.url, RUNTIME.session.local.process.pid
        done = os.path.join(os.environ["NSTR_SHARED"], "second_done")
        open(os.path.join(os.environ["NSTR_SHARED"], "first_ready"), "w").write(OUT["url"])
        t0 = time.monotonic()
        while not os.path.exists(done) and time.monotonic() - t0 < 300:
            poll()
            time.sleep(0.2)
        bpy.ops.nstr.backend_stop()                  # the Blender that started it stops it
        open(os.path.join(os.environ["NSTR_SHARED"], "first_stopped"), "w").write("1")
    '''
    script = first_dir / "scenario.py"
    script.write_text(PRELUDE + f"\nTINY = {TINY!r}\n" + textwrap.dedent(first_body) + "\nfinish()\n")
    env = dict(os.environ, NSTR_REPO=str(REPO), NSTR_TMP=str(first_dir), NSTR_SHARED=str(tmp_path),
               NSTR_LOG_DIR=str(first_dir / "logs"), OMP_NUM_THREADS="2", **shared)
    env["NSTR_PYTHON"] = str(VENV_PY)
    # its output goes to files: a pipe nobody reads until the end fills up (64 KiB) and blocks the first Blender
    out_file, err_file = open(first_dir / "stdout.txt", "w"), open(first_dir / "stderr.txt", "w")
    first = subprocess.Popen([str(VENV_PY), str(script)], stdout=out_file, stderr=err_file, text=True,
                             env=env, cwd=first_dir)
    try:
        ready = tmp_path / "first_ready"
        for _ in range(1500):
            if ready.exists() or first.poll() is not None:
                break
            __import__("time").sleep(0.2)
        assert ready.exists(), (first_dir / "stdout.txt").read_text()[-3000:]
        out = run_scenario('''
            shared_env = os.environ["NSTR_SHARED"]
            src = suzanne(subsurf=False)
            configure(bpy.context.scene.nstr, TINY)
            OUT["fit_op"] = list(bpy.ops.nstr.fit())
            rec = RUNTIME.tracker.records[0]
            drive(lambda: rec.state in ("collected", "failed", "error", "cancelled"))
            OUT["state"], OUT["message"] = rec.state, rec.message
            OUT["url"], OUT["own_process"] = RUNTIME.session.url, RUNTIME.session.local is not None
            OUT["shared_pid"] = RUNTIME.session.shared.pid if RUNTIME.session.shared else None
            OUT["result"] = "Suzanne_NSTR" in bpy.data.objects
            open(os.path.join(shared_env, "second_done"), "w").write("1")
            drive(lambda: os.path.exists(os.path.join(shared_env, "first_stopped")), timeout=120)
            drive(lambda: bool(RUNTIME.problem()), timeout=60)
            OUT["problem"] = RUNTIME.problem()
        ''', second_dir, env_extra=dict(shared, NSTR_SHARED=str(tmp_path)))
        first.wait(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
        out_file.close()
        err_file.close()
    stdout, stderr = (first_dir / "stdout.txt").read_text(), (first_dir / "stderr.txt").read_text()
    assert first.returncode == 0, stdout[-2000:] + stderr[-2000:]
    first_out = json.loads(next(ln for ln in stdout.splitlines() if ln.startswith("RESULT "))[len("RESULT "):])
    assert out["fit_op"] == ["FINISHED"] and out["state"] == "collected", out["message"]
    assert out["url"] == first_out["url"] and out["shared_pid"] == first_out["pid"] and not out["own_process"]
    assert out["result"]
    assert out["problem"] == (f"the shared local backend at {first_out['url']} was stopped by the Blender that "
                              "started it. Press Start in the NSTR panel")
