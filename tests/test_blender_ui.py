"""The real Blender UI (Debian's 3.4) under Xvfb: install the add-on, fit Suzanne from the panel
with the UI's own timers, screenshot the panel mid-fit, the result with its viewport legend and the
preferences, check Undo. Phases are read from the job's log, not from what a poll happened to see."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS = ("blender", "Xvfb", "xdotool", "import", "identify")
pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                                reason="needs blender, Xvfb, xdotool and ImageMagick (scripts/setup.sh)")


def _identify(path: Path, fmt: str) -> str:
    return subprocess.run(["identify", "-format", fmt, str(path)], capture_output=True, text=True).stdout


@pytest.mark.slow
def test_screenshots_from_the_real_ui(tmp_path):
    shots, assets = tmp_path / "shots", tmp_path / "assets"
    proc = subprocess.run([sys.executable, "scripts/screenshot_panel.py", "--out", str(shots), "--assets", str(assets),
                           "--steps", "150", "--resolution", "24", "--overrides",
                           "train.batch_size=256 task.samples=10000 task.metrics=false field.grid_levels=4 "
                           "field.grid_table_size=4096"],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for name in ("viewport_legend", "preferences"):
        assert (assets / f"{name}.png").stat().st_size < 300 * 1024
        # not blank: many distinct colours (UI text, the coloured result)
        assert int(_identify(shots / f"{name}.png", "%k")) > 200, name
    assert _identify(shots / "viewport_legend.png", "%w %h").split() == ["1600", "900"]
    phases = next(ln for ln in proc.stdout.splitlines() if "phases (job log)" in ln)
    assert "'fitting'" in phases and "'extracting'" in phases
    state = json.loads(next(ln for ln in proc.stdout.splitlines() if "result state" in ln).split("result state ", 1)[1])
    assert state == {"solid_color_type": "VERTEX", "source_hidden": [True, True]}   # colours at once, no z-fight
    undo = json.loads(next(ln for ln in proc.stdout.splitlines() if "undo check" in ln).split("undo check ", 1)[1])
    assert undo == {"present_after_undo": False, "present_after_redo": True, "original_present": True}
