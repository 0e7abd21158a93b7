"""NeRF datasets in the ``transforms.json`` convention (NeRF synthetic scenes, instant-ngp), or as arrays.

A folder holds ``transforms_train.json`` / ``_val`` / ``_test`` (or one ``transforms.json``, whose
every 8th frame is then held out for testing). Intrinsics are ``camera_angle_x`` (square pixels,
centred principal point) or ``fl_x``/``fl_y``/``cx``/``cy``/``w``/``h``. Each frame has ``file_path``
(with or without ``.png``) and a camera-to-world ``transform_matrix`` in Blender's convention.
Distortion (``k1 k2 k3 p1 p2``, or ``camera_model: OPENCV_FISHEYE`` with ``k1..k4``) and per-frame
intrinsics (nerfstudio) are removed at load (:mod:`nstr.nerf.lens`). A folder with no transforms file but
a COLMAP sparse model (a photo capture) is read by :mod:`nstr.nerf.capture`; :mod:`nstr.nerf.source` picks
the reader for a folder. Every problem becomes an
:class:`~nstr.errors.InputError` naming the file and the field. Every file
read from a folder (the transforms files and the images) must lie inside it, symlinks resolved, and
one that does not gets the same answer whether its target exists or not (a server reads these).
Loading is bounded before any image is decoded (``max_frames`` views, ``max_pixels`` pixels in all,
the task's ``task.max_frames`` / ``task.max_pixels``) and reports each chunk of frames to a
``progress`` callback, which may raise to stop it (a cancelled job stops within one chunk).

The compact array form (the server's ``nerf`` job, no shared filesystem):
``train_images`` uint8 (N, H, W, 3|4), ``train_poses`` float (N, 4, 4) or (N, 3, 4),
``intrinsics`` float (4,) = fx, fy, cx, cy in pixels, optional ``test_images`` / ``test_poses``,
``train_valid`` / ``test_valid`` bool or uint8 (N, H, W) (the pixels that hold data: ``Views.valid``)
and ``aabb`` float (2, 3) (world box of the object).
"""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from nstr.errors import InputError
from nstr.nerf.lens import Camera, check_transforms_lenses, lens_from_transforms, needs_remap, undistort

SPLITS = ("train", "val", "test")
HOLDOUT_EVERY = 8  # single transforms.json: every 8th frame is a test view (the LLFF convention)
MAX_FRAMES = 10_000  # views a dataset may hold (task.max_frames)
MIN_VIEWS = 8  # fewer usable views give a NeRF too little parallax to be worth fitting (transforms: training views)
MAX_PIXELS = 1 << 28  # pixels over all loaded views, after resizing: 4 GiB as float32 RGBA (task.max_pixels)
LOAD_CHUNK = 16  # frames between two progress reports (and stop checks) while loading
Progress = Callable[[int, int], None]  # (frames loaded, frames in all)


