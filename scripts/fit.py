"""Fit NSTR to Blender objects headlessly, save the .blend and render the coloured result.

    blender -b [scene.blend] -P scripts/fit.py -- [options]
    python scripts/fit.py [options]                  (with the bpy module installed)

With no options it fits Blender's Suzanne with the quick preset and writes suzanne.blend and
suzanne.png (+ one PNG per attribute) into a new temporary folder (it prints where). With a
saved scene (``blender -b scene.blend`` or ``--scene``) the default output is
<scene>_nstr.blend next to it; the scene itself is never overwritten.
One driver: the script enables the add-on, selects the objects, sets the panel's
properties and presses the panel's button (``bpy.ops.nstr.fit``); the add-on's own
timer function then renders NeRF views, submits, waits and collects
(``runtime.run_until_idle``), exactly as in the UI. Results come back as
"<name>_NSTR" objects in the "NSTR" collection, the sources hidden; each picture
carries its legend. ``--objects NAME`` fits NAME hidden or not (a panel fit hides its source), and
a re-fit replaces the source's earlier result, as in the panel (``--keep-versions``: add a new one).
Errors name this script's flags, not the panel's buttons; they are one line and exit 1.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import bpy  # noqa: E402  (Blender's own, or the bpy module)

from nstr_blender.core.contract import NERF_MIN_VIEWS, PRESETS  # noqa: E402
from nstr_blender.core.errors import AddonError  # noqa: E402
from nstr_blender.core.jobs import job_phases  # noqa: E402
from nstr_blender.core.meshdata import DISPLAY_BY_NAME, MeshResult  # noqa: E402
from nstr_blender.core.mesh_files import read_mesh  # noqa: E402
from nstr_blender.core.settings import BackendSettings, default_python  # noqa: E402


def script_args() -> list[str]:
    """Arguments after '--' inside Blender; all arguments under a plain Python."""
    argv = sys.argv
    if "--" in argv:
        return argv[argv.index("--") + 1:]
    return argv[1:] if argv and argv[0].endswith(".py") else []


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="fit.py", description="Fit NSTR to objects and render the result.")
    p.add_argument("--scene", type=Path, help="open this .blend first (python mode; in Blender pass it before -P)")
    p.add_argument("--objects", nargs="+", metavar="NAME", help="objects to fit, hidden or not (default: "
                   "selected meshes, else all meshes that are not NSTR results; with an empty scene: Suzanne)")
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
    p.add_argument("--output", type=Path, help="the .blend to write (default: <scene>_nstr.blend next to the "
                   "opened scene; for an unsaved scene <object>.blend in a new temporary folder)")
    p.add_argument("--keep-versions", action="store_true", help="a re-fit adds <name>_NSTR.001 beside the "
                   "source's earlier result instead of replacing it")
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
        return unhidden([bpy.data.objects[n] for n in args.objects])
    from nstr_blender.blender.results import SOURCE_PROP

    sources = [o for o in scene.objects if o.type == "MESH" and SOURCE_PROP not in o]   # not earlier results
    meshes = [o for o in sources if o.select_get()] or sources
    if meshes:
        return unhidden(meshes)
    bpy.ops.mesh.primitive_monkey_add(size=2.0)
    return [bpy.context.active_object]


def unhidden(objects: list[bpy.types.Object]) -> list[bpy.types.Object]:
    """Make the objects selectable for the panel's operator, which fits the selection: a panel fit
    hid its source, and a hidden object is never selected (the new result hides it again)."""
    view_layer = bpy.context.view_layer
    for obj in objects:
        if view_layer.objects.get(obj.name) is None:
            raise AddonError(f"object '{obj.name}' is not in the scene's view layer",
                             "Link it to a collection of the scene that is not excluded, or pass another --objects")
        obj.hide_viewport = False
        obj.hide_select = False
        obj.hide_set(False)
    return objects


def default_output(first: str) -> Path:
    """Next to the opened scene (<scene>_nstr.blend), else a new temporary folder: never inside the
    add-on or the checkout, and never the scene itself."""
    if bpy.data.filepath:
        scene_path = Path(bpy.data.filepath)
        return scene_path.with_name(f"{scene_path.stem}_nstr.blend")
    return Path(tempfile.mkdtemp(prefix="nstr_fit_")) / f"{first}.blend"


def frame_camera(scene: bpy.types.Scene, objects: list[bpy.types.Object], size: int) -> None:
    """A camera looking at the objects from the front-right, and a light."""
    from mathutils import Vector

    corners = [o.matrix_world @ Vector(c) for o in objects for c in o.bound_box]
    lo = Vector((min(c.x for c in corners), min(c.y for c in corners), min(c.z for c in corners)))
    hi = Vector((max(c.x for c in corners), max(c.y for c in corners), max(c.z for c in corners)))
    center, radius = (lo + hi) / 2, max((hi - lo).length / 2, 1e-3)
    cam = bpy.data.objects.get("NSTR Camera")              # a re-run on its own output reuses its camera
    if cam is None or cam.type != "CAMERA":
        cam = bpy.data.objects.new("NSTR Camera", bpy.data.cameras.new("NSTR Camera"))
        scene.collection.objects.link(cam)
    cam_data = cam.data
    cam_data.lens = 50
    direction = Vector((0.55, -1.0, 0.45)).normalized()
    fov = 2 * math.atan(cam_data.sensor_width / (2 * cam_data.lens))
    cam.location = center + direction * (radius / math.sin(fov / 2) * 0.8)
    cam.rotation_euler = (center - cam.location).to_track_quat("-Z", "Y").to_euler()
    cam_data.clip_end = max(100.0, radius * 20)
    scene.camera = cam
    sun = bpy.data.objects.get("NSTR Light")
    if sun is None or sun.type != "LIGHT":
        sun = bpy.data.objects.new("NSTR Light", bpy.data.lights.new("NSTR Light", "SUN"))
        scene.collection.objects.link(sun)
    sun.rotation_euler = (math.radians(40), math.radians(10), math.radians(30))
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
    shading.light = "FLAT"                          # unlit: colours as the legend shows them ...
    shading.show_cavity = True                      # ... and the shape from ridges and valleys, not highlights
    shading.color_type = "VERTEX"                   # the active colour attribute, as the viewport shows it
    scene.view_settings.view_transform = "Standard"  # colours as the colour maps define them


def render_pictures(scene: bpy.types.Scene, results: list[bpy.types.Object], path: Path) -> list[Path]:
    """One picture per available attribute, each with its legend; the first also as ``path`` itself.
    The sources are hidden in renders already (results.create_result_object), as in the saved file."""
    from nstr_blender.blender.legend_overlay import legend_for
    from nstr_blender.blender.results import result_meta, show_attribute

    written = []
    names = [n for n in (result_meta(results[0]).get("available", []) if results else [])
             if not DISPLAY_BY_NAME[n].research]       # the artist's list; research readouts are not pictured
    for i, name in enumerate(names):
        for obj in results:
            obj.nstr_display = name               # its update shows the attribute
        target = path if i == 0 else path.with_name(f"{path.stem}_{name}{path.suffix}")
        scene.render.filepath = str(target)
        t0 = time.monotonic()
        bpy.ops.render.render(write_still=True)
        legend = legend_for(results[0], scene)
        if legend is not None:
            add_legend(target, legend)
        written.append(target)
        print(f"fit.py: rendered {DISPLAY_BY_NAME[name].label} -> {target} ({time.monotonic() - t0:.1f} s)")
    for obj in results:
        if names:
            show_attribute(obj, names[0])
            obj.nstr_display = names[0]
    return written


def add_legend(path: Path, legend) -> None:
    """Paint the legend into a rendered PNG (Blender's Python has no PIL: numpy + a bitmap font)."""
    import numpy as np

    from nstr_blender.core.legend import draw_into

    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        w, h = image.size
        pixels = np.empty(w * h * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        rows_down = pixels.reshape(h, w, 4)[::-1].copy()        # Blender's rows go up
        draw_into(rows_down, legend, scale=1 if w < 900 else 2)
        image.pixels.foreach_set(np.ascontiguousarray(rows_down[::-1]).reshape(-1))
        image.filepath_raw = str(path)
        image.file_format = "PNG"
        image.save()
    finally:
        bpy.data.images.remove(image)


def enable_addon(backend: BackendSettings) -> None:
    """Enable the add-on from this checkout and put the backend choice into its preferences (the
    operators read them there, exactly as in the UI)."""
    import addon_utils

    if not hasattr(bpy.types.Scene, "nstr"):
        addon_utils.enable("nstr_blender", default_set=True, handle_error=None)
    if not hasattr(bpy.types.Scene, "nstr"):
        raise AddonError("the NSTR add-on did not register", "Run fit.py from the repository checkout")
    addon = bpy.context.preferences.addons.get("nstr_blender")
    prefs = getattr(addon, "preferences", None)
    if prefs is None:
        raise AddonError("the NSTR add-on has no preferences here", "Run fit.py from the repository checkout")
    prefs.backend_mode, prefs.url, prefs.token = backend.mode, backend.url, backend.token
    prefs.python, prefs.device, prefs.log_dir = backend.python, backend.device, backend.log_dir


def run_operator(op) -> None:
    """Call an NSTR operator; its report becomes a one-line AddonError."""
    from nstr_blender.blender.runtime import RUNTIME

    try:
        result = op()
    except RuntimeError as err:
        raise AddonError(RUNTIME.message or str(err).strip().splitlines()[-1]) from None
    if "FINISHED" not in result:
        raise AddonError(RUNTIME.message or f"{op} did not run")


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
        objects = prepare_objects(args)
        first = objects[0].name.split(".")[0].lower() or "result" if objects else "result"
        output = args.output or default_output(first)
        if args.output is None:
            print(f"fit.py: writing to {output.parent} (pass --output to choose)")
        elif bpy.data.filepath and output.resolve() == Path(bpy.data.filepath).resolve():
            raise AddonError(f"--output '{output}' is the opened scene itself", "Pass another --output path")
        picture = args.render or output.with_suffix(".png")
        if args.backend_url:
            backend = BackendSettings(mode="url", url=args.backend_url, token=args.token)
        else:
            backend = BackendSettings(mode="local", python=args.backend_python or default_python() or "",
                                      device=args.device, log_dir=str(output.parent.resolve() / "logs"))
        enable_addon(backend)
        from nstr_blender.blender.runtime import RUNTIME, run_until_idle
        from nstr_blender.core.wording import COMMAND_LINE

        RUNTIME.wording = COMMAND_LINE           # the operators' fixes name this script's flags
        scene = bpy.context.scene
        for obj in scene.objects:
            obj.select_set(obj in objects)
        bpy.context.view_layer.objects.active = objects[0]
        props = scene.nstr
        props.task, props.preset = args.task, args.preset
        props.keep_versions = args.keep_versions
        for name in ("n_freqs", "steps", "resolution"):
            if getattr(args, name):
                setattr(props, name, getattr(args, name))
        props.overrides = " ".join(args.overrides)
        if args.task == "nerf":
            if args.nerf_views < NERF_MIN_VIEWS:   # the panel's field clamps; a script says so instead
                raise AddonError(f"--nerf-views {args.nerf_views} is below the {NERF_MIN_VIEWS} training views a NeRF "
                                 "needs", f"Pass --nerf-views {NERF_MIN_VIEWS} or more")
            props.nerf_dir = str((output.parent / f"{output.stem}_views").resolve())
            props.nerf_train, props.nerf_test = args.nerf_views, max(1, args.nerf_views // 6)
            props.nerf_resolution, props.nerf_engine = args.nerf_size, "CYCLES"
        print(f"fit.py: Blender {bpy.app.version_string}; fitting {', '.join(o.name for o in objects)}, "
              f"task {args.task}, preset {args.preset}")

        made: list[bpy.types.Object] = []
        RUNTIME.on_result = made.append
        t_fit = time.monotonic()
        run_operator(bpy.ops.nstr.fit)           # the panel's button: renders views (NeRF), queues jobs
        last: dict[str, str] = {}

        def report() -> None:
            views = RUNTIME.views
            if views is not None and last.get("views") != str(views.done):
                last["views"] = str(views.done)
                print(f"fit.py: rendering views {views.done}/{views.total}", flush=True)
            for record in RUNTIME.tracker:
                key = f"{record.state} {record.phase} {int(record.progress * 20)}"   # every 5%, and each phase
                if last.get(record.source) != key:
                    last[record.source] = key
                    print(f"fit.py: {record.source}: {record.progress_text()}", flush=True)
            session = RUNTIME.session
            if session is not None and session.connected and "ready" not in last:
                last["ready"] = "1"
                print(f"fit.py: backend ready at {session.url} on {session.health.get('device')}", flush=True)

        run_until_idle(args.timeout, on_tick=report)
        failed = [r for r in RUNTIME.tracker if r.state != "collected"]
        if RUNTIME.problem() and (failed or not RUNTIME.tracker.records):
            raise AddonError(RUNTIME.problem())
        if failed:
            raise AddonError("; ".join(f"{r.source}: {r.message or r.state}" for r in failed))
        print(f"fit.py: fitted {len(made)} object(s) in {time.monotonic() - t_fit:.1f} s")
        for record in RUNTIME.tracker:           # the phases as the backend logged them
            phases = job_phases(RUNTIME.session.client.log(record.job_id)) if record.job_id else []
            print(f"fit.py: {record.source}: job {record.job_id} phases (job log): {', '.join(phases)}")
        from nstr_blender.blender.legend_overlay import legend_for
        for obj in made:
            legend = legend_for(obj, scene)
            if legend is not None:
                print(f"fit.py:   {obj.name} {legend.title}: {' | '.join(legend.lines())}")

        frame_camera(scene, made or objects, args.size)
        setup_engine(scene, args.engine)
        output.parent.mkdir(parents=True, exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=str(output.resolve()), check_existing=False, compress=True)
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
