"""Known captures written to disk (COLMAP text and binary models, nerfstudio transforms) with known cameras:
ten views on a rising circle around the origin, each photo a predictable pattern. Shared by the capture tests
(tests/test_capture.py, tests/test_capture_cameras.py) and the add-on's import tests."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from nstr.nerf.capture import COLMAP_MODELS
from nstr.nerf.dataset import Intrinsics
from nstr.nerf.photo_capture import colmap_world_to_camera as colmap_pose
from nstr.nerf.photo_capture import write_colmap_text

W, H = 32, 24
TRUTH = Intrinsics(30.0, 28.0, 16.3, 11.8, W, H)
N_VIEWS = 10
MODEL_IDS = {name: i for i, (name, _) in COLMAP_MODELS.items()}


def look_at(eye: np.ndarray) -> np.ndarray:
    """NeRF-convention camera-to-world at ``eye`` looking at the origin, +z world up."""
    back = eye / np.linalg.norm(eye)
    right = np.cross([0.0, 0.0, 1.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, up, back, eye
    return m


def truth_poses() -> np.ndarray:
    return np.stack([look_at(np.array([4 * math.cos(a), 4 * math.sin(a), 1.0 + 0.2 * k]))
                     for k, a in enumerate(np.linspace(0, 2 * math.pi, N_VIEWS, endpoint=False))])


def view_image(k: int) -> np.ndarray:
    """A predictable RGB pattern: red rises along columns, green along rows, blue names the view."""
    rows, cols = np.mgrid[0:H, 0:W]
    return np.stack([cols * 8, rows * 10, np.full_like(cols, 20 * k)], -1).astype(np.uint8)


def pinhole_params(model: str, intr: Intrinsics, coeffs: tuple[float, ...] = ()) -> list[float]:
    f, fy = intr.fx, intr.fy
    base = {"SIMPLE_PINHOLE": [f, intr.cx, intr.cy], "PINHOLE": [f, fy, intr.cx, intr.cy],
            "SIMPLE_RADIAL": [f, intr.cx, intr.cy], "RADIAL": [f, intr.cx, intr.cy],
            "OPENCV": [f, fy, intr.cx, intr.cy], "OPENCV_FISHEYE": [f, fy, intr.cx, intr.cy]}[model]
    n = dict(COLMAP_MODELS.values())[model]
    return base + list(coeffs) + [0.0] * (n - len(base) - len(coeffs))


def write_colmap(root: Path, model: str = "PINHOLE", binary: bool = False, where: str = "sparse/0",
                 intr: Intrinsics = TRUTH, coeffs: tuple[float, ...] = (), images: list[np.ndarray] | None = None,
                 n: int = N_VIEWS) -> Path:
    poses = truth_poses()[:n]
    (root / "images").mkdir(parents=True, exist_ok=True)
    for k in range(n):
        Image.fromarray(images[k] if images is not None else view_image(k)).save(root / "images" / f"view_{k:02d}.png")
    folder = root / where
    folder.mkdir(parents=True, exist_ok=True)
    params = pinhole_params(model, intr, coeffs)
    entries = [(k + 1, *colmap_pose(poses[k]), f"view_{k:02d}.png") for k in range(n)]
    if binary:
        cams = struct.pack("<Q", 1) + struct.pack("<iiQQ", 1, MODEL_IDS[model], intr.width, intr.height)
        cams += struct.pack("<" + "d" * len(params), *params)
        (folder / "cameras.bin").write_bytes(cams)
        imgs = struct.pack("<Q", n)
        for image_id, q, t, name in reversed(entries):  # any order: the reader sorts by name
            imgs += struct.pack("<idddddddi", image_id, *q, *t, 1) + name.encode() + b"\0"
            imgs += struct.pack("<Q", 2) + struct.pack("<ddqddq", 1.0, 2.0, 7, 3.0, 4.0, -1)
        (folder / "images.bin").write_bytes(imgs)
    else:
        write_colmap_text(folder, {1: (model, intr.width, intr.height, params)},
                          [(k + 1, poses[k], 1, f"view_{k:02d}.png", "" if k % 2 else "1.5 2.5 7 3.5 4.5 -1")
                           for k in range(n)], comment="  # an indented comment")
    return root


def write_nerfstudio(root: Path, extra: dict | None = None, images: list[np.ndarray] | None = None) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    frames = []
    for k, pose in enumerate(truth_poses()):
        Image.fromarray(images[k] if images is not None else view_image(k)).save(root / "images" / f"view_{k:02d}.png")
        frames.append({"file_path": f"images/view_{k:02d}.png", "transform_matrix": pose.tolist()})
    doc = {"fl_x": TRUTH.fx, "fl_y": TRUTH.fy, "cx": TRUTH.cx, "cy": TRUTH.cy, "w": W, "h": H,
           "camera_model": "OPENCV", "frames": frames, **(extra or {})}
    (root / "transforms.json").write_text(json.dumps(doc))
    return root