@dataclass
class Intrinsics:
    """Pinhole camera in pixels; the principal point is measured from the image's top-left corner."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def scaled(self, width: int, height: int) -> "Intrinsics":
        sx, sy = width / self.width, height / self.height
        return Intrinsics(self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, width, height)

    def as_array(self) -> np.ndarray:
        return np.array([self.fx, self.fy, self.cx, self.cy], np.float32)


@dataclass
class Views:
    """One split: straight-alpha RGBA images in [0, 1] and camera-to-world poses."""

    name: str
    images: np.ndarray  # (N, H, W, 4) float32
    poses: np.ndarray  # (N, 4, 4) float32
    intrinsics: Intrinsics
    files: list[str]
    # (N, H, W) bool: the pixels that hold data. A photo undistorted into its pinhole has none in margins
    # its lens did not cover (pincushion distortion); those are never trained on, scored or read as
    # background. None: every pixel.
    valid: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def pixels_with_data(self) -> np.ndarray:
        """(N, H, W) bool: ``valid``, or every pixel."""
        return self.valid if self.valid is not None else np.ones(self.images.shape[:3], bool)


@dataclass
class NerfDataset:
    train: Views
    test: Views | None
    aabb: np.ndarray  # (2, 3) world box that contains the object
    source: str  # folder or "arrays"
    aabb_from: str  # "file" | "cameras": where the box came from

    def describe(self) -> dict[str, Any]:
        h, w = self.train.images.shape[1:3]
        return {"source": self.source, "train_views": len(self.train),
                "test_views": len(self.test) if self.test is not None else 0, "width": int(w), "height": int(h),
                "aabb": self.aabb.tolist(), "aabb_from": self.aabb_from}


# ----------------------------------------------------------------------------------------- validation


def check_pose(matrix: Any, where: str) -> np.ndarray:
    """A 4x4 float32 rigid camera-to-world matrix, or an InputError naming ``where``."""
    try:
        m = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{where} is not a matrix of numbers", "Give a 4x4 camera-to-world matrix") from None
    if m.shape == (3, 4):
        m = np.vstack([m, [0.0, 0.0, 0.0, 1.0]])
    if m.shape != (4, 4):
        raise InputError(f"{where} has shape {m.shape}, not 4x4", "Give a 4x4 camera-to-world matrix")
    if not np.all(np.isfinite(m)):
        raise InputError(f"{where} contains NaN or infinity", "Fix the camera pose")
    if not np.allclose(m[3], [0, 0, 0, 1], atol=1e-4):
        raise InputError(f"{where} has bottom row {m[3].round(4).tolist()}, not [0, 0, 0, 1]",
                         "Give an affine camera-to-world matrix")
    rot = m[:3, :3]
    det = float(np.linalg.det(rot))
    if abs(det) < 1e-6:
        raise InputError(f"{where} is not invertible (its 3x3 part has determinant {det:.2g})",
                         "Give a rigid camera-to-world matrix (rotation + translation)")
    if not np.allclose(rot.T @ rot, np.eye(3), atol=2e-3) or det < 0:
        scales = np.linalg.norm(rot, axis=0).round(3).tolist()
        raise InputError(f"{where} is not rigid (axis lengths {scales}, determinant {det:.3g}): it scales, "
                         f"shears or mirrors", "Give a rotation + translation; apply scale to the scene instead")
    return m.astype(np.float32)


def check_poses(matrices: Any, where: Callable[[int], str]) -> np.ndarray:
    """:func:`check_pose` on every matrix, vectorised ((N, 4, 4) float32): a 10k-frame dataset is checked
    in milliseconds. The first bad one is handed to check_pose, so the message is the same."""
    try:
        m = np.asarray(matrices, dtype=np.float64)
    except (TypeError, ValueError):
        m = np.zeros((0,))
    if m.ndim != 3 or m.shape[1:] not in ((4, 4), (3, 4)):  # ragged or odd: frame by frame, for the message
        return np.stack([check_pose(x, where(i)) for i, x in enumerate(matrices)])
    if m.shape[1] == 3:
        m = np.concatenate([m, np.broadcast_to([0.0, 0.0, 0.0, 1.0], (len(m), 1, 4))], axis=1)
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(m).all(axis=(1, 2))
        rot = m[:, :3, :3]
        det = np.linalg.det(np.where(finite[:, None, None], rot, 0.0))
        gram = np.einsum("nji,njk->nik", rot, rot)
        ok = (finite & np.isclose(m[:, 3], [0, 0, 0, 1], atol=1e-4).all(axis=1) & (np.abs(det) >= 1e-6)
              & np.isclose(gram, np.eye(3), atol=2e-3).all(axis=(1, 2)) & (det >= 0))
    for i in np.flatnonzero(~ok):
        check_pose(matrices[i], where(int(i)))  # raises with the frame's own message
    return m.astype(np.float32)


def check_camera_spread(poses: np.ndarray, where: str) -> None:
    """A NeRF needs parallax: views from more than one place. Cameras that all sit at one point (identical
    poses, or one view) give a scene box of size zero, which failed deep in rendering (an IndexError)."""
    centres = np.asarray(poses, np.float64)[:, :3, 3]
    span = float(np.ptp(centres, axis=0).max()) if len(centres) else 0.0
    if span <= 1e-6 * max(1.0, float(np.abs(centres).max(initial=0.0))):
        place = ", ".join(f"{c:.3g}" for c in centres[0]) if len(centres) else "-"
        raise InputError(f"the {len(centres)} {where} all sit at the same place ({place}): a NeRF needs "
                         f"views from different positions", "Give views from several camera positions around the object")


def intrinsics_from(doc: Mapping[str, Any], width: int, height: int, where: str) -> Intrinsics:
    """Intrinsics from ``camera_angle_x`` (+ optional ``camera_angle_y``) or ``fl_x``/``fl_y``/``cx``/``cy``/``w``/``h``."""

    def number(key: str) -> float:
        value = doc[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise InputError(f"{where}: '{key}' must be a positive number, not {value!r}", "Fix the camera intrinsics")
        return float(value)

    if "fl_x" in doc:
        w = int(number("w")) if "w" in doc else width
        h = int(number("h")) if "h" in doc else height
        if (w, h) != (width, height):
            if abs(w / h - width / height) > 1e-3:
                raise InputError(f"{where}: w x h = {w}x{h} but the images are {width}x{height}",
                                 "Fix 'w'/'h' or resize the images")
        fx = number("fl_x")
        fy = number("fl_y") if "fl_y" in doc else fx
        cx = number("cx") if "cx" in doc else w / 2
        cy = number("cy") if "cy" in doc else h / 2
        return Intrinsics(fx, fy, cx, cy, w, h).scaled(width, height)
    if "camera_angle_x" in doc:
        angle = number("camera_angle_x")
        if angle >= math.pi:
            raise InputError(f"{where}: camera_angle_x = {angle} is not below pi radians",
                             "camera_angle_x is the horizontal field of view in radians")
        fx = 0.5 * width / math.tan(0.5 * angle)
        fy = 0.5 * height / math.tan(0.5 * number("camera_angle_y")) if "camera_angle_y" in doc else fx
        return Intrinsics(fx, fy, width / 2, height / 2, width, height)
    raise InputError(f"{where} has neither 'camera_angle_x' nor 'fl_x'",
                     "Add camera_angle_x (radians) or fl_x, fl_y, cx, cy, w, h")


# ----------------------------------------------------------------------------------------- images


def dataset_file(root: Path, name: str) -> Path | None:
    """``root/name`` when that entry exists inside the dataset folder, None when there is none. An entry
    that leads out of the folder (a symlink) is refused with the same words whether its target exists,
    parses or not: the folder's owner may point a server at it, and the answer must not tell."""
    path = root / name
    if not os.path.lexists(path):
        return None
    if root.resolve() not in path.resolve().parents:
        raise InputError(f"{name} in {root} lies outside the dataset folder (a link out of it)",
                         "Put the dataset's files themselves inside its folder")
    return path if path.is_file() else None


