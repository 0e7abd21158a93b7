"""Photo captures: COLMAP sparse models and nerfstudio cameras with lens distortion, read as pinhole views.

A COLMAP capture folder holds its images in ``images/`` and a sparse model (``cameras.txt`` +
``images.txt``, or ``cameras.bin`` + ``images.bin``) in the first of :data:`COLMAP_MODEL_DIRS` that has
one. COLMAP stores world-to-camera poses (quaternion w, x, y, z and translation) in the OpenCV camera
convention (looking down +z, +y down); they become camera-to-world matrices in the NeRF convention
(looking down -z, +y up) by flipping the camera's y and z axes. The world frame stays COLMAP's.

Lens distortion (COLMAP's SIMPLE_RADIAL, RADIAL, OPENCV, OPENCV_FISHEYE; nerfstudio's ``k1 k2 k3 p1 p2``
or ``camera_model: OPENCV_FISHEYE`` with ``k1..k4``) is removed at load: every pixel of the pinhole
camera with the same fx, fy, cx, cy samples the photo where the forward (closed-form) distortion model
sends it, bilinearly; pixels that fall outside the photo get alpha 0. Everything downstream stays pinhole.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from nstr.errors import InputError
from nstr.nerf.dataset import (HOLDOUT_EVERY, LOAD_CHUNK, ImageFinder, Intrinsics, LoadBudget, NerfDataset, Views,
                               aabb_from_cameras, check_camera_spread, check_poses, dataset_file, intrinsics_from,
                               read_image, resize_rgba)

COLMAP_MODEL_DIRS = ("sparse/0", "sparse", "colmap/sparse/0")  # where a capture's model is looked for, in order
IMAGES_DIR = "images"
MAX_MAPS = 4  # sample maps kept while loading (24 bytes a pixel each)
MIN_VIEWS = 8  # fewer usable views give a NeRF too little parallax to be worth fitting

# COLMAP's camera models: id -> (name, number of parameters), as in its src/colmap/sensor/models.h.
COLMAP_MODELS = {0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5),
                 4: ("OPENCV", 8), 5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5),
                 8: ("SIMPLE_RADIAL_FISHEYE", 4), 9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12)}
READ_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "OPENCV_FISHEYE")
UNKNOWN_MODEL_FIX = ("Undistort the capture with colmap image_undistorter, or re-run COLMAP with "
                     "--ImageReader.camera_model OPENCV")
CV_TO_NERF = np.diag([1.0, -1.0, -1.0, 1.0])  # camera axes: OpenCV (+y down, +z forward) -> NeRF (+y up, -z forward)


@dataclass
class Camera:
    """A camera as photographed: its pinhole part plus distortion. ``kind`` is "pinhole", "opencv" (coeffs
    k1, k2, k3, p1, p2: radial-tangential) or "fisheye" (coeffs k1..k4: equidistant, OpenCV's model)."""

    pinhole: Intrinsics
    kind: str = "pinhole"
    coeffs: tuple[float, ...] = ()

    def scaled(self, width: int, height: int) -> "Camera":
        """The same lens on photos saved at another size (distortion works on normalised coordinates)."""
        return Camera(self.pinhole.scaled(width, height), self.kind, self.coeffs)

    @property
    def distorted(self) -> bool:
        return self.kind != "pinhole" and any(c != 0.0 for c in self.coeffs)

    def distort(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The forward model on normalised image coordinates (x = X/Z, y = Y/Z, OpenCV axes)."""
        if self.kind == "opencv":
            k1, k2, k3, p1, p2 = self.coeffs
            r2 = x * x + y * y
            radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
            return (x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x),
                    y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y)
        if self.kind == "fisheye":
            k1, k2, k3, k4 = self.coeffs
            r = np.sqrt(x * x + y * y)
            theta = np.arctan(r)
            t2 = theta * theta
            theta_d = theta * (1.0 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
            scale = np.where(r > 1e-12, theta_d / np.maximum(r, 1e-12), 1.0)
            return x * scale, y * scale
        return x, y


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


def lens_from_transforms(doc: Mapping[str, Any], frame: Mapping[str, Any],
                         where: str) -> tuple[str, tuple[float, ...]]:
    """(kind, coeffs) of a frame in a nerfstudio transforms file: ``k1 k2 k3 p1 p2`` (OPENCV) or ``k1..k4``
    (``camera_model: OPENCV_FISHEYE``), each key from the frame or else the file."""

    def value(key: str) -> float:
        raw = frame.get(key, doc.get(key, 0.0))
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
            raise InputError(f"{where}: '{key}' must be a number, not {raw!r}", "Fix the distortion coefficients")
        return float(raw)

    model = frame.get("camera_model", doc.get("camera_model", "OPENCV"))
    if model == "OPENCV_FISHEYE":
        return "fisheye", tuple(value(k) for k in ("k1", "k2", "k3", "k4"))
    if model in ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE"):
        return "opencv", tuple(value(k) for k in ("k1", "k2", "k3", "p1", "p2"))
    raise InputError(f"{where}: camera_model {model!r} is not read (only OPENCV, OPENCV_FISHEYE, PINHOLE)",
                     "Undistort the images first, or give OPENCV / OPENCV_FISHEYE coefficients")


def camera_from_transforms(doc: Mapping[str, Any], frame: Mapping[str, Any], target: Intrinsics,
                           where: str) -> Camera:
    """A frame's camera in a nerfstudio transforms file: its own ``fl_x fl_y cx cy w h`` when it has them
    (else the file's, ``target``) and its lens (:func:`lens_from_transforms`)."""
    intr = intrinsics_from(frame, target.width, target.height, where) if "fl_x" in frame else target
    return Camera(intr, *lens_from_transforms(doc, frame, where))


def check_transforms_lenses(doc: Mapping[str, Any], frames: list[Mapping[str, Any]], wheres: list[str]) -> None:
    """The lens keys of every frame, checked without an image (for check_dataset_folder)."""
    for frame, where in zip(frames, wheres):
        lens_from_transforms(doc, frame, where)


def transforms_cameras(doc: Mapping[str, Any], frames: list[Mapping[str, Any]], target: Intrinsics,
                       where: list[str]) -> list[Camera] | None:
    """Per-frame cameras when a transforms file needs remapping (distortion, or a frame's own intrinsics),
    else None: a plain pinhole file loads exactly as before."""
    keys = ("k1", "k2", "k3", "k4", "p1", "p2", "camera_model", "fl_x")
    if not any(k in doc for k in keys[:-1]) and not any(k in f for f in frames for k in keys):
        return None
    cams = [camera_from_transforms(doc, f, target, w) for f, w in zip(frames, where)]
    return cams if any(needs_remap(c, target) for c in cams) else None


# ----------------------------------------------------------------------------------------- undistortion


def needs_remap(camera: Camera, target: Intrinsics) -> bool:
    return camera.distorted or camera.pinhole != target


def sample_map(camera: Camera, target: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel of the pinhole ``target`` samples the photo ``camera`` took: (flat index of the
    top-left neighbour in the photo padded by one pixel, (H*W, 4) float32 bilinear weights). The same for
    every photo of a camera, so it is computed once per camera."""
    rows, cols = np.meshgrid(np.arange(target.height) + 0.5, np.arange(target.width) + 0.5, indexing="ij")
    xd, yd = camera.distort((cols - target.cx) / target.fx, (rows - target.cy) / target.fy)
    src = camera.pinhole
    w, h = src.width, src.height
    us, vs = src.fx * xd + src.cx - 0.5, src.fy * yd + src.cy - 0.5  # photo pixel centres at integers
    # the photo covers [-0.5, w - 0.5]: inside it a sample is the photo's, however near the edge (so an opaque
    # photo that covers the pinhole view stays opaque, and its views stay "no alpha"); outside it, nothing
    inside = ((us >= -0.5) & (us <= w - 0.5) & (vs >= -0.5) & (vs <= h - 0.5)).ravel()
    u = np.clip(us + 1.0, 0.0, w + 1.0).ravel()  # in the photo padded by one pixel
    v = np.clip(vs + 1.0, 0.0, h + 1.0).ravel()
    u0 = np.minimum(np.floor(u).astype(np.int64), w)
    v0 = np.minimum(np.floor(v).astype(np.int64), h)
    fu, fv = (u - u0).astype(np.float32), (v - v0).astype(np.float32)
    weights = np.stack([(1 - fu) * (1 - fv), fu * (1 - fv), (1 - fu) * fv, fu * fv], -1) * inside[:, None]
    return v0 * (w + 2) + u0, weights


def undistort(image: np.ndarray, camera: Camera, target: Intrinsics, maps: dict[str, Any] | None = None) -> np.ndarray:
    """The (H, W, 4) RGBA photo taken through ``camera`` as seen by the pinhole ``target``: each target pixel
    centre is sent through the forward model and sampled bilinearly (premultiplied, so transparent pixels
    don't bleed); samples outside the photo (beyond its outer pixel edges) have alpha 0. ``maps`` caches
    :func:`sample_map` per camera."""
    key = repr((camera, target))
    if maps is None or key not in maps:
        found = sample_map(camera, target)
        if maps is not None:
            if len(maps) >= MAX_MAPS:  # per-frame intrinsics: every frame its own camera; keep memory bounded
                maps.pop(next(iter(maps)))
            maps[key] = found
    index, weights = maps[key] if maps is not None else found
    h, w = image.shape[:2]
    assert (w, h) == (camera.pinhole.width, camera.pinhole.height), "the photo is not the camera's size"
    premul = np.concatenate([image[..., :3] * image[..., 3:], image[..., 3:]], -1).astype(np.float32)
    flat = np.pad(premul, ((1, 1), (1, 1), (0, 0)), mode="edge").reshape(-1, 4)  # edge pixels out to the border
    out = np.zeros((len(index), 4), np.float32)
    for k, offset in enumerate((0, 1, w + 2, w + 3)):
        out += flat[index + offset] * weights[:, k:k + 1]
    out = out.reshape(target.height, target.width, 4)
    alpha = np.where(out[..., 3:] > 1.0 - 1e-5, 1.0, out[..., 3:])  # the weights sum to 1 up to rounding
    rgb = np.where(alpha > 1e-6, out[..., :3] / np.maximum(alpha, 1e-6), 0.0)
    return np.clip(np.concatenate([rgb, alpha], -1), 0.0, 1.0).astype(np.float32)


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


def _holdout(n: int) -> tuple[list[int], list[int]]:
    """(train, test) indices: every 8th view, in name order, is a test view, as for one transforms.json."""
    return ([i for i in range(n) if i % HOLDOUT_EVERY != 0], [i for i in range(n) if i % HOLDOUT_EVERY == 0])


def check_capture(root: Path, budget: LoadBudget) -> CaptureFrames:
    """Everything :func:`load_capture` checks before it decodes a photo (the model, the files, the spread)."""
    frames = read_colmap_frames(root, budget)
    train, _ = _holdout(len(frames.names))
    check_camera_spread(frames.poses[train], f"training cameras in {root}")
    return frames


def load_photo(file: str, camera: Camera, target: Intrinsics, where: str, image_size: int,
               maps: dict[str, Any] | None = None) -> np.ndarray:
    """One photo as a pinhole RGBA view: read, undistorted (or remapped to ``target``), resized."""
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
    if needs_remap(camera, target):
        img = undistort(img, camera, target, maps)
    return resize_rgba(img, image_size) if image_size else img


def load_capture(root: Path, image_size: int, budget: LoadBudget) -> NerfDataset:
    """A COLMAP capture as a dataset: every 8th photo (by name) a test view, the box from the cameras."""
    frames = check_capture(root, budget)
    n = len(frames.names)
    size = (image_size, image_size) if image_size else (frames.target.height, frames.target.width)
    budget.take_pixels(n, *size, frames.model)
    views, maps = [], {}
    for k in range(n):
        if budget.progress is not None and k % LOAD_CHUNK == 0:
            budget.progress(budget.frames - n + k, budget.frames)  # may raise: a cancelled load stops here
        views.append(load_photo(frames.files[k], frames.cameras[k], frames.target, frames.wheres[k], image_size,
                                maps))
    shapes = {v.shape for v in views}
    if len(shapes) > 1:
        raise InputError(f"{frames.model}: the photos load at {len(shapes)} different sizes",
                         "Give every photo the same size")
    intr = frames.target.scaled(views[0].shape[1], views[0].shape[0])

    def split(name: str, idx: list[int]) -> Views:
        return Views(name, np.stack([views[i] for i in idx]).astype(np.float32), frames.poses[idx], intr,
                     [frames.files[i] for i in idx])

    train_idx, test_idx = _holdout(n)
    train = split("train", train_idx)
    return NerfDataset(train, split("test", test_idx), aabb_from_cameras(train), str(root), "cameras")
