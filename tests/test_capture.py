"""Photo captures (nstr.nerf.capture): COLMAP text and binary models and nerfstudio transforms read to the
known cameras of a synthetic capture; distortion removed back to the pinhole image; bad input named."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from nstr.errors import InputError
from nstr.nerf.capture import camera_from_colmap
from nstr.nerf.lens import MAX_MAPS, Camera, undistort
from nstr.nerf.dataset import Intrinsics
from nstr.nerf.source import check_dataset_folder, load_dataset
from nstr.nerf.rays import project_points

from capture_writers import (H, N_VIEWS, TRUTH, W, colmap_pose, pinhole_params, truth_poses, view_image, write_colmap,
                             write_nerfstudio)


def assert_truth(ds, intr: Intrinsics = TRUTH) -> None:
    poses = truth_poses()
    test = [i for i in range(N_VIEWS) if i % 8 == 0]
    train = [i for i in range(N_VIEWS) if i % 8 != 0]
    np.testing.assert_allclose(ds.train.poses, poses[train], atol=1e-6)
    np.testing.assert_allclose(ds.test.poses, poses[test], atol=1e-6)
    got = ds.train.intrinsics
    assert (got.fx, got.fy, got.cx, got.cy, got.width, got.height) == pytest.approx(
        (intr.fx, intr.fy, intr.cx, intr.cy, intr.width, intr.height))
    point = np.array([[0.3, -0.2, 0.25]])
    for pose, k in zip(ds.train.poses, train):
        np.testing.assert_allclose(project_points(point, pose, got)[0], project_points(point, poses[k], intr)[0],
                                   atol=1e-4)
    assert ds.aabb_from == "cameras"


# ----------------------------------------------------------------------------------------- cameras read right


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
@pytest.mark.parametrize("where", ["sparse/0", "sparse", "colmap/sparse/0"])
def test_colmap_model_reads_the_true_cameras(tmp_path, binary, where):
    root = write_colmap(tmp_path, "PINHOLE", binary, where)
    check_dataset_folder(root)
    ds = load_dataset(root)
    assert_truth(ds)
    # no distortion: the photos load unchanged, in name order (blue names the view), alpha 1
    np.testing.assert_allclose(ds.train.images[0, ..., :3] * 255, view_image(1), atol=1e-3)
    np.testing.assert_allclose(ds.test.images[1, ..., :3] * 255, view_image(8), atol=1e-3)
    assert ds.train.images[..., 3].min() == 1.0
    assert [Path(f).name for f in ds.test.files] == ["view_00.png", "view_08.png"]
    # COLMAP's own projection (x_cam = R X + t, +z forward, +y down) lands on the same pixel
    point = np.array([0.3, -0.2, 0.25])
    q, t = colmap_pose(truth_poses()[1])
    cam = Rotation.from_quat([q[1], q[2], q[3], q[0]]).apply(point) + t
    want = [TRUTH.fx * cam[0] / cam[2] + TRUTH.cx, TRUTH.fy * cam[1] / cam[2] + TRUTH.cy]
    np.testing.assert_allclose(project_points(point[None], ds.train.poses[0], ds.train.intrinsics)[0][0], want,
                               atol=1e-4)


@pytest.mark.parametrize("model", ["SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV",
                                   "OPENCV_FISHEYE"])
def test_every_camera_model_reads_from_text_and_binary(tmp_path, model):
    intr = Intrinsics(30.0, 30.0 if model.startswith(("SIMPLE", "RADIAL")) else 28.0, 16.3, 11.8, W, H)
    coeffs = {"SIMPLE_RADIAL": (0.01,), "RADIAL": (0.01, -0.002), "OPENCV": (0.01, -0.002, 0.001, -0.0005),
              "OPENCV_FISHEYE": (0.01, -0.002, 0.0005, -0.0001)}.get(model, ())
    for binary in (False, True):
        root = write_colmap(tmp_path / str(binary), model, binary, intr=intr, coeffs=coeffs)
        assert_truth(load_dataset(root), intr)
    cam = camera_from_colmap(model, W, H, pinhole_params(model, intr, coeffs), "cameras.txt line 1")
    assert cam.pinhole == intr
    assert cam.distorted == bool(coeffs)
    want = {"SIMPLE_RADIAL": (0.01, 0, 0, 0, 0), "RADIAL": (0.01, -0.002, 0, 0, 0),
            "OPENCV": (0.01, -0.002, 0, 0.001, -0.0005), "OPENCV_FISHEYE": coeffs}.get(model, ())
    if want:
        assert cam.coeffs == pytest.approx(want)


def test_nerfstudio_transforms_read_the_true_cameras(tmp_path):
    ds = load_dataset(write_nerfstudio(tmp_path, {"k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0}))
    assert_truth(ds)
    np.testing.assert_allclose(ds.train.images[0, ..., :3] * 255, view_image(1), atol=1e-3)


def test_nerfstudio_per_frame_intrinsics(tmp_path):
    """Intrinsics only in the frames: the first frame's are the views'; another frame's are remapped to them."""
    root = write_nerfstudio(tmp_path)
    doc = json.loads((root / "transforms.json").read_text())
    intr = {k: doc.pop(k) for k in ("fl_x", "fl_y", "cx", "cy", "w", "h")}
    for frame in doc["frames"]:
        frame.update(intr)
    (root / "transforms.json").write_text(json.dumps(doc))
    assert_truth(load_dataset(root))