def split_files(folder: str | Path) -> tuple[Path, dict[str, Path], Path | None]:
    """(folder, {split: transforms_SPLIT.json}, transforms.json or None): the files a dataset is read from,
    each checked to lie inside the folder."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputError(f"dataset folder {root} does not exist", "Pass a folder with transforms_train.json")
    found = {s: p for s in SPLITS if (p := dataset_file(root, f"transforms_{s}.json")) is not None}
    single = dataset_file(root, "transforms.json")
    if not found and single is None:
        raise InputError(f"{root} has no transforms*.json",
                         "A NeRF dataset folder holds transforms_train.json (and _test/_val) or transforms.json, "
                         "or a COLMAP model in sparse/0/ with the photos in images/")
    if found and "train" not in found:
        raise InputError(f"{root} has {', '.join(p.name for p in found.values())} but no transforms_train.json",
                         "Add the training split")
    return root, found, single


class ImageFinder:
    """Finds the image a frame names inside a dataset folder: ``file_path`` with or without its extension.
    An absolute path, ``..`` or a symlink must not lead out of the folder (a server reads these), and
    such a path gets the same answer whether its target exists or not. Cheap per frame: folders are
    resolved once, files cost one ``lstat`` (and a resolve only when they are links)."""

    EXTENSIONS = ("", ".png", ".PNG", ".jpg", ".jpeg")

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = os.path.realpath(root)
        self._inside: dict[str, bool] = {}

    def _dir_inside(self, folder: str) -> bool:
        if folder not in self._inside:
            real = os.path.realpath(folder)
            self._inside[folder] = real == self.base or real.startswith(self.base + os.sep)
        return self._inside[folder]

    def find(self, file_path: str, where: str, fix: str = "Fix file_path or add the image") -> str:
        rel = file_path[2:] if file_path.startswith("./") else file_path
        for ext in self.EXTENSIONS:
            candidate = os.path.normpath(os.path.join(self.root, rel + ext))
            folder, name = os.path.split(candidate)
            if not name or not self._dir_inside(folder):
                raise InputError(f"{where}: image '{file_path}' lies outside the dataset folder",
                                 "Frame paths must be relative paths inside the dataset folder")
            try:
                st = os.lstat(candidate)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                real = os.path.realpath(candidate)
                if not real.startswith(self.base + os.sep):
                    raise InputError(f"{where}: image '{file_path}' lies outside the dataset folder",
                                     "Frame paths must be relative paths inside the dataset folder")
                if os.path.isfile(real):
                    return candidate
            elif stat.S_ISREG(st.st_mode):
                return candidate
        raise InputError(f"{where}: image '{file_path}' not found in {self.root}", fix)


def read_image(path: Path, where: str, size: int) -> np.ndarray:
    """An image file as straight-alpha RGBA float32 in [0, 1], area-resized to ``size`` squared if > 0."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            rgba = im.convert("RGBA")
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise InputError(f"{where}: image {path.name} is unreadable ({type(err).__name__})",
                         "Replace it with a valid PNG or JPEG") from None
    arr = np.asarray(rgba, np.float32) / 255.0
    return resize_rgba(arr, size) if size and rgba.size != (size, size) else arr


