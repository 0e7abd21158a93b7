"""A rendered truth scene turned into a photo capture with known faults, and the capture writers.

Real captures differ from clean renders in three ways the NeRF fit must survive (issue 31, "validation
with known truth"): each photo has its own exposure, the poses a phone app or COLMAP gives are a little
off, and the lens bends straight lines. :func:`write_photo_capture` takes the views of a scene rendered by
:mod:`nstr.nerf.truth_scenes` (world ``"photo"``: opaque, on a textured ground) and writes them as a
capture with those faults at known values:

- exposure: every photo's 8-bit values times a known gain (uniform in ``gains``);
- pose noise: every written pose is the true one turned by ``rotation_deg`` about a random axis through the
  camera and moved by ``shift`` (a fraction of the object's size) in a random direction; the photo stays the
  one taken from the true pose;
- lens: every ``distort_every``-th photo is distorted with radial coefficients ``k1, k2`` through the same
  forward model (:class:`nstr.nerf.lens.Camera`) the readers undo, and its coefficients are written.

The capture is written twice from the same photos: nerfstudio ``transforms.json`` (file-level pinhole,
per-frame ``k1 k2``) with ``images/`` in ``out``, and a COLMAP text model (a PINHOLE and an OPENCV camera,
``images.txt``, an empty ``points3D.txt``) in ``out/colmap`` (``sparse/0`` and its own ``images/``: a
folder with a transforms file is read as one, so the model needs its own folder). ``out/truth.json``
holds the truth: true and written poses, gains, coefficients, intrinsics, the object's box and the ground.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nstr.nerf.capture import CV_TO_NERF
from nstr.nerf.dataset import Intrinsics
from nstr.nerf.lens import Camera


@dataclass(frozen=True)
class PhotoFaults:
    """The known faults written into a capture (module doc)."""

    gains: tuple[float, float] = (0.7, 1.4)
    rotation_deg: float = 0.5
    shift: float = 0.01  # of the object's size (its box's longest side)
    k1: float = 0.3  # pincushion: every distorted pixel comes from inside the render
    k2: float = 0.1
    distort_every: int = 3
    seed: int = 0


# ----------------------------------------------------------------------------------------- COLMAP text


def colmap_world_to_camera(c2w: np.ndarray) -> tuple[list[float], list[float]]:
    """(qvec w, x, y, z; tvec) of a NeRF-convention camera-to-world: COLMAP's world-to-camera, OpenCV axes."""
    from scipy.spatial.transform import Rotation

    w2c = np.linalg.inv(np.asarray(c2w, np.float64) @ CV_TO_NERF)   # the reader's flip is its own inverse
    x, y, z, w = Rotation.from_matrix(w2c[:3, :3]).as_quat()
    return [float(w), float(x), float(y), float(z)], [float(v) for v in w2c[:3, 3]]


def write_colmap_text(folder: Path, cameras: dict[int, tuple[str, int, int, list[float]]],
                      images: list[tuple[int, np.ndarray, int, str, str]], comment: str = "") -> Path:
    """A COLMAP text model in ``folder``: ``cameras`` {id: (model, width, height, params)}, ``images`` (image
    id, NeRF camera-to-world, camera id, name, POINTS2D line), and an empty ``points3D.txt``. ``comment``
    lines go after the images file's header (readers must skip them)."""
    folder.mkdir(parents=True, exist_ok=True)
    cams = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
    cams += [f"{cid} {model} {w} {h} {' '.join(repr(float(p)) for p in params)}"
             for cid, (model, w, h, params) in cameras.items()]
    (folder / "cameras.txt").write_text("\n".join(cams) + "\n")
    lines = ["# Image list with two lines of data per image:", *([comment] if comment else [])]
    for image_id, c2w, camera_id, name, points in images:
        q, t = colmap_world_to_camera(c2w)
        lines += [f"{image_id} {' '.join(repr(v) for v in q + t)} {camera_id} {name}", points]
    (folder / "images.txt").write_text("\n".join(lines) + "\n")
    (folder / "points3D.txt").write_text("# 3D point list: none (the poses are given, not reconstructed)\n")
    return folder


# ----------------------------------------------------------------------------------------- faults


def distort_image(image: np.ndarray, camera: Camera) -> np.ndarray:
    """The (H, W, C) pinhole ``image`` as ``camera`` (same pinhole, with distortion) photographs it: each photo
    pixel centre is taken back through the inverse of the forward model (fixed-point iteration) and the
    image sampled there bilinearly, edges clamped."""
    from scipy.ndimage import map_coordinates

    p = camera.pinhole
    rows, cols = np.meshgrid(np.arange(p.height) + 0.5, np.arange(p.width) + 0.5, indexing="ij")
    xd, yd = (cols - p.cx) / p.fx, (rows - p.cy) / p.fy
    x, y = xd.copy(), yd.copy()
    for _ in range(50):
        fx, fy = camera.distort(x, y)
        x, y = x - (fx - xd), y - (fy - yd)
    u, v = p.fx * x + p.cx - 0.5, p.fy * y + p.cy - 0.5  # pixel centres at integers
    return np.stack([map_coordinates(image[..., c].astype(np.float64), [v, u], order=1, mode="nearest")
                     for c in range(image.shape[2])], -1)