# ----------------------------------------------------------------------------------------- distortion

BIG = Intrinsics(80.0, 78.0, 48.4, 35.6, 96, 72)
GRID = 12.0  # pixels between the grid lines of the pinhole image


def grid_value(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Soft grid lines (Gaussian profile, sigma 2 px) every GRID pixels, at pinhole pixel coordinates."""
    du = np.abs((u - 6.0 + GRID / 2) % GRID - GRID / 2)
    dv = np.abs((v - 6.0 + GRID / 2) % GRID - GRID / 2)
    return np.maximum(np.exp(-du ** 2 / 8.0), np.exp(-dv ** 2 / 8.0))


def ideal_point(cam: Camera, xd: np.ndarray, yd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The test's own inverse of the forward model (fixed-point / Newton iteration), to render the photo."""
    if cam.kind == "fisheye":
        theta_d = np.sqrt(xd ** 2 + yd ** 2)
        theta = theta_d.copy()
        k1, k2, k3, k4 = cam.coeffs
        for _ in range(30):
            t2 = theta ** 2
            f = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))) - theta_d
            df = 1 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + t2 * 9 * k4)))
            theta = theta - f / df
        s = np.where(theta_d > 1e-12, np.tan(theta) / np.maximum(theta_d, 1e-12), 1.0)
        return xd * s, yd * s
    x, y = xd.copy(), yd.copy()
    for _ in range(100):
        fx, fy = cam.distort(x, y)
        x, y = x - (fx - xd), y - (fy - yd)
    return x, y


def pinhole_grid() -> np.ndarray:
    rows, cols = np.mgrid[0:BIG.height, 0:BIG.width] + 0.5
    return grid_value(cols, rows)


def distorted_grid(cam: Camera) -> np.ndarray:
    """The photo the distorted camera takes of the grid the pinhole camera sees."""
    rows, cols = np.mgrid[0:BIG.height, 0:BIG.width] + 0.5
    xd, yd = (cols - BIG.cx) / BIG.fx, (rows - BIG.cy) / BIG.fy
    x, y = ideal_point(cam, xd, yd)
    assert np.abs(np.stack(cam.distort(x, y)) - np.stack([xd, yd])).max() < 1e-9
    return grid_value(BIG.fx * x + BIG.cx, BIG.fy * y + BIG.cy)


def line_bend(gray: np.ndarray, row: float, mask: np.ndarray) -> float:
    """How far (pixels) the horizontal grid line near ``row`` strays from straight: the spread of its
    per-column centroid over the columns between the vertical lines where the whole band is valid."""
    band = np.arange(int(row) - 5, int(row) + 6)
    between = np.abs((np.arange(gray.shape[1]) + 0.5 - 6.0) % GRID - GRID / 2) < 1.5
    cols = np.flatnonzero(mask[band].all(axis=0) & between)
    centres = []
    for c in cols:
        w = gray[band, c] - gray[band, c].min()
        if w.sum() > 1e-3:
            centres.append((w * (band + 0.5)).sum() / w.sum())
    return float(np.ptp(centres))


CAMERAS = {"opencv": Camera(BIG, "opencv", (-0.25, 0.08, 0.0, 0.002, -0.001)),
           "fisheye": Camera(BIG, "fisheye", (0.05, -0.02, 0.004, -0.001))}