def resize_valid(valid: np.ndarray, size: int) -> np.ndarray:
    """A (H, W) "holds data" mask at ``size`` squared: a pixel holds data when all of its area did (a pixel half
    in a margin is neither the photo's colour nor its alpha)."""
    from PIL import Image

    if valid.shape[:2] == (size, size):
        return valid
    area = np.asarray(Image.fromarray(valid.astype(np.float32)).resize((size, size), Image.BOX), np.float32)
    return area >= 0.999


def resize_rgba(image: np.ndarray, size: int) -> np.ndarray:
    """An RGBA float image area-resized to ``size`` squared, premultiplied while averaging so transparent
    pixels don't bleed their colour."""
    from PIL import Image

    if image.shape[:2] != (size, size):
        arr = image.copy()
        arr[..., :3] *= arr[..., 3:]
        chans = [Image.fromarray(arr[..., c]).resize((size, size), Image.BOX) for c in range(4)]
        arr = np.stack([np.asarray(c, np.float32) for c in chans], -1)
        arr[..., :3] /= np.maximum(arr[..., 3:], 1e-6)
        arr[..., :3] *= arr[..., 3:] > 0
        return np.clip(arr, 0.0, 1.0)
    return image


class LoadBudget:
    """What loading may still take (frames, pixels) over every split, and whom to tell about progress."""

    def __init__(self, max_frames: int = MAX_FRAMES, max_pixels: int = MAX_PIXELS,
                 progress: Progress | None = None) -> None:
        self.max_frames, self.max_pixels, self.progress = int(max_frames), int(max_pixels), progress
        self.frames = self.pixels = 0

    def take_frames(self, n: int, where: str) -> None:
        if self.frames + n > self.max_frames:
            raise InputError(f"{where} has {n} frames, more than the {self.max_frames} views a dataset may hold "
                             f"(task.max_frames)", "Use fewer views, or raise task.max_frames")
        self.frames += n

    def take_pixels(self, n_views: int, height: int, width: int, where: str) -> None:
        need = n_views * height * width
        if self.pixels + need > self.max_pixels:
            raise InputError(f"{where}: {n_views} views of {width}x{height} are {need / 1e6:.0f} million pixels, more "
                             f"than the {self.max_pixels / 1e6:.0f} million a dataset may hold (task.max_pixels)",
                             "Use fewer or smaller views (task.image_size), or raise task.max_pixels")
        self.pixels += need


@dataclass
class SplitFrames:
    """One split's frames, checked without decoding an image: poses, image files inside the folder."""

    doc: dict[str, Any]
    poses: np.ndarray  # (N, 4, 4) float32
    images: list[str]  # the image files, inside the folder
    wheres: list[str]
    frames: list[dict[str, Any]]  # the frames themselves (per-frame intrinsics, distortion)


