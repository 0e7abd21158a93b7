"""A NeRF dataset folder, whichever kind it is: ``transforms*.json`` files (:mod:`nstr.nerf.dataset`) or a
photo capture with a COLMAP sparse model and no transforms file (:mod:`nstr.nerf.capture`).

The one place that picks the reader, so the readers need not know each other (the capture reader builds
on the transforms reader's views, checks and images).
"""

from __future__ import annotations

from pathlib import Path

from nstr.nerf.capture import check_capture, find_colmap_model, load_capture
from nstr.nerf.dataset import (MAX_FRAMES, MAX_PIXELS, SPLITS, LoadBudget, NerfDataset, Progress,
                               check_transforms_folder, dataset_file, load_transforms_dataset)


def is_capture(folder: str | Path) -> bool:
    """A folder with no transforms*.json but a COLMAP model: a photo capture."""
    root = Path(folder).expanduser()
    if not root.is_dir() or any(dataset_file(root, f"transforms{s}.json") is not None
                                for s in ("", *(f"_{x}" for x in SPLITS))):
        return False
    return find_colmap_model(root) is not None


def load_dataset(folder: str | Path, image_size: int = 0, *, max_frames: int = MAX_FRAMES,
                 max_pixels: int = MAX_PIXELS, progress: Progress | None = None) -> NerfDataset:
    """Read a dataset folder of either kind. ``image_size`` > 0 resizes every view to that square size
    (area filter). At most ``max_frames`` views and ``max_pixels`` pixels (after resizing) are loaded;
    ``progress(done, total)`` is called every chunk of frames and may raise to stop the load."""
    if is_capture(folder):
        return load_capture(Path(folder).expanduser(), image_size, LoadBudget(max_frames, max_pixels, progress))
    return load_transforms_dataset(folder, image_size, max_frames=max_frames, max_pixels=max_pixels,
                                   progress=progress)


def check_dataset_folder(folder: str | Path, max_frames: int = MAX_FRAMES) -> None:
    """What :func:`load_dataset` checks before it decodes an image, for a server to run at submit: cheap,
    and the same words."""
    if is_capture(folder):
        check_capture(Path(folder).expanduser(), LoadBudget(max_frames))
        return
    check_transforms_folder(folder, max_frames)