@pytest.mark.parametrize("kind", ["opencv", "fisheye"])
def test_undistort_recovers_the_pinhole_grid(kind):
    cam = CAMERAS[kind]
    photo = distorted_grid(cam)
    rgba = np.concatenate([np.repeat(photo[..., None], 3, -1), np.ones(photo.shape + (1,))], -1)
    out, covered = undistort(rgba.astype(np.float32), cam, cam.pinhole)
    truth, valid = pinhole_grid(), out[..., 3] > 0.999
    assert valid.mean() > 0.6
    # barrel distortion (and this fisheye) photograph more than the pinhole sees: an opaque photo stays opaque
    assert out[..., 3].min() == 1.0 and covered.all()
    assert np.abs(out[..., 0] - truth)[valid].mean() < 0.02
    assert np.abs(photo - truth)[valid].mean() > 0.05  # the distortion was real
    row = 6.0 + GRID * 5  # a line far from the centre, where distortion bends it most
    assert line_bend(out[..., 0], row, valid) < 0.1
    assert line_bend(photo, row - 1, np.ones_like(valid)) > 1.0
    # a wider pinhole than the photo covers: the pixels outside it are transparent, the centre is not
    wide, covered = undistort(rgba.astype(np.float32), cam, Intrinsics(BIG.fx / 2, BIG.fy / 2, BIG.cx, BIG.cy, 96, 72))
    assert wide[0, 0, 3] == 0.0 and wide[-1, -1, 3] == 0.0 and wide[36, 48, 3] == 1.0
    assert not covered[0, 0] and not covered[-1, -1] and covered[36, 48]  # no data there, not transparency


def test_distorted_capture_loads_undistorted(tmp_path):
    """End to end: OPENCV distortion in nerfstudio transforms and OPENCV_FISHEYE in a COLMAP binary model."""
    cv, fish = CAMERAS["opencv"], CAMERAS["fisheye"]
    truth = pinhole_grid()
    for name, cam, write in [
        ("ns", cv, lambda root, imgs: write_nerfstudio(root, {
            "fl_x": BIG.fx, "fl_y": BIG.fy, "cx": BIG.cx, "cy": BIG.cy, "w": BIG.width, "h": BIG.height,
            "k1": cv.coeffs[0], "k2": cv.coeffs[1], "p1": cv.coeffs[3], "p2": cv.coeffs[4]}, imgs)),
        ("colmap", fish, lambda root, imgs: write_colmap(root, "OPENCV_FISHEYE", True, intr=BIG,
                                                         coeffs=fish.coeffs, images=imgs))]:
        photo = np.round(distorted_grid(cam) * 255).astype(np.uint8)
        ds = load_dataset(write(tmp_path / name, [np.repeat(photo[..., None], 3, -1)] * N_VIEWS))
        out = ds.train.images[2]
        valid = out[..., 3] > 0.999
        assert np.abs(out[..., 0] - truth)[valid].mean() < 0.02, name
        assert ds.train.images[..., 3].min() == 1.0  # opaque photos stay "no alpha" (masks.py: border colour)
        assert (ds.train.intrinsics.fx, ds.train.intrinsics.cx) == (BIG.fx, BIG.cx)


