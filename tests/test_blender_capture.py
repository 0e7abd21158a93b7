"""Import capture and Fit NeRF to Capture: known answers.

Core (bpy-free): a pinhole camera (non-square pixels, principal point off centre) as a Blender camera puts a
known point on the same pixel; the region box as an object and back. Add-on (the bpy 5.0 module, the add-on
installed from its zip, the backend it launches over a real socket): captures written by the test with known
cameras (COLMAP text, nerfstudio) import as cameras whose matrix_world is the true camera-to-world and which
see a known point where the photo does (``world_to_camera_view``); bad folders get one line naming the file;
a second import duplicates and destroys nothing; a fit sends the moved box as ``task.box`` and its mesh lies in it.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pytest

from nstr_blender.core.capture import (UNIT_CORNERS, blender_camera, blender_pixel, box_bounds, box_transform,
                                       parse_capture, task_box)
from nstr_blender.core.errors import AddonError

from capture_writers import N_VIEWS, TRUTH, truth_poses, write_colmap, write_nerfstudio

POINTS = np.array([[0.0, 0.0, 0.0], [0.3, -0.2, 0.25], [-0.4, 0.35, -0.1]])   # the "object" the photos show


def pinhole_pixel(fx: float, fy: float, cx: float, cy: float, c2w: np.ndarray, point: np.ndarray) -> np.ndarray:
    """The capture's own model: OpenCV camera axes (+x right, +y down, +z forward), pixels from the top-left."""
    cam = np.linalg.inv(c2w @ np.diag([1.0, -1.0, -1.0, 1.0])) @ np.append(point, 1.0)
    return np.array([fx * cam[0] / cam[2] + cx, fy * cam[1] / cam[2] + cy])


# ----------------------------------------------------------------------------------------- core, bpy-free


@pytest.mark.parametrize("fx, fy, cx, cy, w, h", [(30.0, 28.0, 16.3, 11.8, 32, 24),     # fx > fy, off centre
                                                  (500.0, 560.0, 300.5, 180.25, 640, 360),
                                                  (800.0, 800.0, 200.0, 320.0, 400, 600)])  # portrait
def test_a_pinhole_as_a_blender_camera_puts_a_point_on_the_same_pixel(fx, fy, cx, cy, w, h):
    cam = blender_camera(fx, fy, cx, cy, w, h)
    assert min(cam.pixel_aspect_x, cam.pixel_aspect_y) == 1.0 and cam.pixel_aspect_y / cam.pixel_aspect_x == \
        pytest.approx(fx / fy)
    assert cam.lens == pytest.approx(fx * 36.0 / w)
    c2w = truth_poses()[3]
    for point in POINTS:
        local = np.linalg.inv(c2w) @ np.append(point, 1.0)        # Blender camera space (looking down -z)
        np.testing.assert_allclose(blender_pixel(cam, local[:3]), pinhole_pixel(fx, fy, cx, cy, c2w, point),
                                   atol=1e-9)
    # the principal point is where the optical axis lands; the image centre only when cx, cy are centred
    assert blender_pixel(cam, (0.0, 0.0, -2.0)) == pytest.approx((cx, cy))
    with pytest.raises(AddonError, match="not a pinhole camera"):
        blender_camera(0.0, fy, cx, cy, w, h)