def read_split_frames(path: Path, name: str, keep: Any = None, budget: LoadBudget | None = None) -> SplitFrames:
    """Parse a transforms file and check every frame's pose and image path (cheap: no image is read).
    The frame count is taken from ``budget`` before any frame is checked."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path.name} is unreadable ({type(err).__name__})", "Check the file") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path.name} is not valid JSON (line {err.lineno}: {err.msg})", "Fix the file") from None
    except RecursionError:
        raise InputError(f"{path.name} is nested too deeply", "Fix the file") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path.name} is not a JSON object", "It must hold 'frames' and the camera intrinsics")
    frames = doc.get("frames")
    if not isinstance(frames, list):
        raise InputError(f"{path.name} has no 'frames' list", "Add frames with file_path and transform_matrix")
    indexed = list(enumerate(frames))
    if keep is not None:
        indexed = [(i, f) for i, f in indexed if keep(i)]
    if not indexed:
        raise InputError(f"split '{name}' in {path.name} is empty (no frames)", "Add frames or remove the file")
    if budget is not None:
        budget.take_frames(len(indexed), f"split '{name}' in {path.name}")
    wheres = [f"{path.name} frames[{i}]" for i, _ in indexed]
    for where, (_, frame) in zip(wheres, indexed):
        if not isinstance(frame, dict) or "file_path" not in frame or "transform_matrix" not in frame:
            raise InputError(f"{where} lacks 'file_path' or 'transform_matrix'", "Every frame needs both")
    poses = check_poses([f["transform_matrix"] for _, f in indexed], lambda k: f"{wheres[k]}.transform_matrix")
    finder = ImageFinder(path.parent)
    images = []
    for k, ((_, frame), where) in enumerate(zip(indexed, wheres)):
        if budget is not None and budget.progress is not None and k % (64 * LOAD_CHUNK) == 0:
            budget.progress(budget.frames - len(indexed), budget.frames)  # a stop check: no frame loaded yet
        images.append(finder.find(str(frame["file_path"]), where))
    return SplitFrames(doc, poses, images, wheres, [f for _, f in indexed])


def checked_frames(path: Path, name: str, keep: Any, budget: LoadBudget) -> SplitFrames:
    """A split's frames with every check that needs no image: the JSON, frame count, poses, paths, spread."""
    split = read_split_frames(path, name, keep, budget)
    check_transforms_lenses(split.doc, split.frames, split.wheres)
    if name == "train":
        check_camera_spread(split.poses, f"training cameras in {path.parent}")
        held = f" (every {HOLDOUT_EVERY}th frame is held out for testing)" if keep is not None else ""
        check_view_count(len(split.frames), f"{path.name}: 'frames' holds", held)
    return split


def check_view_count(count: int, where: str, note: str = "") -> None:
    """Refuse fewer than MIN_VIEWS training views, in one line: ``where`` names the file and field."""
    if count < MIN_VIEWS:
        raise InputError(f"{where} {count} training views{note}, fewer than the {MIN_VIEWS} a NeRF needs",
                         f"Add views from more places around the object, at least {MIN_VIEWS} for training")


def _load_split_file(path: Path, image_size: int, name: str, budget: LoadBudget, keep: Any = None) -> Views:
    split = checked_frames(path, name, keep, budget)
    n = len(split.images)
    images: list[np.ndarray] = []
    valid: list[np.ndarray] = []  # per view, with remapping: the pixels that hold data
    first: tuple[str, tuple[int, int]] | None = None
    cameras = None  # per-frame cameras when the file has distortion or per-frame intrinsics
    maps: dict[str, Any] = {}  # their sample maps, one per distinct camera
    for k, (img_file, where) in enumerate(zip(split.images, split.wheres)):
        img_path = Path(img_file)
        if budget.progress is not None and k % LOAD_CHUNK == 0:
            budget.progress(budget.frames - n + k, budget.frames)  # may raise: a cancelled load stops here
        img = read_image(img_path, where, 0)
        shape = img.shape[:2]
        if first is None:
            first = (img_path.name, shape)
            budget.take_pixels(n, *((image_size, image_size) if image_size else shape), f"split '{name}'")
            # a nerfstudio file may give the intrinsics per frame only: the first frame's are then the views'
            doc = split.doc if "fl_x" in split.doc or "fl_x" not in split.frames[0] else split.frames[0]
            intr = intrinsics_from(doc, shape[1], shape[0], path.name if doc is split.doc else where)
            cameras = transforms_cameras(split.doc, split.frames, intr, split.wheres)
        elif shape != first[1]:
            raise InputError(f"{where}: image {img_path.name} is {shape[1]}x{shape[0]} but {first[0]} is "
                             f"{first[1][1]}x{first[1][0]}", "Give every view the same size")
        if cameras is not None:
            img, covered = undistort(img, cameras[k], intr, maps)
            valid.append(resize_valid(covered, image_size) if image_size else covered)
        if image_size and shape != (image_size, image_size):
            img = resize_rgba(img, image_size)
        images.append(img)
    assert first is not None
    if image_size:
        intr = intr.scaled(image_size, image_size)
    return Views(name, np.stack(images).astype(np.float32), split.poses, intr, list(split.images),
                 valid_or_none(valid))


