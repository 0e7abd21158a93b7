#!/usr/bin/env python3
"""Blender's own Cavity shading of the inputs beside the detail map of their fits, from the same camera.

    python scripts/cavity_compare.py out/detail.blend out/cavity_vs_detail.png     (the bpy module)

``out/detail.blend`` is what ``scripts/fit.py --output`` saved (its camera, its results, their hidden
sources) and ``out/detail.png`` beside it the detail picture fit.py rendered. Issue 27 began with users
saying Cavity showed the detail better; this puts the two side by side: left, the inputs as an artist
would inspect them without the add-on (Workbench, studio light, one grey, Cavity on, ridges and valleys
both); right, fit.py's picture (flat light, the same Cavity, the detail colours and the legend).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import bpy
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from nstr_blender.blender.results import SOURCE_PROP  # noqa: E402  (the result -> source link, one source)


def render_cavity(blend: Path, out: Path) -> None:
    """Render the results' sources with Blender's Cavity shading through the file's own camera."""
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene = bpy.context.scene
    if scene.camera is None:
        raise SystemExit(f"cavity_compare: {blend} has no camera. Save it with scripts/fit.py --output")
    results = [o for o in scene.objects if o.type == "MESH" and SOURCE_PROP in o]
    if not results:
        raise SystemExit(f"cavity_compare: {blend} has no NSTR results. Fit it with scripts/fit.py first")
    for obj in results:
        obj.hide_render = True
        source = bpy.data.objects.get(str(obj[SOURCE_PROP]))
        if source is not None:
            source.hide_render = False
    scene.render.engine = "BLENDER_WORKBENCH"
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = "SINGLE"
    shading.single_color = (0.8, 0.8, 0.8)
    shading.show_cavity = True
    shading.cavity_type = "BOTH"
    scene.view_settings.view_transform = "Standard"
    scene.render.filepath = str(out)
    bpy.ops.render.render(write_still=True)


def side_by_side(left: Path, right: Path, out: Path) -> None:
    from PIL import Image

    a, b = Image.open(left).convert("RGB"), Image.open(right).convert("RGB")
    h = max(a.height, b.height)
    canvas = np.full((h, a.width + b.width + 8, 3), 255, np.uint8)
    canvas[:a.height, :a.width] = np.asarray(a)
    canvas[:b.height, a.width + 8:] = np.asarray(b)
    Image.fromarray(canvas).save(out)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    blend, out = Path(argv[0]), Path(argv[1])
    detail = blend.with_suffix(".png")
    if not blend.is_file() or not detail.is_file():
        print(f"cavity_compare: needs {blend} and {detail} (scripts/fit.py --output {blend}). Run fit.py first",
              file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        cavity = Path(tmp) / "cavity.png"
        render_cavity(blend, cavity)
        side_by_side(cavity, detail, out)
    print(f"cavity_compare: wrote {out} (left: Cavity on the inputs; right: {detail.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
