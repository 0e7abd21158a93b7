"""Per-photo appearance (``task.appearance=exposure``, issue 31) against a known answer: a Blender-rendered cube
whose training photos were each taken at a known exposure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

DARKEN = 0.6   # every photo: nothing clips at the brightest exposure (0.6 x 1.42 < 1)


@pytest.fixture(scope="module")
def exposed_cube(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """The cube scene, every photo darkened, each training photo then scaled by its own gain (geometric mean
    1, 0.70 to 1.42): the folder and the true gains."""
    from nstr.nerf.truth_scenes import render_truth_scene

    base = tmp_path_factory.mktemp("appearance")
    scene = render_truth_scene(base / "cube", "cube", 16, 2, 40, samples=8)
    out = base / "exposed"
    shutil.copytree(scene, out)
    gains = np.exp(np.linspace(-0.35, 0.35, 16))[np.random.default_rng(0).permutation(16)]
    for split in ("train", "test"):
        doc = json.loads((out / f"transforms_{split}.json").read_text())
        for i, frame in enumerate(doc["frames"]):
            path = out / frame["file_path"]
            path = path if path.suffix else path.with_suffix(".png")
            rgba = np.asarray(Image.open(path).convert("RGBA"), np.float64) / 255.0
            rgba[..., :3] *= DARKEN * (gains[i] if split == "train" else 1.0)
            Image.fromarray(np.round(np.clip(rgba, 0, 1) * 255).astype(np.uint8)).save(path)
    return out, gains


@pytest.mark.slow
def test_per_photo_exposure_is_read_back(exposed_cube: tuple[Path, np.ndarray]) -> None:
    """With ``task.appearance=exposure`` the fit reads each photo's exposure back in order (rank correlation
    >= 0.85; 0.915 measured) and at least half its size (a log-slope >= 0.5 against the truth; 0.68): the view-
    dependent colour head explains the rest, a partial answer the note reports. Without it nothing is read."""
    from nstr.nerf.source import load_dataset
    from nstr.tasks.nerf import fit_nerf, nerf_config
    from nstr.validation.scores import spearman

    torch.set_num_threads(1)
    folder, gains = exposed_cube
    dataset = load_dataset(folder, 40)
    cfg = nerf_config("quick", {"model": "hashgrid", "params": 20000, "steps": 300, "train.eval_every": 0,
                                "task.appearance": "exposure", "seed": 0})
    result = fit_nerf(dataset, cfg)
    read = np.array(result.report["appearance"]["exposure"])
    slope = float(np.polyfit(np.log(gains), np.log(read), 1)[0])
    print(f"exposure read / true: rho {spearman(read, gains):.3f}, log-slope {slope:.3f}, "
          f"held-out PSNR {result.metrics['psnr']:.2f} dB")
    assert result.report["appearance"]["photos"] == 16
    assert spearman(read, gains) >= 0.85 and slope >= 0.5
