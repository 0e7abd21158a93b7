"""The real Blender UI (Debian's 3.4) under Xvfb: install the add-on, fit Suzanne from the
panel with the UI's own timers, open the NSTR sidebar tab, screenshot it, check Undo."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS = ("blender", "Xvfb", "xdotool", "import", "convert")
pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                                reason="needs blender, Xvfb, xdotool and ImageMagick (scripts/setup.sh)")


def test_panel_screenshot_from_the_real_ui(tmp_path):
    shot = tmp_path / "panel.png"
    asset = tmp_path / "panel_small.png"
    proc = subprocess.run([sys.executable, "scripts/screenshot_panel.py", "--out", str(shot), "--asset", str(asset),
                           "--steps", "20", "--resolution", "24", "--overrides",
                           "train.batch_size=512 task.samples=10000 task.metrics=false field.grid_levels=4 "
                           "field.grid_table_size=4096"],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    size = subprocess.run(["identify", "-format", "%w %h", str(shot)], capture_output=True, text=True).stdout
    assert size.split() == ["1600", "900"]
    assert asset.stat().st_size < 300 * 1024
    # the screenshot is not blank: many distinct colours (UI text, the coloured result)
    colours = int(subprocess.run(["identify", "-format", "%k", str(shot)], capture_output=True, text=True).stdout)
    assert colours > 500
    progress = next(ln for ln in proc.stdout.splitlines() if "progress seen" in ln)
    assert "fitting" in progress
    undo = json.loads(next(ln for ln in proc.stdout.splitlines() if "undo check" in ln).split("undo check ", 1)[1])
    assert undo == {"present_after_undo": False, "present_after_redo": True, "original_present": True}