def valid_or_none(masks: list[np.ndarray]) -> np.ndarray | None:
    """The views' "holds data" masks stacked, or None when there are none or every pixel holds data."""
    if not masks:
        return None
    stacked = np.stack(masks)
    return None if stacked.all() else stacked


def aabb_from_file(path: Path) -> np.ndarray | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    box = doc.get("aabb") if isinstance(doc, dict) else None
    if box is None:
        return None
    arr = np.asarray(box, dtype=np.float64) if isinstance(box, list) else None
    if arr is None or arr.shape != (2, 3) or not np.all(np.isfinite(arr)) or np.any(arr[1] <= arr[0]):
        raise InputError(f"{path.name}: 'aabb' must be [[xmin, ymin, zmin], [xmax, ymax, zmax]] with min < max",
                         "Fix or remove the aabb key")
    return arr.astype(np.float32)


def aabb_from_cameras(views: Views) -> np.ndarray:
    """The box the cameras frame: centred on the point nearest every optical axis, sized to the field of view.

    For the NeRF synthetic scenes (cameras 4.03 from the origin, 40 degree view) this gives about +-1.6,
    close to the +-1.5 box the scenes are known to fit in.
    """
    origins = views.poses[:, :3, 3].astype(np.float64)
    axes = -views.poses[:, :3, 2].astype(np.float64)
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    eye = np.eye(3)
    A = sum(eye - np.outer(a, a) for a in axes)
    b = sum((eye - np.outer(a, a)) @ o for a, o in zip(axes, origins))
    try:
        center = np.linalg.solve(A, b) if np.linalg.cond(A) < 1e8 else origins.mean(0)
    except np.linalg.LinAlgError:
        center = origins.mean(0)
    dist = float(np.median(np.linalg.norm(origins - center, axis=1)))
    half_fov = math.atan(0.5 * views.intrinsics.width / views.intrinsics.fx)
    half = 1.1 * dist * math.tan(half_fov)
    return np.stack([center - half, center + half]).astype(np.float32)


def split_plan(found: dict[str, Path], single: Path | None) -> list[tuple[Path, str, Any]]:
    """(file, split name, frame filter) for the train split and the test split, if any."""
    if "train" in found:
        test_file = found.get("test") or found.get("val")
        return [(found["train"], "train", None)] + ([(test_file, "test", None)] if test_file else [])
    assert single is not None
    return [(single, "train", lambda i: i % HOLDOUT_EVERY != 0), (single, "test", lambda i: i % HOLDOUT_EVERY == 0)]


def load_transforms_dataset(folder: str | Path, image_size: int = 0, *, max_frames: int = MAX_FRAMES,
                 max_pixels: int = MAX_PIXELS, progress: Progress | None = None) -> NerfDataset:
    """Read a dataset folder. ``image_size`` > 0 resizes every view to that square size (area filter).
    At most ``max_frames`` views and ``max_pixels`` pixels (after resizing) are loaded; ``progress(done,
    total)`` is called every :data:`LOAD_CHUNK` frames and may raise to stop the load."""
    budget = LoadBudget(max_frames, max_pixels, progress)
    root, found, single = split_files(folder)
    splits = [_load_split_file(path, image_size, name, budget, keep) for path, name, keep in split_plan(found, single)]
    train, test = splits[0], (splits[1] if len(splits) > 1 else None)
    if test is not None and test.images.shape[1:3] != train.images.shape[1:3]:
        raise InputError(f"test views are {test.images.shape[2]}x{test.images.shape[1]} but training views are "
                         f"{train.images.shape[2]}x{train.images.shape[1]}", "Give every view the same size")
    box = aabb_from_file(found.get("train") or single)
    aabb_from = "file" if box is not None else "cameras"
    return NerfDataset(train, test, box if box is not None else aabb_from_cameras(train), str(root), aabb_from)