def test_pincushion_margins_hold_no_data_and_are_never_trained_on(tmp_path):
    """A pincushion lens (k1 > 0) photographs less than its pinhole sees: undistorted, the photo leaves margins
    with no data. Known answers: the margin is exactly the pinhole pixels the forward model sends outside the
    photo; opaque photos stay "no alpha" with the photo's own background (not the margins' emptiness); no
    training ray is drawn from a margin."""
    import torch

    from nstr.nerf.masks import inspect_masks
    from nstr.nerf.rays import SceneBox
    from nstr.tasks.nerf import NerfObjective, Renderer, build_radiance_field, nerf_config

    cam = Camera(BIG, "opencv", (0.25, 0.0, 0.0, 0.0, 0.0))
    background = np.array([76, 128, 178], np.uint8)
    rows, cols = np.mgrid[0:BIG.height, 0:BIG.width] + 0.5
    photo = np.where(((cols - 48) ** 2 + (rows - 36) ** 2 < 15 ** 2)[..., None], np.array([230, 200, 40], np.uint8),
                     background).astype(np.uint8)
    ds = load_dataset(write_colmap(tmp_path, "OPENCV", intr=BIG, coeffs=cam.coeffs[:4], images=[photo] * N_VIEWS))
    xd, yd = cam.distort((cols - BIG.cx) / BIG.fx, (rows - BIG.cy) / BIG.fy)
    u, v = BIG.fx * xd + BIG.cx, BIG.fy * yd + BIG.cy
    truth = (u >= 0) & (u <= BIG.width) & (v >= 0) & (v <= BIG.height)
    assert 0.05 < 1 - truth.mean() < 0.5  # the lens really leaves margins
    assert ds.train.valid is not None and ds.test.valid is not None
    assert (ds.train.valid == truth).all() and (ds.test.valid == truth).all()
    assert ds.train.images[..., 3][ds.train.valid].min() == 1.0  # where there is data, the photo is opaque
    info = inspect_masks(ds)
    assert not info.has_alpha  # the margins are not read as transparency
    np.testing.assert_allclose(info.background, background / 255, atol=1e-6)
    # resized for training, a pixel holds data only if all of its area did
    small = load_dataset(tmp_path, image_size=24)
    assert (small.train.valid == truth.reshape(24, 3, 24, 4).all((1, 3))).all()  # 3 x 4 photo pixels each
    cfg = nerf_config("quick", {"model": "hashgrid", "params": 5000, "train.batch_size": 4096})
    renderer = Renderer(build_radiance_field(cfg), SceneBox.from_aabb(ds.aabb), cfg.task)
    obj = NerfObjective(renderer, ds, torch.device("cpu"), info, 4096, 10)
    gen = torch.Generator().manual_seed(0)
    for step in range(3):
        target = obj.sample(step, gen)["target"].numpy()
        # a margin pixel is black (no data) and the photo has none; drawn from all pixels, 4,096 rays would miss
        # every margin (14.7 % of the pixels) with a chance of (1 - 0.147) ** 4096
        assert (target.max(1) > 0.1).all()


def test_pixels_with_data_travel_in_the_array_form(tmp_path):
    """A capture sent to the server as arrays keeps its margins; a mask of the wrong shape gets one line."""
    from nstr.nerf.dataset import dataset_from_arrays, dataset_to_arrays

    photo = np.full((BIG.height, BIG.width, 3), 128, np.uint8)
    ds = load_dataset(write_colmap(tmp_path, "OPENCV", intr=BIG, coeffs=(0.25, 0.0, 0.0, 0.0), images=[photo] * N_VIEWS))
    arrays = dataset_to_arrays(ds)
    back = dataset_from_arrays(arrays)
    assert (back.train.valid == ds.train.valid).all() and (back.test.valid == ds.test.valid).all()
    assert not back.train.valid.all()
    arrays["train_valid"] = arrays["train_valid"][:, :-1]
    with pytest.raises(InputError) as err:
        dataset_from_arrays(arrays)
    assert "'train_valid' has shape" in str(err.value) and "\n" not in str(err.value)


def test_a_region_of_interest_box_becomes_the_scene_box_and_one_no_camera_sees_is_refused(tmp_path):
    """``task.box``: the user's box replaces the cameras' one; a box behind every camera's picture gets one line
    naming the option, from the fit itself, before any training."""
    from nstr.errors import ConfigError
    from nstr.nerf.region import cameras_seeing, with_region
    from nstr.tasks.nerf import fit_nerf, nerf_config

    ds = load_dataset(write_colmap(tmp_path))
    assert ds.aabb_from == "cameras"
    near = with_region(ds, (-0.5, -0.4, -0.3, 0.5, 0.4, 0.3))
    np.testing.assert_allclose(near.aabb, [[-0.5, -0.4, -0.3], [0.5, 0.4, 0.3]], rtol=1e-7)
    assert near.aabb_from == "task.box"
    assert cameras_seeing(near.aabb, ds.train).all()       # every camera looks at the origin
    # a box around one camera's eye is seen by that camera (it is inside it)
    eye = ds.train.poses[0, :3, 3]
    assert cameras_seeing(np.stack([eye - 0.1, eye + 0.1]), ds.train)[0]
    far = (50.0, 50.0, 50.0, 51.0, 51.0, 51.0)
    assert not cameras_seeing(np.reshape(far, (2, 3)), ds.train).any()
    cfg = nerf_config("quick", {"task.box": ",".join(map(str, far)), "train.steps": 1})
    with pytest.raises(InputError) as err:
        fit_nerf(ds, cfg)
    message = str(err.value)
    assert "task.box" in message and "none of the 8 training cameras" in message and "\n" not in message
    with pytest.raises(ConfigError, match="task.box must be 6 numbers"):
        nerf_config("quick", {"task.box": "1,2,3"})
    with pytest.raises(ConfigError, match="not below max"):
        nerf_config("quick", {"task.box": "0,0,0,1,1,-1"})


