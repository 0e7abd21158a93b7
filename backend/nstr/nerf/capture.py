"""Photo captures: COLMAP sparse models and nerfstudio cameras with lens distortion, read as pinhole views.

A COLMAP capture folder holds its images in ``images/`` and a sparse model (``cameras.txt`` +
``images.txt``, or ``cameras.bin`` + ``images.bin``) in the first of :data:`COLMAP_MODEL_DIRS` that has
one. COLMAP stores world-to-camera poses (quaternion w, x, y, z and translation) in the OpenCV camera
convention (looking down +z, +y down); they become camera-to-world matrices in the NeRF convention
(looking down -z, +y up) by flipping the camera's y and z axes. The world frame stays COLMAP's.

Lens distortion is removed at load (:mod:`nstr.nerf.lens`). :func:`load_capture` and
:func:`check_capture` are reached through :mod:`nstr.nerf.source`, which picks the reader for a folder.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nstr.errors import InputError
from nstr.nerf.dataset import (HOLDOUT_EVERY, LOAD_CHUNK, MIN_VIEWS, ImageFinder, Intrinsics, LoadBudget,
                               NerfDataset, Views, aabb_from_cameras, check_camera_spread, check_poses,
                               dataset_file, read_image, resize_rgba, resize_valid, valid_or_none)
from nstr.nerf.lens import Camera, needs_remap, undistort

COLMAP_MODEL_DIRS = ("sparse/0", "sparse", "colmap/sparse/0")  # where a capture's model is looked for, in order
IMAGES_DIR = "images"

# COLMAP's camera models: id -> (name, number of parameters), as in its src/colmap/sensor/models.h.
COLMAP_MODELS = {0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5),
                 4: ("OPENCV", 8), 5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5),
                 8: ("SIMPLE_RADIAL_FISHEYE", 4), 9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12)}
READ_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "OPENCV_FISHEYE")
UNKNOWN_MODEL_FIX = ("Undistort the capture with colmap image_undistorter, or re-run COLMAP with "
                     "--ImageReader.camera_model OPENCV")
CV_TO_NERF = np.diag([1.0, -1.0, -1.0, 1.0])  # camera axes: OpenCV (+y down, +z forward) -> NeRF (+y up, -z forward)


def camera_from_colmap(model: str, width: int, height: int, params: list[float], where: str) -> Camera:
    """A COLMAP camera (model name and parameter list as COLMAP orders them) as a :class:`Camera`."""
    if model not in READ_MODELS:
        raise InputError(f"{where}: camera model {model} is not read (only {', '.join(READ_MODELS)})",
                         UNKNOWN_MODEL_FIX)
    expected = next(n for name, n in COLMAP_MODELS.values() if name == model)
    if len(params) != expected or not all(math.isfinite(p) for p in params):
        raise InputError(f"{where}: camera model {model} needs {expected} finite parameters, not {params}",
                         "Fix the camera line")
    if width <= 0 or height <= 0:
        raise InputError(f"{where}: width x height = {width}x{height}", "Fix the camera's image size")
    p = params
    simple = model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL")  # one focal length f, then cx, cy
    intr = Intrinsics(p[0], p[0], p[1], p[2], width, height) if simple else Intrinsics(*p[:4], width, height)
    if intr.fx <= 0 or intr.fy <= 0:
        raise InputError(f"{where}: focal length {intr.fx}, {intr.fy} is not positive", "Fix the camera line")
    if model == "SIMPLE_RADIAL":
        return Camera(intr, "opencv", (p[3], 0.0, 0.0, 0.0, 0.0))
    if model == "RADIAL":
        return Camera(intr, "opencv", (p[3], p[4], 0.0, 0.0, 0.0))
    if model == "OPENCV":
        return Camera(intr, "opencv", (p[4], p[5], 0.0, p[6], p[7]))
    if model == "OPENCV_FISHEYE":
        return Camera(intr, "fisheye", tuple(p[4:8]))
    return Camera(intr)


def colmap_pose(qvec: Any, tvec: Any, where: str) -> np.ndarray:
    """COLMAP's world-to-camera (qw, qx, qy, qz; t), OpenCV axes, as a NeRF-convention camera-to-world 4x4."""
    q = np.asarray(qvec, np.float64)
    t = np.asarray(tvec, np.float64)
    norm = float(np.linalg.norm(q))
    if not np.all(np.isfinite(q)) or not np.all(np.isfinite(t)) or norm < 1e-9:
        raise InputError(f"{where}: the pose (qvec {q.tolist()}, tvec {t.tolist()}) is not a rotation",
                         "Fix the image's pose or re-run COLMAP")
    w, x, y, z = q / norm
    rot = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                    [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                    [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
    c2w = np.eye(4)
    c2w[:3, :3] = rot.T
    c2w[:3, 3] = -rot.T @ t
    return c2w @ CV_TO_NERF


# ----------------------------------------------------------------------------------------- COLMAP files


@dataclass
class ColmapImage:
    name: str
    camera_id: int
    pose: np.ndarray  # (4, 4) camera-to-world, NeRF convention
    where: str


def _text_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of a COLMAP text file, comments and the final newline dropped; blank lines kept
    (an image with no 2-D points has an empty second line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path.name} is unreadable ({type(err).__name__})", "Check the file") from None
    return [(i + 1, line.strip()) for i, line in enumerate(text.splitlines()) if not line.lstrip().startswith("#")]


def _numbers(fields: list[str], kind: type, where: str, field: str) -> list[Any]:
    try:
        return [kind(f) for f in fields]
    except ValueError:
        raise InputError(f"{where}: {field} {' '.join(fields)} are not numbers", "Fix the line") from None


def read_cameras_text(path: Path) -> dict[int, Camera]:
    cameras = {}
    for number, line in _text_lines(path):
        if not line:
            continue
        where = f"{path.name} line {number}"
        fields = line.split()
        if len(fields) < 5:
            raise InputError(f"{where} has {len(fields)} fields, not CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]",
                             "Fix the line or re-export the model from COLMAP")
        cam_id, width, height = _numbers([fields[0], fields[2], fields[3]], int, where, "CAMERA_ID WIDTH HEIGHT")
        params = _numbers(fields[4:], float, where, "PARAMS")
        cameras[cam_id] = camera_from_colmap(fields[1], width, height, params, f"{where} (camera {cam_id})")
    return cameras


def read_images_text(path: Path) -> list[ColmapImage]:
    """Each image is two lines: IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME, then its 2-D points (skipped)."""
    lines = _text_lines(path)
    images, k = [], 0
    while k < len(lines):
        number, line = lines[k]
        if not line:
            k += 1
            continue
        where = f"{path.name} line {number}"
        fields = line.split(maxsplit=9)
        if len(fields) != 10:
            raise InputError(f"{where} has {len(fields)} fields, not IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME",
                             "Fix the line or re-export the model from COLMAP")
        values = _numbers(fields[1:8], float, where, "QW QX QY QZ TX TY TZ")
        camera_id = _numbers(fields[8:9], int, where, "CAMERA_ID")[0]
        images.append(ColmapImage(fields[9], camera_id, colmap_pose(values[:4], values[4:], where), where))
        k += 2  # the POINTS2D line follows
    return images


class _Reader:
    """Little-endian fields from a COLMAP binary file; running out of bytes is one InputError naming the field."""

    def __init__(self, path: Path) -> None:
        try:
            self.data = path.read_bytes()
        except OSError as err:
            raise InputError(f"{path.name} is unreadable ({type(err).__name__})", "Check the file") from None
        self.name, self.at = path.name, 0

    def read(self, fmt: str, field: str) -> tuple[Any, ...]:
        size = struct.calcsize("<" + fmt)
        if self.at + size > len(self.data):
            raise InputError(f"{self.name} is truncated: it ends at byte {len(self.data)} inside {field}",
                             "Re-export the model from COLMAP (colmap model_converter)")
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += size
        return values

    def skip(self, size: int, field: str) -> None:
        if self.at + size > len(self.data):
            raise InputError(f"{self.name} is truncated: it ends at byte {len(self.data)} inside {field}",
                             "Re-export the model from COLMAP (colmap model_converter)")
        self.at += size

    def name_string(self, field: str) -> str:
        end = self.data.find(b"\0", self.at)
        if end < 0:
            raise InputError(f"{self.name} is truncated: it ends inside {field}",
                             "Re-export the model from COLMAP (colmap model_converter)")
        raw, self.at = self.data[self.at:end], end + 1
        return raw.decode("utf-8", errors="replace")


def read_cameras_binary(path: Path) -> dict[int, Camera]:
    """uint64 count; per camera int32 id, int32 model id, uint64 width, uint64 height, float64 params."""
    reader = _Reader(path)
    (count,) = reader.read("Q", "the camera count")
    cameras = {}
    for k in range(count):
        cam_id, model_id, width, height = reader.read("iiQQ", f"camera {k}")
        where = f"{path.name} camera {cam_id}"
        if model_id not in COLMAP_MODELS:
            raise InputError(f"{where}: camera model id {model_id} is not read (only {', '.join(READ_MODELS)})",
                             UNKNOWN_MODEL_FIX)
        model, n_params = COLMAP_MODELS[model_id]
        params = list(reader.read("d" * n_params, f"camera {cam_id}'s params"))
        cameras[cam_id] = camera_from_colmap(model, width, height, params, where)
    return cameras


def read_images_binary(path: Path) -> list[ColmapImage]:
    """uint64 count; per image int32 id, 4 + 3 float64 (qvec, tvec), int32 camera id, NUL-ended name,
    uint64 point count, then (float64 x, float64 y, int64 point id) per point (skipped)."""
    reader = _Reader(path)
    (count,) = reader.read("Q", "the image count")
    images = []
    for k in range(count):
        image_id, *values, camera_id = reader.read("idddddddi", f"image {k}'s pose")
        where = f"{path.name} image {image_id}"
        name = reader.name_string(f"image {image_id}'s name")
        (n_points,) = reader.read("Q", f"image {image_id}'s point count")
        reader.skip(24 * n_points, f"image {image_id}'s points")
        images.append(ColmapImage(name, camera_id, colmap_pose(values[:4], values[4:], where), where))
    return images


def find_colmap_model(root: Path) -> tuple[Path, Path] | None:
    """(cameras file, images file) of the first model in :data:`COLMAP_MODEL_DIRS`, binary before text."""
    for folder in COLMAP_MODEL_DIRS:
        for ext in ("bin", "txt"):
            cams = dataset_file(root, f"{folder}/cameras.{ext}")
            imgs = dataset_file(root, f"{folder}/images.{ext}")
            if cams is not None and imgs is not None:
                return cams, imgs
    return None


# ----------------------------------------------------------------------------------------- nerfstudio


# ----------------------------------------------------------------------------------------- a COLMAP capture


@dataclass
class CaptureFrames:
    """A COLMAP capture checked without decoding a photo: registered images by name, their cameras, poses."""

    names: list[str]
    files: list[str]  # the photos, inside the folder
    cameras: list[Camera]
    poses: np.ndarray  # (N, 4, 4) float32, NeRF-convention camera-to-world
    wheres: list[str]
    target: Intrinsics  # the pinhole every view is loaded as (the most used camera's)
    model: str  # the images file, for messages


def read_colmap_frames(root: Path, budget: LoadBudget) -> CaptureFrames:
    """Read and check a capture's sparse model and find its photos (cheap: no photo is decoded)."""
    model = find_colmap_model(root)
    if model is None:
        raise InputError(f"{root} has no transforms*.json and no COLMAP model "
                         f"({', '.join(d + '/cameras.bin|txt + images.bin|txt' for d in COLMAP_MODEL_DIRS)})",
                         "Give transforms_train.json or transforms.json, or a COLMAP sparse model with images/")
    cams_file, imgs_file = model
    text = cams_file.suffix == ".txt"
    cameras = read_cameras_text(cams_file) if text else read_cameras_binary(cams_file)
    images = sorted(read_images_text(imgs_file) if text else read_images_binary(imgs_file), key=lambda im: im.name)
    rel_model = imgs_file.relative_to(root).as_posix()
    if len(images) < MIN_VIEWS:
        raise InputError(f"{rel_model} registers {len(images)} images, fewer than the {MIN_VIEWS} views a capture "
                         f"needs", "Photograph the object from more places, or re-run COLMAP's mapper")
    budget.take_frames(len(images), rel_model)
    for im in images:
        if im.camera_id not in cameras:
            raise InputError(f"{im.where}: CAMERA_ID {im.camera_id} is not in {cams_file.name}",
                             "Export cameras and images from the same COLMAP model")
    counts: dict[int, int] = {}
    for im in images:
        counts[im.camera_id] = counts.get(im.camera_id, 0) + 1
    target = cameras[max(counts, key=lambda c: counts[c])].pinhole
    finder = ImageFinder(root)
    files = []
    for k, im in enumerate(images):
        if budget.progress is not None and k % (64 * LOAD_CHUNK) == 0:
            budget.progress(budget.frames - len(images), budget.frames)  # a stop check: no photo loaded yet
        files.append(finder.find(f"{IMAGES_DIR}/{im.name}", f"{im.where} (NAME)",
                                 f"Put the photo in {IMAGES_DIR}/ or remove the image from the model"))
    wheres = [im.where for im in images]
    poses = check_poses([im.pose for im in images], lambda k: f"{wheres[k]} (QW..TZ)")
    return CaptureFrames([im.name for im in images], files, [cameras[im.camera_id] for im in images], poses,
                         wheres, target, rel_model)


def holdout_split(n: int) -> tuple[list[int], list[int]]:
    """(train, test) indices: every 8th view, in name order, is a test view, as for one transforms.json."""
    return ([i for i in range(n) if i % HOLDOUT_EVERY != 0], [i for i in range(n) if i % HOLDOUT_EVERY == 0])


def check_capture(root: Path, budget: LoadBudget) -> CaptureFrames:
    """Everything :func:`load_capture` checks before it decodes a photo (the model, the files, the spread)."""
    frames = read_colmap_frames(root, budget)
    train, _ = holdout_split(len(frames.names))
    check_camera_spread(frames.poses[train], f"training cameras in {root}")
    return frames


def load_photo(file: str, camera: Camera, target: Intrinsics, where: str, image_size: int,
               maps: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """One photo as a pinhole RGBA view: read, undistorted (or remapped to ``target``), resized; and its
    pixels that hold data (None: all of them; :func:`nstr.nerf.lens.undistort`)."""
    img = read_image(Path(file), where, 0)
    h, w = img.shape[:2]
    seen = camera.pinhole
    if (w, h) != (seen.width, seen.height):
        if abs(w / h - seen.width / seen.height) > 1e-3:
            raise InputError(f"{where}: photo {Path(file).name} is {w}x{h} but its camera is "
                             f"{seen.width}x{seen.height}", "Give the photos COLMAP registered, at their size")
        s = w / seen.width  # photos saved smaller than COLMAP saw them (an images_2 folder)
        target = target.scaled(round(target.width * s), round(target.height * s))
        camera = camera.scaled(w, h)
    covered = None
    if needs_remap(camera, target):
        img, covered = undistort(img, camera, target, maps)
        covered = resize_valid(covered, image_size) if image_size else covered
    return (resize_rgba(img, image_size) if image_size else img), covered


def load_capture(root: Path, image_size: int, budget: LoadBudget) -> NerfDataset:
    """A COLMAP capture as a dataset: every 8th photo (by name) a test view, the box from the cameras."""
    frames = check_capture(root, budget)
    n = len(frames.names)
    size = (image_size, image_size) if image_size else (frames.target.height, frames.target.width)
    budget.take_pixels(n, *size, frames.model)
    views, valid, maps = [], [], {}
    for k in range(n):
        if budget.progress is not None and k % LOAD_CHUNK == 0:
            budget.progress(budget.frames - n + k, budget.frames)  # may raise: a cancelled load stops here
        view, covered = load_photo(frames.files[k], frames.cameras[k], frames.target, frames.wheres[k], image_size,
                                   maps)
        views.append(view)
        valid.append(covered if covered is not None else np.ones(view.shape[:2], bool))
    shapes = {v.shape for v in views}
    if len(shapes) > 1:
        raise InputError(f"{frames.model}: the photos load at {len(shapes)} different sizes",
                         "Give every photo the same size")
    intr = frames.target.scaled(views[0].shape[1], views[0].shape[0])

    def split(name: str, idx: list[int]) -> Views:
        return Views(name, np.stack([views[i] for i in idx]).astype(np.float32), frames.poses[idx], intr,
                     [frames.files[i] for i in idx], valid_or_none([valid[i] for i in idx]))

    train_idx, test_idx = holdout_split(n)
    train = split("train", train_idx)
    return NerfDataset(train, split("test", test_idx), aabb_from_cameras(train), str(root), "cameras")
