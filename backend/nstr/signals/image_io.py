"""Image files in and out: PNG or JPEG, grey or RGB, as float32 arrays in [0, 1].

Loading validates what a fit needs (a real image, big enough, no transparency
that would be silently dropped) and turns every failure into a one-line
:class:`~nstr.errors.InputError`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from nstr.errors import InputError
from nstr.paths import check_readable_file, check_writable_output

FORMATS = ("PNG", "JPEG")
OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg")
MIN_SIDE = 8  # SSIM's 7x7 window must fit, and a field needs more than a handful of samples


def load_image(path: str | Path) -> np.ndarray:
    """Read a PNG/JPEG as ``(H, W, C)`` float32 in [0, 1], with C = 1 (grey) or 3 (RGB)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    check_readable_file(path, "an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                fmt = img.format
                if fmt not in FORMATS:
                    raise InputError(f"'{path.name}' is a {fmt} image; only PNG and JPEG are supported",
                                     "Convert it to PNG (lossless) first")
                img.load()
                array = _to_float(img, path)
    except InputError:
        raise
    except (UnidentifiedImageError, SyntaxError):
        raise InputError(f"'{path.name}' is not an image PIL can read (unknown or unsupported format)",
                         "Pass a PNG or JPEG file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"'{path.name}' is too large to load safely (decompression-bomb limit)",
                         "Downscale it below about 89 megapixels") from None
    except (OSError, ValueError) as err:
        raise InputError(f"'{path.name}' could not be decoded ({err})",
                         "The file may be truncated or corrupt; re-export it as PNG") from None
    h, w = array.shape[:2]
    if h < MIN_SIDE or w < MIN_SIDE:
        raise InputError(f"'{path.name}' is {w} x {h} pixels, too small to fit",
                         f"Use an image of at least {MIN_SIDE} x {MIN_SIDE} pixels")
    return array


def _to_float(img, path: Path) -> np.ndarray:
    """PIL image of any common mode -> (H, W, 1|3) float32 in [0, 1]."""
    mode = img.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"))
        if (rgba[..., 3] < 255).any():
            raise InputError(f"'{path.name}' has transparent pixels; the fit uses grey or RGB only",
                             "Flatten the alpha channel onto a background (e.g. export as RGB) first")
        mode = "LA" if mode == "LA" else "RGBA"
    if mode in ("1", "L", "LA"):
        return (np.asarray(img.convert("L"), dtype=np.float32) / 255.0)[..., None]
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        raw = np.asarray(img, dtype=np.float64)
        top = 65535.0 if raw.max() > 255 or mode.startswith("I;16") else 255.0
        return np.clip(raw / top, 0.0, 1.0).astype(np.float32)[..., None]
    if mode == "F":
        raise InputError(f"'{path.name}' holds floating-point pixels", "Save it as 8- or 16-bit PNG")
    rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    if mode == "P" and np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        return rgb[..., :1].copy()  # a grey palette stays grey
    return rgb


def save_image(path: str | Path, image: np.ndarray) -> Path:
    """Write ``(H, W, 1|3)`` or ``(H, W)`` values in [0, 1] as 8-bit PNG/JPEG (by extension)."""
    from PIL import Image

    path = Path(path)
    check_writable_output(path, (), OUTPUT_SUFFIXES, "an image")
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    u8 = np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(u8).save(path, quality=95) if path.suffix.lower() != ".png" else Image.fromarray(u8).save(path)
    return path
