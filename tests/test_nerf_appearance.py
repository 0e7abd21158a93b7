"""Real photos' two known errors (issue 31) against known answers, in one fit: a Blender-rendered cube whose
training photos were each taken at a known exposure (``task.appearance=exposure``) from a camera turned by a
known angle (``task.pose_refine``). The fast checks of pose refinement's maths are in ``test_nerf_pose.py``."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

DARKEN = 0.6   # every photo: nothing clips at the brightest exposure (0.6 x 1.42 < 1)
TURN_DEG = 2.0  # every training camera turned this much about its own centre


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(np.clip((np.trace(a[:3, :3].T @ b[:3, :3]) - 1) / 2, -1, 1)))


@pytest.fixture(scope="module")
def photographed_cube(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """The cube scene, every photo darkened, each training photo then scaled by its own gain (geometric mean
    1, 0.70 to 1.42) and its camera turned TURN_DEG about its own random axis (mean-free, so the capture's
    frame is the truth's): the folder, the true gains and the true camera-to-world matrices."""
    from nstr.nerf.pose_refine import rotation_matrices
    from nstr.nerf.truth_scenes import render_truth_scene

    base = tmp_path_factory.mktemp("appearance")
    scene = render_truth_scene(base / "cube", "cube", 16, 2, 40, samples=8)
    out = base / "photographed"
    shutil.copytree(scene, out)
    gains = np.exp(np.linspace(-0.35, 0.35, 16))[np.random.default_rng(0).permutation(16)]
    axes = np.random.default_rng(0).normal(size=(16, 3))
    noise = axes / np.linalg.norm(axes, axis=1, keepdims=True) * math.radians(TURN_DEG)
    turn = rotation_matrices(torch.tensor(noise - noise.mean(0))).numpy()
    true = []
    for split in ("train", "test"):
        doc = json.loads((out / f"transforms_{split}.json").read_text())
        for i, frame in enumerate(doc["frames"]):
            path = out / frame["file_path"]
            path = path if path.suffix else path.with_suffix(".png")
            rgba = np.asarray(Image.open(path).convert("RGBA"), np.float64) / 255.0
            rgba[..., :3] *= DARKEN * (gains[i] if split == "train" else 1.0)
            Image.fromarray(np.round(np.clip(rgba, 0, 1) * 255).astype(np.uint8)).save(path)
            if split == "train":
                m = np.array(frame["transform_matrix"], np.float64)
                true.append(m.copy())
                m[:3, :3] = turn[i] @ m[:3, :3]
                frame["transform_matrix"] = m.tolist()
        (out / f"transforms_{split}.json").write_text(json.dumps(doc))
    return out, gains, np.array(true)


@pytest.mark.slow
def test_per_photo_exposure_and_camera_turns_are_read_back(
        photographed_cube: tuple[Path, np.ndarray, np.ndarray]) -> None:
    """With ``task.appearance=exposure`` and ``task.pose_refine`` one fit (300 steps) reads:
    - each photo's exposure back in order (rank correlation >= 0.85; 0.929 measured) and at least half its size
      (a log-slope >= 0.5 against the truth; 0.73): the view-dependent colour head explains the rest, a partial
      answer the note reports;
    - each camera turned back to a median error of at most 0.6 of its 2-degree turn (0.68 degrees measured;
      0.87 without the exposures to read: under a pixel at 40 px, where a 2-degree turn is 1.9 px). Held-out
      PSNR without the exposures: 18.10 dB with the turned poses, 19.84 refined, 20.32 with the true ones."""
    from nstr.nerf.source import load_dataset
    from nstr.tasks.nerf import fit_nerf, nerf_config
    from nstr.validation.scores import spearman

    torch.set_num_threads(1)
    folder, gains, true = photographed_cube
    dataset = load_dataset(folder, 40)
    cfg = nerf_config("quick", {"model": "hashgrid", "params": 20000, "steps": 300, "train.eval_every": 0,
                                "task.appearance": "exposure", "task.pose_refine": True, "seed": 0})
    result = fit_nerf(dataset, cfg)
    read = np.array(result.report["appearance"]["exposure"])
    slope = float(np.polyfit(np.log(gains), np.log(read), 1)[0])
    given = torch.as_tensor(np.asarray(dataset.train.poses), dtype=torch.float32)
    corrected = result.renderer.model.pose_refinement.corrected_poses(given).detach().numpy()
    before = float(np.median([_angle_deg(true[i], given[i].numpy()) for i in range(len(true))]))
    after = float(np.median([_angle_deg(true[i], corrected[i]) for i in range(len(true))]))
    print(f"exposure read / true: rho {spearman(read, gains):.3f}, log-slope {slope:.3f}; rotation error median "
          f"{before:.3f} deg given, {after:.3f} refined; held-out PSNR {result.metrics['psnr']:.2f} dB")
    assert result.report["appearance"]["photos"] == 16
    assert spearman(read, gains) >= 0.85 and slope >= 0.5
    assert before == pytest.approx(TURN_DEG, abs=0.1)
    assert after <= 0.6 * before
    report = result.report["pose_refinement"]
    assert report["photos"] == len(true) and report["rotation_deg_median"] >= 0.5 * TURN_DEG