def check_transforms_folder(folder: str | Path, max_frames: int = MAX_FRAMES) -> None:
    """What :func:`load_transforms_dataset` checks before it decodes an image (files inside the folder, the
    JSON, the frame count, poses, camera spread, the lens keys), for a server to run at submit: cheap, and the
    same words."""
    budget = LoadBudget(max_frames)
    _root, found, single = split_files(folder)
    for path, name, keep in split_plan(found, single):
        checked_frames(path, name, keep, budget)


# ----------------------------------------------------------------------------------------- lenses (nerfstudio)


def camera_from_transforms(doc: Mapping[str, Any], frame: Mapping[str, Any], target: Intrinsics,
                           where: str) -> Camera:
    """A frame's camera in a nerfstudio transforms file: its own ``fl_x fl_y cx cy w h`` when it has them
    (else the file's, ``target``) and its lens (:func:`lens_from_transforms`)."""
    intr = intrinsics_from(frame, target.width, target.height, where) if "fl_x" in frame else target
    return Camera(intr, *lens_from_transforms(doc, frame, where))


def transforms_cameras(doc: Mapping[str, Any], frames: list[Mapping[str, Any]], target: Intrinsics,
                       where: list[str]) -> list[Camera] | None:
    """Per-frame cameras when a transforms file needs remapping (distortion, or a frame's own intrinsics),
    else None: a plain pinhole file loads exactly as before."""
    keys = ("k1", "k2", "k3", "k4", "p1", "p2", "camera_model", "fl_x")
    if not any(k in doc for k in keys[:-1]) and not any(k in f for f in frames for k in keys):
        return None
    cams = [camera_from_transforms(doc, f, target, w) for f, w in zip(frames, where)]
    return cams if any(needs_remap(c, target) for c in cams) else None




# ----------------------------------------------------------------------------------------- arrays


def _views_from_arrays(name: str, images: np.ndarray, poses: np.ndarray, intr: np.ndarray,
                       budget: LoadBudget, valid: np.ndarray | None = None) -> Views:
    key = f"{name}_images"
    if images.ndim != 4 or images.shape[-1] not in (3, 4) or images.shape[0] == 0:
        raise InputError(f"'{key}' has shape {images.shape}, not (N, H, W, 3 or 4) with N >= 1",
                         "Send the views as one uint8 array")
    budget.take_frames(len(images), f"'{key}'")
    budget.take_pixels(len(images), *images.shape[1:3], f"'{key}'")  # held at this size as float32 before resizing
    if images.dtype == np.uint8:
        imgs = images.astype(np.float32) / 255.0
    elif images.dtype.kind == "f":
        imgs = np.clip(images.astype(np.float32), 0.0, 1.0)
    else:
        raise InputError(f"'{key}' has dtype {images.dtype}", "Send uint8 (0..255) or float (0..1) images")
    if imgs.shape[-1] == 3:
        imgs = np.concatenate([imgs, np.ones(imgs.shape[:3] + (1,), np.float32)], -1)
    if poses.ndim != 3 or poses.shape[0] != images.shape[0]:
        raise InputError(f"'{name}_poses' has shape {poses.shape} for {images.shape[0]} images",
                         "Send one 4x4 camera-to-world matrix per image")
    checked = check_poses(poses, lambda i: f"{name}_poses[{i}]")
    h, w = imgs.shape[1:3]
    if valid is not None:
        valid = np.asarray(valid)
        if valid.shape != imgs.shape[:3] or valid.dtype.kind not in "bui":
            raise InputError(f"'{name}_valid' has shape {valid.shape} and dtype {valid.dtype}, not "
                             f"{imgs.shape[:3]} bool", "Send one bool (or 0/1 uint8) mask per image, or leave it out")
        valid = valid_or_none(list(valid != 0))
    fx, fy, cx, cy = (float(v) for v in intr)
    return Views(name, imgs, checked, Intrinsics(fx, fy, cx, cy, w, h), [], valid)


