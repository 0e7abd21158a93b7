#!/usr/bin/env python3
"""Screenshot the real "Fit NSTR" panel: Blender's UI under Xvfb, a real fit, a real backend.

    python scripts/screenshot_panel.py [--out out/panel.png] [--asset scripts/assets/panel.png]

The driver (this file under a plain Python) builds the add-on zip, starts Xvfb and
Debian's ``blender`` (3.4) with this same file as its startup script. Inside Blender
the script installs and enables the add-on like a user would, adds Suzanne, starts
the backend, presses Fit NSTR and lets the UI's own timers run the job. When the
result object is there, the driver opens the sidebar's NSTR tab with xdotool
(Ctrl+wheel over the tabs until the panel reports that it drew), takes the
screenshot, asks Blender to check Undo on the result, and quits it.
Needs: blender, Xvfb, xdotool, ImageMagick (scripts/setup.sh installs them).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INSIDE = "--inside-blender"


# ============================================================ inside Blender
def inside_blender(state_dir: Path, zip_path: Path, settings: dict) -> None:
    import addon_utils
    import bpy

    def write(name: str, data: dict) -> None:
        tmp = state_dir / f"{name}.tmp"
        tmp.write_text(json.dumps(data))
        tmp.replace(state_dir / f"{name}.json")

    bpy.context.preferences.view.show_splash = False
    bpy.ops.preferences.addon_install(filepath=str(zip_path), overwrite=True)
    addon_utils.enable("nstr_blender", default_set=True, handle_error=None)
    import nstr_blender.blender.panel as panel_module
    from nstr_blender.blender.runtime import RUNTIME

    prefs = bpy.context.preferences.addons["nstr_blender"].preferences
    prefs.device = "cpu"
    prefs.log_dir = str(state_dir / "logs")

    # Report when the NSTR panel really draws (the driver waits for it after each tab switch).
    original_draw = panel_module.NSTR_PT_fit.draw

    def draw(self, context):
        original_draw(self, context)
        (state_dir / "panel_drawn").touch()
    panel_module.NSTR_PT_fit.draw = draw

    no_fit = settings.pop("no_fit", False)
    result_file = settings.pop("result", "")
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    bpy.ops.mesh.primitive_monkey_add(size=2.0)
    suzanne = bpy.context.active_object
    from_file = bool(result_file)
    if from_file:
        # A finished job's result file (e.g. the headless demo's, from the server's jobs folder):
        # the same code that collects a job turns it into the result object.
        from nstr_blender.blender.results import create_result_object
        from nstr_blender.core.meshdata import parse_result
        from nstr_blender.remote import wire

        _, arrays = wire.read_file(result_file)
        result = create_result_object(bpy.context.scene, suzanne.name,
                                      parse_result({k: v.to_numpy() for k, v in arrays.items()}))
        no_fit = True
        suzanne.hide_set(True)
        for obj in bpy.context.view_layer.objects:
            obj.select_set(obj == result)
        bpy.context.view_layer.objects.active = result
    props = bpy.context.scene.nstr
    props.preset = "quick"
    for key, value in settings.items():
        setattr(props, key, value)
    props.show_advanced = True

    phase = {"name": "start", "t0": time.monotonic()}

    def view3d():
        for window in bpy.context.window_manager.windows:
            for area in window.screen.areas:
                if area.type == "VIEW_3D":
                    region = next(r for r in area.regions if r.type == "WINDOW")
                    return window, area, region
        raise RuntimeError("no 3D view")

    def step() -> float | None:
        window, area, region = view3d()
        space = area.spaces.active
        if phase["name"] == "start":
            space.show_region_ui = True
            space.shading.type = "SOLID"
            space.shading.color_type = "VERTEX"
            with bpy.context.temp_override(window=window, area=area, region=region):
                if no_fit:
                    bpy.ops.nstr.backend_start()
                else:
                    bpy.ops.nstr.fit()       # starts the backend in the background and queues the job
            phase["name"] = "connecting" if no_fit else "fitting"
            return 1.0
        if phase["name"] == "connecting":
            if RUNTIME.is_starting or RUNTIME.session is None:
                return 0.5
            if from_file:
                with bpy.context.temp_override(window=window, area=area, region=region):
                    bpy.ops.view3d.view_axis(type="FRONT")
                    bpy.ops.view3d.view_selected()
            ui = next(r for r in area.regions if r.type == "UI")
            write("ready", {"window_height": window.height, "window_width": window.width,
                            "ui": [ui.x, ui.y, ui.width, ui.height], "result": "", "fit_s": 0.0,
                            "message": RUNTIME.message})
            phase["name"] = "shown"
            return 0.5
        if phase["name"] == "fitting":
            records = RUNTIME.tracker.records
            if records and records[0].state == "collected":
                result = bpy.data.objects[records[0].result_name]
                suzanne.hide_set(True)
                for obj in bpy.context.view_layer.objects:
                    obj.select_set(obj == result)
                bpy.context.view_layer.objects.active = result
                with bpy.context.temp_override(window=window, area=area, region=region):
                    bpy.ops.view3d.view_selected()
                    bpy.ops.view3d.view_axis(type="FRONT")
                    bpy.ops.view3d.view_selected()
                ui = next(r for r in area.regions if r.type == "UI")
                write("ready", {"window_height": window.height, "window_width": window.width,
                                "ui": [ui.x, ui.y, ui.width, ui.height],
                                "result": result.name, "fit_s": time.monotonic() - phase["t0"],
                                "progress_seen": phase.get("progress", [])})
                phase["name"] = "shown"
                return 0.5
            if records and records[0].state in ("failed", "error", "cancelled"):
                write("ready", {"error": records[0].message or records[0].state})
                phase["name"] = "shown"
            if records:
                seen = phase.setdefault("progress", [])
                text = records[0].progress_text()
                if not seen or seen[-1] != text:
                    seen.append(text)
            if RUNTIME.message and not RUNTIME.tracker.needs_polling():
                write("ready", {"error": RUNTIME.message})
                phase["name"] = "shown"
            return 0.5
        if phase["name"] == "shown" and (state_dir / "check_undo").exists():
            name = json.loads((state_dir / "ready.json").read_text()).get("result", "")
            with bpy.context.temp_override(window=window, area=area, region=region):
                bpy.ops.ed.undo()
                after_undo = name in bpy.data.objects
                bpy.ops.ed.redo()
                after_redo = name in bpy.data.objects
            write("undo", {"present_after_undo": after_undo, "present_after_redo": after_redo,
                           "original_present": "Suzanne" in bpy.data.objects})
            phase["name"] = "done"
            return 0.5
        if (state_dir / "quit").exists():
            RUNTIME.stop_backend()
            bpy.ops.wm.quit_blender()
            return None
        return 0.5

    def safe_step() -> float | None:
        try:
            return step()
        except Exception as err:  # noqa: BLE001 - reported to the driver, Blender keeps running
            write("error_" + phase["name"], {"error": f"{type(err).__name__}: {err}"})
            if phase["name"] == "shown":
                write("undo", {"error": f"{type(err).__name__}: {err}"})
                phase["name"] = "done"
            return 0.5

    bpy.app.timers.register(safe_step, first_interval=2.0)


# ============================================================ the driver
def driver(argv: list[str]) -> int:
    import argparse
    import shutil
    import subprocess
    import tempfile

    parser = argparse.ArgumentParser(description="Screenshot the Fit NSTR panel in real Blender under Xvfb")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "panel.png")
    parser.add_argument("--asset", type=Path, default=REPO / "scripts" / "assets" / "panel.png",
                        help="small copy for the README ('' to skip)")
    parser.add_argument("--blender", default="blender")
    parser.add_argument("--steps", type=int, default=0, help="training steps of the demo fit (0: the preset's)")
    parser.add_argument("--resolution", type=int, default=0, help="marching-cubes resolution (0: the preset's)")
    parser.add_argument("--overrides", default="", help="more backend settings, KEY=VALUE ...")
    parser.add_argument("--timeout", type=float, default=420.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    parser.add_argument("--no-fit", action="store_true", help="only start the backend; no fit, no result")
    parser.add_argument("--result", type=Path, help="show this finished job's result (a result.nstr from the "
                        "server's jobs folder) instead of fitting; the backend is only started")
    args = parser.parse_args(argv)
    for tool in (args.blender, "Xvfb", "xdotool", "import", "convert"):
        if shutil.which(tool) is None:
            print(f"screenshot_panel: '{tool}' is not installed. Run scripts/setup.sh", file=sys.stderr)
            return 1

    sys.path.insert(0, str(REPO / "scripts"))
    import build_extension

    state = Path(tempfile.mkdtemp(prefix="nstr_shot_"))
    zip_path = build_extension.build(state / "dist")
    display = f":{next(n for n in range(91, 140) if not Path(f'/tmp/.X11-unix/X{n}').exists())}"
    env = dict(os.environ, DISPLAY=display, BLENDER_USER_CONFIG=str(state / "config"),
               BLENDER_USER_SCRIPTS=str(state / "scripts"), NSTR_LOG_DIR=str(state / "logs"))
    width, height = 1600, 900
    procs = []
    try:
        procs.append(subprocess.Popen(["Xvfb", display, "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.5)
        blender_log = open(state / "blender.log", "wb")
        procs.append(subprocess.Popen(
            [args.blender, "--factory-startup", "--window-geometry", "0", "0", str(width), str(height),
             "--python", str(Path(__file__).resolve()), "--", INSIDE, str(state), str(zip_path),
             json.dumps({"steps": args.steps, "resolution": args.resolution, "overrides": args.overrides,
                         "no_fit": args.no_fit, "result": str(args.result.resolve()) if args.result else ""})],
            env=env, stdout=blender_log, stderr=subprocess.STDOUT))
        t0 = time.monotonic()
        ready = state / "ready.json"
        while not ready.exists():
            if procs[1].poll() is not None:
                raise RuntimeError(f"Blender exited early; see {state / 'blender.log'}")
            if time.monotonic() - t0 > args.timeout:
                raise RuntimeError(f"no result after {args.timeout:.0f} s; see {state / 'blender.log'}")
            time.sleep(1.0)
        info = json.loads(ready.read_text())
        if "error" in info:
            raise RuntimeError(f"the fit in Blender failed: {info['error']}")
        print(f"screenshot_panel: fit done in Blender's UI in {info['fit_s']:.1f} s; progress seen: "
              f"{info.get('progress_seen')}")

        def xdo(*cmd: str) -> None:
            subprocess.run(["xdotool", *cmd], env=env, check=True, capture_output=True)

        wh = info["window_height"]
        xdo("mousemove", str(info["window_width"] // 2), str(wh // 2))
        time.sleep(0.5)
        xdo("key", "Escape")                          # the first-start splash, if any
        ux, uy, uw, uh = info["ui"]
        drawn = state / "panel_drawn"

        def settle() -> None:
            """Blender redraws on events: nudge the mouse so the last change is on screen."""
            xdo("mousemove_relative", "--", "1", "0")
            time.sleep(0.4)
            xdo("mousemove_relative", "--", "-1", "0")
            time.sleep(0.6)

        # The sidebar's tabs run down its right edge; click down the strip until the NSTR
        # panel reports that it drew. (Ctrl+wheel would also scroll values under the mouse.)
        tab_x, top = ux + uw - 12, wh - (uy + uh)
        def nstr_tab_shown() -> bool:
            """True when the panel draws again after a fresh redraw (not a late redraw of an old click)."""
            time.sleep(1.0)
            drawn.unlink(missing_ok=True)
            settle()
            return drawn.exists()

        found = False
        for _attempt in range(3):                     # a loaded machine may lag behind the clicks
            for y in range(top + 15, top + min(uh, 520), 16):
                drawn.unlink(missing_ok=True)
                xdo("mousemove", str(tab_x), str(y))
                xdo("click", "1")
                settle()
                if drawn.exists() and nstr_tab_shown():
                    found = True
                    break
            if found:
                break
        if not found:
            raise RuntimeError("the NSTR tab did not open")
        xdo("mousemove", str(max(10, ux - 300)), str(wh // 2))   # off the panel: no hover highlight
        settle()
        window_id = subprocess.run(["xdotool", "search", "--name", "Blender"], env=env, capture_output=True,
                                   text=True).stdout.split()[0]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["import", "-window", window_id, str(args.out)], env=env, check=True)
        print(f"screenshot_panel: wrote {args.out}")
        if str(args.asset):
            args.asset.parent.mkdir(parents=True, exist_ok=True)
            left = max(0, ux - 820)                 # the viewport around the result, the sidebar, its tabs
            crop = f"{ux + uw + 2 - left}x{height}+{left}+0"
            for colours in (128, 64, 32):                # a palette PNG under 300 KiB for the README
                subprocess.run(["convert", str(args.out), "-crop", crop, "+repage", "-colors", str(colours),
                                "-strip", str(args.asset)], check=True)
                size = args.asset.stat().st_size
                if size <= 300 * 1024:
                    break
            print(f"screenshot_panel: wrote {args.asset} ({size / 1024:.0f} KiB)")
            if size > 300 * 1024:
                raise RuntimeError(f"{args.asset} is {size / 1024:.0f} KiB, over 300 KiB")
        (state / "check_undo").touch()
        undo = state / "undo.json"
        t1 = time.monotonic()
        while not undo.exists() and time.monotonic() - t1 < 30:
            time.sleep(0.5)
        if undo.exists():
            print(f"screenshot_panel: undo check {undo.read_text()}")
        (state / "quit").touch()
        procs[1].wait(timeout=30)
        return 0
    except (RuntimeError, subprocess.SubprocessError, OSError) as err:
        print(f"screenshot_panel: {err}", file=sys.stderr)
        return 1
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if args.keep:
            print(f"screenshot_panel: kept {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    if INSIDE in sys.argv:
        rest = sys.argv[sys.argv.index(INSIDE) + 1:]
        inside_blender(Path(rest[0]), Path(rest[1]), json.loads(rest[2]))
    else:
        sys.exit(driver(sys.argv[1:]))
