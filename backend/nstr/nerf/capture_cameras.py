"""A capture's cameras without its photos: what a client needs to show a capture before fitting it.

For a dataset folder of either kind (:mod:`nstr.nerf.source`: a COLMAP sparse model with ``images/``,
or ``transforms*.json``), :func:`capture_cameras` lists every view's camera-to-world matrix (NeRF / Blender
convention: looking down -z, +y up, in the capture's own world frame, never normalised), its pinhole
intrinsics in pixels (the lens's own, before undistortion), its photo, and whether the fit holds it out
as a test view; plus the box a fit without ``task.box`` would use (the file's ``aabb``, else
:func:`~nstr.nerf.dataset.aabb_from_cameras`: centred on the least-squares point nearest every training
camera's optical axis, sized to the field of view at the cameras' median distance from it). That box is
the region a client suggests: it is where the cameras look, and it is what the fit uses unless the user
moves it.

It runs the readers' own checks (the same one-line errors as ``nstr fit nerf`` and a submit: missing
photos, unreadable poses, unknown camera models, too few views, files outside the folder) and decodes no
photo; for a transforms file only the first photo's header is read, for its size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nstr.errors import InputError
from nstr.nerf.capture import check_capture, holdout_split
from nstr.nerf.dataset import (MAX_FRAMES, Intrinsics, LoadBudget, Views, aabb_from_file, checked_frames, split_plan,
                               aabb_from_cameras, intrinsics_from, split_files)
from nstr.nerf.source import is_capture


def _camera(name: str, file: str, root: Path, pose: np.ndarray, intr: Intrinsics, test: bool) -> dict[str, Any]:
    return {"name": name, "file": Path(file).resolve().relative_to(root.resolve()).as_posix(),
            "matrix": np.asarray(pose, np.float64).tolist(), "fx": float(intr.fx), "fy": float(intr.fy),
            "cx": float(intr.cx), "cy": float(intr.cy), "width": int(intr.width), "height": int(intr.height),
            "test": bool(test)}


def _box_from(poses: np.ndarray, intr: Intrinsics) -> np.ndarray:
    return aabb_from_cameras(Views("train", np.zeros((0, 0, 0, 4), np.float32), poses, intr, []))


def _image_size(path: str, where: str) -> tuple[int, int]:
    """(width, height) of a photo from its header (the pixels are not decoded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise InputError(f"{where}: image {Path(path).name} is unreadable ({type(err).__name__})",
                         "Replace it with a valid PNG or JPEG") from None


def _colmap(root: Path, max_frames: int) -> dict[str, Any]:
    frames = check_capture(root, LoadBudget(max_frames))
    train, test = holdout_split(len(frames.names))
    cameras = [_camera(frames.names[k], frames.files[k], root, frames.poses[k], frames.cameras[k].pinhole, k in test)
               for k in range(len(frames.names))]
    box = _box_from(frames.poses[train], frames.target)
    return {"kind": "colmap", "model": frames.model, "cameras": cameras, "box": box, "box_from": "cameras"}


def _transforms(root: Path, max_frames: int) -> dict[str, Any]:
    budget = LoadBudget(max_frames)
    _root, found, single = split_files(root)
    cameras: list[dict[str, Any]] = []
    train_poses, train_intr = None, None
    for path, name, keep in split_plan(found, single):
        split = checked_frames(path, name, keep, budget)
        width, height = _image_size(split.images[0], split.wheres[0])
        doc = split.doc if "fl_x" in split.doc or "fl_x" not in split.frames[0] else split.frames[0]
        base = intrinsics_from(doc, width, height, path.name if doc is split.doc else split.wheres[0])
        for frame, file, pose, where in zip(split.frames, split.images, split.poses, split.wheres):
            intr = intrinsics_from(frame, width, height, where) if "fl_x" in frame else base
            cameras.append(_camera(Path(file).name, file, root, pose, intr, name == "test"))
        if name == "train":
            train_poses, train_intr = split.poses, base
    assert train_poses is not None and train_intr is not None
    box = aabb_from_file(found.get("train") or single)
    box_from = "file" if box is not None else "cameras"
    if box is None:
        box = _box_from(train_poses, train_intr)
    model = (found.get("train") or single).name
    return {"kind": "transforms", "model": model, "cameras": cameras, "box": box, "box_from": box_from}


def capture_cameras(folder: str | Path, max_frames: int = MAX_FRAMES) -> dict[str, Any]:
    """The cameras of a dataset folder and its suggested box (module docstring), as JSON-ready values:
    ``{"dataset_dir", "kind", "model", "cameras": [{name, file, matrix, fx, fy, cx, cy, width, height, test}],
    "box": [[x0, y0, z0], [x1, y1, z1]], "box_from"}``. Raises InputError with the readers' one-line words."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputError(f"capture folder {root} does not exist",
                         "Choose the folder that holds images/ and sparse/0/ (COLMAP) or transforms.json")
    out = _colmap(root, max_frames) if is_capture(root) else _transforms(root, max_frames)
    out["box"] = np.asarray(out["box"], np.float64).tolist()
    return {"dataset_dir": str(root), **out}