def dataset_from_arrays(arrays: Mapping[str, np.ndarray], image_size: int = 0, *, max_frames: int = MAX_FRAMES,
                        max_pixels: int = MAX_PIXELS) -> NerfDataset:
    """The compact array form (see the module docstring), within the same bounds as :func:`load_transforms_dataset`."""
    budget = LoadBudget(max_frames, max_pixels)
    for key in ("train_images", "train_poses", "intrinsics"):
        if key not in arrays:
            raise InputError(f"the NeRF job has no '{key}' array",
                             "Send train_images, train_poses and intrinsics, or set dataset_dir")
    intr = np.asarray(arrays["intrinsics"], dtype=np.float64).reshape(-1)
    if intr.shape != (4,) or not np.all(np.isfinite(intr)) or intr[0] <= 0 or intr[1] <= 0:
        raise InputError(f"'intrinsics' must be 4 numbers fx, fy, cx, cy with positive focal lengths, "
                         f"not {intr.tolist()[:8]}", "Send fx, fy, cx, cy in pixels")
    train = _views_from_arrays("train", np.asarray(arrays["train_images"]), np.asarray(arrays["train_poses"]), intr,
                               budget, arrays.get("train_valid"))
    check_camera_spread(train.poses, "training cameras in 'train_poses'")
    check_view_count(len(train), "'train_images' holds")
    test = None
    if "test_images" in arrays or "test_poses" in arrays:
        if "test_images" not in arrays or "test_poses" not in arrays:
            raise InputError("the NeRF job has only one of 'test_images' and 'test_poses'", "Send both or neither")
        test = _views_from_arrays("test", np.asarray(arrays["test_images"]), np.asarray(arrays["test_poses"]), intr,
                                  budget, arrays.get("test_valid"))
        if test.images.shape[1:3] != train.images.shape[1:3]:
            raise InputError(f"'test_images' are {test.images.shape[2]}x{test.images.shape[1]} but 'train_images' "
                             f"are {train.images.shape[2]}x{train.images.shape[1]}", "Give every view the same size")
    if image_size:
        train, test = _resize_views(train, image_size), (_resize_views(test, image_size) if test else None)
    box = None
    if "aabb" in arrays:
        box = np.asarray(arrays["aabb"], dtype=np.float32)
        if box.shape != (2, 3) or not np.all(np.isfinite(box)) or np.any(box[1] <= box[0]):
            raise InputError(f"'aabb' must be (2, 3) = min, max corners with min < max, not shape {box.shape}",
                             "Send the object's world bounding box or leave it out")
    return NerfDataset(train, test, box if box is not None else aabb_from_cameras(train), "arrays",
                       "file" if box is not None else "cameras")


def _resize_views(views: Views, size: int) -> Views:
    import torch
    import torch.nn.functional as F

    if views.images.shape[1:3] == (size, size):
        return views
    t = torch.from_numpy(views.images).permute(0, 3, 1, 2)
    premul = torch.cat([t[:, :3] * t[:, 3:], t[:, 3:]], 1)
    small = F.interpolate(premul, size=(size, size), mode="area")
    rgb = small[:, :3] / small[:, 3:].clamp_min(1e-6) * (small[:, 3:] > 0)
    out = torch.cat([rgb.clamp(0, 1), small[:, 3:]], 1).permute(0, 2, 3, 1).numpy()
    valid = None if views.valid is None else valid_or_none([resize_valid(v, size) for v in views.valid])
    return Views(views.name, np.ascontiguousarray(out), views.poses, views.intrinsics.scaled(size, size), views.files,
                 valid)


def dataset_to_arrays(ds: NerfDataset) -> dict[str, np.ndarray]:
    """The inverse of :func:`dataset_from_arrays` (uint8 images), for submitting a folder as a job."""
    out = {"train_images": np.round(ds.train.images * 255).astype(np.uint8), "train_poses": ds.train.poses,
           "intrinsics": ds.train.intrinsics.as_array(), "aabb": ds.aabb.astype(np.float32)}
    if ds.train.valid is not None:
        out["train_valid"] = ds.train.valid
    if ds.test is not None:
        out["test_images"] = np.round(ds.test.images * 255).astype(np.uint8)
        out["test_poses"] = ds.test.poses
        if ds.test.valid is not None:
            out["test_valid"] = ds.test.valid
    return out