# ----------------------------------------------------------------------------------------- bad input


def refused(root: Path, *words: str) -> str:
    for call in (check_dataset_folder, load_dataset):
        with pytest.raises(InputError) as err:
            call(root)
        message = str(err.value)
        assert "\n" not in message
        for word in words:
            assert word in message, (word, message)
    return message


def test_missing_photo(tmp_path):
    root = write_colmap(tmp_path)
    (root / "images" / "view_03.png").unlink()
    refused(root, "images.txt", "NAME", "view_03.png", "not found")


def test_truncated_binary(tmp_path):
    root = write_colmap(tmp_path, binary=True)
    data = (root / "sparse/0/images.bin").read_bytes()
    (root / "sparse/0/images.bin").write_bytes(data[:200])
    refused(root, "images.bin", "truncated", "image")
    (root / "sparse/0/cameras.bin").write_bytes(b"\1\0\0")
    refused(root, "cameras.bin", "truncated", "camera count")


def test_text_line_with_wrong_field_count(tmp_path):
    root = write_colmap(tmp_path)
    path = root / "sparse/0/images.txt"
    lines = path.read_text().splitlines()
    lines[4] = " ".join(lines[4].split()[:8])
    path.write_text("\n".join(lines) + "\n")
    refused(root, "images.txt line 5", "8 fields", "CAMERA_ID NAME")
    root = write_colmap(tmp_path / "b")
    (root / "sparse/0/cameras.txt").write_text("1 PINHOLE 32 24 30.0 28.0 16.3\n")
    refused(root, "cameras.txt line 1", "PINHOLE needs 4")


def test_unknown_camera_model(tmp_path):
    root = write_colmap(tmp_path)
    (root / "sparse/0/cameras.txt").write_text("1 FOV 32 24 30 30 16 12 0.1\n")
    refused(root, "cameras.txt line 1", "FOV", "not read")
    root = write_colmap(tmp_path / "b", binary=True)
    (root / "sparse/0/cameras.bin").write_bytes(struct.pack("<QiiQQ", 1, 1, 99, W, H))
    refused(root, "cameras.bin camera 1", "model id 99 is not read")
    root = write_nerfstudio(tmp_path / "c", {"camera_model": "EQUIRECTANGULAR"})
    refused(root, "transforms.json frames[1]", "camera_model 'EQUIRECTANGULAR' is not read")
    root = write_nerfstudio(tmp_path / "d", {"k1": "0.1"})
    refused(root, "transforms.json frames[1]", "'k1' must be a number")


def test_too_few_views(tmp_path):
    refused(write_colmap(tmp_path, n=7), "sparse/0/images.txt", "registers 7 images", "fewer than the 8")


def test_camera_id_missing_from_cameras_file(tmp_path):
    root = write_colmap(tmp_path)
    (root / "sparse/0/cameras.txt").write_text("2 PINHOLE 32 24 30 28 16.3 11.8\n")
    refused(root, "images.txt line", "CAMERA_ID 1", "cameras.txt")