def noisy_pose(c2w: np.ndarray, rotation_deg: float, shift: float, rng: np.random.Generator) -> np.ndarray:
    """``c2w`` turned by ``rotation_deg`` about a random axis through the camera and moved ``shift``."""
    from scipy.spatial.transform import Rotation

    axis, move = rng.normal(size=3), rng.normal(size=3)
    turn = Rotation.from_rotvec(axis / np.linalg.norm(axis) * math.radians(rotation_deg)).as_matrix()
    out = np.array(c2w, np.float64)
    out[:3, :3] = turn @ out[:3, :3]
    out[:3, 3] += move / np.linalg.norm(move) * shift
    return out


def write_photo_capture(scene: Path, out: Path, faults: PhotoFaults = PhotoFaults()) -> Path:
    """Write the capture of a rendered truth scene (module doc) into ``out``; returns ``out``. Every view of the
    scene (train, then test) becomes one photo ``images/view_NNN.png``."""
    from PIL import Image

    scene, out = Path(scene), Path(out)
    frames, angle = [], None
    for split in ("train", "test"):
        path = scene / f"transforms_{split}.json"
        if path.is_file():
            doc = json.loads(path.read_text())
            angle = doc["camera_angle_x"]
            frames += doc["frames"]
    if not frames or angle is None:
        raise FileNotFoundError(f"{scene} has no transforms_train.json: render it with nstr.nerf.truth_scenes first")
    with np.load(scene / "true_mesh.npz") as z:
        verts, ground_z = z["vertices"], float(z["ground_z"]) if "ground_z" in z else float("nan")
    lo, hi = verts.min(0), verts.max(0)
    size = float((hi - lo).max())
    rng = np.random.default_rng(faults.seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "colmap" / "images").mkdir(parents=True, exist_ok=True)
    intr = pinhole = None
    true_poses, poses, gains, coeffs, names = [], [], [], [], []
    for k, frame in enumerate(frames):
        with Image.open(scene / frame["file_path"].removeprefix("./")) as im:
            rgb = np.asarray(im.convert("RGB"), np.float64)
        if intr is None:
            h, w = rgb.shape[:2]
            f = 0.5 * w / math.tan(0.5 * angle)
            intr = Intrinsics(f, f, 0.5 * w, 0.5 * h, w, h)
            pinhole = [intr.fx, intr.fy, intr.cx, intr.cy]
        gain = float(rng.uniform(*faults.gains))
        k12 = (faults.k1, faults.k2) if k % faults.distort_every == faults.distort_every - 1 else (0.0, 0.0)
        if k12 != (0.0, 0.0):
            rgb = distort_image(rgb, Camera(intr, "opencv", (*k12, 0.0, 0.0, 0.0)))
        name = f"view_{k:03d}.png"
        Image.fromarray(np.clip(np.round(rgb * gain), 0, 255).astype(np.uint8)).save(out / "images" / name)
        shutil.copyfile(out / "images" / name, out / "colmap" / "images" / name)
        true_c2w = np.asarray(frame["transform_matrix"], np.float64)
        true_poses.append(true_c2w)
        poses.append(noisy_pose(true_c2w, faults.rotation_deg, faults.shift * size, rng))
        gains.append(gain)
        coeffs.append(k12)
        names.append(name)
    ns_frames = [{"file_path": f"images/{n}", "transform_matrix": p.tolist(), "k1": c[0], "k2": c[1]}
                 for n, p, c in zip(names, poses, coeffs)]
    (out / "transforms.json").write_text(json.dumps(
        {"camera_model": "OPENCV", "fl_x": intr.fx, "fl_y": intr.fy, "cx": intr.cx, "cy": intr.cy, "w": intr.width,
         "h": intr.height, "k1": 0.0, "k2": 0.0, "k3": 0.0, "p1": 0.0, "p2": 0.0, "frames": ns_frames}, indent=1))
    write_colmap_text(out / "colmap" / "sparse" / "0",
                      {1: ("PINHOLE", intr.width, intr.height, pinhole),
                       2: ("OPENCV", intr.width, intr.height, pinhole + [faults.k1, faults.k2, 0.0, 0.0])},
                      [(k + 1, p, 2 if c != (0.0, 0.0) else 1, n, "") for k, (p, c, n) in
                       enumerate(zip(poses, coeffs, names))])
    truth = {"faults": asdict(faults), "intrinsics": pinhole + [intr.width, intr.height], "names": names,
             "gains": gains, "k1k2": coeffs, "true_poses": [p.tolist() for p in true_poses],
             "poses": [p.tolist() for p in poses], "object_box": [lo.tolist(), hi.tolist()], "object_size": size,
             "ground_z": ground_z, "scene": str(scene)}
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    return out


def object_region(truth: dict, pad: float = 0.1, floor: float = 0.005) -> tuple[float, ...]:
    """The region of interest for a capture's fit (``task.box``: x0, y0, z0, x1, y1, z1): the object's box
    padded by ``pad`` of its size on every side, but its floor ``floor`` of the size above the ground, so the
    ground stays out of the mesh."""
    lo, hi = np.asarray(truth["object_box"][0]), np.asarray(truth["object_box"][1])
    size = truth["object_size"]
    lo, hi = lo - pad * size, hi + pad * size
    if math.isfinite(truth["ground_z"]):
        lo[2] = truth["ground_z"] + floor * size
    return tuple(float(v) for v in (*lo, *hi))
