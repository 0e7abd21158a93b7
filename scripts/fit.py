"""Fit NSTR to Blender objects headlessly, save the .blend and render the coloured result.

    blender -b [scene.blend] -P scripts/fit.py -- [options]
    python scripts/fit.py [options]                  (with the bpy module installed)

With no options it fits Blender's Suzanne with the quick preset and writes
out/suzanne.blend and out/suzanne.png (+ one PNG per spectral attribute).
Same code as the add-on: the objects go to the backend as jobs, results come back
as "<name>_NSTR" objects in the "NSTR" collection. Exits non-zero with a one-line
message on failure.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import bpy  # noqa: E402  (Blender's own, or the bpy module)

import nstr_blender  # noqa: E402
from nstr_blender.core.errors import AddonError  # noqa: E402
from nstr_blender.core.meshdata import DISPLAY_BY_NAME, MeshResult, legend_lines  # noqa: E402
from nstr_blender.core.mesh_files import read_mesh  # noqa: E402
from nstr_blender.core.settings import (PRESETS, BackendSettings, TaskSettings, default_python,  # noqa: E402
                                        parse_overrides)


def script_args() -> list[str]:
    """Arguments after '--' inside Blender; all arguments under a plain Python."""
    argv = sys.argv
    if "--" in argv:
        return argv[argv.index("--") + 1:]
    return argv[1:] if argv and argv[0].endswith(".py") else []


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="fit.py", description="Fit NSTR to objects and render the result.")
    p.add_argument("--scene", type=Path, help="open this .blend first (python mode; in Blender pass it before -P)")
    p.add_argument("--objects", nargs="+", metavar="NAME", help="objects to fit (default: selected meshes, "
                   "else all meshes; with an empty scene: Suzanne)")
    p.add_argument("--input", type=Path, help="fit a mesh file (OFF, OBJ, STL, PLY) instead")
    p.add_argument("--task", choices=("sdf", "nerf"), default="sdf")
    p.add_argument("--preset", choices=PRESETS, default="quick")
    p.add_argument("--nerf-views", type=int, default=30, help="--task nerf: training views to render")
    p.add_argument("--nerf-size", type=int, default=100, help="--task nerf: view size in pixels")
    p.add_argument("--steps", type=int, default=0, help="training steps (0: the preset's)")
    p.add_argument("--K", dest="n_freqs", type=int, default=0, help="frequencies K (0: the preset's)")
    p.add_argument("--resolution", type=int, default=0, help="marching-cubes resolution (0: the preset's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any backend config override, e.g. --set train.batch_size=4096")
    p.add_argument("--output", type=Path, help="the .blend to write (default: out/<object>.blend)")
    p.add_argument("--render", type=Path, help="the picture to write (default: next to --output); also "
                   "<name>_<attribute>.png for each attribute")
    p.add_argument("--no-render", action="store_true", help="save the .blend only")
    p.add_argument("--engine", choices=("workbench", "cycles"), default="workbench")
    p.add_argument("--size", type=int, default=640, help="picture width in pixels (default 640)")
    backend = p.add_mutually_exclusive_group()
    backend.add_argument("--backend-url", help="a running 'nstr serve' (default: launch a local one)")
    backend.add_argument("--backend-python", help="the Python to launch the backend with "
                         "(default: <repo>/.venv/bin/python)")
    p.add_argument("--token", default="", help="the server's token (with --backend-url)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--timeout", type=float, default=3600.0, help="give up after this many seconds")
    return p.parse_args(argv)


def prepare_objects(args: argparse.Namespace) -> list[bpy.types.Object]:
    """The objects to fit: from --input, --objects, the selection, or a new Suzanne."""
    from nstr_blender.blender.mesh_io import build_mesh

    scene = bpy.context.scene
    if args.input is not None:
        verts, faces = read_mesh(args.input)
        mesh = build_mesh(args.input.stem, MeshResult(verts, faces))
        obj = bpy.data.objects.new(args.input.stem, mesh)
        scene.collection.objects.link(obj)
        return [obj]
    if args.objects:
        missing = [n for n in args.objects if n not in bpy.data.objects]
        if missing:
            have = ", ".join(o.name for o in bpy.data.objects if o.type == "MESH")[:200]
            raise AddonError(f"no object named {', '.join(missing)}", f"Objects with meshes here: {have or 'none'}")
        return [bpy.data.objects[n] for n in args.objects]
    selected = [o for o in scene.objects if o.type == "MESH" and o.select_get()]
    meshes = selected or [o for o in scene.objects if o.type == "MESH"]
    if meshes:
        return meshes
    bpy.ops.mesh.primitive_monkey_add(size=2.0)
    return [bpy.context.active_object]


def frame_camera(scene: bpy.types.Scene, objects: list[bpy.types.Object], size: int) -> None:
    """A camera looking at the objects from the front-right, and a light."""
    from mathutils import Vector

    corners = [o.matrix_world @ Vector(c) for o in objects for c in o.bound_box]
    lo = Vector((min(c.x for c in corners), min(c.y for c in corners), min(c.z for c in corners)))
    hi = Vector((max(c.x for c in corners), max(c.y for c in corners), max(c.z for c in corners)))
    center, radius = (lo + hi) / 2, max((hi - lo).length / 2, 1e-3)
    cam_data = bpy.data.cameras.new("NSTR Camera")
    cam_data.lens = 50
    cam = bpy.data.objects.new("NSTR Camera", cam_data)
    scene.collection.objects.link(cam)
    direction = Vector((0.55, -1.0, 0.45)).normalized()
    fov = 2 * math.atan(cam_data.sensor_width / (2 * cam_data.lens))
    cam.location = center + direction * (radius / math.sin(fov / 2) * 0.8)
    cam.rotation_euler = (center - cam.location).to_track_quat("-Z", "Y").to_euler()
    cam_data.clip_end = max(100.0, radius * 20)
    scene.camera = cam
    sun = bpy.data.objects.new("NSTR Light", bpy.data.lights.new("NSTR Light", "SUN"))
    sun.rotation_euler = (math.radians(40), math.radians(10), math.radians(30))
    scene.collection.objects.link(sun)
    scene.render.resolution_x = size
    scene.render.resolution_y = int(size * 3 / 4)
    scene.render.resolution_percentage = 100


def setup_engine(scene: bpy.types.Scene, engine: str) -> None:
    if scene.world is None:
        scene.world = bpy.data.worlds.new("NSTR World")
        scene.world.color = (0.22, 0.22, 0.24)      # a neutral grey behind the colours
    if engine == "cycles":
        scene.render.engine = "CYCLES"
        scene.cycles.samples = 32
        scene.cycles.use_denoising = False          # Debian's Blender has no OpenImageDenoise
        return
    scene.render.engine = "BLENDER_WORKBENCH"
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = "VERTEX"                   # the active colour attribute, as the viewport shows it
    scene.view_settings.view_transform = "Standard"  # colours as the colour maps define them


def show_colors_in_saved_viewports() -> None:
    """A person opening the .blend sees the attribute colours in Solid mode."""
    for screen in bpy.data.screens:
        for area in screen.areas:
            for space in area.spaces:
                if space.type == "VIEW_3D":
                    space.shading.type = "SOLID"
                    space.shading.color_type = "VERTEX"


def render_pictures(scene: bpy.types.Scene, results: list[bpy.types.Object], path: Path) -> list[Path]:
    """One picture per available attribute; the first also as ``path`` itself."""
    from nstr_blender.blender.results import result_meta, show_attribute

    hidden = [(o, o.hide_render) for o in scene.objects if o.type == "MESH" and o not in results]
    for obj, _ in hidden:
        obj.hide_render = True                      # only for the pictures; restored below
    written = []
    try:
        names = result_meta(results[0]).get("available", []) if results else []
        for i, name in enumerate(names):
            for obj in results:
                show_attribute(obj, name)
            target = path if i == 0 else path.with_name(f"{path.stem}_{name}{path.suffix}")
            scene.render.filepath = str(target)
            t0 = time.monotonic()
            bpy.ops.render.render(write_still=True)
            written.append(target)
            print(f"fit.py: rendered {DISPLAY_BY_NAME[name].label} -> {target} ({time.monotonic() - t0:.1f} s)")
        for obj in results:
            show_attribute(obj, names[0]) if names else None
    finally:
        for obj, state in hidden:
            obj.hide_render = state
    return written


def main() -> int:
    args = parse_args(script_args())
    t_start = time.monotonic()
    try:
        if args.scene is not None:
            if not args.scene.is_file():
                raise AddonError(f"scene '{args.scene}' does not exist", "Check the path given to --scene")
            bpy.ops.wm.open_mainfile(filepath=str(args.scene))
        if not bpy.data.filepath:
            bpy.ops.wm.read_factory_settings(use_empty=True)   # no default cube, camera, light
        if not hasattr(bpy.types.Scene, "nstr"):
            nstr_blender.register()
        from nstr_blender.blender.runtime import RUNTIME

        objects = prepare_objects(args)
        scene = bpy.context.scene
        from nstr_blender.blender.mesh_io import evaluated_arrays
        from nstr_blender.blender.operators import split_selection

        meshes, others = split_selection(objects)
        if others:
            print(f"fit.py: skipping non-mesh objects: {', '.join(others)}")
        task = TaskSettings(task=args.task, preset=args.preset, n_freqs=args.n_freqs, steps=args.steps,
                            resolution=args.resolution, extra=parse_overrides(" ".join(args.overrides)))
        config = task.job_config()
        first = meshes[0].name.split(".")[0].lower() or "result"
        output = args.output or REPO / "out" / f"{first}.blend"
        picture = args.render or output.with_suffix(".png")

        if args.backend_url:
            backend = BackendSettings(mode="url", url=args.backend_url, token=args.token)
        else:
            backend = BackendSettings(mode="local", python=args.backend_python or default_python() or "",
                                      device=args.device, log_dir=str(output.parent / "logs"))
        depsgraph = bpy.context.evaluated_depsgraph_get()
        if args.task == "nerf":
            if args.backend_url:
                raise AddonError("NeRF jobs read the rendered views from disk",
                                 "Use a local backend (--backend-python) for --task nerf")
            from nstr_blender.blender.nerf_render import render_nerf_dataset
            views = output.parent / f"{output.stem}_views"
            t0 = time.monotonic()
            try:
                dataset = render_nerf_dataset(bpy.context, meshes, str(views.resolve()), args.nerf_views,
                                              max(1, args.nerf_views // 6), args.nerf_size, "CYCLES", True)
            except ValueError as err:
                raise AddonError(f"cannot render the views: {err}") from None
            print(f"fit.py: rendered {args.nerf_views} views to {dataset} in {time.monotonic() - t0:.1f} s")
            source = meshes[0].name if len(meshes) == 1 else "NeRF"
            inputs = [(source, {})]
            config = {**config, "dataset_dir": str(dataset)}
        else:
            inputs = [(o.name, evaluated_arrays(o, depsgraph)) for o in meshes]
        what = f"{args.nerf_views} views" if args.task == "nerf" else \
            f"{sum(len(a['faces']) for _, a in inputs)} triangles"
        print(f"fit.py: Blender {bpy.app.version_string}; fitting {', '.join(n for n, _ in inputs)} ({what}), "
              f"task {args.task}, config {config}")

        t0 = time.monotonic()
        RUNTIME.start_backend(backend, block=True, timeout=180.0)
        health = RUNTIME.session.health
        print(f"fit.py: backend ready at {RUNTIME.session.url} on {health.get('device')} "
              f"({health.get('device_name', '')}) in {time.monotonic() - t0:.1f} s")
        for name, arrays in inputs:
            RUNTIME.tracker.add(name, args.task, config, arrays)

        made: list[bpy.types.Object] = []
        RUNTIME.on_result = made.append
        t_fit = time.monotonic()
        last: dict[str, str] = {}
        deadline = time.monotonic() + args.timeout
        while True:
            interval = RUNTIME.step()
            for record in RUNTIME.tracker:
                key = f"{record.state} {record.phase} {int(record.progress * 20)}"   # every 5%, and each phase
                if last.get(record.source) != key:
                    last[record.source] = key
                    print(f"fit.py: {record.source}: {record.progress_text()}", flush=True)
            if RUNTIME.message and RUNTIME.tracker.needs_polling():
                raise AddonError(RUNTIME.message)
            if not RUNTIME.tracker.needs_polling():
                break
            if time.monotonic() > deadline:
                raise AddonError(f"the fit took longer than {args.timeout:.0f} s", "Use --preset quick or --timeout")
            time.sleep(min(interval or 0.5, 0.5))
        failed = [r for r in RUNTIME.tracker if r.state != "collected"]
        if failed:
            raise AddonError("; ".join(f"{r.source}: {r.message or r.state}" for r in failed))
        fit_s = time.monotonic() - t_fit
        print(f"fit.py: fitted {len(made)} object(s) in {fit_s:.1f} s")
        for obj in made:
            from nstr_blender.blender.results import result_meta
            meta = result_meta(obj) or {}
            for name in meta.get("available", []):
                print(f"fit.py:   {obj.name} {DISPLAY_BY_NAME[name].label}: {', '.join(legend_lines(meta, name))}")

        frame_camera(scene, made or meshes, args.size)
        setup_engine(scene, args.engine)
        show_colors_in_saved_viewports()
        output.parent.mkdir(parents=True, exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=str(output.resolve()), check_existing=False)
        print(f"fit.py: saved {output}")
        if not args.no_render:
            picture.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.monotonic()
            render_pictures(scene, made, picture.resolve())
            print(f"fit.py: rendering took {time.monotonic() - t0:.1f} s")
        RUNTIME.stop_backend()
        print(f"fit.py: done in {time.monotonic() - t_start:.1f} s")
        return 0
    except AddonError as err:
        print(f"fit.py: error: {err}", file=sys.stderr)
    except KeyboardInterrupt:
        print("fit.py: interrupted", file=sys.stderr)
    except Exception as err:  # noqa: BLE001 - a bug: keep the traceback, still exit non-zero
        import traceback
        traceback.print_exc()
        print(f"fit.py: error: unexpected {type(err).__name__}: {err}", file=sys.stderr)
    try:
        from nstr_blender.blender.runtime import RUNTIME
        RUNTIME.stop_backend()
    except Exception:  # noqa: BLE001 - best effort on the way out
        pass
    return 1


if __name__ == "__main__":
    sys.exit(main())
