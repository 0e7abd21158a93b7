"""Build the detail-map test scene the README pictures come from: a noise-displaced Rock, a bevelled
12-sided Prop and Suzanne, side by side in one .blend (so one colour scale covers all three).

    python scripts/detail_scene.py out/detail_scene.blend          (the bpy module)
    python scripts/fit.py --scene out/detail_scene.blend --objects Rock Prop Suzanne \\
        --output out/detail.blend

What an artist should read from the result (issue 27): the Rock's bumps in warm-to-cool colours by
their size, fading where they are faint; the Prop's bevels as creases (dark grey) and its flat faces
as "no detail" (grey); Suzanne's face mostly coarse or plain, her ears' and brows' folds creased.
"""

from __future__ import annotations

import sys
from pathlib import Path

import bpy


def build(path: Path) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    # Rock: an icosphere displaced by two octaves of clouds noise (bumps of a few cm on a 1 m rock)
    bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=6, radius=0.5, location=(-1.3, 0.0, 0.5))
    rock = bpy.context.active_object
    rock.name = "Rock"
    tex = bpy.data.textures.new("RockNoise", "CLOUDS")
    tex.noise_scale = 0.18
    tex.noise_depth = 2
    disp = rock.modifiers.new("Displace", "DISPLACE")
    disp.texture = tex
    disp.strength = 0.12
    # Prop: a 12-sided column with bevelled edges (creases, not texture)
    bpy.ops.mesh.primitive_cylinder_add(vertices=12, radius=0.4, depth=1.0, location=(0.0, 0.0, 0.5))
    prop = bpy.context.active_object
    prop.name = "Prop"
    bevel = prop.modifiers.new("Bevel", "BEVEL")
    bevel.width = 0.02
    bevel.segments = 3
    # Suzanne, smoothed once
    bpy.ops.mesh.primitive_monkey_add(size=1.0, location=(1.3, 0.0, 0.5))
    monkey = bpy.context.active_object
    monkey.name = "Suzanne"
    monkey.modifiers.new("Subdivision", "SUBSURF").levels = 2
    path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(path.resolve()))
    print(f"detail_scene: wrote {path}")


if __name__ == "__main__":
    args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    build(Path(args[0]) if args else Path("out/detail_scene.blend"))
