"""Photo-like captures with known faults (nstr.nerf.photo_capture, issue 31 item 5): a cube on a textured
ground rendered by real Blender (8 views at 48 px), written as a nerfstudio file and a COLMAP text model
with known exposure gains, pose noise and lens distortion, read back through the project's readers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nstr.nerf.capture import read_cameras_text, read_images_text
from nstr.nerf.dataset import Intrinsics
from nstr.nerf.lens import Camera, lens_from_transforms, undistort
from nstr.nerf.photo_capture import PhotoFaults, object_region, write_photo_capture
from nstr.nerf.source import load_dataset

RES = 48
FAULTS = PhotoFaults(seed=3)
DISTORTED_TOL = 0.03  # mean |error| of a read-back distorted view (measured 0.013-0.022: two bilinear resamplings)


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nstr.nerf.truth_scenes import render_truth_scene

    root = tmp_path_factory.mktemp("photo_capture")
    # ten photos: every 8th is held out, and a NeRF needs 8 to train on (nstr.nerf.dataset.MIN_VIEWS)
    scene = render_truth_scene(root / "cube", "cube", 8, 2, RES, samples=16, world="photo")
    return write_photo_capture(scene, root / "capture", FAULTS)


def _truth(capture: Path) -> dict:
    return json.loads((capture / "truth.json").read_text())


def _clean(truth: dict, k: int) -> np.ndarray:
    """View k as Blender rendered it (train views, then test views), RGB in [0, 1]."""
    scene = Path(truth["scene"])
    frames = [f for s in ("train", "test") for f in json.loads((scene / f"transforms_{s}.json").read_text())["frames"]]
    with Image.open(scene / frames[k]["file_path"].removeprefix("./")) as im:
        return np.asarray(im.convert("RGB"), np.float64) / 255.0


def _views(capture: Path) -> dict[str, list]:
    """{format: [(photo index, RGBA, valid or None, pose)]} in photo order, both splits."""
    out = {}
    for fmt, folder in (("nerfstudio", capture), ("colmap", capture / "colmap")):
        ds = load_dataset(folder)
        rows = []
        for views in (ds.train, ds.test):
            for j, file in enumerate(views.files):
                valid = None if views.valid is None else views.valid[j]
                rows.append((int(Path(file).stem.split("_")[1]), views.images[j], valid, views.poses[j]))
        out[fmt] = sorted(rows, key=lambda r: r[0])
    return out


@pytest.mark.slow   # the fixture renders ten photos in Blender (about 30 s)
def test_both_formats_read_back_the_written_noisy_poses_and_lenses(capture: Path) -> None:
    truth = _truth(capture)
    views = _views(capture)
    n = len(truth["names"])
    assert n == 10 and [r[0] for r in views["nerfstudio"]] == [r[0] for r in views["colmap"]] == list(range(n))
    written, true = np.array(truth["poses"]), np.array(truth["true_poses"])
    for fmt in views:
        np.testing.assert_allclose(np.stack([r[3] for r in views[fmt]]), written, atol=1e-6, err_msg=fmt)
    for k in range(n):  # the written poses are the true ones with the known noise
        turn = written[k][:3, :3] @ true[k][:3, :3].T
        angle = math.degrees(math.acos(np.clip((np.trace(turn) - 1) / 2, -1, 1)))
        assert angle == pytest.approx(FAULTS.rotation_deg, abs=1e-6)
        shift = np.linalg.norm(written[k][:3, 3] - true[k][:3, 3])
        assert shift == pytest.approx(FAULTS.shift * truth["object_size"], rel=1e-6)
    # the lenses: nerfstudio per frame, COLMAP per camera; the same pinhole and coefficients as the truth
    fx, fy, cx, cy, w, h = truth["intrinsics"]
    # Blender's camera: a 36 mm sensor behind a 50 mm lens (nstr_blender.core.nerf_views.DEFAULT_CAMERA_ANGLE_X)
    assert (fx, fy, cx, cy, w, h) == pytest.approx((RES * 50 / 36, RES * 50 / 36, RES / 2, RES / 2, RES, RES))
    loaded = [load_dataset(folder).train.intrinsics for folder in (capture, capture / "colmap")]
    assert loaded[0] == loaded[1] == Intrinsics(fx, fy, cx, cy, w, h)
    doc = json.loads((capture / "transforms.json").read_text())
    cams = read_cameras_text(capture / "colmap" / "sparse" / "0" / "cameras.txt")
    images = sorted(read_images_text(capture / "colmap" / "sparse" / "0" / "images.txt"), key=lambda im: im.name)
    for k, (frame, image) in enumerate(zip(doc["frames"], images)):
        k1, k2 = truth["k1k2"][k]
        assert (k1, k2) == ((FAULTS.k1, FAULTS.k2) if k % 3 == 2 else (0.0, 0.0))
        assert lens_from_transforms(doc, frame, "frame") == ("opencv", (k1, k2, 0.0, 0.0, 0.0))
        cam = cams[image.camera_id]
        assert cam.pinhole == Intrinsics(fx, fy, cx, cy, w, h)
        assert (cam.coeffs[:2] if cam.distorted else (0.0, 0.0)) == (k1, k2)
    assert sum(k1 != 0.0 for k1, _ in truth["k1k2"]) == 3   # photos 2, 5 and 8


@pytest.mark.slow
def test_distorted_photos_read_back_as_the_pinhole_render(capture: Path) -> None:
    """The reader's undistortion gives back Blender's pinhole render (times the photo's gain) where the photo
    holds data; undistorting with the opposite sign does not."""
    truth = _truth(capture)
    errors, wrong = [], []
    for fmt, rows in _views(capture).items():
        for k, rgba, valid, _ in rows:
            if truth["k1k2"][k][0] == 0.0:
                continue
            ref = np.clip(_clean(truth, k) * truth["gains"][k], 0, 1)
            assert valid is not None and 0.85 < valid.mean() < 1.0  # pincushion: the corners hold no data
            errors.append(np.abs(rgba[..., :3] - ref)[valid].mean())
            photo = np.asarray(Image.open(capture / "images" / truth["names"][k]).convert("RGBA"), np.float32) / 255
            pinhole = Intrinsics(*truth["intrinsics"][:4], *truth["intrinsics"][4:])
            k1, k2 = truth["k1k2"][k]
            back, covered = undistort(photo, Camera(pinhole, "opencv", (-k1, -k2, 0.0, 0.0, 0.0)), pinhole)
            wrong.append(np.abs(back[..., :3] - ref)[covered & valid].mean())
    assert len(errors) == 2 * 3   # photos 2, 5 and 8 are distorted, read through both formats
    assert max(errors) < DISTORTED_TOL, errors
    assert all(b > 2.0 * a for a, b in zip(errors, wrong)), (errors, wrong)


@pytest.mark.slow
def test_exposures_read_back_as_the_written_gains(capture: Path) -> None:
    """Each undistorted photo over its clean render, on pixels neither dark nor clipped, is its known gain."""
    truth = _truth(capture)
    gains = np.array(truth["gains"])
    assert gains.min() >= FAULTS.gains[0] and gains.max() <= FAULTS.gains[1] and gains.max() - gains.min() > 0.2
    for k, rgba, _valid, _ in _views(capture)["nerfstudio"]:
        if truth["k1k2"][k][0] != 0.0:
            continue
        ref = _clean(truth, k)
        usable = (ref > 0.15) & (ref * gains[k] < 0.97)
        assert usable.sum() > 100
        assert np.median(rgba[..., :3][usable] / ref[usable]) == pytest.approx(gains[k], abs=0.01)


@pytest.mark.slow
def test_object_region_pads_the_object_and_keeps_its_floor_above_the_ground(capture: Path) -> None:
    truth = _truth(capture)
    lo, hi = np.array(truth["object_box"])
    box = object_region(truth)
    assert truth["ground_z"] == pytest.approx(lo[2], abs=1e-6)  # the cube stands on the ground
    size = truth["object_size"]
    np.testing.assert_allclose(box[:2], lo[:2] - 0.1 * size)
    np.testing.assert_allclose(box[3:], hi + 0.1 * size)
    assert box[2] == pytest.approx(truth["ground_z"] + 0.005 * size)