def test_no_transforms_and_no_model(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(InputError, match="no transforms.*json.*COLMAP model in sparse/0"):
        load_dataset(tmp_path)


def test_capture_resized_and_photos_saved_smaller(tmp_path):
    """task.image_size resizes a capture's views; photos saved at half the size COLMAP saw (an images_2
    folder) get the camera scaled to them."""
    ds = load_dataset(write_colmap(tmp_path / "a", binary=True), image_size=16)
    assert ds.train.images.shape[1:] == (16, 16, 4)
    assert ds.train.intrinsics == TRUTH.scaled(16, 16)
    seen = Intrinsics(60.0, 56.0, 32.6, 23.6, 64, 48)  # the photos are 32x24
    assert_truth(load_dataset(write_colmap(tmp_path / "b", "OPENCV", intr=seen, coeffs=(0.01, 0, 0, 0))), TRUTH)


def test_sample_maps_are_shared_per_camera_and_bounded():
    cam = CAMERAS["opencv"]
    photo = np.random.default_rng(0).random((BIG.height, BIG.width, 4)).astype(np.float32)
    maps: dict = {}
    once = undistort(photo, cam, BIG)[0]
    assert np.array_equal(undistort(photo, cam, BIG, maps)[0], once)
    assert np.array_equal(undistort(photo, Camera(BIG, "opencv", cam.coeffs), BIG, maps)[0], once)
    assert len(maps) == 1  # an equal camera reuses the map
    for k in range(6):
        undistort(photo, Camera(BIG, "opencv", (0.01 * k, 0, 0, 0, 0)), BIG, maps)
    assert len(maps) == MAX_MAPS


def test_files_that_leave_the_folder_are_refused(tmp_path):
    outside = write_colmap(tmp_path / "outside")
    root = write_colmap(tmp_path / "a")
    (root / "sparse/0/images.txt").unlink()
    (root / "sparse/0/images.txt").symlink_to(outside / "sparse/0/images.txt")
    refused(root, "sparse/0/images.txt", "outside the dataset folder")
    root = write_colmap(tmp_path / "b")
    (root / "images/view_05.png").unlink()
    (root / "images/view_05.png").symlink_to(outside / "images/view_05.png")
    refused(root, "images.txt line", "view_05.png", "outside the dataset folder")


@pytest.mark.parametrize("geometry", ["sdf", "density"])
def test_the_mesh_is_cut_to_the_region_box_and_closed_there(geometry: str) -> None:
    """A known answer: the NeuS field starts as a sphere (radius init_radius in the field's cube). A region box
    whose floor passes through the sphere's centre leaves the upper half-ball: every vertex inside the box,
    the mesh closed (no boundary edges, one piece, genus 0) and its volume half of the uncut ball's (within
    3 %). The density field (no sphere start) is cut too: nothing of it outside the box, and closed."""
    import torch

    from nstr.geometry.topology import topology
    from nstr.nerf.mesh import extract_mesh, extract_sdf_mesh, field_region
    from nstr.nerf.rays import SceneBox
    from nstr.tasks.nerf import build_radiance_field, nerf_config

    torch.manual_seed(0)
    centre, half = np.array([1.0, 2.0, 3.0]), 2.0
    scene = SceneBox(torch.tensor(centre, dtype=torch.float32), half)
    world_box = np.array([centre - 1.8, centre + 1.8])
    world_box[0, 2] = centre[2]                       # the floor through the centre
    region = field_region(scene, world_box)
    cfg = nerf_config("quick", {"task.geometry": geometry, "params": 20000})
    model = build_radiance_field(cfg)
    res = 64 if geometry == "sdf" else 32   # a random density is a dense foam: its detail maps dominate the cost
    if geometry == "sdf":
        arrays, meta = extract_sdf_mesh(model, scene, res, bake=False, region=region)
        whole, _ = extract_sdf_mesh(model, scene, res, bake=False)
    else:
        level = float(torch.quantile(model.density(torch.rand(4000, 3) * 2 - 1).detach(), 0.5))
        arrays, meta = extract_mesh(model, scene, res, level, bake=False, region=region, keep_all_components=True)
        whole, _ = extract_mesh(model, scene, res, level, bake=False, keep_all_components=True)
    v, f = arrays["vertices"].astype(np.float64), arrays["faces"].astype(np.int64)
    voxel = 2.0 * half / (res - 1)
    assert v[:, 2].min() >= centre[2] - voxel and np.all(v >= world_box[0] - voxel) and np.all(v <= world_box[1] + voxel)
    assert whole["vertices"][:, 2].min() < centre[2] - 0.5 * half * cfg.task.init_radius  # uncut: both halves
    top = topology(f, v)
    assert top["boundary_edges"] == 0, top
    if geometry == "sdf":
        assert top["components"] == 1 and top["genus"] == 0, top
        def volume(mesh_v: np.ndarray, mesh_f: np.ndarray) -> float:
            tri = mesh_v[mesh_f]
            return abs(float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum())) / 6.0

        ratio = volume(v, f) / volume(whole["vertices"].astype(np.float64), whole["faces"].astype(np.int64))
        print(f"cut volume / whole {ratio:.4f}, topology {top}")
        assert abs(ratio - 0.5) < 0.015, ratio
