"""Lenses: a camera's pinhole part plus its distortion, and photos remapped into a pinhole camera.

Lens distortion (COLMAP's SIMPLE_RADIAL, RADIAL, OPENCV, OPENCV_FISHEYE; nerfstudio's ``k1 k2 k3 p1 p2``
or ``camera_model: OPENCV_FISHEYE`` with ``k1..k4``) is removed at load: every pixel of the pinhole
camera with the same fx, fy, cx, cy samples the photo where the forward (closed-form) distortion model
sends it, bilinearly; pixels that fall outside the photo get alpha 0 and are marked as having no data
(:func:`undistort`'s second result, ``Views.valid``): a photo without alpha stays "no alpha", and those
margins are neither background nor trained on. Everything downstream stays pinhole.

No other NeRF module is imported here (the pinhole part is duck-typed: fx, fy, cx, cy, width, height and
``scaled``), so both readers, the transforms files (:mod:`nstr.nerf.dataset`) and COLMAP captures
(:mod:`nstr.nerf.capture`), build on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from nstr.errors import InputError

MAX_MAPS = 4  # sample maps kept while loading (24 bytes a pixel each)


@dataclass
class Camera:
    """A camera as photographed: its pinhole part plus distortion. ``kind`` is "pinhole", "opencv" (coeffs
    k1, k2, k3, p1, p2: radial-tangential) or "fisheye" (coeffs k1..k4: equidistant, OpenCV's model)."""

    pinhole: Any  # nstr.nerf.dataset.Intrinsics
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


def check_transforms_lenses(doc: Mapping[str, Any], frames: list[Mapping[str, Any]], wheres: list[str]) -> None:
    """The lens keys of every frame, checked without an image (for check_dataset_folder)."""
    for frame, where in zip(frames, wheres):
        lens_from_transforms(doc, frame, where)


def needs_remap(camera: Camera, target: Any) -> bool:
    return camera.distorted or camera.pinhole != target


def sample_map(camera: Camera, target: Any) -> tuple[np.ndarray, np.ndarray]:
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


def undistort(image: np.ndarray, camera: Camera, target: Any, maps: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """The (H, W, 4) RGBA photo taken through ``camera`` as seen by the pinhole ``target``: each target pixel
    centre is sent through the forward model and sampled bilinearly (premultiplied, so transparent pixels
    don't bleed); samples outside the photo (beyond its outer pixel edges) have alpha 0. Second: (H, W) bool,
    the pixels whose sample lies in the photo; the others have no data (pincushion distortion, or a pinhole
    wider than the photo, leaves such margins), which is not the same as transparent. ``maps`` caches
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
    covered = (weights.sum(1) > 0.5).reshape(target.height, target.width)  # a pixel's weights: all 0 or sum 1
    return np.clip(np.concatenate([rgb, alpha], -1), 0.0, 1.0).astype(np.float32), covered
