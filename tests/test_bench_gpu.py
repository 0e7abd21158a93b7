"""``scripts/bench_gpu.py --tiny`` runs end to end on the CPU (no GPU here) and writes its JSON and table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nstr.tasks.sdf import STAGES

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_gpu_tiny_runs_every_section(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_gpu.py"), "--tiny", "--device", "cpu",
                           "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((tmp_path / "gpu.json").read_text())
    assert doc["device"] == "cpu" and doc["precision"]["tf32_matmul"] is False
    mc = doc["marching_cubes"]  # a sphere of radius 0.5: every vertex within a fraction of a voxel of it
    assert set(mc["backends"]) == {"torch", "skimage"} and mc["same_counts"]
    for row in mc["backends"].values():
        assert row["faces"] > 1000 and row["max_radius_error"] < 0.1 * mc["voxel"]
    assert [r["model"] for r in doc["bunny"]] == ["nstr", "hashgrid"]
    for r in doc["bunny"]:
        assert 0.0 < r["iou"] <= 1.0 and 0.0 <= r["fscore_1pct"] <= 1.0
        assert set(STAGES) <= set(r["timings"])
    assert {r["model"] for r in doc["queries"]} == {"nstr", "siren", "ffn", "hashgrid"}
    assert all(r["inference_qps"] > 0 and r["training_qps"] > 0 for r in doc["queries"])
    assert doc["nerf"]["psnr_vs_seconds"] and doc["nerf"]["test_psnr"] > 5.0
    assert "## Bunny end to end" in (tmp_path / "gpu.md").read_text()