def test_the_region_box_as_an_object_and_back():
    lo, hi = [-0.5, -0.4, -0.3], [0.7, 0.4, 0.9]
    location, scale = box_transform(lo, hi)
    assert location == pytest.approx((0.1, 0.0, 0.3)) and scale == pytest.approx((0.6, 0.4, 0.6))
    matrix = np.diag([*scale, 1.0])
    matrix[:3, 3] = location
    got = box_bounds(matrix.tolist())
    np.testing.assert_allclose(got, [lo, hi], atol=1e-12)
    # turned 90 degrees about z: x and y extents swap, the bounds still hold every corner
    turn = np.array([[0.0, -1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    got = box_bounds((turn @ matrix).tolist())
    np.testing.assert_allclose(got, [[-0.4, -0.5, -0.3], [0.4, 0.7, 0.9]], atol=1e-12)
    assert task_box(*got) == pytest.approx([-0.4, -0.5, -0.3, 0.4, 0.7, 0.9])
    with pytest.raises(AddonError, match="no size along Z"):
        task_box([0, 0, 1], [1, 1, 1])
    assert len(UNIT_CORNERS) == 8


def test_a_malformed_answer_is_one_line():
    with pytest.raises(AddonError, match="lacks 'cameras'"):
        parse_capture({"dataset_dir": "/x", "kind": "colmap", "model": "m", "box": [[0, 0, 0], [1, 1, 1]]})
    cam = {"name": "a.png", "file": "images/a.png", "matrix": np.eye(4).tolist(), "fx": 1, "fy": 1, "cx": 0,
           "cy": 0, "width": 2, "height": 2, "test": False}
    with pytest.raises(AddonError, match="not a number"):
        parse_capture({"dataset_dir": "/x", "kind": "colmap", "model": "m", "box": [[0, 0, 0], [1, 1, "z"]],
                       "cameras": [cam]})
    ok = parse_capture({"dataset_dir": "/data/scan 1/", "kind": "colmap", "model": "m", "box": [[0, 0, 0], [1, 1, 1]],
                        "cameras": [cam]})
    assert ok.name == "scan 1" and ok.cameras[0].matrix[3] == (0.0, 0.0, 0.0, 1.0)


def test_the_local_backend_reads_captures_under_the_captures_folder(tmp_path, monkeypatch):
    """Its --data-root: the preference, else $NSTR_DATA_ROOT, else home; a missing preference folder is one line
    before anything is launched, a missing default leaves the flag out (the server then refuses captures alone)."""
    import sys

    from nstr_blender.core.settings import BackendSettings

    monkeypatch.delenv("NSTR_DATA_ROOT", raising=False)
    assert BackendSettings(data_root=str(tmp_path)).data_root_args() == ["--data-root", str(tmp_path)]
    assert BackendSettings().resolved_data_root() == Path.home()
    monkeypatch.setenv("NSTR_DATA_ROOT", str(tmp_path / "none"))
    assert BackendSettings().data_root_args() == []
    with pytest.raises(AddonError, match="Captures folder '/no/such/folder' does not exist"):
        BackendSettings(python=sys.executable, data_root="/no/such/folder").check()


# ----------------------------------------------------------------------------------------- the add-on, real server

IMPORT = r'''
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector
root_dir = os.environ["CAPTURES"]
prefs.data_root = root_dir
POINTS = [(0.0, 0.0, 0.0), (0.3, -0.2, 0.25), (-0.4, 0.35, -0.1)]

def imported(folder):
    res = list(bpy.ops.nstr.import_capture(directory=folder))
    return res, RUNTIME.capture_outcome

def describe(root):
    scene = bpy.context.scene
    cams = {}
    for o in root.children:
        if o.type != "CAMERA":
            continue
        pix = []
        for p in POINTS:
            ndc = world_to_camera_view(scene, o, Vector(p))
            pix.append([ndc.x * scene.render.resolution_x, (1.0 - ndc.y) * scene.render.resolution_y])
        cams[o["nstr_capture_photo"]] = {"matrix": [list(r) for r in o.matrix_world], "pixels": pix,
                                         "test": bool(o["nstr_test_view"]), "name": o.name}
    box = next(o for o in root.children if o.get("nstr_capture_box"))
    corners = [list(box.matrix_world @ Vector(c)) for c in box.bound_box]
    return {"cameras": cams, "box": [np.min(corners, 0).tolist(), np.max(corners, 0).tolist()],
            "box_display": box.display_type, "collection": root.users_collection[0].name,
            "members": sorted(o.name for o in root.users_collection[0].objects),
            "resolution": [scene.render.resolution_x, scene.render.resolution_y],
            "aspect": [scene.render.pixel_aspect_x, scene.render.pixel_aspect_y],
            "source": scene.nstr.nerf_source, "chosen": scene.nstr.nerf_capture.name}

def panel_lines():
    """What the panel draws (its real draw code, into a layout that records; no window in module mode)."""
    import types
    log = []

    class Layout:
        def column(self, **_k):
            return Layout()
        row = box = column
        def label(self, text="", **_k):
            log.append(text)
        def prop(self, _owner, name, **_k):
            log.append("prop:" + name)
        def operator(self, idname, text="", **_k):
            log.append(f"op:{idname}:{text}")
            return types.SimpleNamespace()
        def progress(self, **_k):
            pass

    cls = bpy.types.NSTR_PT_fit
    fake = types.SimpleNamespace(layout=Layout())
    for name in ("draw_live", "draw_backend", "draw_capture", "draw_result", "draw_finished"):
        setattr(fake, name, types.MethodType(getattr(cls, name), fake))
    context = types.SimpleNamespace(region=None, preferences=None, scene=bpy.context.scene, selected_objects=[],
                                    active_object=None)        # module mode has no region and a UI scale of 0
    cls.draw(fake, context)
    return log

bpy.ops.nstr.backend_start()
drive(lambda: RUNTIME.session.connected, timeout=180)
'''


def truth_pixels() -> np.ndarray:
    return np.array([[pinhole_pixel(TRUTH.fx, TRUTH.fy, TRUTH.cx, TRUTH.cy, pose, p) for p in POINTS]
                     for pose in truth_poses()])


def assert_imported(info: dict, name: str) -> None:
    cams = info["cameras"]
    assert sorted(cams) == [f"view_{k:02d}.png" for k in range(N_VIEWS)]
    pixels = truth_pixels()
    for k, photo in enumerate(sorted(cams)):
        np.testing.assert_allclose(cams[photo]["matrix"], truth_poses()[k], atol=1e-5)
        np.testing.assert_allclose(cams[photo]["pixels"], pixels[k], atol=1e-3)
        assert cams[photo]["test"] == (k % 8 == 0)
    lo, hi = np.array(info["box"])
    assert np.all(POINTS >= lo) and np.all(POINTS <= hi)         # the box holds the object the cameras look at
    assert info["box_display"] == "WIRE" and info["collection"] == f"NSTR capture: {name}"
    assert info["resolution"] == [TRUTH.width, TRUTH.height]
    assert info["aspect"][1] / info["aspect"][0] == pytest.approx(TRUTH.fx / TRUTH.fy, rel=1e-6)
    assert info["source"] == "CAPTURE"


@pytest.mark.slow
def test_import_capture_places_the_true_cameras_and_a_box_and_bad_folders_get_one_line(tmp_path):
    from test_blender_addon import run_scenario

    captures = tmp_path / "captures"
    write_colmap(captures / "scan")
    write_nerfstudio(captures / "studio")
    missing = write_colmap(captures / "missing")
    (missing / "images" / "view_04.png").unlink()
    (captures / "nothing").mkdir()
    outside = write_colmap(tmp_path / "elsewhere")
    out = run_scenario(IMPORT + textwrap.dedent(r'''
        OUT["scan_op"], OUT["scan_outcome"] = imported(root_dir + "/scan")
        OUT["scan"] = describe(bpy.context.scene.nstr.nerf_capture)
        OUT["studio_op"], OUT["studio_outcome"] = imported(root_dir + "/studio/")
        OUT["studio"] = describe(bpy.context.scene.nstr.nerf_capture)
        for key, folder in (("missing", root_dir + "/missing"), ("nothing", root_dir + "/nothing"),
                            ("outside", os.environ["OUTSIDE"])):
            before = len(bpy.data.objects)
            try:
                bpy.ops.nstr.import_capture(directory=folder)
                OUT[key] = ["no error", RUNTIME.capture_outcome]
            except RuntimeError as err:                  # an operator's ERROR report, as a script sees it
                OUT[key] = [str(err).strip(), RUNTIME.capture_outcome, len(bpy.data.objects) - before]
        # a second import: the user's box placement, the user's own objects and renamed cameras stay
        scan = next(o for o in bpy.data.objects if o.get("nstr_capture_dir", "").endswith("/scan"))
        box = next(o for o in scan.children if o.get("nstr_capture_box"))
        box.location.x += 0.25
        box.scale.z *= 0.5
        moved = [list(box.location), list(box.scale)]
        mine = bpy.data.objects.new("view_00", None)               # the user's object, named like a photo (.001)
        mine_name = mine.name
        scan.users_collection[0].objects.link(mine)
        cam = next(o for o in scan.children if o.get("nstr_capture_photo") == "view_01.png")
        cam.name = "my favourite view"
        cam.matrix_basis.translation.x += 5.0                      # moved by hand: the capture's pose comes back
        count = len(bpy.data.objects)
        OUT["again_op"], OUT["again_outcome"] = imported(root_dir + "/scan")
        OUT["again"] = {"objects": len(bpy.data.objects) - count, "box_kept": [list(box.location), list(box.scale)] == moved,
                        "mine": bpy.data.objects.get(mine_name) == mine and mine.name in scan.users_collection[0].objects,
                        "renamed": cam.name, "cameras": len([o for o in scan.children if o.type == "CAMERA"]),
                        "collections": sorted(c.name for c in bpy.data.collections)}
        OUT["again_described"] = describe(scan)
        bpy.context.scene.nstr.task = "nerf"
        bpy.context.scene.nstr.nerf_capture = scan
        OUT["panel_capture"] = panel_lines()
        bpy.context.scene.nstr.nerf_source = "OBJECTS"
        OUT["panel_objects"] = panel_lines()
    '''), tmp_path, env_extra={"CAPTURES": str(captures), "OUTSIDE": str(outside)})
    assert out["scan_op"] == ["FINISHED"] and out["scan_outcome"][0], out["scan_outcome"]
    assert_imported(out["scan"], "scan")
    assert out["studio_op"] == ["FINISHED"] and out["studio_outcome"][0], out["studio_outcome"]
    assert_imported(out["studio"], "studio")
    text, outcome, added = out["missing"]
    assert "images.txt" in text and "view_04.png" in text and "not found" in text and "\n" not in text, text
    assert outcome[0] is False and outcome[1] in text
    assert added == 0
    assert "no transforms" in out["nothing"][0] and "COLMAP model" in out["nothing"][0] and out["nothing"][2] == 0
    assert "not inside a data root" in out["outside"][0] and out["outside"][2] == 0
    again = out["again"]
    assert out["again_outcome"][0] and "0 new, 10 updated" in out["again_outcome"][1], out["again_outcome"]
    assert again["objects"] == 0 and again["box_kept"] and again["mine"] and again["cameras"] == N_VIEWS
    assert again["renamed"] == "my favourite view"
    assert again["collections"] == ["NSTR capture: scan", "NSTR capture: studio"]
    panel = out["panel_capture"]
    assert "prop:nerf_source" in panel and "op:nstr.import_capture:Import Capture..." in panel
    assert "10 photos (2 held out for testing)" in panel and "op:nstr.fit:Fit NeRF to Capture" in panel
    assert any(line.startswith("Region: NSTR region: scan") for line in panel) and "prop:nerf_train" not in panel
    assert "op:nstr.fit:Render Views & Fit NeRF" in out["panel_objects"] and "prop:nerf_train" in out["panel_objects"]
    cams = out["again_described"]["cameras"]
    np.testing.assert_allclose(cams["view_01.png"]["matrix"], truth_poses()[1], atol=1e-5)


TINY_NERF = {"preset": "quick", "steps": 8, "n_freqs": 8, "resolution": 24,
             "overrides": "train.batch_size=256 task.render_steps=24 task.n_importance=0 task.grid_resolution=8 "
                          "task.eval_views=1 field.grid_levels=4 field.grid_table_size=4096"}


@pytest.mark.slow
def test_fit_capture_sends_the_moved_box_and_its_mesh_lies_inside_it(tmp_path):
    from test_blender_addon import run_scenario

    captures = tmp_path / "captures"
    write_colmap(captures / "scan")
    out = run_scenario(IMPORT + textwrap.dedent(r'''
        OUT["import"] = imported(root_dir + "/scan")[1]
        props = bpy.context.scene.nstr
        props.task = "nerf"
        configure(props, %r)
        root = props.nerf_capture
        root.location = (10.0, 0.0, 0.0)                 # the capture placed elsewhere in the scene
        box = next(o for o in root.children if o.get("nstr_capture_box"))
        box.location = (0.1, -0.05, 0.2)                 # moved and scaled in the capture's frame
        box.scale = (0.5, 0.6, 0.4)
        bpy.context.view_layer.update()                  # as the viewport does after a move
        OUT["fit_op"] = list(bpy.ops.nstr.fit())
        rec = RUNTIME.tracker.records[0]
        OUT["config"] = rec.config
        drive(lambda: rec.state in ("collected", "failed", "error", "cancelled"), timeout=300)
        OUT["state"], OUT["message"] = rec.state, rec.message
        res = bpy.data.objects.get(rec.result_name)
        if res is None:
            raise SystemExit(f"no result: {rec.state}: {rec.message}")
        v = np.empty(len(res.data.vertices) * 3, np.float32)
        res.data.vertices.foreach_get("co", v)
        m = np.array([list(r) for r in res.matrix_world])
        OUT["world"] = (v.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]).tolist()
        OUT["status_box"] = RUNTIME.session.client.status(rec.job_id)["config"]["task.box"]
    ''') % (TINY_NERF,), tmp_path, env_extra={"CAPTURES": str(captures)})
    assert out["import"][0], out["import"]
    assert out["fit_op"] == ["FINISHED"], out
    config = out["config"]
    want = [0.1 - 0.5, -0.05 - 0.6, 0.2 - 0.4, 0.1 + 0.5, -0.05 + 0.6, 0.2 + 0.4]
    assert config["task.box"] == pytest.approx(want, abs=1e-6) and out["status_box"] == pytest.approx(want, abs=1e-6)
    assert Path(config["dataset_dir"]) == (captures / "scan").resolve()
    assert out["state"] == "collected", out["message"]
    world = np.array(out["world"])
    assert len(world) > 0
    lo, hi = np.array(want[:3]) + [10.0, 0, 0], np.array(want[3:]) + [10.0, 0, 0]    # the capture's frame, moved
    voxel = 2 * max(hi - lo) / 24
    assert np.all(world >= lo - voxel) and np.all(world <= hi + voxel), (world.min(0), world.max(0), lo, hi)
    assert math.isfinite(world.sum())
